//! The XDP L4 load balancer (`xdp_lb`): classification, real selection and
//! the verdict of one frame. The contract (what each packet gets: verdict,
//! bytes, counters) is the module documentation of `dsrlab_abi::lb`; this
//! module implements it and says below how it reads the places the text
//! leaves open.
//!
//! Layout: this file classifies (Ethernet and IP through the shared
//! `dsrlab_ebpf::packet::network`, then fragments, ICMP, TCP/UDP) and
//! selects the real; [`encap`] writes the outer headers; [`icmp`] answers
//! echo requests, sends frag-needed / packet-too-big and parses ICMP errors;
//! [`hash`] is the flow hash, [`csum`] the checksums, [`maps`] the maps and
//! counters. The module is compiled into the `xdp_lb` binary only (not into
//! the library), so its maps exist in that object alone; the binary names
//! the fault set it is built with (`type LbFaults`, `Correct` but for the
//! harness's deliberately broken variants).
//!
//! The program is loaded without frags support: the whole frame is linear
//! and every header is read directly (the `Packet` view never falls back to
//! a helper).
//!
//! # Implementation notes (speed and the verifier)
//!
//! - After the EtherType, each family has its own copy of the code (`const
//!   V6: bool`), so the IPv4 path carries 4-byte addresses, not 16.
//! - Map keys are built as whole 64-bit words ([`Key`]): a key assembled
//!   field by field is zero-filled through a call to compiler-builtins'
//!   `memset` (a byte loop).
//! - One connection-table lookup serves the hit and the update: a flow the
//!   table already holds (SYN of a known flow, real gone) gets its new real
//!   written into this CPU's value in place; only new flows go through the
//!   update helper, which costs about four lookups even for an existing key
//!   (it takes a free LRU node first). Same per-CPU result either way: this
//!   CPU's value set, the others unchanged (existing key) or zero (new key).
//!
//! # Readings of the contract
//!
//! Where the contract leaves a choice, this program does the following
//! (numbers refer to its classification rules):
//!
//! - Rule 1. A frame shorter than 14 bytes is `PassMalformed` (the kernel
//!   refuses to test-run one). An IPv4 EtherType with version ≠ 4, or IPv6
//!   with version ≠ 6, is `PassMalformed` (the shared check of
//!   `packet::network`, as in decap). "Bytes present" are the bytes after
//!   the Ethernet header; bytes after the IP length (Ethernet padding) are
//!   allowed and ignored by every check.
//! - Rule 1, L4 headers: "needed" means TCP 20 bytes and UDP 8 bytes
//!   (for non-fragments and first IPv4 fragments), ICMP / ICMPv6 8 bytes
//!   (non-fragments), the IPv6 fragment header 8 bytes; each must lie
//!   within the IP length (IPv4 total length − IHL·4, IPv6 payload length).
//!   TCP data offset and options are not checked. Other protocols need none.
//! - Rule 2. Only TCP and UDP fragments can match a VIP (as in rule 3); a
//!   fragment of any other protocol (ICMP included, so an echo VIP entry
//!   never matches a fragment) is `PassNotVip`. An IPv6 fragment is looked
//!   up with the protocol of its fragment header's next header. Fragments
//!   are checked before IPv4 options (a fragment with options to a VIP is
//!   `DropFragment`).
//! - Rule 3 before rule 4: ICMP is handled whatever the IPv4 options. An
//!   echo request with options is answered in place, options kept, the
//!   IPv4 checksum recomputed over IHL·4 bytes; an ICMP error with options
//!   is encapsulated whole.
//! - ICMP: an echo request is type 8 / 128 whatever its code. Its ICMP
//!   checksum is updated incrementally (RFC 1624 eqn. 3) for the type
//!   change only (swapping addresses leaves the ICMPv6 pseudo-header sum
//!   unchanged): for a correct input checksum this equals a recomputation.
//!   An ICMP error "quotes an IP header" when the quoted version nibble is
//!   the outer family's (4 / 6), IPv4 IHL ≥ 5, and IHL·4 + 8 (IPv6: 48)
//!   bytes follow the 8-byte ICMP header within the IP length; the quoted
//!   protocol must be TCP or UDP, read from the IPv4 header or the IPv6 next
//!   header (no extension headers followed). The quoted fragment offset is
//!   not looked at. Otherwise `PassNotVip`.
//! - Real selection: `LruMiss` is counted whenever the ring is consulted,
//!   including when it then yields no usable real (`DropNoReal`). A TCP SYN
//!   never takes its real from the table. The table is
//!   updated as soon as the ring gives a usable real, before encapsulation,
//!   so it is also updated for packets then dropped with `DropEncap` or
//!   answered / dropped as too big. A real is "in use" when its family is
//!   non-zero; a family other than 4 and 6 is in use but cannot carry
//!   anything (`DropEncap`). The slot index is computed without wrapping:
//!   a slot beyond `u32::MAX` or beyond `LB_RING`, and `RING_SIZE` 0, give
//!   `DropNoReal`. An ICMP error is never a SYN (its real comes from the
//!   table when there is one) and fills the table like any miss.
//! - The hash (and so the outer source) is computed for every selection,
//!   table hits included, with the VIP's flags applied.
//! - Counters: a frame sent to a real counts `Tx` (or `IcmpErrorToReal`
//!   for an ICMP error, not both) plus `LruHit` / `LruMiss`; a drop after
//!   selection counts its drop counter plus `LruHit` / `LruMiss`; every
//!   other frame counts exactly one counter. `Traffic` (per VIP, per real)
//!   counts the frames encapsulated to a real, ICMP errors included, with
//!   the frame length as received (Ethernet header and any padding).
//! - Encapsulation: the outer lengths (IPv4 total length, IPv6 payload
//!   length, UDP length) cover the inner IP packet per its own header; any
//!   bytes after it in the frame (Ethernet padding) stay at the end of the
//!   frame, beyond the outer IP length. The MTU check compares the inner IP
//!   length plus the overhead with `mtu`. The family check (`DropEncap`)
//!   comes before the MTU check.
//! - Too big: the next-hop MTU is `mtu − overhead` (wrapping, then the low
//!   16 bits for ICMP). The reply's IPv4 ToS and IPv6 traffic class and
//!   flow label are 0. An ICMP error too big to encapsulate is dropped
//!   (`DropTooBig`), never answered: ICMP errors are not sent about ICMP
//!   errors. A helper failure while building the reply is `DropEncap`.

