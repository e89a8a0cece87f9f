//! Owned representations of headers: the meaning of every field, emitted to
//! and parsed from the wire through pnet_packet's views.
//!
//! A representation holds the wire values as they are, invalid ones included
//! (an IHL of 4, a wrong version), so that what is parsed can be shown and
//! compared. Each one lists its [`Field`]s; the dissection's text and the
//! diff are both made from that list, so a snapshot shows exactly what the
//! diff compares.

use std::{
    fmt,
    net::{Ipv4Addr, Ipv6Addr},
    str::FromStr,
};

use pnet_packet::{
    icmp::{IcmpPacket, IcmpTypes, MutableIcmpPacket},
    icmpv6::{Icmpv6Packet, MutableIcmpv6Packet},
    ipv4::{Ipv4Packet, MutableIpv4Packet},
    ipv6::{Ipv6Packet, MutableIpv6Packet},
    tcp::{MutableTcpPacket, TcpPacket},
    udp::{MutableUdpPacket, UdpPacket},
};

/// How a field appears in a dissection line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Show {
    /// The value alone (`198.18.0.1`, `[S]`).
    Bare,
    /// `name value` (`ttl 64`).
    Named,
    /// `> value`, for the destination after a source.
    Arrow,
    /// `value unit` (`12 bytes`).
    Unit(&'static str),
    /// Not shown (it has its usual value) but still compared by the diff.
    Hidden,
}

/// One field of a header as shown and compared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// The name used in diffs (`ttl`, `csum`).
    pub name: &'static str,
    /// The value as text.
    pub value: String,
    /// How the dissection line shows it.
    pub show: Show,
}

impl Field {
    fn new(name: &'static str, value: impl ToString, show: Show) -> Self {
        Self {
            name,
            value: value.to_string(),
            show,
        }
    }
    fn named(name: &'static str, value: impl ToString) -> Self {
        Self::new(name, value, Show::Named)
    }
    fn bare(name: &'static str, value: impl ToString) -> Self {
        Self::new(name, value, Show::Bare)
    }
    /// Named when `shown`, hidden otherwise: fields that are only worth a
    /// reader's attention when unusual.
    fn named_if(shown: bool, name: &'static str, value: impl ToString) -> Self {
        Self::new(name, value, if shown { Show::Named } else { Show::Hidden })
    }
}

/// Writes the shown fields of a line, each preceded by a space.
pub(crate) fn write_fields(f: &mut fmt::Formatter<'_>, fields: &[Field]) -> fmt::Result {
    for field in fields {
        match field.show {
            Show::Bare => write!(f, " {}", field.value)?,
            Show::Named => write!(f, " {} {}", field.name, field.value)?,
            Show::Arrow => write!(f, " > {}", field.value)?,
            Show::Unit(unit) => write!(f, " {} {unit}", field.value)?,
            Show::Hidden => {}
        }
    }
    Ok(())
}

/// An Ethernet MAC address, written `02:00:00:00:00:01`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    fn from_pnet(m: pnet_base::MacAddr) -> Self {
        Self(m.octets())
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl FromStr for Mac {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut out = [0u8; 6];
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 6 {
            return Err(format!("`{s}` is not a MAC address like 02:00:00:00:00:01"));
        }
        for (o, p) in out.iter_mut().zip(parts) {
            *o = u8::from_str_radix(p, 16)
                .map_err(|_| format!("`{s}` is not a MAC address like 02:00:00:00:00:01"))?;
        }
        Ok(Self(out))
    }
}

impl<'de> serde::Deserialize<'de> for Mac {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The name of an EtherType, or its number.
pub fn ethertype_name(t: u16) -> String {
    match t {
        0x0800 => "ipv4".into(),
        0x86dd => "ipv6".into(),
        0x0806 => "arp".into(),
        0x8100 => "vlan".into(),
        0x88a8 => "qinq".into(),
        other => format!("0x{other:04x}"),
    }
}

/// The name of an IP protocol / next header, or its number.
pub fn proto_name(p: u8) -> String {
    match p {
        0 => "hop_by_hop".into(),
        1 => "icmp".into(),
        4 => "ipip".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        41 => "ipv6".into(),
        43 => "routing".into(),
        44 => "fragment".into(),
        47 => "gre".into(),
        50 => "esp".into(),
        51 => "ah".into(),
        58 => "icmpv6".into(),
        59 => "none".into(),
        60 => "dest_opts".into(),
        other => other.to_string(),
    }
}

/// Ethernet II header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EthRepr {
    /// Destination MAC.
    pub dst: Mac,
    /// Source MAC.
    pub src: Mac,
    /// EtherType of what follows.
    pub ethertype: u16,
}

