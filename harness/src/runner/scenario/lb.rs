//! A load balancer's run: the program loaded and provisioned through the
//! control plane ([`Lb`]), the thread pinned to one CPU (the connection
//! table `LB_LRU` is per CPU, and a test run updates the running CPU's),
//! and every packet judged against the reference model kept from the same
//! control plane ([`ModelState`]), which sees the same configuration
//! changes (`lb_changes:`) at the same points of the traffic.

use std::{net::IpAddr, os::fd::AsFd as _};

use dsrlab_abi::lb::{COUNTERS_MAP, Counter as LbCounter, FlowKey, FlowState, LRU_MAP};

use super::{
    RunOptions, RunOutcome, after_map_words, after_state, execution,
    ledger::{self, BATCH, Ledger},
    packet::new_report,
};
use crate::{
    formats::scenario::load::{
        LbChanges, LbOp, LbSetup, LoadedScenario, ResolvedProgram, ScenarioPacket,
    },
    formats::scenario::model::Mode,
    lb::{Lb, LbError, ModelState, Vip, control::Counters, eviction, model::FlowTable},
    load::ProgramKind,
    oracles::{
        Finding, expect,
        lb::{self, Tally},
    },
    runner::{
        PacketReport, SuiteError, SuiteReport,
        cpu_pin::CpuPin,
        execution::{Execution, MarkerCost},
    },
    testrun::RunError,
};

/// Flows of the connection table listed when it differs from the model's.
const TABLE_DIFF_LIMIT: usize = 10;

/// Loads the program sized for the setup's ring, writes its configuration,
/// provisions VIPs and reals, then the raw `maps:` entries: the setup
/// phase of a load balancer.
pub fn set_up_lb(program: &ResolvedProgram, setup: &LbSetup) -> Result<Lb, String> {
    let globals = program.global_options();
    let mut lb = Lb::load_with(setup.settings, &globals, |options| {
        super::load_source(&program.source, options)
    })
    .map_err(|e| e.to_string())?;
    provision_lb(&mut lb, program, setup)?;
    Ok(lb)
}

/// Provisions a loaded load balancer: the setup's VIPs and reals, then the
/// raw `maps:` entries of `program`.
pub(super) fn provision_lb(
    lb: &mut Lb,
    program: &ResolvedProgram,
    setup: &LbSetup,
) -> Result<(), String> {
    for (spec, reals) in &setup.vips {
        lb.add_vip(*spec)
            .map_err(|e| format!("VIP {}: {e}", spec.vip()))?;
        for &(real, weight) in reals {
            lb.add_real(&spec.vip(), real, weight)
                .map_err(|e| format!("VIP {}: real {real}: {e}", spec.vip()))?;
        }
    }
    super::fill_maps(lb.program_mut(), program)
}

fn apply(lb: &mut Lb, op: &LbOp) -> Result<(), LbError> {
    match *op {
        LbOp::AddReal { vip, real, weight } => lb.add_real(&vip, real, weight),
        LbOp::RemoveReal { vip, real } => lb.remove_real(&vip, real),
        LbOp::SetWeight { vip, real, weight } => lb.set_weight(&vip, real, weight),
    }
}

