//! Tests of `formats::scenario::generate`: generated traffic is
//! deterministic, well-formed (it dissects cleanly, checksums right), shaped
//! by its tunnel and confined to its ranges, and bad generators are refused
//! with the field and the reason.

use std::{
    collections::HashSet,
    net::{IpAddr, Ipv4Addr},
};

use dsrlab::formats::{
    packet::{ChecksumStatus, DissectedLayer, LayerRepr, dissect},
    scenario::{
        generate::{GenerateError, GeneratedPacket, MAX_PACKETS, expand},
        model::Generator,
    },
};
use rstest::rstest;

fn generator(yaml: &str) -> Generator {
    serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("bad generator {yaml}: {e}"))
}

fn packets(yaml: &str) -> Vec<GeneratedPacket> {
    expand(&generator(yaml), "test").unwrap_or_else(|e| panic!("{yaml}: {e}"))
}

fn error(yaml: &str) -> GenerateError {
    match expand(&generator(yaml), "test") {
        Ok(p) => panic!("{yaml}: expected an error, got {} packets", p.len()),
        Err(e) => e,
    }
}

/// The inner packet as dissected: the innermost IP layer and what follows.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Inner {
    src: IpAddr,
    dst: IpAddr,
    l4: &'static str,
    sport: u16,
    dport: u16,
    /// TCP flags letters / ICMP echo id.
    tcp: Option<(String, u32, u32)>,
    icmp: Option<(u16, u16)>,
    payload: usize,
}

fn inner(p: &GeneratedPacket) -> Inner {
    let d = dissect(&p.bytes);
    let ip = d
        .layers
        .iter()
        .rposition(|l| matches!(l.repr, LayerRepr::Ipv4(_) | LayerRepr::Ipv6(_)))
        .unwrap_or_else(|| panic!("{}: no IP layer\n{d}", p.name));
    let (src, dst) = match &d.layers[ip].repr {
        LayerRepr::Ipv4(r) => (IpAddr::V4(r.src), IpAddr::V4(r.dst)),
        LayerRepr::Ipv6(r) => (IpAddr::V6(r.src), IpAddr::V6(r.dst)),
        _ => unreachable!(),
    };
    assert_eq!(
        d.layers[ip].offset, p.inner_offset,
        "{}: inner_offset",
        p.name
    );
    let l4 = &d.layers[ip + 1];
    let payload = d.layers.get(ip + 2).map_or(0, |l| match l.repr {
        LayerRepr::Payload { len } => len,
        _ => panic!("{}: `{l}` after the transport header", p.name),
    });
    let mut i = Inner {
        src,
        dst,
        l4: l4.repr.kind(),
        sport: 0,
        dport: 0,
        tcp: None,
        icmp: None,
        payload,
    };
    match &l4.repr {
        LayerRepr::Tcp(t) => {
            (i.sport, i.dport) = (t.sport, t.dport);
            let flags = dsrlab::formats::packet::repr::TcpRepr::flag_letters(t.flags);
            i.tcp = Some((flags, t.seq, t.ack));
        }
        LayerRepr::Udp(u) => (i.sport, i.dport) = (u.sport, u.dport),
        LayerRepr::Icmp(c) | LayerRepr::Icmpv6(c) => {
            i.icmp = Some(((c.rest >> 16) as u16, c.rest as u16));
        }
        other => panic!("{}: no transport layer after IP: {other:?}", p.name),
    }
    i
}

fn kinds(p: &GeneratedPacket) -> Vec<&'static str> {
    dissect(&p.bytes)
        .layers
        .iter()
        .map(|l| l.repr.kind())
        .collect()
}

/// Every layer well-formed and every checksum right.
fn assert_clean(p: &GeneratedPacket) {
    let d = dissect(&p.bytes);
    for l in &d.layers {
        assert!(
            !matches!(
                l.repr,
                LayerRepr::Malformed { .. } | LayerRepr::Trailer { .. }
            ),
            "{}: `{l}`\n{d}",
            p.name
        );
        if let Some(status) = l.checksum {
            assert_eq!(status, ChecksumStatus::Valid, "{}: `{l}`\n{d}", p.name);
        }
    }
}

