//! Dissection (bytes → one representation per layer, never failing) and the
//! layer-by-layer diff built on it.

use std::{
    fmt,
    net::{Ipv4Addr, Ipv6Addr},
};

use pnet_packet::{ip::IpNextHeaderProtocol, util};

use super::{
    repr::{
        ArpRepr, EthRepr, Field, GueRepr, IcmpRepr, Ipv4Repr, Ipv6ExtRepr, Ipv6Repr, Show, TcpRepr,
        UdpRepr, VlanRepr, hex, write_fields,
    },
    spec::{DEFAULT_GUE_PORT, labels},
};

/// What a dissection needs to know beyond the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DissectOptions {
    /// UDP destination port whose payload is GUE.
    pub gue_port: u16,
}

impl Default for DissectOptions {
    fn default() -> Self {
        Self {
            gue_port: DEFAULT_GUE_PORT,
        }
    }
}

/// Whether a checksum field holds the sum of what it covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChecksumStatus {
    /// It does.
    Valid,
    /// It does not; `computed` is what it should be.
    Invalid {
        /// The correct checksum.
        computed: u16,
    },
    /// What it covers is not all there (truncated, a fragment).
    Unverified,
    /// Zero in UDP over IPv4: no checksum.
    Absent,
}

impl fmt::Display for ChecksumStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Valid => f.write_str("ok"),
            Self::Invalid { computed } => write!(f, "bad (want 0x{computed:04x})"),
            Self::Unverified => f.write_str("unverified"),
            Self::Absent => f.write_str("none"),
        }
    }
}

/// The meaning of one dissected layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayerRepr {
    /// Ethernet II.
    Eth(EthRepr),
    /// 802.1Q tag.
    Vlan(VlanRepr),
    /// ARP.
    Arp(ArpRepr),
    /// IPv4.
    Ipv4(Ipv4Repr),
    /// IPv6.
    Ipv6(Ipv6Repr),
    /// IPv6 extension header.
    Ipv6Ext(Ipv6ExtRepr),
    /// UDP.
    Udp(UdpRepr),
    /// GUE.
    Gue(GueRepr),
    /// TCP.
    Tcp(TcpRepr),
    /// ICMP.
    Icmp(IcmpRepr),
    /// ICMPv6.
    Icmpv6(IcmpRepr),
    /// Bytes no header describes (application data, fragments, unknown
    /// protocols).
    Payload {
        /// How many.
        len: usize,
    },
    /// Bytes after the length an IP (or UDP) header claims, such as
    /// Ethernet padding.
    Trailer {
        /// How many.
        len: usize,
    },
    /// What is wrong with the layer of `kind` just shown (or that could not
    /// be shown at all).
    Malformed {
        /// The layer kind.
        kind: &'static str,
        /// What is wrong.
        problem: String,
    },
}

impl LayerRepr {
    /// The kind name (`ipv4`, `payload`, …).
    pub fn kind(&self) -> &'static str {
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
            Self::Payload { .. } => "payload",
            Self::Trailer { .. } => "trailer",
            Self::Malformed { kind, .. } => kind,
        }
    }

    /// Whether the fields describe every byte of the layer (a header), so a
    /// difference there is explained by a field difference.
    pub fn describes_bytes(&self) -> bool {
        !matches!(
            self,
            Self::Payload { .. } | Self::Trailer { .. } | Self::Malformed { .. }
        )
    }

    fn fields(&self) -> Vec<Field> {
        match self {
            Self::Eth(r) => r.fields(),
            Self::Vlan(r) => r.fields(),
            Self::Arp(r) => r.fields(),
            Self::Ipv4(r) => r.fields(),
            Self::Ipv6(r) => r.fields(),
            Self::Ipv6Ext(r) => r.fields(),
            Self::Udp(r) => r.fields(),
            Self::Gue(r) => r.fields(),
            Self::Tcp(r) => r.fields(),
            Self::Icmp(r) | Self::Icmpv6(r) => r.fields(),
            Self::Payload { len } | Self::Trailer { len } => {
                vec![Field {
                    name: "len",
                    value: len.to_string(),
                    show: Show::Unit("bytes"),
                }]
            }
            Self::Malformed { problem, .. } => {
                vec![Field {
                    name: "problem",
                    value: problem.clone(),
                    show: Show::Bare,
                }]
            }
        }
    }
}

