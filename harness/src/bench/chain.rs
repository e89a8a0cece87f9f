//! The chainer's cost: ns per packet through a root with 0, 1, 5 and 20
//! populated slots of the trivial slot program, under each backend the
//! kernel allows, next to the floor (`xdp_pass`) and to the slot program
//! run directly; per populated slot, what the chain adds on top of running
//! the program itself.

use std::fmt::Write as _;

use dsrlab_abi::chain::SLOTS;

use super::{Measurement, measure};
use crate::{
    chain::{Backend, Chain},
    datapath,
    kernel::features::Features,
    load::{LoadOptions, LoadedProgram},
};

/// Populated slots per case.
pub const POPULATED: [u32; 4] = [0, 1, 5, 20];

/// The chain's rows, and the report.
pub fn run(calls: u32) -> Result<(Vec<Measurement>, String), String> {
    let frame = {
        let mut f = vec![0u8; 64];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f
    };
    let mut rows = Vec::new();
    let mut out = String::new();
    let floor = LoadedProgram::builtin(datapath::XDP_PASS, &LoadOptions::default())
        .map_err(|e| e.to_string())?;
    let floor = measure(&floor, "floor", &frame, calls).map_err(|e| e.to_string())?;
    let _ = writeln!(
        out,
        "{:<10} {:>6} {:>6} {:>10} {:>8} {:>10} {:>10}",
        "backend", "slots", "insns", "mean ns", "+floor", "per slot", "- direct"
    );
    let _ = writeln!(
        out,
        "{:<10} {:>6} {:>6} {:>10.1}",
        "xdp_pass",
        "-",
        floor.instructions.map_or("?".into(), |n| n.to_string()),
        floor.kernel_ns_mean
    );
    rows.push(floor.clone());
    for backend in [Backend::TailCall, Backend::Ext] {
        if backend == Backend::Ext
            && let Some(why) = Features::get().ext.missing()
        {
            let _ = writeln!(out, "{:<10} skipped: {why}", backend.name());
            continue;
        }
        let mut chain = Chain::new(backend).map_err(|e| e.to_string())?;
        // The slot program alone: what running it directly costs, above
        // the floor (its finish finds no next slot and passes).
        let direct = {
            let alone = chain
                .load_slot_builtin(datapath::CHAIN_PASS, SLOTS - 1, &LoadOptions::default())
                .map_err(|e| e.to_string())?;
            match alone {
                crate::chain::SlotProgram::TailCall(p) => Some(
                    measure(&p, "direct", &frame, calls)
                        .map_err(|e| e.to_string())?
                        .kernel_ns_mean
                        - floor.kernel_ns_mean,
                ),
                // An extension cannot run alone.
                crate::chain::SlotProgram::Ext(_) => None,
            }
        };
        let mut populated = 0;
        let mut empty_chain = None;
        for n in POPULATED {
            while populated < n {
                let program = chain
                    .load_slot_builtin(datapath::CHAIN_PASS, populated, &LoadOptions::default())
                    .map_err(|e| e.to_string())?;
                chain
                    .attach(populated, program)
                    .map_err(|e| e.to_string())?;
                populated += 1;
            }
            let mut m = measure(
                chain.root(),
                &format!("{}-{n}", backend.name()),
                &frame,
                calls,
            )
            .map_err(|e| e.to_string())?;
            m.program = format!("chain/{}", backend.name());
            let base = *empty_chain.get_or_insert(m.kernel_ns_mean);
            let per_slot = (n > 0).then(|| (m.kernel_ns_mean - base) / f64::from(n));
            let _ = writeln!(
                out,
                "{:<10} {:>6} {:>6} {:>10.1} {:>+8.1} {:>10} {:>10}",
                backend.name(),
                n,
                m.instructions.map_or("?".into(), |n| n.to_string()),
                m.kernel_ns_mean,
                m.kernel_ns_mean - floor.kernel_ns_mean,
                per_slot.map_or("-".into(), |p| format!("{p:+.1}")),
                match (per_slot, direct) {
                    (Some(p), Some(d)) => format!("{:+.1}", p - d),
                    _ => "-".into(),
                },
            );
            rows.push(m);
        }
    }
    let _ = writeln!(
        out,
        "\nper slot: (chain with n slots - empty chain) / n; - direct: that minus the slot \
         program's own cost run alone (tail-call only: an extension cannot run alone). \
         Test-run ns on this machine: figures, not claims (TCG in VMs is never timed)."
    );
    Ok((rows, out))
}
