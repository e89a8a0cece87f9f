//! Tests of `dsrlab::formats`: building, dissecting and diffing packets,
//! pcap files, and fixture sets (including the shipped ones).

use std::path::{Path, PathBuf};

use dsrlab::formats::{
    fixture::{FixtureError, FixtureSet, Outcome},
    packet::{ChecksumStatus, LayerRepr, PacketSpec, diff, dissect, repr::Show},
    pcap,
};
use dsrlab_abi::decap::Counter;
use rstest::rstest;

fn spec(yaml: &str) -> PacketSpec {
    serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("bad spec {yaml}: {e}"))
}

fn build(yaml: &str) -> Vec<u8> {
    spec(yaml)
        .build()
        .unwrap_or_else(|e| panic!("cannot build {yaml}: {e}"))
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Emits a dissected header again, to compare with the bytes it came from.
fn emit(repr: &LayerRepr) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    match repr {
        LayerRepr::Eth(r) => r.emit(&mut out),
        LayerRepr::Vlan(r) => r.emit(&mut out),
        LayerRepr::Arp(r) => r.emit(&mut out),
        LayerRepr::Ipv4(r) => r.emit(&mut out),
        LayerRepr::Ipv6(r) => r.emit(&mut out),
        LayerRepr::Ipv6Ext(r) => r.emit(&mut out),
        LayerRepr::Udp(r) => r.emit(&mut out),
        LayerRepr::Gue(r) => r.emit(&mut out),
        LayerRepr::Tcp(r) => r.emit(&mut out),
        LayerRepr::Icmp(r) | LayerRepr::Icmpv6(r) => r.emit(&mut out),
        LayerRepr::Payload { .. } | LayerRepr::Trailer { .. } | LayerRepr::Malformed { .. } => {
            return None;
        }
    }
    Some(out)
}

#[rstest]
#[case::ip4in4_tcp(
    "layers: [eth, {ipv4: {tos: 0xb8, options: '94040000'}}, ipv4, {tcp: {flags: PA, options: '020405b4'}}, {payload: {len: 12}}]"
)]
#[case::ip6in4_udp("layers: [eth, ipv4, ipv6, {udp: {dport: 53}}, {payload: {text: hello}}]")]
#[case::gue4in6_icmp(
    "layers: [eth, {ipv6: {flow: 0x12345}}, udp, gue, ipv4, icmp, {payload: {len: 5}}]"
)]
#[case::gue_v0("layers: [eth, ipv4, udp, {gue: {variant: 0}}, ipv4, {tcp: {flags: S}}]")]
#[case::ip6_ext_chain(
    "layers: [eth, ipv6, {ipv6_ext: {kind: hop_by_hop}}, {ipv6_ext: {kind: routing}}, {ipv6_ext: {kind: fragment, ident: 9}}, {ipv6_ext: {kind: dest_opts, data: '0102aabb'}}, ipv4, udp]"
)]
#[case::icmpv6_error(
    "layers: [eth, ipv6, {icmpv6: {type: 2, rest: 1280}}, ipv6, ipv6, {udp: {dport: 53}}]"
)]
#[case::vlan_arp(
    "layers: [eth, {vlan: {vid: 42, pcp: 3}}, {arp: {op: 2, tha: '02:00:00:00:00:09'}}]"
)]
#[case::padded("layers: [{eth: {pad_to: 64}}, ipv4, {udp: {dport: 53}}]")]
fn build_then_dissect_round_trips(#[case] yaml: &str) {
    let s = spec(yaml);
    let built = s.build_detailed().expect("builds");
    let d = dissect(&built.bytes);
    // Every spec layer is found where the builder put it, under the same label.
    let found: Vec<(&str, usize)> = d
        .layers
        .iter()
        .filter(|l| {
            !matches!(
                l.repr,
                LayerRepr::Malformed { .. } | LayerRepr::Trailer { .. }
            )
        })
        .map(|l| (l.label.as_str(), l.offset))
        .collect();
    let built_layers: Vec<(&str, usize)> = built
        .layers
        .iter()
        .map(|l| (l.label.as_str(), l.offset))
        .collect();
    assert_eq!(found, built_layers, "\n{d}");
    assert!(
        !d.layers
            .iter()
            .any(|l| matches!(l.repr, LayerRepr::Malformed { .. })),
        "{d}"
    );
    // Parsing then emitting each header gives back its bytes.
    for l in &d.layers {
        if let Some(again) = emit(&l.repr) {
            assert_eq!(
                again,
                built.bytes[l.offset..l.offset + again.len()],
                "{} re-emitted",
                l.label
            );
        }
    }
    // Every checksum the builder derived is valid.
    for l in &d.layers {
        assert!(
            matches!(l.checksum, None | Some(ChecksumStatus::Valid)),
            "{}: {:?}\n{d}",
            l.label,
            l.checksum
        );
    }
}

