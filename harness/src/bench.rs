//! Benchmarks: ns per packet of loaded programs, measured per call.
//!
//! Each case runs the program once per `BPF_PROG_TEST_RUN` call (repeat = 1)
//! because a non-live XDP run with repeat > 1 feeds its own output into the
//! next repetition: a decap would decapsulate its previous result. The
//! figures are medians over many calls, taken on one pinned CPU, always next
//! to the floor (a program that does nothing) measured in the same run.
//! Benchmarks report; they never assert.

pub mod chain;
pub mod live;
pub mod scenario;
pub mod throughput;

use std::time::Instant;

use serde::Serialize;

use crate::{
    datapath,
    formats::packet::{
        LayerSpec, PacketSpec,
        spec::{IcmpSpec, Ipv4Spec, Ipv6Spec, TcpSpec},
    },
    lb::{Lb, LbError, LbSettings, Proto, VipSpec},
    load::LoadedProgram,
    testrun::{self, Quirks, RunError},
};
use dsrlab_abi::lb::Counter;

/// One program on one packet.
#[derive(Clone, Debug)]
pub struct Measurement {
    /// The program's name.
    pub program: String,
    /// What the packet is (e.g. the counter it hits).
    pub case: String,
    /// Number of test-run calls.
    pub calls: u32,
    /// BPF instructions after the kernel's rewrites.
    pub instructions: Option<u32>,
    /// Median kernel-reported run time per call, ns.
    pub kernel_ns: u32,
    /// Mean kernel-reported run time per call, ns: the kernel's clock ticks
    /// in steps of about 10 ns, so the median is quantized while the mean
    /// of many calls resolves finer differences.
    pub kernel_ns_mean: f64,
    /// Standard deviation of the kernel-reported time per call, ns: with
    /// `calls`, what says whether two means differ beyond noise.
    pub kernel_ns_sd: f64,
    /// Median wall-clock time per syscall as the caller sees it, ns.
    pub wall_ns: u64,
}

/// JSON with the statistic in every timing's name (`kernel_ns_median`,
/// `kernel_ns_mean`, `wall_ns_median`), plus `kernel_ns`, the median again
/// under the name `../shared/tools/katran-compare` reads (as it does from
/// Katran's side).
impl Serialize for Measurement {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut m = s.serialize_struct("Measurement", 9)?;
        m.serialize_field("program", &self.program)?;
        m.serialize_field("case", &self.case)?;
        m.serialize_field("calls", &self.calls)?;
        m.serialize_field("instructions", &self.instructions)?;
        m.serialize_field("kernel_ns_median", &self.kernel_ns)?;
        m.serialize_field("kernel_ns_mean", &self.kernel_ns_mean)?;
        m.serialize_field("kernel_ns_sd", &self.kernel_ns_sd)?;
        m.serialize_field("wall_ns_median", &self.wall_ns)?;
        m.serialize_field("kernel_ns", &self.kernel_ns)?;
        m.end()
    }
}

impl Measurement {
    /// The standard error of `self`'s mean minus `floor`'s mean (the two
    /// measured independently), ns.
    pub fn standard_error_above(&self, floor: &Self) -> f64 {
        let var = |m: &Self| m.kernel_ns_sd * m.kernel_ns_sd / f64::from(m.calls.max(1));
        (var(self) + var(floor)).sqrt()
    }
}

/// Runs `packet` through `program` `calls` times and returns the medians.
pub fn measure(
    program: &LoadedProgram,
    case: &str,
    packet: &[u8],
    calls: u32,
) -> Result<Measurement, RunError> {
    measure_cycling(program, case, std::slice::from_ref(&packet), calls)
}

