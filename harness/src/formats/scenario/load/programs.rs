//! Programs: builtins and user objects resolved, checked against what the
//! object holds (its programs, its maps' key and value sizes, the maps a
//! contract needs), and their `maps:` entries decoded.

use dsrlab_abi::decap::{COUNTERS_MAP, Counter};

use super::{
    Checked, Loader, MapEntries, ProgramSource, ResolvedProgram, ScenarioError,
    objects::{self, Hook, ObjectInfo},
    tree::YPath,
};
use crate::{
    datapath,
    formats::scenario::model::{Builtin, Contract, MapEntry, ProgramSpec},
};

impl Loader<'_> {
    /// Checks and resolves one program.
    pub(super) fn program(&self, p: &YPath, spec: &ProgramSpec) -> Result<Checked, ScenarioError> {
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
                        "a program needs `builtin` (one of {builtins}) or `object` and `program`"
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
                let elf = builtin_object(b).elf;
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
                             the program types dsrlab runs"
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
        let name = match &source {
            ProgramSource::Builtin(b) => b.name().to_owned(),
            ProgramSource::File { program, .. } => program.clone(),
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
        let mut maps = Vec::new();
        for (map, entries) in &spec.maps {
            let at = p.key("maps").key(map);
            let decoded = self.map_entries(&at, map, entries, info.as_ref(), &object)?;
            maps.push((map.clone(), decoded));
        }
        Ok(Checked {
            program: ResolvedProgram {
                source,
                name,
                gue_port: spec.gue_port,
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

    /// Decodes `maps:` entries and checks them against the object's map.
    pub(super) fn map_entries(
        &self,
        at: &YPath,
        map: &str,
        entries: &[MapEntry],
        info: Option<&ObjectInfo>,
        object: &str,
    ) -> Result<MapEntries, ScenarioError> {
        let sizes = match info {
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
                Some((m.key_size, m.value_size))
            }
            None => None,
        };
        entries
            .iter()
            .enumerate()
            .map(|(j, e)| {
                let at = at.index(j);
                let key = self.sized(&at.key("key"), map, "key", &e.key, sizes.map(|s| s.0))?;
                let value =
                    self.sized(&at.key("value"), map, "value", &e.value, sizes.map(|s| s.1))?;
                Ok((key, value))
            })
            .collect()
    }

    /// Decodes hex that must be exactly `size` bytes (when known).
    pub(super) fn sized(
        &self,
        at: &YPath,
        map: &str,
        what: &str,
        text: &str,
        size: Option<u32>,
    ) -> Result<Vec<u8>, ScenarioError> {
        let bytes =
            objects::hex(text).map_err(|e| self.at_value(at, format!("map {map}: {what}: {e}")))?;
        if let Some(size) = size
            && bytes.len() != size as usize
        {
            return Err(self.at_value(
                at,
                format!(
                    "map {map}: {what} is {} bytes, the map's {what} size is {size}",
                    bytes.len()
                ),
            ));
        }
        Ok(bytes)
    }
}

/// `BPF_MAP_TYPE_PERCPU_ARRAY`.
const BPF_MAP_TYPE_PERCPU_ARRAY: u32 = 6;

fn builtin_object(b: Builtin) -> datapath::Object {
    match b {
        Builtin::XdpDecap => datapath::XDP_DECAP,
        Builtin::TcDecap => datapath::TC_DECAP,
        Builtin::XdpPass => datapath::XDP_PASS,
        Builtin::TcPass => datapath::TC_PASS,
        Builtin::XdpLb => datapath::XDP_LB,
    }
}

pub(super) const fn contract_name(c: Contract) -> &'static str {
    match c {
        Contract::Decap => "decap",
        Contract::Lb => "lb",
    }
}