mod csum;
mod encap;
mod hash;
mod icmp;
mod maps;

use core::mem::{MaybeUninit, size_of};

use aya_ebpf::{
    bindings::xdp_action::{XDP_DROP, XDP_PASS, XDP_TX},
    programs::XdpContext,
};
use dsrlab_abi::lb::{
    Counter, FAMILY_V4, FAMILY_V6, FlowKey, FlowState, LbConfig, RealDef, VipKey, VipMeta,
    addr_kind, addr_slot, config_flags, vip_flags,
};
use dsrlab_ebpf::faults::Faults;
use dsrlab_ebpf::packet::{
    ETH_HLEN, ETH_P_IP_BE, ETH_P_IPV6_BE, EthHdr, Header, IPV4_HLEN, IPV6_FRAG_HLEN, Ipv4Hdr,
    Ipv6FragHdr, Ipv6Hdr, Network, NetworkError, Packet, TCP_HLEN, TcpHdr, UDP_HLEN, UdpPorts,
    network, opaque, proto, read, tcp_flags,
};

use self::{
    encap::{Encap, EncapError},
    maps::{LB_ADDRS, LB_CONFIG, LB_LRU, LB_REALS, LB_RING, LB_VIPS, account, count, ring_size},
};

/// The frame, all of it linear (the program is loaded without frags).
pub struct Linear {
    data: usize,
    data_end: usize,
}

impl Linear {
    #[inline(always)]
    fn new(ctx: &XdpContext) -> Self {
        Self {
            data: ctx.data(),
            data_end: ctx.data_end(),
        }
    }

    /// Frame length, Ethernet header included.
    #[inline(always)]
    fn len(&self) -> u64 {
        (self.data_end - self.data) as u64
    }
}

impl Packet for Linear {
    #[inline(always)]
    fn data(&self) -> usize {
        self.data
    }

    #[inline(always)]
    fn data_end(&self) -> usize {
        self.data_end
    }

    #[inline(always)]
    fn has_len(&self, n: u32) -> bool {
        dsrlab_ebpf::packet::linear_holds(self.data, self.data_end, n)
    }

    #[inline(always)]
    fn vlan_tag_in_metadata(&self) -> bool {
        false
    }

