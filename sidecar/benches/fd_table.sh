#!/usr/bin/env bash
#
# fd_table.sh - benchmark: capture the fd table of a process with ~20,000 fds.
#
# Compares `procshot capture --capture fds` with lsof, `ls -l /proc/PID/fd`
# and fd_floor (the minimum work in C), and reports procshot's peak RSS.
#
# Targets: procshot >= 3x faster than `lsof -p PID`, <= 1.5x the C floor,
# peak RSS < 64 MiB. This is a report: missed targets are marked MISSED but
# the script still exits 0. It exits non-zero only if the benchmark itself
# cannot run (build failure, missing tools, procshot capture failing).
#
# Environment:
#   FD_TABLE_FDS    fds in the target process (default 19990; hard limit 20000)
#   FD_TABLE_RUNS   timed runs per tool (default 5, plus 1 warm-up)
#   PROCSHOT_BIN    use this procshot binary instead of building one
#   SKIP_PROCSHOT=1 skip building and timing procshot (for testing the rest)

set -euo pipefail
export LC_ALL=C             # EPOCHREALTIME and printf must use '.' decimals

FDS=${FD_TABLE_FDS:-19990}
RUNS=${FD_TABLE_RUNS:-5}
SKIP_PROCSHOT=${SKIP_PROCSHOT:-0}

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SIDECAR_DIR=$(cd "$SCRIPT_DIR/.." && pwd)
REPO_ROOT=$(cd "$SIDECAR_DIR/.." && pwd)
FIXTURE_SRC="$SIDECAR_DIR/tests/fixtures/fixture.c"
FLOOR_SRC="$SCRIPT_DIR/fd_floor.c"
CFLAGS=(-O2 -Wall -Wextra -Werror -pthread)

log() { printf '%s\n' "$*" >&2; }
fail() { log "fd_table: error: $*"; exit 1; }

# ---------------------------------------------------------------------------
# Temp space and cleanup
# ---------------------------------------------------------------------------

TMP=$(mktemp -d "${TMPDIR:-/tmp}/procshot-bench.XXXXXX")
FIXTURE_PID=""
STDIN_FD=""

