#!/usr/bin/env bash
# `make demo`: starts the bundled fixture leaking sockets in CLOSE_WAIT (the classic
# unclosed HTTP response body), captures it with 3 samples 2 s apart, prints the findings
# and where the report is, and stops the fixture.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work="$root/target/demo"
mkdir -p "$work"
cc -O2 -pthread -o "$work/fixture" "$root/sidecar/tests/fixtures/fixture.c"

fixture_dir=$(mktemp -d)
fifo="$fixture_dir/stdin"
mkfifo "$fifo"
# The fixture exits when its stdin closes: hold the fifo open for as long as we run.
FIXTURE_DIR="$fixture_dir" "$work/fixture" leak socket-close-wait 25 <"$fifo" >"$fixture_dir/ready" &
fixture=$!
exec 3>"$fifo"
trap 'exec 3>&-; kill $fixture 2>/dev/null || true; wait $fixture 2>/dev/null || true; rm -rf "$fixture_dir"' EXIT
for _ in $(seq 100); do grep -q READY "$fixture_dir/ready" 2>/dev/null && break; sleep 0.05; done
grep -q READY "$fixture_dir/ready" || { echo "demo: the fixture did not start" >&2; exit 1; }

echo "demo: pid $fixture leaks a TCP socket in CLOSE_WAIT 25 times a second"
out="$work/capture-$(date +%Y%m%dT%H%M%S)"
status=0
"$root/target/release/procshot" capture --pid "$fixture" --out "$out" --samples 3 --interval 2s || status=$?
exit $status
