//! A user's own datapath, first class: a libbpf-style object
//! (`examples/libbpf-tc`, compiled by clang in `ci/setup`) with `SEC("tc")`
//! and `SEC("tcx/ingress")` programs, a program array filled with a program
//! of the same object, an LPM trie, a context given and read back, inline
//! packets and whole expected output packets, and programs of the same name
//! from two objects told apart.
//!
//! Needs the capabilities to load BPF programs (CI runs as root).

use std::path::{Path, PathBuf};

mod common;

use common::findings;
use dsrlab::{
    formats::scenario::load::{LoadedScenario, load_str},
    oracles::Finding,
    runner::scenario::{self as runner, RunOptions, ScenarioReport},
};

fn example() -> PathBuf {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/libbpf-tc/tc_policy.bpf.o");
    assert!(
        path.exists(),
        "{} is missing: run ci/setup, which compiles examples/libbpf-tc/tc_policy.c with clang",
        path.display()
    );
    path
}

fn skip_reason() -> Option<String> {
    dsrlab::kernel::check_bpf_capabilities()
        .err()
        .map(|e| e.to_string())
}

macro_rules! skip_without_kernel {
    ($name:literal) => {
        if let Some(reason) = skip_reason() {
            eprintln!("SKIPPED {}: {reason}", $name);
            return;
        }
    };
}

/// `program` of the example with the policy's maps: 198.18.1.1 dropped,
/// 198.18.1.2 passed with mark 0x77 and priority 3, passes counted by a
/// tail call into `tc_account` when `tail` is set.
fn program(program: &str, tail: bool) -> String {
    let next = if tail {
        "      next:\n        - {key: '00000000', program: tc_account}\n"
    } else {
        ""
    };
    format!(
        "  - object: {}
    program: {program}
    maps:
{next}      rules:
        - {{key: '20000000 c6120101', value: '01000000 00000000 00000000'}}
        - {{key: '20000000 c6120102', value: '00000000 77000000 03000000'}}
",
        example().display()
    )
}

fn load(text: &str) -> Result<LoadedScenario, String> {
    load_str(text, Path::new("tests/data/scenarios/t.yaml")).map_err(|e| e.to_string())
}

