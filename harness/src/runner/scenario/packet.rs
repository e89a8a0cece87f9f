//! One packet through a program, judged: its expectations (the decap
//! contract's for a fixture's packet, its `expect:`), with the counters
//! read around it, or checked per batch ([`Ledger`]) where each packet
//! claims its counter in advance.

use std::borrow::Cow;

use dsrlab_abi::decap::{COUNTERS_MAP, Counter};

use super::{
    CounterWatch, Judging,
    ledger::{self, Ledger},
};
use crate::{
    formats::scenario::{load::ScenarioPacket, model::Expect},
    kernel::features::Features,
    load::{LoadedProgram, ProgramKind},
    oracles::{Finding, decap, expect},
    runner::{PacketLog, PacketReport, SuiteError, execution::Execution},
    testrun::{RunError, RunResult},
};

/// A packet's report before it ran: its name, quirks and, if it cannot run
/// this way, why.
pub(super) fn new_report(
    program: &LoadedProgram,
    execution: &dyn Execution,
    number: usize,
    packet: &ScenarioPacket,
) -> PacketReport {
    PacketReport {
        number,
        name: packet_name(packet),
        quirks: packet.quirks,
        skipped: execution.skip_reason(program.kind(), &packet.bytes, packet.quirks),
        run: None,
        counters: Vec::new(),
        lb_counters: Vec::new(),
        slots: Vec::new(),
        findings: Vec::new(),
        notes: Vec::new(),
        counted_instead: None,
    }
}

/// The decap contract's counters (summed over CPUs), or nothing for a
/// program without them.
fn read_counters(
    program: &LoadedProgram,
    counters: bool,
    cpu: Option<usize>,
) -> Result<Vec<u64>, SuiteError> {
    if counters {
        program
            .per_cpu_counters_on(COUNTERS_MAP, cpu)
            .map_err(|e| SuiteError::counters(program, e))
    } else {
        Ok(Vec::new())
    }
}

/// The decap contract's counters (of the judged CPU, or summed) less what
/// every marker frame the execution sent so far added: what the packets
/// alone counted.
fn contract_words(
    program: &LoadedProgram,
    judging: &Judging<'_>,
    execution: &dyn Execution,
) -> Result<Vec<u64>, SuiteError> {
    let mut words = read_counters(program, true, judging.cpu)?;
    judging.cost.remove(0, &mut words, execution.markers());
    Ok(words)
}

/// Runs one packet and judges it: the fixture's expectation (decap
/// contract, for programs implementing it: `counters`), then the packet's
/// `expect:`. `number` is its 1-based position in the run. The counters
/// are read around it.
pub(crate) fn run_packet(
    program: &LoadedProgram,
    execution: &mut dyn Execution,
    judging: &Judging<'_>,
    number: usize,
    packet: &ScenarioPacket,
) -> Result<PacketReport, SuiteError> {
    let mut report = new_report(program, execution, number, packet);
    if report.skipped.is_some() {
        return Ok(report);
    }
    let before = read_counters(program, judging.counters, judging.cpu)?;
    let watched = judging.watch.map(CounterWatch::snapshot);
    let run = execution.run(program, &packet.bytes, packet.quirks)?;
    let mut after = read_counters(program, judging.counters, judging.cpu)?;
    judging.cost.remove(0, &mut after, 1);
    if let Err(RunError::Unrunnable { .. }) = &run {
        report.skipped = run.err().map(|e| e.to_string());
        return Ok(report);
    }
    report.counters = decap::counter_deltas(&before, &after);
    let moved = match (judging.watch, watched) {
        (Some(watch), Some(before)) => Some(watch.moved(&before, &watch.snapshot())),
        _ => None,
    };
    let judgement = PacketJudgement::new(program.kind(), packet, judging.counters);
    judgement.complete(&mut report, packet, run, moved);
    Ok(report)
}

/// What a packet is judged by beside its `expect:` as written: the decap
/// contract's acceptable results for a fixture's packet, and what this
/// kernel makes of a family-changing expectation.
struct PacketJudgement<'p> {
    /// Acceptable results under the decap contract, the primary first;
    /// empty when no fixture expectation binds the program.
    acceptable: Vec<decap::Expected>,
    /// The packet's `expect:`, as a correct program meets it here.
    expect: Option<Cow<'p, Expect>>,
    /// The decap counters are read (the program implements the contract).
    counters: bool,
    notes: Vec<String>,
    counted_instead: Option<(Counter, Counter)>,
}

