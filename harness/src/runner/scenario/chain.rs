//! A chain's run: dsrlab's chainer built with the scenario's slot
//! programs (each loaded for its slot and backend, its maps filled, a load
//! balancer provisioned through its control plane), its root run as the
//! program under test, the streams' `chain_changes:` made between packets,
//! and the slots' counters read around every packet: what moved names the
//! slots a packet went through, and their sums are held to `after.slots`.

use aya::programs::XdpMode;
use dsrlab_abi::chain::{SLOTS, SlotStats, VERDICTS};

use super::{RunOptions, RunOutcome, fill_maps, finish, lb::provision_lb, run_packet};
use crate::{
    chain::{Backend, Chain, SlotProgram},
    datapath::{self, Object},
    formats::scenario::{
        load::{
            AfterSlot, ChainChangesAt, LoadedScenario, ProgramSource, ResolvedChain,
            ResolvedProgram, SlotCounter,
        },
        model::{Builtin, ChainBackend, Mode},
    },
    kernel::features::Features,
    lb::{Lb, control::load_options},
    load::LoadOptions,
    oracles::Finding,
    runner::{
        SuiteError,
        execution::{Execution, Live, MarkerCost, TestRun},
        scenario::Judging,
    },
    verdict::Verdict,
};

/// Why this kernel cannot run a chain of `backend`, if it cannot.
pub fn unsupported(backend: ChainBackend) -> Option<String> {
    match backend {
        ChainBackend::TailCall => None,
        ChainBackend::Ext => Features::get()
            .ext
            .missing()
            .map(|why| format!("the ext backend loads slot programs as extensions: {why}")),
    }
}

const fn backend(backend: ChainBackend) -> Backend {
    match backend {
        ChainBackend::TailCall => Backend::TailCall,
        ChainBackend::Ext => Backend::Ext,
    }
}

/// The chain build of one of dsrlab's XDP programs: the same code, ending
/// by going on to the next slot, without frags (as the root).
fn slot_build(builtin: Builtin) -> Result<Object, String> {
    match builtin {
        Builtin::XdpLb => Ok(datapath::XDP_LB_SLOT),
        Builtin::XdpDecap => Ok(datapath::XDP_DECAP_SLOT),
        Builtin::XdpPass => Ok(datapath::CHAIN_PASS),
        Builtin::TcDecap | Builtin::TcPass => Err(format!(
            "{} is a TC program; a chain holds XDP programs",
            builtin.name()
        )),
    }
}

/// Loads `program` for `slot` of `chain`: its globals set, its maps
/// filled, a load balancer provisioned.
fn load_slot(chain: &Chain, slot: u32, program: &ResolvedProgram) -> Result<SlotProgram, String> {
    let globals = program.global_options();
    let ring_size_le;
    let options = match &program.lb {
        Some(setup) => {
            ring_size_le = setup.settings.ring_size.to_le_bytes();
            let mut options = load_options(setup.settings.ring_size, &ring_size_le);
            options.globals.extend_from_slice(&globals);
            options
        }
        None => LoadOptions {
            globals,
            ..LoadOptions::default()
        },
    };
    let loaded = match &program.source {
        ProgramSource::Builtin(b) => chain.load_slot_builtin(slot_build(*b)?, slot, &options),
        ProgramSource::File { object, program } => {
            chain.load_slot_file(object, program, slot, &options)
        }
        ProgramSource::Chain(_) => return Err("a slot holds a program, not a chain".to_owned()),
    }
    .map_err(|e| format!("slot {slot}: {e}"))?;
    let configured = match &program.lb {
        Some(setup) => loaded.configure(|p| {
            let mut lb = Lb::new(p, setup.settings).map_err(|e| e.to_string())?;
            provision_lb(&mut lb, program, setup)?;
            Ok::<_, String>(lb.into_program())
        }),
        None => {
            let mut loaded = loaded;
            fill_maps(loaded.loaded_mut(), program).map(|()| loaded)
        }
    };
    configured.map_err(|e| format!("slot {slot} ({}): {e}", program.name))
}

