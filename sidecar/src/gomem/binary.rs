//! The target's Go executable as a file: its sections and loadable segments, bytes by
//! link-time address (whole segments loaded on first use and kept), and where the Go
//! runtime's tables are (`.gopclntab` or its magic, `.go.module`). Stripped binaries
//! (`-s -w`) keep everything used here.
//!
//! It is opened through `/proc/PID/exe`, which is the file the process runs even when the
//! path was replaced on disk since; the reader checks the pclntab against memory anyway.

use std::cell::OnceCell;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use object::read::ReadCache;
use object::{Object, ObjectSection, ObjectSegment, SectionFlags};

/// Why the executable cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BinaryError {
    /// Not readable, or not an ELF file.
    #[error("cannot read the executable {path}: {detail}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// An ELF file without Go's tables.
    #[error("{path} has no Go function table (.gopclntab): {detail}")]
    NoPclntab {
        /// The file.
        path: PathBuf,
        /// What was looked for.
        detail: String,
    },
}

/// A section's place.
#[derive(Debug, Clone)]
pub struct Section {
    /// `.text`, `.noptrdata`…
    pub name: String,
    /// Link-time address.
    pub address: u64,
    /// Size in memory.
    pub size: u64,
    /// Writable at run time.
    pub writable: bool,
}

#[derive(Debug)]
struct Segment {
    address: u64,
    file_offset: u64,
    file_size: u64,
    bytes: OnceCell<Vec<u8>>,
}

/// The executable.
#[derive(Debug)]
pub struct GoBinary {
    path: PathBuf,
    file: File,
    /// `e_entry`.
    pub entry: u64,
    /// Every allocated section.
    pub sections: Vec<Section>,
    segments: Vec<Segment>,
}

/// `pcHeader.magic` of Go 1.18–1.19.
pub const MAGIC_118: u32 = 0xffff_fff0;
/// `pcHeader.magic` of Go 1.20 and later.
pub const MAGIC_120: u32 = 0xffff_fff1;

impl GoBinary {
    /// Opens and indexes `path` (only headers are read here).
    pub fn open(path: &Path) -> Result<Self, BinaryError> {
        let read_error = |detail: String| BinaryError::Read {
            path: path.to_path_buf(),
            detail,
        };
        let file = File::open(path).map_err(|e| read_error(e.to_string()))?;
        let (entry, sections, segments) = {
            let cache = ReadCache::new(&file);
            let elf = object::File::parse(&cache).map_err(|e| read_error(e.to_string()))?;
            if elf.architecture() != object::Architecture::X86_64 {
                return Err(read_error(format!(
                    "it is built for {:?}; procshot reads Go runtimes on x86_64 only",
                    elf.architecture()
                )));
            }
            let sections = elf
                .sections()
                .filter(|s| s.address() != 0)
                .map(|s| Section {
                    name: s.name().unwrap_or("").to_string(),
                    address: s.address(),
                    size: s.size(),
                    writable: matches!(s.flags(), SectionFlags::Elf { sh_flags } if sh_flags & u64::from(object::elf::SHF_WRITE) != 0),
                })
                .collect();
            let segments = elf
                .segments()
                .map(|s| {
                    let (file_offset, file_size) = s.file_range();
                    Segment {
                        address: s.address(),
                        file_offset,
                        file_size,
                        bytes: OnceCell::new(),
                    }
                })
                .collect();
            (elf.entry(), sections, segments)
        };
        Ok(Self {
            path: path.to_path_buf(),
            file,
            entry,
            sections,
            segments,
        })
    }

    /// The file's path as opened.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The section named `name`.
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// `len` bytes at link-time address `address`, from the file (`None` where the file
    /// has no bytes for it: `.bss`, or outside every segment).
    pub fn bytes(&self, address: u64, len: u64) -> Option<&[u8]> {
        let end = address.checked_add(len)?;
        let segment = self
            .segments
            .iter()
            .find(|s| address >= s.address && end <= s.address + s.file_size)?;
        let bytes = segment.bytes.get_or_init(|| {
            let mut buf = vec![0u8; segment.file_size as usize];
            match self.file.read_exact_at(&mut buf, segment.file_offset) {
                Ok(()) => buf,
                Err(_) => Vec::new(),
            }
        });
        let start = (address - segment.address) as usize;
        bytes.get(start..start + len as usize)
    }

    /// A section of Go's linker: `NAME`, or `.data.rel.ro NAME` in a PIE binary it linked.
    pub fn go_section(&self, name: &str) -> Option<&Section> {
        self.section(name)
            .or_else(|| self.section(&format!(".data.rel.ro{name}")))
    }

    /// The link-time address and size of the pclntab: its section, or (externally linked
    /// PIE binaries have none) the first pcHeader magic in the read-only data sections.
    pub fn pclntab(&self) -> Result<(u64, u64), BinaryError> {
        if let Some(s) = self.go_section(".gopclntab") {
            return Ok((s.address, s.size));
        }
        for name in [".data.rel.ro", ".rodata"] {
            let Some(section) = self.section(name) else {
                continue;
            };
            let Some(bytes) = self.bytes(section.address, section.size) else {
                continue;
            };
            // The header is pointer-aligned: magic, two zero bytes, minLC 1, ptrSize 8.
            for (i, chunk) in bytes.chunks_exact(8).enumerate() {
                let magic = u32::from_le_bytes(chunk[..4].try_into().expect("4 bytes"));
                if (magic == MAGIC_118 || magic == MAGIC_120) && chunk[4..] == [0, 0, 1, 8] {
                    let offset = i as u64 * 8;
                    return Ok((section.address + offset, section.size - offset));
                }
            }
        }
        Err(BinaryError::NoPclntab {
            path: self.path.clone(),
            detail: "no .gopclntab section and no pcHeader magic in .data.rel.ro or .rodata".into(),
        })
    }
}

/// Reads an unsigned LEB128 varint, Go's `binary.Uvarint`: the encoding of the function
/// table's pc-value tables, of the build info's string lengths, and of protobuf (a pprof
/// profile).
pub fn uvarint(data: &mut &[u8]) -> Option<u64> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = data.split_first()?;
        *data = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}
