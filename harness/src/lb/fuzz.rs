//! Differential fuzzing of `xdp_lb`: random worlds and traffic through the
//! BPF program and the reference model ([`super::model`]), compared byte for
//! byte.
//!
//! A *case* is one world (settings, VIPs, reals, weights, provisioned
//! through the control plane on a freshly loaded program) and a sequence of
//! steps: frames, and control events (re-weighting or removing a real while
//! traffic flows). Every frame goes through the kernel
//! (`BPF_PROG_TEST_RUN`, on one pinned CPU: the connection table is per
//! CPU) and through the model; what is compared:
//!
//! - per frame: the verdict (and that it is never `XDP_ABORTED`), the output
//!   bytes of every frame not dropped, and the global counters it moved;
//! - per case: per-VIP and per-real traffic statistics, and the connection
//!   table on the pinned CPU.
//!
//! Frames are well-formed LB traffic (TCP, UDP, echo requests, ICMP errors
//! quoting a VIP flow, other protocols, IPv4 options, fragments, padding,
//! consistently short L4 headers) and malformed variants of it: every
//! truncation at a header boundary and one byte short of it, both as a
//! plain truncation (the IP lengths now lie) and as a consistent cut (the
//! lengths say so), and random byte and bit flips, mostly in the headers.
//! Frames the kernel refuses to test-run (shorter than Ethernet) are
//! skipped and counted with the kernel's reason.
//!
//! Everything is generated from a seed with ChaCha8: case `k` of a run with
//! seed `S` has seed `S + k`, so a failing case is rerun alone with its own
//! seed (`dsrlab fuzz lb --seed <case seed> --count 1`). The first mismatch
//! stops the run; it is reported with a layer-by-layer diff, the world and
//! the frames that led to it, and whether that frame alone (after the same
//! control events, on a fresh program) reproduces it.
//!
//! The capacity case ([`capacity`], `--capacity`) overflows the connection
//! table: three times its size in flows, twice, with a real re-weighted
//! between the passes; the kernel's evictions are judged as
//! [`super::eviction`] says.

pub mod capacity;
mod thresholds;

pub use self::thresholds::Threshold;

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::{self, Write as _},
    net::{IpAddr, Ipv4Addr},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use aya::maps::PerCpuHashMap;
use dsrlab_abi::lb::{FAMILY_V6, FlowKey, FlowState, LRU_MAP, REAL_STATS_MAP, VIP_STATS_MAP};
use rand_chacha::{
    ChaCha8Rng,
    rand_core::{Rng as _, SeedableRng as _},
};

use super::{
    Expected, LbError, LbSettings, ModelState, Proto, VipSpec,
    control::{Counters, Plane, Write, load_options},
    eviction, instance, maps,
    model::XDP_DROP,
};
use crate::{
    datapath,
    formats::{
        packet::{
            DissectOptions, diff_with, dissect_with,
            repr::Mac,
            spec::{
                EthSpec, ExtKind, Hex, IcmpSpec, Ipv4Spec, Ipv6ExtSpec, Ipv6Spec, LayerSpec,
                PacketSpec, PayloadSpec,
            },
        },
        pcap,
    },
    load::LoadedProgram,
    testrun::{self, Quirks, RunError, Verdict},
};

/// `XDP_ABORTED`: the program gave up; never acceptable, whatever the input.
const XDP_ABORTED: Verdict = Verdict::Xdp(0);

const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const LB_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const GATEWAY_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xfe];

// Address pools: VIPs (the last of each is never provisioned: non-VIP
// traffic), clients, reals, ports.
const VIPS4: [Ipv4Addr; 4] = [
    Ipv4Addr::new(198, 18, 0, 10),
    Ipv4Addr::new(198, 18, 0, 11),
    Ipv4Addr::new(198, 18, 0, 12),
    Ipv4Addr::new(198, 18, 0, 99),
];
const VIPS6: [&str; 4] = [
    "2001:db8::10",
    "2001:db8::11",
    "2001:db8::12",
    "2001:db8::99",
];
const CLIENTS4: [Ipv4Addr; 4] = [
    Ipv4Addr::new(198, 18, 2, 1),
    Ipv4Addr::new(198, 18, 2, 2),
    Ipv4Addr::new(198, 18, 2, 3),
    Ipv4Addr::new(198, 18, 2, 4),
];
const CLIENTS6: [&str; 4] = [
    "2001:db8:2::1",
    "2001:db8:2::2",
    "2001:db8:2::3",
    "2001:db8:2::4",
];
const REALS4: [Ipv4Addr; 5] = [
    Ipv4Addr::new(198, 18, 1, 1),
    Ipv4Addr::new(198, 18, 1, 2),
    Ipv4Addr::new(198, 18, 1, 3),
    Ipv4Addr::new(198, 18, 1, 4),
    Ipv4Addr::new(198, 18, 1, 5),
];
const REALS6: [&str; 5] = [
    "2001:db8:1::1",
    "2001:db8:1::2",
    "2001:db8:1::3",
    "2001:db8:1::4",
    "2001:db8:1::5",
];
const PORTS: [u16; 4] = [80, 443, 8080, 53];
const ROUTER4: &str = "198.18.3.1";
const ROUTER6: &str = "2001:db8:3::1";

fn pool(v6: bool, pool4: &[Ipv4Addr], pool6: &[&str], i: usize) -> IpAddr {
    if v6 {
        IpAddr::V6(pool6[i % pool6.len()].parse().expect("valid pool address"))
    } else {
        IpAddr::V4(pool4[i % pool4.len()])
    }
}

// ---------------------------------------------------------------------------
// Generation
// ---------------------------------------------------------------------------

/// A seeded source of draws.
struct Draw(ChaCha8Rng);

impl Draw {
    fn new(seed: u64) -> Self {
        Self(ChaCha8Rng::seed_from_u64(seed))
    }

