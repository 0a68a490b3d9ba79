#!/usr/bin/env bash
# Runs every test of the workspace and ends with one line that totals them all
# ("tests: N passed, N failed"), since cargo prints a result line per test binary.
set -uo pipefail

log=$(mktemp)
trap 'rm -f "$log"' EXIT
# The node test bed's agent image and capture pods (operator/node-testbed).
node_testbed=$("$(dirname "${BASH_SOURCE[0]}")/build-node-testbed.sh") || exit 1
eval "$node_testbed"
cargo test --locked --workspace --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "tests: %d passed, %d failed\n", passed, failed }' "$log"
exit "$status"
