//! The `memory` capture: `/proc/PID/status` memory fields, `smaps_rollup`, the mappings
//! with the most resident memory (from `smaps`), the memory files of the target's cgroup,
//! and, when the goroutines of a Go program are read from its memory, its Go heap's
//! statistics through the same located runtime ([`crate::gomem`]).

pub mod cgroup;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use procfs::process::{MMPermissions, MMapPath};
use serde::{Deserialize, Serialize};

pub use cgroup::CgroupMemory;

use crate::captures::CaptureKind;
use crate::captures::contract::{Deadline, KindSample, SampleError, SampledCapture};
use crate::error::CaptureError;
use crate::gomem::{GoHeap, GoReader};
use crate::process::Target;
use crate::units;

const WHAT: &str = "memory";

/// How many mappings `memory.json` keeps per sample (the largest by RSS).
pub const TOP_MAPPINGS: usize = 20;

/// One sample of the target's memory state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemorySample {
    /// The `Vm*`/`Rss*` fields of `/proc/PID/status`, in bytes.
    pub status: StatusMemory,
    /// `smaps_rollup` totals in bytes (`Rss`, `Pss`, `Anonymous`, `Swap`, …), or why not.
    pub rollup: Readable<BTreeMap<String, u64>>,
    /// Mapping totals from `smaps`, or why not.
    pub mappings: Readable<MappingSummary>,
    /// The memory files of the target's cgroup, or why not.
    pub cgroup: Readable<CgroupMemory>,
    /// The Go heap's statistics, read from the runtime's memory (when goroutines are read
    /// from memory too), or why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub go_heap: Option<Readable<GoHeap>>,
}

/// Something that was read, or the reason it could not be (in JSON: the value itself, or
/// `{"unavailable": "why"}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Readable<T> {
    /// The value.
    Read(T),
    /// Why it could not be read, and what would make it readable.
    Unavailable {
        /// The reason.
        unavailable: String,
    },
}

impl<T> Readable<T> {
    /// The value, if it was read.
    pub fn value(&self) -> Option<&T> {
        match self {
            Self::Read(value) => Some(value),
            Self::Unavailable { .. } => None,
        }
    }

    fn from_result(result: Result<T, String>) -> Self {
        match result {
            Ok(value) => Self::Read(value),
            Err(unavailable) => Self::Unavailable { unavailable },
        }
    }
}

/// The memory fields of `/proc/PID/status`, in bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusMemory {
    /// Peak virtual size.
    pub vm_peak: Option<u64>,
    /// Virtual size.
    pub vm_size: Option<u64>,
    /// Peak resident set size.
    pub vm_hwm: Option<u64>,
    /// Resident set size.
    pub vm_rss: Option<u64>,
    /// Resident anonymous memory.
    pub rss_anon: Option<u64>,
    /// Resident file mappings.
    pub rss_file: Option<u64>,
    /// Resident shared memory.
    pub rss_shmem: Option<u64>,
    /// Data + stack segments.
    pub vm_data: Option<u64>,
    /// Main stack.
    pub vm_stk: Option<u64>,
    /// Page tables.
    pub vm_pte: Option<u64>,
    /// Swapped out anonymous memory.
    pub vm_swap: Option<u64>,
    /// Locked memory.
    pub vm_lck: Option<u64>,
}

/// Per-mapping totals from `smaps`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MappingSummary {
    /// Number of mappings.
    pub count: usize,
    /// The [`TOP_MAPPINGS`] largest by RSS, largest first.
    pub top_by_rss: Vec<Mapping>,
}

/// One memory mapping with its `smaps` totals (bytes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mapping {
    /// `start-end` in hex.
    pub address: String,
    /// `rwxp`-style permissions.
    pub perms: String,
    /// File path, `[heap]`, `[stack]`, `[anon]`…
    pub path: String,
    /// Virtual size.
    pub size: u64,
    /// Resident.
    pub rss: u64,
    /// Proportional share.
    pub pss: u64,
    /// Anonymous resident.
    pub anonymous: u64,
    /// Swapped out.
    pub swap: u64,
}

impl KindSample for MemorySample {
    const KIND: CaptureKind = CaptureKind::Memory;
}

/// The memory capture: the target's memory and its cgroup's in every sample.
#[derive(Debug, Clone, Default)]
pub struct MemoryReader {
    /// Where cgroup filesystems are mounted, when not where `/proc/self/mountinfo` says.
    pub cgroup_root: Option<PathBuf>,
    /// The Go runtime located in the target's memory (by the goroutines capture), whose
    /// heap statistics each sample reads; `None`: no Go heap in the samples.
    pub go: Option<Rc<GoReader>>,
}

impl SampledCapture for MemoryReader {
    type Sample = MemorySample;

    fn read(&mut self, target: &Target, _: &Deadline) -> Result<MemorySample, SampleError> {
        let mut sample = capture(target, self.cgroup_root.as_deref())?;
        sample.go_heap = self
            .go
            .as_ref()
            .map(|go| Readable::from_result(go.heap().map_err(|e| e.to_string())));
        Ok(sample)
    }

