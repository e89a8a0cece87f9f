//! One packet through a load balancer, judged against the model, with the
//! counters checked per batch of the model's claims or around the packet.

use std::sync::atomic::{AtomicUsize, Ordering};

use dsrlab_abi::lb::{COUNTERS_MAP, Counter as LbCounter};

use crate::{
    formats::scenario::load::ScenarioPacket,
    lb::{Lb, ModelState, control::Counters, eviction},
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
    testrun::RunError,
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
/// around each packet once the connection table may evict (a flow the
/// kernel evicted counts `lru_miss` where the model says `lru_hit`, and
/// only the packet's own counters tell which it was), for snapshots, and
/// for the rest of a run after a batch did not add up.
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
        let exact = counting.exact || eviction::may_evict(flows);
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
        let mut expected = model.process(&packet.bytes);
        if moved.is_none()
            && counting.batch.is_none()
            && !lb::judge(
                &expected,
                &run,
                &lb::expected_deltas(&expected),
                self.gue_port,
            )
            .is_empty()
        {
            // A packet that fails alone in its batch: its counters are
            // read now, and the run reads around each packet from here on.
            moved = Some(self.moved(execution, counting)?);
            counting.exact = true;
        }
        report.lb_counters = match &moved {
            Some(moved) => lb::counter_deltas(&Counters::default(), moved),
            None => lb::expected_deltas(&expected),
        };
        report.findings = lb::judge(&expected, &run, &report.lb_counters, self.gue_port);
        if !report.findings.is_empty()
            && let Some((evicted, eviction)) =
                eviction::alternative(model, &packet.bytes, &expected, flows)
        {
            let findings = lb::judge(&evicted, &run, &report.lb_counters, self.gue_port);
            if findings.is_empty() {
                report.findings = findings;
                report.notes.push(format!(
                    "the kernel's LRU evicted the flow from the full connection table, and it \
                     was selected again from the ring; real {}",
                    evicted.real.unwrap_or(0)
                ));
                expected = evicted;
            } else {
                eviction.undo(model);
            }
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
            let full = counting
                .ledger
                .claim(expected.counters().into_iter().map(|c| c as usize));
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