    /// Uniform in `0..n` (n ≥ 1).
    fn below(&mut self, n: u64) -> u64 {
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let x = self.0.next_u64();
            if x < zone {
                return x % n;
            }
        }
    }

    fn range(&mut self, r: std::ops::Range<u64>) -> u64 {
        r.start + self.below(r.end - r.start)
    }

    fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    fn chance(&mut self, p: f64) -> bool {
        ((self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    fn u32(&mut self) -> u32 {
        self.0.next_u32()
    }

    fn u8(&mut self) -> u8 {
        self.0.next_u32() as u8
    }

    /// An index chosen by weight.
    fn weighted(&mut self, weights: &[u64]) -> usize {
        let mut x = self.below(weights.iter().sum());
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        unreachable!("x < sum of weights")
    }
}

/// A VIP of a generated world.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VipRecipe {
    /// The VIP.
    pub spec: VipSpec,
    /// Its reals and weights (some of the other family).
    pub reals: Vec<(IpAddr, u32)>,
}

/// A generated world: settings and what to provision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct World {
    /// Ring size, hash seed, MTU, ICMP switches.
    pub settings: LbSettings,
    /// VIPs in the order they are added; one that collides with an earlier
    /// one is skipped, as is a real already in its VIP.
    pub vips: Vec<VipRecipe>,
}

impl World {
    fn generate(d: &mut Draw) -> Self {
        let ring_size = [13, 251, 65537][d.weighted(&[3, 3, 1])];
        let hash_seed = d.u32();
        let mtu = match d.weighted(&[2, 1, 1]) {
            0 => 1500,
            1 => d.range(200..1500) as u32,
            _ => 9000,
        };
        let settings = LbSettings {
            ring_size,
            hash_seed,
            gateway_mac: GATEWAY_MAC,
            mtu,
            icmp_echo: d.chance(0.8),
            send_too_big: d.chance(0.8),
            gue_v6_zero_checksum: d.chance(0.2),
            ..LbSettings::default()
        };
        let vips = (0..d.range(1..5))
            .map(|_| {
                let v6 = d.chance(0.5);
                let addr = pool(v6, &VIPS4, &VIPS6, d.index(3));
                let port = if d.chance(0.7) { PORTS[d.index(2)] } else { 0 };
                let proto = if d.chance(0.5) {
                    Proto::Udp
                } else {
                    Proto::Tcp
                };
                let flags = d.below(16) as u32;
                let reals = (0..d.below(4))
                    .map(|_| {
                        let other = d.chance(0.2);
                        let real = pool(v6 != other, &REALS4, &REALS6, d.index(REALS4.len()));
                        (real, d.below(4) as u32)
                    })
                    .collect();
                VipRecipe {
                    spec: VipSpec {
                        addr,
                        port,
                        proto,
                        flags,
                    },
                    reals,
                }
            })
            .collect();
        Self { settings, vips }
    }

    /// The control plane's bookkeeping of this world and the map writes
    /// that carry it out, in order. A VIP that collides with an earlier one
    /// is skipped, as is a real already in its VIP.
    pub fn plane(&self) -> Result<(Plane, Vec<Write>), LbError> {
        let (mut plane, mut writes) = Plane::new(self.settings)?;
        for v in &self.vips {
            match plane.add_vip(v.spec) {
                Err(LbError::VipExists(_)) => continue,
                other => writes.extend(other?),
            }
            for (real, weight) in &v.reals {
                match plane.add_real(&v.spec.vip(), *real, *weight) {
                    Err(LbError::RealExists { .. }) => {}
                    other => writes.extend(other?),
                }
            }
        }
        Ok((plane, writes))
    }
}

/// What a well-formed generated packet is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Tcp,
    Udp,
    EchoRequest,
    /// An unreachable / PTB from a router quoting the VIP → client packet.
    IcmpError,
    /// Protocol 47, no header.
    Gre,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Special {
    None,
    Options,
    FirstFragment,
    LaterFragment,
    /// The IP length covers this many bytes of the L4 header.
    L4Bytes(usize),
    Padding,
}

/// A well-formed packet's recipe.
#[derive(Clone, Debug)]
struct Recipe {
    v6: bool,
    client: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    kind: Kind,
    tcp_flags: &'static str,
    payload: usize,
    df: bool,
    tos: u8,
    special: Special,
}

const TCP_FLAGS: [&str; 7] = ["S", "SA", "A", "PA", "FA", "R", "SE"];

impl Recipe {
    /// A packet: most of them aimed at one of the world's VIPs (address,
    /// port and protocol), the rest anywhere in the pools.
    fn generate(d: &mut Draw, world: &World) -> Self {
        let mut kind = [
            Kind::Tcp,
            Kind::Udp,
            Kind::EchoRequest,
            Kind::IcmpError,
            Kind::Gre,
        ][d.weighted(&[5, 3, 1, 1, 1])];
        let special = [
            Special::None,
            Special::Options,
            Special::FirstFragment,
            Special::LaterFragment,
            Special::L4Bytes(3),
            Special::Padding,
        ][d.weighted(&[12, 1, 1, 1, 1, 1])];
        let mut v6 = d.chance(0.5);
        let mut dst = pool(v6, &VIPS4, &VIPS6, d.index(VIPS4.len()));
        let mut dport = PORTS[d.index(PORTS.len())];
        if !world.vips.is_empty() && d.chance(0.6) {
            let vip = &world.vips[d.index(world.vips.len())].spec;
            v6 = vip.addr.is_ipv6();
            dst = vip.addr;
            if vip.port != 0 {
                dport = vip.port;
            }
            if matches!(kind, Kind::Tcp | Kind::Udp) {
                kind = match vip.proto {
                    Proto::Tcp => Kind::Tcp,
                    Proto::Udp => Kind::Udp,
                };
            }
        }
        Self {
            v6,
            client: pool(v6, &CLIENTS4, &CLIENTS6, d.index(CLIENTS4.len())),
            dst,
            sport: match d.below(3) {
                0 => 40000,
                1 => 40001,
                _ => d.u32() as u16,
            },
            dport,
            kind,
            tcp_flags: TCP_FLAGS[d.index(TCP_FLAGS.len())],
            payload: if d.chance(0.75) {
                d.below(64) as usize
            } else {
                d.range(64..1500) as usize
            },
            df: d.chance(0.5),
            tos: d.u8(),
            special,
        }
    }

