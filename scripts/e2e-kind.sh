#!/usr/bin/env bash
# `make e2e`: the whole flow on a kind cluster. Builds the images (agent, operator, leaking
# fixture), loads them into a kind cluster, installs the CRD and the operator with the Helm
# chart (charts/procshot; helm from scripts/install-helm.sh), starts a pod leaking TCP sockets in CLOSE_WAIT
# (scripts/e2e/target.yaml), creates a DebugSession for it (scripts/e2e/session.yaml) and
# checks that the session ends Succeeded with a SOCKET_CLOSE_WAIT finding, then that
# deleting the session deletes its capture pods.
#
# Needs docker (with a running engine), kind, kubectl and make (helm is installed by the script).
#
# Environment:
#   KEEP_CLUSTER=1     keep the cluster at the end (to inspect it, or to rerun faster: an
#                      existing cluster of that name is reused and never deleted)
#   KIND_CLUSTER       cluster name (default procshot-e2e)
#   KIND_NODE_IMAGE    node image for `kind create cluster --image` (default: kind's)
#   SKIP_BUILD=1       use the images already built (`make image`) instead of building
#   IMAGE_REPO         image repository (default ghcr.io/procshot, as `make image`)
#   VERSION            image tag (default: the workspace version in Cargo.toml)
#   E2E_TIMEOUT        seconds to wait for the session to finish (default 180)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
manifests="$root/scripts/e2e"
cluster=${KIND_CLUSTER:-procshot-e2e}
context="kind-$cluster"
keep=${KEEP_CLUSTER:-0}
image_repo=${IMAGE_REPO:-ghcr.io/procshot}
version=${VERSION:-$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n 1)}
version=${version:-0.1.0}
agent_image="$image_repo/procshot:$version"
operator_image="$image_repo/procshot-operator:$version"
fixture_image="$image_repo/procshot-e2e-fixture:$version"
session_timeout=${E2E_TIMEOUT:-180}

operator_ns=procshot-system
target_ns=shop
session=api-fd-leak
capture_selector="app.kubernetes.io/component=capture,app.kubernetes.io/managed-by=procshot-operator"

created_cluster=0 # 1 once this run started creating the cluster (the trap deletes it)
cluster_up=0      # 1 once kubectl can reach the cluster (the trap dumps diagnostics)
passed=0

log() { printf 'e2e: %s\n' "$*"; }
fail() {
    printf 'e2e: FAIL: %s\n' "$*" >&2
    exit 1
}
# kubectl, always against the e2e cluster whatever the current context is.
k() { kubectl --context "$context" "$@"; }

section() { printf '\n===== %s =====\n' "$*"; }

dump_diagnostics() {
    section "DebugSessions"
    k get debugsessions --all-namespaces -o wide || true
    section "DebugSession $target_ns/$session"
    k -n "$target_ns" describe debugsession "$session" || true
    section "operator pods"
    k -n "$operator_ns" get pods -o wide || true
    k -n "$operator_ns" describe pods -l app.kubernetes.io/component=operator || true
    section "operator logs"
    k -n "$operator_ns" logs deployment/procshot-operator --all-containers --tail=-1 || true
    section "operator logs (previous container, if it restarted)"
    k -n "$operator_ns" logs deployment/procshot-operator --all-containers --tail=-1 --previous 2>/dev/null ||
        echo "(none)"
    local pods pod
    pods=$(k -n "$operator_ns" get pods -l "$capture_selector" -o name 2>/dev/null || true)
    if [[ -z $pods ]]; then
        section "capture pods"
        echo "(none in $operator_ns)"
    fi
    for pod in $pods; do
        section "capture $pod: describe"
        k -n "$operator_ns" describe "$pod" || true
        section "capture $pod: logs (locate, capture)"
        k -n "$operator_ns" logs "$pod" --all-containers --prefix --tail=-1 || true
    done
    section "target pod $target_ns/api"
    k -n "$target_ns" describe pod api || true
    k -n "$target_ns" logs api --tail=50 || true
    section "recent events"
    k get events --all-namespaces --sort-by=.metadata.creationTimestamp 2>/dev/null | tail -n 60 || true
}

