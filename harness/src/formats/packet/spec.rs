//! Packet specs: the declarative recipe a fixture author writes, and
//! building its bytes.
//!
//! A spec is a stack of layers, outermost first. Every field is optional:
//! what is left out is derived (EtherType, protocol / next header, lengths,
//! checksums with their pseudo-headers over the enclosing IP layer, inner
//! layers of tunnels included) or defaulted (addresses from 198.18.0.0/15 and
//! 2001:db8::/32). A field that is given is written as given, however wrong:
//! that is how malformed packets are made.

use std::net::{Ipv4Addr, Ipv6Addr};

use pnet_packet::util;
use serde::{
    Deserialize,
    de::{self, IgnoredAny, MapAccess, Visitor},
};

use super::checksum::{self, word_sum};
use super::repr::{
    ArpRepr, EthRepr, GueRepr, IcmpRepr, Ipv4Repr, Ipv6ExtRepr, Ipv6Repr, Mac, TCP_FLAG_LETTERS,
    TcpRepr, UdpRepr, VlanRepr,
};

/// UDP destination port of GUE tunnels unless a spec or caller says otherwise.
pub const DEFAULT_GUE_PORT: u16 = dsrlab_abi::decap::DEFAULT_GUE_PORT;

/// EtherType given to an Ethernet header followed by no known layer
/// (IEEE 802 local experimental EtherType 1).
pub const EXPERIMENTAL_ETHERTYPE: u16 = 0x88b5;

/// IP protocol given to a payload with no known protocol (RFC 3692
/// experimentation).
pub const EXPERIMENTAL_PROTO: u8 = 253;

/// What to build: a stack of layers, optionally cut as if only the first
/// `cut` bytes had been sent, then mutations applied to the bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PacketSpec {
    /// Layers, outermost first.
    pub layers: Vec<LayerSpec>,
    /// Build only the first `cut` bytes, with the length fields (and
    /// checksums) of every header that is still whole fitted to the bytes
    /// that remain: a packet that is consistently short, unlike
    /// [`Mutation::Truncate`], which cuts bytes and leaves the headers
    /// claiming more.
    #[serde(default)]
    pub cut: Option<usize>,
    /// Changes to the built bytes, applied in order.
    #[serde(default)]
    pub mutate: Vec<Mutation>,
}

/// A change applied to built bytes.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Mutation {
    /// Keep only the first N bytes (the headers still claim the full
    /// lengths, as with a capture snaplen).
    Truncate(usize),
    /// Append bytes after everything.
    Append(Hex),
    /// Overwrite bytes at an offset.
    Set {
        /// Offset of the first byte to overwrite.
        offset: usize,
        /// The new bytes.
        hex: Hex,
    },
}

/// Bytes written as a hex string (`"0101 0a0b"`; whitespace is ignored).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hex(pub Vec<u8>);

impl std::str::FromStr for Hex {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        if digits.len() % 2 != 0 {
            return Err(format!("hex `{s}` has an odd number of digits"));
        }
        digits
            .chunks(2)
            .map(|pair| {
                std::str::from_utf8(pair)
                    .ok()
                    .and_then(|p| u8::from_str_radix(p, 16).ok())
                    .ok_or_else(|| format!("`{s}` is not hex"))
            })
            .collect::<Result<_, _>>()
            .map(Hex)
    }
}

impl<'de> Deserialize<'de> for Hex {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

/// Ethernet II header.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EthSpec {
    /// Source MAC (default 02:00:00:00:00:01).
    pub src: Option<Mac>,
    /// Destination MAC (default 02:00:00:00:00:02).
    pub dst: Option<Mac>,
    /// EtherType (default: from the next layer).
    pub ethertype: Option<u16>,
    /// Pad the whole frame with zero bytes up to this length; the padding
    /// is counted in no header, like the padding of short Ethernet frames.
    pub pad_to: Option<usize>,
}

/// 802.1Q tag.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VlanSpec {
    /// VLAN id (default 100).
    pub vid: Option<u16>,
    /// Priority code point (default 0).
    pub pcp: Option<u8>,
    /// Drop eligible (default false).
    pub dei: Option<bool>,
    /// The EtherType announcing this tag in the previous header (default
    /// 0x8100).
    pub tpid: Option<u16>,
    /// EtherType of what follows (default: from the next layer).
    pub ethertype: Option<u16>,
}

/// ARP (Ethernet/IPv4).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArpSpec {
    /// Operation (default 1, request).
    pub op: Option<u16>,
    /// Sender MAC (default 02:00:00:00:00:01).
    pub sha: Option<Mac>,
    /// Sender IPv4 (default 198.18.0.1).
    pub spa: Option<Ipv4Addr>,
    /// Target MAC (default 00:00:00:00:00:00).
    pub tha: Option<Mac>,
    /// Target IPv4 (default 198.18.0.2).
    pub tpa: Option<Ipv4Addr>,
}

/// IPv4 header.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ipv4Spec {
    /// Source (default 198.18.N.1 for the N-th IPv4 layer, from 0).
    pub src: Option<Ipv4Addr>,
    /// Destination (default 198.18.N.2).
    pub dst: Option<Ipv4Addr>,
    /// Version nibble (default 4).
    pub version: Option<u8>,
    /// IHL (default: from the options).
    pub ihl: Option<u8>,
    /// Type of service (default 0).
    pub tos: Option<u8>,
    /// Total length (default: header and everything after it).
    pub total_len: Option<u16>,
    /// Identification (default 1).
    pub id: Option<u16>,
    /// Don't fragment (default false).
    pub df: Option<bool>,
    /// More fragments (default false).
    pub mf: Option<bool>,
    /// The reserved flag (default false).
    pub rf: Option<bool>,
    /// Fragment offset in 8-byte units, as on the wire (default 0).
    pub frag: Option<u16>,
    /// Time to live (default 64).
    pub ttl: Option<u8>,
    /// Protocol (default: from the next layer).
    pub proto: Option<u8>,
    /// Header checksum (default: computed).
    pub checksum: Option<u16>,
    /// Option bytes, zero-padded (EOL) to a multiple of 4.
    pub options: Option<Hex>,
}

