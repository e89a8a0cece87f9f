//! Generated traffic: a scenario's `generate:` stream expanded into packets.
//!
//! A [`Generator`] asks for `flows` distinct flows drawn from address, port
//! and payload ranges, `packets_per_flow` packets each, optionally tunnelled.
//! [`expand`] turns it into bytes through [`PacketSpec`], the builder the
//! fixtures use, so lengths and checksums are derived in one place.
//!
//! # What is drawn, and how (part of the format)
//!
//! The same generator always yields the same bytes, on every machine and
//! release, because snapshots and expectations depend on them. The draw is
//! therefore specified here, not left to a library's convenience methods:
//!
//! - ChaCha8 keyed with `seed` as 8 little-endian bytes followed by 24 zero
//!   bytes, used as three independent streams (ChaCha's stream id): 0 draws
//!   the flows' 5-tuples, 1 per-flow values (outer addresses, TCP initial
//!   sequence numbers), 2 payload lengths. Changing the payload range thus
//!   keeps the flows, and changing the tunnel keeps the inner packets'
//!   addresses and ports.
//! - A value in a range of n is drawn uniformly by rejection: from one 64-bit
//!   word (n ≤ 2⁶⁴) or two (high word first), rejecting words at or above the
//!   largest multiple of n, then taking the remainder mod n.
//! - Per flow, in this order: the protocol (from the list, duplicates
//!   weighting it), src, dst, sport, then dport (not for ICMP). A tuple seen
//!   before is drawn again. ICMP flows have no ports: the sport draw is the
//!   echo identifier, and the flow is (src, dst, icmp, identifier).
//! - Per flow, when tunnelled: outer src then outer dst. For TCP: initial
//!   sequence number, then the peer's (the ACKs acknowledge it + 1).
//! - Per packet: its payload length.
//!
//! Packets are listed flow by flow: `flow-1/1`, `flow-1/2`, …, `flow-2/1`,
//! or `flow-N` when each flow has one packet.

use std::{
    collections::HashSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use rand_chacha::{
    ChaCha8Rng,
    rand_core::{Rng as _, SeedableRng as _},
};

mod headers;
mod stream;

use self::headers::check_headers;
pub use self::stream::Packets;
use super::model::{Generator, IpLenAround, NamedLengths, Protocol, Range, Tunnel};
use crate::formats::packet::{
    LayerSpec,
    spec::{Ipv4Spec, Ipv6Spec},
};

/// Most packets one stream may generate: a scenario is a test, and a
/// million test-runs already take seconds.
pub const MAX_PACKETS: u64 = 1_000_000;

/// One generated packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratedPacket {
    /// `flow-N` (one packet per flow) or `flow-N/K`, both 1-based.
    pub name: String,
    /// The Ethernet frame.
    pub bytes: Vec<u8>,
    /// The 1-based flow it belongs to.
    pub flow: u32,
    /// Offset of the inner IP header: the Ethernet header's length for
    /// plain packets, past the outer headers for tunnelled ones (what a
    /// decapsulator must remove).
    pub inner_offset: usize,
}

