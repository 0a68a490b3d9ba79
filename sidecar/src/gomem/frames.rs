//! Unwinding a goroutine's stack from a copy of it, and naming its frames, the way the
//! runtime's own traceback does: frame sizes from the pclntab (`pcsp`), inlined calls
//! from the inline tree, and the same frames hidden (the runtime's own functions and
//! generated wrappers), so that a stack reads as `runtime.Stack` and pprof print it.
//!
//! What each pc gives (its frame size and named frames) is cached: the goroutines of a
//! leak share their pcs.

use std::cell::RefCell;
use std::collections::HashMap;

use super::pclntab::{FUNCDATA_INLINE_TREE, Func, PCDATA_INLINE_TREE_INDEX};
use super::runtime::GoRuntime;

/// Frames the runtime prints at most (it elides the rest).
pub const MAX_FRAMES: usize = 100;
/// Frames walked at most before giving up on reaching the bottom.
const MAX_WALK: usize = 10_000;

/// One frame as the function table names it: a function (an inlined call is a frame of
/// its own) and the line it was at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The function's full name (`main.leakTicker`, `sync.(*Mutex).Lock`).
    pub function: String,
    /// Its source file, as the build recorded it.
    pub file: String,
    /// The line in it.
    pub line: u32,
}

/// How an unwind ended without reaching the goroutine's first function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnwindError {
    /// A pc outside every Go function (a torn read, or C code).
    UnknownPc(u64),
    /// No frame size for a pc.
    NoFrameSize(u64),
    /// The stack pointer left the stack copy.
    OutsideStack(u64),
    /// Too many frames.
    TooDeep,
}

/// A pc's function and inlined calls, as the traceback names them.
#[derive(Debug, Clone)]
struct PcFrames {
    /// Frame size at the pc.
    sp_delta: Option<i32>,
    /// `runtime.goexit`, `runtime.mstart`…: the bottom of a stack.
    bottom: bool,
    /// The frames, innermost first, each with its funcID and name visibility.
    frames: Vec<(Frame, u8)>,
}

/// A goroutine's stack, named.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stack {
    /// Shown frames, innermost first (at most [`MAX_FRAMES`]).
    pub frames: Vec<Frame>,
    /// Whether frames were left out.
    pub elided: bool,
}

/// Unwinds stacks of one runtime, with a cache of what each pc gives.
pub struct Unwinder<'a> {
    runtime: &'a GoRuntime,
    cache: RefCell<HashMap<u64, Option<PcFrames>>>,
}

/// The bottoms of goroutine stacks.
const BOTTOMS: [&str; 4] = [
    "runtime.goexit",
    "runtime.mstart",
    "runtime.rt0_go",
    "runtime.mcall",
];

impl<'a> Unwinder<'a> {
    /// An unwinder with an empty cache.
    pub fn new(runtime: &'a GoRuntime) -> Self {
        Self {
            runtime,
            cache: RefCell::new(HashMap::new()),
        }
    }

    /// Walks the stack from `pc` and `sp`; `stack` holds the memory from `sp` upwards.
    /// Succeeds only when the walk reaches the bottom of a goroutine (`runtime.goexit`).
    pub fn unwind(&self, mut pc: u64, sp: u64, stack: &[u8]) -> Result<Stack, UnwindError> {
        let mut shown: Vec<Frame> = Vec::new();
        let mut elided = false;
        let mut current_sp = sp;
        let mut first = true;
        for _ in 0..MAX_WALK {
            let info = self.lookup(pc).ok_or(UnwindError::UnknownPc(pc))?;
            for (frame, func_id) in &info.frames {
                if self.shown(frame, *func_id, first) {
                    if shown.len() < MAX_FRAMES {
                        shown.push(frame.clone());
                    } else {
                        elided = true;
                    }
                }
                first = false;
            }
            if info.bottom {
                return Ok(Stack {
                    frames: shown,
                    elided,
                });
            }
            let delta = info.sp_delta.ok_or(UnwindError::NoFrameSize(pc))?;
            let frame_pointer = current_sp
                .checked_add(u64::try_from(delta).map_err(|_| UnwindError::NoFrameSize(pc))?)
                .ok_or(UnwindError::OutsideStack(current_sp))?
                + 8;
            let at = (frame_pointer - 8)
                .checked_sub(sp)
                .ok_or(UnwindError::OutsideStack(frame_pointer))? as usize;
            let word = stack
                .get(at..at + 8)
                .ok_or(UnwindError::OutsideStack(frame_pointer))?;
            pc = u64::from_le_bytes(word.try_into().expect("8 bytes"));
            current_sp = frame_pointer;
        }
        Err(UnwindError::TooDeep)
    }

