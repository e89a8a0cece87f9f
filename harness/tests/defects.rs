//! The oracles can never silently go blind: deliberately broken variants of
//! the decap (datapath/ebpf feature `defects`) must each be reported, by the
//! oracle that is meant to catch that class of bug.

use std::path::Path;

use dsrlab::{
    datapath::{Object, defects},
    formats::fixture::{FixtureSet, Outcome},
    load::{LoadOptions, LoadedProgram},
    oracles::Finding,
    runner::{self, QuirkOverrides},
    testrun::Verdict,
};
use dsrlab_abi::decap::Counter;

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

const INNER_V4: [Counter; 4] = [
    Counter::DecapIp4InIp4,
    Counter::DecapIp4InIp6,
    Counter::DecapGue4InIp4,
    Counter::DecapGue4InIp6,
];

/// Rewriting inner bytes without fixing skb->csum is invisible without the
/// quirk's checksum audit and reported as a checksum defect with it.
#[test]
fn missing_checksum_fixup_is_caught_under_checksum_complete() {
    let set = fixture("decap-tunnels");
    let prog = load(defects::TC_NO_CSUM_FIXUP);
    let complete = QuirkOverrides {
        checksum_complete: true,
        ..QuirkOverrides::default()
    };
    let report = runner::run_decap_suite(&set, &prog, complete).unwrap();
    let mut caught = 0;
    for (fixture, packet) in set.packets.iter().zip(&report.packets) {
        if !INNER_V4.contains(&fixture.expect.counter) {
            continue;
        }
        let stale = packet
            .findings
            .iter()
            .any(|f| matches!(f, Finding::RunFailed(why) if why.contains("checksum bookkeeping")));
        assert!(
            stale,
            "{}: not reported as stale: {:?}",
            fixture.name, packet.findings
        );
        caught += 1;
    }
    assert!(caught > 0, "no inner-IPv4 tunnel packet in the fixtures");
}

/// Giving up on unpulled headers without saying so is caught by the counter
/// oracle (and the output oracle where a decap was possible).
#[test]
fn silent_give_up_on_non_linear_headers_is_caught() {
    let set = fixture("decap-tunnels");
    let prog = load(defects::XDP_GIVES_UP_NONLINEAR);
    for (i, packet) in set.packets.iter().enumerate() {
        if packet.expect.outcome != Outcome::Decap || packet.quirks.checksum_complete {
            continue;
        }
        let caught = (0..packet.bytes.len() as u32).any(|n| {
            let overrides = QuirkOverrides {
                linear: Some(n),
                ..QuirkOverrides::default()
            };
            let report = runner::run_decap_packet(&prog, i + 1, packet, overrides).unwrap();
            report.findings.iter().any(|f| {
                matches!(f, Finding::Counters { actual, .. } if actual == &[(Counter::PassNotTunnel, 1)])
            })
        });
        assert!(caught, "{}: silent give-up not reported", packet.name);
    }
}

/// Accepting an inner header one byte short turns a drop into a decap of a
/// truncated packet: caught by the verdict and counter oracles.
#[test]
fn off_by_one_inner_length_is_caught() {
    let set = fixture("decap-malformed");
    let prog = load(defects::XDP_OFF_BY_ONE);
    let report = runner::run_decap_suite(&set, &prog, QuirkOverrides::default()).unwrap();
    let wrongly_passed: Vec<_> = report
        .packets
        .iter()
        .filter(|p| {
            p.findings.iter().any(|f| {
                matches!(
                    f,
                    Finding::Verdict {
                        expected: Verdict::Xdp(1),
                        actual: Verdict::Xdp(2)
                    }
                )
            }) && p
                .findings
                .iter()
                .any(|f| matches!(f, Finding::Counters { .. }))
        })
        .map(|p| p.name.as_str())
        .collect();
    assert!(
        !wrongly_passed.is_empty(),
        "the off-by-one variant passed every malformed fixture"
    );
}

