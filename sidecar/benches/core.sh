#!/usr/bin/env bash
#
# core.sh - benchmark: core dumps of processes with 256 MiB and 1 GiB of touched heap,
# procshot (`capture --capture core`, zstd-compressed) against gdb's gcore (uncompressed),
# side by side in one run. The heap is filled twice over: with one byte repeated (memory
# touched by memset, easy to compress) and with 64-bit words counting up (every word
# differs: a harder case for zstd's fastest level).
#
# For each tool: wall time, the target's pause (measured inside the target by a heartbeat
# thread that wakes every 1 ms and records its longest gap between wake-ups) and the
# output's size. Targets: procshot's pause under a quarter of gcore's; procshot's
# compressed core ready in no more wall time than gcore's uncompressed one. This is a
# report: missed targets are marked MISSED, the script still exits 0. It exits non-zero
# only if the benchmark itself cannot run.
#
# Environment:
#   CORE_BENCH_SIZES  heap sizes in MiB (default "256 1024")
#   CORE_BENCH_FILLS  heap contents (default "constant counting")
#   CORE_BENCH_RUNS   runs per tool and size (default 2; the best of them is reported)
#   PROCSHOT_BIN      the procshot binary (default: target/release/procshot, built)
#   CORE_ZSTD_LEVEL   procshot's --core-zstd-level (default: procshot's default)

set -euo pipefail
export LC_ALL=C

SIZES=${CORE_BENCH_SIZES:-"256 1024"}
FILLS=${CORE_BENCH_FILLS:-"constant counting"}
RUNS=${CORE_BENCH_RUNS:-2}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
PROCSHOT=${PROCSHOT_BIN:-$REPO_ROOT/target/release/procshot}
[[ "$PROCSHOT" = /* ]] || PROCSHOT="$REPO_ROOT/$PROCSHOT"

log() { printf '%s\n' "$*" >&2; }
fail() { log "core bench: error: $*"; exit 1; }

[[ $EUID -eq 0 ]] || fail "run as root (procshot and gcore stop another process)"
command -v gcore >/dev/null || fail "gcore is missing: apt-get install gdb (scripts/install-bench-deps.sh)"
command -v cc >/dev/null || fail "a C compiler is needed for the fixture"
if [[ -z "${PROCSHOT_BIN:-}" ]]; then
    (cd "$REPO_ROOT" && cargo build --release --locked -q -p procshot) || fail "cargo build failed"
fi
[[ -x "$PROCSHOT" ]] || fail "no procshot binary at $PROCSHOT"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/procshot-core-bench.XXXXXX")
FX_PID=""
cleanup() {
    if [[ -n "$FX_PID" ]]; then kill "$FX_PID" 2>/dev/null || true; wait "$FX_PID" 2>/dev/null || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

FIXTURE="$TMP/fixture"
export FIXTURE_DIR="$TMP"
cc -O2 -g -Wall -Wextra -Werror -pthread -o "$FIXTURE" "$REPO_ROOT/sidecar/tests/fixtures/fixture.c" ||
    fail "building the fixture failed"

now() { printf '%s' "$EPOCHREALTIME"; }
# The fixture's longest heartbeat gap since the last request, in ms.
gap_ms() {
    local line
    printf 'gap\n' >&"${FX[1]}"
    IFS= read -r line <&"${FX[0]}" || fail "the fixture did not answer"
    awk -v us="${line#GAP }" 'BEGIN { printf "%.1f", us / 1000 }'
}
size_of() { stat -c %s "$1"; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b + 0 < a + 0) ? b : a }'; }

level_args=()
[[ -n "${CORE_ZSTD_LEVEL:-}" ]] && level_args=(--core-zstd-level "$CORE_ZSTD_LEVEL")

printf '\n%-19s %-9s %10s %12s %14s\n' "heap" "tool" "wall s" "pause ms" "output"
missed=0
for fill in $FILLS; do
for size in $SIZES; do
    coproc FX { exec "$FIXTURE" core "$size" "$fill"; }
    FX_PID=$FX_PID
    IFS= read -r ready <&"${FX[0]}" || fail "the fixture did not start"
    [[ "$ready" == READY* ]] || fail "fixture: $ready"
    pid=$(sed 's/.*"pid":\([0-9]*\).*/\1/' <<<"$ready")
    g_wall="" g_pause="" g_size="" p_wall="" p_pause="" p_size=""
    for run in $(seq "$RUNS"); do
        # gcore: uncompressed core.
        gap_ms >/dev/null
        rm -f "$TMP"/gcore.*
        start=$(now)
        gcore -o "$TMP/gcore" "$pid" >/dev/null 2>&1 || fail "gcore failed"
        end=$(now)
        g_wall=$(min "$g_wall" "$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')")
        g_pause=$(min "$g_pause" "$(gap_ms)")
        g_size=$(size_of "$TMP/gcore.$pid")
        rm -f "$TMP"/gcore.*
        # procshot: zstd-compressed core, complete and fsynced.
        gap_ms >/dev/null
        rm -rf "$TMP/procshot"
        start=$(now)
        "$PROCSHOT" capture --pid "$pid" --out "$TMP/procshot" --samples 1 --capture core \
            "${level_args[@]}" >/dev/null 2>"$TMP/procshot.log" ||
            fail "procshot failed: $(cat "$TMP/procshot.log")"
        end=$(now)
        p_wall=$(min "$p_wall" "$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')")
        p_pause=$(min "$p_pause" "$(gap_ms)")
        p_size=$(size_of "$TMP/procshot/core.zst")
    done
    heap="$size MiB $fill"
    printf '%-19s %-9s %10s %12s %14s\n' "$heap" gcore "$g_wall" "$g_pause" "$(mib "$g_size")"
    printf '%-19s %-9s %10s %12s %14s\n' "$heap" procshot "$p_wall" "$p_pause" "$(mib "$p_size")"
    pause_ratio=$(awk -v p="$p_pause" -v g="$g_pause" 'BEGIN { printf "%.2f", p / g }')
    wall_ratio=$(awk -v p="$p_wall" -v g="$g_wall" 'BEGIN { printf "%.2f", p / g }')
    size_ratio=$(awk -v p="$p_size" -v g="$g_size" 'BEGIN { printf "%.2f", p / g }')
    pause_ok=$(awk -v r="$pause_ratio" 'BEGIN { print (r < 0.25) ? "ok" : "MISSED" }')
    wall_ok=$(awk -v r="$wall_ratio" 'BEGIN { print (r <= 1.0) ? "ok" : "MISSED" }')
    [[ $pause_ok == ok && $wall_ok == ok ]] || missed=1
    printf '%-19s procshot/gcore: pause %sx (target < 0.25: %s), wall %sx (target <= 1: %s), size %sx\n' \
        "$heap" "$pause_ratio" "$pause_ok" "$wall_ratio" "$wall_ok" "$size_ratio"
    exec {FX[1]}>&-
    wait "$FX_PID" 2>/dev/null || true
    FX_PID=""
done
done
[[ $missed -eq 0 ]] || log "core bench: some targets were MISSED (see above)"