impl EthRepr {
    /// Header length.
    pub const LEN: usize = 14;

    /// Parses the first 14 bytes; `None` when there are fewer.
    pub fn parse(b: &[u8]) -> Option<Self> {
        let p = pnet_packet::ethernet::EthernetPacket::new(b)?;
        Some(Self {
            dst: Mac::from_pnet(p.get_destination()),
            src: Mac::from_pnet(p.get_source()),
            ethertype: p.get_ethertype().0,
        })
    }

    /// Appends the header to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.dst.0);
        out.extend_from_slice(&self.src.0);
        out.extend_from_slice(&self.ethertype.to_be_bytes());
    }

    /// The fields, in line order.
    pub fn fields(&self) -> Vec<Field> {
        vec![
            Field::bare("src", self.src),
            Field::new("dst", self.dst, Show::Arrow),
            Field::named("type", ethertype_name(self.ethertype)),
        ]
    }
}

/// 802.1Q / 802.1ad tag (after the EtherType that announced it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VlanRepr {
    /// Priority code point.
    pub pcp: u8,
    /// Drop eligible indicator.
    pub dei: bool,
    /// VLAN id.
    pub vid: u16,
    /// EtherType of what follows.
    pub ethertype: u16,
}

impl VlanRepr {
    /// Tag length.
    pub const LEN: usize = 4;

    /// Parses a tag; `None` when fewer than 4 bytes.
    pub fn parse(b: &[u8]) -> Option<Self> {
        let b: &[u8; 4] = b.get(..4)?.try_into().ok()?;
        let tci = u16::from_be_bytes([b[0], b[1]]);
        Some(Self {
            pcp: (tci >> 13) as u8,
            dei: tci & 0x1000 != 0,
            vid: tci & 0x0fff,
            ethertype: u16::from_be_bytes([b[2], b[3]]),
        })
    }

    /// Appends the tag to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        let tci =
            (u16::from(self.pcp & 7) << 13) | (u16::from(self.dei) << 12) | (self.vid & 0x0fff);
        out.extend_from_slice(&tci.to_be_bytes());
        out.extend_from_slice(&self.ethertype.to_be_bytes());
    }

    /// The fields, in line order.
    pub fn fields(&self) -> Vec<Field> {
        vec![
            Field::bare("vid", self.vid),
            Field::named_if(self.pcp != 0, "pcp", self.pcp),
            Field::named_if(self.dei, "dei", u8::from(self.dei)),
            Field::named("type", ethertype_name(self.ethertype)),
        ]
    }
}

/// ARP for IPv4 over Ethernet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArpRepr {
    /// Operation (1 request, 2 reply).
    pub op: u16,
    /// Sender hardware address.
    pub sha: Mac,
    /// Sender protocol address.
    pub spa: Ipv4Addr,
    /// Target hardware address.
    pub tha: Mac,
    /// Target protocol address.
    pub tpa: Ipv4Addr,
}

impl ArpRepr {
    /// Length of an Ethernet/IPv4 ARP message.
    pub const LEN: usize = 28;
    const PREFIX: [u8; 6] = [0, 1, 0x08, 0x00, 6, 4];

    /// Parses an Ethernet/IPv4 ARP message; `None` when it is shorter or for
    /// other hardware or protocol types.
    pub fn parse(b: &[u8]) -> Option<Self> {
        let b = b.get(..Self::LEN)?;
        if b[..6] != Self::PREFIX {
            return None;
        }
        let mac = |o: usize| Mac(b[o..o + 6].try_into().unwrap_or_default());
        let ip = |o: usize| Ipv4Addr::new(b[o], b[o + 1], b[o + 2], b[o + 3]);
        Some(Self {
            op: u16::from_be_bytes([b[6], b[7]]),
            sha: mac(8),
            spa: ip(14),
            tha: mac(18),
            tpa: ip(24),
        })
    }