/// Why a generator cannot be expanded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("stream `{stream}`: {field}: {problem}")]
pub struct GenerateError {
    /// The stream's name.
    pub stream: String,
    /// The key of `generate:` at fault, as written in scenario files
    /// (`src`, `flows`, …), so that a loader can point at its line.
    pub field: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

/// The key at fault and what is wrong, before the stream is named.
type Problem = (&'static str, String);

/// Expands `generator` into its packets. `stream_name` names the stream in
/// errors.
pub fn expand(
    generator: &Generator,
    stream_name: &str,
) -> Result<Vec<GeneratedPacket>, GenerateError> {
    stream(generator, stream_name)?.collect()
}

/// The packets of `generator`, one at a time, as [`expand`] lists them:
/// the flows' tuples are drawn at once (they must be distinct), each
/// packet's bytes only when it is asked for. `stream_name` names the stream
/// in errors.
pub fn stream(generator: &Generator, stream_name: &str) -> Result<Packets, GenerateError> {
    let error = |(field, problem): Problem| GenerateError {
        stream: stream_name.to_owned(),
        field,
        problem,
    };
    let plan = Plan::new(generator).map_err(error)?;
    let tuples = plan.tuples(generator.seed).map_err(error)?;
    Packets::new(plan, generator.clone(), tuples, stream_name)
}

/// Whether `generator` makes packets to `addr` with `proto` and, unless
/// it is 0 (every port), destination port `port`: what a loader asks to
/// find the load balancer's VIPs a generator reaches. False for a generator
/// that cannot be planned (its stream reports why).
pub fn reaches(generator: &Generator, addr: IpAddr, proto: Protocol, port: u16) -> bool {
    let plain = Generator {
        ip_len_around: None,
        ..generator.clone()
    };
    let Ok(plan) = Plan::new(&plain) else {
        return false;
    };
    let value = match addr {
        IpAddr::V4(a) => (Family::V4, u128::from(u32::from(a))),
        IpAddr::V6(a) => (Family::V6, u128::from(a)),
    };
    let dst = &plan.dst;
    let port_drawn = proto == Protocol::Icmp
        || port == 0
        || (plan.dport.first..=plan.dport.last).contains(&u32::from(port));
    dst.family == value.0
        && (dst.first..=dst.last).contains(&value.1)
        && plan.protocols.contains(&proto)
        && port_drawn
}

/// One generated flow as a socket client makes it: its 5-tuple, the
/// payload of its first packet, and that packet (what a load balancer
/// sees first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratedFlow {
    /// 1-based, in draw order.
    pub flow: u32,
    /// TCP, UDP or ICMP.
    pub proto: Protocol,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port (ICMP: the echo identifier).
    pub sport: u16,
    /// Destination port (0 for ICMP).
    pub dport: u16,
    /// Payload bytes of the first packet.
    pub payload: usize,
    /// The first packet (a SYN for TCP), as [`expand`] makes it.
    pub first_packet: Vec<u8>,
}

/// The flows of `generator`, with the tuples, payload sizes and first
/// packets [`expand`] gives them.
pub fn flows(
    generator: &Generator,
    stream_name: &str,
) -> Result<Vec<GeneratedFlow>, GenerateError> {
    let packets = stream(generator, stream_name)?;
    let (plan, tuples) = packets.plan_and_tuples();
    if !plan.ip_lens.is_empty() {
        return Err(GenerateError {
            stream: stream_name.to_owned(),
            field: "ip_len_around",
            problem: "live clients size their own payloads: aim at lengths with test-run \
                      traffic"
                .into(),
        });
    }
    let (family, per_flow, payload) = (plan.family, plan.packets_per_flow, plan.payload);
    let tuples = tuples.to_vec();
    // Every flow's first packet, drawn as the whole stream draws them.
    let first_packets = packets
        .step_by(per_flow as usize)
        .map(|p| p.map(|p| p.bytes))
        .collect::<Result<Vec<_>, _>>()?;
    let mut payloads = rng(generator.seed, STREAM_PAYLOADS);
    let mut flows = Vec::with_capacity(tuples.len());
    for ((i, t), first_packet) in tuples.iter().enumerate().zip(first_packets) {
        let mut sizes = (0..per_flow).map(|_| payload.draw(&mut payloads));
        let first_payload = sizes.next().unwrap_or(0) as usize;
        sizes.for_each(drop);
        let addr = |a: u128| match family {
            Family::V4 => IpAddr::V4(Ipv4Addr::from(a as u32)),
            Family::V6 => IpAddr::V6(Ipv6Addr::from(a)),
        };
        flows.push(GeneratedFlow {
            flow: i as u32 + 1,
            proto: t.proto,
            src: addr(t.src),
            dst: addr(t.dst),
            sport: t.sport,
            dport: t.dport,
            payload: first_payload,
            first_packet,
        });
    }
    Ok(flows)
}

/// IPv4 or IPv6.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Family {
    const fn name(self) -> &'static str {
        match self {
            Self::V4 => "IPv4",
            Self::V6 => "IPv6",
        }
    }

    /// The block dsrlab may send to in this family, as (first, last).
    const fn allowed(self) -> (u128, u128) {
        match self {
            // 198.18.0.0/15
            Self::V4 => (0xc612_0000, 0xc613_ffff),
            // 2001:db8::/32
            Self::V6 => (0x2001_0db8 << 96, (0x2001_0db8 << 96) | ((1 << 96) - 1)),
        }
    }
}

/// The tunnel's name as written in scenario files.
const fn tunnel_name(t: Tunnel) -> &'static str {
    match t {
        Tunnel::None => "none",
        Tunnel::Ip4InIp4 => "ip4_in_ip4",
        Tunnel::Ip6InIp4 => "ip6_in_ip4",
        Tunnel::Ip4InIp6 => "ip4_in_ip6",
        Tunnel::Ip6InIp6 => "ip6_in_ip6",
        Tunnel::Gue4InIp4 => "gue4_in_ip4",
        Tunnel::Gue6InIp4 => "gue6_in_ip4",
        Tunnel::Gue4InIp6 => "gue4_in_ip6",
        Tunnel::Gue6InIp6 => "gue6_in_ip6",
    }
}

