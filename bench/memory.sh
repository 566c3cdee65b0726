#!/usr/bin/env bash
# Peak memory of the main commands on a small and a large generated package:
# anonymous memory (what romkit allocates) and total resident memory (plus
# the pages of mmap-ed filesystem images, which the kernel can drop).
# Usage: bash bench/memory.sh [SMALL] [LARGE] [JOBS]   (defaults 256M 1G 2)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SMALL=${1:-256M}
LARGE=${2:-1G}
JOBS=${3:-2}
cargo build --release -q
R=$PWD/target/release/romkit
W=$(mktemp -d "${TMPDIR:-/tmp}/romkit-bench-memory.XXXXXX")
trap 'rm -rf "$W"' EXIT
export SOURCE_DATE_EPOCH=1705300800
# "ANON/TOTAL" peak MiB of one command.
peak() { python3 bench/peak_mem.py "$@" | tr ' ' /; }
printf "%-34s %14s %14s\n" "MiB anon/total (-j $JOBS)" "$SMALL" "$LARGE"
declare -A res
for size in "$SMALL" "$LARGE"; do
  pkg=$("$R" fixture --size "$size" --xz-level 0 -o "$W/src-$size" -q)
  res[gen-$size]=$(du -m "$pkg" | cut -f1)
  res[big-$size]=$("$R" apps --json "$pkg" | python3 -c "import json,sys; print(max(a['apk_size'] for a in json.load(sys.stdin)['apps']) >> 20)")
  res[verify-$size]=$(peak "$R" -j "$JOBS" verify "$pkg")
  res[unpack-$size]=$(peak "$R" -j "$JOBS" unpack -o "$W/u-$size" "$pkg")
  res[files-$size]=$(peak "$R" -j "$JOBS" unpack --files --partitions system -o "$W/f-$size" "$pkg")
  res[apps-$size]=$(peak "$R" -j "$JOBS" apps "$pkg")
  res[fastboot-$size]=$(peak "$R" -j "$JOBS" build "$pkg" --profile xiaomi-eu -o "$W/fb-$size.zip")
  res[ota-$size]=$(peak "$R" -j "$JOBS" build "$pkg" --profile xiaomi-eu --format ota -o "$W/ota-$size.zip")
  rm -rf "$W/u-$size" "$W/f-$size" "$W"/fb-"$size"* "$W"/ota-"$size"* "$W/src-$size"
done
row() { printf "%-34s %14s %14s\n" "$1" "${res[$2-$SMALL]}" "${res[$2-$LARGE]}"; }
row "package size (MiB)" gen
row "largest APK (MiB)" big
row "verify" verify
row "unpack (every image)" unpack
row "unpack --files (system)" files
row "apps" apps
row "build --format fastboot" fastboot
row "build --format ota" ota
