//! `dsrlab`: run, check and scaffold scenarios, benchmark the datapath,
//! generate fixtures and inspect captures.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand, ValueEnum};
use dsrlab::{
    bench, datapath,
    formats::{
        self,
        fixture::FixtureSet,
        scenario::{load as scenario_load, model::Mode, scaffold, schema},
    },
    load::{LoadOptions, LoadedProgram},
    reports::{self, pcap_diff},
    runner::scenario::{self as scenario_runner, RunOptions},
};
use dsrlab_abi::decap::Counter;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Parser)]
#[command(version, about = "Testing and verification harness for DSR datapaths")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run scenarios (default: every scenario in scenarios/) and print a
    /// summary; exits 1 if anything failed, 2 if a scenario could not be
    /// read.
    Run {
        /// Scenario files or directories of them.
        #[arg(default_value = "scenarios")]
        paths: Vec<PathBuf>,
        /// Only scenarios whose name contains this.
        #[arg(long)]
        filter: Option<String>,
        /// Only this mode.
        #[arg(long, value_enum)]
        mode: Option<ModeArg>,
        /// Only this packet (1-based over a scenario's traffic).
        #[arg(long)]
        packet: Option<usize>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Write input/expected/actual pcaps of every failing packet here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Check scenario files without running them; every error names
    /// file:line:column.
    Check {
        /// Scenario files or directories of them.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Write a commented scenario to start from.
    New {
        /// The scenario's name (file NAME.yaml).
        name: String,
        /// Directory to write it in.
        #[arg(long, default_value = "scenarios")]
        dir: PathBuf,
    },
    /// Print the JSON Schema of the scenario format.
    Schema,
    /// Measure ns/packet of the decap programs per tunnel kind, next to the
    /// trivial programs of their types.
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
        /// Output format (human or json).
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

#[derive(Clone, Copy, ValueEnum)]
enum ModeArg {
    TestRun,
    Netns,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::TestRun => Self::TestRun,
            ModeArg::Netns => Self::Netns,
        }
    }
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
    /// Compare two captures packet by packet, layer by layer; exits 1 if
    /// they differ.
    Diff {
        /// The expected capture.
        a: PathBuf,
        /// The actual capture.
        b: PathBuf,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Human,
    Json,
    Junit,
}

fn main() -> ExitCode {
    // Like other Unix filters: `dsrlab run | head` ends quietly when the
    // reader goes away, instead of panicking on EPIPE.
    // SAFETY: setting a signal disposition before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
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
        Command::Run {
            paths,
            filter,
            mode,
            packet,
            format,
            out,
        } => {
            let options = RunOptions {
                packet,
                modes: mode.map(|m| vec![m.into()]),
            };
            run_scenarios(&paths, filter.as_deref(), &options, format, out.as_deref())
        }
        Command::Check { paths } => check_scenarios(&paths),
        Command::New { name, dir } => {
            let path = dir.join(format!("{name}.yaml"));
            if path.exists() {
                bail!("{} exists; not overwriting it", path.display());
            }
            std::fs::write(&path, scaffold::scaffold(&name))
                .with_context(|| format!("cannot write {}", path.display()))?;
            println!(
                "wrote {} (check it with `dsrlab check {}`)",
                path.display(),
                path.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema => {
            println!("{}", schema::schema_json());
            Ok(ExitCode::SUCCESS)
        }
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
        Command::Pcap {
            command: PcapCommand::Diff { a, b },
        } => {
            let (text, equal) = pcap_diff::pcap_diff(
                &a.display().to_string(),
                &formats::pcap::read_file(&a)?,
                &b.display().to_string(),
                &formats::pcap::read_file(&b)?,
            );
            print!("{text}");
            Ok(if equal {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

/// Scenario files named by `paths`: files as given, directories' `*.yaml`
/// (sorted).
fn scenario_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("cannot read directory {}", path.display()))?
                .map(|e| e.map(|e| e.path()))
                .collect::<Result<_, _>>()?;
            found.retain(|p| p.extension().is_some_and(|e| e == "yaml"));
            found.sort();
            if found.is_empty() {
                bail!("{} holds no scenario (*.yaml)", path.display());
            }
            files.extend(found);
        } else if path.exists() {
            files.push(path.clone());
        } else {
            bail!("{}: no such file or directory", path.display());
        }
    }
    Ok(files)
}

fn check_scenarios(paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let mut failed = false;
    for file in scenario_files(paths)? {
        match scenario_load::load(&file) {
            Ok(scenario) => println!(
                "{}: ok: {} program(s), {} packet(s), modes {}",
                file.display(),
                scenario.programs.len(),
                scenario.packets.len(),
                scenario
                    .modes
                    .iter()
                    .map(|m| m.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

fn run_scenarios(
    paths: &[PathBuf],
    filter: Option<&str>,
    options: &RunOptions,
    format: Format,
    out: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let mut scenarios = Vec::new();
    for file in scenario_files(paths)? {
        let scenario = scenario_load::load(&file)?;
        if filter.is_none_or(|f| scenario.name.contains(f)) {
            scenarios.push(scenario);
        }
    }
    if scenarios.is_empty() {
        bail!("no scenario matches");
    }
    let total: u64 = scenarios
        .iter()
        .map(|s| scenario_runner::planned_runs(s, options))
        .sum();
    // Hidden by indicatif when stderr is not a terminal (CI logs).
    let progress = ProgressBar::new(total).with_style(
        ProgressStyle::with_template("{prefix:>24} [{bar:40}] {pos}/{len} packets {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let mut reports = Vec::new();
    let mut written = Vec::new();
    for scenario in &scenarios {
        progress.set_prefix(scenario.name.clone());
        let report = scenario_runner::run(scenario, options, &mut || progress.inc(1));
        if let Some(dir) = out {
            written.extend(
                reports::scenario::write_failure_pcaps(dir, scenario, &report)
                    .with_context(|| format!("cannot write pcaps under {}", dir.display()))?,
            );
        }
        reports.push(report);
    }
    progress.finish_and_clear();
    match format {
        Format::Human => print!("{}", reports::scenario::human(&reports, &written)),
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&reports::scenario::json(&reports))?
        ),
        Format::Junit => println!("{}", reports::scenario::junit(&reports)),
    }
    Ok(if reports.iter().all(|r| r.ok()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
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

fn run_bench(fixtures: &Path, calls: u32, cpu: usize, format: Format) -> anyhow::Result<()> {
    if format == Format::Junit {
        bail!("bench reports figures, not test cases: use --format human or json");
    }
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
        Format::Junit => unreachable!("refused above"),
    }
    Ok(())
}
