//! Reading every goroutine from memory: `allglen`, then `allgptr`, then the `runtime.g`
//! structs (neighbours read as one range), then each stopped goroutine's used stack
//! (`[sp, stack.hi)`), then the g structs again. A goroutine counts only when both reads
//! of its g agree, its stack pointer is inside its stack, its `sched.g` points to itself,
//! and its stack unwinds to `runtime.goexit`; the others are read again a few times and
//! then counted as inconsistent, never guessed.
//!
//! Which goroutines are listed, and how their state reads, follows the runtime's
//! `runtime.Stack(all)`: dead goroutines and the runtime's own (started in a `runtime.`
//! function other than `runtime.main`) are left out; a waiting goroutine's state is its
//! wait reason; a running one has no stack (it is on a thread: its thread id is kept).

use std::collections::HashMap;
use std::time::Duration;

use super::frames::{Frame, Stack, Unwinder};
use super::layout::{
    self, GOffsets, STATUS_DEAD, STATUS_LEAKED, STATUS_RUNNING, STATUS_SCAN, STATUS_SYSCALL,
    STATUS_WAITING,
};
use super::memory::{Memory, MemoryError, ReadRequest};
use super::runtime::GoRuntime;

/// The most goroutines believed (`allglen` above it is a torn read or garbage).
const MAX_GOROUTINES: u64 = 50_000_000;
/// The most stack bytes read per goroutine.
const MAX_STACK: u64 = 1 << 20;
/// Neighbouring g structs closer than this are read as one range.
const COALESCE_GAP: u64 = 4096;
/// The longest range read at once.
const MAX_RUN: u64 = 1 << 20;

/// How to read.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Times a goroutine whose reads disagree is read again before it counts as
    /// inconsistent.
    pub retries: u32,
    /// The target's CLOCK_MONOTONIC now, in nanoseconds (for wait durations); `None`
    /// leaves them out.
    pub now_ns: Option<i64>,
    /// When the target is stopped: each thread's (instruction pointer, stack pointer),
    /// by thread id, to unwind the goroutines running on them.
    pub registers: HashMap<i32, (u64, u64)>,
}

/// One goroutine of the program, named as the runtime's traceback names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Goroutine {
    /// Its id (`goid`).
    pub id: u64,
    /// What it does: `runnable`, `running`, `syscall`, or its wait reason as the binary's
    /// own `waitReasonStrings` spells it (`chan receive`, `sync.Mutex.Lock`, …).
    pub state: String,
    /// How long it has been waiting, where the runtime keeps it (`waitsince` is set only
    /// while a GC marks, so most waits have none).
    pub waiting: Option<Duration>,
    /// Whether it is locked to its OS thread (`runtime.LockOSThread`).
    pub locked_to_thread: bool,
    /// Its stack; a running goroutine read without stopping the program has none (its
    /// frames are in its thread's registers).
    pub stack: Stack,
    /// The `go` statement that started it (none for the main goroutine).
    pub created_by: Option<Frame>,
    /// The thread it is on, when running or in a system call.
    pub thread: Option<i32>,
}

/// What one read found.
#[derive(Debug, Clone, Default)]
pub struct GoroutineRead {
    /// The program's goroutines, by id.
    pub goroutines: Vec<Goroutine>,
    /// Goroutines whose reads never agreed (left out of `goroutines`).
    pub inconsistent: u64,
    /// Goroutines read more than once before they agreed.
    pub retried: u64,
}

/// Why goroutines could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Memory failed (the process exited, or reading is not allowed).
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// `allglen` is not believable.
    #[error(
        "runtime.allglen reads {0}, which is not a goroutine count: the layout does not match this program"
    )]
    BadCount(u64),
}

/// The fields of one `runtime.g` the reader uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RawG {
    stack_lo: u64,
    stack_hi: u64,
    m: u64,
    sp: u64,
    pc: u64,
    sched_g: u64,
    syscallsp: u64,
    syscallpc: u64,
    status: u32,
    goid: u64,
    waitsince: i64,
    waitreason: u8,
    lockedm: u64,
    gopc: u64,
    startpc: u64,
}

