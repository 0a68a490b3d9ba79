//! Writing the core file: the ELF header and program headers (the `object` crate's ELF
//! types), the notes, then every segment's bytes, streamed through a multithreaded zstd
//! encoder into a temporary file that is fsynced and renamed to `core.zst` only when it is
//! complete (`core.partial.zst` when the copy stopped early). Zero pages are written as
//! zeros, which zstd stores in a few bytes and `zstd -d` turns back into holes.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::files::HashingWriter;
use object::LittleEndian as LE;
use object::elf::{
    ELFCLASS64, ELFDATA2LSB, ELFMAG, ELFOSABI_NONE, EM_X86_64, ET_CORE, EV_CURRENT, FileHeader64,
    Ident, PT_LOAD, PT_NOTE, ProgramHeader64,
};
use object::endian::{U16, U32, U64};
use object::pod::bytes_of;

use super::copy::{Image, Interrupted, Memory, Source};

/// The name of a complete core.
pub const CORE_FILE: &str = "core.zst";
/// The name of a core whose copy stopped early.
pub const PARTIAL_CORE_FILE: &str = "core.partial.zst";
/// The name while it is written (left behind only if procshot is killed meanwhile).
pub const TEMPORARY_FILE: &str = "core.writing.tmp";

/// How to compress.
#[derive(Debug, Clone, Copy)]
pub struct Compression {
    /// zstd level (1 fastest … 19).
    pub level: i32,
    /// zstd worker threads (0: compress on the writing thread).
    pub workers: u32,
}

/// The written file.
#[derive(Debug, Clone)]
pub struct Written {
    /// [`CORE_FILE`] or [`PARTIAL_CORE_FILE`].
    pub name: &'static str,
    /// Compressed size.
    pub bytes: u64,
    /// Hex sha256 of the compressed file.
    pub sha256: String,
    /// Bytes of memory in the file.
    pub memory_bytes: u64,
    /// PT_LOAD segments.
    pub segments: usize,
    /// Set when the core ends early.
    pub interrupted: Option<Interrupted>,
}

/// Writes the core into `dir`. Pieces still `Live` are read from `memory` (the target is
/// still stopped then) until `deadline`.
pub fn write(
    dir: &Path,
    notes: &[u8],
    image: &mut Image,
    memory: &Memory,
    deadline: Instant,
    compression: Compression,
    page_size: u64,
) -> Result<Written, (PathBuf, std::io::Error)> {
    let temporary = dir.join(TEMPORARY_FILE);
    let result = write_to(
        &temporary,
        notes,
        image,
        memory,
        deadline,
        compression,
        page_size,
    )
    .and_then(|mut written| {
        let name = if written.interrupted.is_some() {
            PARTIAL_CORE_FILE
        } else {
            CORE_FILE
        };
        fs::rename(&temporary, dir.join(name))?;
        File::open(dir)?.sync_all()?;
        written.name = name;
        Ok(written)
    });
    result.map_err(|e| {
        let _ = fs::remove_file(&temporary);
        (temporary, e)
    })
}

fn write_to(
    path: &Path,
    notes: &[u8],
    image: &mut Image,
    memory: &Memory,
    deadline: Instant,
    compression: Compression,
    page_size: u64,
) -> std::io::Result<Written> {
    let mut interrupted = image.interrupted;
    if interrupted.is_some() {
        drop_from_first_missing(image);
    }
    let file = File::create(path)?;
    let hashing = HashingWriter::new(BufWriter::with_capacity(1 << 20, file));
    let mut encoder = zstd::stream::write::Encoder::new(hashing, compression.level)?;
    if compression.workers > 0 {
        encoder.multithread(compression.workers)?;
    }
    let headers = headers(notes.len() as u64, image, page_size);
    encoder.write_all(&headers)?;
    encoder.write_all(notes)?;
    let data_start = (headers.len() + notes.len()).next_multiple_of(page_size as usize);
    write_zeros(
        &mut encoder,
        (data_start - headers.len() - notes.len()) as u64,
    )?;

    let mut scratch = Vec::new();
    let mut memory_bytes = 0;
    'segments: for segment in &image.segments {
        for piece in &segment.pieces {
            match piece.source {
                Source::Zero => write_zeros(&mut encoder, piece.len)?,
                Source::Copied(offset) => encoder
                    .write_all(&image.buffer.as_slice()[offset..offset + piece.len as usize])?,
                Source::Live => {
                    scratch.resize((8 << 20).min(piece.len as usize), 0);
                    let mut at = 0;
                    while at < piece.len {
                        if Instant::now() >= deadline {
                            interrupted = Some(Interrupted::PauseBound);
                            break 'segments;
                        }
                        let n = scratch.len().min((piece.len - at) as usize);
                        scratch[..n].fill(0);
                        match memory.read(piece.address + at, &mut scratch[..n]) {
                            Ok(unreadable) => image.unreadable_pages += unreadable,
                            Err(e) => {
                                interrupted = Some(e);
                                break 'segments;
                            }
                        }
                        encoder.write_all(&scratch[..n])?;
                        at += n as u64;
                        memory_bytes += n as u64;
                    }
                    continue;
                }
                Source::Missing => break 'segments,
            }
            memory_bytes += piece.len;
        }
    }
    let mut hashing = encoder.finish()?;
    hashing.flush()?;
    let (buffered, bytes, sha256) = hashing.finish();
    let file = buffered.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(Written {
        name: CORE_FILE,
        bytes,
        sha256,
        memory_bytes,
        segments: image.segments.len(),
        interrupted,
    })
}

