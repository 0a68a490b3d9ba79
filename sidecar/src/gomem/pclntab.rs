//! Go's function table (`pclntab`, the format of Go 1.18 and later): functions by pc,
//! their names, and their pc-value tables (frame size, file, line, pcdata), which are
//! what the runtime's own traceback uses, so no DWARF is needed. Everything in it is
//! parsed as hostile input: an offset out of range gives `None`, never a panic.

use std::borrow::Cow;

/// One function of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Func {
    /// Its entry, as an offset from the start of the text (`moduledata.text`).
    pub entry: u32,
    /// Where the next function starts (same base).
    pub end: u32,
    /// Where its `_func` is in the table.
    offset: usize,
    name_off: u32,
    pcsp: u32,
    pcfile: u32,
    pcln: u32,
    npcdata: u32,
    cu_offset: u32,
    /// `abi.FuncID`.
    pub func_id: u8,
    nfuncdata: u8,
}

/// The parsed table.
#[derive(Debug)]
pub struct Pclntab {
    data: Vec<u8>,
    nfunc: usize,
    funcnames: usize,
    cutab: usize,
    filetab: usize,
    pctab: usize,
    pcln: usize,
    func_header: usize,
}

/// `_PCDATA_InlTreeIndex`.
pub const PCDATA_INLINE_TREE_INDEX: u32 = 2;
/// `_FUNCDATA_InlTree`.
pub const FUNCDATA_INLINE_TREE: u32 = 3;

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(data: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(data.get(at..at + 8)?.try_into().ok()?))
}

/// The varint at `at` in `data`, which must fit 32 bits; `at` moves past it.
fn uvarint(data: &[u8], at: &mut usize) -> Option<u32> {
    let mut rest = data.get(*at..)?;
    let value = super::binary::uvarint(&mut rest)?;
    *at = data.len() - rest.len();
    u32::try_from(value).ok()
}

impl Pclntab {
    /// Parses a table starting with its `pcHeader`; `func_header` is the size of `_func`
    /// before its pcdata (40 in Go 1.18–1.19, 44 from 1.20).
    pub fn parse(data: Vec<u8>, func_header: usize) -> Result<Self, String> {
        let magic = u32_at(&data, 0).ok_or("the table is empty")?;
        if magic != super::binary::MAGIC_118 && magic != super::binary::MAGIC_120 {
            return Err(format!("its magic is {magic:#x}, not Go 1.18+'s"));
        }
        if data.get(6..8) != Some(&[1, 8]) {
            return Err("it is not a 64-bit table".into());
        }
        let word = |i: usize| u64_at(&data, 8 + 8 * i).map(|v| v as usize);
        let nfunc = word(0).ok_or("its header is cut short")?;
        let table = Self {
            nfunc,
            funcnames: word(3).ok_or("its header is cut short")?,
            cutab: word(4).ok_or("its header is cut short")?,
            filetab: word(5).ok_or("its header is cut short")?,
            pctab: word(6).ok_or("its header is cut short")?,
            pcln: word(7).ok_or("its header is cut short")?,
            func_header,
            data,
        };
        let functab_end = nfunc
            .checked_mul(8)
            .and_then(|n| n.checked_add(table.pcln + 4))
            .ok_or("its function count is absurd")?;
        if nfunc == 0
            || [
                table.funcnames,
                table.cutab,
                table.filetab,
                table.pctab,
                functab_end,
            ]
            .iter()
            .any(|&o| o > table.data.len())
        {
            return Err(format!(
                "its header points outside the table ({nfunc} functions, {} bytes)",
                table.data.len()
            ));
        }
        Ok(table)
    }

    /// The number of functions.
    pub fn len(&self) -> usize {
        self.nfunc
    }

    /// Whether the table has no function (never, once parsed).
    pub fn is_empty(&self) -> bool {
        self.nfunc == 0
    }

    fn entry_at(&self, i: usize) -> Option<(u32, u32)> {
        let at = self.pcln + i * 8;
        Some((u32_at(&self.data, at)?, u32_at(&self.data, at + 4)?))
    }