fn scenario(programs: &str, rest: &str) -> LoadedScenario {
    let text = format!("version: 1\nprograms:\n{programs}modes: [test-run]\n{rest}");
    load(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn run(scenario: &LoadedScenario) -> ScenarioReport {
    runner::run(scenario, &RunOptions::default(), &mut || {})
}

const POLICY_TRAFFIC: &str = "traffic:
  - name: dropped
    generate: {flows: 2, protocols: [udp], src: 198.18.1.1}
    expect: {verdict: TC_ACT_SHOT}
  - name: marked
    generate: {flows: 2, protocols: [udp], src: 198.18.1.2}
    expect: {verdict: TC_ACT_OK, ctx: {mark: 0x77, priority: 3}}
after:
  maps:
    # tallies[0]: 2 packets passed through the tail call, 116 bytes
    - {map: tallies, key: '00000000', value: '0200000000000000 7400000000000000'}
";

#[test]
fn libbpf_tc_and_tcx_sections_load_and_tail_call_through_a_filled_program_array() {
    skip_without_kernel!(
        "libbpf_tc_and_tcx_sections_load_and_tail_call_through_a_filled_program_array"
    );
    let programs = program("tc_policy", true) + &program("tcx_policy", true);
    let report = run(&scenario(&programs, POLICY_TRAFFIC));
    assert!(report.ok(), "{:?}", findings(&report));
    assert_eq!(report.passed(), 8);
    assert_eq!(
        report
            .runs
            .iter()
            .map(|r| r.program.as_str())
            .collect::<Vec<_>>(),
        ["tc_policy", "tcx_policy"]
    );
}

#[test]
fn without_its_program_array_entry_the_tail_call_counts_nothing() {
    skip_without_kernel!("without_its_program_array_entry_the_tail_call_counts_nothing");
    let report = run(&scenario(&program("tc_policy", false), POLICY_TRAFFIC));
    let runs = findings(&report);
    let (packets, after) = &runs[0];
    assert!(packets.is_empty(), "{packets:?}");
    assert!(
        matches!(&after[..], [Finding::State { at, .. }] if at == "map tallies key 00000000"),
        "{after:?}"
    );
}

#[test]
fn the_context_is_given_and_a_wrong_one_is_named_field_by_field() {
    skip_without_kernel!("the_context_is_given_and_a_wrong_one_is_named_field_by_field");
    // bypass_mark (0xffffffff) passes untouched; a marked packet from a
    // source without a rule gets default_mark (0) and keeps its cb.
    let traffic = "traffic:
  - name: bypass
    generate: {flows: 1, protocols: [udp], src: 198.18.1.1}
    ctx: {mark: 0xffffffff, cb: [7, 8]}
    expect: {verdict: TC_ACT_OK, ctx: {mark: 0xffffffff, cb: [7, 8, 0]}}
  - name: wrong
    generate: {flows: 1, protocols: [udp], src: 198.18.1.2}
    ctx: {mark: 5, priority: 1}
    expect: {verdict: TC_ACT_OK, ctx: {mark: 0x78, priority: 3}}
";
    let report = run(&scenario(&program("tc_policy", true), traffic));
    let runs = findings(&report);
    let (packets, _) = &runs[0];
    assert_eq!(packets.len(), 1, "{packets:?}");
    let (name, f) = &packets[0];
    assert_eq!(name, "wrong/flow-1");
    assert_eq!(
        f,
        &[Finding::Field {
            path: "skb.mark".into(),
            expected: "120 (0x78)".into(),
            actual: Some("119 (0x77)".into()),
        }]
    );
}

#[test]
fn context_fields_a_program_does_not_have_are_refused_when_loading() {
    let tc = program("tc_policy", true);
    let xdp = "  - builtin: xdp_pass\n";
    let one_flow = "    generate: {flows: 1}\n";
    for (programs, traffic, wanted) in [
        (
            xdp,
            format!("traffic:\n  - ctx: {{mark: 1}}\n{one_flow}"),
            "`mark` is a field of an skb program's context; `xdp_pass` has none",
        ),
        (
            tc.as_str(),
            format!("traffic:\n  - ctx: {{rx_queue_index: 0}}\n{one_flow}"),
            "`rx_queue_index` is a field of an XDP program's context",
        ),
        (
            tc.as_str(),
            format!("traffic:\n  - ctx: {{cb: [1, 2, 3, 4, 5, 6]}}\n{one_flow}"),
            "`cb` has 5 words; 6 are given",
        ),
        (
            xdp,
            format!("traffic:\n  - expect: {{ctx: {{ingress_ifindex: 1}}}}\n{one_flow}"),
            "`expect.ctx` checks the skb's context after a TC program; `xdp_pass` is not one",
        ),
    ] {
        let text = format!("version: 1\nprograms:\n{programs}{traffic}");
        let err = load(&text).unwrap_err();
        assert!(err.contains(wanted), "{err}\n{text}");
    }
    let live_only = format!(
        "version: 1\nprograms:\n{tc}modes: [netns]\ntraffic:\n  - ctx: {{mark: 1}}\n{one_flow}"
    );
    let err = load(&live_only).unwrap_err();
    assert!(err.contains("add test-run to `modes`"), "{err}");
}

#[test]
fn map_entries_must_fit_the_kind_of_map() {
    // A ring buffer in an object of its own: the examples have none.
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("ring.c");
    std::fs::write(
        &source,
        "#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\nstruct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); } events SEC(\".maps\");\nSEC(\"xdp\") int ring(struct xdp_md *ctx) { bpf_ringbuf_output(&events, ctx, 1, 0); return XDP_PASS; }\nchar LICENSE[] SEC(\"license\") = \"GPL\";\n",
    )
    .unwrap();
    let object = dir.path().join("ring.o");
    let built = std::process::Command::new("clang")
        .args(["-O2", "-g", "-target", "bpf"])
        .arg(format!(
            "-I/usr/include/{}-linux-gnu",
            std::env::consts::ARCH
        ))
        .args([
            "-c",
            source.to_str().unwrap(),
            "-o",
            object.to_str().unwrap(),
        ])
        .status()
        .expect("clang runs (ci/setup installs it)");
    assert!(built.success());
    let err = load(&format!(
        "version: 1\nprograms:\n  - object: {}\n    program: ring\n    maps:\n      events: [{{key: 0, value: 0}}]\ntraffic:\n  - generate: {{flows: 1}}\n",
        object.display()
    ))
    .unwrap_err();
    assert!(
        err.contains("map `events` is a ring buffer (it has no entries, only records): `maps:` cannot write entries into it"),
        "{err}"
    );

    let object = example().display().to_string();
    for (maps, wanted) in [
        (
            "next: [{key: '00000000', value: '00000000'}]",
            "map `next` is a program array: write `program: <name>` instead of `value`",
        ),
        (
            "rules: [{key: '20000000 c6120101', program: tc_account}]",
            "`program` fills program arrays; map `rules` is not one",
        ),
        (
            "next: [{key: '00000000', program: tc_nothing}]",
            "program `tc_nothing` is not in",
        ),
        (
            "next: [{key: '00000000', program: tc_account, value: '00'}]",
            "exactly one of `value`, `program`",
        ),
        (
            "tallies: [{key: '00000000', map: rules}]",
            "`map` fills arrays and hashes of maps; map `tallies` is not one",
        ),
        (
            "next: [{key: 1, program: tc_account}]",
            "map `next` is an array of 1 entries (max_entries): index 1 is beyond it",
        ),
        (
            "tallies: [{key: 0, value: {}}, {key: 1, value: {}}, {key: 1, value: {}}]",
            "map `tallies` holds at most 2 entries (max_entries); 3 are given",
        ),
    ] {
        let text = format!(
            "version: 1\nprograms:\n  - object: {object}\n    program: tc_policy\n    maps:\n      {maps}\ntraffic:\n  - generate: {{flows: 1}}\n"
        );
        let err = load(&text).unwrap_err();
        assert!(err.contains(wanted), "{err}\n{text}");
    }
}

#[test]
fn inline_packets_and_whole_expected_packets() {
    skip_without_kernel!("inline_packets_and_whole_expected_packets");
    let traffic = "traffic:
  - name: inline
    expect: {verdict: pass}
    inline:
      - name: blocked
        layers: [eth, {ipv4: {src: 198.18.1.1}}, udp]
        expect: {verdict: drop}
      - name: same
        layers: [eth, {ipv4: {src: 198.18.1.9, ttl: 9}}, {udp: {dport: 53}}]
        also_expect:
          packet: {layers: [eth, {ipv4: {src: 198.18.1.9, ttl: 9}}, {udp: {dport: 53}}]}
      - name: other
        layers: [eth, {ipv4: {src: 198.18.1.9}}, {udp: {dport: 53}}]
        also_expect:
          packet: {layers: [eth, {ipv4: {src: 198.18.1.9, ttl: 9}}, {udp: {dport: 53}}]}
";
    let s = scenario(&program("tc_policy", true), traffic);
    assert_eq!(
        s.packets
            .iter()
            .map(|p| (p.name.clone(), p.expect.as_ref().unwrap().verdict.clone()))
            .collect::<Vec<_>>(),
        [
            ("blocked".to_owned(), Some("drop".to_owned())),
            ("same".to_owned(), Some("pass".to_owned())),
            ("other".to_owned(), Some("pass".to_owned()))
        ],
        "`expect` replaces the stream's, `also_expect` adds to it"
    );
    let runs = findings(&run(&s));
    let (packets, _) = &runs[0];
    assert_eq!(packets.len(), 1, "{packets:?}");
    assert_eq!(packets[0].0, "inline/other");
    assert!(
        matches!(&packets[0].1[..], [Finding::Output(diff)] if diff.contains("ttl")),
        "{packets:?}"
    );
}

#[test]
fn bad_inline_packets_are_refused_with_their_place() {
    let tc = program("tc_policy", true);
    for (traffic, wanted) in [
        (
            "  - inline: [{layers: [eth, {ipv5: {}}]}]\n",
            "t.yaml:12:23: not a packet recipe: unknown variant `ipv5`",
        ),
        (
            "  - inline: [{layers: [eth, ipv4]}]\n    generate: {flows: 1}\n",
            "a stream has both `generate` and `inline`",
        ),
        (
            "  - inline: [{layers: [eth, ipv4]}]\n    packets: {1: {quirks: {linear: 20}}}\n",
            "packet 1 is written inline",
        ),
        (
            "  - inline: [{layers: [eth, ipv4], expect: {verdict: pass}, also_expect: {verdict: drop}}]\n",
            "give `expect` (replaces the stream's expectation) or `also_expect`",
        ),
        (
            "  - inline: [{layers: [eth, ipv4], expect: {output: unchanged, packet: {layers: [eth]}}}]\n",
            "`packet` is the whole output packet",
        ),
    ] {
        let text = format!("version: 1\nprograms:\n{tc}traffic:\n{traffic}");
        let err = load(&text).unwrap_err();
        assert!(err.contains(wanted), "{err}\n{text}");
    }
}

#[test]
fn programs_of_one_name_from_two_objects_get_distinct_labels() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("broken")).unwrap();
    std::fs::copy(example(), dir.path().join("good.o")).unwrap();
    std::fs::copy(example(), dir.path().join("broken/good.o")).unwrap();
    std::fs::copy(example(), dir.path().join("other.o")).unwrap();
    let entry = |object: &str, label: &str| {
        format!("  - object: {object}\n    program: tc_policy\n{label}")
    };
    let text = |programs: String| {
        format!("version: 1\nprograms:\n{programs}traffic:\n  - generate: {{flows: 1}}\n")
    };
    let at = dir.path().join("s.yaml");
    let names = |programs: String| {
        load_str(&text(programs), &at)
            .map(|s| {
                s.programs
                    .iter()
                    .map(|p| p.name.clone())
                    .collect::<Vec<_>>()
            })
            .map_err(|e| e.to_string())
    };
    assert_eq!(
        names(entry("good.o", "") + &entry("other.o", "")).unwrap(),
        ["tc_policy@good.o", "tc_policy@other.o"]
    );
    assert_eq!(
        names(entry("good.o", "") + &entry("broken/good.o", "")).unwrap(),
        ["tc_policy@good.o", "tc_policy@broken/good.o"]
    );
    assert_eq!(
        names(entry("good.o", "    label: good\n") + &entry("broken/good.o", "")).unwrap(),
        ["good", "tc_policy"]
    );
    let err =
        names(entry("good.o", "    label: x\n") + &entry("other.o", "    label: x\n")).unwrap_err();
    assert!(
        err.contains("programs[0] and programs[1] are both labelled `x`"),
        "{err}"
    );
}

