//! Runs a loaded scenario: every program, in every mode, over every packet,
//! then the after-run checks.
//!
//! Setting up (loading a program, filling its maps) fails loudly and
//! separately from the oracles' verdicts: a program that cannot be set up is
//! reported as a setup failure, never as failing packets.
//!
//! Programs of the lb contract run through [`lb`]: provisioned by the
//! control plane, pinned to one CPU, judged by the reference model.

mod lb;

pub use lb::set_up_lb;

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use dsrlab_abi::decap::{COUNTERS_MAP, GUE_PORT_GLOBAL};

use super::{PacketReport, SuiteError, SuiteReport, skip_reason};
use crate::{
    datapath::{self, Object},
    formats::scenario::{
        load::{LoadedScenario, ProgramSource, ResolvedProgram, ScenarioPacket},
        model::{Builtin, Contract, Mode},
    },
    load::{LoadOptions, LoadedProgram},
    maps::RawMap,
    oracles::{Finding, decap, expect},
    testrun::{self, RunError},
};

/// What to run of a scenario.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Only this packet (1-based over the whole scenario's traffic).
    pub packet: Option<usize>,
    /// Only these modes (default: the scenario's).
    pub modes: Option<Vec<Mode>>,
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
        self.ran().map(|(r, _)| r.passed()).sum()
    }

    /// Packets that failed, plus failed after-checks and setups.
    pub fn failed(&self) -> usize {
        self.runs
            .iter()
            .map(|run| match &run.outcome {
                RunOutcome::Ran { report, after } => report.failed() + after.len(),
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
                RunOutcome::SetupFailed(_) => 0,
            })
            .sum()
    }

    /// Whether nothing failed.
    pub fn ok(&self) -> bool {
        self.failed() == 0
    }

    fn ran(&self) -> impl Iterator<Item = (&SuiteReport, &Vec<Finding>)> {
        self.runs.iter().filter_map(|run| match &run.outcome {
            RunOutcome::Ran { report, after } => Some((report, after)),
            _ => None,
        })
    }
}

/// The embedded object of a built-in program.
pub const fn builtin_object(builtin: Builtin) -> Object {
    match builtin {
        Builtin::XdpDecap => datapath::XDP_DECAP,
        Builtin::TcDecap => datapath::TC_DECAP,
        Builtin::XdpPass => datapath::XDP_PASS,
        Builtin::TcPass => datapath::TC_PASS,
        Builtin::XdpLb => datapath::XDP_LB,
    }
}

/// Number of packet runs `scenario` will make with `options` (for progress).
pub fn planned_runs(scenario: &LoadedScenario, options: &RunOptions) -> u64 {
    let packets = if options.packet.is_some() {
        1
    } else {
        scenario.packets.len()
    };
    let modes = modes(scenario, options)
        .filter(|m| *m == Mode::TestRun)
        .count();
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
    for program in &scenario.programs {
        for mode in modes(scenario, options) {
            let run_started = Instant::now();
            let outcome = match mode {
                Mode::Netns => RunOutcome::Skipped(
                    "netns mode is not implemented yet; this scenario ran in test-run mode only"
                        .to_owned(),
                ),
                Mode::TestRun if program.contract == Some(Contract::Lb) => {
                    lb::run(scenario, program, options, tick)
                }
                Mode::TestRun => run_test_mode(scenario, program, options, tick),
            };
            runs.push(ProgramRun {
                program: program.name.clone(),
                mode,
                outcome,
                elapsed: run_started.elapsed(),
            });
        }
    }
    ScenarioReport {
        name: scenario.name.clone(),
        path: scenario.path.clone(),
        runs,
        elapsed: started.elapsed(),
    }
}

/// Loads `program` and fills its maps: the setup phase (for programs of the
/// lb contract, which the control plane provisions, see [`set_up_lb`]).
pub fn set_up(program: &ResolvedProgram) -> Result<LoadedProgram, String> {
    let port_bytes = program.gue_port.map(u16::to_ne_bytes);
    let mut options = LoadOptions::default();
    if let Some(bytes) = &port_bytes {
        options.globals.push((GUE_PORT_GLOBAL, bytes));
    }
    let loaded = match &program.source {
        ProgramSource::Builtin(b) => LoadedProgram::builtin(builtin_object(*b), &options),
        ProgramSource::File { object, program } => {
            LoadedProgram::from_file(object, program, &options)
        }
    }
    .map_err(|e| e.to_string())?;
    for (map, entries) in &program.maps {
        let raw = RawMap::find(&loaded, map).map_err(|e| e.to_string())?;
        for (key, value) in entries {
            raw.update(key, value).map_err(|e| e.to_string())?;
        }
    }
    Ok(loaded)
}

