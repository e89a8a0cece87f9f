//! The `xdp_lb` reference model (`dsrlab::lb::model`) and control plane
//! (`dsrlab::lb::control`):
//!
//! - pure unit tests, one or more per bullet of the contract in
//!   `dsrlab_abi::lb`, on hand-built packets; expected output frames are
//!   built independently with the harness's packet builder (which derives
//!   lengths and checksums itself) and compared byte for byte;
//! - pure tests of the control plane's bookkeeping;
//! - the differential test: `dsrlab::lb::fuzz` (generated VIP sets,
//!   well-formed and malformed traffic through the BPF program and the
//!   model, compared byte for byte) at CI size (needs root and the `xdp_lb`
//!   object; says so and skips when either is missing).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use dsrlab::{
    formats::packet::{
        ChecksumStatus, DissectOptions, LayerRepr, diff_with, dissect_with,
        repr::Mac,
        spec::{
            EthSpec, ExtKind, GueSpec, Hex, IcmpSpec, Ipv4Spec, Ipv6ExtSpec, Ipv6Spec, LayerSpec,
            Mutation, PacketSpec, PayloadSpec, UdpSpec, VlanSpec,
        },
    },
    lb::{
        LbSettings, ModelState, Proto, VipSpec,
        control::{ECHO_VIP_NUM, LbError, Plane, Write, echo_key},
        maglev,
        model::{XDP_DROP, XDP_PASS, XDP_TX, flow_hash, fold, jhash_3words},
    },
};
use dsrlab_abi::lb::{
    AddrEntry, Counter, FAMILY_V4, FAMILY_V6, FlowKey, MAX_VIPS, RealDef, VipMeta, addr_kind,
    vip_flags,
};

// ---------------------------------------------------------------------------
// The world of the unit tests
// ---------------------------------------------------------------------------

const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const LB_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const GATEWAY_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xfe];
const SEED: u32 = 0x5eed;
const RING: u32 = 251;

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}
fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}
fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn settings() -> LbSettings {
    LbSettings {
        ring_size: RING,
        hash_seed: SEED,
        gateway_mac: GATEWAY_MAC,
        ..LbSettings::default()
    }
}

fn vip(addr: &str, port: u16, proto: Proto, flags: u32) -> VipSpec {
    VipSpec {
        addr: ip(addr),
        port,
        proto,
        flags,
    }
}

/// A model state made by the control plane from VIPs and their reals.
fn world_with(settings: LbSettings, vips: &[(VipSpec, &[(&str, u32)])]) -> (Plane, ModelState) {
    let (mut plane, _) = Plane::new(settings).unwrap();
    for (spec, reals) in vips {
        plane.add_vip(*spec).unwrap();
        for (real, weight) in *reals {
            plane.add_real(&spec.vip(), ip(real), *weight).unwrap();
        }
    }
    let state = plane.model_state();
    (plane, state)
}

/// The standard world: a TCP VIP on port 80 with two IPv4 reals, an
/// all-ports UDP VIP, an IPv6 VIP with two IPv6 reals, an IPv4 VIP served by
/// an IPv6 real, an IPv6 VIP served by an IPv4 real, a GUE VIP of each
/// family, and a VIP without reals.
fn world() -> (Plane, ModelState) {
    world_with(settings(), &standard_vips())
}

/// The VIPs and reals of [`world`].
fn standard_vips() -> Vec<(VipSpec, &'static [(&'static str, u32)])> {
    vec![
        (
            vip("198.18.0.10", 80, Proto::Tcp, 0),
            &[("198.18.1.1", 1), ("198.18.1.2", 1)],
        ),
        (vip("198.18.0.10", 0, Proto::Udp, 0), &[("198.18.1.3", 1)]),
        (
            vip("2001:db8::10", 443, Proto::Tcp, 0),
            &[("2001:db8:1::1", 1), ("2001:db8:1::2", 1)],
        ),
        (
            vip("198.18.0.11", 80, Proto::Tcp, 0),
            &[("2001:db8:1::3", 1)],
        ),
        (vip("2001:db8::11", 80, Proto::Tcp, 0), &[("198.18.1.4", 1)]),
        (
            vip("198.18.0.12", 80, Proto::Udp, vip_flags::GUE),
            &[("198.18.1.5", 1)],
        ),
        (
            vip("2001:db8::12", 80, Proto::Udp, vip_flags::GUE),
            &[("2001:db8:1::5", 1)],
        ),
        (vip("198.18.0.13", 80, Proto::Tcp, 0), &[]),
    ]
}

fn eth() -> LayerSpec {
    LayerSpec::Eth(EthSpec {
        src: Some(Mac(CLIENT_MAC)),
        dst: Some(Mac(LB_MAC)),
        ..EthSpec::default()
    })
}

fn ipv4(src: &str, dst: &str) -> Ipv4Spec {
    Ipv4Spec::between(v4(src), v4(dst))
}

fn ipv6(src: &str, dst: &str) -> Ipv6Spec {
    Ipv6Spec::between(v6(src), v6(dst))
}

fn payload(len: usize) -> LayerSpec {
    LayerSpec::Payload(PayloadSpec {
        len: Some(len),
        ..PayloadSpec::default()
    })
}

fn bytes(hex: &[u8]) -> LayerSpec {
    LayerSpec::Payload(PayloadSpec {
        hex: Some(Hex(hex.to_vec())),
        ..PayloadSpec::default()
    })
}

fn build(layers: Vec<LayerSpec>) -> Vec<u8> {
    PacketSpec {
        layers,
        ..PacketSpec::default()
    }
    .build()
    .unwrap()
}

fn build_mutated(layers: Vec<LayerSpec>, mutate: Vec<Mutation>) -> Vec<u8> {
    PacketSpec {
        layers,
        cut: None,
        mutate,
    }
    .build()
    .unwrap()
}

/// The real the ring holds for `hash` in VIP number `vip_num`, and its
/// address.
fn ring_real(state: &ModelState, vip_num: u32, hash: u32) -> (u32, IpAddr) {
    let id = state.rings[&vip_num][(hash % state.ring_size) as usize];
    let def = state.reals[&id];
    let addr = if def.family == FAMILY_V6 {
        IpAddr::V6(def.addr.into())
    } else {
        IpAddr::V4(Ipv4Addr::new(
            def.addr[0],
            def.addr[1],
            def.addr[2],
            def.addr[3],
        ))
    };
    (id, addr)
}

/// Asserts every checksum of a frame is right or absent where absence is
/// allowed: the GUE header's over IPv4 always, over IPv6 only with the
/// deployment's `gue_v6_zero_checksum` (RFC 6935).
fn assert_checksums_valid(frame: &[u8], settings: &LbSettings) {
    let d = dissect_with(
        frame,
        &DissectOptions {
            gue_port: settings.gue_port,
        },
    );
    for (i, layer) in d.layers.iter().enumerate() {
        if let LayerRepr::Udp(u) = &layer.repr
            && u.checksum == 0
        {
            let over_v6 = i > 0 && matches!(d.layers[i - 1].repr, LayerRepr::Ipv6(_));
            let gue = u.dport == settings.gue_port;
            assert!(
                gue && (!over_v6 || settings.gue_v6_zero_checksum),
                "zero UDP checksum in {}:\n{d}",
                layer.label
            );
            continue;
        }
        assert!(
            !matches!(layer.checksum, Some(ChecksumStatus::Invalid { .. })),
            "bad checksum in {}:\n{d}",
            layer.label
        );
    }
}

fn assert_frames_eq(expected: &[u8], actual: &[u8]) {
    if expected != actual {
        let diff = diff_with(expected, actual, &DissectOptions::default())
            .unwrap_or_else(|| "(no field differs; bytes do)".into());
        panic!(
            "frames differ:\n{diff}\nexpected:\n{}\nactual:\n{}",
            dissect_with(expected, &DissectOptions::default()),
            dissect_with(actual, &DissectOptions::default())
        );
    }
}

// ---------------------------------------------------------------------------
// Hashing
// ---------------------------------------------------------------------------

#[test]
fn jhash_3words_known_answers() {
    // Computed with the C text of include/linux/jhash.h (jhash_3words,
    // __jhash_nwords, __jhash_final, rol32) compiled by gcc.
    let vectors = [
        ((0, 0, 0, 0), 0x1b68_e557),
        ((1, 2, 3, 0), 0xa461_58f5),
        ((0xc612_0001, 0x9c40_0050, 6, 0), 0x56b9_edec),
        ((0xc612_0001, 0x9c40_0050, 6, 0x1234_5678), 0xb28f_6de8),
        ((u32::MAX, u32::MAX, u32::MAX, u32::MAX), 0xc343_af0b),
        ((0, 80, 17, 42), 0x7124_1d21),
        // Computed separately (C and Python) by the datapath's author.
        ((0xc612_0101, 0x9c40_0050, 6, 0), 0xa3ba_3736),
        ((0xc612_0101, 0x9c40_0050, 6, 0x1234_5678), 0xd62c_a848),
        ((0x2001_0db9, 0x3039_01bb, 17, 7), 0x2ca5_06ab),
    ];
    for ((a, b, c, seed), want) in vectors {
        assert_eq!(
            jhash_3words(a, b, c, seed),
            want,
            "jhash_3words({a:#x}, {b:#x}, {c}, {seed:#x})"
        );
    }
}

