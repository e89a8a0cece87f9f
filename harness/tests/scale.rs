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
    // The program was loaded in the run, and its set-up is not counted as
    // the packets' time.
    assert!(row.set_up_seconds > 0.0, "{row:?}");
    assert!(
        row.all_in_packets_per_second < row.packets_per_second,
        "{row:?}"
    );
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

/// 200 flows of 3 packets each, payload sizes differing within a flow:
/// plain, and through one tunnel between two hosts (whose outer headers
/// alone would send every packet to one worker).
#[rstest::rstest]
#[case::plain("")]
#[case::one_ipip_tunnel(", tunnel: ip4_in_ip4, outer_src: 198.18.9.1, outer_dst: 198.18.9.2")]
#[case::one_ip6_in_ip6_tunnel(
    ", tunnel: ip6_in_ip6, outer_src: \"2001:db8:9::1\", outer_dst: \"2001:db8:9::2\""
)]
fn every_packet_of_a_flow_goes_to_one_worker(#[case] tunnel: &str) {
    let s = scenario(&format!(
        "version: 1
programs: [{{builtin: xdp_decap}}]
modes: [test-run]
traffic:
  - name: flows
    generate: {{flows: 200, packets_per_flow: 3, protocols: [tcp, udp], payload: 0-900{tunnel}}}
    expect: {{verdict: pass}}
"
    ));
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

/// Writes the packets of 1000 generated IPv4-in-IPv4 flows to
/// `dir/capture.pcap` and returns a scenario replaying it, packet 5
/// expected (wrongly) to be dropped.
fn replay(dir: &Path) -> LoadedScenario {
    let generated = scenario(
        "version: 1
programs: [{builtin: xdp_decap}]
modes: [test-run]
traffic:
  - generate: {flows: 1000, tunnel: ip4_in_ip4, src: 198.18.1.0/24, dst: 198.18.2.1}
    expect: {verdict: pass}
",
    );
    let bytes: Vec<Vec<u8>> = generated
        .packets
        .iter()
        .map(|p| p.into_owned().bytes)
        .collect();
    dsrlab::formats::pcap::write_file(&dir.join("capture.pcap"), &bytes).unwrap();
    let text = "version: 1
programs: [{builtin: xdp_decap}]
modes: [test-run]
traffic:
  - name: capture
    pcap: capture.pcap
    expect: {verdict: pass, output: decapsulated, counter: decap_ip4_in_ip4}
    packets:
      5: {expect: {verdict: drop}}
";
    let path = dir.join("replay.yaml");
    std::fs::write(&path, text).unwrap();
    dsrlab::formats::scenario::load::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_replay_is_read_as_it_runs_and_judged_as_if_held() {
    if skip("a_replay_is_read_as_it_runs_and_judged_as_if_held") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = replay(dir.path());
    assert_eq!(s.packets.len(), 1000);
    // What the live rig is sized by, known without reading the capture.
    let largest = s.packets.iter().map(|p| p.bytes.len()).max().unwrap();
    assert_eq!(s.packets.largest(), largest);
    assert!(!s.packets.any_quirks(|q| q.checksum_complete));
    // And whether any expectation asks for a drop reason (which needs a
    // NIC in live mode), from the stream's and the packets' own.
    assert!(!s.packets.any_expect(|e| e.drop_reason.is_some()));
    assert!(
        s.packets
            .any_expect(|e| e.verdict.as_deref() == Some("drop"))
    );
    assert!(!s.packets.any_expect(|e| e.verdict.as_deref() == Some("tx")));
    let fifth = s.packets.get(4).unwrap();
    assert_eq!((fifth.name.as_str(), fifth.number), ("#5", 5));
    assert_eq!(
        fifth.expect.as_ref().unwrap().verdict.as_deref(),
        Some("drop")
    );
    let report = run(&s);
    let (failing, after) = failures(&report);
    assert!(after.is_empty(), "{after:?}");
    let [(5, findings, _)] = failing.as_slice() else {
        panic!("{failing:?}");
    };
    assert!(
        findings[0].to_string().contains("expected drop"),
        "{findings:?}"
    );
    assert_eq!(report.passed(), 999);
}

#[test]
fn a_replay_cut_short_after_loading_fails_its_run() {
    if skip("a_replay_cut_short_after_loading_fails_its_run") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = replay(dir.path());
    // The capture loses its tail between loading and running.
    let path = dir.path().join("capture.pcap");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let report = run(&s);
    let RunOutcome::SetupFailed(why) = &report.runs[0].outcome else {
        panic!("{:?}", report.runs[0].outcome);
    };
    assert!(
        why.starts_with("cannot read the traffic: ") && why.contains("capture.pcap: packet "),
        "{why}"
    );
    assert!(!report.ok());
}

#[test]
fn a_broken_capture_is_refused_when_the_scenario_loads() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.pcap");
    dsrlab::formats::pcap::write_file(&good, &[vec![0u8; 60], vec![1u8; 60]]).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(dir.path().join("capture.pcap"), &bytes[..bytes.len() - 10]).unwrap();
    let path = dir.path().join("broken.yaml");
    std::fs::write(
        &path,
        "version: 1\nprograms: [{builtin: xdp_pass}]\ntraffic:\n  - pcap: capture.pcap\n    expect: {verdict: pass}\n",
    )
    .unwrap();
    let e = dsrlab::formats::scenario::load::load(&path)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("broken.yaml:4:")
            && e.contains("capture.pcap: packet 2: truncated packet data (50 of 60 bytes)"),
        "{e}"
    );
}