/// A tunnel's outer family, inner family and whether it is GUE; `None` for
/// no tunnel.
const fn tunnel_shape(t: Tunnel) -> Option<(Family, Family, bool)> {
    use Family::{V4, V6};
    match t {
        Tunnel::None => None,
        Tunnel::Ip4InIp4 => Some((V4, V4, false)),
        Tunnel::Ip6InIp4 => Some((V4, V6, false)),
        Tunnel::Ip4InIp6 => Some((V6, V4, false)),
        Tunnel::Ip6InIp6 => Some((V6, V6, false)),
        Tunnel::Gue4InIp4 => Some((V4, V4, true)),
        Tunnel::Gue6InIp4 => Some((V4, V6, true)),
        Tunnel::Gue4InIp6 => Some((V6, V4, true)),
        Tunnel::Gue6InIp6 => Some((V6, V6, true)),
    }
}

/// An inclusive range of addresses of one family, as integers.
#[derive(Clone, Debug)]
struct Addrs {
    family: Family,
    first: u128,
    last: u128,
    /// As written, for messages.
    text: String,
}

impl Addrs {
    /// Parses an address, a CIDR block (every address of it, network and
    /// broadcast included) or `first-last`, inside dsrlab's ranges.
    fn parse(field: &'static str, text: &str) -> Result<Self, Problem> {
        let text = text.trim();
        let bad = || {
            (
                field,
                format!("`{text}` is not an address, a CIDR block (198.18.1.0/24) or `first-last`"),
            )
        };
        let addr = |s: &str| -> Result<(Family, u128), Problem> {
            match s.trim().parse::<IpAddr>().map_err(|_| bad())? {
                IpAddr::V4(a) => Ok((Family::V4, u128::from(u32::from(a)))),
                IpAddr::V6(a) => Ok((Family::V6, u128::from(a))),
            }
        };
        let (family, first, last) = if let Some((a, p)) = text.split_once('/') {
            let (family, net) = addr(a)?;
            let bits = if family == Family::V4 { 32 } else { 128 };
            let prefix: u32 = p.trim().parse().map_err(|_| bad())?;
            if prefix > bits {
                return Err((
                    field,
                    format!("{text}: a {} prefix has at most {bits} bits", family.name()),
                ));
            }
            let host = u128::MAX.checked_shr(128 - (bits - prefix)).unwrap_or(0);
            if net & host != 0 {
                return Err((
                    field,
                    format!(
                        "{text} has host bits set: the block is {}/{prefix}",
                        show(family, net & !host)
                    ),
                ));
            }
            (family, net, net | host)
        } else if let Some((a, b)) = text.split_once('-') {
            let ((fa, first), (fb, last)) = (addr(a)?, addr(b)?);
            if fa != fb {
                return Err((field, format!("{text} mixes IPv4 and IPv6")));
            }
            if first > last {
                return Err((
                    field,
                    format!("{text} is empty: its first address comes after its last"),
                ));
            }
            (fa, first, last)
        } else {
            let (family, a) = addr(text)?;
            (family, a, a)
        };
        let (lo, hi) = family.allowed();
        if first < lo || last > hi {
            return Err((
                field,
                format!(
                    "{text} is outside 198.18.0.0/15 and 2001:db8::/32, the only ranges dsrlab sends to"
                ),
            ));
        }
        Ok(Self {
            family,
            first,
            last,
            text: text.to_owned(),
        })
    }

    fn count(&self) -> u128 {
        self.last - self.first + 1
    }

    fn draw(&self, rng: &mut ChaCha8Rng) -> u128 {
        self.first + below(rng, self.count())
    }
}

fn show(family: Family, a: u128) -> String {
    match family {
        Family::V4 => Ipv4Addr::from(a as u32).to_string(),
        Family::V6 => Ipv6Addr::from(a).to_string(),
    }
}

/// An inclusive range of numbers.
#[derive(Clone, Copy, Debug)]
struct Span {
    first: u32,
    last: u32,
}