#[test]
fn dissection_text_is_one_line_per_layer() {
    let bytes =
        build("layers: [eth, {ipv4: {tos: 0xb8}}, ipv4, {tcp: {flags: S}}, {payload: {len: 12}}]");
    insta::assert_snapshot!(dissect(&bytes).to_string(), @r"
    eth 02:00:00:00:00:01 > 02:00:00:00:00:02 type ipv4
    ipv4 198.18.0.1 > 198.18.0.2 ihl 5 tos 0xb8 len 72 id 1 ttl 64 proto ipip csum 0xedd1 ok
    ipv4 198.18.1.1 > 198.18.1.2 ihl 5 tos 0x00 len 52 id 1 ttl 64 proto tcp csum 0xec9b ok
    tcp 40000 > 80 [S] seq 1 ack 0 win 65535 csum 0x66f9 ok
    payload 12 bytes
    ");
}

#[test]
fn dissection_names_what_is_malformed() {
    let bytes = build("{layers: [eth, ipv6, udp, gue, ipv4, tcp], cut: 70}");
    insta::assert_snapshot!(dissect(&bytes).to_string(), @r"
    eth 02:00:00:00:00:01 > 02:00:00:00:00:02 type ipv6
    ipv6 2001:db8::1 > 2001:db8::2 tc 0x00 plen 16 nh udp hlim 64
    udp 40000 > 6080 len 16 csum 0xab2f ok
    gue v1
    ipv4: truncated, 8 of 20 header bytes
    ");
    let bytes = build("layers: [eth, {ipv4: {total_len: 9999, ihl: 5}}, {udp: {len: 3}}]");
    insta::assert_snapshot!(dissect(&bytes).to_string(), @r"
    eth 02:00:00:00:00:01 > 02:00:00:00:00:02 type ipv4
    ipv4 198.18.0.1 > 198.18.0.2 ihl 5 tos 0x00 len 9999 id 1 ttl 64 proto udp csum 0xc7b5 ok
    ipv4: total length 9999 > 28 bytes present
    udp 40000 > 9 len 3 csum 0xd771 unverified
    udp: length 3 < 8
    ");
    assert_eq!(
        dissect(&[]).to_string(),
        "eth: truncated, 0 of 14 header bytes\n"
    );
}

#[rstest]
#[case::ipv4("layers: [eth, {ipv4: {checksum: 0xdead}}, udp]", "ipv4")]
#[case::tcp(
    "layers: [eth, ipv4, {tcp: {checksum: 0xdead}}, {payload: {len: 3}}]",
    "tcp"
)]
#[case::udp_over_ipv6("layers: [eth, ipv6, {udp: {checksum: 0xdead}}]", "udp")]
#[case::icmp("layers: [eth, ipv4, {icmp: {checksum: 0xdead}}]", "icmp")]
#[case::icmpv6("layers: [eth, ipv6, {icmpv6: {checksum: 0xdead}}]", "icmpv6")]
#[case::inner_tcp(
    "layers: [eth, ipv6, udp, gue, ipv4, {tcp: {checksum: 0xdead}}]",
    "tcp"
)]
fn overridden_checksum_is_marked_invalid(#[case] yaml: &str, #[case] label: &str) {
    let find = |yaml: &str| {
        let d = dissect(&build(yaml));
        d.layers
            .iter()
            .find(|l| l.label == label)
            .cloned()
            .unwrap_or_else(|| panic!("no {label} in\n{d}"))
    };
    let good = find(&yaml.replace("checksum: 0xdead", "checksum: null"));
    let bad = find(yaml);
    assert_eq!(good.checksum, Some(ChecksumStatus::Valid), "{good}");
    let Some(ChecksumStatus::Invalid { computed }) = bad.checksum else {
        panic!("{label} checksum not marked invalid: {bad}")
    };
    let built_by_default = good
        .fields()
        .into_iter()
        .find(|f| f.name == "csum")
        .map(|f| f.value);
    assert_eq!(Some(format!("0x{computed:04x}")), built_by_default);
    assert!(bad.to_string().contains("csum 0xdead bad (want "), "{bad}");
}

