//! Runs a loaded scenario: every program, in every mode, over every packet,
//! then the after-run checks.
//!
//! Setting up (loading a program, filling its maps) fails loudly and
//! separately from the oracles' verdicts: a program that cannot be set up is
//! reported as a setup failure, never as failing packets.
//!
//! Programs of the lb contract run through [`lb`]: provisioned by the
//! control plane, pinned to one CPU, judged by the reference model.

mod after;
mod chain;
mod lb;
mod ledger;
mod packet;
mod topology;
mod watch;
mod workers;

use packet::run_batched;
pub(crate) use packet::run_packet;
use watch::CounterWatch;

use super::{
    cpu_pin::CpuPin,
    execution::{Execution, Live, MarkerCost, TestRun},
};

pub use chain::{set_up_chain, unsupported as chain_unsupported};
pub use lb::set_up_lb;

pub(crate) use after::{after_map_words, after_state};
pub use topology::{CaptureReport, FlowReport, TopologyReport};
pub use workers::worker_of;

use std::{
    os::fd::AsRawFd as _,
    path::PathBuf,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use dsrlab_abi::decap::COUNTERS_MAP;

use super::{PacketLog, SuiteError, SuiteReport};
use crate::{
    formats::scenario::{
        load::{EntryValue, LoadedScenario, ProgramSource, ResolvedProgram},
        model::{ChainBackend, Contract, Mode},
    },
    load::{LoadError, LoadOptions, LoadedProgram, ProgramKind},
    maps::RawMap,
    oracles::{Finding, agree},
};

/// What to run of a scenario.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Only this packet (1-based over the whole scenario's traffic).
    pub packet: Option<usize>,
    /// Only these modes (default: the scenario's).
    pub modes: Option<Vec<Mode>>,
    /// Let streams whose packets nothing checks (no `expect:`, no contract,
    /// no `after:`) pass; by default each such stream is a finding.
    pub allow_unchecked: bool,
    /// Count passing packets instead of keeping their reports, where
    /// nothing needs them (no snapshot, one mode): memory then stays flat
    /// with the number of packets ([`PacketLog`]).
    pub fold_passing: bool,
    /// Worker threads for test runs of decap- and lb-contract programs,
    /// each pinned to one of the CPUs the process may use (0 or 1: one, on
    /// the first CPU). Flows stay on one worker (a load balancer's: one
    /// model per worker's CPU). Runs that need one CPU (a snapshot,
    /// `after.maps` per-CPU values, one `--packet`, live mode) use one.
    pub workers: usize,
}

/// The packet log of a run of `scenario`: folding passing packets if the
/// options say so and neither a snapshot nor a comparison across modes
/// needs them.
pub(crate) fn packet_log(
    scenario: &LoadedScenario,
    options: &RunOptions,
    counters: bool,
) -> PacketLog {
    let keep =
        !options.fold_passing || scenario.spec.snapshot || modes(scenario, options).count() > 1;
    PacketLog::new(keep, counters)
}

/// One program in one mode.
#[derive(Debug)]
pub struct ProgramRun {
    /// The program's name.
    pub program: String,
    /// The mode.
    pub mode: Mode,
    /// What happened.
    pub outcome: RunOutcome,
    /// Wall-clock time of this program's run, set-up included.
    pub elapsed: Duration,
}

/// How a program's run went.
#[derive(Debug)]
pub enum RunOutcome {
    /// Not run, for the reason given (a mode or feature not available).
    Skipped(String),
    /// The world could not be built (load, verifier, maps): not a verdict on
    /// the packets.
    SetupFailed(String),
    /// A topology ran (`topology:`): per-flow results, captures and the
    /// after-run findings, for all the scenario's programs together.
    Topology(TopologyReport),
    /// Ran: per-packet results and the after-run findings.
    Ran {
        /// Per packet.
        report: SuiteReport,
        /// Findings of the `after:` checks.
        after: Vec<Finding>,
    },
}

