//! How the kubelet and the container runtimes name a container's cgroup, written as data
//! (one [`Naming`] per cgroup driver and runtime), and the pure matching of
//! `/proc/PID/cgroup` content against a pod UID and a container ID.
//!
//! A path matches when one of its components is the pod's cgroup and the next one is the
//! container's. Whatever comes before (a nested kubelet such as `/kubelet.slice/…`, or
//! `/../` when procshot runs in a cgroup namespace) and after (CRI-O's
//! `crio-<id>.scope/container`) is ignored. Both the pod and the full container ID must
//! be there: a container ID alone, or a prefix of it, never matches.

use super::ids::{ContainerId, PodUid, Runtime};

/// The cgroup driver of the kubelet and the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// systemd slices and scopes. The pod's cgroup is a slice named after its parent
    /// slices, `-pod`, and the UID with underscores for dashes:
    /// `kubepods-burstable-pod8f6c2d4e_1b2a_4c3d_9e8f_0a1b2c3d4e5f.slice`, or
    /// `kubepods-pod8f6c2d4e_1b2a_4c3d_9e8f_0a1b2c3d4e5f.slice` for a guaranteed pod (no
    /// QoS slice), or `kubelet-kubepods-besteffort-pod<uid_>.slice` under a nested
    /// kubelet.
    Systemd,
    /// Plain directories. The pod's cgroup is `pod` and the UID as is:
    /// `pod8f6c2d4e-1b2a-4c3d-9e8f-0a1b2c3d4e5f`.
    Cgroupfs,
}

impl Driver {
    /// The name used in `method`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Systemd => "systemd",
            Self::Cgroupfs => "cgroupfs",
        }
    }
}

/// How one runtime names a container's cgroup under one driver: the component right
/// under the pod's cgroup is `container_prefix`, the 64-hex-digit ID, `container_suffix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Naming {
    /// The cgroup driver (it also decides the pod's component, see [`Driver`]).
    pub driver: Driver,
    /// The runtime that creates the container's cgroup.
    pub runtime: Runtime,
    /// What comes before the container ID in its cgroup's name.
    pub container_prefix: &'static str,
    /// What comes after it.
    pub container_suffix: &'static str,
}

/// systemd driver, containerd:
/// `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod8f6c2d4e_1b2a_4c3d_9e8f_0a1b2c3d4e5f.slice/cri-containerd-<id>.scope`
pub const SYSTEMD_CONTAINERD: Naming = Naming {
    driver: Driver::Systemd,
    runtime: Runtime::Containerd,
    container_prefix: "cri-containerd-",
    container_suffix: ".scope",
};

/// systemd driver, CRI-O:
/// `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod8f6c2d4e_1b2a_4c3d_9e8f_0a1b2c3d4e5f.slice/crio-<id>.scope/container`
/// (the processes are in the `container` child; conmon lives in the sibling
/// `crio-conmon-<id>.scope`, which is not the container).
pub const SYSTEMD_CRIO: Naming = Naming {
    driver: Driver::Systemd,
    runtime: Runtime::CriO,
    container_prefix: "crio-",
    container_suffix: ".scope",
};

/// systemd driver, Docker (dockershim, cri-dockerd):
/// `/kubepods.slice/kubepods-pod8f6c2d4e_1b2a_4c3d_9e8f_0a1b2c3d4e5f.slice/docker-<id>.scope`
pub const SYSTEMD_DOCKER: Naming = Naming {
    driver: Driver::Systemd,
    runtime: Runtime::Docker,
    container_prefix: "docker-",
    container_suffix: ".scope",
};

/// cgroupfs driver, containerd:
/// `/kubepods/burstable/pod8f6c2d4e-1b2a-4c3d-9e8f-0a1b2c3d4e5f/<id>`
pub const CGROUPFS_CONTAINERD: Naming = Naming {
    driver: Driver::Cgroupfs,
    runtime: Runtime::Containerd,
    container_prefix: "",
    container_suffix: "",
};

/// cgroupfs driver, CRI-O:
/// `/kubepods/besteffort/pod8f6c2d4e-1b2a-4c3d-9e8f-0a1b2c3d4e5f/crio-<id>`
/// (conmon: the sibling `crio-conmon-<id>`).
pub const CGROUPFS_CRIO: Naming = Naming {
    driver: Driver::Cgroupfs,
    runtime: Runtime::CriO,
    container_prefix: "crio-",
    container_suffix: "",
};

