//! The Go runtime's data layouts on linux/amd64, per Go minor release: where the fields of
//! `runtime.g`, `runtime.m`, `runtime.moduledata`, `runtime._func` and
//! `runtime.gcControllerState` sit, and the runtime constants the reader needs. Measured
//! from the DWARF of real builds of each toolchain (the tests check them against the DWARF
//! of every unstripped fixture they build).
//!
//! A version not listed here is refused: a layout cannot be guessed, and a wrong one reads
//! garbage. Go 1.20 is refused because no 1.20 toolchain was available to measure it.

/// Field offsets of `runtime.g` (bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GOffsets {
    /// `sizeof(runtime.g)`.
    pub size: u64,
    /// `stack.lo` (`stack.hi` follows).
    pub stack_lo: u64,
    /// `m` (`*m`).
    pub m: u64,
    /// `sched.sp` (`sched.pc` and `sched.g` follow).
    pub sched_sp: u64,
    /// `syscallsp` (`syscallpc` follows).
    pub syscallsp: u64,
    /// `atomicstatus`.
    pub atomicstatus: u64,
    /// `goid`.
    pub goid: u64,
    /// `waitsince` (nanotime at which the wait began, set only during GC).
    pub waitsince: u64,
    /// `waitreason` (one byte).
    pub waitreason: u64,
    /// `lockedm`.
    pub lockedm: u64,
    /// `gopc` (the pc of the `go` statement).
    pub gopc: u64,
    /// `startpc` (the function the goroutine started in).
    pub startpc: u64,
}

/// One Go minor release's layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// `1.21` is 21.
    pub minor: u32,
    /// `runtime.g`.
    pub g: GOffsets,
    /// `runtime.m.procid` (the thread id).
    pub m_procid: u64,
    /// `runtime.m.curg`.
    pub m_curg: u64,
    /// `runtime.moduledata.gofunc` (the base of funcdata offsets).
    pub moduledata_gofunc: u64,
    /// The size of `runtime._func` before its pcdata offsets.
    pub func_header: usize,
    /// `abi.FuncIDWrapper` (generated code the traceback hides).
    pub funcid_wrapper: u8,
    /// Statuses that count as dead besides `_Gdead` (Go 1.26's `_Gdeadextra`).
    pub dead_extra: Option<u32>,
    /// `runtime.gcControllerState.heapInUse`; `heapReleased`, `heapFree`, `totalAlloc`,
    /// `totalFree` and `mappedReady` follow, 8 bytes each.
    pub gc_heap_in_use: u64,
    /// `runtime.gcControllerState.heapLive`.
    pub gc_heap_live: u64,
}

/// `runtime.moduledata.text` (the same in every release read).
pub const MODULEDATA_TEXT: u64 = 176;
/// `runtime.moduledata.noptrdata`; `enoptrdata`, `data`, `edata`, `bss`, `ebss`,
/// `noptrbss`, `enoptrbss` follow.
pub const MODULEDATA_NOPTRDATA: u64 = 192;
/// `runtime.gcControllerState.gcPercent` (an int32: GOGC).
pub const GC_PERCENT: u64 = 0;
/// `runtime.gcControllerState.memoryLimit` (an int64: GOMEMLIMIT).
pub const GC_MEMORY_LIMIT: u64 = 8;

/// `_Grunnable`.
pub const STATUS_RUNNABLE: u32 = 1;
/// `_Grunning`.
pub const STATUS_RUNNING: u32 = 2;
/// `_Gsyscall`.
pub const STATUS_SYSCALL: u32 = 3;
/// `_Gwaiting`.
pub const STATUS_WAITING: u32 = 4;
/// `_Gdead`.
pub const STATUS_DEAD: u32 = 6;
/// `_Gleaked` (Go 1.26+: a goroutine the GC found blocked forever).
pub const STATUS_LEAKED: u32 = 10;
/// `_Gscan`: a bit set while the GC scans the goroutine's stack.
pub const STATUS_SCAN: u32 = 0x1000;

const G_119: GOffsets = GOffsets {
    size: 392,
    stack_lo: 0,
    m: 48,
    sched_sp: 56,
    syscallsp: 112,
    atomicstatus: 144,
    goid: 152,
    waitsince: 168,
    waitreason: 176,
    lockedm: 232,
    gopc: 296,
    startpc: 312,
};

/// 1.21 added `parentGoid`.
const G_121: GOffsets = GOffsets {
    size: 408,
    lockedm: 208,
    gopc: 280,
    startpc: 296,
    ..G_119
};

/// 1.23 added `syscallbp`.
const G_123: GOffsets = GOffsets {
    size: 432,
    atomicstatus: 152,
    goid: 160,
    waitsince: 176,
    waitreason: 184,
    lockedm: 216,
    gopc: 288,
    startpc: 304,
    ..G_121
};

/// 1.25 removed `gobuf.ret`.
const G_125: GOffsets = GOffsets {
    size: 440,
    syscallsp: 104,
    atomicstatus: 144,
    goid: 152,
    waitsince: 168,
    waitreason: 176,
    lockedm: 208,
    gopc: 280,
    startpc: 296,
    ..G_123
};

