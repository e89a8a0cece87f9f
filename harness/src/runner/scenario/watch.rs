//! What a packet counted in a user's object: its small counter arrays
//! (plain or per-CPU arrays of u64 words, at most [`MAX_ENTRIES`]
//! entries), read around every packet so that a verdict failure can name
//! what the packet moved — the first thing a datapath engineer looks at
//! when a packet took the wrong branch.

use std::sync::Arc;

use crate::{
    formats::typed::{self, ObjectTypes, TypeRef},
    load::LoadedProgram,
    maps::RawMap,
};

/// Arrays with more entries are tables, not counters, and reading them
/// around every packet would cost more than it tells.
const MAX_ENTRIES: u32 = 16;

/// The counter arrays of one loaded program.
pub(crate) struct CounterWatch {
    maps: Vec<Watched>,
}

struct Watched {
    name: String,
    raw: RawMap,
    value_type: Option<(Arc<ObjectTypes>, TypeRef)>,
}

/// Every watched entry's value, summed over CPUs, in map and key order.
pub(crate) type Snapshot = Vec<Vec<Vec<u8>>>;

impl CounterWatch {
    /// The counter arrays of `program` (none for objects without any).
    pub fn new(program: &LoadedProgram, types: Option<&Arc<ObjectTypes>>) -> Self {
        let maps = program
            .map_names()
            .into_iter()
            .filter(|name| !name.starts_with('.'))
            .filter_map(|name| {
                let raw = RawMap::find(program, &name).ok()?;
                raw.is_small_counter_array(MAX_ENTRIES).then(|| Watched {
                    value_type: types
                        .and_then(|t| t.map_value(&name).map(|ty| (Arc::clone(t), ty))),
                    name,
                    raw,
                })
            })
            .collect();
        Self { maps }
    }

    /// Whether there is anything to watch.
    pub fn is_empty(&self) -> bool {
        self.maps.is_empty()
    }

    /// The watched values now (entries that cannot be read are empty).
    pub fn snapshot(&self) -> Snapshot {
        self.maps
            .iter()
            .map(|m| {
                (0..m.raw.max_entries())
                    .map(|key| {
                        m.raw
                            .lookup_summed(&key.to_ne_bytes())
                            .ok()
                            .flatten()
                            .unwrap_or_default()
                    })
                    .collect()
            })
            .collect()
    }

    /// What moved between two snapshots: `tallies[1] {"packets":1,"bytes":58}`
    /// (typed by BTF), or the changed u64 words (`stats[0] +1`).
    pub fn moved(&self, before: &Snapshot, after: &Snapshot) -> Vec<String> {
        let mut out = Vec::new();
        for ((m, old), new) in self.maps.iter().zip(before).zip(after) {
            for (key, (a, b)) in old.iter().zip(new).enumerate() {
                if a == b || a.len() != b.len() {
                    continue;
                }
                let delta: Vec<u8> = a
                    .as_chunks::<8>()
                    .0
                    .iter()
                    .zip(b.as_chunks::<8>().0)
                    .flat_map(|(x, y)| {
                        u64::from_le_bytes(*y)
                            .wrapping_sub(u64::from_le_bytes(*x))
                            .to_le_bytes()
                    })
                    .collect();
                let shown = match &m.value_type {
                    Some((types, ty)) => typed::decode(types, *ty, &delta).to_string(),
                    None => delta
                        .as_chunks::<8>()
                        .0
                        .iter()
                        .map(|w| format!("{:+}", u64::from_le_bytes(*w) as i64))
                        .collect::<Vec<_>>()
                        .join(" "),
                };
                out.push(format!("{}[{key}] {shown}", m.name));
            }
        }
        out
    }
}
