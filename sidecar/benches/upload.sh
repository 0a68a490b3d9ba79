#!/usr/bin/env bash
#
# upload.sh - benchmark: upload a 1 GiB capture file to a real S3 server.
#
# Starts Garage on loopback (single node, as sidecar/tests/upload.rs does), writes a
# capture-like directory holding one file of random bytes and a manifest listing it, and
# times `procshot upload` against `aws s3 cp` of the same file to the same server.
#
# Target: procshot at least as fast as the AWS CLI. This is a report: a missed target is
# marked MISSED but the script still exits 0. It exits non-zero only if the benchmark
# itself cannot run (garage or aws missing, an upload failing).
#
# Environment:
#   UPLOAD_MIB       size of the file in MiB (default 1024)
#   UPLOAD_RUNS      timed runs per tool (default 3)
#   PROCSHOT_BIN     use this procshot binary instead of building one
#   GARAGE           use this garage binary (default: scripts/install-garage.sh's)

set -euo pipefail
export LC_ALL=C             # EPOCHREALTIME and printf must use '.' decimals

MIB=${UPLOAD_MIB:-1024}
RUNS=${UPLOAD_RUNS:-3}

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)

log() { printf '%s\n' "$*" >&2; }
fail() { log "upload bench: error: $*"; exit 1; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/procshot-upload-bench.XXXXXX")
GARAGE_PID=""

cleanup() {
    if [[ -n "$GARAGE_PID" ]]; then
        kill "$GARAGE_PID" 2>/dev/null || true
        wait "$GARAGE_PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------

GARAGE=${GARAGE:-$("$REPO_ROOT/scripts/install-garage.sh" | tail -n 1)}
[[ -x "$GARAGE" ]] || fail "garage is not installed: run scripts/install-garage.sh"
command -v aws >/dev/null || fail "the AWS CLI is missing: run scripts/install-bench-deps.sh"

if [[ -n "${PROCSHOT_BIN:-}" ]]; then
    PROCSHOT=$PROCSHOT_BIN
else
    log "building procshot (cargo build --release -p procshot) ..."
    (cd "$REPO_ROOT" && cargo build --release -p procshot) >&2
    PROCSHOT="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/procshot"
fi
[[ -x "$PROCSHOT" ]] || fail "procshot binary not found at $PROCSHOT"

# ---------------------------------------------------------------------------
# Garage: one node on loopback, a key and a bucket
# ---------------------------------------------------------------------------

# Three loopback ports that are free now (S3 API, RPC, admin API).
read -r S3_PORT RPC_PORT ADMIN_PORT < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')

BUCKET=procshot-bench
KEY_ID=GK0123456789abcdef01234567
SECRET=5ec2e7000000000000000000000000000000000000000000000000000000beef
ENDPOINT=http://127.0.0.1:$S3_PORT

cat >"$TMP/garage.toml" <<EOF
metadata_dir = "$TMP/meta"
data_dir = "$TMP/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$RPC_PORT"
rpc_public_addr = "127.0.0.1:$RPC_PORT"
rpc_secret = "$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$S3_PORT"

[admin]
api_bind_addr = "127.0.0.1:$ADMIN_PORT"
EOF

garage() { "$GARAGE" -c "$TMP/garage.toml" "$@"; }

RUST_LOG=garage=warn "$GARAGE" -c "$TMP/garage.toml" server >"$TMP/garage.log" 2>&1 &
GARAGE_PID=$!
for ((i = 0; i < 300; i++)); do
    garage status >/dev/null 2>&1 && break
    kill -0 "$GARAGE_PID" 2>/dev/null || fail "garage exited: $(cat "$TMP/garage.log")"
    sleep 0.1
done
garage status >/dev/null 2>&1 || fail "garage did not answer in 30 s: $(cat "$TMP/garage.log")"
NODE=$(garage node id -q 2>/dev/null | cut -d @ -f 1)
garage layout assign -z dc1 -c 1TB "$NODE" >/dev/null
garage layout apply --version 1 >/dev/null
garage key import --yes -n bench "$KEY_ID" "$SECRET" >/dev/null
garage bucket create "$BUCKET" >/dev/null
garage bucket allow --read --write --owner "$BUCKET" --key "$KEY_ID" >/dev/null

# Both clients get the same credentials and endpoint, from the environment only.
export AWS_ACCESS_KEY_ID=$KEY_ID AWS_SECRET_ACCESS_KEY=$SECRET AWS_REGION=garage
export AWS_DEFAULT_REGION=garage AWS_ENDPOINT_URL=$ENDPOINT AWS_ALLOW_HTTP=true
unset AWS_SESSION_TOKEN AWS_PROFILE

for ((i = 0; i < 300; i++)); do
    aws s3 ls "s3://$BUCKET" --endpoint-url "$ENDPOINT" >/dev/null 2>&1 && break
    sleep 0.1
done
aws s3 ls "s3://$BUCKET" --endpoint-url "$ENDPOINT" >/dev/null ||
    fail "garage's S3 API does not answer: $(cat "$TMP/garage.log")"
log "garage $("$GARAGE" --version | cut -d ' ' -f 2) on $ENDPOINT"

# ---------------------------------------------------------------------------
# A capture-like directory: one file of random bytes, listed in the manifest of a real
# (small) capture of this shell
# ---------------------------------------------------------------------------

"$PROCSHOT" capture --pid $$ --out "$TMP/real" --samples 1 --capture memory >/dev/null 2>&1 ||
    fail "procshot capture of this shell failed"
DIR="$TMP/capture"
mkdir "$DIR"
log "writing $MIB MiB of random bytes ..."
head -c "$((MIB << 20))" /dev/urandom >"$DIR/big.bin"
sync "$DIR/big.bin"          # no write-back of this file during the timed runs
STAMP=$(python3 - "$TMP/real/manifest.json" "$DIR" "$(sha256sum "$DIR/big.bin" | cut -d ' ' -f 1)" <<'PY'
import datetime, json, os, sys
source, directory, sha256 = sys.argv[1:]
manifest = json.load(open(source))
path = os.path.join(directory, "big.bin")
manifest["files"] = [{"name": "big.bin", "bytes": os.path.getsize(path), "sha256": sha256}]
json.dump(manifest, open(os.path.join(directory, "manifest.json"), "w"), indent=2)
started = datetime.datetime.fromisoformat(manifest["startedAt"][:19])
print(started.strftime("%Y%m%dT%H%M%SZ"))
PY
)

# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------

to_us() { echo $(( ${1%.*} * 1000000 + 10#${1#*.} )); }

# Time one run of "$@" in microseconds into LAST_US; a failing run aborts the benchmark.
time_once() {
    local t0 t1
    t0=$EPOCHREALTIME
    "$@" >/dev/null 2>"$TMP/last.err" || { cat "$TMP/last.err" >&2; fail "failed: $*"; }
    t1=$EPOCHREALTIME
    LAST_US=$(( $(to_us "$t1") - $(to_us "$t0") ))
}

median() {
    printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END {
        if (NR % 2) print v[(NR + 1) / 2]; else print int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}

declare -A MEDIAN_US=()
bench() {
    local name=$1 samples=() k
    shift
    for ((k = 1; k <= RUNS; k++)); do
        time_once "$@"
        samples+=("$LAST_US")
    done
    MEDIAN_US[$name]=$(median "${samples[@]}")
    log "  $name: median $(awk -v u="${MEDIAN_US[$name]}" 'BEGIN { printf "%.2f", u / 1e6 }') s" \
        "(runs: $(printf '%s ' "${samples[@]}")us)"
}

log "timing $RUNS runs each ..."
# procshot checks the file against the manifest (sha256) before it uploads: that is timed.
bench procshot "$PROCSHOT" upload --from "$DIR" --to "s3://$BUCKET/procshot" --session bench/run
bench "aws s3 cp" aws s3 cp "$DIR/big.bin" "s3://$BUCKET/aws/big.bin" --endpoint-url "$ENDPOINT" --only-show-errors

# The uploaded objects have every byte.
SIZE=$((MIB << 20))
for key in "procshot/bench/run/$STAMP/big.bin" aws/big.bin; do
    got=$(aws s3api head-object --bucket "$BUCKET" --key "$key" --endpoint-url "$ENDPOINT" \
        --query ContentLength --output text)
    [[ "$got" == "$SIZE" ]] || fail "s3://$BUCKET/$key has $got bytes, expected $SIZE"
done

# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------

secs() { awk -v u="$1" 'BEGIN { printf "%.2f", u / 1e6 }'; }
p=${MEDIAN_US[procshot]}
a=${MEDIAN_US[aws s3 cp]}
echo
printf '%-12s %10s %12s\n' "tool" "median s" "MiB/s"
printf '%-12s %10s %12s\n' "----" "--------" "-----"
for name in procshot "aws s3 cp"; do
    printf '%-12s %10s %12s\n' "$name" "$(secs "${MEDIAN_US[$name]}")" \
        "$(awk -v m="$MIB" -v u="${MEDIAN_US[$name]}" 'BEGIN { printf "%.0f", m / (u / 1e6) }')"
done
echo
ratio=$(awk -v a="$a" -v p="$p" 'BEGIN { printf "%.2f", a / p }')
verdict=$(awk -v a="$a" -v p="$p" 'BEGIN { print (p <= a) ? "" : "  MISSED" }')
echo "upload of $MIB MiB to Garage on loopback: procshot vs aws cli: ${ratio}x (target: at least as fast)$verdict"
