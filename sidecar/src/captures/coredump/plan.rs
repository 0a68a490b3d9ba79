//! Which mappings a core dump holds and how much: `/proc/PID/smaps` (addresses, flags,
//! resident and swapped bytes) filtered by `/proc/PID/coredump_filter` the way the kernel's
//! own core dumps filter them, and the checks made before the target is stopped: the
//! `--core-max-bytes` cap, free space on the output's filesystem, and the memory procshot
//! may use to hold the copy.

use std::path::Path;

use procfs::process::{MMPermissions, MMapPath, MemoryMap, VmFlags};

/// Bits of `/proc/PID/coredump_filter` (see core(5)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoredumpFilter(pub u32);

impl CoredumpFilter {
    /// The kernel's default: anonymous private and shared memory, ELF headers, private
    /// huge pages.
    pub const DEFAULT: Self = Self(0x33);
    const ANON_PRIVATE: u32 = 1 << 0;
    const ANON_SHARED: u32 = 1 << 1;
    const MAPPED_PRIVATE: u32 = 1 << 2;
    const MAPPED_SHARED: u32 = 1 << 3;
    const ELF_HEADERS: u32 = 1 << 4;
    const HUGETLB_PRIVATE: u32 = 1 << 5;
    const HUGETLB_SHARED: u32 = 1 << 6;

    /// Parses the file's content (hexadecimal).
    pub fn parse(text: &str) -> Option<Self> {
        u32::from_str_radix(text.trim(), 16).ok().map(Self)
    }

    fn has(self, bit: u32) -> bool {
        self.0 & bit != 0
    }
}

/// How much of a mapping the core holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extent {
    /// All of it.
    Whole,
    /// Its first page, if it starts with an ELF header (so that a debugger can tell which
    /// file was mapped there).
    ElfHeader,
    /// None of it (the segment is listed with no file bytes).
    Nothing,
}

/// One mapping of the target and what the core holds of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// Readable.
    pub read: bool,
    /// Writable.
    pub write: bool,
    /// Executable.
    pub execute: bool,
    /// Pure anonymous memory (no file behind it): a page that is neither present nor
    /// swapped out reads as zero, so it need not be copied.
    pub anonymous: bool,
    /// The file mapped here and the offset of `start` in it, for NT_FILE.
    pub file: Option<(String, u64)>,
    /// What the core holds of it.
    pub extent: Extent,
    /// Resident plus swapped bytes (what must be copied, at most).
    pub data_bytes: u64,
}

impl Region {
    /// Bytes of the target's memory the core holds for this mapping.
    pub fn dump_bytes(&self, page_size: u64) -> u64 {
        match self.extent {
            Extent::Whole => self.end - self.start,
            Extent::ElfHeader => page_size.min(self.end - self.start),
            Extent::Nothing => 0,
        }
    }
}

/// What a core dump of the target would hold.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Every mapping, in address order.
    pub regions: Vec<Region>,
    /// The filter that chose them.
    pub filter: CoredumpFilter,
    /// Bytes of memory the core's segments hold (zero pages included).
    pub memory_bytes: u64,
    /// Resident and swapped bytes of those segments: the most procshot copies.
    pub data_bytes: u64,
}

impl Plan {
    /// Chooses from `maps` (parsed from `smaps`: flags and sizes) with `filter`.
    pub fn new(maps: &[MemoryMap], filter: CoredumpFilter, page_size: u64) -> Self {
        let regions: Vec<Region> = maps.iter().map(|m| region(m, filter)).collect();
        let memory_bytes = regions.iter().map(|r| r.dump_bytes(page_size)).sum();
        let data_bytes = regions
            .iter()
            .map(|r| match r.extent {
                Extent::Whole => r.data_bytes,
                Extent::ElfHeader => page_size,
                Extent::Nothing => 0,
            })
            .sum();
        Self {
            regions,
            filter,
            memory_bytes,
            data_bytes,
        }
    }
}

