//! `dsrlab`: run fixture suites through the datapath, benchmark it, generate
//! and inspect fixtures.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand, ValueEnum};
use dsrlab::{
    bench, datapath,
    formats::{self, fixture::FixtureSet},
    load::{LoadOptions, LoadedProgram},
    reports, runner,
};
use dsrlab_abi::decap::Counter;

#[derive(Parser)]
#[command(version, about = "Testing and verification harness for DSR datapaths")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the fixture suites through xdp_decap and tc_decap (test-run mode)
    /// and print a summary; exits non-zero if any packet fails.
    Run {
        /// Directory of fixture definitions.
        #[arg(long, default_value = "fixtures")]
        fixtures: PathBuf,
        /// Only fixture sets whose name contains this.
        #[arg(long)]
        filter: Option<String>,
    },
    /// Measure ns/packet of the decap programs per tunnel kind, next to the
    /// XDP_PASS floor.
    Bench {
        /// Directory of fixture definitions (packets are taken from them).
        #[arg(long, default_value = "fixtures")]
        fixtures: PathBuf,
        /// Test-run calls per measurement (repeat = 1 each).
        #[arg(long, default_value_t = 200_000)]
        calls: u32,
        /// CPU to pin the measuring thread to.
        #[arg(long, default_value_t = 0)]
        cpu: usize,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Fixture definitions and their pcaps.
    Fixtures {
        #[command(subcommand)]
        command: FixturesCommand,
    },
    /// Inspect pcap files.
    Pcap {
        #[command(subcommand)]
        command: PcapCommand,
    },
}

#[derive(Subcommand)]
enum FixturesCommand {
    /// Regenerate every pcaps/*.pcap from fixtures/*.yaml.
    Gen {
        /// Directory of fixture definitions.
        #[arg(long, default_value = "fixtures")]
        fixtures: PathBuf,
    },
}

#[derive(Subcommand)]
enum PcapCommand {
    /// Print a layer-by-layer dissection of every packet.
    Show {
        /// The pcap file.
        file: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Human,
    Json,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("dsrlab: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run { fixtures, filter } => run_suites(&fixtures, filter.as_deref()),
        Command::Bench {
            fixtures,
            calls,
            cpu,
            format,
        } => run_bench(&fixtures, calls, cpu, format).map(|()| ExitCode::SUCCESS),
        Command::Fixtures {
            command: FixturesCommand::Gen { fixtures },
        } => {
            let root = repo_root(&fixtures);
            for (pcap, packets) in formats::fixture::generate(&fixtures, &root)? {
                println!("wrote {} ({packets} packets)", pcap.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Pcap {
            command: PcapCommand::Show { file },
        } => {
            for (i, packet) in formats::pcap::read_file(&file)?.iter().enumerate() {
                println!("#{}", i + 1);
                for line in formats::packet::dissect(packet).to_string().lines() {
                    println!("  {line}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The repository root a fixtures directory belongs to (its parent).
fn repo_root(fixtures: &Path) -> PathBuf {
    fixtures
        .canonicalize()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."))
}

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

fn decap_programs() -> anyhow::Result<Vec<LoadedProgram>> {
    [datapath::XDP_DECAP, datapath::TC_DECAP]
        .into_iter()
        .map(|object| {
            LoadedProgram::builtin(object, &LoadOptions::default())
                .with_context(|| format!("cannot load {}", object.program))
        })
        .collect()
}

fn run_suites(fixtures: &Path, filter: Option<&str>) -> anyhow::Result<ExitCode> {
    let sets = fixture_sets(fixtures, filter)?;
    let programs = decap_programs()?;
    let mut reports = Vec::new();
    for set in &sets {
        for program in &programs {
            reports.push(runner::run_decap_suite(
                set,
                program,
                runner::QuirkOverrides::default(),
            )?);
        }
    }
    print!("{}", reports::table::summary(&reports));
    let failed = reports.iter().any(|r| r.failed() > 0);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn run_bench(fixtures: &Path, calls: u32, cpu: usize, format: Format) -> anyhow::Result<()> {
    bench::pin_to_cpu(cpu).with_context(|| format!("cannot pin to CPU {cpu}"))?;
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
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        Format::Human => print!("{}", bench::table(&rows, &pairings)),
    }
    Ok(())
}
