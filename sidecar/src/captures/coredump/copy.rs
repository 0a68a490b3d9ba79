//! Copying the target's memory while it is stopped: the segments of the core and where
//! each piece of them comes from (zero pages found through `/proc/PID/pagemap`, bytes
//! copied into a buffer allocated before the stop, or the live process when the buffer is
//! full), read with `process_vm_readv` in large chunks on several threads, with
//! `/proc/PID/mem` as the fallback for pages `process_vm_readv` cannot read.

use std::fs::File;
use std::io::IoSliceMut;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use nix::errno::Errno;
use nix::sys::uio::{RemoteIoVec, process_vm_readv};
use nix::unistd::Pid;
use object::elf::{PF_R, PF_W, PF_X};
use procfs::process::MemoryPageFlags;

use super::plan::{Extent, Plan};

/// The largest piece read by one call: a thread's unit of work.
const PIECE_BYTES: u64 = 64 << 20;

/// Where the bytes of a piece of a segment come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Pages that read as zero (never touched): nothing to copy.
    Zero,
    /// Copied into the buffer at this offset.
    Copied(usize),
    /// Still to be read from the stopped process (the buffer was full).
    Live,
    /// Not copied: the target exited or the pause bound passed first. The core ends here.
    Missing,
}

/// A page-aligned run of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    /// Its address in the target.
    pub address: u64,
    /// Its length.
    pub len: u64,
    /// Where its bytes come from.
    pub source: Source,
}

/// One PT_LOAD segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// `PF_R | PF_W | PF_X`.
    pub flags: u32,
    /// Its pieces, covering `start..start + file_bytes`.
    pub pieces: Vec<Piece>,
}

impl Segment {
    /// Bytes the file holds for this segment.
    pub fn file_bytes(&self) -> u64 {
        self.pieces.iter().map(|p| p.len).sum()
    }
}

/// Memory allocated (and faulted in) before the stop, so that copying into it costs no
/// page faults while the target waits.
pub struct Buffer {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the buffer is a private anonymous mapping owned by this value alone.
unsafe impl Send for Buffer {}

impl Buffer {
    /// Maps `len` bytes and faults them in on `threads` threads.
    pub fn allocate(len: usize, threads: usize) -> std::io::Result<Self> {
        if len == 0 {
            return Ok(Self {
                ptr: std::ptr::NonNull::dangling().as_ptr(),
                len,
            });
        }
        // SAFETY: a new private anonymous mapping; no existing memory is affected.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let buffer = Self {
            ptr: ptr.cast(),
            len,
        };
        // Fault the pages in on `threads` threads (the kernel zeroes them in parallel).
        let page = 4096;
        let share = len.div_ceil(threads.max(1)).next_multiple_of(page);
        std::thread::scope(|scope| {
            for start in (0..len).step_by(share) {
                let addr = buffer.ptr as usize + start;
                let n = share.min(len - start);
                scope.spawn(move || populate(addr, n));
            }
        });
        Ok(buffer)
    }

    /// Its size.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: ptr..ptr+len is mapped and owned by self.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, and borrowed mutably.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

/// Faults in `len` bytes at `addr`, part of a mapping a [`Buffer`] owns.
fn populate(addr: usize, len: usize) {
    let ptr = addr as *mut u8;
    // SAFETY: addr..addr+len lies in the buffer's mapping, which outlives this call; nothing
    // reads it yet. MADV_POPULATE_WRITE (Linux 5.14) faults every page in; older kernels
    // get the pages touched one by one. (Huge pages would copy a little faster but can
    // stall here for seconds in compaction.)
    unsafe {
        if libc::madvise(ptr.cast(), len, 23 /* MADV_POPULATE_WRITE */) != 0 {
            for offset in (0..len).step_by(4096) {
                ptr.add(offset).write_volatile(0);
            }
        }
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: unmaps exactly the mapping created in `allocate`.
            unsafe { libc::munmap(self.ptr.cast(), self.len) };
        }
    }
}

/// Why copying stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupted {
    /// The target exited.
    TargetExited,
    /// The pause bound passed.
    PauseBound,
}

/// The segments of the core, with what was copied so far.
pub struct Image {
    /// PT_LOAD segments in address order.
    pub segments: Vec<Segment>,
    /// Holds the `Copied` pieces.
    pub buffer: Buffer,
    /// Pages that could not be read (written as zeros, like the kernel does).
    pub unreadable_pages: u64,
    /// Set when copying stopped early.
    pub interrupted: Option<Interrupted>,
}

impl Image {
    /// Whether some pieces are still to be read from the stopped process.
    pub fn needs_live_reads(&self) -> bool {
        self.pieces().any(|p| p.source == Source::Live)
    }

