//! The decapsulation core shared by `xdp_decap` and `tc_decap`: parse,
//! validate and classify one frame, and say what to remove.
//!
//! [`classify`] never modifies the packet. It returns a [`Decision`]: the
//! counter to increment, which implies the [`Action`] (pass, drop, or
//! remove [`Decision::outer_len`] bytes after the Ethernet header) and the
//! new EtherType. [`apply`] carries it out for both hooks; only reading
//! bytes and removing the outer headers are hook specific (the [`Packet`]
//! trait and each hook module's `remove`, `crate::xdp` and `crate::tc`).
//!
//! # Tunnels
//!
//! IPv4-in-IPv4 (protocol 4), IPv6-in-IPv4 (41), IPv4-in-IPv6 (next header
//! 4), IPv6-in-IPv6 (41), and GUE variant 1 (FOU: the inner IP header right
//! after the 8-byte UDP header) over UDP/IPv4 or UDP/IPv6 to destination port
//! `GUE_PORT`. The result is the original Ethernet header (EtherType set to
//! the inner family) followed by every byte after the outer headers: the
//! inner packet, then whatever trailed it (Ethernet padding, bytes beyond the
//! UDP length).
//!
//! # Policy: exactly one counter per packet, first match wins
//!
//! | # | case | counter | verdict |
//! |---|------|---------|---------|
//! | 1 | frame shorter than 14 bytes | `PassMalformed` | pass |
//! | 1 | EtherType neither IPv4 nor IPv6 (VLAN included; at TC also a tag the stack moved to `skb->vlan_tci`) | `PassNotTunnel` | pass |
//! | 2 | outer IPv4: < 20 bytes, version ≠ 4, IHL < 5, total length < IHL·4 or > bytes after Ethernet | `PassMalformed` | pass |
//! | 2 | outer IPv6: < 40 bytes, version ≠ 6, 40 + payload length > bytes after Ethernet | `PassMalformed` | pass |
//! | 3 | outer IPv4 with MF or a fragment offset; outer IPv6 next header 44 | `PassFragment` | pass |
//! | 4 | outer IPv6 next header 0, 43, 50, 51, 60, 135, 139, 140, 253, 254 | `PassExtensionHeader` | pass |
//! | 5 | other protocol (ICMP/ICMPv6 included), UDP to another port | `PassNotTunnel` | pass |
//! | 2 | UDP with fewer than 4 bytes carried (destination port unknown) | `PassMalformed` | pass |
//! | 6 | UDP to `GUE_PORT` with < 8 bytes carried, UDP length < 8 or > bytes carried | `DropMalformedTunnel` | drop |
//! | 6 | inner: < 8 bytes carried; version nibble ≠ 4 for protocol 4, ≠ 6 for 41, ∉ {4, 6} for GUE (GUE variant 0 included) | `DropMalformedTunnel` | drop |
//! | 6 | inner IPv4: IHL < 5, IHL·4 > carried, total length < IHL·4 or > carried | `DropMalformedTunnel` | drop |
//! | 6 | inner IPv6: 40 + payload length > carried | `DropMalformedTunnel` | drop |
//! | 7 | outer headers not removable because not in the linear area (see the hooks) | `PassNonLinear` | pass, untouched |
//! | 7 | a helper fails while removing the outer headers | `DropHelperError` | drop |
//! | — | otherwise | `Decap*` by (GUE, outer family, inner family) | pass, decapsulated |
//!
//! "Carried" is what the outer header says follows it: IPv4 total length
//! minus IHL·4, IPv6 payload length, or for GUE the UDP length minus 8. Outer
//! IPv4 options are skipped; outer header checksums are not verified (the
//! outer header is discarded; what is passed untouched the stack verifies).
//!
//! Classification does not depend on how much of the packet is linear:
//! headers outside the linear area are read with the hook's load-bytes
//! helper. Only the removal may need more (rule 7).

use core::mem::MaybeUninit;

use dsrlab_abi::decap::Counter;

use crate::{
    count,
    faults::Faults,
    gue_port_be,
    packet::{
        ETH_HLEN, ETH_P_IP_BE, ETH_P_IPV6_BE, EthHdr, IPV4_HLEN, IPV6_HLEN, IpPrefix, Ipv4Hdr,
        Ipv6Prefix, Miss, Packet, UDP_HLEN, UdpHdr, UdpPorts, proto, read,
    },
};