#[test]
fn fold_and_flow_hash_follow_the_contract() {
    let mut a4 = [0u8; 16];
    a4[..4].copy_from_slice(&[198, 18, 0, 1]);
    assert_eq!(fold(&a4, FAMILY_V4), 0xc612_0001);
    let a6 = v6("2001:db8:1:2:3:4:5:6").octets();
    assert_eq!(
        fold(&a6, FAMILY_V6),
        0x2001_0db8 ^ 0x0001_0002 ^ 0x0003_0004 ^ 0x0005_0006
    );
    let flow = FlowKey {
        src: a4,
        dst: [0; 16],
        sport: 40000u16.to_be(),
        dport: 80u16.to_be(),
        proto: 6,
        family: FAMILY_V4,
        pad: [0; 2],
    };
    assert_eq!(flow_hash(&flow, 0, 0), 0x56b9_edec);
    assert_eq!(
        flow_hash(&flow, vip_flags::NO_SPORT, 0),
        jhash_3words(0xc612_0001, 80, 6, 0)
    );
    assert_eq!(
        flow_hash(&flow, vip_flags::DPORT_ONLY, 0),
        jhash_3words(0, 80, 6, 0)
    );
}

// ---------------------------------------------------------------------------
// Classification
// ---------------------------------------------------------------------------

#[test]
fn non_ip_frames_pass_untouched() {
    let (_, mut m) = world();
    let arp = build(vec![eth(), LayerSpec::Arp(Default::default())]);
    let vlan = build(vec![
        eth(),
        LayerSpec::Vlan(VlanSpec::default()),
        LayerSpec::Ipv4(ipv4("198.18.2.1", "198.18.0.10")),
        LayerSpec::tcp(40000, 80, "S"),
    ]);
    for frame in [arp, vlan] {
        let e = m.process(&frame);
        assert_eq!((e.verdict, e.outcome), (XDP_PASS, Counter::PassNotVip));
        assert_eq!(e.output, frame);
        assert_eq!(e.counters().collect::<Vec<_>>(), [Counter::PassNotVip]);
    }
}

#[test]
fn malformed_headers_pass_untouched() {
    let (_, mut m) = world();
    let good = || {
        vec![
            eth(),
            LayerSpec::Ipv4(ipv4("198.18.2.1", "198.18.0.10")),
            LayerSpec::tcp(40000, 80, "S"),
            payload(10),
        ]
    };
    let cases = [
        // IHL 4.
        build_mutated(
            good(),
            vec![Mutation::Set {
                offset: 14,
                hex: Hex(vec![0x44]),
            }],
        ),
        // Total length beyond the frame.
        build_mutated(good(), vec![Mutation::Truncate(14 + 20 + 20 + 5)]),
        // Total length shorter than the header.
        build_mutated(
            good(),
            vec![Mutation::Set {
                offset: 16,
                hex: Hex(vec![0, 19]),
            }],
        ),
        // IPv4 header cut.
        build_mutated(good(), vec![Mutation::Truncate(14 + 12)]),
        // TCP header cut (consistently: the IP length says so too).
        PacketSpec {
            layers: good(),
            cut: Some(14 + 20 + 12),
            mutate: vec![],
        }
        .build()
        .unwrap(),
        // UDP header cut.
        PacketSpec {
            layers: vec![
                eth(),
                LayerSpec::Ipv4(ipv4("198.18.2.1", "198.18.0.10")),
                LayerSpec::udp(40000, 53),
            ],
            cut: Some(14 + 20 + 4),
            mutate: vec![],
        }
        .build()
        .unwrap(),
        // ICMPv6 header cut.
        PacketSpec {
            layers: vec![
                eth(),
                LayerSpec::Ipv6(ipv6("2001:db8:2::1", "2001:db8::10")),
                LayerSpec::Icmpv6(IcmpSpec::default()),
            ],
            cut: Some(14 + 40 + 4),
            mutate: vec![],
        }
        .build()
        .unwrap(),
        // IPv6 payload length beyond the frame.
        build_mutated(
            vec![
                eth(),
                LayerSpec::Ipv6(ipv6("2001:db8:2::1", "2001:db8::10")),
                LayerSpec::tcp(40000, 443, "S"),
            ],
            vec![Mutation::Truncate(14 + 40 + 10)],
        ),
    ];
    for (i, frame) in cases.iter().enumerate() {
        let e = m.process(frame);
        assert_eq!(
            (e.verdict, e.outcome),
            (XDP_PASS, Counter::PassMalformed),
            "case {i}"
        );
        assert_eq!(&e.output, frame, "case {i}");
    }
}

#[test]
fn non_vip_traffic_passes_untouched() {
    let (_, mut m) = world();
    let frames = [
        // Not a VIP address.
        build(vec![
            eth(),
            LayerSpec::Ipv4(ipv4("198.18.2.1", "198.18.0.99")),
            LayerSpec::tcp(40000, 80, "S"),
        ]),
        // A VIP address, another port, no all-ports VIP for TCP.
        build(vec![
            eth(),
            LayerSpec::Ipv4(ipv4("198.18.2.1", "198.18.0.10")),
            LayerSpec::tcp(40000, 81, "S"),
        ]),
        // A VIP address, another protocol (GRE).
        build(vec![
            eth(),
            LayerSpec::Ipv4(Ipv4Spec {
                proto: Some(47),
                ..ipv4("198.18.2.1", "198.18.0.10")
            }),
            payload(8),
        ]),
        // IPv6 with a hop-by-hop header before TCP: protocol 0, no VIP.
        build(vec![
            eth(),
            LayerSpec::Ipv6(ipv6("2001:db8:2::1", "2001:db8::10")),
            LayerSpec::Ipv6Ext(Ipv6ExtSpec {
                kind: ExtKind::HopByHop,
                next_header: None,
                len: None,
                data: None,
                offset: None,
                mf: None,
                ident: None,
            }),
            LayerSpec::tcp(40000, 443, "S"),
        ]),
    ];
    for (i, frame) in frames.iter().enumerate() {
        let e = m.process(frame);
        assert_eq!(
            (e.verdict, e.outcome, e.selection),
            (XDP_PASS, Counter::PassNotVip, None),
            "case {i}"
        );
        assert_eq!(&e.output, frame);
    }
    assert!(m.lru.is_empty());
}

#[test]
fn ipv4_options_to_a_vip_pass_to_the_stack() {
    let (_, mut m) = world();
    let with_options = |dst: &str| {
        build(vec![
            eth(),
            LayerSpec::Ipv4(Ipv4Spec {
                options: Some(Hex(vec![0x94, 0x04, 0, 0])),
                ..ipv4("198.18.2.1", dst)
            }),
            LayerSpec::tcp(40000, 80, "S"),
        ])
    };
    let e = m.process(&with_options("198.18.0.10"));
    assert_eq!((e.verdict, e.outcome), (XDP_PASS, Counter::PassIpOptions));
    assert_eq!(e.output, with_options("198.18.0.10"));
    let e = m.process(&with_options("198.18.0.99"));
    assert_eq!(e.outcome, Counter::PassNotVip);
}

#[test]
fn fragments_to_a_vip_are_dropped() {
    let (_, mut m) = world();
    let frag = |dst: &str, dport: u16, mf: bool, offset: u16| {
        build(vec![
            eth(),
            LayerSpec::Ipv4(Ipv4Spec {
                mf: Some(mf),
                frag: Some(offset),
                proto: Some(if dport == 53 { 17 } else { 6 }),
                ..ipv4("198.18.2.1", dst)
            }),
            if dport == 53 {
                LayerSpec::udp(40000, dport)
            } else {
                LayerSpec::tcp(40000, dport, "A")
            },
            payload(16),
        ])
    };
    // First fragment, looked up with its ports: the port-80 TCP VIP.
    let e = m.process(&frag("198.18.0.10", 80, true, 0));
    assert_eq!((e.verdict, e.outcome), (XDP_DROP, Counter::DropFragment));
    // Later fragment: port 0 only; TCP has no all-ports VIP there.
    let e = m.process(&frag("198.18.0.10", 80, false, 100));
    assert_eq!((e.verdict, e.outcome), (XDP_PASS, Counter::PassNotVip));
    // Later UDP fragment: the all-ports UDP VIP matches.
    let e = m.process(&frag("198.18.0.10", 53, true, 100));
    assert_eq!((e.verdict, e.outcome), (XDP_DROP, Counter::DropFragment));
    // Not a VIP.
    let e = m.process(&frag("198.18.0.99", 80, true, 0));
    assert_eq!(e.outcome, Counter::PassNotVip);

    // IPv6 fragments: port 0 only, even the first.
    let frag6 = |dst: &str, proto_udp: bool| {
        build(vec![
            eth(),
            LayerSpec::Ipv6(ipv6("2001:db8:2::1", dst)),
            LayerSpec::Ipv6Ext(Ipv6ExtSpec {
                kind: ExtKind::Fragment,
                next_header: None,
                len: None,
                data: None,
                offset: Some(0),
                mf: Some(true),
                ident: Some(7),
            }),
            if proto_udp {
                LayerSpec::udp(40000, 443)
            } else {
                LayerSpec::tcp(40000, 443, "S")
            },
        ])
    };
    let e = m.process(&frag6("2001:db8::10", false));
    assert_eq!((e.verdict, e.outcome), (XDP_PASS, Counter::PassNotVip));
    let (_, mut m6) = world_with(
        settings(),
        &[(
            vip("2001:db8::20", 0, Proto::Udp, 0),
            &[("2001:db8:1::1", 1)],
        )],
    );
    let e = m6.process(&frag6("2001:db8::20", true));
    assert_eq!((e.verdict, e.outcome), (XDP_DROP, Counter::DropFragment));
    assert!(m.lru.is_empty() && m6.lru.is_empty());
}