#[test]
fn the_same_seed_gives_the_same_bytes_and_another_seed_others() {
    let yaml = "{flows: 20, packets_per_flow: 3, protocols: [tcp, udp, icmp], payload: 0-64, tunnel: gue4_in_ip6, outer_src: '2001:db8::/120', seed: 7}";
    let a = packets(yaml);
    assert_eq!(a, packets(yaml));
    let b = packets(&yaml.replace("seed: 7", "seed: 8"));
    assert_eq!(a.len(), b.len());
    assert_ne!(a, b);
    // Every flow differs, not just one field of one packet.
    let differing = a.iter().zip(&b).filter(|(x, y)| x.bytes != y.bytes).count();
    assert!(differing > a.len() / 2, "{differing} of {} differ", a.len());
}

/// The draw is specified (ChaCha8, stream layout, rejection), so its output
/// is pinned here: a change of algorithm or dependency that moves any byte
/// fails this test instead of silently changing every scenario's traffic.
#[test]
fn the_draw_is_pinned() {
    let p = packets(
        "{flows: 3, packets_per_flow: 2, protocols: [tcp, udp, icmp], payload: 0-4, tunnel: gue4_in_ip4, outer_src: 198.18.0.0/24, seed: 2}",
    );
    let text: String = p
        .iter()
        .map(|p| format!("{}\n{}", p.name, dissect(&p.bytes)))
        .collect();
    insta::assert_snapshot!(text, @r"
    flow-1/1
    eth 02:00:00:00:00:01 > 02:00:00:00:00:02 type ipv4
    ipv4 198.18.0.39 > 198.18.0.2 ihl 5 tos 0x00 len 58 id 1 ttl 64 proto udp csum 0xee64 ok
    udp 64025 > 6080 len 38 csum 0x617a ok
    gue v1
    ipv4 198.18.1.101 > 198.18.2.1 ihl 5 tos 0x00 len 30 id 1 ttl 64 proto icmp csum 0xeb53 ok
    icmp echo-request code 0 id 10021 seq 1 csum 0xd0d8 ok
    payload 2 bytes
    flow-1/2
    eth 02:00:00:00:00:01 > 02:00:00:00:00:02 type ipv4
    ipv4 198.18.0.39 > 198.18.0.2 ihl 5 tos 0x00 len 56 id 1 ttl 64 proto udp csum 0xee66 ok
    udp 64025 > 6080 len 36 csum 0x617e ok
    gue v1
    ipv4 198.18.1.101 > 198.18.2.1 ihl 5 tos 0x00 len 28 id 1 ttl 64 proto icmp csum 0xeb55 ok
    icmp echo-request code 0 id 10021 seq 2 csum 0xd0d8 ok
    flow-2/1
    eth 02:00:00:00:00:01 > 02:00:00:00:00:02 type ipv4
    ipv4 198.18.0.97 > 198.18.0.2 ihl 5 tos 0x00 len 59 id 1 ttl 64 proto udp csum 0xee29 ok
    udp 62675 > 6080 len 39 csum 0xf640 ok
    gue v1
    ipv4 198.18.1.122 > 198.18.2.1 ihl 5 tos 0x00 len 31 id 1 ttl 64 proto udp csum 0xeb2d ok
    udp 34670 > 80 len 11 csum 0xe678 ok
    payload 3 bytes
    flow-2/2
    eth 02:00:00:00:00:01 > 02:00:00:00:00:02 type ipv4
    ipv4 198.18.0.97 > 198.18.0.2 ihl 5 tos 0x00 len 58 id 1 ttl 64 proto udp csum 0xee2a ok
    udp 62675 > 6080 len 38 csum 0xf641 ok
    gue v1
    ipv4 198.18.1.122 > 198.18.2.1 ihl 5 tos 0x00 len 30 id 1 ttl 64 proto udp csum 0xeb2e ok
    udp 34670 > 80 len 10 csum 0xe87a ok
    payload 2 bytes
    flow-3/1
    eth 02:00:00:00:00:01 > 02:00:00:00:00:02 type ipv4
    ipv4 198.18.0.28 > 198.18.0.2 ihl 5 tos 0x00 len 71 id 1 ttl 64 proto udp csum 0xee62 ok
    udp 64421 > 6080 len 51 csum 0xefff ok
    gue v1
    ipv4 198.18.1.221 > 198.18.2.1 ihl 5 tos 0x00 len 43 id 1 ttl 64 proto tcp csum 0xeac9 ok
    tcp 21651 > 80 [S] seq 2540952938 ack 0 win 65535 csum 0x541a ok
    payload 3 bytes
    flow-3/2
    eth 02:00:00:00:00:01 > 02:00:00:00:00:02 type ipv4
    ipv4 198.18.0.28 > 198.18.0.2 ihl 5 tos 0x00 len 71 id 1 ttl 64 proto udp csum 0xee62 ok
    udp 64421 > 6080 len 51 csum 0xefff ok
    gue v1
    ipv4 198.18.1.221 > 198.18.2.1 ihl 5 tos 0x00 len 43 id 1 ttl 64 proto tcp csum 0xeac9 ok
    tcp 21651 > 80 [A] seq 2540952942 ack 2067619169 win 65535 csum 0x7b69 ok
    payload 3 bytes
    ");
}

#[test]
fn counts_and_names() {
    let p = packets("{flows: 4, packets_per_flow: 3}");
    assert_eq!(p.len(), 12);
    let names: Vec<&str> = p.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        &names[..4],
        ["flow-1/1", "flow-1/2", "flow-1/3", "flow-2/1"]
    );
    assert_eq!(names[11], "flow-4/3");
    assert!(p.iter().zip(0..).all(|(p, i)| p.flow == i / 3 + 1));

    let p = packets("{flows: 5}");
    let names: Vec<&str> = p.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["flow-1", "flow-2", "flow-3", "flow-4", "flow-5"]);
}

