//! Chains in scenarios (`chain:`): the runner builds the chain per
//! backend, names the slots each packet went through, holds the slots'
//! counters to `after.slots`, makes `chain_changes:` between packets on
//! behalf of an owner, and refuses a change by anyone else, leaving
//! nothing pinned. Both modes; the ext backend where the kernel has
//! trampolines (the VM stage), with the reason printed elsewhere.
//!
//! Needs root and the datapath objects; says so and skips without them.

use std::{io::Write as _, path::Path};

use dsrlab::{
    datapath,
    formats::scenario::load::{LoadedScenario, load_str},
    kernel::features::Features,
    oracles::Finding,
    runner::scenario::{self as runner, RunOptions, RunOutcome, ScenarioReport},
    verdict::Verdict,
};

fn skip_reason() -> Option<String> {
    if datapath::XDP_CHAIN_TAIL.elf.is_empty() {
        return Some("the chain objects are empty (built with AYA_BUILD_SKIP=1)".into());
    }
    if let Err(e) = dsrlab::kernel::check_bpf_capabilities() {
        return Some(e.to_string());
    }
    None
}

/// One test at a time: they look for this process's pin directories.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

macro_rules! skip_without_kernel {
    ($name:literal) => {
        if let Some(reason) = skip_reason() {
            let _ = writeln!(std::io::stderr(), "skipped {}: {reason}", $name);
            return;
        }
        let _serial = SERIAL
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
    };
}

/// A chain of a firewall (blocking UDP port 23) in slot 2 and a PASS
/// program in slot 5, owned by `sec` and `app`; one stream of UDP to port
/// 23 and one to port 53, `extra` after the traffic.
fn scenario(second_stream: &str, extra: &str) -> LoadedScenario {
    let text = format!(
        "version: 1
programs:
  - label: c
    chain:
      owners: {{sec: [2], app: [5]}}
      slots:
        2:
          object: ../../../../examples/chain-slot/xdp_port_filter.bpf.o
          program: xdp_port_filter
          globals: {{blocked_port: 23}}
        5: {{builtin: xdp_pass}}
modes: [test-run, netns]
traffic:
  - name: telnet
    inline: [{{layers: [eth, ipv4, {{udp: {{dport: 23}}}}]}}]
    expect: {{verdict: XDP_DROP}}
  - name: dns
{second_stream}    inline: [{{layers: [eth, ipv4, {{udp: {{dport: 53}}}}]}}, {{layers: [eth, ipv4, {{udp: {{dport: 53}}}}]}}]
{extra}"
    );
    load_str(&text, Path::new("tests/data/scenarios/t.yaml")).unwrap_or_else(|e| panic!("{e}"))
}

fn run(scenario: &LoadedScenario) -> ScenarioReport {
    runner::run(scenario, &RunOptions::default(), &mut || {})
}

/// This process's chain pin directories.
fn pinned() -> Vec<String> {
    let prefix = format!("dsrlab-chain-{}-", std::process::id());
    let Ok(entries) = std::fs::read_dir("/sys/fs/bpf") else {
        return Vec::new();
    };
    let names = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned());
    names.filter(|n| n.starts_with(&prefix)).collect()
}

/// The runs of `report` that ran; the ext runs are skipped with the
/// kernel's reason where it has no trampolines, and must run where it has.
fn ran(report: &ScenarioReport) -> Vec<&dsrlab::runner::scenario::ProgramRun> {
    let ext = Features::get().ext.ok();
    for run in &report.runs {
        match &run.outcome {
            RunOutcome::Skipped(why) => {
                assert!(
                    run.program.ends_with("@ext") && !ext,
                    "{} skipped: {why}",
                    run.program
                );
            }
            RunOutcome::Ran { .. } => {}
            other => panic!("{}: {other:?}", run.program),
        }
    }
    report
        .runs
        .iter()
        .filter(|r| matches!(r.outcome, RunOutcome::Ran { .. }))
        .collect()
}

#[test]
fn each_packet_names_the_slots_it_went_through_and_the_slots_add_up() {
    skip_without_kernel!("each_packet_names_the_slots_it_went_through_and_the_slots_add_up");
    let s = scenario(
        "",
        "after: {slots: {2: {packets: 3, XDP_DROP: 1, XDP_PASS: 2}, 5: {packets: 2, XDP_PASS: 2}}}\n",
    );
    let report = run(&s);
    assert!(report.ok(), "{report:#?}");
    let runs = ran(&report);
    assert!(
        runs.len() >= 2,
        "test-run and netns under tail-call at least"
    );
    for run in runs {
        let RunOutcome::Ran { report, .. } = &run.outcome else {
            unreachable!()
        };
        let paths: Vec<&[(u32, Verdict)]> =
            report.packets.iter().map(|p| p.slots.as_slice()).collect();
        let pass = Verdict::Xdp(2);
        assert_eq!(
            paths,
            [
                &[(2, Verdict::Xdp(1))][..],
                &[(2, pass), (5, pass)],
                &[(2, pass), (5, pass)]
            ],
            "{} {:?}",
            run.program,
            run.mode
        );
    }
}

#[test]
fn slot_counters_other_than_after_slots_says_are_findings() {
    skip_without_kernel!("slot_counters_other_than_after_slots_says_are_findings");
    let s = scenario("", "after: {slots: {5: {packets: 3}, 2: {XDP_DROP: 0}}}\n");
    let report = run(&s);
    for run in ran(&report) {
        let RunOutcome::Ran { after, .. } = &run.outcome else {
            unreachable!()
        };
        let texts: Vec<String> = after.iter().map(Finding::to_string).collect();
        assert_eq!(
            texts,
            [
                "after the run: slot 2 XDP_DROP: expected 0, actual 1",
                "after the run: slot 5 packets: expected 3, actual 2"
            ],
            "{}",
            run.program
        );
    }
}

#[test]
fn the_owner_replaces_its_slot_between_two_packets() {
    skip_without_kernel!("the_owner_replaces_its_slot_between_two_packets");
    // From the second stream on, the firewall blocks port 53 instead.
    let change = "    chain_changes:
      owner: sec
      attach:
        2:
          object: ../../../../examples/chain-slot/xdp_port_filter.bpf.o
          program: xdp_port_filter
          globals: {blocked_port: 53}
    expect: {verdict: XDP_DROP}
";
    let s = scenario(
        change,
        "after: {slots: {2: {packets: 3, XDP_DROP: 3}, 5: {packets: 0}}}\n",
    );
    let report = run(&s);
    assert!(report.ok(), "{report:#?}");
    assert!(pinned().is_empty(), "left pinned: {:?}", pinned());
}

#[test]
fn a_change_by_another_owner_fails_setup_and_leaves_nothing_pinned() {
    skip_without_kernel!("a_change_by_another_owner_fails_setup_and_leaves_nothing_pinned");
    let s = scenario(
        "    chain_changes: {owner: app, detach: [2]}\n    expect: {verdict: XDP_PASS}\n",
        "",
    );
    let report = run(&s);
    let mut failed = 0;
    for run in &report.runs {
        match &run.outcome {
            RunOutcome::SetupFailed(why) => {
                failed += 1;
                assert_eq!(
                    why, "stream `dns`: chain_changes: slot 2 is reserved for `sec`",
                    "{}",
                    run.program
                );
            }
            RunOutcome::Skipped(_) => assert!(!Features::get().ext.ok()),
            other => panic!("{}: {other:?}", run.program),
        }
    }
    assert!(failed >= 2, "{report:#?}");
    assert!(pinned().is_empty(), "left pinned: {:?}", pinned());
}