/// IPv6 fixed header.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ipv6Spec {
    /// Source (default 2001:db8:N::1 for the N-th IPv6 layer, from 0).
    pub src: Option<Ipv6Addr>,
    /// Destination (default 2001:db8:N::2).
    pub dst: Option<Ipv6Addr>,
    /// Version nibble (default 6).
    pub version: Option<u8>,
    /// Traffic class (default 0).
    pub tclass: Option<u8>,
    /// Flow label (default 0).
    pub flow: Option<u32>,
    /// Payload length (default: everything after the header).
    pub payload_len: Option<u16>,
    /// Next header (default: from the next layer).
    pub next_header: Option<u8>,
    /// Hop limit (default 64).
    pub hop_limit: Option<u8>,
}

/// Which IPv6 extension header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtKind {
    /// Hop-by-hop options (0).
    HopByHop,
    /// Routing (43).
    Routing,
    /// Fragment (44).
    Fragment,
    /// Destination options (60).
    DestOpts,
}

impl ExtKind {
    /// The protocol number announcing this header.
    pub const fn number(self) -> u8 {
        match self {
            Self::HopByHop => 0,
            Self::Routing => 43,
            Self::Fragment => 44,
            Self::DestOpts => 60,
        }
    }
}

/// IPv6 extension header.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ipv6ExtSpec {
    /// Which header.
    pub kind: ExtKind,
    /// Next header (default: from the next layer).
    pub next_header: Option<u8>,
    /// Header extension length byte (default: from the data; fragment: the
    /// reserved byte, 0).
    pub len: Option<u8>,
    /// Bytes after the first two (options, routing data), zero-padded to
    /// fill 8-byte units (default: a PadN option or an empty type-0 routing
    /// header). Not for fragment headers.
    pub data: Option<Hex>,
    /// Fragment: offset in 8-byte units (default 0).
    pub offset: Option<u16>,
    /// Fragment: more fragments (default false).
    pub mf: Option<bool>,
    /// Fragment: identification (default 1).
    pub ident: Option<u32>,
}

/// UDP header.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UdpSpec {
    /// Source port (default 40000).
    pub sport: Option<u16>,
    /// Destination port (default 6080 when a tunnel follows, 9 otherwise).
    pub dport: Option<u16>,
    /// Length (default: header and data).
    pub len: Option<u16>,
    /// Checksum (default: computed; 0 means none over IPv4).
    pub checksum: Option<u16>,
}

/// GUE header: variant 1 (default) writes nothing, the inner IP follows
/// UDP directly; variant 0 writes the 4-byte base header.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GueSpec {
    /// Variant (default 1).
    pub variant: Option<u8>,
    /// Variant 0: control bit (default false).
    pub control: Option<bool>,
    /// Variant 0: extension length in words; that many zero words follow
    /// (default 0).
    pub hlen: Option<u8>,
    /// Variant 0: protocol (default: from the next layer).
    pub proto: Option<u8>,
    /// Variant 0: flags (default 0).
    pub flags: Option<u16>,
}

/// TCP header.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpSpec {
    /// Source port (default 40000).
    pub sport: Option<u16>,
    /// Destination port (default 80).
    pub dport: Option<u16>,
    /// Flags as letters from `FSRPAUEC` (default `S`).
    pub flags: Option<String>,
    /// Sequence number (default 1).
    pub seq: Option<u32>,
    /// Acknowledgement number (default 0).
    pub ack: Option<u32>,
    /// Window (default 65535).
    pub window: Option<u16>,
    /// Data offset in words (default: from the options).
    pub data_offset: Option<u8>,
    /// Urgent pointer (default 0).
    pub urgent: Option<u16>,
    /// Checksum (default: computed).
    pub checksum: Option<u16>,
    /// Option bytes, zero-padded to a multiple of 4.
    pub options: Option<Hex>,
}

/// ICMP or ICMPv6 header; what follows an error type is its quoted packet.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IcmpSpec {
    /// Type (default echo request: 8, or 128 for ICMPv6).
    #[serde(rename = "type")]
    pub icmp_type: Option<u8>,
    /// Code (default 0).
    pub code: Option<u8>,
    /// Echo identifier (default 1).
    pub id: Option<u16>,
    /// Echo sequence (default 1).
    pub seq: Option<u16>,
    /// The 4 bytes after the checksum, e.g. the next-hop MTU (default: id
    /// and seq for echo types, 0 otherwise).
    pub rest: Option<u32>,
    /// Checksum (default: computed).
    pub checksum: Option<u16>,
}

/// Data bytes: exactly one of `len` (bytes 0, 1, 2, … wrapping), `hex`, `text`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayloadSpec {
    /// This many counting bytes.
    pub len: Option<usize>,
    /// These bytes.
    pub hex: Option<Hex>,
    /// The UTF-8 bytes of this text.
    pub text: Option<String>,
}

