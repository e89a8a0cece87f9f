//! `dsrlab bench`: the decap programs and the load balancer per packet
//! class, next to the trivial programs of their types.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use dsrlab::{
    bench, datapath,
    formats::fixture::FixtureSet,
    load::{LoadOptions, LoadedProgram},
    runner::cpu_pin::CpuPin,
};
use dsrlab_abi::decap::Counter;

use super::{BenchPrograms, Format};

fn fixture_sets(dir: &Path, filter: Option<&str>) -> anyhow::Result<Vec<FixtureSet>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read fixture directory {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    paths.retain(|p| p.extension().is_some_and(|e| e == "yaml"));
    paths.sort();
    let mut sets = Vec::new();
    for path in paths {
        let set = FixtureSet::from_yaml_file(&path)?;
        if filter.is_none_or(|f| set.name.contains(f)) {
            set.check_pcap()?;
            sets.push(set);
        }
    }
    if sets.is_empty() {
        bail!("no fixture sets in {} match", dir.display());
    }
    Ok(sets)
}

/// Refuses JUnit: a benchmark reports figures, not test cases.
fn figures_only(format: Format) -> anyhow::Result<()> {
    if format == Format::Junit {
        bail!("bench reports figures, not test cases: use --format human or json");
    }
    Ok(())
}

/// Refuses JUnit and pins the process to `cpu`, by default the first it
/// may run on; returns the CPU.
fn pinned(format: Format, cpu: Option<usize>) -> anyhow::Result<usize> {
    figures_only(format)?;
    let cpu = match cpu {
        Some(cpu) => cpu,
        None => bench::first_allowed_cpu().context("cannot read the process's CPU affinity")?,
    };
    bench::pin_to_cpu(cpu).with_context(|| format!("cannot pin to CPU {cpu}"))?;
    Ok(cpu)
}

/// `dsrlab bench --throughput`: each scenario verified in test-run mode,
/// with one worker (pinned to `cpu`, by default the first CPU the process
/// may use) and, where the process may use several CPUs, one worker per CPU.
pub(super) fn run_throughput(
    paths: &[PathBuf],
    cpu: Option<usize>,
    format: Format,
) -> anyhow::Result<()> {
    figures_only(format)?;
    let all = CpuPin::allowed().context("cannot read the process's CPU affinity")?;
    let cpu = cpu
        .or(all.first().copied())
        .context("the process may run on no CPU")?;
    let mut rows = Vec::new();
    for path in paths {
        {
            let _one = CpuPin::to(cpu).with_context(|| format!("cannot pin to CPU {cpu}"))?;
            rows.push(bench::throughput::measure(path, 1).map_err(anyhow::Error::msg)?);
        }
        if all.len() > 1 {
            rows.push(bench::throughput::measure(path, all.len()).map_err(anyhow::Error::msg)?);
        }
    }
    let peak = bench::throughput::peak_rss();
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "cpu": cpu,
                "scenarios": rows,
                "peak_rss_bytes": peak,
            }))?
        ),
        _ => {
            print!("{}", bench::throughput::table(&rows));
            if let Some(peak) = peak {
                println!("peak RSS: {:.0} MB (CPU {cpu})", peak as f64 / 1e6);
            }
        }
    }
    if let Some(failing) = rows.iter().find(|r| r.failed > 0) {
        bail!(
            "{}: {} failures: a run that fails does not measure verification",
            failing.scenario,
            failing.failed
        );
    }
    Ok(())
}