/// One layer found in a packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DissectedLayer {
    /// `ipv4`, `ipv4[1]` when there are several, `ipv4!` for a problem with
    /// an IPv4 layer.
    pub label: String,
    /// Offset of its first byte in the frame.
    pub offset: usize,
    /// Bytes of its header (a payload's: all of it).
    pub len: usize,
    /// What it says.
    pub repr: LayerRepr,
    /// Whether its checksum is right, for layers that have one.
    pub checksum: Option<ChecksumStatus>,
}

impl DissectedLayer {
    /// The fields as shown and compared, the checksum verdict included.
    pub fn fields(&self) -> Vec<Field> {
        let mut f = self.repr.fields();
        if let Some(status) = self.checksum {
            f.push(Field {
                name: "csum_status",
                value: status.to_string(),
                show: Show::Bare,
            });
        }
        f
    }
}

impl fmt::Display for DissectedLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let LayerRepr::Malformed { kind, problem } = &self.repr {
            return write!(f, "{kind}: {problem}");
        }
        f.write_str(self.repr.kind())?;
        write_fields(f, &self.fields())
    }
}

/// Every layer found in a packet, outermost first; malformed and truncated
/// parts are layers saying what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dissection {
    /// The layers.
    pub layers: Vec<DissectedLayer>,
}

/// One line per layer, each ending in a newline.
impl fmt::Display for Dissection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in &self.layers {
            writeln!(f, "{l}")?;
        }
        Ok(())
    }
}

impl Dissection {
    /// The value of a field by path `label.name` as shown in dissections and
    /// diffs (`ipv4[1].ttl`, `eth.dst`, `tcp.dport`); a lone layer also
    /// answers to `kind[0]`.
    pub fn field(&self, path: &str) -> Option<String> {
        let (label, name) = path.rsplit_once('.')?;
        let layer = self
            .layers
            .iter()
            .find(|l| l.label == label || (label.strip_suffix("[0]") == Some(l.label.as_str())))?;
        layer
            .fields()
            .into_iter()
            .find(|f| f.name == name)
            .map(|f| f.value)
    }

    /// Where the packet inside the first tunnel starts: the offset of the
    /// second IP header (after IPIP, or after UDP/GUE) and whether it is
    /// IPv6. `None` when the packet carries no second IP header.
    pub fn inner_ip(&self) -> Option<(usize, bool)> {
        self.layers
            .iter()
            .filter_map(|l| match l.repr {
                LayerRepr::Ipv4(_) => Some((l.offset, false)),
                LayerRepr::Ipv6(_) => Some((l.offset, true)),
                _ => None,
            })
            .nth(1)
    }
}

