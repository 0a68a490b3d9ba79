#!/usr/bin/env bash
#
# goroutines.sh - benchmark: the goroutines capture of a Go program with many goroutines.
#
# Starts the leaky Go fixture (tests/fixtures/go/leaky) with GOROUTINES_LEAKED goroutines
# parked in main.leakTicker, then times, in one run and against the same endpoint:
#   procshot   procshot capture --capture goroutines --samples 1 (dump fetched from the
#              target's network namespace, parsed, grouped, goroutines.json/.txt written,
#              plus the heap profile and the build info)
#   curl       curl of /debug/pprof/goroutine?debug=2 and /debug/pprof/heap to files (the
#              floor: the same two requests, no parsing)
# and reports the ratio and procshot's peak RSS. A report: it exits non-zero only when the
# benchmark itself cannot run.
#
# Environment:
#   GOROUTINES_LEAKED  goroutines in the target (default 100000)
#   GOROUTINES_RUNS    timed runs per tool (default 5, plus 1 warm-up)
#   PROCSHOT_BIN       the procshot binary (default: cargo build --release)

set -euo pipefail
export LC_ALL=C

LEAKED=${GOROUTINES_LEAKED:-100000}
RUNS=${GOROUTINES_RUNS:-5}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SIDECAR_DIR=$(cd "$SCRIPT_DIR/.." && pwd)
REPO_ROOT=$(cd "$SIDECAR_DIR/.." && pwd)

log() { printf '%s\n' "$*" >&2; }
fail() { log "goroutines: error: $*"; exit 1; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/procshot-bench-go.XXXXXX")
PID=""
STDIN_FD=""
cleanup() {
    [[ -n "$STDIN_FD" ]] && { exec {STDIN_FD}>&- || true; }
    [[ -n "$PID" ]] && { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

command -v go >/dev/null || fail "go is needed to build the fixture (apt-get install golang-go)"
command -v curl >/dev/null || fail "curl is needed (apt-get install curl)"

PROCSHOT=${PROCSHOT_BIN:-}
if [[ -z "$PROCSHOT" ]]; then
    (cd "$REPO_ROOT" && cargo build --release -p procshot) >&2
    PROCSHOT="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/procshot"
fi
[[ -x "$PROCSHOT" ]] || fail "procshot binary not found at $PROCSHOT"

log "building the Go fixture ..."
(cd "$SIDECAR_DIR/tests/fixtures/go/leaky" &&
    GOPROXY=off GOFLAGS=-mod=mod go build -buildvcs=false -o "$TMP/leaky" .)

mkfifo "$TMP/stdin.fifo"
exec {STDIN_FD}<>"$TMP/stdin.fifo"
"$TMP/leaky" -addr 127.0.0.1:0 -leak-per-second 0 -leaked "$LEAKED" \
    <"$TMP/stdin.fifo" >"$TMP/leaky.out" {STDIN_FD}>&- &
PID=$!
for ((i = 0; i < 600; i++)); do
    grep -q '^READY ' "$TMP/leaky.out" && break
    kill -0 "$PID" 2>/dev/null || fail "the fixture exited before READY"
    sleep 0.05
done
ADDR=$(sed -n 's/^READY .*"addr":"\([^"]*\)".*/\1/p' "$TMP/leaky.out")
[[ -n "$ADDR" ]] || fail "the fixture did not print READY"
printf 'target: pid %s, %s leaked goroutines, pprof on %s\n' "$PID" "$LEAKED" "$ADDR"

to_us() { echo $(( ${1%.*} * 1000000 + 10#${1#*.} )); }
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# run_tool NAME: 1 warm-up + $RUNS timed runs of tool NAME; sets MEDIAN.
run_tool() {
    local name=$1 k t0 t1 samples=()
    for ((k = 0; k <= RUNS; k++)); do
        rm -rf "$TMP/out"
        t0=$EPOCHREALTIME
        case $name in
        procshot)
            "$PROCSHOT" capture --pid "$PID" --out "$TMP/out" --samples 1 \
                --capture goroutines --go-pprof "$ADDR" >/dev/null 2>"$TMP/err" ||
                { cat "$TMP/err" >&2; fail "procshot failed"; } ;;
        curl)
            mkdir "$TMP/out"
            curl -sf -o "$TMP/out/goroutines.txt" "http://$ADDR/debug/pprof/goroutine?debug=2"
            curl -sf -o "$TMP/out/heap.pb.gz" "http://$ADDR/debug/pprof/heap" ;;
        esac
        t1=$EPOCHREALTIME
        ((k == 0)) || samples+=($(( $(to_us "$t1") - $(to_us "$t0") )))
    done
    MEDIAN=$(median "${samples[@]}")
    log "  $name: runs ${samples[*]} us"
}

run_tool procshot
PROCSHOT_US=$MEDIAN
DUMP_BYTES=$(wc -c <"$TMP/out/goroutines.txt" 2>/dev/null || echo 0)
run_tool curl
CURL_US=$MEDIAN
DUMP_BYTES=$(wc -c <"$TMP/out/goroutines.txt")

PEAK=""
if [[ -x /usr/bin/time ]]; then
    rm -rf "$TMP/out"
    /usr/bin/time -f '%M' -o "$TMP/rss" "$PROCSHOT" capture --pid "$PID" --out "$TMP/out" \
        --samples 1 --capture goroutines --go-pprof "$ADDR" >/dev/null 2>&1
    PEAK=$(awk '{ printf "%.0f", $1 / 1024 }' "$TMP/rss")
fi

ms() { awk -v u="$1" 'BEGIN { printf "%.0f", u / 1000 }'; }
printf 'goroutine dump: %s bytes\n' "$DUMP_BYTES"
printf '%-10s %10s\n' tool "median ms" "----" "---------"
printf '%-10s %10s\n' procshot "$(ms "$PROCSHOT_US")" curl "$(ms "$CURL_US")"
printf 'procshot / curl: %sx (procshot also parses, groups and writes the dump)\n' \
    "$(awk -v a="$PROCSHOT_US" -v b="$CURL_US" 'BEGIN { printf "%.2f", a / b }')"
[[ -n "$PEAK" ]] && printf 'procshot peak RSS: %s MiB\n' "$PEAK"
exit 0
