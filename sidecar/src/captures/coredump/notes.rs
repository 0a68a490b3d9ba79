//! The contents of a core file's PT_NOTE segment, laid out as the Linux kernel writes them
//! on x86_64: per thread NT_PRSTATUS (`struct elf_prstatus`: signals, ids, times and the
//! general registers) and NT_PRFPREG (`user_fpregs_struct`), and once, after the first
//! thread's NT_PRSTATUS, NT_PRPSINFO (`struct elf_prpsinfo`), NT_SIGINFO, NT_AUXV and
//! NT_FILE (the file-backed mappings).

use object::LittleEndian as LE;
use object::elf::{
    NT_AUXV, NT_FILE, NT_PRFPREG, NT_PRPSINFO, NT_PRSTATUS, NT_SIGINFO, NoteHeader64,
};
use object::endian::U32;
use object::pod::bytes_of;

/// One stopped thread, as its NT_PRSTATUS and NT_PRFPREG notes tell it.
#[derive(Debug, Clone)]
pub struct ThreadState {
    /// The thread id.
    pub tid: i32,
    /// General-purpose registers.
    pub registers: libc::user_regs_struct,
    /// Floating-point and SSE registers, when they could be read.
    pub fp_registers: Option<libc::user_fpregs_struct>,
    /// User CPU time, microseconds.
    pub user_us: u64,
    /// System CPU time, microseconds.
    pub system_us: u64,
    /// Pending signals (`SigPnd`).
    pub pending: u64,
    /// Blocked signals (`SigBlk`).
    pub blocked: u64,
}

/// The process, as its NT_PRPSINFO note tells it.
#[derive(Debug, Clone, Default)]
pub struct ProcessState {
    /// Process id.
    pub pid: i32,
    /// Parent's pid.
    pub ppid: i32,
    /// Process group.
    pub pgrp: i32,
    /// Session.
    pub sid: i32,
    /// Real user id.
    pub uid: u32,
    /// Real group id.
    pub gid: u32,
    /// State letter (`R`, `S`, `t`…).
    pub state: char,
    /// Nice value.
    pub nice: i64,
    /// Kernel flags (`PF_*`).
    pub flags: u64,
    /// The command name.
    pub comm: String,
    /// The command line, arguments separated by spaces.
    pub args: String,
    /// The signal information of the first thread's stop (`siginfo_t`, 128 bytes).
    pub siginfo: Vec<u8>,
}

/// A file-backed mapping for NT_FILE: start, end, offset in the file (bytes), path.
pub type FileMapping = (u64, u64, u64, String);

const PRSTATUS_BYTES: usize = 336;
const PRPSINFO_BYTES: usize = 136;

/// Lays out every note. `threads` starts with the thread the core is about (the main
/// thread): debuggers show it first.
pub fn build(
    process: &ProcessState,
    threads: &[ThreadState],
    auxv: &[u8],
    files: &[FileMapping],
    page_size: u64,
) -> Vec<u8> {
    let mut notes = Vec::new();
    for (i, thread) in threads.iter().enumerate() {
        note(&mut notes, NT_PRSTATUS, &prstatus(process, thread));
        if i == 0 {
            note(&mut notes, NT_PRPSINFO, &prpsinfo(process));
            note(&mut notes, NT_SIGINFO, &process.siginfo);
            note(&mut notes, NT_AUXV, auxv);
            note(&mut notes, NT_FILE, &file_note(files, page_size));
        }
        if let Some(fp) = &thread.fp_registers {
            note(&mut notes, NT_PRFPREG, &fp_registers(fp));
        }
    }
    notes
}

