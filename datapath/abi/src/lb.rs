//! The XDP load balancer (`xdp_lb`): map layouts, flags, counters and
//! configuration shared by the BPF program, the control plane and the
//! reference model.
//!
//! Byte order: addresses and ports are stored as they are on the wire
//! (network order) so the datapath compares them without swapping; every
//! other integer is host order.
//!
//! # The contract
//!
//! The datapath and the reference model (harness) implement this text
//! independently; only the constants and types of this module are shared.
//!
//! ## Classification (first match wins)
//!
//! 1. Not Ethernet + IPv4/IPv6 (any other EtherType, VLAN included):
//!    `PassNotVip`. IP header truncated or lengths inconsistent (IPv4: IHL
//!    < 5, total length < IHL·4 or > bytes present; IPv6: 40 + payload
//!    length > bytes present), or L4 header truncated where one is needed:
//!    `PassMalformed`. Both XDP_PASS, untouched.
//! 2. Fragments (IPv4 MF or offset ≠ 0; IPv6 next header 44): a first
//!    IPv4 fragment (offset 0) is looked up with its ports like any packet,
//!    later fragments and IPv6 fragments with port 0 only. VIP match:
//!    `DropFragment`, XDP_DROP; else `PassNotVip`.
//! 3. ICMP / ICMPv6 (see "ICMP"); other packets look up the VIP
//!    (dst, dport, proto, family), then (dst, 0, proto, family). No match:
//!    `PassNotVip`, XDP_PASS, untouched. TCP and UDP only: another
//!    protocol's packets to a VIP address never match (`PassNotVip`).
//! 4. IPv4 with options (IHL > 5) to a VIP: `PassIpOptions`, XDP_PASS.
//! 5. Real selection and encapsulation (below): `Tx`, XDP_TX.
//!
//! Per-VIP and per-real [`Traffic`] count the frames sent to a real (bytes
//! as received, Ethernet included); `LruHit`/`LruMiss` count every real
//! selection (hit: taken from the connection table).
//!
//! ## Real selection
//!
//! `fold(addr)`: an IPv4 address as a big-endian u32; an IPv6 address as
//! the XOR of its four big-endian u32 words. With the VIP's flags,
//! `sport` is 0 if `NO_SPORT` or `DPORT_ONLY`, and `src` is 0 if
//! `DPORT_ONLY`. The flow hash is Linux's `jhash_3words(fold(src),
//! (sport << 16) | dport, proto, hash_seed)` with ports as host-order
//! numbers, and the ring slot is `vip_num * RING_SIZE + hash % RING_SIZE`.
//!
//! Unless the VIP has `NO_LRU`, the connection table (`LB_LRU`, keyed by
//! the packet's [`FlowKey`] with ports as in the packet, flags not applied)
//! is consulted first: a value whose real is non-zero and whose `LB_REALS`
//! entry is in use wins (`LruHit`), except for TCP SYN (SYN without ACK),
//! which always takes the ring. On a miss the ring decides (`LruMiss`) and,
//! unless `NO_LRU`, the table is updated. A ring slot of 0 or a real not in
//! use: `DropNoReal`, XDP_DROP.
//!
//! ## Encapsulation
//!
//! IPv4 VIP to an IPv4 real: IPv4-in-IPv4 (protocol 4); IPv6 VIP to an
//! IPv6 real: IPv6-in-IPv6 (41); IPv4 VIP to an IPv6 real: IPv4-in-IPv6
//! (4); IPv6 VIP to an IPv4 real: `DropEncap`. With the VIP's `GUE` flag,
//! a UDP header (source port `0x8000 | (hash & 0x7fff)`, destination
//! `gue_port`) sits between the outer IP header and the inner packet (GUE
//! variant 1). Its checksum is 0 over IPv4 (RFC 768 allows it). Over IPv6
//! it is computed over the pseudo-header, the UDP header and the whole
//! inner packet (0 sent as `0xffff`), because a receiver drops
//! zero-checksum UDP over IPv6 unless it opted in (RFC 6935, RFC 6936;
//! Linux: `udp6zerocsumrx` on the tunnel); with the deployment's
//! `GUE_V6_ZERO_CSUM` it is 0 there too.
//!
//! Outer IPv4: IHL 5, ToS = the inner ToS / traffic class, total length,
//! id 0, DF set, TTL 64, protocol 4 / 41 / 17, correct header checksum,
//! source = `src_v4_prefix[0..2]` followed by `hash & 0xffff` big-endian,
//! destination = the real. Outer IPv6: traffic class = the inner ToS /
//! traffic class, flow label = `hash & 0xfffff`, payload length, next
//! header 4 / 41 / 17, hop limit 64, source = `src_v6_prefix[0..12]`
//! followed by `hash` big-endian, destination = the real. Ethernet:
//! destination `gateway_mac`, source the packet's original destination MAC,
//! EtherType of the outer family. The inner packet is unchanged. XDP_TX.
//!
//! The outer header adds 20 (IPv4), 40 (IPv6) and 8 more with GUE. If the
//! inner IP packet plus that exceeds `mtu`: with `SEND_TOO_BIG`, an IPv4
//! packet with DF gets ICMP "fragmentation needed" (type 3 code 4, next-hop
//! MTU = `mtu` - overhead) and an IPv6 packet ICMPv6 "packet too big" (type
//! 2, MTU = `mtu` - overhead), both quoting the first 28 (IPv4) / 48
//! (IPv6) bytes of the packet, sent back from the VIP address to the client
//! with swapped MACs, TTL/hop limit 64, IPv4 id 0 and no DF: `TooBigSent`,
//! XDP_TX. Otherwise (flag off, or IPv4 without DF): `DropTooBig`.
//!
//! ## ICMP
//!
//! - Echo request (ICMP type 8 / ICMPv6 128) with `ICMP_ECHO` set, to an
//!   address with a VIP entry (dst, 0, 1 / 58, family): the control plane
//!   keeps one such entry per VIP address. Answered in place: addresses
//!   and MACs swapped, type 0 / 129, checksum updated, TTL / hop limit 64
//!   (IPv4 checksum recomputed): `IcmpEchoReply`, XDP_TX.
//! - Destination unreachable (ICMP 3; ICMPv6 1) and packet too big (ICMPv6
//!   2) quoting at least an IP header and 8 bytes of a TCP/UDP packet whose
//!   source is a VIP (lookup (quoted src, quoted sport, quoted proto), then
//!   port 0): the flow is the reversed quoted tuple (client → VIP). The
//!   real is chosen for that flow as above (connection table first), the
//!   whole ICMP packet is encapsulated to it and the hash of that flow
//!   makes the outer source: `IcmpErrorToReal`, XDP_TX. No VIP:
//!   `PassNotVip`.
//! - Any other ICMP: `PassNotVip`, untouched.
//!
//! ## The VIP address table
//!
//! Every lookup of `LB_VIPS` above goes through `LB_ADDRS` first (see
//! [`AddrEntry`]): an empty slot means no entry, an `EXACT` slot holds the
//! one address of that slot with all its entries, a `SHARED` slot sends the
//! lookup to `LB_VIPS`. The control plane keeps the two equal, so the
//! contract is that of `LB_VIPS` alone; the table spares traffic to no VIP
//! (most of a host's) both hash lookups, and VIP traffic one.
//!
//! ## Details both sides settled on
//!
//! - A frame shorter than Ethernet, or an IP version nibble that differs from
//!   the EtherType's family, is `PassMalformed`.
//! - "L4 header present" means, within the IP length: TCP 20 bytes (data
//!   offset not checked), UDP 8, ICMP/ICMPv6 8, the IPv6 fragment header 8
//!   (whose next header is the protocol looked up, with port 0).
//! - Only TCP and UDP fragments can match a VIP; fragment rules come before
//!   the options rule, and ICMP is handled before the options rule (an echo
//!   request with options is answered with them, its IPv4 checksum
//!   recomputed over IHL·4; an ICMP error with options is forwarded whole).
//! - An ICMP error's quoted header must be of the message's own family; an
//!   ICMP error too big to encapsulate is `DropTooBig`, never answered. ICMP
//!   errors are never a SYN, use and fill the connection table, count in
//!   per-VIP/per-real traffic and count `IcmpErrorToReal` instead of `Tx`.
//! - `LruHit`/`LruMiss` count every selection, also one that then ends in
//!   `DropNoReal`, `DropEncap`, `DropTooBig` or `TooBigSent`. The table is
//!   updated at selection, before the family and MTU checks.
//! - Bytes after the IP length (Ethernet padding) stay after the inner
//!   packet; outer lengths come from the inner IP header; traffic bytes are
//!   frame lengths. The family check comes before the MTU check.
//! - Too-big replies carry ToS / traffic class / flow label 0. The echo
//!   reply's ICMP checksum is updated incrementally (RFC 1624), so a wrong
//!   input checksum stays wrong.
//! - A real whose family is non-zero but neither 4 nor 6 is in use and gives
//!   `DropEncap`.
//! - Flow hash known answers (Linux `jhash_3words(a, b, c, seed)`):
//!   (0, 0, 0, 0) → 0x1b68e557; (1, 2, 3, 0) → 0xa46158f5;
//!   (0xc6120101, 0x9c400050, 6, 0) → 0xa3ba3736, with seed 0x12345678 →
//!   0xd62ca848; (0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff) →
//!   0xc343af0b.

