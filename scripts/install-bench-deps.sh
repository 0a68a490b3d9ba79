#!/usr/bin/env bash
# Installs the tools `make bench` compares procshot with: lsof, and GNU time for peak RSS.
set -euo pipefail

missing=()
command -v lsof >/dev/null || missing+=(lsof)
[ -x /usr/bin/time ] || missing+=(time)
command -v cc >/dev/null || missing+=(gcc libc6-dev)
if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || { echo "install-bench-deps: need ${missing[*]}; run as root" >&2; exit 1; }
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
