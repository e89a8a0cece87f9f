//! One packet through a load balancer, judged against the model, with the
//! counters checked per batch of the model's claims or around the packet.

use std::sync::atomic::{AtomicUsize, Ordering};

use dsrlab_abi::lb::{COUNTERS_MAP, Counter as LbCounter};

use crate::{
    formats::scenario::load::ScenarioPacket,
    lb::{Expected, Lb, ModelState, control::Counters, eviction},
    load::ProgramKind,
    oracles::{
        Finding, expect,
        lb::{self, Tally},
    },
    runner::{
        PacketReport, SuiteError,
        execution::{Execution, MarkerCost},
        scenario::{
            ledger::{self, BATCH, Ledger},
            packet::new_report,
        },
    },
    testrun::{RunError, RunResult},
};

/// What judges a lane's packets.
pub(super) struct Judge<'a> {
    pub lb: &'a Lb,
    pub gue_port: u16,
    /// What the execution's own marker frames add to the counters.
    pub cost: &'a MarkerCost,
    /// The lane's CPU, whose counters are its own while other lanes run;
    /// all CPUs' summed when `None` (one lane).
    pub cpu: Option<usize>,
    /// Flows in all the lanes' models: the keys the kernel's table holds,
    /// shared by all CPUs, which decide whether it may evict.
    pub flows: &'a AtomicUsize,
}

/// How the run's counters are attributed to packets: per batch, each
/// packet claiming what the model says it counts ([`Ledger`]), or read
/// around each packet for snapshots and for the rest of a run after a batch
/// did not add up. Once the connection table may evict, a flow the kernel
/// evicted counts `lru_miss` where the model says `lru_hit`: a packet whose
/// run shows it (the ring now gives another real) claims the eviction's
/// counters; one whose run would be the same either way claims `lru_hit`
/// or `lru_miss` ([`eviction::indistinguishable`]), and the batch's
/// `lru_miss` says how many were evictions.
pub(super) struct Counting {
    ledger: Ledger,
    exact: bool,
    /// The packets of the pending batch, first and last.
    batch: Option<(usize, usize)>,
    /// Batches that did not add up.
    pub unexplained: Vec<Finding>,
}

impl Counting {
    /// Counting from the counters now (of `cpu`, or all summed).
    pub fn start(
        lb: &Lb,
        execution: &dyn Execution,
        (cost, cpu): (&MarkerCost, Option<usize>),
        snapshot: bool,
    ) -> Result<Self, SuiteError> {
        let words = Judge::words(lb, execution, cost, cpu)?;
        Ok(Self {
            ledger: Ledger::new(BATCH, words),
            exact: snapshot,
            batch: None,
            unexplained: Vec::new(),
        })
    }
}

