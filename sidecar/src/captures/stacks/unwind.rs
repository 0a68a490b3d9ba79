//! Unwinding a copied stack into return addresses, offline (the thread runs again by then),
//! with framehop: DWARF CFI from each module's `.eh_frame` (indexed by `.eh_frame_hdr`)
//! and `.debug_frame`, and frame pointers where a function has no CFI (Go binaries, C
//! built without unwind tables). x86_64 only.
//!
//! Each frame says how it was found ([`UnwindMethod`]): the instruction pointer for the
//! innermost frame, then the rule that applied at the frame below it, which is CFI when
//! that address is covered by an FDE of its module, else the frame-pointer chain.

use framehop::x86_64::{CacheX86_64, UnwindRegsX86_64, UnwinderX86_64};
use framehop::{ExplicitModuleSectionInfo, FrameAddress, Module as FramehopModule, Unwinder};
use gimli::{BaseAddresses, CieOrFde, DebugFrame, EhFrame, LittleEndian, UnwindSection};
use object::{Object, ObjectSection, ObjectSegment};
use serde::{Deserialize, Serialize};

use super::collect::ThreadSnapshot;
use super::modules::{AddressSpace, Module};

/// Frames unwound at most per thread (a loop in a corrupt frame chain ends here).
pub const MAX_FRAMES: usize = 256;

/// How a frame's address was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnwindMethod {
    /// The instruction pointer register (the innermost frame).
    Registers,
    /// DWARF call frame information of the frame below.
    Cfi,
    /// The frame-pointer chain (the frame below had no CFI).
    FramePointer,
}

/// The unwinding facts of one module: where it is loaded and which code has CFI.
#[derive(Debug, Default)]
struct ModuleUnwindInfo {
    /// Load bias: address in the target minus address in the file (SVMA).
    bias: u64,
    /// Sorted SVMA ranges covered by an FDE.
    cfi: Vec<(u64, u64)>,
}

/// The unwinder for one target, built before any thread is stopped.
pub struct StackUnwinder {
    unwinder: UnwinderX86_64<Vec<u8>>,
    cache: CacheX86_64,
    modules: Vec<ModuleUnwindInfo>,
}

/// A thread's unwound frames.
#[derive(Debug, Clone)]
pub struct Unwound {
    /// Innermost first: the address and how it was found.
    pub frames: Vec<(FrameAddress, UnwindMethod)>,
    /// Why the walk stopped before the end of the stack, if it did.
    pub truncated: Option<String>,
}

impl StackUnwinder {
    /// Loads the unwind information of every module of `space`. A module whose file
    /// cannot be read or parsed is left out (its frames are walked by frame pointers);
    /// the returned list says which and why.
    pub fn new(space: &AddressSpace) -> (Self, Vec<(usize, String)>) {
        let mut unwinder = UnwinderX86_64::new();
        let mut modules = Vec::new();
        let mut failures = Vec::new();
        for (index, module) in space.modules.iter().enumerate() {
            match load(space, index, module) {
                Ok((framehop_module, info)) => {
                    unwinder.add_module(framehop_module);
                    modules.push(info);
                }
                Err(reason) => {
                    failures.push((index, reason));
                    modules.push(ModuleUnwindInfo::default());
                }
            }
        }
        let unwinder = Self {
            unwinder,
            cache: CacheX86_64::new(),
            modules,
        };
        (unwinder, failures)
    }

    /// Unwinds a thread from its copied registers and stack.
    pub fn unwind(&mut self, space: &AddressSpace, thread: &ThreadSnapshot) -> Unwound {
        let stack = &thread.stack;
        let sp = thread.sp;
        let mut read_stack = |address: u64| {
            let offset = address.checked_sub(sp).ok_or(())? as usize;
            let bytes = stack
                .get(offset..offset.checked_add(8).ok_or(())?)
                .ok_or(())?;
            Ok(u64::from_le_bytes(bytes.try_into().map_err(|_| ())?))
        };
        let mut frames: Vec<(FrameAddress, UnwindMethod)> = Vec::new();
        let mut iter = self.unwinder.iter_frames(
            thread.ip,
            UnwindRegsX86_64::new(thread.ip, thread.sp, thread.bp),
            &mut self.cache,
            &mut read_stack,
        );
        let truncated = loop {
            if frames.len() >= MAX_FRAMES {
                break Some(format!("stopped at {MAX_FRAMES} frames"));
            }
            match iter.next() {
                Ok(Some(frame)) => {
                    let method = match frames.last() {
                        None => UnwindMethod::Registers,
                        Some((below, _)) => {
                            if has_cfi(&self.modules, space, below.address_for_lookup()) {
                                UnwindMethod::Cfi
                            } else {
                                UnwindMethod::FramePointer
                            }
                        }
                    };
                    frames.push((frame, method));
                }
                Ok(None) => break None,
                Err(e) => break Some(e.to_string()),
            }
        };
        Unwound { frames, truncated }
    }
}