impl RawG {
    fn parse(bytes: &[u8], o: &GOffsets) -> Self {
        let word = |at: u64| {
            u64::from_le_bytes(
                bytes[at as usize..at as usize + 8]
                    .try_into()
                    .expect("8 bytes"),
            )
        };
        Self {
            stack_lo: word(o.stack_lo),
            stack_hi: word(o.stack_lo + 8),
            m: word(o.m),
            sp: word(o.sched_sp),
            pc: word(o.sched_sp + 8),
            sched_g: word(o.sched_sp + 16),
            syscallsp: word(o.syscallsp),
            syscallpc: word(o.syscallsp + 8),
            status: word(o.atomicstatus) as u32,
            goid: word(o.goid),
            waitsince: word(o.waitsince) as i64,
            waitreason: bytes[o.waitreason as usize],
            lockedm: word(o.lockedm),
            gopc: word(o.gopc),
            startpc: word(o.startpc),
        }
    }

    fn state(&self) -> u32 {
        self.status & !STATUS_SCAN
    }

    /// Where its stack is to be walked from, unless it is running.
    fn resume(&self) -> (u64, u64) {
        if self.state() == STATUS_SYSCALL {
            (self.syscallpc, self.syscallsp)
        } else {
            (self.pc, self.sp)
        }
    }
}

/// What became of one g in one attempt.
enum Outcome {
    /// Not a goroutine of the program (dead, idle, the runtime's own).
    Skipped,
    /// Read and consistent.
    Read(Box<Goroutine>),
    /// Reads disagreed or did not unwind: try again.
    Again,
}

/// Reads every goroutine of the program.
pub fn read(
    runtime: &GoRuntime,
    memory: &dyn Memory,
    options: &ReadOptions,
) -> Result<GoroutineRead, ReadError> {
    let allglen = memory.u64_at(runtime.allgs.allglen)?;
    if allglen > MAX_GOROUTINES {
        return Err(ReadError::BadCount(allglen));
    }
    let allgptr = memory.u64_at(runtime.allgs.allgptr)?;
    let mut pointers = vec![0u8; allglen as usize * 8];
    memory.read(allgptr, &mut pointers)?;
    let mut addresses: Vec<u64> = pointers
        .chunks_exact(8)
        .map(|w| u64::from_le_bytes(w.try_into().expect("8 bytes")))
        .filter(|&a| a != 0)
        .collect();
    addresses.sort_unstable();
    addresses.dedup();

    let reader = Reader {
        runtime,
        memory,
        options,
        unwinder: Unwinder::new(runtime),
        system_starts: HashMap::new().into(),
    };
    let mut result = GoroutineRead::default();
    let mut pending = addresses;
    for attempt in 0..=options.retries {
        let outcomes = reader.attempt(&pending)?;
        let mut again = Vec::new();
        for (address, outcome) in pending.iter().zip(outcomes) {
            match outcome {
                Outcome::Skipped => {}
                Outcome::Read(goroutine) => {
                    result.retried += u64::from(attempt > 0);
                    result.goroutines.push(*goroutine);
                }
                Outcome::Again => again.push(*address),
            }
        }
        pending = again;
        if pending.is_empty() {
            break;
        }
    }
    result.inconsistent = pending.len() as u64;
    result.goroutines.sort_by_key(|g| g.id);
    Ok(result)
}

struct Reader<'a> {
    runtime: &'a GoRuntime,
    memory: &'a dyn Memory,
    options: &'a ReadOptions,
    unwinder: Unwinder<'a>,
    /// Whether a start pc is a runtime goroutine's, by pc.
    system_starts: std::cell::RefCell<HashMap<u64, bool>>,
}