/// One layer of a [`PacketSpec`]. In YAML a layer is `kind: {fields}`, or
/// just `kind` for all defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayerSpec {
    /// Ethernet II.
    Eth(EthSpec),
    /// 802.1Q tag.
    Vlan(VlanSpec),
    /// ARP.
    Arp(ArpSpec),
    /// IPv4.
    Ipv4(Ipv4Spec),
    /// IPv6.
    Ipv6(Ipv6Spec),
    /// IPv6 extension header.
    Ipv6Ext(Ipv6ExtSpec),
    /// UDP.
    Udp(UdpSpec),
    /// GUE.
    Gue(GueSpec),
    /// TCP.
    Tcp(TcpSpec),
    /// ICMP.
    Icmp(IcmpSpec),
    /// ICMPv6.
    Icmpv6(IcmpSpec),
    /// Data.
    Payload(PayloadSpec),
}

/// The layer kinds, as written in specs and shown in dissections.
pub const LAYER_KINDS: &[&str] = &[
    "eth", "vlan", "arp", "ipv4", "ipv6", "ipv6_ext", "udp", "gue", "tcp", "icmp", "icmpv6",
    "payload",
];

impl Ipv4Spec {
    /// A header from `src` to `dst`, every other field derived.
    pub fn between(src: Ipv4Addr, dst: Ipv4Addr) -> Self {
        Self {
            src: Some(src),
            dst: Some(dst),
            ..Self::default()
        }
    }
}

impl Ipv6Spec {
    /// A header from `src` to `dst`, every other field derived.
    pub fn between(src: Ipv6Addr, dst: Ipv6Addr) -> Self {
        Self {
            src: Some(src),
            dst: Some(dst),
            ..Self::default()
        }
    }
}

impl LayerSpec {
    /// A TCP header with these ports and flags (`"S"`, `"SA"`, `"A"` ...),
    /// every other field derived.
    pub fn tcp(sport: u16, dport: u16, flags: &str) -> Self {
        Self::Tcp(TcpSpec {
            sport: Some(sport),
            dport: Some(dport),
            flags: Some(flags.into()),
            ..TcpSpec::default()
        })
    }

    /// A UDP header with these ports, every other field derived.
    pub fn udp(sport: u16, dport: u16) -> Self {
        Self::Udp(UdpSpec {
            sport: Some(sport),
            dport: Some(dport),
            ..UdpSpec::default()
        })
    }

    /// The kind name (`ipv4`).
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::Eth(_) => "eth",
            Self::Vlan(_) => "vlan",
            Self::Arp(_) => "arp",
            Self::Ipv4(_) => "ipv4",
            Self::Ipv6(_) => "ipv6",
            Self::Ipv6Ext(_) => "ipv6_ext",
            Self::Udp(_) => "udp",
            Self::Gue(_) => "gue",
            Self::Tcp(_) => "tcp",
            Self::Icmp(_) => "icmp",
            Self::Icmpv6(_) => "icmpv6",
            Self::Payload(_) => "payload",
        }
    }

    fn from_map_value<'de, A: MapAccess<'de>>(kind: &str, map: &mut A) -> Result<Self, A::Error> {
        fn v<'de, T: Deserialize<'de> + Default, A: MapAccess<'de>>(
            map: &mut A,
        ) -> Result<T, A::Error> {
            Ok(map.next_value::<Option<T>>()?.unwrap_or_default())
        }
        Ok(match kind {
            "eth" => Self::Eth(v(map)?),
            "vlan" => Self::Vlan(v(map)?),
            "arp" => Self::Arp(v(map)?),
            "ipv4" => Self::Ipv4(v(map)?),
            "ipv6" => Self::Ipv6(v(map)?),
            "ipv6_ext" => Self::Ipv6Ext(map.next_value()?),
            "udp" => Self::Udp(v(map)?),
            "gue" => Self::Gue(v(map)?),
            "tcp" => Self::Tcp(v(map)?),
            "icmp" => Self::Icmp(v(map)?),
            "icmpv6" => Self::Icmpv6(v(map)?),
            "payload" => Self::Payload(v(map)?),
            other => return Err(de::Error::unknown_variant(other, LAYER_KINDS)),
        })
    }

    fn bare(kind: &str) -> Option<Self> {
        Some(match kind {
            "eth" => Self::Eth(EthSpec::default()),
            "vlan" => Self::Vlan(VlanSpec::default()),
            "arp" => Self::Arp(ArpSpec::default()),
            "ipv4" => Self::Ipv4(Ipv4Spec::default()),
            "ipv6" => Self::Ipv6(Ipv6Spec::default()),
            "udp" => Self::Udp(UdpSpec::default()),
            "gue" => Self::Gue(GueSpec::default()),
            "tcp" => Self::Tcp(TcpSpec::default()),
            "icmp" => Self::Icmp(IcmpSpec::default()),
            "icmpv6" => Self::Icmpv6(IcmpSpec::default()),
            _ => return None,
        })
    }
}

impl<'de> Deserialize<'de> for LayerSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct LayerVisitor;
        impl<'de> Visitor<'de> for LayerVisitor {
            type Value = LayerSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a layer: `kind` or `kind: {fields}` with kind one of eth, vlan, arp, ipv4, ipv6, ipv6_ext, udp, gue, tcp, icmp, icmpv6, payload")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<LayerSpec, E> {
                LayerSpec::bare(s).ok_or_else(|| {
                    if LAYER_KINDS.contains(&s) {
                        E::custom(format!("layer `{s}` needs fields: `{s}: {{...}}`"))
                    } else {
                        E::unknown_variant(s, LAYER_KINDS)
                    }
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LayerSpec, A::Error> {
                let Some(kind) = map.next_key::<String>()? else {
                    return Err(de::Error::custom("empty layer: write `kind: {fields}`"));
                };
                let layer = LayerSpec::from_map_value(&kind, &mut map)?;
                if map.next_key::<IgnoredAny>()?.is_some() {
                    return Err(de::Error::custom(format!(
                        "a layer has exactly one kind; start a new list item for the layer after `{kind}`"
                    )));
                }
                Ok(layer)
            }
        }
        d.deserialize_any(LayerVisitor)
    }
}

