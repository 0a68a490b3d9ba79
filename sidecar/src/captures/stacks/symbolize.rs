//! Naming frame addresses with blazesym, from the target's own ELF files: symbol tables
//! and DWARF (file and line) of each module, read through the file that
//! [`super::modules`] opened via `/proc/PID/map_files` or `/proc/PID/root` (handed to
//! blazesym as `/proc/self/fd/N`). Every distinct address is symbolized once, and each
//! module's symbols are parsed once per capture, by [`ModuleSymbols::load`], which the
//! capture runs on another core while it reads the threads.

use std::collections::{BTreeMap, BTreeSet, HashMap};
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
///
/// File and line come from the modules that carry their own line tables (the program,
/// built with `-g`). System libraries get their names only, from their own symbol tables
/// or, for stripped ones, from a separate debug file (`/usr/lib/debug`) when installed:
/// decompressing libc's whole DWARF for the file and line of `read` would cost more than
/// reading a thousand threads.
pub struct ModuleSymbols {
    with_lines: Symbolizer,
    names_only: Symbolizer,
    /// The modules with a `.debug_line` section of their own.
    own_lines: BTreeSet<usize>,
}

impl ModuleSymbols {
    /// Loads every module of `space` with one lookup at the start of its first executable
    /// mapping; the lookups that matter come later, through [`Self::symbolize`].
    pub fn load(space: &AddressSpace) -> Self {
        let symbolizer = |code_info| {
            Symbolizer::builder()
                .enable_code_info(code_info)
                .enable_inlined_fns(false)
                .enable_demangling(true)
                .build()
        };
        let mut symbols = Self {
            with_lines: symbolizer(true),
            names_only: symbolizer(false),
            own_lines: BTreeSet::new(),
        };
        let mut loaded = BTreeSet::new();
        for mapping in &space.mappings {
            if let Some(index) = mapping.module
                && loaded.insert(index)
                && let Ok((file, _)) = &space.modules[index].file
            {
                if has_own_line_table(file) {
                    symbols.own_lines.insert(index);
                }
                // Only the loading matters here; a failure shows again in `symbolize`.
                let _ = symbols
                    .for_module(index)
                    .symbolize(&source(file), Input::FileOffset(&[mapping.offset]));
            }
        }
        symbols
    }

    fn for_module(&self, index: usize) -> &Symbolizer {
        if self.own_lines.contains(&index) {
            &self.with_lines
        } else {
            &self.names_only
        }
    }

    /// Symbolizes `addresses` (lookup addresses: a return address minus one); returns what
    /// was found for each, and per module index the reason it could not be read, if any.
    pub fn symbolize(
        &self,
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
            let results = match self
                .for_module(index)
                .symbolize(&source(file), Input::FileOffset(&offsets))
            {
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
}

/// blazesym's source for a module: the file procshot holds open, by its fd.
fn source(file: &std::fs::File) -> Source<'static> {
    Source::Elf(Elf::new(format!("/proc/self/fd/{}", file.as_raw_fd())))
}

/// Whether the module has line tables of its own (read from its section headers only,
/// through a file description of its own: another thread reads the module meanwhile).
fn has_own_line_table(file: &std::fs::File) -> bool {
    let Ok(own) = std::fs::File::open(format!("/proc/self/fd/{}", file.as_raw_fd())) else {
        return false;
    };
    let cache = object::ReadCache::new(own);
    object::File::parse(&cache)
        .is_ok_and(|elf| object::Object::section_by_name(&elf, ".debug_line").is_some())
}