cleanup() {
    # Closing our end of the fixture's stdin makes it exit by itself;
    # kill it as well in case it is stuck.
    if [[ -n "$STDIN_FD" ]]; then
        exec {STDIN_FD}>&- || true
    fi
    if [[ -n "$FIXTURE_PID" ]]; then
        kill "$FIXTURE_PID" 2>/dev/null || true
        wait "$FIXTURE_PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------

# Install a Debian package if we are root; otherwise explain and fail.
need_package() {
    local cmd=$1 pkg=$2
    if command -v "$cmd" >/dev/null 2>&1; then
        return 0
    fi
    if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        log "installing $pkg (needed for '$cmd') ..."
        if ! apt-get install -y "$pkg" >/dev/null 2>&1; then
            apt-get update >/dev/null 2>&1 || true
            apt-get install -y "$pkg" >/dev/null 2>&1 || true
        fi
    fi
    command -v "$cmd" >/dev/null 2>&1
}

need_package lsof lsof ||
    fail "lsof is not installed; install it (e.g. 'apt-get install lsof') or run as root"

TIME_BIN=""
if [[ -x /usr/bin/time ]] || need_package /usr/bin/time time; then
    TIME_BIN=/usr/bin/time
else
    log "warning: /usr/bin/time unavailable; procshot peak RSS will not be measured"
fi

command -v gcc >/dev/null 2>&1 || fail "gcc is required to build the fixture and the C floor"

log "compiling fixture and fd_floor ..."
gcc "${CFLAGS[@]}" "$FIXTURE_SRC" -o "$TMP/fixture"
gcc "${CFLAGS[@]}" "$FLOOR_SRC" -o "$TMP/fd_floor"

PROCSHOT=""
if [[ "$SKIP_PROCSHOT" != 1 && -n "${PROCSHOT_BIN:-}" ]]; then
    PROCSHOT=$PROCSHOT_BIN
    [[ -x "$PROCSHOT" ]] || fail "PROCSHOT_BIN=$PROCSHOT is not an executable"
elif [[ "$SKIP_PROCSHOT" != 1 ]]; then
    log "building procshot (cargo build --release -p procshot) ..."
    (cd "$REPO_ROOT" && cargo build --release -p procshot) >&2
    PROCSHOT="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/procshot"
    [[ -x "$PROCSHOT" ]] || fail "procshot binary not found at $PROCSHOT"
fi

# ---------------------------------------------------------------------------
# Target process: fixture many-fds
# ---------------------------------------------------------------------------

mkdir "$TMP/fixture-dir"
mkfifo "$TMP/stdin.fifo"
# Hold the fifo open read-write (does not block); the fixture exits on EOF
# when this descriptor goes away, i.e. whenever this script exits.
exec {STDIN_FD}<>"$TMP/stdin.fifo"

FIXTURE_DIR="$TMP/fixture-dir" "$TMP/fixture" many-fds "$FDS" \
    <"$TMP/stdin.fifo" >"$TMP/fixture.out" 2>"$TMP/fixture.err" {STDIN_FD}>&- &
FIXTURE_PID=$!

for ((i = 0; i < 600; i++)); do
    grep -q '^READY ' "$TMP/fixture.out" && break
    kill -0 "$FIXTURE_PID" 2>/dev/null ||
        fail "fixture exited before READY: $(cat "$TMP/fixture.err")"
    sleep 0.05
done
READY_LINE=$(grep '^READY ' "$TMP/fixture.out") || fail "fixture not READY after 30 s"
PID=$FIXTURE_PID
FIXTURE_FDS=$(sed -n 's/.*"fds":\([0-9]*\).*/\1/p' <<<"$READY_LINE")
log "fixture: pid $PID with $FIXTURE_FDS open fds (requested $FDS)"
printf 'target: pid %s, %s open fds\n' "$PID" "$FIXTURE_FDS"

# ---------------------------------------------------------------------------
# Timing helpers
# ---------------------------------------------------------------------------

# Microseconds from an EPOCHREALTIME-style "SECONDS.MICROS" value.
to_us() { echo $(( ${1%.*} * 1000000 + 10#${1#*.} )); }

# Time one run of "$@" in microseconds; stdout is discarded, stderr kept in
# $TMP/last.err. Sets LAST_US and LAST_RC. The clock is read without forking
# (EPOCHREALTIME, bash >= 5) so only the command itself is measured.
time_once() {
    local t0 t1
    if [[ -n "${EPOCHREALTIME:-}" ]]; then
        t0=$EPOCHREALTIME
        set +e
        "$@" >/dev/null 2>"$TMP/last.err"
        LAST_RC=$?
        set -e
        t1=$EPOCHREALTIME
        LAST_US=$(( $(to_us "$t1") - $(to_us "$t0") ))
    else
        t0=$(date +%s%N)
        set +e
        "$@" >/dev/null 2>"$TMP/last.err"
        LAST_RC=$?
        set -e
        t1=$(date +%s%N)
        LAST_US=$(( (t1 - t0) / 1000 ))
    fi
}

# Median of the arguments (integers).
median() {
    printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END {
        if (NR % 2) print v[(NR + 1) / 2]; else print int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}

declare -A MEDIAN_US=()
ROWS=()
RUN_SEQ=0

# bench NAME CMD... : 1 warm-up + $RUNS timed runs, record the median.
# In CMD, the word @OUT@ is replaced by a fresh output directory per run,
# which is removed after the run (outside the timed interval). A failing
# procshot run aborts the benchmark; other tools only get a warning.
bench() {
    local name=$1 samples=() k arg out args
    shift
    for ((k = 0; k <= RUNS; k++)); do
        out="$TMP/run-$RUN_SEQ"
        RUN_SEQ=$((RUN_SEQ + 1))
        args=()
        for arg in "$@"; do
            [[ "$arg" == "@OUT@" ]] && arg=$out
            args+=("$arg")
        done
        time_once "${args[@]}"
        rm -rf "$out"
        if [[ $LAST_RC -ne 0 ]]; then
            if [[ "$name" == procshot ]]; then
                cat "$TMP/last.err" >&2
                fail "procshot exited with status $LAST_RC: ${args[*]}"
            fi
            log "warning: '$name' exited with status $LAST_RC"
        fi
        ((k == 0)) || samples+=("$LAST_US")   # run 0 is the warm-up
    done
    MEDIAN_US[$name]=$(median "${samples[@]}")
    ROWS+=("$name")
    log "  $name: median $(awk -v u="${MEDIAN_US[$name]}" 'BEGIN { printf "%.1f", u / 1000 }') ms" \
        "(runs: $(printf '%s ' "${samples[@]}")us)"
}

# ---------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------

log "timing ($RUNS runs after 1 warm-up each) ..."

PEAK_KIB=""
if [[ -n "$PROCSHOT" ]]; then
    bench "procshot" "$PROCSHOT" capture --pid "$PID" --out @OUT@ --capture fds --samples 1
    if [[ -n "$TIME_BIN" ]]; then
        # A separate, untimed run for peak RSS (%M = max resident set, KiB).
        out="$TMP/run-rss"
        "$TIME_BIN" -f %M -o "$TMP/rss.txt" \
            "$PROCSHOT" capture --pid "$PID" --out "$out" --capture fds --samples 1 \
            >/dev/null 2>"$TMP/last.err" || {
            cat "$TMP/last.err" >&2
            fail "procshot capture failed under $TIME_BIN"
        }
        rm -rf "$out"
        PEAK_KIB=$(tail -n 1 "$TMP/rss.txt")
    fi
fi

bench "lsof -p" lsof -p "$PID"
bench "lsof -n -P -p" lsof -n -P -p "$PID"
bench "ls -l /proc/PID/fd" ls -l "/proc/$PID/fd"
bench "fd_floor (C)" "$TMP/fd_floor" "$PID"

# Sanity: the floor must see the whole table.
FLOOR_FDS=$("$TMP/fd_floor" "$PID" | sed -n 's/^fds=//p')
[[ "$FLOOR_FDS" == "$FIXTURE_FDS" ]] ||
    log "warning: fd_floor saw $FLOOR_FDS fds, fixture reported $FIXTURE_FDS"

# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------

ms() { awk -v u="$1" 'BEGIN { printf "%.1f", u / 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "n/a" }'; }

echo
printf '%-22s %12s %16s\n' "tool" "median ms" "vs procshot"
printf '%-22s %12s %16s\n' "----" "---------" "-----------"
for name in "${ROWS[@]}"; do
    if [[ -n "${MEDIAN_US[procshot]:-}" ]]; then
        r="$(ratio "${MEDIAN_US[$name]}" "${MEDIAN_US[procshot]}")x"
    else
        r="n/a"
    fi
    printf '%-22s %12s %16s\n' "$name" "$(ms "${MEDIAN_US[$name]}")" "$r"
done
echo

if [[ -n "${MEDIAN_US[procshot]:-}" ]]; then
    p=${MEDIAN_US[procshot]}

    vs_lsof=$(ratio "${MEDIAN_US[lsof -p]}" "$p")
    verdict=$(awk -v a="${MEDIAN_US[lsof -p]}" -v b="$p" 'BEGIN { print (a >= 3 * b) ? "" : "  MISSED" }')
    echo "procshot vs lsof: ${vs_lsof}x faster (target >= 3x)$verdict"
    echo "procshot vs lsof -n -P: $(ratio "${MEDIAN_US[lsof -n -P -p]}" "$p")x faster (informational)"

    vs_floor=$(ratio "$p" "${MEDIAN_US[fd_floor (C)]}")
    verdict=$(awk -v a="$p" -v b="${MEDIAN_US[fd_floor (C)]}" 'BEGIN { print (a <= 1.5 * b) ? "" : "  MISSED" }')
    echo "procshot vs C floor: ${vs_floor}x (target <= 1.5x)$verdict"

    if [[ -n "$PEAK_KIB" ]]; then
        mib=$(awk -v k="$PEAK_KIB" 'BEGIN { printf "%.1f", k / 1024 }')
        verdict=$(awk -v k="$PEAK_KIB" 'BEGIN { print (k < 64 * 1024) ? "" : "  MISSED" }')
        echo "procshot peak RSS: $mib MiB (target < 64 MiB)$verdict"
    else
        echo "procshot peak RSS: not measured (/usr/bin/time unavailable) (target < 64 MiB)"
    fi
else
    echo "procshot: skipped (SKIP_PROCSHOT=1); no targets evaluated"
fi
