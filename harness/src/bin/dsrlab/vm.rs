//! `dsrlab vm`: a command inside a VM with one of Debian's kernels.

use std::{io::Write as _, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context as _;
use dsrlab::vm::{self, Accel, VmOptions};

/// The repository: the nearest directory above the working directory that
/// holds Cargo.lock (the workspace shared with the guest).
fn workspace() -> anyhow::Result<PathBuf> {
    let cwd = std::env::current_dir().context("cannot read the working directory")?;
    Ok(cwd
        .ancestors()
        .find(|d| d.join("Cargo.lock").is_file())
        .unwrap_or(&cwd)
        .to_path_buf())
}

/// The environment a command keeps in the guest: the toolchain's, CI's
/// and dsrlab's own variables, but never the one that sends commands into
/// a VM (the guest would start another).
fn guest_env() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(k, _)| {
            ["PATH", "HOME", "CI"].contains(&k.as_str())
                || ["DSRLAB_", "RUST_", "CARGO", "INSTA_"]
                    .iter()
                    .any(|p| k.starts_with(p))
        })
        .filter(|(k, _)| k != "DSRLAB_VM_KERNEL")
        // The guest's console is a terminal, whatever reads its output.
        .chain([("TERM".to_owned(), "dumb".to_owned())])
        .collect()
}

/// `vm run`'s options (also the cargo runner's, through it).
#[derive(clap::Args)]
pub(super) struct RunArgs {
    /// The kernel: `6.1`, `6.12` (the newest of that line apt offers),
    /// a release (`6.12.115+deb12-amd64`) or a package name.
    #[arg(long, env = "DSRLAB_VM_KERNEL")]
    pub kernel: String,
    /// Seconds the whole run may take before the guest is killed.
    #[arg(long, default_value_t = 1800)]
    pub timeout: u64,
    /// Guest memory, MiB.
    #[arg(long, default_value_t = 2048)]
    pub memory: u32,
    /// Guest CPUs. One by default: under TCG, QEMU does not order a
    /// guest's code patching across vCPUs, and a 6.12 guest with two
    /// oopsed at the int3 of a text_poke while the kernel re-patched its
    /// XDP dispatcher under traffic (tests/chain_live.rs, ext).
    #[arg(long, default_value_t = 1)]
    pub cpus: u32,
    /// One more kernel command-line argument (repeatable):
    /// `loglevel=7` shows the boot.
    #[arg(long = "kernel-arg", value_name = "ARG")]
    pub kernel_args: Vec<String>,
    /// The command and its arguments.
    #[arg(required = true, last = true)]
    pub command: Vec<String>,
}

pub(super) fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let workspace = workspace()?;
    let cache = workspace.join(".tools/vm");
    vm::reap(&cache);
    let options = VmOptions {
        kernel: args.kernel,
        command: args.command,
        cwd: std::env::current_dir()?,
        env: guest_env(),
        timeout: Duration::from_secs(args.timeout),
        memory_mib: args.memory,
        cpus: args.cpus,
        kernel_args: args.kernel_args,
        workspace,
        cache,
    };
    let mut stdout = std::io::stdout();
    let outcome = vm::run(
        &options,
        &mut |line| {
            let _ = writeln!(stdout, "{line}");
        },
        &mut |notice| eprintln!("dsrlab vm: {notice}"),
    )?;
    eprintln!(
        "dsrlab vm: {} ({}): exit {}; command started after {}, {:.1} s in all",
        outcome.release,
        match &outcome.accel {
            Accel::Kvm => "KVM",
            Accel::Tcg(_) => "TCG",
        },
        outcome.status,
        outcome.to_command.map_or(
            "(never: the guest did not reach it)".to_owned(),
            |d| format!("{:.1} s", d.as_secs_f64())
        ),
        outcome.total.as_secs_f64()
    );
    Ok(ExitCode::from(u8::try_from(outcome.status).unwrap_or(1)))
}

/// `dsrlab vm fetch`: the kernel fetched, so that a later run starts at
/// once.
pub(super) fn fetch(kernel: &str) -> anyhow::Result<ExitCode> {
    let cache = workspace()?.join(".tools/vm");
    let k = vm::kernel::fetch(kernel, &cache)?;
    println!("{} ({}) in {}", k.release, k.package, k.root.display());
    Ok(ExitCode::SUCCESS)
}