#[rstest]
fn every_packet_is_well_formed(
    #[values(
        "none",
        "ip4_in_ip4",
        "ip6_in_ip4",
        "ip4_in_ip6",
        "ip6_in_ip6",
        "gue4_in_ip4",
        "gue6_in_ip4",
        "gue4_in_ip6",
        "gue6_in_ip6"
    )]
    tunnel: &str,
) {
    let p = packets(&format!(
        "{{flows: 30, packets_per_flow: 3, protocols: [tcp, udp, icmp], payload: 0-300, tunnel: {tunnel}, seed: 3}}"
    ));
    assert_eq!(p.len(), 90);
    p.iter().for_each(assert_clean);
    // All three protocols were drawn.
    let l4: HashSet<&str> = p.iter().map(|p| inner(p).l4).collect();
    assert_eq!(l4.len(), 3, "{l4:?}");
}

#[rstest]
#[case::none("none", "eth ipv4 tcp payload")]
#[case::ip4_in_ip4("ip4_in_ip4", "eth ipv4 ipv4 tcp payload")]
#[case::ip6_in_ip4("ip6_in_ip4", "eth ipv4 ipv6 tcp payload")]
#[case::ip4_in_ip6("ip4_in_ip6", "eth ipv6 ipv4 tcp payload")]
#[case::ip6_in_ip6("ip6_in_ip6", "eth ipv6 ipv6 tcp payload")]
#[case::gue4_in_ip4("gue4_in_ip4", "eth ipv4 udp gue ipv4 tcp payload")]
#[case::gue6_in_ip4("gue6_in_ip4", "eth ipv4 udp gue ipv6 tcp payload")]
#[case::gue4_in_ip6("gue4_in_ip6", "eth ipv6 udp gue ipv4 tcp payload")]
#[case::gue6_in_ip6("gue6_in_ip6", "eth ipv6 udp gue ipv6 tcp payload")]
fn tunnels_have_their_outer_and_inner_layers(#[case] tunnel: &str, #[case] layers: &str) {
    let p = packets(&format!("{{flows: 8, tunnel: {tunnel}}}"));
    for p in &p {
        assert_eq!(kinds(p).join(" "), layers, "{}", p.name);
        let d = dissect(&p.bytes);
        let outer: Vec<&DissectedLayer> = d
            .layers
            .iter()
            .take_while(|l| l.offset < p.inner_offset)
            .collect();
        for l in &outer {
            match &l.repr {
                LayerRepr::Ipv4(r) => {
                    assert_eq!(r.tos, 0, "outer ToS");
                    assert_eq!(
                        (r.src, r.dst),
                        ("198.18.0.1".parse().unwrap(), "198.18.0.2".parse().unwrap())
                    );
                }
                LayerRepr::Ipv6(r) => {
                    assert_eq!(r.tclass, 0, "outer traffic class");
                    assert_eq!(
                        (r.src, r.dst),
                        (
                            "2001:db8::1".parse().unwrap(),
                            "2001:db8::2".parse().unwrap()
                        )
                    );
                }
                LayerRepr::Udp(u) => {
                    assert_eq!(u.dport, 6080);
                    assert!(u.sport >= 49152, "entropy port {}", u.sport);
                }
                LayerRepr::Gue(g) => assert_eq!(g.variant, 1),
                _ => {}
            }
        }
    }
    if tunnel.starts_with("gue") {
        // The outer source port follows the inner flow: distinct flows
        // spread over several ports.
        let ports: HashSet<Vec<u8>> = p
            .iter()
            .map(|p| p.bytes[p.inner_offset - 8..][..2].to_vec())
            .collect();
        assert!(ports.len() > 1, "{ports:?}");
    }
}