#[test]
fn an_object_with_a_section_aya_does_not_know_says_which_names_it_reads() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(example()).unwrap();
    // Every `tcx/ingress` (the section's name and its relocations') becomes
    // a name no loader knows.
    let from = b"tcx/ingress";
    let mut i = 0;
    while let Some(at) = bytes[i..].windows(from.len()).position(|w| w == from) {
        bytes[i + at..i + at + 3].copy_from_slice(b"nkx");
        i += at + from.len();
    }
    std::fs::write(dir.path().join("odd.o"), bytes).unwrap();
    let text = "version: 1\nprograms:\n  - object: odd.o\n    program: tc_policy\ntraffic:\n  - generate: {flows: 1}\n";
    let err = load_str(text, &dir.path().join("s.yaml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("invalid program section `nkx/ingress`")
            && err.contains("tcx/ingress, tcx/egress"),
        "{err}"
    );
}

/// The policy with typed keys, values and globals: `default_mark` set by
/// name, rules written as the structs the object's BTF declares.
fn typed_program() -> String {
    format!(
        "  - object: {}
    program: tc_policy
    globals:
      default_mark: 0x10
    maps:
      next:
        - {{key: 0, program: tc_account}}
      rules:
        - {{key: {{prefixlen: 32, addr: 198.18.1.1}}, value: {{action: ACTION_DROP}}}}
        - {{key: {{prefixlen: 24, addr: 198.18.2.0}}, value: {{action: ACTION_PASS, mark: 0x77, priority: 3}}}}
",
        example().display()
    )
}

