//! Which Pod fields the kubelet stand-in implements. A pod is checked against this list
//! before anything runs, and every field it sets that is not on it is named in the error,
//! so a field the operator starts to set (say `spec.containers[0].lifecycle`) fails the
//! node tests until the stand-in implements it, instead of being silently dropped.
//!
//! The check is on the pod as JSON (what the API server would store), by path; a `*`
//! stands for any array index, and a path ending in `.*` accepts every key below it
//! (labels, annotations). Values the stand-in does not implement for a field it knows
//! (a `Localhost` seccomp profile, an emptyDir in memory) are refused where the field is
//! read (`spec` module).

use serde_json::Value;

/// Fields of a container (`spec.containers[*]` and `spec.initContainers[*]`).
const CONTAINER: &[&str] = &[
    "name",
    "image",
    "imagePullPolicy",
    "command",
    "args",
    "workingDir",
    "env[*].name",
    "env[*].value",
    "envFrom[*].prefix",
    "envFrom[*].secretRef.name",
    "envFrom[*].secretRef.optional",
    "terminationMessagePath",
    "terminationMessagePolicy",
    "resources.requests.cpu",
    "resources.requests.memory",
    "resources.limits.cpu",
    "resources.limits.memory",
    "securityContext.runAsUser",
    "securityContext.runAsGroup",
    "securityContext.runAsNonRoot",
    "securityContext.readOnlyRootFilesystem",
    "securityContext.allowPrivilegeEscalation",
    "securityContext.privileged",
    "securityContext.capabilities.add",
    "securityContext.capabilities.drop",
    "securityContext.seccompProfile.type",
    "volumeMounts[*].name",
    "volumeMounts[*].mountPath",
    "volumeMounts[*].readOnly",
    "stdin",
    "stdinOnce",
    "tty",
];

/// Fields of the pod outside its containers.
const POD: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "metadata.labels.*",
    "metadata.annotations.*",
    "spec.nodeName",
    "spec.hostPID",
    "spec.hostNetwork",
    "spec.hostIPC",
    "spec.restartPolicy",
    "spec.activeDeadlineSeconds",
    "spec.automountServiceAccountToken",
    "spec.enableServiceLinks",
    "spec.terminationGracePeriodSeconds",
    // The kubelet only acts on NoExecute taints, and the test node has no taints.
    "spec.tolerations",
    "spec.securityContext.runAsUser",
    "spec.securityContext.runAsGroup",
    "spec.securityContext.runAsNonRoot",
    "spec.securityContext.seccompProfile.type",
    "spec.volumes[*].name",
    "spec.volumes[*].emptyDir.sizeLimit",
    "spec.volumes[*].hostPath.path",
    "spec.volumes[*].hostPath.type",
];

/// The paths of every field of `pod` (as JSON) the stand-in does not implement, with
/// array indices (`spec.containers[0].lifecycle`).
pub fn unsupported(pod: &Value) -> Vec<String> {
    let mut allowed: Vec<String> = POD.iter().map(|p| p.to_string()).collect();
    for list in ["spec.containers[*]", "spec.initContainers[*]"] {
        allowed.extend(CONTAINER.iter().map(|field| format!("{list}.{field}")));
    }
    let mut found = Vec::new();
    walk(pod, "", "", &allowed, &mut found);
    found
}

/// Walks `value` at `pattern` (indices as `*`) and `shown` (indices as numbers).
fn walk(value: &Value, pattern: &str, shown: &str, allowed: &[String], found: &mut Vec<String>) {
    if value.is_null() {
        return;
    }
    if !pattern.is_empty()
        && allowed
            .iter()
            .any(|a| a == pattern || *a == format!("{pattern}.*"))
    {
        return;
    }
    let prefix_of_allowed = |p: &str| allowed.iter().any(|a| a.starts_with(p));
    match value {
        // A field none of whose subfields is implemented is named as a whole.
        Value::Object(map) if !pattern.is_empty() && !prefix_of_allowed(&format!("{pattern}.")) => {
            if !map.is_empty() {
                found.push(shown.to_string());
            }
        }
        Value::Object(map) => {
            for (key, child) in map {
                let (child_pattern, child_shown) = if pattern.is_empty() {
                    (key.clone(), key.clone())
                } else {
                    (format!("{pattern}.{key}"), format!("{shown}.{key}"))
                };
                walk(child, &child_pattern, &child_shown, allowed, found);
            }
        }
        Value::Array(items) if prefix_of_allowed(&format!("{pattern}[*]")) => {
            for (i, item) in items.iter().enumerate() {
                walk(
                    item,
                    &format!("{pattern}[*]"),
                    &format!("{shown}[{i}]"),
                    allowed,
                    found,
                );
            }
        }
        // An empty object or list sets nothing.
        Value::Array(items) if items.is_empty() => {}
        _ => found.push(shown.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn implemented_fields_pass_and_others_are_named_with_their_index() {
        let pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "labels": {"a": "b"}, "ownerReferences": [{"name": "x"}]},
            "spec": {
                "hostPID": true,
                "tolerations": [{"operator": "Exists"}],
                "containers": [
                    {"name": "a", "args": ["x"], "securityContext": {"capabilities": {"add": ["SYS_PTRACE"]}}},
                    {"name": "b", "lifecycle": {"preStop": {"exec": {"command": ["x"]}}},
                     "resources": {"limits": {"memory": "1Gi", "ephemeral-storage": "1Gi"}}},
                ],
                "volumes": [{"name": "v", "emptyDir": {"medium": "Memory"}}],
            },
        });
        assert_eq!(
            unsupported(&pod),
            vec![
                "metadata.ownerReferences",
                "spec.containers[1].lifecycle",
                "spec.containers[1].resources.limits.ephemeral-storage",
                "spec.volumes[0].emptyDir.medium",
            ]
        );
    }

    #[test]
    fn empty_lists_and_nulls_set_nothing() {
        let pod = json!({"spec": {"ephemeralContainers": [], "overhead": null, "containers": []}});
        assert!(unsupported(&pod).is_empty());
    }
}