    /// Bytes of memory the file holds.
    pub fn memory_bytes(&self) -> u64 {
        self.segments.iter().map(Segment::file_bytes).sum()
    }

    /// Bytes copied into the buffer.
    pub fn copied_bytes(&self) -> u64 {
        self.pieces()
            .filter(|p| matches!(p.source, Source::Copied(_)))
            .map(|p| p.len)
            .sum()
    }

    fn pieces(&self) -> impl Iterator<Item = &Piece> {
        self.segments.iter().flat_map(|s| s.pieces.iter())
    }
}

/// The target's memory, read through `process_vm_readv` and `/proc/PID/mem`.
pub struct Memory {
    pid: Pid,
    mem: File,
    pagemap: File,
    page_size: u64,
}

impl Memory {
    /// Opens `/proc/PID/mem` and `/proc/PID/pagemap` under `proc_dir`.
    pub fn open(proc_dir: &std::path::Path, pid: i32, page_size: u64) -> std::io::Result<Self> {
        Ok(Self {
            pid: Pid::from_raw(pid),
            mem: File::open(proc_dir.join("mem"))?,
            pagemap: File::open(proc_dir.join("pagemap"))?,
            page_size,
        })
    }

    /// Fills `buf` from `address`. Pages neither call can read are left as they are
    /// (zeros) and counted. Fails with `Interrupted::TargetExited` when the target is gone.
    pub fn read(&self, address: u64, buf: &mut [u8]) -> Result<u64, Interrupted> {
        let mut done = 0usize;
        let mut unreadable = 0;
        while done < buf.len() {
            let remote = [RemoteIoVec {
                base: (address + done as u64) as usize,
                len: buf.len() - done,
            }];
            let n =
                match process_vm_readv(self.pid, &mut [IoSliceMut::new(&mut buf[done..])], &remote)
                {
                    Ok(n) => n,
                    Err(Errno::ESRCH) => return Err(Interrupted::TargetExited),
                    Err(_) => 0,
                };
            done += n;
            if done < buf.len() {
                // This page failed: /proc/PID/mem reads what ptrace may (PROT_NONE pages
                // that were written, say).
                let page = (self.page_size as usize).min(buf.len() - done);
                let at = address + done as u64;
                match self.mem.read_at(&mut buf[done..done + page], at) {
                    Ok(m) if m == page => {}
                    Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
                        return Err(Interrupted::TargetExited);
                    }
                    _ => unreadable += 1,
                }
                done += page;
            }
        }
        Ok(unreadable)
    }

    /// Which pages of `start..end` are resident or swapped out (one bool per page).
    pub fn populated(&self, start: u64, end: u64) -> std::io::Result<Vec<bool>> {
        let pages = ((end - start) / self.page_size) as usize;
        let mut raw = vec![0u8; pages * 8];
        self.pagemap
            .read_exact_at(&mut raw, start / self.page_size * 8)?;
        let populated = MemoryPageFlags::PRESENT.bits() | MemoryPageFlags::SWAP.bits();
        Ok(raw
            .chunks_exact(8)
            .map(|e| u64::from_ne_bytes(e.try_into().expect("8 bytes")) & populated != 0)
            .collect())
    }
}

/// Lays out the segments of `plan`, splitting anonymous memory into zero runs (pages
/// neither resident nor swapped out) and runs to read.
pub fn layout(plan: &Plan, memory: &Memory) -> std::io::Result<Vec<Segment>> {
    let page = memory.page_size;
    let mut segments = Vec::with_capacity(plan.regions.len());
    for region in &plan.regions {
        let flags = flags(region);
        let bytes = region.dump_bytes(page);
        let mut pieces = Vec::new();
        if bytes > 0 && region.anonymous && region.extent == Extent::Whole {
            let populated = memory.populated(region.start, region.end)?;
            let mut run_start = 0;
            for i in 1..=populated.len() {
                if i == populated.len() || populated[i] != populated[run_start] {
                    let source = if populated[run_start] {
                        Source::Live
                    } else {
                        Source::Zero
                    };
                    push_run(
                        &mut pieces,
                        region.start + run_start as u64 * page,
                        (i - run_start) as u64 * page,
                        source,
                    );
                    run_start = i;
                }
            }
        } else if bytes > 0 {
            push_run(&mut pieces, region.start, bytes, Source::Live);
        }
        segments.push(Segment {
            start: region.start,
            end: region.end,
            flags,
            pieces,
        });
    }
    Ok(segments)
}

/// Lays out the segments of `plan` without reading pagemap: every byte is to be read.
pub fn layout_unchecked(plan: &Plan, page_size: u64) -> Vec<Segment> {
    plan.regions
        .iter()
        .map(|region| {
            let mut pieces = Vec::new();
            push_run(
                &mut pieces,
                region.start,
                region.dump_bytes(page_size),
                Source::Live,
            );
            Segment {
                start: region.start,
                end: region.end,
                flags: flags(region),
                pieces,
            }
        })
        .collect()
}