    #[inline(always)]
    unsafe fn load_bytes(&self, _off: u32, _dst: *mut u8, _len: u32) -> bool {
        false
    }
}

/// Reads header `T` at `off`, if the frame holds it.
#[inline(always)]
fn header<T: Header>(pkt: &Linear, off: u32) -> Option<T> {
    let mut buf = MaybeUninit::<T>::uninit();
    // SAFETY: `read` returned a pointer valid for one `T` (into the frame:
    // without fallback it never points to `buf`).
    read(pkt, off, &mut buf, false)
        .ok()
        .map(|p| unsafe { p.read() })
}

/// What happens to a frame: the counter to increment and the verdict.
type Outcome = (Counter, u32);

#[inline(always)]
const fn pass(counter: Counter) -> Outcome {
    (counter, XDP_PASS)
}

#[inline(always)]
const fn drop(counter: Counter) -> Outcome {
    (counter, XDP_DROP)
}

#[inline(always)]
const fn tx(counter: Counter) -> Outcome {
    (counter, XDP_TX)
}

const MALFORMED: Outcome = pass(Counter::PassMalformed);
const NOT_VIP: Outcome = pass(Counter::PassNotVip);

/// An address as four 32-bit words in memory order (each word as loaded
/// from memory); IPv4 in word 0, zeros after it (the layout of the ABI's
/// keys).
type Addr = [u32; 4];

/// Source and destination addresses of an IP header.
#[derive(Clone, Copy)]
struct Addrs {
    src: Addr,
    dst: Addr,
}

/// Two 16-bit words in memory order as one 32-bit word in memory order.
#[inline(always)]
const fn pair(lo: u16, hi: u16) -> u32 {
    lo as u32 | (hi as u32) << 16
}

/// Reads the addresses of the IP header at `off` (whose version and length
/// the caller has checked).
#[inline(always)]
fn addrs_at(pkt: &Linear, off: u32, v6: bool) -> Option<Addrs> {
    // Opaque: the compiler would otherwise drop this header's bounds check
    // as implied by the caller's length check (`off` + 40 + payload length
    // within the frame), which the verifier cannot follow.
    let off = opaque(off as usize) as u32;
    if v6 {
        let ip = header::<Ipv6Hdr>(pkt, off)?;
        let (s, d) = (ip.saddr, ip.daddr);
        Some(Addrs {
            src: [
                pair(s[0], s[1]),
                pair(s[2], s[3]),
                pair(s[4], s[5]),
                pair(s[6], s[7]),
            ],
            dst: [
                pair(d[0], d[1]),
                pair(d[2], d[3]),
                pair(d[4], d[5]),
                pair(d[6], d[7]),
            ],
        })
    } else {
        let ip = header::<Ipv4Hdr>(pkt, off)?;
        let [s0, s1, d0, d1] = ip.addrs;
        Some(Addrs {
            src: [pair(s0, s1), 0, 0, 0],
            dst: [pair(d0, d1), 0, 0, 0],
        })
    }
}

/// A map key of type `T` built as `W` whole 64-bit words in an 8-byte
/// aligned buffer: a key assembled field by field is zero-filled through a
/// call to `memset` (a byte loop), and its fields are stored one by one.
/// The BPF target is little-endian: the first bytes of the key are the low
/// bytes of word 0.
#[repr(C, align(8))]
union Key<T: Copy, const W: usize> {
    key: T,
    words: [u64; W],
}

impl<T: Copy, const W: usize> Key<T, W> {
    #[inline(always)]
    fn get(&self) -> &T {
        // SAFETY: `T` is a plain key type (any bit pattern valid) no larger
        // than the words, which are all initialized.
        unsafe { &self.key }
    }
}

/// Two 32-bit words in memory order as one 64-bit word in memory order.
#[inline(always)]
const fn quad(lo: u32, hi: u32) -> u64 {
    lo as u64 | (hi as u64) << 32
}

/// The [`VipKey`] (`dst`, `port_be`, `proto`, `family`).
#[inline(always)]
fn vip_key(dst: &Addr, port_be: u16, proto: u8, family: u8) -> Key<VipKey, 3> {
    const _: () = assert!(size_of::<VipKey>() == 20);
    Key {
        words: [
            quad(dst[0], dst[1]),
            quad(dst[2], dst[3]),
            port_be as u64 | (proto as u64) << 16 | (family as u64) << 24,
        ],
    }
}

