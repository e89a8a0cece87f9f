//! Properties of the decap datapath in test-run mode that go beyond what a
//! scenario states: exact decapsulation per tunnel kind, XDP/TC equivalence
//! packet by packet, CHECKSUM_COMPLETE for every fixture, every linear length,
//! malformed input. (The fixture suites themselves, with their snapshots,
//! are the shipped scenarios: tests/scenarios.rs.)

use std::path::{Path, PathBuf};

use dsrlab::{
    datapath::{self, Object},
    formats::fixture::{FixtureSet, Outcome},
    load::{LoadOptions, LoadedProgram},
    runner::{self, QuirkOverrides, SuiteReport},
    testrun::Verdict,
};
use dsrlab_abi::decap::Counter;
use rstest::rstest;

fn load(object: Object) -> LoadedProgram {
    LoadedProgram::builtin(object, &LoadOptions::default())
        .unwrap_or_else(|e| panic!("loading {}: {e}", object.program))
}

fn fixture(name: &str) -> FixtureSet {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(format!("{name}.yaml"));
    FixtureSet::from_yaml_file(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn assert_clean(report: &SuiteReport) {
    let failures: Vec<String> = report
        .packets
        .iter()
        .filter(|p| !p.findings.is_empty())
        .map(|p| {
            let findings: Vec<String> = p.findings.iter().map(ToString::to_string).collect();
            format!("#{} {}: {}", p.number, p.name, findings.join("; "))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} on {}:\n{}",
        report.program,
        report.fixture,
        failures.join("\n")
    );
}

/// The tunnel fixtures cover all eight tunnel kinds, and each decapsulates to
/// exactly the Ethernet header plus the inner packet built from the recipe.
#[test]
fn every_tunnel_kind_decaps_to_the_exact_inner_packet() {
    let set = fixture("decap-tunnels");
    let prog = load(datapath::XDP_DECAP);
    let report = runner::run_decap_suite(&set, &prog, QuirkOverrides::default()).unwrap();
    assert_clean(&report);
    for kind in Counter::ALL.into_iter().filter(|c| c.is_decap()) {
        let hits: Vec<_> = set
            .packets
            .iter()
            .zip(&report.packets)
            .filter(|(f, _)| f.expect.counter == kind)
            .collect();
        assert!(!hits.is_empty(), "no fixture exercises {}", kind.name());
        for (fixture, packet) in hits {
            let Some(Ok(result)) = &packet.run else {
                continue; // skipped for a quirk XDP cannot have; printed by the suite test
            };
            let output = &result.output;
            assert_eq!(Some(output), fixture.expected_output().as_ref());
            // The inner packet is the tail of the input, byte for byte.
            assert!(fixture.bytes.ends_with(&output[14..]) || fixture.name.contains("pad"));
        }
    }
}

/// Whether every packet of `set` needs what only live mode delivers
/// (CHECKSUM_UNNECESSARY); says so when it does, for the test to stop.
fn live_only(set: &FixtureSet) -> bool {
    let live = set.packets.iter().all(|p| p.quirks.checksum_unnecessary);
    if live {
        println!(
            "{}: every packet is delivered CHECKSUM_UNNECESSARY, which a test run cannot make; \
             it runs live (scenarios/decap-validated-checksums.yaml)",
            set.name
        );
    }
    live
}

/// XDP and TC are two hooks over one decap: same outputs, same verdict
/// classes and the same counters, packet by packet.
#[rstest]
fn xdp_and_tc_agree(#[files("../fixtures/*.yaml")] path: PathBuf) {
    let set = FixtureSet::from_yaml_file(&path).unwrap();
    if live_only(&set) {
        return;
    }
    let xdp = load(datapath::XDP_DECAP);
    let tc = load(datapath::TC_DECAP);
    // Quirks specific to one hook would make the runs incomparable.
    let plain = QuirkOverrides::default();
    let x = runner::run_decap_suite(&set, &xdp, plain).unwrap();
    let t = runner::run_decap_suite(&set, &tc, plain).unwrap();
    let mut compared = 0;
    for (a, b) in x.packets.iter().zip(&t.packets) {
        let (Some(Ok(ra)), Some(Ok(rb))) = (&a.run, &b.run) else {
            continue;
        };
        compared += 1;
        assert_eq!(a.counters, b.counters, "{}: counters differ", a.name);
        assert_eq!(ra.verdict.passes(), rb.verdict.passes(), "{}", a.name);
        assert_eq!(ra.verdict.drops(), rb.verdict.drops(), "{}", a.name);
        if ra.verdict.passes() {
            assert_eq!(ra.output, rb.output, "{}: outputs differ", a.name);
        }
    }
    assert!(compared > 0, "{}: no packet ran on both hooks", set.name);
    // Totals agree too when both hooks saw the same packets (the kernel
    // refuses some short frames on one hook only).
    if x.skipped() == 0 && t.skipped() == 0 {
        assert_eq!(
            xdp.per_cpu_counters(dsrlab_abi::decap::COUNTERS_MAP)
                .unwrap(),
            tc.per_cpu_counters(dsrlab_abi::decap::COUNTERS_MAP)
                .unwrap(),
            "{}: counter totals differ",
            set.name
        );
    }
}

/// mlx5 delivers CHECKSUM_COMPLETE: tc_decap must keep skb->csum right for
/// every fixture packet.
#[rstest]
fn tc_decap_keeps_checksum_complete_right(#[files("../fixtures/*.yaml")] path: PathBuf) {
    let set = FixtureSet::from_yaml_file(&path).unwrap();
    if live_only(&set) {
        return;
    }
    let tc = load(datapath::TC_DECAP);
    let overrides = QuirkOverrides {
        checksum_complete: true,
        ..QuirkOverrides::default()
    };
    let report = runner::run_decap_suite(&set, &tc, overrides).unwrap();
    for p in report.packets.iter().filter(|p| p.skipped.is_some()) {
        println!(
            "skipped {}#{}: {}",
            set.name,
            p.number,
            p.skipped.as_ref().unwrap()
        );
    }
    assert!(report.passed() > 0, "{}: nothing ran", set.name);
    assert_clean(&report);
}

/// The largest header length any fixture packet can need: Ethernet, outer
/// IPv6, UDP, inner IPv6 with a TCP header.
const FULL_HEADERS: u32 = 14 + 40 + 8 + 40 + 60;

/// Headers left unpulled by the NIC: for every linear length from 0 up to the
/// full header length, xdp_decap decapsulates exactly or leaves the packet
/// untouched and counts it as non-linear, never anything else; and once it
/// decapsulates at some length, it does at every longer one.
#[rstest]
fn xdp_decap_handles_every_linear_length(#[files("../fixtures/*.yaml")] path: PathBuf) {
    let set = FixtureSet::from_yaml_file(&path).unwrap();
    let xdp = load(datapath::XDP_DECAP);
    for (i, packet) in set.packets.iter().enumerate() {
        if packet.quirks.checksum_complete {
            continue;
        }
        let mut decapped_at = None;
        for n in 0..=FULL_HEADERS.min(packet.bytes.len() as u32) {
            let overrides = QuirkOverrides {
                linear: Some(n),
                ..QuirkOverrides::default()
            };
            let report = runner::run_decap_packet(&xdp, i + 1, packet, overrides).unwrap();
            assert!(
                report.findings.is_empty(),
                "{} with linear {n}: {:?}",
                packet.name,
                report.findings
            );
            let non_linear = report.counters == [(Counter::PassNonLinear, 1)];
            if packet.expect.outcome == Outcome::Decap {
                match (non_linear, decapped_at) {
                    (false, None) => decapped_at = Some(n),
                    (true, Some(at)) => panic!(
                        "{}: decapsulated with linear {at} but not with {n}",
                        packet.name
                    ),
                    _ => {}
                }
            }
        }
        if packet.expect.outcome == Outcome::Decap {
            assert!(
                decapped_at.is_some(),
                "{}: never decapsulated at any linear length",
                packet.name
            );
        }
    }
}

/// Malformed input never crashes, never aborts, and is always counted.
#[rstest]
fn malformed_input_is_counted_never_aborted(
    #[values(datapath::XDP_DECAP, datapath::TC_DECAP)] object: Object,
) {
    let set = fixture("decap-malformed");
    let prog = load(object);
    let report = runner::run_decap_suite(&set, &prog, QuirkOverrides::default()).unwrap();
    assert_clean(&report);
    for p in &report.packets {
        let Some(Ok(result)) = &p.run else { continue };
        assert_ne!(result.verdict, Verdict::Xdp(0), "{}: XDP_ABORTED", p.name);
        assert_eq!(p.counters.len(), 1, "{}: counted {:?}", p.name, p.counters);
    }
    let total: u64 = prog
        .per_cpu_counters(dsrlab_abi::decap::COUNTERS_MAP)
        .unwrap()
        .iter()
        .sum();
    let ran = report
        .packets
        .iter()
        .filter(|p| p.skipped.is_none())
        .count();
    assert_eq!(total, ran as u64);
}

/// `dsrlab bench` times a decap class only on the path it names: a packet
/// of another class is refused with what it moved.
#[test]
fn the_benchmark_checks_each_class_before_timing_it() {
    let set = fixture("decap-tunnels");
    let xdp = load(datapath::XDP_DECAP);
    let ipip = set
        .packets
        .iter()
        .find(|p| p.expect.counter == Counter::DecapIp4InIp4 && p.quirks == Default::default())
        .expect("decap-tunnels has an IPv4-in-IPv4 packet");
    dsrlab::bench::decap_check(&xdp, Counter::DecapIp4InIp4, &ipip.bytes).unwrap();
    let err = dsrlab::bench::decap_check(&xdp, Counter::DecapIp6InIp6, &ipip.bytes).unwrap_err();
    assert!(
        err.contains("moved decap_ip4_in_ip4 +1, not decap_ip6_in_ip6 +1"),
        "{err}"
    );
}
