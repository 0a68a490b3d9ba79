#!/usr/bin/env bash
# Installs the tools `make bench` compares procshot with: lsof, GNU time for peak RSS, Go
# and curl for the goroutines benchmark, gdb and eu-stack (elfutils) for the stacks
# benchmark, gdb's gcore for the core dump benchmark, and
# the AWS CLI (PyPI, pinned) for the upload benchmark. Garage, its S3 server, is installed
# by sidecar/benches/upload.sh through scripts/install-garage.sh.
set -euo pipefail

missing=()
command -v gdb >/dev/null || missing+=(gdb)
command -v eu-stack >/dev/null || missing+=(elfutils)
command -v lsof >/dev/null || missing+=(lsof)
[ -x /usr/bin/time ] || missing+=(time)
command -v cc >/dev/null || missing+=(gcc libc6-dev)
command -v go >/dev/null || missing+=(golang-go)
command -v curl >/dev/null || missing+=(curl)
command -v gcore >/dev/null || missing+=(gdb)
if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || { echo "install-bench-deps: need ${missing[*]}; run as root" >&2; exit 1; }
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
# The AWS CLI v1 from PyPI (v2 is not on PyPI), pinned.
awscli_version=1.45.11
if ! aws --version 2>/dev/null | grep -q "^aws-cli/$awscli_version "; then
    python3 -m pip install --quiet --disable-pip-version-check "awscli==$awscli_version"
fi