impl<'p> PacketJudgement<'p> {
    fn new(kind: ProgramKind, packet: &'p ScenarioPacket, counters: bool) -> Self {
        let mut judgement = Self {
            acceptable: Vec::new(),
            expect: packet.expect.as_deref().map(Cow::Borrowed),
            counters,
            notes: Vec::new(),
            counted_instead: None,
        };
        // A fixture's expectations are the decap contract's: they bind
        // programs that implement it, not a user's firewall that merely
        // sees the packets.
        if let Some(fixture) = packet.fixture.as_ref().filter(|_| counters) {
            judgement.acceptable = vec![decap::expected_for(
                fixture,
                packet.expected_output.clone(),
                kind,
                counters,
            )];
            if decap::changes_family(fixture)
                && let Some(why) = family_change_refused(kind)
            {
                judgement.acceptable = vec![decap::refused_family_change(counters)];
                judgement.notes.push(why);
                judgement.counted_instead = Some((fixture.counter, Counter::DropHelperError));
            }
            if packet
                .quirks
                .linear
                .is_some_and(|n| (n as usize) < packet.bytes.len())
            {
                judgement.acceptable.push(decap::untouched_non_linear(
                    &packet.bytes,
                    kind,
                    counters,
                ));
            }
        }
        // The same for an `expect:` naming a family-changing contract
        // counter.
        if let Some(e) = &packet.expect
            && counters
            && packet.fixture.is_none()
            && let Some(counter) = e.counter.as_deref().and_then(Counter::from_name)
            && decap::counts_family_change(counter)
            && let Some(why) = family_change_refused(kind)
        {
            judgement.expect = Some(Cow::Owned(decap::refused_family_change_expect()));
            judgement.notes.push(why);
            judgement.counted_instead = Some((counter, Counter::DropHelperError));
        }
        judgement
    }

    /// The one decap counter the packet must move by exactly one, whichever
    /// acceptable result the program gives: known in advance, so the
    /// packet's counters can be checked in a batch ([`Ledger`]). `None`
    /// when nothing says, or the acceptable results count differently.
    fn claim(&self) -> Option<Counter> {
        if !self.counters {
            return None;
        }
        let from_expect = match self.expect.as_deref().and_then(|e| e.counter.as_deref()) {
            Some(name) => Some(Counter::from_name(name)?),
            None => None,
        };
        let mut from_fixture = self.acceptable.iter().map(|e| e.counter);
        let from_fixture = match from_fixture.next() {
            Some(first) => {
                let first = first?;
                if !from_fixture.all(|c| c == Some(first)) {
                    return None;
                }
                Some(first)
            }
            None => None,
        };
        match (from_fixture, from_expect) {
            (Some(a), Some(b)) if a != b => None,
            (a, b) => a.or(b),
        }
    }

    /// Judges `run`, during which the decap counters moved `report.counters`
    /// and a user's counter arrays `moved`, and completes the report.
    fn complete(
        self,
        report: &mut PacketReport,
        packet: &ScenarioPacket,
        run: Result<RunResult, RunError>,
        moved: Option<Vec<String>>,
    ) {
        if !self.acceptable.is_empty() {
            report
                .findings
                .extend(decap::judge(&self.acceptable, &run, &report.counters));
        }
        match (&run, self.expect.as_deref()) {
            (Ok(result), Some(e)) => report.findings.extend(expect::judge(
                e,
                &packet.bytes,
                packet.expected_output.as_deref(),
                result,
                self.counters.then_some(report.counters.as_slice()),
            )),
            (Err(err), _) if packet.fixture.is_none() || !self.counters => {
                report.findings.push(Finding::RunFailed(err.to_string()));
            }
            _ => {}
        }
        // A wrong verdict says what the packet counted: the contract's
        // counters, or the user's counter arrays.
        // Named only for a finding that shows them (most packets have none).
        let wrong_verdict = report
            .findings
            .iter()
            .any(|f| matches!(f, Finding::VerdictClass { .. }));
        let moved = moved.or_else(|| {
            (self.counters && wrong_verdict).then(|| {
                report
                    .counters
                    .iter()
                    .map(|(c, d)| format!("{} {d:+}", c.name()))
                    .collect()
            })
        });
        for finding in &mut report.findings {
            if let Finding::VerdictClass { moved: slot, .. } = finding {
                slot.clone_from(&moved);
            }
        }
        report.notes.extend(self.notes);
        report.counted_instead = self.counted_instead;
        report.run = Some(run);
    }
}

/// Runs `packets` (1-based numbers with them) through a decap-contract
/// `program`, the counters checked per batch where each packet claims its
/// counter ([`Ledger`]) and read around each packet otherwise; `limit`
/// packets per batch (1: around every packet). The reports go to `log`, in
/// order; returns what packets run a second time added to the counters,
/// and the batches no single packet explains.
pub(crate) fn run_batched<'s>(
    program: &LoadedProgram,
    execution: &mut dyn Execution,
    judging: &Judging<'_>,
    limit: usize,
    packets: impl Iterator<Item = (usize, Cow<'s, ScenarioPacket>)>,
    (log, tick): (&mut PacketLog, &mut dyn FnMut()),
) -> Result<Batched, SuiteError> {
    let mut batch = Batch {
        program,
        judging,
        ledger: Ledger::new(limit, contract_words(program, judging, execution)?),
        pending: Vec::new(),
        log,
        done: Batched::default(),
    };
    for (number, packet) in packets {
        let mut report = new_report(program, execution, number, &packet);
        let judgement = PacketJudgement::new(program.kind(), &packet, true);
        let claim = judgement.claim().filter(|_| limit > 1);
        if report.skipped.is_none() {
            if claim.is_none() {
                batch.settle(execution)?;
            }
            let run = execution.run(program, &packet.bytes, packet.quirks)?;
            let moved = match claim {
                Some(_) => Vec::new(),
                None => batch
                    .ledger
                    .advance(contract_words(program, judging, execution)?),
            };
            if let Err(RunError::Unrunnable { .. }) = &run {
                report.skipped = run.err().map(|e| e.to_string());
            } else {
                report.counters = match claim {
                    Some(counter) => {
                        batch.ledger.claim([counter as usize]);
                        vec![(counter, 1)]
                    }
                    None => decap::counter_deltas(&vec![0; moved.len()], &moved),
                };
                judgement.complete(&mut report, &packet, run, None);
            }
        }
        let claimed = claim.is_some() && report.skipped.is_none();
        batch.pending.push((report, packet, claimed));
        if batch.ledger.pending() >= limit {
            batch.settle(execution)?;
        }
        tick();
    }
    batch.settle(execution)?;
    Ok(batch.done)
}