/// cgroupfs driver, Docker, here a guaranteed pod (no QoS directory):
/// `/kubepods/pod8f6c2d4e-1b2a-4c3d-9e8f-0a1b2c3d4e5f/<id>`
pub const CGROUPFS_DOCKER: Naming = Naming {
    driver: Driver::Cgroupfs,
    runtime: Runtime::Docker,
    container_prefix: "",
    container_suffix: "",
};

/// Every naming procshot knows; a container is looked up with those of its runtime.
pub const NAMINGS: [&Naming; 6] = [
    &SYSTEMD_CONTAINERD,
    &SYSTEMD_CRIO,
    &SYSTEMD_DOCKER,
    &CGROUPFS_CONTAINERD,
    &CGROUPFS_CRIO,
    &CGROUPFS_DOCKER,
];

/// One line of `/proc/PID/cgroup`: `hierarchy:controllers:path`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CgroupLine<'a> {
    /// Hierarchy ID; 0 is the cgroup v2 (unified) hierarchy.
    pub hierarchy: u32,
    /// Comma-separated v1 controllers (`memory`, `cpu,cpuacct`, `name=systemd`); empty
    /// for v2.
    pub controllers: &'a str,
    /// The cgroup's path, relative to procshot's cgroup namespace.
    pub path: &'a str,
}

impl<'a> CgroupLine<'a> {
    /// Parses one line; `None` when it is not `N:controllers:/path`.
    pub fn parse(line: &'a str) -> Option<Self> {
        let mut fields = line.splitn(3, ':');
        let hierarchy = fields.next()?.parse().ok()?;
        let controllers = fields.next()?;
        let path = fields.next()?;
        path.starts_with('/').then_some(Self {
            hierarchy,
            controllers,
            path,
        })
    }

    /// 2 for the unified hierarchy, 1 for the others.
    pub fn version(&self) -> u8 {
        if self.hierarchy == 0 && self.controllers.is_empty() {
            2
        } else {
            1
        }
    }

    /// Which matching line to report, lowest first: the v1 `memory` hierarchy (where the
    /// kubelet sets limits on a v1 or hybrid host, and where `procshot capture` reads
    /// memory), v1 `pids`, v2, then any other v1 hierarchy.
    fn rank(&self) -> u8 {
        let has = |name: &str| self.controllers.split(',').any(|c| c == name);
        if self.version() == 2 {
            2
        } else if has("memory") {
            0
        } else if has("pids") {
            1
        } else {
            3
        }
    }
}

/// The line that put a process in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineMatch {
    /// 1 or 2.
    pub cgroup_version: u8,
    /// The line's cgroup path.
    pub path: String,
    /// The naming that matched.
    pub naming: &'static Naming,
}

impl LineMatch {
    /// How it matched, e.g. `cgroup-v2 systemd containerd`.
    pub fn method(&self) -> String {
        format!(
            "cgroup-v{} {} {}",
            self.cgroup_version,
            self.naming.driver.name(),
            self.naming.runtime
        )
    }
}

/// What one process's `/proc/PID/cgroup` says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Membership {
    /// The process is in the container; the preferred matching line.
    In(LineMatch),
    /// A cgroup named for the container ID, but not right under the pod's cgroup (another
    /// pod, or an unexpected layout); the path, for hints.
    ContainerOnly(String),
    /// In the pod's cgroup, but not in the container's (another container of the pod, or
    /// the pod sandbox); the path, for hints.
    PodOnly(String),
    /// Nothing to do with the pod or the container.
    Unrelated,
}

/// Matches cgroup paths against one pod UID and one container ID.
#[derive(Debug, Clone)]
pub struct Matcher {
    pod_cgroupfs: String,
    pod_systemd: String,
    container: ContainerId,
}

impl Matcher {
    /// A matcher for the container `container` of the pod `pod`.
    pub fn new(pod: &PodUid, container: &ContainerId) -> Self {
        Self {
            pod_cgroupfs: pod.cgroupfs_name(),
            pod_systemd: pod.systemd_name(),
            container: container.clone(),
        }
    }

