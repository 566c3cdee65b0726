#!/usr/bin/env bash
# bench/super.sh — romkit against libsparse-utils and AOSP lptools on a ~2 GiB super image.
#
# 1. Generates the partition images of a super (system, vendor, product, system_ext, odm, mi_ext;
#    about 1.75 GiB in total at the default size): runs of incompressible data, text, repeated
#    patterns and zeros, with free space at the end of each image, deterministic (seeded).
# 2. Makes the super with lpmake (virtual A/B, 3 metadata slots, groups main_a/main_b, partitions
#    in slot a, empty slot b): super.img sparse (--sparse), super.raw raw.
# 3. Unsparse + extract every logical partition of the sparse super:
#      romkit unpack super.img -o DIR
#      simg2img super.img RAW && lpunpack RAW DIR              (one timed command)
#    Target: romkit wall <= 0.8 x the pair. Outputs compared with cmp.
# 4. Write a split sparse super from the raw image:
#      romkit sparse super.raw -o OUT --split 512M
#      img2simg super.raw OUT
#    Target: romkit wall <= 1.0 x img2simg. romkit's parts are merged back with simg2img and
#    compared with super.raw.
# Each command runs BENCH_RUNS times (median wall, peak RSS from /usr/bin/time) after a sync, with
# its input warm in the page cache; ratios are printed and written to $BENCH_DIR/results.json.
#
# Needs: simg2img/img2simg (apt-get install android-sdk-libsparse-utils), lpmake and lpunpack
# (bash ../shared/oracles/build_lptools.sh DIR, then LPTOOLS=DIR/lptools), python3, /usr/bin/time.
# Environment: BENCH_SIZE (super device size in MiB, default 2048), BENCH_DIR (default
# target/bench-super), BENCH_RUNS (3), BENCH_JOBS (nproc), LPTOOLS (folder with lpmake, lpunpack;
# default: PATH), BENCH_SPLIT (512M).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
BENCH_SIZE=${BENCH_SIZE:-2048}
BENCH_DIR=${BENCH_DIR:-target/bench-super}
BENCH_RUNS=${BENCH_RUNS:-3}
BENCH_JOBS=${BENCH_JOBS:-$(nproc)}
BENCH_SPLIT=${BENCH_SPLIT:-512M}
mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)

lp() { if [ -n "${LPTOOLS:-}" ]; then echo "$LPTOOLS/$1"; else command -v "$1"; fi; }
LPMAKE=$(lp lpmake || true); LPUNPACK=$(lp lpunpack || true)
for t in "$LPMAKE" "$LPUNPACK"; do
  [ -x "$t" ] || { echo "needs lpmake and lpunpack (build_lptools.sh, then LPTOOLS=DIR)" >&2; exit 2; }
done
for t in simg2img img2simg python3; do
  command -v "$t" >/dev/null || { echo "needs $t (apt-get install android-sdk-libsparse-utils)" >&2; exit 2; }
done
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 2; }

cargo build --release --quiet
ROMKIT=$REPO/target/release/romkit

# Partition sizes as shares (thousandths) of the device.
PARTS="system:340 vendor:220 product:200 system_ext:75 odm:25 mi_ext:10"
IMGS=$BENCH_DIR/images-$BENCH_SIZE
if [ ! -f "$IMGS/done" ]; then
  rm -rf "$IMGS"; mkdir -p "$IMGS"
  python3 - "$IMGS" "$BENCH_SIZE" $PARTS <<'PY'
