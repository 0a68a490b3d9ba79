//! Naming frame addresses with blazesym, from the target's own ELF files: symbol tables
//! and DWARF (file and line) of each module, read through the file that
//! [`super::modules`] opened via `/proc/PID/map_files` or `/proc/PID/root` (handed to
//! blazesym as `/proc/self/fd/N`). Every distinct address is symbolized once, and each
//! module's symbols are parsed once per capture, by [`ModuleSymbols::load`], which the
//! capture runs on another core while it reads the threads.

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

/// The symbols and DWARF of every module, parsed (blazesym caches what one lookup in a
/// module loaded: its symbol table, decompressed debug sections and line tables).
pub struct ModuleSymbols {
    symbolizer: Symbolizer,
}

impl ModuleSymbols {
    /// Loads every module of `space` with one lookup at the start of its first executable
    /// mapping; the lookups that matter come later, through [`Self::symbolize`].
    pub fn load(space: &AddressSpace) -> Self {
        let symbolizer = Symbolizer::builder()
            .enable_code_info(true)
            .enable_inlined_fns(false)
            .enable_demangling(true)
            .build();
        let mut loaded = std::collections::BTreeSet::new();
        for mapping in &space.mappings {
            if let Some(index) = mapping.module
                && loaded.insert(index)
                && let Ok((file, _)) = &space.modules[index].file
            {
                let source = Source::Elf(Elf::new(format!("/proc/self/fd/{}", file.as_raw_fd())));
                // Only the loading matters here; a failure shows again in `symbolize`.
                let _ = symbolizer.symbolize(&source, Input::FileOffset(&[mapping.offset]));
            }
        }
        Self { symbolizer }
    }

    /// Symbolizes `addresses` (lookup addresses: a return address minus one); returns what
    /// was found for each, and per module index the reason it could not be read, if any.
    pub fn symbolize(
        &self,
        space: &AddressSpace,
        addresses: impl IntoIterator<Item = u64>,
    ) -> (HashMap<u64, Symbol>, BTreeMap<usize, String>) {
        symbolize_with(&self.symbolizer, space, addresses)
    }
}

fn symbolize_with(
    symbolizer: &Symbolizer,
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