/// Removes the first `Missing` piece and everything after it, so that the program headers
/// describe only what the file holds (later segments keep their size in memory).
fn drop_from_first_missing(image: &mut Image) {
    let mut missing = false;
    for segment in &mut image.segments {
        if missing {
            segment.pieces.clear();
        } else if let Some(i) = segment
            .pieces
            .iter()
            .position(|p| matches!(p.source, Source::Missing | Source::Live))
        {
            segment.pieces.truncate(i);
            missing = true;
        }
    }
}

/// The ELF header, the PT_NOTE header and one PT_LOAD header per segment.
fn headers(notes_len: u64, image: &Image, page_size: u64) -> Vec<u8> {
    let count = image.segments.len() + 1;
    let header_bytes =
        (size_of::<FileHeader64<LE>>() + count * size_of::<ProgramHeader64<LE>>()) as u64;
    let header = FileHeader64::<LE> {
        e_ident: Ident {
            magic: ELFMAG,
            class: ELFCLASS64,
            data: ELFDATA2LSB,
            version: EV_CURRENT,
            os_abi: ELFOSABI_NONE,
            abi_version: 0,
            padding: [0; 7],
        },
        e_type: U16::new(LE, ET_CORE),
        e_machine: U16::new(LE, EM_X86_64),
        e_version: U32::new(LE, u32::from(EV_CURRENT)),
        e_entry: U64::new(LE, 0),
        e_phoff: U64::new(LE, size_of::<FileHeader64<LE>>() as u64),
        e_shoff: U64::new(LE, 0),
        e_flags: U32::new(LE, 0),
        e_ehsize: U16::new(LE, size_of::<FileHeader64<LE>>() as u16),
        e_phentsize: U16::new(LE, size_of::<ProgramHeader64<LE>>() as u16),
        e_phnum: U16::new(LE, count.min(0xffff) as u16),
        e_shentsize: U16::new(LE, 0),
        e_shnum: U16::new(LE, 0),
        e_shstrndx: U16::new(LE, 0),
    };
    let mut out = Vec::with_capacity(header_bytes as usize);
    out.extend_from_slice(bytes_of(&header));
    let program_header =
        |kind, flags, offset, address, file_bytes, memory_bytes, align| ProgramHeader64::<LE> {
            p_type: U32::new(LE, kind),
            p_flags: U32::new(LE, flags),
            p_offset: U64::new(LE, offset),
            p_vaddr: U64::new(LE, address),
            p_paddr: U64::new(LE, 0),
            p_filesz: U64::new(LE, file_bytes),
            p_memsz: U64::new(LE, memory_bytes),
            p_align: U64::new(LE, align),
        };
    out.extend_from_slice(bytes_of(&program_header(
        PT_NOTE,
        0,
        header_bytes,
        0,
        notes_len,
        0,
        4,
    )));
    let mut offset = (header_bytes + notes_len).next_multiple_of(page_size);
    for segment in &image.segments {
        let file_bytes = segment.file_bytes();
        out.extend_from_slice(bytes_of(&program_header(
            PT_LOAD,
            segment.flags,
            offset,
            segment.start,
            file_bytes,
            segment.end - segment.start,
            page_size,
        )));
        offset += file_bytes;
    }
    out
}

fn write_zeros(out: &mut impl Write, mut len: u64) -> std::io::Result<()> {
    static ZEROS: [u8; 1 << 16] = [0; 1 << 16];
    while len > 0 {
        let n = len.min(ZEROS.len() as u64) as usize;
        out.write_all(&ZEROS[..n])?;
        len -= n as u64;
    }
    Ok(())
}