// The decap counters are indexed arithmetically: GUE·4 + outer IPv6·2 +
// inner IPv6.
const _: () = {
    assert!(Counter::DecapIp4InIp4 as u32 == 0);
    assert!(Counter::DecapIp6InIp4 as u32 == 1);
    assert!(Counter::DecapIp4InIp6 as u32 == 2);
    assert!(Counter::DecapIp6InIp6 as u32 == 3);
    assert!(Counter::DecapGue4InIp4 as u32 == 4);
    assert!(Counter::DecapGue6InIp4 as u32 == 5);
    assert!(Counter::DecapGue4InIp6 as u32 == 6);
    assert!(Counter::DecapGue6InIp6 as u32 == 7);
};

/// What to do with a packet, and which counter to increment.
///
/// Two words on the fast path: the counter says the action (decap counters
/// are the first eight, see [`Counter::is_decap`]; only
/// `DropMalformedTunnel` drops) and, for decap counters, the families;
/// `outer_len` says how much to remove.
#[derive(Clone, Copy)]
pub struct Decision {
    /// Index into `DECAP_COUNTERS` (a [`Counter`]).
    pub counter: u32,
    /// For a decap counter: bytes to remove right after the Ethernet header
    /// (outer IP header with options, plus the UDP header for GUE; at most
    /// 68, always a multiple of 4). Otherwise 0.
    pub outer_len: u32,
    /// For a decap counter: the outer IPv4 ToS or IPv6 traffic class (used
    /// by fault injection only).
    pub outer_tos: u8,
    /// For a decap counter: the second byte of the inner header, the ToS if
    /// the inner packet is IPv4 (used by fault injection only).
    pub inner_byte1: u8,
}

/// The verdict part of a [`Decision`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Pass the packet untouched.
    Pass,
    /// Drop the packet.
    Drop,
    /// Remove the outer headers; on success pass the result.
    Decap,
}

impl Decision {
    #[inline(always)]
    const fn pass(counter: Counter) -> Self {
        Self {
            counter: counter as u32,
            outer_len: 0,
            outer_tos: 0,
            inner_byte1: 0,
        }
    }

    #[inline(always)]
    const fn drop_malformed() -> Self {
        Self::pass(Counter::DropMalformedTunnel)
    }

    /// What to do with the packet.
    #[inline(always)]
    pub fn action(&self) -> Action {
        if self.counter <= Counter::DecapGue6InIp6 as u32 {
            Action::Decap
        } else if self.counter == Counter::DropMalformedTunnel as u32 {
            Action::Drop
        } else {
            Action::Pass
        }
    }

    /// For a decap counter: the inner packet is IPv6.
    #[inline(always)]
    pub fn inner_v6(&self) -> bool {
        self.counter & 1 != 0
    }

    /// For a decap counter: the outer header is IPv6.
    #[inline(always)]
    pub fn outer_v6(&self) -> bool {
        self.counter & 2 != 0
    }

    /// For a decap counter: the EtherType of the decapsulated frame, network
    /// byte order.
    #[inline(always)]
    pub fn ethertype_be(&self) -> u16 {
        if self.inner_v6() {
            ETH_P_IPV6_BE
        } else {
            ETH_P_IP_BE
        }
    }
}

/// What the outer IP header says about its payload.
#[derive(Clone, Copy)]
struct Outer {
    v6: bool,
    tos: u8,
    /// Offset of the payload (UDP or inner IP header) from the frame start.
    l4_off: u32,
    /// Payload length per the outer header (checked to be present).
    carried: u32,
}

/// Reads header `$T` at `$off`, or returns `$short` if the packet ends
/// before it (and `PassNotTunnel` if a fault says to give up).
macro_rules! read_or {
    ($pkt:expr, $F:ty, $off:expr, $T:ty, $short:expr) => {{
        let mut buf = MaybeUninit::<$T>::uninit();
        match read($pkt, $off, &mut buf, !<$F>::GIVE_UP_NONLINEAR) {
            // SAFETY: `read` returned a pointer valid for one `$T`.
            Ok(p) => unsafe { p.read() },
            Err(Miss::Short) => return $short,
            Err(Miss::NonLinear) => return Decision::pass(Counter::PassNotTunnel),
        }
    }};
}

