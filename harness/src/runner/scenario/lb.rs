//! A load balancer's run: the program loaded and provisioned through the
//! control plane ([`Lb`]), the thread pinned to one CPU (the connection
//! table `LB_LRU` is per CPU, and a test run updates the running CPU's),
//! and every packet judged against the reference model kept from the same
//! control plane ([`ModelState`]), which sees the same configuration
//! changes (`lb_changes:`) at the same points of the traffic.

use std::{collections::HashMap, net::IpAddr};

use aya::maps::PerCpuHashMap;
use dsrlab_abi::lb::{COUNTERS_MAP, FlowKey, FlowState, LRU_MAP};

use super::{RunOptions, RunOutcome, after_map_words, after_state, execution, packet_name};
use crate::{
    formats::scenario::load::{
        LbChanges, LbOp, LbSetup, LoadedScenario, ResolvedProgram, ScenarioPacket,
    },
    formats::scenario::model::Mode,
    lb::{Lb, LbError, ModelState, Vip, control::Counters, eviction},
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
    let mut packets = Vec::new();
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
        match judge.packet(execution.as_mut(), &mut model, &mut tally, i + 1, packet) {
            Ok(report) => packets.push(report),
            Err(why) => return RunOutcome::SetupFailed(why.to_string()),
        }
        tick();
    }
    let mut after = if options.packet.is_some() {
        Vec::new() // the totals of a partial run mean nothing
    } else {
        after_checks(
            scenario,
            &lb,
            &model,
            &tally,
            pin.cpu,
            &cost,
            execution.markers(),
        )
    };
    after.extend(super::nothing_checked(&packets, mode));
    drop(pin);
    RunOutcome::Ran {
        report: SuiteReport {
            fixture: scenario.name.clone(),
            program: lb.program().name().to_owned(),
            kind: lb.program().kind(),
            packets,
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

impl Judge<'_> {
    /// `LB_COUNTERS` summed over CPUs (one batched lookup).
    fn counters(&self) -> Result<Counters, SuiteError> {
        let program = self.lb.program();
        let values = program
            .per_cpu_counters(COUNTERS_MAP)
            .map_err(|e| SuiteError::counters(program, e))?;
        let mut c = Counters::default();
        for (slot, v) in c.0.iter_mut().zip(values) {
            *slot = v;
        }
        Ok(c)
    }

    /// Runs one packet through the datapath and the model and judges it:
    /// the model's verdict, output and counters, then the packet's
    /// `expect:`.
    fn packet(
        &self,
        execution: &mut dyn Execution,
        model: &mut ModelState,
        tally: &mut Tally,
        number: usize,
        packet: &ScenarioPacket,
    ) -> Result<PacketReport, SuiteError> {
        let program = self.lb.program();
        let mut report = PacketReport {
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
        };
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
        let before = self.counters()?;
        let run = execution.run(program, &packet.bytes, packet.quirks)?;
        let mut after = self.counters()?;
        self.cost.remove(0, &mut after.0, 1);
        if let Err(RunError::Unrunnable { .. }) = &run {
            // Neither side saw the packet: the model is not told of it.
            report.skipped = run.err().map(|e| e.to_string());
            return Ok(report);
        }
        let mut expected = model.process(&packet.bytes);
        report.lb_counters = lb::counter_deltas(&before, &after);
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
            let expected: HashMap<FlowKey, u32> = model
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
fn connection_table(lb: &Lb, cpu: usize) -> Result<(HashMap<FlowKey, u32>, usize), String> {
    let map = lb
        .program()
        .map(LRU_MAP)
        .ok_or_else(|| format!("the program has no map {LRU_MAP}"))?;
    let lru = PerCpuHashMap::<_, FlowKey, FlowState>::try_from(map).map_err(|e| e.to_string())?;
    let mut table = HashMap::new();
    let mut keys = 0;
    for item in lru.iter() {
        let (key, values) = item.map_err(|e| e.to_string())?;
        keys += 1;
        if let Some(state) = values.get(cpu)
            && state.real != 0
        {
            table.insert(key, state.real);
        }
    }
    Ok((table, keys))
}