/// A TC decap that gives up on unpulled headers passes every test run —
/// skbs are linear there — and is caught live, where the TAP NIC delivers
/// the same packets with 14 bytes linear.
#[test]
fn tc_giving_up_on_unpulled_headers_passes_test_runs_and_is_caught_live() {
    use dsrlab::{
        formats::scenario::load::load_str,
        runner::scenario::{self as scenario_runner, RunOptions, RunOutcome},
    };
    let dir = tempfile::tempdir().unwrap();
    let object = dir.path().join("defect.bpf.o");
    std::fs::write(&object, defects::TC_GIVES_UP_NONLINEAR.elf).unwrap();
    let text = |program: &str, modes: &str, quirks: &str| {
        format!(
            "version: 1\nprograms:\n  - object: {}\n    program: {program}\n    contract: decap\n\
             modes: [{modes}]\ntraffic:\n  - fixture: fixtures/decap-tunnels.yaml\n    quirks: {quirks}\n",
            object.display()
        )
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let run = |yaml: String| {
        let loaded = load_str(&yaml, &root.join("t.yaml")).unwrap_or_else(|e| panic!("{e}"));
        scenario_runner::run(&loaded, &RunOptions::default(), &mut || {})
    };
    let test_run = run(text("defect_tc_gives_up_nonlinear", "test-run", "{}"));
    assert!(
        test_run.ok() && test_run.passed() > 0,
        "test runs caught it: {test_run:?}"
    );
    let live = run(text(
        "defect_tc_gives_up_nonlinear",
        "netns",
        "{linear: 14}",
    ));
    assert!(!live.ok(), "the live run missed it");
    let RunOutcome::Ran { report, .. } = &live.runs[0].outcome else {
        panic!("{:?}", live.runs[0].outcome);
    };
    let caught = report
        .packets
        .iter()
        .filter(|p| {
            p.findings.iter().any(|f| {
                matches!(f, Finding::Counters { actual, .. } if actual.contains(&(Counter::PassNotTunnel, 1)))
            })
        })
        .count();
    assert!(
        caught > 20,
        "only {caught} packets reported: {:?}",
        report.packets
    );
    // The correct tc_decap passes the same live run.
    let good = run(text("tc_decap", "netns", "{linear: 14}").replace(
        &format!(
            "object: {}\n    program: tc_decap\n    contract: decap",
            object.display()
        ),
        "builtin: tc_decap",
    ));
    assert!(good.ok() && good.passed() > 0, "{good:?}");
}

/// A TC decap that keeps the NIC's CHECKSUM_UNNECESSARY on the inner packet
/// decapsulates every byte right — the byte and counter oracles see
/// nothing wrong. The auditor sees every packet still claiming the outer
/// checksum the decap removed, and the stack lets inner packets with wrong
/// checksums through: the SNMP oracle reports each checksum error that did
/// not happen.
#[test]
fn keeping_the_outer_checksum_claim_is_caught_by_the_stack_counters() {
    use dsrlab::{
        formats::scenario::load::load_str,
        runner::scenario::{self as scenario_runner, RunOptions, RunOutcome},
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let shipped = std::fs::read_to_string(root.join("scenarios/decap-validated-checksums.yaml"))
        .unwrap()
        .replace("../fixtures", "fixtures");
    let dir = tempfile::tempdir().unwrap();
    let object = dir.path().join("defect.bpf.o");
    std::fs::write(&object, defects::TC_KEEPS_CSUM_STATE.elf).unwrap();
    let broken = shipped.replace(
        "  - builtin: tc_decap",
        &format!(
            "  - object: {}\n    program: defect_tc_keeps_csum_state\n    contract: decap",
            object.display()
        ),
    );
    let run = |yaml: &str| {
        let loaded = load_str(yaml, &root.join("t.yaml")).unwrap_or_else(|e| panic!("{e}"));
        scenario_runner::run(&loaded, &RunOptions::default(), &mut || {})
    };
    let good = run(&shipped);
    assert!(good.ok() && good.passed() == 5, "{good:?}");
    let bad = run(&broken);
    let RunOutcome::Ran { report, after } = &bad.runs[0].outcome else {
        panic!("{:?}", bad.runs[0].outcome);
    };
    // Every packet is decapsulated exactly (the counters moved as for the
    // correct decap); every one keeps a claim nobody can make any more.
    assert_eq!(report.passed(), 0, "{:?}", report.packets);
    for p in &report.packets {
        assert!(
            p.findings
                .iter()
                .all(|f| matches!(f, Finding::RunFailed(why)
                if why.contains("still claims 1 validated checksum(s)")
                    && why.contains("removed 1 of the 1 the NIC validated"))),
            "{}: {:?}",
            p.name,
            p.findings
        );
        assert_eq!(p.counters.len(), 1, "{}: {:?}", p.name, p.counters);
    }
    let after: Vec<String> = after.iter().map(ToString::to_string).collect();
    assert_eq!(after.len(), 3, "{after:?}");
    for (finding, counter) in
        after
            .iter()
            .zip(["TcpInCsumErrors", "Udp6InCsumErrors", "UdpInCsumErrors"])
    {
        assert!(
            finding.starts_with(&format!(
                "after the run: SNMP {counter}: expected +1, actual +0"
            )),
            "{finding}"
        );
    }
    // The wrong datagrams went on to the port lookup as if right.
    assert!(after[2].contains("UdpNoPorts +2"), "{}", after[2]);
}

/// The missing checksum fix-up is caught live as well, behind the VXLAN
/// NIC: an IPv4 inner header with a broken header checksum shows in the
/// delivered bytes (the stack drops it before PRE_ROUTING), and an IPv6
/// inner header — no header checksum — reaches PRE_ROUTING with its
/// skb->csum stale, which only the checksum auditor sees. Every packet the
/// test run flags is flagged live.
#[test]
fn missing_checksum_fixup_is_caught_live_by_the_checksum_auditor() {
    use dsrlab::{
        formats::scenario::{load::load_str, model::Mode},
        runner::scenario::{self as scenario_runner, RunOptions, RunOutcome},
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir().unwrap();
    let object = dir.path().join("defect.bpf.o");
    std::fs::write(&object, defects::TC_NO_CSUM_FIXUP.elf).unwrap();
    let yaml = format!(
        "version: 1\nprograms:\n  - object: {}\n    program: defect_tc_no_csum_fixup\n    contract: decap\n\
         modes: [test-run, netns]\nquirks: {{checksum: complete}}\ntraffic:\n  - fixture: fixtures/decap-tunnels.yaml\n",
        object.display()
    );
    let loaded = load_str(&yaml, &root.join("t.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let report = scenario_runner::run(&loaded, &RunOptions::default(), &mut || {});
    let packets = |mode: Mode| {
        let run = report.runs.iter().find(|r| r.mode == mode).unwrap();
        let RunOutcome::Ran { report, .. } = &run.outcome else {
            panic!("{:?}", run.outcome);
        };
        &report.packets
    };
    let flagged = |mode: Mode| -> Vec<usize> {
        packets(mode)
            .iter()
            .filter(|p| !p.findings.is_empty())
            .map(|p| p.number)
            .collect()
    };
    let test_run = flagged(Mode::TestRun);
    assert!(
        test_run.len() > 10,
        "the test run flagged only {test_run:?}"
    );
    assert_eq!(
        flagged(Mode::Netns),
        test_run,
        "live and test-run flag different packets"
    );
    let by_auditor: Vec<&str> = packets(Mode::Netns)
        .iter()
        .filter(|p| {
            p.findings
                .iter()
                .any(|f| f.to_string().contains("checksum auditor at PRE_ROUTING"))
        })
        .map(|p| p.name.as_str())
        .collect();
    assert!(
        !by_auditor.is_empty()
            && by_auditor
                .iter()
                .all(|n| n.contains("ip6") || n.contains("6in")),
        "the auditor flagged {by_auditor:?}"
    );
}

/// The test-run defects that live mode can carry are caught live too, on
/// the same packets: the off-by-one XDP decap through the veth rig, by the
/// verdict and counter oracles, and both modes agree on what it did.
/// (The XDP give-up-on-frags defect needs `linear: N` at XDP, which only
/// test runs make; the checksum fix-up defect is caught live above.)
#[test]
fn test_run_defects_are_caught_live_on_the_same_packets() {
    use dsrlab::{
        formats::scenario::{load::load_str, model::Mode},
        runner::scenario::{self as scenario_runner, RunOptions, RunOutcome},
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir().unwrap();
    let object = dir.path().join("defect.bpf.o");
    std::fs::write(&object, defects::XDP_OFF_BY_ONE.elf).unwrap();
    let yaml = format!(
        "version: 1\nprograms:\n  - object: {}\n    program: defect_xdp_off_by_one\n    contract: decap\n\
         modes: [test-run, netns]\ntraffic:\n  - fixture: fixtures/decap-malformed.yaml\n",
        object.display()
    );
    let loaded = load_str(&yaml, &root.join("t.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let report = scenario_runner::run(&loaded, &RunOptions::default(), &mut || {});
    let failing = |mode: Mode| -> Vec<usize> {
        let run = report.runs.iter().find(|r| r.mode == mode).unwrap();
        let RunOutcome::Ran { report, .. } = &run.outcome else {
            panic!("{:?}", run.outcome);
        };
        report
            .packets
            .iter()
            .filter(|p| {
                p.findings
                    .iter()
                    .any(|f| matches!(f, Finding::Counters { .. } | Finding::Verdict { .. }))
            })
            .map(|p| p.number)
            .collect()
    };
    let test_run = failing(Mode::TestRun);
    assert!(!test_run.is_empty(), "the test run caught nothing");
    assert_eq!(failing(Mode::Netns), test_run);
}