fn flags(region: &super::plan::Region) -> u32 {
    (if region.read { PF_R } else { 0 })
        | (if region.write { PF_W } else { 0 })
        | (if region.execute { PF_X } else { 0 })
}

/// Appends a run, split into pieces of at most [`PIECE_BYTES`].
fn push_run(pieces: &mut Vec<Piece>, address: u64, len: u64, source: Source) {
    let step = if source == Source::Zero {
        len
    } else {
        PIECE_BYTES
    };
    let mut at = 0;
    while at < len {
        let n = step.min(len - at);
        pieces.push(Piece {
            address: address + at,
            len: n,
            source,
        });
        at += n;
    }
}

/// Copies every piece to read into `buffer` while it has room, on `threads` threads,
/// stopping at `deadline`. Pieces that do not fit stay `Live`.
pub fn copy(
    mut segments: Vec<Segment>,
    mut buffer: Buffer,
    memory: &Memory,
    threads: usize,
    deadline: Instant,
) -> Image {
    // Assign buffer offsets in address order.
    let mut offset = 0usize;
    let mut jobs: Vec<&mut Piece> = Vec::new();
    for piece in segments.iter_mut().flat_map(|s| s.pieces.iter_mut()) {
        if piece.source == Source::Live && offset + piece.len as usize <= buffer.len() {
            piece.source = Source::Copied(offset);
            offset += piece.len as usize;
            jobs.push(piece);
        }
    }
    // Split the jobs (and the buffer with them) into `threads` runs of similar size.
    let threads = threads.max(1);
    let share = offset.div_ceil(threads).max(1);
    let mut groups: Vec<(Vec<&mut Piece>, &mut [u8], usize)> = Vec::new();
    let mut rest: &mut [u8] = &mut buffer.as_mut_slice()[..offset];
    let mut base = 0;
    let mut current = Vec::new();
    let mut current_bytes = 0;
    for job in jobs {
        current_bytes += job.len as usize;
        current.push(job);
        if current_bytes >= share {
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(current_bytes);
            groups.push((std::mem::take(&mut current), head, base));
            base += current_bytes;
            rest = tail;
            current_bytes = 0;
        }
    }
    if !current.is_empty() {
        groups.push((current, rest, base));
    }
    let stop = AtomicBool::new(false);
    let results: Vec<(u64, Option<Interrupted>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = groups
            .into_iter()
            .map(|(pieces, slice, base)| {
                let stop = &stop;
                scope.spawn(move || copy_group(pieces, slice, base, memory, deadline, stop))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("copy thread panicked"))
            .collect()
    });
    let unreadable_pages = results.iter().map(|r| r.0).sum();
    let interrupted = results.iter().find_map(|r| r.1);
    Image {
        segments,
        buffer,
        unreadable_pages,
        interrupted,
    }
}

fn copy_group(
    pieces: Vec<&mut Piece>,
    slice: &mut [u8],
    base: usize,
    memory: &Memory,
    deadline: Instant,
    stop: &AtomicBool,
) -> (u64, Option<Interrupted>) {
    let mut unreadable = 0;
    let mut interrupted = None;
    for piece in pieces {
        if interrupted.is_none() && stop.load(Ordering::Relaxed) {
            interrupted = Some(Interrupted::PauseBound);
        }
        if interrupted.is_none() && Instant::now() >= deadline {
            interrupted = Some(Interrupted::PauseBound);
            stop.store(true, Ordering::Relaxed);
        }
        if interrupted.is_some() {
            piece.source = Source::Missing;
            continue;
        }
        let Source::Copied(offset) = piece.source else {
            continue;
        };
        let local = &mut slice[offset - base..offset - base + piece.len as usize];
        match memory.read(piece.address, local) {
            Ok(n) => unreadable += n,
            Err(e) => {
                interrupted = Some(e);
                stop.store(true, Ordering::Relaxed);
                piece.source = Source::Missing;
            }
        }
    }
    (unreadable, interrupted)
}

/// Drops the file bytes of ELF-header segments whose first page is not an ELF header
/// (the kernel keeps that page only for ELF files).
pub fn keep_only_elf_headers(image: &mut Image, plan: &Plan) {
    for (segment, region) in image.segments.iter_mut().zip(&plan.regions) {
        if region.extent != Extent::ElfHeader {
            continue;
        }
        let is_elf = match segment.pieces.first().map(|p| p.source) {
            Some(Source::Copied(offset)) => {
                image.buffer.as_slice()[offset..].starts_with(b"\x7fELF")
            }
            _ => true,
        };
        if !is_elf {
            segment.pieces.clear();
        }
    }
}