#[test]
fn dissect_and_diff_never_fail() {
    // Every prefix and many single-byte corruptions of every shipped
    // packet: the dissector must describe them, not panic.
    let mut state = 0x2545_f491_u32;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    };
    let root = repo_root();
    for name in ["decap-tunnels", "decap-passthrough", "decap-malformed"] {
        let set =
            FixtureSet::from_yaml_file(&root.join(format!("fixtures/{name}.yaml"))).expect("loads");
        for p in &set.packets {
            for n in 0..p.bytes.len() {
                let d = dissect(&p.bytes[..n]);
                assert!(!d.layers.is_empty());
                assert!(diff(&p.bytes, &p.bytes[..n]).is_some());
            }
            for _ in 0..32 {
                let mut b = p.bytes.clone();
                if b.is_empty() {
                    break;
                }
                let i = next() as usize % b.len();
                b[i] = next() as u8;
                let _ = dissect(&b).to_string();
                let _ = diff(&p.bytes, &b);
            }
        }
    }
}

#[test]
fn zero_udp_checksum_over_ipv4_means_none() {
    let d = dissect(&build("layers: [eth, ipv4, {udp: {checksum: 0}}]"));
    assert_eq!(d.layers[2].checksum, Some(ChecksumStatus::Absent), "{d}");
    let d = dissect(&build("layers: [eth, ipv6, {udp: {checksum: 0}}]"));
    assert!(
        matches!(d.layers[2].checksum, Some(ChecksumStatus::Invalid { .. })),
        "{d}"
    );
}

#[test]
fn diff_names_layer_and_field_of_a_changed_ttl() {
    let expected = build("layers: [eth, ipv4, ipv4, {tcp: {flags: S}}, {payload: {len: 12}}]");
    let actual =
        build("layers: [eth, ipv4, {ipv4: {ttl: 63}}, {tcp: {flags: S}}, {payload: {len: 12}}]");
    assert_eq!(
        diff(&expected, &actual).as_deref(),
        Some("ipv4[1].ttl: expected 64, actual 63\nipv4[1].csum: expected 0xec9b, actual 0xed9b")
    );
    assert_eq!(diff(&expected, &expected), None);
}

#[test]
fn diff_falls_back_to_bytes_for_a_changed_payload_byte() {
    let yaml = "layers: [eth, ipv4, {tcp: {flags: S}}, {payload: {len: 12}}]";
    let expected = build(yaml);
    let mut actual = expected.clone();
    actual[60] ^= 0xff;
    let d = diff(&expected, &actual).expect("differs");
    assert_eq!(
        d,
        "tcp.csum_status: expected ok, actual bad (want 0x75f8)\n\
         byte 60 (payload): expected 02 03 04 05 [06] 07 08 09 0a, actual 02 03 04 05 [f9] 07 08 09 0a"
    );
}