fn run_test_mode(
    scenario: &LoadedScenario,
    program: &ResolvedProgram,
    options: &RunOptions,
    tick: &mut dyn FnMut(),
) -> RunOutcome {
    let loaded = match set_up(program) {
        Ok(loaded) => loaded,
        Err(why) => return RunOutcome::SetupFailed(why),
    };
    let counters = program.contract == Some(Contract::Decap);
    let mut packets = Vec::new();
    for (i, packet) in scenario.packets.iter().enumerate() {
        if options.packet.is_some_and(|only| only != i + 1) {
            continue;
        }
        match run_packet(&loaded, counters, i + 1, packet) {
            Ok(report) => packets.push(report),
            Err(why) => return RunOutcome::SetupFailed(why.to_string()),
        }
        tick();
    }
    let after = if options.packet.is_some() {
        Vec::new() // the totals of a partial run mean nothing
    } else {
        after_checks(scenario, &loaded, counters)
    };
    RunOutcome::Ran {
        report: SuiteReport {
            fixture: scenario.name.clone(),
            program: loaded.name().to_owned(),
            kind: loaded.kind(),
            packets,
        },
        after,
    }
}

/// Runs one packet and judges it: the fixture's expectation (decap
/// contract, for programs implementing it: `counters`), then the packet's
/// `expect:`. `number` is its 1-based position in the run.
pub(crate) fn run_packet(
    program: &LoadedProgram,
    counters: bool,
    number: usize,
    packet: &ScenarioPacket,
) -> Result<PacketReport, SuiteError> {
    let mut report = PacketReport {
        number,
        name: packet_name(packet),
        quirks: packet.quirks,
        skipped: skip_reason(program.kind(), packet.quirks),
        run: None,
        counters: Vec::new(),
        lb_counters: Vec::new(),
        findings: Vec::new(),
    };
    if report.skipped.is_some() {
        return Ok(report);
    }
    let read = || {
        if counters {
            program
                .per_cpu_counters(COUNTERS_MAP)
                .map_err(|e| SuiteError::counters(program, e))
        } else {
            Ok(Vec::new())
        }
    };
    let before = read()?;
    let run = testrun::run(program, &packet.bytes, packet.quirks);
    let after = read()?;
    if let Err(RunError::Unrunnable { .. }) = &run {
        report.skipped = run.err().map(|e| e.to_string());
        return Ok(report);
    }
    report.counters = decap::counter_deltas(&before, &after);

    // A fixture's expectations are the decap contract's: they bind programs
    // that implement it, not a user's firewall that merely sees the packets.
    if let Some(fixture) = packet.fixture.as_ref().filter(|_| counters) {
        let mut acceptable = vec![decap::expected_for(
            fixture,
            packet.expected_output.clone(),
            program.kind(),
            counters,
        )];
        if packet
            .quirks
            .linear
            .is_some_and(|n| (n as usize) < packet.bytes.len())
        {
            acceptable.push(decap::untouched_non_linear(
                &packet.bytes,
                program.kind(),
                counters,
            ));
        }
        report
            .findings
            .extend(decap::judge(&acceptable, &run, &report.counters));
    }
    match (&run, &packet.expect) {
        (Ok(result), Some(e)) => report.findings.extend(expect::judge(
            e,
            &packet.bytes,
            packet.expected_output.as_deref(),
            result,
            counters.then_some(report.counters.as_slice()),
        )),
        (Err(err), _) if packet.fixture.is_none() || !counters => {
            report.findings.push(Finding::RunFailed(err.to_string()));
        }
        _ => {}
    }
    report.run = Some(run);
    Ok(report)
}

/// `stream/name`, or the name alone outside a scenario.
fn packet_name(packet: &ScenarioPacket) -> String {
    if packet.stream.is_empty() {
        packet.name.clone()
    } else {
        format!("{}/{}", packet.stream, packet.name)
    }
}

fn after_checks(
    scenario: &LoadedScenario,
    program: &LoadedProgram,
    counters: bool,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    if counters && !scenario.after_counters.is_empty() {
        match program.per_cpu_counters(COUNTERS_MAP) {
            Err(e) => findings.push(Finding::After(e.to_string())),
            Ok(totals) => {
                for &(counter, want) in &scenario.after_counters {
                    let actual = totals.get(counter as usize).copied().unwrap_or(0);
                    if actual != want {
                        findings.push(Finding::After(format!(
                            "counter {}: expected {want}, actual {actual}",
                            counter.name()
                        )));
                    }
                }
            }
        }
    }
    findings.extend(after_maps(scenario, program));
    findings
}

/// The `after.maps` checks.
fn after_maps(scenario: &LoadedScenario, program: &LoadedProgram) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (map, key, want) in &scenario.after_maps {
        let actual = RawMap::find(program, map).and_then(|raw| raw.lookup_summed(key));
        match actual {
            Err(e) => findings.push(Finding::After(e.to_string())),
            Ok(actual) if actual.as_deref() == Some(want.as_slice()) => {}
            Ok(actual) => findings.push(Finding::After(format!(
                "map {map} key {}: expected {}, actual {}",
                hex(key),
                hex(want),
                actual.as_deref().map_or("(absent)".to_owned(), hex)
            ))),
        }
    }
    findings
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