    /// Appends the message to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&Self::PREFIX);
        out.extend_from_slice(&self.op.to_be_bytes());
        out.extend_from_slice(&self.sha.0);
        out.extend_from_slice(&self.spa.octets());
        out.extend_from_slice(&self.tha.0);
        out.extend_from_slice(&self.tpa.octets());
    }

    /// The fields, in line order.
    pub fn fields(&self) -> Vec<Field> {
        let op = match self.op {
            1 => "request".to_owned(),
            2 => "reply".to_owned(),
            n => format!("op {n}"),
        };
        vec![
            Field::bare("op", op),
            Field::bare("spa", self.spa),
            Field::new("tpa", self.tpa, Show::Arrow),
            Field::named("sha", self.sha),
            Field::named_if(self.tha != Mac::default(), "tha", self.tha),
        ]
    }
}

/// IPv4 header, options included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipv4Repr {
    /// Version nibble (4 unless deliberately wrong).
    pub version: u8,
    /// Header length in 32-bit words, as on the wire.
    pub ihl: u8,
    /// Type of service (DSCP and ECN).
    pub tos: u8,
    /// Total length.
    pub total_len: u16,
    /// Identification.
    pub id: u16,
    /// Flags: bit 2 reserved, bit 1 DF, bit 0 MF.
    pub flags: u8,
    /// Fragment offset in 8-byte units.
    pub frag_offset: u16,
    /// Time to live.
    pub ttl: u8,
    /// Protocol of the payload.
    pub proto: u8,
    /// Header checksum as on the wire.
    pub checksum: u16,
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Option bytes present after the fixed header (as many as the IHL
    /// claims and the packet holds).
    pub options: Vec<u8>,
}

impl Ipv4Repr {
    /// Fixed header length.
    pub const MIN_LEN: usize = 20;
    /// Offset of the checksum in 16-bit words, for checksum helpers.
    pub const CHECKSUM_WORD: usize = 5;

    /// Parses the header at the start of `b`; `None` when fewer than 20
    /// bytes. Options are taken as the IHL says, up to what `b` holds.
    pub fn parse(b: &[u8]) -> Option<Self> {
        let p = Ipv4Packet::new(b)?;
        let hl = usize::from(p.get_header_length()) * 4;
        let options = b
            .get(Self::MIN_LEN..hl.min(b.len()))
            .unwrap_or_default()
            .to_vec();
        Some(Self {
            version: p.get_version(),
            ihl: p.get_header_length(),
            tos: (p.get_dscp() << 2) | p.get_ecn(),
            total_len: p.get_total_length(),
            id: p.get_identification(),
            flags: p.get_flags(),
            frag_offset: p.get_fragment_offset(),
            ttl: p.get_ttl(),
            proto: p.get_next_level_protocol().0,
            checksum: p.get_checksum(),
            src: p.get_source(),
            dst: p.get_destination(),
            options,
        })
    }

    /// Bytes this header occupies when emitted (20 + options).
    pub fn emitted_len(&self) -> usize {
        Self::MIN_LEN + self.options.len()
    }

    /// Appends the header as it is (no field is derived) to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.resize(start + self.emitted_len(), 0);
        let buf = &mut out[start..];
        buf[Self::MIN_LEN..].copy_from_slice(&self.options);
        let Some(mut p) = MutableIpv4Packet::new(buf) else {
            unreachable!("buffer of at least 20 bytes")
        };
        p.set_version(self.version);
        p.set_header_length(self.ihl);
        p.set_dscp(self.tos >> 2);
        p.set_ecn(self.tos & 3);
        p.set_total_length(self.total_len);
        p.set_identification(self.id);
        p.set_flags(self.flags);
        p.set_fragment_offset(self.frag_offset);
        p.set_ttl(self.ttl);
        p.set_next_level_protocol(pnet_packet::ip::IpNextHeaderProtocol(self.proto));
        p.set_checksum(self.checksum);
        p.set_source(self.src);
        p.set_destination(self.dst);
    }

    /// Whether this is a fragment other than a whole packet.
    pub fn is_fragment(&self) -> bool {
        self.flags & 1 != 0 || self.frag_offset != 0
    }

    /// The fields, in line order (the checksum last).
    pub fn fields(&self) -> Vec<Field> {
        let mut flags = Vec::new();
        if self.flags & 4 != 0 {
            flags.push("RF");
        }
        if self.flags & 2 != 0 {
            flags.push("DF");
        }
        if self.flags & 1 != 0 {
            flags.push("MF");
        }
        let flags = if flags.is_empty() {
            "-".to_owned()
        } else {
            flags.join("|")
        };
        vec![
            Field::bare("src", self.src),
            Field::new("dst", self.dst, Show::Arrow),
            Field::named_if(self.version != 4, "ver", self.version),
            Field::named("ihl", self.ihl),
            Field::named("tos", format!("0x{:02x}", self.tos)),
            Field::named("len", self.total_len),
            Field::named("id", self.id),
            Field::named_if(self.flags != 0, "flags", flags),
            Field::named_if(self.frag_offset != 0, "frag", self.frag_offset),
            Field::named("ttl", self.ttl),
            Field::named("proto", proto_name(self.proto)),
            Field::named_if(!self.options.is_empty(), "opts", hex(&self.options)),
            Field::named("csum", format!("0x{:04x}", self.checksum)),
        ]
    }
}