/// Maximum number of VIPs (`LB_VIPS`, per-VIP stats, ring slots).
pub const MAX_VIPS: u32 = 64;
/// Maximum number of reals (`LB_REALS`, per-real stats). Real 0 is never
/// used: a zero in the ring or the connection table means "none".
pub const MAX_REALS: u32 = 4096;
/// Default Maglev ring size per VIP (a prime).
pub const DEFAULT_RING_SIZE: u32 = 65537;
/// Entries of the per-CPU LRU connection table.
pub const LRU_ENTRIES: u32 = 65536;
/// Default UDP destination port of GUE encapsulation.
pub const DEFAULT_GUE_PORT: u16 = 6080;

/// Map: `VipKey` → `VipMeta` (hash).
pub const VIPS_MAP: &str = "LB_VIPS";
/// Map: `u32` real id → `RealDef` (array, `MAX_REALS`).
pub const REALS_MAP: &str = "LB_REALS";
/// Map: `u32` → `u32` real id (array, `MAX_VIPS * ring size`): the Maglev
/// rings, VIP `n` owning slots `n * ring_size .. (n + 1) * ring_size`.
pub const RING_MAP: &str = "LB_RING";
/// Map: `FlowKey` → `FlowState` (LRU per-CPU hash, `LRU_ENTRIES`).
pub const LRU_MAP: &str = "LB_LRU";
/// Map: `u32` 0 → `LbConfig` (array, one entry).
pub const CONFIG_MAP: &str = "LB_CONFIG";
/// Map: `u32` vip number → `Traffic` (per-CPU array, `MAX_VIPS`).
pub const VIP_STATS_MAP: &str = "LB_VIP_STATS";
/// Map: `u32` real id → `Traffic` (per-CPU array, `MAX_REALS`).
pub const REAL_STATS_MAP: &str = "LB_REAL_STATS";
/// Map: [`Counter`] → `u64` (per-CPU array, `Counter::COUNT`).
pub const COUNTERS_MAP: &str = "LB_COUNTERS";
/// Map: `u32` [`addr_slot`] → [`AddrEntry`] (array, [`ADDR_SLOTS`]): the
/// VIP address table in front of `LB_VIPS`.
pub const ADDRS_MAP: &str = "LB_ADDRS";
/// Read-only global (`u32`): ring size per VIP; the loader sets it together
/// with `LB_RING`'s max entries (`MAX_VIPS * RING_SIZE`).
pub const RING_SIZE_GLOBAL: &str = "RING_SIZE";

