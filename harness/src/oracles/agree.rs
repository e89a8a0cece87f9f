//! Runs agree: a packet that both test-run and live mode carried (or both
//! backends of a chain) must have
//! met the same fate in both — the same verdict class, the same delivered
//! (or transmitted) bytes, and the same counter movements.
//!
//! Verdicts are compared by class because a live run sees effects, not
//! return codes: XDP_ABORTED and XDP_DROP both drop, TC_ACT_UNSPEC and
//! TC_ACT_OK both pass.

use dsrlab_abi::{decap::Counter, lb::Counter as LbCounter};

use super::Finding;
use crate::{
    formats::packet,
    testrun::{RunError, RunResult, Verdict},
};

/// One run's account of a packet (a mode's, a chain backend's).
#[derive(Clone, Copy, Debug)]
pub struct Side<'a> {
    /// The run's name (`test-run`, `netns`; `tail-call`, `ext`).
    pub mode: &'a str,
    /// What the run returned.
    pub run: &'a Result<RunResult, RunError>,
    /// Decap contract counters that moved.
    pub counters: &'a [(Counter, i64)],
    /// Lb contract counters that moved.
    pub lb_counters: &'a [(LbCounter, i64)],
    /// A chain's slots that ran, with their verdicts.
    pub slots: &'a [(u32, Verdict)],
}

/// The verdict's class: what the kernel does with the packet.
pub fn class(verdict: Verdict) -> &'static str {
    if verdict.passes() {
        "pass"
    } else if verdict.drops() {
        "drop"
    } else if verdict.is("tx") {
        "tx"
    } else if verdict.is("redirect") {
        "redirect"
    } else {
        "other"
    }
}

/// Compares two runs' accounts of one packet; `None` when they agree.
pub fn judge(a: Side<'_>, b: Side<'_>) -> Option<Finding> {
    let (ra, rb) = match (a.run, b.run) {
        (Ok(ra), Ok(rb)) => (ra, rb),
        // A packet one mode could not run is not compared.
        _ => return None,
    };
    let mut differences = Vec::new();
    let (ca, cb) = (class(ra.verdict), class(rb.verdict));
    if ca != cb {
        differences.push(format!(
            "verdict: {} {} ({ca}), {} {} ({cb})",
            a.mode, ra.verdict, b.mode, rb.verdict
        ));
    } else if ca != "drop"
        && let Some(diff) = packet::diff(&ra.output, &rb.output)
    {
        differences.push(format!("output ({} → {}):\n{diff}", a.mode, b.mode));
    }
    let mut counters = |what: &str, differ: bool, moved_a: String, moved_b: String| {
        if differ {
            differences.push(format!(
                "{what}: {} {moved_a}, {} {moved_b}",
                a.mode, b.mode
            ));
        }
    };
    counters(
        "decap counters",
        a.counters != b.counters,
        moved(a.counters, Counter::name),
        moved(b.counters, Counter::name),
    );
    counters(
        "lb counters",
        a.lb_counters != b.lb_counters,
        moved(a.lb_counters, LbCounter::name),
        moved(b.lb_counters, LbCounter::name),
    );
    if a.slots != b.slots {
        differences.push(format!(
            "chain slots: {} {}, {} {}",
            a.mode,
            slot_path(a.slots),
            b.mode,
            slot_path(b.slots)
        ));
    }
    (!differences.is_empty()).then(|| Finding::ModesDisagree(differences.join("; ")))
}

/// A chain's way through its slots: `2 XDP_PASS → 10 XDP_TX`, or
/// `(no slot ran)`.
pub fn slot_path(slots: &[(u32, Verdict)]) -> String {
    if slots.is_empty() {
        return "(no slot ran)".to_owned();
    }
    let steps: Vec<String> = slots.iter().map(|(s, v)| format!("{s} {v}")).collect();
    steps.join(" → ")
}

/// `name +n, ...` of the counters that moved, or `(none moved)`.
fn moved<C: Copy>(deltas: &[(C, i64)], name: impl Fn(C) -> &'static str) -> String {
    if deltas.is_empty() {
        return "(none moved)".to_owned();
    }
    let moved: Vec<String> = deltas
        .iter()
        .map(|&(c, n)| format!("{} {n:+}", name(c)))
        .collect();
    moved.join(", ")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn result(verdict: Verdict, output: &[u8]) -> Result<RunResult, RunError> {
        Ok(RunResult {
            verdict,
            output: output.to_vec(),
            kernel_ns: 0,
            wall: Duration::ZERO,
            drops: None,
            ctx: None,
        })
    }

    fn side<'a>(
        mode: &'a str,
        run: &'a Result<RunResult, RunError>,
        c: &'a [(Counter, i64)],
    ) -> Side<'a> {
        Side {
            mode,
            run,
            counters: c,
            lb_counters: &[],
            slots: &[],
        }
    }

    #[test]
    fn the_same_fate_agrees_whatever_the_return_code() {
        let frame = [0u8; 60];
        let aborted = result(Verdict::Xdp(0), &frame);
        let dropped = result(Verdict::Xdp(1), &[]);
        let counted = [(Counter::DropMalformedTunnel, 1)];
        assert_eq!(
            judge(
                side("test-run", &aborted, &counted),
                side("netns", &dropped, &counted)
            ),
            None
        );
        let ok = result(Verdict::Tc(0), &frame);
        let unspec = result(Verdict::Tc(-1), &frame);
        assert_eq!(
            judge(side("test-run", &ok, &[]), side("netns", &unspec, &[])),
            None
        );
    }

    #[test]
    fn another_verdict_output_or_counter_disagrees_and_shows_both_sides() {
        let frame = [0u8; 60];
        let mut other = frame;
        other[59] = 1;
        let pass = result(Verdict::Xdp(2), &frame);
        let drop = result(Verdict::Xdp(1), &[]);
        let pass_other = result(Verdict::Xdp(2), &other);
        let Some(Finding::ModesDisagree(text)) =
            judge(side("test-run", &pass, &[]), side("netns", &drop, &[]))
        else {
            panic!("a pass and a drop must disagree");
        };
        assert!(
            text.contains("test-run XDP_PASS (pass), netns XDP_DROP (drop)"),
            "{text}"
        );
        assert!(
            judge(
                side("test-run", &pass, &[]),
                side("netns", &pass_other, &[])
            )
            .is_some()
        );
        let one = [(Counter::DecapIp4InIp4, 1)];
        let Some(Finding::ModesDisagree(text)) =
            judge(side("test-run", &pass, &one), side("netns", &pass, &[]))
        else {
            panic!("different counters must disagree");
        };
        assert!(text.contains("netns (none moved)"), "{text}");
    }
}