#[test]
fn diff_reports_structure_and_length_changes() {
    let expected = build("layers: [eth, ipv4, ipv4, {tcp: {flags: S}}]");
    let actual = build("layers: [eth, ipv4, {tcp: {flags: S}}]");
    let d = diff(&expected, &actual).expect("differs");
    let lines: Vec<&str> = d.lines().collect();
    assert_eq!(lines[0], "frame.len: expected 74, actual 54");
    assert!(
        lines.contains(&"ipv4[0].proto: expected ipip, actual tcp"),
        "{d}"
    );
    assert!(
        lines
            .last()
            .is_some_and(|l| l.starts_with("layer 3: expected `ipv4 198.18.1.1 > 198.18.1.2")),
        "{d}"
    );
}

#[test]
fn dissection_and_diff_share_fields() {
    // A field the diff reports must be one the dissection line shows (or a
    // hidden one with its usual value): both come from the same list.
    let bytes = build("layers: [eth, {ipv4: {df: true, ttl: 7}}, udp]");
    let d = dissect(&bytes);
    let ipv4 = &d.layers[1];
    let line = ipv4.to_string();
    for f in ipv4.fields() {
        match f.show {
            Show::Named => assert!(
                line.contains(&format!("{} {}", f.name, f.value)),
                "{line} lacks {f:?}"
            ),
            Show::Hidden => assert!(
                !line.contains(&format!(" {} ", f.name)),
                "{line} shows hidden {f:?}"
            ),
            _ => assert!(line.contains(&f.value), "{line} lacks {f:?}"),
        }
    }
    assert!(
        line.contains("flags DF") && line.contains("ttl 7"),
        "{line}"
    );
}

#[test]
fn cut_fits_lengths_and_truncate_does_not() {
    let cut = build("{layers: [eth, ipv4, ipv4, tcp], cut: 54}");
    let truncated = build("{layers: [eth, ipv4, ipv4, tcp], mutate: [truncate: 54]}");
    assert_eq!(cut.len(), 54);
    assert_eq!(truncated.len(), 54);
    // Outer total length: fitted to 40 by a cut, still 60 after a truncation.
    assert_eq!(&cut[16..18], &40u16.to_be_bytes());
    assert_eq!(&truncated[16..18], &60u16.to_be_bytes());
    assert_eq!(
        &cut[36..38],
        &20u16.to_be_bytes(),
        "inner header whole, so fitted too"
    );
    let d = dissect(&cut);
    assert!(d.layers[1].checksum == Some(ChecksumStatus::Valid), "{d}");
    let e = spec("{layers: [eth, ipv4], cut: 99}")
        .build()
        .expect_err("cut beyond the packet");
    assert_eq!(e.to_string(), "cut 99: the packet has only 34 bytes");
}

#[test]
fn spec_errors_name_the_layer() {
    let e = spec("layers: [eth, ipv4, {payload: {len: 3, text: x}}]")
        .build()
        .expect_err("two sources");
    assert_eq!(
        e.to_string(),
        "layer 3 (payload): give exactly one of len, hex, text"
    );
    let e = spec("layers: [eth, ipv4, {tcp: {flags: SX}}]")
        .build()
        .expect_err("bad flag");
    assert_eq!(
        e.to_string(),
        "layer 3 (tcp): TCP flag `X` is not one of FSRPAUEC"
    );
    let e = serde_saphyr::from_str::<PacketSpec>("layers: [eth, {ipv5: {}}]")
        .expect_err("unknown kind");
    assert!(e.to_string().contains("ipv5"), "{e}");
    let e = serde_saphyr::from_str::<PacketSpec>("layers: [eth, {ipv4: {tll: 3}}]")
        .expect_err("unknown field");
    assert!(e.to_string().contains("tll"), "{e}");
}