/// Appends one note named "CORE": header, name and description, each padded to 4 bytes.
fn note(out: &mut Vec<u8>, kind: u32, desc: &[u8]) {
    const NAME: &[u8] = b"CORE\0";
    let header = NoteHeader64 {
        n_namesz: U32::new(LE, NAME.len() as u32),
        n_descsz: U32::new(LE, desc.len() as u32),
        n_type: U32::new(LE, kind),
    };
    out.extend_from_slice(bytes_of(&header));
    out.extend_from_slice(NAME);
    pad4(out);
    out.extend_from_slice(desc);
    pad4(out);
}

fn pad4(out: &mut Vec<u8>) {
    out.resize(out.len().next_multiple_of(4), 0);
}

/// A little-endian writer for the C structs the `object` crate does not define.
struct Fields(Vec<u8>);

impl Fields {
    fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn bytes(&mut self, v: &[u8], len: usize) -> &mut Self {
        let n = v.len().min(len);
        self.0.extend_from_slice(&v[..n]);
        self.0.resize(self.0.len() + len - n, 0);
        self
    }
    fn timeval(&mut self, us: u64) -> &mut Self {
        self.u64(us / 1_000_000).u64(us % 1_000_000)
    }
}

/// `struct elf_prstatus` (x86_64, 336 bytes).
fn prstatus(process: &ProcessState, thread: &ThreadState) -> Vec<u8> {
    let r = &thread.registers;
    let mut f = Fields(Vec::with_capacity(PRSTATUS_BYTES));
    // pr_info (si_signo, si_code, si_errno), pr_cursig and padding: no signal is being
    // delivered, the process was only stopped for the snapshot.
    f.u32(0).u32(0).u32(0).u16(0).u16(0);
    f.u64(thread.pending).u64(thread.blocked);
    f.u32(thread.tid as u32)
        .u32(process.ppid as u32)
        .u32(process.pgrp as u32)
        .u32(process.sid as u32);
    f.timeval(thread.user_us).timeval(thread.system_us);
    f.timeval(0).timeval(0);
    // pr_reg: elf_gregset_t, in user_regs_struct order.
    for v in [
        r.r15, r.r14, r.r13, r.r12, r.rbp, r.rbx, r.r11, r.r10, r.r9, r.r8, r.rax, r.rcx, r.rdx,
        r.rsi, r.rdi, r.orig_rax, r.rip, r.cs, r.eflags, r.rsp, r.ss, r.fs_base, r.gs_base, r.ds,
        r.es, r.fs, r.gs,
    ] {
        f.u64(v);
    }
    f.u32(u32::from(thread.fp_registers.is_some())).u32(0);
    debug_assert_eq!(f.0.len(), PRSTATUS_BYTES);
    f.0
}

/// `struct elf_prpsinfo` (x86_64, 136 bytes).
fn prpsinfo(process: &ProcessState) -> Vec<u8> {
    let sname = if process.state.is_ascii() {
        process.state as u8
    } else {
        b'?'
    };
    let state = b"RSDTZW".iter().position(|&c| c == sname).unwrap_or(0) as u8;
    let mut f = Fields(Vec::with_capacity(PRPSINFO_BYTES));
    f.bytes(
        &[
            state,
            sname,
            u8::from(sname == b'Z'),
            process.nice as i8 as u8,
        ],
        4,
    );
    f.u32(0).u64(process.flags);
    f.u32(process.uid).u32(process.gid);
    f.u32(process.pid as u32)
        .u32(process.ppid as u32)
        .u32(process.pgrp as u32)
        .u32(process.sid as u32);
    // The kernel keeps room for the terminating NUL in both strings.
    f.bytes(&process.comm.as_bytes()[..process.comm.len().min(15)], 16);
    f.bytes(&process.args.as_bytes()[..process.args.len().min(79)], 80);
    debug_assert_eq!(f.0.len(), PRPSINFO_BYTES);
    f.0
}