// ---------------------------------------------------------------------------
// Real selection and encapsulation
// ---------------------------------------------------------------------------

fn syn_v4(client: &str, dst: &str, sport: u16, dport: u16) -> Vec<LayerSpec> {
    vec![
        eth(),
        LayerSpec::Ipv4(Ipv4Spec {
            tos: Some(0xb8),
            df: Some(true),
            ..ipv4(client, dst)
        }),
        LayerSpec::tcp(sport, dport, "S"),
        payload(20),
    ]
}

#[test]
fn ipv4_to_an_ipv4_real_is_ipip_with_crafted_outer_headers() {
    let (plane, mut m) = world();
    let inner = syn_v4("198.18.2.1", "198.18.0.10", 40000, 80);
    let frame = build(inner.clone());
    let e = m.process(&frame);

    let hash = jhash_3words(0xc612_0201, (40000 << 16) | 80, 6, SEED);
    let num = plane
        .vip_num(&vip("198.18.0.10", 80, Proto::Tcp, 0).vip())
        .unwrap();
    let (real, real_addr) = ring_real(&m, num, hash);
    assert_eq!((e.verdict, e.outcome), (XDP_TX, Counter::Tx));
    assert_eq!(e.selection, Some(Counter::LruMiss));
    assert_eq!(e.real, Some(real));
    let IpAddr::V4(real_v4) = real_addr else {
        panic!("IPv4 real expected")
    };

    let mut layers = vec![
        LayerSpec::Eth(EthSpec {
            src: Some(Mac(LB_MAC)),
            dst: Some(Mac(GATEWAY_MAC)),
            ..EthSpec::default()
        }),
        LayerSpec::Ipv4(Ipv4Spec {
            src: Some(Ipv4Addr::new(198, 19, (hash >> 8) as u8, hash as u8)),
            dst: Some(real_v4),
            tos: Some(0xb8),
            id: Some(0),
            df: Some(true),
            ttl: Some(64),
            ..Ipv4Spec::default()
        }),
    ];
    layers.extend(inner[1..].iter().cloned());
    let expected = build(layers);
    assert_frames_eq(&expected, &e.output);
    assert_checksums_valid(&e.output, &settings());

    let stats = e.stats.unwrap();
    assert_eq!(
        (stats.vip_num, stats.real, stats.bytes),
        (num, real, frame.len() as u64)
    );
    // The flow is remembered, keyed as in the packet.
    let (flow, remembered) = e.lru_update.unwrap();
    assert_eq!(remembered, real);
    assert_eq!(
        (
            u16::from_be(flow.sport),
            u16::from_be(flow.dport),
            flow.proto
        ),
        (40000, 80, 6)
    );
    assert_eq!(m.lru[&flow], real);
}

#[test]
fn ipv6_to_an_ipv6_real_is_ip6ip6_with_flow_label() {
    let (plane, mut m) = world();
    let inner = vec![
        eth(),
        LayerSpec::Ipv6(Ipv6Spec {
            tclass: Some(0x28),
            ..ipv6("2001:db8:2::1", "2001:db8::10")
        }),
        LayerSpec::tcp(40001, 443, "S"),
        payload(7),
    ];
    let e = m.process(&build(inner.clone()));
    // 2001:0db8 ^ 0002:0000 ^ 0000:0000 ^ 0000:0001
    let folded = 0x2001_0db8 ^ 0x0002_0001;
    let hash = jhash_3words(folded, (40001 << 16) | 443, 6, SEED);
    let num = plane
        .vip_num(&vip("2001:db8::10", 443, Proto::Tcp, 0).vip())
        .unwrap();
    let (_, IpAddr::V6(real)) = ring_real(&m, num, hash) else {
        panic!("IPv6 real expected")
    };
    let mut src = v6("2001:db8:5352::").octets();
    src[12..].copy_from_slice(&hash.to_be_bytes());
    let mut layers = vec![
        LayerSpec::Eth(EthSpec {
            src: Some(Mac(LB_MAC)),
            dst: Some(Mac(GATEWAY_MAC)),
            ..EthSpec::default()
        }),
        LayerSpec::Ipv6(Ipv6Spec {
            src: Some(src.into()),
            dst: Some(real),
            tclass: Some(0x28),
            flow: Some(hash & 0xfffff),
            hop_limit: Some(64),
            ..Ipv6Spec::default()
        }),
    ];
    layers.extend(inner[1..].iter().cloned());
    assert_eq!((e.verdict, e.outcome), (XDP_TX, Counter::Tx));
    assert_frames_eq(&build(layers), &e.output);
}

#[test]
fn ipv4_to_an_ipv6_real_is_ip4_in_ip6() {
    let (_, mut m) = world();
    let inner = syn_v4("198.18.2.1", "198.18.0.11", 40000, 80);
    let e = m.process(&build(inner.clone()));
    let hash = jhash_3words(0xc612_0201, (40000 << 16) | 80, 6, SEED);
    let mut src = v6("2001:db8:5352::").octets();
    src[12..].copy_from_slice(&hash.to_be_bytes());
    let mut layers = vec![
        LayerSpec::Eth(EthSpec {
            src: Some(Mac(LB_MAC)),
            dst: Some(Mac(GATEWAY_MAC)),
            ..EthSpec::default()
        }),
        LayerSpec::Ipv6(Ipv6Spec {
            src: Some(src.into()),
            dst: Some(v6("2001:db8:1::3")),
            tclass: Some(0xb8),
            flow: Some(hash & 0xfffff),
            hop_limit: Some(64),
            ..Ipv6Spec::default()
        }),
    ];
    layers.extend(inner[1..].iter().cloned());
    assert_eq!((e.verdict, e.outcome), (XDP_TX, Counter::Tx));
    assert_frames_eq(&build(layers), &e.output);
    // Next header 4: IPv4 inside.
    assert_eq!(e.output[14 + 6], 4);
}

#[test]
fn ipv6_to_an_ipv4_real_is_dropped() {
    let (_, mut m) = world();
    let frame = build(vec![
        eth(),
        LayerSpec::Ipv6(ipv6("2001:db8:2::1", "2001:db8::11")),
        LayerSpec::tcp(40000, 80, "S"),
    ]);
    let e = m.process(&frame);
    assert_eq!((e.verdict, e.outcome), (XDP_DROP, Counter::DropEncap));
    assert_eq!(e.selection, Some(Counter::LruMiss));
    assert_eq!(e.stats, None);
}

#[test]
fn gue_puts_udp_between_outer_and_inner() {
    let (_, mut m) = world();
    // IPv4 VIP with GUE.
    let inner = vec![
        eth(),
        LayerSpec::Ipv4(ipv4("198.18.2.7", "198.18.0.12")),
        LayerSpec::udp(5353, 80),
        payload(30),
    ];
    let e = m.process(&build(inner.clone()));
    let hash = jhash_3words(0xc612_0207, (5353 << 16) | 80, 17, SEED);
    let mut layers = vec![
        LayerSpec::Eth(EthSpec {
            src: Some(Mac(LB_MAC)),
            dst: Some(Mac(GATEWAY_MAC)),
            ..EthSpec::default()
        }),
        LayerSpec::Ipv4(Ipv4Spec {
            src: Some(Ipv4Addr::new(198, 19, (hash >> 8) as u8, hash as u8)),
            dst: Some(v4("198.18.1.5")),
            id: Some(0),
            df: Some(true),
            ttl: Some(64),
            ..Ipv4Spec::default()
        }),
        LayerSpec::Udp(UdpSpec {
            sport: Some(0x8000 | (hash & 0x7fff) as u16),
            dport: Some(6080),
            checksum: Some(0),
            ..UdpSpec::default()
        }),
        LayerSpec::Gue(GueSpec::default()),
    ];
    layers.extend(inner[1..].iter().cloned());
    assert_eq!((e.verdict, e.outcome), (XDP_TX, Counter::Tx));
    assert_frames_eq(&build(layers), &e.output);

    // IPv6 VIP with GUE: the outer IPv6 carries UDP (next header 17).
    let frame = build(vec![
        eth(),
        LayerSpec::Ipv6(ipv6("2001:db8:2::7", "2001:db8::12")),
        LayerSpec::udp(5353, 80),
    ]);
    let e = m.process(&frame);
    assert_eq!((e.verdict, e.outcome), (XDP_TX, Counter::Tx));
    let d = dissect_with(&e.output, &DissectOptions::default());
    assert_eq!(d.field("ipv6[0].nh").as_deref(), Some("udp"));
    assert_eq!(d.field("udp[0].dport").as_deref(), Some("6080"));
    assert_eq!(
        d.field("udp[0].len").unwrap(),
        (8 + frame.len() - 14).to_string()
    );
    assert_eq!(&e.output[14 + 40 + 8..], &frame[14..]);
    // Over IPv6 the outer UDP checksum is computed: a Linux receiver drops
    // zero-checksum UDP over IPv6 unless it opted in (RFC 6935).
    assert_ne!(d.field("udp[0].csum").as_deref(), Some("0x0000"));
    assert_eq!(
        d.layers[2].checksum,
        Some(ChecksumStatus::Valid),
        "outer UDP checksum:\n{d}"
    );
    assert_checksums_valid(&e.output, &settings());
    // ... unless the deployment says its reals accept zero.
    let (_, mut zero) = world_with(
        LbSettings {
            gue_v6_zero_checksum: true,
            ..settings()
        },
        &standard_vips(),
    );
    let z = zero.process(&frame);
    assert_eq!((z.verdict, z.outcome), (XDP_TX, Counter::Tx));
    let dz = dissect_with(&z.output, &DissectOptions::default());
    assert_eq!(dz.field("udp[0].csum").as_deref(), Some("0x0000"));
    // Everything else is the same frame.
    assert_eq!(z.output[..14 + 40 + 6], e.output[..14 + 40 + 6]);
    assert_eq!(z.output[14 + 40 + 8..], e.output[14 + 40 + 8..]);
}

