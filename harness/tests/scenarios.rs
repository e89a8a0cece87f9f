//! Every file in scenarios/ is a test case: adding a YAML file adds a test,
//! with no Rust change. A scenario passes when every packet of every program
//! passes its oracles and the after-run checks hold; with `snapshot: true`
//! its runs are also compared with the snapshots stored beside it, in
//! insta's format (text dissection and output pcap; for a topology, its
//! flows and what became of them), reviewed with `dsrlab review` or
//! `cargo insta review`.

use std::path::PathBuf;

use dsrlab::{
    formats::scenario::load::load,
    reports::{
        self,
        stored::{self, Policy},
    },
    runner::scenario::{self as runner, RunOptions},
};
use rstest::rstest;

#[rstest]
fn scenario(#[files("../scenarios/*.yaml")] path: PathBuf) {
    let loaded = load(&path).unwrap_or_else(|e| panic!("{e}"));
    let report = runner::run(&loaded, &RunOptions::default(), &mut || {});
    // What a human would read, also when it passes (skips and their reasons).
    println!(
        "{}",
        reports::scenario::human(std::slice::from_ref(&report), &[])
    );
    assert!(report.ok(), "scenario {} failed (see above)", loaded.name);
    assert!(
        report.passed() > 0,
        "scenario {} ran no packet",
        loaded.name
    );
    if !loaded.spec.snapshot {
        return;
    }
    // The snapshots dsrlab keeps beside the scenario (scenarios/snapshots/):
    // checked only in CI, written as .snap.new for `dsrlab review` or
    // `cargo insta review` elsewhere, accepted with INSTA_UPDATE=always.
    let policy = match std::env::var("INSTA_UPDATE").as_deref() {
        Ok("always") => Policy::Accept,
        Ok("no") => Policy::Check,
        _ => Policy::from_environment(),
    };
    let checked = stored::check(&loaded, &report, policy).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !checked.is_empty(),
        "scenario {} has no snapshot",
        loaded.name
    );
    let failing: Vec<String> = checked
        .iter()
        .filter(|c| c.outcome.fails())
        .map(|c| format!("{}: {:?}", c.path.display(), c.outcome))
        .collect();
    assert!(
        failing.is_empty(),
        "snapshots differ (review with `dsrlab review scenarios`):\n{}",
        failing.join("\n")
    );
}
