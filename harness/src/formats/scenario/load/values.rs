//! Keys, values and globals as scenarios write them: typed by the object's
//! BTF ([`crate::formats::typed`]) where it has types for them, else hex
//! bytes (or a plain number for an integer-sized slot).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{
    AfterGlobal, AfterMap, Checked, ExpectedValue, Loader, ScenarioError, objects::ObjectInfo,
    tree::YPath,
};
use crate::formats::{
    scenario::model::{MapCheck, Value},
    typed::{self, ObjectTypes, TypeRef},
};

/// Which half of a map entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Part {
    Key,
    Value,
}

/// Where a written value goes: its size and BTF type, when the object
/// says, and why it is untyped otherwise.
#[derive(Clone, Debug, Default)]
pub(super) struct Slot {
    /// Its size in bytes, when known.
    pub size: Option<u32>,
    /// Its type, when the object's BTF has one.
    pub typed: Option<(Arc<ObjectTypes>, TypeRef)>,
    /// Why there is no type (for the message on a structured value).
    pub untyped: String,
    /// What `size` is called in messages (`the map's key size`).
    pub size_name: &'static str,
}

impl Slot {
    /// A map's key or value slot in the object `info` describes (`None`:
    /// a builtin that was not built; nothing known).
    pub fn map(info: Option<&ObjectInfo>, map: &str, part: Part) -> Self {
        let size_name = match part {
            Part::Key => "the map's key size",
            Part::Value => "the map's value size",
        };
        let Some(info) = info else {
            return Self {
                untyped: "the object was not built".into(),
                size_name,
                ..Self::default()
            };
        };
        let size = info.maps.get(map).map(|m| match part {
            Part::Key => m.key_size,
            Part::Value => m.value_size,
        });
        let (typed, untyped) = match &info.types {
            Ok(types) => {
                let ty = match part {
                    Part::Key => types.map_key(map),
                    Part::Value => types.map_value(map),
                };
                match ty {
                    Some(ty) => (Some((Arc::clone(types), ty)), String::new()),
                    None => (
                        None,
                        format!("map `{map}` declares sizes, not types (`__uint(key_size, N)`)"),
                    ),
                }
            }
            Err(why) => (None, why.clone()),
        };
        Self {
            size,
            typed,
            untyped,
            size_name,
        }
    }
}

