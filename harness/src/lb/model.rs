//! The reference model of `xdp_lb`: what the datapath must do with one
//! frame, given the contents of its maps.
//!
//! This is the oracle humans audit. It implements the contract in the module
//! docs of `dsrlab_abi::lb` from the text, sharing only constants and types
//! with the BPF program, and reads top-down in the contract's order:
//! [`ModelState::process`] classifies (malformed, fragment, ICMP, VIP
//! lookup, options), then [`ModelState::forward`] selects a real and
//! encapsulates, or answers that the packet is too big. Parsing uses the
//! harness's packet representations (`formats::packet::repr`); output
//! headers are emitted through the same representations and their checksums
//! computed with pnet's helpers.
//!
//! The state is exactly what the maps hold ([`ModelState`]); the connection
//! table is one CPU's view of `LB_LRU`, which is what a test run pinned to
//! one CPU sees.
//!
//! Where the contract leaves a choice open, the choice is written next to
//! the code as "Reading:".

use std::collections::HashMap;

use dsrlab_abi::lb::{
    Counter, FAMILY_V4, FAMILY_V6, FlowKey, LbConfig, MAX_REALS, RealDef, VipKey, VipMeta,
    config_flags, vip_flags,
};
use pnet_packet::util;

use crate::{
    formats::packet::repr::{EthRepr, IcmpRepr, Ipv4Repr, Ipv6Repr, Mac, TcpRepr, UdpRepr},
    verdict::Verdict,
};

/// `XDP_DROP`.
pub const XDP_DROP: Verdict = Verdict::Xdp(1);
/// `XDP_PASS`.
pub const XDP_PASS: Verdict = Verdict::Xdp(2);
/// `XDP_TX`.
pub const XDP_TX: Verdict = Verdict::Xdp(3);

const ETH_LEN: usize = EthRepr::LEN;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const PROTO_ICMP: u8 = 1;
const PROTO_IPIP: u8 = 4;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_IPV6: u8 = 41;
const PROTO_FRAGMENT: u8 = 44;
const PROTO_ICMPV6: u8 = 58;
const TCP_SYN: u8 = 0x02;
const TCP_ACK: u8 = 0x10;
const IPV4_DF: u8 = 0b010;
const OUTER_TTL: u8 = 64;
const UDP_LEN: usize = UdpRepr::LEN;
/// Bytes of the offending packet an ICMP frag-needed / ICMPv6 PTB quotes.
const QUOTE_V4: usize = 28;
const QUOTE_V6: usize = 48;

/// Linux's `jhash_3words(a, b, c, initval)` (include/linux/jhash.h):
/// `__jhash_nwords(a, b, c, initval + JHASH_INITVAL + (3 << 2))`, i.e. each
/// word plus that value, then `__jhash_final`.
pub fn jhash_3words(a: u32, b: u32, c: u32, initval: u32) -> u32 {
    const JHASH_INITVAL: u32 = 0xdead_beef;
    let init = initval.wrapping_add(JHASH_INITVAL).wrapping_add(3 << 2);
    let (mut a, mut b, mut c) = (
        a.wrapping_add(init),
        b.wrapping_add(init),
        c.wrapping_add(init),
    );
    // __jhash_final
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(14));
    a ^= c;
    a = a.wrapping_sub(c.rotate_left(11));
    b ^= a;
    b = b.wrapping_sub(a.rotate_left(25));
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(16));
    a ^= c;
    a = a.wrapping_sub(c.rotate_left(4));
    b ^= a;
    b = b.wrapping_sub(a.rotate_left(14));
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(24));
    c
}

/// `fold(addr)` of the contract: an IPv4 address (first 4 bytes) as a
/// big-endian u32, an IPv6 address as the XOR of its four big-endian words.
pub fn fold(addr: &[u8; 16], family: u8) -> u32 {
    let word = |i: usize| u32::from_be_bytes([addr[i], addr[i + 1], addr[i + 2], addr[i + 3]]);
    if family == FAMILY_V6 {
        word(0) ^ word(4) ^ word(8) ^ word(12)
    } else {
        word(0)
    }
}

