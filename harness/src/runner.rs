//! Runs fixture suites through a loaded decap program in test-run mode and
//! collects, per packet, what happened and what the oracles think of it.
//!
//! Building the world (loading, reading the counter map) fails with a
//! [`SuiteError`]; a packet that behaves wrongly is a finding in the report,
//! never an error.

pub mod scenario;

use dsrlab_abi::decap::{COUNTERS_MAP, Counter};

use crate::{
    formats::fixture::{FixturePacket, FixtureSet},
    load::{CounterError, LoadedProgram, ProgramKind},
    oracles::{
        Finding,
        decap::{self, Expected},
    },
    testrun::{self, Quirks, RunError, RunResult},
};

/// Quirks imposed on every packet of a run, on top of the fixture's own.
#[derive(Clone, Copy, Debug, Default)]
pub struct QuirkOverrides {
    /// Run every packet as CHECKSUM_COMPLETE (skb programs).
    pub checksum_complete: bool,
    /// Run every packet with only this many linear bytes (XDP frags programs).
    pub linear: Option<u32>,
}

/// What happened to one packet.
#[derive(Debug)]
pub struct PacketReport {
    /// 1-based position in the fixture's pcap.
    pub number: usize,
    /// The fixture packet's name.
    pub name: String,
    /// The quirks it ran with.
    pub quirks: Quirks,
    /// Why it was not run, if it was not.
    pub skipped: Option<String>,
    /// The run, if it ran.
    pub run: Option<Result<RunResult, RunError>>,
    /// Counters that moved during its run.
    pub counters: Vec<(Counter, i64)>,
    /// Everything the oracles found wrong; empty means it passed.
    pub findings: Vec<Finding>,
}

impl PacketReport {
    /// Ran and nothing was found wrong.
    pub fn passed(&self) -> bool {
        self.skipped.is_none() && self.findings.is_empty()
    }
}

/// One fixture set through one program.
#[derive(Debug)]
pub struct SuiteReport {
    /// The fixture set's name.
    pub fixture: String,
    /// The program's name.
    pub program: String,
    /// The program's type.
    pub kind: ProgramKind,
    /// Per packet, in pcap order.
    pub packets: Vec<PacketReport>,
}

impl SuiteReport {
    /// Packets that ran and passed.
    pub fn passed(&self) -> usize {
        self.packets.iter().filter(|p| p.passed()).count()
    }

    /// Packets that ran and failed.
    pub fn failed(&self) -> usize {
        self.packets
            .iter()
            .filter(|p| p.skipped.is_none() && !p.findings.is_empty())
            .count()
    }

    /// Packets not run, with their reasons.
    pub fn skipped(&self) -> usize {
        self.packets.iter().filter(|p| p.skipped.is_some()).count()
    }
}

/// Failures to set up a suite run (as opposed to findings).
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    /// The decap counters could not be read.
    #[error("program `{program}`: cannot read its counters: {source}")]
    Counters {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: CounterError,
    },
}

/// Runs every packet of `set` through the decap `program` and judges it
/// against the decap contract.
pub fn run_decap_suite(
    set: &FixtureSet,
    program: &LoadedProgram,
    overrides: QuirkOverrides,
) -> Result<SuiteReport, SuiteError> {
    let packets = set
        .packets
        .iter()
        .enumerate()
        .map(|(i, packet)| run_decap_packet(program, i + 1, packet, overrides))
        .collect::<Result<_, _>>()?;
    Ok(SuiteReport {
        fixture: set.name.clone(),
        program: program.name().to_owned(),
        kind: program.kind(),
        packets,
    })
}

/// Runs one fixture packet through the decap `program` and judges it.
pub fn run_decap_packet(
    program: &LoadedProgram,
    number: usize,
    packet: &FixturePacket,
    overrides: QuirkOverrides,
) -> Result<PacketReport, SuiteError> {
    let quirks = Quirks {
        checksum_complete: packet.quirks.checksum_complete || overrides.checksum_complete,
        linear: overrides.linear.or(packet.quirks.linear),
    };
    let mut report = PacketReport {
        number,
        name: packet.name.clone(),
        quirks,
        skipped: skip_reason(program.kind(), quirks),
        run: None,
        counters: Vec::new(),
        findings: Vec::new(),
    };
    if report.skipped.is_some() {
        return Ok(report);
    }
    let counters = || {
        program
            .per_cpu_counters(COUNTERS_MAP)
            .map_err(|source| SuiteError::Counters {
                program: program.name().to_owned(),
                source,
            })
    };
    let before = counters()?;
    let run = testrun::run(program, &packet.bytes, quirks);
    let after = counters()?;
    if let Err(RunError::Unrunnable { .. }) = &run {
        report.skipped = run.err().map(|e| e.to_string());
        return Ok(report);
    }
    report.counters = decap::counter_deltas(&before, &after);

    let mut acceptable: Vec<Expected> = vec![decap::expected(packet, program.kind())];
    if quirks
        .linear
        .is_some_and(|n| (n as usize) < packet.bytes.len())
    {
        acceptable.push(decap::untouched_non_linear(
            &packet.bytes,
            program.kind(),
            true,
        ));
    }
    report.findings = decap::judge(&acceptable, &run, &report.counters);
    report.run = Some(run);
    Ok(report)
}

/// Why a packet with `quirks` cannot run on a program of `kind`, if it can't.
pub fn skip_reason(kind: ProgramKind, quirks: Quirks) -> Option<String> {
    match kind {
        ProgramKind::Xdp if quirks.checksum_complete => {
            Some("checksum: complete is an skb property; XDP runs before the skb exists".to_owned())
        }
        ProgramKind::SchedCls if quirks.linear.is_some() => Some(
            "linear: N cannot be emulated for skb test runs on this kernel (always linear)"
                .to_owned(),
        ),
        _ => None,
    }
}
