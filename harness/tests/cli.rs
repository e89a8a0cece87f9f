//! The `dsrlab` binary as users and CI call it: exit codes, what goes to
//! stdout and stderr, files written.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn dsrlab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dsrlab"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("dsrlab runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A scenario directory inside the repository, so that `../fixtures` in a
/// scaffolded scenario resolves as it does in scenarios/; removed on drop.
fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(".dsrlab-test-")
        .tempdir_in(repo())
        .unwrap()
}

#[test]
fn check_names_file_line_and_column_and_exits_2() {
    let dir = scratch();
    let path = dir.path().join("broken.yaml");
    std::fs::write(
        &path,
        "version: 1\nprograms:\n  - builtin: xdp_decap\ntraffic:\n  - fixture: ../fixtures/decap-tunnels.yaml\n    expct: {verdict: pass}\n",
    )
    .unwrap();
    let out = dsrlab(&["check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("broken.yaml:6:5:"), "{stderr}");
    assert!(stderr.contains("unknown key `expct`"), "{stderr}");
}

#[test]
fn new_scaffolds_a_scenario_that_checks_and_runs() {
    let dir = scratch();
    let dir_arg = dir.path().to_str().unwrap();
    let out = dsrlab(&["new", "mine", "--dir", dir_arg]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let file = dir.path().join("mine.yaml");
    let scaffold = std::fs::read_to_string(&file).unwrap();
    assert!(scaffold.starts_with("# yaml-language-server: $schema="));
    let out = dsrlab(&["check", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = dsrlab(&["run", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains(" 0 failed"),
        "{}",
        text(&out.stdout)
    );
    // Never overwrites.
    let again = dsrlab(&["new", "mine", "--dir", dir_arg]);
    assert_eq!(again.status.code(), Some(2));
    assert!(text(&again.stderr).contains("not overwriting"));
}

#[test]
fn a_failing_run_exits_1_shows_the_diff_and_writes_pcaps() {
    let dir = scratch();
    let path = dir.path().join("wrong.yaml");
    // The decap does decapsulate: expecting the tunnel packets unchanged is
    // wrong on purpose.
    std::fs::write(
        &path,
        "version: 1\nprograms:\n  - builtin: xdp_decap\ntraffic:\n  - generate: {flows: 2, tunnel: ip4_in_ip4}\n    expect: {output: unchanged}\n",
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let out = dsrlab(&[
        "run",
        path.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("FAILED wrong · xdp_decap · test-run #1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ipv4[0].proto: expected ipip, actual tcp"),
        "{stdout}"
    );
    assert!(stdout.contains("0 passed, 2 failed"), "{stdout}");
    let packet_dir = out_dir.join("wrong/xdp_decap-test-run/0001-generated_flow-1");
    for pcap in ["input.pcap", "expected.pcap", "actual.pcap"] {
        assert!(packet_dir.join(pcap).is_file(), "{pcap} not written");
    }

    // JSON: findings as records, with what the packet counted.
    let out = dsrlab(&["run", path.to_str().unwrap(), "--format", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let packet = &json["scenarios"][0]["runs"][0]["packets"][0];
    assert_eq!(packet["packet"], 1);
    assert_eq!(packet["counters"]["decap_ip4_in_ip4"], 1, "{packet}");
    let finding = &packet["findings"][0];
    assert_eq!(finding["kind"], "output", "{finding}");
    assert!(finding["diff"].as_str().unwrap().contains("ipv4[0].proto"));

    // JUnit: the same cases as a passing run, the pcaps attached.
    let out = dsrlab(&[
        "run",
        path.to_str().unwrap(),
        "--format",
        "junit",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let xml = text(&out.stdout);
    for case in [
        "name=\"setup\"",
        "name=\"#1 generated/flow-1\"",
        "name=\"after\"",
    ] {
        assert!(xml.contains(case), "{case} missing: {xml}");
    }
    assert!(
        xml.contains(&format!(
            "[[ATTACHMENT|{}]]",
            packet_dir.join("input.pcap").display()
        )),
        "{xml}"
    );
}

#[test]
fn junit_reports_a_scenario_that_cannot_be_read_as_an_errored_case() {
    let dir = scratch();
    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        "version: 1
programs: [{builtin: xdp_nothing}]
",
    )
    .unwrap();
    let out = dsrlab(&[
        "run",
        broken.to_str().unwrap(),
        "scenarios/decap-gue-port.yaml",
        "--mode",
        "test-run",
        "--format",
        "junit",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let xml = text(&out.stdout);
    assert!(xml.contains("<testcase name=\"load\""), "{xml}");
    assert!(xml.contains("xdp_nothing"), "{xml}");
    assert!(
        xml.contains(r#"<testsuite name="decap-gue-port""#),
        "the readable scenario still runs: {xml}"
    );
}

#[test]
fn junit_and_json_reports_parse_and_count() {
    let out = dsrlab(&["run", "scenarios/decap-gue-port.yaml", "--format", "junit"]);
    assert!(out.status.success());
    let xml = text(&out.stdout);
    assert!(
        // 100 packets, `setup` and `after` × (xdp_decap, tc_decap) × (test-run, netns)
        xml.contains(r#"<testsuite name="decap-gue-port" tests="408""#),
        "{xml}"
    );
    let out = dsrlab(&["run", "scenarios/decap-gue-port.yaml", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // 100 packets × (xdp_decap, tc_decap) × (test-run, netns)
    assert_eq!(json["passed"], 400);
    assert_eq!(json["failed"], 0);
}

#[test]
fn run_one_packet_and_filter() {
    let out = dsrlab(&["run", "--filter", "gue-port", "--packet", "3"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("4 passed, 0 failed"), "{stdout}");
    assert!(!stdout.contains("decap-tunnels"), "{stdout}");
}

#[test]
fn a_mode_filter_that_matches_no_scenario_fails_instead_of_passing_empty() {
    let out = dsrlab(&[
        "run",
        "scenarios/decap-unpulled-headers.yaml",
        "--mode",
        "netns",
    ]);
    assert!(!out.status.success(), "ran nothing and passed");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("in mode netns: nothing would be checked"),
        "{stderr}"
    );
}

#[test]
fn pcap_diff_exit_code_says_whether_captures_differ() {
    let same = dsrlab(&[
        "pcap",
        "diff",
        "pcaps/decap-tunnels.pcap",
        "pcaps/decap-tunnels.pcap",
    ]);
    assert!(same.status.success());
    assert!(
        text(&same.stdout).contains("all equal"),
        "{}",
        text(&same.stdout)
    );
    let other = dsrlab(&[
        "pcap",
        "diff",
        "pcaps/decap-tunnels.pcap",
        "pcaps/decap-passthrough.pcap",
    ]);
    assert_eq!(other.status.code(), Some(1));
}

#[test]
fn a_broken_pcap_is_named_with_its_packet() {
    let out = dsrlab(&[
        "pcap",
        "show",
        "harness/tests/data/scenarios/truncated.pcap",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("truncated.pcap"), "{stderr}");
    assert!(stderr.contains("packet 2"), "{stderr}");
}

#[test]
fn a_topology_run_reports_flows_in_every_format_and_writes_its_captures() {
    let dir = scratch();
    let out_dir = dir.path().join("out");
    let out = dsrlab(&[
        "run",
        "scenarios/talk-same-vip-tc-decap.yaml",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let human = text(&out.stdout);
    assert!(out.status.success(), "{human}{}", text(&out.stderr));
    assert!(
        human.contains("tenants: 20 flows: reply 20; served by a ") && human.contains("22 passed"),
        "{human}"
    );
    for capture in ["to-a", "to-b"] {
        let pcap = out_dir
            .join("talk-same-vip-tc-decap/xdp_lb+tc_decap-netns")
            .join(format!("{capture}.pcap"));
        let shown = text(&dsrlab(&["pcap", "show", pcap.to_str().unwrap()]).stdout);
        assert!(shown.contains("ipv4 198.18.1."), "{capture}: {shown}");
    }
    let out = dsrlab(&[
        "run",
        "scenarios/talk-same-vip-tc-decap.yaml",
        "--format",
        "json",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["passed"], 22);
    assert_eq!(
        json["scenarios"][0]["runs"][0]["captures"][1]["name"],
        "to-b"
    );
    let out = dsrlab(&[
        "run",
        "scenarios/talk-same-vip-tc-decap.yaml",
        "--format",
        "junit",
    ]);
    let xml = text(&out.stdout);
    assert!(
        // `setup`, 20 flows, 2 captures
        xml.contains(r#"tests="23""#) && xml.contains("tenants flow 20"),
        "{xml}"
    );
}

#[test]
fn bench_live_measures_every_part_on_a_small_run() {
    let out = dsrlab(&[
        "bench-live",
        "--rounds",
        "1",
        "--flows",
        "20",
        "--held",
        "200",
        "--binds",
        "50",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["topology"]["nodes"], 6);
    assert!(json["topology"]["ip_script_ms"]["commands"].as_u64() > Some(50));
    assert_eq!(json["traffic"]["tcp"]["flows"], 20);
    assert_eq!(json["traffic"]["udp"]["flows"], 20);
    assert!(json["traffic"]["tcp"]["lb_packets_per_s"].as_f64() > Some(0.0));
    assert_eq!(json["udp_cross_impact"]["held_sockets"], 200);
    assert_eq!(json["udp_cross_impact"]["shared_failed_binds"], 0);
}

#[test]
fn runs_that_check_nothing_fail_unless_allowed() {
    let dir = scratch();
    let path = dir.path().join("unchecked.yaml");
    // Two streams: one with an expectation, one without any.
    std::fs::write(
        &path,
        "version: 1\nprograms:\n  - builtin: xdp_pass\ntraffic:\n  - name: checked\n    generate: {flows: 1}\n    expect: {verdict: pass}\n  - name: nobody\n    generate: {flows: 2}\n",
    )
    .unwrap();
    let file = path.to_str().unwrap();
    let out = dsrlab(&["run", file]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("stream `nobody` checks nothing") && !stdout.contains("`checked`"),
        "{stdout}"
    );
    let out = dsrlab(&["run", file, "--allow-unchecked"]);
    assert!(out.status.success(), "{}", text(&out.stdout));

    // A packet number no scenario has matches nothing.
    let out = dsrlab(&["run", file, "--packet", "9"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--packet 9 matches nothing in unchecked has 3"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn strict_fails_a_run_with_skips() {
    // The blocklist scenario skips its 3 checksum: complete packets on XDP.
    let scenario = "scenarios/user-object-blocklist.yaml";
    let out = dsrlab(&["run", scenario, "--mode", "test-run"]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("3 skipped"),
        "{}",
        text(&out.stdout)
    );
    let out = dsrlab(&["run", scenario, "--mode", "test-run", "--strict"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--strict: 3 skipped (reasons above) fail the run"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn snapshots_are_kept_beside_any_scenario_and_reviewed_from_the_cli() {
    let dir = scratch();
    let path = dir.path().join("mine.yaml");
    let scenario = |ttl: u8| {
        format!(
            "version: 1\nprograms:\n  - builtin: tc_pass\nsnapshot: true\ntraffic:\n  - inline:\n      - layers: [eth, {{ipv4: {{ttl: {ttl}}}}}, udp]\n    expect: {{verdict: pass}}\n"
        )
    };
    let run = |extra: &[&str]| {
        let mut args = vec!["run", path.to_str().unwrap()];
        args.extend_from_slice(extra);
        Command::new(env!("CARGO_BIN_EXE_dsrlab"))
            .args(&args)
            .current_dir(repo())
            .env_remove("CI")
            .output()
            .unwrap()
    };
    let snaps = dir.path().join("snapshots");
    let stored = snaps.join("mine@tc_pass-test-run.snap");
    std::fs::write(&path, scenario(64)).unwrap();

    // New: a failure, written as pending for review, never as stored.
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("new: written as .snap.new"));
    assert!(!stored.exists());
    let out = dsrlab(&["review", path.to_str().unwrap()]);
    assert!(
        text(&out.stdout).contains("2 pending"),
        "{}",
        text(&out.stdout)
    );
    let out = dsrlab(&["review", path.to_str().unwrap(), "--accept"]);
    assert!(out.status.success());
    assert!(
        stored.is_file()
            && snaps
                .join("mine@tc_pass-test-run-output.snap.pcap")
                .is_file()
    );
    assert!(run(&[]).status.success(), "accepted snapshots match");

    // A change: the diff, layer by layer; compare-only writes nothing.
    std::fs::write(&path, scenario(9)).unwrap();
    let out = run(&["--snapshots", "check"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("ttl 64") && stdout.contains("ttl 9"),
        "{stdout}"
    );
    assert!(!snaps.join("mine@tc_pass-test-run.snap.new").exists());
    // CI compares only, whatever the default.
    let out = Command::new(env!("CARGO_BIN_EXE_dsrlab"))
        .args(["run", path.to_str().unwrap()])
        .env("CI", "true")
        .current_dir(repo())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(!snaps.join("mine@tc_pass-test-run.snap.new").exists());
    assert_eq!(run(&[]).status.code(), Some(1));
    assert!(snaps.join("mine@tc_pass-test-run.snap.new").exists());
    let out = dsrlab(&["review", path.to_str().unwrap(), "--reject"]);
    assert!(text(&out.stdout).contains("rejected"));
    assert!(!snaps.join("mine@tc_pass-test-run.snap.new").exists());
    assert_eq!(
        text(&dsrlab(&["review", path.to_str().unwrap()]).stdout).trim(),
        "no pending snapshot"
    );
}

#[test]
fn pcapng_is_written_with_comments_and_read_wherever_pcaps_are() {
    let dir = scratch();
    let path = dir.path().join("wrong.yaml");
    std::fs::write(
        &path,
        "version: 1\nprograms:\n  - builtin: xdp_decap\ntraffic:\n  - generate: {flows: 1, tunnel: ip4_in_ip4}\n    expect: {output: unchanged}\n",
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let out = dsrlab(&[
        "run",
        path.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "--pcapng",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let packet_dir = out_dir.join("wrong/xdp_decap-test-run/0001-generated_flow-1");
    let actual = packet_dir.join("actual.pcapng");
    let shown = text(&dsrlab(&["pcap", "show", actual.to_str().unwrap()]).stdout);
    assert!(
        shown.contains(
            "# actual output of wrong · xdp_decap · test-run #1 generated/flow-1: XDP_PASS"
        ) && shown.contains("# output differs:"),
        "{shown}"
    );
    // A pcapng file is a stream like a pcap.
    let input = packet_dir.join("input.pcapng");
    let replay = dir.path().join("replay.yaml");
    std::fs::write(
        &replay,
        format!(
            "version: 1\nprograms:\n  - builtin: xdp_decap\ntraffic:\n  - pcap: {}\n    expect: {{output: decapsulated}}\n",
            input.display()
        ),
    )
    .unwrap();
    let out = dsrlab(&["run", replay.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("1 passed, 0 failed"));
}

#[test]
fn bench_measures_any_scenarios_programs_and_times_only_what_passes() {
    let out = dsrlab(&[
        "bench",
        "--scenario",
        "scenarios/own-libbpf-tc.yaml",
        "--calls",
        "2000",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(
        table.lines().any(|l| l.starts_with("tc_policy")
            && l.contains("trusted")
            && !l.contains("not timed")),
        "{table}"
    );
    assert!(
        table.contains("marked               not timed: packet flow-1 has quirks or a context"),
        "{table}"
    );

    let dir = scratch();
    let path = dir.path().join("wrong.yaml");
    std::fs::write(
        &path,
        "version: 1\nprograms:\n  - builtin: xdp_pass\ntraffic:\n  - name: dropped\n    generate: {flows: 2}\n    expect: {verdict: drop}\n",
    )
    .unwrap();
    let out = dsrlab(&[
        "bench",
        "--scenario",
        path.to_str().unwrap(),
        "--calls",
        "100",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stdout).contains("not timed: packet flow-1 does not do what the scenario expects: verdict: expected drop, actual XDP_PASS"),
        "{}",
        text(&out.stdout)
    );
    assert!(text(&out.stderr).contains("no case could be timed"));
}

/// The shares of `--partition hash:k/n` together run every scenario once,
/// each share's JUnit names its own, and a share may be empty.
#[test]
fn partitions_cover_every_scenario_once() {
    let files = [
        "scenarios/decap-tunnels.yaml",
        "scenarios/decap-passthrough.yaml",
        "scenarios/decap-gue-port.yaml",
        "scenarios/decap-malformed.yaml",
        "scenarios/lb-vips.yaml",
        "scenarios/lb-icmp.yaml",
    ];
    let mut seen = Vec::new();
    for k in 1..=4 {
        let share = format!("hash:{k}/4");
        let mut args = vec![
            "run",
            "--mode",
            "test-run",
            "--format",
            "junit",
            "--partition",
            &share,
        ];
        args.extend(files);
        let out = dsrlab(&args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains(&format!("partition {share}: ")),
            "{}",
            text(&out.stderr)
        );
        let junit = text(&out.stdout);
        seen.extend(
            junit
                .lines()
                .filter_map(|l| l.trim().strip_prefix("<testsuite name=\""))
                .map(|l| l.split('"').next().unwrap().to_owned()),
        );
    }
    seen.sort();
    let mut all: Vec<String> = files
        .iter()
        .map(|f| {
            Path::new(f)
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    all.sort();
    assert_eq!(seen, all);
    let out = dsrlab(&["run", "--partition", "5/4"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("expected hash:k/n"));
}