import random, sys, os
out, size_mib, parts = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
words = b"android system vendor ro.build.prop persist selinux u:object_r:system_file:s0 /system/lib64 <permission name=".split()
for spec in parts:
    name, share = spec.split(":")
    size = size_mib * 1024 * 1024 * int(share) // 1000 // 4096 * 4096
    rng = random.Random(name)
    used = size - size // 5
    with open(os.path.join(out, name + ".img"), "wb") as f:
        at = 0
        while at < used:
            n = min(rng.choice([1, 2, 4, 8]) * 256 * 1024, used - at)
            k = rng.random()
            if k < 0.45:
                f.write(rng.randbytes(n))                       # compressed resources
            elif k < 0.7:
                text = b" ".join(rng.choice(words) for _ in range(4096))
                f.write((text * (n // len(text) + 1))[:n])      # text and code
            elif k < 0.85:
                f.write(bytes(n))                               # zero blocks
            else:
                f.write(rng.randbytes(4) * (n // 4))            # repeated 4-byte pattern
            at += n
        f.truncate(size)                                        # free space at the end
PY
  touch "$IMGS/done"
fi

DEV=$((BENCH_SIZE * 1024 * 1024))
if [ ! -f "$BENCH_DIR/super.img" ] || [ ! -f "$BENCH_DIR/super.raw" ]; then
  args=(--metadata-size 65536 --super-name super --metadata-slots 3 --virtual-ab
        --device "super:$DEV" --group "main_a:$((DEV - 4 * 1024 * 1024))"
        --group "main_b:$((DEV - 4 * 1024 * 1024))")
  for spec in $PARTS; do
    n=${spec%%:*}; s=$(stat -c %s "$IMGS/$n.img")
    args+=(--partition "${n}_a:readonly:$s:main_a" --image "${n}_a=$IMGS/$n.img"
           --partition "${n}_b:readonly:0:main_b")
  done
  "$LPMAKE" "${args[@]}" --sparse --output "$BENCH_DIR/super.img" >/dev/null 2>&1
  "$LPMAKE" "${args[@]}" --output "$BENCH_DIR/super.raw" >/dev/null 2>&1
fi

declare -A WALL RSS
run() {
  local name=$1 input=$2; shift 2
  local walls=() rss=0
  for _ in $(seq "$BENCH_RUNS"); do
    rm -rf "$BENCH_DIR/out"; mkdir -p "$BENCH_DIR/out"
    sync
    cat "$input" > /dev/null
    /usr/bin/time -f '%e %M' -o "$BENCH_DIR/time" "$@" >/dev/null 2>"$BENCH_DIR/$name.log" || {
      echo "$name failed:"; cat "$BENCH_DIR/$name.log"; exit 1; }
    read -r w m < "$BENCH_DIR/time"
    walls+=("$w"); [ "$m" -gt "$rss" ] && rss=$m
  done
  WALL[$name]=$(printf '%s\n' "${walls[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  RSS[$name]=$((rss / 1024))
  printf '%-22s %8.2f s  %6d MiB  (runs: %s)\n' "$name" "${WALL[$name]}" "${RSS[$name]}" "${walls[*]}"
}

OUT=$BENCH_DIR/out
echo "super: $(du -h --apparent-size "$BENCH_DIR/super.img" | cut -f1) sparse, $((DEV >> 20)) MiB device; $BENCH_RUNS runs, $BENCH_JOBS jobs"
run romkit_unpack "$BENCH_DIR/super.img" "$ROMKIT" unpack -j "$BENCH_JOBS" "$BENCH_DIR/super.img" -o "$OUT/r"
mkdir -p "$BENCH_DIR/check"; rm -rf "$BENCH_DIR/check/r"; mv "$OUT/r" "$BENCH_DIR/check/r"
run simg2img_lpunpack "$BENCH_DIR/super.img" sh -c "simg2img '$BENCH_DIR/super.img' '$OUT/raw.img' && mkdir -p '$OUT/l' && '$LPUNPACK' '$OUT/raw.img' '$OUT/l'"
SAME=true
for spec in $PARTS; do
  n=${spec%%:*}
  cmp -s "$BENCH_DIR/check/r/$n.img" "$OUT/l/${n}_a.img" || { echo "MISMATCH: $n"; SAME=false; }
done
run romkit_sparse_split "$BENCH_DIR/super.raw" "$ROMKIT" sparse "$BENCH_DIR/super.raw" -o "$OUT/s.img" --split "$BENCH_SPLIT"
rm -rf "$BENCH_DIR/check/s"; mkdir -p "$BENCH_DIR/check/s"; mv "$OUT"/s.img.* "$BENCH_DIR/check/s/"
run img2simg "$BENCH_DIR/super.raw" img2simg "$BENCH_DIR/super.raw" "$OUT/s2.img"
PARTS_N=$(ls "$BENCH_DIR/check/s" | wc -l)
simg2img $(ls "$BENCH_DIR"/check/s/s.img.* | sort -t. -k3 -n) "$OUT/merged.raw"
cmp -s "$OUT/merged.raw" "$BENCH_DIR/super.raw" || { echo "MISMATCH: split sparse super"; SAME=false; }
rm -rf "$OUT"

R1=$(awk -v a="${WALL[romkit_unpack]}" -v b="${WALL[simg2img_lpunpack]}" 'BEGIN {printf "%.2f", a / b}')
R2=$(awk -v a="${WALL[romkit_sparse_split]}" -v b="${WALL[img2simg]}" 'BEGIN {printf "%.2f", a / b}')
P1=$(awk -v r="$R1" 'BEGIN {print (r <= 0.8) ? "PASS" : "FAIL"}')
P2=$(awk -v r="$R2" 'BEGIN {print (r <= 1.0) ? "PASS" : "FAIL"}')
echo
echo "romkit unpack / (simg2img + lpunpack):  $R1  (target <= 0.80)  $P1"
echo "romkit sparse --split / img2simg:       $R2  (target <= 1.00)  $P2  ($PARTS_N parts)"
echo "outputs identical: $SAME"
cat > "$BENCH_DIR/results.json" <<JSON
{"device_mib": $BENCH_SIZE, "runs": $BENCH_RUNS, "jobs": $BENCH_JOBS,
 "wall": {"romkit_unpack": ${WALL[romkit_unpack]}, "simg2img_lpunpack": ${WALL[simg2img_lpunpack]},
          "romkit_sparse_split": ${WALL[romkit_sparse_split]}, "img2simg": ${WALL[img2simg]}},
 "rss_mib": {"romkit_unpack": ${RSS[romkit_unpack]}, "simg2img_lpunpack": ${RSS[simg2img_lpunpack]},
             "romkit_sparse_split": ${RSS[romkit_sparse_split]}, "img2simg": ${RSS[img2simg]}},
 "ratios": {"unpack": $R1, "sparse_split": $R2}, "split_parts": $PARTS_N, "identical": $SAME}
JSON
$SAME