fn has_cfi(modules: &[ModuleUnwindInfo], space: &AddressSpace, address: u64) -> bool {
    let Some(info) = space
        .mapping_at(address)
        .and_then(|m| m.module)
        .and_then(|index| modules.get(index))
    else {
        return false;
    };
    let svma = address.wrapping_sub(info.bias);
    let index = info.cfi.partition_point(|(start, _)| *start <= svma);
    index > 0 && svma < info.cfi[index - 1].1
}

/// Reads one module's headers and the sections unwinding needs (not its whole file: debug
/// sections often outweigh the code), and builds its framehop module and CFI ranges.
fn load(
    space: &AddressSpace,
    index: usize,
    module: &Module,
) -> Result<(FramehopModule<Vec<u8>>, ModuleUnwindInfo), String> {
    let (file, _) = module.file.as_ref().map_err(Clone::clone)?;
    let cache = object::ReadCache::new(file);
    let elf = object::File::parse(&cache)
        .map_err(|e| format!("{} is not a readable ELF file: {e}", module.path))?;

    let mappings: Vec<_> = space.mappings_of(index).collect();
    let first = mappings.first().ok_or("no mapping")?;
    let last = mappings.last().ok_or("no mapping")?;
    let bias = load_bias(&elf, mappings.iter().map(|m| (m.start, m.offset))).ok_or_else(|| {
        format!(
            "no loadable segment of {} matches its mappings",
            module.path
        )
    })?;

    let section = |name: &str| {
        elf.section_by_name(name).and_then(|s| {
            let data = s.uncompressed_data().ok()?.into_owned();
            Some((s.address()..s.address() + s.size(), data))
        })
    };
    let text = section(".text");
    let eh_frame = section(".eh_frame");
    let eh_frame_hdr = section(".eh_frame_hdr");
    let debug_frame = section(".debug_frame");
    let got = section(".got");

    let mut cfi = Vec::new();
    if let Some((range, data)) = &eh_frame {
        let mut section = EhFrame::new(data, LittleEndian);
        section.set_address_size(8);
        let mut bases = BaseAddresses::default().set_eh_frame(range.start);
        if let Some((text, _)) = &text {
            bases = bases.set_text(text.start);
        }
        fde_ranges(&section, &bases, &mut cfi);
    }
    if let Some((_, data)) = &debug_frame {
        let mut section = DebugFrame::new(data, LittleEndian);
        section.set_address_size(8);
        fde_ranges(&section, &BaseAddresses::default(), &mut cfi);
    }
    cfi.sort_unstable();

    let info = ExplicitModuleSectionInfo {
        base_svma: 0,
        text_svma: text.as_ref().map(|(r, _)| r.clone()),
        text: text.map(|(_, d)| d),
        got_svma: got.map(|(r, _)| r),
        eh_frame_svma: eh_frame.as_ref().map(|(r, _)| r.clone()),
        eh_frame: eh_frame.map(|(_, d)| d),
        eh_frame_hdr_svma: eh_frame_hdr.as_ref().map(|(r, _)| r.clone()),
        eh_frame_hdr: eh_frame_hdr.map(|(_, d)| d),
        debug_frame: debug_frame.map(|(_, d)| d),
        ..Default::default()
    };
    let framehop_module =
        FramehopModule::new(module.path.clone(), first.start..last.end, bias, info);
    Ok((framehop_module, ModuleUnwindInfo { bias, cfi }))
}

/// The load bias of an ELF file from where its mappings are: for a mapping at `start` of
/// file offset `offset` inside a loadable segment at SVMA `vaddr` and file offset
/// `file_start`, the bias is `start - (vaddr + offset - file_start)`.
fn load_bias<'data, R: object::ReadRef<'data>>(
    elf: &object::File<'data, R>,
    mappings: impl Iterator<Item = (u64, u64)>,
) -> Option<u64> {
    const PAGE: u64 = 4096;
    for (start, offset) in mappings {
        for segment in elf.segments() {
            let (file_start, size) = segment.file_range();
            if file_start / PAGE * PAGE <= offset && offset < file_start + size.max(1) {
                let svma = segment
                    .address()
                    .wrapping_add(offset)
                    .wrapping_sub(file_start);
                return Some(start.wrapping_sub(svma));
            }
        }
    }
    None
}

/// Appends the SVMA range of every FDE of a CFI section.
fn fde_ranges<'a, S>(section: &S, bases: &BaseAddresses, ranges: &mut Vec<(u64, u64)>)
where
    S: UnwindSection<gimli::EndianSlice<'a, LittleEndian>>,
{
    let mut entries = section.entries(bases);
    while let Ok(Some(entry)) = entries.next() {
        if let CieOrFde::Fde(partial) = entry
            && let Ok(fde) = partial.parse(|s, b, o| s.cie_from_offset(b, o))
        {
            ranges.push((fde.initial_address(), fde.initial_address() + fde.len()));
        }
    }
}
