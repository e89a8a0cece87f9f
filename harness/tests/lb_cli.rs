//! `dsrlab lb …` end to end: the binary drives a pinned `xdp_lb` instance
//! from load to unload, and nothing is left behind in `/sys/fs/bpf` or
//! `/run/dsrlab`, also when a test fails (a guard unloads on drop).
//!
//! Instance names carry the test process's pid, so parallel runs never
//! collide. Needs root and the `xdp_lb` object; says so and skips otherwise.

mod cli_support;

use std::path::{Path, PathBuf};

use cli_support::{dsrlab, entries_starting_with, fails, ok};

use dsrlab::{
    formats::{
        packet::{
            LayerSpec, PacketSpec,
            spec::{Ipv4Spec, TcpSpec},
        },
        pcap,
    },
    lb::{fuzz, instance},
};

/// Unloads the instance when dropped, whatever happened.
struct Guard {
    name: String,
}

impl Guard {
    fn new(suffix: &str) -> Self {
        Self {
            name: format!("t{}-{suffix}", std::process::id()),
        }
    }

    fn paths(&self) -> (PathBuf, PathBuf) {
        let p = instance::paths(&self.name).expect("valid name");
        (p.pins, p.state)
    }

    /// Nothing of this instance exists in /sys/fs/bpf or /run/dsrlab.
    fn assert_gone(&self) {
        for (dir, prefix) in [
            (instance::BPFFS, format!("dsrlab-lb-{}", self.name)),
            (instance::STATE_DIR, format!("lb-{}.", self.name)),
        ] {
            let left = entries_starting_with(dir, &prefix);
            assert!(left.is_empty(), "left behind in {dir}: {left:?}");
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = dsrlab(&["lb", "unload", &self.name]);
    }
}

fn skip(test: &str) -> bool {
    match fuzz::unavailable() {
        Some(reason) => {
            eprintln!("SKIPPED {test}: {reason}");
            true
        }
        None => false,
    }
}

fn tcp_frame(dst: &str, flags: &str) -> Vec<u8> {
    PacketSpec {
        layers: vec![
            LayerSpec::Eth(Default::default()),
            LayerSpec::Ipv4(Ipv4Spec {
                src: Some("198.18.2.1".parse().unwrap()),
                dst: Some(dst.parse().unwrap()),
                ..Ipv4Spec::default()
            }),
            LayerSpec::Tcp(TcpSpec {
                sport: Some(40000),
                dport: Some(80),
                flags: Some(flags.into()),
                ..TcpSpec::default()
            }),
        ],
        ..PacketSpec::default()
    }
    .build()
    .unwrap()
}

/// The value of counter `name` in `dsrlab lb counters` output.
fn counter(out: &str, name: &str) -> u64 {
    out.lines()
        .find_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some(name)).then(|| words.next()?.parse().ok())?
        })
        .unwrap_or_else(|| panic!("no counter {name} in:\n{out}"))
}

