//! The Go build info embedded in every Go binary (what `go version -m` prints): the Go
//! version, the main module, the dependencies with their replacements, and the build
//! settings, read from the `.go.buildinfo` ELF section (Go 1.18+ inline-string format).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use object::read::ReadCache;
use object::{Object, ObjectSection};
use serde::{Deserialize, Serialize};

/// The section's first bytes.
const MAGIC: &[u8] = b"\xff Go buildinf:";
/// Flag bit: version and module strings follow the header inline (Go 1.18+).
const FLAG_INLINE_STRINGS: u8 = 0x2;
/// Where the inline strings start.
const INLINE_OFFSET: usize = 32;
/// Bytes of sentinel around the module info.
const MODINFO_SENTINEL: usize = 16;

/// A Go binary's build info.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GoBuildInfo {
    /// `go1.19.8`.
    pub go_version: String,
    /// The main package's import path (`path` line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The main module (`mod` line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main: Option<GoModule>,
    /// The dependencies (`dep` lines), each with its replacement (`=>`).
    #[serde(default)]
    pub deps: Vec<GoModule>,
    /// Build settings (`build` lines: `-compiler`, `CGO_ENABLED`, `vcs.revision`, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: BTreeMap<String, String>,
}

/// A module of the build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GoModule {
    /// Module path.
    pub path: String,
    /// Version (`(devel)` for the main module built from a work tree).
    pub version: String,
    /// `go.sum` hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sum: Option<String>,
    /// What replaced it (a `replace` directive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace: Option<Box<GoModule>>,
}

/// Why build info could not be read from a Go binary.
#[derive(Debug, thiserror::Error)]
pub enum BuildInfoError {
    /// The executable could not be opened or parsed as ELF.
    #[error("cannot read the executable {path}: {detail}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// The section is there but not in a format procshot reads.
    #[error("the Go build info of {path} cannot be read: {detail}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong (or too old: Go before 1.18).
        detail: String,
    },
}

/// Reads the build info of the executable at `path` (`/proc/PID/exe` works across mount
/// namespaces). `Ok(None)`: not a Go binary.
pub fn read(path: &Path) -> Result<Option<GoBuildInfo>, BuildInfoError> {
    let read_error = |detail: String| BuildInfoError::Read {
        path: path.to_path_buf(),
        detail,
    };
    let file = File::open(path).map_err(|e| read_error(e.to_string()))?;
    let cache = ReadCache::new(file);
    let elf = object::File::parse(&cache).map_err(|e| read_error(e.to_string()))?;
    let Some(section) = elf.section_by_name(".go.buildinfo") else {
        return Ok(None);
    };
    let data = section.data().map_err(|e| read_error(e.to_string()))?;
    parse_section(data)
        .map(Some)
        .map_err(|detail| BuildInfoError::Format {
            path: path.to_path_buf(),
            detail,
        })
}

/// Parses the content of a `.go.buildinfo` section.
fn parse_section(data: &[u8]) -> Result<GoBuildInfo, String> {
    if !data.starts_with(MAGIC) || data.len() < INLINE_OFFSET {
        return Err("the section does not start with Go's build info magic".into());
    }
    if data[MAGIC.len() + 1] & FLAG_INLINE_STRINGS == 0 {
        return Err(
            "it uses the pointer format of Go 1.17 and older, which procshot does not read".into(),
        );
    }
    let mut rest = &data[INLINE_OFFSET..];
    let version = read_string(&mut rest).ok_or("the Go version string is cut short")?;
    let modinfo = read_string(&mut rest).ok_or("the module info string is cut short")?;
    let modinfo = strip_sentinels(modinfo);
    let mut info = parse_modinfo(&String::from_utf8_lossy(modinfo));
    info.go_version = String::from_utf8_lossy(version).into_owned();
    Ok(info)
}

/// A string prefixed by its length as an unsigned varint.
fn read_string<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let length = usize::try_from(super::binary::uvarint(rest)?).ok()?;
    let (string, tail) = (rest.get(..length)?, rest.get(length..)?);
    *rest = tail;
    Some(string)
}

/// The module info is wrapped in 16 bytes of sentinel on each side (as Go's
/// `debug/buildinfo` checks: the byte before the closing sentinel is a newline).
fn strip_sentinels(modinfo: &[u8]) -> &[u8] {
    let n = modinfo.len();
    if n > 2 * MODINFO_SENTINEL && modinfo[n - MODINFO_SENTINEL - 1] == b'\n' {
        &modinfo[MODINFO_SENTINEL..n - MODINFO_SENTINEL]
    } else {
        &[]
    }
}