    /// One line: `v4 tcp 198.18.2.1:40000 > 198.18.0.10:80 [S] +12`.
    fn describe(&self) -> String {
        let (client, dst) = (self.client, self.dst);
        let family = if self.v6 { "v6" } else { "v4" };
        let what = match self.kind {
            Kind::Tcp => format!(
                "tcp {client}:{} > {dst}:{} [{}]",
                self.sport, self.dport, self.tcp_flags
            ),
            Kind::Udp => format!("udp {client}:{} > {dst}:{}", self.sport, self.dport),
            Kind::EchoRequest => format!("echo request {client} > {dst}"),
            Kind::IcmpError => format!(
                "icmp error to {dst} quoting {dst}:{} > {client}:{}",
                self.dport, self.sport
            ),
            Kind::Gre => format!("gre {client} > {dst}"),
        };
        let special = match self.special {
            Special::None => "",
            Special::Options => ", ip options",
            Special::FirstFragment => ", first fragment",
            Special::LaterFragment => ", later fragment",
            Special::L4Bytes(n) => &format!(", l4 cut to {n} bytes"),
            Special::Padding => ", padded to 128",
        };
        format!("{family} {what}, payload {}{special}", self.payload)
    }

    /// The packet spec, and the cut it is built with (consistently short L4).
    fn spec(&self) -> PacketSpec {
        let client = self.client.to_string();
        let dst = self.dst.to_string();
        let frag_mf = self.special == Special::FirstFragment;
        let frag_off = if self.special == Special::LaterFragment {
            185
        } else {
            0
        };
        let fragment = matches!(
            self.special,
            Special::FirstFragment | Special::LaterFragment
        );
        let mut layers = vec![LayerSpec::Eth(EthSpec {
            src: Some(Mac(CLIENT_MAC)),
            dst: Some(Mac(LB_MAC)),
            pad_to: (self.special == Special::Padding).then_some(128),
            ..EthSpec::default()
        })];
        // A router on the way to the client reports to the VIP.
        let src = match (self.kind, self.v6) {
            (Kind::IcmpError, true) => ROUTER6.to_owned(),
            (Kind::IcmpError, false) => ROUTER4.to_owned(),
            _ => client.clone(),
        };
        if self.v6 {
            layers.push(LayerSpec::Ipv6(Ipv6Spec {
                tclass: Some(self.tos),
                ..ipv6(&src, &dst)
            }));
            if fragment {
                layers.push(LayerSpec::Ipv6Ext(Ipv6ExtSpec {
                    kind: ExtKind::Fragment,
                    next_header: None,
                    len: None,
                    data: None,
                    offset: Some(frag_off),
                    mf: Some(frag_mf),
                    ident: Some(9),
                }));
            }
        } else {
            layers.push(LayerSpec::Ipv4(Ipv4Spec {
                tos: Some(self.tos),
                df: Some(self.df),
                mf: Some(frag_mf),
                frag: Some(frag_off),
                options: (self.special == Special::Options).then(|| Hex(vec![1, 1, 1, 0])),
                proto: (self.kind == Kind::Gre).then_some(47),
                ..ipv4(&src, &dst)
            }));
        }
        match self.kind {
            Kind::Tcp => layers.push(LayerSpec::tcp(self.sport, self.dport, self.tcp_flags)),
            Kind::Udp => layers.push(LayerSpec::udp(self.sport, self.dport)),
            Kind::Gre => {}
            Kind::EchoRequest => layers.push(if self.v6 {
                LayerSpec::Icmpv6(IcmpSpec::default())
            } else {
                LayerSpec::Icmp(IcmpSpec::default())
            }),
            Kind::IcmpError => {
                let (t, rest) = if self.v6 {
                    (if self.sport % 2 == 0 { 2 } else { 1 }, 1280)
                } else {
                    (3, if self.df { 1200 } else { 0 })
                };
                let icmp = IcmpSpec {
                    icmp_type: Some(t),
                    code: Some((self.sport % 5) as u8),
                    rest: Some(rest),
                    ..IcmpSpec::default()
                };
                if self.v6 {
                    layers.push(LayerSpec::Icmpv6(icmp));
                    layers.push(LayerSpec::Ipv6(ipv6(&dst, &client)));
                } else {
                    layers.push(LayerSpec::Icmp(icmp));
                    layers.push(LayerSpec::Ipv4(ipv4(&dst, &client)));
                }
                if self.tcp_flags.len() % 2 == 0 {
                    layers.push(LayerSpec::udp(self.dport, self.sport));
                } else {
                    layers.push(LayerSpec::tcp(self.dport, self.sport, "SA"));
                }
            }
        }
        layers.push(LayerSpec::Payload(PayloadSpec {
            len: Some(self.payload),
            ..PayloadSpec::default()
        }));
        let spec = PacketSpec {
            layers,
            cut: None,
            mutate: vec![],
        };
        if let Special::L4Bytes(n) = self.special
            && self.kind != Kind::Gre
        {
            // Consistently short: the IP length covers n bytes of L4.
            let l3 = if self.v6 { 40 } else { 20 };
            let cut = PacketSpec {
                cut: Some(14 + l3 + n),
                ..spec.clone()
            };
            if cut.build().is_ok() {
                return cut;
            }
        }
        spec
    }
}

fn ipv4(src: &str, dst: &str) -> Ipv4Spec {
    Ipv4Spec::between(
        src.parse().expect("pool address"),
        dst.parse().expect("pool address"),
    )
}

fn ipv6(src: &str, dst: &str) -> Ipv6Spec {
    Ipv6Spec::between(
        src.parse().expect("pool address"),
        dst.parse().expect("pool address"),
    )
}

/// What a frame is: well-formed or one of the malformed derivations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FrameKind {
    /// A generated packet as built.
    WellFormed,
    /// Cut short at a header boundary (or one byte before it); the IP
    /// lengths still claim the whole packet.
    Truncated,
    /// Cut at a header boundary with lengths and checksums that say so.
    Cut,
    /// One to three bytes changed (a bit flipped or a random value).
    Flipped,
    /// Aimed at a size threshold of the contract ([`thresholds`]).
    Threshold(Threshold),
}

impl FrameKind {
    /// Lower-case name for reports.
    pub const fn name(self) -> &'static str {
        match self {
            Self::WellFormed => "well-formed",
            Self::Truncated => "truncated",
            Self::Cut => "cut",
            Self::Flipped => "flipped",
            Self::Threshold(t) => t.name(),
        }
    }
}