/// Classifies one frame.
#[inline(always)]
pub fn classify<P: Packet, F: Faults>(pkt: &P) -> Decision {
    let eth = read_or!(pkt, F, 0, EthHdr, Decision::pass(Counter::PassMalformed));
    if pkt.vlan_tag_in_metadata() {
        // A VLAN frame whatever the hook sees: not decapsulated, as when the
        // tag is still in the data (EtherType 0x8100).
        return Decision::pass(Counter::PassNotTunnel);
    }
    if eth.proto == ETH_P_IP_BE {
        ipv4::<P, F>(pkt)
    } else if eth.proto == ETH_P_IPV6_BE {
        ipv6::<P, F>(pkt)
    } else {
        Decision::pass(Counter::PassNotTunnel)
    }
}

#[inline(always)]
fn ipv4<P: Packet, F: Faults>(pkt: &P) -> Decision {
    const MALFORMED: Decision = Decision::pass(Counter::PassMalformed);
    let ip = read_or!(pkt, F, ETH_HLEN, Ipv4Hdr, MALFORMED);
    if ip.version_ihl >> 4 != 4 {
        return MALFORMED;
    }
    let hlen = u32::from(ip.version_ihl & 0x0f) * 4;
    let tot_len = u32::from(u16::from_be(ip.tot_len));
    if hlen < IPV4_HLEN || tot_len < hlen || !pkt.has_len(ETH_HLEN + tot_len) {
        return MALFORMED;
    }
    // MF or a non-zero fragment offset.
    if ip.frag_off & 0x3fffu16.to_be() != 0 {
        return Decision::pass(Counter::PassFragment);
    }
    let outer = Outer {
        v6: false,
        tos: ip.tos,
        l4_off: ETH_HLEN + hlen,
        carried: tot_len - hlen,
    };
    tunnel::<P, F>(pkt, ip.protocol, outer)
}

#[inline(always)]
fn ipv6<P: Packet, F: Faults>(pkt: &P) -> Decision {
    const MALFORMED: Decision = Decision::pass(Counter::PassMalformed);
    let ip = read_or!(pkt, F, ETH_HLEN, Ipv6Prefix, MALFORMED);
    let [b0, b1, _, _] = ip.version_tc_flow;
    if b0 >> 4 != 6 {
        return MALFORMED;
    }
    let carried = u32::from(u16::from_be(ip.payload_len));
    // Also proves the 32 address bytes after the prefix are there.
    if !pkt.has_len(ETH_HLEN + IPV6_HLEN + carried) {
        return MALFORMED;
    }
    let outer = Outer {
        v6: true,
        tos: (b0 << 4) | (b1 >> 4),
        l4_off: ETH_HLEN + IPV6_HLEN,
        carried,
    };
    match ip.nexthdr {
        proto::FRAGMENT => Decision::pass(Counter::PassFragment),
        proto::HOPOPTS
        | proto::ROUTING
        | proto::ESP
        | proto::AH
        | proto::DSTOPTS
        | proto::MOBILITY
        | proto::HIP
        | proto::SHIM6
        | proto::EXP1
        | proto::EXP2 => Decision::pass(Counter::PassExtensionHeader),
        nexthdr => tunnel::<P, F>(pkt, nexthdr, outer),
    }
}

#[inline(always)]
fn tunnel<P: Packet, F: Faults>(pkt: &P, protocol: u8, outer: Outer) -> Decision {
    match protocol {
        proto::IPIP => inner::<P, F>(pkt, outer, outer.l4_off, outer.carried, Some(false)),
        proto::IPV6 => inner::<P, F>(pkt, outer, outer.l4_off, outer.carried, Some(true)),
        proto::UDP => udp::<P, F>(pkt, outer),
        _ => Decision::pass(Counter::PassNotTunnel),
    }
}