    /// Whether the traceback prints this frame (`showfuncinfo` of the runtime at its
    /// default traceback level; it shows a wrapper that calls a panic, which this does not).
    fn shown(&self, frame: &Frame, func_id: u8, first: bool) -> bool {
        let name = frame.function.as_str();
        if func_id == self.runtime.layout.funcid_wrapper {
            return false;
        }
        if name == "runtime.gopanic" && !first {
            return true;
        }
        visible_name(name)
    }

    fn lookup(&self, pc: u64) -> Option<PcFrames> {
        if let Some(hit) = self.cache.borrow().get(&pc) {
            return hit.clone();
        }
        let found = self.resolve(pc);
        self.cache.borrow_mut().insert(pc, found.clone());
        found
    }

    fn resolve(&self, pc: u64) -> Option<PcFrames> {
        let table = &self.runtime.pclntab;
        let offset = u32::try_from(pc.checked_sub(self.runtime.text)?).ok()?;
        let func = table.find(offset)?;
        let name = table.name(&func);
        let bottom = BOTTOMS.contains(&name.as_ref());
        // A return address points after its call: name the call.
        let trace = if offset > func.entry {
            offset - 1
        } else {
            offset
        };
        Some(PcFrames {
            sp_delta: table.sp_delta(&func, offset),
            bottom,
            frames: self.named_frames(&func, trace),
        })
    }

    /// The inlined calls at `trace`, innermost first, then the function itself.
    fn named_frames(&self, func: &Func, mut trace: u32) -> Vec<(Frame, u8)> {
        let table = &self.runtime.pclntab;
        let mut frames = Vec::new();
        let tree = table.funcdata(func, FUNCDATA_INLINE_TREE);
        let mut steps = 0;
        while let (Some(tree), Some(index)) = (
            tree,
            table
                .pcdata(func, PCDATA_INLINE_TREE_INDEX, trace)
                .filter(|&i| i >= 0),
        ) {
            let Some((name_off, func_id, parent_pc)) = self.inlined_call(tree, index as u32) else {
                break;
            };
            let (file, line) = table.file_line(func, trace);
            frames.push((
                Frame {
                    function: table.name_at(name_off).into_owned(),
                    file: file.into_owned(),
                    line,
                },
                func_id,
            ));
            trace = func.entry.saturating_add(parent_pc);
            steps += 1;
            if steps > MAX_FRAMES {
                break;
            }
        }
        let (file, line) = table.file_line(func, trace);
        frames.push((
            Frame {
                function: table.name(func).into_owned(),
                file: file.into_owned(),
                line,
            },
            func.func_id,
        ));
        frames
    }

    /// Entry `index` of an inline tree at `gofunc + tree`: (name offset, funcID, parentPc).
    fn inlined_call(&self, tree: u32, index: u32) -> Option<(u32, u8, u32)> {
        let runtime = self.runtime;
        // Go 1.19: {parent i16, funcID u8, _ u8, file, line, func_, parentPc int32};
        // 1.20+: {funcID u8, _ [3]byte, nameOff, parentPc, startLine int32}.
        let (size, func_id_at, name_at, parent_at) = if runtime.layout.minor < 20 {
            (20, 2, 12, 16)
        } else {
            (16, 0, 4, 8)
        };
        let address = runtime
            .gofunc
            .checked_add(u64::from(tree))?
            .checked_add(u64::from(index) * size)?
            .wrapping_sub(runtime.bias);
        let entry = runtime.binary.bytes(address, size)?;
        let word = |at: usize| u32::from_le_bytes(entry[at..at + 4].try_into().expect("4 bytes"));
        Some((word(name_at), entry[func_id_at], word(parent_at)))
    }

    /// The function holding `pc` and the file:line of the call before it (a `go`
    /// statement's pc gives "created by"), when the traceback would show it.
    pub fn creator(&self, pc: u64) -> Option<Frame> {
        let table = &self.runtime.pclntab;
        let offset = u32::try_from(pc.checked_sub(self.runtime.text)?).ok()?;
        let func = table.find(offset)?;
        let name = table.name(&func).into_owned();
        if !visible_name(&name) {
            return None;
        }
        let trace = if offset > func.entry {
            offset - 1
        } else {
            offset
        };
        let (file, line) = table.file_line(&func, trace);
        Some(Frame {
            function: name,
            file: file.into_owned(),
            line,
        })
    }
}

/// Whether the traceback shows a function of this name: a package-qualified name outside
/// the runtime, or an exported runtime function.
pub fn visible_name(name: &str) -> bool {
    if !name.contains('.') {
        return false;
    }
    match name.strip_prefix("runtime.") {
        Some(rest) => rest.chars().next().is_some_and(|c| c.is_ascii_uppercase()),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_internals_are_hidden() {
        assert!(!visible_name("runtime.gopark"));
        assert!(visible_name("runtime.Gosched"));
        assert!(visible_name("runtime/debug.Stack"));
        assert!(visible_name("sync.runtime_SemacquireMutex"));
        assert!(visible_name("main.main"));
        assert!(!visible_name("gcWriteBarrier"));
    }
}