/// Runs `packets[i % packets.len()]` as call `i` (after a warm-up on the
/// same sequence), `calls` times, and returns the medians: a packet that
/// must differ per call (a new flow each time) comes from a pre-built set,
/// so building it is never timed.
pub fn measure_cycling<P: AsRef<[u8]>>(
    program: &LoadedProgram,
    case: &str,
    packets: &[P],
    calls: u32,
) -> Result<Measurement, RunError> {
    let mut kernel = Vec::with_capacity(calls as usize);
    let mut wall = Vec::with_capacity(calls as usize);
    let n = packets.len().max(1);
    // Warm caches and the program's maps before timing anything.
    let warm = calls.min(1000) as usize;
    for packet in packets.iter().cycle().take(warm) {
        testrun::run(program, packet.as_ref(), Quirks::default())?;
    }
    for i in 0..calls as usize {
        let packet = packets[(warm + i) % n].as_ref();
        let started = Instant::now();
        let result = testrun::run(program, packet, Quirks::default())?;
        wall.push(started.elapsed().as_nanos() as u64);
        kernel.push(result.kernel_ns);
    }
    let kernel_ns_mean =
        kernel.iter().map(|&n| f64::from(n)).sum::<f64>() / kernel.len().max(1) as f64;
    let kernel_ns_sd = (kernel
        .iter()
        .map(|&n| (f64::from(n) - kernel_ns_mean).powi(2))
        .sum::<f64>()
        / kernel.len().saturating_sub(1).max(1) as f64)
        .sqrt();
    Ok(Measurement {
        kernel_ns_sd,
        program: program.name().to_owned(),
        case: case.to_owned(),
        calls,
        instructions: program.instructions(),
        kernel_ns_mean,
        kernel_ns: median(&mut kernel),
        wall_ns: median(&mut wall),
    })
}

fn median<T: Ord + Copy + Default>(values: &mut [T]) -> T {
    if values.is_empty() {
        return T::default();
    }
    values.sort_unstable();
    values[values.len() / 2]
}

/// The first CPU the process may run on: where a benchmark runs unless told
/// otherwise, so that it respects a cpuset or `taskset` it was started in.
pub fn first_allowed_cpu() -> std::io::Result<usize> {
    crate::runner::cpu_pin::CpuPin::allowed()?
        .first()
        .copied()
        .ok_or_else(|| std::io::Error::other("the affinity mask is empty"))
}

/// Pins the calling thread to `cpu` so that medians are not mixed across
/// CPUs and per-CPU maps stay on one slot.
pub fn pin_to_cpu(cpu: usize) -> std::io::Result<()> {
    // SAFETY: cpu_set_t is plain data; CPU_SET writes within it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A program measured next to the floor of its program type.
#[derive(Clone, Copy, Debug)]
pub struct Pairing<'a> {
    /// The trivial program of the same type (the floor).
    pub floor: &'a str,
    /// The program under measurement.
    pub program: &'a str,
}

/// A human table: per case each program with its cost above its floor, and
/// (with two pairings or more) the ratio of the last pairing's program to
/// the first one's, each above its own floor (mean kernel ns): what the
/// programs add, not what the hooks' test runs cost.
pub fn table(rows: &[Measurement], pairings: &[Pairing<'_>]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let (Some(first), Some(last)) = (pairings.first(), pairings.last()) else {
        return out;
    };
    let _ = writeln!(
        out,
        "{:<20} {:<10} {:>6} {:>10} {:>8} {:>9} {:>8} {:>10} {:>8}",
        "case", "program", "insns", "kernel ns", "+floor", "mean", "+floor", "wall ns", "+floor"
    );
    let mut cases: Vec<&str> = rows.iter().map(|r| r.case.as_str()).collect();
    cases.dedup();
    let mut ratios = Vec::new();
    for case in cases {
        let of = |program: &str| rows.iter().find(|r| r.case == case && r.program == program);
        for pairing in pairings {
            let (Some(floor), Some(r)) = (of(pairing.floor), of(pairing.program)) else {
                continue;
            };
            for m in [floor, r] {
                let _ = writeln!(
                    out,
                    "{:<20} {:<10} {:>6} {:>10} {:>+8} {:>9.1} {:>+8.1} {:>10} {:>+8}",
                    case,
                    m.program,
                    m.instructions.map_or("?".into(), |n| n.to_string()),
                    m.kernel_ns,
                    i64::from(m.kernel_ns) - i64::from(floor.kernel_ns),
                    m.kernel_ns_mean,
                    m.kernel_ns_mean - floor.kernel_ns_mean,
                    m.wall_ns,
                    m.wall_ns as i64 - floor.wall_ns as i64,
                );
            }
        }
        let above =
            |p: &Pairing<'_>| Some(of(p.program)?.kernel_ns_mean - of(p.floor)?.kernel_ns_mean);
        if let (Some(a), Some(b)) = (above(first), above(last))
            && a > 0.0
        {
            ratios.push((case, b / a));
        }
    }
    if !ratios.is_empty() && pairings.len() > 1 {
        let _ = writeln!(
            out,
            "\n{} ÷ {}, each above its own floor ({} and {}; mean kernel ns per packet):",
            last.program, first.program, last.floor, first.floor
        );
        for (case, ratio) in ratios {
            let _ = writeln!(out, "  {case:<20} {ratio:.2}");
        }
    }
    out
}