/// What a batched run's packets run again alone (to find the culprit of a
/// batch that did not add up) moved besides, to be taken off the totals,
/// and the findings no single packet explains.
#[derive(Debug, Default)]
pub(crate) struct Batched {
    pub recounted: Vec<u64>,
    pub unexplained: Vec<Finding>,
}

impl Batched {
    /// Takes in what another worker's batches found.
    pub(crate) fn absorb(&mut self, other: Self) {
        if self.recounted.len() < other.recounted.len() {
            self.recounted.resize(other.recounted.len(), 0);
        }
        for (total, n) in self.recounted.iter_mut().zip(&other.recounted) {
            *total = total.wrapping_add(*n);
        }
        self.unexplained.extend(other.unexplained);
    }
}

/// A batched run in progress: the ledger, the reports of the batch not yet
/// settled (report, packet, whether it claimed its counter), and the
/// settled ones.
struct Batch<'a, 's> {
    program: &'a LoadedProgram,
    judging: &'a Judging<'a>,
    ledger: Ledger,
    pending: Vec<(PacketReport, Cow<'s, ScenarioPacket>, bool)>,
    log: &'a mut PacketLog,
    done: Batched,
}

impl Batch<'_, '_> {
    /// Settles the pending batch: when its counters moved otherwise than
    /// its packets claimed, each claimed packet runs again alone with the
    /// counters read around it, and its report is that run's.
    fn settle(&mut self, execution: &mut dyn Execution) -> Result<(), SuiteError> {
        let (program, judging) = (self.program, self.judging);
        if self.pending.is_empty() {
            return Ok(());
        }
        let now = contract_words(program, judging, execution)?;
        let Err(mismatch) = self.ledger.settle(now) else {
            for (report, packet, _) in self.pending.drain(..) {
                self.log.push(report, &packet);
            }
            return Ok(());
        };
        let first = self.pending[0].0.number;
        let last = self.pending[self.pending.len() - 1].0.number;
        let mut explained = false;
        for (report, packet, claimed) in self.pending.drain(..) {
            if !claimed {
                self.log.push(report, &packet);
                continue;
            }
            let mut alone = run_packet(program, execution, judging, report.number, &packet)?;
            let recounted = &mut self.done.recounted;
            for (counter, delta) in &alone.counters {
                let word = *counter as usize;
                if recounted.len() <= word {
                    recounted.resize(word + 1, 0);
                }
                recounted[word] = recounted[word].wrapping_add(*delta as u64);
            }
            if !alone.findings.is_empty() {
                explained = true;
                alone.notes.push(format!(
                    "run again alone: the counters of packets {first}–{last} together moved \
                     otherwise than their expectations claim"
                ));
            }
            self.log.push(alone, &packet);
        }
        self.ledger
            .advance(contract_words(program, judging, execution)?);
        if !explained {
            let names = Counter::ALL.map(Counter::name);
            self.done.unexplained.push(Finding::After(format!(
                "packets {first}–{last} together moved {}, their expectations claim {}; run \
                 again alone, each counted what it claims (the program's counting depends on \
                 its state)",
                ledger::named(&mismatch.moved, &names),
                ledger::named(&mismatch.claimed, &names)
            )));
        }
        Ok(())
    }
}

/// Why a decap of kind `kind` must refuse a packet whose family it would
/// change, on this kernel: TC programs on kernels before 6.3 cannot set
/// `skb->protocol` (no `BPF_F_ADJ_ROOM_DECAP_L3_*`), and refusing is what a
/// correct decap does there.
fn family_change_refused(kind: ProgramKind) -> Option<String> {
    if kind != ProgramKind::SchedCls {
        return None;
    }
    let why = Features::get().adjust_room_decap_l3.missing()?;
    Some(format!("expected a refusal (a family change): {why}"))
}

/// `stream/name`, or the name alone outside a scenario.
fn packet_name(packet: &ScenarioPacket) -> String {
    if packet.stream.is_empty() {
        return packet.name.clone();
    }
    // Once per packet run: concatenated, not formatted.
    let mut name = String::with_capacity(packet.stream.len() + 1 + packet.name.len());
    name.push_str(&packet.stream);
    name.push('/');
    name.push_str(&packet.name);
    name
}
