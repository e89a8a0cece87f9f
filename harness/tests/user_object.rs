//! Bring your own datapath: the C example `examples/user-object` (compiled
//! by clang in `ci/setup`) loads from its ELF file, its maps are provisioned
//! through the harness, and its verdicts and counters come back through the
//! test-run engine.

use std::{net::IpAddr, path::PathBuf};

use aya::maps::HashMap;
use dsrlab::{
    formats::packet::PacketSpec,
    load::{LoadOptions, LoadedProgram},
    testrun::{self, Quirks, Verdict},
};

/// Indices of the object's `stats` array.
const STAT_PASS: usize = 0;
const STAT_DROP: usize = 1;

fn object() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/user-object/xdp_blocklist.bpf.o");
    assert!(
        path.exists(),
        "{} is missing: run ci/setup, which compiles examples/user-object/xdp_blocklist.c with clang",
        path.display()
    );
    path
}

/// The blocklist key of an address: 16 bytes, IPv4 as ::ffff:a.b.c.d.
fn key(addr: &str) -> [u8; 16] {
    match addr.parse::<IpAddr>().unwrap() {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

fn packet(layers: &str) -> Vec<u8> {
    serde_saphyr::from_str::<PacketSpec>(&format!("layers: {layers}"))
        .unwrap()
        .build()
        .unwrap()
}

fn load() -> LoadedProgram {
    LoadedProgram::from_file(&object(), "xdp_blocklist", &LoadOptions::default())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn block(prog: &mut LoadedProgram, addrs: &[&str]) {
    let map = prog
        .map_mut("blocklist")
        .expect("the object has a blocklist");
    let mut blocklist = HashMap::<_, [u8; 16], u8>::try_from(map).unwrap();
    for a in addrs {
        blocklist.insert(&key(a), &1, 0).unwrap();
    }
}

/// Verdicts and counters move on the CPU a run lands on; the harness sums
/// per-CPU values, so the test does not need to pin itself.
#[test]
fn blocked_sources_are_dropped_and_others_pass_with_counts() {
    let mut prog = load();
    block(&mut prog, &["198.18.0.1", "2001:db8::1"]);

    let cases = [
        ("[eth, {ipv4: {src: 198.18.0.1}}, tcp]", "XDP_DROP"),
        ("[eth, {ipv4: {src: 198.18.0.3}}, tcp]", "XDP_PASS"),
        ("[eth, {ipv6: {src: '2001:db8::1'}}, udp]", "XDP_DROP"),
        ("[eth, {ipv6: {src: '2001:db8::3'}}, udp]", "XDP_PASS"),
        // Not IP: none of its business.
        ("[eth, arp]", "XDP_PASS"),
    ];
    for (layers, want) in cases {
        let result = testrun::run(&prog, &packet(layers), Quirks::default()).unwrap();
        assert_eq!(result.verdict.name(), want, "{layers}");
    }
    let stats = prog.per_cpu_counters("stats").unwrap();
    assert_eq!(stats.len(), 2);
    assert_eq!((stats[STAT_PASS], stats[STAT_DROP]), (3, 2));
}

#[test]
fn an_empty_blocklist_passes_everything_untouched() {
    let prog = load();
    let p = packet("[eth, {ipv4: {src: 198.18.0.1}}, tcp, {payload: {len: 32}}]");
    let result = testrun::run(&prog, &p, Quirks::default()).unwrap();
    assert_eq!(result.verdict, Verdict::Xdp(2));
    assert_eq!(result.output, p);
    assert_eq!(prog.per_cpu_counters("stats").unwrap(), [1, 0]);
}

#[test]
fn truncated_headers_pass() {
    let mut prog = load();
    block(&mut prog, &["198.18.0.1"]);
    // The source address is in the 10 bytes the cut removes.
    let p = packet("[eth, {ipv4: {src: 198.18.0.1}}, tcp]");
    let result = testrun::run(&prog, &p[..24], Quirks::default()).unwrap();
    assert_eq!(result.verdict.name(), "XDP_PASS");
    assert_eq!(prog.per_cpu_counters("stats").unwrap(), [1, 0]);
}