/// `maps` (read while the target is stopped: no page-table walk, unlike smaps) with the
/// flags and counters of the same mappings in `smaps` (read before the stop). `None` when
/// a mapping is new or changed since: then smaps must be read again.
pub fn with_smaps_of(maps: Vec<MemoryMap>, smaps: &[MemoryMap]) -> Option<Vec<MemoryMap>> {
    maps.into_iter()
        .map(|mut map| {
            let before = smaps.iter().find(|old| {
                old.address == map.address
                    && old.perms == map.perms
                    && old.offset == map.offset
                    && old.inode == map.inode
            })?;
            map.extension = before.extension.clone();
            Some(map)
        })
        .collect()
}

/// The kernel's choice (`vma_dump_size` in fs/coredump.c), from what smaps shows.
fn region(map: &MemoryMap, filter: CoredumpFilter) -> Region {
    let flags = map.extension.vm_flags;
    let shared = map.perms.contains(MMPermissions::SHARED);
    let bytes = |key: &str| map.extension.map.get(key).copied().unwrap_or(0);
    let special = matches!(
        map.pathname,
        MMapPath::Vdso | MMapPath::Vvar | MMapPath::Vsyscall
    ) || matches!(&map.pathname, MMapPath::Other(name) if name.starts_with("vvar"));
    let file = match &map.pathname {
        MMapPath::Path(path) if map.inode != 0 => Some(path.display().to_string()),
        MMapPath::Vsys(_) if map.inode != 0 => Some(String::from("/SYSV (deleted)")),
        _ => None,
    };
    let anonymous = file.is_none() && map.inode == 0 && !special;
    // Copy-on-write pages (anon_vma in the kernel): the mapping was written to.
    let written = bytes("Anonymous") + bytes("Swap") > 0;
    let extent = if special {
        Extent::Whole
    } else if flags.contains(VmFlags::DD) || flags.contains(VmFlags::IO) {
        Extent::Nothing
    } else if flags.contains(VmFlags::HT) {
        let bit = if shared {
            CoredumpFilter::HUGETLB_SHARED
        } else {
            CoredumpFilter::HUGETLB_PRIVATE
        };
        whole_if(filter.has(bit))
    } else if shared {
        // Shared memory whose file has no name left (MAP_SHARED|MAP_ANONYMOUS, memfd,
        // SysV shm, a deleted file) counts as anonymous.
        let unlinked = file.as_deref().is_none_or(|p| p.ends_with(" (deleted)"))
            || matches!(map.pathname, MMapPath::Vsys(_));
        let bit = if unlinked {
            CoredumpFilter::ANON_SHARED
        } else {
            CoredumpFilter::MAPPED_SHARED
        };
        whole_if(filter.has(bit))
    } else if written && filter.has(CoredumpFilter::ANON_PRIVATE) {
        Extent::Whole
    } else if file.is_none() {
        Extent::Nothing
    } else if filter.has(CoredumpFilter::MAPPED_PRIVATE) {
        Extent::Whole
    } else if filter.has(CoredumpFilter::ELF_HEADERS)
        && map.offset == 0
        && map.perms.contains(MMPermissions::READ)
    {
        Extent::ElfHeader
    } else {
        Extent::Nothing
    };
    let data_bytes = if anonymous {
        bytes("Rss") + bytes("Swap")
    } else {
        // A file page that is not resident still has content: all of it may be copied.
        map.address.1 - map.address.0
    };
    Region {
        start: map.address.0,
        end: map.address.1,
        read: map.perms.contains(MMPermissions::READ),
        write: map.perms.contains(MMPermissions::WRITE),
        execute: map.perms.contains(MMPermissions::EXECUTE),
        anonymous,
        file: file.map(|f| (f, map.offset)),
        extent,
        data_bytes,
    }
}

fn whole_if(yes: bool) -> Extent {
    if yes { Extent::Whole } else { Extent::Nothing }
}