/// The flow hash of the contract for `flow` (ports in network order, as in
/// [`FlowKey`]) under a VIP's `flags`.
pub fn flow_hash(flow: &FlowKey, flags: u32, seed: u32) -> u32 {
    let dport = u16::from_be(flow.dport);
    let sport = if flags & (vip_flags::NO_SPORT | vip_flags::DPORT_ONLY) != 0 {
        0
    } else {
        u16::from_be(flow.sport)
    };
    let src = if flags & vip_flags::DPORT_ONLY != 0 {
        0
    } else {
        fold(&flow.src, flow.family)
    };
    jhash_3words(
        src,
        (u32::from(sport) << 16) | u32::from(dport),
        u32::from(flow.proto),
        seed,
    )
}

/// A VIP key as the datapath looks it up (`port` a host-order number).
pub fn vip_key(addr: [u8; 16], port: u16, proto: u8, family: u8) -> VipKey {
    VipKey {
        addr,
        port: port.to_be(),
        proto,
        family,
    }
}

/// A map of the model's, looked up for every packet judged: hashed with
/// foldhash rather than SipHash (nothing here is keyed by untrusted input
/// an attacker could collide).
pub type ModelMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The model's connection table: flow → real.
pub type FlowTable = ModelMap<FlowKey, u32>;

/// The contents of `xdp_lb`'s maps that decide what a packet does, with one
/// CPU's view of the connection table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelState {
    /// `LB_VIPS`.
    pub vips: ModelMap<VipKey, VipMeta>,
    /// `LB_REALS`: id → definition; ids absent here are unused (family 0).
    pub reals: ModelMap<u32, RealDef>,
    /// `LB_RING`, by VIP number: that VIP's `ring_size` slots (absent: all 0).
    pub rings: ModelMap<u32, Vec<u32>>,
    /// Slots per VIP (the `RING_SIZE` global).
    pub ring_size: u32,
    /// `LB_CONFIG[0]`.
    pub config: LbConfig,
    /// `LB_LRU` as one CPU sees it: flow → real (entries with real 0 are as
    /// good as absent).
    pub lru: FlowTable,
}

/// A per-VIP and per-real [`Traffic`](dsrlab_abi::lb::Traffic) increment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatsUpdate {
    /// The VIP's number (`LB_VIP_STATS` index).
    pub vip_num: u32,
    /// The real (`LB_REAL_STATS` index).
    pub real: u32,
    /// Bytes of the frame as received (Ethernet included); one packet.
    pub bytes: u64,
}

/// What the datapath must do with one frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    /// The XDP verdict.
    pub verdict: Verdict,
    /// The one outcome counter of the packet (`Tx`, `PassNotVip`, …).
    pub outcome: Counter,
    /// `LruHit` or `LruMiss` when a real was selected (or the ring was
    /// consulted and had none).
    pub selection: Option<Counter>,
    /// The frame after the program: the input for PASS and DROP.
    pub output: Vec<u8>,
    /// The real selected, if any.
    pub real: Option<u32>,
    /// The VIP matched, if any (its `vip_num`).
    pub vip_num: Option<u32>,
    /// The per-VIP / per-real statistics incremented (frames sent to a real).
    pub stats: Option<StatsUpdate>,
    /// The connection-table entry written, if any.
    pub lru_update: Option<(FlowKey, u32)>,
    /// The flow whose real was selected (or looked for), if one was.
    pub flow: Option<FlowKey>,
}

impl Expected {
    /// Every `LB_COUNTERS` entry this packet increments by one.
    pub fn counters(&self) -> impl Iterator<Item = Counter> + use<> {
        std::iter::once(self.outcome).chain(self.selection)
    }

    fn untouched(frame: &[u8], verdict: Verdict, outcome: Counter) -> Self {
        Self {
            verdict,
            outcome,
            selection: None,
            output: frame.to_vec(),
            real: None,
            vip_num: None,
            stats: None,
            lru_update: None,
            flow: None,
        }
    }

    fn pass(frame: &[u8], outcome: Counter) -> Self {
        Self::untouched(frame, XDP_PASS, outcome)
    }

    fn drop(frame: &[u8], outcome: Counter) -> Self {
        Self::untouched(frame, XDP_DROP, outcome)
    }
}

/// The IP packet of a frame, as far as the contract looks at it.
#[derive(Clone, Debug)]
struct IpPacket<'a> {
    family: u8,
    src: [u8; 16],
    dst: [u8; 16],
    /// IPv4 protocol, IPv6 next header (after a fragment header: its next
    /// header).
    proto: u8,
    /// IPv4 ToS or IPv6 traffic class.
    tos: u8,
    /// IPv4 DF (always false for IPv6).
    df: bool,
    /// IPv4 IHL > 5.
    options: bool,
    /// `Some(true)`: a first IPv4 fragment (looked up with its ports);
    /// `Some(false)`: a later IPv4 fragment or any IPv6 packet with a
    /// fragment header (port 0 only); `None`: not a fragment.
    fragment: Option<bool>,
    /// The whole IP packet, as long as its header says (padding excluded).
    packet: &'a [u8],
    /// What follows the IP header(s), within `packet`.
    l4: &'a [u8],
}