impl Span {
    /// Parses a number or `first-last`; values above `max` are refused with
    /// `what` (`"is not a port"`).
    fn parse(field: &'static str, r: &Range, max: u32, what: &str) -> Result<Self, Problem> {
        let (first, last) = match r {
            Range::One(n) => (*n, *n),
            Range::Span(s) => {
                let num = |x: &str| {
                    x.trim()
                        .parse::<u32>()
                        .map_err(|_| (field, format!("`{s}` is not a number or `first-last`")))
                };
                match s.split_once('-') {
                    Some((a, b)) => (num(a)?, num(b)?),
                    None => (num(s)?, num(s)?),
                }
            }
        };
        if let Some(n) = [first, last].into_iter().find(|n| *n > max) {
            return Err((field, format!("{n} {what}")));
        }
        if first > last {
            return Err((field, format!("{first}-{last} is empty: {first} > {last}")));
        }
        Ok(Self { first, last })
    }

    fn count(self) -> u128 {
        u128::from(self.last - self.first) + 1
    }

    fn draw(self, rng: &mut ChaCha8Rng) -> u32 {
        // The draw is below `count`, so it fits: first + draw ≤ last.
        self.first + below(rng, self.count()) as u32
    }
}

/// A uniform draw from `0..n` (n ≥ 1), by rejection so that no value is
/// favoured; see the module docs (this is part of the format).
fn below(rng: &mut ChaCha8Rng, n: u128) -> u128 {
    debug_assert!(n > 0);
    if n <= 1 << 64 {
        let zone = (1u128 << 64) - (1u128 << 64) % n;
        loop {
            let x = u128::from(rng.next_u64());
            if x < zone {
                return x % n;
            }
        }
    } else {
        // 2^128 mod n: words at or above 2^128 - rem would favour low values.
        let rem = (u128::MAX % n + 1) % n;
        loop {
            let x = (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
            if x <= u128::MAX - rem {
                return x % n;
            }
        }
    }
}

/// ChaCha8 for `seed` on one of the streams of the module docs.
fn rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    let mut rng = ChaCha8Rng::from_seed(key);
    rng.set_stream(stream);
    rng
}

const STREAM_TUPLES: u64 = 0;
const STREAM_FLOWS: u64 = 1;
const STREAM_PAYLOADS: u64 = 2;

/// A generator checked and resolved: every range parsed, defaults filled.
#[derive(Clone, Debug)]
struct Plan {
    flows: u32,
    packets_per_flow: u32,
    tunnel: Option<Outer>,
    protocols: Vec<Protocol>,
    family: Family,
    src: Addrs,
    dst: Addrs,
    sport: Span,
    dport: Span,
    payload: Span,
    /// Inner IP packet lengths the packets take in turn (`ip_len_around`),
    /// instead of drawing payloads; empty when not given.
    ip_lens: Vec<usize>,
}

/// The outer headers of tunnelled packets.
#[derive(Clone, Debug)]
struct Outer {
    src: Addrs,
    dst: Addrs,
    /// GUE over UDP rather than IP in IP.
    gue: bool,
}

/// One flow's identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Tuple {
    proto: Protocol,
    src: u128,
    dst: u128,
    /// The ICMP echo identifier for ICMP.
    sport: u16,
    /// 0 for ICMP.
    dport: u16,
}