/// One step of a case.
#[derive(Clone, Debug)]
pub enum Step {
    /// A frame through the kernel and the model.
    Frame {
        /// What it is, in one line.
        label: String,
        /// Well-formed or how it was damaged.
        kind: FrameKind,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// Changes the weight of a real of a VIP (indices modulo the current
    /// lists) while traffic flows.
    SetWeight {
        /// VIP index.
        vip: usize,
        /// Real index within it.
        real: usize,
        /// The new weight.
        weight: u32,
    },
    /// Removes a real of a VIP (indices modulo the current lists).
    RemoveReal {
        /// VIP index.
        vip: usize,
        /// Real index within it.
        real: usize,
    },
}

/// A world and the steps run against it.
#[derive(Clone, Debug)]
pub struct Case {
    /// The seed it was generated from.
    pub seed: u64,
    /// What to provision.
    pub world: World,
    /// Frames and control events, in order.
    pub steps: Vec<Step>,
}

impl Case {
    /// The case of `seed`: the same seed always gives the same case.
    /// `malformed` adds truncation families and flipped frames.
    pub fn generate(seed: u64, malformed: bool) -> Self {
        let mut d = Draw::new(seed);
        let world = World::generate(&mut d);
        let mut steps = Vec::new();
        Self::thresholds(&mut d, &world, malformed, &mut steps);
        let events = d.range(60..140);
        for _ in 0..events {
            let weights: &[u64] = if malformed {
                &[30, 1, 1, 1, 6]
            } else {
                &[30, 1, 1, 0, 0]
            };
            match d.weighted(weights) {
                0 => {
                    let r = Recipe::generate(&mut d, &world);
                    steps.push(frame(
                        r.describe(),
                        FrameKind::WellFormed,
                        r.spec().build().expect("generated specs build"),
                    ));
                }
                1 => steps.push(Step::SetWeight {
                    vip: d.index(8),
                    real: d.index(8),
                    weight: d.below(4) as u32,
                }),
                2 => steps.push(Step::RemoveReal {
                    vip: d.index(8),
                    real: d.index(8),
                }),
                3 => truncations(&Recipe::generate(&mut d, &world), &mut steps),
                _ => {
                    let r = Recipe::generate(&mut d, &world);
                    steps.push(flipped(&r, &mut d));
                }
            }
        }
        Self { seed, world, steps }
    }

    /// Frames in the case.
    pub fn frames(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| matches!(s, Step::Frame { .. }))
            .count()
    }
}

fn frame(label: String, kind: FrameKind, bytes: Vec<u8>) -> Step {
    Step::Frame { label, kind, bytes }
}

/// Every truncation of `r` at a header boundary and one byte short of it,
/// plain and consistent, without duplicates.
fn truncations(r: &Recipe, steps: &mut Vec<Step>) {
    let spec = r.spec();
    let Ok(built) = spec.build_detailed() else {
        return;
    };
    let len = built.bytes.len();
    let mut boundaries = BTreeSet::new();
    for layer in &built.layers {
        let end = layer.offset + layer.header_len;
        boundaries.insert(layer.offset);
        boundaries.insert(end);
        boundaries.insert(end.saturating_sub(1));
    }
    let mut seen = BTreeSet::new();
    for b in boundaries.into_iter().filter(|b| (1..len).contains(b)) {
        let layer = built
            .layers
            .iter()
            .rev()
            .find(|l| l.offset <= b)
            .map_or("eth", |l| l.label.as_str());
        let truncated = built.bytes[..b].to_vec();
        if seen.insert(truncated.clone()) {
            steps.push(frame(
                format!("{}, truncated to {b} bytes (in {layer})", r.describe()),
                FrameKind::Truncated,
                truncated,
            ));
        }
        // A cut of the uncut spec: lengths consistent with what is left.
        let cut = PacketSpec {
            cut: Some(b),
            ..PacketSpec {
                cut: None,
                ..spec.clone()
            }
        };
        if let Ok(bytes) = cut.build()
            && seen.insert(bytes.clone())
        {
            steps.push(frame(
                format!("{}, cut to {b} bytes (in {layer})", r.describe()),
                FrameKind::Cut,
                bytes,
            ));
        }
    }
}

/// `r` with one to three bytes changed, mostly in the headers.
fn flipped(r: &Recipe, d: &mut Draw) -> Step {
    let spec = r.spec();
    let built = spec.build_detailed().expect("generated specs build");
    let mut bytes = built.bytes;
    let headers_end = built
        .layers
        .iter()
        .filter(|l| l.kind != "payload")
        .map(|l| l.offset + l.header_len)
        .max()
        .unwrap_or(bytes.len())
        .min(bytes.len());
    let mut changes = Vec::new();
    for _ in 0..d.range(1..4) {
        let offset = if d.chance(0.85) && headers_end > 0 {
            d.index(headers_end)
        } else {
            d.index(bytes.len())
        };
        let old = bytes[offset];
        bytes[offset] = if d.chance(0.5) {
            old ^ (1 << d.below(8))
        } else {
            d.u8()
        };
        if bytes[offset] != old {
            changes.push(format!("[{offset}] {old:02x}→{:02x}", bytes[offset]));
        }
    }
    let what = if changes.is_empty() {
        "no byte changed".to_owned()
    } else {
        changes.join(" ")
    };
    frame(
        format!("{}, flipped {what}", r.describe()),
        FrameKind::Flipped,
        bytes,
    )
}

// ---------------------------------------------------------------------------
// Running
// ---------------------------------------------------------------------------

/// How much to fuzz.
#[derive(Clone, Debug)]
pub struct FuzzOptions {
    /// Frames to compare at least: cases are run until this many went
    /// through (the last case runs whole; the first always runs).
    pub packets: u64,
    /// Seed of the first case; case `k` has seed `seed + k`.
    pub seed: u64,
    /// Malformed frames (truncations, flips) besides well-formed traffic.
    pub malformed: bool,
    /// The CPU the calling thread is pinned to (the connection table is
    /// per CPU).
    pub cpu: usize,
    /// Run the capacity case (seed `seed`) first.
    pub capacity: bool,
}

impl Default for FuzzOptions {
    fn default() -> Self {
        Self {
            packets: 10_000,
            seed: 0x0d5e_1ab0,
            malformed: true,
            cpu: 0,
            capacity: false,
        }
    }
}

