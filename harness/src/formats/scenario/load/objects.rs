//! What a BPF ELF object holds, read with aya-obj (no syscalls): its
//! programs and its maps' key and value sizes. And the hex that map keys
//! and values are written in.

use std::collections::BTreeMap;

/// ELF machine number of BPF.
const EM_BPF: u16 = 247;

/// A map as declared in an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapInfo {
    /// `BPF_MAP_TYPE_*`.
    pub map_type: u32,
    /// Key size in bytes.
    pub key_size: u32,
    /// Value size in bytes.
    pub value_size: u32,
    /// Maximum number of entries.
    pub max_entries: u32,
}

/// Where a program runs, as far as its verdicts are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// XDP: `XDP_*` verdicts.
    Xdp,
    /// sched_cls (TC): `TC_ACT_*` verdicts.
    Tc,
    /// Any other program type (dsrlab cannot test-run it).
    Other,
}

/// The programs and maps of one object.
#[derive(Clone, Debug, Default)]
pub struct ObjectInfo {
    /// Programs by name.
    pub programs: BTreeMap<String, Hook>,
    /// Maps by name, without the global-data sections (`.rodata`, `.bss`,
    /// `.data`), which are not written through `maps:`.
    pub maps: BTreeMap<String, MapInfo>,
}

impl ObjectInfo {
    /// Reads an ELF BPF object; the error says what the bytes are instead.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        if bytes.get(..4) != Some(b"\x7fELF") {
            return Err("not an ELF file".into());
        }
        // e_machine follows e_ident (16 bytes) and e_type, in the file's
        // byte order (EI_DATA: 1 little, 2 big).
        let machine = match (bytes.get(5), bytes.get(18..20)) {
            (Some(1), Some(m)) => u16::from_le_bytes([m[0], m[1]]),
            (Some(2), Some(m)) => u16::from_be_bytes([m[0], m[1]]),
            _ => return Err("truncated or invalid ELF header".into()),
        };
        if machine != EM_BPF {
            return Err(format!(
                "an ELF object for machine {machine}, not BPF ({EM_BPF})"
            ));
        }
        let obj = aya_obj::Object::parse(bytes).map_err(|e| {
            let mut msg = format!("not a valid BPF object: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                msg.push_str(&format!(": {s}"));
                source = s.source();
            }
            msg
        })?;
        let programs = obj
            .programs
            .iter()
            .map(|(name, p)| {
                let hook = match p.section {
                    aya_obj::ProgramSection::Xdp { .. } => Hook::Xdp,
                    aya_obj::ProgramSection::SchedClassifier => Hook::Tc,
                    _ => Hook::Other,
                };
                (name.clone(), hook)
            })
            .collect();
        let maps = obj
            .maps
            .iter()
            .filter(|(name, _)| !name.starts_with('.'))
            .map(|(name, m)| {
                (
                    name.clone(),
                    MapInfo {
                        map_type: m.map_type(),
                        key_size: m.key_size(),
                        value_size: m.value_size(),
                        max_entries: m.max_entries(),
                    },
                )
            })
            .collect();
        Ok(Self { programs, maps })
    }

    /// The map names, comma-separated, or `none`.
    pub fn map_names(&self) -> String {
        list(self.maps.keys())
    }

    /// The program names, comma-separated, or `none`.
    pub fn program_names(&self) -> String {
        list(self.programs.keys())
    }
}

fn list<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = names.map(String::as_str).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// Decodes hex bytes; spaces and `:` may separate bytes, and a leading
/// `0x` is allowed.
pub fn hex(s: &str) -> Result<Vec<u8>, String> {
    let body = s.trim();
    let body = body
        .strip_prefix("0x")
        .or_else(|| body.strip_prefix("0X"))
        .unwrap_or(body);
    let mut out = Vec::new();
    for group in body.split(|c: char| c == ':' || c.is_whitespace()) {
        if group.is_empty() {
            continue;
        }
        if group.len() % 2 != 0 {
            return Err(format!(
                "`{s}` is not hex bytes: `{group}` has an odd number of digits"
            ));
        }
        if let Some(bad) = group.chars().find(|c| !c.is_ascii_hexdigit()) {
            return Err(format!(
                "`{s}` is not hex bytes: `{bad}` is not a hex digit"
            ));
        }
        for pair in group.as_bytes().chunks(2) {
            // Two ASCII hex digits: both conversions succeed.
            let text = std::str::from_utf8(pair).unwrap_or("00");
            out.push(u8::from_str_radix(text, 16).unwrap_or(0));
        }
    }
    if out.is_empty() {
        return Err(format!(
            "`{s}` is empty; expected hex bytes such as `01000000`"
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_forms() {
        assert_eq!(hex("01000000"), Ok(vec![1, 0, 0, 0]));
        assert_eq!(hex("01 00:00 00"), Ok(vec![1, 0, 0, 0]));
        assert_eq!(hex("0xdead"), Ok(vec![0xde, 0xad]));
        assert!(hex("abc").unwrap_err().contains("odd number"));
        assert!(hex("zz").unwrap_err().contains("`z` is not a hex digit"));
        assert!(hex("+1").unwrap_err().contains("`+` is not a hex digit"));
        assert!(hex(" ").unwrap_err().contains("is empty"));
    }

    #[test]
    fn the_builtin_decap_object() {
        let info = ObjectInfo::parse(crate::datapath::XDP_DECAP.elf).unwrap();
        assert_eq!(info.programs.keys().collect::<Vec<_>>(), ["xdp_decap"]);
        assert_eq!(info.programs["xdp_decap"], Hook::Xdp);
        let m = info.maps["DECAP_COUNTERS"];
        assert_eq!((m.key_size, m.value_size), (4, 8));
        assert!(
            ObjectInfo::parse(b"hello")
                .unwrap_err()
                .contains("not an ELF")
        );
    }
}
