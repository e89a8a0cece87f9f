//! QEMU: the accelerator this machine can really use, and one guest run
//! with the host's `/` and the workspace shared over 9p, its serial console
//! read line by line, a deadline, and no QEMU left behind whatever happens.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use super::{
    VmError,
    initramfs::{EXIT_MARKER, START_MARKER},
};

/// How the guest's CPU runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualisation.
    Kvm,
    /// QEMU's emulator, with why KVM is not used.
    Tcg(String),
}

impl Accel {
    /// KVM when `/dev/kvm` is real and usable, else TCG with the reason.
    /// `/dev/kvm` of a PVM host (`kvm_pvm` loaded) opens and answers, but
    /// cannot boot ordinary kernels: tools that trust it break there.
    pub fn detect() -> Self {
        if Path::new("/sys/module/kvm_pvm").exists() {
            return Self::Tcg(
                "/dev/kvm is a PVM device (kvm_pvm), which cannot boot ordinary kernels".into(),
            );
        }
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
        {
            Ok(_) => Self::Kvm,
            Err(e) => Self::Tcg(format!("/dev/kvm is not usable: {e}")),
        }
    }

    fn args(&self) -> [&'static str; 4] {
        match self {
            Self::Kvm => ["-accel", "kvm", "-cpu", "host"],
            Self::Tcg(_) => ["-accel", "tcg,thread=multi", "-cpu", "max"],
        }
    }
}

/// What a guest run needs.
pub struct Boot<'a> {
    /// The kernel image.
    pub image: &'a Path,
    /// The initramfs.
    pub initramfs: &'a Path,
    /// Shared read-write at its own path.
    pub workspace: &'a Path,
    /// The script the guest runs (in the workspace).
    pub script: &'a Path,
    /// Guest memory, MiB.
    pub memory_mib: u32,
    /// Guest CPUs.
    pub cpus: u32,
    /// How long the whole run may take.
    pub timeout: Duration,
    /// More kernel command-line arguments.
    pub kernel_args: &'a [String],
}

/// What came of a guest run.
#[derive(Clone, Debug)]
pub struct Ran {
    /// The command's exit status; `None` if the guest never reported one.
    pub status: Option<i32>,
    /// From QEMU's start to the guest's start marker.
    pub to_command: Option<Duration>,
    /// The whole run.
    pub total: Duration,
    /// The kernel's own log lines (shown when the run fails).
    pub kernel_log: Vec<String>,
}

/// A QEMU process killed and reaped when dropped.
struct Guest(Child);

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Boots and runs the guest; every line of the command's output goes to
/// `output` as it comes.
pub fn run(boot: &Boot<'_>, accel: &Accel, output: &mut dyn FnMut(&str)) -> Result<Ran, VmError> {
    for path in [boot.workspace, boot.script] {
        if path.to_string_lossy().contains(char::is_whitespace) {
            return Err(VmError::Setup(format!(
                "{} has white space, which the kernel command line cannot carry",
                path.display()
            )));
        }
    }
    let mut append = format!(
        "console=ttyS0 panic=-1 quiet dsrlab.workspace={} dsrlab.run={}",
        boot.workspace.display(),
        boot.script.display()
    );
    for arg in boot.kernel_args {
        append.push(' ');
        append.push_str(arg);
    }
    let started = Instant::now();
    let mut command = Command::new("qemu-system-x86_64");
    command
        .args(accel.args())
        .args(["-m", &boot.memory_mib.to_string()])
        .args(["-smp", &boot.cpus.to_string()])
        .args(["-display", "none", "-monitor", "none", "-serial", "stdio"])
        .args(["-no-reboot", "-nodefaults"])
        .args(["-device", "virtio-rng-pci"])
        .arg("-kernel")
        .arg(boot.image)
        .arg("-initrd")
        .arg(boot.initramfs)
        .args(["-append", &append])
        .arg("-virtfs")
        .arg("local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap")
        .arg("-virtfs")
        .arg(format!(
            "local,path={},mount_tag=workspace,security_model=none,multidevs=remap",
            boot.workspace.display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|e| VmError::Tool {
        tool: "qemu-system-x86_64".into(),
        why: format!("cannot run it: {e} (ci/setup installs qemu-system-x86)"),
    })?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let guest = Guest(child);
    // The deadline: a watchdog kills QEMU, which ends the output below.
    let pid = guest.0.id();
    let (done, finished) = mpsc::channel::<()>();
    let timeout = boot.timeout;
    let watchdog = std::thread::spawn(move || {
        let expired = finished.recv_timeout(timeout).is_err();
        if expired {
            // SAFETY: kill(2) on our own child, which is not reaped before
            // this thread is joined.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
        }
        expired
    });
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(e) = stderr {
            for line in BufReader::new(e).lines().map_while(Result::ok) {
                text.push_str(&line);
                text.push('\n');
            }
        }
        text
    });
    let mut ran = Ran {
        status: None,
        to_command: None,
        total: Duration::ZERO,
        kernel_log: Vec::new(),
    };
    if let Some(out) = stdout {
        for line in BufReader::new(out).split(b'\n').map_while(Result::ok) {
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches('\r');
            if let Some(status) = line.strip_prefix(EXIT_MARKER) {
                ran.status = status.trim().parse().ok();
            } else if line == START_MARKER {
                ran.to_command = Some(started.elapsed());
            } else if is_kernel_log(line) {
                ran.kernel_log.push(line.to_owned());
            } else {
                output(line);
            }
        }
    }
    drop(guest);
    let _ = done.send(());
    let expired = watchdog.join().unwrap_or(false);
    ran.total = started.elapsed();
    let qemu_errors = errors.join().unwrap_or_default();
    if expired {
        return Err(VmError::Timeout {
            after: timeout,
            kernel_log: ran.kernel_log.join("\n"),
        });
    }
    if ran.status.is_none() {
        return Err(VmError::NoStatus {
            qemu: qemu_errors.trim().to_owned(),
            kernel_log: ran.kernel_log.join("\n"),
        });
    }
    Ok(ran)
}

/// `[    2.754027] reboot: Power down`: printk, not the command.
fn is_kernel_log(line: &str) -> bool {
    let Some(rest) = line.trim_start().strip_prefix('[') else {
        return false;
    };
    rest.split_once(']').is_some_and(|(stamp, _)| {
        let stamp = stamp.trim();
        !stamp.is_empty() && stamp.chars().all(|c| c.is_ascii_digit() || c == '.')
    })
}

/// Where the script of one run goes, and its removal.
pub struct Script {
    /// The file.
    pub path: PathBuf,
}

impl Drop for Script {
    fn drop(&mut self) {
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_log_lines_are_told_from_the_commands() {
        assert!(is_kernel_log("[    2.754027] reboot: Power down"));
        assert!(!is_kernel_log("[SA] flags"));
        assert!(!is_kernel_log("test result: ok"));
    }
}
