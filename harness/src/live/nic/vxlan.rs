//! A NIC that delivers CHECKSUM_COMPLETE as hardware does ("mlx5-like"):
//! the frame under test travels as the inner frame of a VXLAN packet with
//! a UDP checksum, which dsrlab builds and writes into the TAP NIC of an
//! underlay node, on the receive queue that validates (the outer packet
//! arrives CHECKSUM_UNNECESSARY, as from a NIC that checked it); the
//! kernel's VXLAN device then hands the inner frame up CHECKSUM_COMPLETE
//! with `csum_complete_sw = 0` — a sum the "hardware" made, which nobody
//! recomputes (measured, and proved by every rig's self-check). It cannot
//! also leave headers unpulled: written with only the outer headers in the
//! first iovec, the inner frame still comes up with every header up to L4
//! linear — the tunnel pulls them (measured: 42 bytes for UDP/IPv4, 82 for
//! IPv4 in IPv6).
//!
//! ```text
//!  dsrlab ── writev ──▶ u1 (TAP, queue 1) :node under ── vx1's socket
//!                                            node nic: vx1 ── program under test
//! ```
//!
//! `vx1` is made in the underlay's node and then moved into the node of
//! the program under test: the tunnel's socket stays behind, so that node's
//! stack sees only the inner frames, and its counters count only them.
//! Frames sent out of `vx1` come back encapsulated out of the TAP.

use std::{io, net::Ipv4Addr, time::Duration};

use super::tap::Tap;
use crate::formats::packet::checksum::{self, word_sum};
use crate::live::{
    netlink::Rtnl,
    netns::Namespace,
    topology::{NodeSpec, TopologySpec, ifindex},
};

const WIRE_UNDERLAY: Ipv4Addr = Ipv4Addr::new(198, 19, 255, 1);
const NIC_UNDERLAY: Ipv4Addr = Ipv4Addr::new(198, 19, 255, 2);
const UNDERLAY_MAC: [u8; 6] = [0x02, 0x64, 0x73, 0xfd, 0x00, 0x00];
const WIRE_MAC: [u8; 6] = [0x02, 0x64, 0x73, 0xfd, 0x01, 0x00];
const VNI: u32 = 4242;
const PORT: u16 = 4789;
/// Outer Ethernet, IPv4, UDP and VXLAN headers.
pub const OUTER: usize = 14 + 20 + 8 + 8;

/// The two nodes; `nic` gets `sysctls` and `local_routes` (the sink's).
pub fn spec(
    sysctls: Vec<(String, String)>,
    local_routes: Vec<(std::net::IpAddr, u8)>,
) -> TopologySpec {
    let node = |name: &str| NodeSpec {
        name: name.to_owned(),
        sysctls: vec![("ipv6.conf.default.addr_gen_mode".into(), "1".into())],
        ..NodeSpec::default()
    };
    let mut nic = node("nic");
    nic.sysctls.extend(sysctls);
    nic.local_routes = local_routes;
    TopologySpec {
        nodes: vec![node("under"), nic],
        links: Vec::new(),
    }
}

/// The underlay TAP and the tunnel; gone when this drops.
#[derive(Debug)]
pub struct Vxlan {
    tap: Tap,
    /// `vx1`'s index in the nic node: where the inner frames come out.
    pub nic_index: u32,
}

impl Vxlan {
    /// Makes the TAP `u1` in `under`, `vx1` (MAC `mac`, MTU `mtu`) over it,
    /// and moves `vx1` into `nic`.
    pub fn create(under: &Namespace, nic: &Namespace, mac: [u8; 6], mtu: u32) -> io::Result<Self> {
        let tap = Tap::create(under, "u1", mtu + 64, UNDERLAY_MAC)?;
        under.run(|| {
            let mut rtnl = Rtnl::open()?;
            let u1 = tap.index();
            rtnl.add_address(u1, NIC_UNDERLAY.into(), 24)
                .map_err(io::Error::other)?;
            rtnl.add_neighbour(u1, WIRE_UNDERLAY.into(), WIRE_MAC)
                .map_err(io::Error::other)?;
            rtnl.add_vxlan("vx1", VNI, NIC_UNDERLAY, WIRE_UNDERLAY, PORT, u1)
                .map_err(io::Error::other)?;
            rtnl.move_link(ifindex("vx1")?, nic.fd())
                .map_err(io::Error::other)
        })??;
        let nic_index = nic.run(|| {
            let index = ifindex("vx1")?;
            Rtnl::open()?
                .set_link(index, Some(mtu), Some(mac), Some(true))
                .map_err(io::Error::other)?;
            Ok::<_, io::Error>(index)
        })??;
        Ok(Self { tap, nic_index })
    }