/// Slots of the VIP address table (`LB_ADDRS`): a power of two, four times
/// [`MAX_VIPS`] so that addresses rarely share one.
pub const ADDR_SLOTS: u32 = 256;
/// `LB_VIPS` entries an [`AddrEntry`] holds inline.
pub const ADDR_VIPS: usize = 4;

/// The `LB_ADDRS` slot of an address given as four 32-bit words in memory
/// order (`u32::from_ne_bytes` of each 4 network-order bytes; IPv4 in word
/// 0, zeros after it): Fibonacci hashing of the words' XOR.
#[inline(always)]
pub const fn addr_slot(words: &[u32; 4]) -> u32 {
    (words[0] ^ words[1] ^ words[2] ^ words[3]).wrapping_mul(0x9e37_79b1) >> 24
}

/// What an `LB_ADDRS` slot says (`AddrEntry::kind`).
pub mod addr_kind {
    /// No VIP address has this slot: a destination here is no VIP's.
    pub const EMPTY: u8 = 0;
    /// Exactly one VIP address has this slot and every `LB_VIPS` entry of
    /// that address (echo entry included) is inline.
    pub const EXACT: u8 = 1;
    /// Several addresses share the slot, or one has more entries than
    /// [`ADDR_VIPS`](super::ADDR_VIPS): look the destination up in
    /// `LB_VIPS`.
    pub const SHARED: u8 = 2;
}

