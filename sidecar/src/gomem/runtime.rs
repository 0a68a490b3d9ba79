//! One Go program's runtime, located: its version and layout, its function table, where
//! its text and module data are in memory, and the addresses of `allgs`, the wait-reason
//! strings and `gcController`. Built once per capture (the binary does not change while
//! the process lives) and used for every sample.

use std::path::Path;

use super::binary::{BinaryError, GoBinary};
use super::buildinfo;
use super::layout::{self, Layout, MODULEDATA_NOPTRDATA, MODULEDATA_TEXT, UnknownVersion};
use super::locate::{self, AllGs};
use super::memory::{Memory, MemoryError};
use super::pclntab::Pclntab;

/// Why a Go runtime cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// No Go build info: not a Go program (or Go before 1.18).
    #[error(
        "{path} is not a Go program (it has no Go build info): goroutines can only be read from Go programs"
    )]
    NotGo {
        /// The executable.
        path: String,
    },
    /// The build info could not be read.
    #[error(transparent)]
    BuildInfo(#[from] buildinfo::BuildInfoError),
    /// The Go version has no known layout.
    #[error(transparent)]
    UnknownVersion(#[from] UnknownVersion),
    /// The executable cannot be used.
    #[error(transparent)]
    Binary(#[from] BinaryError),
    /// Memory could not be read.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// The function table is not what this version writes.
    #[error("the Go function table of {path} ({version}) cannot be read: {detail}")]
    Pclntab {
        /// The executable.
        path: String,
        /// The Go version.
        version: String,
        /// What is wrong.
        detail: String,
    },
    /// The process's memory does not hold what the file says.
    #[error(
        "the memory of the process does not match its executable {path} ({version}): \
         {detail}; procshot does not guess, so its goroutines are not read"
    )]
    Mismatch {
        /// The executable.
        path: String,
        /// The Go version.
        version: String,
        /// What differs.
        detail: String,
    },
    /// A runtime global could not be found.
    #[error(
        "cannot find {what} in {path} ({version}): {detail}; this build may be one procshot \
         does not know, use --go-pprof for it"
    )]
    NotFound {
        /// `runtime.allgs`…
        what: &'static str,
        /// The executable.
        path: String,
        /// The Go version.
        version: String,
        /// What was tried.
        detail: String,
    },
}

/// A located Go runtime.
#[derive(Debug)]
pub struct GoRuntime {
    /// `go1.21.13`.
    pub version: String,
    /// Its layout.
    pub layout: &'static Layout,
    /// The executable.
    pub binary: GoBinary,
    /// Its function table.
    pub pclntab: Pclntab,
    /// Run-time address minus link-time address (0 unless PIE).
    pub bias: u64,
    /// `moduledata.text`: the base of every pc in the function table.
    pub text: u64,
    /// `moduledata.gofunc`: the base of funcdata offsets.
    pub gofunc: u64,
    /// The run-time range of `noptrdata` to `enoptrbss` (every global).
    pub globals: (u64, u64),
    /// `allgs`, `allgptr`, `allglen`.
    pub allgs: AllGs,
    /// `waitReasonStrings`, by `waitReason` value.
    pub wait_reasons: Vec<String>,
    /// `gcController`, when found.
    pub gc_controller: Option<u64>,
}

/// The longest wait reason, and the most entries, a table may have.
const MAX_WAIT_REASON: u64 = 64;
const MAX_WAIT_REASONS: usize = 128;

