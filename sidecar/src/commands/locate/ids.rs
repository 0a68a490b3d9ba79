//! The two identifiers `procshot locate` is given, validated: a container ID as the pod
//! status shows it (`containerd://<64 hex digits>`) and a pod UID.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::IdError;

/// Length of a full container ID, in hex digits.
pub const CONTAINER_ID_LEN: usize = 64;

/// A container runtime whose cgroup naming procshot knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Runtime {
    /// containerd (with its CRI plugin).
    #[serde(rename = "containerd")]
    Containerd,
    /// CRI-O.
    #[serde(rename = "cri-o")]
    CriO,
    /// Docker (dockershim or cri-dockerd).
    #[serde(rename = "docker")]
    Docker,
}

impl Runtime {
    /// Every runtime, in the order they are tried and listed.
    pub const ALL: [Runtime; 3] = [Runtime::Containerd, Runtime::CriO, Runtime::Docker];

    /// The name used in container IDs (`cri-o://…`), in `target.json` and in `method`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Containerd => "containerd",
            Self::CriO => "cri-o",
            Self::Docker => "docker",
        }
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A full container ID with its runtime, e.g. `containerd://0123…` (64 hex digits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerId {
    runtime: Runtime,
    id: String,
}

impl ContainerId {
    /// The runtime named before `://`.
    pub fn runtime(&self) -> Runtime {
        self.runtime
    }

    /// The 64 hex digits after `://`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The first 12 digits, as `crictl ps` and `docker ps` show them (for messages only).
    pub fn short(&self) -> &str {
        &self.id[..12]
    }
}

impl fmt::Display for ContainerId {
    /// Formats as given: `RUNTIME://ID`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.runtime, self.id)
    }
}

impl FromStr for ContainerId {
    type Err = IdError;

    /// Parses `RUNTIME://ID`; the runtime must be containerd, cri-o or docker and the ID
    /// exactly 64 lowercase hex digits.
    fn from_str(given: &str) -> Result<Self, IdError> {
        let Some((runtime, id)) = given.split_once("://") else {
            return Err(IdError::MissingRuntime {
                given: given.to_string(),
            });
        };
        let runtime = Runtime::ALL
            .into_iter()
            .find(|r| r.name() == runtime)
            .ok_or_else(|| IdError::UnknownRuntime {
                given: given.to_string(),
                runtime: runtime.to_string(),
            })?;
        let bad = |detail: String| IdError::BadContainerId {
            given: given.to_string(),
            detail,
        };
        if let Some(c) = id.chars().find(|c| !is_lower_hex(*c)) {
            return Err(bad(format!("{c:?} is not a lowercase hex digit")));
        }
        if id.len() != CONTAINER_ID_LEN {
            return Err(bad(format!("it has {} hex digits", id.len())));
        }
        Ok(Self {
            runtime,
            id: id.to_string(),
        })
    }
}

/// A pod UID: a lowercase UUID (`metadata.uid`) or, for a static pod, the 32 hex digits
/// of its `kubernetes.io/config.hash` annotation (the kubelet names a static pod's cgroup
/// after that hash, not after the mirror pod's `metadata.uid`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodUid(String);

impl PodUid {
    /// The UID as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The pod's cgroup directory name with the cgroupfs driver: `pod<uid>`.
    pub fn cgroupfs_name(&self) -> String {
        format!("pod{}", self.0)
    }

    /// The pod's part of its slice name with the systemd driver: `pod<uid>` with the dashes
    /// turned into underscores (systemd reserves `-` for the slice hierarchy), as in
    /// `kubepods-burstable-pod8f6c2d4e_1b2a_4c3d_9e8f_0a1b2c3d4e5f.slice`.
    pub fn systemd_name(&self) -> String {
        format!("pod{}", self.0.replace('-', "_"))
    }
}

impl fmt::Display for PodUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for PodUid {
    type Err = IdError;