#[test]
fn gue_entropy_is_per_flow_and_stable_within_a_flow() {
    let p = packets("{flows: 20, packets_per_flow: 4, tunnel: gue6_in_ip6, protocols: [udp]}");
    let port = |p: &GeneratedPacket| {
        u16::from_be_bytes([p.bytes[p.inner_offset - 8], p.bytes[p.inner_offset - 7]])
    };
    for flow in p.chunks(4) {
        assert!(
            flow.iter().all(|q| port(q) == port(&flow[0])),
            "{}",
            flow[0].name
        );
    }
}

#[test]
fn ranges_are_respected() {
    let p = packets(
        "{flows: 40, packets_per_flow: 2, protocols: [tcp, udp], src: 198.18.1.0/30, dst: 198.18.2.1-198.18.2.3, sport: 1000-1004, dport: 80-81, payload: 0-5, tunnel: ip4_in_ip6, outer_src: '2001:db8:5::10-2001:db8:5::13', outer_dst: '2001:db8:6::/127'}",
    );
    let v4 = |s: &str| IpAddr::V4(s.parse::<Ipv4Addr>().unwrap());
    let mut payloads = HashSet::new();
    let mut outer_srcs = HashSet::new();
    for q in &p {
        let i = inner(q);
        assert!(
            (v4("198.18.1.0")..=v4("198.18.1.3")).contains(&i.src),
            "{i:?}"
        );
        assert!(
            (v4("198.18.2.1")..=v4("198.18.2.3")).contains(&i.dst),
            "{i:?}"
        );
        assert!((1000..=1004).contains(&i.sport), "{i:?}");
        assert!((80..=81).contains(&i.dport), "{i:?}");
        assert!(i.payload <= 5, "{i:?}");
        payloads.insert(i.payload);
        let d = dissect(&q.bytes);
        let LayerRepr::Ipv6(o) = &d.layers[1].repr else {
            panic!("{d}")
        };
        let s = u128::from(o.src);
        let lo = u128::from("2001:db8:5::10".parse::<std::net::Ipv6Addr>().unwrap());
        assert!((lo..=lo + 3).contains(&s), "{}", o.src);
        assert!(
            o.dst.to_string() == "2001:db8:6::" || o.dst.to_string() == "2001:db8:6::1",
            "{}",
            o.dst
        );
        outer_srcs.insert(s);
    }
    // The whole range is used, ends included.
    assert_eq!(payloads.len(), 6, "{payloads:?}");
    assert_eq!(outer_srcs.len(), 4, "{outer_srcs:?}");
}

#[test]
fn ipv6_defaults_follow_the_family() {
    for yaml in [
        "{flows: 3, tunnel: gue6_in_ip4}",
        "{flows: 3, src: '2001:db8:7::1'}",
    ] {
        for q in packets(yaml) {
            let i = inner(&q);
            assert!(i.src.to_string().starts_with("2001:db8:"), "{yaml}: {i:?}");
            assert!(i.dst.to_string().starts_with("2001:db8:"), "{yaml}: {i:?}");
        }
    }
}

