//! The decap contract: what `xdp_decap` and `tc_decap` (and anything claiming
//! to be a decap) must do with each fixture packet.
//!
//! The expectation comes from the fixture (outcome, counter, and the expected
//! output built from the packet's recipe), never from the program.

use dsrlab_abi::decap::Counter;

use super::Finding;
use crate::{
    formats::{
        fixture::{Expectation, FixturePacket, Outcome},
        packet,
        scenario::model::Expect,
    },
    load::ProgramKind,
    testrun::{RunError, RunResult, Verdict},
};

/// One acceptable result of running a packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    /// The verdict.
    pub verdict: Verdict,
    /// The output packet; `None` when the packet is dropped and its bytes
    /// don't matter.
    pub output: Option<Vec<u8>>,
    /// The one counter that must count the packet; `None` when the program
    /// has no decap counters to check (a user's program judged only by its
    /// verdict and output).
    pub counter: Option<Counter>,
}

/// The verdict a decap program of `kind` gives for `outcome`.
pub const fn verdict(kind: ProgramKind, outcome: Outcome) -> Verdict {
    match (kind, outcome) {
        (ProgramKind::Xdp, Outcome::Decap | Outcome::Pass) => Verdict::Xdp(2),
        (ProgramKind::Xdp, Outcome::Drop) => Verdict::Xdp(1),
        (ProgramKind::SchedCls, Outcome::Decap | Outcome::Pass) => Verdict::Tc(0),
        (ProgramKind::SchedCls, Outcome::Drop) => Verdict::Tc(2),
    }
}

/// What a correct decap of `kind` does with a fixture packet when its
/// headers are all in the linear area.
pub fn expected(packet: &FixturePacket, kind: ProgramKind) -> Expected {
    expected_for(&packet.expect, packet.expected_output(), kind, true)
}

/// What a correct decap of `kind` does with a packet of which the fixture
/// says `expect` and whose output should be `output`; `counters`: whether
/// the program has decap counters to check.
pub fn expected_for(
    expect: &Expectation,
    output: Option<Vec<u8>>,
    kind: ProgramKind,
    counters: bool,
) -> Expected {
    Expected {
        verdict: verdict(kind, expect.outcome),
        output,
        counter: counters.then_some(expect.counter),
    }
}

/// What a correct decap may do instead when the packet's headers are not all
/// in the linear area (`linear: N`): leave it untouched and say so.
pub fn untouched_non_linear(input: &[u8], kind: ProgramKind, counters: bool) -> Expected {
    Expected {
        verdict: verdict(kind, Outcome::Pass),
        output: Some(input.to_vec()),
        counter: counters.then_some(Counter::PassNonLinear),
    }
}

/// Whether the fixture's decapsulation changes the packet's family (IPv6
/// in IPv4, IPv4 in IPv6, directly or in GUE).
pub const fn changes_family(expect: &Expectation) -> bool {
    counts_family_change(expect.counter)
}

/// Whether `counter` counts a decapsulation that changes the family.
pub const fn counts_family_change(counter: Counter) -> bool {
    matches!(
        counter,
        Counter::DecapIp6InIp4
            | Counter::DecapIp4InIp6
            | Counter::DecapGue6InIp4
            | Counter::DecapGue4InIp6
    )
}

/// A scenario's `expect:` for a family-changing decap, as a kernel without
/// `BPF_F_ADJ_ROOM_DECAP_L3_*` makes it (see [`refused_family_change`]).
pub fn refused_family_change_expect() -> Expect {
    Expect {
        verdict: Some("drop".into()),
        counter: Some(Counter::DropHelperError.name().into()),
        ..Expect::default()
    }
}

/// What a TC decap may do instead on a kernel whose `bpf_skb_adjust_room`
/// has no `BPF_F_ADJ_ROOM_DECAP_L3_*` (before 6.3) with a packet whose
/// family changes: it cannot set `skb->protocol`, so it refuses the packet
/// (the documented policy of tc_decap: drop, counted as a helper error,
/// rather than deliver an inner packet the stack would misread).
pub fn refused_family_change(counters: bool) -> Expected {
    Expected {
        verdict: verdict(ProgramKind::SchedCls, Outcome::Drop),
        output: None,
        counter: counters.then_some(Counter::DropHelperError),
    }
}

/// The counters that moved between two snapshots of the counter map.
pub fn counter_deltas(before: &[u64], after: &[u64]) -> Vec<(Counter, i64)> {
    Counter::ALL
        .iter()
        .zip(before.iter().zip(after))
        .filter(|(_, (b, a))| a != b)
        .map(|(c, (b, a))| (*c, *a as i64 - *b as i64))
        .collect()
}

/// Judges one run against the acceptable results (the first is the primary
/// one, used for the report when none matches).
pub fn judge(
    acceptable: &[Expected],
    run: &Result<RunResult, RunError>,
    deltas: &[(Counter, i64)],
) -> Vec<Finding> {
    let result = match run {
        Ok(result) => result,
        Err(err) => return vec![Finding::RunFailed(err.to_string())],
    };
    let findings_for = |e: &Expected| {
        let mut findings = Vec::new();
        if result.verdict != e.verdict {
            findings.push(Finding::Verdict {
                expected: e.verdict,
                actual: result.verdict,
            });
        }
        if let Some(output) = &e.output
            && let Some(diff) = packet::diff(output, &result.output)
        {
            findings.push(Finding::Output(diff));
        }
        if let Some(counter) = e.counter
            && deltas != [(counter, 1)]
        {
            findings.push(Finding::Counters {
                expected: counter,
                actual: deltas.to_vec(),
            });
        }
        findings
    };
    let mut judged: Vec<Vec<Finding>> = acceptable.iter().map(findings_for).collect();
    if let Some(clean) = judged.iter().position(Vec::is_empty) {
        return judged.swap_remove(clean);
    }
    // Report against the alternative the program apparently meant (same
    // counter), or the primary one.
    let closest = acceptable
        .iter()
        .position(|e| e.counter.is_some_and(|c| deltas == [(c, 1)]))
        .unwrap_or(0);
    judged.swap_remove(closest)
}