/// Runs every packet through the load balancer `program` and judges it
/// against the reference model.
pub fn run(
    scenario: &LoadedScenario,
    program: &ResolvedProgram,
    options: &RunOptions,
    mode: Mode,
    tick: &mut dyn FnMut(),
) -> RunOutcome {
    let default = LbSetup {
        settings: Default::default(),
        vips: Vec::new(),
    };
    let setup = program.lb.as_ref().unwrap_or(&default);
    let pin = match CpuPin::here() {
        Ok(pin) => pin,
        Err(e) => {
            return RunOutcome::SetupFailed(format!(
                "cannot pin the run to one CPU (the connection table is per CPU): {e}"
            ));
        }
    };
    let mut lb = match set_up_lb(program, setup) {
        Ok(lb) => lb,
        Err(why) => return RunOutcome::SetupFailed(why),
    };
    let mut execution = match execution(scenario, lb.program_mut(), mode) {
        Ok(execution) => execution,
        Err(outcome) => return outcome,
    };
    let read = || {
        let program = lb.program();
        let counters = program
            .per_cpu_counters(COUNTERS_MAP)
            .map_err(|e| SuiteError::counters(program, e))?;
        let mut groups = vec![counters];
        groups.extend(after_map_words(scenario, program));
        Ok::<_, SuiteError>(groups)
    };
    let cost = match MarkerCost::measure(execution.as_mut(), read) {
        Ok(cost) => cost,
        Err(why) => return RunOutcome::SetupFailed(why.to_string()),
    };
    let mut model = lb.model_state();
    let mut tally = Tally::default();
    let mut changes = scenario.lb_changes.iter().peekable();
    let gue_port = setup.settings.gue_port;
    let mut log = super::packet_log(scenario, options, false);
    let mut counting = match Counting::start(&lb, execution.as_ref(), &cost, scenario.spec.snapshot)
    {
        Ok(counting) => counting,
        Err(why) => return RunOutcome::SetupFailed(why.to_string()),
    };
    for (i, packet) in scenario.packets.iter().enumerate() {
        while let Some(c) = changes.next_if(|c| c.before <= i) {
            if let Err(why) = change(&mut lb, &mut model, c) {
                return RunOutcome::SetupFailed(why);
            }
        }
        if options.packet.is_some_and(|only| only != i + 1) {
            continue;
        }
        let judge = Judge {
            lb: &lb,
            gue_port,
            cost: &cost,
        };
        let number = i + 1;
        match judge.packet(
            execution.as_mut(),
            &mut model,
            &mut tally,
            &mut counting,
            number,
            &packet,
        ) {
            Ok(report) => log.push(report, &packet),
            Err(why) => return RunOutcome::SetupFailed(why.to_string()),
        }
        tick();
    }
    let judge = Judge {
        lb: &lb,
        gue_port,
        cost: &cost,
    };
    if let Err(why) = judge.settle(execution.as_ref(), &mut counting) {
        return RunOutcome::SetupFailed(why.to_string());
    }
    let mut after = counting.unexplained;
    if options.packet.is_none() {
        // (the totals of a partial run mean nothing)
        after.extend(after_checks(
            scenario,
            &lb,
            &model,
            &tally,
            pin.cpu,
            &cost,
            execution.markers(),
        ));
    }
    after.extend(super::nothing_checked(&log, mode));
    drop(pin);
    let (packets, folded) = log.into_parts();
    RunOutcome::Ran {
        report: SuiteReport {
            fixture: scenario.name.clone(),
            program: lb.program().name().to_owned(),
            kind: lb.program().kind(),
            packets,
            folded,
        },
        after,
    }
}

/// Applies a stream's changes to the datapath and to the model, whose
/// connection table stays (the kernel's does too).
fn change(lb: &mut Lb, model: &mut ModelState, c: &LbChanges) -> Result<(), String> {
    for op in &c.ops {
        apply(lb, op).map_err(|e| format!("stream `{}`: lb_changes: {e}", c.stream))?;
    }
    let lru = std::mem::take(&mut model.lru);
    *model = ModelState {
        lru,
        ..lb.model_state()
    };
    Ok(())
}

struct Judge<'a> {
    lb: &'a Lb,
    gue_port: u16,
    /// What the execution's own marker frames add to the counters.
    cost: &'a MarkerCost,
}

/// How the run's counters are attributed to packets: per batch, each
/// packet claiming what the model says it counts ([`Ledger`]), or read
/// around each packet once the connection table may evict (a flow the
/// kernel evicted counts `lru_miss` where the model says `lru_hit`, and
/// only the packet's own counters tell which it was), for snapshots, and
/// for the rest of a run after a batch did not add up.
struct Counting {
    ledger: Ledger,
    exact: bool,
    /// The packets of the pending batch, first and last.
    batch: Option<(usize, usize)>,
    /// Batches that did not add up.
    unexplained: Vec<Finding>,
}

impl Counting {
    fn start(
        lb: &Lb,
        execution: &dyn Execution,
        cost: &MarkerCost,
        snapshot: bool,
    ) -> Result<Self, SuiteError> {
        let words = Judge::words(lb, execution, cost)?;
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
    ) -> Result<Vec<u64>, SuiteError> {
        let program = lb.program();
        let mut words = program
            .per_cpu_counters(COUNTERS_MAP)
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
            .advance(Self::words(self.lb, execution, self.cost)?);
        let mut moved = Counters::default();
        for (slot, v) in moved.0.iter_mut().zip(words) {
            *slot = v;
        }
        Ok(moved)
    }

