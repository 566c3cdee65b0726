#!/usr/bin/env bash
# Peak memory (max RSS) of the main commands on a small and a large generated
# package, to show it does not grow with the package. Usage:
#   bash bench/memory.sh [SMALL] [LARGE] [JOBS]   (defaults 256M 2G 2)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SMALL=${1:-256M}
LARGE=${2:-2G}
JOBS=${3:-2}
cargo build --release -q
R=$PWD/target/release/romkit
W=$(mktemp -d "${TMPDIR:-/tmp}/romkit-bench-memory.XXXXXX")
trap 'rm -rf "$W"' EXIT
export SOURCE_DATE_EPOCH=1705300800
# Peak RSS in MiB of one command (GNU time's %M is in KiB).
peak() {
  local f="$W/time.txt"
  /usr/bin/time -f "%M" -o "$f" "$@" >/dev/null 2>"$W/err.txt" || { cat "$W/err.txt" >&2; return 1; }
  echo "$(( $(tail -1 "$f") / 1024 ))"
}
printf "%-34s %10s %10s\n" "command (-j $JOBS)" "$SMALL" "$LARGE"
declare -A res
for size in "$SMALL" "$LARGE"; do
  pkg=$("$R" fixture --size "$size" -o "$W/src-$size" -q)
  res[gen-$size]=$(du -m "$pkg" | cut -f1)
  res[verify-$size]=$(peak "$R" -j "$JOBS" verify "$pkg")
  res[unpack-$size]=$(peak "$R" -j "$JOBS" unpack -o "$W/u-$size" "$pkg")
  res[files-$size]=$(peak "$R" -j "$JOBS" unpack --files --partitions system -o "$W/f-$size" "$pkg")
  res[apps-$size]=$(peak "$R" -j "$JOBS" apps "$pkg")
  res[fastboot-$size]=$(peak "$R" -j "$JOBS" build "$pkg" --profile xiaomi-eu -o "$W/fb-$size.zip")
  res[ota-$size]=$(peak "$R" -j "$JOBS" build "$pkg" --profile xiaomi-eu --format ota -o "$W/ota-$size.zip")
  rm -rf "$W/u-$size" "$W/f-$size" "$W"/fb-"$size"* "$W"/ota-"$size"* "$W/src-$size"
done
row() { printf "%-34s %8s M %8s M\n" "$1" "${res[$2-$SMALL]}" "${res[$2-$LARGE]}"; }
row "package size" gen
row "verify" verify
row "unpack (every image)" unpack
row "unpack --files (system)" files
row "apps" apps
row "build --format fastboot" fastboot
row "build --format ota" ota