impl Plan {
    fn new(g: &Generator) -> Result<Self, Problem> {
        if g.flows == 0 {
            return Err(("flows", "0 flows make no packets: give at least 1".into()));
        }
        if g.packets_per_flow == 0 {
            return Err((
                "packets_per_flow",
                "0 packets per flow make no packets: give at least 1".into(),
            ));
        }
        let total = u64::from(g.flows) * u64::from(g.packets_per_flow);
        if total > MAX_PACKETS {
            return Err((
                "flows",
                format!(
                    "{} flows × {} packets per flow = {total} packets, more than the {MAX_PACKETS} one stream may generate",
                    g.flows, g.packets_per_flow
                ),
            ));
        }
        if g.protocols.is_empty() {
            return Err((
                "protocols",
                "the list is empty: name at least one of tcp, udp, icmp".into(),
            ));
        }
        let shape = tunnel_shape(g.tunnel);
        let name = tunnel_name(g.tunnel);

        let src = g
            .src
            .as_deref()
            .map(|s| Addrs::parse("src", s))
            .transpose()?;
        let dst = g
            .dst
            .as_deref()
            .map(|s| Addrs::parse("dst", s))
            .transpose()?;
        // The inner family is the tunnel's; without one, the addresses say.
        let family = match (shape, &src, &dst) {
            (Some((_, inner, _)), ..) => inner,
            (None, Some(a), _) | (None, None, Some(a)) => a.family,
            (None, None, None) => Family::V4,
        };
        for (field, a) in [("src", &src), ("dst", &dst)] {
            let Some(a) = a else { continue };
            if a.family == family {
                continue;
            }
            let why = if shape.is_some() {
                format!("tunnel {name} carries {}", family.name())
            } else {
                format!("src is {}", family.name())
            };
            return Err((
                field,
                format!("{} is {} but {why}", a.text, a.family.name()),
            ));
        }
        let (default_src, default_dst) = match family {
            Family::V4 => ("198.18.1.0/24", "198.18.2.1"),
            Family::V6 => ("2001:db8:1::/120", "2001:db8:2::1"),
        };
        let src = src.map_or_else(|| Addrs::parse("src", default_src), Ok)?;
        let dst = dst.map_or_else(|| Addrs::parse("dst", default_dst), Ok)?;

        let tunnel = match shape {
            None => {
                for (field, given) in [("outer_src", &g.outer_src), ("outer_dst", &g.outer_dst)] {
                    if given.is_some() {
                        return Err((
                            field,
                            "tunnel is none: there is no outer header to put it in".into(),
                        ));
                    }
                }
                None
            }
            Some((outer, _, gue)) => {
                let (default_src, default_dst) = match outer {
                    Family::V4 => ("198.18.0.1", "198.18.0.2"),
                    Family::V6 => ("2001:db8::1", "2001:db8::2"),
                };
                let mut ends = Vec::new();
                for (field, given, default) in [
                    ("outer_src", &g.outer_src, default_src),
                    ("outer_dst", &g.outer_dst, default_dst),
                ] {
                    let a = Addrs::parse(field, given.as_deref().unwrap_or(default))?;
                    if a.family != outer {
                        return Err((
                            field,
                            format!(
                                "{} is {} but tunnel {name} has an {} outer header",
                                a.text,
                                a.family.name(),
                                outer.name()
                            ),
                        ));
                    }
                    ends.push(a);
                }
                let dst = ends.pop().expect("two outer ranges");
                let src = ends.pop().expect("two outer ranges");
                Some(Outer { src, dst, gue })
            }
        };

        let port = |field, r: &Option<Range>, default: Range| {
            Span::parse(
                field,
                r.as_ref().unwrap_or(&default),
                65535,
                "is not a port",
            )
        };
        let plan = Self {
            flows: g.flows,
            packets_per_flow: g.packets_per_flow,
            tunnel,
            protocols: g.protocols.clone(),
            family,
            src,
            dst,
            sport: port("sport", &g.sport, Range::Span("1024-65535".into()))?,
            dport: port("dport", &g.dport, Range::One(80))?,
            payload: Span::parse(
                "payload",
                g.payload.as_ref().unwrap_or(&Range::One(16)),
                65535,
                "bytes do not fit in one packet",
            )?,
            ip_lens: ip_lens(g)?,
        };
        plan.check_capacity()?;
        check_headers(&g.headers, plan.family)?;
        Ok(plan)
    }

    /// The inner IP length of the `index`-th (0-based) packet, when the
    /// generator aims at lengths.
    fn ip_len(&self, index: usize) -> Option<usize> {
        (!self.ip_lens.is_empty()).then(|| self.ip_lens[index % self.ip_lens.len()])
    }

    /// Refuses more flows than the ranges hold distinct tuples.
    fn check_capacity(&self) -> Result<(), Problem> {
        let mut distinct: Vec<Protocol> = Vec::new();
        for p in &self.protocols {
            if !distinct.contains(p) {
                distinct.push(*p);
            }
        }
        let per_pair: u128 = distinct
            .iter()
            .map(|p| match p {
                Protocol::Icmp => self.sport.count(),
                Protocol::Tcp | Protocol::Udp => self.sport.count() * self.dport.count(),
            })
            .sum();
        let capacity = self
            .src
            .count()
            .saturating_mul(self.dst.count())
            .saturating_mul(per_pair);
        if capacity < u128::from(self.flows) {
            return Err((
                "flows",
                format!(
                    "{} distinct flows asked for, but the ranges hold only {capacity} (src {} addresses, dst {}, sport {} ports, dport {}, protocols {})",
                    self.flows,
                    self.src.count(),
                    self.dst.count(),
                    self.sport.count(),
                    self.dport.count(),
                    distinct.len()
                ),
            ));
        }
        Ok(())
    }