    /// Checks the pending batch's claims; a batch that did not add up is a
    /// finding naming its packets, and the rest of the run reads around
    /// each packet.
    fn settle(&self, execution: &dyn Execution, counting: &mut Counting) -> Result<(), SuiteError> {
        let Some((first, last)) = counting.batch.take() else {
            return Ok(());
        };
        let now = Self::words(self.lb, execution, self.cost)?;
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
    fn packet(
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
        let exact = counting.exact || eviction::may_evict(model.lru.len());
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
                eviction::alternative(model, &packet.bytes, &expected)
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

/// `after.counters`, `after.maps`, and the state the model predicts:
/// per-VIP and per-real traffic, and the connection table on `cpu`.
fn after_checks(
    scenario: &LoadedScenario,
    lb: &Lb,
    model: &ModelState,
    tally: &Tally,
    cpu: usize,
    cost: &MarkerCost,
    markers: u64,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    if !scenario.after_lb_counters.is_empty() {
        match lb.counters() {
            Err(e) => findings.push(Finding::After(e.to_string())),
            Ok(mut totals) => {
                cost.remove(0, &mut totals.0, markers);
                for &(counter, want) in &scenario.after_lb_counters {
                    let actual = totals.get(counter);
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
    findings.extend(after_state(scenario, lb.program(), cost, markers));
    let plane = lb.plane();
    let vips: Vec<Vip> = plane.vips().map(|s| s.vip()).collect();
    for vip in &vips {
        let Some(num) = plane.vip_num(vip) else {
            continue;
        };
        let want = tally.vips.get(&num).copied().unwrap_or_default();
        match lb.vip_stats(vip) {
            Err(e) => findings.push(Finding::After(format!("VIP {vip}: {e}"))),
            Ok(got) => findings.extend(lb::judge_traffic(&format!("VIP {vip}"), want, got)),
        }
    }
    let mut reals: Vec<IpAddr> = vips
        .iter()
        .filter_map(|v| plane.reals_of(v))
        .flat_map(|r| r.keys().copied())
        .collect();
    reals.sort();
    reals.dedup();
    for real in reals {
        let Some(id) = plane.real_id(real) else {
            continue;
        };
        let want = tally.reals.get(&id).copied().unwrap_or_default();
        match lb.real_stats(real) {
            Err(e) => findings.push(Finding::After(format!("real {real}: {e}"))),
            Ok(got) => findings.extend(lb::judge_traffic(&format!("real {real}"), want, got)),
        }
    }
    match connection_table(lb, cpu) {
        Err(e) => findings.push(Finding::After(format!("connection table: {e}"))),
        Ok((actual, keys)) => {
            let expected: FlowTable = model
                .lru
                .iter()
                .filter(|(_, real)| **real != 0)
                .map(|(k, r)| (*k, *r))
                .collect();
            findings.extend(lb::judge_connection_table(
                cpu,
                &expected,
                (&actual, eviction::may_evict(keys)),
                TABLE_DIFF_LIMIT,
            ));
        }
    }
    findings
}

/// `LB_LRU` as `cpu` sees it (entries naming real 0 are as good as absent),
/// and how many keys it holds for all CPUs.
fn connection_table(lb: &Lb, cpu: usize) -> Result<(FlowTable, usize), String> {
    let map = lb
        .program()
        .map(LRU_MAP)
        .ok_or_else(|| format!("the program has no map {LRU_MAP}"))?;
    let (aya::maps::Map::PerCpuLruHashMap(data) | aya::maps::Map::PerCpuHashMap(data)) = map else {
        return Err(format!("{LRU_MAP} is not an LRU per-CPU hash"));
    };
    let entries = crate::maps::dump_per_cpu_hash::<FlowKey, FlowState>(data.fd().as_fd())
        .map_err(|e| format!("cannot read {LRU_MAP}: {e}"))?;
    let keys = entries.len();
    let table = entries
        .into_iter()
        .filter_map(|(key, values)| {
            let state = values.get(cpu)?;
            (state.real != 0).then_some((key, state.real))
        })
        .collect();
    Ok((table, keys))
}
