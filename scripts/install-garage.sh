#!/usr/bin/env bash
# Installs Garage, the S3-compatible object store the upload tests (sidecar/tests/upload.rs)
# and the upload benchmark (sidecar/benches/upload.sh) run on loopback, and prints the
# binary's path on stdout (last line).
#
# Garage is built from crates.io with cargo (`cargo install --locked garage`), into
# ${PROCSHOT_GARAGE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/procshot/garage}/bin/garage. The
# build takes a long while (about 15 minutes on 2 cores), so an existing binary is never
# rebuilt: delete the directory to rebuild, for example after changing the version below.
set -euo pipefail

garage_version=2.5.0

dir=${PROCSHOT_GARAGE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/procshot/garage}
garage=$dir/bin/garage

log() { printf 'install-garage: %s\n' "$*" >&2; }

if [ -x "$garage" ]; then
    echo "$garage"
    exit 0
fi

command -v cargo >/dev/null || { log "error: cargo is missing (install Rust with rustup)"; exit 1; }
if ! command -v cc >/dev/null; then
    log "error: a C compiler is missing (apt-get install gcc libc6-dev)"
    exit 1
fi

log "building garage $garage_version with cargo install (slow: about 15 minutes; once per machine)"
cargo install --locked garage --version "$garage_version" --root "$dir" >&2
[ -x "$garage" ] || { log "error: cargo install finished but $garage is missing"; exit 1; }
log "installed $("$garage" --version 2>/dev/null || echo "garage $garage_version")"
echo "$garage"