    /// The flows' tuples, distinct, in draw order.
    fn tuples(&self, seed: u64) -> Result<Vec<Tuple>, Problem> {
        let mut rng = rng(seed, STREAM_TUPLES);
        let n = self.flows as usize;
        // Tuples are drawn, not attacker-chosen: foldhash, not SipHash.
        let mut seen = HashSet::with_capacity_and_hasher(n, foldhash::fast::RandomState::default());
        let mut tuples = Vec::with_capacity(n);
        // Enough for any sane request (a full range costs about n·ln n
        // draws); beyond it, say so rather than spin.
        let max_tries = 64 * u64::from(self.flows) + 4096;
        let mut tries = 0u64;
        while tuples.len() < n {
            if tries == max_tries {
                return Err((
                    "flows",
                    format!(
                        "found only {} distinct flows of {} in {tries} draws: widen the address or port ranges",
                        tuples.len(),
                        self.flows
                    ),
                ));
            }
            tries += 1;
            let proto = self.protocols[below(&mut rng, self.protocols.len() as u128) as usize];
            let src = self.src.draw(&mut rng);
            let dst = self.dst.draw(&mut rng);
            let sport = self.sport.draw(&mut rng) as u16;
            let dport = match proto {
                Protocol::Icmp => 0,
                Protocol::Tcp | Protocol::Udp => self.dport.draw(&mut rng) as u16,
            };
            let t = Tuple {
                proto,
                src,
                dst,
                sport,
                dport,
            };
            if seen.insert(t) {
                tuples.push(t);
            }
        }
        Ok(tuples)
    }
}

/// `ip_len_around` as lengths, each one under, at and one over, in order.
fn ip_lens(g: &Generator) -> Result<Vec<usize>, Problem> {
    const FIELD: &str = "ip_len_around";
    let lengths = match &g.ip_len_around {
        None => return Ok(Vec::new()),
        Some(IpLenAround::Named(NamedLengths::Mtu)) => {
            return Err((
                FIELD,
                "`mtu` names the thresholds of a scenario's load balancer, which only a \
                 scenario's traffic streams know: give lengths here"
                    .into(),
            ));
        }
        Some(IpLenAround::Lengths(lengths)) => lengths,
    };
    if g.payload.is_some() {
        return Err((
            FIELD,
            "give payload or ip_len_around, not both: the lengths decide the payloads".into(),
        ));
    }
    if lengths.is_empty() {
        return Err((FIELD, "no lengths given: give at least one".into()));
    }
    let mut out = Vec::with_capacity(lengths.len() * 3);
    for &len in lengths {
        let len = len as usize;
        if !(1..65535).contains(&len) {
            return Err((
                FIELD,
                format!("{len} and one byte either side do not all fit an IP packet"),
            ));
        }
        out.extend([len - 1, len, len + 1]);
    }
    Ok(out)
}

/// An IP header with ToS / traffic class 0 and the other fields defaulted.
fn ip_layer(family: Family, src: u128, dst: u128) -> LayerSpec {
    match family {
        Family::V4 => LayerSpec::Ipv4(Ipv4Spec {
            src: Some(Ipv4Addr::from(src as u32)),
            dst: Some(Ipv4Addr::from(dst as u32)),
            tos: Some(0),
            ..Ipv4Spec::default()
        }),
        Family::V6 => LayerSpec::Ipv6(Ipv6Spec {
            src: Some(Ipv6Addr::from(src)),
            dst: Some(Ipv6Addr::from(dst)),
            tclass: Some(0),
            ..Ipv6Spec::default()
        }),
    }
}

/// The outer UDP source port of a GUE packet: a hash of the inner flow
/// (FNV-1a, written out so that it never changes), in the dynamic port range
/// 49152–65535, so that receivers spread flows over queues (RSS) the way a
/// load balancer's encapsulation lets them.
fn entropy_port(t: &Tuple) -> u16 {
    let proto: u8 = match t.proto {
        Protocol::Tcp => 6,
        Protocol::Udp => 17,
        Protocol::Icmp => 1,
    };
    let mut h: u32 = 0x811c_9dc5;
    let bytes = t
        .src
        .to_be_bytes()
        .into_iter()
        .chain(t.dst.to_be_bytes())
        .chain([proto])
        .chain(t.sport.to_be_bytes())
        .chain(t.dport.to_be_bytes());
    for b in bytes {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    49152 + (h % 16384) as u16
}