/// Parses the `path`/`mod`/`dep`/`=>`/`build` lines.
fn parse_modinfo(text: &str) -> GoBuildInfo {
    let mut info = GoBuildInfo {
        go_version: String::new(),
        path: None,
        main: None,
        deps: Vec::new(),
        settings: BTreeMap::new(),
    };
    // Whether the last `mod`/`dep` line was the main module (a `=>` line replaces it).
    let mut last_was_main = false;
    for line in text.lines() {
        let mut fields = line.split('\t');
        let keyword = fields.next().unwrap_or_default();
        let rest: Vec<&str> = fields.collect();
        match keyword {
            "path" => info.path = rest.first().map(|p| p.to_string()),
            "mod" => {
                info.main = module(&rest);
                last_was_main = true;
            }
            "dep" => {
                info.deps.extend(module(&rest));
                last_was_main = false;
            }
            "=>" => {
                let replacing = if last_was_main {
                    info.main.as_mut()
                } else {
                    info.deps.last_mut()
                };
                if let Some(replaced) = replacing {
                    replaced.replace = module(&rest).map(Box::new);
                }
            }
            "build" => {
                if let Some((key, value)) = rest.join("\t").split_once('=') {
                    info.settings.insert(key.to_string(), value.to_string());
                }
            }
            _ => {}
        }
    }
    info
}

/// `path`, `version`, optional `sum`.
fn module(fields: &[&str]) -> Option<GoModule> {
    let path = fields.first().filter(|p| !p.is_empty())?;
    Some(GoModule {
        path: path.to_string(),
        version: fields.get(1).copied().unwrap_or_default().to_string(),
        sum: fields
            .get(2)
            .filter(|s| !s.is_empty())
            .map(|s| s.to_string()),
        replace: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODINFO: &str = "path\texample.com/shop/api\n\
        mod\texample.com/shop/api\t(devel)\t\n\
        dep\tgolang.org/x/net\tv0.7.0\th1:rJrUqqhjsgNp7KqAIc25s9pZnjU7TUcSY7HcVZjdn1g=\n\
        dep\texample.com/leakydep\tv0.0.0\n\
        =>\t./leakydep\t(devel)\t\n\
        build\t-compiler=gc\n\
        build\tCGO_ENABLED=1\n\
        build\tvcs.revision=0123abcd\n";

    fn section(version: &str, modinfo: &str) -> Vec<u8> {
        let mut data = MAGIC.to_vec();
        data.push(8);
        data.push(FLAG_INLINE_STRINGS);
        data.resize(INLINE_OFFSET, 0);
        let mut wrapped = vec![0x30; MODINFO_SENTINEL];
        wrapped.extend_from_slice(modinfo.as_bytes());
        wrapped.extend_from_slice(&[0xf9; MODINFO_SENTINEL]);
        for string in [version.as_bytes(), &wrapped] {
            let mut n = string.len();
            while n >= 0x80 {
                data.push((n as u8 & 0x7f) | 0x80);
                n >>= 7;
            }
            data.push(n as u8);
            data.extend_from_slice(string);
        }
        data
    }

    #[test]
    fn inline_build_info_is_read() {
        let long = MODINFO.repeat(3); // > 127 bytes: a two-byte varint
        let info = parse_section(&section("go1.19.8", &long)).unwrap();
        assert_eq!(info.go_version, "go1.19.8");
        assert_eq!(info.path.as_deref(), Some("example.com/shop/api"));
        let main = info.main.unwrap();
        assert_eq!(
            (main.path.as_str(), main.version.as_str()),
            ("example.com/shop/api", "(devel)")
        );
        assert_eq!(main.sum, None);
        let net = &info.deps[0];
        assert_eq!(net.version, "v0.7.0");
        assert!(net.sum.as_deref().unwrap().starts_with("h1:"));
        let dep = &info.deps[1];
        assert_eq!(dep.path, "example.com/leakydep");
        assert_eq!(dep.replace.as_ref().unwrap().path, "./leakydep");
        assert_eq!(info.settings["CGO_ENABLED"], "1");
        assert_eq!(info.settings["vcs.revision"], "0123abcd");
    }

    #[test]
    fn old_and_foreign_sections_are_refused() {
        let mut old = section("go1.17", MODINFO);
        old[MAGIC.len() + 1] = 0;
        assert!(parse_section(&old).unwrap_err().contains("Go 1.17"));
        assert!(parse_section(b"not a build info section at all, no").is_err());
        let mut cut = section("go1.19.8", MODINFO);
        cut.truncate(INLINE_OFFSET + 4);
        assert!(parse_section(&cut).unwrap_err().contains("cut short"));
    }
}