#[test]
fn all_ports_vip_catches_other_ports_and_hashes_the_real_port() {
    let (plane, mut m) = world();
    let frame = build(vec![
        eth(),
        LayerSpec::Ipv4(ipv4("198.18.2.1", "198.18.0.10")),
        LayerSpec::udp(40000, 8080),
    ]);
    let e = m.process(&frame);
    assert_eq!((e.verdict, e.outcome), (XDP_TX, Counter::Tx));
    let num = plane
        .vip_num(&vip("198.18.0.10", 0, Proto::Udp, 0).vip())
        .unwrap();
    assert_eq!(e.vip_num, Some(num));
    let hash = jhash_3words(0xc612_0201, (40000 << 16) | 8080, 17, SEED);
    assert_eq!(&e.output[14 + 14..14 + 16], &(hash as u16).to_be_bytes());
}

#[test]
fn hash_flags_drop_source_port_and_address() {
    let (_, mut m) = world_with(
        settings(),
        &[
            (
                vip("198.18.0.20", 80, Proto::Tcp, vip_flags::NO_SPORT),
                &[("198.18.1.1", 1), ("198.18.1.2", 1)],
            ),
            (
                vip("198.18.0.21", 80, Proto::Tcp, vip_flags::DPORT_ONLY),
                &[("198.18.1.1", 1), ("198.18.1.2", 1)],
            ),
        ],
    );
    let outer_src = |m: &mut ModelState, client: &str, dst: &str, sport: u16| {
        let e = m.process(&build(syn_v4(client, dst, sport, 80)));
        assert_eq!(e.outcome, Counter::Tx);
        e.output[14 + 12..14 + 16].to_vec()
    };
    // NO_SPORT: the hash ignores the source port, not the address.
    let a = outer_src(&mut m, "198.18.2.1", "198.18.0.20", 40000);
    assert_eq!(a, outer_src(&mut m, "198.18.2.1", "198.18.0.20", 50000));
    let h = jhash_3words(0xc612_0201, 80, 6, SEED);
    assert_eq!(a, [198, 19, (h >> 8) as u8, h as u8]);
    assert_ne!(a, outer_src(&mut m, "198.18.2.2", "198.18.0.20", 40000));
    // DPORT_ONLY: every client and port hash alike.
    let b = outer_src(&mut m, "198.18.2.1", "198.18.0.21", 40000);
    assert_eq!(b, outer_src(&mut m, "198.18.2.9", "198.18.0.21", 50000));
    let h = jhash_3words(0, 80, 6, SEED);
    assert_eq!(b, [198, 19, (h >> 8) as u8, h as u8]);
}

#[test]
fn connection_table_keeps_flows_on_their_real() {
    let (mut plane, mut m) = world();
    let v = vip("198.18.0.10", 80, Proto::Tcp, 0).vip();
    let syn = build(syn_v4("198.18.2.1", "198.18.0.10", 40000, 80));
    let ack = build(vec![
        eth(),
        LayerSpec::Ipv4(ipv4("198.18.2.1", "198.18.0.10")),
        LayerSpec::tcp(40000, 80, "A"),
    ]);
    let first = m.process(&syn);
    assert_eq!(first.selection, Some(Counter::LruMiss));
    let real = first.real.unwrap();
    let e = m.process(&ack);
    assert_eq!(
        (e.selection, e.real, e.lru_update),
        (Some(Counter::LruHit), Some(real), None)
    );

    // The other real takes the whole ring: the established flow stays
    // (its real is still in LB_REALS), a SYN goes by the ring.
    let other = if real == plane.real_id(ip("198.18.1.1")).unwrap() {
        "198.18.1.1"
    } else {
        "198.18.1.2"
    };
    plane.set_weight(&v, ip(other), 0).unwrap();
    let lru = std::mem::take(&mut m.lru);
    m = ModelState {
        lru,
        ..plane.model_state()
    };
    let e = m.process(&ack);
    assert_eq!((e.selection, e.real), (Some(Counter::LruHit), Some(real)));
    // TCP SYN always takes the ring, and the table follows.
    let (_, real_addr) = ring_real(
        &m,
        plane.vip_num(&v).unwrap(),
        jhash_3words(0xc612_0201, (40000 << 16) | 80, 6, SEED),
    );
    let e = m.process(&syn);
    assert_eq!(e.selection, Some(Counter::LruMiss));
    assert_eq!(Some(e.real.unwrap()), plane.real_id(real_addr));
    assert_eq!(e.lru_update.unwrap().1, e.real.unwrap());

    // A remembered real that is no longer in LB_REALS does not count.
    let flow = e.lru_update.unwrap().0;
    m.lru.insert(flow, 4000);
    let e = m.process(&ack);
    assert_eq!(e.selection, Some(Counter::LruMiss));
    assert_ne!(e.real, Some(4000));
}

#[test]
fn no_lru_vips_never_use_or_fill_the_table() {
    let (_, mut m) = world_with(
        settings(),
        &[(
            vip("198.18.0.20", 80, Proto::Tcp, vip_flags::NO_LRU),
            &[("198.18.1.1", 1)],
        )],
    );
    let ack = build(vec![
        eth(),
        LayerSpec::Ipv4(ipv4("198.18.2.1", "198.18.0.20")),
        LayerSpec::tcp(40000, 80, "A"),
    ]);
    for _ in 0..2 {
        let e = m.process(&ack);
        assert_eq!(
            (e.outcome, e.selection, e.lru_update),
            (Counter::Tx, Some(Counter::LruMiss), None)
        );
    }
    assert!(m.lru.is_empty());
}

#[test]
fn a_vip_without_reals_drops() {
    let (_, mut m) = world();
    let e = m.process(&build(syn_v4("198.18.2.1", "198.18.0.13", 40000, 80)));
    assert_eq!(
        (e.verdict, e.outcome, e.selection),
        (XDP_DROP, Counter::DropNoReal, Some(Counter::LruMiss))
    );
    assert_eq!((e.real, e.lru_update, e.stats), (None, None, None));
}

#[test]
fn ethernet_padding_stays_after_the_inner_packet() {
    let (_, mut m) = world();
    let layers = vec![
        LayerSpec::Eth(EthSpec {
            pad_to: Some(60),
            ..EthSpec::default()
        }),
        LayerSpec::Ipv4(ipv4("198.18.2.1", "198.18.0.10")),
        LayerSpec::tcp(40000, 80, "A"),
    ];
    let frame = build(layers);
    assert_eq!(frame.len(), 60);
    let e = m.process(&frame);
    assert_eq!(e.outcome, Counter::Tx);
    assert_eq!(e.output.len(), 60 + 20);
    // Outer total length: 20 + the inner packet as its header says (40).
    assert_eq!(&e.output[14 + 2..14 + 4], &60u16.to_be_bytes());
    assert_eq!(&e.output[34..], &frame[14..]);
    assert_eq!(e.stats.unwrap().bytes, 60);
}

// ---------------------------------------------------------------------------
// Too big
// ---------------------------------------------------------------------------