    /// `inner` inside VXLAN over UDP over IPv4, every checksum right.
    pub fn encapsulate(inner: &[u8]) -> Vec<u8> {
        let udp_len = 16 + inner.len();
        let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
        ip[2..4].copy_from_slice(&((20 + udp_len) as u16).to_be_bytes());
        ip.extend(WIRE_UNDERLAY.octets());
        ip.extend(NIC_UNDERLAY.octets());
        let c = checksum::finish(word_sum(&ip));
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let mut l4 = vec![0xc0, 0x00];
        l4.extend(PORT.to_be_bytes());
        l4.extend((udp_len as u16).to_be_bytes());
        l4.extend([0, 0, 0x08, 0, 0, 0]);
        l4.extend(&VNI.to_be_bytes()[1..]);
        l4.push(0);
        l4.extend(inner);
        let mut pseudo = WIRE_UNDERLAY.octets().to_vec();
        pseudo.extend(NIC_UNDERLAY.octets());
        pseudo.extend([0, 17]);
        pseudo.extend((udp_len as u16).to_be_bytes());
        let c = match checksum::finish(word_sum(&pseudo) + word_sum(&l4)) {
            0 => 0xffff,
            c => c,
        };
        l4[6..8].copy_from_slice(&c.to_be_bytes());
        let mut frame = UNDERLAY_MAC.to_vec();
        frame.extend(WIRE_MAC);
        frame.extend(0x0800u16.to_be_bytes());
        frame.extend(ip);
        frame.extend(l4);
        frame
    }

    /// Delivers `inner` through the NIC: validated outer packet, and the
    /// inner frame's first `linear` bytes (all when `None`) with the outer
    /// headers in the first iovec.
    pub fn deliver(&self, inner: &[u8], linear: Option<usize>) -> io::Result<()> {
        let outer = Self::encapsulate(inner);
        let linear = linear.map(|n| OUTER + n);
        self.tap.deliver(&outer, linear, Some(0))
    }

    /// Waits up to `timeout` for a frame sent out of `vx1`.
    pub fn wait_readable(&self, timeout: Duration) -> io::Result<bool> {
        self.tap.wait_readable(timeout)
    }

    /// A frame sent out of `vx1`, decapsulated, if one is queued (anything
    /// else the underlay sends is passed over).
    pub fn try_recv(&mut self, buf: &mut [u8]) -> io::Result<Option<Vec<u8>>> {
        while let Some(outer) = self.tap.try_recv(buf)? {
            let vxlan = outer.len() > OUTER
                && outer[12..14] == [0x08, 0x00]
                && outer[23] == 17
                && outer[36..38] == PORT.to_be_bytes();
            if vxlan {
                return Ok(Some(outer[OUTER..].to_vec()));
            }
        }
        Ok(None)
    }
}

/// Why the tunnel cannot carry `frame` to the program, if it cannot: VXLAN
/// decapsulation reads the inner IP header (ECN) and drops inner frames
/// whose EtherType announces IPv4 or IPv6 without the whole header
/// (measured).
pub fn cannot_carry(frame: &[u8]) -> Option<String> {
    let max = crate::instruments::csum_audit::MAX_AUDITED;
    if frame.len() > 14 + max {
        return Some(format!(
            "the checksum auditor behind the VXLAN NIC sums packets of up to {max} bytes; this one has {}",
            frame.len() - 14
        ));
    }
    let header = match frame.get(12..14) {
        Some([0x08, 0x00]) => 20,
        Some([0x86, 0xdd]) => 40,
        _ => return None,
    };
    (frame.len() < 14 + header).then(|| {
        format!(
            "the VXLAN NIC drops inner IP frames without the whole IP header ({header} bytes) when it decapsulates; this one has {}",
            frame.len().saturating_sub(14)
        )
    })
}