on_exit() {
    local rc=$?
    set +e
    if ((rc != 0 && cluster_up)); then
        dump_diagnostics
    fi
    if ((created_cluster)) && [[ $keep != 1 ]]; then
        log "deleting kind cluster $cluster"
        kind delete cluster --name "$cluster"
    elif ((cluster_up)); then
        log "kept kind cluster $cluster: kubectl --context $context get debugsessions -A; delete it with: kind delete cluster --name $cluster"
    fi
    if ((passed)); then
        log "PASS"
    else
        log "FAIL (exit $rc)" >&2
    fi
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- prerequisites -----------------------------------------------------------------------
missing=()
for tool in docker kind kubectl make; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
    fail "missing on PATH: ${missing[*]} (the e2e needs docker with a running engine, kind, kubectl and make)"
fi
docker info >/dev/null 2>&1 || fail "docker is installed but cannot reach a Docker engine (is the daemon running, may this user use it?)"
if [[ $version == latest ]]; then
    # Capture pods take the operator's default pull policy, Always for :latest, and the
    # images exist only inside the kind node.
    fail "VERSION=latest would make the kubelet pull the images; use another tag"
fi

# --- images ------------------------------------------------------------------------------
if [[ ${SKIP_BUILD:-0} == 1 ]]; then
    log "SKIP_BUILD=1: using the images already built"
    for image in "$agent_image" "$operator_image" "$fixture_image"; do
        docker image inspect "$image" >/dev/null 2>&1 || fail "image $image not found: run make image (or unset SKIP_BUILD)"
    done
else
    log "building $agent_image, $operator_image, $fixture_image"
    export DOCKER_BUILDKIT=1 # the Dockerfile's cache mounts need BuildKit
    make -C "$root" image IMAGE_REPO="$image_repo" VERSION="$version"
fi

# --- cluster -----------------------------------------------------------------------------
clusters=$(kind get clusters 2>/dev/null || true)
if grep -qx -- "$cluster" <<<"$clusters"; then
    log "reusing kind cluster $cluster (it is not deleted at the end)"
    reused=1
else
    log "creating kind cluster $cluster"
    created_cluster=1
    kind_args=(create cluster --name "$cluster" --wait 120s)
    if [[ -n ${KIND_NODE_IMAGE:-} ]]; then
        kind_args+=(--image "$KIND_NODE_IMAGE")
    fi
    kind "${kind_args[@]}"
    reused=0
fi
cluster_up=1
if ! kubectl config get-contexts "$context" >/dev/null 2>&1; then
    kind export kubeconfig --name "$cluster"
fi
k cluster-info >/dev/null || fail "kubectl cannot reach the cluster through context $context"

log "loading the images into the cluster"
kind load docker-image --name "$cluster" "$agent_image" "$operator_image" "$fixture_image"

# --- CRD and operator (the Helm chart) -----------------------------------------------------
helm=$("$root/scripts/install-helm.sh" | tail -n 1)
log "installing the operator and the CRD with $helm"
# Capture pods use hostPID: their namespace (here the release namespace) must allow the
# privileged PodSecurity level. The chart cannot label the namespace it installs into.
k create namespace "$operator_ns" --dry-run=client -o yaml | k apply -f -
k label namespace "$operator_ns" pod-security.kubernetes.io/enforce=privileged --overwrite
"$helm" --kube-context "$context" upgrade --install procshot "$root/charts/procshot" \
    --namespace "$operator_ns" --wait --timeout 180s \
    --set images.operator.repository="${operator_image%:*}" --set images.operator.tag="$version" \
    --set images.agent.repository="${agent_image%:*}" --set images.agent.tag="$version"
k wait --for=condition=Established --timeout=60s crd/debugsessions.procshot.dev
if ((reused)); then
    # Same tag, new image: restart so the operator runs what was just loaded.
    k -n "$operator_ns" rollout restart deployment/procshot-operator
fi
k -n "$operator_ns" rollout status deployment/procshot-operator --timeout=180s

# --- target and session ------------------------------------------------------------------
if ((reused)); then
    # The session's spec is immutable and a pod's image too: start both afresh. The
    # session goes first, while the operator is there to remove its finalizer.
    k -n "$target_ns" delete debugsession "$session" --ignore-not-found --timeout=60s
    k -n "$target_ns" delete pod api --ignore-not-found --timeout=60s
fi

log "starting the leaking target $target_ns/api"
sed -e "s|IMAGE_FIXTURE|$fixture_image|g" "$manifests/target.yaml" | k apply -f -
k -n "$target_ns" wait --for=condition=Ready --timeout=120s pod/api

log "creating DebugSession $target_ns/$session"
k apply -f "$manifests/session.yaml"

log "waiting up to ${session_timeout}s for the session to finish"
deadline=$((SECONDS + session_timeout))
phase=""
last=""
while :; do
    phase=$(k -n "$target_ns" get debugsession "$session" -o jsonpath='{.status.phase}' 2>/dev/null || true)
    if [[ $phase != "$last" ]]; then
        log "phase: ${phase:-<none yet>}"
        last=$phase
    fi
    case $phase in
    Succeeded | Failed) break ;;
    *) ;;
    esac
    if ((SECONDS >= deadline)); then
        fail "session $target_ns/$session did not finish within ${session_timeout}s (phase: ${phase:-<none>})"
    fi
    sleep 3
done

section "kubectl get dbg -n $target_ns -o wide"
k -n "$target_ns" get dbg -o wide
section "status of $target_ns/$session"
k -n "$target_ns" get dbg "$session" -o yaml | sed -n '/^status:/,$p'
echo

[[ $phase == Succeeded ]] || fail "session $target_ns/$session ended $phase, expected Succeeded"
codes=$(k -n "$target_ns" get debugsession "$session" -o jsonpath='{.status.findings[*].code}')
log "finding codes: ${codes:-<none>}"
[[ " $codes " == *" SOCKET_CLOSE_WAIT "* ]] ||
    fail "no SOCKET_CLOSE_WAIT finding for a target leaking sockets in CLOSE_WAIT"

# --- cleanup through the finalizer -------------------------------------------------------
log "deleting the session: its capture pods must go with it"
k -n "$target_ns" delete debugsession "$session" --timeout=60s
session_selector="$capture_selector,procshot.dev/session-name=$session,procshot.dev/session-namespace=$target_ns"
deadline=$((SECONDS + 60))
while :; do
    left=$(k -n "$operator_ns" get pods -l "$session_selector" -o name)
    [[ -n $left ]] || break
    if ((SECONDS >= deadline)); then
        fail "capture pods of $target_ns/$session still exist 60s after the session was deleted: $left"
    fi
    sleep 2
done

passed=1