/// Why a spec could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BuildError(pub String);

/// A built packet and where each layer of the spec went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Built {
    /// The bytes (after the cut and the mutations).
    pub bytes: Vec<u8>,
    /// One entry per spec layer, in order.
    pub layers: Vec<BuiltLayer>,
}

/// Where one spec layer went in a built packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuiltLayer {
    /// `ipv4`, or `ipv4[1]` when the stack has several.
    pub label: String,
    /// The kind.
    pub kind: &'static str,
    /// Offset of its first byte.
    pub offset: usize,
    /// Bytes of its own header (a payload's: all of it).
    pub header_len: usize,
    /// Offset after the last byte it covers (header and what it carries) as
    /// built, before mutations: where an IP layer's length ends. In a cut
    /// packet, layers whose header was cut (and those after them) end where
    /// they start.
    pub end: usize,
}

/// Labels of a stack of kinds: the kind, with `[i]` (from 0) when the kind
/// occurs more than once.
pub fn labels(kinds: &[&str]) -> Vec<String> {
    let mut seen = std::collections::HashMap::<&str, usize>::new();
    kinds
        .iter()
        .map(|k| {
            let total = kinds.iter().filter(|x| *x == k).count();
            let n = seen.entry(k).or_default();
            *n += 1;
            if total > 1 {
                format!("{k}[{}]", *n - 1)
            } else {
                (*k).to_owned()
            }
        })
        .collect()
}

impl PacketSpec {
    /// Builds the packet.
    pub fn build(&self) -> Result<Vec<u8>, BuildError> {
        Ok(self.build_with_offsets()?.0)
    }

    /// Builds the packet and says where each layer starts: what generators
    /// need, without [`Self::build_detailed`]'s labels.
    pub fn build_with_offsets(&self) -> Result<(Vec<u8>, Vec<usize>), BuildError> {
        let resolved = resolve(&self.layers);
        self.build_resolved(&resolved)
    }

    /// [`Self::build_with_offsets`] of a spec no longer needed: its layers
    /// are resolved where they are instead of copied (a generated stream
    /// builds one spec per packet).
    pub fn into_bytes_with_offsets(mut self) -> Result<(Vec<u8>, Vec<usize>), BuildError> {
        let mut layers = std::mem::take(&mut self.layers);
        resolve_in_place(&mut layers);
        self.build_resolved(&layers)
    }

    fn build_resolved(&self, resolved: &[LayerSpec]) -> Result<(Vec<u8>, Vec<usize>), BuildError> {
        let b = Builder::new(resolved)?;
        let offsets = b.offsets();
        let mut ends = vec![0; resolved.len()];
        Ok((self.finish(&b, &mut ends)?, offsets))
    }

    /// The bytes `b` emits, cut and mutated as the spec says; `ends` gets
    /// where each layer ends.
    fn finish(&self, b: &Builder<'_>, ends: &mut [usize]) -> Result<Vec<u8>, BuildError> {
        let full = b.emit(0, None, ends)?;
        let mut bytes = match self.cut {
            None => full,
            Some(cut) if cut > full.len() => {
                return Err(BuildError(format!(
                    "cut {cut}: the packet has only {} bytes",
                    full.len()
                )));
            }
            Some(cut) => {
                ends.fill(0);
                b.emit(0, Some(cut), ends)?
            }
        };
        for (i, m) in self.mutate.iter().enumerate() {
            apply(m, &mut bytes).map_err(|e| BuildError(format!("mutation {}: {e}", i + 1)))?;
        }
        Ok(bytes)
    }

    /// Builds the packet and says where each layer went.
    pub fn build_detailed(&self) -> Result<Built, BuildError> {
        let resolved = resolve(&self.layers);
        let b = Builder::new(&resolved)?;
        let offsets = b.offsets();
        let mut ends = vec![0; resolved.len()];
        let bytes = self.finish(&b, &mut ends)?;
        let kinds: Vec<&str> = resolved.iter().map(LayerSpec::kind).collect();
        let layers = labels(&kinds)
            .into_iter()
            .enumerate()
            .map(|(i, label)| BuiltLayer {
                label,
                kind: kinds[i],
                offset: offsets[i],
                header_len: b.header_len(i),
                end: offsets[i] + ends[i],
            })
            .collect();
        Ok(Built { bytes, layers })
    }

    /// The spec with every position-dependent default (addresses, MACs)
    /// written out, so that a sub-stack builds the same bytes as it does
    /// inside the whole stack.
    pub fn resolved(&self) -> PacketSpec {
        PacketSpec {
            layers: resolve(&self.layers),
            cut: self.cut,
            mutate: self.mutate.clone(),
        }
    }
}

