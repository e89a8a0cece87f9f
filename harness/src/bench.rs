//! Benchmarks: ns per packet of loaded programs, measured per call.
//!
//! Each case runs the program once per `BPF_PROG_TEST_RUN` call (repeat = 1)
//! because a non-live XDP run with repeat > 1 feeds its own output into the
//! next repetition: a decap would decapsulate its previous result. The
//! figures are medians over many calls, taken on one pinned CPU, always next
//! to the floor (a program that does nothing) measured in the same run.
//! Benchmarks report; they never assert.

use std::time::Instant;

use serde::Serialize;

use crate::{
    load::LoadedProgram,
    testrun::{self, Quirks, RunError},
};

/// One program on one packet.
#[derive(Clone, Debug, Serialize)]
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
    /// Median wall-clock time per syscall as the caller sees it, ns.
    pub wall_ns: u64,
}

/// Runs `packet` through `program` `calls` times and returns the medians.
pub fn measure(
    program: &LoadedProgram,
    case: &str,
    packet: &[u8],
    calls: u32,
) -> Result<Measurement, RunError> {
    let mut kernel = Vec::with_capacity(calls as usize);
    let mut wall = Vec::with_capacity(calls as usize);
    // Warm caches and the program's maps before timing anything.
    for _ in 0..calls.min(1000) {
        testrun::run(program, packet, Quirks::default())?;
    }
    for _ in 0..calls {
        let started = Instant::now();
        let result = testrun::run(program, packet, Quirks::default())?;
        wall.push(started.elapsed().as_nanos() as u64);
        kernel.push(result.kernel_ns);
    }
    let kernel_ns_mean =
        kernel.iter().map(|&n| f64::from(n)).sum::<f64>() / kernel.len().max(1) as f64;
    Ok(Measurement {
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
/// the ratio of the last pairing's program to the first one's (mean kernel
/// ns).
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
        if let (Some(a), Some(b)) = (of(first.program), of(last.program))
            && a.kernel_ns_mean > 0.0
        {
            ratios.push((case, b.kernel_ns_mean / a.kernel_ns_mean));
        }
    }
    if !ratios.is_empty() {
        let _ = writeln!(
            out,
            "\n{} / {} (mean kernel ns per packet):",
            last.program, first.program
        );
        for (case, ratio) in ratios {
            let _ = writeln!(out, "  {case:<20} {ratio:.2}");
        }
    }
    out
}
