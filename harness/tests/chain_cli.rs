//! `dsrlab chain …` end to end: the binary drives a pinned chain from
//! create to destroy, one process per command — reservations, a user's
//! firewall and dsrlab's slot programs attached, replaced by their owner
//! and refused to anyone else, test runs through the root, the counters
//! in `show` — under each backend the kernel allows (ext in the VM
//! stage); nothing is left in `/sys/fs/bpf` or `/run/dsrlab`, also when a
//! test fails (a guard destroys on drop). Bad input of every kind is an
//! error that names what and where.
//!
//! Chain names carry the test process's pid. Needs root and the datapath
//! objects; says so and skips otherwise.

mod cli_support;

use std::{io::Write as _, path::PathBuf};

use cli_support::{dsrlab, entries_starting_with, fails, ok};
use dsrlab::{
    chain::pinned::{self, PIN_PREFIX},
    datapath,
    formats::{packet::PacketSpec, pcap},
    kernel::features::Features,
    pins::{BPFFS, STATE_DIR},
};
use rstest::rstest;

/// Destroys the chain when dropped, whatever happened.
struct Guard {
    name: String,
}

impl Guard {
    fn new(suffix: &str) -> Self {
        reap();
        Self {
            name: format!("t{}-{suffix}", std::process::id()),
        }
    }

    /// Nothing of this chain exists in /sys/fs/bpf or /run/dsrlab.
    fn assert_gone(&self) {
        for (dir, prefix) in [
            (BPFFS, format!("{PIN_PREFIX}{}", self.name)),
            (STATE_DIR, format!("chain-{}.", self.name)),
        ] {
            let left = entries_starting_with(dir, &prefix);
            assert!(left.is_empty(), "left behind in {dir}: {left:?}");
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = dsrlab(&["chain", "destroy", &self.name]);
    }
}

/// Destroys the chains of test processes that were killed before their
/// guards could (`t<pid>-…` of a pid that is gone).
fn reap() {
    for (name, _, _) in pinned::list() {
        let pid = name
            .strip_prefix('t')
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = pid
            && !std::path::Path::new("/proc").join(pid.to_string()).exists()
        {
            let _ = dsrlab(&["chain", "destroy", &name]);
        }
    }
}

fn skip(test: &str, ext: bool) -> bool {
    let why = if datapath::XDP_CHAIN_TAIL.elf.is_empty() {
        Some("the chain objects are empty (built with AYA_BUILD_SKIP=1)".to_owned())
    } else if let Err(e) = dsrlab::kernel::check_bpf_capabilities() {
        Some(e.to_string())
    } else if ext {
        Features::get().ext.missing().map(ToString::to_string)
    } else {
        None
    };
    if let Some(why) = why {
        let _ = writeln!(std::io::stderr(), "skipped {test}: {why}");
        return true;
    }
    false
}

fn firewall() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/chain-slot/xdp_port_filter.bpf.o")
        .display()
        .to_string()
}

/// A pcap of UDP to port 23 and UDP to port 53, in `dir`.
fn frames(dir: &tempfile::TempDir) -> String {
    let frame = |port: u16| -> Vec<u8> {
        serde_saphyr::from_str::<PacketSpec>(&format!(
            "layers: [eth, {{ipv4: {{dst: 198.18.0.10}}}}, {{udp: {{dport: {port}}}}}]"
        ))
        .unwrap()
        .build()
        .unwrap()
    };
    let path = dir.path().join("in.pcap");
    pcap::write_file(&path, &[frame(23), frame(53)]).unwrap();
    path.display().to_string()
}

/// `chain attach NAME 2` of the example firewall, then `more`.
fn attach_firewall<'a>(name: &'a str, wall: &'a str, more: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "chain",
        "attach",
        name,
        "2",
        "--object",
        wall,
        "--program",
        "xdp_port_filter",
    ];
    args.extend_from_slice(more);
    args
}

