//! A load balancer's run on several CPUs: one lane per CPU, every packet
//! of a flow in the same lane, each lane with its own model of what its
//! CPU's connection table holds.
//!
//! `LB_LRU` is a per-CPU hash: its keys are shared by all CPUs (so are
//! evictions), each CPU has its own value per key. A lane sees only its
//! flows, so its model is exactly its CPU's view; the lanes' flows together
//! are the table's keys, which decide whether it may evict ([`Judge::flows`]).
//! Configuration changes (`lb_changes:`) are applied between segments of
//! the traffic, all lanes stopped.

use std::{borrow::Cow, ops::Range, sync::atomic::AtomicUsize};

use super::judge::{Counting, Judge};
use crate::{
    formats::scenario::{load::ScenarioPacket, traffic::Traffic},
    lb::{Lb, ModelState},
    oracles::lb::Tally,
    runner::{
        PacketLog, SuiteError,
        cpu_pin::CpuPin,
        execution::{Execution, MarkerCost, TestRun},
        scenario::worker_of,
    },
};

/// One CPU's share of the run.
pub(super) struct Lane {
    /// The CPU it runs on, whose view of the connection table its model is.
    pub cpu: usize,
    /// The CPU whose counters it reads (`None`: all of them, one lane).
    pub counted: Option<usize>,
    pub model: ModelState,
    pub tally: Tally,
    pub counting: Counting,
    pub log: PacketLog,
}

/// The packets between two configuration changes (0-based positions), or
/// the one packet asked for.
pub(super) struct Segment {
    pub range: Range<usize>,
    pub only: Option<usize>,
}

impl Segment {
    fn holds(&self, position: usize) -> bool {
        self.range.contains(&position) && self.only.is_none_or(|n| n == position + 1)
    }

    /// The segment's packets of `traffic`, numbered from 1.
    pub fn of<'a>(
        &'a self,
        traffic: &'a Traffic,
    ) -> impl Iterator<Item = (usize, Cow<'a, ScenarioPacket>)> + 'a {
        traffic
            .iter()
            .enumerate()
            .skip(self.range.start)
            .take(self.range.len())
            .filter(|(i, _)| self.holds(*i))
            .map(|(i, p)| (i + 1, p))
    }
}

impl Lane {
    /// Runs `packets` (numbered from 1) through the load balancer, then
    /// settles the counters' last batch.
    pub fn run<'s>(
        &mut self,
        judge: &Judge<'_>,
        execution: &mut dyn Execution,
        packets: impl Iterator<Item = (usize, Cow<'s, ScenarioPacket>)>,
        tick: &mut dyn FnMut(),
    ) -> Result<(), SuiteError> {
        for (number, packet) in packets {
            let report = judge.packet(
                execution,
                &mut self.model,
                &mut self.tally,
                &mut self.counting,
                number,
                &packet,
            )?;
            self.log.push(report, &packet);
            tick();
        }
        judge.settle(execution, &mut self.counting)
    }
}

/// Runs `segment` of `traffic` on every lane at once, each on its CPU
/// with its flows, by test runs.
pub(super) fn run_parallel(
    lanes: &mut [Lane],
    (lb, gue_port, cost, flows): (&Lb, u16, &MarkerCost, &AtomicUsize),
    traffic: &Traffic,
    segment: &Segment,
    tick: &mut dyn FnMut(),
) -> Result<(), SuiteError> {
    let count = lanes.len();
    let results: Vec<Result<usize, SuiteError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = lanes
            .iter_mut()
            .enumerate()
            .map(|(w, lane)| {
                scope.spawn(move || {
                    let cpu = lane.cpu;
                    let _pin = CpuPin::to(cpu).map_err(|e| {
                        SuiteError::Unsupported(format!("cannot pin to CPU {cpu}: {e}"))
                    })?;
                    let judge = Judge {
                        lb,
                        gue_port,
                        cost,
                        cpu: lane.counted,
                        flows,
                    };
                    let keep = move |bytes: &[u8]| worker_of(bytes, count) == w;
                    let mine = traffic
                        .select(&keep)
                        .filter(|(i, _)| segment.holds(*i))
                        .map(|(i, p)| (i + 1, p));
                    let mut ran = 0;
                    lane.run(&judge, &mut TestRun, mine, &mut || ran += 1)?;
                    Ok(ran)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a lane panicked"))
            .collect()
    });
    for result in results {
        (0..result?).for_each(|_| tick());
    }
    Ok(())
}

/// What the lanes' models say all the packets added to per-VIP and
/// per-real traffic.
pub(super) fn tally(lanes: &[Lane]) -> Tally {
    let mut total = Tally::default();
    for lane in lanes {
        for (num, t) in &lane.tally.vips {
            let sum = total.vips.entry(*num).or_default();
            sum.packets += t.packets;
            sum.bytes += t.bytes;
        }
        for (id, t) in &lane.tally.reals {
            let sum = total.reals.entry(*id).or_default();
            sum.packets += t.packets;
            sum.bytes += t.bytes;
        }
    }
    total
}