/// The frame a decapsulator should make of `bytes`: its Ethernet header
/// with the EtherType of the inner family, then every byte from the inner IP
/// header on. `None` if `bytes` is not a tunnel packet.
pub fn decapsulated(bytes: &[u8]) -> Option<Vec<u8>> {
    // Judged for every packet of a run: the layers without their labels.
    // Checksums are not verified: only the inner header's place matters.
    let layers = Dissection {
        layers: walk(bytes, &DissectOptions::default(), false),
    };
    let (inner, v6) = layers.inner_ip()?;
    let mut out = Vec::with_capacity(14 + bytes.len() - inner);
    out.extend_from_slice(bytes.get(..12)?);
    out.extend_from_slice(if v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
    out.extend_from_slice(&bytes[inner..]);
    Some(out)
}

/// Dissects an Ethernet frame with GUE on the default port (6080).
pub fn dissect(bytes: &[u8]) -> Dissection {
    dissect_with(bytes, &DissectOptions::default())
}

/// Dissects an Ethernet frame.
pub fn dissect_with(bytes: &[u8], opts: &DissectOptions) -> Dissection {
    let mut layers = walk(bytes, opts, true);
    let kinds: Vec<&str> = layers
        .iter()
        .filter(|l| !matches!(l.repr, LayerRepr::Malformed { .. }))
        .map(|l| l.repr.kind())
        .collect();
    let mut labels = labels(&kinds).into_iter();
    for l in &mut layers {
        l.label = match l.repr {
            LayerRepr::Malformed { kind, .. } => format!("{kind}!"),
            _ => labels.next().unwrap_or_default(),
        };
    }
    Dissection { layers }
}

/// The layers of an Ethernet frame, unlabelled; checksums verified if
/// `verify` (else left unverified).
fn walk(bytes: &[u8], opts: &DissectOptions, verify: bool) -> Vec<DissectedLayer> {
    let mut w = Walker {
        b: bytes,
        out: Vec::new(),
        gue_port: opts.gue_port,
        verify,
    };
    w.eth();
    w.out
}

/// The IP layer an L4 checksum's pseudo-header comes from.
#[derive(Clone, Copy)]
enum IpCtx {
    V4(Ipv4Addr, Ipv4Addr),
    V6(Ipv6Addr, Ipv6Addr),
}

impl IpCtx {
    fn checksum(self, data: &[u8], skipword: usize, proto: u8) -> u16 {
        let p = IpNextHeaderProtocol(proto);
        match self {
            Self::V4(s, d) => util::ipv4_checksum(data, skipword, &[], &s, &d, p),
            Self::V6(s, d) => util::ipv6_checksum(data, skipword, &[], &s, &d, p),
        }
    }
}

fn status(wire: u16, computed: u16) -> ChecksumStatus {
    if wire == computed {
        ChecksumStatus::Valid
    } else {
        ChecksumStatus::Invalid { computed }
    }
}

struct Walker<'a> {
    b: &'a [u8],
    out: Vec<DissectedLayer>,
    gue_port: u16,
    /// Whether checksums are computed (else left unverified).
    verify: bool,
}

