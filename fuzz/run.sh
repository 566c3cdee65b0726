#!/usr/bin/env bash
# Builds the fuzz targets and runs each for SECONDS on its corpus.
#
#   bash fuzz/run.sh SECONDS [TARGET...]      (all targets when none is named)
#
# New inputs go to fuzz/scratch/TARGET (the committed fuzz/corpus/TARGET is
# only read), findings to fuzz/artifacts/TARGET. Exits non-zero when a target
# crashes, hangs (>10 s on one input) or runs out of memory (>2 GiB), and
# prints the input that did it. Per target it prints the executions
# libFuzzer made. Runs at lowered priority (ROMKIT_FUZZ_NICE, default 10).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

if [ $# -lt 1 ] || ! [[ "$1" =~ ^[0-9]+$ ]]; then
  echo "usage: $0 SECONDS [TARGET...]" >&2
  exit 2
fi
SECONDS_EACH=$1
shift

ALL=(payload_manifest payload_ops sparse lp_metadata transfer_list erofs_tree erofs_edit ext4_edit
  ext4_xattr apk_identity profile_yaml manifest_json version_code package_detect
  patch_bsdiff patch_puffin patch_zucchini patch_lz4diff flash_texts avb_footer zucchini_dex zucchini_elf)
if [ $# -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL[@]}"); fi

# Largest input per target: enough for the seeds, small enough to stay fast.
max_len() {
  case "$1" in
    payload_manifest | payload_ops | package_detect) echo 262144 ;;
    sparse | lp_metadata | erofs_tree | erofs_edit | ext4_edit | ext4_xattr | avb_footer) echo 262144 ;;
    apk_identity) echo 131072 ;;
    profile_yaml | manifest_json) echo 65536 ;;
    transfer_list) echo 16384 ;;
    version_code) echo 1024 ;;
    *) echo 65536 ;;
  esac
}

# Extra libFuzzer flags per target. The extractor (run by payload_ops and,
# on small payloads, payload_manifest) builds a rayon pool per
# call whose threads finish after it returns: LeakSanitizer would report the
# exiting threads' bookkeeping as leaks.
extra_flags() {
  case "$1" in
    payload_ops | payload_manifest) echo -detect_leaks=0 ;;
  esac
}

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
# libFuzzer needs nightly-only compiler flags: use an installed nightly, else
# let stable accept them.
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  CARGO=(cargo +nightly)
else
  export RUSTC_BOOTSTRAP=1
  CARGO=(cargo)
fi
NICE=(nice -n "${ROMKIT_FUZZ_NICE:-10}")

# Debug assertions on: an arithmetic overflow on untrusted input is a finding.
"${NICE[@]}" "${CARGO[@]}" fuzz build --debug-assertions

mkdir -p logs
failed=0
printf '%-18s %8s %12s %8s  %s\n' target seconds executions corpus result
for t in "${TARGETS[@]}"; do
  mkdir -p "corpus/$t" "scratch/$t" "artifacts/$t"
  log="logs/$t.log"
  set +e
  "${NICE[@]}" "${CARGO[@]}" fuzz run --debug-assertions "$t" "scratch/$t" "corpus/$t" -- \
    -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -timeout=10 \
    -max_len="$(max_len "$t")" -print_final_stats=1 $(extra_flags "$t") >"$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  corpus=$(find "scratch/$t" "corpus/$t" -type f | wc -l)
  if [ $rc -eq 0 ]; then
    result=ok
  else
    result="FAILED (exit $rc)"
    failed=1
  fi
  printf '%-18s %8s %12s %8s  %s\n' "$t" "$SECONDS_EACH" "${execs:-?}" "$corpus" "$result"
  if [ $rc -ne 0 ]; then
    grep -E 'ERROR: libFuzzer|panicked at|SUMMARY' "$log" | head -5 | sed 's/^/    /'
    grep -o 'Test unit written to [^ ]*' "$log" | sed 's/^/    /' || true
    echo "    log: fuzz/$log"
  fi
done
exit $failed
