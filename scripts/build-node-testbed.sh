#!/usr/bin/env bash
# Builds what the node test bed's images hold and the capture pods are rendered with, and
# prints the variables its tests read (operator/node-testbed/tests/support):
#   PROCSHOT_NODE_AGENT    procshot as the Dockerfile's agent stage builds it: a static
#                          musl release binary (checked to have no ELF interpreter)
#   PROCSHOT_OPERATOR_BIN  procshot-operator, whose `render` makes the capture pods
# Usage: eval "$(scripts/build-node-testbed.sh)"   (progress goes to stderr)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

triple=x86_64-unknown-linux-musl
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
# ring's and aws-lc's C code is compiled with musl-gcc, as in the Dockerfile.
CC_x86_64_unknown_linux_musl=musl-gcc \
    cargo build --release --locked --target "$triple" -p procshot >&2
cargo build --locked -p procshot-operator >&2
agent="$target_dir/$triple/release/procshot"
if readelf --program-headers "$agent" | grep -q INTERP; then
    echo "build-node-testbed: $agent is dynamically linked; the agent image needs a static binary" >&2
    exit 1
fi
echo "export PROCSHOT_NODE_AGENT='$agent'"
echo "export PROCSHOT_OPERATOR_BIN='$target_dir/debug/procshot-operator'"