/// Free bytes for an unprivileged writer on the filesystem holding `dir`.
pub fn free_space(dir: &Path) -> std::io::Result<u64> {
    let stat = rustix::fs::statvfs(dir)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// How many bytes procshot may allocate to hold a copy of the target's memory: the
/// system's `MemAvailable`, and no more than what procshot's own memory cgroup has left
/// under its limit, minus a reserve of an eighth (at least 64 MiB) so that nothing else is
/// squeezed.
pub fn memory_budget() -> u64 {
    let available = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("MemAvailable:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024);
    let limit = own_cgroup_headroom().unwrap_or(u64::MAX);
    let usable = available.min(limit);
    usable.saturating_sub((usable / 8).max(64 << 20))
}

/// What procshot's own memory cgroup (v1 or v2) has left under its lowest limit (its own
/// or an ancestor's), when there is one.
fn own_cgroup_headroom() -> Option<u64> {
    let me = crate::process::Target::open(Path::new("/proc"), std::process::id() as i32).ok()?;
    let cgroup = crate::captures::memory::cgroup::read(&me, None).ok()?;
    let limit = cgroup.effective_limit?.bytes;
    Some(limit.saturating_sub(cgroup.usage_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use procfs::FromBufRead;
    use procfs::process::MemoryMaps;

    const SMAPS: &str = "\
55d0c0000000-55d0c0001000 r--p 00000000 fd:00 1234 /usr/bin/app
Rss:                   4 kB
Anonymous:             0 kB
Swap:                  0 kB
VmFlags: rd mr mw me
55d0c0001000-55d0c0003000 rw-p 00001000 fd:00 1234 /usr/bin/app
Rss:                   8 kB
Anonymous:             4 kB
Swap:                  0 kB
VmFlags: rd wr mr mw me ac
7f0000000000-7f0000100000 rw-p 00000000 00:00 0 
Rss:                  64 kB
Anonymous:            64 kB
Swap:                  4 kB
VmFlags: rd wr mr mw me ac
7f0000100000-7f0000200000 ---p 00000000 00:00 0 
Rss:                   0 kB
Anonymous:             0 kB
Swap:                  0 kB
VmFlags: mr mw me
7f0000200000-7f0000201000 rw-s 00000000 00:01 77 /dev/zero (deleted)
Rss:                   4 kB
Anonymous:             0 kB
Swap:                  0 kB
VmFlags: rd wr sh mr mw me ms
7f0000201000-7f0000202000 rw-p 00000000 00:00 0 
Rss:                   4 kB
Anonymous:             4 kB
Swap:                  0 kB
VmFlags: rd wr mr mw me dd
7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0 [vdso]
Rss:                   8 kB
Anonymous:             0 kB
Swap:                  0 kB
VmFlags: rd ex mr mw me de
";

    fn plan(filter: u32) -> Plan {
        let maps = MemoryMaps::from_buf_read(SMAPS.as_bytes()).unwrap();
        Plan::new(&maps.0, CoredumpFilter(filter), 4096)
    }

    #[test]
    fn the_default_filter_takes_what_the_kernel_takes() {
        let extents: Vec<Extent> = plan(0x33).regions.iter().map(|r| r.extent).collect();
        assert_eq!(
            extents,
            [
                Extent::ElfHeader, // file text: its ELF header only
                Extent::Whole,     // written file data (copy-on-write)
                Extent::Whole,     // written anonymous memory
                Extent::Nothing,   // reserved, never written
                Extent::Whole,     // shared anonymous
                Extent::Nothing,   // MADV_DONTDUMP
                Extent::Whole,     // vdso
            ]
        );
        let p = plan(0x33);
        assert_eq!(p.memory_bytes, 4096 + 8192 + (1 << 20) + 4096 + 8192);
        // ELF header page, the file data (all of it may need reading), resident + swapped
        // anonymous, the shared page's file pages, the vdso.
        assert_eq!(p.data_bytes, 4096 + 8192 + 68 * 1024 + 4096 + 8192);
        assert!(p.regions[2].anonymous && !p.regions[1].anonymous);
        assert_eq!(p.regions[1].file, Some(("/usr/bin/app".into(), 0x1000)));
    }

    #[test]
    fn filter_bits_turn_mappings_off_and_on() {
        // Without anonymous shared memory (bit 1).
        assert_eq!(plan(0x31).regions[4].extent, Extent::Nothing);
        // With file-backed private mappings (bit 2): the text is taken whole.
        assert_eq!(plan(0x37).regions[0].extent, Extent::Whole);
        // Without anonymous private memory (bit 0): the heap is left out.
        assert_eq!(plan(0x32).regions[2].extent, Extent::Nothing);
        assert_eq!(
            CoredumpFilter::parse("00000033\n"),
            Some(CoredumpFilter::DEFAULT)
        );
    }
}