/// One `LB_VIPS` entry of an address, inline in its [`AddrEntry`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AddrVip {
    /// The entry's value.
    pub meta: VipMeta,
    /// Its key's port, network order (0: all ports, and echo entries).
    pub port_be: u16,
    /// Its key's protocol.
    pub proto: u8,
    /// Reserved, zero.
    pub pad: u8,
}

/// A slot of the VIP address table: the `LB_VIPS` entries of the one
/// address at this slot, so that the datapath answers a lookup with one
/// array access instead of up to two hash lookups, and a destination that
/// is no VIP's without any (`kind` [`addr_kind::EXACT`] / `EMPTY`).
///
/// The control plane keeps it equal to `LB_VIPS`. It rewrites a slot in
/// three writes — `kind` to `SHARED` alone, then the new contents with
/// `kind` still `SHARED`, then the final `kind` alone — so that a reader,
/// which reads `kind` first, never uses inline contents being rewritten.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AddrEntry {
    /// The address as four 32-bit words in memory order (see
    /// [`addr_slot`]).
    pub addr: [u32; 4],
    /// [`FAMILY_V4`] or [`FAMILY_V6`] (`EXACT` only).
    pub family: u8,
    /// [`addr_kind`].
    pub kind: u8,
    /// Entries used in `vips` (`EXACT` only).
    pub count: u8,
    /// Reserved, zero.
    pub pad: u8,
    /// The address's `LB_VIPS` entries (`EXACT` only).
    pub vips: [AddrVip; ADDR_VIPS],
}

/// Address family of a key or real.
pub const FAMILY_V4: u8 = 4;
/// Address family of a key or real.
pub const FAMILY_V6: u8 = 6;

/// A VIP: address, port and protocol. Port 0 is the "all ports" VIP, looked
/// up when no VIP matches the packet's destination port.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VipKey {
    /// IPv4 in the first 4 bytes (rest zero) or IPv6, network order.
    pub addr: [u8; 16],
    /// Destination port, network order; 0 for all ports.
    pub port: u16,
    /// IP protocol (6 TCP, 17 UDP).
    pub proto: u8,
    /// [`FAMILY_V4`] or [`FAMILY_V6`].
    pub family: u8,
}

