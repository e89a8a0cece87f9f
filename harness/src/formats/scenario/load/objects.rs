//! What a BPF ELF object holds, read with aya-obj (no syscalls): its
//! programs, its maps' key and value sizes and the BTF types of its maps
//! and globals.

use std::{collections::BTreeMap, sync::Arc};

use crate::formats::typed::ObjectTypes;

/// The section names of the programs dsrlab runs, for messages.
pub const SECTION_NAMES: &str = "xdp, xdp.frags, xdp/<name>, tc, tc/ingress, tc/egress, \
     tcx/ingress, tcx/egress, classifier, classifier/<name>";

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
#[derive(Clone, Debug)]
pub struct ObjectInfo {
    /// Programs by name.
    pub programs: BTreeMap<String, Hook>,
    /// Maps by name, without the global-data sections (`.rodata`, `.bss`,
    /// `.data`), which are not written through `maps:`.
    pub maps: BTreeMap<String, MapInfo>,
    /// The types of its maps and globals from its BTF, or why there are
    /// none (no `.BTF`, or BTF libbpf cannot read).
    pub types: Result<Arc<ObjectTypes>, String>,
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
        let types = match ObjectTypes::parse(bytes) {
            Ok(Some(types)) => Ok(Arc::new(types)),
            Ok(None) => Err("the object has no BTF (compile it with `clang -g`)".to_owned()),
            Err(e) => Err(format!("its BTF cannot be read: {e}")),
        };
        let bytes = crate::load::sections::for_aya(bytes)?;
        let obj = aya_obj::Object::parse(&bytes).map_err(|e| {
            let mut msg = format!("not a valid BPF object: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                msg.push_str(&format!(": {s}"));
                source = s.source();
            }
            if matches!(e, aya_obj::ParseError::InvalidProgramSection { .. }) {
                msg.push_str(&format!(
                    " (dsrlab reads objects with aya, which refuses an object with a section \
                     name it does not know, even for a program the scenario does not use; \
                     the names it reads for the programs dsrlab runs are {SECTION_NAMES})"
                ));
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
        Ok(Self {
            programs,
            maps,
            types,
        })
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

#[cfg(test)]
mod tests {
    use super::*;

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
