#!/usr/bin/env bash
# bench/incremental.sh — applying an incremental payload: `romkit unpack --source`
# against payload_dumper 0.8.4 `--source-dir`, side by side, one run each. By hand, not in CI.
#
# What it does
#   1. Installs payload_dumper 0.8.4 into $PEERS_ROOT when missing (as bench/compare.sh does),
#      builds romkit (release) and makes a Python venv with protobuf, bsdiff4 and brotli.
#   2. Writes two partition images of BENCH_SIZE bytes in total (system 2/3, vendor 1/3):
#      the old build (incompressible and zero runs, as real images mix), and the new build, where
#      BENCH_CHANGED percent of the 1 MiB chunks carry scattered edits.
#   3. Writes the incremental payload with tests/oracles/write_delta_payload.py: changed chunks
#      become SOURCE_BSDIFF (BSDIFF40, PyPI bsdiff4), the others SOURCE_COPY.
#   4. Runs `romkit unpack payload.bin --source OLD -o OUT` and
#      `payload_dumper payload.bin --source-dir OLD -o OUT` under /usr/bin/time (wall seconds,
#      peak RSS), input warm in the page cache, checks both outputs equal the new images (cmp),
#      and prints the time ratio (target <= 0.70) and romkit's peak RSS (target <= 256 MiB).
#
# Environment
#   BENCH_SIZE     total image bytes (default 1536M; suffix K, M or G)
#   BENCH_CHANGED  percent of 1 MiB chunks changed (default 20)
#   BENCH_DIR      work directory (default target/bench-incremental)
#   BENCH_JOBS     threads for both tools (default: nproc)
#   PEERS_ROOT     cargo install --root for payload_dumper (default $HOME/.cache/romkit-peers)
#   BENCH_KEEP     1 keeps the images, the payload and the outputs (default 0)
#   BENCH_REUSE    1 reuses the images and payload a BENCH_KEEP=1 run left (default 0)
#   ROMKIT_PYTHON  a Python with protobuf, bsdiff4 and brotli to use instead of making a venv
#
# Usage: bash bench/incremental.sh
#        BENCH_SIZE=256M bash bench/incremental.sh        # quick run
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

BENCH_SIZE=${BENCH_SIZE:-1536M}
BENCH_CHANGED=${BENCH_CHANGED:-20}
BENCH_DIR=${BENCH_DIR:-$REPO/target/bench-incremental}
BENCH_JOBS=${BENCH_JOBS:-$(nproc)}
PEERS_ROOT=${PEERS_ROOT:-$HOME/.cache/romkit-peers}
BENCH_KEEP=${BENCH_KEEP:-0}
BENCH_REUSE=${BENCH_REUSE:-0}

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] ERROR: %s\n' "$*" >&2; exit 2; }

to_bytes() {
  local v=$1
  case $v in
    *K) echo $((${v%K} << 10)) ;; *M) echo $((${v%M} << 20)) ;; *G) echo $((${v%G} << 30)) ;;
    *) echo "$v" ;;
  esac
}
SIZE=$(to_bytes "$BENCH_SIZE")
if ! [[ $SIZE =~ ^[0-9]+$ ]] || ((SIZE < 3 << 20)); then die "BENCH_SIZE must be at least 3M"; fi
[[ -x /usr/bin/time ]] || die "/usr/bin/time is needed (apt-get install time)"

PD=$PEERS_ROOT/bin/payload_dumper
if [[ ! -x $PD ]]; then
  log "installing payload_dumper 0.8.4 into $PEERS_ROOT"
  cargo install --locked --root "$PEERS_ROOT" payload_dumper --version 0.8.4 ||
    cargo install --root "$PEERS_ROOT" payload_dumper --version 0.8.4 || die "cannot install payload_dumper"
fi
cargo build --release -q || die "cargo build failed"
ROMKIT=${CARGO_TARGET_DIR:-$REPO/target}/release/romkit

VENV=$BENCH_DIR/venv
mkdir -p "$BENCH_DIR"
if [[ -n ${ROMKIT_PYTHON:-} ]]; then
  PY=$ROMKIT_PYTHON
else
  if [[ ! -x $VENV/bin/python ]]; then
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
      "protobuf==7.36.2" "bsdiff4==1.3.2" "brotli==1.2.1"
  fi
  PY=$VENV/bin/python
fi

OLD=$BENCH_DIR/old NEW=$BENCH_DIR/new
PAYLOAD=$BENCH_DIR/payload.bin
rm -rf "$BENCH_DIR"/out-*
if [[ $BENCH_REUSE == 1 && -f $PAYLOAD && -f $OLD/system.img && -f $NEW/system.img ]]; then
  log "reusing the images and payload in $BENCH_DIR"
