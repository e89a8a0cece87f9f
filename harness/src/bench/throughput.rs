//! How fast the harness verifies: whole scenarios in test-run mode, as
//! `dsrlab run` runs them (counters per batch, passing packets folded),
//! timed apart from loading the scenario and from setting its programs up
//! (a cost per run, not per packet), with the share of the packets' time
//! spent inside `BPF_PROG_TEST_RUN` — the part no harness can remove.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use crate::{
    formats::scenario::{
        load,
        model::{Contract, Mode},
    },
    runner::scenario::{self as runner, RunOptions},
    testrun,
};

/// One scenario's throughput.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Throughput {
    /// The scenario's name.
    pub scenario: String,
    /// Worker threads asked for (decap runs use them, one per CPU).
    pub workers: usize,
    /// Packets verified (passed or failed; skipped ones not counted).
    pub packets: u64,
    /// Packets that failed, and after-run findings: a throughput of a run
    /// that fails is not a throughput of verification.
    pub failed: u64,
    /// Reading and expanding the scenario (generation, pcaps).
    pub load_seconds: f64,
    /// Setting its programs up: loading, verifying, creating and filling
    /// maps, provisioning the load balancer.
    pub set_up_seconds: f64,
    /// Running and judging the packets, with the after-run checks: the
    /// run less its set-up.
    pub run_seconds: f64,
    /// Packets per second of `run_seconds`: the rate of verification.
    pub packets_per_second: f64,
    /// Packets per second of the whole run, set-up included: what a run of
    /// this many packets takes.
    pub all_in_packets_per_second: f64,
    /// Share of the workers' time (`run_seconds` times the workers) spent
    /// inside `BPF_PROG_TEST_RUN`.
    pub test_run_share: f64,
}

/// Loads and runs the scenario at `path` in test-run mode with `workers`
/// worker threads.
pub fn measure(path: &Path, workers: usize) -> Result<Throughput, String> {
    let started = Instant::now();
    let scenario = load::load(path).map_err(|e| e.to_string())?;
    let load_time = started.elapsed();
    // Only programs of the decap and lb contracts run on several workers.
    let spread = scenario
        .programs
        .iter()
        .all(|p| matches!(p.contract, Some(Contract::Decap | Contract::Lb)));
    let workers = if spread { workers.max(1) } else { 1 };
    let options = RunOptions {
        modes: Some(vec![Mode::TestRun]),
        fold_passing: true,
        workers,
        ..RunOptions::default()
    };
    let (runs_before, in_before) = testrun::time_in_test_runs();
    let set_up_before = runner::time_in_set_up();
    let started = Instant::now();
    let report = runner::run(&scenario, &options, &mut || {});
    let all_in = started.elapsed();
    let set_up = runner::time_in_set_up() - set_up_before;
    let (runs_after, in_after) = testrun::time_in_test_runs();
    let packets = (report.passed() + report.failed()) as u64;
    if runs_after == runs_before {
        return Err(format!(
            "{}: no packet ran in test-run mode (skipped: {})",
            path.display(),
            report.skipped()
        ));
    }
    let seconds = all_in.saturating_sub(set_up).as_secs_f64();
    Ok(Throughput {
        scenario: report.name.clone(),
        workers,
        packets,
        failed: report.failed() as u64,
        load_seconds: load_time.as_secs_f64(),
        set_up_seconds: set_up.as_secs_f64(),
        run_seconds: seconds,
        packets_per_second: packets as f64 / seconds.max(f64::EPSILON),
        all_in_packets_per_second: packets as f64 / all_in.as_secs_f64().max(f64::EPSILON),
        test_run_share: (in_after - in_before).as_secs_f64()
            / (seconds * workers as f64).max(f64::EPSILON),
    })
}

/// The peak resident set size of this process so far (`VmHWM`), if known.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A human table of `rows`.
pub fn table(rows: &[Throughput]) -> String {
    let mut out = format!(
        "{:<20} {:>7} {:>9} {:>7} {:>9} {:>7} {:>10} {:>10} {:>12} {:>15}\n",
        "scenario",
        "workers",
        "packets",
        "load s",
        "set-up s",
        "run s",
        "packets/s",
        "all in/s",
        "in test run",
        "harness ns/pkt"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<20} {:>7} {:>9} {:>7.2} {:>9.3} {:>7.2} {:>10.0} {:>10.0} {:>11.0}% {:>15}\n",
            r.scenario,
            r.workers,
            r.packets,
            r.load_seconds,
            r.set_up_seconds,
            r.run_seconds,
            r.packets_per_second,
            r.all_in_packets_per_second,
            r.test_run_share * 100.0,
            harness_share(r).as_nanos()
        ));
    }
    out
}

/// What a worker spent on a packet besides its test run.
pub fn harness_share(row: &Throughput) -> Duration {
    let per_packet = row.run_seconds * row.workers as f64 / (row.packets.max(1) as f64);
    Duration::from_secs_f64(per_packet * (1.0 - row.test_run_share).max(0.0))
}