#[test]
fn too_big_ipv4_with_df_gets_frag_needed() {
    let (_, mut m) = world_with(
        LbSettings {
            mtu: 600,
            ..settings()
        },
        &[(vip("198.18.0.10", 80, Proto::Tcp, 0), &[("198.18.1.1", 1)])],
    );
    let big = build(vec![
        eth(),
        LayerSpec::Ipv4(Ipv4Spec {
            df: Some(true),
            ..ipv4("198.18.2.1", "198.18.0.10")
        }),
        LayerSpec::tcp(40000, 80, "A"),
        payload(600 - 40 - 20 + 1),
    ]);
    let e = m.process(&big);
    assert_eq!((e.verdict, e.outcome), (XDP_TX, Counter::TooBigSent));
    assert_eq!(e.selection, Some(Counter::LruMiss));
    assert_eq!(e.stats, None);
    let expected = build(vec![
        LayerSpec::Eth(EthSpec {
            src: Some(Mac(LB_MAC)),
            dst: Some(Mac(CLIENT_MAC)),
            ..EthSpec::default()
        }),
        LayerSpec::Ipv4(Ipv4Spec {
            id: Some(0),
            ttl: Some(64),
            ..ipv4("198.18.0.10", "198.18.2.1")
        }),
        LayerSpec::Icmp(IcmpSpec {
            icmp_type: Some(3),
            code: Some(4),
            rest: Some(600 - 20),
            ..IcmpSpec::default()
        }),
        bytes(&big[14..14 + 28]),
    ]);
    assert_frames_eq(&expected, &e.output);

    // Exactly at the MTU: encapsulated.
    let fits = build(vec![
        eth(),
        LayerSpec::Ipv4(ipv4("198.18.2.1", "198.18.0.10")),
        LayerSpec::tcp(40000, 80, "A"),
        payload(600 - 40 - 20),
    ]);
    assert_eq!(m.process(&fits).outcome, Counter::Tx);

    // Without DF: dropped.
    let no_df = build(vec![
        eth(),
        LayerSpec::Ipv4(ipv4("198.18.2.1", "198.18.0.10")),
        LayerSpec::tcp(40000, 80, "A"),
        payload(600),
    ]);
    let e = m.process(&no_df);
    assert_eq!((e.verdict, e.outcome), (XDP_DROP, Counter::DropTooBig));
}

#[test]
fn too_big_ipv6_gets_packet_too_big_and_off_means_drop() {
    let vips: &[(VipSpec, &[(&str, u32)])] = &[(
        vip("2001:db8::10", 443, Proto::Tcp, vip_flags::GUE),
        &[("2001:db8:1::1", 1)],
    )];
    let big = build(vec![
        eth(),
        LayerSpec::Ipv6(ipv6("2001:db8:2::1", "2001:db8::10")),
        LayerSpec::tcp(40000, 443, "A"),
        payload(1400),
    ]);
    let (_, mut m) = world_with(settings(), vips);
    let e = m.process(&big);
    assert_eq!((e.verdict, e.outcome), (XDP_TX, Counter::TooBigSent));
    let expected = build(vec![
        LayerSpec::Eth(EthSpec {
            src: Some(Mac(LB_MAC)),
            dst: Some(Mac(CLIENT_MAC)),
            ..EthSpec::default()
        }),
        LayerSpec::Ipv6(Ipv6Spec {
            hop_limit: Some(64),
            ..ipv6("2001:db8::10", "2001:db8:2::1")
        }),
        LayerSpec::Icmpv6(IcmpSpec {
            icmp_type: Some(2),
            code: Some(0),
            // 1500 minus IPv6 (40) and GUE's UDP (8).
            rest: Some(1500 - 48),
            ..IcmpSpec::default()
        }),
        bytes(&big[14..14 + 48]),
    ]);
    assert_frames_eq(&expected, &e.output);

    let (_, mut off) = world_with(
        LbSettings {
            send_too_big: false,
            ..settings()
        },
        vips,
    );
    let e = off.process(&big);
    assert_eq!((e.verdict, e.outcome), (XDP_DROP, Counter::DropTooBig));
}

// ---------------------------------------------------------------------------
// ICMP
// ---------------------------------------------------------------------------

#[test]
fn echo_requests_to_a_vip_address_are_answered() {
    let (_, mut m) = world();
    let request = build(vec![
        eth(),
        LayerSpec::Ipv4(Ipv4Spec {
            ttl: Some(9),
            id: Some(77),
            ..ipv4("198.18.2.1", "198.18.0.10")
        }),
        LayerSpec::Icmp(IcmpSpec {
            id: Some(0x1234),
            seq: Some(5),
            ..IcmpSpec::default()
        }),
        payload(32),
    ]);
    let e = m.process(&request);
    assert_eq!((e.verdict, e.outcome), (XDP_TX, Counter::IcmpEchoReply));
    assert_eq!(e.counters().collect::<Vec<_>>(), [Counter::IcmpEchoReply]);
    let expected = build(vec![
        LayerSpec::Eth(EthSpec {
            src: Some(Mac(LB_MAC)),
            dst: Some(Mac(CLIENT_MAC)),
            ..EthSpec::default()
        }),
        LayerSpec::Ipv4(Ipv4Spec {
            ttl: Some(64),
            id: Some(77),
            ..ipv4("198.18.0.10", "198.18.2.1")
        }),
        LayerSpec::Icmp(IcmpSpec {
            icmp_type: Some(0),
            id: Some(0x1234),
            seq: Some(5),
            ..IcmpSpec::default()
        }),
        payload(32),
    ]);
    assert_frames_eq(&expected, &e.output);

    let request6 = build(vec![
        eth(),
        LayerSpec::Ipv6(ipv6("2001:db8:2::1", "2001:db8::11")),
        LayerSpec::Icmpv6(IcmpSpec::default()),
        payload(8),
    ]);
    let e = m.process(&request6);
    let expected6 = build(vec![
        LayerSpec::Eth(EthSpec {
            src: Some(Mac(LB_MAC)),
            dst: Some(Mac(CLIENT_MAC)),
            ..EthSpec::default()
        }),
        LayerSpec::Ipv6(ipv6("2001:db8::11", "2001:db8:2::1")),
        LayerSpec::Icmpv6(IcmpSpec {
            icmp_type: Some(129),
            ..IcmpSpec::default()
        }),
        payload(8),
    ]);
    assert_eq!(e.outcome, Counter::IcmpEchoReply);
    assert_frames_eq(&expected6, &e.output);

    // Not a VIP address, or answering off: passed.
    let other = build(vec![
        eth(),
        LayerSpec::Ipv4(ipv4("198.18.2.1", "198.18.0.99")),
        LayerSpec::Icmp(IcmpSpec::default()),
    ]);
    assert_eq!(m.process(&other).outcome, Counter::PassNotVip);
    let (_, mut off) = world_with(
        LbSettings {
            icmp_echo: false,
            ..settings()
        },
        &[(vip("198.18.0.10", 80, Proto::Tcp, 0), &[])],
    );
    let e = off.process(&request);
    assert_eq!((e.verdict, e.outcome), (XDP_PASS, Counter::PassNotVip));
    // Echo replies and other types are not for the balancer.
    let reply = build(vec![
        eth(),
        LayerSpec::Ipv4(ipv4("198.18.2.1", "198.18.0.10")),
        LayerSpec::Icmp(IcmpSpec {
            icmp_type: Some(0),
            ..IcmpSpec::default()
        }),
    ]);
    assert_eq!(m.process(&reply).outcome, Counter::PassNotVip);
}

/// An ICMP destination unreachable from a router on the path to the client,
/// quoting the VIP's packet to the client (VIP:80 → client:40000).
fn unreachable_v4(vip: &str, vip_port: u16, icmp_type: u8) -> Vec<LayerSpec> {
    vec![
        eth(),
        LayerSpec::Ipv4(ipv4("198.18.3.1", vip)),
        LayerSpec::Icmp(IcmpSpec {
            icmp_type: Some(icmp_type),
            code: Some(1),
            ..IcmpSpec::default()
        }),
        LayerSpec::Ipv4(ipv4(vip, "198.18.2.1")),
        LayerSpec::tcp(vip_port, 40000, "SA"),
    ]
}

#[test]
fn icmp_errors_about_a_vip_flow_go_to_its_real() {
    let (_, mut m) = world();
    // The client's flow is established on some real.
    let syn = m.process(&build(syn_v4("198.18.2.1", "198.18.0.10", 40000, 80)));
    let real = syn.real.unwrap();

    let layers = unreachable_v4("198.18.0.10", 80, 3);
    let frame = build(layers.clone());
    let e = m.process(&frame);
    assert_eq!((e.verdict, e.outcome), (XDP_TX, Counter::IcmpErrorToReal));
    assert_eq!((e.selection, e.real), (Some(Counter::LruHit), Some(real)));
    assert_eq!(
        e.counters().collect::<Vec<_>>(),
        [Counter::IcmpErrorToReal, Counter::LruHit]
    );
    // The whole ICMP packet, inside IPIP with the flow's hash as source.
    let hash = jhash_3words(0xc612_0201, (40000 << 16) | 80, 6, SEED);
    let def: RealDef = m.reals[&real];
    let mut expected = vec![
        LayerSpec::Eth(EthSpec {
            src: Some(Mac(LB_MAC)),
            dst: Some(Mac(GATEWAY_MAC)),
            ..EthSpec::default()
        }),
        LayerSpec::Ipv4(Ipv4Spec {
            src: Some(Ipv4Addr::new(198, 19, (hash >> 8) as u8, hash as u8)),
            dst: Some(Ipv4Addr::new(
                def.addr[0],
                def.addr[1],
                def.addr[2],
                def.addr[3],
            )),
            id: Some(0),
            df: Some(true),
            ttl: Some(64),
            ..Ipv4Spec::default()
        }),
    ];
    expected.extend(layers[1..].iter().cloned());
    assert_frames_eq(&build(expected), &e.output);

    // Not about a VIP, or not an unreachable: passed.
    for frame in [
        build(unreachable_v4("198.18.0.99", 80, 3)),
        build(unreachable_v4("198.18.0.10", 80, 11)),
    ] {
        let e = m.process(&frame);
        assert_eq!((e.verdict, e.outcome), (XDP_PASS, Counter::PassNotVip));
    }
    // Quoting less than an IP header and 8 bytes: passed.
    let short = PacketSpec {
        layers,
        cut: Some(14 + 20 + 8 + 20 + 6),
        mutate: vec![],
    }
    .build()
    .unwrap();
    assert_eq!(m.process(&short).outcome, Counter::PassNotVip);
}