/// The `slots` and `share` columns of a real in `dsrlab lb show` output.
fn share(out: &str, real: &str) -> (u32, String) {
    let line = out
        .lines()
        .find(|l| l.split_whitespace().next() == Some(real))
        .unwrap_or_else(|| panic!("no real {real} in:\n{out}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    (cols[3].parse().unwrap(), cols[4].to_owned())
}

#[test]
fn an_instance_lives_from_load_to_unload() {
    if skip("an_instance_lives_from_load_to_unload") {
        return;
    }
    let g = Guard::new("life");
    let name = g.name.as_str();
    let (pins, state) = g.paths();
    let vip = "198.18.0.10:80/tcp";

    let out = ok(&["lb", "load", name, "--ring-size", "251", "--seed", "0x7"]);
    assert!(
        out.contains(&format!("loaded xdp_lb as instance {name}: program id")),
        "{out}"
    );
    assert!(
        out.contains(&format!("pinned in {}", pins.display())),
        "{out}"
    );
    assert!(pins.join("xdp_lb").exists() && pins.join("LB_RING").exists());
    assert!(state.exists());
    let err = fails(&["lb", "load", name]);
    assert!(err.contains(&format!("instance `{name}` exists")), "{err}");

    let out = ok(&["lb", "vip", "add", name, vip, "--flags", "gue"]);
    assert_eq!(
        out.trim(),
        format!("{name}: added VIP {vip} (#0), flags gue")
    );
    let err = fails(&["lb", "vip", "add", name, vip]);
    assert!(
        err.contains("VIP 198.18.0.10:80/tcp already exists"),
        "{err}"
    );

    let out = ok(&["lb", "real", "add", name, vip, "198.18.1.1"]);
    assert!(
        out.contains("added real 198.18.1.1 (id 1) to VIP 198.18.0.10:80/tcp with weight 1: 0 → 251 ring slots"),
        "{out}"
    );
    ok(&[
        "lb",
        "real",
        "add",
        name,
        vip,
        "198.18.1.2",
        "--weight",
        "3",
    ]);
    let err = fails(&[
        "lb",
        "real",
        "add",
        name,
        "198.18.0.11:80/tcp",
        "198.18.1.1",
    ]);
    assert!(err.contains("no VIP 198.18.0.11:80/tcp"), "{err}");

    // Traffic through the pinned program moves the counters.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.pcap");
    let output = dir.path().join("out.pcap");
    pcap::write_file(
        &input,
        &[
            tcp_frame("198.18.0.10", "S"),
            tcp_frame("198.18.0.10", "A"),
            tcp_frame("198.18.0.99", "S"),
        ],
    )
    .unwrap();
    let out = ok(&[
        "lb",
        "test-run",
        name,
        input.to_str().unwrap(),
        "--out",
        output.to_str().unwrap(),
    ]);
    assert!(
        out.contains("#1 XDP_TX") && out.contains("#2 XDP_TX"),
        "{out}"
    );
    assert!(out.contains("#3 XDP_PASS"), "{out}");
    assert_eq!(pcap::read_file(&output).unwrap().len(), 3);

    let out = ok(&["lb", "counters", name]);
    assert_eq!(counter(&out, "tx"), 2, "{out}");
    assert_eq!(counter(&out, "pass_not_vip"), 1, "{out}");
    // The ACK may run on another CPU than the SYN (per-CPU table): a hit or
    // a miss, but one of them.
    assert_eq!(
        counter(&out, "lru_hit") + counter(&out, "lru_miss"),
        2,
        "{out}"
    );
    let vip_line = out
        .lines()
        .find(|l| l.trim_start().starts_with(vip))
        .unwrap();
    assert!(vip_line.contains(" 2 packets"), "{out}");
    let reals: u64 = ["198.18.1.1", "198.18.1.2"]
        .iter()
        .map(|r| counter(&out, r))
        .sum();
    assert_eq!(reals, 2, "{out}");

    let out = ok(&["lb", "weight", name, vip, "198.18.1.1", "0"]);
    assert!(
        out.contains("now has weight 0:") && out.contains("→ 0 ring slots"),
        "{out}"
    );
    let out = ok(&["lb", "show", name]);
    assert!(out.contains("ring size 251, hash seed 0x7"), "{out}");
    assert!(
        out.contains("VIP 198.18.0.10:80/tcp (#0), flags gue"),
        "{out}"
    );
    assert_eq!(share(&out, "198.18.1.1"), (0, "0.00%".into()), "{out}");
    assert_eq!(share(&out, "198.18.1.2"), (251, "100.00%".into()), "{out}");
    assert!(
        out.contains("ring in the kernel: 251 slots, as the state says"),
        "{out}"
    );

    let out = ok(&["lb", "unload", name]);
    assert!(
        out.contains("removed the pins in") && out.contains("and the state"),
        "{out}"
    );
    assert!(!pins.exists() && !state.exists());
    g.assert_gone();
    let err = fails(&["lb", "show", name]);
    assert!(err.contains(&format!("no instance `{name}`")), "{err}");
}

#[test]
fn unload_removes_pins_without_state() {
    if skip("unload_removes_pins_without_state") {
        return;
    }
    let g = Guard::new("nostate");
    let name = g.name.as_str();
    let (pins, state) = g.paths();
    ok(&["lb", "load", name, "--ring-size", "13"]);
    std::fs::remove_file(&state).unwrap();
    let err = fails(&["lb", "vip", "add", name, "198.18.0.10:80/tcp"]);
    assert!(
        err.contains("is missing but the pins")
            && err.contains(&format!("dsrlab lb unload {name}")),
        "{err}"
    );
    let out = ok(&["lb", "list"]);
    assert!(
        out.contains(&format!("{name}: pins without state")),
        "{out}"
    );
    let out = ok(&["lb", "unload", name]);
    assert!(out.contains("there was no state file"), "{out}");
    assert!(!pins.exists());
    g.assert_gone();
    let err = fails(&["lb", "unload", name]);
    assert!(err.contains(&format!("no instance `{name}`")), "{err}");
}

#[test]
fn errors_name_what_is_wrong() {
    if skip("errors_name_what_is_wrong") {
        return;
    }
    let err = fails(&["lb", "load", "a/b"]);
    assert!(err.contains("instance name `a/b` is not valid"), "{err}");
    let err = fails(&["lb", "load", "x", "--gateway-mac", "02:00"]);
    assert!(err.contains("MAC `02:00`"), "{err}");
    let g = Guard::new("errors");
    let err = fails(&["lb", "load", &g.name, "--ring-size", "100"]);
    assert!(err.contains("ring size 100 is not prime"), "{err}");
    g.assert_gone();
    let err = fails(&["lb", "vip", "add", &g.name, "198.18.0.10:80"]);
    assert!(
        err.contains("VIP `198.18.0.10:80`: no /tcp or /udp"),
        "{err}"
    );
    let err = fails(&[
        "lb",
        "vip",
        "add",
        &g.name,
        "198.18.0.10:80/tcp",
        "--flags",
        "fast",
    ]);
    assert!(err.contains("unknown VIP flag `fast`"), "{err}");
    let err = fails(&["lb", "counters", &g.name]);
    assert!(err.contains(&format!("no instance `{}`", g.name)), "{err}");
    assert!(!Path::new(&g.paths().0).exists());
}

#[test]
fn fuzz_prints_a_summary() {
    if skip("fuzz_prints_a_summary") {
        return;
    }
    let out = ok(&["fuzz", "lb", "--count", "300", "--seed", "0x2a"]);
    assert!(out.contains("xdp_lb vs model: "), "{out}");
    assert!(out.contains("frames compared/s while comparing"), "{out}");
    assert!(out.trim_end().ends_with("no mismatch"), "{out}");
    let err = fails(&["fuzz", "lb", "--seed", "forty-two"]);
    assert!(err.contains("`forty-two` is not a number"), "{err}");
}