impl IpPacket<'_> {
    fn v6(&self) -> bool {
        self.family == FAMILY_V6
    }
}

/// Classification step 1: Ethernet + IP, lengths consistent.
enum Parsed<'a> {
    NotIp,
    Malformed,
    Ip(IpPacket<'a>),
}

fn addr16(octets: &[u8]) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[..octets.len()].copy_from_slice(octets);
    a
}

/// Bytes of L4 header the contract needs to handle a non-fragment packet of
/// `proto` (first TCP/UDP fragments need theirs too): TCP's fixed header
/// (ports and flags), UDP's header, the ICMP header. Reading: the fixed TCP
/// header, not the data offset's length; any ICMP type needs its 8-byte
/// header.
fn l4_needed(proto: u8, family: u8) -> usize {
    match (proto, family) {
        (PROTO_TCP, _) => TcpRepr::MIN_LEN,
        (PROTO_UDP, _) => UdpRepr::LEN,
        (PROTO_ICMP, FAMILY_V4) | (PROTO_ICMPV6, FAMILY_V6) => IcmpRepr::LEN,
        _ => 0,
    }
}

fn parse(frame: &[u8]) -> Parsed<'_> {
    let Some(eth) = EthRepr::parse(frame) else {
        // Reading: a frame shorter than Ethernet is "not Ethernet"
        // (BPF_PROG_TEST_RUN refuses such frames anyway).
        return Parsed::NotIp;
    };
    let bytes = &frame[ETH_LEN..];
    match eth.ethertype {
        ETHERTYPE_IPV4 => parse_v4(bytes),
        ETHERTYPE_IPV6 => parse_v6(bytes),
        _ => Parsed::NotIp,
    }
}

fn parse_v4(bytes: &[u8]) -> Parsed<'_> {
    let Some(ip) = Ipv4Repr::parse(bytes) else {
        return Parsed::Malformed;
    };
    // Reading: an IPv4 EtherType with another version is not a consistent
    // IP header (malformed).
    if ip.version != 4 {
        return Parsed::Malformed;
    }
    let header_len = usize::from(ip.ihl) * 4;
    let total = usize::from(ip.total_len);
    if ip.ihl < 5 || total < header_len || total > bytes.len() {
        return Parsed::Malformed;
    }
    let packet = &bytes[..total];
    let l4 = &packet[header_len..];
    let fragment = ip.is_fragment().then_some(ip.frag_offset == 0);
    // Later fragments carry no L4 header; first TCP/UDP fragments are
    // looked up with their ports, so they need them like any packet.
    let needed = match fragment {
        None => l4_needed(ip.proto, FAMILY_V4),
        Some(true) if ip.proto == PROTO_TCP || ip.proto == PROTO_UDP => {
            l4_needed(ip.proto, FAMILY_V4)
        }
        Some(_) => 0,
    };
    if l4.len() < needed {
        return Parsed::Malformed;
    }
    Parsed::Ip(IpPacket {
        family: FAMILY_V4,
        src: addr16(&ip.src.octets()),
        dst: addr16(&ip.dst.octets()),
        proto: ip.proto,
        tos: ip.tos,
        df: ip.flags & IPV4_DF != 0,
        options: ip.ihl > 5,
        fragment,
        packet,
        l4,
    })
}

