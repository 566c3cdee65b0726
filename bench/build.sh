#!/usr/bin/env bash
# romkit build with the xiaomi-eu profile, in one run, side by side:
#   - in place (the default): build --format ota, build --format fastboot;
#   - the same with --repack (every touched partition rebuilt from its tree);
#   - the limit of each: the single-thread decode time of the partitions the
#     build must decode, divided by the cores, plus writing its output at the
#     disk speed measured here.
# Prints wall times, peak memory (/usr/bin/time -v) and the ratios the
# project targets (OTA <= 1.5 x limit and <= 0.2 x --repack; fastboot
# <= 1.3 x limit; peak <= 256 MiB), and a prediction for 12 GiB of images.
#
# Usage: bash bench/build.sh [SIZE]          (fixture --size, default 16G:
#                                              over 4 GiB of images, product
#                                              over 1.5 GiB)
#        BENCH_PKG=pkg.zip bash bench/build.sh   (an existing package)
#        BENCH_REPACK=0 ...                      (skip the two --repack builds,
#                                                 the slow half of the run)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SIZE=${1:-16G}
cargo build --release -q
R=$PWD/target/release/romkit
W=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/romkit-bench-build.XXXXXX")
trap 'rm -rf "$W"' EXIT
export SOURCE_DATE_EPOCH=1705300800
CORES=$(nproc)
PKG=${BENCH_PKG:-}
if [ -z "$PKG" ]; then
  # xz preset 1: the package is only the input; builds encode at preset 6.
  PKG=$("$R" fixture --size "$SIZE" --xz-level 1 -o "$W/src" -q)