fn apply(m: &Mutation, bytes: &mut Vec<u8>) -> Result<(), String> {
    match m {
        Mutation::Truncate(n) if *n > bytes.len() => Err(format!(
            "truncate {n}: the packet has only {} bytes",
            bytes.len()
        )),
        Mutation::Truncate(n) => {
            bytes.truncate(*n);
            Ok(())
        }
        Mutation::Append(h) => {
            bytes.extend_from_slice(&h.0);
            Ok(())
        }
        Mutation::Set { offset, hex } => {
            let end = offset.saturating_add(hex.0.len());
            let len = bytes.len();
            let dst = bytes
                .get_mut(*offset..end)
                .ok_or_else(|| format!("set {offset}..{end}: the packet has only {len} bytes"))?;
            dst.copy_from_slice(&hex.0);
            Ok(())
        }
    }
}

/// Fills addresses and MACs: they depend on the layer's position among its
/// kind, which a sub-stack would not know.
fn resolve(layers: &[LayerSpec]) -> Vec<LayerSpec> {
    let mut layers = layers.to_vec();
    resolve_in_place(&mut layers);
    layers
}

/// [`resolve`] without a copy.
fn resolve_in_place(layers: &mut [LayerSpec]) {
    let (mut n4, mut n6) = (0u8, 0u16);
    for l in layers {
        match l {
            LayerSpec::Eth(e) => {
                e.src.get_or_insert(Mac([2, 0, 0, 0, 0, 1]));
                e.dst.get_or_insert(Mac([2, 0, 0, 0, 0, 2]));
            }
            LayerSpec::Arp(a) => {
                a.sha.get_or_insert(Mac([2, 0, 0, 0, 0, 1]));
                a.tha.get_or_insert(Mac::default());
                a.spa.get_or_insert(Ipv4Addr::new(198, 18, 0, 1));
                a.tpa.get_or_insert(Ipv4Addr::new(198, 18, 0, 2));
            }
            LayerSpec::Ipv4(ip) => {
                ip.src.get_or_insert(Ipv4Addr::new(198, 18, n4, 1));
                ip.dst.get_or_insert(Ipv4Addr::new(198, 18, n4, 2));
                n4 = n4.wrapping_add(1);
            }
            LayerSpec::Ipv6(ip) => {
                ip.src
                    .get_or_insert(Ipv6Addr::new(0x2001, 0xdb8, n6, 0, 0, 0, 0, 1));
                ip.dst
                    .get_or_insert(Ipv6Addr::new(0x2001, 0xdb8, n6, 0, 0, 0, 0, 2));
                n6 = n6.wrapping_add(1);
            }
            _ => {}
        }
    }
}

fn pad_to_multiple(mut b: Vec<u8>, m: usize) -> Vec<u8> {
    b.resize(b.len().div_ceil(m) * m, 0);
    b
}

fn tcp_flags(s: &str) -> Result<u8, String> {
    s.chars().try_fold(0u8, |acc, c| {
        TCP_FLAG_LETTERS
            .iter()
            .position(|l| *l == c.to_ascii_uppercase())
            .map(|i| acc | (1 << i))
            .ok_or_else(|| format!("TCP flag `{c}` is not one of FSRPAUEC"))
    })
}

/// Checksum over an L4 message, its `header` (checksum field zero) and
/// the `inner` bytes it carries, with the pseudo-header of the IP layer
/// enclosing it (plain sum when there is none). The two parts are summed
/// where they are: copying the message once per header made checksums a
/// generated stream's largest cost. (pnet's `extra_data` argument would
/// do it, but drops an odd last byte of it.)
fn l4_checksum(enclosing: Option<&LayerSpec>, header: &[u8], inner: &[u8], proto: u8) -> u16 {
    let len = (header.len() + inner.len()) as u64;
    let pseudo = match enclosing {
        Some(LayerSpec::Ipv4(ip)) => {
            let addr = |a: Option<Ipv4Addr>| word_sum(&a.unwrap_or(Ipv4Addr::UNSPECIFIED).octets());
            addr(ip.src) + addr(ip.dst) + u64::from(proto) + len
        }
        Some(LayerSpec::Ipv6(ip)) => {
            let addr = |a: Option<Ipv6Addr>| word_sum(&a.unwrap_or(Ipv6Addr::UNSPECIFIED).octets());
            addr(ip.src) + addr(ip.dst) + u64::from(proto) + (len >> 16) + (len & 0xffff)
        }
        _ => 0,
    };
    checksum::finish(pseudo + word_sum(header) + word_sum(inner))
}

/// The Internet checksum (RFC 1071) of `header` (even length) followed by
/// `inner`, without a pseudo-header.
fn plain_checksum(header: &[u8], inner: &[u8]) -> u16 {
    checksum::finish(word_sum(header) + word_sum(inner))
}

/// A `len:` payload's bytes: 0, 1, 2, … wrapping at 256.
fn counting_bytes(dst: &mut [u8]) {
    for (i, b) in dst.iter_mut().enumerate() {
        *b = i as u8;
    }
}

struct Builder<'a> {
    layers: &'a [LayerSpec],
    /// Each layer's header length (a payload's whole length).
    lens: Vec<usize>,
}

impl<'a> Builder<'a> {
    fn new(layers: &'a [LayerSpec]) -> Result<Self, BuildError> {
        let mut b = Builder {
            layers,
            lens: Vec::with_capacity(layers.len()),
        };
        for i in 0..layers.len() {
            let len = b.planned_len(i)?;
            b.lens.push(len);
        }
        Ok(b)
    }

    fn err(&self, i: usize, what: impl std::fmt::Display) -> BuildError {
        BuildError(format!(
            "layer {} ({}): {what}",
            i + 1,
            self.layers[i].kind()
        ))
    }

    fn offsets(&self) -> Vec<usize> {
        let mut off = 0;
        self.lens
            .iter()
            .map(|len| {
                let o = off;
                off += len;
                o
            })
            .collect()
    }

