//! Where the Go reader gets the target's memory from: the [`Memory`] trait, and its live
//! implementation [`ProcessMemory`] (`process_vm_readv`, many ranges per system call). A
//! core dump's segments can implement the same trait, so every other module of the reader
//! works on either.
//!
//! Nothing here writes to the target or stops it: a read of a live process races with the
//! process, and the callers validate what they read.

use std::io::IoSliceMut;

use nix::errno::Errno;
use nix::sys::uio::{RemoteIoVec, process_vm_readv};
use nix::unistd::Pid;

/// Why memory could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemoryError {
    /// The process is gone.
    #[error("pid {pid} exited while its memory was being read")]
    Exited {
        /// The target.
        pid: i32,
    },
    /// The kernel refused.
    #[error(
        "not allowed to read the memory of pid {pid} ({errno}): run as root or with \
         CAP_SYS_PTRACE, and check /proc/sys/kernel/yama/ptrace_scope"
    )]
    NotPermitted {
        /// The target.
        pid: i32,
        /// What the kernel said.
        errno: Errno,
    },
    /// Nothing is mapped there (or not all of it).
    #[error("{len} bytes at {address:#x} are not mapped in the target")]
    Unmapped {
        /// Where.
        address: u64,
        /// How much was asked for.
        len: usize,
    },
    /// Any other failure.
    #[error("reading {len} bytes at {address:#x} failed: {detail}")]
    Other {
        /// Where.
        address: u64,
        /// How much was asked for.
        len: usize,
        /// What failed.
        detail: String,
    },
}

/// One range to read, with the buffer to read it into.
#[derive(Debug)]
pub struct ReadRequest<'a> {
    /// Where, in the target.
    pub address: u64,
    /// Filled with the range's bytes; its length is the range's.
    pub buf: &'a mut [u8],
    /// Set by [`Memory::read_many`]: whether the whole range was read.
    pub done: bool,
}

impl<'a> ReadRequest<'a> {
    /// A request not yet done.
    pub fn new(address: u64, buf: &'a mut [u8]) -> Self {
        Self {
            address,
            buf,
            done: false,
        }
    }
}

/// A target's memory, read by address.
pub trait Memory {
    /// Reads `buf.len()` bytes at `address`; fails unless every byte was read.
    fn read(&self, address: u64, buf: &mut [u8]) -> Result<(), MemoryError>;

    /// Reads many ranges, setting each request's `done`. A range that is not mapped is left
    /// not done; an error is returned only when nothing more can be read (the process is
    /// gone, or reading is not permitted).
    fn read_many(&self, requests: &mut [ReadRequest<'_>]) -> Result<(), MemoryError> {
        for request in requests.iter_mut() {
            match self.read(request.address, request.buf) {
                Ok(()) => request.done = true,
                Err(e @ (MemoryError::Exited { .. } | MemoryError::NotPermitted { .. })) => {
                    return Err(e);
                }
                Err(_) => request.done = false,
            }
        }
        Ok(())
    }

    /// A little-endian `u64` at `address`.
    fn u64_at(&self, address: u64) -> Result<u64, MemoryError> {
        let mut word = [0u8; 8];
        self.read(address, &mut word)?;
        Ok(u64::from_le_bytes(word))
    }
}

/// The memory of a live process, read with `process_vm_readv` (needs what ptrace needs:
/// root or `CAP_SYS_PTRACE`, and the Yama scope). The process is never stopped.
#[derive(Debug, Clone, Copy)]
pub struct ProcessMemory {
    pid: i32,
}

/// The most ranges one `process_vm_readv` call takes (`UIO_MAXIOV`).
const MAX_IOVECS: usize = 1024;

impl ProcessMemory {
    /// The memory of `pid` (nothing is opened or checked until the first read).
    pub fn new(pid: i32) -> Self {
        Self { pid }
    }

    fn error(&self, errno: Errno, address: u64, len: usize) -> MemoryError {
        match errno {
            Errno::ESRCH => MemoryError::Exited { pid: self.pid },
            Errno::EPERM | Errno::EACCES => MemoryError::NotPermitted {
                pid: self.pid,
                errno,
            },
            Errno::EFAULT | Errno::EIO => MemoryError::Unmapped { address, len },
            errno => MemoryError::Other {
                address,
                len,
                detail: errno.to_string(),
            },
        }
    }
}

impl Memory for ProcessMemory {
    fn read(&self, address: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let len = buf.len();
        let mut request = [ReadRequest::new(address, buf)];
        self.read_many(&mut request)?;
        if request[0].done {
            Ok(())
        } else {
            Err(MemoryError::Unmapped { address, len })
        }
    }

    fn read_many(&self, requests: &mut [ReadRequest<'_>]) -> Result<(), MemoryError> {
        let pid = Pid::from_raw(self.pid);
        let mut next = 0;
        while next < requests.len() {
            let end = (next + MAX_IOVECS).min(requests.len());
            let batch = &mut requests[next..end];
            let remote: Vec<RemoteIoVec> = batch
                .iter()
                .map(|r| RemoteIoVec {
                    base: r.address as usize,
                    len: r.buf.len(),
                })
                .collect();
            let first = (batch[0].address, batch[0].buf.len());
            let mut local: Vec<IoSliceMut<'_>> =
                batch.iter_mut().map(|r| IoSliceMut::new(r.buf)).collect();
            let read = match process_vm_readv(pid, &mut local, &remote) {
                Ok(n) => n,
                // The first range is not mapped: skip it, go on with the next.
                Err(Errno::EFAULT) => 0,
                Err(errno) => return Err(self.error(errno, first.0, first.1)),
            };
            drop(local);
            // The kernel stops at the first range it cannot read whole: those before it
            // are done, that one is not, and the next call starts after it.
            let mut covered = 0;
            let mut consumed = 0;
            for request in batch.iter_mut() {
                consumed += 1;
                if covered + request.buf.len() <= read {
                    covered += request.buf.len();
                    request.done = true;
                } else {
                    request.done = false;
                    break;
                }
            }
            next += consumed;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_memory_is_read_and_holes_are_skipped() {
        let memory = ProcessMemory::new(std::process::id() as i32);
        let data: Vec<u8> = (0..=255).collect();
        let mut one = [0u8; 16];
        memory.read(data.as_ptr() as u64 + 8, &mut one).unwrap();
        assert_eq!(one[0], 8);
        let (mut a, mut b, mut c) = ([0u8; 4], [0u8; 4], [0u8; 4]);
        let mut requests = [
            ReadRequest::new(data.as_ptr() as u64, &mut a),
            ReadRequest::new(8, &mut b), // the first page is never mapped
            ReadRequest::new(data.as_ptr() as u64 + 100, &mut c),
        ];
        memory.read_many(&mut requests).unwrap();
        let done: Vec<bool> = requests.iter().map(|r| r.done).collect();
        assert_eq!(done, [true, false, true]);
        assert_eq!((a[1], c[1]), (1, 101));
        assert!(matches!(
            memory.read(8, &mut one),
            Err(MemoryError::Unmapped { address: 8, .. })
        ));
    }
}
