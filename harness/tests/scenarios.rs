//! Every file in scenarios/ is a test case: adding a YAML file adds a test,
//! with no Rust change. A scenario passes when every packet of every program
//! passes its oracles and the after-run checks hold; with `snapshot: true`
//! its runs are also compared with insta snapshots (text dissection and
//! output pcap; for a topology, its flows and what became of them),
//! reviewed with `cargo insta review`.

use std::path::PathBuf;

use dsrlab::{
    formats::scenario::load::load,
    reports::{self, snapshot},
    runner::scenario::{self as runner, RunOptions, RunOutcome},
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
    let inputs: Vec<&[u8]> = loaded.packets.iter().map(|p| p.bytes.as_slice()).collect();
    for run in &report.runs {
        if let RunOutcome::Topology(topology) = &run.outcome {
            let name = format!("{}@{}-{}", loaded.name, run.program, run.mode.name());
            insta::assert_snapshot!(name, reports::topology::snapshot(topology));
            continue;
        }
        let RunOutcome::Ran { report: suite, .. } = &run.outcome else {
            continue;
        };
        let name = format!("{}@{}-{}", loaded.name, run.program, run.mode.name());
        insta::assert_snapshot!(name.clone(), snapshot::dissection_of(&inputs, suite));
        insta::assert_binary_snapshot!(
            format!("{name}-output.pcap").as_str(),
            snapshot::output_pcap(suite)
        );
    }
}
