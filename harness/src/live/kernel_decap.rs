//! The kernel's own tunnel drivers as a reference decapsulator: a frame
//! sent into a node whose fallback tunnel devices receive any tunnel
//! packet to any of its addresses comes out, decapsulated by the kernel,
//! on one of them — what the kernel delivers to the inner stack.
//!
//! ```text
//!  wire ──eth0────eth0── decap   (owns 198.18.0.0/15 and 2001:db8::/32;
//!                                 tunl0: IPv4 in IPv4, sit0: IPv6 in IPv4,
//!                                 ip6tnl0: IPv6 in IPv6,
//!                                 ref6 (mode any, to 2001:db8::2): IPv6
//!                                 and IPv4 in IPv6)
//! ```
//!
//! ip6_tunnel takes a packet only to an address the node has (not one it
//! merely routes locally), and its fallback device only IPv6 inside: the
//! fixtures' default outer IPv6 destination, 2001:db8::2, is on `lo`, with
//! a device of its own for any inner protocol.
//!
//! Each frame is followed by a fence, an IPv4-in-IPv4 packet with a marker
//! payload: the thread that sends (pin it to one CPU) runs the receive of
//! both in order, so once the fence comes out of `tunl0` everything the
//! frame caused has been delivered. GUE arrives on UDP port 6080, which the
//! `fou` driver receives (IPv4 and IPv6) and hands to the same devices.

use std::{
    io,
    net::{IpAddr, Ipv6Addr},
    time::Duration,
};

use netlink_packet_route::link::InfoKind;

use dsrlab_abi::decap::DEFAULT_GUE_PORT;

use super::{
    fou,
    netlink::Rtnl,
    packet_socket::{ETH_P_ALL, PacketSocket},
    replay::sink,
    topology::{EndSpec, LinkSpec, NodeSpec, Topology, TopologyError, TopologySpec, ifindex},
};

/// How long the fence may take (the kernel delivers it at once; this only
/// bounds a run whose receive path is broken).
const FENCE_TIMEOUT: Duration = Duration::from_secs(5);

/// The fence's marker payload.
const FENCE_MARK: &[u8; 8] = b"dsrlabKD";

/// The fallback devices: driver, name.
const DEVICES: [(InfoKind, &str); 3] = [
    (InfoKind::IpIp, "tunl0"),
    (InfoKind::SitTun, "sit0"),
    (InfoKind::Ip6Tnl, "ip6tnl0"),
];

/// The ip6_tunnel device for any inner protocol, and its local address.
const ANY6: (&str, Ipv6Addr) = ("ref6", Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2));

/// Why the reference could not be set up or used.
#[derive(Debug, thiserror::Error)]
pub enum KernelDecapError {
    /// The topology could not be built.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// A tunnel driver or socket could not be set up.
    #[error("the kernel's tunnel drivers: {what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why.
        #[source]
        source: io::Error,
    },
}

fn io_err(what: &str) -> impl FnOnce(io::Error) -> KernelDecapError + '_ {
    move |source| KernelDecapError::Io {
        what: what.to_owned(),
        source,
    }
}

/// A packet the kernel delivered to the inner stack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivered {
    /// The tunnel device it came out of.
    pub device: &'static str,
    /// The inner packet, from its IP header.
    pub packet: Vec<u8>,
}