/// A budget from DESIGN.md: at most `max_ns` above the floor for a case.
#[derive(Clone, Debug)]
pub struct Target<'a> {
    /// The case.
    pub case: &'a str,
    /// Nanoseconds above the floor allowed.
    pub max_ns: f64,
    /// The cost above the floor (mean kernel ns) in each of several short
    /// runs, measured apart from the main one: the run-to-run spread the
    /// verdict is taken against.
    pub runs: Vec<f64>,
}

/// Where each case stands against its target: the program's cost above the
/// floor (median and mean kernel ns) next to the budget; the verdict is
/// taken on the separate runs' means (see [`verdict_over_runs`]), which
/// resolve below the kernel clock's ≈ 10 ns step.
pub fn against_targets(
    rows: &[Measurement],
    pairing: Pairing<'_>,
    targets: &[Target<'_>],
) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} against its targets (kernel-reported ns above {}):",
        pairing.program, pairing.floor
    );
    let _ = writeln!(
        out,
        "  {:<20} {:>10} {:>10} {:>8} {:>16}  status",
        "case", "median", "mean", "target", "runs"
    );
    for t in targets {
        let of = |program: &str| {
            rows.iter()
                .find(|r| r.case == t.case && r.program == program)
        };
        let (Some(floor), Some(r)) = (of(pairing.floor), of(pairing.program)) else {
            continue;
        };
        let median = i64::from(r.kernel_ns) - i64::from(floor.kernel_ns);
        let mean = r.kernel_ns_mean - floor.kernel_ns_mean;
        let status = if t.runs.is_empty() {
            verdict(mean, t.max_ns, r.standard_error_above(floor))
        } else {
            verdict_over_runs(&t.runs, t.max_ns)
        };
        let (low, high) = range(&t.runs).unwrap_or((mean, mean));
        let _ = writeln!(
            out,
            "  {:<20} {:>+10} {:>+10.1} {:>8} {:>16}  {status}",
            t.case,
            median,
            mean,
            format!("≤{}", t.max_ns),
            format!("{low:+.0}..{high:+.0} ({})", t.runs.len())
        );
    }
    out
}

/// The lowest and highest of `values`.
fn range(values: &[f64]) -> Option<(f64, f64)> {
    let low = values.iter().copied().reduce(f64::min)?;
    let high = values.iter().copied().reduce(f64::max)?;
    Some((low, high))
}

/// Met, missed, or within run-to-run noise of a budget, from the cost
/// measured in several separate runs: met if every run was within budget,
/// missed if none was, and otherwise not a verdict — the budget lies inside
/// the spread the runs themselves show.
pub fn verdict_over_runs(costs: &[f64], budget: f64) -> String {
    let Some((low, high)) = range(costs) else {
        return "not measured".to_owned();
    };
    let n = costs.len();
    if high <= budget {
        format!(
            "met in all {n} runs ({:.0} ns to spare at worst)",
            budget - high
        )
    } else if low > budget {
        format!("missed in all {n} runs (by {:.0} ns at best)", low - budget)
    } else {
        let over = costs.iter().filter(|c| **c > budget).count();
        format!(
            "within run-to-run noise: {low:.1}..{high:.1} ns against {budget}, over in {over} of {n} runs"
        )
    }
}

/// Met, missed, or within noise of a budget: a difference from the budget
/// smaller than two standard errors of the measured cost is noise, not a
/// verdict.
pub fn verdict(cost: f64, budget: f64, standard_error: f64) -> String {
    let noise = 2.0 * standard_error;
    if (cost - budget).abs() < noise {
        format!("within noise ({cost:.1} ns against {budget}, ±{noise:.1} ns)")
    } else if cost <= budget {
        format!("met ({:.0} ns to spare)", budget - cost)
    } else {
        format!("missed by {:.0} ns", cost - budget)
    }
}