/// Builds the chain of `spec`: its root, its reservations, its continue
/// sets, its slot programs.
pub fn set_up_chain(spec: &ResolvedChain) -> Result<Chain, String> {
    super::timed_set_up(|| build(spec))
}

/// [`set_up_chain`], untimed.
fn build(spec: &ResolvedChain) -> Result<Chain, String> {
    let mut chain = Chain::new(backend(spec.backend)).map_err(|e| e.to_string())?;
    for (slot, owner) in &spec.owners {
        chain.reserve(*slot, owner).map_err(|e| e.to_string())?;
    }
    for &(slot, verdicts) in &spec.continue_on {
        chain
            .set_continue(slot, verdicts)
            .map_err(|e| e.to_string())?;
    }
    for (slot, program) in &spec.slots {
        let loaded = load_slot(&chain, *slot, program)?;
        // The host sets its chain up on behalf of every slot's owner.
        match spec.owner(*slot) {
            Some(owner) => chain.attach_as(owner, *slot, loaded),
            None => chain.attach(*slot, loaded),
        }
        .map_err(|e| format!("slot {slot}: {e}"))?;
    }
    Ok(chain)
}

/// Makes a stream's changes: detaches, then attaches (a replacement is one
/// step), as `changes.owner`.
fn change(chain: &mut Chain, changes: &ChainChangesAt) -> Result<(), String> {
    let failed =
        |e: &dyn std::fmt::Display| format!("stream `{}`: chain_changes: {e}", changes.stream);
    for &slot in &changes.detach {
        match &changes.owner {
            Some(owner) => chain.detach_as(owner, slot),
            None => chain.detach(slot),
        }
        .map_err(|e| failed(&e))?;
    }
    for (slot, program) in &changes.attach {
        let loaded = load_slot(chain, *slot, program).map_err(|e| failed(&e))?;
        match &changes.owner {
            Some(owner) => chain.attach_as(owner, *slot, loaded),
            None => chain.attach(*slot, loaded),
        }
        .map_err(|e| failed(&e))?;
    }
    Ok(())
}

/// The slots' counters as one group of words: per slot, packets then
/// verdicts.
fn stats_words(chain: &Chain) -> Result<Vec<u64>, SuiteError> {
    Ok(chain
        .stats()?
        .iter()
        .flat_map(|s: &SlotStats| std::iter::once(s.packets).chain(s.verdicts))
        .collect())
}

const WORDS_PER_SLOT: usize = 1 + VERDICTS;

/// The slots that ran between two readings, in slot order, with their
/// verdicts.
fn path(before: &[u64], after: &[u64]) -> Vec<(u32, Verdict)> {
    let mut steps = Vec::new();
    for (slot, (b, a)) in before
        .chunks(WORDS_PER_SLOT)
        .zip(after.chunks(WORDS_PER_SLOT))
        .enumerate()
    {
        for v in 0..VERDICTS {
            for _ in 0..a[1 + v].wrapping_sub(b[1 + v]).min(SLOTS.into()) {
                steps.push((slot as u32, Verdict::Xdp(v as u32)));
            }
        }
    }
    steps
}

