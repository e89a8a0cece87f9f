//! Running the `dsrlab` binary from the CLI tests.

use std::process::{Command, Output};

/// Runs `dsrlab args…`.
pub fn dsrlab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dsrlab"))
        .args(args)
        .output()
        .expect("run the dsrlab binary")
}

/// Runs `dsrlab args…`, asserts it exits 0 and returns its stdout.
pub fn ok(args: &[&str]) -> String {
    let out = dsrlab(args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "dsrlab {} exited {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        args.join(" "),
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs `dsrlab args…`, asserts it exits 2 and returns its stderr.
pub fn fails(args: &[&str]) -> String {
    let out = dsrlab(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(2),
        "dsrlab {} should fail with 2\nstdout:\n{}\nstderr:\n{stderr}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

/// The names in `dir` that start with `prefix`.
pub fn entries_starting_with(dir: &str, prefix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}
