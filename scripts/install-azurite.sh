#!/usr/bin/env bash
# Installs Azurite, Microsoft's Azure Storage emulator, which the Azure upload tests
# (sidecar/tests/upload_azure.rs) run on loopback, and prints the path of its `azurite-blob`
# command on stdout (last line).
#
# Azurite comes from the npm registry with `npm ci`, from the lock file beside this script
# (scripts/azurite/package-lock.json: every package pinned with its integrity hash), into
# ${PROCSHOT_AZURITE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/procshot/azurite}. An existing
# install of the same lock file is kept (about 360 MB and 1-2 minutes to install).
#
# To bump: change the version in scripts/azurite/package.json, run
# `npm install --package-lock-only` in scripts/azurite, and commit both files.
#
# Azurite 3.37 declares Node.js >= 22 but runs on Debian's Node.js 20, which is what the
# tests are run with here.
set -euo pipefail

lock_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/azurite" && pwd)
dir=${PROCSHOT_AZURITE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/procshot/azurite}
blob=$dir/node_modules/.bin/azurite-blob

log() { printf 'install-azurite: %s\n' "$*" >&2; }
fail() {
    log "error: $*"
    exit 1
}

# Already installed from this very lock file.
if [ -x "$blob" ] && cmp -s "$lock_dir/package-lock.json" "$dir/package-lock.json"; then
    echo "$blob"
    exit 0
fi

command -v npm >/dev/null || fail "npm is missing (install Node.js and npm, for example: apt-get install npm)"
command -v node >/dev/null || fail "node is missing (install Node.js, for example: apt-get install nodejs)"

version=$(sed -n 's/.*"azurite": "\(.*\)".*/\1/p' "$lock_dir/package.json")
log "installing azurite $version with npm ci (about 360 MB; once per machine)"
# Install beside the final directory, then swap: a concurrent run never sees half a tree.
tmp="$dir.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
cp "$lock_dir/package.json" "$lock_dir/package-lock.json" "$tmp/"
(cd "$tmp" && npm ci --silent --no-audit --no-fund --omit=dev >&2) || fail "npm ci of azurite $version failed"
[ -x "$tmp/node_modules/.bin/azurite-blob" ] || fail "npm ci finished but node_modules/.bin/azurite-blob is missing"
installed=$("$tmp/node_modules/.bin/azurite-blob" --version) || fail "azurite-blob does not run"
[ "$installed" = "$version" ] || fail "azurite-blob is $installed, expected $version"
rm -rf "$dir.old.$$"
[ ! -e "$dir" ] || mv "$dir" "$dir.old.$$"
mv "$tmp" "$dir"
rm -rf "$dir.old.$$"
log "installed azurite $installed"
echo "$blob"