impl Walker<'_> {
    fn push(
        &mut self,
        offset: usize,
        len: usize,
        repr: LayerRepr,
        checksum: Option<ChecksumStatus>,
    ) {
        self.out.push(DissectedLayer {
            label: String::new(),
            offset,
            len,
            repr,
            checksum,
        });
    }

    fn malformed(&mut self, kind: &'static str, offset: usize, problem: String) {
        self.push(offset, 0, LayerRepr::Malformed { kind, problem }, None);
    }

    fn truncated(&mut self, kind: &'static str, off: usize, end: usize, want: usize) {
        self.malformed(
            kind,
            off,
            format!("truncated, {} of {want} header bytes", end - off),
        );
    }

    fn rest(&mut self, off: usize, end: usize) {
        if end > off {
            self.push(off, end - off, LayerRepr::Payload { len: end - off }, None);
        }
    }

    fn trailer(&mut self, off: usize, end: usize) {
        if end > off {
            self.push(off, end - off, LayerRepr::Trailer { len: end - off }, None);
        }
    }

    fn eth(&mut self) {
        let Some(r) = EthRepr::parse(self.b) else {
            return self.truncated("eth", 0, self.b.len(), EthRepr::LEN);
        };
        let t = r.ethertype;
        self.push(0, EthRepr::LEN, LayerRepr::Eth(r), None);
        self.ethertype(t, EthRepr::LEN, self.b.len());
    }

    fn ethertype(&mut self, t: u16, off: usize, end: usize) {
        match t {
            0x0800 => self.ipv4(off, end),
            0x86dd => self.ipv6(off, end),
            0x8100 | 0x88a8 => self.vlan(off, end),
            0x0806 => self.arp(off, end),
            _ => self.rest(off, end),
        }
    }

    fn vlan(&mut self, off: usize, end: usize) {
        let Some(r) = VlanRepr::parse(&self.b[off..end]) else {
            return self.truncated("vlan", off, end, VlanRepr::LEN);
        };
        let t = r.ethertype;
        self.push(off, VlanRepr::LEN, LayerRepr::Vlan(r), None);
        self.ethertype(t, off + VlanRepr::LEN, end);
    }

    fn arp(&mut self, off: usize, end: usize) {
        match ArpRepr::parse(&self.b[off..end]) {
            Some(r) => {
                self.push(off, ArpRepr::LEN, LayerRepr::Arp(r), None);
                self.trailer(off + ArpRepr::LEN, end);
            }
            None if end - off < ArpRepr::LEN => self.truncated("arp", off, end, ArpRepr::LEN),
            None => self.rest(off, end),
        }
    }

    fn ipv4(&mut self, off: usize, end: usize) {
        let avail = end - off;
        let Some(r) = Ipv4Repr::parse(&self.b[off..end]) else {
            return self.truncated("ipv4", off, end, Ipv4Repr::MIN_LEN);
        };
        let hl = usize::from(r.ihl) * 4;
        let csum = if self.verify && r.ihl >= 5 && hl <= avail {
            status(
                r.checksum,
                util::checksum(&self.b[off..off + hl], Ipv4Repr::CHECKSUM_WORD),
            )
        } else {
            ChecksumStatus::Unverified
        };
        let shown = r.emitted_len();
        let (version, ihl, total, proto, frag, more) = (
            r.version,
            r.ihl,
            usize::from(r.total_len),
            r.proto,
            r.frag_offset,
            r.flags & 1 != 0,
        );
        let ctx = IpCtx::V4(r.src, r.dst);
        self.push(off, shown, LayerRepr::Ipv4(r), Some(csum));
        if version != 4 {
            self.malformed("ipv4", off, format!("version {version}, not 4"));
            return self.rest(off + shown, end);
        }
        if ihl < 5 {
            self.malformed("ipv4", off, format!("ihl {ihl} < 5"));
            return self.rest(off + shown, end);
        }
        if hl > avail {
            return self.malformed(
                "ipv4",
                off,
                format!("truncated, {avail} of {hl} header bytes (ihl {ihl})"),
            );
        }
        if total < hl {
            self.malformed(
                "ipv4",
                off,
                format!("total length {total} < header length {hl}"),
            );
            return self.rest(off + hl, end);
        }
        let mut pend = off + total;
        let mut partial = more;
        if total > avail {
            self.malformed(
                "ipv4",
                off,
                format!("total length {total} > {avail} bytes present"),
            );
            pend = end;
            partial = true;
        }
        if frag != 0 {
            self.rest(off + hl, pend);
        } else {
            self.proto(proto, off + hl, pend, ctx, partial);
        }
        self.trailer(pend, end);
    }

    fn ipv6(&mut self, off: usize, end: usize) {
        let avail = end - off;
        let Some(r) = Ipv6Repr::parse(&self.b[off..end]) else {
            return self.truncated("ipv6", off, end, Ipv6Repr::LEN);
        };
        let (version, plen, nh) = (r.version, usize::from(r.payload_len), r.next_header);
        let ctx = IpCtx::V6(r.src, r.dst);
        self.push(off, Ipv6Repr::LEN, LayerRepr::Ipv6(r), None);
        let start = off + Ipv6Repr::LEN;
        if version != 6 {
            self.malformed("ipv6", off, format!("version {version}, not 6"));
            return self.rest(start, end);
        }
        let mut pend = start + plen;
        let mut partial = false;
        if plen > avail - Ipv6Repr::LEN {
            self.malformed(
                "ipv6",
                off,
                format!(
                    "payload length {plen} > {} bytes present",
                    avail - Ipv6Repr::LEN
                ),
            );
            pend = end;
            partial = true;
        }
        self.ipv6_chain(nh, start, pend, ctx, partial);
        self.trailer(pend, end);
    }

    fn ipv6_chain(
        &mut self,
        mut nh: u8,
        mut off: usize,
        end: usize,
        ctx: IpCtx,
        mut partial: bool,
    ) {
        while Ipv6ExtRepr::is_extension(nh) {
            let Some(e) = Ipv6ExtRepr::parse(nh, &self.b[off..end]) else {
                return self.truncated("ipv6_ext", off, end, 2);
            };
            let claimed = Ipv6ExtRepr::claimed_len(nh, e.len);
            let (next, fragment) = (e.next_header, e.fragment());
            self.push(off, e.emitted_len(), LayerRepr::Ipv6Ext(e), None);
            if claimed > end - off {
                return self.truncated("ipv6_ext", off, end, claimed);
            }
            if let Some((frag_off, more, _)) = fragment {
                if frag_off != 0 {
                    return self.rest(off + claimed, end);
                }
                partial |= more;
            }
            nh = next;
            off += claimed;
        }
        self.proto(nh, off, end, ctx, partial);
    }

    /// Dissects what IP protocol `p` carries in `off..end`; `partial` when
    /// those bytes are not all of it (checksums cannot be verified).
    fn proto(&mut self, p: u8, off: usize, end: usize, ctx: IpCtx, partial: bool) {
        match p {
            4 => self.ipv4(off, end),
            41 => self.ipv6(off, end),
            6 => self.tcp(off, end, ctx, partial),
            17 => self.udp(off, end, ctx, partial),
            1 => self.icmp(false, off, end, ctx, partial),
            58 => self.icmp(true, off, end, ctx, partial),
            p if Ipv6ExtRepr::is_extension(p) && matches!(ctx, IpCtx::V6(..)) => {
                self.ipv6_chain(p, off, end, ctx, partial)
            }
            _ => self.rest(off, end),
        }
    }

    fn udp(&mut self, off: usize, end: usize, ctx: IpCtx, partial: bool) {
        let avail = end - off;
        let Some(r) = UdpRepr::parse(&self.b[off..end]) else {
            return self.truncated("udp", off, end, UdpRepr::LEN);
        };
        let len = usize::from(r.len);
        let problem = if len < UdpRepr::LEN {
            Some(format!("length {len} < 8"))
        } else if len > avail {
            Some(format!("length {len} > {avail} bytes present"))
        } else {
            None
        };
        let uend = if problem.is_some() { end } else { off + len };
        // Zero means "no checksum" over IPv4, and over IPv6 for tunnel
        // protocols such as GUE (RFC 6935/6936); elsewhere over IPv6 it is
        // a wrong checksum.
        let csum = if r.checksum == 0 && (matches!(ctx, IpCtx::V4(..)) || r.dport == self.gue_port)
        {
            ChecksumStatus::Absent
        } else if partial || problem.is_some() || !self.verify {
            ChecksumStatus::Unverified
        } else {
            let c = ctx.checksum(&self.b[off..uend], UdpRepr::CHECKSUM_WORD, 17);
            status(r.checksum, if c == 0 { 0xffff } else { c })
        };
        let dport = r.dport;
        self.push(off, UdpRepr::LEN, LayerRepr::Udp(r), Some(csum));
        if let Some(p) = problem {
            self.malformed("udp", off, p);
            if len < UdpRepr::LEN {
                return self.rest(off + UdpRepr::LEN, end);
            }
        }
        if dport == self.gue_port {
            self.gue(off + UdpRepr::LEN, uend, ctx, partial);
        } else {
            self.rest(off + UdpRepr::LEN, uend);
        }
        self.trailer(uend, end);
    }

    fn gue(&mut self, off: usize, end: usize, ctx: IpCtx, partial: bool) {
        let Some(&first) = self.b[off..end].first() else {
            return self.malformed("gue", off, "no bytes after the UDP header".into());
        };
        match first >> 6 {
            1 => {
                let v1 = GueRepr {
                    variant: 1,
                    control: false,
                    hlen: 0,
                    proto: 0,
                    flags: 0,
                };
                self.push(off, 0, LayerRepr::Gue(v1), None);
                match first >> 4 {
                    4 => self.ipv4(off, end),
                    6 => self.ipv6(off, end),
                    v => {
                        self.malformed("gue", off, format!("variant 1 with IP version {v}"));
                        self.rest(off, end);
                    }
                }
            }
            0 => {
                let Some(g) = GueRepr::parse_v0(&self.b[off..end]) else {
                    return self.truncated("gue", off, end, GueRepr::V0_LEN);
                };
                let hl = GueRepr::V0_LEN + 4 * usize::from(g.hlen);
                let (control, proto) = (g.control, g.proto);
                self.push(off, GueRepr::V0_LEN, LayerRepr::Gue(g), None);
                if hl > end - off {
                    return self.truncated("gue", off, end, hl);
                }
                if control {
                    self.rest(off + hl, end);
                } else {
                    self.proto(proto, off + hl, end, ctx, partial);
                }
            }
            v => {
                self.malformed("gue", off, format!("unknown variant {v}"));
                self.rest(off, end);
            }
        }
    }

    fn tcp(&mut self, off: usize, end: usize, ctx: IpCtx, partial: bool) {
        let avail = end - off;
        let Some(r) = TcpRepr::parse(&self.b[off..end]) else {
            return self.truncated("tcp", off, end, TcpRepr::MIN_LEN);
        };
        let hl = usize::from(r.data_offset) * 4;
        let csum = if partial || !self.verify {
            ChecksumStatus::Unverified
        } else {
            status(
                r.checksum,
                ctx.checksum(&self.b[off..end], TcpRepr::CHECKSUM_WORD, 6),
            )
        };
        let (doff, shown) = (r.data_offset, r.emitted_len());
        self.push(off, shown, LayerRepr::Tcp(r), Some(csum));
        if doff < 5 {
            self.malformed("tcp", off, format!("data offset {doff} < 5"));
            return self.rest(off + shown, end);
        }
        if hl > avail {
            return self.malformed(
                "tcp",
                off,
                format!("truncated, {avail} of {hl} header bytes (offset {doff})"),
            );
        }
        self.rest(off + hl, end);
    }

    fn icmp(&mut self, v6: bool, off: usize, end: usize, ctx: IpCtx, partial: bool) {
        let kind = if v6 { "icmpv6" } else { "icmp" };
        let Some(r) = IcmpRepr::parse(v6, &self.b[off..end]) else {
            return self.truncated(kind, off, end, IcmpRepr::LEN);
        };
        let data = &self.b[off..end];
        let csum = if partial || !self.verify {
            ChecksumStatus::Unverified
        } else if v6 {
            status(r.checksum, ctx.checksum(data, IcmpRepr::CHECKSUM_WORD, 58))
        } else {
            status(r.checksum, util::checksum(data, IcmpRepr::CHECKSUM_WORD))
        };
        let quotes = r.quotes_packet();
        self.push(
            off,
            IcmpRepr::LEN,
            if v6 {
                LayerRepr::Icmpv6(r)
            } else {
                LayerRepr::Icmp(r)
            },
            Some(csum),
        );
        let start = off + IcmpRepr::LEN;
        match (quotes, v6) {
            (true, false) if start < end => self.ipv4(start, end),
            (true, true) if start < end => self.ipv6(start, end),
            _ => self.rest(start, end),
        }
    }
}