#[test]
fn flows_are_distinct_even_when_the_ranges_are_exactly_enough() {
    // 4 × 2 × 2 tuples for TCP, and 4 × 2 × 2 (echo ids) for ICMP: 32.
    let p = packets(
        "{flows: 32, protocols: [tcp, icmp], src: 198.18.1.0/30, dst: 198.18.2.1-198.18.2.2, sport: 5000-5001, dport: 443}",
    );
    let tuples: HashSet<Inner> = p.iter().map(inner).collect();
    assert_eq!(tuples.len(), 32);
}

#[test]
fn tcp_flows_are_a_syn_then_acks_with_advancing_sequence_numbers() {
    let p = packets("{flows: 5, packets_per_flow: 4, payload: 0-100}");
    for flow in p.chunks(4) {
        let i: Vec<Inner> = flow.iter().map(inner).collect();
        let (flags, isn, ack) = i[0].tcp.clone().unwrap();
        assert_eq!((flags.as_str(), ack), ("S", 0));
        let mut next = isn.wrapping_add(1).wrapping_add(i[0].payload as u32);
        let peer_ack = i[1].tcp.as_ref().unwrap().2;
        for later in &i[1..] {
            let (flags, seq, ack) = later.tcp.clone().unwrap();
            assert_eq!(
                (flags.as_str(), seq, ack),
                ("A", next, peer_ack),
                "{}",
                flow[0].name
            );
            next = next.wrapping_add(later.payload as u32);
            assert_eq!(
                (later.src, later.dst, later.sport, later.dport),
                (i[0].src, i[0].dst, i[0].sport, i[0].dport)
            );
        }
    }
}

#[test]
fn udp_and_icmp_flows_keep_their_tuple_and_icmp_counts_its_sequence() {
    let p = packets("{flows: 6, packets_per_flow: 3, protocols: [udp, icmp]}");
    for flow in p.chunks(3) {
        let i: Vec<Inner> = flow.iter().map(inner).collect();
        for (k, x) in i.iter().enumerate() {
            assert_eq!(
                (x.src, x.dst, x.l4, x.sport, x.dport),
                (i[0].src, i[0].dst, i[0].l4, i[0].sport, i[0].dport)
            );
            if let Some((id, seq)) = x.icmp {
                assert_eq!((id, seq), (i[0].icmp.unwrap().0, k as u16 + 1));
            }
        }
    }
    let p = packets("{flows: 2, protocols: [icmp], src: '2001:db8:1::1'}");
    assert!(p.iter().all(|p| inner(p).l4 == "icmpv6"));
}