    /// Layer `i`'s header length (a payload's whole length).
    fn header_len(&self, i: usize) -> usize {
        self.lens[i]
    }

    fn payload_len(&self, i: usize, p: &PayloadSpec) -> Result<usize, BuildError> {
        match (&p.len, &p.hex, &p.text) {
            (Some(n), None, None) => Ok(*n),
            (None, Some(h), None) => Ok(h.0.len()),
            (None, None, Some(t)) => Ok(t.len()),
            _ => Err(self.err(i, "give exactly one of len, hex, text")),
        }
    }

    fn payload_bytes(&self, i: usize, p: &PayloadSpec) -> Result<Vec<u8>, BuildError> {
        match (&p.len, &p.hex, &p.text) {
            (Some(n), None, None) => {
                let mut bytes = vec![0; *n];
                counting_bytes(&mut bytes);
                Ok(bytes)
            }
            (None, Some(h), None) => Ok(h.0.clone()),
            (None, None, Some(t)) => Ok(t.as_bytes().to_vec()),
            _ => Err(self.err(i, "give exactly one of len, hex, text")),
        }
    }

    fn ext_body(&self, e: &Ipv6ExtSpec) -> Vec<u8> {
        match (e.kind, &e.data) {
            (ExtKind::Fragment, _) => {
                let off = (e.offset.unwrap_or(0) << 3) | u16::from(e.mf.unwrap_or(false));
                let mut b = off.to_be_bytes().to_vec();
                b.extend_from_slice(&e.ident.unwrap_or(1).to_be_bytes());
                b
            }
            (_, Some(d)) => {
                let mut b = d.0.clone();
                b.resize((b.len() + 2).div_ceil(8) * 8 - 2, 0);
                b
            }
            // PadN filling the 6 bytes: a valid, empty options header.
            (ExtKind::HopByHop | ExtKind::DestOpts, None) => vec![1, 4, 0, 0, 0, 0],
            // Type 0, segments left 0: ignored by any receiver.
            (ExtKind::Routing, None) => vec![0; 6],
        }
    }

    fn planned_len(&self, i: usize) -> Result<usize, BuildError> {
        Ok(match &self.layers[i] {
            LayerSpec::Eth(_) => EthRepr::LEN,
            LayerSpec::Vlan(_) => VlanRepr::LEN,
            LayerSpec::Arp(_) => ArpRepr::LEN,
            LayerSpec::Ipv4(ip) => {
                20 + ip.options.as_ref().map_or(0, |o| o.0.len().div_ceil(4) * 4)
            }
            LayerSpec::Ipv6(_) => Ipv6Repr::LEN,
            LayerSpec::Ipv6Ext(e) => 2 + self.ext_body(e).len(),
            LayerSpec::Udp(_) => UdpRepr::LEN,
            LayerSpec::Gue(g) => match g.variant.unwrap_or(1) {
                1 => 0,
                _ => GueRepr::V0_LEN + 4 * usize::from(g.hlen.unwrap_or(0)),
            },
            LayerSpec::Tcp(t) => 20 + t.options.as_ref().map_or(0, |o| o.0.len().div_ceil(4) * 4),
            LayerSpec::Icmp(_) | LayerSpec::Icmpv6(_) => IcmpRepr::LEN,
            LayerSpec::Payload(p) => self.payload_len(i, p)?,
        })
    }

    /// The EtherType announcing layer `i` (experimental when it is no
    /// EtherType payload).
    fn ethertype_of(&self, i: usize) -> u16 {
        match self.layers.get(i) {
            Some(LayerSpec::Ipv4(_)) => 0x0800,
            Some(LayerSpec::Ipv6(_)) => 0x86dd,
            Some(LayerSpec::Arp(_)) => 0x0806,
            Some(LayerSpec::Vlan(v)) => v.tpid.unwrap_or(0x8100),
            _ => EXPERIMENTAL_ETHERTYPE,
        }
    }

    /// The protocol number announcing layer `i` after an IP header.
    fn proto_of(&self, i: usize, v6: bool) -> u8 {
        match self.layers.get(i) {
            Some(LayerSpec::Ipv4(_)) => 4,
            Some(LayerSpec::Ipv6(_)) => 41,
            Some(LayerSpec::Tcp(_)) => 6,
            Some(LayerSpec::Udp(_)) => 17,
            Some(LayerSpec::Icmp(_)) => 1,
            Some(LayerSpec::Icmpv6(_)) => 58,
            Some(LayerSpec::Ipv6Ext(e)) => e.kind.number(),
            None if v6 => 59,
            _ => EXPERIMENTAL_PROTO,
        }
    }

    fn enclosing_ip(&self, i: usize) -> Option<&LayerSpec> {
        self.layers[..i]
            .iter()
            .rev()
            .find(|l| matches!(l, LayerSpec::Ipv4(_) | LayerSpec::Ipv6(_)))
    }

    /// Layers `i..` as bytes, at most `limit` of them, with every header
    /// that fits whole describing what is left. `ends[j]` receives where
    /// layer j ends.
    fn emit(
        &self,
        i: usize,
        limit: Option<usize>,
        ends: &mut [usize],
    ) -> Result<Vec<u8>, BuildError> {
        if i == 0
            && limit.is_none()
            && let Some(bytes) = self.emit_in_place(ends)?
        {
            return Ok(bytes);
        }
        let Some(layer) = self.layers.get(i) else {
            return Ok(Vec::new());
        };
        let h = self.header_len(i);
        let fits = limit.is_none_or(|l| l >= h);
        let inner = if fits {
            self.emit(i + 1, limit.map(|l| l - h), ends)?
        } else {
            // A header that is itself cut keeps the values of the whole
            // packet: the bytes that survive are those of the original.
            self.emit(i + 1, None, &mut vec![0; self.layers.len()])?
        };
        let mut out = self.header(i, layer, &inner)?;
        out.extend_from_slice(&inner);
        if fits {
            ends[i] = out.len();
        }
        if let LayerSpec::Eth(e) = layer
            && let Some(p) = e.pad_to
            && out.len() < p
        {
            out.resize(p, 0);
        }
        if let Some(l) = limit {
            out.truncate(l);
        }
        Ok(out)
    }