    /// Classifies the content of a `/proc/PID/cgroup` file. Lines that do not parse are
    /// ignored.
    pub fn membership(&self, cgroup_file: &str) -> Membership {
        let mut best: Option<(u8, LineMatch)> = None;
        let mut container_only = None;
        let mut pod_only = None;
        for line in cgroup_file.lines().filter_map(CgroupLine::parse) {
            match self.match_path(line.path) {
                PathMatch::Container(naming) => {
                    let rank = line.rank();
                    if best.as_ref().is_none_or(|(r, _)| rank < *r) {
                        let found = LineMatch {
                            cgroup_version: line.version(),
                            path: line.path.to_string(),
                            naming,
                        };
                        best = Some((rank, found));
                    }
                }
                PathMatch::ContainerOnly => {
                    container_only.get_or_insert_with(|| line.path.to_string());
                }
                PathMatch::PodOnly => {
                    pod_only.get_or_insert_with(|| line.path.to_string());
                }
                PathMatch::Neither => {}
            }
        }
        match (best, container_only, pod_only) {
            (Some((_, found)), _, _) => Membership::In(found),
            (None, Some(path), _) => Membership::ContainerOnly(path),
            (None, None, Some(path)) => Membership::PodOnly(path),
            (None, None, None) => Membership::Unrelated,
        }
    }

    /// Matches one cgroup path.
    pub fn match_path(&self, path: &str) -> PathMatch {
        let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        let namings = || {
            NAMINGS
                .into_iter()
                .filter(|n| n.runtime == self.container.runtime())
        };
        for pair in components.windows(2) {
            if let Some(naming) =
                namings().find(|n| self.is_pod(n.driver, pair[0]) && self.is_container(n, pair[1]))
            {
                return PathMatch::Container(naming);
            }
        }
        if components
            .iter()
            .any(|c| namings().any(|n| self.is_container(n, c)))
        {
            PathMatch::ContainerOnly
        } else if components.iter().any(|c| {
            [Driver::Systemd, Driver::Cgroupfs]
                .into_iter()
                .any(|d| self.is_pod(d, c))
        }) {
            PathMatch::PodOnly
        } else {
            PathMatch::Neither
        }
    }

    /// Whether `component` is the pod's cgroup under `driver` (see [`Driver`]).
    fn is_pod(&self, driver: Driver, component: &str) -> bool {
        match driver {
            Driver::Cgroupfs => component == self.pod_cgroupfs,
            Driver::Systemd => component
                .strip_suffix(".slice")
                .and_then(|slice| slice.rsplit('-').next())
                .is_some_and(|last| last == self.pod_systemd),
        }
    }

    /// Whether `component` is exactly the container's cgroup under `naming`.
    fn is_container(&self, naming: &Naming, component: &str) -> bool {
        component
            .strip_prefix(naming.container_prefix)
            .and_then(|rest| rest.strip_suffix(naming.container_suffix))
            .is_some_and(|id| id == self.container.id())
    }
}

