//! The harness's instruments against states the kernel is known to give:
//! what they report must be what the skb was, or every oracle built on
//! them is wrong.

use std::{net::IpAddr, time::Duration};

use dsrlab::{
    instruments::skb_state::{IpSummed, SkbStateProbe},
    live::{
        packet_socket::PacketSocket,
        topology::{EndSpec, LinkSpec, NodeSpec, Topology, TopologySpec},
    },
};

fn pair(prefix: &str) -> TopologySpec {
    let node = |n: &str| NodeSpec {
        name: format!("{prefix}-{n}"),
        sysctls: vec![("ipv6.conf.default.disable_ipv6".into(), "1".into())],
        ..NodeSpec::default()
    };
    TopologySpec {
        nodes: vec![node("wire"), node("dut")],
        links: vec![LinkSpec {
            a: EndSpec {
                node: format!("{prefix}-wire"),
                name: "wire0".into(),
                ..EndSpec::default()
            },
            b: EndSpec {
                node: format!("{prefix}-dut"),
                name: "dut0".into(),
                addresses: vec![("198.18.9.2".parse::<IpAddr>().unwrap(), 24)],
                ..EndSpec::default()
            },
        }],
    }
}

#[test]
fn skb_state_sees_a_veth_frame_whole_linear_and_unchecked() {
    let spec = pair("inst");
    let topology = Topology::build(&spec).unwrap_or_else(|e| panic!("{e}"));
    let dut = topology.node("inst-dut").unwrap();
    let dut0 = topology.interface("inst-dut", "dut0").unwrap();
    let wire = topology.node("inst-wire").unwrap();
    let wire0 = topology.interface("inst-wire", "wire0").unwrap();
    let mut probe = SkbStateProbe::attach(dut, dut0.index, None).unwrap_or_else(|e| panic!("{e}"));
    let mut frame = dut0.mac.to_vec();
    frame.extend(wire0.mac);
    frame.extend([0x88, 0xb5]);
    frame.extend((0u8..100).collect::<Vec<_>>());
    let sender = wire
        .run(|| PacketSocket::sender(wire0.index))
        .unwrap()
        .unwrap();
    sender.send(&frame).unwrap();
    let seen = probe.wait_for(1, Duration::from_secs(5)).unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let s = &seen[0];
    assert_eq!(s.ifindex, dut0.index);
    assert_eq!(s.len as usize, frame.len());
    assert_eq!(s.linear, s.len);
    assert_eq!(s.ip_summed, IpSummed::None);
    assert_eq!(&s.bytes[..], &frame[..96]);
}

/// A UDP/IPv4 frame of `len` bytes with a correct checksum.
fn udp_frame(len: usize) -> Vec<u8> {
    use dsrlab::formats::packet::PacketSpec;
    let spec: PacketSpec = serde_saphyr::from_str(&format!(
        "layers: [{{eth: {{}}}}, {{ipv4: {{src: 198.18.9.1, dst: 198.18.9.2}}}}, {{udp: {{sport: 1000, dport: 2000}}}}, {{payload: {{len: {}}}}}]",
        len - 42
    ))
    .unwrap();
    spec.build().unwrap()
}

#[test]
fn a_napi_frags_tap_delivers_the_linear_bytes_and_checksum_state_it_promises() {
    use dsrlab::live::nic::{Promise, self_check, tap::Tap};
    let spec = pair("tapnic");
    let topology = Topology::build(&spec).unwrap_or_else(|e| panic!("{e}"));
    let dut = topology.node("tapnic-dut").unwrap();
    let tap = Tap::create(dut, "nic0", 1500, [2, 0, 0, 0, 0, 2]).unwrap_or_else(|e| panic!("{e}"));
    let mut probe = SkbStateProbe::attach(dut, tap.index(), Some(tap.nic_program_fd().unwrap()))
        .unwrap_or_else(|e| panic!("{e}"));
    let frame = udp_frame(300);
    let promise = |linear, ip_summed, csum_level| Promise {
        linear: Some(linear),
        len: 300,
        ip_summed,
        csum_level,
        complete_sw: false,
    };
    let probes = vec![
        (frame.clone(), promise(14, IpSummed::None, 0)),
        (frame.clone(), promise(42, IpSummed::None, 0)),
        (frame.clone(), promise(300, IpSummed::None, 0)),
        (frame.clone(), promise(14, IpSummed::Unnecessary, 0)),
        (frame.clone(), promise(300, IpSummed::Unnecessary, 1)),
    ];
    self_check("nic0", &mut probe, &probes, |f, p| {
        let validated = (p.ip_summed == IpSummed::Unnecessary).then_some(p.csum_level);
        tap.deliver(f, p.linear.map(|n| n as usize), validated)
    })
    .unwrap_or_else(|e| panic!("{e}"));
    // A promise the NIC does not keep is caught: it delivers 42 linear
    // bytes when asked for 42, not the 14 promised.
    let err = self_check(
        "nic0",
        &mut probe,
        &[(frame, promise(14, IpSummed::None, 0))],
        |f, _| tap.deliver(f, Some(42), None),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("42 linear bytes instead of 14"), "{err}");
}

#[test]
fn the_vxlan_nic_delivers_hardware_checksum_complete_and_proves_it() {
    use dsrlab::{
        datapath,
        live::replay::Replay,
        load::{LoadOptions, LoadedProgram},
    };
    let mut program = LoadedProgram::builtin(datapath::TC_PASS, &LoadOptions::default()).unwrap();
    // The rig's self-check fails it unless the probe comes out COMPLETE
    // with a hardware sum; then every frame is checked the same way.
    let mut rig = Replay::with_complete_nic(&mut program, 1500).unwrap_or_else(|e| panic!("{e}"));
    let frame = udp_frame(300);
    let seen = rig.replay(&frame).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(seen.delivered, vec![frame]);
    assert!(seen.sent_back.is_empty());
}
