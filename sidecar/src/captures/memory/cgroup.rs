//! The memory files of the target's cgroup, for cgroup v1 (`memory` controller hierarchy)
//! and v2 (unified hierarchy): usage, limit (own and effective, i.e. the lowest of its
//! ancestors), working set, peak, `memory.stat` and OOM kill counts.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::process::Target;

/// v1 reports "no limit" as a huge page-aligned number; anything from here up is unlimited.
const V1_UNLIMITED: u64 = 1 << 62;

/// The memory state of one cgroup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CgroupMemory {
    /// 1 or 2.
    pub version: u8,
    /// The cgroup path as `/proc/PID/cgroup` names it.
    pub path: String,
    /// The directory the files were read from.
    pub dir: PathBuf,
    /// Memory charged to the cgroup (includes page cache).
    pub usage_bytes: u64,
    /// The cgroup's own limit; `None` when unlimited.
    pub limit_bytes: Option<u64>,
    /// The lowest limit among the cgroup and its ancestors, and where it is set.
    pub effective_limit: Option<EffectiveLimit>,
    /// Usage minus inactive file cache: what the kubelet calls the working set.
    pub working_set_bytes: u64,
    /// Highest usage seen, where the kernel records it.
    pub peak_bytes: Option<u64>,
    /// OOM kills in this cgroup so far.
    pub oom_kills: Option<u64>,
    /// `memory.stat`.
    pub stat: BTreeMap<String, u64>,
    /// `memory.events` (v2) or `memory.oom_control` (v1).
    pub events: BTreeMap<String, u64>,
}

/// A limit inherited from the cgroup itself or an ancestor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EffectiveLimit {
    /// The limit.
    pub bytes: u64,
    /// The cgroup directory that sets it.
    pub set_by: PathBuf,
}

/// Where the cgroup hierarchies that carry memory accounting are mounted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupMounts {
    /// v1 `memory` hierarchy: (mount point, root of the mount inside the hierarchy).
    pub v1_memory: Option<(PathBuf, String)>,
    /// v2 unified hierarchy: (mount point, root).
    pub v2: Option<(PathBuf, String)>,
    /// A mount showing procshot's own cgroup namespace root in the v1 `memory` hierarchy.
    pub v1_memory_own_view: Option<PathBuf>,
    /// A mount showing procshot's own cgroup namespace root in the v2 hierarchy.
    pub v2_own_view: Option<PathBuf>,
}

impl CgroupMounts {
    /// Finds the hierarchies under `cgroup_root` (a node's `/sys/fs/cgroup` mounted
    /// elsewhere: v1 at `ROOT/memory`, v2 at `ROOT` or `ROOT/unified`), or where
    /// `/proc/self/mountinfo` says; and the mounts of procshot's own cgroup namespace root,
    /// which place paths that `/proc/PID/cgroup` shows relative to it (`/../…`).
    pub fn discover(cgroup_root: Option<&Path>) -> Result<Self, String> {
        let infos = procfs::process::Process::myself()
            .and_then(|me| me.mountinfo())
            .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
        let mut mounts = Self::default();
        for info in infos {
            let is_v2 = info.fs_type == "cgroup2";
            let is_v1_memory =
                info.fs_type == "cgroup" && info.super_options.contains_key("memory");
            let own_view = if is_v2 {
                &mut mounts.v2_own_view
            } else {
                &mut mounts.v1_memory_own_view
            };
            if (is_v2 || is_v1_memory) && info.root == "/" && own_view.is_none() {
                *own_view = Some(info.mount_point.clone());
            }
            let hierarchy = if is_v2 {
                &mut mounts.v2
            } else {
                &mut mounts.v1_memory
            };
            if (is_v2 || is_v1_memory) && hierarchy.is_none() {
                *hierarchy = Some((info.mount_point.clone(), info.root.clone()));
            }
        }
        if let Some(root) = cgroup_root {
            let v1 = root.join("memory");
            let v2 = [root.to_path_buf(), root.join("unified")]
                .into_iter()
                .find(|p| p.join("cgroup.controllers").exists());
            mounts.v1_memory = v1
                .join("memory.usage_in_bytes")
                .exists()
                .then(|| (v1, "/".to_string()));
            mounts.v2 = v2.map(|p| (p, "/".to_string()));
        }
        Ok(mounts)
    }
}