#[test]
fn icmpv6_packet_too_big_about_a_vip_flow_goes_to_its_real() {
    let (_, mut m) = world();
    let frame = build(vec![
        eth(),
        LayerSpec::Ipv6(ipv6("2001:db8:3::1", "2001:db8::10")),
        LayerSpec::Icmpv6(IcmpSpec {
            icmp_type: Some(2),
            rest: Some(1280),
            ..IcmpSpec::default()
        }),
        LayerSpec::Ipv6(ipv6("2001:db8::10", "2001:db8:2::1")),
        LayerSpec::tcp(443, 40000, "A"),
        payload(100),
    ]);
    let e = m.process(&frame);
    assert_eq!((e.verdict, e.outcome), (XDP_TX, Counter::IcmpErrorToReal));
    // The flow is client → VIP; a miss fills the table for it.
    let (flow, _) = e.lru_update.unwrap();
    assert_eq!(
        (u16::from_be(flow.sport), u16::from_be(flow.dport)),
        (40000, 443)
    );
    assert_eq!(flow.src, v6("2001:db8:2::1").octets());
    assert_eq!(&e.output[14 + 40..], &frame[14..]);
    assert_checksums_valid(&e.output, &settings());
}

// ---------------------------------------------------------------------------
// The control plane's bookkeeping (pure)
// ---------------------------------------------------------------------------

#[test]
fn control_plane_errors_name_what_is_wrong() {
    let err = Plane::new(LbSettings {
        ring_size: 65536,
        ..settings()
    })
    .unwrap_err();
    assert_eq!(err.to_string(), "ring size 65536 is not prime");

    let (mut plane, _) = Plane::new(settings()).unwrap();
    let spec = vip("198.18.0.10", 80, Proto::Tcp, 0);
    plane.add_vip(spec).unwrap();
    let err = plane.add_vip(spec).unwrap_err();
    assert_eq!(err.to_string(), "VIP 198.18.0.10:80/tcp already exists");
    let v6vip = vip("2001:db8::10", 443, Proto::Udp, 0).vip();
    assert_eq!(
        plane
            .add_real(&v6vip, ip("2001:db8:1::1"), 1)
            .unwrap_err()
            .to_string(),
        "no VIP [2001:db8::10]:443/udp"
    );
    plane.add_real(&spec.vip(), ip("198.18.1.1"), 1).unwrap();
    assert_eq!(
        plane
            .add_real(&spec.vip(), ip("198.18.1.1"), 2)
            .unwrap_err()
            .to_string(),
        "real 198.18.1.1 is already a backend of VIP 198.18.0.10:80/tcp"
    );
    assert_eq!(
        plane
            .remove_real(&spec.vip(), ip("198.18.1.9"))
            .unwrap_err()
            .to_string(),
        "real 198.18.1.9 is not a backend of VIP 198.18.0.10:80/tcp"
    );
    for port in 1..MAX_VIPS as u16 {
        plane
            .add_vip(vip("198.18.0.11", port, Proto::Tcp, 0))
            .unwrap();
    }
    assert!(matches!(
        plane.add_vip(vip("198.18.0.12", 1, Proto::Tcp, 0)),
        Err(LbError::TooManyVips(_))
    ));
}

#[test]
fn control_plane_orders_writes_so_traffic_keeps_flowing() {
    let (mut plane, writes) = Plane::new(settings()).unwrap();
    assert!(matches!(writes[..], [Write::Config(_)]));
    let spec = vip("198.18.0.10", 80, Proto::Tcp, 0);
    let v = spec.vip();
    let writes = plane.add_vip(spec).unwrap();
    // Stats zeroed, the echo entry for the new address, the VIP, then the
    // address table: the entries inline under SHARED, then EXACT.
    assert_eq!(writes.len(), 5);
    assert_eq!(writes[0], Write::ResetVipStats(0));
    assert_eq!(
        writes[1],
        Write::Vip {
            key: echo_key(ip("198.18.0.10")),
            meta: Some(VipMeta {
                flags: 0,
                vip_num: ECHO_VIP_NUM,
            }),
        }
    );
    let kinds: Vec<u8> = writes[3..]
        .iter()
        .map(|w| match w {
            Write::Addr { entry, .. } => entry.kind,
            other => panic!("not an address-table write: {other:?}"),
        })
        .collect();
    assert_eq!(kinds, [addr_kind::SHARED, addr_kind::EXACT]);
    let Write::Addr { entry, .. } = writes[4] else {
        unreachable!()
    };
    assert_eq!(entry.count, 2, "the VIP and the echo entry inline");

    // A new real: LB_REALS before any ring slot names it.
    let writes = plane.add_real(&v, ip("198.18.1.1"), 1).unwrap();
    let real_at = writes
        .iter()
        .position(|w| matches!(w, Write::Real { id: 1, .. }))
        .unwrap();
    let first_slot = writes
        .iter()
        .position(|w| matches!(w, Write::RingSlot { .. }))
        .unwrap();
    assert!(real_at < first_slot);
    assert_eq!(
        writes
            .iter()
            .filter(|w| matches!(w, Write::RingSlot { real: 1, .. }))
            .count(),
        RING as usize
    );
    assert_eq!(plane.ring(&v).unwrap(), vec![1; RING as usize]);

    // A second real: only the slots that change are written.
    let writes = plane.add_real(&v, ip("198.18.1.2"), 1).unwrap();
    let moved = writes
        .iter()
        .filter(|w| matches!(w, Write::RingSlot { real: 2, .. }))
        .count();
    assert_eq!(
        moved,
        plane.ring(&v).unwrap().iter().filter(|r| **r == 2).count()
    );
    assert!(
        writes
            .iter()
            .all(|w| !matches!(w, Write::RingSlot { real: 1, .. }))
    );

    // Removing a real: ring slots first, its LB_REALS entry last.
    let writes = plane.remove_real(&v, ip("198.18.1.1")).unwrap();
    assert!(matches!(
        writes.last(),
        Some(Write::Real { id: 1, def }) if def.family == 0
    ));
    assert!(plane.ring(&v).unwrap().iter().all(|r| *r == 2));
    assert_eq!(plane.real_id(ip("198.18.1.1")), None);

    // Removing the VIP: the address table first (SHARED, then EMPTY), then
    // the entry, echo entry, ring cleared, real freed.
    let writes = plane.remove_vip(&v).unwrap();
    assert!(matches!(writes[0], Write::Addr { entry, .. } if entry.kind == addr_kind::SHARED));
    assert!(
        matches!(writes[1], Write::Addr { entry, .. } if entry == AddrEntry::default()),
        "the slot emptied"
    );
    let writes = &writes[2..];
    assert_eq!(
        writes[0],
        Write::Vip {
            key: v.key(),
            meta: None,
        }
    );
    assert_eq!(
        writes[1],
        Write::Vip {
            key: echo_key(ip("198.18.0.10")),
            meta: None,
        }
    );
    assert_eq!(
        writes
            .iter()
            .filter(|w| matches!(w, Write::RingSlot { real: 0, .. }))
            .count(),
        RING as usize
    );
    assert!(matches!(writes.last(), Some(Write::Real { id: 2, .. })));
}