/// A whole scenario's results.
#[derive(Debug)]
pub struct ScenarioReport {
    /// The scenario's name.
    pub name: String,
    /// Its file.
    pub path: PathBuf,
    /// Per program and mode.
    pub runs: Vec<ProgramRun>,
    /// Wall-clock time of the whole scenario.
    pub elapsed: Duration,
}

impl ScenarioReport {
    /// Packets that ran and passed, over all runs.
    pub fn passed(&self) -> usize {
        self.ran().map(|(r, _)| r.passed()).sum::<usize>()
            + self.topologies().map(TopologyReport::passed).sum::<usize>()
    }

    /// Packets that failed, plus failed after-checks and setups.
    pub fn failed(&self) -> usize {
        self.runs
            .iter()
            .map(|run| match &run.outcome {
                RunOutcome::Ran { report, after } => report.failed() + after.len(),
                RunOutcome::Topology(report) => report.failed(),
                RunOutcome::SetupFailed(_) => 1,
                RunOutcome::Skipped(_) => 0,
            })
            .sum()
    }

    /// Packets and runs skipped, with reasons in the report.
    pub fn skipped(&self) -> usize {
        self.runs
            .iter()
            .map(|run| match &run.outcome {
                RunOutcome::Ran { report, .. } => report.skipped(),
                RunOutcome::Skipped(_) => 1,
                RunOutcome::SetupFailed(_) | RunOutcome::Topology(_) => 0,
            })
            .sum()
    }

    /// Whether nothing failed.
    pub fn ok(&self) -> bool {
        self.failed() == 0
    }

    fn topologies(&self) -> impl Iterator<Item = &TopologyReport> {
        self.runs.iter().filter_map(|run| match &run.outcome {
            RunOutcome::Topology(report) => Some(report),
            _ => None,
        })
    }

    fn ran(&self) -> impl Iterator<Item = (&SuiteReport, &Vec<Finding>)> {
        self.runs.iter().filter_map(|run| match &run.outcome {
            RunOutcome::Ran { report, after } => Some((report, after)),
            _ => None,
        })
    }
}

/// Number of packet runs `scenario` will make with `options` (for progress).
pub fn planned_runs(scenario: &LoadedScenario, options: &RunOptions) -> u64 {
    let packets = if options.packet.is_some() {
        1
    } else {
        scenario.packets.len()
    };
    let modes = modes(scenario, options).count();
    if let Some(live) = &scenario.live {
        let flows: usize = live.clients.iter().map(|c| c.flows.len()).sum();
        return (flows * modes) as u64;
    }
    (packets * modes * scenario.programs.len()) as u64
}

fn modes<'a>(
    scenario: &'a LoadedScenario,
    options: &'a RunOptions,
) -> impl Iterator<Item = Mode> + 'a {
    scenario
        .modes
        .iter()
        .copied()
        .filter(|m| options.modes.as_ref().is_none_or(|only| only.contains(m)))
}

