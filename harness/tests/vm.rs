//! The VM runner: a command runs in a guest with one of Debian's kernels and
//! its output and exit status come back; a guest past its deadline is
//! killed and leaves nothing behind, as does a kernel that does not boot;
//! a kernel apt does not have is named.
//!
//! Needs qemu-system-x86, busybox-static, kmod and apt (ci/setup installs
//! them; the kernel is fetched on first use into .tools/vm).

use std::{path::PathBuf, time::Duration};

use dsrlab::vm::{self, VmError, VmOptions};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn options(command: &[&str], timeout: Duration) -> VmOptions {
    VmOptions {
        kernel: "6.12".into(),
        command: command.iter().map(|s| (*s).to_owned()).collect(),
        workspace: workspace(),
        cache: workspace().join(".tools/vm"),
        cwd: workspace(),
        env: vec![("DSRLAB_VM_TEST".into(), "it's here".into())],
        timeout,
        memory_mib: 512,
        cpus: 1,
        kernel_args: Vec::new(),
    }
}

/// One guest at a time: two under TCG on CI's two cores would only slow
/// each other, and each test checks what its own run left behind.
static ONE_GUEST: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn run(options: &VmOptions) -> (Result<vm::VmOutcome, VmError>, Vec<String>) {
    let _one = ONE_GUEST
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut lines = Vec::new();
    let result = vm::run(options, &mut |l| lines.push(l.to_owned()), &mut |_| {});
    (result, lines)
}

#[test]
fn a_command_runs_in_the_guest_and_its_status_and_output_come_back() {
    let (outcome, lines) = run(&options(
        &[
            "sh",
            "-c",
            "uname -r; echo \"$DSRLAB_VM_TEST\"; pwd; exit 3",
        ],
        Duration::from_secs(300),
    ));
    let outcome = outcome.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(outcome.status, 3);
    assert!(outcome.release.starts_with("6.12."), "{}", outcome.release);
    assert_eq!(
        lines,
        [
            outcome.release.clone(),
            "it's here".to_owned(),
            workspace().display().to_string()
        ]
    );
    let runs = workspace().join(".tools/vm/runs");
    let left: Vec<_> = std::fs::read_dir(&runs)
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.iter().all(|n| !n
            .to_string_lossy()
            .starts_with(&format!("{}-", std::process::id()))),
        "the run's script is removed: {left:?}"
    );
}

#[test]
fn a_guest_past_its_deadline_is_killed_and_leaves_no_qemu() {
    let (outcome, _) = run(&options(&["sleep", "600"], Duration::from_secs(20)));
    assert!(
        matches!(outcome, Err(VmError::Timeout { .. })),
        "{outcome:?}"
    );
    assert!(our_qemus().is_empty(), "{:?}", our_qemus());
    assert!(our_run_dirs().is_empty(), "{:?}", our_run_dirs());
}

/// QEMU processes of this test process's runs.
fn our_qemus() -> Vec<String> {
    let ours = format!(
        "dsrlab.run={}",
        workspace().join(".tools/vm/runs").display()
    );
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| {
            c.contains("qemu-system")
                && c.contains(&ours)
                && c.contains(&format!("runs/{}-", std::process::id()))
        })
        .collect()
}

/// Run directories (script, initramfs) this test process left.
fn our_run_dirs() -> Vec<PathBuf> {
    std::fs::read_dir(workspace().join(".tools/vm/runs"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(&format!("{}-", std::process::id())))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_kernel_that_does_not_boot_is_named_with_its_log_and_leaves_nothing() {
    // No init where the kernel looks for one: it panics before the
    // command, as a kernel that cannot boot here would.
    let mut o = options(&["true"], Duration::from_secs(120));
    o.kernel_args = vec!["rdinit=/no-such-init".into(), "loglevel=4".into()];
    let (outcome, lines) = run(&o);
    let err = outcome.unwrap_err();
    assert!(matches!(err, VmError::NoStatus { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with("the guest ended without running the command"),
        "{text}"
    );
    assert!(
        text.contains("Kernel panic"),
        "the kernel's own words: {text}"
    );
    assert!(lines.is_empty(), "no command output: {lines:?}");
    assert!(our_qemus().is_empty(), "{:?}", our_qemus());
    assert!(our_run_dirs().is_empty(), "{:?}", our_run_dirs());
}

#[test]
fn a_kernel_apt_does_not_have_is_named() {
    let mut o = options(&["true"], Duration::from_secs(60));
    o.kernel = "9.99".into();
    let (outcome, _) = run(&o);
    let err = outcome.unwrap_err().to_string();
    assert!(
        err.starts_with(
            "kernel 9.99: apt knows no linux-image-*-amd64-unsigned package of that line"
        ),
        "{err}"
    );
}
