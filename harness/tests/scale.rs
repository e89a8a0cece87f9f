//! Verification at scale: counters checked per batch and taken apart when a
//! batch does not add up, passing packets folded into counts, traffic
//! streamed from its source.
//!
//! Needs the capabilities to load BPF programs (CI runs as root).

use std::path::Path;

use dsrlab::{
    formats::scenario::load::{LoadedScenario, load_str},
    oracles::Finding,
    runner::scenario::{self as runner, RunOptions, RunOutcome, ScenarioReport},
};

fn skip(name: &str) -> bool {
    match dsrlab::kernel::check_bpf_capabilities() {
        Ok(()) => false,
        Err(e) => {
            eprintln!("SKIPPED {name}: {e}");
            true
        }
    }
}

fn scenario(text: &str) -> LoadedScenario {
    load_str(text, Path::new("tests/data/scenarios/t.yaml")).unwrap_or_else(|e| panic!("{e}"))
}

fn run(s: &LoadedScenario) -> ScenarioReport {
    runner::run(s, &RunOptions::default(), &mut || {})
}

/// 600 IPv4-in-IPv4 packets through xdp_decap, of which packet 300 claims
/// the wrong counter; `snapshot` makes the runner read around each packet.
fn wrong_claim(snapshot: bool) -> String {
    format!(
        "version: 1
programs: [{{builtin: xdp_decap}}]
modes: [test-run]
snapshot: {snapshot}
traffic:
  - name: flows
    generate: {{flows: 600, tunnel: ip4_in_ip4, src: 198.18.1.0/24, dst: 198.18.2.1}}
    expect: {{verdict: pass, output: decapsulated, counter: decap_ip4_in_ip4}}
    packets:
      300: {{expect: {{verdict: pass, counter: decap_ip6_in_ip6}}}}
after:
  counters: {{decap_ip4_in_ip4: 600}}
"
    )
}

/// A failing packet: its number, findings and notes.
type Failing = (usize, Vec<Finding>, Vec<String>);

/// The failing packets, and the after-run findings.
fn failures(report: &ScenarioReport) -> (Vec<Failing>, Vec<Finding>) {
    let [run] = &report.runs[..] else {
        panic!("one run: {report:?}");
    };
    let RunOutcome::Ran { report, after } = &run.outcome else {
        panic!("{:?}", run.outcome);
    };
    let failing = report
        .packets
        .iter()
        .filter(|p| !p.findings.is_empty())
        .map(|p| (p.number, p.findings.clone(), p.notes.clone()))
        .collect();
    (failing, after.clone())
}

/// The one failing packet is 300, with a counter finding, run again
/// alone after its batch did not add up; its findings.
fn only_packet_300_run_again(failing: &[Failing]) -> &Vec<Finding> {
    let [(300, findings, notes)] = failing else {
        panic!("{failing:?}");
    };
    assert!(
        matches!(findings.as_slice(), [Finding::Counters { .. }]),
        "{findings:?}"
    );
    assert!(
        notes.iter().any(|n| n.contains("run again alone")),
        "{notes:?}"
    );
    findings
}

#[test]
fn a_batch_that_does_not_add_up_names_the_packet_as_reading_around_each_would() {
    if skip("a_batch_that_does_not_add_up_names_the_packet_as_reading_around_each_would") {
        return;
    }
    let (batched, batched_after) = failures(&run(&scenario(&wrong_claim(false))));
    let (exact, exact_after) = failures(&run(&scenario(&wrong_claim(true))));
    // The same packet, the same finding; the totals are those of one run
    // of each packet although the batch's packets ran twice.
    let findings = only_packet_300_run_again(&batched);
    assert_eq!(exact.len(), 1);
    assert_eq!((exact[0].0, &exact[0].1), (300, findings));
    assert!(batched_after.is_empty(), "{batched_after:?}");
    assert!(exact_after.is_empty(), "{exact_after:?}");
}