/// VIP flags (`VipMeta::flags`).
pub mod vip_flags {
    /// Hash without the source port (all of a client's connections to one
    /// real).
    pub const NO_SPORT: u32 = 1 << 0;
    /// Never use or fill the connection table for this VIP.
    pub const NO_LRU: u32 = 1 << 1;
    /// Hash on the destination port only.
    pub const DPORT_ONLY: u32 = 1 << 2;
    /// Encapsulate in GUE (UDP) instead of IP-in-IP.
    pub const GUE: u32 = 1 << 3;
}

/// What the datapath knows about a VIP.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VipMeta {
    /// [`vip_flags`].
    pub flags: u32,
    /// The VIP's number: its ring and its stats slot (< [`MAX_VIPS`]).
    pub vip_num: u32,
}

/// A real (backend).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RealDef {
    /// IPv4 in the first 4 bytes or IPv6, network order.
    pub addr: [u8; 16],
    /// [`FAMILY_V4`] or [`FAMILY_V6`]; 0 for an unused slot.
    pub family: u8,
    /// Reserved, zero.
    pub pad: [u8; 3],
}

/// A flow as the connection table keys it: the client's 5-tuple towards a
/// VIP.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Source address (IPv4 in the first 4 bytes), network order.
    pub src: [u8; 16],
    /// Destination (VIP) address, network order.
    pub dst: [u8; 16],
    /// Source port, network order (0 for ICMP).
    pub sport: u16,
    /// Destination port, network order.
    pub dport: u16,
    /// IP protocol.
    pub proto: u8,
    /// [`FAMILY_V4`] or [`FAMILY_V6`].
    pub family: u8,
    /// Reserved, zero.
    pub pad: [u8; 2],
}

/// What the connection table remembers about a flow.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowState {
    /// The real serving it (0: none, i.e. this CPU has not seen the flow).
    pub real: u32,
    /// Reserved, zero.
    pub pad: u32,
}

/// Global behaviour switches (`LbConfig::flags`).
pub mod config_flags {
    /// Answer ICMP / ICMPv6 echo requests to a VIP from XDP.
    pub const ICMP_ECHO: u32 = 1 << 0;
    /// Answer packets that would exceed `mtu` after encapsulation with
    /// ICMP fragmentation-needed / ICMPv6 packet-too-big (else drop them).
    pub const SEND_TOO_BIG: u32 = 1 << 1;
    /// Leave the outer UDP checksum of GUE over IPv6 zero: only for reals
    /// that accept zero-checksum UDP over IPv6 (RFC 6935 section 5).
    pub const GUE_V6_ZERO_CSUM: u32 = 1 << 2;
}

/// Deployment-wide settings, written by the control plane.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LbConfig {
    /// MAC of the gateway every encapsulated packet is sent to.
    pub gateway_mac: [u8; 6],
    /// UDP destination port of GUE encapsulation, host order.
    pub gue_port: u16,
    /// Seed of the flow hash.
    pub hash_seed: u32,
    /// Largest IP packet (outer header included) the path carries.
    pub mtu: u32,
    /// [`config_flags`].
    pub flags: u32,
    /// Outer IPv4 source: the high 16 bits of this address, the low 16 bits
    /// from the flow hash (RSS entropy at the real). Network order.
    pub src_v4_prefix: [u8; 4],
    /// Outer IPv6 source: the first 12 bytes of this address, the last 4
    /// from the flow hash. Network order.
    pub src_v6_prefix: [u8; 16],
}

/// Packets and bytes (per VIP, per real).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Traffic {
    /// Packets.
    pub packets: u64,
    /// Bytes of the packets as received (before encapsulation).
    pub bytes: u64,
}

