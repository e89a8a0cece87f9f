//! Programs: builtins and user objects resolved, checked against what the
//! object holds (its programs, its maps' key and value sizes, the maps a
//! contract needs), and their `maps:` entries decoded.

use dsrlab_abi::decap::{COUNTERS_MAP, Counter, GUE_PORT_GLOBAL};

use super::{
    Checked, EntryValue, Loader, MapEntries, ProgramSource, ResolvedProgram, ScenarioError,
    objects::{self, Hook, MapInfo, ObjectInfo},
    tree::YPath,
    values::{Part, Slot},
};
use crate::formats::scenario::model::{Builtin, Contract, MapEntry, ProgramSpec};

impl Loader<'_> {
    /// Checks and resolves one program.
    pub(super) fn program(&self, p: &YPath, spec: &ProgramSpec) -> Result<Checked, ScenarioError> {
        if let Some(chain) = &spec.chain {
            return self.chain(p, spec, chain);
        }
        let builtins = "xdp_decap, tc_decap, xdp_pass, tc_pass, xdp_lb";
        let (source, info, object, hook) = match (spec.builtin, &spec.object) {
            (Some(_), Some(_)) => {
                return Err(self.at_key(
                    &p.key("object"),
                    "a program has both `builtin` and `object`; give one: `builtin` for one of \
                     dsrlab's programs, or `object` and `program` for your own",
                ));
            }
            (None, None) => {
                return Err(self.at_value(
                    p,
                    format!(
                        "a program needs `builtin` (one of {builtins}), `object` and `program`, or \
                         `chain`"
                    ),
                ));
            }
            (Some(b), None) => {
                if spec.program.is_some() {
                    return Err(self.at_key(
                        &p.key("program"),
                        "`program` goes with `object`; a builtin is named by `builtin` alone",
                    ));
                }
                let elf = b.object().elf;
                // An empty object means the BPF build was skipped; loading
                // it fails later with that reason, nothing to check here.
                let info = if elf.is_empty() {
                    None
                } else {
                    Some(ObjectInfo::parse(elf).map_err(|e| {
                        self.at_value(&p.key("builtin"), format!("built-in {}: {e}", b.name()))
                    })?)
                };
                let hook = match b {
                    Builtin::XdpDecap | Builtin::XdpPass | Builtin::XdpLb => Hook::Xdp,
                    Builtin::TcDecap | Builtin::TcPass => Hook::Tc,
                };
                (
                    ProgramSource::Builtin(b),
                    info,
                    format!("built-in {}", b.name()),
                    hook,
                )
            }
            (None, Some(rel)) => {
                let at = p.key("object");
                let object = self.resolve(rel);
                let shown = object.display().to_string();
                let bytes = std::fs::read(&object)
                    .map_err(|e| self.at_value(&at, format!("cannot read object {shown}: {e}")))?;
                let info = ObjectInfo::parse(&bytes)
                    .map_err(|e| self.at_value(&at, format!("object {shown}: {e}")))?;
                let Some(program) = &spec.program else {
                    return Err(self.at_key(
                        &at,
                        format!(
                            "`object` needs `program`, the name of a program in it; {shown} has: {}",
                            info.program_names()
                        ),
                    ));
                };
                let Some(&hook) = info.programs.get(program) else {
                    return Err(self.at_value(
                        &p.key("program"),
                        format!(
                            "program `{program}` is not in {shown}; it has: {}",
                            info.program_names()
                        ),
                    ));
                };
                if hook == Hook::Other {
                    return Err(self.at_value(
                        &p.key("program"),
                        format!(
                            "program `{program}` in {shown} is neither XDP nor a TC classifier, \
                             the program types dsrlab runs (sections {})",
                            objects::SECTION_NAMES
                        ),
                    ));
                }
                let source = ProgramSource::File {
                    object,
                    program: program.clone(),
                };
                (source, Some(info), shown, hook)
            }
        };
        let name = match (&spec.label, &source) {
            (Some(label), _) => self.check_label(&p.key("label"), label)?,
            (None, ProgramSource::Builtin(b)) => b.name().to_owned(),
            (None, ProgramSource::File { program, .. }) => program.clone(),
            (None, ProgramSource::Chain(_)) => unreachable!("chains are resolved in load::chain"),
        };
        if spec.gue_port.is_some()
            && !matches!(spec.builtin, Some(b) if b.contract() == Some(Contract::Decap))
        {
            let hint = if spec.builtin == Some(Builtin::XdpLb) {
                " (the load balancer's GUE port is `lb.gue_port`)"
            } else {
                ""
            };
            return Err(self.at_key(
                &p.key("gue_port"),
                format!(
                    "`gue_port` applies only to the decap builtins (xdp_decap, tc_decap), not to {object}{hint}"
                ),
            ));
        }
        let contract = match (spec.builtin, spec.contract) {
            (Some(b), Some(c)) if b.contract() != Some(c) => {
                return Err(self.at_value(
                    &p.key("contract"),
                    format!(
                        "built-in {} does not implement the {} contract",
                        b.name(),
                        contract_name(c)
                    ),
                ));
            }
            (Some(b), _) => b.contract(),
            (None, c) => c,
        };
        if spec.builtin.is_none()
            && contract == Some(Contract::Decap)
            && let Some(info) = &info
        {
            let fits = info.maps.get(COUNTERS_MAP).is_some_and(|m| {
                m.map_type == BPF_MAP_TYPE_PERCPU_ARRAY
                    && m.key_size == 4
                    && m.value_size == 8
                    && m.max_entries >= Counter::COUNT
            });
            if !fits {
                return Err(self.at_value(
                    &p.key("contract"),
                    format!(
                        "the decap contract needs a per-CPU array `{COUNTERS_MAP}` with 4-byte \
                         keys, 8-byte values and at least {} entries; {object} has maps: {}",
                        Counter::COUNT,
                        info.map_names()
                    ),
                ));
            }
        }
        if spec.builtin.is_none() && contract == Some(Contract::Lb) {
            self.check_lb_object(p, hook, info.as_ref(), &object)?;
        }
        let (lb, plane) = if contract == Some(Contract::Lb) {
            let (setup, plane) = self.lb_setup(p, spec.lb.as_ref())?;
            (Some(setup), Some(plane))
        } else {
            if spec.lb.is_some() {
                let hint = match (&source, contract) {
                    (ProgramSource::File { .. }, None) => {
                        " (give it `contract: lb` if it implements the lb contract)"
                    }
                    _ => "",
                };
                return Err(self.at_key(
                    &p.key("lb"),
                    format!(
                        "`lb` configures a load balancer: it goes with `builtin: xdp_lb` or an \
                         object with `contract: lb`, not with {object}{hint}"
                    ),
                ));
            }
            (None, None)
        };
        let mut globals = Vec::new();
        if let Some(port) = spec.gue_port {
            // The decap programs read it in host order (see dsrlab_abi).
            globals.push((GUE_PORT_GLOBAL.to_owned(), port.to_ne_bytes().to_vec()));
        }
        for (name, value) in &spec.globals {
            let at = p.key("globals").key(name);
            if globals.iter().any(|(n, _)| n == name) {
                return Err(self.at_key(
                    &at,
                    format!("`{name}` is set by `gue_port` already: give one of them"),
                ));
            }
            let global = self.global(&at, name, info.as_ref(), &object)?;
            let slot = Slot {
                size: Some(global.1.size),
                typed: Some((global.0, global.1.ty)),
                untyped: String::new(),
                size_name: "the variable's size",
            };
            let bytes = self.value_bytes(&at, &format!("global {name}"), value, slot)?;
            globals.push((name.clone(), bytes));
        }
        let mut maps = Vec::new();
        for (map, entries) in &spec.maps {
            let at = p.key("maps").key(map);
            let decoded = self.map_entries(&at, map, entries, (info.as_ref(), hook), &object)?;
            maps.push((map.clone(), decoded));
        }
        Ok(Checked {
            program: ResolvedProgram {
                source,
                name,
                globals,
                types: info.as_ref().and_then(|i| i.types.clone().ok()),
                contract,
                maps,
                lb,
            },
            info,
            object,
            hook,
            plane,
        })
    }

    /// A program's `label:`, which names reports and `--out` paths.
    pub(super) fn check_label(&self, at: &YPath, label: &str) -> Result<String, ScenarioError> {
        if label.is_empty() || label.contains(['/', '\\', '@']) || label.trim() != label {
            return Err(self.at_value(
                at,
                format!(
                    "label `{label}` names reports and `--out` paths: it must be non-empty, \
                     without `/`, `@` or surrounding spaces"
                ),
            ));
        }
        Ok(label.to_owned())
    }

    /// Gives programs that share a name distinct labels: `program@file`,
    /// `program@path` when the files share a name too, `name#N` (N its
    /// place in `programs:`) when it is the same program. Labels written in
    /// the scenario are kept, and two equal ones are an error.
    pub(super) fn label_programs(
        &self,
        at: &YPath,
        programs: &mut [Checked],
    ) -> Result<(), ScenarioError> {
        let clashes = |programs: &[Checked], i: usize| {
            programs
                .iter()
                .enumerate()
                .any(|(j, o)| j != i && o.program.name == programs[i].program.name)
        };
        for step in [Label::FileName, Label::Path, Label::Index] {
            let clashing: Vec<usize> = (0..programs.len())
                .filter(|&i| self.spec.programs[i].label.is_none() && clashes(programs, i))
                .collect();
            for i in clashing {
                if step == Label::Index {
                    programs[i].program.name = format!("{}#{}", programs[i].program.name, i + 1);
                } else if let ProgramSource::File { object, program } = &programs[i].program.source
                {
                    let shown = match step {
                        Label::FileName => object.file_name().map_or_else(
                            || object.display().to_string(),
                            |f| f.display().to_string(),
                        ),
                        Label::Index | Label::Path => self.spec.programs[i]
                            .object
                            .as_deref()
                            .unwrap_or(object)
                            .display()
                            .to_string(),
                    };
                    programs[i].program.name = format!("{program}@{shown}");
                }
            }
        }
        for i in 0..programs.len() {
            if let Some(j) = (0..i).find(|&j| programs[j].program.name == programs[i].program.name)
            {
                let name = &programs[i].program.name;
                return Err(self.at_value(
                    &at.index(i),
                    format!(
                        "programs[{j}] and programs[{i}] are both labelled `{name}`: give one of \
                         them its own `label:` (reports, findings and `--out` paths need \
                         distinct names)"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Decodes `maps:` entries and checks them against the object's map:
    /// key and value sizes, and that program arrays get programs of the
    /// same type and maps of maps get maps.
    pub(super) fn map_entries(
        &self,
        at: &YPath,
        map: &str,
        entries: &[MapEntry],
        checked: (Option<&ObjectInfo>, Hook),
        object: &str,
    ) -> Result<MapEntries, ScenarioError> {
        let (info, hook) = checked;
        let declared = match info {
            Some(info) => {
                let Some(m) = info.maps.get(map) else {
                    return Err(self.at_key(
                        at,
                        format!(
                            "map `{map}` is not in {object}; it has: {}",
                            info.map_names()
                        ),
                    ));
                };
                Some(*m)
            }
            None => None,
        };
        let kind = declared.map(|m| MapKind::of(m.map_type));
        if let Some(MapKind::Unwritable(what)) = kind {
            return Err(self.at_key(
                at,
                format!("map `{map}` is {what}: `maps:` cannot write entries into it"),
            ));
        }
        if let Some(m) = declared
            && entries.len() > m.max_entries as usize
        {
            return Err(self.at_key(
                at,
                format!(
                    "map `{map}` holds at most {} entries (max_entries); {} are given",
                    m.max_entries,
                    entries.len()
                ),
            ));
        }
        let decoded: MapEntries = entries
            .iter()
            .enumerate()
            .map(|(j, e)| {
                let at = at.index(j);
                let key = self.value_bytes(
                    &at.key("key"),
                    &format!("map {map}: key"),
                    &e.key,
                    Slot::map(info, map, Part::Key),
                )?;
                let value = match (&e.value, &e.program, &e.map) {
                    (Some(value), None, None) => {
                        if let Some(kind @ (MapKind::Programs | MapKind::Maps)) = kind {
                            return Err(self.at_key(
                                &at.key("value"),
                                format!(
                                    "map `{map}` is {}: write `{}: <name>` instead of `value`",
                                    kind.describe(),
                                    kind.entry_key()
                                ),
                            ));
                        }
                        EntryValue::Bytes(self.value_bytes(
                            &at.key("value"),
                            &format!("map {map}: value"),
                            value,
                            Slot::map(info, map, Part::Value),
                        )?)
                    }
                    (None, Some(program), None) => {
                        if kind.is_some_and(|k| k != MapKind::Programs) {
                            return Err(self.at_key(
                                &at.key("program"),
                                format!("`program` fills program arrays; map `{map}` is not one"),
                            ));
                        }
                        if let Some(info) = info {
                            match info.programs.get(program) {
                                None => {
                                    return Err(self.at_value(
                                        &at.key("program"),
                                        format!(
                                            "program `{program}` is not in {object}; it has: {}",
                                            info.program_names()
                                        ),
                                    ));
                                }
                                Some(&other) if other != hook => {
                                    return Err(self.at_value(
                                        &at.key("program"),
                                        format!(
                                            "program `{program}` is not of the type of the program \
                                             under test, and a tail call only jumps between \
                                             programs of one type"
                                        ),
                                    ));
                                }
                                Some(_) => {}
                            }
                        }
                        EntryValue::Program(program.clone())
                    }
                    (None, None, Some(inner)) => {
                        if kind.is_some_and(|k| k != MapKind::Maps) {
                            return Err(self.at_key(
                                &at.key("map"),
                                format!(
                                    "`map` fills arrays and hashes of maps; map `{map}` is not one"
                                ),
                            ));
                        }
                        if let Some(info) = info
                            && (!info.maps.contains_key(inner) || inner == map)
                        {
                            return Err(self.at_value(
                                &at.key("map"),
                                format!(
                                    "map `{inner}` is not another map of {object}; it has: {}",
                                    info.map_names()
                                ),
                            ));
                        }
                        EntryValue::Map(inner.clone())
                    }
                    _ => {
                        return Err(self.at_key(
                            &at.key("key"),
                            "a map entry needs its `key` and exactly one of `value`, `program` \
                             (program arrays) and `map` (maps of maps)",
                        ));
                    }
                };
                if let Some(m) = declared {
                    self.check_index(&at.key("key"), map, m, &key)?;
                }
                Ok((key, value))
            })
            .collect::<Result<_, ScenarioError>>()?;
        Ok(decoded)
    }

    /// An array's key is an index, which must be below its `max_entries`.
    pub(super) fn check_index(
        &self,
        at: &YPath,
        map: &str,
        m: MapInfo,
        key: &[u8],
    ) -> Result<(), ScenarioError> {
        let array = matches!(m.map_type, 2 | 3 | 6 | 12);
        let index = <[u8; 4]>::try_from(key).map(u32::from_le_bytes);
        match index {
            Ok(index) if array && index >= m.max_entries => Err(self.at_value(
                at,
                format!(
                    "map `{map}` is an array of {} entries (max_entries): index {index} is \
                     beyond it",
                    m.max_entries
                ),
            )),
            _ => Ok(()),
        }
    }
}

/// How a clashing program name is made distinct: by its object's file
/// name, its object's path, or (the same program twice, a builtin twice)
/// its place in `programs:`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Label {
    FileName,
    Path,
    Index,
}

/// What a map's values are, for the entry forms it takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MapKind {
    /// `BPF_MAP_TYPE_PROG_ARRAY`: program file descriptors.
    Programs,
    /// `BPF_MAP_TYPE_ARRAY_OF_MAPS`, `BPF_MAP_TYPE_HASH_OF_MAPS`: map file
    /// descriptors.
    Maps,
    /// Maps whose entries are not key/value bytes a scenario can write:
    /// the kind, for the message.
    Unwritable(&'static str),
    /// Every other map type: bytes.
    Data,
}

impl MapKind {
    const fn of(map_type: u32) -> Self {
        match map_type {
            3 => Self::Programs,
            12 | 13 => Self::Maps,
            4 => Self::Unwritable("a perf event array (the kernel fills it with perf event fds)"),
            15 | 18 | 20 => Self::Unwritable("a socket map (its values are sockets)"),
            17 => Self::Unwritable("an XSK map (its values are AF_XDP sockets)"),
            19 | 21 => Self::Unwritable("cgroup storage (created per cgroup by the kernel)"),
            22 | 23 => Self::Unwritable("a queue or stack (values are pushed, not keyed)"),
            24 | 28 | 29 => Self::Unwritable("local storage (owned by sockets, inodes or tasks)"),
            25 => Self::Unwritable("a struct_ops map"),
            27 | 31 => Self::Unwritable("a ring buffer (it has no entries, only records)"),
            30 => Self::Unwritable("a bloom filter (values are pushed, not keyed)"),
            _ => Self::Data,
        }
    }

    const fn describe(self) -> &'static str {
        match self {
            Self::Programs => "a program array",
            Self::Maps => "a map of maps",
            Self::Unwritable(what) => what,
            Self::Data => "a map of values",
        }
    }

    const fn entry_key(self) -> &'static str {
        match self {
            Self::Programs => "program",
            Self::Maps => "map",
            Self::Unwritable(_) | Self::Data => "value",
        }
    }
}

/// `BPF_MAP_TYPE_PERCPU_ARRAY`.
const BPF_MAP_TYPE_PERCPU_ARRAY: u32 = 6;

pub(super) const fn contract_name(c: Contract) -> &'static str {
    match c {
        Contract::Decap => "decap",
        Contract::Lb => "lb",
    }
}
