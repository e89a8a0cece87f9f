//! Every output pcap the suite keeps (the scenarios' snapshot pcaps, which
//! the snapshot tests hold equal to what the programs send today) read by a
//! second decoder, tshark, with its checksum validation on. Each checksum
//! both decoders verify must get the same verdict from both, and tshark
//! must find no checksum that the protocol forbids to be zero (UDP over
//! IPv6, RFC 8200 8.1: the GUE the load balancer writes over IPv6).
//!
//! tshark is one of the test command's packages (`ci/setup`); without it
//! this test fails and says so rather than checking nothing.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use dsrlab::formats::{
    packet::{ChecksumStatus, DissectOptions, LayerRepr, dissect_with},
    pcap,
};

/// tshark's fields, in the order of [`Proto`].
const FIELDS: [&str; 5] = [
    "ip.checksum.status",
    "udp.checksum.status",
    "tcp.checksum.status",
    "icmp.checksum.status",
    "icmpv6.checksum.status",
];

/// A protocol with a checksum both decoders know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proto {
    Ipv4,
    Udp,
    Tcp,
    Icmp,
    Icmpv6,
}

const PROTOS: [Proto; 5] = [
    Proto::Ipv4,
    Proto::Udp,
    Proto::Tcp,
    Proto::Icmp,
    Proto::Icmpv6,
];

/// tshark's `*.checksum.status` values (epan/proto.h `PROTO_CHECKSUM_E_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tshark {
    Bad,
    Good,
    Unverified,
    NotPresent,
    Illegal,
}

fn tshark_status(text: &str, at: &str) -> Tshark {
    match text {
        "0" => Tshark::Bad,
        "1" => Tshark::Good,
        "2" => Tshark::Unverified,
        "3" => Tshark::NotPresent,
        "4" => Tshark::Illegal,
        other => panic!("{at}: tshark checksum status `{other}` is not one of 0..=4"),
    }
}

/// Per frame, per protocol, tshark's checksum statuses outermost first.
fn tshark_statuses(path: &Path) -> Vec<[Vec<Tshark>; 5]> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-n").arg("-r").arg(path);
    for proto in ["ip", "udp", "tcp"] {
        cmd.args(["-o", &format!("{proto}.check_checksum:TRUE")]);
    }
    cmd.args(["-T", "fields", "-E", "occurrence=a", "-E", "separator=/t"]);
    for field in FIELDS {
        cmd.args(["-e", field]);
    }
    let out = cmd.output().unwrap_or_else(|e| {
        panic!(
            "cannot run tshark ({e}): it is one of the test command's packages; install it with ci/setup (apt: tshark)"
        )
    });
    assert!(
        out.status.success(),
        "tshark failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("tshark prints text")
        .lines()
        .enumerate()
        .map(|(i, line)| {
            let at = format!("{} frame {}", path.display(), i + 1);
            let mut cols = line.split('\t');
            std::array::from_fn(|_| {
                cols.next()
                    .unwrap_or("")
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| tshark_status(s, &at))
                    .collect()
            })
        })
        .collect()
}

/// Per protocol, dsrlab's checksum statuses of a frame, outermost first.
fn dsrlab_statuses(frame: &[u8]) -> [Vec<ChecksumStatus>; 5] {
    let d = dissect_with(frame, &DissectOptions::default());
    let mut out: [Vec<ChecksumStatus>; 5] = Default::default();
    for layer in &d.layers {
        let proto = match layer.repr {
            LayerRepr::Ipv4(_) => Proto::Ipv4,
            LayerRepr::Udp(_) => Proto::Udp,
            LayerRepr::Tcp(_) => Proto::Tcp,
            LayerRepr::Icmp(_) => Proto::Icmp,
            LayerRepr::Icmpv6(_) => Proto::Icmpv6,
            _ => continue,
        };
        if let Some(status) = layer.checksum {
            out[proto as usize].push(status);
        }
    }
    out
}

fn snapshot_pcaps() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/snapshots");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".snap.pcap"))
        .collect();
    paths.sort();
    paths
}

#[test]
fn tshark_agrees_with_dsrlab_on_every_checksum_of_every_output_pcap() {
    let pcaps = snapshot_pcaps();
    assert!(!pcaps.is_empty(), "no snapshot pcaps found");
    let mut problems = Vec::new();
    let mut compared = [0usize; 5];
    let mut frames = 0;
    for path in &pcaps {
        let ours = pcap::read_file(path).unwrap_or_else(|e| panic!("{e}"));
        let theirs = tshark_statuses(path);
        assert_eq!(
            ours.len(),
            theirs.len(),
            "{}: tshark read another number of frames",
            path.display()
        );
        frames += ours.len();
        for (i, (frame, tshark)) in ours.iter().zip(&theirs).enumerate() {
            let dsrlab = dsrlab_statuses(frame);
            let at = format!("{} frame {}", path.display(), i + 1);
            for proto in PROTOS {
                let (t, d) = (&tshark[proto as usize], &dsrlab[proto as usize]);
                for (n, &ts) in t.iter().enumerate() {
                    if ts == Tshark::Illegal {
                        problems.push(format!(
                            "{at}: {proto:?} #{n}: tshark: illegal zero checksum"
                        ));
                    }
                    // tshark stops where it has no decoder (GUE's inner
                    // packet); dsrlab goes on. Both walk outermost first.
                    let Some(&ds) = d.get(n) else { continue };
                    let agree = match (ts, ds) {
                        (Tshark::Good, ChecksumStatus::Valid)
                        | (Tshark::Bad, ChecksumStatus::Invalid { .. }) => true,
                        (
                            Tshark::Good | Tshark::Bad,
                            ChecksumStatus::Valid | ChecksumStatus::Invalid { .. },
                        ) => false,
                        // One of them did not verify it.
                        _ => continue,
                    };
                    compared[proto as usize] += 1;
                    if !agree {
                        problems.push(format!("{at}: {proto:?} #{n}: tshark {ts:?}, dsrlab {ds}"));
                    }
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "checksums tshark and dsrlab judge differently:\n{}",
        problems.join("\n")
    );
    // The comparison covered every protocol, not a handful of frames.
    eprintln!(
        "{} pcaps, {frames} frames; checksums compared: {:?}",
        pcaps.len(),
        PROTOS.iter().zip(compared).collect::<Vec<_>>()
    );
    for proto in PROTOS {
        assert!(
            compared[proto as usize] > 0,
            "no {proto:?} checksum was verified by both decoders"
        );
    }
}
