//! The state checks after a run: `after.maps` and `after.globals`, read
//! from the program's maps and judged typed (field by field) or byte for
//! byte.

use super::MarkerCost;
use crate::{
    formats::{
        scenario::load::{AfterMap, LoadedScenario},
        typed,
    },
    load::LoadedProgram,
    maps::RawMap,
    oracles::Finding,
};

/// The value an `after.maps` check reads: summed over the CPUs for
/// per-CPU maps (member by member when typed, else as little-endian u64
/// words), or the value; `None` if the key is absent.
fn read_summed(program: &LoadedProgram, check: &AfterMap) -> Result<Option<Vec<u8>>, String> {
    let raw = RawMap::find(program, &check.map).map_err(|e| e.to_string())?;
    let typed = check.summed.as_ref().and_then(|e| e.typed.as_ref());
    match typed {
        Some((types, ty, _)) if raw.is_per_cpu() => Ok(raw
            .lookup_per_cpu(&check.key)
            .map_err(|e| e.to_string())?
            .map(|cpus| {
                let slots: Vec<&[u8]> = cpus.iter().map(Vec::as_slice).collect();
                typed::sum_per_cpu(types, *ty, &slots)
            })),
        _ => raw.lookup_summed(&check.key).map_err(|e| e.to_string()),
    }
}

fn words(bytes: &[u8]) -> Vec<u64> {
    bytes
        .as_chunks::<8>()
        .0
        .iter()
        .map(|w| u64::from_le_bytes(*w))
        .collect()
}

/// The summed `after.maps` values as little-endian u64 words (absent or
/// not a whole number of words: none), the groups 1.. of a [`MarkerCost`].
pub(crate) fn after_map_words(scenario: &LoadedScenario, program: &LoadedProgram) -> Vec<Vec<u64>> {
    scenario
        .after_maps
        .iter()
        .map(|check| match read_summed(program, check) {
            Ok(Some(bytes)) if bytes.len() % 8 == 0 => words(&bytes),
            _ => Vec::new(),
        })
        .collect()
}

/// The `after.maps` and `after.globals` checks; summed map values less
/// what `markers` marker frames added.
pub(crate) fn after_state(
    scenario: &LoadedScenario,
    program: &LoadedProgram,
    cost: &MarkerCost,
    markers: u64,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (i, check) in scenario.after_maps.iter().enumerate() {
        let at = format!("map {} key {}", check.map, check.key_shown);
        if let Some(expected) = &check.summed {
            match read_summed(program, check) {
                Err(e) => findings.push(Finding::After(e)),
                Ok(None) => findings.push(Finding::After(format!("{at}: absent"))),
                Ok(Some(mut bytes)) => {
                    if markers > 0 && bytes.len() % 8 == 0 {
                        let mut w = words(&bytes);
                        cost.remove(i + 1, &mut w, markers);
                        bytes = w.iter().flat_map(|w| w.to_le_bytes()).collect();
                    }
                    findings.extend(state(&at, expected.mismatches(&bytes)));
                }
            }
        }
        if check.per_cpu.is_empty() {
            continue;
        }
        let values = RawMap::find(program, &check.map)
            .and_then(|raw| raw.lookup_per_cpu(&check.key))
            .map_err(|e| e.to_string());
        match values {
            Err(e) => findings.push(Finding::After(e)),
            Ok(None) => findings.push(Finding::After(format!("{at}: absent"))),
            Ok(Some(cpus)) => {
                for (cpu, expected) in check.per_cpu.iter().enumerate() {
                    let Some(actual) = cpus.get(cpu) else {
                        findings.push(Finding::After(format!(
                            "{at}: no CPU {cpu} (the machine has {})",
                            cpus.len()
                        )));
                        continue;
                    };
                    let at = format!("{at} on CPU {cpu}");
                    findings.extend(state(&at, expected.mismatches(actual)));
                }
            }
        }
    }
    for global in &scenario.after_globals {
        let at = format!("global {}", global.name);
        let value = RawMap::find(program, &global.map)
            .and_then(|raw| raw.lookup_per_cpu(&0u32.to_ne_bytes()))
            .map_err(|e| e.to_string());
        let section = match value {
            Ok(Some(mut values)) if !values.is_empty() => values.swap_remove(0),
            Ok(_) => {
                findings.push(Finding::After(format!("{at}: {} is empty", global.map)));
                continue;
            }
            Err(e) => {
                findings.push(Finding::After(format!("{at}: {e}")));
                continue;
            }
        };
        let end = global.offset + global.expected.bytes.len();
        let Some(actual) = section.get(global.offset..end) else {
            findings.push(Finding::After(format!(
                "{at}: {} has {} bytes, the variable ends at {end}",
                global.map,
                section.len()
            )));
            continue;
        };
        findings.extend(state(&at, global.expected.mismatches(actual)));
    }
    findings
}

/// The findings of a value's mismatches at `at`.
fn state(at: &str, mismatches: Vec<typed::Mismatch>) -> impl Iterator<Item = Finding> {
    mismatches.into_iter().map(move |m| Finding::State {
        at: at.to_owned(),
        field: m.field.trim_start_matches('.').to_owned(),
        expected: m.expected,
        actual: m.actual,
    })
}