#[test]
fn pcap_write_read_round_trip() {
    let packets = vec![
        build("layers: [eth, ipv4, {tcp: {flags: S}}]"),
        Vec::new(),
        build("layers: [eth, ipv6, {udp: {dport: 53}}, {payload: {len: 100}}]"),
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("x.pcap");
    pcap::write_file(&path, &packets).expect("writes");
    let file = std::fs::read(&path).expect("reads");
    assert_eq!(file, pcap::to_bytes(&packets));
    assert_eq!(
        &file[..4],
        &0xa1b2c3d4u32.to_le_bytes(),
        "little-endian microsecond magic"
    );
    assert_eq!(&file[20..24], &1u32.to_le_bytes(), "LINKTYPE_ETHERNET");
    // Packet i at i µs: the third record's timestamp is 0 s 2 µs.
    let third = 24 + (16 + packets[0].len()) + 16;
    assert_eq!(&file[third..third + 8], &[0, 0, 0, 0, 2, 0, 0, 0]);
    assert_eq!(pcap::read_file(&path).expect("parses"), packets);
}

#[test]
fn pcap_errors_name_file_and_packet() {
    let packets = vec![
        build("layers: [eth, ipv4, udp]"),
        build("layers: [eth, ipv6, udp]"),
    ];
    let good = pcap::to_bytes(&packets);
    let name = Path::new("pcaps/x.pcap");

    let mut bad_magic = good.clone();
    bad_magic[..4].copy_from_slice(b"\xde\xad\xbe\xef");
    let e = pcap::from_bytes(&bad_magic, name).expect_err("bad magic");
    assert_eq!(
        e.to_string(),
        "pcaps/x.pcap: bad magic 0xdeadbeef (neither a classic pcap nor a pcapng file)"
    );
    // A pcapng section header whose byte-order magic is broken.
    let mut bad_ng = good.clone();
    bad_ng[..4].copy_from_slice(b"\x0a\x0d\x0d\x0a");
    let e = pcap::from_bytes(&bad_ng, name).expect_err("bad pcapng");
    assert_eq!(
        e.to_string(),
        "pcaps/x.pcap: not a pcapng file: Invalid field value: SectionHeaderBlock: invalid magic number"
    );

    let record2 = 24 + 16 + packets[0].len();
    let e = pcap::from_bytes(&good[..record2 + 5], name).expect_err("truncated record header");
    assert_eq!(
        e.to_string(),
        "pcaps/x.pcap: packet 2: truncated record header (5 of 16 bytes)"
    );
    assert_eq!(e.packet, Some(2));

    let e = pcap::from_bytes(&good[..good.len() - 3], name).expect_err("truncated data");
    assert_eq!(
        e.to_string(),
        format!(
            "pcaps/x.pcap: packet 2: truncated packet data ({} of {} bytes)",
            packets[1].len() - 3,
            packets[1].len()
        )
    );

    let mut linktype = good.clone();
    linktype[20..24].copy_from_slice(&113u32.to_le_bytes());
    let e = pcap::from_bytes(&linktype, name).expect_err("SLL");
    assert_eq!(
        e.to_string(),
        "pcaps/x.pcap: unsupported link type 113 (only 1, LINKTYPE_ETHERNET, is supported)"
    );

    let e = pcap::from_bytes(&good[..10], name).expect_err("short header");
    assert_eq!(
        e.to_string(),
        "pcaps/x.pcap: truncated file header (10 of 24 bytes)"
    );

    let e = pcap::read_file(Path::new("/nonexistent/y.pcap")).expect_err("missing");
    assert!(
        e.to_string()
            .starts_with("/nonexistent/y.pcap: cannot read:"),
        "{e}"
    );
}

const SMALL_SET: &str = "\
description: test
provenance: test
packets:
  - name: ip4in4
    layers: [eth, ipv4, ipv4, {tcp: {flags: S}}]
    expect: decap decap_ip4_in_ip4
  - name: plain
    layers: [eth, ipv4, udp]
    expect: pass pass_not_tunnel
    quirks: {checksum: complete, linear: 34}
";

fn load(yaml: &str) -> Result<FixtureSet, FixtureError> {
    FixtureSet::from_yaml_str(yaml, Path::new("fixtures/t.yaml"))
}

fn load_err(yaml: &str) -> String {
    load(yaml).expect_err("invalid set").to_string()
}

#[test]
fn fixture_set_reads_packets_expectations_and_quirks() {
    let set = load(SMALL_SET).expect("valid");
    assert_eq!(set.name, "t");
    assert_eq!(
        set.pcap,
        Path::new("pcaps/t.pcap"),
        "default pcap, relative to the YAML's directory"
    );
    assert_eq!(set.packets.len(), 2);
    assert_eq!(set.packets[0].expect.outcome, Outcome::Decap);
    assert_eq!(set.packets[0].expect.counter, Counter::DecapIp4InIp4);
    assert!(set.packets[1].quirks.checksum_complete);
    assert_eq!(set.packets[1].quirks.linear, Some(34));
    assert!(!set.packets[0].quirks.checksum_complete);
    assert_eq!(set.packets[1].bytes, build("layers: [eth, ipv4, udp]"));
    let other =
        load(&SMALL_SET.replace("packets:", "pcap: ../elsewhere/p.pcap\npackets:")).expect("valid");
    assert_eq!(other.pcap, Path::new("elsewhere/p.pcap"));
}

#[rstest]
#[case::unknown_key(
    SMALL_SET.replace("    quirks:", "    quirk:"),
    "fixtures/t.yaml:10:5: unknown field `quirk`, expected one of name, layers, cut, mutate, expect, quirks, truncations, cuts"
)]
#[case::unknown_layer_field(
    SMALL_SET.replace("{flags: S}", "{flgs: S}"),
    "fixtures/t.yaml:5:38: unknown field `flgs`"
)]
#[case::unknown_counter(
    SMALL_SET.replace("pass pass_not_tunnel", "pass pass_not_a_tunnel"),
    "fixtures/t.yaml:9:13: unknown counter `pass_not_a_tunnel`"
)]
#[case::outcome_contradicts_counter(
    SMALL_SET.replace("pass pass_not_tunnel", "drop pass_not_tunnel"),
    "fixtures/t.yaml:9:13: counter `pass_not_tunnel` counts `pass` packets, not `drop`"
)]
#[case::bad_quirk(SMALL_SET.replace("checksum: complete", "checksum: partial"), "fixtures/t.yaml:10:24: unknown variant `partial`, expected one of complete")]
fn fixture_yaml_errors_name_line_and_column(#[case] yaml: String, #[case] want: &str) {
    let e = load_err(&yaml);
    assert!(e.starts_with(want), "got: {e}\nwant prefix: {want}");
}