#[rstest]
#[case::outside(
    "{flows: 1, src: 10.0.0.0/8}",
    "src",
    "src: 10.0.0.0/8 is outside 198.18.0.0/15 and 2001:db8::/32, the only ranges dsrlab sends to"
)]
#[case::partly_outside(
    "{flows: 1, dst: 198.19.255.0-198.20.0.1}",
    "dst",
    "is outside 198.18.0.0/15"
)]
#[case::outside_v6(
    "{flows: 1, tunnel: ip4_in_ip6, outer_dst: '2001:db9::1'}",
    "outer_dst",
    "is outside"
)]
#[case::family(
    "{flows: 1, src: '2001:db8::1', tunnel: ip4_in_ip4}",
    "src",
    "src: 2001:db8::1 is IPv6 but tunnel ip4_in_ip4 carries IPv4"
)]
#[case::outer_family(
    "{flows: 1, tunnel: ip6_in_ip6, outer_src: 198.18.0.1}",
    "outer_src",
    "198.18.0.1 is IPv4 but tunnel ip6_in_ip6 has an IPv6 outer header"
)]
#[case::mixed_plain(
    "{flows: 1, src: 198.18.1.1, dst: '2001:db8::1'}",
    "dst",
    "2001:db8::1 is IPv6 but src is IPv4"
)]
#[case::no_tunnel("{flows: 1, outer_src: 198.18.0.1}", "outer_src", "tunnel is none")]
#[case::port("{flows: 1, sport: 70000}", "sport", "sport: 70000 is not a port")]
#[case::port_span("{flows: 1, dport: 1-70000}", "dport", "70000 is not a port")]
#[case::empty_span("{flows: 1, dport: 90-80}", "dport", "is empty")]
#[case::not_a_range(
    "{flows: 1, sport: many}",
    "sport",
    "`many` is not a number or `first-last`"
)]
#[case::not_an_address("{flows: 1, src: here}", "src", "`here` is not an address")]
#[case::host_bits(
    "{flows: 1, src: 198.18.1.5/24}",
    "src",
    "host bits set: the block is 198.18.1.0/24"
)]
#[case::long_prefix("{flows: 1, src: 198.18.1.5/33}", "src", "at most 32 bits")]
#[case::mixed_range(
    "{flows: 1, src: '198.18.0.1-2001:db8::1'}",
    "src",
    "mixes IPv4 and IPv6"
)]
#[case::too_few_tuples(
    "{flows: 5, src: 198.18.1.0/30, sport: 1000, dport: 80}",
    "flows",
    "5 distinct flows asked for, but the ranges hold only 4"
)]
#[case::too_many_packets(
    "{flows: 1001, packets_per_flow: 1000}",
    "flows",
    "1001000 packets, more than the 1000000"
)]
#[case::no_flows("{flows: 0}", "flows", "give at least 1")]
#[case::no_packets(
    "{flows: 1, packets_per_flow: 0}",
    "packets_per_flow",
    "give at least 1"
)]
#[case::no_protocols(
    "{flows: 1, protocols: []}",
    "protocols",
    "name at least one of tcp, udp, icmp"
)]
#[case::huge_payload("{flows: 1, payload: 65500}", "payload", "flow-1")]
#[case::lengths_and_payload(
    "{flows: 1, payload: 10, ip_len_around: [100]}",
    "ip_len_around",
    "give payload or ip_len_around, not both"
)]
#[case::no_lengths("{flows: 1, ip_len_around: []}", "ip_len_around", "give at least one")]
#[case::length_under_the_headers(
    "{flows: 2, protocols: [udp, tcp], ip_len_around: [40]}",
    "ip_len_around",
    "39 bytes is shorter than the headers of a tcp packet (40)"
)]
#[case::mtu_outside_a_scenario(
    "{flows: 1, ip_len_around: mtu}",
    "ip_len_around",
    "`mtu` names the thresholds of a scenario's load balancer"
)]
fn bad_generators_name_the_field_and_the_reason(
    #[case] yaml: &str,
    #[case] field: &str,
    #[case] message: &str,
) {
    let e = error(yaml);
    assert_eq!(e.field, field, "{e}");
    let text = e.to_string();
    assert!(text.starts_with("stream `test`: "), "{text}");
    assert!(
        text.contains(message),
        "{text}\n  does not contain: {message}"
    );
}

#[test]
fn the_packet_cap_is_the_documented_one() {
    assert_eq!(MAX_PACKETS, 1_000_000);
    let e = error("{flows: 1000001}");
    assert!(e.to_string().contains("1000001 packets"), "{e}");
}

#[test]
fn header_fields_reach_every_generated_packet() {
    let field = |p: &GeneratedPacket, path: &str| {
        dissect(&p.bytes)
            .field(path)
            .unwrap_or_else(|| panic!("{}: no {path}\n{}", p.name, dissect(&p.bytes)))
    };
    let v4 = packets(
        "{flows: 3, packets_per_flow: 2, protocols: [tcp], headers: {tos: 0xb8, ttl: 1, df: true, ip_options: '94040000', tcp_flags: SA, vlan: [10, 20]}}",
    );
    for p in &v4 {
        assert_eq!(field(p, "ipv4.tos"), "0xb8");
        assert_eq!(field(p, "ipv4.ttl"), "1");
        assert_eq!(
            field(p, "ipv4.ihl"),
            "6",
            "the option makes the header 24 bytes"
        );
        assert_eq!(field(p, "tcp.flags"), "[SA]");
        assert_eq!(field(p, "vlan[0].vid"), "10");
        assert_eq!(field(p, "vlan[1].vid"), "20");
        let d = dissect(&p.bytes);
        assert!(
            !d.layers
                .iter()
                .any(|l| matches!(l.checksum, Some(ChecksumStatus::Invalid { .. }))),
            "{d}"
        );
    }
    let v6 = packets(
        "{flows: 2, protocols: [udp], src: '2001:db8:1::1', dst: '2001:db8:2::1', headers: {tos: 0x2e, ttl: 9, flow_label: 0x12345, ipv6_ext: [hop_by_hop, dest_opts]}}",
    );
    for p in &v6 {
        assert_eq!(field(p, "ipv6.tc"), "0x2e");
        assert_eq!(field(p, "ipv6.hlim"), "9");
        assert_eq!(field(p, "ipv6.flow"), "0x12345");
        assert_eq!(field(p, "ipv6_ext[0].kind"), "hop_by_hop");
        assert_eq!(field(p, "ipv6_ext[1].kind"), "dest_opts");
        assert_eq!(field(p, "udp.dport"), "80");
    }
}

