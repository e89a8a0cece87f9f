//! The lb oracle is not blind: scenarios whose datapath was given something
//! the reference model was not (a configuration, a real, a connection-table
//! entry written behind the control plane's back through `maps:`) fail, with
//! findings that say what differs; one flipped output byte, a wrong verdict
//! or a counter too many is reported by `oracles::lb::judge`. And the
//! runner's lb specifics: `lb_changes` before a `--packet` run, the CPU
//! affinity restored afterwards.
//!
//! Needs root and the `xdp_lb` object; says so and skips without them.

mod common;

use std::path::Path;

use dsrlab::{
    datapath,
    formats::{
        fixture::Quirks,
        scenario::load::{LoadedScenario, load_str},
    },
    lb::{Lb, LbSettings, Proto, VipSpec, control::Counters, model::XDP_DROP},
    oracles::{Finding, lb},
    runner::scenario::{self as runner, RunOptions, ScenarioReport},
    testrun,
};
use dsrlab_abi::lb::Counter;

fn skip_reason() -> Option<String> {
    if datapath::XDP_LB.elf.is_empty() {
        return Some("the xdp_lb object is empty (built with AYA_BUILD_SKIP=1)".into());
    }
    if let Err(e) = dsrlab::kernel::check_bpf_capabilities() {
        return Some(e.to_string());
    }
    None
}

macro_rules! skip_without_kernel {
    ($name:literal) => {
        if let Some(reason) = skip_reason() {
            eprintln!("SKIPPED {}: {reason}", $name);
            return;
        }
    };
}

/// One load balancer (VIP 198.18.0.10:80/tcp, reals 198.18.10.1 and .2),
/// `extra` indented under the program, and TCP connections of two packets.
fn scenario(extra: &str) -> LoadedScenario {
    let text = format!(
        "version: 1
programs:
  - builtin: xdp_lb
    lb:
      ring_size: 13
      vips:
        - vip: 198.18.0.10:80/tcp
          reals: [198.18.10.1, 198.18.10.2]
{extra}traffic:
  - name: tcp
    generate: {{flows: 4, packets_per_flow: 2, src: 198.18.2.1, sport: 40000-40003, dst: 198.18.0.10}}
"
    );
    load_str(&text, Path::new("tests/data/scenarios/t.yaml")).unwrap_or_else(|e| panic!("{e}"))
}

/// The per-packet and after findings of the scenario's only run.
fn findings(report: &ScenarioReport) -> common::RunFindings {
    common::findings(report).swap_remove(0)
}

fn run(scenario: &LoadedScenario) -> ScenarioReport {
    runner::run(scenario, &RunOptions::default(), &mut || {})
}