/// IPv6 fixed header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipv6Repr {
    /// Version nibble (6 unless deliberately wrong).
    pub version: u8,
    /// Traffic class.
    pub tclass: u8,
    /// Flow label (20 bits).
    pub flow: u32,
    /// Payload length.
    pub payload_len: u16,
    /// Next header.
    pub next_header: u8,
    /// Hop limit.
    pub hop_limit: u8,
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
}

impl Ipv6Repr {
    /// Header length.
    pub const LEN: usize = 40;

    /// Parses the header; `None` when fewer than 40 bytes.
    pub fn parse(b: &[u8]) -> Option<Self> {
        let p = Ipv6Packet::new(b)?;
        Some(Self {
            version: p.get_version(),
            tclass: p.get_traffic_class(),
            flow: p.get_flow_label(),
            payload_len: p.get_payload_length(),
            next_header: p.get_next_header().0,
            hop_limit: p.get_hop_limit(),
            src: p.get_source(),
            dst: p.get_destination(),
        })
    }

    /// Appends the header to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.resize(start + Self::LEN, 0);
        let Some(mut p) = MutableIpv6Packet::new(&mut out[start..]) else {
            unreachable!("40-byte buffer")
        };
        p.set_version(self.version);
        p.set_traffic_class(self.tclass);
        p.set_flow_label(self.flow & 0xf_ffff);
        p.set_payload_length(self.payload_len);
        p.set_next_header(pnet_packet::ip::IpNextHeaderProtocol(self.next_header));
        p.set_hop_limit(self.hop_limit);
        p.set_source(self.src);
        p.set_destination(self.dst);
    }

    /// The fields, in line order.
    pub fn fields(&self) -> Vec<Field> {
        vec![
            Field::bare("src", self.src),
            Field::new("dst", self.dst, Show::Arrow),
            Field::named_if(self.version != 6, "ver", self.version),
            Field::named("tc", format!("0x{:02x}", self.tclass)),
            Field::named_if(self.flow != 0, "flow", format!("0x{:05x}", self.flow)),
            Field::named("plen", self.payload_len),
            Field::named("nh", proto_name(self.next_header)),
            Field::named("hlim", self.hop_limit),
        ]
    }
}

/// An IPv6 extension header: hop-by-hop (0), routing (43), fragment (44),
/// destination options (60), or another in the generic (next, length) form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipv6ExtRepr {
    /// The protocol number that announced this header.
    pub kind: u8,
    /// Next header.
    pub next_header: u8,
    /// Header extension length as on the wire (fragment: the reserved byte).
    pub len: u8,
    /// The bytes after the first two (as many as the length says and the
    /// packet holds).
    pub body: Vec<u8>,
}

impl Ipv6ExtRepr {
    /// Whether `nh` announces an extension header this module knows the
    /// length rule of.
    pub fn is_extension(nh: u8) -> bool {
        matches!(nh, 0 | 43 | 44 | 51 | 60 | 135 | 139 | 140)
    }

    /// The length in bytes a header of `kind` with length byte `len` claims.
    pub fn claimed_len(kind: u8, len: u8) -> usize {
        match kind {
            44 => 8,
            51 => (usize::from(len) + 2) * 4,
            _ => (usize::from(len) + 1) * 8,
        }
    }

    /// Parses a header of `kind` at the start of `b`; `None` when fewer than
    /// two bytes.
    pub fn parse(kind: u8, b: &[u8]) -> Option<Self> {
        let (&next_header, rest) = b.split_first()?;
        let (&len, rest) = rest.split_first()?;
        let want = Self::claimed_len(kind, len) - 2;
        Some(Self {
            kind,
            next_header,
            len,
            body: rest[..want.min(rest.len())].to_vec(),
        })
    }