/// Checks that one run of `packet` through the decap `program` moves
/// exactly `counter` (by one) of its `DECAP_COUNTERS`: a class is timed
/// only on the path it names.
pub fn decap_check(
    program: &LoadedProgram,
    counter: dsrlab_abi::decap::Counter,
    packet: &[u8],
) -> Result<(), String> {
    use dsrlab_abi::decap::COUNTERS_MAP;
    let read = || {
        program
            .per_cpu_counters(COUNTERS_MAP)
            .map_err(|e| format!("{}: {e}", program.name()))
    };
    let before = read()?;
    testrun::run(program, packet, Quirks::default())
        .map_err(|e| format!("{} on {}: {e}", program.name(), counter.name()))?;
    let moved: Vec<(dsrlab_abi::decap::Counter, i64)> =
        crate::oracles::decap::counter_deltas(&before, &read()?);
    if moved != [(counter, 1)] {
        let shown: Vec<String> = moved
            .iter()
            .map(|(c, n)| format!("{} {n:+}", c.name()))
            .collect();
        return Err(format!(
            "{} on the {} packet moved {}, not {} +1 — the benchmark would measure another path",
            program.name(),
            counter.name(),
            if shown.is_empty() {
                "no counter".to_owned()
            } else {
                shown.join(", ")
            },
            counter.name()
        ));
    }
    Ok(())
}

/// Pre-built SYNs of the new-flow case: more than calls plus warm-up at the
/// default 200 000 calls, so every timed call is a flow never seen before,
/// and more than the connection table holds (65 536 keys: a per-CPU LRU
/// hash's `max_entries` counts keys, shared by all CPUs), so inserts evict
/// as under load.
pub const LB_SYN_FLOWS: usize = 1 << 18;

/// One packet class of `xdp_lb`.
#[derive(Clone, Debug)]
pub struct LbCase {
    /// The case's name in tables.
    pub name: &'static str,
    /// The packets, used in turn (one for a case that repeats a packet).
    pub packets: Vec<Vec<u8>>,
    /// The outcome counter each call must move.
    pub outcome: Counter,
    /// The selection counter it must move, if any.
    pub selection: Option<Counter>,
    /// Nanoseconds above the floor DESIGN.md allows, if it sets a target.
    pub target_ns: Option<f64>,
}

fn lb_frame(v6: bool, src: &str, dst: &str, l4: LayerSpec) -> Vec<u8> {
    let ip = if v6 {
        LayerSpec::Ipv6(Ipv6Spec {
            src: Some(src.parse().expect("valid address")),
            dst: Some(dst.parse().expect("valid address")),
            ..Ipv6Spec::default()
        })
    } else {
        LayerSpec::Ipv4(Ipv4Spec {
            src: Some(src.parse().expect("valid address")),
            dst: Some(dst.parse().expect("valid address")),
            ..Ipv4Spec::default()
        })
    };
    PacketSpec {
        layers: vec![LayerSpec::Eth(Default::default()), ip, l4],
        ..PacketSpec::default()
    }
    .build()
    .expect("benchmark packets build")
}

fn lb_tcp(sport: u16, flags: &str) -> LayerSpec {
    LayerSpec::Tcp(TcpSpec {
        sport: Some(sport),
        dport: Some(80),
        flags: Some(flags.into()),
        ..TcpSpec::default()
    })
}

/// `xdp_lb` loaded with the default settings (ring 65 537), a TCP VIP of
/// each family on port 80 with four reals each, and the packet classes
/// measured: an ACK of an established flow per family (primed once, so
/// every call hits the connection table), a SYN of a new flow each call,
/// traffic to an address with no VIP, and an echo request to a VIP.
pub fn lb_setup() -> Result<(Lb, Vec<LbCase>), LbError> {
    let mut lb = Lb::load(datapath::XDP_LB, LbSettings::default())?;
    for (vip, reals) in [
        (
            "198.18.0.10",
            ["198.18.1.1", "198.18.1.2", "198.18.1.3", "198.18.1.4"],
        ),
        (
            "2001:db8::10",
            [
                "2001:db8:1::1",
                "2001:db8:1::2",
                "2001:db8:1::3",
                "2001:db8:1::4",
            ],
        ),
    ] {
        let spec = VipSpec {
            addr: vip.parse().expect("valid address"),
            port: 80,
            proto: Proto::Tcp,
            flags: 0,
        };
        lb.add_vip(spec)?;
        for real in reals {
            lb.add_real(&spec.vip(), real.parse().expect("valid address"), 1)?;
        }
    }
    let base = u32::from(std::net::Ipv4Addr::new(198, 19, 0, 0));
    let syns = (0..LB_SYN_FLOWS)
        .map(|i| {
            let src = std::net::Ipv4Addr::from(base + (i >> 2) as u32).to_string();
            lb_frame(
                false,
                &src,
                "198.18.0.10",
                lb_tcp(40000 + (i & 3) as u16, "S"),
            )
        })
        .collect();
    let cases = vec![
        LbCase {
            name: "v4 tcp ack lru hit",
            packets: vec![lb_frame(
                false,
                "198.18.2.1",
                "198.18.0.10",
                lb_tcp(40000, "A"),
            )],
            outcome: Counter::Tx,
            selection: Some(Counter::LruHit),
            target_ns: Some(150.0),
        },
        LbCase {
            name: "v4 tcp syn new flow",
            packets: syns,
            outcome: Counter::Tx,
            selection: Some(Counter::LruMiss),
            target_ns: Some(361.0),
        },
        LbCase {
            name: "v6 tcp ack lru hit",
            packets: vec![lb_frame(
                true,
                "2001:db8:2::1",
                "2001:db8::10",
                lb_tcp(40000, "A"),
            )],
            outcome: Counter::Tx,
            selection: Some(Counter::LruHit),
            target_ns: Some(150.0),
        },
        LbCase {
            name: "non-vip pass",
            packets: vec![lb_frame(
                false,
                "198.18.2.1",
                "198.18.0.99",
                lb_tcp(40000, "A"),
            )],
            outcome: Counter::PassNotVip,
            selection: None,
            target_ns: Some(50.0),
        },
        LbCase {
            name: "v4 icmp echo",
            packets: vec![lb_frame(
                false,
                "198.18.2.1",
                "198.18.0.10",
                LayerSpec::Icmp(IcmpSpec::default()),
            )],
            outcome: Counter::IcmpEchoReply,
            selection: None,
            target_ns: None,
        },
    ];
    Ok((lb, cases))
}