/// The verdicts `test-run` printed, in order.
fn verdicts(out: &str) -> Vec<&str> {
    out.lines()
        .filter(|l| l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect()
}

#[rstest]
#[case::tail_call("tail-call")]
#[case::ext("ext")]
fn a_pinned_chain_from_create_to_destroy(#[case] backend: &str) {
    if skip("a_pinned_chain_from_create_to_destroy", backend == "ext") {
        return;
    }
    let guard = Guard::new(backend);
    let name = guard.name.as_str();
    let dir = tempfile::tempdir().unwrap();
    let pcap = frames(&dir);
    let wall = firewall();
    let out = ok(&["chain", "create", name, "--backend", backend]);
    assert!(
        out.contains(&format!("chain {name}: {backend} root")),
        "{out}"
    );
    ok(&["chain", "reserve", name, "2", "security"]);
    let filter = |port: &str, owner: &str| {
        let global = format!("blocked_port={port}");
        dsrlab(&attach_firewall(
            name,
            &wall,
            &["--global", &global, "--as", owner],
        ))
    };
    let first = filter("23", "security");
    assert!(first.status.success(), "{first:?}");
    ok(&["chain", "attach", name, "5", "--builtin", "xdp_pass"]);
    let run = ok(&["chain", "test-run", name, &pcap]);
    assert_eq!(verdicts(&run), ["XDP_DROP", "XDP_PASS"], "{run}");

    // The owner replaces its firewall; anyone else is refused.
    let replaced = filter("53", "security");
    assert!(replaced.status.success(), "{replaced:?}");
    let stdout = String::from_utf8_lossy(&replaced.stdout);
    assert!(stdout.contains("replaces xdp_port_filter"), "{stdout}");
    let refused = filter("22", "web");
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("slot 2 is reserved for `security`"),
        "{refused:?}"
    );
    let err = fails(&["chain", "detach", name, "2"]);
    assert!(err.contains("slot 2 is reserved for `security`"), "{err}");
    let run = ok(&["chain", "test-run", name, &pcap]);
    assert_eq!(verdicts(&run), ["XDP_PASS", "XDP_DROP"], "{run}");

    // Slot 2 saw all four frames, slot 5 the two it passed.
    let show = ok(&["chain", "show", name]);
    let row = |slot: &str| {
        show.lines()
            .find(|l| l.split_whitespace().next() == Some(slot))
            .unwrap_or_else(|| panic!("no slot {slot} in:\n{show}"))
            .to_owned()
    };
    assert!(row("2").contains("security"), "{show}");
    assert!(row("2").contains("XDP_DROP 2, XDP_PASS 2"), "{show}");
    assert!(row("5").contains("chain_pass"), "{show}");
    assert!(row("5").contains("XDP_PASS 2"), "{show}");

    // Emptied by its owner, the slot passes everything on.
    ok(&["chain", "detach", name, "2", "--as", "security"]);
    ok(&["chain", "continue", name, "5", "XDP_PASS,XDP_TX"]);
    let run = ok(&["chain", "test-run", name, &pcap]);
    assert_eq!(verdicts(&run), ["XDP_PASS", "XDP_PASS"], "{run}");
    assert!(ok(&["chain", "list"]).contains(&format!("{name}: pinned")));
    let gone = ok(&["chain", "destroy", name]);
    assert!(gone.contains("removed"), "{gone}");
    guard.assert_gone();
}

#[test]
fn bad_input_is_an_error_that_names_it_and_leaves_nothing() {
    if skip(
        "bad_input_is_an_error_that_names_it_and_leaves_nothing",
        false,
    ) {
        return;
    }
    let guard = Guard::new("bad");
    let name = guard.name.as_str();
    let err = fails(&["chain", "show", name]);
    assert!(
        err.contains(&format!("chain `{name}`: no such chain")),
        "{err}"
    );
    let err = fails(&["chain", "create", "no/slash"]);
    assert!(err.contains("a name is 1 to 48 letters"), "{err}");
    ok(&["chain", "create", name]);
    let err = fails(&["chain", "create", name]);
    assert!(err.contains("exists"), "{err}");
    let err = fails(&["chain", "attach", name, "20", "--builtin", "xdp_pass"]);
    assert!(
        err.contains("slot 20 is out of range: a chain has slots 0 to 19"),
        "{err}"
    );
    let wall = firewall();
    let err = fails(&attach_firewall(name, &wall, &["--global", "blocked=1"]));
    assert!(
        err.contains("has no such global; it has: blocked_port"),
        "{err}"
    );
    let blocklist = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/user-object/xdp_blocklist.bpf.o")
        .display()
        .to_string();
    let err = fails(&[
        "chain",
        "attach",
        name,
        "2",
        "--object",
        &blocklist,
        "--program",
        "xdp_blocklist",
    ]);
    assert!(err.contains("has no CHAIN_SLOT global"), "{err}");
    let err = fails(&["chain", "continue", name, "2", "XDP_PASS,TC_ACT_OK"]);
    assert!(err.contains("`TC_ACT_OK` is not an XDP verdict"), "{err}");
    // Refused changes left the chain as it was: every slot empty.
    let state = pinned::PinnedChain::open(name).unwrap().state().clone();
    assert!(state.slots.is_empty(), "{state:?}");
    ok(&["chain", "destroy", name]);
    guard.assert_gone();
    let err = fails(&["chain", "destroy", name]);
    assert!(err.contains("no such chain"), "{err}");
}