#[rstest]
#[case::decap_of_wrong_kind(
    SMALL_SET.replace("decap decap_ip4_in_ip4", "decap decap_ip6_in_ip4"),
    "fixtures/t.yaml:4:11: packet `ip4in4`: expects decap_ip6_in_ip4 but its layers make a decap_ip4_in_ip4 packet"
)]
#[case::decap_of_non_tunnel(
    SMALL_SET.replace("pass pass_not_tunnel", "decap decap_ip4_in_ip4"),
    "fixtures/t.yaml:7:11: packet `plain`: a `decap` packet must be eth, ipv4|ipv6, [udp, [gue]], ipv4|ipv6, …"
)]
#[case::duplicate_name(SMALL_SET.replace("name: plain", "name: ip4in4"), "fixtures/t.yaml:7:11: packet `ip4in4`: the name is used twice")]
#[case::build_error(
    SMALL_SET.replace("[eth, ipv4, udp]", "[eth, ipv4, udp]\n    mutate: [truncate: 99]"),
    "fixtures/t.yaml:7:11: packet `plain`: mutation 1: truncate 99: the packet has only 42 bytes"
)]
#[case::family_without_expectation(
    SMALL_SET.replace("    quirks:", "    cuts: {eth: pass pass_malformed}\n    quirks:"),
    "fixtures/t.yaml:7:11: packet `plain`: cuts: no expectation for layer `ipv4` (at 14 bytes)"
)]
#[case::family_unknown_key(
    SMALL_SET.replace("    quirks:", "    cuts: {tcp: pass pass_malformed}\n    quirks:"),
    "fixtures/t.yaml:7:11: packet `plain`: cuts: `tcp` is neither a layer (eth, ipv4, udp), a boundary (13, 14, 33, 34, 41) nor `*`"
)]
fn fixture_packet_errors_name_the_packet(#[case] yaml: String, #[case] want: &str) {
    let e = load_err(&yaml);
    assert!(e.starts_with(want), "got: {e}\nwant prefix: {want}");
}