    fn func_at(&self, i: usize) -> Option<Func> {
        let (entry, func_offset) = self.entry_at(i)?;
        let end = self.entry_at(i + 1)?.0;
        let offset = self.pcln + func_offset as usize;
        let field = |n: usize| u32_at(&self.data, offset + 4 * n);
        if field(0)? != entry {
            return None;
        }
        let tail = offset + self.func_header - 4;
        Some(Func {
            entry,
            end,
            offset,
            name_off: field(1)?,
            pcsp: field(4)?,
            pcfile: field(5)?,
            pcln: field(6)?,
            npcdata: field(7)?,
            cu_offset: field(8)?,
            func_id: *self.data.get(tail)?,
            nfuncdata: *self.data.get(tail + 3)?,
        })
    }

    /// The function holding text offset `pc`.
    pub fn find(&self, pc: u32) -> Option<Func> {
        // The last entry is the end of the text, not a function.
        let (mut lo, mut hi) = (0usize, self.nfunc);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.entry_at(mid + 1)?.0 <= pc {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let func = self.func_at(lo)?;
        (func.entry <= pc && pc < func.end).then_some(func)
    }

    /// The first function named `name`.
    pub fn by_name(&self, name: &str) -> Option<Func> {
        (0..self.nfunc)
            .filter_map(|i| self.func_at(i))
            .find(|f| self.name_bytes(f.name_off) == Some(name.as_bytes()))
    }

    fn name_bytes(&self, name_off: u32) -> Option<&[u8]> {
        let start = self.funcnames.checked_add(name_off as usize)?;
        let rest = self.data.get(start..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        Some(&rest[..end])
    }

    /// A name of the name table (`?` when out of range).
    pub fn name_at(&self, name_off: u32) -> Cow<'_, str> {
        self.name_bytes(name_off)
            .map_or(Cow::Borrowed("?"), String::from_utf8_lossy)
    }

    /// The function's name.
    pub fn name(&self, func: &Func) -> Cow<'_, str> {
        self.name_at(func.name_off)
    }

    /// The value of the pc-value table at `table` for text offset `pc` in `func`.
    fn pcvalue(&self, func: &Func, table: u32, pc: u32) -> Option<i32> {
        if table == 0 {
            return None;
        }
        let mut at = self.pctab.checked_add(table as usize)?;
        let mut value: i32 = -1;
        let mut current = func.entry;
        let mut first = true;
        loop {
            let delta = uvarint(&self.data, &mut at)?;
            if delta == 0 && !first {
                return None;
            }
            first = false;
            let delta = if delta & 1 != 0 {
                !(delta >> 1) as i32
            } else {
                (delta >> 1) as i32
            };
            let pc_delta = uvarint(&self.data, &mut at)?;
            current = current.checked_add(pc_delta)?;
            value = value.wrapping_add(delta);
            if pc < current {
                return Some(value);
            }
            if current >= func.end {
                return None;
            }
        }
    }

    /// The frame size at `pc` (bytes between the stack pointer and the return address).
    pub fn sp_delta(&self, func: &Func, pc: u32) -> Option<i32> {
        self.pcvalue(func, func.pcsp, pc)
    }

    /// The source file and line of `pc` (the innermost inlined function's, when inlined).
    pub fn file_line(&self, func: &Func, pc: u32) -> (Cow<'_, str>, u32) {
        let line = self.pcvalue(func, func.pcln, pc).unwrap_or(0).max(0) as u32;
        let file = self
            .pcvalue(func, func.pcfile, pc)
            .and_then(|n| self.file_name(func, n))
            .unwrap_or(Cow::Borrowed("?"));
        (file, line)
    }

    fn file_name(&self, func: &Func, file_number: i32) -> Option<Cow<'_, str>> {
        let index = func
            .cu_offset
            .checked_add(u32::try_from(file_number).ok()?)?;
        let offset = u32_at(&self.data, self.cutab + 4 * index as usize)?;
        let rest = self
            .data
            .get(self.filetab.checked_add(offset as usize)?..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        Some(String::from_utf8_lossy(&rest[..end]))
    }

    /// The value of pcdata table `index` at `pc` (`None`: no table, or no value).
    pub fn pcdata(&self, func: &Func, index: u32, pc: u32) -> Option<i32> {
        if index >= func.npcdata {
            return None;
        }
        let table = u32_at(
            &self.data,
            func.offset + self.func_header + 4 * index as usize,
        )?;
        self.pcvalue(func, table, pc)
    }

