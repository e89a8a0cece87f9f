//! The lb oracle at capacity: with three times more flows than the
//! connection table holds (`LRU_ENTRIES`), and a real added between two
//! passes over the same flows, the kernel's LRU evicts entries the model
//! cannot name. Every packet is still judged: a flow the kernel evicted
//! may be selected again from the ring as it is now (never sent anywhere
//! else), and the table after the run may lack what a full table evicted,
//! nothing more. A load balancer that never writes its table is still
//! caught, at capacity as below it.
//!
//! Needs root and the datapath objects (the defect from the `defects`
//! feature); says so and skips without them.

use std::{io::Write as _, path::Path};

use dsrlab::{
    datapath::{self, defects},
    formats::scenario::load::{LoadedScenario, load_str},
    lb::fuzz,
    oracles::Finding,
    runner::scenario::{self as runner, RunOptions, RunOutcome, ScenarioReport},
};
use dsrlab_abi::lb::{Counter as LbCounter, LRU_ENTRIES};

fn skip(test: &str) -> bool {
    let why = if datapath::XDP_LB.elf.is_empty() {
        Some("the xdp_lb object is empty (built with AYA_BUILD_SKIP=1)".to_owned())
    } else {
        dsrlab::kernel::check_bpf_capabilities()
            .err()
            .map(|e| e.to_string())
    };
    if let Some(why) = why {
        let _ = writeln!(std::io::stderr(), "skipped {test}: {why}");
        return true;
    }
    false
}

/// `program` (the lines of one `programs:` item) with one VIP and two
/// reals; `flows` UDP flows and then 1000 others, a third real added, the
/// 1000 again (recent: still in the table), then the `flows` again (pushed
/// out by them).
fn scenario(program: &str, flows: u32) -> LoadedScenario {
    let text = format!(
        "version: 1
programs:
{program}    lb:
      ring_size: 13
      vips:
        - vip: 198.18.0.50:53/udp
          reals: [198.18.10.1, 198.18.10.2]
modes: [test-run]
traffic:
  - name: many
    generate: {{flows: {flows}, protocols: [udp], src: 198.18.0.0/15, dst: 198.18.0.50, dport: 53, seed: 1}}
  - name: recent
    generate: {{flows: 1000, protocols: [udp], src: 198.18.0.0/15, dst: 198.18.0.50, dport: 53, seed: 2}}
  - name: recent-again
    lb_changes:
      - add_real: {{vip: 198.18.0.50:53/udp, addr: 198.18.10.3}}
    generate: {{flows: 1000, protocols: [udp], src: 198.18.0.0/15, dst: 198.18.0.50, dport: 53, seed: 2}}
  - name: many-again
    generate: {{flows: {flows}, protocols: [udp], src: 198.18.0.0/15, dst: 198.18.0.50, dport: 53, seed: 1}}
"
    );
    load_str(&text, Path::new("tests/data/scenarios/t.yaml")).unwrap_or_else(|e| panic!("{e}"))
}

fn run(s: &LoadedScenario) -> ScenarioReport {
    runner::run(s, &RunOptions::default(), &mut || {})
}

/// Packets of `stream` that hit the connection table.
fn hits(report: &ScenarioReport, stream: &str) -> usize {
    let RunOutcome::Ran { report, .. } = &report.runs[0].outcome else {
        panic!("{:?}", report.runs[0].outcome);
    };
    report
        .packets
        .iter()
        .filter(|p| p.name.starts_with(&format!("{stream}/")))
        .filter(|p| p.lb_counters.contains(&(LbCounter::LruHit, 1)))
        .count()
}

/// The only run's per-packet findings (count, first), after-run findings
/// and notes.
fn outcome(report: &ScenarioReport) -> (usize, Option<String>, Vec<Finding>, usize) {
    let [run] = &report.runs[..] else {
        panic!("one run: {report:?}");
    };
    let RunOutcome::Ran { report, after } = &run.outcome else {
        panic!("{:?}", run.outcome);
    };
    let failing: Vec<_> = report
        .packets
        .iter()
        .filter(|p| !p.findings.is_empty())
        .collect();
    let first = failing
        .first()
        .map(|p| format!("{}: {:?}", p.name, p.findings));
    let noted = report
        .packets
        .iter()
        .filter(|p| !p.notes.is_empty())
        .count();
    (failing.len(), first, after.clone(), noted)
}

const FLOWS: u32 = 3 * LRU_ENTRIES;

/// The `programs:` entry of `defect_xdp_lb_lru_no_update` (an `xdp_lb` that
/// never writes its connection table), its object written into `dir`.
fn defect_program(dir: &Path) -> String {
    let object = dir.join("defect.o");
    std::fs::write(&object, defects::XDP_LB_LRU_NO_UPDATE.elf).unwrap();
    format!(
        "  - object: {}\n    program: defect_xdp_lb_lru_no_update\n    contract: lb\n",
        object.display()
    )
}

