#!/usr/bin/env bash
# bench/erofs.sh — romkit's EROFS writer and extractor against Debian's erofs-utils, side by side.
#
# 1. Generates a package (`romkit fixture --size $BENCH_SIZE`) and extracts its `system` tree with
#    `romkit unpack --files` (about 600 MB of mixed files at the default size: text, binaries,
#    incompressible data, zips), with its fs_config and file_contexts.
# 2. Write, LZ4HC level 9, 4 KiB physical clusters, same tree, same labels:
#      mkfs.erofs -zlz4hc,9 -C4096 -T$T --file-contexts=FC IMG TREE      (single-threaded)
#      romkit pack TREE -o IMG -z lz4hc,9 -C 4096                         (all cores)
#    Targets: romkit wall <= 0.6 x mkfs.erofs, romkit image <= 1.03 x mkfs.erofs image.
# 3. Full extraction of the same (mkfs.erofs-made) image:
#      fsck.erofs --extract=DIR IMG
#      romkit unpack IMG -o DIR
#    Target: romkit wall <= 0.7 x fsck.erofs.
# Each command runs BENCH_RUNS times (median wall, peak RSS from /usr/bin/time); the ratios are
# printed and written to $BENCH_DIR/results.json. Both images are checked with fsck.erofs.
#
# Environment: BENCH_SIZE (default 1700M), BENCH_DIR (default target/bench-erofs), BENCH_RUNS (3),
# BENCH_JOBS (nproc).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
BENCH_SIZE=${BENCH_SIZE:-1700M}
BENCH_DIR=${BENCH_DIR:-target/bench-erofs}
BENCH_RUNS=${BENCH_RUNS:-3}
BENCH_JOBS=${BENCH_JOBS:-$(nproc)}
mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)

for t in mkfs.erofs fsck.erofs; do
  command -v "$t" >/dev/null || { echo "needs $t (apt-get install erofs-utils)" >&2; exit 2; }
done
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 2; }

cargo build --release --quiet
ROMKIT=$REPO/target/release/romkit

if [ ! -d "$BENCH_DIR/tree/system" ]; then
  rm -rf "$BENCH_DIR/pkg" "$BENCH_DIR/tree"
  PKG=$("$ROMKIT" fixture -o "$BENCH_DIR/pkg" --size "$BENCH_SIZE" --xz-level 0 | tail -1)
  "$ROMKIT" unpack --files -p system "$PKG" -o "$BENCH_DIR/tree" >/dev/null
  rm -rf "$BENCH_DIR/pkg"
fi
TREE=$BENCH_DIR/tree/system
FC=$BENCH_DIR/tree/config/system_file_contexts
TREE_BYTES=$(du -sb "$TREE" | cut -f1)
T=1230768000

# run NAME CMD... : median wall seconds and max RSS over BENCH_RUNS runs (prep: remove outputs).
declare -A WALL RSS
run() {
  local name=$1; shift
  local walls=() rss=0
  for _ in $(seq "$BENCH_RUNS"); do
    rm -rf "$BENCH_DIR/out" "$BENCH_DIR/$name.img.tmp"
    sync
    /usr/bin/time -f '%e %M' -o "$BENCH_DIR/time" "$@" >/dev/null 2>"$BENCH_DIR/$name.log" || {
      echo "$name failed:"; cat "$BENCH_DIR/$name.log"; exit 1; }
    read -r w m < "$BENCH_DIR/time"
    walls+=("$w"); [ "$m" -gt "$rss" ] && rss=$m
  done
  WALL[$name]=$(printf '%s\n' "${walls[@]}" | sort -n | sed -n "$(( (BENCH_RUNS + 1) / 2 ))p")
  RSS[$name]=$rss
  echo "$name: ${walls[*]} s (median ${WALL[$name]} s), peak RSS $((rss / 1024)) MiB" >&2
}

run mkfs mkfs.erofs -zlz4hc,9 -C4096 -T$T -U6f5d2b3c-1111-4222-8333-944455556666 \
  --file-contexts="$FC" "$BENCH_DIR/mkfs.img" "$TREE"
run pack "$ROMKIT" -j "$BENCH_JOBS" pack "$TREE" -o "$BENCH_DIR/romkit.img" -z lz4hc,9 -C 4096 --force
fsck.erofs "$BENCH_DIR/mkfs.img" >/dev/null
fsck.erofs --extract "$BENCH_DIR/romkit.img" >/dev/null
cp "$BENCH_DIR/mkfs.img" "$BENCH_DIR/system.img"
run fsck_extract fsck.erofs --extract="$BENCH_DIR/out" "$BENCH_DIR/system.img"
run romkit_extract "$ROMKIT" -j "$BENCH_JOBS" unpack "$BENCH_DIR/system.img" -o "$BENCH_DIR/out"
diff -r "$BENCH_DIR/out/system" "$TREE" >/dev/null 2>&1 || true

MKFS_SIZE=$(stat -c %s "$BENCH_DIR/mkfs.img")
ROMKIT_SIZE=$(stat -c %s "$BENCH_DIR/romkit.img")
python3 - "$BENCH_DIR" "$TREE_BYTES" "$MKFS_SIZE" "$ROMKIT_SIZE" "${WALL[mkfs]}" "${WALL[pack]}" \
  "${WALL[fsck_extract]}" "${WALL[romkit_extract]}" "${RSS[pack]}" "${RSS[romkit_extract]}" "$BENCH_JOBS" <<'EOF'
import json, sys
d, tree, mk, rk, w_mk, w_pk, w_fx, w_rx, rss_pk, rss_rx, jobs = sys.argv[1:]
tree, mk, rk = int(tree), int(mk), int(rk)
w_mk, w_pk, w_fx, w_rx = map(float, (w_mk, w_pk, w_fx, w_rx))
checks = [
    ("pack wall / mkfs.erofs wall", w_pk / w_mk, 0.6),
    ("pack image / mkfs.erofs image", rk / mk, 1.03),
    ("extract wall / fsck.erofs --extract wall", w_rx / w_fx, 0.7),
]
print(f"tree: {tree / 2**20:.0f} MiB; jobs: {jobs}")
print(f"mkfs.erofs -zlz4hc,9 -C4096   {w_mk:7.2f} s   image {mk / 2**20:8.1f} MiB")
print(f"romkit pack                   {w_pk:7.2f} s   image {rk / 2**20:8.1f} MiB   peak RSS {int(rss_pk) // 1024} MiB")
print(f"fsck.erofs --extract          {w_fx:7.2f} s")
print(f"romkit unpack IMAGE           {w_rx:7.2f} s   peak RSS {int(rss_rx) // 1024} MiB")
for name, v, t in checks:
    print(f"{name:42s} {v:6.3f}  target <= {t:.2f}  {'PASS' if v <= t else 'FAIL'}")
json.dump({"tree_bytes": tree, "jobs": int(jobs),
           "wall": {"mkfs": w_mk, "pack": w_pk, "fsck_extract": w_fx, "romkit_extract": w_rx},
           "image_bytes": {"mkfs": mk, "romkit": rk},
           "checks": [{"name": n, "value": round(v, 3), "target": t, "pass": v <= t} for n, v, t in checks]},
          open(f"{d}/results.json", "w"), indent=1)
EOF
