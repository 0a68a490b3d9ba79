//! The Go heap's statistics, read from `runtime.gcController` (the numbers
//! `runtime.ReadMemStats` is made of): heap in use, freed heap kept by the runtime, heap
//! released to the OS, bytes allocated and freed since the start, and GOGC/GOMEMLIMIT.
//!
//! Read without stopping the program: each number is one aligned word the runtime updates
//! atomically, but they are not a snapshot of one instant (a GC may end between two). The
//! runtime counts allocations a span at a time, so `heapAllocBytes` can differ from
//! `MemStats.HeapAlloc` by what the processors' caches hold.

use serde::{Deserialize, Serialize};

use super::layout::{GC_MEMORY_LIMIT, GC_PERCENT};
use super::memory::{Memory, MemoryError};
use super::runtime::GoRuntime;

/// The heap statistics of one sample.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GoHeap {
    /// Heap spans in use (`MemStats.HeapInuse`).
    pub heap_in_use_bytes: u64,
    /// Free heap the runtime keeps, not yet returned to the OS (part of
    /// `MemStats.HeapIdle`): resident, and not a leak.
    pub heap_free_bytes: u64,
    /// Heap returned to the OS (`MemStats.HeapReleased`): not resident.
    pub heap_released_bytes: u64,
    /// Bytes allocated since the start (`MemStats.TotalAlloc`).
    pub total_alloc_bytes: u64,
    /// Bytes freed since the start.
    pub total_free_bytes: u64,
    /// Allocated and not yet freed (`MemStats.HeapAlloc`, to the runtime's counting).
    pub heap_alloc_bytes: u64,
    /// Memory mapped and ready for use (heap and other runtime memory).
    pub mapped_ready_bytes: u64,
    /// Live heap as the GC last marked it plus what was allocated since.
    pub heap_live_bytes: u64,
    /// GOGC (`-1`: off).
    pub gogc: i32,
    /// GOMEMLIMIT in bytes (`i64::MAX`: no limit).
    pub memory_limit_bytes: i64,
}

/// Why heap statistics could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HeapError {
    /// The program's runtime has no `gcController` procshot could find.
    #[error(
        "runtime.gcController was not found in this {0} program, so its heap statistics cannot be read"
    )]
    NotFound(String),
    /// Memory failed.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// The numbers cannot be right.
    #[error(
        "runtime.gcController of this {version} program reads implausible numbers ({detail}); they are not reported"
    )]
    Implausible {
        /// The Go version.
        version: String,
        /// What is wrong.
        detail: String,
    },
}

/// Reads the heap statistics.
pub fn read(runtime: &GoRuntime, memory: &dyn Memory) -> Result<GoHeap, HeapError> {
    let base = runtime
        .gc_controller
        .ok_or_else(|| HeapError::NotFound(runtime.version.clone()))?;
    let layout = runtime.layout;
    let mut words = [0u8; 48];
    memory.read(base + layout.gc_heap_in_use, &mut words)?;
    let word = |i: usize| u64::from_le_bytes(words[8 * i..8 * i + 8].try_into().expect("8 bytes"));
    let mut head = [0u8; 16];
    memory.read(base, &mut head)?;
    let heap_live = memory.u64_at(base + layout.gc_heap_live)?;
    let heap = GoHeap {
        heap_in_use_bytes: word(0),
        heap_released_bytes: word(1),
        heap_free_bytes: word(2),
        total_alloc_bytes: word(3),
        total_free_bytes: word(4),
        heap_alloc_bytes: word(3).saturating_sub(word(4)),
        mapped_ready_bytes: word(5),
        heap_live_bytes: heap_live,
        gogc: i32::from_le_bytes(head[GC_PERCENT as usize..4].try_into().expect("4 bytes")),
        memory_limit_bytes: i64::from_le_bytes(
            head[GC_MEMORY_LIMIT as usize..16]
                .try_into()
                .expect("8 bytes"),
        ),
    };
    check(&heap).map_err(|detail| HeapError::Implausible {
        version: runtime.version.clone(),
        detail,
    })?;
    Ok(heap)
}

/// What must hold of any real heap.
fn check(heap: &GoHeap) -> Result<(), String> {
    if heap.total_free_bytes > heap.total_alloc_bytes {
        return Err("more freed than allocated".into());
    }
    if heap.heap_in_use_bytes > heap.mapped_ready_bytes || heap.heap_in_use_bytes == 0 {
        return Err(format!(
            "heap in use {} against {} mapped",
            heap.heap_in_use_bytes, heap.mapped_ready_bytes
        ));
    }
    if heap.gogc < -1 || heap.memory_limit_bytes < 0 {
        return Err(format!(
            "GOGC {} and GOMEMLIMIT {}",
            heap.gogc, heap.memory_limit_bytes
        ));
    }
    Ok(())
}