impl Judge<'_> {
    /// `LB_COUNTERS` summed over CPUs (one batched lookup), less what the
    /// execution's marker frames added.
    fn words(
        lb: &Lb,
        execution: &dyn Execution,
        cost: &MarkerCost,
        cpu: Option<usize>,
    ) -> Result<Vec<u64>, SuiteError> {
        let program = lb.program();
        let mut words = program
            .per_cpu_counters_on(COUNTERS_MAP, cpu)
            .map_err(|e| SuiteError::counters(program, e))?;
        cost.remove(0, &mut words, execution.markers());
        Ok(words)
    }

    /// What the counters moved since the last read: one packet's, read
    /// around it.
    fn moved(
        &self,
        execution: &dyn Execution,
        counting: &mut Counting,
    ) -> Result<Counters, SuiteError> {
        let words = counting
            .ledger
            .advance(Self::words(self.lb, execution, self.cost, self.cpu)?);
        let mut moved = Counters::default();
        for (slot, v) in moved.0.iter_mut().zip(words) {
            *slot = v;
        }
        Ok(moved)
    }

    /// Checks the pending batch's claims; a batch that did not add up is a
    /// finding naming its packets, and the rest of the run reads around
    /// each packet.
    pub fn settle(
        &self,
        execution: &dyn Execution,
        counting: &mut Counting,
    ) -> Result<(), SuiteError> {
        let Some((first, last)) = counting.batch.take() else {
            return Ok(());
        };
        let now = Self::words(self.lb, execution, self.cost, self.cpu)?;
        if let Err(mismatch) = counting.ledger.settle(now) {
            let names = LbCounter::ALL.map(LbCounter::name);
            counting.unexplained.push(Finding::After(format!(
                "packets {first}–{last} together moved {}, the model says {} (every verdict \
                 and output matched; the packets after them were checked one by one)",
                ledger::named(&mismatch.moved, &names),
                ledger::named(&mismatch.claimed, &names)
            )));
            counting.exact = true;
        }
        Ok(())
    }

    /// Runs one packet through the datapath and the model and judges it:
    /// the model's verdict, output and counters, then the packet's
    /// `expect:`.
    pub fn packet(
        &self,
        execution: &mut dyn Execution,
        model: &mut ModelState,
        tally: &mut Tally,
        counting: &mut Counting,
        number: usize,
        packet: &ScenarioPacket,
    ) -> Result<PacketReport, SuiteError> {
        let program = self.lb.program();
        let mut report = new_report(program, execution, number, packet);
        if report.skipped.is_none()
            && program.kind() == ProgramKind::Xdp
            && packet.quirks.linear.is_some()
        {
            report.skipped = Some(
                "linear: N does not apply to a load balancer: xdp_lb is loaded without \
                 frags support, and the reference model sees whole frames"
                    .to_owned(),
            );
        }
        if report.skipped.is_some() {
            return Ok(report);
        }
        let flows = self.flows.load(Ordering::Relaxed);
        let exact = counting.exact;
        if exact {
            self.settle(execution, counting)?;
        }
        let run = execution.run(program, &packet.bytes, packet.quirks)?;
        let mut moved = if exact {
            Some(self.moved(execution, counting)?)
        } else {
            None
        };
        if let Err(RunError::Unrunnable { .. }) = &run {
            // Neither side saw the packet: the model is not told of it.
            report.skipped = run.err().map(|e| e.to_string());
            return Ok(report);
        }
        let held = model.lru.len();
        let expected = model.process(&packet.bytes);
        let answer = |model: &mut ModelState, expected: Expected, moved: &Option<Counters>| {
            decide(
                model,
                &packet.bytes,
                expected,
                (&run, moved),
                flows,
                self.gue_port,
            )
        };
        let (mut expected, mut judged) = answer(model, expected, &moved);
        if !judged.findings.is_empty() && moved.is_none() && counting.batch.is_none() {
            // A packet that fails alone in its batch (as the model's
            // answer and as an eviction's): its counters are read now, and
            // the run reads around each packet from here on.
            moved = Some(self.moved(execution, counting)?);
            counting.exact = true;
            (expected, judged) = answer(model, expected, &moved);
        }
        report.lb_counters = judged.deltas;
        report.findings = judged.findings;
        if let Some(real) = judged.evicted_to {
            report.notes.push(format!(
                "the kernel's LRU evicted the flow from the full connection table, and it \
                 was selected again from the ring; real {real}"
            ));
        }
        tally.add(&expected);
        if model.lru.len() >= held {
            self.flows
                .fetch_add(model.lru.len() - held, Ordering::Relaxed);
        } else {
            self.flows
                .fetch_sub(held - model.lru.len(), Ordering::Relaxed);
        }
        if moved.is_none() {
            counting.batch = Some((counting.batch.map_or(number, |(first, _)| first), number));
            let words = expected.counters().map(|c| c as usize);
            let full = if judged.evicted_to.is_none()
                && eviction::indistinguishable(model, &expected, flows)
            {
                let open = (LbCounter::LruHit as usize, LbCounter::LruMiss as usize);
                counting.ledger.claim_either(words, open)
            } else {
                counting.ledger.claim(words)
            };
            if !report.findings.is_empty() {
                // Its counters went with the batch's: settled now, the
                // batch ends with it, and the run reads around each
                // packet from here on.
                report.notes.push(format!(
                    "its counters were checked with those of packets {}–{number}",
                    counting.batch.map_or(number, |(first, _)| first)
                ));
                counting.exact = true;
                self.settle(execution, counting)?;
            } else if full {
                self.settle(execution, counting)?;
            }
        }
        if let (Ok(result), Some(e)) = (&run, &packet.expect) {
            report.findings.extend(expect::judge(
                e,
                &packet.bytes,
                packet.expected_output.as_deref(),
                result,
                None,
            ));
        }
        report.run = Some(run);
        Ok(report)
    }
}

/// What a packet was judged to be: its counters (read, or claimed by the
/// answer it matches) and findings, and whether the kernel evicted its flow
/// (the model then holds the evicted answer's state).
struct Judged {
    deltas: Vec<(LbCounter, i64)>,
    findings: Vec<Finding>,
    /// The real the flow went to after the kernel evicted it.
    evicted_to: Option<u32>,
}

/// Judges a packet's `run` against the model's `expected` answer, or the
/// answer had the kernel evicted the flow where that one matches instead:
/// what the run did, `moved` the counters read around it (else the answer's
/// are claimed).
fn decide(
    model: &mut ModelState,
    frame: &[u8],
    expected: Expected,
    (run, moved): (&Result<RunResult, RunError>, &Option<Counters>),
    flows: usize,
    gue_port: u16,
) -> (Expected, Judged) {
    let deltas_of = |e: &Expected| match moved {
        Some(moved) => lb::counter_deltas(&Counters::default(), moved),
        None => lb::expected_deltas(e),
    };
    let deltas = deltas_of(&expected);
    let findings = lb::judge(&expected, run, &deltas, gue_port);
    // Tried when the model's answer does not match the run (or the
    // counters read around it): a match keeps the model's evicted state.
    if !findings.is_empty()
        && let Some((evicted, eviction)) = eviction::alternative(model, frame, &expected, flows)
    {
        let evicted_deltas = deltas_of(&evicted);
        let evicted_findings = lb::judge(&evicted, run, &evicted_deltas, gue_port);
        if evicted_findings.is_empty() {
            let judged = Judged {
                deltas: evicted_deltas,
                findings: evicted_findings,
                evicted_to: Some(evicted.real.unwrap_or(0)),
            };
            return (evicted, judged);
        }
        eviction.undo(model);
    }
    let judged = Judged {
        deltas,
        findings,
        evicted_to: None,
    };
    (expected, judged)
}
