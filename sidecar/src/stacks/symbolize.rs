//! Naming frame addresses with blazesym, from the target's own ELF files: symbol tables
//! and DWARF (file and line) of each module, read through the file that
//! [`super::modules`] opened via `/proc/PID/map_files` or `/proc/PID/root` (handed to
//! blazesym as `/proc/self/fd/N`). Every distinct address is symbolized once, and each
//! module's symbols are parsed once per capture.

use std::collections::{BTreeMap, HashMap};
use std::os::fd::AsRawFd;

use blazesym::symbolize::source::{Elf, Source};
use blazesym::symbolize::{Input, Symbolized, Symbolizer};

use super::modules::AddressSpace;

/// What is known of one code address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Symbol {
    /// The function (demangled).
    pub name: Option<String>,
    /// Address minus the function's start.
    pub offset: Option<u64>,
    /// Source file and line, when the module has DWARF.
    pub file: Option<String>,
    /// Line in `file`.
    pub line: Option<u32>,
}

/// Symbolizes `addresses` (lookup addresses: a return address minus one); returns what
/// was found for each, and per module index the reason it could not be read, if any.
pub fn symbolize(
    space: &AddressSpace,
    addresses: impl IntoIterator<Item = u64>,
) -> (HashMap<u64, Symbol>, BTreeMap<usize, String>) {
    // Module → (file offsets, addresses), in the same order.
    let mut by_module: BTreeMap<usize, (Vec<u64>, Vec<u64>)> = BTreeMap::new();
    for address in addresses {
        if let Some(mapping) = space.mapping_at(address)
            && let Some(module) = mapping.module
        {
            let entry = by_module.entry(module).or_default();
            entry.0.push(address - mapping.start + mapping.offset);
            entry.1.push(address);
        }
    }
    let symbolizer = Symbolizer::builder()
        .enable_code_info(true)
        .enable_inlined_fns(false)
        .enable_demangling(true)
        .build();
    let mut symbols = HashMap::new();
    let mut failures = BTreeMap::new();
    for (index, (offsets, addresses)) in by_module {
        let module = &space.modules[index];
        let Ok((file, _)) = &module.file else {
            continue;
        };
        let source = Source::Elf(Elf::new(format!("/proc/self/fd/{}", file.as_raw_fd())));
        let results = match symbolizer.symbolize(&source, Input::FileOffset(&offsets)) {
            Ok(results) => results,
            Err(e) => {
                failures.insert(index, format!("cannot symbolize {}: {e}", module.path));
                continue;
            }
        };
        for (address, result) in addresses.into_iter().zip(results) {
            if let Symbolized::Sym(sym) = result {
                let (file, line) = match &sym.code_info {
                    Some(info) => (Some(info.to_path().display().to_string()), info.line),
                    None => (None, None),
                };
                symbols.insert(
                    address,
                    Symbol {
                        name: Some(sym.name.into_owned()),
                        offset: Some(sym.offset as u64),
                        file,
                        line,
                    },
                );
            }
        }
    }
    (symbols, failures)
}