/// Looks up the VIP (`dst`, `port_be`, `proto`, `family`), then
/// (`dst`, 0, `proto`, `family`): in the address table when its slot for
/// `dst` is empty or holds `dst`'s entries, in `LB_VIPS` when it is shared.
#[inline(always)]
fn lookup_vip(dst: &Addr, port_be: u16, proto: u8, family: u8) -> Option<VipMeta> {
    let entry = LB_ADDRS.get(addr_slot(dst))?;
    match entry.kind {
        addr_kind::EMPTY => return None,
        addr_kind::EXACT => {
            if entry.family != family || entry.addr != *dst {
                return None;
            }
            let count = usize::from(entry.count);
            if port_be != 0 {
                for (i, v) in entry.vips.iter().enumerate() {
                    if i < count && v.port_be == port_be && v.proto == proto {
                        return Some(v.meta);
                    }
                }
            }
            for (i, v) in entry.vips.iter().enumerate() {
                if i < count && v.port_be == 0 && v.proto == proto {
                    return Some(v.meta);
                }
            }
            return None;
        }
        _ => {}
    }
    let mut key = vip_key(dst, port_be, proto, family);
    if port_be != 0
        && let Some(meta) = LB_VIPS.get_ptr(key.get())
    {
        // SAFETY: a value pointer the helper returned.
        return Some(unsafe { meta.read() });
    }
    // SAFETY: writing a whole word of the union.
    unsafe { key.words[2] &= !0xffff };
    // SAFETY: as above.
    LB_VIPS
        .get_ptr(key.get())
        .map(|meta| unsafe { meta.read() })
}

/// A flow as the connection table keys it (ports as in the packet, flags
/// not applied).
#[derive(Clone, Copy)]
struct Flow {
    src: Addr,
    dst: Addr,
    /// Network order.
    sport: u16,
    /// Network order.
    dport: u16,
    proto: u8,
    family: u8,
}

impl Flow {
    /// Its [`FlowKey`].
    #[inline(always)]
    fn key(&self) -> Key<FlowKey, 5> {
        const _: () = assert!(size_of::<FlowKey>() == 40);
        Key {
            words: [
                quad(self.src[0], self.src[1]),
                quad(self.src[2], self.src[3]),
                quad(self.dst[0], self.dst[1]),
                quad(self.dst[2], self.dst[3]),
                self.sport as u64
                    | (self.dport as u64) << 16
                    | (self.proto as u64) << 32
                    | (self.family as u64) << 40,
            ],
        }
    }
}

/// The program body: processes one frame and returns its verdict.
#[inline(always)]
pub fn run(ctx: &XdpContext) -> u32 {
    let (counter, verdict) = process(ctx, &Linear::new(ctx));
    count(counter);
    verdict
}

#[inline(always)]
fn process(ctx: &XdpContext, pkt: &Linear) -> Outcome {
    let Some(eth) = header::<EthHdr>(pkt, 0) else {
        return MALFORMED;
    };
    // From here on each family has its own copy of the code (`V6` is a
    // constant in each): the compiler then knows which address words are
    // zero and keeps no IPv6-sized state on the IPv4 path.
    if eth.proto == ETH_P_IP_BE {
        family_body::<false>(ctx, pkt, ETH_P_IP_BE)
    } else if eth.proto == ETH_P_IPV6_BE {
        family_body::<true>(ctx, pkt, ETH_P_IPV6_BE)
    } else {
        NOT_VIP
    }
}

/// Checks the IP header of a frame of EtherType `eth_proto_be` (IPv6 if
/// `V6`), then goes on with [`ip`].
#[inline(always)]
fn family_body<const V6: bool>(ctx: &XdpContext, pkt: &Linear, eth_proto_be: u16) -> Outcome {
    match network(pkt, eth_proto_be, false) {
        Ok(net) => ip::<V6>(ctx, pkt, net),
        Err(NetworkError::NotIp) => NOT_VIP,
        Err(NetworkError::Malformed | NetworkError::NonLinear) => MALFORMED,
    }
}

/// The IP header length of `net` (20..=60 or 40), with a bound the
/// verifier can see: the compiler may keep `Network` on the stack in a
/// packed form that the verifier reloads as an unbounded scalar, and packet
/// offsets must be bounded. The mask changes no valid length.
#[inline(always)]
fn hdr_len(net: &Network) -> u32 {
    opaque(net.hdr_len as usize) as u32 & 0x3c
}