    /// Bytes this header occupies when emitted.
    pub fn emitted_len(&self) -> usize {
        2 + self.body.len()
    }

    /// Appends the header to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.push(self.next_header);
        out.push(self.len);
        out.extend_from_slice(&self.body);
    }

    /// For a fragment header: (offset in 8-byte units, more fragments, id).
    pub fn fragment(&self) -> Option<(u16, bool, u32)> {
        if self.kind != 44 || self.body.len() < 6 {
            return None;
        }
        let off = u16::from_be_bytes([self.body[0], self.body[1]]);
        let id = u32::from_be_bytes([self.body[2], self.body[3], self.body[4], self.body[5]]);
        Some((off >> 3, off & 1 != 0, id))
    }

    /// The fields, in line order.
    pub fn fields(&self) -> Vec<Field> {
        let mut f = vec![
            Field::bare("kind", proto_name(self.kind)),
            Field::named("nh", proto_name(self.next_header)),
            Field::named("len", self.len),
        ];
        if let Some((off, more, id)) = self.fragment() {
            f.push(Field::named("off", off));
            f.push(Field::named_if(more, "mf", u8::from(more)));
            f.push(Field::named("ident", id));
        } else {
            f.push(Field::named("data", hex(&self.body)));
        }
        f
    }
}

/// UDP header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UdpRepr {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Length (header and data).
    pub len: u16,
    /// Checksum as on the wire.
    pub checksum: u16,
}

impl UdpRepr {
    /// Header length.
    pub const LEN: usize = 8;
    /// Offset of the checksum in 16-bit words.
    pub const CHECKSUM_WORD: usize = 3;

    /// Parses the header; `None` when fewer than 8 bytes.
    pub fn parse(b: &[u8]) -> Option<Self> {
        let p = UdpPacket::new(b)?;
        Some(Self {
            sport: p.get_source(),
            dport: p.get_destination(),
            len: p.get_length(),
            checksum: p.get_checksum(),
        })
    }

    /// Appends the header to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.resize(start + Self::LEN, 0);
        let Some(mut p) = MutableUdpPacket::new(&mut out[start..]) else {
            unreachable!("8-byte buffer")
        };
        p.set_source(self.sport);
        p.set_destination(self.dport);
        p.set_length(self.len);
        p.set_checksum(self.checksum);
    }

    /// The fields, in line order.
    pub fn fields(&self) -> Vec<Field> {
        vec![
            Field::bare("sport", self.sport),
            Field::new("dport", self.dport, Show::Arrow),
            Field::named("len", self.len),
            Field::named("csum", format!("0x{:04x}", self.checksum)),
        ]
    }
}

/// GUE header (draft-ietf-intarea-gue). Variant 1 has no header of its own:
/// the inner IP header follows UDP directly and its version nibble (4 or 6)
/// doubles as the GUE variant bits `01`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GueRepr {
    /// Variant (top two bits): 0 with a header, 1 direct IP.
    pub variant: u8,
    /// Variant 0: control message bit.
    pub control: bool,
    /// Variant 0: length of the extension fields in 32-bit words.
    pub hlen: u8,
    /// Variant 0: protocol of the payload (or control type).
    pub proto: u8,
    /// Variant 0: flags.
    pub flags: u16,
}

impl GueRepr {
    /// Length of the variant 0 base header.
    pub const V0_LEN: usize = 4;

    /// Parses a variant 0 base header (variant 1 has none).
    pub fn parse_v0(b: &[u8]) -> Option<Self> {
        let b = b.get(..4)?;
        Some(Self {
            variant: b[0] >> 6,
            control: b[0] & 0x20 != 0,
            hlen: b[0] & 0x1f,
            proto: b[1],
            flags: u16::from_be_bytes([b[2], b[3]]),
        })
    }

    /// Bytes this header occupies when emitted (0 for variant 1).
    pub fn emitted_len(&self) -> usize {
        if self.variant == 1 { 0 } else { Self::V0_LEN }
    }