    /// The whole uncut packet in one buffer, innermost layer first, each
    /// header written in front of the bytes it carries: the same bytes as
    /// [`Self::emit`]'s layer-by-layer concatenation without copying the
    /// inner bytes once per layer (generated streams build a packet per
    /// packet run). `None` where that is not the same: an Ethernet layer
    /// padded to a length inside the stack, or a header whose length is
    /// not the one planned.
    fn emit_in_place(&self, ends: &mut [usize]) -> Result<Option<Vec<u8>>, BuildError> {
        let padded_inside = self
            .layers
            .iter()
            .skip(1)
            .any(|l| matches!(l, LayerSpec::Eth(e) if e.pad_to.is_some()));
        if padded_inside {
            return Ok(None);
        }
        let total: usize = self.lens.iter().sum();
        let mut buf = vec![0u8; total];
        // Room for the longest fixed header (IPv6, or IPv4/TCP with
        // options) without growing.
        let mut header = Vec::with_capacity(64);
        let mut start = total;
        for (i, layer) in self.layers.iter().enumerate().rev() {
            let h = self.header_len(i);
            start -= h;
            let (head, inner) = buf.split_at_mut(start + h);
            let dst = &mut head[start..];
            if let LayerSpec::Payload(PayloadSpec {
                len: Some(_),
                hex: None,
                text: None,
            }) = layer
            {
                counting_bytes(dst);
            } else {
                header.clear();
                self.header_into(i, layer, inner, &mut header)?;
                if header.len() != h {
                    return Ok(None);
                }
                dst.copy_from_slice(&header);
            }
            ends[i] = total - start;
        }
        if let Some(LayerSpec::Eth(e)) = self.layers.first()
            && let Some(p) = e.pad_to
            && buf.len() < p
        {
            buf.resize(p, 0);
        }
        Ok(Some(buf))
    }

    fn len16(&self, i: usize, n: usize) -> Result<u16, BuildError> {
        u16::try_from(n).map_err(|_| self.err(i, format!("length {n} does not fit in 16 bits")))
    }

    /// The header of layer `i` carrying `inner`, derived fields filled.
    fn header(&self, i: usize, layer: &LayerSpec, inner: &[u8]) -> Result<Vec<u8>, BuildError> {
        let mut out = Vec::new();
        self.header_into(i, layer, inner, &mut out)?;
        Ok(out)
    }