/// Offset of the header after the IP header (see [`hdr_len`]).
#[inline(always)]
fn l4_off(net: &Network) -> u32 {
    ETH_HLEN + hdr_len(net)
}

/// The family of the address in a key.
#[inline(always)]
const fn family<const V6: bool>() -> u8 {
    if V6 { FAMILY_V6 } else { FAMILY_V4 }
}

/// An IPv4 (`V6` false) or IPv6 packet whose IP header `net` describes.
#[inline(always)]
fn ip<const V6: bool>(ctx: &XdpContext, pkt: &Linear, net: Network) -> Outcome {
    let Some(addrs) = addrs_at(pkt, ETH_HLEN, V6) else {
        return MALFORMED;
    };
    let family = family::<V6>();
    let l4 = l4_off(&net);
    let protocol = net.protocol;
    let v4_fragment = !V6 && net.v4_fragment();

    if protocol == proto::TCP || protocol == proto::UDP {
        if !V6 && net.v4_later_fragment() {
            return fragment(&addrs.dst, 0, protocol, family);
        }
        let need = if protocol == proto::TCP {
            TCP_HLEN
        } else {
            UDP_HLEN
        };
        if net.carried < need {
            return MALFORMED;
        }
        let Some(ports) = header::<UdpPorts>(pkt, l4) else {
            return MALFORMED;
        };
        if v4_fragment {
            return fragment(&addrs.dst, ports.dest, protocol, family);
        }
        let Some(meta) = lookup_vip(&addrs.dst, ports.dest, protocol, family) else {
            return NOT_VIP;
        };
        if !V6 && net.hdr_len > IPV4_HLEN {
            return pass(Counter::PassIpOptions);
        }
        let syn = protocol == proto::TCP
            && match header::<TcpHdr>(pkt, l4) {
                Some(tcp) => tcp.flags & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN,
                None => return MALFORMED,
            };
        let flow = Flow {
            src: addrs.src,
            dst: addrs.dst,
            sport: ports.source,
            dport: ports.dest,
            proto: protocol,
            family,
        };
        return forward::<V6>(ctx, &net, &meta, &flow, syn, pkt.len(), false);
    }
    if v4_fragment {
        // A fragment of another protocol: never a VIP's.
        return NOT_VIP;
    }
    if V6 && protocol == proto::FRAGMENT {
        if net.carried < IPV6_FRAG_HLEN {
            return MALFORMED;
        }
        let Some(frag) = header::<Ipv6FragHdr>(pkt, l4) else {
            return MALFORMED;
        };
        if frag.nexthdr != proto::TCP && frag.nexthdr != proto::UDP {
            return NOT_VIP;
        }
        return fragment(&addrs.dst, 0, frag.nexthdr, family);
    }
    if protocol == (if V6 { proto::ICMPV6 } else { proto::ICMP }) {
        return icmp::process::<V6>(ctx, pkt, &net, &addrs);
    }
    NOT_VIP
}

/// A TCP or UDP fragment: dropped if it is a VIP's (`dport_be` 0: the
/// all-ports VIP only).
#[inline(always)]
fn fragment(dst: &Addr, dport_be: u16, protocol: u8, family: u8) -> Outcome {
    match lookup_vip(dst, dport_be, protocol, family) {
        Some(_) => drop(Counter::DropFragment),
        None => NOT_VIP,
    }
}

/// The flow hash of the contract: `jhash_3words(fold(src), (sport << 16) |
/// dport, proto, seed)` with the VIP's flags applied.
#[inline(always)]
fn flow_hash(flow: &Flow, flags: u32, seed: u32) -> u32 {
    let src = if flags & vip_flags::DPORT_ONLY != 0 {
        0
    } else {
        hash::fold(&flow.src)
    };
    let sport = if flags & (vip_flags::NO_SPORT | vip_flags::DPORT_ONLY) != 0 {
        0
    } else {
        u32::from(u16::from_be(flow.sport))
    };
    let ports = (sport << 16) | u32::from(u16::from_be(flow.dport));
    hash::jhash_3words(src, ports, u32::from(flow.proto), seed)
}