impl Reader<'_> {
    /// One read of the g structs at `addresses`, their stacks, and the g structs again.
    fn attempt(&self, addresses: &[u64]) -> Result<Vec<Outcome>, MemoryError> {
        let first = self.read_gs(addresses)?;
        // Which goroutines need their stack, and from where.
        let mut stacks: Vec<Option<(u64, u64, Vec<u8>)>> = vec![None; addresses.len()];
        let mut threads: Vec<Option<i32>> = vec![None; addresses.len()];
        let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(addresses.len());
        for (i, (&address, g)) in addresses.iter().zip(&first).enumerate() {
            let Some(g) = g else {
                outcomes.push(Some(Outcome::Again));
                continue;
            };
            let state = g.state();
            let dead =
                state == STATUS_DEAD || state == 0 || Some(state) == self.runtime.layout.dead_extra;
            if dead {
                outcomes.push(Some(Outcome::Skipped));
                continue;
            }
            if g.sched_g != address || g.goid == 0 {
                outcomes.push(Some(Outcome::Again));
                continue;
            }
            if self.is_system(g.startpc) {
                outcomes.push(Some(Outcome::Skipped));
                continue;
            }
            if state == STATUS_RUNNING || state == STATUS_SYSCALL {
                threads[i] = self.thread_of(g, address);
            }
            let start = if state == STATUS_RUNNING {
                threads[i]
                    .and_then(|tid| self.options.registers.get(&tid))
                    .map(|&(pc, sp)| (pc, sp))
            } else {
                Some(g.resume())
            };
            if let Some((pc, sp)) = start {
                let inside = g.stack_lo <= sp && sp < g.stack_hi;
                if !inside {
                    // A running goroutine's registers may be on the thread's system stack.
                    outcomes.push(if state == STATUS_RUNNING {
                        None
                    } else {
                        Some(Outcome::Again)
                    });
                    continue;
                }
                let len = (g.stack_hi - sp).min(MAX_STACK) as usize;
                stacks[i] = Some((pc, sp, vec![0u8; len]));
            }
            outcomes.push(None);
        }
        let mut requests: Vec<ReadRequest<'_>> = Vec::new();
        let mut owners = Vec::new();
        for (i, stack) in stacks.iter_mut().enumerate() {
            if let Some((_, sp, buf)) = stack {
                requests.push(ReadRequest::new(*sp, buf));
                owners.push(i);
            }
        }
        self.memory.read_many(&mut requests)?;
        let read_ok: HashMap<usize, bool> = owners
            .iter()
            .zip(&requests)
            .map(|(&i, r)| (i, r.done))
            .collect();
        drop(requests);
        let second = self.read_gs(addresses)?;

        let mut finished = Vec::with_capacity(addresses.len());
        for i in 0..addresses.len() {
            if let Some(outcome) = outcomes[i].take() {
                finished.push(outcome);
                continue;
            }
            let (Some(g), Some(again)) = (first[i], second[i]) else {
                finished.push(Outcome::Again);
                continue;
            };
            if !same(&g, &again) {
                finished.push(Outcome::Again);
                continue;
            }
            let stack = match &stacks[i] {
                None => None,
                Some(_) if !read_ok.get(&i).copied().unwrap_or(false) => {
                    finished.push(Outcome::Again);
                    continue;
                }
                Some((pc, sp, bytes)) => match self.unwinder.unwind(*pc, *sp, bytes) {
                    Ok(stack) => Some(stack),
                    Err(_) if g.state() == STATUS_RUNNING => None,
                    Err(_) => {
                        finished.push(Outcome::Again);
                        continue;
                    }
                },
            };
            finished.push(Outcome::Read(Box::new(
                self.goroutine(&g, stack, threads[i]),
            )));
        }
        Ok(finished)
    }

    /// The g structs at `addresses` (sorted), neighbours read as one range.
    fn read_gs(&self, addresses: &[u64]) -> Result<Vec<Option<RawG>>, MemoryError> {
        let size = self.runtime.layout.g.size;
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for &address in addresses {
            match runs.last_mut() {
                Some((start, end))
                    if address >= *end
                        && address - *end < COALESCE_GAP
                        && address + size - *start <= MAX_RUN =>
                {
                    *end = address + size;
                }
                _ => runs.push((address, address + size)),
            }
        }
        let mut buffers: Vec<Vec<u8>> = runs
            .iter()
            .map(|(start, end)| vec![0u8; (end - start) as usize])
            .collect();
        let mut requests: Vec<ReadRequest<'_>> = runs
            .iter()
            .zip(buffers.iter_mut())
            .map(|((start, _), buf)| ReadRequest::new(*start, buf))
            .collect();
        self.memory.read_many(&mut requests)?;
        let done: Vec<bool> = requests.iter().map(|r| r.done).collect();
        drop(requests);
        let mut gs = Vec::with_capacity(addresses.len());
        let mut run = 0;
        for &address in addresses {
            while runs[run].1 < address + size {
                run += 1;
            }
            let (start, _) = runs[run];
            gs.push(done[run].then(|| {
                let at = (address - start) as usize;
                RawG::parse(
                    &buffers[run][at..at + size as usize],
                    &self.runtime.layout.g,
                )
            }));
        }
        Ok(gs)
    }

    /// Whether a goroutine that started at `startpc` is the runtime's own.
    fn is_system(&self, startpc: u64) -> bool {
        if let Some(&known) = self.system_starts.borrow().get(&startpc) {
            return known;
        }
        let system = self.runtime.function_at(startpc).is_some_and(|name| {
            name.starts_with("runtime.") && name != "runtime.main" && name != "runtime.corostart"
        });
        self.system_starts.borrow_mut().insert(startpc, system);
        system
    }

    /// The thread a running goroutine is on (`g.m.procid`, checked by `m.curg == g`).
    fn thread_of(&self, g: &RawG, address: u64) -> Option<i32> {
        if g.m == 0 {
            return None;
        }
        let layout = self.runtime.layout;
        let curg = self.memory.u64_at(g.m + layout.m_curg).ok()?;
        let procid = self.memory.u64_at(g.m + layout.m_procid).ok()?;
        (curg == address)
            .then_some(procid)
            .and_then(|p| i32::try_from(p).ok())
    }

    fn goroutine(&self, g: &RawG, stack: Option<Stack>, thread: Option<i32>) -> Goroutine {
        let state = g.state();
        let waiting = match self.options.now_ns {
            Some(now)
                if (state == STATUS_WAITING || state == STATUS_SYSCALL) && g.waitsince != 0 =>
            {
                u64::try_from(now - g.waitsince)
                    .ok()
                    .map(Duration::from_nanos)
            }
            _ => None,
        };
        Goroutine {
            id: g.goid,
            state: self.state_name(g),
            waiting,
            locked_to_thread: g.lockedm != 0,
            stack: stack.unwrap_or_default(),
            // The main goroutine has no creator in a traceback.
            created_by: if g.goid == 1 {
                None
            } else {
                self.unwinder.creator(g.gopc)
            },
            thread,
        }
    }

    /// The state as the traceback's header names it.
    fn state_name(&self, g: &RawG) -> String {
        let state = g.state();
        let reason = || {
            self.runtime
                .wait_reasons
                .get(usize::from(g.waitreason))
                .filter(|r| !r.is_empty())
                .cloned()
        };
        match state {
            STATUS_WAITING => reason().unwrap_or_else(|| "waiting".into()),
            STATUS_LEAKED => format!("{} (leaked)", reason().unwrap_or_else(|| "leaked".into())),
            _ => status_name(state).to_string(),
        }
    }
}

/// `gStatusStrings`.
fn status_name(state: u32) -> &'static str {
    match state {
        0 => "idle",
        layout::STATUS_RUNNABLE => "runnable",
        STATUS_RUNNING => "running",
        STATUS_SYSCALL => "syscall",
        STATUS_WAITING => "waiting",
        STATUS_DEAD => "dead",
        8 => "copystack",
        9 => "preempted",
        _ => "???",
    }
}

/// Whether two reads of one g agree on everything the reader uses.
fn same(a: &RawG, b: &RawG) -> bool {
    a.status == b.status
        && a.goid == b.goid
        && a.resume() == b.resume()
        && a.stack_lo == b.stack_lo
        && a.stack_hi == b.stack_hi
        && a.waitreason == b.waitreason
        && a.gopc == b.gopc
}