fi
# What an OTA build must decode: every partition that can hold apps (the
# manifest lists every file of those with its SHA-256, so all their bytes are
# read) and vbmeta (patched); the rest is copied from the source payload.
APPS=$("$R" inspect --json "$PKG" | python3 -c '
import json, sys
apps = {"system", "system_ext", "product", "vendor", "odm", "mi_ext",
        "system_dlkm", "vendor_dlkm", "odm_dlkm"}
names = [p["name"] for p in json.load(sys.stdin)["partitions"]]
print(",".join(n for n in names if n in apps or n.startswith("vbmeta")))')

# wall seconds and peak RSS (MiB) of one command: run NAME CMD...
declare -A WALL RSS
run() {
  local name=$1
  shift
  /usr/bin/time -v -o "$W/$name.time" "$@" >/dev/null
  WALL[$name]=$(awk -F': ' '/Elapsed \(wall clock\)/ {
    n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; print s }' "$W/$name.time")
  RSS[$name]=$(awk -F': ' '/Maximum resident set size/ { printf "%.0f", $2 / 1024 }' "$W/$name.time")
}

images=$("$R" inspect --json "$PKG" | python3 -c \
  'import json,sys; print(sum(p["size"] for p in json.load(sys.stdin)["partitions"]))')
product=$("$R" inspect --json "$PKG" | python3 -c \
  'import json,sys; print(next(p["size"] for p in json.load(sys.stdin)["partitions"] if p["name"]=="product"))')

# Disk speed: 1 GiB written and synced, the median of three (one such
# write has measured anywhere from 346 MiB/s to 1.6 GiB/s here).
speeds=()
for _ in 1 2 3; do
  s=$(date +%s.%N)
  dd if=/dev/zero of="$W/disk" bs=1M count=1024 conv=fdatasync status=none
  speeds+=("$(echo "1073741824 / ($(date +%s.%N) - $s)" | bc)")
  rm -f "$W/disk"
done
disk=$(printf '%s\n' "${speeds[@]}" | sort -n | sed -n 2p)

# The input read once first, so that the decode runs and the builds all
# start with it in the page cache (else the first run alone reads it from
# the disk, and the subset can measure slower than the whole).
cat "$PKG" > /dev/null

# Single-thread decode: what each build must decode.
run decode_apps "$R" -j 1 unpack --partitions "$APPS" -o "$W/dec-apps" "$PKG"
rm -rf "$W/dec-apps"
run decode_all "$R" -j 1 unpack -o "$W/dec-all" "$PKG"
rm -rf "$W/dec-all"

# Each build starts as the first did: the input in the page cache and no
# earlier output (an output left behind fills the page cache, and the next
# build pays for reclaiming it).
run ota "$R" build "$PKG" --profile xiaomi-eu --format ota -o "$W/ota.zip"
ota_size=$(stat -c %s "$W/ota.zip")
rm -f "$W/ota.zip" "$W/ota.zip.manifest.json"
run fastboot "$R" build "$PKG" --profile xiaomi-eu --format fastboot -o "$W/fb.zip"
fb_size=$(stat -c %s "$W/fb.zip")
rm -f "$W/fb.zip" "$W/fb.zip.manifest.json"
if [ "${BENCH_REPACK:-1}" = 0 ]; then
  WALL[ota_repack]=nan RSS[ota_repack]=nan WALL[fastboot_repack]=nan RSS[fastboot_repack]=nan
else
  run ota_repack "$R" build "$PKG" --profile xiaomi-eu --format ota --repack -o "$W/ota-r.zip"
  rm -f "$W/ota-r.zip"
  run fastboot_repack "$R" build "$PKG" --profile xiaomi-eu --format fastboot --repack -o "$W/fb-r.zip"
  rm -f "$W/fb-r.zip"
fi

python3 - "$images" "$product" "$CORES" "$disk" "$ota_size" "$fb_size" \
  "${WALL[decode_apps]}" "${WALL[decode_all]}" \
  "${WALL[ota]}" "${RSS[ota]}" "${WALL[fastboot]}" "${RSS[fastboot]}" \
  "${WALL[ota_repack]}" "${RSS[ota_repack]}" "${WALL[fastboot_repack]}" "${RSS[fastboot_repack]}" <<'EOF'
import sys
a = sys.argv[1:]
images, product, cores, disk, ota_size, fb_size = (float(x) for x in a[:6])
dec_apps, dec_all = float(a[6]), float(a[7])
ota, ota_rss, fb, fb_rss, ota_r, ota_r_rss, fb_r, fb_r_rss = (float(x) for x in a[8:16])
gib = 1 << 30
ota_limit = dec_apps / cores + ota_size / disk
fb_limit = dec_all / cores + fb_size / disk
print(f"package: {images / gib:.2f} GiB of images (product {product / gib:.2f} GiB), "
      f"{cores:.0f} cores, disk {disk / (1 << 20):.0f} MiB/s")
print(f"single-thread decode: app partitions and vbmeta {dec_apps:.1f} s, all {dec_all:.1f} s")
print(f"{'':34}{'wall':>9}{'peak':>10}{'x limit':>9}")
rows = [
    ("limit --format ota", ota_limit, None, None),
    ("build --format ota", ota, ota_rss, ota / ota_limit),
    ("build --format ota --repack", ota_r, ota_r_rss, ota_r / ota_limit),
    ("limit --format fastboot", fb_limit, None, None),
    ("build --format fastboot", fb, fb_rss, fb / fb_limit),
    ("build --format fastboot --repack", fb_r, fb_r_rss, fb_r / fb_limit),
]
import math
for name, wall, rss, ratio in rows:
    if math.isnan(wall):
        print(f"{name:<34}{'not run (BENCH_REPACK=0)':>28}")
        continue
    r = f"{rss:>6.0f} MiB" if rss is not None else " " * 10
    x = f"{ratio:>9.2f}" if ratio is not None else ""
    print(f"{name:<34}{wall:>8.1f}s{r}{x}")
peak = max(ota_rss, fb_rss)
def verdict(ok):
    return "ok" if ok else "MISSED"
repack = ("not measured" if math.isnan(ota_r)
          else f"{ota / ota_r:.2f} (target 0.2) {verdict(ota <= 0.2 * ota_r)}")
print(f"OTA / limit {ota / ota_limit:.2f} (target 1.5) {verdict(ota <= 1.5 * ota_limit)}; "
      f"OTA / --repack {repack}; "
      f"fastboot / limit {fb / fb_limit:.2f} (target 1.3) {verdict(fb <= 1.3 * fb_limit)}; "
      f"peak {peak:.0f} MiB (target 256) {verdict(peak <= 256)}")
scale = 12 * gib / images
print(f"for 12 GiB of images (x{scale:.2f}, same shares): OTA about {ota * scale:.0f} s, "
      f"fastboot about {fb * scale:.0f} s"
      + ("" if math.isnan(ota_r) else f", --repack OTA about {ota_r * scale:.0f} s"))
EOF