    fn describe(sample: &MemorySample) -> Option<String> {
        sample
            .status
            .vm_rss
            .map(|rss| format!("RSS {}", units::bytes(rss)))
    }
}

/// Reads one memory sample. `cgroup_root` overrides where cgroup filesystems are found
/// (default: from `/proc/self/mountinfo`).
pub fn capture(target: &Target, cgroup_root: Option<&Path>) -> Result<MemorySample, CaptureError> {
    let status = target
        .process()
        .status()
        .map_err(|e| target.proc_error("status", WHAT, e))?;
    let kib = |v: Option<u64>| v.map(|kb| kb * 1024);
    let status = StatusMemory {
        vm_peak: kib(status.vmpeak),
        vm_size: kib(status.vmsize),
        vm_hwm: kib(status.vmhwm),
        vm_rss: kib(status.vmrss),
        rss_anon: kib(status.rssanon),
        rss_file: kib(status.rssfile),
        rss_shmem: kib(status.rssshmem),
        vm_data: kib(status.vmdata),
        vm_stk: kib(status.vmstk),
        vm_pte: kib(status.vmpte),
        vm_swap: kib(status.vmswap),
        vm_lck: kib(status.vmlck),
    };
    let rollup = optional(target, "smaps_rollup", target.process().smaps_rollup())?.map(|rollup| {
        rollup
            .memory_map_rollup
            .0
            .into_iter()
            .flat_map(|map| map.extension.map)
            .collect::<BTreeMap<_, _>>()
    });
    let mappings =
        optional(target, "smaps", target.process().smaps())?.map(|maps| summarize_mappings(maps.0));
    let cgroup = cgroup::read(target, cgroup_root);
    if !target.is_alive() {
        return Err(CaptureError::TargetExited {
            pid: target.pid(),
            what: WHAT,
        });
    }
    Ok(MemorySample {
        status,
        rollup: Readable::from_result(rollup),
        mappings: Readable::from_result(mappings),
        cgroup: Readable::from_result(cgroup),
        go_heap: None,
    })
}

/// An optional file: a permission or availability problem is recorded as the reason; the
/// target exiting or malformed content is an error.
fn optional<T>(
    target: &Target,
    file: &str,
    result: procfs::ProcResult<T>,
) -> Result<Result<T, String>, CaptureError> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(e) => match target.proc_error(file, WHAT, e) {
            CaptureError::PermissionDenied { path } => Ok(Err(format!(
                "permission denied reading {}: needs the target's user, root or CAP_SYS_PTRACE",
                path.display()
            ))),
            CaptureError::Io { path, source } => {
                Ok(Err(format!("cannot read {}: {source}", path.display())))
            }
            other => Err(other),
        },
    }
}

fn summarize_mappings(maps: Vec<procfs::process::MemoryMap>) -> MappingSummary {
    let count = maps.len();
    let mut all: Vec<Mapping> = maps
        .into_iter()
        .map(|map| {
            let value = |key: &str| map.extension.map.get(key).copied().unwrap_or(0);
            Mapping {
                address: format!("{:x}-{:x}", map.address.0, map.address.1),
                perms: perms_text(map.perms),
                path: mapping_path(&map.pathname),
                size: map.address.1.saturating_sub(map.address.0),
                rss: value("Rss"),
                pss: value("Pss"),
                anonymous: value("Anonymous"),
                swap: value("Swap"),
            }
        })
        .collect();
    all.sort_by(|a, b| b.rss.cmp(&a.rss).then_with(|| a.address.cmp(&b.address)));
    all.truncate(TOP_MAPPINGS);
    MappingSummary {
        count,
        top_by_rss: all,
    }
}

fn perms_text(perms: MMPermissions) -> String {
    let flag = |f: MMPermissions, c: char| if perms.contains(f) { c } else { '-' };
    [
        flag(MMPermissions::READ, 'r'),
        flag(MMPermissions::WRITE, 'w'),
        flag(MMPermissions::EXECUTE, 'x'),
        if perms.contains(MMPermissions::SHARED) {
            's'
        } else {
            'p'
        },
    ]
    .into_iter()
    .collect()
}

fn mapping_path(path: &MMapPath) -> String {
    match path {
        MMapPath::Path(p) => p.display().to_string(),
        MMapPath::Heap => "[heap]".into(),
        MMapPath::Stack => "[stack]".into(),
        MMapPath::TStack(tid) => format!("[stack:{tid}]"),
        MMapPath::Vdso => "[vdso]".into(),
        MMapPath::Vvar => "[vvar]".into(),
        MMapPath::Vsyscall => "[vsyscall]".into(),
        MMapPath::Anonymous => "[anon]".into(),
        MMapPath::Rollup => "[rollup]".into(),
        MMapPath::Vsys(key) => format!("[SYSV{key:08x}]"),
        MMapPath::Other(name) => name.clone(),
    }
}