    /// Appends the header to `out` (nothing for variant 1).
    pub fn emit(&self, out: &mut Vec<u8>) {
        if self.variant == 1 {
            return;
        }
        out.push((self.variant << 6) | (u8::from(self.control) << 5) | (self.hlen & 0x1f));
        out.push(self.proto);
        out.extend_from_slice(&self.flags.to_be_bytes());
    }

    /// The fields, in line order.
    pub fn fields(&self) -> Vec<Field> {
        let mut f = vec![Field::new(
            "variant",
            format!("v{}", self.variant),
            Show::Bare,
        )];
        if self.variant != 1 {
            f.push(Field::named_if(self.control, "c", u8::from(self.control)));
            f.push(Field::named("hlen", self.hlen));
            f.push(Field::named("proto", proto_name(self.proto)));
            f.push(Field::named("flags", format!("0x{:04x}", self.flags)));
        }
        f
    }
}

/// TCP header, options included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpRepr {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number.
    pub ack: u32,
    /// Data offset in 32-bit words, as on the wire.
    pub data_offset: u8,
    /// The 4 reserved bits.
    pub reserved: u8,
    /// Flags (CWR ECE URG ACK PSH RST SYN FIN, high to low).
    pub flags: u8,
    /// Window.
    pub window: u16,
    /// Checksum as on the wire.
    pub checksum: u16,
    /// Urgent pointer.
    pub urgent: u16,
    /// Option bytes (as many as the data offset claims and the packet holds).
    pub options: Vec<u8>,
}

/// TCP flag letters from FIN (bit 0) up, as written in specs and shown.
pub const TCP_FLAG_LETTERS: [char; 8] = ['F', 'S', 'R', 'P', 'A', 'U', 'E', 'C'];

impl TcpRepr {
    /// Fixed header length.
    pub const MIN_LEN: usize = 20;
    /// Offset of the checksum in 16-bit words.
    pub const CHECKSUM_WORD: usize = 8;

    /// Parses the header; `None` when fewer than 20 bytes.
    pub fn parse(b: &[u8]) -> Option<Self> {
        let p = TcpPacket::new(b)?;
        let hl = usize::from(p.get_data_offset()) * 4;
        Some(Self {
            sport: p.get_source(),
            dport: p.get_destination(),
            seq: p.get_sequence(),
            ack: p.get_acknowledgement(),
            data_offset: p.get_data_offset(),
            reserved: p.get_reserved(),
            flags: p.get_flags(),
            window: p.get_window(),
            checksum: p.get_checksum(),
            urgent: p.get_urgent_ptr(),
            options: b
                .get(Self::MIN_LEN..hl.min(b.len()))
                .unwrap_or_default()
                .to_vec(),
        })
    }

    /// Bytes this header occupies when emitted.
    pub fn emitted_len(&self) -> usize {
        Self::MIN_LEN + self.options.len()
    }

    /// Appends the header to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.resize(start + self.emitted_len(), 0);
        let buf = &mut out[start..];
        buf[Self::MIN_LEN..].copy_from_slice(&self.options);
        let Some(mut p) = MutableTcpPacket::new(buf) else {
            unreachable!("20-byte buffer")
        };
        p.set_source(self.sport);
        p.set_destination(self.dport);
        p.set_sequence(self.seq);
        p.set_acknowledgement(self.ack);
        p.set_data_offset(self.data_offset);
        p.set_reserved(self.reserved);
        p.set_flags(self.flags);
        p.set_window(self.window);
        p.set_checksum(self.checksum);
        p.set_urgent_ptr(self.urgent);
    }

    /// The flags as letters (`SA`), `-` for none.
    pub fn flag_letters(flags: u8) -> String {
        let s: String = TCP_FLAG_LETTERS
            .iter()
            .enumerate()
            .filter(|(i, _)| flags & (1 << i) != 0)
            .map(|(_, c)| *c)
            .collect();
        if s.is_empty() { "-".into() } else { s }
    }

    /// The fields, in line order (the checksum last).
    pub fn fields(&self) -> Vec<Field> {
        vec![
            Field::bare("sport", self.sport),
            Field::new("dport", self.dport, Show::Arrow),
            Field::bare("flags", format!("[{}]", Self::flag_letters(self.flags))),
            Field::named("seq", self.seq),
            Field::named("ack", self.ack),
            Field::named("win", self.window),
            Field::named_if(self.data_offset != 5, "off", self.data_offset),
            Field::named_if(self.reserved != 0, "res", self.reserved),
            Field::named_if(self.urgent != 0, "urg", self.urgent),
            Field::named_if(!self.options.is_empty(), "opts", hex(&self.options)),
            Field::named("csum", format!("0x{:04x}", self.checksum)),
        ]
    }
}