const G_126: GOffsets = GOffsets {
    size: 456,
    gopc: 288,
    startpc: 304,
    ..G_125
};

const L_119: Layout = Layout {
    minor: 19,
    g: G_119,
    m_procid: 72,
    m_curg: 192,
    moduledata_gofunc: 304,
    func_header: 40,
    funcid_wrapper: 21,
    dead_extra: None,
    gc_heap_in_use: 304,
    gc_heap_live: 136,
};

const L_121: Layout = Layout {
    minor: 21,
    g: G_121,
    moduledata_gofunc: 320,
    func_header: 44,
    gc_heap_in_use: 272,
    gc_heap_live: 104,
    ..L_119
};

/// Every known layout, oldest first.
pub const LAYOUTS: [Layout; 8] = [
    L_119,
    L_121,
    Layout {
        minor: 22,
        g: GOffsets { size: 424, ..G_121 },
        funcid_wrapper: 22,
        ..L_121
    },
    Layout {
        minor: 23,
        g: G_123,
        funcid_wrapper: 22,
        ..L_121
    },
    Layout {
        minor: 24,
        g: GOffsets { size: 440, ..G_123 },
        funcid_wrapper: 22,
        ..L_121
    },
    Layout {
        minor: 25,
        g: G_125,
        m_procid: 64,
        m_curg: 184,
        funcid_wrapper: 23,
        ..L_121
    },
    Layout {
        minor: 26,
        g: G_126,
        m_procid: 64,
        m_curg: 184,
        funcid_wrapper: 23,
        dead_extra: Some(11),
        ..L_121
    },
    Layout {
        minor: 27,
        g: G_126,
        m_procid: 64,
        m_curg: 184,
        moduledata_gofunc: 344,
        funcid_wrapper: 23,
        dead_extra: Some(11),
        ..L_121
    },
];

/// Why a Go version has no layout here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnknownVersion {
    /// Not a release version string (`devel …`, or garbage).
    #[error(
        "the Go version {version:?} is not a release procshot knows the runtime layout of \
         (it reads Go {known}); use --go-pprof for this program"
    )]
    NotARelease {
        /// The version string of the binary.
        version: String,
        /// The releases known.
        known: String,
    },
    /// A release without a layout (too old, 1.20, or newer than this procshot).
    #[error(
        "{version} is not one of the Go releases whose runtime layout procshot knows (Go \
         {known}): reading its goroutines could read garbage, so it does not; use \
         --go-pprof for this program{newer}"
    )]
    Unsupported {
        /// The version string of the binary.
        version: String,
        /// The releases known.
        known: String,
        /// A hint when it is newer than every known one.
        newer: &'static str,
    },
}

/// `1.19, 1.21–1.27`.
pub fn known_versions() -> String {
    let first = LAYOUTS[0].minor;
    let second = LAYOUTS[1].minor;
    let last = LAYOUTS[LAYOUTS.len() - 1].minor;
    format!("1.{first}, 1.{second}–1.{last}")
}

/// The layout of the Go release named by a binary's build info (`go1.21.13`, possibly
/// followed by ` X:experiment`).
pub fn for_version(version: &str) -> Result<&'static Layout, UnknownVersion> {
    let minor = version
        .split_whitespace()
        .next()
        .and_then(|v| v.strip_prefix("go1."))
        .and_then(|rest| rest.split(['.', '-', 'r']).next())
        .and_then(|minor| minor.parse::<u32>().ok())
        .ok_or_else(|| UnknownVersion::NotARelease {
            version: version.to_string(),
            known: known_versions(),
        })?;
    LAYOUTS
        .iter()
        .find(|l| l.minor == minor)
        .ok_or_else(|| UnknownVersion::Unsupported {
            version: version.to_string(),
            known: known_versions(),
            newer: if minor > LAYOUTS[LAYOUTS.len() - 1].minor {
                " (or a procshot that knows it)"
            } else {
                ""
            },
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_map_to_their_layouts() {
        assert_eq!(for_version("go1.19.8").unwrap().minor, 19);
        assert_eq!(for_version("go1.21.13").unwrap().g.gopc, 280);
        assert_eq!(
            for_version("go1.23.9 X:nocoverageredesign").unwrap().g.goid,
            160
        );
        assert_eq!(for_version("go1.25rc1").unwrap().g.syscallsp, 104);
        assert_eq!(for_version("go1.27.3").unwrap().moduledata_gofunc, 344);
    }

    #[test]
    fn unknown_versions_are_refused_by_name() {
        let err = for_version("go1.20.14").unwrap_err().to_string();
        assert!(
            err.starts_with("go1.20.14 is not one of the Go releases")
                && err.contains("1.19, 1.21–1.27"),
            "{err}"
        );
        let err = for_version("go1.31.0").unwrap_err().to_string();
        assert!(err.contains("or a procshot that knows it"), "{err}");
        let err = for_version("devel go1.28-abcdef").unwrap_err().to_string();
        assert!(err.contains("\"devel go1.28-abcdef\""), "{err}");
        assert!(for_version("go1.18").is_err());
    }
}