fn parse_v6(bytes: &[u8]) -> Parsed<'_> {
    let Some(ip) = Ipv6Repr::parse(bytes) else {
        return Parsed::Malformed;
    };
    if ip.version != 6 {
        return Parsed::Malformed;
    }
    let total = Ipv6Repr::LEN + usize::from(ip.payload_len);
    if total > bytes.len() {
        return Parsed::Malformed;
    }
    let packet = &bytes[..total];
    let mut l4 = &packet[Ipv6Repr::LEN..];
    let mut proto = ip.next_header;
    let mut fragment = None;
    if proto == PROTO_FRAGMENT {
        // Reading: the fragment header (8 bytes) must be there, and the
        // protocol looked up is its next header (a VIP is TCP or UDP, never
        // protocol 44). IPv6 fragments are looked up with port 0 only,
        // first or not, so no L4 header is needed.
        let Some(header) = l4.get(..8) else {
            return Parsed::Malformed;
        };
        proto = header[0];
        fragment = Some(false);
        l4 = &l4[8..];
    } else if l4.len() < l4_needed(proto, FAMILY_V6) {
        return Parsed::Malformed;
    }
    Parsed::Ip(IpPacket {
        family: FAMILY_V6,
        src: ip.src.octets(),
        dst: ip.dst.octets(),
        proto,
        tos: ip.tclass,
        df: false,
        options: false,
        fragment,
        packet,
        l4,
    })
}

/// Source and destination ports of a TCP or UDP header (both start with
/// them).
fn ports(l4: &[u8]) -> (u16, u16) {
    (
        u16::from_be_bytes([l4[0], l4[1]]),
        u16::from_be_bytes([l4[2], l4[3]]),
    )
}

