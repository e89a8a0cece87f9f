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
    lb::{LbSettings, fuzz, instance},
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
    /// Measure ns/packet of the decap programs per tunnel kind and of
    /// xdp_lb per packet class, next to the trivial programs of their types.
    Bench {
        /// Which programs: the decap pair, the load balancer, or both.
        #[arg(long, value_enum, default_value_t = BenchPrograms::All)]
        programs: BenchPrograms,
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
    /// Differential fuzzing of a datapath program against its reference
    /// model; exits 1 on a mismatch.
    Fuzz {
        #[command(subcommand)]
        command: FuzzCommand,
    },
    /// A long-lived xdp_lb instance, pinned under /sys/fs/bpf/dsrlab-lb-NAME
    /// with its control-plane state in /run/dsrlab/lb-NAME.json.
    Lb {
        #[command(subcommand)]
        command: LbCommand,
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

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BenchPrograms {
    /// xdp_decap and tc_decap.
    Decap,
    /// xdp_lb.
    Lb,
    /// Both.
    All,
}

#[derive(Subcommand)]
enum FuzzCommand {
    /// xdp_lb against lb::model: random worlds, well-formed and malformed
    /// frames, byte for byte; prints a summary.
    Lb {
        /// Frames to compare (at least: whole cases run).
        #[arg(long, default_value_t = 10_000)]
        count: u64,
        /// Seed of the first case (decimal or 0x hex); case k has seed + k.
        #[arg(long, value_parser = parse_u64, default_value = "0x0d5e1ab0")]
        seed: u64,
        /// Only well-formed traffic (no truncations or byte flips).
        #[arg(long)]
        well_formed_only: bool,
        /// CPU to pin to (the connection table is per CPU).
        #[arg(long, default_value_t = 0)]
        cpu: usize,
        /// On a mismatch, write the case's frames and the failing frame's
        /// input, expected and actual output as pcaps here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum LbCommand {
    /// Load xdp_lb as instance NAME and pin it.
    Load {
        /// Instance name (A-Z a-z 0-9 _ -).
        name: String,
        /// Maglev ring size per VIP (prime).
        #[arg(long, default_value_t = dsrlab_abi::lb::DEFAULT_RING_SIZE)]
        ring_size: u32,
        /// Seed of the flow hash (decimal or 0x hex).
        #[arg(long, value_parser = parse_u32, default_value = "0")]
        seed: u32,
        /// MAC every encapsulated packet is sent to.
        #[arg(long, default_value = "02:00:00:00:00:fe")]
        gateway_mac: String,
        /// Largest IP packet, outer header included, the path carries.
        #[arg(long, default_value_t = 1500)]
        mtu: u32,
        /// UDP destination port of GUE encapsulation.
        #[arg(long, default_value_t = dsrlab_abi::lb::DEFAULT_GUE_PORT)]
        gue_port: u16,
        /// Do not answer ICMP echo requests to VIPs.
        #[arg(long)]
        no_icmp_echo: bool,
        /// Drop packets too big to encapsulate instead of answering them.
        #[arg(long)]
        no_send_too_big: bool,
        /// Outer IPv4 source prefix (first two bytes used).
        #[arg(long, default_value = "198.19.0.0")]
        src_v4_prefix: std::net::Ipv4Addr,
        /// Outer IPv6 source prefix (first twelve bytes used).
        #[arg(long, default_value = "2001:db8:5352::")]
        src_v6_prefix: std::net::Ipv6Addr,
    },
    /// Add or remove a VIP.
    Vip {
        #[command(subcommand)]
        command: LbVipCommand,
    },
    /// Add or remove a real of a VIP.
    Real {
        #[command(subcommand)]
        command: LbRealCommand,
    },
    /// Change a real's weight (0 keeps it provisioned with no ring slots).
    Weight {
        /// Instance name.
        name: String,
        /// The VIP: ADDRESS:PORT/PROTO, e.g. 198.18.0.10:80/tcp.
        vip: String,
        /// The real's address.
        real: std::net::IpAddr,
        /// The new weight.
        weight: u32,
    },
    /// Settings, VIPs, reals, weights and each real's share of the ring.
    Show {
        /// Instance name.
        name: String,
    },
    /// Global, per-VIP and per-real counters.
    Counters {
        /// Instance name.
        name: String,
    },
    /// Run the frames of a pcap through the instance (BPF_PROG_TEST_RUN):
    /// verdicts, and the output frames as a pcap with --out.
    TestRun {
        /// Instance name.
        name: String,
        /// The frames.
        pcap: PathBuf,
        /// Write the output frames here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Instances with pins or state on this machine.
    List,
    /// Remove the instance's pins and state (the pins even without state).
    Unload {
        /// Instance name.
        name: String,
    },
}

#[derive(Subcommand)]
enum LbVipCommand {
    /// Add a VIP (no reals yet: its traffic is dropped until one is added).
    Add {
        /// Instance name.
        name: String,
        /// ADDRESS:PORT/PROTO, e.g. 198.18.0.10:80/tcp or [2001:db8::10]:0/udp.
        vip: String,
        /// Comma-separated: no_sport, no_lru, dport_only, gue.
        #[arg(long, default_value = "")]
        flags: String,
    },
    /// Remove a VIP and release its reals.
    Remove {
        /// Instance name.
        name: String,
        /// The VIP.
        vip: String,
    },
}

#[derive(Subcommand)]
enum LbRealCommand {
    /// Add a real to a VIP.
    Add {
        /// Instance name.
        name: String,
        /// The VIP.
        vip: String,
        /// The real's address.
        real: std::net::IpAddr,
        /// Its weight.
        #[arg(long, default_value_t = 1)]
        weight: u32,
    },
    /// Remove a real from a VIP.
    Remove {
        /// Instance name.
        name: String,
        /// The VIP.
        vip: String,
        /// The real's address.
        real: std::net::IpAddr,
    },
}

fn parse_u64(s: &str) -> Result<u64, String> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    }
    .map_err(|e| format!("`{s}` is not a number (decimal or 0x hex): {e}"))
}

fn parse_u32(s: &str) -> Result<u32, String> {
    parse_u64(s)
        .and_then(|v| u32::try_from(v).map_err(|_| format!("`{s}` does not fit in 32 bits")))
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
            programs,
            fixtures,
            calls,
            cpu,
            format,
        } => run_bench(programs, &fixtures, calls, cpu, format).map(|()| ExitCode::SUCCESS),
        Command::Fuzz {
            command:
                FuzzCommand::Lb {
                    count,
                    seed,
                    well_formed_only,
                    cpu,
                    out,
                },
        } => fuzz_lb(
            &fuzz::FuzzOptions {
                packets: count,
                seed,
                malformed: !well_formed_only,
                cpu,
            },
            out.as_deref(),
        ),
        Command::Lb { command } => lb_command(command),
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

fn run_bench(
    programs: BenchPrograms,
    fixtures: &Path,
    calls: u32,
    cpu: usize,
    format: Format,
) -> anyhow::Result<()> {
    if format == Format::Junit {
        bail!("bench reports figures, not test cases: use --format human or json");
    }
    bench::pin_to_cpu(cpu).with_context(|| format!("cannot pin to CPU {cpu}"))?;
    let mut rows = Vec::new();
    let mut human = String::new();
    if programs != BenchPrograms::Lb {
        let (r, table) = bench_decap(fixtures, calls)?;
        rows.extend(r);
        human.push_str(&table);
    }
    if programs != BenchPrograms::Decap {
        let (r, table) = bench_lb(calls)?;
        if !human.is_empty() {
            human.push('\n');
        }
        rows.extend(r);
        human.push_str(&table);
    }
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        Format::Human => print!("{human}"),
        Format::Junit => unreachable!("refused above"),
    }
    Ok(())
}

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
    let targets: Vec<bench::Target<'_>> = cases
        .iter()
        .filter_map(|c| {
            c.target_ns.map(|max_ns| bench::Target {
                case: c.name,
                max_ns,
            })
        })
        .collect();
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

fn fuzz_lb(options: &fuzz::FuzzOptions, out: Option<&Path>) -> anyhow::Result<ExitCode> {
    let progress = ProgressBar::new(options.packets).with_style(
        ProgressStyle::with_template("xdp_lb vs model [{bar:40}] {pos}/{len} frames {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let report = fuzz::run(options, &mut |p| progress.set_position(p.compared))?;
    progress.finish_and_clear();
    println!("{report}");
    let Some(mismatch) = &report.mismatch else {
        return Ok(ExitCode::SUCCESS);
    };
    if let Some(dir) = out {
        for path in mismatch.write_pcaps(dir)? {
            println!("wrote {}", path.display());
        }
    }
    Ok(ExitCode::FAILURE)
}

fn lb_command(command: LbCommand) -> anyhow::Result<ExitCode> {
    let vip_of = |s: &str| instance::parse_vip(s).map_err(anyhow::Error::msg);
    match command {
        LbCommand::Load {
            name,
            ring_size,
            seed,
            gateway_mac,
            mtu,
            gue_port,
            no_icmp_echo,
            no_send_too_big,
            src_v4_prefix,
            src_v6_prefix,
        } => {
            let settings = LbSettings {
                ring_size,
                hash_seed: seed,
                gateway_mac: instance::parse_mac(&gateway_mac).map_err(anyhow::Error::msg)?,
                mtu,
                gue_port,
                icmp_echo: !no_icmp_echo,
                send_too_big: !no_send_too_big,
                src_v4_prefix,
                src_v6_prefix,
            };
            let loaded = instance::load(&name, settings)?;
            if let Some(m) = &loaded.mounted {
                println!("{m}");
            }
            println!(
                "loaded xdp_lb as instance {name}: program id {}{}, ring size {ring_size}",
                loaded.program_id,
                loaded
                    .instructions
                    .map_or(String::new(), |n| format!(" ({n} insns)")),
            );
            println!("pinned in {}", loaded.paths.pins.display());
            println!("state in {}", loaded.paths.state.display());
        }
        LbCommand::Vip {
            command: LbVipCommand::Add { name, vip, flags },
        } => {
            let vip = vip_of(&vip)?;
            let flags = instance::parse_vip_flags(&flags).map_err(anyhow::Error::msg)?;
            let mut inst = instance::Instance::open(&name)?;
            inst.apply(instance::Op::AddVip {
                vip: vip.to_string(),
                flags,
            })?;
            println!(
                "{name}: added VIP {vip} (#{}), flags {}",
                inst.plane().vip_num(&vip).unwrap_or_default(),
                instance::format_vip_flags(flags)
            );
        }
        LbCommand::Vip {
            command: LbVipCommand::Remove { name, vip },
        } => {
            let vip = vip_of(&vip)?;
            let mut inst = instance::Instance::open(&name)?;
            inst.apply(instance::Op::RemoveVip {
                vip: vip.to_string(),
            })?;
            println!("{name}: removed VIP {vip}");
        }
        LbCommand::Real {
            command:
                LbRealCommand::Add {
                    name,
                    vip,
                    real,
                    weight,
                },
        } => {
            let vip = vip_of(&vip)?;
            let mut inst = instance::Instance::open(&name)?;
            let slots = ring_slots(&inst, &vip, real);
            inst.apply(instance::Op::AddReal {
                vip: vip.to_string(),
                real,
                weight,
            })?;
            println!(
                "{name}: added real {real} (id {}) to VIP {vip} with weight {weight}: {} → {} ring slots",
                inst.plane().real_id(real).unwrap_or_default(),
                slots,
                ring_slots(&inst, &vip, real)
            );
        }
        LbCommand::Real {
            command: LbRealCommand::Remove { name, vip, real },
        } => {
            let vip = vip_of(&vip)?;
            let mut inst = instance::Instance::open(&name)?;
            inst.apply(instance::Op::RemoveReal {
                vip: vip.to_string(),
                real,
            })?;
            println!("{name}: removed real {real} from VIP {vip}");
        }
        LbCommand::Weight {
            name,
            vip,
            real,
            weight,
        } => {
            let vip = vip_of(&vip)?;
            let mut inst = instance::Instance::open(&name)?;
            let slots = ring_slots(&inst, &vip, real);
            inst.apply(instance::Op::SetWeight {
                vip: vip.to_string(),
                real,
                weight,
            })?;
            println!(
                "{name}: real {real} of VIP {vip} now has weight {weight}: {} → {} ring slots",
                slots,
                ring_slots(&inst, &vip, real)
            );
        }
        LbCommand::Show { name } => {
            print!("{}", instance::Instance::open(&name)?.describe()?);
        }
        LbCommand::Counters { name } => {
            print!("{}", instance::Instance::open(&name)?.describe_counters()?);
        }
        LbCommand::TestRun { name, pcap, out } => {
            let frames = formats::pcap::read_file(&pcap)?;
            let inst = instance::Instance::open(&name)?;
            let mut outputs = Vec::new();
            for (i, frame) in frames.iter().enumerate() {
                let (verdict, output) = inst.test_run(frame, i + 1)?;
                println!("#{} {} ({} bytes out)", i + 1, verdict.name(), output.len());
                outputs.push(output);
            }
            if let Some(out) = out {
                formats::pcap::write_file(&out, &outputs)?;
                println!("wrote {}", out.display());
            }
        }
        LbCommand::List => {
            let all = instance::list()?;
            if all.is_empty() {
                println!("no xdp_lb instances");
            }
            for (name, pins, state) in all {
                let what = match (pins, state) {
                    (true, true) => "loaded",
                    (true, false) => "pins without state (dsrlab lb unload removes them)",
                    (false, true) => "state without pins (dsrlab lb unload removes it)",
                    (false, false) => continue,
                };
                println!("{name}: {what}");
            }
        }
        LbCommand::Unload { name } => {
            let gone = instance::unload(&name)?;
            match (&gone.pins, &gone.state) {
                (Some(p), Some(s)) => println!(
                    "{name}: removed the pins in {} and the state {}",
                    p.display(),
                    s.display()
                ),
                (Some(p), None) => println!(
                    "{name}: removed the pins in {} (there was no state file)",
                    p.display()
                ),
                (None, Some(s)) => println!(
                    "{name}: removed the state {} (there were no pins)",
                    s.display()
                ),
                (None, None) => unreachable!("unload fails when there is nothing"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Ring slots of `real` in `vip` as the plane holds them.
fn ring_slots(inst: &instance::Instance, vip: &dsrlab::lb::Vip, real: std::net::IpAddr) -> usize {
    let plane = inst.plane();
    match (plane.ring(vip), plane.real_id(real)) {
        (Some(ring), Some(id)) => ring.iter().filter(|r| **r == id).count(),
        _ => 0,
    }
}
