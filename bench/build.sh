#!/usr/bin/env bash
# romkit build against its parts, in one run: a ~1.5 GiB generated package,
# built with the xiaomi-eu profile. Prints the wall times and the ratio of
#   build --format fastboot   to   unpack of the touched partitions + pack of the changed trees,
# and the OTA build with its package (recompression of the rebuilt partitions,
# operations of the others copied) stage reported apart.
# Usage: bash bench/build.sh [SIZE]   (default 1536M)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SIZE=${1:-1536M}
cargo build --release -q
R=$PWD/target/release/romkit
W=$(mktemp -d "${TMPDIR:-/tmp}/romkit-bench-build.XXXXXX")
trap 'rm -rf "$W"' EXIT
export SOURCE_DATE_EPOCH=1705300800
PKG=$("$R" fixture --size "$SIZE" -o "$W/src" -q)
t() { local s e; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); echo "$e - $s" | bc; }
TOUCHED=system,system_ext,product
unpack=$(t "$R" unpack --files --partitions "$TOUCHED" -o "$W/u" "$PKG")
pack=0
for p in ${TOUCHED//,/ }; do
  s=$(t "$R" pack "$W/u/$p" -o "$W/p-$p.img" --mount "$p" \
        --fs-config "$W/u/config/${p}_fs_config" --file-contexts "$W/u/config/${p}_file_contexts")
  pack=$(echo "$pack + $s" | bc)
done
fb=$(t "$R" build "$PKG" --profile xiaomi-eu -o "$W/fb.zip")
s=$(date +%s.%N)
"$R" build "$PKG" --profile xiaomi-eu -o "$W/ota.zip" --format ota --json --force > "$W/ota.json"
ota_all=$(echo "$(date +%s.%N) - $s" | bc)
ota_pkg=$(python3 -c "import json;print(json.load(open('$W/ota.json'))['times']['package'])")
echo "unpack of touched partitions ($TOUCHED): ${unpack}s"
echo "pack of the changed trees:               ${pack}s"
echo "build --format fastboot:                 ${fb}s"
echo "ratio build / (unpack + pack):           $(echo "scale=3; $fb / ($unpack + $pack)" | bc)"
echo "build --format ota:                       ${ota_all}s, of which payload (recompressing the rebuilt"
echo "  partitions, copying the others' operations): ${ota_pkg}s"