impl Loader<'_> {
    /// Decodes a key, value or global into the bytes of its slot: typed by
    /// BTF when the slot has a type, else hex bytes or a number of an
    /// integer's size.
    pub(super) fn value_bytes(
        &self,
        at: &YPath,
        what: &str,
        value: &Value,
        slot: Slot,
    ) -> Result<Vec<u8>, ScenarioError> {
        if let Some((types, ty)) = &slot.typed {
            return typed::encode(types, *ty, value).map_err(|e| {
                let sep = if e.starts_with(['`', '[']) { "." } else { ": " };
                self.at_value(at, format!("{what}{sep}{e}"))
            });
        }
        let size = slot.size;
        let bytes = match value {
            Value::String(text) => {
                typed::hex(text).map_err(|e| self.at_value(at, format!("{what}: {e}")))?
            }
            Value::Number(n) => {
                let Some(size) = size.filter(|s| matches!(s, 1 | 2 | 4 | 8)) else {
                    return Err(self.at_value(
                        at,
                        format!(
                            "{what}: a number needs an integer of 1, 2, 4 or 8 bytes; write hex \
                             bytes"
                        ),
                    ));
                };
                let bits = 8 * size;
                let fits = |v: u64| bits == 64 || v >> bits == 0;
                let raw = match (n.as_u64(), n.as_i64()) {
                    (Some(v), _) if fits(v) => v,
                    (None, Some(v)) if bits == 64 || v >= -(1i64 << (bits - 1)) => v as u64,
                    _ => {
                        return Err(
                            self.at_value(at, format!("{what}: {n} does not fit in {size} bytes"))
                        );
                    }
                };
                raw.to_le_bytes()[..size as usize].to_vec()
            }
            _ => {
                return Err(self.at_value(
                    at,
                    format!(
                        "{what}: a structured value needs the object's BTF type, and {}; write \
                         hex bytes",
                        slot.untyped
                    ),
                ));
            }
        };
        if let Some(size) = size
            && bytes.len() != size as usize
        {
            return Err(self.at_value(
                at,
                format!(
                    "{what} is {} bytes, {} is {size}",
                    bytes.len(),
                    slot.size_name
                ),
            ));
        }
        Ok(bytes)
    }

    /// A value a check expects: its bytes, and its type when typed.
    fn expected(
        &self,
        at: &YPath,
        what: &str,
        value: &Value,
        slot: Slot,
    ) -> Result<ExpectedValue, ScenarioError> {
        let typed = slot
            .typed
            .as_ref()
            .map(|(types, ty)| (Arc::clone(types), *ty, value.clone()));
        let bytes = self.value_bytes(at, what, value, slot)?;
        Ok(ExpectedValue { bytes, typed })
    }

    /// `after.maps`: each map must be in every program's object (the check
    /// runs after each program's run); sizes and types from the first.
    pub(super) fn after_maps(
        &self,
        at: &YPath,
        checks: &[MapCheck],
        programs: &[Checked],
    ) -> Result<Vec<AfterMap>, ScenarioError> {
        let mut out = Vec::new();
        for (j, check) in checks.iter().enumerate() {
            let at = at.index(j);
            let map = &check.map;
            let mut first = None;
            for c in programs {
                let Some(info) = &c.info else { continue };
                if !info.maps.contains_key(map) {
                    return Err(self.at_value(
                        &at.key("map"),
                        format!(
                            "map `{map}` is not in {} (program `{}`); it has: {}",
                            c.object,
                            c.program.name,
                            info.map_names()
                        ),
                    ));
                }
                first.get_or_insert(info);
            }
            let key = self.value_bytes(
                &at.key("key"),
                &format!("map {map}: key"),
                &check.key,
                Slot::map(first, map, Part::Key),
            )?;
            if let Some(m) = first.and_then(|info| info.maps.get(map)) {
                self.check_index(&at.key("key"), map, *m, &key)?;
            }
            let value_slot = || Slot::map(first, map, Part::Value);
            let (summed, per_cpu) = match (&check.value, &check.per_cpu) {
                (Some(value), None) => {
                    let what = format!("map {map}: value");
                    let e = self.expected(&at.key("value"), &what, value, value_slot())?;
                    (Some(e), Vec::new())
                }
                (None, Some(values)) => {
                    let per_cpu = first
                        .and_then(|info| info.maps.get(map))
                        .is_none_or(|m| matches!(m.map_type, 5 | 6 | 10));
                    if !per_cpu {
                        return Err(self.at_key(
                            &at.key("per_cpu"),
                            format!("map `{map}` is not a per-CPU map: check it with `value`"),
                        ));
                    }
                    let values = values
                        .iter()
                        .enumerate()
                        .map(|(cpu, v)| {
                            let what = format!("map {map}: value on CPU {cpu}");
                            self.expected(&at.key("per_cpu").index(cpu), &what, v, value_slot())
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    (None, values)
                }
                _ => {
                    return Err(self.at_key(
                        &at.key("key"),
                        "a map check needs `key` and one of `value` (summed over CPUs) and \
                         `per_cpu`",
                    ));
                }
            };
            let key_shown = match &check.key {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out.push(AfterMap {
                map: map.clone(),
                key,
                key_shown,
                summed,
                per_cpu,
            });
        }
        Ok(out)
    }

    /// `after.globals`: typed by the first program's object, which every
    /// program's object must share the variable with.
    pub(super) fn after_globals(
        &self,
        at: &YPath,
        globals: &BTreeMap<String, Value>,
        programs: &[Checked],
    ) -> Result<Vec<AfterGlobal>, ScenarioError> {
        let mut out = Vec::new();
        for (name, value) in globals {
            let at = at.key(name);
            let mut found = None;
            for c in programs {
                let (types, global) = self.global(&at, name, c.info.as_ref(), &c.object)?;
                if global.section.starts_with(".rodata") {
                    return Err(self.at_key(
                        &at,
                        format!(
                            "`{name}` is in {}, which is read-only once loaded: set it in \
                             `globals:` of the program instead of checking it",
                            global.section
                        ),
                    ));
                }
                found.get_or_insert((types, global));
            }
            let Some((types, global)) = found else {
                continue;
            };
            let slot = Slot {
                size: Some(global.size),
                typed: Some((Arc::clone(&types), global.ty)),
                untyped: String::new(),
                size_name: "the variable's size",
            };
            let expected = self.expected(&at, &format!("global {name}"), value, slot)?;
            out.push(AfterGlobal {
                name: name.clone(),
                map: global.section.clone(),
                offset: global.offset as usize,
                expected,
            });
        }
        Ok(out)
    }

    /// The global `name` of an object, with the object's types.
    pub(super) fn global(
        &self,
        at: &YPath,
        name: &str,
        info: Option<&ObjectInfo>,
        object: &str,
    ) -> Result<(Arc<ObjectTypes>, typed::Global), ScenarioError> {
        let info = info.ok_or_else(|| {
            self.at_key(
                at,
                format!("{object} was not built: its globals are unknown"),
            )
        })?;
        let types = info.types.as_ref().map_err(|why| {
            self.at_key(
                at,
                format!("globals are found through the object's BTF, and {why} ({object})"),
            )
        })?;
        let Some(global) = types.global(name) else {
            let names: Vec<&str> = types.globals().map(|(n, _)| n).collect();
            return Err(self.at_key(
                at,
                format!(
                    "{object} has no global `{name}`; it has: {}",
                    if names.is_empty() {
                        "none".to_owned()
                    } else {
                        names.join(", ")
                    }
                ),
            ));
        };
        Ok((Arc::clone(types), global.clone()))
    }
}