#[test]
fn families_expand_at_every_boundary() {
    let yaml = SMALL_SET.replace(
        "    expect: decap decap_ip4_in_ip4\n",
        "    expect: decap decap_ip4_in_ip4\n    truncations: {\"*\": pass pass_malformed}\n    cuts: {eth: pass pass_malformed, \"ipv4[0]\": pass pass_malformed, \"ipv4[1]\": drop drop_malformed_tunnel, tcp: decap decap_ip4_in_ip4, \"53\": pass pass_malformed}\n",
    );
    let set = load(&yaml).expect("valid");
    let got: Vec<String> = set
        .packets
        .iter()
        .map(|p| format!("{} {}", p.name, p.expect))
        .collect();
    let boundaries = [13, 14, 33, 34, 53, 54, 73];
    let mut want = vec!["ip4in4 decap decap_ip4_in_ip4".to_owned()];
    want.extend(
        boundaries
            .iter()
            .map(|n| format!("ip4in4/trunc-{n} pass pass_malformed")),
    );
    for (n, e) in boundaries.iter().zip([
        "pass pass_malformed",
        "pass pass_malformed",
        "pass pass_malformed",
        "drop drop_malformed_tunnel",
        "pass pass_malformed", // the "53" override
        "decap decap_ip4_in_ip4",
        "decap decap_ip4_in_ip4",
    ]) {
        want.push(format!("ip4in4/cut-{n} {e}"));
    }
    want.push("plain pass pass_not_tunnel".to_owned());
    assert_eq!(got, want);
    let trunc34 = &set.packets[4];
    assert_eq!(trunc34.bytes, set.packets[0].bytes[..34]);
    let cut54 = set
        .packets
        .iter()
        .find(|p| p.name == "ip4in4/cut-54")
        .expect("member");
    assert_eq!(cut54.spec.cut, Some(54));
    assert_eq!(cut54.bytes.len(), 54);
}

#[test]
fn expected_output_of_decap_is_ethernet_and_inner_bytes() {
    let set = FixtureSet::from_yaml_file(&repo_root().join("fixtures/decap-tunnels.yaml"))
        .expect("loads");
    let packet = |name: &str| {
        set.packets
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no {name}"))
    };
    let eth_with = |bytes: &[u8], ethertype: [u8; 2]| [&bytes[..12], &ethertype[..]].concat();
    for (name, inner_offset, ethertype) in [
        ("ip4in4-tcp", 14 + 20, [0x08, 0x00]),
        ("ip6in4-udp", 14 + 20, [0x86, 0xdd]),
        ("ip4in6-icmp", 14 + 40, [0x08, 0x00]),
        ("ip6in6-tcp", 14 + 40, [0x86, 0xdd]),
        ("gue4in4-udp", 14 + 20 + 8, [0x08, 0x00]),
        ("gue6in6-icmpv6", 14 + 40 + 8, [0x86, 0xdd]),
        ("ip4in4-tcp-outer-options", 14 + 24, [0x08, 0x00]),
        // Padding after the outer packet stays after the inner one.
        ("ip4in4-tcp-padded", 14 + 20, [0x08, 0x00]),
    ] {
        let p = packet(name);
        let want = [
            eth_with(&p.bytes, ethertype),
            p.bytes[inner_offset..].to_vec(),
        ]
        .concat();
        assert_eq!(p.expected_output(), Some(want), "{name}");
    }
    assert_eq!(packet("ip4in4-tcp-padded").bytes.len(), 96);
    let passthrough =
        FixtureSet::from_yaml_file(&repo_root().join("fixtures/decap-passthrough.yaml"))
            .expect("loads");
    assert_eq!(
        passthrough.packets[0].expected_output().as_ref(),
        Some(&passthrough.packets[0].bytes)
    );
    let malformed = FixtureSet::from_yaml_file(&repo_root().join("fixtures/decap-malformed.yaml"))
        .expect("loads");
    let dropped = malformed
        .packets
        .iter()
        .find(|p| p.expect.outcome == Outcome::Drop)
        .expect("a drop");
    assert_eq!(dropped.expected_output(), None);
}

