//! Finding the Go runtime's globals in a binary that may have no symbol table: the
//! addresses a runtime function's instructions use (decoded with iced-x86), checked
//! against what memory holds there, and the table of wait-reason strings found by content.
//!
//! * `runtime.allgs` (a slice), `runtime.allgptr` and `runtime.allglen`: the globals
//!   `runtime.allgadd` writes. `allgs` is the address whose next word (its length) is also
//!   used; `allgptr` and `allglen` are the others that hold `allgs`' pointer and length.
//! * `runtime.gcController`: the address `runtime.gcControllerCommit` takes (`lea`) most.
//! * `runtime.waitReasonStrings`: an array of Go strings whose entry 1 is
//!   "GC assist marking" and entry 0 is "", in every release read.

use std::collections::HashMap;

use iced_x86::{Decoder, DecoderOptions, Mnemonic};

use super::memory::Memory;

/// An address a function's code refers to (RIP-relative), and whether as a `lea`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reference {
    /// The address.
    pub address: u64,
    /// `lea` (takes the address) rather than a load or store.
    pub lea: bool,
}

/// Every RIP-relative memory operand of `code`, which runs at `ip`.
pub fn references(code: &[u8], ip: u64) -> Vec<Reference> {
    let mut decoder = Decoder::with_ip(64, code, ip, DecoderOptions::NONE);
    let mut found = Vec::new();
    for instruction in &mut decoder {
        if instruction.is_invalid() {
            continue;
        }
        if instruction.is_ip_rel_memory_operand() {
            found.push(Reference {
                address: instruction.ip_rel_memory_address(),
                lea: instruction.mnemonic() == Mnemonic::Lea,
            });
        }
    }
    found
}

/// The addresses of `runtime.allgs`, `runtime.allgptr` and `runtime.allglen`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllGs {
    /// The slice header (pointer, length, capacity).
    pub allgs: u64,
    /// `**g`: the slice's array, stored atomically.
    pub allgptr: u64,
    /// The slice's length, stored atomically after the pointer.
    pub allglen: u64,
}

/// Finds the globals of `allgadd` among `refs` (already limited to the data and bss
/// ranges), checking their values in `memory`. A goroutine started meanwhile can make one
/// check fail, so it is tried a few times.
pub fn allgs(refs: &[Reference], memory: &dyn Memory) -> Option<AllGs> {
    let mut addresses: Vec<u64> = refs.iter().map(|r| r.address).collect();
    addresses.sort_unstable();
    addresses.dedup();
    let slices: Vec<u64> = addresses
        .iter()
        .copied()
        .filter(|a| addresses.contains(&(a + 8)))
        .collect();
    for _ in 0..5 {
        for &slice in &slices {
            let (Ok(pointer), Ok(len)) = (memory.u64_at(slice), memory.u64_at(slice + 8)) else {
                continue;
            };
            if pointer == 0 || len == 0 {
                continue;
            }
            let others = addresses
                .iter()
                .copied()
                .filter(|&a| a != slice && a != slice + 8 && a != slice + 16);
            let mut allgptr = None;
            let mut allglen = None;
            for address in others {
                match memory.u64_at(address) {
                    Ok(v) if v == pointer && allgptr.is_none() => allgptr = Some(address),
                    Ok(v) if v == len && allglen.is_none() => allglen = Some(address),
                    _ => {}
                }
            }
            if let (Some(allgptr), Some(allglen)) = (allgptr, allglen) {
                return Some(AllGs {
                    allgs: slice,
                    allgptr,
                    allglen,
                });
            }
        }
        std::thread::yield_now();
    }
    None
}

/// The address `lea`'d most often among `refs` (ties: the lowest).
pub fn most_taken(refs: &[Reference]) -> Option<u64> {
    let mut counts: HashMap<u64, usize> = HashMap::new();
    for r in refs.iter().filter(|r| r.lea) {
        *counts.entry(r.address).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
        .map(|(address, _)| address)
}

/// The first string of the wait-reason table, after the empty one.
pub const FIRST_WAIT_REASON: &[u8] = b"GC assist marking";

/// The table's index among the words of `data` (memory of a data section starting at
/// `base`), given the address of a "GC assist marking" string: the word pair
/// `(string, 17)` preceded by a pair of length 0. Returns the table's address.
pub fn wait_reason_table(data: &[u8], base: u64, string: u64) -> Option<u64> {
    let words: Vec<u64> = data
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect();
    let length = FIRST_WAIT_REASON.len() as u64;
    (2..words.len().saturating_sub(1))
        .find(|&i| words[i] == string && words[i + 1] == length && words[i - 1] == 0)
        .map(|i| base + (i as u64 - 2) * 8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gomem::memory::MemoryError;

    /// Memory made of a few words.
    struct Words(HashMap<u64, u64>);

    impl Memory for Words {
        fn read(&self, address: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
            let value = self.0.get(&address).ok_or(MemoryError::Unmapped {
                address,
                len: buf.len(),
            })?;
            buf.copy_from_slice(&value.to_le_bytes()[..buf.len()]);
            Ok(())
        }
    }

    #[test]
    fn rip_relative_operands_are_decoded() {
        // mov rax, [rip+0x10]; lea rcx, [rip-0x20]; ret
        let code = [
            0x48, 0x8b, 0x05, 0x10, 0, 0, 0, 0x48, 0x8d, 0x0d, 0xe0, 0xff, 0xff, 0xff, 0xc3,
        ];
        let refs = references(&code, 0x1000);
        assert_eq!(
            refs,
            [
                Reference {
                    address: 0x1007 + 0x10,
                    lea: false
                },
                Reference {
                    address: 0x100e - 0x20,
                    lea: true
                }
            ]
        );
    }

    #[test]
    fn allgs_are_told_apart_by_their_values() {
        let memory = Words(HashMap::from([
            (0x5000, 0xc000_1000), // allgs.ptr
            (0x5008, 7),           // allgs.len
            (0x5010, 8),           // allgs.cap
            (0x6000, 0),           // allglock
            (0x6100, 0xc000_1000), // allgptr
            (0x6200, 7),           // allglen
        ]));
        let refs: Vec<Reference> = [0x6000, 0x5000, 0x5008, 0x5010, 0x6100, 0x6200, 0x6000]
            .iter()
            .map(|&address| Reference {
                address,
                lea: address == 0x6000,
            })
            .collect();
        assert_eq!(
            allgs(&refs, &memory),
            Some(AllGs {
                allgs: 0x5000,
                allgptr: 0x6100,
                allglen: 0x6200
            })
        );
        assert_eq!(most_taken(&refs), Some(0x6000));
        assert_eq!(allgs(&refs[..3], &memory), None);
    }

    #[test]
    fn the_wait_reason_table_is_found_by_its_first_entries() {
        let string = 0x40_1234u64;
        let words = [9u64, 0x40_0000, 0, string, 17, 0x40_2000, 12];
        let data: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        assert_eq!(wait_reason_table(&data, 0x60_0000, string), Some(0x60_0008));
        assert_eq!(wait_reason_table(&data, 0x60_0000, string + 1), None);
    }
}