/// `LB_CONFIG[0]` as the datapath reads it, in hex.
fn config_hex(settings: &LbSettings) -> String {
    let c = settings.config();
    let mut bytes = Vec::new();
    bytes.extend(c.gateway_mac);
    bytes.extend(c.gue_port.to_le_bytes());
    bytes.extend(c.hash_seed.to_le_bytes());
    bytes.extend(c.mtu.to_le_bytes());
    bytes.extend(c.flags.to_le_bytes());
    bytes.extend(c.src_v4_prefix);
    bytes.extend(c.src_v6_prefix);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_unchanged_scenario_passes() {
    skip_without_kernel!("the_unchanged_scenario_passes");
    let report = run(&scenario(""));
    assert!(report.ok(), "{:?}", findings(&report));
    assert_eq!(report.passed(), 8);
}

#[test]
fn a_datapath_configured_otherwise_than_the_model_is_caught() {
    skip_without_kernel!("a_datapath_configured_otherwise_than_the_model_is_caught");
    // The same settings but another gateway MAC and hash seed, written
    // over LB_CONFIG after the control plane wrote its own.
    let other = LbSettings {
        ring_size: 13,
        hash_seed: 99,
        gateway_mac: [2, 0, 0, 0, 0, 0xee],
        ..LbSettings::default()
    };
    let s = scenario(&format!(
        "    maps:\n      LB_CONFIG: [{{key: '00000000', value: '{}'}}]\n",
        config_hex(&other)
    ));
    let report = run(&s);
    assert!(!report.ok());
    let (packets, _) = findings(&report);
    assert_eq!(packets.len(), 8, "every packet is sent to another MAC");
    for (name, f) in &packets {
        let Some(Finding::Output(diff)) = f.first() else {
            panic!("{name}: {f:?}");
        };
        assert!(
            diff.contains("eth.dst: expected 02:00:00:00:00:fe, actual 02:00:00:00:00:ee"),
            "{name}: {diff}"
        );
        // The outer source carries the flow hash, which the seed changed.
        assert!(diff.contains("ipv4[0].src"), "{name}: {diff}");
    }
}

#[test]
fn a_real_moved_behind_the_models_back_is_caught() {
    skip_without_kernel!("a_real_moved_behind_the_models_back_is_caught");
    // LB_REALS[1] (198.18.10.1) now says 198.18.10.99.
    let s = scenario(
        "    maps:\n      LB_REALS: [{key: '01000000', value: 'c6120a63 000000000000000000000000 04000000'}]\n",
    );
    let report = run(&s);
    let (packets, _) = findings(&report);
    assert!(!packets.is_empty(), "the model did not notice");
    for (name, f) in &packets {
        let text: Vec<String> = f.iter().map(ToString::to_string).collect();
        assert!(
            text.iter()
                .any(|t| t.contains("ipv4[0].dst: expected 198.18.10.1, actual 198.18.10.99")),
            "{name}: {text:?}"
        );
    }
}

#[test]
fn connection_table_entries_the_model_never_saw_are_caught() {
    skip_without_kernel!("connection_table_entries_the_model_never_saw_are_caught");
    // A UDP VIP (reals 1 and 2) and another VIP whose real 198.18.10.3 is
    // id 3; each UDP flow of the traffic is pinned to real 3 in LB_LRU
    // before any packet, which the model's (empty) table does not know.
    let entry = |sport: u16, real: u8| {
        format!(
            "{{key: 'c6120201 000000000000000000000000 c612000a 000000000000000000000000 {sport:04x} 0035 11 04 0000', value: '{real:02x}000000 00000000'}}"
        )
    };
    let text = |entries: &[String]| {
        format!(
            "version: 1
programs:
  - builtin: xdp_lb
    lb:
      ring_size: 13
      vips:
        - vip: 198.18.0.10:53/udp
          reals: [198.18.10.1, 198.18.10.2]
        - vip: 198.18.0.11:53/udp
          reals: [198.18.10.3]
    maps:
      LB_LRU: [{}]
traffic:
  - name: udp
    generate: {{flows: 4, protocols: [udp], src: 198.18.2.1, sport: 40000-40003, dst: 198.18.0.10, dport: 53}}
",
            entries.join(", ")
        )
    };
    let load = |entries: &[String]| {
        load_str(&text(entries), Path::new("tests/data/scenarios/t.yaml"))
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let pinned: Vec<String> = (40000..=40003).map(|p| entry(p, 3)).collect();
    let report = run(&load(&pinned));
    let (packets, after) = findings(&report);
    assert_eq!(packets.len(), 4, "{packets:?}");
    for (name, f) in &packets {
        let text: Vec<String> = f.iter().map(ToString::to_string).collect();
        assert!(
            text.iter()
                .any(|t| t.contains("ipv4[0].dst: expected 198.18.10.")
                    && t.contains("actual 198.18.10.3")),
            "{name}: {text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t == "counters: expected tx +1, lru_miss +1, actual tx +1, lru_hit +1"),
            "{name}: {text:?}"
        );
    }
    let after: Vec<String> = after.iter().map(ToString::to_string).collect();
    assert!(
        after.iter().any(|t| t.contains(
            "real 198.18.10.3: expected 0 packets, 0 bytes (as the model counted them), actual 4 packets"
        )),
        "{after:?}"
    );
    assert!(
        after
            .iter()
            .any(|t| t.contains("connection table on CPU") && t.contains("4 of 4 flows differ")),
        "{after:?}"
    );

    // An entry of a flow the traffic never sends changes no packet, but the
    // table at the end is not the model's.
    let (packets, after) = findings(&run(&load(&[entry(40100, 1)])));
    assert!(packets.is_empty(), "{packets:?}");
    assert_eq!(after.len(), 1, "{after:?}");
    let text = after[0].to_string();
    assert!(
        text.contains("198.18.2.1:40100 > 198.18.0.10:53 udp: expected none, actual real 1"),
        "{text}"
    );
}

#[test]
fn a_flipped_byte_a_wrong_verdict_and_a_counter_too_many_are_reported() {
    skip_without_kernel!("a_flipped_byte_a_wrong_verdict_and_a_counter_too_many_are_reported");
    let settings = LbSettings {
        ring_size: 13,
        ..LbSettings::default()
    };
    let mut lb = Lb::load(datapath::XDP_LB, settings).unwrap();
    let spec = VipSpec {
        addr: "198.18.0.10".parse().unwrap(),
        port: 80,
        proto: Proto::Tcp,
        flags: 0,
    };
    lb.add_vip(spec).unwrap();
    lb.add_real(&spec.vip(), "198.18.10.1".parse().unwrap(), 1)
        .unwrap();
    let mut model = lb.model_state();
    let s = scenario("");
    let frame = &s.packets.get(0).unwrap().bytes.clone();
    let counters = |lb: &Lb| -> Counters { lb.counters().unwrap() };
    let before = counters(&lb);
    let run = testrun::run(lb.program(), frame, Quirks::default());
    let deltas = lb::counter_deltas(&before, &counters(&lb));
    let expected = model.process(frame);
    assert_eq!(lb::judge(&expected, &run, &deltas, 6080), []);
    assert_eq!(deltas, [(Counter::Tx, 1), (Counter::LruMiss, 1)]);

    // One byte of the output: the outer TTL (Ethernet 14 + 8).
    let mut flipped = run.as_ref().unwrap().clone();
    flipped.output[22] ^= 1;
    let f = lb::judge(&expected, &Ok(flipped), &deltas, 6080);
    assert_eq!(f.len(), 1, "{f:?}");
    let text = f[0].to_string();
    assert!(
        text.contains("ipv4[0].ttl: expected 64, actual 65"),
        "{text}"
    );

    // Another verdict (and nothing compared of a drop's bytes).
    let mut dropped = run.as_ref().unwrap().clone();
    dropped.verdict = XDP_DROP;
    let f = lb::judge(&expected, &Ok(dropped), &deltas, 6080);
    assert!(
        matches!(&f[0], Finding::Verdict { actual, .. } if *actual == XDP_DROP),
        "{f:?}"
    );

    // A counter too many.
    let mut more = deltas.clone();
    more.push((Counter::DropNoReal, 1));
    let f = lb::judge(&expected, &run, &more, 6080);
    assert_eq!(
        f.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["counters: expected tx +1, lru_miss +1, actual tx +1, lru_miss +1, drop_no_real +1"]
    );
}

#[test]
fn one_packet_runs_after_the_changes_of_the_streams_before_it() {
    skip_without_kernel!("one_packet_runs_after_the_changes_of_the_streams_before_it");
    let text = "version: 1
programs:
  - builtin: xdp_lb
    lb:
      ring_size: 13
      vips:
        - vip: 198.18.0.10:53/udp
          reals: [198.18.10.1]
traffic:
  - name: before
    generate: {flows: 2, protocols: [udp], dst: 198.18.0.10, dport: 53}
  - name: after
    lb_changes:
      - add_real: {vip: 198.18.0.10:53/udp, addr: 198.18.10.2}
      - set_weight: {vip: 198.18.0.10:53/udp, addr: 198.18.10.1, weight: 0}
    generate: {flows: 2, protocols: [udp], dst: 198.18.0.10, dport: 53, seed: 1}
    expect: {fields: {\"ipv4[0].dst\": 198.18.10.2}}
";
    let s = load_str(text, Path::new("tests/data/scenarios/t.yaml")).unwrap();
    for packet in 1..=4 {
        let options = RunOptions {
            packet: Some(packet),
            ..RunOptions::default()
        };
        let report = runner::run(&s, &options, &mut || {});
        assert!(report.ok(), "packet {packet}: {:?}", findings(&report));
        assert_eq!(report.passed(), 1);
    }
}

#[test]
fn the_run_leaves_the_threads_cpu_affinity_as_it_was() {
    skip_without_kernel!("the_run_leaves_the_threads_cpu_affinity_as_it_was");
    let affinity = || {
        // SAFETY: cpu_set_t is plain data, written by the kernel.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            assert_eq!(
                libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set),
                0
            );
            (0..libc::CPU_SETSIZE as usize)
                .filter(|c| libc::CPU_ISSET(*c, &set))
                .collect::<Vec<_>>()
        }
    };
    let before = affinity();
    assert!(run(&scenario("")).ok());
    assert_eq!(affinity(), before);
}