#[test]
fn control_plane_shares_real_ids_and_echo_entries() {
    let (mut plane, _) = Plane::new(settings()).unwrap();
    let a = vip("198.18.0.10", 80, Proto::Tcp, 0);
    let b = vip("198.18.0.10", 443, Proto::Tcp, 0);
    let c = vip("2001:db8::10", 80, Proto::Udp, 0);
    plane.add_vip(a).unwrap();
    // A second VIP at the same address adds no echo entry.
    let writes = plane.add_vip(b).unwrap();
    assert!(
        writes
            .iter()
            .all(|w| !matches!(w, Write::Vip { key, .. } if key.proto == 1))
    );
    plane.add_vip(c).unwrap();
    assert_eq!(plane.vip_num(&b.vip()), Some(1));
    assert_eq!(plane.vip_num(&c.vip()), Some(2));

    plane.add_real(&a.vip(), ip("198.18.1.1"), 1).unwrap();
    plane.add_real(&b.vip(), ip("198.18.1.1"), 5).unwrap();
    plane.add_real(&c.vip(), ip("2001:db8:1::1"), 1).unwrap();
    assert_eq!(plane.real_id(ip("198.18.1.1")), Some(1));
    assert_eq!(plane.real_id(ip("2001:db8:1::1")), Some(2));

    let state = plane.model_state();
    assert_eq!(state.vips.len(), 3 + 2, "three VIPs, two echo entries");
    assert_eq!(
        state.vips[&echo_key(ip("2001:db8::10"))],
        VipMeta {
            flags: 0,
            vip_num: ECHO_VIP_NUM
        }
    );
    assert_eq!(echo_key(ip("2001:db8::10")).proto, 58);

    // Still used by b: id 1 stays.
    plane.remove_real(&a.vip(), ip("198.18.1.1")).unwrap();
    assert_eq!(plane.real_id(ip("198.18.1.1")), Some(1));
    // Freed ids are reused only after the never-used ones.
    plane.remove_vip(&b.vip()).unwrap();
    assert_eq!(plane.real_id(ip("198.18.1.1")), None);
    plane.add_real(&a.vip(), ip("198.18.1.7"), 1).unwrap();
    assert_eq!(plane.real_id(ip("198.18.1.7")), Some(3));
    // VIP numbers are reused, lowest first.
    plane
        .add_vip(vip("198.18.0.11", 80, Proto::Tcp, 0))
        .unwrap();
    assert_eq!(
        plane.vip_num(&vip("198.18.0.11", 80, Proto::Tcp, 0).vip()),
        Some(1)
    );
    // The rings are what Maglev builds from the addresses.
    let ring = plane.ring(&c.vip()).unwrap();
    let key = v6("2001:db8:1::1").octets();
    let want = maglev::build_ring_keyed(
        &[maglev::Backend {
            id: 2,
            key: &key,
            weight: 1,
        }],
        RING,
    )
    .unwrap();
    assert_eq!(ring, want);
}

// ---------------------------------------------------------------------------
// The differential test: BPF program vs model
// ---------------------------------------------------------------------------

mod differential {
    use std::collections::BTreeSet;

    use dsrlab::{
        datapath,
        lb::{
            Lb,
            fuzz::{self, Case, FrameKind, FuzzOptions, Step, Threshold},
        },
    };

    use super::*;

    /// The CI-sized differential run: `dsrlab::lb::fuzz` (the same code as
    /// `dsrlab fuzz lb`) from a fixed seed, a few thousand frames,
    /// well-formed and malformed. `DSRLAB_FUZZ_PACKETS` and
    /// `DSRLAB_FUZZ_SEED` explore further.
    #[test]
    fn datapath_matches_the_model() {
        if let Some(reason) = fuzz::unavailable() {
            eprintln!("SKIPPED datapath_matches_the_model: {reason}");
            return;
        }
        let env = |name: &str| {
            std::env::var(name).ok().map(|v| {
                let parsed = match v.strip_prefix("0x") {
                    Some(hex) => u64::from_str_radix(hex, 16),
                    None => v.parse(),
                };
                parsed.unwrap_or_else(|_| panic!("{name}={v} is not a number"))
            })
        };
        let options = FuzzOptions {
            packets: env("DSRLAB_FUZZ_PACKETS").unwrap_or(4000),
            seed: env("DSRLAB_FUZZ_SEED").unwrap_or(0x0d5e_1ab0),
            malformed: true,
            cpu: 0,
            capacity: false,
        };
        let report = fuzz::run(&options, &mut |_| {}).unwrap_or_else(|e| panic!("{e}"));
        eprintln!("{report}");
        if let Some(m) = &report.mismatch {
            let dir = std::env::temp_dir().join(format!("dsrlab-fuzz-{}", std::process::id()));
            let written = m.write_pcaps(&dir).map(|p| format!("{p:?}"));
            panic!("{m}\npcaps: {}", written.unwrap_or_else(|e| e.to_string()));
        }
        assert!(report.total() >= options.packets);
        // Malformed frames were part of it, and every threshold frame (four
        // kinds of damage, six thresholds), and the kernel refused only the
        // frames shorter than Ethernet.
        assert!(report.compared.len() == 4 + 6, "{:?}", report.compared);
        for reason in report.skipped.keys() {
            assert!(reason.contains("Ethernet header"), "{reason}");
        }
        // Each threshold was reached on its side: an encapsulated packet
        // exactly the MTU long and one a byte shorter sent, one a byte
        // longer refused; L4 one byte short of its header malformed, at
        // the header's length and one over sent.
        let gave = |threshold: &str, outcome: &str| {
            report
                .thresholds
                .get(&(threshold_name(threshold), outcome.to_owned()))
                .copied()
                .unwrap_or(0)
        };
        for (threshold, outcome) in [
            ("at mtu", "tx, outer = mtu"),
            ("mtu-1", "tx, outer = mtu-1"),
            ("at l4 minimum", "tx"),
            ("l4 minimum+1", "tx"),
            ("l4 minimum-1", "pass_malformed"),
        ] {
            assert!(
                gave(threshold, outcome) > 0,
                "{threshold}: no {outcome}: {:?}",
                report.thresholds
            );
        }
        assert!(
            gave("mtu+1", "too_big_sent") + gave("mtu+1", "drop_too_big") > 0,
            "mtu+1 never refused: {:?}",
            report.thresholds
        );
    }