/// Runs `scenario`; `tick` is called once per packet run.
pub fn run(
    scenario: &LoadedScenario,
    options: &RunOptions,
    tick: &mut dyn FnMut(),
) -> ScenarioReport {
    let started = Instant::now();
    let mut runs = Vec::new();
    if let Some(live) = &scenario.live {
        // One run for all the programs: they work together in the topology.
        for mode in modes(scenario, options) {
            let run_started = Instant::now();
            let names: Vec<&str> = scenario.programs.iter().map(|p| p.name.as_str()).collect();
            runs.push(ProgramRun {
                program: names.join("+"),
                mode,
                outcome: topology::run(scenario, live, tick),
                elapsed: run_started.elapsed(),
            });
        }
        return ScenarioReport {
            name: scenario.name.clone(),
            path: scenario.path.clone(),
            runs,
            elapsed: started.elapsed(),
        };
    }
    for program in &scenario.programs {
        for mode in modes(scenario, options) {
            let run_started = Instant::now();
            let outcome = if matches!(program.source, ProgramSource::Chain(_)) {
                chain::run(scenario, program, options, mode, tick)
            } else if program.contract == Some(Contract::Lb) {
                lb::run(scenario, program, options, mode, tick)
            } else {
                run_mode(scenario, program, options, mode, tick)
            };
            // A replay that could not be read to its end checked part of
            // its traffic: not a verdict on the program.
            let outcome = match scenario.packets.take_error() {
                Some(why) => RunOutcome::SetupFailed(format!("cannot read the traffic: {why}")),
                None => outcome,
            };
            runs.push(ProgramRun {
                program: program.name.clone(),
                mode,
                outcome,
                elapsed: run_started.elapsed(),
            });
        }
    }
    compare_modes(&mut runs);
    compare_backends(&mut runs);
    ScenarioReport {
        name: scenario.name.clone(),
        path: scenario.path.clone(),
        runs,
        elapsed: started.elapsed(),
    }
}

/// Wall time this process spent in [`set_up`], [`set_up_lb`] and
/// [`set_up_chain`], in nanoseconds.
static IN_SET_UP_NS: AtomicU64 = AtomicU64::new(0);

/// The wall time spent so far setting programs up: loading and verifying
/// them, creating and filling their maps, provisioning load balancers. A
/// cost per run, not per packet (creating the load balancer's 65 536-key
/// per-CPU connection table alone takes tens of milliseconds: the kernel
/// allocates each key's per-CPU values one by one), which the throughput
/// benchmark reports apart from the packets.
pub fn time_in_set_up() -> Duration {
    Duration::from_nanos(IN_SET_UP_NS.load(Ordering::Relaxed))
}

/// Runs the set-up `f`, adding its wall time to [`time_in_set_up`].
fn timed_set_up<T>(f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let result = f();
    let ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    IN_SET_UP_NS.fetch_add(ns, Ordering::Relaxed);
    result
}

/// Loads `program` and fills its maps: the setup phase (for programs of the
/// lb contract, which the control plane provisions, see [`set_up_lb`]).
pub fn set_up(program: &ResolvedProgram) -> Result<LoadedProgram, String> {
    timed_set_up(|| {
        let options = LoadOptions {
            globals: program.global_options(),
            ..LoadOptions::default()
        };
        let mut loaded = load_source(&program.source, &options).map_err(|e| e.to_string())?;
        fill_maps(&mut loaded, program)?;
        Ok(loaded)
    })
}

/// Loads a builtin or a user's program with `options`.
fn load_source(
    source: &ProgramSource,
    options: &LoadOptions<'_>,
) -> Result<LoadedProgram, LoadError> {
    match source {
        ProgramSource::Builtin(b) => LoadedProgram::builtin(b.object(), options),
        ProgramSource::File { object, program } => {
            LoadedProgram::from_file(object, program, options)
        }
        ProgramSource::Chain(_) => Err(LoadError::UnsupportedType {
            object: "chain".to_owned(),
            program: "its root".to_owned(),
            kind: "chain (set up by set_up_chain, not loaded alone)".to_owned(),
        }),
    }
}