#[inline(always)]
fn udp<P: Packet, F: Faults>(pkt: &P, outer: Outer) -> Decision {
    const MALFORMED: Decision = Decision::pass(Counter::PassMalformed);
    // Read here, not up front: the global's cache line is cold, and only
    // UDP packets need it.
    let gue_port_be = gue_port_be();
    if outer.carried < UDP_HLEN {
        // Too short for a UDP header: a tunnel only if the port says so.
        if outer.carried < 4 {
            return MALFORMED;
        }
        let ports = read_or!(pkt, F, outer.l4_off, UdpPorts, MALFORMED);
        return if ports.dest == gue_port_be {
            Decision::drop_malformed()
        } else {
            Decision::pass(Counter::PassNotTunnel)
        };
    }
    let udp = read_or!(pkt, F, outer.l4_off, UdpHdr, MALFORMED);
    if udp.dest != gue_port_be {
        return Decision::pass(Counter::PassNotTunnel);
    }
    let len = u32::from(u16::from_be(udp.len));
    if len < UDP_HLEN || len > outer.carried {
        return Decision::drop_malformed();
    }
    inner::<P, F>(pkt, outer, outer.l4_off + UDP_HLEN, len - UDP_HLEN, None)
}

/// Checks the inner packet at `off`, of which the outer headers say
/// `carried` bytes follow. `expect_v6` is the family the outer protocol
/// announces, `None` for GUE (which then follows the version nibble).
#[inline(always)]
fn inner<P: Packet, F: Faults>(
    pkt: &P,
    outer: Outer,
    off: u32,
    carried: u32,
    expect_v6: Option<bool>,
) -> Decision {
    if carried < 8 {
        return Decision::drop_malformed();
    }
    // Present: `carried` bytes after `off` were checked to be in the packet.
    let ip = read_or!(pkt, F, off, IpPrefix, Decision::drop_malformed());
    let version = ip.b0 >> 4;
    let inner_v6 = version == 6;
    match expect_v6 {
        Some(v6) if v6 != inner_v6 || (!v6 && version != 4) => return Decision::drop_malformed(),
        None if !inner_v6 && version != 4 => return Decision::drop_malformed(),
        _ => {}
    }
    let limit = carried + F::INNER_LEN_SLACK;
    if inner_v6 {
        if IPV6_HLEN + u32::from(u16::from_be(ip.v6_payload_len)) > limit {
            return Decision::drop_malformed();
        }
    } else {
        let hlen = u32::from(ip.b0 & 0x0f) * 4;
        let tot_len = u32::from(u16::from_be(ip.v4_tot_len));
        if hlen < IPV4_HLEN || hlen > limit || tot_len < hlen || tot_len > limit {
            return Decision::drop_malformed();
        }
    }
    let gue = expect_v6.is_none();
    Decision {
        counter: u32::from(gue) * 4 + u32::from(outer.v6) * 2 + u32::from(inner_v6),
        outer_len: off - ETH_HLEN,
        outer_tos: outer.tos,
        inner_byte1: ip.b1,
    }
}

/// Why a hook could not remove the outer headers.
pub enum RemoveError {
    /// They are not in the linear part and could not be brought there; the
    /// packet is unchanged.
    NonLinear,
    /// A helper failed; the packet may be modified.
    Helper,
}

/// Carries out `decision` at a hook whose verdicts are `pass` and `drop`:
/// removes the outer headers with the hook's `remove` when it says so,
/// counts the decision's counter (or the removal's failure, rule 7) and
/// returns the verdict.
#[inline(always)]
pub fn apply<F: Faults, V>(
    decision: &Decision,
    remove: impl FnOnce(&Decision) -> Result<(), RemoveError>,
    (pass, drop): (V, V),
) -> V {
    let (counter, verdict) = match decision.action() {
        Action::Pass => (decision.counter, pass),
        Action::Drop => (decision.counter, drop),
        Action::Decap => match remove(decision) {
            Ok(()) => (decision.counter, pass),
            Err(RemoveError::NonLinear) if F::GIVE_UP_NONLINEAR => {
                (Counter::PassNotTunnel as u32, pass)
            }
            Err(RemoveError::NonLinear) => (Counter::PassNonLinear as u32, pass),
            Err(RemoveError::Helper) => (Counter::DropHelperError as u32, drop),
        },
    };
    count(counter);
    verdict
}
