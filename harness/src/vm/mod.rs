//! The kernel matrix: commands — test binaries, `dsrlab run` — inside a VM
//! with one of Debian's kernels, for what the host kernel refuses or lacks
//! (BPF trampolines: EXT, fentry, fexit, LSM; the kernel's tunnel drivers;
//! netkit) and to run the suite on the kernels datapaths meet.
//!
//! [`kernel`] fetches and unpacks the kernel, [`initramfs`] builds the
//! guest's init, [`qemu`] boots it with the host's `/` (read-only) and the
//! workspace (read-write) shared over 9p and runs the command chrooted in
//! the host's filesystem, so host-built binaries run unchanged. Under TCG
//! a run is for function, never for timing the datapath.

pub mod initramfs;
pub mod kernel;
pub mod qemu;

use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

pub use qemu::Accel;

/// What can go wrong; every variant says what and where.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// A host tool is missing or failed to start.
    #[error("{tool}: {why}")]
    Tool {
        /// The tool.
        tool: String,
        /// Why.
        why: String,
    },
    /// The kernel could not be found, fetched or unpacked.
    #[error("kernel {kernel}: {why}")]
    Kernel {
        /// The kernel as named.
        kernel: String,
        /// Why.
        why: String,
    },
    /// The initramfs could not be built.
    #[error("initramfs {}: {why}", .path.display())]
    Initramfs {
        /// Where it was being written.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// The run could not be prepared.
    #[error("{0}")]
    Setup(String),
    /// The guest ran past its deadline and was killed.
    #[error(
        "the guest did not finish within {after:?} and was killed; its kernel said:\n{kernel_log}"
    )]
    Timeout {
        /// The deadline.
        after: Duration,
        /// The kernel's log lines seen.
        kernel_log: String,
    },
    /// QEMU ended without the guest reporting an exit status: the kernel
    /// did not boot, or the init failed before the command.
    #[error(
        "the guest ended without running the command (the kernel did not boot?); QEMU said: {qemu}; the kernel said:\n{kernel_log}"
    )]
    NoStatus {
        /// QEMU's stderr.
        qemu: String,
        /// The kernel's log lines seen.
        kernel_log: String,
    },
}

/// One command to run in a guest.
#[derive(Clone, Debug)]
pub struct VmOptions {
    /// The kernel: `6.1`, `6.12`, a release or a package name.
    pub kernel: String,
    /// The command and its arguments (absolute paths: the guest sees the
    /// host's files at their own paths).
    pub command: Vec<String>,
    /// The directory shared read-write (the repository).
    pub workspace: PathBuf,
    /// Where kernels are cached and runs keep their files (`.tools/vm`).
    pub cache: PathBuf,
    /// The command's working directory.
    pub cwd: PathBuf,
    /// Environment variables given to the command.
    pub env: Vec<(String, String)>,
    /// How long the whole run may take.
    pub timeout: Duration,
    /// Guest memory, MiB.
    pub memory_mib: u32,
    /// Guest CPUs.
    pub cpus: u32,
    /// More kernel command-line arguments (`loglevel=7` to see the boot,
    /// `rdinit=` to boot another init).
    pub kernel_args: Vec<String>,
}

/// What came of a run.
#[derive(Clone, Debug)]
pub struct VmOutcome {
    /// The command's exit status.
    pub status: i32,
    /// The kernel it ran on (`uname -r`).
    pub release: String,
    /// How the guest ran.
    pub accel: Accel,
    /// From QEMU's start to the command's start.
    pub to_command: Option<Duration>,
    /// QEMU's start to its end.
    pub total: Duration,
}

/// Runs `options.command` in a guest; its output goes to `output` line by
/// line. KVM is used where it is real; a KVM guest that does not come up is
/// retried under TCG, with the reason given to `notice`.
pub fn run(
    options: &VmOptions,
    output: &mut dyn FnMut(&str),
    notice: &mut dyn FnMut(&str),
) -> Result<VmOutcome, VmError> {
    let kernel = kernel::fetch(&options.kernel, &options.cache)?;
    let script = write_script(options)?;
    // Built per run beside the script (a few MiB, milliseconds): a cached
    // one would outlive changes to the init it carries.
    let initramfs = script.path.with_file_name("initramfs.cpio");
    initramfs::build(&kernel, &initramfs)?;
    let mut accel = Accel::detect();
    if let Accel::Tcg(why) = &accel {
        notice(&format!("running under TCG: {why}"));
    }
    let image = kernel.image();
    let boot = qemu::Boot {
        image: &image,
        initramfs: &initramfs,
        workspace: &options.workspace,
        script: &script.path,
        memory_mib: options.memory_mib,
        cpus: options.cpus,
        timeout: options.timeout,
        kernel_args: &options.kernel_args,
    };
    let ran = match qemu::run(&boot, &accel, output) {
        Err(VmError::NoStatus { qemu, .. }) if accel == Accel::Kvm => {
            let why = format!("a KVM guest did not come up ({qemu})");
            notice(&format!("running under TCG: {why}"));
            accel = Accel::Tcg(why);
            qemu::run(&boot, &accel, output)?
        }
        other => other?,
    };
    Ok(VmOutcome {
        status: ran.status.unwrap_or(125),
        release: kernel.release,
        accel,
        to_command: ran.to_command,
        total: ran.total,
    })
}

/// The guest's script: the working directory, the environment, the
/// command; in a directory of its own under the cache, removed after the
/// run.
fn write_script(options: &VmOptions) -> Result<qemu::Script, VmError> {
    static RUNS: AtomicU32 = AtomicU32::new(0);
    if options.command.is_empty() {
        return Err(VmError::Setup("no command to run in the guest".into()));
    }
    let dir = options.cache.join("runs").join(format!(
        "{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    ));
    fs::create_dir_all(&dir)
        .map_err(|e| VmError::Setup(format!("cannot create {}: {e}", dir.display())))?;
    let script = qemu::Script {
        path: dir.join("run.sh"),
    };
    let mut text = String::from("#!/bin/sh\n");
    let _ = writeln!(
        text,
        "cd {} || exit 126",
        quote(&options.cwd.to_string_lossy())
    );
    for (key, value) in &options.env {
        let _ = writeln!(text, "export {key}={}", quote(value));
    }
    let argv: Vec<String> = options.command.iter().map(|a| quote(a)).collect();
    let _ = writeln!(text, "exec {}", argv.join(" "));
    fs::write(&script.path, text)
        .map_err(|e| VmError::Setup(format!("cannot write {}: {e}", script.path.display())))?;
    Ok(script)
}

/// `'it'\''s'`: a shell word whatever it holds.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Removes the scripts of runs whose process is gone (a run killed with
/// SIGKILL cannot remove its own).
pub fn reap(cache: &Path) {
    let Ok(entries) = fs::read_dir(cache.join("runs")) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name.split('-').next().and_then(|p| p.parse::<i32>().ok());
        // SAFETY: kill with signal 0 only checks that the process exists.
        let alive = pid.is_some_and(|p| unsafe { libc::kill(p, 0) } == 0);
        if !alive {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_for_the_shell() {
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