/// The reference rig; everything is removed on drop.
pub struct KernelDecap {
    sender: PacketSocket,
    /// Captures on the tunnel devices, in [`DEVICES`]' order.
    captures: Vec<(&'static str, PacketSocket)>,
    /// The decap node's MAC and the wire's, for the frames sent.
    macs: ([u8; 6], [u8; 6]),
    // Last: the namespaces go after the sockets in them.
    _topology: Topology,
}

impl KernelDecap {
    /// Builds the rig; loads the tunnel drivers if they are not loaded.
    pub fn new() -> Result<Self, KernelDecapError> {
        let (sysctls, local_routes) = sink();
        let spec = TopologySpec {
            nodes: vec![
                NodeSpec {
                    name: "wire".to_owned(),
                    ..NodeSpec::default()
                },
                NodeSpec {
                    name: "decap".to_owned(),
                    sysctls,
                    local_routes,
                    loopback: vec![(IpAddr::V6(ANY6.1), 128)],
                    ..NodeSpec::default()
                },
            ],
            links: vec![LinkSpec {
                a: EndSpec {
                    node: "wire".to_owned(),
                    name: "eth0".to_owned(),
                    ..EndSpec::default()
                },
                b: EndSpec {
                    node: "decap".to_owned(),
                    name: "eth0".to_owned(),
                    ..EndSpec::default()
                },
            }],
        };
        let topology = Topology::build(&spec)?;
        let wire_if = topology.interface("wire", "eth0").expect("in the spec");
        let decap_if = topology.interface("decap", "eth0").expect("in the spec");
        let decap = topology.node("decap").expect("in the spec");
        let captures = decap
            .run(|| -> Result<_, KernelDecapError> {
                let mut rtnl = Rtnl::open().map_err(io_err("rtnetlink"))?;
                let mut captures = Vec::new();
                for (kind, name) in DEVICES {
                    rtnl.ensure_fallback_tunnel(kind.clone(), name)
                        .map_err(|e| io_err("loading the driver")(io::Error::other(e)))?;
                }
                rtnl.add_ip6_tunnel_any(ANY6.0, ANY6.1)
                    .map_err(|e| io_err(ANY6.0)(io::Error::other(e)))?;
                for family in [libc::AF_INET, libc::AF_INET6] {
                    fou::add_gue_port(DEFAULT_GUE_PORT, family as u8)
                        .map_err(io_err("the GUE port"))?;
                }
                for name in DEVICES.map(|(_, name)| name).into_iter().chain([ANY6.0]) {
                    let index = ifindex(name).map_err(io_err(name))?;
                    rtnl.set_link(index, None, None, Some(true))
                        .map_err(|e| io_err(name)(io::Error::other(e)))?;
                    let capture =
                        PacketSocket::capture_arriving(index, ETH_P_ALL).map_err(io_err(name))?;
                    captures.push((name, capture));
                }
                Ok(captures)
            })
            .map_err(io_err("entering the decap node"))??;
        let wire = topology.node("wire").expect("in the spec");
        let sender = wire
            .run(|| PacketSocket::sender(wire_if.index))
            .and_then(|r| r)
            .map_err(io_err("opening the sender"))?;
        Ok(Self {
            sender,
            captures,
            macs: (decap_if.mac, wire_if.mac),
            _topology: topology,
        })
    }

    /// Sends `frame` (an Ethernet frame; its MAC addresses are replaced by
    /// the link's) into the decap node; what the kernel delivered on its
    /// tunnel devices because of it.
    pub fn decapsulate(&mut self, frame: &[u8]) -> Result<Vec<Delivered>, KernelDecapError> {
        let mut frame = frame.to_vec();
        if frame.len() >= 12 {
            frame[..6].copy_from_slice(&self.macs.0);
            frame[6..12].copy_from_slice(&self.macs.1);
        }
        self.sender
            .send(&frame)
            .map_err(io_err("sending the frame"))?;
        self.sender
            .send(&self.fence())
            .map_err(io_err("sending the fence"))?;
        let mut delivered = Vec::new();
        let mut buf = vec![0u8; 65536];
        // The fence comes out of tunl0 last of all: wait for it there.
        let (_, tunl0) = &self.captures[0];
        loop {
            if !tunl0
                .wait_readable(FENCE_TIMEOUT)
                .map_err(io_err("waiting for the fence"))?
            {
                return Err(io_err("the fence")(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("it did not come out of tunl0 within {FENCE_TIMEOUT:?}"),
                )));
            }
            let Some(packet) = tunl0.try_recv(&mut buf).map_err(io_err("tunl0"))? else {
                continue;
            };
            if packet.ends_with(FENCE_MARK) {
                break;
            }
            delivered.push(Delivered {
                device: "tunl0",
                packet,
            });
        }
        for (device, capture) in &self.captures[1..] {
            while let Some(packet) = capture.try_recv(&mut buf).map_err(io_err(device))? {
                delivered.push(Delivered { device, packet });
            }
        }
        Ok(delivered)
    }

    /// The fence: IPv4 in IPv4 to the decap node, UDP inside, the marker
    /// as its payload.
    fn fence(&self) -> Vec<u8> {
        let ipv4 = |proto: u8, payload_len: usize| {
            let total = (20 + payload_len) as u16;
            let mut h = vec![0x45, 0];
            h.extend(total.to_be_bytes());
            h.extend([0, 0, 0x40, 0, 64, proto, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2]);
            let sum = pnet_packet::util::checksum(&h, 5);
            h[10..12].copy_from_slice(&sum.to_be_bytes());
            h
        };
        let mut udp = vec![0x9c, 0x40, 0x00, 0x35];
        udp.extend(((8 + FENCE_MARK.len()) as u16).to_be_bytes());
        udp.extend([0, 0]);
        udp.extend(FENCE_MARK);
        let mut inner = ipv4(17, udp.len());
        inner.extend(udp);
        let mut frame = Vec::new();
        frame.extend(self.macs.0);
        frame.extend(self.macs.1);
        frame.extend(0x0800u16.to_be_bytes());
        frame.extend(ipv4(4, inner.len()));
        frame.extend(inner);
        frame
    }
}