/// Reads the target's cgroup memory state; the error says why it could not.
pub fn read(target: &Target, cgroup_root: Option<&Path>) -> Result<CgroupMemory, String> {
    let groups = target
        .process()
        .cgroups()
        .map_err(|e| format!("cannot read {}: {e}", target.path("cgroup").display()))?;
    let mounts = CgroupMounts::discover(cgroup_root)?;
    let v1_path = groups
        .0
        .iter()
        .find(|g| g.controllers.iter().any(|c| c == "memory"))
        .map(|g| g.pathname.clone());
    let v2_path = groups
        .0
        .iter()
        .find(|g| g.hierarchy == 0)
        .map(|g| g.pathname.clone());

    if let (Some(path), Some((mount, root))) = (&v1_path, &mounts.v1_memory) {
        let dir = locate_dir(mount, root, path, mounts.v1_memory_own_view.as_deref())?;
        return read_dir(1, path, &dir, mount);
    }
    if let (Some(path), Some((mount, root))) = (&v2_path, &mounts.v2) {
        let dir = locate_dir(mount, root, path, mounts.v2_own_view.as_deref())?;
        if dir.join("memory.current").exists() {
            return read_dir(2, path, &dir, mount);
        }
        return Err(format!(
            "cgroup v2 {} has no memory.current (the memory controller is not enabled for it, or it is the root cgroup)",
            dir.display()
        ));
    }
    Err(format!(
        "no memory cgroup found: /proc/{}/cgroup lists {} and no matching cgroup filesystem is mounted{}",
        target.pid(),
        groups
            .0
            .iter()
            .map(|g| format!("{}:{}", g.hierarchy, g.pathname))
            .collect::<Vec<_>>()
            .join(", "),
        if cgroup_root.is_some() {
            " under --cgroup-root"
        } else {
            ""
        }
    ))
}

/// The directory of the cgroup `path` (as `/proc/PID/cgroup` shows it) inside a hierarchy
/// mounted at `mount` whose mount root is `root`. A path starting with `/..` is relative to
/// procshot's own cgroup namespace (procshot runs in a container): it is placed by finding
/// that namespace's root (`own_view`, a mount of it) inside `mount`.
fn locate_dir(
    mount: &Path,
    root: &str,
    path: &str,
    own_view: Option<&Path>,
) -> Result<PathBuf, String> {
    if !path.starts_with("/..") {
        return Ok(resolve(mount, root, path));
    }
    let own_view = own_view.ok_or_else(|| {
        format!("cgroup path {path} is relative to procshot's cgroup namespace, and no mount of that namespace's root was found to place it")
    })?;
    let own = find_same_dir(mount, own_view)?;
    let relative = apply_relative(&own, path).ok_or_else(|| {
        format!(
            "cgroup path {path} leads outside {} (mount the node's whole cgroup filesystem)",
            mount.display()
        )
    })?;
    Ok(mount.join(relative))
}

/// The path, relative to `mount`, of the directory under it that is `wanted` (same device
/// and inode): where procshot's own namespace root sits in the node's hierarchy.
fn find_same_dir(mount: &Path, wanted: &Path) -> Result<String, String> {
    use std::os::unix::fs::MetadataExt;
    let target =
        fs::metadata(wanted).map_err(|e| format!("cannot stat {}: {e}", wanted.display()))?;
    let mut queue = std::collections::VecDeque::from([(mount.to_path_buf(), String::new())]);
    while let Some((dir, relative)) = queue.pop_front() {
        let Ok(meta) = fs::metadata(&dir) else {
            continue;
        };
        if meta.dev() == target.dev() && meta.ino() == target.ino() {
            return Ok(relative);
        }
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                let name = entry.file_name().to_string_lossy().into_owned();
                queue.push_back((entry.path(), format!("{relative}/{name}")));
            }
        }
    }
    Err(format!(
        "procshot's own cgroup ({}) was not found under {}: is that the node's cgroup filesystem?",
        wanted.display(),
        mount.display()
    ))
}