/// Runs every packet through the chain of `program` in `mode`.
pub fn run(
    scenario: &LoadedScenario,
    program: &ResolvedProgram,
    options: &RunOptions,
    mode: Mode,
    tick: &mut dyn FnMut(),
) -> RunOutcome {
    let ProgramSource::Chain(spec) = &program.source else {
        unreachable!("runner::scenario routes chains here");
    };
    if let Some(why) = unsupported(spec.backend) {
        return RunOutcome::Skipped(why);
    }
    let mut chain = match set_up_chain(spec) {
        Ok(chain) => chain,
        Err(why) => return RunOutcome::SetupFailed(why),
    };
    let mut execution: Box<dyn Execution> = match mode {
        Mode::TestRun => Box::new(TestRun),
        Mode::Netns => {
            crate::live::netns::reap_once();
            let largest = scenario.packets.iter().map(|p| p.bytes.len()).max();
            let attached = Live::attach_xdp_by(largest.unwrap_or(0), |ns, ifindex| {
                chain
                    .attach_root(ns, ifindex, XdpMode::Driver)
                    .map_err(|e| e.to_string())
            });
            match attached {
                Ok(live) => Box::new(live),
                Err(SuiteError::Unsupported(why)) => return RunOutcome::Skipped(why),
                Err(e) => return RunOutcome::SetupFailed(e.to_string()),
            }
        }
    };
    let measure = |execution: &mut dyn Execution, chain: &Chain| {
        MarkerCost::measure(execution, || stats_words(chain).map(|w| vec![w]))
    };
    let mut cost = match measure(execution.as_mut(), &chain) {
        Ok(cost) => cost,
        Err(why) => return RunOutcome::SetupFailed(why.to_string()),
    };
    let mut totals = vec![0u64; SLOTS as usize * WORDS_PER_SLOT];
    let mut changes = scenario.chain_changes.iter().peekable();
    // Every packet is kept: the backends' runs are compared packet by packet.
    let mut log = crate::runner::PacketLog::new(true, false);
    for (i, packet) in scenario.packets.iter().enumerate() {
        while let Some(c) = changes.next_if(|c| c.before <= i) {
            if let Err(why) = change(&mut chain, c) {
                return RunOutcome::SetupFailed(why);
            }
            // The marker frames now take another way through the slots.
            cost = match measure(execution.as_mut(), &chain) {
                Ok(cost) => cost,
                Err(why) => return RunOutcome::SetupFailed(why.to_string()),
            };
        }
        if options.packet.is_some_and(|only| only != i + 1) {
            continue;
        }
        let judging = Judging {
            cost: &MarkerCost::default(),
            counters: false,
            watch: None,
            cpu: None,
        };
        let result = stats_words(&chain).and_then(|before| {
            let report = run_packet(chain.root(), execution.as_mut(), &judging, i + 1, &packet)?;
            let mut after = stats_words(&chain)?;
            if report.skipped.is_none() {
                cost.remove(0, &mut after, 1);
            } else {
                after.clone_from(&before);
            }
            Ok((report, before, after))
        });
        let (mut report, before, after) = match result {
            Ok(read) => read,
            Err(why) => return RunOutcome::SetupFailed(why.to_string()),
        };
        for (total, (a, b)) in totals.iter_mut().zip(after.iter().zip(&before)) {
            *total = total.wrapping_add(a.wrapping_sub(*b));
        }
        report.slots = path(&before, &after);
        let steps: Vec<String> = report
            .slots
            .iter()
            .map(|(slot, v)| format!("slot {slot} {v}"))
            .collect();
        for finding in &mut report.findings {
            if let Finding::VerdictClass { moved, .. } = finding {
                *moved = Some(steps.clone());
            }
        }
        log.push(report, &packet);
        tick();
    }
    let after = if options.packet.is_some() {
        Vec::new() // the totals of a partial run mean nothing
    } else {
        after_slots(&scenario.after_slots, &totals)
    };
    let run = (program.name.clone(), chain.root().kind(), mode);
    finish(scenario, options, run, log, after)
}

/// `after.slots` against the counters the run's packets moved.
fn after_slots(checks: &[AfterSlot], totals: &[u64]) -> Vec<Finding> {
    checks
        .iter()
        .filter_map(|check| {
            let base = check.slot as usize * WORDS_PER_SLOT;
            let (word, name) = match check.counter {
                SlotCounter::Packets => (0, "packets".to_owned()),
                SlotCounter::Verdict(v) => (1 + v as usize, Verdict::Xdp(v).name()),
            };
            let actual = totals.get(base + word).copied().unwrap_or(0);
            (actual != check.total).then(|| {
                Finding::After(format!(
                    "slot {} {name}: expected {}, actual {actual}",
                    check.slot, check.total
                ))
            })
        })
        .collect()
}
