//! A load balancer's run: the program loaded and provisioned through the
//! control plane ([`Lb`]), the thread pinned to one CPU (the connection
//! table `LB_LRU` is per CPU, and a test run updates the running CPU's),
//! and every packet judged against the reference model kept from the same
//! control plane ([`ModelState`]), which sees the same configuration
//! changes (`lb_changes:`) at the same points of the traffic.

mod judge;
mod lanes;

use std::{net::IpAddr, os::fd::AsFd as _, sync::atomic::AtomicUsize};

use judge::{Counting, Judge};
use lanes::{Lane, Segment};

use dsrlab_abi::lb::{COUNTERS_MAP, FlowKey, FlowState, LRU_MAP};

use super::{RunOptions, RunOutcome, after_map_words, after_state, execution};
use crate::{
    formats::scenario::load::{LbChanges, LbOp, LbSetup, LoadedScenario, ResolvedProgram},
    formats::scenario::model::Mode,
    lb::{Lb, LbError, ModelState, Vip, eviction, model::FlowTable},
    oracles::{
        Finding,
        lb::{self, Tally},
    },
    runner::{SuiteError, SuiteReport, cpu_pin::CpuPin, execution::MarkerCost},
};

/// Flows of the connection table listed when it differs from the model's.
const TABLE_DIFF_LIMIT: usize = 10;