/// Writes the scenario's `maps:` entries into a loaded program's maps:
/// bytes, the programs of program arrays, the maps of maps of maps.
pub(crate) fn fill_maps(
    loaded: &mut LoadedProgram,
    program: &ResolvedProgram,
) -> Result<(), String> {
    for (map, entries) in &program.maps {
        let raw = RawMap::find(loaded, map).map_err(|e| e.to_string())?;
        for (key, value) in entries {
            match value {
                EntryValue::Bytes(bytes) => raw.update(key, bytes),
                EntryValue::Map(inner) => {
                    let inner = RawMap::find(loaded, inner).map_err(|e| e.to_string())?;
                    let fd = inner.fd().as_raw_fd() as u32;
                    raw.update(key, &fd.to_ne_bytes())
                }
                EntryValue::Program(target) => {
                    let fd = loaded
                        .sibling_fd(target)
                        .map_err(|e| format!("map {map}: {e}"))?
                        .as_raw_fd() as u32;
                    raw.update(key, &fd.to_ne_bytes())
                }
            }
            .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// The execution of `mode` for `program`: test runs, or the program
/// attached behind a live rig sized for the scenario's largest packet; on error, the run's outcome
/// (skipped when the kernel lacks what it needs, else failed).
pub(crate) fn execution(
    scenario: &LoadedScenario,
    program: &mut LoadedProgram,
    mode: Mode,
) -> Result<Box<dyn Execution>, RunOutcome> {
    match mode {
        Mode::TestRun => Ok(Box::new(TestRun)),
        Mode::Netns => {
            crate::live::netns::reap_once();
            let largest = scenario.packets.largest();
            let needs_nic = !scenario.after_snmp.is_empty()
                || scenario
                    .packets
                    .any_quirks(|q| q.linear.is_some() || q.checksum_unnecessary)
                || scenario.packets.any_expect(|e| e.drop_reason.is_some());
            let needs_complete = scenario.packets.any_quirks(|q| q.checksum_complete);
            Ok(Box::new(
                Live::attach(program, largest, needs_nic, needs_complete).map_err(|e| match e {
                    SuiteError::Unsupported(why) => RunOutcome::Skipped(why),
                    e => RunOutcome::SetupFailed(e.to_string()),
                })?,
            ))
        }
    }
}

fn run_mode(
    scenario: &LoadedScenario,
    program: &ResolvedProgram,
    options: &RunOptions,
    mode: Mode,
    tick: &mut dyn FnMut(),
) -> RunOutcome {
    let mut loaded = match set_up(program) {
        Ok(loaded) => loaded,
        Err(why) => return RunOutcome::SetupFailed(why),
    };
    // Test runs run on one known CPU, the first the process may use, so
    // that per-CPU values land where `after.maps` `per_cpu:` says (live
    // runs pin the injecting thread themselves).
    let counters = program.contract == Some(Contract::Decap);
    // Only decap-contract programs (whose counters are read, never a
    // user's counter arrays) run on workers, which pin themselves: the
    // CPUs are taken before this thread is pinned, which they would
    // inherit.
    let cpus = if counters {
        worker_cpus(scenario, options, mode)
    } else {
        Vec::new()
    };
    let _pin = match mode {
        Mode::TestRun if cpus.len() > 1 => None,
        Mode::TestRun => match CpuPin::first() {
            Ok(pin) => Some(pin),
            Err(e) => return RunOutcome::SetupFailed(format!("cannot pin to a CPU: {e}")),
        },
        Mode::Netns => None,
    };
    let mut execution = match execution(scenario, &mut loaded, mode) {
        Ok(execution) => execution,
        Err(outcome) => return outcome,
    };
    let read = || {
        let mut groups = vec![if counters {
            loaded
                .per_cpu_counters(COUNTERS_MAP)
                .map_err(|e| SuiteError::counters(&loaded, e))?
        } else {
            Vec::new()
        }];
        groups.extend(after_map_words(scenario, &loaded));
        Ok::<_, SuiteError>(groups)
    };
    let cost = match MarkerCost::measure(execution.as_mut(), read) {
        Ok(cost) => cost,
        Err(why) => return RunOutcome::SetupFailed(why.to_string()),
    };
    let snmp_before = execution.snmp();
    // Test runs only: live, the rig's marker frames count too.
    let watch = (!counters && mode == Mode::TestRun)
        .then(|| CounterWatch::new(&loaded, program.types.as_ref()))
        .filter(|w| !w.is_empty());
    let judging = Judging {
        cost: &cost,
        counters,
        watch: watch.as_ref(),
        cpu: None,
    };
    let selected = scenario
        .packets
        .iter()
        .enumerate()
        .map(|(i, packet)| (i + 1, packet))
        .filter(|(number, _)| options.packet.is_none_or(|only| only == *number));
    let mut recounted = Vec::new();
    let mut unexplained = Vec::new();
    let mut log = packet_log(scenario, options, counters);
    if cpus.len() > 1 {
        match workers::run(&loaded, &judging, &cpus, &scenario.packets, log) {
            Ok((merged, batched)) => {
                log = merged;
                recounted = batched.recounted;
                unexplained = batched.unexplained;
            }
            Err(outcome) => return outcome,
        }
        (0..log.len()).for_each(|_| tick());
    } else if counters {
        // A snapshot shows each packet's counters: read around each.
        let limit = if scenario.spec.snapshot {
            1
        } else {
            ledger::BATCH
        };
        let sink = (&mut log, tick);
        match run_batched(&loaded, execution.as_mut(), &judging, limit, selected, sink) {
            Ok(batched) => {
                recounted = batched.recounted;
                unexplained = batched.unexplained;
            }
            Err(why) => return RunOutcome::SetupFailed(why.to_string()),
        }
    } else {
        for (number, packet) in selected {
            match run_packet(&loaded, execution.as_mut(), &judging, number, &packet) {
                Ok(report) => log.push(report, &packet),
                Err(why) => return RunOutcome::SetupFailed(why.to_string()),
            }
            tick();
        }
    }
    let after = if options.packet.is_some() {
        Vec::new() // the totals of a partial run mean nothing
    } else {
        let mut after = unexplained;
        after.extend(after_checks(
            scenario,
            &loaded,
            (counters, &recounted),
            &cost,
            execution.markers(),
            log.packets(),
        ));
        after.extend(snmp_checks(scenario, snmp_before, execution.snmp()));
        after
    };
    let run = (loaded.name().to_owned(), loaded.kind(), mode);
    finish(scenario, options, run, log, after)
}

/// A run's outcome: its packets and `after` findings, with those of a run
/// that checked nothing and (unless allowed) of streams nothing checked.
pub(crate) fn finish(
    scenario: &LoadedScenario,
    options: &RunOptions,
    (program, kind, mode): (String, ProgramKind, Mode),
    log: PacketLog,
    mut after: Vec<Finding>,
) -> RunOutcome {
    after.extend(nothing_checked(&log, mode));
    if !options.allow_unchecked {
        after.extend(unchecked_streams(scenario, &log));
    }
    let (packets, folded, folded_notes) = log.into_parts();
    RunOutcome::Ran {
        report: SuiteReport {
            fixture: scenario.name.clone(),
            program,
            kind,
            packets,
            folded,
            folded_notes,
        },
        after,
    }
}

/// The CPUs a decap run's workers are pinned to: the first
/// `options.workers` the process may use, where the run allows more than
/// one (test runs, and nothing that needs every packet on one CPU).
fn worker_cpus(scenario: &LoadedScenario, options: &RunOptions, mode: Mode) -> Vec<usize> {
    let one_cpu = options.workers <= 1
        || mode != Mode::TestRun
        || scenario.spec.snapshot
        || options.packet.is_some()
        || scenario.after_maps.iter().any(|m| !m.per_cpu.is_empty());
    if one_cpu {
        return Vec::new();
    }
    let mut cpus = CpuPin::allowed().unwrap_or_default();
    cpus.truncate(options.workers);
    cpus
}

/// What judges a run's packets beside their expectations.
#[derive(Clone, Copy)]
pub(crate) struct Judging<'a> {
    /// What each of the mode's marker frames adds to the counters.
    pub cost: &'a MarkerCost,
    /// The program implements the decap contract: its counters are read.
    pub counters: bool,
    /// A user's counter arrays, read around each packet.
    pub watch: Option<&'a CounterWatch>,
    /// The CPU whose counters are read (a worker's, while other workers
    /// run the same program); all CPUs' summed when `None`.
    pub cpu: Option<usize>,
}

/// A run in which every packet was skipped checked nothing, and must not
/// pass as if it had.
pub(crate) fn nothing_checked(log: &PacketLog, mode: Mode) -> Option<Finding> {
    log.none_ran().then(|| {
        Finding::After(format!(
            "no packet ran in {} mode (every one was skipped, reasons above): a run that checked nothing does not pass",
            mode.name()
        ))
    })
}

/// Streams of which no packet that ran had anything checked beyond "it
/// ran without error": no `expect:`, no fixture expectation the program's
/// contract binds, and no `after:` check totalling them. Each is a finding,
/// since a stream nobody checks passes whatever the program does.
fn unchecked_streams(scenario: &LoadedScenario, log: &PacketLog) -> Vec<Finding> {
    let after = !scenario.after_counters.is_empty()
        || !scenario.after_lb_counters.is_empty()
        || !scenario.after_maps.is_empty()
        || !scenario.after_globals.is_empty()
        || !scenario.after_snmp.is_empty()
        || !scenario.after_slots.is_empty();
    if after {
        return Vec::new();
    }
    log.unchecked_streams()
        .map(|stream| Finding::Unchecked(stream.to_owned()))
        .collect()
}

/// `counters`: whether the decap counters are read, and what packets run
/// a second time added to them.
fn after_checks(
    scenario: &LoadedScenario,
    program: &LoadedProgram,
    (counters, recounted): (bool, &[u64]),
    cost: &MarkerCost,
    markers: u64,
    packets: &[super::PacketReport],
) -> Vec<Finding> {
    let mut findings = Vec::new();
    if counters && !scenario.after_counters.is_empty() {
        match program.per_cpu_counters(COUNTERS_MAP) {
            Err(e) => findings.push(Finding::After(e.to_string())),
            Ok(mut totals) => {
                cost.remove(0, &mut totals, markers);
                for (total, again) in totals.iter_mut().zip(recounted) {
                    *total = total.wrapping_sub(*again);
                }
                for &(counter, want) in &scenario.after_counters {
                    // The totals are written for a kernel that does what the
                    // packets' expectations say; move the packets this one
                    // counts elsewhere (each was noted).
                    let (moved_out, moved_in) = packets
                        .iter()
                        .filter_map(|p| p.counted_instead)
                        .fold((0, 0), |(out, into), (from, to)| {
                            (
                                out + u64::from(from == counter),
                                into + u64::from(to == counter),
                            )
                        });
                    let want = (want + moved_in).saturating_sub(moved_out);
                    let actual = totals.get(counter as usize).copied().unwrap_or(0);
                    if actual != want {
                        let moved = if moved_in + moved_out > 0 {
                            format!(" (this kernel: {moved_in:+} in, {moved_out} out)")
                        } else {
                            String::new()
                        };
                        findings.push(Finding::After(format!(
                            "counter {}: expected {want}{moved}, actual {actual}",
                            counter.name()
                        )));
                    }
                }
            }
        }
    }
    findings.extend(after_state(scenario, program, cost, markers));
    findings
}

/// `after.snmp`: each counter's movement over the run, when the execution
/// has a stack to count (live, behind the TAP NIC); test runs have none.
fn snmp_checks(
    scenario: &LoadedScenario,
    before: Option<std::io::Result<crate::live::snmp::Counters>>,
    after: Option<std::io::Result<crate::live::snmp::Counters>>,
) -> Vec<Finding> {
    if scenario.after_snmp.is_empty() {
        return Vec::new();
    }
    let (before, after) = match (before, after) {
        (None, _) | (_, None) => return Vec::new(),
        (Some(Ok(b)), Some(Ok(a))) => (b, a),
        (Some(Err(e)), _) | (_, Some(Err(e))) => {
            return vec![Finding::After(format!("cannot read SNMP counters: {e}"))];
        }
    };
    let moved_all: Vec<String> = crate::live::snmp::delta(&before, &after)
        .iter()
        .map(|(n, d)| format!("{n} {d:+}"))
        .collect();
    let moved_all = if moved_all.is_empty() {
        "no counter moved".to_owned()
    } else {
        moved_all.join(", ")
    };
    let mut findings = Vec::new();
    for (name, want) in &scenario.after_snmp {
        let (Some(b), Some(a)) = (before.get(name), after.get(name)) else {
            findings.push(Finding::After(format!(
                "SNMP counter {name}: no such counter in /proc/net/snmp or snmp6"
            )));
            continue;
        };
        let moved = a - b;
        if moved != *want {
            findings.push(Finding::After(format!(
                "SNMP {name}: expected +{want}, actual +{moved} (all that moved: {moved_all})"
            )));
        }
    }
    findings
}

/// Where a program ran in both modes, judges every packet both carried
/// ([`agree`]); a disagreement is a finding of the live run's packet.
fn compare_modes(runs: &mut [ProgramRun]) {
    for i in 0..runs.len() {
        if !ran(&runs[i], Mode::TestRun) {
            continue;
        }
        if let Some(j) = (0..runs.len())
            .find(|&j| runs[j].program == runs[i].program && ran(&runs[j], Mode::Netns))
        {
            judge_pair(runs, (i, Mode::TestRun.name()), (j, Mode::Netns.name()));
        }
    }
}

/// Where a chain ran under both backends in a mode, judges every packet
/// both carried ([`agree`]); a disagreement is a finding of the ext run's
/// packet.
fn compare_backends(runs: &mut [ProgramRun]) {
    let tail_call = format!("@{}", ChainBackend::TailCall.name());
    let ext = format!("@{}", ChainBackend::Ext.name());
    for i in 0..runs.len() {
        let Some(base) = runs[i].program.strip_suffix(&tail_call) else {
            continue;
        };
        let other = format!("{base}{ext}");
        let mode = runs[i].mode;
        if !ran(&runs[i], mode) {
            continue;
        }
        if let Some(j) = (0..runs.len()).find(|&j| runs[j].program == other && ran(&runs[j], mode))
        {
            judge_pair(
                runs,
                (i, ChainBackend::TailCall.name()),
                (j, ChainBackend::Ext.name()),
            );
        }
    }
}

fn ran(run: &ProgramRun, mode: Mode) -> bool {
    run.mode == mode && matches!(run.outcome, RunOutcome::Ran { .. })
}

/// Judges run `j`'s packets against run `i`'s, each side named.
fn judge_pair(runs: &mut [ProgramRun], (i, i_name): (usize, &str), (j, j_name): (usize, &str)) {
    let (reference, other) = if i < j {
        let (left, right) = runs.split_at_mut(j);
        (&left[i], &mut right[0])
    } else {
        let (left, right) = runs.split_at_mut(i);
        (&right[0], &mut left[j])
    };
    let (
        RunOutcome::Ran {
            report: reference, ..
        },
        RunOutcome::Ran { report: other, .. },
    ) = (&reference.outcome, &mut other.outcome)
    else {
        return;
    };
    for packet in &mut other.packets {
        // Both runs' reports are in packet order.
        let Ok(at) = reference
            .packets
            .binary_search_by_key(&packet.number, |p| p.number)
        else {
            continue;
        };
        let theirs = &reference.packets[at];
        let (Some(a), Some(b)) = (&theirs.run, &packet.run) else {
            continue;
        };
        let finding = agree::judge(
            agree::Side {
                mode: i_name,
                run: a,
                counters: &theirs.counters,
                lb_counters: &theirs.lb_counters,
                slots: &theirs.slots,
            },
            agree::Side {
                mode: j_name,
                run: b,
                counters: &packet.counters,
                lb_counters: &packet.lb_counters,
                slots: &packet.slots,
            },
        );
        packet.findings.extend(finding);
    }
}