const TYPED_TRAFFIC: &str = "traffic:
  - name: dropped
    generate: {flows: 2, protocols: [udp], src: 198.18.1.1}
    expect: {verdict: TC_ACT_SHOT}
  - name: marked
    generate: {flows: 2, protocols: [udp], src: 198.18.2.9}
    expect: {verdict: TC_ACT_OK, ctx: {mark: 0x77, priority: 3}}
  - name: default
    generate: {flows: 1, protocols: [udp], src: 198.18.3.9}
    expect: {verdict: TC_ACT_OK, ctx: {mark: 0x10}}
";

#[test]
fn typed_keys_values_and_globals_are_written_and_checked_field_by_field() {
    skip_without_kernel!("typed_keys_values_and_globals_are_written_and_checked_field_by_field");
    let after = "after:
  globals:
    last_rule_mark: 0x77
    passed_total: 3
  maps:
    - {map: tallies, key: 0, value: {packets: 3, bytes: 174}}
    - {map: tallies, key: 1, value: {packets: 2}}
    - {map: rules, key: {prefixlen: 32, addr: 198.18.1.1}, value: {action: ACTION_DROP}}
";
    let report = run(&scenario(
        &typed_program(),
        &format!("{TYPED_TRAFFIC}{after}"),
    ));
    assert!(report.ok(), "{:?}", findings(&report));
    // Wrong on purpose: one member of a struct, an enumerator, a global.
    let wrong = "after:
  globals:
    passed_total: 4
  maps:
    - {map: tallies, key: 1, value: {packets: 2, bytes: 117}}
    - {map: rules, key: {prefixlen: 32, addr: 198.18.1.1}, value: {action: ACTION_PASS}}
";
    let report = run(&scenario(
        &typed_program(),
        &format!("{TYPED_TRAFFIC}{wrong}"),
    ));
    let runs = findings(&report);
    let after: Vec<String> = runs[0].1.iter().map(ToString::to_string).collect();
    assert_eq!(
        after,
        [
            "after the run: map tallies key 1.bytes: expected 117, actual 116",
            "after the run: map rules key {\"addr\":\"198.18.1.1\",\"prefixlen\":32}.action: \
             expected ACTION_PASS, actual ACTION_DROP",
            "after the run: global passed_total: expected 4, actual 3",
        ]
    );
}