    /// Accepts `8-4-4-4-12` lowercase hex digits (a UUID) or 32 lowercase hex digits.
    fn from_str(given: &str) -> Result<Self, IdError> {
        let bad = |detail: String| IdError::BadPodUid {
            given: given.to_string(),
            detail,
        };
        if let Some(c) = given.chars().find(|c| !is_lower_hex(*c) && *c != '-') {
            return Err(bad(format!("{c:?} is not a lowercase hex digit or a dash")));
        }
        let groups: Vec<usize> = given.split('-').map(str::len).collect();
        if groups != [32] && groups != [8, 4, 4, 4, 12] {
            return Err(bad(format!(
                "its groups of hex digits are {} long, not 8-4-4-4-12",
                groups
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join("-")
            )));
        }
        Ok(Self(given.to_string()))
    }
}

fn is_lower_hex(c: char) -> bool {
    c.is_ascii_digit() || ('a'..='f').contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn container_ids_of_every_runtime_parse() {
        for (prefix, runtime) in [
            ("containerd", Runtime::Containerd),
            ("cri-o", Runtime::CriO),
            ("docker", Runtime::Docker),
        ] {
            let given = format!("{prefix}://{ID}");
            let parsed: ContainerId = given.parse().unwrap();
            assert_eq!(parsed.runtime(), runtime);
            assert_eq!(parsed.id(), ID);
            assert_eq!(parsed.short(), "0123456789ab");
            assert_eq!(parsed.to_string(), given);
        }
    }

    #[test]
    fn malformed_container_ids_are_refused_with_the_reason() {
        let err = |s: &str| s.parse::<ContainerId>().unwrap_err();
        assert!(matches!(err(ID), IdError::MissingRuntime { .. }));
        assert!(matches!(
            err(&format!("rkt://{ID}")),
            IdError::UnknownRuntime { runtime, .. } if runtime == "rkt"
        ));
        assert!(matches!(
            err(&format!("crio://{ID}")),
            IdError::UnknownRuntime { .. }
        ));
        let short = err("containerd://0123456789ab").to_string();
        assert!(short.contains("it has 12 hex digits"), "{short}");
        assert!(short.contains("64 lowercase hex"), "{short}");
        let long = err(&format!("containerd://{ID}0")).to_string();
        assert!(long.contains("it has 65 hex digits"), "{long}");
        let upper = err(&format!("containerd://{}", ID.to_uppercase())).to_string();
        assert!(
            upper.contains("'A' is not a lowercase hex digit"),
            "{upper}"
        );
        let empty = err("docker://").to_string();
        assert!(empty.contains("it has 0 hex digits"), "{empty}");
    }

    #[test]
    fn pod_uids_and_their_cgroup_names() {
        let uid: PodUid = "8f6c2d4e-1b2a-4c3d-9e8f-0a1b2c3d4e5f".parse().unwrap();
        assert_eq!(
            uid.cgroupfs_name(),
            "pod8f6c2d4e-1b2a-4c3d-9e8f-0a1b2c3d4e5f"
        );
        assert_eq!(
            uid.systemd_name(),
            "pod8f6c2d4e_1b2a_4c3d_9e8f_0a1b2c3d4e5f"
        );
        let hash: PodUid = "5a1ec4d7e2b64f2d9b3e1c0f8a7d6e5b".parse().unwrap();
        assert_eq!(hash.cgroupfs_name(), hash.systemd_name());
    }

    #[test]
    fn malformed_pod_uids_are_refused_with_the_reason() {
        let err = |s: &str| s.parse::<PodUid>().unwrap_err().to_string();
        assert!(err("8f6c2d4e-1b2a-4c3d-9e8f").contains("8-4-4-4"));
        assert!(err("8F6C2D4E-1B2A-4C3D-9E8F-0A1B2C3D4E5F").contains("'F'"));
        assert!(err("pod8f6c2d4e-1b2a-4c3d-9e8f-0a1b2c3d4e5f").contains("'p'"));
        assert!(err("8f6c2d4e_1b2a_4c3d_9e8f_0a1b2c3d4e5f").contains("'_'"));
        assert!(err("").contains("are 0 long"));
    }
}
