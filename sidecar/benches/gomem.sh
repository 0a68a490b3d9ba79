#!/usr/bin/env bash
#
# gomem.sh - benchmark: goroutines read from a Go program's memory against its pprof dump.
#
# Starts the gomem Go fixture (tests/fixtures/go/gomem, built with -tags pprof) with
# GOMEM_GOROUTINES goroutines parked in main.leakTicker and net/http/pprof on 127.0.0.1,
# then times, in one run (median of GOMEM_RUNS, after one warm-up):
#   memory    procshot capture --capture goroutines --samples 1 (read from memory, no stop)
#   stopped   the same with --goroutines-max-stop 1s (every thread stopped for the read)
#   pprof     procshot capture --capture goroutines --go-pprof ADDR (goroutine?debug=2)
#   curl      curl of /debug/pprof/goroutine?debug=2 alone (the floor of the pprof path)
# and, for each, the longest gap the target's own 1 ms heartbeat goroutine saw during the
# runs: how long the target was kept from running. Then it reads a program whose goroutines
# churn (short-lived goroutines started all the time) and reports how many goroutines
# were retried and how many stayed inconsistent. A report: it exits non-zero only when the
# benchmark itself cannot run.
#
# Environment:
#   GOMEM_GOROUTINES  goroutines in the target (default 100000)
#   GOMEM_RUNS        timed runs per tool (default 5)
#   PROCSHOT_BIN      the procshot binary (default: cargo build --release)

set -euo pipefail
export LC_ALL=C

GOROUTINES=${GOMEM_GOROUTINES:-100000}
RUNS=${GOMEM_RUNS:-5}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SIDECAR_DIR=$(cd "$SCRIPT_DIR/.." && pwd)
REPO_ROOT=$(cd "$SIDECAR_DIR/.." && pwd)