/// `base` (`/a/b/c`) followed by a path relative to it (`/../../x/y`) → `a/x/y`; `None`
/// when the path climbs above the top.
fn apply_relative(base: &str, path: &str) -> Option<String> {
    let mut parts: Vec<&str> = base.split('/').filter(|p| !p.is_empty()).collect();
    for component in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
        if component == ".." {
            parts.pop()?;
        } else {
            parts.push(component);
        }
    }
    Some(parts.join("/"))
}

/// The directory of `path` inside a hierarchy mounted at `mount` whose mount root is `root`.
fn resolve(mount: &Path, root: &str, path: &str) -> PathBuf {
    let relative = path.strip_prefix(root).unwrap_or(path);
    mount.join(relative.trim_start_matches('/'))
}

/// Reads the memory files of one cgroup directory (`version` 1 or 2). `mount` bounds the
/// walk up the ancestors for the effective limit.
pub fn read_dir(version: u8, path: &str, dir: &Path, mount: &Path) -> Result<CgroupMemory, String> {
    let files = Files::for_version(version);
    let usage_bytes =
        parse_u64(&read_file(dir, files.usage)?).map_err(|e| malformed(dir, files.usage, e))?;
    let limit_bytes = read_limit(version, dir)?;
    let stat = parse_flat_keyed(&read_file(dir, "memory.stat")?)
        .map_err(|e| malformed(dir, "memory.stat", e))?;
    let events = match fs::read_to_string(dir.join(files.events)) {
        Ok(text) => parse_flat_keyed(&text).map_err(|e| malformed(dir, files.events, e))?,
        Err(_) => BTreeMap::new(),
    };
    let peak_bytes = fs::read_to_string(dir.join(files.peak))
        .ok()
        .and_then(|t| parse_u64(&t).ok());
    let inactive_file = stat.get(files.inactive_file).copied().unwrap_or(0);
    Ok(CgroupMemory {
        version,
        path: path.to_string(),
        dir: dir.to_path_buf(),
        usage_bytes,
        limit_bytes,
        effective_limit: effective_limit(version, dir, mount),
        working_set_bytes: usage_bytes.saturating_sub(inactive_file),
        peak_bytes,
        oom_kills: events.get("oom_kill").copied(),
        stat,
        events,
    })
}

/// File names that differ between v1 and v2.
struct Files {
    usage: &'static str,
    limit: &'static str,
    events: &'static str,
    peak: &'static str,
    inactive_file: &'static str,
}

impl Files {
    fn for_version(version: u8) -> Self {
        if version == 1 {
            Self {
                usage: "memory.usage_in_bytes",
                limit: "memory.limit_in_bytes",
                events: "memory.oom_control",
                peak: "memory.max_usage_in_bytes",
                inactive_file: "total_inactive_file",
            }
        } else {
            Self {
                usage: "memory.current",
                limit: "memory.max",
                events: "memory.events",
                peak: "memory.peak",
                inactive_file: "inactive_file",
            }
        }
    }
}

fn read_limit(version: u8, dir: &Path) -> Result<Option<u64>, String> {
    let file = Files::for_version(version).limit;
    let text = read_file(dir, file)?;
    parse_limit(version, &text).map_err(|e| malformed(dir, file, e))
}