/// ICMP or ICMPv6 header (the first 8 bytes of the message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IcmpRepr {
    /// Whether this is ICMPv6 (type numbers and checksum differ).
    pub v6: bool,
    /// Type.
    pub icmp_type: u8,
    /// Code.
    pub code: u8,
    /// Checksum as on the wire.
    pub checksum: u16,
    /// The 4 bytes after the checksum (echo id and sequence, next-hop MTU…).
    pub rest: u32,
}

impl IcmpRepr {
    /// Header length.
    pub const LEN: usize = 8;
    /// Offset of the checksum in 16-bit words.
    pub const CHECKSUM_WORD: usize = 1;

    /// Parses the header; `None` when fewer than 8 bytes.
    pub fn parse(v6: bool, b: &[u8]) -> Option<Self> {
        let rest = u32::from_be_bytes(b.get(4..8)?.try_into().ok()?);
        let (icmp_type, code, checksum) = if v6 {
            let p = Icmpv6Packet::new(b)?;
            (
                p.get_icmpv6_type().0,
                p.get_icmpv6_code().0,
                p.get_checksum(),
            )
        } else {
            let p = IcmpPacket::new(b)?;
            (p.get_icmp_type().0, p.get_icmp_code().0, p.get_checksum())
        };
        Some(Self {
            v6,
            icmp_type,
            code,
            checksum,
            rest,
        })
    }

    /// Appends the header to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.resize(start + Self::LEN, 0);
        out[start + 4..start + 8].copy_from_slice(&self.rest.to_be_bytes());
        if self.v6 {
            let Some(mut p) = MutableIcmpv6Packet::new(&mut out[start..]) else {
                unreachable!("8-byte buffer")
            };
            p.set_icmpv6_type(pnet_packet::icmpv6::Icmpv6Type(self.icmp_type));
            p.set_icmpv6_code(pnet_packet::icmpv6::Icmpv6Code(self.code));
            p.set_checksum(self.checksum);
        } else {
            let Some(mut p) = MutableIcmpPacket::new(&mut out[start..]) else {
                unreachable!("8-byte buffer")
            };
            p.set_icmp_type(pnet_packet::icmp::IcmpType(self.icmp_type));
            p.set_icmp_code(pnet_packet::icmp::IcmpCode(self.code));
            p.set_checksum(self.checksum);
        }
    }

    /// Whether the type carries id and sequence (echo request or reply).
    pub fn is_echo(&self) -> bool {
        if self.v6 {
            matches!(self.icmp_type, 128 | 129)
        } else {
            self.icmp_type == IcmpTypes::EchoRequest.0 || self.icmp_type == IcmpTypes::EchoReply.0
        }
    }

    /// Whether the type is an error that quotes the offending packet.
    pub fn quotes_packet(&self) -> bool {
        if self.v6 {
            matches!(self.icmp_type, 1..=4)
        } else {
            matches!(self.icmp_type, 3 | 4 | 5 | 11 | 12)
        }
    }

    fn type_name(&self) -> String {
        let name = match (self.v6, self.icmp_type) {
            (false, 0) | (true, 129) => "echo-reply",
            (false, 8) | (true, 128) => "echo-request",
            (false, 3) | (true, 1) => "unreachable",
            (false, 11) | (true, 3) => "time-exceeded",
            (false, 12) | (true, 4) => "param-problem",
            (false, 5) => "redirect",
            (true, 2) => "packet-too-big",
            (_, n) => return format!("type {n}"),
        };
        name.to_owned()
    }

    /// The fields, in line order (the checksum last).
    pub fn fields(&self) -> Vec<Field> {
        let mut f = vec![
            Field::bare("type", self.type_name()),
            Field::named("code", self.code),
        ];
        if self.is_echo() {
            f.push(Field::named("id", self.rest >> 16));
            f.push(Field::named("seq", self.rest & 0xffff));
        } else {
            f.push(Field::named_if(
                self.rest != 0,
                "rest",
                format!("0x{:08x}", self.rest),
            ));
        }
        f.push(Field::named("csum", format!("0x{:04x}", self.checksum)));
        f
    }
}

/// Lower-case hex without separators.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