/// Loads the program sized for the setup's ring, writes its configuration,
/// provisions VIPs and reals, then the raw `maps:` entries: the setup
/// phase of a load balancer.
pub fn set_up_lb(program: &ResolvedProgram, setup: &LbSetup) -> Result<Lb, String> {
    super::timed_set_up(|| {
        let globals = program.global_options();
        let mut lb = Lb::load_with(setup.settings, &globals, |options| {
            super::load_source(&program.source, options)
        })
        .map_err(|e| e.to_string())?;
        provision_lb(&mut lb, program, setup)?;
        Ok(lb)
    })
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
    // Lanes on several CPUs pin themselves (chosen before this thread is
    // pinned, which they would inherit); one lane runs here, pinned.
    let cpus = super::worker_cpus(scenario, options, mode);
    let pin = if cpus.len() > 1 {
        None
    } else {
        match CpuPin::here() {
            Ok(pin) => Some(pin),
            Err(e) => {
                return RunOutcome::SetupFailed(format!(
                    "cannot pin the run to one CPU (the connection table is per CPU): {e}"
                ));
            }
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
    // (lane CPU, the CPU whose counters it reads: all summed for one lane)
    let placed: Vec<(usize, Option<usize>)> = match &pin {
        Some(pin) => vec![(pin.cpu, None)],
        None => cpus.iter().map(|&cpu| (cpu, Some(cpu))).collect(),
    };
    let mut lanes = Vec::new();
    for &(cpu, counted) in &placed {
        let counting = Counting::start(
            &lb,
            execution.as_ref(),
            (&cost, counted),
            scenario.spec.snapshot,
        );
        match counting {
            Ok(counting) => lanes.push(Lane {
                cpu,
                counted,
                model: lb.model_state(),
                tally: Tally::default(),
                counting,
                log: super::packet_log(scenario, options, false),
            }),
            Err(why) => return RunOutcome::SetupFailed(why.to_string()),
        }
    }
    let flows = AtomicUsize::new(0);
    let gue_port = setup.settings.gue_port;
    let mut changes = scenario.lb_changes.iter().peekable();
    let total = scenario.packets.len();
    let mut start = 0;
    loop {
        while let Some(c) = changes.next_if(|c| c.before <= start) {
            if let Err(why) = change(&mut lb, &mut lanes, c) {
                return RunOutcome::SetupFailed(why);
            }
        }
        let end = changes.peek().map_or(total, |c| c.before.min(total));
        let segment = Segment {
            range: start..end,
            only: options.packet,
        };
        let ran = if lanes.len() == 1 {
            let judge = Judge {
                lb: &lb,
                gue_port,
                cost: &cost,
                cpu: None,
                flows: &flows,
            };
            lanes[0].run(
                &judge,
                execution.as_mut(),
                segment.of(&scenario.packets),
                tick,
            )
        } else {
            lanes::run_parallel(
                &mut lanes,
                (&lb, gue_port, &cost, &flows),
                &scenario.packets,
                &segment,
                tick,
            )
        };
        if let Err(why) = ran {
            return RunOutcome::SetupFailed(why.to_string());
        }
        if end >= total {
            break;
        }
        start = end;
    }
    let mut after: Vec<Finding> = lanes
        .iter_mut()
        .flat_map(|lane| std::mem::take(&mut lane.counting.unexplained))
        .collect();
    if options.packet.is_none() {
        // (the totals of a partial run mean nothing)
        after.extend(after_checks(
            scenario,
            &lb,
            &lanes,
            &cost,
            execution.markers(),
        ));
    }
    let mut lanes = lanes.into_iter();
    let mut log = lanes
        .next()
        .map(|lane| lane.log)
        .expect("one lane at least");
    for lane in lanes {
        log.merge(lane.log);
    }
    after.extend(super::nothing_checked(&log, mode));
    drop(pin);
    let (packets, folded, folded_notes) = log.into_parts();
    RunOutcome::Ran {
        report: SuiteReport {
            fixture: scenario.name.clone(),
            program: lb.program().name().to_owned(),
            kind: lb.program().kind(),
            packets,
            folded,
            folded_notes,
        },
        after,
    }
}

/// Applies a stream's changes to the datapath and to every lane's model,
/// whose connection table stays (the kernel's does too).
fn change(lb: &mut Lb, lanes: &mut [Lane], c: &LbChanges) -> Result<(), String> {
    for op in &c.ops {
        apply(lb, op).map_err(|e| format!("stream `{}`: lb_changes: {e}", c.stream))?;
    }
    for lane in lanes {
        let lru = std::mem::take(&mut lane.model.lru);
        lane.model = ModelState {
            lru,
            ..lb.model_state()
        };
    }
    Ok(())
}

/// `after.counters`, `after.maps`, and the state the model predicts:
/// per-VIP and per-real traffic, and the connection table on `cpu`.
fn after_checks(
    scenario: &LoadedScenario,
    lb: &Lb,
    lanes: &[Lane],
    cost: &MarkerCost,
    markers: u64,
) -> Vec<Finding> {
    let tally = lanes::tally(lanes);
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
    // A statistics entry against the model's tally, or why it was not read.
    let mut judge_stats = |what: String, want, got: Result<_, _>| match got {
        Err(e) => findings.push(Finding::After(format!("{what}: {e}"))),
        Ok(got) => findings.extend(lb::judge_traffic(&what, want, got)),
    };
    let vips: Vec<Vip> = plane.vips().map(|s| s.vip()).collect();
    for vip in &vips {
        let Some(num) = plane.vip_num(vip) else {
            continue;
        };
        let want = tally.vips.get(&num).copied().unwrap_or_default();
        judge_stats(format!("VIP {vip}"), want, lb.vip_stats(vip));
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
        judge_stats(format!("real {real}"), want, lb.real_stats(real));
    }
    // Each lane's CPU's view of the table against that lane's model.
    for lane in lanes {
        match connection_table(lb, lane.cpu) {
            Err(e) => findings.push(Finding::After(format!("connection table: {e}"))),
            Ok((actual, keys)) => {
                let expected: FlowTable = lane
                    .model
                    .lru
                    .iter()
                    .filter(|(_, real)| **real != 0)
                    .map(|(k, r)| (*k, *r))
                    .collect();
                findings.extend(lb::judge_connection_table(
                    lane.cpu,
                    &expected,
                    (&actual, eviction::may_evict(keys)),
                    TABLE_DIFF_LIMIT,
                ));
            }
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