#[rstest]
#[case::v6_field_on_v4(
    "{flows: 1, headers: {flow_label: 1}}",
    "`flow_label` is a field of IPv6 headers"
)]
#[case::v4_field_on_v6(
    "{flows: 1, src: '2001:db8::1', dst: '2001:db8::2', headers: {df: true}}",
    "`df` is a field of IPv4 headers"
)]
#[case::flow_label_too_wide(
    "{flows: 1, src: '2001:db8::1', dst: '2001:db8::2', headers: {flow_label: 0x100000}}",
    "does not fit 20 bits"
)]
#[case::bad_tcp_flag("{flows: 1, headers: {tcp_flags: SX}}", "`X` is not one of FSRPAUEC")]
#[case::three_tags("{flows: 1, headers: {vlan: [1, 2, 3]}}", "3 VLAN tags; at most 2")]
#[case::long_options(
    "{flows: 1, headers: {ip_options: '0101010101010101010101010101010101010101010101010101010101010101010101010101010101010101'}}",
    "44 bytes; an IPv4 header holds at most 40"
)]
fn bad_header_fields_name_the_field(#[case] yaml: &str, #[case] wanted: &str) {
    let e = error(yaml);
    assert_eq!(e.field, "headers");
    assert!(e.problem.contains(wanted), "{}", e.problem);
}

#[rstest]
#[case::plain_tcp4("{flows: 8, protocols: [tcp], ip_len_around: [100, 1480]}")]
#[case::udp6_with_extension_headers(
    "{flows: 8, protocols: [udp], src: '2001:db8:1::/120', dst: '2001:db8:2::1', ip_len_around: [100, 1480], headers: {ipv6_ext: [hop_by_hop]}}"
)]
#[case::gue_tunnel(
    "{flows: 4, packets_per_flow: 2, protocols: [tcp, udp], tunnel: gue4_in_ip6, ip_len_around: [100, 1480]}"
)]
fn packets_take_each_length_one_under_at_and_one_over_in_turn(#[case] yaml: &str) {
    let lens: Vec<usize> = packets(yaml)
        .iter()
        .map(|p| {
            assert_clean(p);
            p.bytes.len() - p.inner_offset
        })
        .collect();
    assert_eq!(lens, [99, 100, 101, 1479, 1480, 1481, 99, 100]);
}

/// A worker passes over the packets of flows another takes without
/// building them: what follows is the same as if it had built them.
#[test]
fn passing_over_packets_leaves_the_rest_of_the_stream_as_it_was() {
    const YAML: &str = "{flows: 5, packets_per_flow: 3, protocols: [tcp, udp], tunnel: gue4_in_ip6, payload: 0-300}";
    let g = generator(YAML);
    let all = packets(YAML);
    let mut s = dsrlab::formats::scenario::generate::stream(&g, "test").unwrap();
    let mut taken = Vec::new();
    for (i, want) in all.iter().enumerate() {
        assert_eq!(s.next_flow(), Some(i / 3));
        // Every other flow passed over whole.
        if (i / 3) % 2 == 1 {
            assert!(s.pass_over());
        } else {
            let got = s.next().unwrap().unwrap();
            assert_eq!(&got, want, "packet {}", i + 1);
            taken.push(got);
        }
    }
    assert_eq!(s.next_flow(), None);
    assert!(!s.pass_over());
    assert_eq!(taken.len(), 9);
}
