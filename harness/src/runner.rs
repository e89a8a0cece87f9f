//! Runs fixture suites and scenarios ([`scenario`]) through loaded programs
//! in test-run mode and collects, per packet, what happened and what the
//! oracles think of it. Both go through one per-packet path.
//!
//! Building the world (loading, reading the counter map) fails with a
//! [`SuiteError`]; a packet that behaves wrongly is a finding in the report,
//! never an error.

pub mod cpu_pin;
pub mod execution;
mod log;
pub mod scenario;

pub use log::{FoldedNotes, NoteGroup, PacketLog, coalesce, general_part};

use dsrlab_abi::{decap::Counter, lb::Counter as LbCounter};

use crate::{
    formats::{
        fixture::{FixturePacket, FixtureSet},
        scenario::load::ScenarioPacket,
    },
    load::{CounterError, LoadedProgram, ProgramKind},
    oracles::Finding,
    testrun::{Quirks, RunError, RunResult},
    verdict::Verdict,
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
    /// Decap contract counters that moved during its run.
    pub counters: Vec<(Counter, i64)>,
    /// Lb contract counters that moved during its run.
    pub lb_counters: Vec<(LbCounter, i64)>,
    /// A chain's slots that ran on it, in slot order, with their verdicts
    /// (from the slots' counters); empty for other programs.
    pub slots: Vec<(u32, Verdict)>,
    /// Everything the oracles found wrong; empty means it passed.
    pub findings: Vec<Finding>,
    /// What the judging took into account beyond the expectation (a
    /// kernel feature that changes what is correct), for the report.
    pub notes: Vec<String>,
    /// The contract counter the expectation named and the one this kernel
    /// makes a correct program count instead, so that `after.counters`
    /// totals move with it.
    pub counted_instead: Option<(Counter, Counter)>,
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
    /// Per packet, in pcap order: every packet, or (when the run folds
    /// them) those that did not pass or carry notes.
    pub packets: Vec<PacketReport>,
    /// Packets that passed and were only counted ([`PacketLog`]).
    pub folded: usize,
    /// The notes of folded packets, grouped (boxed: most runs have none,
    /// and outcomes holding a report are moved around by value).
    pub folded_notes: Box<FoldedNotes>,
}

impl SuiteReport {
    /// Packets that ran and passed.
    pub fn passed(&self) -> usize {
        self.folded + self.packets.iter().filter(|p| p.passed()).count()
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
    /// The live rig failed (topology, attachment, sockets, a lost fence).
    #[error("live mode: {0}")]
    Live(#[source] crate::live::replay::ReplayError),
    /// The run needs something this kernel lacks (a reason to skip it,
    /// printed, not a failure).
    #[error("{0}")]
    Unsupported(String),
    /// A chain's counters could not be read.
    #[error(transparent)]
    Chain(#[from] crate::chain::ChainError),
}

impl SuiteError {
    /// The error for failing to read `program`'s counters.
    pub fn counters(program: &LoadedProgram, source: CounterError) -> Self {
        Self::Counters {
            program: program.name().to_owned(),
            source,
        }
    }
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
        folded: 0,
        folded_notes: Box::default(),
    })
}

/// Runs one fixture packet through the decap `program` and judges it: the
/// same per-packet path as a scenario's fixture stream.
pub fn run_decap_packet(
    program: &LoadedProgram,
    number: usize,
    packet: &FixturePacket,
    overrides: QuirkOverrides,
) -> Result<PacketReport, SuiteError> {
    let quirks = Quirks {
        checksum_complete: packet.quirks.checksum_complete || overrides.checksum_complete,
        linear: overrides.linear.or(packet.quirks.linear),
        ..packet.quirks
    };
    let as_scenario = ScenarioPacket {
        stream: "".into(),
        number: number as u32,
        name: packet.name.clone(),
        bytes: packet.bytes.clone(),
        quirks,
        expect: None,
        fixture: Some(packet.expect),
        expected_output: packet.expected_output(),
    };
    scenario::run_packet(
        program,
        &mut execution::TestRun,
        &scenario::Judging {
            cost: &execution::MarkerCost::default(),
            counters: true,
            watch: None,
            cpu: None,
        },
        number,
        &as_scenario,
    )
}

/// Why a packet with `quirks` cannot run on a program of `kind`, if it can't.
pub fn skip_reason(kind: ProgramKind, quirks: Quirks) -> Option<String> {
    let features = crate::kernel::features::Features::get();
    if quirks.checksum_complete
        && kind == ProgramKind::SchedCls
        && let Some(why) = features.test_run_checksum_complete.missing()
    {
        return Some(format!(
            "checksum: complete needs BPF_F_TEST_SKB_CHECKSUM_COMPLETE, which this kernel's test runs refuse ({why})"
        ));
    }
    if quirks.linear.is_some()
        && kind == ProgramKind::Xdp
        && let Some(why) = features.test_run_xdp_linear.missing()
    {
        return Some(format!(
            "linear: N needs XDP test runs with frags, which this kernel refuses ({why})"
        ));
    }
    if quirks.checksum_unnecessary {
        return Some(
            "checksum: unnecessary cannot be given to a test run (BPF_PROG_TEST_RUN makes \
             CHECKSUM_NONE or, on request, COMPLETE skbs); it runs live, through the TAP NIC"
                .to_owned(),
        );
    }
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
