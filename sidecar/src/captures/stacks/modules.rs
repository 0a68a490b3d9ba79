//! The target's memory map as the stacks capture needs it: which ranges are thread stacks
//! (to bound the copy of a stack) and which are code from an ELF file (a [`Module`]),
//! each module opened once from the target's own view of the file.
//!
//! A module's file is opened through `/proc/PID/map_files/START-END` (the very file that
//! is mapped, even when it was deleted or replaced since, in whatever mount namespace the
//! target lives), else through `/proc/PID/root/PATH`; never through the host's `PATH`,
//! which may be another file or none. The open file is kept for the whole capture, so a
//! target that exits meanwhile can still be symbolized.

use std::fs::File;
use std::path::{Path, PathBuf};

use procfs::process::{MMapPath, MemoryMap};
use serde::{Deserialize, Serialize};

/// One mapping of `/proc/PID/maps` (only what the capture uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// Offset in the mapped file.
    pub offset: u64,
    /// Whether the mapping is executable.
    pub executable: bool,
    /// Which module it belongs to, for mappings of an ELF file.
    pub module: Option<usize>,
    /// `[vdso]`, `[stack]`, … for special mappings.
    pub special: Option<&'static str>,
}

/// How a module's file was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OpenedThrough {
    /// `/proc/PID/map_files/START-END`.
    MapFiles,
    /// `/proc/PID/root/PATH`.
    Root,
}

/// A file mapped into the target with at least one executable mapping.
#[derive(Debug)]
pub struct Module {
    /// The path as the target sees it (`/proc/PID/maps`).
    pub path: String,
    /// The file, opened through the target's view (see the module doc); `None` with the
    /// reason when it could not be opened.
    pub file: Result<(File, OpenedThrough), String>,
}

impl Module {
    /// The short name shown in stacks (`libc.so.6`).
    pub fn name(&self) -> &str {
        let path = self.path.strip_suffix(" (deleted)").unwrap_or(&self.path);
        path.rsplit('/').next().unwrap_or(path)
    }
}

/// The target's mappings and modules.
#[derive(Debug, Default)]
pub struct AddressSpace {
    /// Every mapping, by address.
    pub mappings: Vec<Mapping>,
    /// Every module, in order of first mapping.
    pub modules: Vec<Module>,
}

impl AddressSpace {
    /// Builds the address space from `/proc/PID/maps`, opening every module through
    /// `proc_dir` (the target's `/proc/PID`).
    pub fn new(proc_dir: &Path, maps: &[MemoryMap]) -> Self {
        let mut space = AddressSpace::default();
        // (dev, inode) → module index, for the modules with an executable mapping.
        let mut by_file: Vec<((i32, i32), u64, usize)> = Vec::new();
        for map in maps {
            let executable = map.perms.contains(procfs::process::MMPermissions::EXECUTE);
            if executable
                && let MMapPath::Path(path) = &map.pathname
                && !by_file
                    .iter()
                    .any(|(d, i, _)| *d == map.dev && *i == map.inode)
            {
                let file = open_module(proc_dir, map.address, path);
                by_file.push((map.dev, map.inode, space.modules.len()));
                space.modules.push(Module {
                    path: path.display().to_string(),
                    file,
                });
            }
        }
        for map in maps {
            let module = match &map.pathname {
                MMapPath::Path(_) => by_file
                    .iter()
                    .find(|(d, i, _)| *d == map.dev && *i == map.inode)
                    .map(|(_, _, index)| *index),
                _ => None,
            };
            let special = match &map.pathname {
                MMapPath::Vdso => Some("[vdso]"),
                MMapPath::Stack => Some("[stack]"),
                MMapPath::Heap => Some("[heap]"),
                _ => None,
            };
            space.mappings.push(Mapping {
                start: map.address.0,
                end: map.address.1,
                offset: map.offset,
                executable: map.perms.contains(procfs::process::MMPermissions::EXECUTE),
                module,
                special,
            });
        }
        space.mappings.sort_by_key(|m| m.start);
        space
    }

    /// The mapping that holds `address`.
    pub fn mapping_at(&self, address: u64) -> Option<&Mapping> {
        let index = self.mappings.partition_point(|m| m.start <= address);
        let mapping = self.mappings.get(index.checked_sub(1)?)?;
        (address < mapping.end).then_some(mapping)
    }

    /// The mappings of module `index`.
    pub fn mappings_of(&self, index: usize) -> impl Iterator<Item = &Mapping> {
        self.mappings
            .iter()
            .filter(move |m| m.module == Some(index))
    }
}

/// Opens a module's file through `map_files`, else through the target's root.
fn open_module(
    proc_dir: &Path,
    (start, end): (u64, u64),
    path: &Path,
) -> Result<(File, OpenedThrough), String> {
    let map_file = proc_dir.join(format!("map_files/{start:x}-{end:x}"));
    let map_error = match File::open(&map_file) {
        Ok(file) => return Ok((file, OpenedThrough::MapFiles)),
        Err(e) => e,
    };
    let in_root: PathBuf = proc_dir
        .join("root")
        .join(path.strip_prefix("/").unwrap_or(path));
    File::open(&in_root)
        .map(|file| (file, OpenedThrough::Root))
        .map_err(|e| {
            format!(
                "cannot open {} ({map_error}) nor {} ({e})",
                map_file.display(),
                in_root.display()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use procfs::FromRead;
    use procfs::process::MemoryMaps;

    const MAPS: &str = "\
55d0c0a00000-55d0c0a01000 r--p 00000000 08:01 1234 /opt/app/bin/server
55d0c0a01000-55d0c0a05000 r-xp 00001000 08:01 1234 /opt/app/bin/server
55d0c0a05000-55d0c0a06000 r--p 00005000 08:01 1234 /opt/app/bin/server
7f0000000000-7f0000800000 rw-p 00000000 00:00 0 
7f1000000000-7f1000028000 r--p 00000000 08:01 99 /usr/lib/x86_64-linux-gnu/libc.so.6 (deleted)
7f1000028000-7f100019d000 r-xp 00028000 08:01 99 /usr/lib/x86_64-linux-gnu/libc.so.6 (deleted)
7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0 [stack]
7ffc000fe000-7ffc00100000 r-xp 00000000 00:00 0 [vdso]
";

    #[test]
    fn modules_are_files_with_code_and_mappings_find_their_module() {
        let maps = MemoryMaps::from_read(MAPS.as_bytes()).unwrap().0;
        let space = AddressSpace::new(Path::new("/nonexistent/1"), &maps);
        let names: Vec<_> = space.modules.iter().map(Module::name).collect();
        assert_eq!(names, ["server", "libc.so.6"]);
        let err = space.modules[0].file.as_ref().unwrap_err();
        assert!(
            err.contains("/nonexistent/1/map_files/55d0c0a01000-55d0c0a05000")
                && err.contains("/nonexistent/1/root/opt/app/bin/server"),
            "{err}"
        );
        assert_eq!(space.mappings_of(0).count(), 3);
        assert_eq!(space.mapping_at(0x55d0c0a01234).unwrap().module, Some(0));
        assert_eq!(space.mapping_at(0x7f1000030000).unwrap().offset, 0x28000);
        assert_eq!(space.mapping_at(0x7f0000000010).unwrap().module, None);
        assert_eq!(
            space.mapping_at(0x7ffc000ff000).unwrap().special,
            Some("[vdso]")
        );
        assert!(space.mapping_at(0x7ffc00050000).is_none());
        assert!(space.mapping_at(0x10).is_none());
    }
}