/// Global counters (`LB_COUNTERS` indices).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Counter {
    /// Packet to a VIP encapsulated and sent (XDP_TX).
    Tx = 0,
    /// Not for a VIP: passed untouched.
    PassNotVip = 1,
    /// Connection table hit.
    LruHit = 2,
    /// Connection table miss, bypass (`NO_LRU`) or TCP SYN: real chosen by
    /// the ring.
    LruMiss = 3,
    /// ICMP / ICMPv6 echo request to a VIP answered.
    IcmpEchoReply = 4,
    /// ICMP error about a VIP flow forwarded to the real serving it.
    IcmpErrorToReal = 5,
    /// Frag-needed / packet-too-big sent because encapsulation would exceed
    /// the MTU.
    TooBigSent = 6,
    /// Too big after encapsulation, and answering is off: dropped.
    DropTooBig = 7,
    /// IPv4 fragment or IPv6 fragment header to a VIP: dropped (the 5-tuple
    /// is not in every fragment).
    DropFragment = 8,
    /// IPv4 with options to a VIP: passed to the stack.
    PassIpOptions = 9,
    /// The VIP's ring has no real: dropped.
    DropNoReal = 10,
    /// The chosen real cannot carry the VIP's family (IPv6 VIP, IPv4 real)
    /// or a helper failed while encapsulating: dropped.
    DropEncap = 11,
    /// Malformed headers (truncated, bad lengths): passed to the stack.
    PassMalformed = 12,
}

impl Counter {
    /// Number of counters.
    pub const COUNT: u32 = 13;

    /// All counters in index order.
    pub const ALL: [Self; Self::COUNT as usize] = [
        Self::Tx,
        Self::PassNotVip,
        Self::LruHit,
        Self::LruMiss,
        Self::IcmpEchoReply,
        Self::IcmpErrorToReal,
        Self::TooBigSent,
        Self::DropTooBig,
        Self::DropFragment,
        Self::PassIpOptions,
        Self::DropNoReal,
        Self::DropEncap,
        Self::PassMalformed,
    ];

    /// snake_case name for reports and scenarios.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Tx => "tx",
            Self::PassNotVip => "pass_not_vip",
            Self::LruHit => "lru_hit",
            Self::LruMiss => "lru_miss",
            Self::IcmpEchoReply => "icmp_echo_reply",
            Self::IcmpErrorToReal => "icmp_error_to_real",
            Self::TooBigSent => "too_big_sent",
            Self::DropTooBig => "drop_too_big",
            Self::DropFragment => "drop_fragment",
            Self::PassIpOptions => "pass_ip_options",
            Self::DropNoReal => "drop_no_real",
            Self::DropEncap => "drop_encap",
            Self::PassMalformed => "pass_malformed",
        }
    }

    /// The counter called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are repr(C), Copy, with explicit padding fields
    // and no implicit padding, so every byte pattern is a valid value.
    unsafe impl aya::Pod for super::VipKey {}
    unsafe impl aya::Pod for super::VipMeta {}
    unsafe impl aya::Pod for super::RealDef {}
    unsafe impl aya::Pod for super::FlowKey {}
    unsafe impl aya::Pod for super::FlowState {}
    unsafe impl aya::Pod for super::LbConfig {}
    unsafe impl aya::Pod for super::Traffic {}
    unsafe impl aya::Pod for super::AddrEntry {}
}

#[cfg(test)]
mod tests {
    use core::mem::size_of;

    use super::*;

    #[test]
    fn layouts_have_no_implicit_padding() {
        assert_eq!(size_of::<VipKey>(), 20);
        assert_eq!(size_of::<VipMeta>(), 8);
        assert_eq!(size_of::<RealDef>(), 20);
        assert_eq!(size_of::<FlowKey>(), 40);
        assert_eq!(size_of::<FlowState>(), 8);
        assert_eq!(size_of::<LbConfig>(), 6 + 2 + 4 + 4 + 4 + 4 + 16);
        assert_eq!(size_of::<Traffic>(), 16);
    }

    #[test]
    fn counters_are_in_index_order() {
        for (i, c) in Counter::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i);
            assert_eq!(Counter::from_name(c.name()), Some(*c));
        }
    }
}