#[test]
fn folding_keeps_what_failed_and_counts_what_passed() {
    if skip("folding_keeps_what_failed_and_counts_what_passed") {
        return;
    }
    let options = RunOptions {
        fold_passing: true,
        ..RunOptions::default()
    };
    let report = runner::run(&scenario(&wrong_claim(false)), &options, &mut || {});
    let RunOutcome::Ran { report: run, after } = &report.runs[0].outcome else {
        panic!("{:?}", report.runs[0].outcome);
    };
    assert!(after.is_empty(), "{after:?}");
    // The failing packet is kept whole, with its notes; the others counted.
    assert_eq!(run.packets.len(), 1, "{:?}", run.packets);
    assert_eq!(run.packets[0].number, 300);
    assert!(run.packets[0].run.is_some());
    assert_eq!(
        (run.folded, report.passed(), report.failed()),
        (599, 599, 1)
    );
    // A snapshot needs every packet: nothing folded.
    let report = runner::run(&scenario(&wrong_claim(true)), &options, &mut || {});
    let RunOutcome::Ran { report: run, .. } = &report.runs[0].outcome else {
        panic!("{:?}", report.runs[0].outcome);
    };
    assert_eq!((run.packets.len(), run.folded), (600, 0));
}

#[test]
fn the_throughput_benchmark_counts_what_it_verified() {
    if skip("the_throughput_benchmark_counts_what_it_verified") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.yaml");
    std::fs::write(
        &path,
        wrong_claim(false).replace(
            "      300: {expect: {verdict: pass, counter: decap_ip6_in_ip6}}\n",
            "      1: {}\n",
        ),
    )
    .unwrap();
    let row = dsrlab::bench::throughput::measure(&path, 1).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((row.packets, row.failed), (600, 0), "{row:?}");
    assert!(
        row.test_run_share > 0.0 && row.test_run_share < 1.0,
        "{row:?}"
    );
    assert!(row.packets_per_second > 0.0);
}

#[test]
fn workers_find_what_one_cpu_finds() {
    if skip("workers_find_what_one_cpu_finds") {
        return;
    }
    let cpus = dsrlab::runner::cpu_pin::CpuPin::allowed().unwrap();
    if cpus.len() < 2 {
        eprintln!("SKIPPED workers_find_what_one_cpu_finds: the process may use one CPU only");
        return;
    }
    let options = RunOptions {
        workers: 2,
        fold_passing: true,
        ..RunOptions::default()
    };
    let report = runner::run(&scenario(&wrong_claim(false)), &options, &mut || {});
    let (failing, after) = failures(&report);
    // The same single finding on the same packet, the totals right (summed
    // over the workers' CPUs, the second run of the batch taken off).
    only_packet_300_run_again(&failing);
    assert!(after.is_empty(), "{after:?}");
    assert_eq!((report.passed(), report.failed()), (599, 1));
}

#[test]
fn every_packet_of_a_flow_goes_to_one_worker() {
    // 200 flows of 3 packets each, payload sizes differing within a flow.
    let s = scenario(
        "version: 1
programs: [{builtin: xdp_decap}]
modes: [test-run]
traffic:
  - name: flows
    generate: {flows: 200, packets_per_flow: 3, protocols: [tcp, udp], payload: 0-900}
    expect: {verdict: pass}
",
    );
    let mut by_flow: std::collections::HashMap<String, Vec<usize>> = Default::default();
    for p in &s.packets {
        let flow = p.name.split('/').next().unwrap().to_owned();
        by_flow
            .entry(flow)
            .or_default()
            .push(runner::worker_of(&p.bytes, 2));
    }
    assert_eq!(
        by_flow.len(),
        200,
        "{:?}",
        by_flow.keys().take(3).collect::<Vec<_>>()
    );
    assert!(
        by_flow
            .values()
            .all(|w| w.len() == 3 && w.iter().all(|x| *x == w[0]))
    );
    let on_first = by_flow.values().filter(|w| w[0] == 0).count();
    assert!(
        (50..150).contains(&on_first),
        "{on_first} of 200 flows on worker 0"
    );
}