    /// The static name of a threshold as reports key it.
    fn threshold_name(name: &str) -> &'static str {
        [
            Threshold::Mtu(-1),
            Threshold::Mtu(0),
            Threshold::Mtu(1),
            Threshold::L4Minimum(-1),
            Threshold::L4Minimum(0),
            Threshold::L4Minimum(1),
        ]
        .into_iter()
        .map(Threshold::name)
        .find(|n| *n == name)
        .unwrap_or_else(|| panic!("no threshold {name}"))
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 8,
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]
        /// Property: for any world seed (VIPs, reals, weights, flags, ring
        /// size, MTU, ICMP switches, traffic with reals changing mid-stream
        /// and malformed frames), xdp_lb and the model agree on every frame.
        /// proptest picks the seeds and reports the failing one, which
        /// `dsrlab fuzz lb --seed S --count 1` replays alone.
        #[test]
        fn any_world_matches_the_model(seed in proptest::prelude::any::<u64>()) {
            if let Some(reason) = fuzz::unavailable() {
                eprintln!("SKIPPED any_world_matches_the_model: {reason}");
                return Ok(());
            }
            let options = FuzzOptions { packets: 1, seed, malformed: true, cpu: 0, capacity: false };
            let report = fuzz::run(&options, &mut |_| {}).unwrap_or_else(|e| panic!("{e}"));
            proptest::prop_assert!(report.mismatch.is_none(), "seed {seed:#x}: {}", report);
        }
    }

    /// The control plane's writes land: every map read back equals the
    /// plane's view, and a program loaded for another ring size is refused.
    #[test]
    fn control_plane_writes_what_the_plane_says() {
        if let Some(reason) = fuzz::unavailable() {
            eprintln!("SKIPPED control_plane_writes_what_the_plane_says: {reason}");
            return;
        }
        use aya::maps::{Array, HashMap as BpfHashMap};
        use dsrlab_abi::lb::{
            CONFIG_MAP, LbConfig, REALS_MAP, RING_MAP, VIPS_MAP, VipKey, VipMeta,
        };

        let settings = LbSettings {
            ring_size: 13,
            ..settings()
        };
        let mut lb = Lb::load(datapath::XDP_LB, settings).unwrap();
        let a = vip("198.18.0.10", 80, Proto::Tcp, vip_flags::GUE);
        let b = vip("2001:db8::10", 0, Proto::Udp, vip_flags::NO_LRU);
        lb.add_vip(a).unwrap();
        lb.add_vip(b).unwrap();
        lb.add_real(&a.vip(), ip("198.18.1.1"), 1).unwrap();
        lb.add_real(&a.vip(), ip("2001:db8:1::1"), 2).unwrap();
        lb.add_real(&b.vip(), ip("2001:db8:1::1"), 1).unwrap();
        lb.add_real(&b.vip(), ip("2001:db8:1::2"), 1).unwrap();
        lb.remove_real(&b.vip(), ip("2001:db8:1::2")).unwrap();
        let want = lb.model_state();

        let p = lb.program();
        let vips = BpfHashMap::<_, VipKey, VipMeta>::try_from(p.map(VIPS_MAP).unwrap()).unwrap();
        let got: dsrlab::lb::model::ModelMap<VipKey, VipMeta> =
            vips.iter().map(Result::unwrap).collect();
        assert_eq!(got, want.vips);
        let reals = Array::<_, RealDef>::try_from(p.map(REALS_MAP).unwrap()).unwrap();
        for id in 0..8 {
            let def = reals.get(&id, 0).unwrap();
            assert_eq!(
                def,
                want.reals.get(&id).copied().unwrap_or_default(),
                "LB_REALS[{id}]"
            );
        }
        let ring = Array::<_, u32>::try_from(p.map(RING_MAP).unwrap()).unwrap();
        assert_eq!(ring.len(), MAX_VIPS * 13);
        for num in 0..MAX_VIPS {
            let slots: Vec<u32> = (0..13)
                .map(|s| ring.get(&(num * 13 + s), 0).unwrap())
                .collect();
            let expected = want.rings.get(&num).cloned().unwrap_or(vec![0; 13]);
            assert_eq!(slots, expected, "ring of VIP {num}");
        }
        let config = Array::<_, LbConfig>::try_from(p.map(CONFIG_MAP).unwrap()).unwrap();
        assert_eq!(config.get(&0, 0).unwrap(), settings.config());

        // Removing a VIP clears its ring and its entries.
        lb.remove_vip(&a.vip()).unwrap();
        let p = lb.program();
        let ring = Array::<_, u32>::try_from(p.map(RING_MAP).unwrap()).unwrap();
        assert!((0..13).all(|s| ring.get(&s, 0).unwrap() == 0));
        let vips = BpfHashMap::<_, VipKey, VipMeta>::try_from(p.map(VIPS_MAP).unwrap()).unwrap();
        assert_eq!(vips.keys().count(), 2, "VIP b and its echo entry");

        // A program sized for another ring is refused, by name.
        let program = dsrlab::load::LoadedProgram::builtin(
            datapath::XDP_LB,
            &dsrlab::load::LoadOptions::default(),
        )
        .unwrap();
        let err = Lb::new(program, settings).unwrap_err();
        assert!(err.to_string().starts_with("LB_RING holds"), "{err}");
    }

    /// The address table in front of `LB_VIPS` answers as the map would:
    /// two VIP addresses sharing a slot, an address with more entries than
    /// fit inline, a non-VIP address in a VIP address's slot, and slots that
    /// change kind as VIPs go. Every frame is judged by the model (verdict,
    /// bytes, counters).
    #[test]
    fn the_address_table_answers_as_the_vip_map_would() {
        if let Some(reason) = fuzz::unavailable() {
            eprintln!("SKIPPED the_address_table_answers_as_the_vip_map_would: {reason}");
            return;
        }
        use aya::maps::Array;
        use dsrlab::{
            formats::fixture::Quirks,
            oracles::lb::{counter_deltas, judge},
            testrun,
        };
        use dsrlab_abi::lb::{ADDRS_MAP, addr_slot};

        let slot_of = |a: &str| {
            let o = v4(a).octets();
            addr_slot(&[u32::from_ne_bytes(o), 0, 0, 0])
        };
        // The premises, so that a change of the hash cannot make this test
        // check nothing.
        assert_eq!(slot_of("198.18.0.40"), slot_of("198.18.1.142"));
        assert_eq!(slot_of("198.18.0.41"), slot_of("198.18.2.70"));
        let distinct = ["198.18.0.40", "198.18.0.41", "198.18.0.42"].map(slot_of);
        assert!(
            distinct[0] != distinct[1] && distinct[1] != distinct[2] && distinct[0] != distinct[2]
        );

        let mut lb = Lb::load(
            datapath::XDP_LB,
            LbSettings {
                ring_size: 13,
                ..settings()
            },
        )
        .unwrap();
        let vips = [
            vip("198.18.0.40", 80, Proto::Tcp, 0),
            vip("198.18.1.142", 80, Proto::Tcp, 0),
            vip("198.18.0.41", 80, Proto::Tcp, 0),
            vip("198.18.0.41", 443, Proto::Tcp, 0),
            vip("198.18.0.41", 53, Proto::Udp, 0),
            vip("198.18.0.41", 0, Proto::Udp, 0),
            vip("198.18.0.42", 80, Proto::Tcp, 0),
        ];
        for v in vips {
            lb.add_vip(v).unwrap();
            lb.add_real(&v.vip(), ip("198.18.1.1"), 1).unwrap();
        }
        let kind_of = |lb: &Lb, a: &str| {
            Array::<_, AddrEntry>::try_from(lb.program().map(ADDRS_MAP).unwrap())
                .unwrap()
                .get(&slot_of(a), 0)
                .unwrap()
                .kind
        };
        assert_eq!(kind_of(&lb, "198.18.0.40"), addr_kind::SHARED);
        assert_eq!(kind_of(&lb, "198.18.0.41"), addr_kind::SHARED, "5 entries");
        assert_eq!(kind_of(&lb, "198.18.0.42"), addr_kind::EXACT);

        let addrs = [
            "198.18.0.40",
            "198.18.1.142",
            "198.18.0.41",
            "198.18.0.42",
            "198.18.2.70",
        ];
        let mut outcomes = BTreeSet::new();
        let mut check = |lb: &mut Lb, stage: u16| {
            let mut frames = Vec::new();
            for (i, dst) in addrs.iter().enumerate() {
                for dport in [80, 81, 443] {
                    frames.push(build(syn_v4("198.18.2.1", dst, 40000 + stage, dport)));
                }
                for dport in [53, 9999] {
                    // A new source port per stage: a UDP flow's table entry
                    // would otherwise carry over.
                    frames.push(build(vec![
                        eth(),
                        LayerSpec::Ipv4(ipv4("198.18.2.1", dst)),
                        LayerSpec::udp(41000 + 10 * stage + i as u16, dport),
                    ]));
                }
                frames.push(build(vec![
                    eth(),
                    LayerSpec::Ipv4(ipv4("198.18.2.1", dst)),
                    LayerSpec::Icmp(IcmpSpec::default()),
                    payload(8),
                ]));
            }
            let mut model = lb.model_state();
            for frame in &frames {
                let expected = model.process(frame);
                let before = lb.counters().unwrap();
                let run = testrun::run(lb.program(), frame, Quirks::default());
                let deltas = counter_deltas(&before, &lb.counters().unwrap());
                let findings = judge(&expected, &run, &deltas, 6080);
                assert!(
                    findings.is_empty(),
                    "stage {stage}: {findings:?}\n{}",
                    dissect_with(frame, &DissectOptions::default())
                );
                outcomes.insert((stage, expected.outcome));
            }
        };
        check(&mut lb, 0);

        // 198.18.1.142 goes: 198.18.0.40 has its slot alone. 198.18.0.41
        // loses a VIP: its four entries fit inline.
        lb.remove_vip(&vips[1].vip()).unwrap();
        lb.remove_vip(&vips[3].vip()).unwrap();
        assert_eq!(kind_of(&lb, "198.18.0.40"), addr_kind::EXACT);
        assert_eq!(kind_of(&lb, "198.18.0.41"), addr_kind::EXACT);
        check(&mut lb, 1);

        for stage in 0..2 {
            for outcome in [Counter::Tx, Counter::PassNotVip, Counter::IcmpEchoReply] {
                assert!(
                    outcomes.contains(&(stage, outcome)),
                    "stage {stage}: no {outcome:?}"
                );
            }
        }
    }

    /// The generator and the model work without a kernel: cases are a
    /// function of their seed, every generated frame runs through the model
    /// without a panic, what it transmits of well-formed traffic has valid
    /// checksums, and the
    /// generator reaches every outcome the contract has.
    #[test]
    fn generated_traffic_runs_through_the_model() {
        let a = Case::generate(7, true);
        let b = Case::generate(7, true);
        assert_eq!(
            format!("{a:?}"),
            format!("{b:?}"),
            "a case is a function of its seed"
        );
        let mut outcomes = BTreeSet::new();
        for seed in 0..64 {
            let case = Case::generate(seed, true);
            let (plane, _) = case.world.plane().unwrap();
            let settings = *plane.settings();
            let mut model = plane.model_state();
            for step in &case.steps {
                if let Step::Frame { bytes, kind, .. } = step {
                    let e = model.process(bytes);
                    // A damaged frame's own checksums stay damaged inside
                    // the tunnel; the outer headers are the model's.
                    if e.verdict == XDP_TX && *kind == FrameKind::WellFormed {
                        assert_checksums_valid(&e.output, &settings);
                    }
                    outcomes.insert(e.outcome);
                }
            }
        }
        let missing: Vec<&str> = Counter::ALL
            .into_iter()
            .filter(|c| !matches!(c, Counter::LruHit | Counter::LruMiss))
            .filter(|c| !outcomes.contains(c))
            .map(Counter::name)
            .collect();
        assert!(missing.is_empty(), "never generated: {missing:?}");
    }
}

/// The largest ring: the largest prime whose `MAX_VIPS` rings still index
/// a BPF array with a u32 is accepted, the next prime refused.
#[test]
fn the_largest_ring_is_the_last_prime_whose_rings_a_u32_indexes() {
    let limit = u32::MAX / MAX_VIPS;
    let largest = (2..=limit).rev().find(|&n| maglev::is_prime(n)).unwrap();
    let next = (limit + 1..).find(|&n| maglev::is_prime(n)).unwrap();
    assert!(u64::from(largest) * u64::from(MAX_VIPS) <= u64::from(u32::MAX));
    let with = |ring_size| {
        Plane::new(LbSettings {
            ring_size,
            ..settings()
        })
        .map(|_| ())
        .map_err(|e| e.to_string())
    };
    assert_eq!(with(largest), Ok(()));
    assert_eq!(
        with(next),
        Err(format!(
            "ring size {next} is too large: {MAX_VIPS} rings of it exceed a BPF array's u32 index"
        ))
    );
}