#[test]
fn decap_with_a_mutated_inner_packet_is_rejected() {
    let yaml = SMALL_SET.replace(
        "    expect: decap decap_ip4_in_ip4",
        "    mutate: [{set: {offset: 40, hex: ff}}]\n    expect: decap decap_ip4_in_ip4",
    );
    let e = load_err(&yaml);
    assert!(
        e.contains("the inner packet rebuilt alone differs from bytes 34..74"),
        "{e}"
    );
}

#[test]
fn shipped_pcaps_are_not_stale() {
    let root = repo_root();
    let mut sets = 0;
    for entry in std::fs::read_dir(root.join("fixtures")).expect("fixtures/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let set = FixtureSet::from_yaml_file(&path).unwrap_or_else(|e| panic!("{e}"));
            let loaded = set.load_pcap().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(loaded.len(), set.packets.len());
            sets += 1;
        }
    }
    assert!(sets >= 3, "found only {sets} fixture sets");
}

#[test]
fn stale_pcap_is_detected() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("fixtures")).expect("mkdir");
    let yaml = dir.path().join("fixtures/t.yaml");
    std::fs::write(&yaml, SMALL_SET).expect("write yaml");
    let written = dsrlab::formats::fixture::generate(&dir.path().join("fixtures"), dir.path())
        .expect("generates");
    assert_eq!(written, vec![(PathBuf::from("pcaps/t.pcap"), 2)]);
    let set = FixtureSet::from_yaml_file(&yaml).expect("loads");
    set.check_pcap().expect("fresh");

    std::fs::write(
        &yaml,
        SMALL_SET.replace("[eth, ipv4, udp]", "[eth, {ipv4: {ttl: 1}}, udp]"),
    )
    .expect("edit");
    let set = FixtureSet::from_yaml_file(&yaml).expect("loads");
    let e = set.check_pcap().expect_err("stale").to_string();
    assert!(e.contains("pcaps/t.pcap is stale: packet 2 (`plain`: ipv4.ttl: expected 1, actual 64) differs from "), "{e}");
    assert!(
        e.ends_with("fixtures/t.yaml (run `dsrlab fixtures gen`)"),
        "{e}"
    );

    std::fs::write(&yaml, SMALL_SET.replace("  - name: plain", "  - name: more\n    layers: [eth, ipv6]\n    expect: pass pass_not_tunnel\n  - name: plain")).expect("edit");
    let set = FixtureSet::from_yaml_file(&yaml).expect("loads");
    let e = set.check_pcap().expect_err("stale").to_string();
    assert!(e.contains("is stale: packet 2 (`more`"), "{e}");
}

#[test]
fn shipped_fixtures_cover_every_decap_kind_and_outcome() {
    let root = repo_root();
    let mut counters = std::collections::BTreeSet::new();
    for name in ["decap-tunnels", "decap-passthrough", "decap-malformed"] {
        let set =
            FixtureSet::from_yaml_file(&root.join(format!("fixtures/{name}.yaml"))).expect("loads");
        counters.extend(set.packets.iter().map(|p| p.expect.counter));
    }
    for c in Counter::ALL {
        if !matches!(c, Counter::PassNonLinear | Counter::DropHelperError) {
            assert!(counters.contains(&c), "no fixture expects {}", c.name());
        }
    }
}