#[test]
fn three_times_the_table_with_a_real_added_passes_judged_packet_by_packet() {
    if skip("three_times_the_table_with_a_real_added_passes_judged_packet_by_packet") {
        return;
    }
    let report = run(&scenario("  - builtin: xdp_lb\n", FLOWS));
    let (failing, first, after, evicted) = outcome(&report);
    assert_eq!((failing, first), (0, None));
    assert!(after.is_empty(), "{after:?}");
    // The recent flows kept their real although the ring changed; the
    // second pass over the many meets flows they pushed out.
    assert_eq!(hits(&report, "recent-again"), 1000);
    assert!(
        evicted > 0,
        "no eviction was needed: the test proves nothing"
    );
    assert_eq!(report.passed(), 2 * FLOWS as usize + 2000);
}

#[test]
fn a_table_that_is_never_written_is_caught_at_capacity_and_below() {
    if skip("a_table_that_is_never_written_is_caught_at_capacity_and_below") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let program = defect_program(dir.path());
    // Below capacity: the 1100 second passes should hit the table, and
    // miss. Counters are checked per batch until a batch does not add up
    // (its packets' verdicts and outputs were right: the same real), then
    // around each packet: the batch is named, and every packet after it.
    let (failing, first, after, _) = outcome(&run(&scenario(&program, 100)));
    assert!((1100 - 256..1100).contains(&failing), "{failing} {first:?}");
    let first = first.unwrap();
    assert!(
        first.contains("lru_hit") || first.contains("ipv4[0].dst"),
        "named by its counters or by the real it went to: {first}"
    );
    let batch: Vec<String> = after.iter().map(Finding::to_string).collect();
    assert!(
        batch
            .iter()
            .filter(|f| f.contains("together moved") && f.contains("lru_hit +"))
            .count()
            == 1,
        "{batch:?}"
    );
    // At capacity every miss may be an eviction (which entries the
    // kernel's LRU drops is its own bookkeeping), but a table the kernel
    // left empty was never full: what the model has and it lacks is a
    // finding.
    let (failing, first, after, _) = outcome(&run(&scenario(&program, FLOWS)));
    assert_eq!((failing, first), (0, None));
    let table: Vec<String> = after.iter().map(Finding::to_string).collect();
    assert!(
        table
            .iter()
            .any(|f| f.contains("connection table on CPU") && f.contains("actual none")),
        "{table:?}"
    );
}

/// The same traffic on two lanes, one per CPU, each with its own model of
/// its CPU's view of the table: the table's keys are the lanes' flows
/// together, so each lane accepts evictions the other's inserts caused, and
/// nothing else.
#[test]
fn three_times_the_table_passes_on_two_cpus_and_the_defect_is_caught() {
    let name = "three_times_the_table_passes_on_two_cpus_and_the_defect_is_caught";
    if skip(name) {
        return;
    }
    if dsrlab::runner::cpu_pin::CpuPin::allowed().unwrap().len() < 2 {
        let _ = writeln!(
            std::io::stderr(),
            "skipped {name}: the process may use one CPU only"
        );
        return;
    }
    let options = RunOptions {
        workers: 2,
        ..RunOptions::default()
    };
    let on_two = |s: &LoadedScenario| runner::run(s, &options, &mut || {});
    let report = on_two(&scenario("  - builtin: xdp_lb\n", FLOWS));
    let (failing, first, after, evicted) = outcome(&report);
    assert_eq!((failing, first), (0, None));
    assert!(after.is_empty(), "{after:?}");
    assert!(
        evicted > 0,
        "no eviction was needed: the test proves nothing"
    );
    assert_eq!(report.passed(), 2 * FLOWS as usize + 2000);
    // Both CPUs' tables were judged against their lanes' models.
    let dir = tempfile::tempdir().unwrap();
    let program = defect_program(dir.path());
    let (failing, _, after, _) = outcome(&on_two(&scenario(&program, 100)));
    assert!(failing > 0, "the defect passed on two CPUs");
    let tables: Vec<String> = after
        .iter()
        .map(Finding::to_string)
        .filter(|f| f.contains("connection table on CPU"))
        .collect();
    assert_eq!(tables.len(), 2, "{tables:?}");
}

/// The fuzzer's capacity case: the kept flows keep their real across the
/// ring change, the evicted ones are re-selected, and nothing else differs.
#[test]
fn the_fuzzers_capacity_case_agrees_with_the_model() {
    if skip("the_fuzzers_capacity_case_agrees_with_the_model") {
        return;
    }
    let options = fuzz::FuzzOptions {
        packets: 1,
        capacity: true,
        ..fuzz::FuzzOptions::default()
    };
    let report = fuzz::run(&options, &mut |_| {}).unwrap_or_else(|e| panic!("{e}"));
    assert!(report.mismatch.is_none(), "{report}");
    let second_pass = u64::from(fuzz::capacity::FLOWS);
    assert_eq!(report.total(), 2 * second_pass);
    // Some flows of the second pass were evicted, not all: the table kept
    // the most recent ones.
    assert!(
        (1..second_pass).contains(&report.evicted),
        "{} evicted of {second_pass}",
        report.evicted
    );
}