log() { printf '%s\n' "$*" >&2; }
fail() { log "gomem: error: $*"; exit 1; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/procshot-bench-gomem.XXXXXX")
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
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
(cd "$SIDECAR_DIR/tests/fixtures/go/gomem" &&
    GOPROXY=off GOFLAGS=-mod=mod CGO_ENABLED=0 go build -tags pprof -buildvcs=false -o "$TMP/gomem" .)

# start NAME ARGS...: starts the fixture as a coprocess; sets PID, IN and OUT (its stdin
# and stdout fds) and ADDR (its pprof address).
start() {
    local name=$1; shift
    coproc "$name" { exec "$TMP/gomem" "$@"; }
    local -n fds=$name
    OUT=${fds[0]}; IN=${fds[1]}
    local -n pid_var="${name}_PID"
    PID=$pid_var
    PIDS+=("$PID")
    local line
    read -r -t 120 line <&"$OUT" || fail "the fixture did not get ready"
    [[ $line == READY* ]] || fail "the fixture said: $line"
    ADDR=$(sed -n 's/.*"pprof":"\([^"]*\)".*/\1/p' <<<"$line")
}
ask() { echo "$1" >&"$IN"; local answer; read -r -t 60 answer <&"$OUT"; echo "$answer"; }

to_us() { echo $(( ${1%.*} * 1000000 + 10#${1#*.} )); }
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# run_tool NAME: a warm-up and $RUNS timed runs; sets MEDIAN (us) and GAP (us, longest).
run_tool() {
    local name=$1 k t0 t1 samples=()
    GAP=0
    for ((k = 0; k <= RUNS; k++)); do
        rm -rf "$TMP/out"
        ask gap >/dev/null
        t0=$EPOCHREALTIME
        case $name in
        memory) "$PROCSHOT" capture --pid "$PID" --out "$TMP/out" --samples 1 --capture goroutines ;;
        stopped) "$PROCSHOT" capture --pid "$PID" --out "$TMP/out" --samples 1 --capture goroutines \
            --goroutines-max-stop 1s ;;
        pprof) "$PROCSHOT" capture --pid "$PID" --out "$TMP/out" --samples 1 --capture goroutines \
            --go-pprof "$ADDR" ;;
        curl) mkdir -p "$TMP/out"; curl -sf -o "$TMP/out/dump.txt" "http://$ADDR/debug/pprof/goroutine?debug=2" ;;
        esac >/dev/null 2>"$TMP/err" || { cat "$TMP/err" >&2; fail "$name failed"; }
        t1=$EPOCHREALTIME
        local gap
        gap=$(ask gap); gap=${gap#GAP }
        ((k == 0)) && continue
        samples+=($(( $(to_us "$t1") - $(to_us "$t0") )))
        ((gap > GAP)) && GAP=$gap
    done
    MEDIAN=$(median "${samples[@]}")
    log "  $name: runs ${samples[*]} us, longest heartbeat gap $GAP us"
}

ms() { awk -v u="$1" 'BEGIN { printf "%.1f", u / 1000 }'; }

log "starting a target with $GOROUTINES goroutines ..."
start target -pprof 127.0.0.1:0 -leaked "$GOROUTINES"
printf 'target: pid %s, %s parked goroutines, pprof on %s\n' "$PID" "$GOROUTINES" "$ADDR"
ask gap >/dev/null
sleep 1
CONTROL=$(ask gap); CONTROL=${CONTROL#GAP }
declare -A TIME GAPS
for tool in memory stopped pprof curl; do
    run_tool "$tool"
    TIME[$tool]=$MEDIAN; GAPS[$tool]=$GAP
done
rm -rf "$TMP/out"
"$PROCSHOT" capture --pid "$PID" --out "$TMP/out" --samples 1 --capture goroutines >/dev/null 2>&1
TOTAL=$(sed -n 's/^goroutines of pid [0-9]*: \([0-9,]*\) in.*/\1/p' "$TMP/out/goroutines.txt")
printf 'goroutines read from memory: %s\n' "$TOTAL"
printf '%-9s %10s %18s\n' tool "median ms" "heartbeat gap ms" "----" "---------" "----------------"
printf '%-9s %10s %18s\n' control "" "$(ms "$CONTROL")"
for tool in memory stopped pprof curl; do
    printf '%-9s %10s %18s\n' "$tool" "$(ms "${TIME[$tool]}")" "$(ms "${GAPS[$tool]}")"
done
printf 'pprof / memory: %sx faster from memory (curl alone / memory: %sx)\n' \
    "$(awk -v a="${TIME[pprof]}" -v b="${TIME[memory]}" 'BEGIN { printf "%.1f", a / b }')" \
    "$(awk -v a="${TIME[curl]}" -v b="${TIME[memory]}" 'BEGIN { printf "%.1f", a / b }')"

log "starting a target whose goroutines churn ..."
start churner -leaked "$GOROUTINES" -churn 2
RETRIED=0; INCONSISTENT=0
for ((k = 0; k < RUNS; k++)); do
    rm -rf "$TMP/out"
    "$PROCSHOT" capture --pid "$PID" --out "$TMP/out" --samples 1 --capture goroutines >/dev/null 2>&1 ||
        fail "the capture under churn failed"
    r=$(sed -n 's/.*"retried": *\([0-9]*\).*/\1/p' "$TMP/out/manifest.json" | head -n 1)
    i=$(sed -n 's/.*"inconsistent": *\([0-9]*\).*/\1/p' "$TMP/out/manifest.json" | head -n 1)
    log "  churn run $((k + 1)): retried $r, inconsistent $i"
    RETRIED=$((RETRIED + r)); INCONSISTENT=$((INCONSISTENT + i))
done
printf 'under churn, %s captures of %s+ goroutines: %s retried, %s inconsistent in all\n' \
    "$RUNS" "$GOROUTINES" "$RETRIED" "$INCONSISTENT"
exit 0
