//! Stopping one thread at a time, just long enough to copy what unwinding needs: its
//! registers and the top of its stack. Each thread is seized, interrupted, read and
//! detached before the next one is touched, so a thread is stopped for tens of
//! microseconds and never longer than the bound it is given to reach its stop, plus one
//! register read and one bounded memory copy.

use std::io::IoSliceMut;
use std::time::{Duration, Instant};

use nix::sys::uio::{RemoteIoVec, process_vm_readv};
use nix::unistd::Pid;

use super::modules::AddressSpace;
use crate::process::ptrace::{PtraceError, Tracee};

/// The most of a thread's stack copied, from its stack pointer upwards (less when the
/// stack's mapping ends sooner). Deep enough for any stack a person reads; Go goroutine
/// stacks live in heap mappings, where the mapping's end is no bound at all.
pub const MAX_STACK_COPY: u64 = 256 * 1024;

/// What was copied from one stopped thread.
#[derive(Debug)]
pub struct ThreadSnapshot {
    /// Instruction pointer.
    pub ip: u64,
    /// Stack pointer.
    pub sp: u64,
    /// Frame pointer.
    pub bp: u64,
    /// The stack from `sp` upwards.
    pub stack: Vec<u8>,
    /// From the moment procshot saw the thread stopped to the end of its detach.
    pub stopped_for: Duration,
}

/// Why a thread has no snapshot.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The thread could not be stopped or read.
    #[error(transparent)]
    Ptrace(#[from] PtraceError),
    /// The stack memory could not be read.
    #[error("cannot read the stack of thread {tid} at {sp:#x}: {errno}")]
    Stack {
        /// The thread.
        tid: i32,
        /// Its stack pointer.
        sp: u64,
        /// What the kernel said.
        errno: nix::errno::Errno,
    },
}

/// Stops thread `tid` of `pid` (waiting at most `max_stop` for the stop), copies its
/// registers and stack, and detaches it.
pub fn snapshot(
    pid: i32,
    tid: i32,
    max_stop: Duration,
    space: &AddressSpace,
) -> Result<ThreadSnapshot, SnapshotError> {
    let tracee = Tracee::stop(tid, max_stop)?;
    let stopped_at = tracee.stopped_at().unwrap_or_else(Instant::now);
    let regs = tracee.registers()?;
    let (ip, sp, bp) = (regs.rip, regs.rsp, regs.rbp);
    let stack = copy_stack(pid, sp, space).map_err(|errno| SnapshotError::Stack { tid, sp, errno });
    tracee.detach();
    let stopped_for = stopped_at.elapsed();
    Ok(ThreadSnapshot {
        ip,
        sp,
        bp,
        stack: stack?,
        stopped_for,
    })
}

/// Copies the stack from `sp` to the end of its mapping, at most [`MAX_STACK_COPY`].
fn copy_stack(pid: i32, sp: u64, space: &AddressSpace) -> Result<Vec<u8>, nix::errno::Errno> {
    // A thread started after the map was read has a stack the map does not know: copy a
    // page, which still gives the innermost frames.
    let end = space.mapping_at(sp).map_or(sp + 4096, |m| m.end);
    let len = end.saturating_sub(sp).min(MAX_STACK_COPY) as usize;
    let mut stack = vec![0u8; len];
    let read = process_vm_readv(
        Pid::from_raw(pid),
        &mut [IoSliceMut::new(&mut stack)],
        &[RemoteIoVec {
            base: sp as usize,
            len,
        }],
    )?;
    stack.truncate(read);
    Ok(stack)
}