/// Where a run stands, for a progress display.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Cases finished.
    pub cases: u64,
    /// Frames compared so far.
    pub compared: u64,
    /// Frames the run aims at.
    pub target: u64,
}

/// Why a run could not be carried out (as opposed to finding a mismatch).
#[derive(Debug, thiserror::Error)]
pub enum FuzzError {
    /// The machine cannot load or run the program.
    #[error("cannot fuzz xdp_lb: {0}")]
    Unavailable(String),
    /// The calling thread could not be pinned.
    #[error("cannot pin to CPU {cpu}: {source}")]
    Pin {
        /// The CPU.
        cpu: usize,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Loading or provisioning a case's world failed.
    #[error("case seed {seed:#x}: setting up the world: {source}")]
    Setup {
        /// The case's seed.
        seed: u64,
        /// The control plane's error.
        #[source]
        source: LbError,
    },
    /// A control event or reading the program's state failed.
    #[error("case seed {seed:#x}: {what}")]
    Harness {
        /// The case's seed.
        seed: u64,
        /// What failed.
        what: String,
    },
    /// The kernel rejected a test run for a reason other than the frame's
    /// size.
    #[error("case seed {seed:#x}, step {step} ({label}): {source}")]
    TestRun {
        /// The case's seed.
        seed: u64,
        /// Step index.
        step: usize,
        /// The frame.
        label: String,
        /// The error.
        #[source]
        source: RunError,
    },
}

/// The first disagreement between the kernel and the model.
#[derive(Clone, Debug)]
pub struct Mismatch {
    /// The failing case's seed: `dsrlab fuzz lb --seed <it> --count 1`
    /// reruns it.
    pub seed: u64,
    /// The world, described.
    pub world: String,
    /// The frame's step index (`None`: a case-level check, after all
    /// steps).
    pub step: Option<usize>,
    /// The frame (or the check) in one line.
    pub label: String,
    /// What differs, one line per aspect.
    pub what: Vec<String>,
    /// The layer-by-layer diff of expected and actual output, if the bytes
    /// differ.
    pub diff: Option<String>,
    /// The input frame's dissection.
    pub input_dissection: Option<String>,
    /// The input frame.
    pub input: Option<Vec<u8>>,
    /// What the model said the output is.
    pub expected: Option<Vec<u8>>,
    /// What the kernel output.
    pub actual: Option<Vec<u8>>,
    /// Every frame of the case up to and including the failing one, in order.
    pub frames: Vec<Vec<u8>>,
    /// Whether the failing frame alone, after the same control events on a
    /// fresh program, disagrees again (`None`: not tried).
    pub alone: Option<bool>,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.step {
            Some(step) => writeln!(f, "MISMATCH at step {step}: {}", self.label)?,
            None => writeln!(f, "MISMATCH after the case: {}", self.label)?,
        }
        for w in &self.what {
            writeln!(f, "    {w}")?;
        }
        if let Some(diff) = &self.diff {
            writeln!(f, "    output differs:")?;
            for line in diff.lines() {
                writeln!(f, "    {line}")?;
            }
        }
        if let Some(d) = &self.input_dissection {
            writeln!(f, "    input:")?;
            for line in d.lines() {
                writeln!(f, "      {line}")?;
            }
        }
        writeln!(f, "    world:")?;
        for line in self.world.lines() {
            writeln!(f, "      {line}")?;
        }
        match self.alone {
            Some(true) => writeln!(
                f,
                "    the frame alone reproduces it (same world and control events, freshly provisioned)"
            )?,
            Some(false) => writeln!(
                f,
                "    the frame alone does not reproduce it: it depends on the {} frames before it (connection table)",
                self.frames.len().saturating_sub(1)
            )?,
            None => {}
        }
        write!(
            f,
            "    rerun this case: dsrlab fuzz lb --seed {:#x} --count 1",
            self.seed
        )
    }
}

impl Mismatch {
    /// Writes `case.pcap` (every frame of the case up to the failing one),
    /// and `input.pcap`, `expected.pcap`, `actual.pcap` of the failing frame
    /// into `dir`; returns the paths written.
    pub fn write_pcaps(&self, dir: &Path) -> Result<Vec<PathBuf>, pcap::PcapError> {
        std::fs::create_dir_all(dir).map_err(|e| pcap::PcapError {
            path: dir.to_owned(),
            packet: None,
            what: format!("cannot create the directory: {e}"),
        })?;
        let mut written = Vec::new();
        let mut write = |name: &str, packets: &[Vec<u8>]| {
            let path = dir.join(name);
            pcap::write_file(&path, packets)?;
            written.push(path);
            Ok::<_, pcap::PcapError>(())
        };
        write("case.pcap", &self.frames)?;
        for (name, frame) in [
            ("input.pcap", &self.input),
            ("expected.pcap", &self.expected),
            ("actual.pcap", &self.actual),
        ] {
            if let Some(frame) = frame {
                write(name, std::slice::from_ref(frame))?;
            }
        }
        Ok(written)
    }
}

/// What a run did.
#[derive(Clone, Debug, Default)]
pub struct FuzzReport {
    /// The first case's seed.
    pub seed: u64,
    /// Cases run.
    pub cases: u64,
    /// Frames compared, by kind.
    pub compared: BTreeMap<FrameKind, u64>,
    /// Frames skipped, by reason.
    pub skipped: BTreeMap<String, u64>,
    /// Control events applied while traffic flowed.
    pub control_events: u64,
    /// Frames whose flow the kernel had evicted from its full connection
    /// table (judged as `lb::eviction` says).
    pub evicted: u64,
    /// Outcomes reached (the model's outcome counter), with counts.
    pub outcomes: BTreeMap<&'static str, u64>,
    /// What the threshold frames gave: (threshold, outcome) with counts;
    /// a frame sent to a real also says how long its outer IP packet was
    /// against the MTU (`tx, outer = mtu`).
    pub thresholds: BTreeMap<(&'static str, String), u64>,
    /// Wall-clock time of the whole run, set-up included.
    pub elapsed: Duration,
    /// Time spent comparing frames (test run, model, counters), set-up
    /// excluded.
    pub comparing: Duration,
    /// The first mismatch; `None` if the kernel and the model agreed.
    pub mismatch: Option<Mismatch>,
}

impl FuzzReport {
    /// Frames compared in all.
    pub fn total(&self) -> u64 {
        self.compared.values().sum()
    }

