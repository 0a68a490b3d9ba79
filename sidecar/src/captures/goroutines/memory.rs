//! The goroutines read from the program's own memory ([`crate::gomem`]), the source when
//! no pprof endpoint is given: it needs no endpoint and no entry into the target's network
//! namespace, only the right to read its memory (`CAP_SYS_PTRACE`, or the target's user
//! under a permissive ptrace scope). The runtime is located once, when the capture opens,
//! and read in every sample; the goroutines come out grouped as a pprof dump's are, so
//! the findings and reports do not care where they came from.
//!
//! By default the program is never stopped: each read is validated and what does not
//! validate is retried, then counted as inconsistent ([`GoroutineSample::inconsistent`]),
//! never guessed. With a stop bound every thread is stopped for one exact read.

use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::dump::{self, Frame};
use super::source::GoroutineSource;
use super::{GoroutineSample, GoroutinesError, GoroutinesSource};
use crate::captures::contract::{Deadline, RawFile};
use crate::gomem::{self, GoMemError, GoReader, MemoryGoroutines};
use crate::process::Target;

/// The program's memory, through the Go runtime located in it.
pub struct MemorySource {
    /// The located runtime, or why it could not be located (said at every read).
    reader: Result<Rc<GoReader>, Arc<GoMemError>>,
    /// Stop every thread for at most this long for an exact read (`None`: never stop).
    max_stop: Option<Duration>,
}

impl MemorySource {
    /// Locates the Go runtime of `pid` (under `proc_root`); a program that is not Go, or
    /// whose Go version procshot has no layout for, gives a source whose reads say so.
    pub fn open(proc_root: &Path, pid: i32, max_stop: Option<Duration>) -> Self {
        Self {
            reader: GoReader::open(proc_root, pid)
                .map(Rc::new)
                .map_err(Arc::new),
            max_stop,
        }
    }

    /// The located runtime, shared with the memory capture for the Go heap's statistics.
    pub fn reader(&self) -> Option<Rc<GoReader>> {
        self.reader.as_ref().ok().cloned()
    }
}

impl GoroutineSource for MemorySource {
    /// Reads every goroutine. The read is not bounded by `timeout`: it copies the g
    /// structs and the stacks in use (about 70 ms for 100,000 goroutines), and a stop
    /// is bounded by its own bound.
    fn goroutines(
        &mut self,
        _target: &Target,
        _timeout: Duration,
    ) -> Result<GoroutineSample, GoroutinesError> {
        let reader = self
            .reader
            .as_ref()
            .map_err(|e| GoroutinesError::Memory(Arc::clone(e)))?;
        let read = match self.max_stop {
            Some(bound) => reader.goroutines_stopped(bound),
            None => reader.goroutines(),
        }
        .map_err(|e| GoroutinesError::Memory(Arc::new(e)))?;
        Ok(sample(read))
    }

    /// Nothing: the heap's statistics are the memory capture's, in every sample.
    fn after_samples(
        &mut self,
        _target: &Target,
        _deadline: &Deadline,
    ) -> Result<Vec<RawFile>, GoroutinesError> {
        Ok(Vec::new())
    }
}

/// The sample of one read: its goroutines grouped, with what the read counted.
pub fn sample(read: MemoryGoroutines) -> GoroutineSample {
    let goroutines: Vec<dump::Goroutine> = read.read.goroutines.into_iter().map(dumped).collect();
    GoroutineSample {
        total: goroutines.len() as u64,
        source: GoroutinesSource::Memory,
        inconsistent: read.read.inconsistent,
        retried: read.read.retried,
        stopped_ms: read.stopped.map(|d| d.as_secs_f64() * 1000.0),
        groups: dump::group(goroutines),
    }
}

/// A goroutine read from memory as a pprof dump shows it: the same state, its wait in
/// whole minutes from one minute on, the same frames.
pub fn dumped(goroutine: gomem::Goroutine) -> dump::Goroutine {
    dump::Goroutine {
        id: goroutine.id,
        state: goroutine.state,
        wait_minutes: goroutine
            .waiting
            .map(|d| d.as_secs() / 60)
            .filter(|&minutes| minutes >= 1),
        locked_to_thread: goroutine.locked_to_thread,
        frames: goroutine.stack.frames.into_iter().map(frame).collect(),
        elided: goroutine.stack.elided,
        created_by: goroutine.created_by.map(frame),
        thread: goroutine.thread,
    }
}

fn frame(frame: gomem::Frame) -> Frame {
    Frame {
        function: frame.function,
        file: frame.file,
        line: frame.line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_shows_in_whole_minutes_from_one_minute_on() {
        let goroutine = |waiting| gomem::Goroutine {
            id: 7,
            state: "chan receive".into(),
            waiting,
            locked_to_thread: false,
            stack: gomem::Stack::default(),
            created_by: None,
            thread: None,
        };
        let minutes = |waiting| dumped(goroutine(waiting)).wait_minutes;
        assert_eq!(minutes(None), None);
        assert_eq!(minutes(Some(Duration::from_secs(59))), None);
        assert_eq!(minutes(Some(Duration::from_secs(60))), Some(1));
        assert_eq!(minutes(Some(Duration::from_secs(3 * 60 + 59))), Some(3));
    }
}