    /// [`Self::header`] appended to `out` (empty: checksums cover it).
    fn header_into(
        &self,
        i: usize,
        layer: &LayerSpec,
        inner: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), BuildError> {
        match layer {
            LayerSpec::Eth(e) => EthRepr {
                dst: e.dst.unwrap_or_default(),
                src: e.src.unwrap_or_default(),
                ethertype: e.ethertype.unwrap_or_else(|| self.ethertype_of(i + 1)),
            }
            .emit(out),
            LayerSpec::Vlan(v) => VlanRepr {
                pcp: v.pcp.unwrap_or(0),
                dei: v.dei.unwrap_or(false),
                vid: v.vid.unwrap_or(100),
                ethertype: v.ethertype.unwrap_or_else(|| self.ethertype_of(i + 1)),
            }
            .emit(out),
            LayerSpec::Arp(a) => ArpRepr {
                op: a.op.unwrap_or(1),
                sha: a.sha.unwrap_or_default(),
                spa: a.spa.unwrap_or(Ipv4Addr::UNSPECIFIED),
                tha: a.tha.unwrap_or_default(),
                tpa: a.tpa.unwrap_or(Ipv4Addr::UNSPECIFIED),
            }
            .emit(out),
            LayerSpec::Ipv4(ip) => {
                let options = pad_to_multiple(ip.options.clone().unwrap_or_default().0, 4);
                let hl = 20 + options.len();
                if hl > 60 {
                    return Err(self.err(i, format!("{} option bytes exceed 40", options.len())));
                }
                let flags = (u8::from(ip.rf.unwrap_or(false)) << 2)
                    | (u8::from(ip.df.unwrap_or(false)) << 1)
                    | u8::from(ip.mf.unwrap_or(false));
                let repr = Ipv4Repr {
                    version: ip.version.unwrap_or(4),
                    ihl: ip.ihl.unwrap_or((hl / 4) as u8),
                    tos: ip.tos.unwrap_or(0),
                    total_len: match ip.total_len {
                        Some(t) => t,
                        None => self.len16(i, hl + inner.len())?,
                    },
                    id: ip.id.unwrap_or(1),
                    flags,
                    frag_offset: ip.frag.unwrap_or(0),
                    ttl: ip.ttl.unwrap_or(64),
                    proto: ip.proto.unwrap_or_else(|| self.proto_of(i + 1, false)),
                    checksum: 0,
                    src: ip.src.unwrap_or(Ipv4Addr::UNSPECIFIED),
                    dst: ip.dst.unwrap_or(Ipv4Addr::UNSPECIFIED),
                    options,
                };
                repr.emit(out);
                let csum = ip
                    .checksum
                    .unwrap_or_else(|| util::checksum(out, Ipv4Repr::CHECKSUM_WORD));
                out[10..12].copy_from_slice(&csum.to_be_bytes());
            }
            LayerSpec::Ipv6(ip) => Ipv6Repr {
                version: ip.version.unwrap_or(6),
                tclass: ip.tclass.unwrap_or(0),
                flow: ip.flow.unwrap_or(0),
                payload_len: match ip.payload_len {
                    Some(p) => p,
                    None => self.len16(i, inner.len())?,
                },
                next_header: ip.next_header.unwrap_or_else(|| self.proto_of(i + 1, true)),
                hop_limit: ip.hop_limit.unwrap_or(64),
                src: ip.src.unwrap_or(Ipv6Addr::UNSPECIFIED),
                dst: ip.dst.unwrap_or(Ipv6Addr::UNSPECIFIED),
            }
            .emit(out),
            LayerSpec::Ipv6Ext(e) => {
                let body = self.ext_body(e);
                if e.kind == ExtKind::Fragment && e.data.is_some() {
                    return Err(
                        self.err(i, "a fragment header takes offset, mf and ident, not data")
                    );
                }
                let auto_len = if e.kind == ExtKind::Fragment {
                    0
                } else {
                    ((body.len() + 2) / 8 - 1) as u8
                };
                Ipv6ExtRepr {
                    kind: e.kind.number(),
                    next_header: e.next_header.unwrap_or_else(|| self.proto_of(i + 1, true)),
                    len: e.len.unwrap_or(auto_len),
                    body,
                }
                .emit(out);
            }
            LayerSpec::Udp(u) => {
                let tunnel = matches!(
                    self.layers.get(i + 1),
                    Some(LayerSpec::Gue(_) | LayerSpec::Ipv4(_) | LayerSpec::Ipv6(_))
                );
                UdpRepr {
                    sport: u.sport.unwrap_or(40000),
                    dport: u.dport.unwrap_or(if tunnel { DEFAULT_GUE_PORT } else { 9 }),
                    len: match u.len {
                        Some(l) => l,
                        None => self.len16(i, UdpRepr::LEN + inner.len())?,
                    },
                    checksum: 0,
                }
                .emit(out);
                let csum = u.checksum.unwrap_or_else(|| {
                    match l4_checksum(self.enclosing_ip(i), out, inner, 17) {
                        // 0 means "no checksum": a sum of 0 is sent as all ones.
                        0 => 0xffff,
                        c => c,
                    }
                });
                out[6..8].copy_from_slice(&csum.to_be_bytes());
            }
            LayerSpec::Gue(g) => {
                let variant = g.variant.unwrap_or(1);
                if variant > 3 {
                    return Err(self.err(i, format!("variant {variant} does not fit in 2 bits")));
                }
                let hlen = g.hlen.unwrap_or(0);
                GueRepr {
                    variant,
                    control: g.control.unwrap_or(false),
                    hlen,
                    proto: g.proto.unwrap_or_else(|| self.proto_of(i + 1, false)),
                    flags: g.flags.unwrap_or(0),
                }
                .emit(out);
                if variant != 1 {
                    out.resize(out.len() + 4 * usize::from(hlen), 0);
                }
            }
            LayerSpec::Tcp(t) => {
                let options = pad_to_multiple(t.options.clone().unwrap_or_default().0, 4);
                let hl = 20 + options.len();
                if hl > 60 {
                    return Err(self.err(i, format!("{} option bytes exceed 40", options.len())));
                }
                TcpRepr {
                    sport: t.sport.unwrap_or(40000),
                    dport: t.dport.unwrap_or(80),
                    seq: t.seq.unwrap_or(1),
                    ack: t.ack.unwrap_or(0),
                    data_offset: t.data_offset.unwrap_or((hl / 4) as u8),
                    reserved: 0,
                    flags: tcp_flags(t.flags.as_deref().unwrap_or("S"))
                        .map_err(|e| self.err(i, e))?,
                    window: t.window.unwrap_or(65535),
                    checksum: 0,
                    urgent: t.urgent.unwrap_or(0),
                    options,
                }
                .emit(out);
                let csum = t
                    .checksum
                    .unwrap_or_else(|| l4_checksum(self.enclosing_ip(i), out, inner, 6));
                out[16..18].copy_from_slice(&csum.to_be_bytes());
            }
            LayerSpec::Icmp(c) | LayerSpec::Icmpv6(c) => {
                let v6 = matches!(layer, LayerSpec::Icmpv6(_));
                let icmp_type = c.icmp_type.unwrap_or(if v6 { 128 } else { 8 });
                let mut repr = IcmpRepr {
                    v6,
                    icmp_type,
                    code: c.code.unwrap_or(0),
                    checksum: 0,
                    rest: 0,
                };
                repr.rest = c.rest.unwrap_or_else(|| {
                    if repr.is_echo() {
                        (u32::from(c.id.unwrap_or(1)) << 16) | u32::from(c.seq.unwrap_or(1))
                    } else {
                        0
                    }
                });
                repr.emit(out);
                let csum = c.checksum.unwrap_or_else(|| {
                    if v6 {
                        l4_checksum(self.enclosing_ip(i), out, inner, 58)
                    } else {
                        plain_checksum(out, inner)
                    }
                });
                out[2..4].copy_from_slice(&csum.to_be_bytes());
            }
            LayerSpec::Payload(p) => *out = self.payload_bytes(i, p)?,
        }
        Ok(())
    }
}