impl GoRuntime {
    /// Locates the runtime of the process whose executable is `exe` (`/proc/PID/exe`) and
    /// whose memory is `memory`; `entry` is the run-time address of its entry point
    /// (`AT_ENTRY` of its auxiliary vector), which tells where it was loaded.
    pub fn open(exe: &Path, memory: &dyn Memory, entry: u64) -> Result<Self, RuntimeError> {
        let path = exe.display().to_string();
        let info =
            buildinfo::read(exe)?.ok_or_else(|| RuntimeError::NotGo { path: path.clone() })?;
        let version = info.go_version;
        let layout = layout::for_version(&version)?;
        let binary = GoBinary::open(exe)?;
        let bias = entry.wrapping_sub(binary.entry);
        let pclntab_error = |detail: String| RuntimeError::Pclntab {
            path: path.clone(),
            version: version.clone(),
            detail,
        };
        let (pcln_address, pcln_size) = binary.pclntab()?;
        let bytes = binary
            .bytes(pcln_address, pcln_size)
            .ok_or_else(|| pclntab_error("the file has no bytes for it".into()))?
            .to_vec();
        let pclntab = Pclntab::parse(bytes, layout.func_header).map_err(pclntab_error)?;
        let mismatch = |detail: String| RuntimeError::Mismatch {
            path: path.clone(),
            version: version.clone(),
            detail,
        };
        let mut header = vec![0u8; pclntab.header().len()];
        memory.read(pcln_address.wrapping_add(bias), &mut header)?;
        // Word 3 (textStart, before Go 1.26) is relocated in a PIE binary.
        let same = |a: &[u8], b: &[u8]| a[..24] == b[..24] && a[32..] == b[32..];
        if !same(&header, pclntab.header()) {
            return Err(mismatch(format!(
                "the function table at {:#x} differs (was the binary replaced, or is this a different build?)",
                pcln_address.wrapping_add(bias)
            )));
        }
        let moduledata = find_moduledata(&binary, memory, bias, pcln_address.wrapping_add(bias))
            .ok_or_else(|| RuntimeError::NotFound {
                what: "runtime.firstmoduledata",
                path: path.clone(),
                version: version.clone(),
                detail: "no word of .go.module or .noptrdata points to the function table".into(),
            })?;
        let mut module = vec![0u8; 512];
        memory.read(moduledata, &mut module)?;
        let word = |offset: u64| {
            u64::from_le_bytes(
                module[offset as usize..offset as usize + 8]
                    .try_into()
                    .expect("8 bytes"),
            )
        };
        let text = word(MODULEDATA_TEXT);
        let gofunc = word(layout.moduledata_gofunc);
        let globals = (word(MODULEDATA_NOPTRDATA), word(MODULEDATA_NOPTRDATA + 56));
        let in_file = |address: u64| {
            binary
                .sections
                .iter()
                .any(|s| (s.address..s.address + s.size).contains(&address.wrapping_sub(bias)))
        };
        if !in_file(text) || !in_file(gofunc) || globals.0 >= globals.1 {
            return Err(mismatch(format!(
                "its module data at {moduledata:#x} does not describe the executable (text \
                 {text:#x}, gofunc {gofunc:#x})"
            )));
        }
        let mut runtime = Self {
            version,
            layout,
            binary,
            pclntab,
            bias,
            text,
            gofunc,
            globals,
            allgs: AllGs {
                allgs: 0,
                allgptr: 0,
                allglen: 0,
            },
            wait_reasons: Vec::new(),
            gc_controller: None,
        };
        let not_found = |what: &'static str, detail: &str| RuntimeError::NotFound {
            what,
            path: path.clone(),
            version: runtime.version.clone(),
            detail: detail.to_string(),
        };
        let refs = runtime.references_of("runtime.allgadd").ok_or_else(|| {
            not_found(
                "runtime.allgs",
                "runtime.allgadd is not in the function table",
            )
        })?;
        runtime.allgs = locate::allgs(&refs, memory).ok_or_else(|| {
            not_found(
                "runtime.allgs",
                "no address used by runtime.allgadd holds a slice whose pointer and length are stored elsewhere too",
            )
        })?;
        runtime.wait_reasons = runtime.find_wait_reasons(memory).ok_or_else(|| {
            not_found(
                "runtime.waitReasonStrings",
                "no array of strings starting with \"\" and \"GC assist marking\" in its data",
            )
        })?;
        runtime.gc_controller = runtime
            .references_of("runtime.gcControllerCommit")
            .and_then(|refs| locate::most_taken(&refs));
        Ok(runtime)
    }

    /// The RIP-relative references of function `name` that point into the globals.
    fn references_of(&self, name: &str) -> Option<Vec<locate::Reference>> {
        let func = self.pclntab.by_name(name)?;
        let start = self.text + u64::from(func.entry);
        let code = self.binary.bytes(
            start.wrapping_sub(self.bias),
            u64::from(func.end - func.entry),
        )?;
        let mut refs = locate::references(code, start);
        refs.retain(|r| (self.globals.0..self.globals.1).contains(&r.address));
        Some(refs)
    }

    /// Reads the wait-reason strings: the table is in a data section (run-time memory, since
    /// PIE relocates its pointers), its strings in the file's read-only data.
    fn find_wait_reasons(&self, memory: &dyn Memory) -> Option<Vec<String>> {
        let rodata = self.binary.section(".rodata")?;
        let bytes = self.binary.bytes(rodata.address, rodata.size)?;
        let strings: Vec<u64> = bytes
            .windows(locate::FIRST_WAIT_REASON.len())
            .enumerate()
            .filter(|(_, w)| *w == locate::FIRST_WAIT_REASON)
            .map(|(i, _)| rodata.address + i as u64 + self.bias)
            .collect();
        for section in self
            .binary
            .sections
            .iter()
            .filter(|s| s.writable || s.name == ".data.rel.ro")
            .filter(|s| s.name != ".bss" && s.name != ".noptrbss" && s.name != ".tbss")
        {
            let mut data = vec![0u8; section.size as usize];
            let base = section.address + self.bias;
            if memory.read(base, &mut data).is_err() {
                continue;
            }
            for &string in &strings {
                if let Some(table) = locate::wait_reason_table(&data, base, string) {
                    return Some(self.read_wait_reasons(&data, base, table));
                }
            }
        }
        None
    }

    fn read_wait_reasons(&self, data: &[u8], base: u64, table: u64) -> Vec<String> {
        let mut reasons = vec![String::new()];
        let mut at = (table - base) as usize + 16;
        while reasons.len() < MAX_WAIT_REASONS {
            let Some(pair) = data.get(at..at + 16) else {
                break;
            };
            let pointer = u64::from_le_bytes(pair[..8].try_into().expect("8 bytes"));
            let len = u64::from_le_bytes(pair[8..].try_into().expect("8 bytes"));
            if len == 0 || len > MAX_WAIT_REASON {
                break;
            }
            let Some(text) = self.binary.bytes(pointer.wrapping_sub(self.bias), len) else {
                break;
            };
            reasons.push(String::from_utf8_lossy(text).into_owned());
            at += 16;
        }
        reasons
    }

    /// The function name holding run-time address `pc`, for messages.
    pub fn function_at(&self, pc: u64) -> Option<String> {
        let offset = u32::try_from(pc.checked_sub(self.text)?).ok()?;
        let func = self.pclntab.find(offset)?;
        Some(self.pclntab.name(&func).into_owned())
    }
}

/// The run-time address of `runtime.firstmoduledata`, whose first word points to the
/// function table: in `.go.module` (Go 1.26+) or `.noptrdata`.
fn find_moduledata(binary: &GoBinary, memory: &dyn Memory, bias: u64, pclntab: u64) -> Option<u64> {
    [".go.module", ".noptrdata"].iter().find_map(|name| {
        let section = binary.go_section(name)?;
        let mut data = vec![0u8; section.size as usize];
        memory.read(section.address + bias, &mut data).ok()?;
        data.chunks_exact(8)
            .position(|w| u64::from_le_bytes(w.try_into().expect("8 bytes")) == pclntab)
            .map(|i| section.address + bias + i as u64 * 8)
    })
}