    /// Frames compared per second of comparing (set-up excluded).
    pub fn per_second(&self) -> f64 {
        self.total() as f64 / self.comparing.as_secs_f64().max(1e-9)
    }

    /// Frames compared per second of wall-clock time (set-up included).
    pub fn per_second_overall(&self) -> f64 {
        self.total() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Summary lines: cases, frames by kind, skips with reasons, outcomes,
/// rates, and the mismatch if any.
impl fmt::Display for FuzzReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kinds: Vec<String> = self
            .compared
            .iter()
            .map(|(k, n)| format!("{n} {}", k.name()))
            .collect();
        writeln!(
            f,
            "xdp_lb vs model: {} cases (seeds {:#x}..={:#x}), {} frames compared ({}), {} control events",
            self.cases,
            self.seed,
            self.seed.wrapping_add(self.cases.saturating_sub(1)),
            self.total(),
            kinds.join(", "),
            self.control_events
        )?;
        for (reason, n) in &self.skipped {
            writeln!(f, "skipped {n} frames: {reason}")?;
        }
        if self.evicted > 0 {
            writeln!(
                f,
                "{} frames of flows the kernel evicted from its full connection table, selected again from the ring",
                self.evicted
            )?;
        }
        let outcomes: Vec<String> = self
            .outcomes
            .iter()
            .map(|(o, n)| format!("{o} {n}"))
            .collect();
        writeln!(f, "outcomes: {}", outcomes.join(", "))?;
        if !self.thresholds.is_empty() {
            let thresholds: Vec<String> = self
                .thresholds
                .iter()
                .map(|((t, o), n)| format!("{t}: {o} {n}"))
                .collect();
            writeln!(f, "thresholds: {}", thresholds.join("; "))?;
        }
        writeln!(
            f,
            "{:.0} frames compared/s while comparing ({:.0}/s overall, {:.1} s with loading and provisioning)",
            self.per_second(),
            self.per_second_overall(),
            self.elapsed.as_secs_f64()
        )?;
        match &self.mismatch {
            None => write!(f, "no mismatch"),
            Some(m) => write!(f, "{m}"),
        }
    }
}

/// Why this machine cannot run the differential comparison, if it cannot.
pub fn unavailable() -> Option<String> {
    if datapath::XDP_LB.elf.is_empty() {
        return Some("the xdp_lb object is empty (built with AYA_BUILD_SKIP=1)".into());
    }
    if let Err(e) = crate::kernel::check_bpf_capabilities() {
        return Some(e.to_string());
    }
    None
}

/// One loaded `xdp_lb` per ring size (the ring size is fixed at load),
/// reused from case to case: a case's world is written through the control
/// plane and taken down again after it (every VIP removed, which clears
/// VIP entries, rings and reals; the connection table emptied; statistics
/// are zeroed when a number or id is allocated; counters are compared as
/// deltas). Loading costs a verifier pass of ≈ 70 ms, a case ≈ 1 ms.
#[derive(Default)]
struct Rig {
    programs: BTreeMap<u32, LoadedProgram>,
}

impl Rig {
    fn program(&mut self, ring_size: u32, seed: u64) -> Result<&mut LoadedProgram, FuzzError> {
        match self.programs.entry(ring_size) {
            std::collections::btree_map::Entry::Occupied(e) => Ok(e.into_mut()),
            std::collections::btree_map::Entry::Vacant(e) => {
                let le = ring_size.to_le_bytes();
                let program =
                    LoadedProgram::builtin(datapath::XDP_LB, &load_options(ring_size, &le))
                        .map_err(|e| FuzzError::Setup {
                            seed,
                            source: LbError::Load(e),
                        })?;
                Ok(e.insert(program))
            }
        }
    }
}

/// Runs cases until `options.packets` frames were compared or a mismatch
/// is found; `progress` is called after every case.
pub fn run(
    options: &FuzzOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<FuzzReport, FuzzError> {
    if let Some(reason) = unavailable() {
        return Err(FuzzError::Unavailable(reason));
    }
    crate::bench::pin_to_cpu(options.cpu).map_err(|source| FuzzError::Pin {
        cpu: options.cpu,
        source,
    })?;
    let started = Instant::now();
    let mut rig = Rig::default();
    let mut report = FuzzReport {
        seed: options.seed,
        ..FuzzReport::default()
    };
    while report.cases == 0 || report.total() < options.packets {
        let seed = options.seed.wrapping_add(report.cases);
        let case = if options.capacity && report.cases == 0 {
            Case::capacity(seed)
        } else {
            Case::generate(seed, options.malformed)
        };
        let mut mismatch = run_case(&mut rig, &case, options.cpu, &mut report, None)?;
        report.cases += 1;
        if let Some(m) = &mut mismatch
            && let Some(step) = m.step
        {
            // Does the frame reproduce it without the traffic before it?
            let mut scratch = FuzzReport::default();
            m.alone =
                Some(run_case(&mut rig, &case, options.cpu, &mut scratch, Some(step))?.is_some());
        }
        progress(Progress {
            cases: report.cases,
            compared: report.total(),
            target: options.packets,
        });
        if mismatch.is_some() {
            report.mismatch = mismatch;
            break;
        }
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// The world as the plane holds it: settings, then each VIP with its reals.
pub fn describe_world(plane: &Plane) -> String {
    let s = plane.settings();
    let mut out = format!(
        "ring {}, hash seed {:#x}, mtu {}, icmp echo {}, send too big {}, gue checksum over IPv6 {}\n",
        s.ring_size,
        s.hash_seed,
        s.mtu,
        if s.icmp_echo { "on" } else { "off" },
        if s.send_too_big { "on" } else { "off" },
        if s.gue_v6_zero_checksum {
            "zero"
        } else {
            "computed"
        },
    );
    for spec in plane.vips() {
        let vip = spec.vip();
        let reals: Vec<String> = plane
            .reals_of(&vip)
            .into_iter()
            .flatten()
            .map(|(addr, w)| format!("{addr} w{w}"))
            .collect();
        let _ = writeln!(
            out,
            "VIP {vip} flags {:#x} #{}: {}",
            spec.flags,
            plane.vip_num(&vip).unwrap_or_default(),
            if reals.is_empty() {
                "no reals".to_owned()
            } else {
                reals.join(", ")
            }
        );
    }
    out
}

/// Runs one case on the rig's program for its ring size and takes its
/// world down again, whatever happened.
fn run_case(
    rig: &mut Rig,
    case: &Case,
    cpu: usize,
    report: &mut FuzzReport,
    only: Option<usize>,
) -> Result<Option<Mismatch>, FuzzError> {
    let seed = case.seed;
    let program = rig.program(case.world.settings.ring_size, seed)?;
    let (mut plane, writes) = case
        .world
        .plane()
        .map_err(|source| FuzzError::Setup { seed, source })?;
    let applied = maps::apply(program, writes).map_err(|what| FuzzError::Harness {
        seed,
        what: format!("setting up the world: {what}"),
    });
    let result = applied.and_then(|()| compare(program, &mut plane, case, cpu, report, only));
    let teardown = teardown(program, &mut plane).map_err(|what| FuzzError::Harness {
        seed,
        what: format!("taking the world down: {what}"),
    });
    let mismatch = result?;
    teardown?;
    Ok(mismatch)
}

/// Removes every VIP through the plane and empties the connection table.
fn teardown(program: &mut LoadedProgram, plane: &mut Plane) -> Result<(), String> {
    let vips: Vec<VipSpec> = plane.vips().collect();
    for spec in vips {
        let writes = plane.remove_vip(&spec.vip()).map_err(|e| e.to_string())?;
        maps::apply(program, writes)?;
    }
    let map = program
        .map_mut(LRU_MAP)
        .ok_or_else(|| format!("the program has no map {LRU_MAP}"))?;
    let mut lru = PerCpuHashMap::<_, FlowKey, FlowState>::try_from(map)
        .map_err(|e| format!("{LRU_MAP}: {e}"))?;
    let keys: Vec<FlowKey> = lru
        .keys()
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{LRU_MAP}: {e}"))?;
    for key in keys {
        match lru.remove(&key) {
            // An LRU map may have evicted it meanwhile.
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
            Err(e) => return Err(format!("{LRU_MAP}: {e}")),
        }
    }
    Ok(())
}

/// The comparison proper: every frame step (or only step `only`, after
/// every control event before it), then the case-level checks.
fn compare(
    program: &mut LoadedProgram,
    plane: &mut Plane,
    case: &Case,
    cpu: usize,
    report: &mut FuzzReport,
    only: Option<usize>,
) -> Result<Option<Mismatch>, FuzzError> {
    let seed = case.seed;
    let harness = |what: String| FuzzError::Harness { seed, what };
    let world = describe_world(plane);
    let mut model = plane.model_state();
    let mut expected_vip: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    let mut expected_real: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    let mut frames: Vec<Vec<u8>> = Vec::new();
    let mut counters = instance::counters(&*program).map_err(harness)?;
    let mismatch =
        |step: Option<usize>, label: String, what: Vec<String>, frames: &[Vec<u8>]| Mismatch {
            seed,
            world: world.clone(),
            step,
            label,
            what,
            diff: None,
            input_dissection: None,
            input: None,
            expected: None,
            actual: None,
            frames: frames.to_vec(),
            alone: None,
        };

    for (i, step) in case.steps.iter().enumerate() {
        let (label, kind, bytes) = match step {
            Step::Frame { label, kind, bytes } => (label, *kind, bytes),
            Step::SetWeight { vip, real, weight } => {
                control_event(program, plane, &mut model, *vip, *real, Some(*weight))
                    .map_err(|e| harness(format!("step {i}: {e}")))?;
                report.control_events += 1;
                continue;
            }
            Step::RemoveReal { vip, real } => {
                control_event(program, plane, &mut model, *vip, *real, None)
                    .map_err(|e| harness(format!("step {i}: {e}")))?;
                report.control_events += 1;
                continue;
            }
        };
        if only.is_some_and(|o| o != i) {
            continue;
        }
        let started = Instant::now();
        let actual = match testrun::run(program, bytes, Quirks::default()) {
            Ok(r) => r,
            Err(e @ RunError::Unrunnable { .. }) => {
                *report.skipped.entry(e.to_string()).or_default() += 1;
                continue;
            }
            Err(source) => {
                return Err(FuzzError::TestRun {
                    seed,
                    step: i,
                    label: label.clone(),
                    source,
                });
            }
        };
        let mut expected = model.process(bytes);
        let after = instance::counters(&*program).map_err(harness)?;
        let delta = after.since(&counters);
        counters = after;
        report.comparing += started.elapsed();
        *report.compared.entry(kind).or_default() += 1;
        frames.push(bytes.clone());

        let (mut what, mut diff) = differences(&expected, &actual, &delta);
        let flows = model.lru.len();
        if !what.is_empty()
            && let Some((evicted, eviction)) =
                eviction::alternative(&mut model, bytes, &expected, flows)
        {
            let (evicted_what, evicted_diff) = differences(&evicted, &actual, &delta);
            if evicted_what.is_empty() {
                (what, diff) = (evicted_what, evicted_diff);
                expected = evicted;
                report.evicted += 1;
            } else {
                eviction.undo(&mut model);
            }
        }
        *report.outcomes.entry(expected.outcome.name()).or_default() += 1;
        if let FrameKind::Threshold(t) = kind {
            let mut outcome = expected.outcome.name().to_owned();
            if matches!(t, Threshold::Mtu(_)) && expected.verdict == crate::lb::model::XDP_TX {
                let outer = expected.output.len().saturating_sub(14) as i64;
                let mtu = i64::from(plane.settings().mtu);
                if (outer - mtu).abs() <= 1 {
                    outcome += &format!(", outer = mtu{:+}", outer - mtu).replace("+0", "");
                }
            }
            *report.thresholds.entry((t.name(), outcome)).or_default() += 1;
        }
        if !what.is_empty() {
            let mut m = mismatch(Some(i), label.clone(), what, &frames);
            m.diff = diff;
            m.input_dissection = Some(dissect_with(bytes, &DissectOptions::default()).to_string());
            m.input = Some(bytes.clone());
            m.expected = Some(expected.output);
            m.actual = Some(actual.output);
            return Ok(Some(m));
        }
        if let Some(s) = expected.stats {
            let v = expected_vip.entry(s.vip_num).or_default();
            *v = (v.0 + 1, v.1 + s.bytes);
            let r = expected_real.entry(s.real).or_default();
            *r = (r.0 + 1, r.1 + s.bytes);
        }
    }
    if only.is_some() {
        return Ok(None);
    }

    // Statistics: per VIP and per real, as the model accumulated them.
    let mut what = Vec::new();
    for spec in plane.vips() {
        let vip = spec.vip();
        let num = plane.vip_num(&vip).unwrap_or_default();
        let got = instance::traffic(&*program, VIP_STATS_MAP, num).map_err(harness)?;
        let want = expected_vip.get(&num).copied().unwrap_or_default();
        if (got.packets, got.bytes) != want {
            what.push(format!(
                "stats of VIP {vip}: expected {} packets {} bytes, actual {} packets {} bytes",
                want.0, want.1, got.packets, got.bytes
            ));
        }
    }
    for (id, def) in &model.reals {
        let addr = if def.family == FAMILY_V6 {
            IpAddr::V6(def.addr.into())
        } else {
            IpAddr::V4(Ipv4Addr::new(
                def.addr[0],
                def.addr[1],
                def.addr[2],
                def.addr[3],
            ))
        };
        if plane.real_id(addr) != Some(*id) {
            continue;
        }
        let got = instance::traffic(&*program, REAL_STATS_MAP, *id).map_err(harness)?;
        let want = expected_real.get(id).copied().unwrap_or_default();
        if (got.packets, got.bytes) != want {
            what.push(format!(
                "stats of real {addr}: expected {} packets {} bytes, actual {} packets {} bytes",
                want.0, want.1, got.packets, got.bytes
            ));
        }
    }

    // The connection table, on this CPU.
    let map = program
        .map(LRU_MAP)
        .ok_or_else(|| harness(format!("the program has no map {LRU_MAP}")))?;
    let lru = PerCpuHashMap::<_, FlowKey, FlowState>::try_from(map)
        .map_err(|e| harness(format!("{LRU_MAP}: {e}")))?;
    let mut kernel = BTreeSet::new();
    let mut keys = 0;
    for item in lru.iter() {
        let (key, values) = item.map_err(|e| harness(format!("{LRU_MAP}: {e}")))?;
        keys += 1;
        if let Some(v) = values.get(cpu)
            && v.real != 0
        {
            kernel.insert((format!("{key:?}"), v.real));
        }
    }
    let modeled: BTreeSet<(String, u32)> = model
        .lru
        .iter()
        .filter(|(_, real)| **real != 0)
        .map(|(k, r)| (format!("{k:?}"), *r))
        .collect();
    for (key, real) in kernel.difference(&modeled) {
        what.push(format!(
            "connection table on CPU {cpu}: the kernel has {key} → real {real}, the model does not"
        ));
    }
    // A full table may have evicted what the model still has.
    let full = eviction::may_evict(keys);
    let kernel_keys: BTreeSet<&String> = kernel.iter().map(|(k, _)| k).collect();
    for (key, real) in modeled
        .difference(&kernel)
        .filter(|(k, _)| !full || kernel_keys.contains(k))
    {
        what.push(format!(
            "connection table on CPU {cpu}: the model has {key} → real {real}, the kernel does not"
        ));
    }
    if !what.is_empty() {
        return Ok(Some(mismatch(
            None,
            "statistics and connection table".into(),
            what,
            &frames,
        )));
    }
    Ok(None)
}

/// What differs between the model's `expected` and the kernel's `actual`
/// run that moved the counters by `delta`, and the output diff if the
/// bytes differ.
fn differences(
    expected: &Expected,
    actual: &testrun::RunResult,
    delta: &Counters,
) -> (Vec<String>, Option<String>) {
    let mut want = Counters::default();
    for c in expected.counters() {
        want.0[c as usize] += 1;
    }
    let mut what = Vec::new();
    if actual.verdict == XDP_ABORTED {
        what.push("the kernel returned XDP_ABORTED (never acceptable)".to_owned());
    }
    if actual.verdict != expected.verdict {
        what.push(format!(
            "verdict: expected {} ({}), actual {}",
            expected.verdict.name(),
            expected.outcome.name(),
            actual.verdict.name()
        ));
    }
    if *delta != want {
        what.push(format!("counters: expected {want}, actual {delta}"));
    }
    // A dropped frame's bytes are not observable.
    let output_differs = expected.verdict != XDP_DROP
        && actual.verdict == expected.verdict
        && actual.output != expected.output;
    let mut diff = None;
    if output_differs {
        what.push(format!(
            "output: {} bytes expected, {} bytes actual",
            expected.output.len(),
            actual.output.len()
        ));
        diff = Some(
            diff_with(&expected.output, &actual.output, &DissectOptions::default())
                .unwrap_or_else(|| "(bytes differ outside the dissected fields)".into()),
        );
    }
    (what, diff)
}

/// Re-weights (`Some`) or removes (`None`) a real of a VIP, picked by index,
/// writes the change while traffic would flow, and refreshes the model's
/// maps (its connection table stays: the kernel's did not change either).
fn control_event(
    program: &mut LoadedProgram,
    plane: &mut Plane,
    model: &mut ModelState,
    v: usize,
    r: usize,
    weight: Option<u32>,
) -> Result<(), String> {
    let vips: Vec<VipSpec> = plane.vips().collect();
    if vips.is_empty() {
        return Ok(());
    }
    let vip = vips[v % vips.len()].vip();
    let reals: Vec<IpAddr> = plane
        .reals_of(&vip)
        .map(|r| r.keys().copied().collect())
        .unwrap_or_default();
    if reals.is_empty() {
        return Ok(());
    }
    let real = reals[r % reals.len()];
    let writes = match weight {
        Some(w) => plane.set_weight(&vip, real, w),
        None => plane.remove_real(&vip, real),
    }
    .map_err(|e| e.to_string())?;
    maps::apply(program, writes)?;
    let lru = std::mem::take(&mut model.lru);
    *model = ModelState {
        lru,
        ..plane.model_state()
    };
    Ok(())
}
