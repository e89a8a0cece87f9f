//! `dsrlab`: run, check and scaffold scenarios, benchmark the datapath,
//! generate fixtures and inspect captures, drive load-balancer instances.
//!
//! This file holds the command line and dispatches; [`scenarios`] runs and
//! checks scenario files, [`benchmark`] measures, [`lb`] drives pinned
//! `xdp_lb` instances and the fuzzer.

mod bench_live;
mod benchmark;
mod chain;
mod lb;
mod partition;
mod scenarios;
mod vm;

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand, ValueEnum};
use dsrlab::{
    formats::{
        self,
        scenario::{model::Mode, scaffold, schema},
    },
    lb::fuzz,
    reports::{pcap_diff, stored::Policy},
    runner::scenario::RunOptions,
};

use benchmark::run_bench;
use lb::{fuzz_lb, lb_command};
use scenarios::{Selection, check_scenarios, review_snapshots, run_scenarios};

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
        /// Write them as pcapng, each packet with a comment saying what it
        /// is and what became of it.
        #[arg(long, requires = "out")]
        pcapng: bool,
        /// Fail on any skipped packet or run, not only on failures.
        #[arg(long)]
        strict: bool,
        /// Let streams that check nothing (no `expect:`, no contract, no
        /// `after:`) pass instead of failing them.
        #[arg(long)]
        allow_unchecked: bool,
        /// What to do with snapshots (`snapshot: true`) that differ or are
        /// new: write them as .snap.new for `dsrlab review` (the default),
        /// only compare (the default when CI is set), or accept them.
        #[arg(long, value_enum)]
        snapshots: Option<SnapshotArg>,
        /// Run only share k of n of the scenario files (`hash:k/n`, as
        /// `cargo nextest run --partition` takes it): on n CI machines,
        /// machine k runs `--partition hash:k/n` with the same paths, and
        /// the n JUnit reports together cover every scenario once.
        #[arg(long, value_parser = clap::value_parser!(partition::Partition))]
        partition: Option<partition::Partition>,
        /// Test-run decap and lb programs with this many workers, one
        /// pinned per CPU the process may use (flows stay on one worker);
        /// runs that need one CPU use one.
        #[arg(long, default_value_t = 1)]
        workers: usize,
    },
    /// Review pending snapshots (.snap.new) beside scenarios: show each
    /// one's diff from the stored snapshot, and accept or reject them.
    Review {
        /// Scenario files or directories of them (their snapshots/ folder).
        #[arg(default_value = "scenarios")]
        paths: Vec<PathBuf>,
        /// Replace the stored snapshots with the pending ones.
        #[arg(long, conflicts_with = "reject")]
        accept: bool,
        /// Delete the pending snapshots.
        #[arg(long)]
        reject: bool,
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
        /// Which programs: the decap pair, the load balancer, the chainer,
        /// or all of them.
        #[arg(long, value_enum, default_value_t = BenchPrograms::All)]
        programs: BenchPrograms,
        /// Directory of fixture definitions (packets are taken from them).
        #[arg(long, default_value = "fixtures")]
        fixtures: PathBuf,
        /// Test-run calls per measurement (repeat = 1 each).
        #[arg(long, default_value_t = 200_000)]
        calls: u32,
        /// CPU to pin the measuring thread to (default: the first CPU the
        /// process may run on).
        #[arg(long)]
        cpu: Option<usize>,
        /// Output format (human or json).
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Measure the programs of this scenario instead (any program, a
        /// user's object included): per stream, next to the floor of its
        /// hook, every packet checked against the scenario first.
        #[arg(long, conflicts_with = "programs")]
        scenario: Option<PathBuf>,
        /// Measure the harness instead: these scenarios verified in
        /// test-run mode as `dsrlab run` verifies them, in packets/s, with
        /// the share of time spent inside BPF_PROG_TEST_RUN and the peak
        /// memory.
        #[arg(long, num_args = 1.., conflicts_with_all = ["programs", "scenario"])]
        throughput: Vec<PathBuf>,
    },
    /// Measure the live mode: the DSR reference topology up and down (dsrlab
    /// and the equivalent `ip` script), TCP connections/s and UDP
    /// exchanges/s through it, and UDP port allocation next to a service
    /// holding many UDP sockets (shared vs separate namespaces). Needs root.
    BenchLive {
        /// Topology up/down rounds (each: dsrlab, then the ip script).
        #[arg(long, default_value_t = 10)]
        rounds: u32,
        /// Flows per traffic run (TCP, then UDP).
        #[arg(long, default_value_t = 2000)]
        flows: u32,
        /// UDP sockets the first service holds (of a 5000-port ephemeral
        /// range).
        #[arg(long, default_value_t = 4900)]
        held: usize,
        /// Binds to port 0 the second service makes.
        #[arg(long, default_value_t = 2000)]
        binds: usize,
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
    /// A long-lived XDP chain, pinned under
    /// /sys/fs/bpf/dsrlab-pinned-chain-NAME with its state in
    /// /run/dsrlab/chain-NAME.json.
    Chain {
        #[command(subcommand)]
        command: chain::ChainCommand,
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
    /// What the running kernel can do, as the tests and scenarios see it
    /// (probed: programs loaded, test runs made).
    Features,
    /// Commands inside a VM with one of Debian's kernels (QEMU; KVM where
    /// it really works, TCG otherwise).
    Vm {
        #[command(subcommand)]
        command: VmCommand,
    },
}

#[derive(Subcommand)]
enum VmCommand {
    /// Run a command in a guest and exit with its status: the host's `/`
    /// is seen read-only, the repository read-write, at their own paths.
    Run(vm::RunArgs),
    /// Fetch a kernel into .tools/vm without running anything.
    Fetch {
        /// The kernel, as for `vm run`.
        #[arg(long)]
        kernel: String,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BenchPrograms {
    /// xdp_decap and tc_decap.
    Decap,
    /// xdp_lb.
    Lb,
    /// The XDP chainer with 0, 1, 5 and 20 slots, under each backend the
    /// kernel allows.
    Chain,
    /// All of them.
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
        /// Run the capacity case first: three times the connection table's
        /// size in flows, twice, a real re-weighted in between.
        #[arg(long)]
        capacity: bool,
        /// On a mismatch, write the case's frames and the failing frame's
        /// input, expected and actual output as pcaps here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// A pinned instance's test run of a pcap's frames.
#[derive(clap::Args)]
struct TestRunArgs {
    /// Instance name.
    name: String,
    /// The frames.
    pcap: PathBuf,
    /// Write the output frames here.
    #[arg(long)]
    out: Option<PathBuf>,
}

impl TestRunArgs {
    /// Runs each frame through `run` (given its 1-based number), prints
    /// the verdicts and writes the outputs to `--out`.
    fn run(
        &self,
        mut run: impl FnMut(usize, &[u8]) -> anyhow::Result<(dsrlab::verdict::Verdict, Vec<u8>)>,
    ) -> anyhow::Result<()> {
        let frames = dsrlab::formats::pcap::read_file(&self.pcap)?;
        let mut outputs = Vec::new();
        for (i, frame) in frames.iter().enumerate() {
            let (verdict, output) = run(i + 1, frame)?;
            println!("#{} {verdict} ({} bytes out)", i + 1, output.len());
            outputs.push(output);
        }
        if let Some(out) = &self.out {
            dsrlab::formats::pcap::write_file(out, &outputs)?;
            println!("wrote {}", out.display());
        }
        Ok(())
    }
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
        /// Send GUE over IPv6 with a zero UDP checksum (only if every real
        /// accepts it, RFC 6935); computed otherwise.
        #[arg(long)]
        gue_v6_zero_checksum: bool,
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
    TestRun(TestRunArgs),
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
enum SnapshotArg {
    /// Compare only; write nothing.
    Check,
    /// Write what differs as .snap.new for review.
    Pending,
    /// Write what differs over the stored snapshot.
    Accept,
}

impl From<SnapshotArg> for Policy {
    fn from(arg: SnapshotArg) -> Self {
        match arg {
            SnapshotArg::Check => Self::Check,
            SnapshotArg::Pending => Self::Pending,
            SnapshotArg::Accept => Self::Accept,
        }
    }
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
    remove_namespaces_on_termination();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("dsrlab: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// On SIGINT or SIGTERM, removes the network namespaces of this process
/// (live mode) before exiting: their guards will not run, and the next run
/// would otherwise have to reap them.
fn remove_namespaces_on_termination() {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else {
        return; // no handler: the next run's reaper still cleans up
    };
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            for name in dsrlab::live::netns::remove_own() {
                eprintln!("dsrlab: removed network namespace {name}");
            }
            std::process::exit(128 + signal);
        }
    });
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
            pcapng,
            strict,
            allow_unchecked,
            snapshots,
            partition,
            workers,
        } => {
            let options = RunOptions {
                packet,
                modes: mode.map(|m| vec![m.into()]),
                allow_unchecked,
                // Reports name every packet that failed, was skipped or
                // has notes; the others are counted, so that memory does
                // not grow with the traffic.
                fold_passing: true,
                workers,
            };
            let selection = Selection {
                paths: &paths,
                filter: filter.as_deref(),
                partition,
            };
            run_scenarios(
                &selection,
                &options,
                format,
                out.as_deref().map(|dir| (dir, pcapng)),
                strict,
                snapshots.map_or_else(Policy::from_environment, Policy::from),
            )
        }
        Command::Review {
            paths,
            accept,
            reject,
        } => review_snapshots(&paths, accept, reject),
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
            scenario,
            throughput,
        } => {
            if throughput.is_empty() {
                run_bench(programs, &fixtures, calls, cpu, format, scenario.as_deref())
            } else {
                benchmark::run_throughput(&throughput, cpu, format)
            }
        }
        .map(|()| ExitCode::SUCCESS),
        Command::BenchLive {
            rounds,
            flows,
            held,
            binds,
            format,
        } => bench_live::run(&bench_live::Options {
            rounds,
            flows,
            held,
            binds,
            format,
        })
        .map(|()| ExitCode::SUCCESS),
        Command::Fuzz {
            command:
                FuzzCommand::Lb {
                    count,
                    seed,
                    well_formed_only,
                    cpu,
                    capacity,
                    out,
                },
        } => fuzz_lb(
            &fuzz::FuzzOptions {
                packets: count,
                seed,
                malformed: !well_formed_only,
                cpu,
                capacity,
            },
            out.as_deref(),
        ),
        Command::Lb { command } => lb_command(command),
        Command::Chain { command } => chain::chain_command(command),
        Command::Fixtures {
            command: FixturesCommand::Gen { fixtures },
        } => {
            let root = repo_root(&fixtures);
            for (pcap, packets) in formats::fixture::generate(&fixtures, &root)? {
                println!("wrote {} ({packets} packets)", pcap.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Vm {
            command: VmCommand::Run(args),
        } => vm::run(args),
        Command::Vm {
            command: VmCommand::Fetch { kernel },
        } => vm::fetch(&kernel),
        Command::Features => {
            dsrlab::kernel::check_bpf_capabilities()?;
            let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
            println!("kernel {}", release.trim());
            for (name, feature) in dsrlab::kernel::features::Features::get().table() {
                match feature.missing() {
                    None => println!("  {name:<30} yes"),
                    Some(why) => println!("  {name:<30} no: {why}"),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Pcap {
            command: PcapCommand::Show { file },
        } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            // pcapng files keep a comment per packet: shown above it.
            let packets = if bytes.starts_with(&formats::pcapng::MAGIC) {
                formats::pcapng::from_bytes(&bytes, &file)?
            } else {
                formats::pcap::from_bytes(&bytes, &file)?
                    .into_iter()
                    .map(|p| (p, Vec::new()))
                    .collect()
            };
            for (i, (packet, comments)) in packets.iter().enumerate() {
                println!("#{}", i + 1);
                for comment in comments.iter().flat_map(|c| c.lines()) {
                    println!("  # {comment}");
                }
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

/// The repository root a fixtures directory belongs to (its parent).
fn repo_root(fixtures: &Path) -> PathBuf {
    fixtures
        .canonicalize()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."))
}
