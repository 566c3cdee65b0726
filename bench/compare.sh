#!/usr/bin/env bash
# bench/compare.sh — `romkit unpack` / `romkit verify` against peer payload extractors, in one run.
#
# What it does
#   1. Installs the peer tools (crates.io) into $PEERS_ROOT if they are missing:
#        payload_dumper 0.8.4   binary `payload_dumper`   payload_dumper IN -o DIR -t N   (IN: payload.bin or OTA zip)
#        otadump 0.1.2          binary `otadump`          otadump PAYLOAD.BIN -o DIR -c N (bare payload.bin only)
#      and the Debian packages they (and this script) need, when running as root.
#   2. Builds romkit (`cargo build --release`) and generates a synthetic OTA package with
#      `romkit fixture -o $BENCH_DIR/pkg --size $BENCH_SIZE` (last stdout line = the zip path), then
#      extracts payload.bin from it once, for peers that want a bare payload.bin.
#   3. Measures the decode limit: `cargo bench --bench decode_limit -- INPUT` prints one JSON line
#        {"ops":N,"decode_seconds":X,"hash_seconds":Y,"bytes":B}
#      X = single-thread time to read+decode every operation, Y = single-thread time to sha256 the
#      operation data and the full images.  decode_limit = X / cores, verify_limit = (X+Y) / cores:
#      the wall time a perfectly parallel tool would need on this machine.
#   4. Runs every tool BENCH_RUNS times under `/usr/bin/time` (wall seconds, peak RSS), removing the
#      outputs between runs, with the input warm in the page cache; takes the median wall time and
#      the largest peak RSS.
#   5. Checks that each peer's images are byte-identical (cmp) to romkit's (a warning if not).
#   6. Prints a table and the ratios against their targets, and writes the same as JSON to
#      $BENCH_DIR/results.json.
#
# Targets (each PASS/FAIL)
#   romkit_unpack / payload_dumper  <= 0.50
#   romkit_unpack / otadump         <= 0.35
#   romkit_unpack / decode_limit    <= 1.15
#   romkit_verify / verify_limit    <= 1.10
#   romkit peak RSS (unpack, verify) <= 200 MiB
#
# Environment
#   BENCH_SIZE    total image bytes of the generated package (default 1536M; any `romkit fixture --size`)
#   BENCH_DIR     work directory (default target/bench in the repo)
#   PEERS_ROOT    cargo install --root for the peers (default $HOME/.cache/romkit-peers)
#   BENCH_RUNS    runs per tool; the median wall time is reported (default 3)
#   BENCH_JOBS    threads given to every tool and divisor of the limits (default: nproc)
#   BENCH_TOOLS   which tools to run (default "romkit_unpack romkit_verify payload_dumper otadump")
#   BENCH_INPUT   benchmark this existing OTA zip or payload.bin instead of generating a fixture
#   BENCH_LIMITS  0 skips the decode_limit bench (default 1)
#   BENCH_STRICT  1 makes the script exit 1 when a target FAILs (default 0: report only)
#   BENCH_KEEP    1 keeps the extracted images under $BENCH_DIR/out (default 0: removed at the end)
#   PAYLOAD_DUMPER_ARGS / OTADUMP_ARGS   extra arguments appended to the peer command lines
#
# Exit status: 0 done (or all targets met, with BENCH_STRICT=1); 1 a target failed (BENCH_STRICT=1);
#              2 usage/environment problem (missing tool that cannot be installed, build failure).
#
# Usage: bash bench/compare.sh            # full run, ~1.5 GiB of images
#        BENCH_SIZE=256M BENCH_RUNS=1 bash bench/compare.sh     # quick smoke run
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Relative BENCH_DIR / BENCH_INPUT given by the caller are relative to the caller's directory.
abspath() { if [[ $1 == /* ]]; then printf '%s' "$1"; else printf '%s/%s' "$PWD" "$1"; fi; }
[[ -n ${BENCH_DIR:-} ]] && BENCH_DIR=$(abspath "$BENCH_DIR")
[[ -n ${BENCH_INPUT:-} ]] && BENCH_INPUT=$(abspath "$BENCH_INPUT")
cd "$REPO"

BENCH_SIZE=${BENCH_SIZE:-1536M}
BENCH_DIR=${BENCH_DIR:-$REPO/target/bench}
PEERS_ROOT=${PEERS_ROOT:-$HOME/.cache/romkit-peers}
BENCH_RUNS=${BENCH_RUNS:-3}
BENCH_JOBS=${BENCH_JOBS:-$(nproc)}
BENCH_TOOLS=${BENCH_TOOLS:-"romkit_unpack romkit_verify payload_dumper otadump"}
BENCH_INPUT=${BENCH_INPUT:-}
BENCH_LIMITS=${BENCH_LIMITS:-1}
BENCH_STRICT=${BENCH_STRICT:-0}
BENCH_KEEP=${BENCH_KEEP:-0}
PAYLOAD_DUMPER_ARGS=${PAYLOAD_DUMPER_ARGS:-}
OTADUMP_ARGS=${OTADUMP_ARGS:-}

PAYLOAD_DUMPER_VERSION=0.8.4
OTADUMP_VERSION=0.1.2
CORES=$BENCH_JOBS

log() { printf '[bench] %s\n' "$*" >&2; }
warn() { printf '[bench] WARNING: %s\n' "$*" >&2; }
die() { printf '[bench] ERROR: %s\n' "$*" >&2; exit 2; }

[[ $BENCH_RUNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer, got '$BENCH_RUNS'"
[[ $CORES =~ ^[1-9][0-9]*$ ]] || die "BENCH_JOBS must be a positive integer, got '$CORES'"
for t in $BENCH_TOOLS; do
    case $t in romkit_unpack | romkit_verify | payload_dumper | otadump) ;;
    *) die "unknown tool '$t' in BENCH_TOOLS" ;; esac
done
selected() { [[ " $BENCH_TOOLS " == *" $1 "* ]]; }

mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
mkdir -p "$BENCH_DIR/logs" "$BENCH_DIR/out"

# ---------------------------------------------------------------- prerequisites
apt_updated=0
apt_install() { # apt_install PKG... — only as root, else explain and stop
    if [[ $(id -u) -ne 0 ]]; then
        die "missing Debian packages: $* (install them, or run as root)"
    fi
    if [[ $apt_updated -eq 0 ]]; then
        log "apt-get update"
        apt-get update -qq >"$BENCH_DIR/logs/apt.log" 2>&1 || die "apt-get update failed (see $BENCH_DIR/logs/apt.log)"
        apt_updated=1
    fi
    log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >>"$BENCH_DIR/logs/apt.log" 2>&1 ||
        die "apt-get install $* failed (see $BENCH_DIR/logs/apt.log)"
}
have_deb() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

[[ -x /usr/bin/time ]] || apt_install time
command -v cmp >/dev/null || apt_install diffutils
command -v cargo >/dev/null || die "cargo not found"

# peer_installed CRATE VERSION BIN — binary present and recorded at that version in PEERS_ROOT
peer_installed() {
    [[ -x "$PEERS_ROOT/bin/$3" ]] &&
        grep -qs "^\"$1 $2 " "$PEERS_ROOT/.crates.toml"
}
install_peer() { # install_peer CRATE VERSION BIN
    local crate=$1 version=$2 bin=$3 t0 logf="$BENCH_DIR/logs/install-$1.log"
    peer_installed "$crate" "$version" "$bin" && return 0
    log "installing $crate $version into $PEERS_ROOT (slow on 2 cores; log: $logf)"
    t0=$(date +%s)
    if ! cargo install --locked --root "$PEERS_ROOT" "$crate" --version "$version" >"$logf" 2>&1; then
        warn "cargo install --locked $crate failed; retrying without --locked"
        cargo install --root "$PEERS_ROOT" "$crate" --version "$version" >>"$logf" 2>&1 ||
            die "cargo install $crate $version failed (see $logf)"
    fi
    log "installed $crate $version in $(($(date +%s) - t0)) s"
}
if selected payload_dumper; then
    install_peer payload_dumper "$PAYLOAD_DUMPER_VERSION" payload_dumper
fi
if selected otadump; then
    if ! peer_installed otadump "$OTADUMP_VERSION" otadump; then
        # otadump's build.rs runs protoc; its xz decoder links the system liblzma.
        missing=()
        command -v protoc >/dev/null || missing+=(protobuf-compiler)
        have_deb liblzma-dev || missing+=(liblzma-dev)
        command -v pkg-config >/dev/null || missing+=(pkg-config)
        [[ ${#missing[@]} -eq 0 ]] || apt_install "${missing[@]}"
    fi
    install_peer otadump "$OTADUMP_VERSION" otadump
fi
PAYLOAD_DUMPER=$PEERS_ROOT/bin/payload_dumper
OTADUMP=$PEERS_ROOT/bin/otadump

# ---------------------------------------------------------------- romkit + input package
ROMKIT=$REPO/target/release/romkit
need_romkit=0
{ selected romkit_unpack || selected romkit_verify || [[ -z $BENCH_INPUT ]]; } && need_romkit=1
if [[ $need_romkit -eq 1 ]]; then
    log "cargo build --release"
    cargo build --release >"$BENCH_DIR/logs/build.log" 2>&1 || die "cargo build --release failed (see $BENCH_DIR/logs/build.log)"
fi

ZIP="" PAYLOAD=""
if [[ -n $BENCH_INPUT ]]; then
    [[ -f $BENCH_INPUT ]] || die "BENCH_INPUT '$BENCH_INPUT' is not a file"
    input_abs=$(cd "$(dirname "$BENCH_INPUT")" && pwd)/$(basename "$BENCH_INPUT")
    if [[ $(head -c 4 "$input_abs") == CrAU ]]; then
        PAYLOAD=$input_abs
    else
        ZIP=$input_abs
    fi
else
    log "romkit fixture -o $BENCH_DIR/pkg --size $BENCH_SIZE"
    rm -rf "$BENCH_DIR/pkg"
    fixture_out=$("$ROMKIT" fixture -o "$BENCH_DIR/pkg" --size "$BENCH_SIZE" 2>"$BENCH_DIR/logs/fixture.log") ||
        die "romkit fixture failed (see $BENCH_DIR/logs/fixture.log)"
    ZIP=$(printf '%s\n' "$fixture_out" | tail -n 1)
    [[ -f $ZIP ]] || die "romkit fixture printed '$ZIP', which is not a file"
    ZIP=$(cd "$(dirname "$ZIP")" && pwd)/$(basename "$ZIP")
fi
if [[ -n $ZIP ]]; then
    PAYLOAD=$BENCH_DIR/payload/payload.bin
    log "extracting payload.bin from $ZIP"
    rm -rf "$BENCH_DIR/payload" && mkdir -p "$BENCH_DIR/payload"
    if command -v unzip >/dev/null; then
        unzip -o -q -j "$ZIP" payload.bin -d "$BENCH_DIR/payload" || die "no payload.bin in $ZIP"
    else
        python3 - "$ZIP" "$BENCH_DIR/payload" <<'EOF' || die "no payload.bin in $ZIP"
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("payload.bin") as src, open(sys.argv[2] + "/payload.bin", "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
EOF
    fi
fi
# romkit and payload_dumper read the zip in place; otadump only takes a bare payload.bin.
MAIN_INPUT=${ZIP:-$PAYLOAD}
input_bytes=$(stat -c %s "$MAIN_INPUT")
payload_bytes=$(stat -c %s "$PAYLOAD")
log "input: $MAIN_INPUT ($input_bytes bytes), payload.bin: $PAYLOAD ($payload_bytes bytes), cores: $CORES"

# ---------------------------------------------------------------- helpers
# Per-tool results, keyed by tool name.
declare -A ST=() MED=() RSS=() CPU=() WALLS=() CMD=() SAME=() DIFFS=()

median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) exit 1; if (NR % 2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }
warm() { cat "$@" >/dev/null; } # same page-cache state for every tool

# run_tool NAME OUTDIR CMD... — BENCH_RUNS timed runs; OUTDIR ("" = none) is emptied before each
# run and holds the last run's output afterwards.
run_tool() {
    local name=$1 outdir=$2 i tf logf wall rss usr sys walls=() cpus=() maxrss=0
    shift 2
    CMD[$name]="$*"
    log "$name: $*"
    for ((i = 1; i <= BENCH_RUNS; i++)); do
        if [[ -n $outdir ]]; then rm -rf "$outdir" && mkdir -p "$outdir"; fi
        sync
        warm "$MAIN_INPUT" "$PAYLOAD"
        tf=$BENCH_DIR/logs/$name.$i.time logf=$BENCH_DIR/logs/$name.$i.log
        if ! /usr/bin/time -f '%e %M %U %S' -o "$tf" "$@" >"$logf" 2>&1; then
            warn "$name run $i failed ($(head -n 1 "$tf")); last lines of $logf:"
            tail -n 5 "$logf" >&2
            ST[$name]=failed
            return 0
        fi
        # The last line: on failure GNU time puts "Command exited with ..." first.
        read -r wall rss usr sys < <(tail -n 1 "$tf")
        walls+=("$wall")
        cpus+=("$(awk -v u="$usr" -v s="$sys" 'BEGIN {printf "%.2f", u + s}')")
        ((rss > maxrss)) && maxrss=$rss
        log "  run $i: ${wall}s wall, ${usr}s user + ${sys}s sys, peak RSS $((rss / 1024)) MiB"
    done
    ST[$name]=ok
    WALLS[$name]="${walls[*]}"
    MED[$name]=$(printf '%s\n' "${walls[@]}" | median)
    CPU[$name]=$(printf '%s\n' "${cpus[@]}" | median)
    RSS[$name]=$maxrss
}

# compare_images NAME REFDIR DIR — every *.img in REFDIR must be byte-identical in DIR.
compare_images() {
    local name=$1 ref=$2 dir=$3 f base diffs=() n=0
    while IFS= read -r -d '' f; do
        base=${f#"$ref"/}
        n=$((n + 1))
        if [[ ! -f $dir/$base ]]; then
            diffs+=("$base: missing")
        elif ! cmp -s "$f" "$dir/$base"; then
            diffs+=("$base: $(cmp "$f" "$dir/$base" 2>&1 | head -n 1 | sed "s|$ref/||g; s|$dir/||g")")
        fi
    done < <(find "$ref" -type f -name '*.img' -print0 | sort -z)
    while IFS= read -r -d '' f; do
        base=${f#"$dir"/}
        [[ -f $ref/$base ]] || diffs+=("$base: extra file")
    done < <(find "$dir" -type f -name '*.img' -print0 | sort -z)
    if [[ $n -eq 0 ]]; then diffs+=("reference has no *.img"); fi
    DIFFS[$name]=$(printf '%s\n' "${diffs[@]+"${diffs[@]}"}")
    if [[ ${#diffs[@]} -eq 0 ]]; then
        SAME[$name]=true
        log "$name: $n images byte-identical to $REF_NAME's"
    else
        SAME[$name]=false
        warn "$name: output differs from $REF_NAME's:"
        printf '           %s\n' "${diffs[@]}" >&2
    fi
}

# ---------------------------------------------------------------- decode limit
LIM_OPS="" LIM_BYTES="" LIM_X="" LIM_Y="" LIM_ST=skipped
if [[ $BENCH_LIMITS != 0 ]]; then
    log "cargo bench --bench decode_limit -- $MAIN_INPUT  (x$BENCH_RUNS)"
    xs=() ys=()
    LIM_ST=ok
    for ((i = 1; i <= BENCH_RUNS; i++)); do
        warm "$MAIN_INPUT"
        logf=$BENCH_DIR/logs/decode_limit.$i.log
        if ! cargo bench --bench decode_limit -- "$MAIN_INPUT" >"$logf" 2>"$logf.err"; then
            warn "decode_limit bench failed; last lines of $logf.err:"
            tail -n 5 "$logf.err" >&2
            LIM_ST=failed
            break
        fi
        json=$(grep '^{.*"decode_seconds"' "$logf" | tail -n 1 || true)
        field() { sed -n "s/.*\"$1\"[[:space:]]*:[[:space:]]*\([0-9.eE+-]*\).*/\1/p" <<<"$json"; }
        x=$(field decode_seconds) y=$(field hash_seconds)
        if [[ -z $x || -z $y ]]; then
            warn "decode_limit printed no JSON line with decode_seconds/hash_seconds (see $logf)"
            LIM_ST=failed
            break
        fi
        LIM_OPS=$(field ops) LIM_BYTES=$(field bytes)
        xs+=("$x") ys+=("$y")
        log "  run $i: $json"
    done
    if [[ $LIM_ST == ok ]]; then
        LIM_X=$(printf '%s\n' "${xs[@]}" | median)
        LIM_Y=$(printf '%s\n' "${ys[@]}" | median)
    fi
fi
calc() { awk "BEGIN {printf \"%.3f\", $1}"; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
if [[ $LIM_ST == ok ]]; then
    ST[decode_limit]=ok ST[verify_limit]=ok
    MED[decode_limit]=$(calc "$LIM_X / $CORES")
    MED[verify_limit]=$(calc "($LIM_X + $LIM_Y) / $CORES")
else
    ST[decode_limit]=$LIM_ST ST[verify_limit]=$LIM_ST
fi

# ---------------------------------------------------------------- the runs
OUT=$BENCH_DIR/out
REF_NAME="" REF_DIR=""
# romkit first: its images are the reference the peers are compared against.
if selected romkit_unpack; then
    run_tool romkit_unpack "$OUT/romkit_unpack" "$ROMKIT" unpack "$MAIN_INPUT" -o "$OUT/romkit_unpack" --force -j "$CORES"
    if [[ ${ST[romkit_unpack]} == ok ]]; then REF_NAME=romkit_unpack REF_DIR=$OUT/romkit_unpack; fi
fi
if selected romkit_verify; then
    run_tool romkit_verify "" "$ROMKIT" verify "$MAIN_INPUT" -j "$CORES"
fi
peer_done() { # peer_done NAME — compare with the reference (or become it), then free the disk
    local name=$1
    [[ ${ST[$name]} == ok ]] || { rm -rf "${OUT:?}/$name"; return 0; }
    if [[ -z $REF_NAME ]]; then
        REF_NAME=$name REF_DIR=$OUT/$name
        warn "romkit_unpack output unavailable: comparing the other peers with $name instead"
        return 0
    fi
    compare_images "$name" "$REF_DIR" "$OUT/$name"
    [[ $BENCH_KEEP == 1 ]] || rm -rf "${OUT:?}/$name"
}
if selected payload_dumper; then
    # -t: worker threads (one partition per worker); hashes are checked after extraction by default.
    # shellcheck disable=SC2086
    run_tool payload_dumper "$OUT/payload_dumper" "$PAYLOAD_DUMPER" "$MAIN_INPUT" -o "$OUT/payload_dumper" -t "$CORES" $PAYLOAD_DUMPER_ARGS
    peer_done payload_dumper
fi
if selected otadump; then
    # -c: rayon threads (one task per operation). Takes only a bare payload.bin (mmap). Checks each
    # operation's data hash and each image's hash by default; REPLACE/REPLACE_BZ/REPLACE_XZ/ZERO only.
    # shellcheck disable=SC2086
    run_tool otadump "$OUT/otadump" "$OTADUMP" "$PAYLOAD" -o "$OUT/otadump" -c "$CORES" $OTADUMP_ARGS
    peer_done otadump
fi
[[ $BENCH_KEEP == 1 ]] || rm -rf "${OUT:?}"/*

# ---------------------------------------------------------------- report
# check NAME NUM DEN TARGET — appends to CHECKS; NUM/DEN are tool names, DEN "" for an absolute MiB value
CHECKS=()
FAILED=0
check() {
    local label=$1 num=$2 den=$3 target=$4 value="" result
    local sn=${ST[$num]:-skipped} sd=ok
    [[ -n $den ]] && sd=${ST[$den]:-skipped}
    if [[ $sn == ok && $sd == ok ]]; then
        if [[ -n $den ]]; then
            value=$(calc "${MED[$num]} / ${MED[$den]}")
        else
            value=$(mib "${RSS[$num]}")
        fi
        if awk -v v="$value" -v t="$target" 'BEGIN {exit !(v <= t)}'; then result=PASS; else result=FAIL; fi
    elif [[ $sn == failed || $sd == failed ]]; then
        result=FAIL
    else
        result=N/A
    fi
    [[ $result == FAIL ]] && FAILED=1
    CHECKS+=("$label|$value|$target|$result")
}
check "romkit_unpack / payload_dumper" romkit_unpack payload_dumper 0.50
check "romkit_unpack / otadump" romkit_unpack otadump 0.35
check "romkit_unpack / decode_limit" romkit_unpack decode_limit 1.15
check "romkit_verify / verify_limit" romkit_verify verify_limit 1.10
# romkit's peak RSS: the larger of unpack's and verify's
RSS[romkit]=0 ST[romkit]=skipped
for t in romkit_unpack romkit_verify; do
    case ${ST[$t]:-skipped} in
    ok) ((RSS[$t] > RSS[romkit])) && RSS[romkit]=${RSS[$t]}
        [[ ${ST[romkit]} == failed ]] || ST[romkit]=ok ;;
    failed) ST[romkit]=failed ;;
    esac
done
check "romkit peak RSS MiB" romkit "" 200

TOOLS=(romkit_unpack romkit_verify payload_dumper otadump decode_limit verify_limit)
echo
printf 'romkit benchmark: %s (%s bytes), %s cores, %s run(s) per tool\n' "$MAIN_INPUT" "$input_bytes" "$CORES" "$BENCH_RUNS"
[[ $LIM_ST == ok ]] && printf 'decode_limit bench: %s ops, %s bytes, decode %ss + hash %ss single-thread\n' "$LIM_OPS" "$LIM_BYTES" "$LIM_X" "$LIM_Y"
echo
printf '%-16s %10s %10s %14s  %-8s %s\n' tool "median s" "cpu s" "peak RSS MiB" status "identical / runs"
for t in "${TOOLS[@]}"; do
    st=${ST[$t]:-skipped}
    med=${MED[$t]:--} cpu=${CPU[$t]:--} rss=- note=""
    [[ -n ${RSS[$t]:-} ]] && rss=$(mib "${RSS[$t]}")
    case $t in
    decode_limit) note="= decode_seconds / $CORES" ;;
    verify_limit) note="= (decode_seconds + hash_seconds) / $CORES" ;;
    *) [[ -n ${SAME[$t]:-} ]] && note="identical=${SAME[$t]} "
       [[ -n ${WALLS[$t]:-} ]] && note+="runs: ${WALLS[$t]}" ;;
    esac
    printf '%-16s %10s %10s %14s  %-8s %s\n' "$t" "$med" "$cpu" "$rss" "$st" "$note"
done
echo
printf '%-32s %8s %8s  %s\n' check value target result
for c in "${CHECKS[@]}"; do
    IFS='|' read -r label value target result <<<"$c"
    printf '%-32s %8s %8s  %s\n' "$label" "${value:--}" "<=$target" "$result"
done
for t in payload_dumper otadump; do
    [[ ${SAME[$t]:-} == false ]] && printf 'WARNING: %s output is not byte-identical to %s output\n' "$t" "$REF_NAME"
done

# ---------------------------------------------------------------- JSON
jstr() { # JSON string (or null for empty)
    if [[ -z ${1-} ]]; then printf null; return; fi
    local s=${1//\\/\\\\}
    s=${s//\"/\\\"}
    s=${s//$'\t'/\\t}
    s=${s//$'\n'/\\n}
    printf '"%s"' "$s"
}
jnum() { if [[ -n ${1-} ]]; then printf '%s' "$1"; else printf null; fi; }
{
    printf '{\n  "schema": "romkit.bench/1",\n'
    printf '  "date": %s,\n' "$(jstr "$(date -u +%Y-%m-%dT%H:%M:%SZ)")"
    printf '  "host": {"cores": %s, "nproc": %s, "cpu": %s, "kernel": %s},\n' "$CORES" "$(nproc)" \
        "$(jstr "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)")" "$(jstr "$(uname -r)")"
    printf '  "input": {"path": %s, "bytes": %s, "payload": %s, "payload_bytes": %s, "bench_size": %s},\n' \
        "$(jstr "$MAIN_INPUT")" "$input_bytes" "$(jstr "$PAYLOAD")" "$payload_bytes" \
        "$(jstr "$([[ -z $BENCH_INPUT ]] && echo "$BENCH_SIZE")")"
    printf '  "runs": %s,\n' "$BENCH_RUNS"
    printf '  "peers": {"payload_dumper": %s, "otadump": %s},\n' "$(jstr "$PAYLOAD_DUMPER_VERSION")" "$(jstr "$OTADUMP_VERSION")"
    printf '  "limits": {"status": %s, "ops": %s, "bytes": %s, "decode_seconds": %s, "hash_seconds": %s, "decode_limit_seconds": %s, "verify_limit_seconds": %s},\n' \
        "$(jstr "$LIM_ST")" "$(jnum "$LIM_OPS")" "$(jnum "$LIM_BYTES")" "$(jnum "$LIM_X")" "$(jnum "$LIM_Y")" \
        "$(jnum "${MED[decode_limit]:-}")" "$(jnum "${MED[verify_limit]:-}")"
    printf '  "tools": {\n'
    sep=""
    for t in romkit_unpack romkit_verify payload_dumper otadump; do
        jwalls=""
        [[ -n ${WALLS[$t]:-} ]] && jwalls=$(tr ' ' ',' <<<"${WALLS[$t]}")
        jdiffs="[]"
        if [[ -n ${DIFFS[$t]:-} ]]; then
            jdiffs="["
            s2=""
            while IFS= read -r d; do jdiffs+="$s2$(jstr "$d")" s2=", "; done <<<"${DIFFS[$t]}"
            jdiffs+="]"
        fi
        rss_mib=""
        [[ -n ${RSS[$t]:-} ]] && rss_mib=$(mib "${RSS[$t]}")
        printf '%s    "%s": {"status": %s, "command": %s, "wall_seconds": [%s], "median_seconds": %s, "cpu_seconds": %s, "peak_rss_kib": %s, "peak_rss_mib": %s, "identical_to": %s, "identical": %s, "differences": %s}' \
            "$sep" "$t" "$(jstr "${ST[$t]:-skipped}")" "$(jstr "${CMD[$t]:-}")" "$jwalls" "$(jnum "${MED[$t]:-}")" \
            "$(jnum "${CPU[$t]:-}")" "$(jnum "${RSS[$t]:-}")" "$(jnum "$rss_mib")" \
            "$([[ -n ${SAME[$t]:-} ]] && jstr "$REF_NAME" || printf null)" "${SAME[$t]:-null}" "$jdiffs"
        sep=$',\n'
    done
    printf '\n  },\n  "checks": [\n'
    sep=""
    for c in "${CHECKS[@]}"; do
        IFS='|' read -r label value target result <<<"$c"
        printf '%s    {"name": %s, "value": %s, "target": %s, "result": %s}' "$sep" "$(jstr "$label")" \
            "$(jnum "$value")" "$target" "$(jstr "$result")"
        sep=$',\n'
    done
    printf '\n  ],\n  "passed": %s\n}\n' "$([[ $FAILED == 0 ]] && echo true || echo false)"
} >"$BENCH_DIR/results.json"
echo
echo "results: $BENCH_DIR/results.json"

if [[ $BENCH_STRICT == 1 && $FAILED == 1 ]]; then exit 1; fi
exit 0