/// Where `expected` and `actual` differ, layer by layer and field by field
/// (`ipv4[1].ttl: expected 64, actual 63`), then the first differing byte
/// that no differing field explains (payload), with hex context; `None`
/// when they are equal. GUE on the default port.
pub fn diff(expected: &[u8], actual: &[u8]) -> Option<String> {
    diff_with(expected, actual, &DissectOptions::default())
}

/// [`diff`] with dissection options.
pub fn diff_with(expected: &[u8], actual: &[u8], opts: &DissectOptions) -> Option<String> {
    if expected == actual {
        return None;
    }
    let (e, a) = (dissect_with(expected, opts), dissect_with(actual, opts));
    let mut lines = Vec::new();
    if expected.len() != actual.len() {
        lines.push(format!(
            "frame.len: expected {}, actual {}",
            expected.len(),
            actual.len()
        ));
    }
    // Byte ranges whose difference a reported field difference accounts for.
    let mut explained: Vec<std::ops::Range<usize>> = Vec::new();
    let mut diverged = false;
    for i in 0..e.layers.len().max(a.layers.len()) {
        match (e.layers.get(i), a.layers.get(i)) {
            (Some(el), Some(al)) if el.repr.kind() == al.repr.kind() => {
                let (ef, af) = (el.fields(), al.fields());
                let mut differs = false;
                for f in &ef {
                    let other = af
                        .iter()
                        .find(|g| g.name == f.name)
                        .map_or("-", |g| g.value.as_str());
                    if other != f.value {
                        lines.push(format!(
                            "{}.{}: expected {}, actual {other}",
                            el.label, f.name, f.value
                        ));
                        differs = true;
                    }
                }
                for g in af.iter().filter(|g| !ef.iter().any(|f| f.name == g.name)) {
                    lines.push(format!(
                        "{}.{}: expected -, actual {}",
                        el.label, g.name, g.value
                    ));
                    differs = true;
                }
                if differs && el.repr.describes_bytes() {
                    explained.push(el.offset..el.offset + el.len.max(al.len));
                }
            }
            (el, al) => {
                let show = |l: Option<&DissectedLayer>| {
                    l.map_or("nothing".to_owned(), |l| format!("`{l}`"))
                };
                lines.push(format!(
                    "layer {}: expected {}, actual {}",
                    i + 1,
                    show(el),
                    show(al)
                ));
                diverged = true;
                break;
            }
        }
    }
    if !diverged {
        let first = expected
            .iter()
            .zip(actual)
            .enumerate()
            .find(|(i, (x, y))| x != y && !explained.iter().any(|r| r.contains(i)))
            .map(|(i, _)| i);
        if let Some(i) = first {
            let layer = e
                .layers
                .iter()
                .rev()
                .find(|l| l.offset <= i && !matches!(l.repr, LayerRepr::Malformed { .. }))
                .map_or("frame", |l| l.label.as_str());
            lines.push(format!(
                "byte {i} ({layer}): expected {}, actual {}",
                context(expected, i),
                context(actual, i)
            ));
        }
    }
    if lines.is_empty() {
        // Unreachable in practice (differing bytes are either explained by a
        // field or reported above); kept so a diff is never empty.
        lines.push("bytes differ".to_owned());
    }
    Some(lines.join("\n"))
}

/// Four bytes either side of offset `i`, the byte at `i` in brackets.
fn context(b: &[u8], i: usize) -> String {
    let lo = i.saturating_sub(4);
    let hi = (i + 5).min(b.len());
    let before = hex_spaced(&b[lo..i.min(b.len())]);
    let at = b.get(i).map_or("--".to_owned(), |x| hex(&[*x]));
    let after = if i < b.len() {
        hex_spaced(&b[i + 1..hi])
    } else {
        String::new()
    };
    [before, format!("[{at}]"), after]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn hex_spaced(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}