fn effective_limit(version: u8, dir: &Path, mount: &Path) -> Option<EffectiveLimit> {
    let mut best: Option<EffectiveLimit> = None;
    for ancestor in dir.ancestors().take_while(|a| a.starts_with(mount)) {
        if let Ok(Some(bytes)) = read_limit(version, ancestor)
            && best.as_ref().is_none_or(|b| bytes < b.bytes)
        {
            best = Some(EffectiveLimit {
                bytes,
                set_by: ancestor.to_path_buf(),
            });
        }
    }
    best
}

fn read_file(dir: &Path, name: &str) -> Result<String, String> {
    let path = dir.join(name);
    fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn malformed(dir: &Path, name: &str, detail: String) -> String {
    format!("malformed {}: {detail}", dir.join(name).display())
}

/// A limit file: v2 `max` or a number; v1 a number where huge values mean unlimited.
pub fn parse_limit(version: u8, text: &str) -> Result<Option<u64>, String> {
    let text = text.trim();
    if version == 2 && text == "max" {
        return Ok(None);
    }
    let value = parse_u64(text)?;
    Ok((version == 2 || value < V1_UNLIMITED).then_some(value))
}

/// A single number.
pub fn parse_u64(text: &str) -> Result<u64, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("expected a number, found {:?}", text.trim()))
}

/// `key value` lines (`memory.stat`, `memory.events`, `memory.oom_control`).
pub fn parse_flat_keyed(text: &str) -> Result<BTreeMap<String, u64>, String> {
    let mut map = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some(key), Some(value), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!(
                "line {}: expected `key value`: {line:?}",
                index + 1
            ));
        };
        let value = value
            .parse()
            .map_err(|_| format!("line {}: {key} is not a number: {value:?}", index + 1))?;
        map.insert(key.to_string(), value);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_by_version() {
        assert_eq!(parse_limit(2, "max\n"), Ok(None));
        assert_eq!(parse_limit(2, "536870912\n"), Ok(Some(536_870_912)));
        assert_eq!(parse_limit(1, "9223372036854771712\n"), Ok(None));
        assert_eq!(parse_limit(1, "268435456\n"), Ok(Some(268_435_456)));
        assert!(parse_limit(1, "max").is_err());
        assert!(parse_limit(2, "").is_err());
    }

    #[test]
    fn flat_keyed_files() {
        let events =
            parse_flat_keyed("low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n")
                .unwrap();
        assert_eq!(events["oom_kill"], 1);
        assert_eq!(events["max"], 12);
        assert!(
            parse_flat_keyed("anon 12 extra\n")
                .unwrap_err()
                .contains("line 1")
        );
        assert!(
            parse_flat_keyed("anon twelve\n")
                .unwrap_err()
                .contains("anon is not a number")
        );
        assert!(parse_flat_keyed("anon\n").is_err());
    }

    #[test]
    fn paths_relative_to_a_cgroup_namespace() {
        let own = "/kubepods.slice/kubepods-besteffort.slice/pod1.slice/cri-containerd-a.scope";
        assert_eq!(
            apply_relative(
                own,
                "/../../../kubepods-burstable.slice/pod2.slice/cri-containerd-b.scope"
            )
            .as_deref(),
            Some("kubepods.slice/kubepods-burstable.slice/pod2.slice/cri-containerd-b.scope")
        );
        assert_eq!(apply_relative("/a", "/../../x"), None);
        assert_eq!(apply_relative("", "/x/./y").as_deref(), Some("x/y"));
    }

    #[test]
    fn paths_inside_a_mount_with_its_own_root() {
        assert_eq!(
            resolve(
                Path::new("/sys/fs/cgroup"),
                "/",
                "/kubepods.slice/pod1.slice"
            ),
            PathBuf::from("/sys/fs/cgroup/kubepods.slice/pod1.slice")
        );
        assert_eq!(
            resolve(
                Path::new("/sys/fs/cgroup"),
                "/kubepods",
                "/kubepods/burstable/pod1"
            ),
            PathBuf::from("/sys/fs/cgroup/burstable/pod1")
        );
    }
}