/// Ones' complement sum update (RFC 1624 eqn. 3): the checksum `hc` after a
/// 16-bit word of what it covers changed from `old` to `new`.
fn checksum_update(hc: u16, old: u16, new: u16) -> u16 {
    let mut sum = u32::from(!hc) + u32::from(!old) + u32::from(new);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

impl ModelState {
    /// An empty state: no VIPs, no reals, an empty connection table.
    pub fn new(config: LbConfig, ring_size: u32) -> Self {
        Self {
            config,
            ring_size,
            ..Self::default()
        }
    }

    /// The VIP for (dst, port, proto) of `family`, falling back to port 0.
    fn lookup_vip(&self, dst: [u8; 16], port: u16, proto: u8, family: u8) -> Option<VipMeta> {
        self.vips
            .get(&vip_key(dst, port, proto, family))
            .or_else(|| self.vips.get(&vip_key(dst, 0, proto, family)))
            .copied()
    }

    fn real_in_use(&self, id: u32) -> Option<RealDef> {
        self.reals
            .get(&id)
            .copied()
            .filter(|r| id != 0 && id < MAX_REALS && r.family != 0)
    }

    /// What the datapath must do with `frame`; updates the connection table
    /// as the datapath would on this CPU.
    pub fn process(&mut self, frame: &[u8]) -> Expected {
        // 1. Ethernet + IP, lengths consistent.
        let ip = match parse(frame) {
            Parsed::NotIp => return Expected::pass(frame, Counter::PassNotVip),
            Parsed::Malformed => return Expected::pass(frame, Counter::PassMalformed),
            Parsed::Ip(ip) => ip,
        };
        // 2. Fragments: never balanced (not every fragment has the ports).
        if let Some(first) = ip.fragment {
            return self.fragment(frame, &ip, first);
        }
        // 3. ICMP, then TCP/UDP to a VIP.
        if (ip.family, ip.proto) == (FAMILY_V4, PROTO_ICMP)
            || (ip.family, ip.proto) == (FAMILY_V6, PROTO_ICMPV6)
        {
            return self.icmp(frame, &ip);
        }
        if ip.proto != PROTO_TCP && ip.proto != PROTO_UDP {
            return Expected::pass(frame, Counter::PassNotVip);
        }
        let (sport, dport) = ports(ip.l4);
        let Some(vip) = self.lookup_vip(ip.dst, dport, ip.proto, ip.family) else {
            return Expected::pass(frame, Counter::PassNotVip);
        };
        // 4. IPv4 options: the stack handles them.
        if ip.options {
            let mut e = Expected::pass(frame, Counter::PassIpOptions);
            e.vip_num = Some(vip.vip_num);
            return e;
        }
        // 5. Real selection and encapsulation.
        let syn = ip.proto == PROTO_TCP && ip.l4[13] & (TCP_SYN | TCP_ACK) == TCP_SYN;
        let flow = FlowKey {
            src: ip.src,
            dst: ip.dst,
            sport: sport.to_be(),
            dport: dport.to_be(),
            proto: ip.proto,
            family: ip.family,
            pad: [0; 2],
        };
        self.forward(frame, &ip, &flow, vip, syn, Counter::Tx)
    }

    /// Classification step 2.
    fn fragment(&self, frame: &[u8], ip: &IpPacket<'_>, first: bool) -> Expected {
        // Reading: as in step 3, only TCP and UDP match a VIP, so an ICMP
        // fragment never matches a VIP address's echo entry.
        if ip.proto != PROTO_TCP && ip.proto != PROTO_UDP {
            return Expected::pass(frame, Counter::PassNotVip);
        }
        // A first IPv4 fragment is looked up with its ports like any packet;
        // later fragments and all IPv6 fragments with port 0 only.
        let vip = if first {
            let (_, dport) = ports(ip.l4);
            self.lookup_vip(ip.dst, dport, ip.proto, ip.family)
        } else {
            self.vips
                .get(&vip_key(ip.dst, 0, ip.proto, ip.family))
                .copied()
        };
        match vip {
            Some(vip) => {
                let mut e = Expected::drop(frame, Counter::DropFragment);
                e.vip_num = Some(vip.vip_num);
                e
            }
            None => Expected::pass(frame, Counter::PassNotVip),
        }
    }

    /// The ICMP section of the contract.
    fn icmp(&mut self, frame: &[u8], ip: &IpPacket<'_>) -> Expected {
        let v6 = ip.v6();
        let Some(icmp) = IcmpRepr::parse(v6, ip.l4) else {
            unreachable!("parse() checked the ICMP header is there")
        };
        let echo_request = if v6 { 128 } else { 8 };
        let is_error = if v6 {
            matches!(icmp.icmp_type, 1 | 2)
        } else {
            icmp.icmp_type == 3
        };
        if icmp.icmp_type == echo_request {
            let answering = self.config.flags & config_flags::ICMP_ECHO != 0
                && self
                    .vips
                    .contains_key(&vip_key(ip.dst, 0, ip.proto, ip.family));
            if answering {
                return Self::echo_reply(frame, ip);
            }
        } else if is_error && let Some(e) = self.icmp_error(frame, ip) {
            return e;
        }
        Expected::pass(frame, Counter::PassNotVip)
    }

    /// An echo request answered in place.
    fn echo_reply(frame: &[u8], ip: &IpPacket<'_>) -> Expected {
        let mut out = frame.to_vec();
        out[0..6].copy_from_slice(&frame[6..12]);
        out[6..12].copy_from_slice(&frame[0..6]);
        let l3 = ETH_LEN;
        let l4 = ETH_LEN + (ip.packet.len() - ip.l4.len());
        let (reply_type, addr_at, addr_len) = if ip.v6() {
            (129u8, l3 + 8, 16)
        } else {
            (0u8, l3 + 12, 4)
        };
        // Swap source and destination addresses.
        let (src, dst) = (addr_at, addr_at + addr_len);
        out[src..src + addr_len].copy_from_slice(&frame[dst..dst + addr_len]);
        out[dst..dst + addr_len].copy_from_slice(&frame[src..src + addr_len]);
        if ip.v6() {
            out[l3 + 7] = OUTER_TTL;
        } else {
            out[l3 + 8] = OUTER_TTL;
            let header_len = l4 - l3;
            out[l3 + 10..l3 + 12].fill(0);
            let csum = util::checksum(&out[l3..l4][..header_len], Ipv4Repr::CHECKSUM_WORD);
            out[l3 + 10..l3 + 12].copy_from_slice(&csum.to_be_bytes());
        }
        // Type changes in the first word of the ICMP header; the ICMPv6
        // pseudo-header sum does not change when its addresses swap.
        // Reading: "checksum updated" is an incremental update (a wrong
        // checksum stays wrong), equal to recomputing it when it was right.
        let old_word = u16::from_be_bytes([out[l4], out[l4 + 1]]);
        out[l4] = reply_type;
        let new_word = u16::from_be_bytes([out[l4], out[l4 + 1]]);
        let old_csum = u16::from_be_bytes([out[l4 + 2], out[l4 + 3]]);
        let csum = checksum_update(old_csum, old_word, new_word);
        out[l4 + 2..l4 + 4].copy_from_slice(&csum.to_be_bytes());
        Expected {
            verdict: XDP_TX,
            outcome: Counter::IcmpEchoReply,
            selection: None,
            output: out,
            real: None,
            vip_num: None,
            stats: None,
            lru_update: None,
            flow: None,
        }
    }

    /// An ICMP destination unreachable / ICMPv6 unreachable or packet too
    /// big about a VIP's flow: forwarded to the real serving that flow.
    /// `None` when it quotes no TCP/UDP packet from a VIP.
    fn icmp_error(&mut self, frame: &[u8], ip: &IpPacket<'_>) -> Option<Expected> {
        let quoted = ip.l4.get(IcmpRepr::LEN..)?;
        // Reading: the quoted packet is of the ICMP message's own family
        // (its version nibble says so); a quoted IPv4 header's length is its
        // IHL (options allowed); a quoted IPv6 header is followed directly
        // by TCP/UDP.
        let (src, dst, proto, l4) = if ip.v6() {
            let q = Ipv6Repr::parse(quoted).filter(|q| q.version == 6)?;
            let l4 = quoted.get(Ipv6Repr::LEN..Ipv6Repr::LEN + 8)?;
            (q.src.octets(), q.dst.octets(), q.next_header, l4)
        } else {
            let q = Ipv4Repr::parse(quoted).filter(|q| q.version == 4)?;
            if q.ihl < 5 {
                return None;
            }
            let hl = usize::from(q.ihl) * 4;
            let l4 = quoted.get(hl..hl + 8)?;
            (
                addr16(&q.src.octets()),
                addr16(&q.dst.octets()),
                q.proto,
                l4,
            )
        };
        if proto != PROTO_TCP && proto != PROTO_UDP {
            return None;
        }
        // The quoted packet went VIP → client: its source port is the VIP's.
        let (vip_port, client_port) = ports(l4);
        let vip = self.lookup_vip(src, vip_port, proto, ip.family)?;
        let flow = FlowKey {
            src: dst,
            dst: src,
            sport: client_port.to_be(),
            dport: vip_port.to_be(),
            proto,
            family: ip.family,
            pad: [0; 2],
        };
        Some(self.forward(frame, ip, &flow, vip, false, Counter::IcmpErrorToReal))
    }

    /// The real in use that the ring of `vip` gives a flow hashing to
    /// `hash`, if any.
    fn ring_choice(&self, vip: VipMeta, hash: u32) -> Option<u32> {
        let slot = (hash % self.ring_size) as usize;
        let real = self.rings.get(&vip.vip_num)?.get(slot).copied()?;
        self.real_in_use(real).map(|_| real)
    }

    /// The real a connection-table miss would select for `flow` now: the
    /// ring's choice for it under its VIP as the table holds it.
    pub fn ring_choice_for(&self, flow: &FlowKey) -> Option<u32> {
        let vip = self.lookup_vip(flow.dst, u16::from_be(flow.dport), flow.proto, flow.family)?;
        self.ring_choice(vip, flow_hash(flow, vip.flags, self.config.hash_seed))
    }

    /// Real selection for `flow` to `vip`: the connection table first (TCP
    /// SYN excepted), else the ring. Returns the real (if the ring had one),
    /// the selection counter and the table entry written.
    fn select(
        &mut self,
        flow: &FlowKey,
        vip: VipMeta,
        hash: u32,
        syn: bool,
    ) -> (Option<u32>, Counter, Option<(FlowKey, u32)>) {
        let use_lru = vip.flags & vip_flags::NO_LRU == 0;
        if use_lru && !syn {
            let remembered = self.lru.get(flow).copied().unwrap_or(0);
            if self.real_in_use(remembered).is_some() {
                return (Some(remembered), Counter::LruHit, None);
            }
        }
        // Reading: a ring without a real still counts as a (failed) ring
        // selection (LruMiss), and nothing is remembered.
        let Some(real) = self.ring_choice(vip, hash) else {
            return (None, Counter::LruMiss, None);
        };
        let update = use_lru.then(|| {
            self.lru.insert(*flow, real);
            (*flow, real)
        });
        (Some(real), Counter::LruMiss, update)
    }

    /// Real selection and encapsulation of the whole IP packet of `frame`
    /// (a TCP/UDP packet, or an ICMP error about `flow`).
    fn forward(
        &mut self,
        frame: &[u8],
        ip: &IpPacket<'_>,
        flow: &FlowKey,
        vip: VipMeta,
        syn: bool,
        outcome: Counter,
    ) -> Expected {
        let hash = flow_hash(flow, vip.flags, self.config.hash_seed);
        // Reading: selection (and the table update) comes first, so packets
        // then dropped (DropEncap, DropTooBig) or answered as too big have
        // updated the table too.
        let (real, selection, lru_update) = self.select(flow, vip, hash, syn);
        let mut e = Expected::drop(frame, Counter::DropNoReal);
        e.selection = Some(selection);
        e.vip_num = Some(vip.vip_num);
        e.lru_update = lru_update;
        e.flow = Some(*flow);
        let Some(real) = real else {
            return e;
        };
        e.real = Some(real);
        let Some(def) = self.real_in_use(real) else {
            unreachable!("select() returns reals in use")
        };
        // IPv6 inside IPv4 is not a tunnel the contract has. Reading: a real
        // of neither family (not written by the control plane) carries
        // nothing.
        if (ip.v6() && def.family != FAMILY_V6) || !matches!(def.family, FAMILY_V4 | FAMILY_V6) {
            e.outcome = Counter::DropEncap;
            return e;
        }
        let gue = vip.flags & vip_flags::GUE != 0;
        let outer_v6 = def.family == FAMILY_V6;
        let overhead = super::encap::overhead(outer_v6, gue);
        let mtu = self.config.mtu as usize;
        // The MTU check comes after the real is selected (the overhead
        // depends on the real's family).
        if ip.packet.len() + overhead > mtu {
            // Reading: an ICMP error too big to forward is dropped, never
            // answered (no ICMP error about an ICMP error: RFC 1122
            // 3.2.2, RFC 4443 2.4 (e)).
            if outcome == Counter::IcmpErrorToReal {
                e.outcome = Counter::DropTooBig;
                return e;
            }
            return self.too_big(frame, ip, overhead, e);
        }
        let inner_proto = if ip.v6() { PROTO_IPV6 } else { PROTO_IPIP };
        let mut out = Vec::with_capacity(frame.len() + overhead);
        let eth_in = EthRepr::parse(frame).unwrap_or_else(|| unreachable!("parsed before"));
        EthRepr {
            dst: Mac(self.config.gateway_mac),
            src: eth_in.dst,
            ethertype: if outer_v6 {
                ETHERTYPE_IPV6
            } else {
                ETHERTYPE_IPV4
            },
        }
        .emit(&mut out);
        let inner_len = ip.packet.len();
        let outer_proto = if gue { PROTO_UDP } else { inner_proto };
        let mut src_v6 = [0u8; 16];
        src_v6[..12].copy_from_slice(&self.config.src_v6_prefix[..12]);
        src_v6[12..].copy_from_slice(&hash.to_be_bytes());
        if outer_v6 {
            Ipv6Repr {
                version: 6,
                tclass: ip.tos,
                flow: hash & 0xfffff,
                payload_len: (overhead - Ipv6Repr::LEN + inner_len) as u16,
                next_header: outer_proto,
                hop_limit: OUTER_TTL,
                src: src_v6.into(),
                dst: def.addr.into(),
            }
            .emit(&mut out);
        } else {
            let p = self.config.src_v4_prefix;
            let h = (hash as u16).to_be_bytes();
            let start = out.len();
            Ipv4Repr {
                version: 4,
                ihl: 5,
                tos: ip.tos,
                total_len: (overhead + inner_len) as u16,
                id: 0,
                flags: IPV4_DF,
                frag_offset: 0,
                ttl: OUTER_TTL,
                proto: outer_proto,
                checksum: 0,
                src: [p[0], p[1], h[0], h[1]].into(),
                dst: [def.addr[0], def.addr[1], def.addr[2], def.addr[3]].into(),
                options: Vec::new(),
            }
            .emit(&mut out);
            let csum = util::checksum(&out[start..], Ipv4Repr::CHECKSUM_WORD);
            out[start + 10..start + 12].copy_from_slice(&csum.to_be_bytes());
        }
        let udp_start = out.len();
        if gue {
            // GUE variant 1: UDP straight before the inner IP header.
            UdpRepr {
                sport: 0x8000 | (hash & 0x7fff) as u16,
                dport: self.config.gue_port,
                len: (UDP_LEN + inner_len) as u16,
                checksum: 0,
            }
            .emit(&mut out);
        }
        // The inner packet unchanged. Reading: bytes after the IP packet
        // (Ethernet padding) stay after it; the outer lengths count the
        // inner packet as its header states.
        out.extend_from_slice(&frame[ETH_LEN..]);
        // Over IPv4 the GUE checksum stays 0 (RFC 768); over IPv6 it is
        // computed unless the deployment says its reals accept zero
        // (RFC 6935).
        if gue && outer_v6 && self.config.flags & config_flags::GUE_V6_ZERO_CSUM == 0 {
            let udp_end = udp_start + UDP_LEN + inner_len;
            let csum = util::ipv6_checksum(
                &out[udp_start..udp_end],
                UdpRepr::CHECKSUM_WORD,
                &[],
                &src_v6.into(),
                &def.addr.into(),
                pnet_packet::ip::IpNextHeaderProtocol(PROTO_UDP),
            );
            // Zero means "no checksum" (RFC 768).
            let csum = if csum == 0 { 0xffff } else { csum };
            out[udp_start + 6..udp_start + 8].copy_from_slice(&csum.to_be_bytes());
        }
        // Reading: ICMP errors forwarded count in Traffic like any frame sent
        // to a real.
        Expected {
            verdict: XDP_TX,
            outcome,
            output: out,
            stats: Some(StatsUpdate {
                vip_num: vip.vip_num,
                real,
                bytes: frame.len() as u64,
            }),
            ..e
        }
    }

    /// The packet would exceed the MTU once encapsulated: answer with ICMP
    /// frag-needed / ICMPv6 packet-too-big, or drop. `e` carries what the
    /// selection already decided.
    fn too_big(&self, frame: &[u8], ip: &IpPacket<'_>, overhead: usize, e: Expected) -> Expected {
        let answering = self.config.flags & config_flags::SEND_TOO_BIG != 0 && (ip.v6() || ip.df);
        if !answering {
            return Expected {
                outcome: Counter::DropTooBig,
                ..e
            };
        }
        let mtu = self.config.mtu - overhead as u32;
        let eth_in = EthRepr::parse(frame).unwrap_or_else(|| unreachable!("parsed before"));
        let mut out = Vec::new();
        EthRepr {
            dst: eth_in.src,
            src: eth_in.dst,
            ethertype: if ip.v6() {
                ETHERTYPE_IPV6
            } else {
                ETHERTYPE_IPV4
            },
        }
        .emit(&mut out);
        let quote = &ip.packet[..ip
            .packet
            .len()
            .min(if ip.v6() { QUOTE_V6 } else { QUOTE_V4 })];
        let mut icmp = Vec::new();
        IcmpRepr {
            v6: ip.v6(),
            icmp_type: if ip.v6() { 2 } else { 3 },
            code: if ip.v6() { 0 } else { 4 },
            checksum: 0,
            // ICMP: 16 unused bits, then the next-hop MTU; ICMPv6: the MTU.
            rest: if ip.v6() { mtu } else { mtu & 0xffff },
        }
        .emit(&mut icmp);
        icmp.extend_from_slice(quote);
        // Reading: the new IP header's ToS / traffic class is 0.
        if ip.v6() {
            let (src, dst) = (ip.dst.into(), ip.src.into());
            let csum = util::ipv6_checksum(
                &icmp,
                IcmpRepr::CHECKSUM_WORD,
                &[],
                &src,
                &dst,
                pnet_packet::ip::IpNextHeaderProtocol(PROTO_ICMPV6),
            );
            icmp[2..4].copy_from_slice(&csum.to_be_bytes());
            Ipv6Repr {
                version: 6,
                tclass: 0,
                flow: 0,
                payload_len: icmp.len() as u16,
                next_header: PROTO_ICMPV6,
                hop_limit: OUTER_TTL,
                src,
                dst,
            }
            .emit(&mut out);
        } else {
            let csum = util::checksum(&icmp, IcmpRepr::CHECKSUM_WORD);
            icmp[2..4].copy_from_slice(&csum.to_be_bytes());
            let start = out.len();
            Ipv4Repr {
                version: 4,
                ihl: 5,
                tos: 0,
                total_len: (Ipv4Repr::MIN_LEN + icmp.len()) as u16,
                id: 0,
                flags: 0,
                frag_offset: 0,
                ttl: OUTER_TTL,
                proto: PROTO_ICMP,
                checksum: 0,
                src: [ip.dst[0], ip.dst[1], ip.dst[2], ip.dst[3]].into(),
                dst: [ip.src[0], ip.src[1], ip.src[2], ip.src[3]].into(),
                options: Vec::new(),
            }
            .emit(&mut out);
            let csum = util::checksum(&out[start..], Ipv4Repr::CHECKSUM_WORD);
            out[start + 10..start + 12].copy_from_slice(&csum.to_be_bytes());
        }
        out.extend_from_slice(&icmp);
        Expected {
            verdict: XDP_TX,
            outcome: Counter::TooBigSent,
            output: out,
            ..e
        }
    }
}