else
  rm -rf "$OLD" "$NEW"
  mkdir -p "$OLD" "$NEW"
  log "writing $(numfmt --to=iec "$SIZE") of images ($BENCH_CHANGED% of chunks changed)"
  "$PY" - "$OLD" "$NEW" "$SIZE" "$BENCH_CHANGED" <<'EOF'
import os, random, sys
old_dir, new_dir, size, changed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rnd = random.Random(16)
mib = 1 << 20
for name, share in (("system", 2 / 3), ("vendor", 1 / 3)):
    n = max(1, int(size * share) // mib)
    with open(os.path.join(old_dir, name + ".img"), "wb") as o, \
         open(os.path.join(new_dir, name + ".img"), "wb") as w:
        for i in range(n):
            # Real images mix incompressible data (compressed files) with zero runs.
            chunk = bytearray(rnd.randbytes(mib * 3 // 4) + bytes(mib // 4))
            o.write(chunk)
            if rnd.randrange(100) < changed:
                for _ in range(64):
                    at = rnd.randrange(mib - 16)
                    chunk[at:at + 16] = rnd.randbytes(16)
            w.write(chunk)
EOF
  log "writing the incremental payload (bsdiff4 on every changed chunk; takes a while)"
  "$PY" tests/oracles/write_delta_payload.py "$PAYLOAD" --no-search --chunk $((1 << 20)) \
    --part "system=$OLD/system.img:$NEW/system.img:copy" \
    --part "vendor=$OLD/vendor.img:$NEW/vendor.img:copy" >&2
fi
cat "$PAYLOAD" "$OLD"/*.img >/dev/null # warm the page cache
# On a shared machine CPU shares follow thread counts (payload_dumper runs
# about a dozen threads whatever -t says): the load is printed with the results.
load=$(cut -d' ' -f1-3 /proc/loadavg)

run() { # label outdir cmd...
  local label=$1 out=$2 tf=$BENCH_DIR/$1.time
  shift 2
  rm -rf "$out"
  sync
  /usr/bin/time -f '%e %M %U %S' -o "$tf" "$@" >"$BENCH_DIR/$label.log" 2>&1 ||
    { cat "$BENCH_DIR/$label.log" >&2; die "$label failed"; }
  for img in system vendor; do
    cmp -s "$NEW/$img.img" "$out/$img.img" || die "$label: $img.img differs from the new image"
  done
  cat "$tf"
}
read -r rk_s rk_kb rk_u rk_k < <(run romkit "$BENCH_DIR/out-romkit" \
  "$ROMKIT" unpack -q -j "$BENCH_JOBS" "$PAYLOAD" --source "$OLD" -o "$BENCH_DIR/out-romkit")
read -r pd_s pd_kb pd_u pd_k < <(run payload_dumper "$BENCH_DIR/out-pd" \
  "$PD" "$PAYLOAD" --source-dir "$OLD" -o "$BENCH_DIR/out-pd" -t "$BENCH_JOBS")

ratio=$(awk -v a="$rk_s" -v b="$pd_s" 'BEGIN { printf "%.2f", a / b }')
cpu() { awk -v u="$1" -v k="$2" 'BEGIN { printf "%.2f", u + k }'; }
printf '\n%-16s %10s %12s %14s\n' tool seconds "CPU seconds" "peak RSS MiB"
printf '%-16s %10s %12s %14d\n' "romkit unpack" "$rk_s" "$(cpu "$rk_u" "$rk_k")" $((rk_kb / 1024))
printf '%-16s %10s %12s %14d\n' "payload_dumper" "$pd_s" "$(cpu "$pd_u" "$pd_k")" $((pd_kb / 1024))
printf 'load average before the runs: %s\n' "$load"
printf '\nratio romkit / payload_dumper: %s (target <= 0.70) %s\n' "$ratio" \
  "$(awk -v r="$ratio" 'BEGIN { print (r <= 0.70) ? "PASS" : "FAIL" }')"
printf 'romkit peak RSS: %d MiB (target <= 256) %s\n' $((rk_kb / 1024)) \
  "$( ((rk_kb <= 256 * 1024)) && echo PASS || echo FAIL)"
printf 'payload: %s bytes; both outputs equal the new images\n' "$(stat -c %s "$PAYLOAD")"
[[ $BENCH_KEEP == 1 ]] || rm -rf "$OLD" "$NEW" "$PAYLOAD" "$BENCH_DIR"/out-*