/// `user_fpregs_struct` (512 bytes, the FXSAVE area).
fn fp_registers(fp: &libc::user_fpregs_struct) -> Vec<u8> {
    let mut f = Fields(Vec::with_capacity(512));
    f.u16(fp.cwd).u16(fp.swd).u16(fp.ftw).u16(fp.fop);
    f.u64(fp.rip).u64(fp.rdp).u32(fp.mxcsr).u32(fp.mxcr_mask);
    for v in fp.st_space.iter().chain(&fp.xmm_space) {
        f.u32(*v);
    }
    f.0.resize(512, 0);
    f.0
}

/// NT_FILE: count, page size, (start, end, offset in pages) per mapping, then the paths.
fn file_note(files: &[FileMapping], page_size: u64) -> Vec<u8> {
    let mut f = Fields(Vec::new());
    f.u64(files.len() as u64).u64(page_size);
    for (start, end, offset, _) in files {
        f.u64(*start).u64(*end).u64(offset / page_size);
    }
    for (.., path) in files {
        f.0.extend_from_slice(path.as_bytes());
        f.0.push(0);
    }
    f.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thread(tid: i32) -> ThreadState {
        // SAFETY: user_regs_struct and user_fpregs_struct are plain integers; all-zero is
        // a valid value.
        let (mut registers, fp): (libc::user_regs_struct, libc::user_fpregs_struct) =
            unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
        registers.rip = 0x401000;
        registers.rsp = 0x7ffc0000;
        ThreadState {
            tid,
            registers,
            fp_registers: Some(fp),
            user_us: 1_500_000,
            system_us: 20,
            pending: 0,
            blocked: 1 << 9,
        }
    }

    #[test]
    fn notes_follow_the_kernels_order_and_layout() {
        let process = ProcessState {
            pid: 42,
            comm: "app".into(),
            args: "app --serve".into(),
            state: 'S',
            siginfo: vec![0; 128],
            ..Default::default()
        };
        let files = [(0x1000, 0x3000, 0x2000, "/usr/bin/app".to_string())];
        let notes = build(&process, &[thread(42), thread(43)], &[1; 16], &files, 4096);
        let mut kinds = Vec::new();
        let mut at = 0;
        while at < notes.len() {
            let word = |i: usize| u32::from_le_bytes(notes[at + i..at + i + 4].try_into().unwrap());
            let (namesz, descsz, kind) = (word(0) as usize, word(4) as usize, word(8));
            assert_eq!(&notes[at + 12..at + 17], b"CORE\0");
            let desc = &notes[at + 12 + namesz.next_multiple_of(4)..][..descsz];
            match kind {
                NT_PRSTATUS => {
                    assert_eq!(descsz, 336);
                    // pr_pid at 32, pr_reg.rip (17th register) at 112 + 16 * 8.
                    let tid = u32::from_le_bytes(desc[32..36].try_into().unwrap());
                    assert!(tid == 42 || tid == 43);
                    assert_eq!(&desc[240..248], &0x401000u64.to_le_bytes());
                    assert_eq!(&desc[48..56], &1u64.to_le_bytes()); // utime seconds
                }
                NT_PRPSINFO => {
                    assert_eq!(descsz, 136);
                    assert_eq!(&desc[40..44], b"app\0");
                    assert_eq!(&desc[56..68], b"app --serve\0");
                }
                NT_FILE => {
                    assert_eq!(&desc[0..8], &1u64.to_le_bytes());
                    assert_eq!(&desc[32..40], &2u64.to_le_bytes()); // offset in pages
                    assert_eq!(&desc[40..], b"/usr/bin/app\0");
                }
                NT_PRFPREG => assert_eq!(descsz, 512),
                _ => {}
            }
            kinds.push(kind);
            at += 12 + namesz.next_multiple_of(4) + descsz.next_multiple_of(4);
        }
        assert_eq!(
            kinds,
            [
                NT_PRSTATUS,
                NT_PRPSINFO,
                NT_SIGINFO,
                NT_AUXV,
                NT_FILE,
                NT_PRFPREG,
                NT_PRSTATUS,
                NT_PRFPREG
            ]
        );
    }
}