    /// Funcdata `index` of `func`: an offset from `moduledata.gofunc`.
    pub fn funcdata(&self, func: &Func, index: u32) -> Option<u32> {
        if index >= u32::from(func.nfuncdata) {
            return None;
        }
        let at = func.offset + self.func_header + 4 * (func.npcdata + index) as usize;
        u32_at(&self.data, at).filter(|&o| o != u32::MAX)
    }

    /// The table's first bytes (the reader compares them with the target's memory).
    pub fn header(&self) -> &[u8] {
        &self.data[..self.data.len().min(64)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table of two functions, `main.a` at [0x10, 0x40) and `main.b` at [0x40, 0x80),
    /// each with a frame-size table, file and line.
    fn table() -> Pclntab {
        let mut data = vec![0u8; 72];
        data[..4].copy_from_slice(&super::super::binary::MAGIC_120.to_le_bytes());
        data[6] = 1;
        data[7] = 8;
        let names = b"main.a\0main.b\0";
        let file = b"/src/main.go\0";
        // pctab: offset 0 unused; 1: sp table (0 for 0x8 bytes, then 16); 6: line 10
        // for the whole function; 9: file 0.
        let pctab: &[u8] = &[0, 0x02, 0x08, 0x20, 0x28, 0, 0x16, 0x40, 0, 0x02, 0x40, 0];
        let set = |data: &mut Vec<u8>, word: usize, value: usize| {
            data[8 + 8 * word..16 + 8 * word].copy_from_slice(&(value as u64).to_le_bytes());
        };
        let mut offset = data.len();
        set(&mut data, 0, 2);
        set(&mut data, 3, offset);
        data.extend_from_slice(names);
        offset = data.len();
        set(&mut data, 4, offset);
        data.extend_from_slice(&0u32.to_le_bytes());
        offset = data.len();
        set(&mut data, 5, offset);
        data.extend_from_slice(file);
        offset = data.len();
        set(&mut data, 6, offset);
        data.extend_from_slice(pctab);
        let pcln = data.len();
        set(&mut data, 7, pcln);
        let functab_len = 3 * 8;
        let funcs = [(0x10u32, 0u32), (0x40, 7)];
        for (i, (entry, _)) in funcs.iter().enumerate() {
            data.extend_from_slice(&entry.to_le_bytes());
            data.extend_from_slice(&((functab_len + i * 44) as u32).to_le_bytes());
        }
        data.extend_from_slice(&0x80u32.to_le_bytes());
        data.extend_from_slice(&0u32.to_le_bytes());
        for (entry, name) in funcs {
            let fields = [entry, name, 0, 0, 1, 9, 6, 0, 0, 0];
            for f in fields {
                data.extend_from_slice(&f.to_le_bytes());
            }
            data.extend_from_slice(&[0, 0, 0, 0]);
        }
        Pclntab::parse(data, 44).unwrap()
    }

    #[test]
    fn functions_are_found_by_pc_and_name() {
        let t = table();
        assert_eq!(t.len(), 2);
        let a = t.find(0x10).unwrap();
        assert_eq!(t.name(&a), "main.a");
        assert_eq!(t.name(&t.find(0x7f).unwrap()), "main.b");
        assert!(t.find(0x0f).is_none() && t.find(0x80).is_none());
        assert_eq!(t.by_name("main.b").unwrap().entry, 0x40);
        assert_eq!(t.sp_delta(&a, 0x12), Some(0));
        assert_eq!(t.sp_delta(&a, 0x20), Some(16));
        let (file, line) = t.file_line(&a, 0x30);
        assert_eq!((file.as_ref(), line), ("/src/main.go", 10));
    }

    #[test]
    fn garbage_is_refused_or_gives_nothing() {
        assert!(Pclntab::parse(vec![0; 100], 44).is_err());
        let mut data = table().data;
        data[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(Pclntab::parse(data.clone(), 44).is_err());
        // A table cut short answers None instead of panicking.
        let mut t = table();
        t.data.truncate(t.pcln + 20);
        assert!(t.find(0x50).is_none());
    }
}