/// Chooses the real for `flow`: the connection table first (unless
/// `NO_LRU` or `syn`), else the VIP's ring slot for `hash`, remembered in the
/// table (unless `NO_LRU`). Counts `LruHit` / `LruMiss`.
///
/// One table lookup serves both the hit and the update: when the table
/// already holds the flow (a SYN of a known flow, a real no longer in use)
/// the new real is written into this CPU's value in place, because the
/// update helper costs several times more than a lookup even for an
/// existing key (it takes a free node first). New flows are inserted with
/// the helper (`BPF_ANY`), which zeroes the other CPUs' values.
#[inline(always)]
fn select(
    meta: &VipMeta,
    flow: &Flow,
    syn: bool,
    hash: u32,
) -> Result<(u32, &'static RealDef), Counter> {
    let use_lru = meta.flags & vip_flags::NO_LRU == 0;
    let key = flow.key();
    let state = if use_lru {
        LB_LRU.get_ptr_mut(key.get())
    } else {
        None
    };
    if !syn && let Some(state) = state {
        // SAFETY: a value pointer the helper returned: this CPU's value,
        // which only this program on this CPU writes.
        let real = unsafe { (*state).real };
        if real != 0
            && let Some(def) = LB_REALS.get(real)
            && def.family != 0
        {
            count(Counter::LruHit);
            return Ok((real, def));
        }
    }
    count(Counter::LruMiss);
    let ring = ring_size();
    if ring == 0 {
        return Err(Counter::DropNoReal);
    }
    let slot = u64::from(meta.vip_num) * u64::from(ring) + u64::from(hash % ring);
    if slot > u64::from(u32::MAX) {
        return Err(Counter::DropNoReal);
    }
    let real = match LB_RING.get(slot as u32) {
        Some(&real) if real != 0 => real,
        _ => return Err(Counter::DropNoReal),
    };
    let def = match LB_REALS.get(real) {
        Some(def) if def.family != 0 => def,
        _ => return Err(Counter::DropNoReal),
    };
    if <crate::LbFaults as Faults>::LRU_NO_UPDATE {
        return Ok((real, def));
    }
    let remembered = FlowState { real, pad: 0 };
    match state {
        // SAFETY: as above.
        Some(state) => unsafe { state.write(remembered) },
        // A failed insert (never for an LRU map) only costs stickiness.
        None if use_lru => {
            let _ = LB_LRU.insert(key.get(), &remembered, 0);
        }
        None => {}
    }
    Ok((real, def))
}

/// Selects the real for `flow` (a flow of VIP `meta`) and sends the whole
/// frame (whose IP layer is `net`) to it, or answers or drops it if it
/// would be too big. `frame_len` is the frame's length as
/// received. `icmp_error`: the frame is an ICMP error about `flow`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn forward<const V6: bool>(
    ctx: &XdpContext,
    net: &Network,
    meta: &VipMeta,
    flow: &Flow,
    syn: bool,
    frame_len: u64,
    icmp_error: bool,
) -> Outcome {
    let Some(cfg) = LB_CONFIG.get(0) else {
        return drop(Counter::DropEncap);
    };
    let cfg: &LbConfig = cfg;
    let hash = flow_hash(flow, meta.flags, cfg.hash_seed);
    let (real_id, real) = match select(meta, flow, syn, hash) {
        Ok(chosen) => chosen,
        Err(counter) => return drop(counter),
    };
    let encap = Encap {
        cfg,
        real,
        hash,
        gue: meta.flags & vip_flags::GUE != 0,
        inner_v6: V6,
        tos: net.tos,
        ip_len: net.ip_len,
    };
    match encap::encapsulate(ctx, &encap) {
        Ok(()) => {
            account(meta.vip_num, real_id, frame_len);
            tx(if icmp_error {
                Counter::IcmpErrorToReal
            } else {
                Counter::Tx
            })
        }
        Err(EncapError::Family | EncapError::Helper) => drop(Counter::DropEncap),
        Err(EncapError::TooBig { overhead }) => {
            if icmp_error
                || cfg.flags & config_flags::SEND_TOO_BIG == 0
                || (!V6 && !net.v4_dont_fragment())
            {
                return drop(Counter::DropTooBig);
            }
            match icmp::too_big::<V6>(ctx, cfg.mtu.wrapping_sub(overhead)) {
                Ok(()) => tx(Counter::TooBigSent),
                Err(()) => drop(Counter::DropEncap),
            }
        }
    }
}