#[test]
fn typed_values_are_checked_against_the_btf_when_loading() {
    let object = example().display().to_string();
    let load_with = |program_extra: &str, after: &str| {
        load(&format!(
            "version: 1\nprograms:\n  - object: {object}\n    program: tc_policy\n{program_extra}traffic:\n  - generate: {{flows: 1}}\n{after}"
        ))
        .unwrap_err()
    };
    for (extra, after, wanted) in [
        (
            "    globals: {no_such: 1}\n",
            "",
            "has no global `no_such`; it has: bypass_mark, default_mark, last_rule_mark, passed_total",
        ),
        (
            "    globals: {default_mark: 0x100000000}\n",
            "",
            "global default_mark: 4294967296 does not fit",
        ),
        (
            "    maps:\n      rules: [{key: {prefixlen: 32, adr: 198.18.1.1}, value: {}}]\n",
            "",
            "unknown member `adr`",
        ),
        (
            "    maps:\n      rules: [{key: {prefixlen: 32, addr: 198.18.1.1}, value: {action: ACTION_MAYBE}}]\n",
            "",
            "unknown enumerator `ACTION_MAYBE`",
        ),
        (
            "",
            "after:\n  globals: {default_mark: 1}\n",
            "`default_mark` is in .rodata, which is read-only once loaded",
        ),
        (
            "",
            "after:\n  maps: [{map: rules, key: {prefixlen: 32, addr: 198.18.1.1}, per_cpu: [{}]}]\n",
            "map `rules` is not a per-CPU map",
        ),
    ] {
        let err = load_with(extra, after);
        assert!(err.contains(wanted), "{err}\n{extra}{after}");
    }
}

#[test]
fn a_wrong_verdict_names_what_the_packet_counted() {
    skip_without_kernel!("a_wrong_verdict_names_what_the_packet_counted");
    let traffic = "traffic:
  - name: blocked
    generate: {flows: 1, protocols: [udp], src: 198.18.1.1}
    expect: {verdict: pass}
";
    let runs = findings(&run(&scenario(&typed_program(), traffic)));
    let (packets, _) = &runs[0];
    let shown: Vec<String> = packets[0].1.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "verdict: expected pass, actual TC_ACT_SHOT (counters moved: tallies[1] \
          {\"bytes\":58,\"packets\":1})"
        ]
    );
}

#[test]
fn per_cpu_values_are_checked_cpu_by_cpu_on_the_cpu_test_runs_use() {
    skip_without_kernel!("per_cpu_values_are_checked_cpu_by_cpu_on_the_cpu_test_runs_use");
    // Test runs run on the first CPU the process may use.
    let first = dsrlab::bench::first_allowed_cpu().unwrap();
    let mut cpus = vec!["{packets: 0, bytes: 0}"; first];
    cpus.push("{packets: 2, bytes: 116}");
    let after = format!(
        "after:\n  maps:\n    - {{map: tallies, key: 1, per_cpu: [{}]}}\n",
        cpus.join(", ")
    );
    let traffic = "traffic:
  - generate: {flows: 2, protocols: [udp], src: 198.18.1.1}
    expect: {verdict: drop}
";
    let report = run(&scenario(&typed_program(), &format!("{traffic}{after}")));
    assert!(report.ok(), "{:?}", findings(&report));
    let wrong = after.replace("packets: 2,", "packets: 3,");
    let report = run(&scenario(&typed_program(), &format!("{traffic}{wrong}")));
    let shown: Vec<String> = findings(&report)[0]
        .1
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        shown,
        [format!(
            "after the run: map tallies key 1 on CPU {first}.packets: expected 3, actual 2"
        )]
    );
}