pub(super) fn run_bench(
    programs: BenchPrograms,
    fixtures: &Path,
    calls: u32,
    cpu: Option<usize>,
    format: Format,
    scenario: Option<&Path>,
) -> anyhow::Result<()> {
    pinned(format, cpu)?;
    if let Some(path) = scenario {
        let scenario = dsrlab::formats::scenario::load::load(path)?;
        let cases = bench::scenario::run(&scenario, calls).map_err(anyhow::Error::msg)?;
        match format {
            Format::Json => {
                let rows: Vec<_> = cases
                    .iter()
                    .map(|c| {
                        serde_json::json!({
                            "program": c.program,
                            "stream": c.stream,
                            "measurement": c.timed.as_ref().map(|(m, _)| m),
                            "floor": c.timed.as_ref().map(|(_, f)| f),
                            "not_timed": c.refused,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            }
            _ => print!("{}", bench::scenario::table(&cases)),
        }
        if cases.iter().all(|c| c.timed.is_none()) {
            bail!("no case could be timed (reasons above)");
        }
        return Ok(());
    }
    let mut rows = Vec::new();
    let mut human = String::new();
    let wanted = |p: BenchPrograms| programs == p || programs == BenchPrograms::All;
    let mut add = |(r, table): (Vec<bench::Measurement>, String)| {
        if !human.is_empty() {
            human.push('\n');
        }
        rows.extend(r);
        human.push_str(&table);
    };
    if wanted(BenchPrograms::Decap) {
        add(bench_decap(fixtures, calls)?);
    }
    if wanted(BenchPrograms::Lb) {
        add(bench_lb(calls)?);
    }
    if wanted(BenchPrograms::Chain) {
        add(bench::chain::run(calls).map_err(anyhow::Error::msg)?);
    }
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        Format::Human => print!("{human}"),
        Format::Junit => unreachable!("refused above"),
    }
    Ok(())
}

/// Separate short runs per targeted case, for the run-to-run spread its
/// verdict is taken against.
const SPREAD_RUNS: u32 = 5;

/// xdp_lb per packet class next to xdp_pass, and where it stands against
/// the targets of DESIGN.md.
fn bench_lb(calls: u32) -> anyhow::Result<(Vec<bench::Measurement>, String)> {
    let floor = LoadedProgram::builtin(datapath::XDP_PASS, &LoadOptions::default())?;
    let (lb, cases) = bench::lb_setup().context("setting up xdp_lb")?;
    let mut rows = Vec::new();
    for case in &cases {
        bench::lb_prime(&lb, case).map_err(anyhow::Error::msg)?;
        rows.push(bench::measure_cycling(
            &floor,
            case.name,
            &case.packets,
            calls,
        )?);
        rows.push(bench::measure_cycling(
            lb.program(),
            case.name,
            &case.packets,
            calls,
        )?);
    }
    let pairing = bench::Pairing {
        floor: "xdp_pass",
        program: "xdp_lb",
    };
    // The run-to-run spread: each targeted case again in separate short
    // runs, floor and program interleaved, after the main measurement.
    let mut targets: Vec<bench::Target<'_>> = cases
        .iter()
        .filter_map(|c| {
            c.target_ns.map(|max_ns| bench::Target {
                case: c.name,
                max_ns,
                runs: Vec::new(),
            })
        })
        .collect();
    let short = (calls / SPREAD_RUNS).max(1);
    for _ in 0..SPREAD_RUNS {
        for target in &mut targets {
            let Some(case) = cases.iter().find(|c| c.name == target.case) else {
                continue;
            };
            bench::lb_prime(&lb, case).map_err(anyhow::Error::msg)?;
            let floor = bench::measure_cycling(&floor, case.name, &case.packets, short)?;
            let program = bench::measure_cycling(lb.program(), case.name, &case.packets, short)?;
            target
                .runs
                .push(program.kernel_ns_mean - floor.kernel_ns_mean);
        }
    }
    let mut table = bench::table(&rows, &[pairing]);
    table.push('\n');
    table.push_str(&bench::against_targets(&rows, pairing, &targets));
    Ok((rows, table))
}

/// xdp_decap and tc_decap per tunnel kind next to xdp_pass and tc_pass.
fn bench_decap(fixtures: &Path, calls: u32) -> anyhow::Result<(Vec<bench::Measurement>, String)> {
    let sets = fixture_sets(fixtures, None)?;
    // One packet per decap kind plus a non-tunnel one: the first fixture
    // packet expected to hit that counter, preferring inner TCP.
    let mut cases: Vec<(Counter, Vec<u8>)> = Vec::new();
    let wanted = Counter::ALL
        .into_iter()
        .filter(|c| c.is_decap() || *c == Counter::PassNotTunnel);
    for counter in wanted {
        let candidates: Vec<_> = sets
            .iter()
            .flat_map(|s| &s.packets)
            .filter(|p| p.expect.counter == counter && p.quirks == Default::default())
            .collect();
        let pick = candidates
            .iter()
            .find(|p| p.name.contains("tcp"))
            .or(candidates.first());
        if let Some(p) = pick {
            cases.push((counter, p.bytes.clone()));
        }
    }
    // Each program next to the trivial program of its own type: an skb
    // test run costs more than an XDP one before the program does anything.
    let programs = [
        datapath::XDP_PASS,
        datapath::XDP_DECAP,
        datapath::TC_PASS,
        datapath::TC_DECAP,
    ]
    .into_iter()
    .map(|o| LoadedProgram::builtin(o, &LoadOptions::default()))
    .collect::<Result<Vec<_>, _>>()?;
    // Checked before timed, as the load balancer's classes are.
    for (counter, packet) in &cases {
        for program in programs.iter().filter(|p| p.name().ends_with("decap")) {
            bench::decap_check(program, *counter, packet).map_err(anyhow::Error::msg)?;
        }
    }
    let mut rows = Vec::new();
    for (counter, packet) in &cases {
        for program in &programs {
            rows.push(bench::measure(program, counter.name(), packet, calls)?);
        }
    }
    let pairings = [
        bench::Pairing {
            floor: "xdp_pass",
            program: "xdp_decap",
        },
        bench::Pairing {
            floor: "tc_pass",
            program: "tc_decap",
        },
    ];
    let table = bench::table(&rows, &pairings);
    Ok((rows, table))
}