/// Primes the connection table with the case's first packet, then checks
/// that one more call moves exactly the case's counters: a benchmark that
/// measured another path than it names would be worse than none.
pub fn lb_prime(lb: &Lb, case: &LbCase) -> Result<(), String> {
    let first = &case.packets[0];
    let run = |packet: &[u8]| {
        testrun::run(lb.program(), packet, Quirks::default())
            .map_err(|e| format!("{}: {e}", case.name))
    };
    run(first)?;
    let before = lb.counters().map_err(|e| e.to_string())?;
    run(case.packets.get(1).unwrap_or(first))?;
    let delta = lb.counters().map_err(|e| e.to_string())?.since(&before);
    let mut want = vec![case.outcome];
    want.extend(case.selection);
    let got: Vec<Counter> = delta.nonzero().into_iter().map(|(c, _)| c).collect();
    want.sort();
    if got != want || delta.nonzero().iter().any(|(_, n)| *n != 1) {
        return Err(format!(
            "{}: one call moved {delta}, not {} — the benchmark would measure another path",
            case.name,
            want.iter()
                .map(|c| format!("{} 1", c.name()))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::verdict;

    #[test]
    fn json_names_each_statistic_and_keeps_the_name_katran_compare_reads() {
        let m = super::Measurement {
            program: "xdp_lb".into(),
            case: "v4 tcp ack lru hit".into(),
            calls: 10,
            instructions: Some(100),
            kernel_ns: 103,
            kernel_ns_mean: 109.5,
            kernel_ns_sd: 2.0,
            wall_ns: 634,
        };
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["kernel_ns_median"], 103);
        assert_eq!(v["kernel_ns"], 103);
        assert_eq!(v["kernel_ns_mean"], 109.5);
        assert_eq!(v["wall_ns_median"], 634);
        assert!(v.get("wall_ns").is_none());
    }

    #[test]
    fn a_budget_inside_the_runs_spread_is_no_verdict() {
        use super::verdict_over_runs;
        assert_eq!(
            verdict_over_runs(&[30.0, 34.0, 31.0], 40.0),
            "met in all 3 runs (6 ns to spare at worst)"
        );
        assert_eq!(
            verdict_over_runs(&[45.0, 43.0], 40.0),
            "missed in all 2 runs (by 3 ns at best)"
        );
        assert_eq!(
            verdict_over_runs(&[38.0, 42.5, 39.0], 40.0),
            "within run-to-run noise: 38.0..42.5 ns against 40, over in 1 of 3 runs"
        );
        assert_eq!(verdict_over_runs(&[], 40.0), "not measured");
    }

    #[test]
    fn a_difference_within_two_standard_errors_is_noise() {
        assert_eq!(verdict(30.0, 40.0, 1.0), "met (10 ns to spare)");
        assert_eq!(verdict(45.0, 40.0, 1.0), "missed by 5 ns");
        assert_eq!(
            verdict(41.0, 40.0, 1.0),
            "within noise (41.0 ns against 40, ±2.0 ns)"
        );
    }
}