/// What one cgroup path says about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathMatch {
    /// The container's cgroup (or below it) right under the pod's cgroup.
    Container(&'static Naming),
    /// A component names the container, but not right under the pod.
    ContainerOnly,
    /// A component is the pod's cgroup, but the next is not the container.
    PodOnly,
    /// Neither.
    Neither,
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "8f6c2d4e-1b2a-4c3d-9e8f-0a1b2c3d4e5f";
    const UID_: &str = "8f6c2d4e_1b2a_4c3d_9e8f_0a1b2c3d4e5f";
    const OTHER_UID: &str = "8f6c2d4e-1b2a-4c3d-9e8f-0a1b2c3d4e50";
    const OTHER_UID_: &str = "8f6c2d4e_1b2a_4c3d_9e8f_0a1b2c3d4e50";
    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const OTHER_ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde0";

    fn matcher(runtime: &str) -> Matcher {
        Matcher::new(
            &UID.parse().unwrap(),
            &format!("{runtime}://{ID}").parse().unwrap(),
        )
    }

    /// The method of a v2 cgroup file holding `path`, or the membership when not `In`.
    fn v2(runtime: &str, path: &str) -> Result<String, Membership> {
        let file = format!("4:memory:/user.slice\n0::{path}\n");
        match matcher(runtime).membership(&file) {
            Membership::In(found) => {
                assert_eq!(found.path, path);
                Ok(found.method())
            }
            other => Err(other),
        }
    }

    fn ok(method: &str) -> Result<String, Membership> {
        Ok(method.to_string())
    }

    #[test]
    fn systemd_paths_of_every_runtime_and_qos_class() {
        for (runtime, container, method) in [
            (
                "containerd",
                format!("cri-containerd-{ID}.scope"),
                "cgroup-v2 systemd containerd",
            ),
            (
                "cri-o",
                format!("crio-{ID}.scope"),
                "cgroup-v2 systemd cri-o",
            ),
            (
                "docker",
                format!("docker-{ID}.scope"),
                "cgroup-v2 systemd docker",
            ),
        ] {
            for pod in [
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice"
                ),
                format!(
                    "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice"
                ),
                format!("/kubepods.slice/kubepods-pod{UID_}.slice"),
            ] {
                assert_eq!(v2(runtime, &format!("{pod}/{container}")), ok(method));
            }
        }
    }

    #[test]
    fn cgroupfs_paths_of_every_runtime_and_qos_class() {
        for (runtime, container, method) in [
            (
                "containerd",
                ID.to_string(),
                "cgroup-v2 cgroupfs containerd",
            ),
            ("cri-o", format!("crio-{ID}"), "cgroup-v2 cgroupfs cri-o"),
            ("docker", ID.to_string(), "cgroup-v2 cgroupfs docker"),
        ] {
            for pod in [
                format!("/kubepods/burstable/pod{UID}"),
                format!("/kubepods/besteffort/pod{UID}"),
                format!("/kubepods/pod{UID}"),
            ] {
                assert_eq!(v2(runtime, &format!("{pod}/{container}")), ok(method));
            }
        }
    }

    #[test]
    fn prefixes_and_suffixes_around_the_pod_and_container_are_ignored() {
        let systemd = ok("cgroup-v2 systemd containerd");
        for path in [
            // A nested kubelet (kind, k3s in a container).
            format!(
                "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/kubelet-kubepods-burstable-pod{UID_}.slice/cri-containerd-{ID}.scope"
            ),
            // procshot in a cgroup namespace of its own pod.
            format!("/../../kubepods-burstable-pod{UID_}.slice/cri-containerd-{ID}.scope"),
            // Something nested under the scope.
            format!(
                "/kubepods.slice/kubepods-pod{UID_}.slice/cri-containerd-{ID}.scope/init.scope"
            ),
        ] {
            assert_eq!(v2("containerd", &path), systemd, "{path}");
        }
        assert_eq!(
            v2(
                "cri-o",
                &format!(
                    "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/crio-{ID}.scope/container"
                )
            ),
            ok("cgroup-v2 systemd cri-o")
        );
        assert_eq!(
            v2("docker", &format!("/../docker/kubepods/pod{UID}/{ID}")),
            ok("cgroup-v2 cgroupfs docker")
        );
    }

    #[test]
    fn another_pod_with_the_same_container_id_is_not_the_container() {
        for (runtime, path) in [
            (
                "containerd",
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{OTHER_UID_}.slice/cri-containerd-{ID}.scope"
                ),
            ),
            ("docker", format!("/kubepods/pod{OTHER_UID}/{ID}")),
            (
                "cri-o",
                format!("/kubepods/besteffort/pod{OTHER_UID}/crio-{ID}"),
            ),
            // The container directly under the QoS class, with no pod.
            ("containerd", format!("/kubepods/burstable/{ID}")),
            // The pod's UID, but not as a pod cgroup name.
            ("containerd", format!("/kubepods/burstable/{UID}/{ID}")),
            (
                "containerd",
                format!(
                    "/kubepods.slice/kubepods-burstable-pod{UID}.slice/cri-containerd-{ID}.scope"
                ),
            ),
        ] {
            assert_eq!(
                v2(runtime, &path),
                Err(Membership::ContainerOnly(path.clone())),
                "{path}"
            );
        }
    }

    #[test]
    fn other_containers_and_wrong_shapes_of_the_id_are_not_the_container() {
        let pod =
            format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice");
        for (runtime, path) in [
            // Another container of the same pod.
            (
                "containerd",
                format!("{pod}/cri-containerd-{OTHER_ID}.scope"),
            ),
            // Truncated and extended IDs.
            (
                "containerd",
                format!("{pod}/cri-containerd-{}.scope", &ID[..12]),
            ),
            (
                "containerd",
                format!("{pod}/cri-containerd-{}.scope", &ID[..63]),
            ),
            ("containerd", format!("{pod}/cri-containerd-{ID}0.scope")),
            ("containerd", format!("{pod}/cri-containerd-{ID}")),
            // CRI-O's conmon next to the container.
            ("cri-o", format!("{pod}/crio-conmon-{ID}.scope")),
            // Another runtime's naming of the same ID.
            ("cri-o", format!("{pod}/cri-containerd-{ID}.scope")),
            ("docker", format!("{pod}/crio-{ID}.scope")),
            // The container not directly under the pod.
            (
                "containerd",
                format!("{pod}/extra/cri-containerd-{ID}.scope"),
            ),
            // cgroupfs near misses.
            (
                "cri-o",
                format!("/kubepods/besteffort/pod{UID}/crio-conmon-{ID}"),
            ),
            (
                "containerd",
                format!("/kubepods/burstable/pod{UID}/{}", &ID[..12]),
            ),
            ("containerd", format!("/kubepods/burstable/pod{UID}")),
        ] {
            let result = v2(runtime, &path);
            assert!(
                matches!(
                    result,
                    Err(Membership::PodOnly(_) | Membership::ContainerOnly(_))
                ),
                "{path}: {result:?}"
            );
        }
        assert_eq!(
            v2(
                "containerd",
                &format!("{pod}/cri-containerd-{OTHER_ID}.scope")
            ),
            Err(Membership::PodOnly(format!(
                "{pod}/cri-containerd-{OTHER_ID}.scope"
            )))
        );
        assert_eq!(
            v2("containerd", "/system.slice/containerd.service"),
            Err(Membership::Unrelated)
        );
    }

    #[test]
    fn v1_prefers_memory_then_pids_then_v2_then_any() {
        let m = matcher("containerd");
        let path = |qos: &str| format!("/kubepods/{qos}/pod{UID}/{ID}");
        let file = format!(
            "12:name=systemd:{}\n9:cpu,cpuacct:{}\n8:pids:{}\n4:memory:{}\n0::{}\n",
            path("a"),
            path("b"),
            path("c"),
            path("d"),
            path("e")
        );
        let found = |file: &str| match m.membership(file) {
            Membership::In(found) => (found.cgroup_version, found.path.clone(), found.method()),
            other => panic!("{file}: {other:?}"),
        };
        let v1 = "cgroup-v1 cgroupfs containerd".to_string();
        assert_eq!(found(&file), (1, path("d"), v1.clone()));
        let no_memory = file.replace(&path("d"), "/user.slice");
        assert_eq!(found(&no_memory), (1, path("c"), v1.clone()));
        let no_pids = no_memory.replace(&path("c"), "/user.slice");
        assert_eq!(
            found(&no_pids),
            (2, path("e"), "cgroup-v2 cgroupfs containerd".into())
        );
        let v1_only = no_pids.replace(&path("e"), "/");
        assert_eq!(found(&v1_only), (1, path("a"), v1));
    }

    #[test]
    fn a_hybrid_host_reports_the_v1_memory_line() {
        let path = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/cri-containerd-{ID}.scope"
        );
        let file = format!(
            "12:name=systemd:{path}\n11:pids:{path}\n5:memory:{path}\n1:cpu,cpuacct:{path}\n0::{path}\n"
        );
        match matcher("containerd").membership(&file) {
            Membership::In(found) => {
                assert_eq!(found.cgroup_version, 1);
                assert_eq!(found.method(), "cgroup-v1 systemd containerd");
                assert_eq!(found.path, path);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_process_outside_the_container_in_v2_but_inside_in_v1_is_in() {
        let file = format!("4:memory:/kubepods/besteffort/pod{UID}/crio-{ID}\n0::/\n");
        assert!(matches!(
            matcher("cri-o").membership(&file),
            Membership::In(LineMatch {
                cgroup_version: 1,
                ..
            })
        ));
    }

    #[test]
    fn malformed_lines_are_ignored() {
        let good = format!("0::/kubepods/pod{UID}/{ID}");
        let file = format!("garbage\n7:memory\nx:pids:/a\n3:cpu:relative\n\n{good}\n");
        assert!(matches!(
            matcher("docker").membership(&file),
            Membership::In(LineMatch {
                cgroup_version: 2,
                ..
            })
        ));
        assert_eq!(CgroupLine::parse("7:memory"), None);
        assert_eq!(
            CgroupLine::parse("0::/a:b"),
            Some(CgroupLine {
                hierarchy: 0,
                controllers: "",
                path: "/a:b"
            })
        );
    }

    #[test]
    fn a_static_pod_hash_matches_both_drivers() {
        let hash = "5a1ec4d7e2b64f2d9b3e1c0f8a7d6e5b";
        let m = Matcher::new(
            &hash.parse().unwrap(),
            &format!("containerd://{ID}").parse().unwrap(),
        );
        assert_eq!(
            m.match_path(&format!(
                "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{hash}.slice/cri-containerd-{ID}.scope"
            )),
            PathMatch::Container(&SYSTEMD_CONTAINERD)
        );
        assert_eq!(
            m.match_path(&format!("/kubepods/besteffort/pod{hash}/{ID}")),
            PathMatch::Container(&CGROUPFS_CONTAINERD)
        );
    }
}
