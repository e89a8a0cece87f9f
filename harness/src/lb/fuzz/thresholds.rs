//! Frames aimed at the contract's size thresholds, at each one and one
//! byte either side, for the case's own world: the inner IP packet at the
//! MTU less the overhead of each encapsulation its VIPs' reals use (20 or
//! 40, 8 more with GUE), and the L4 bytes an IP length covers at each
//! protocol's minimum (TCP 20, UDP 8). Every case starts with them, so a
//! fixed-seed run reaches every threshold (`tests/lb_model.rs` counts what
//! each one gave).

use super::{
    CLIENTS4, CLIENTS6, Case, Draw, FrameKind, Kind, Recipe, Special, Step, World, frame, pool,
};
use crate::lb::{Proto, encap};

/// Which threshold a frame is aimed at, and on which side of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Threshold {
    /// Inner IP length = MTU − overhead + the offset (−1, 0, +1).
    Mtu(i8),
    /// L4 bytes = the protocol's header length + the offset.
    L4Minimum(i8),
}

impl Threshold {
    /// Lower-case name for reports.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Mtu(-1) => "mtu-1",
            Self::Mtu(0) => "at mtu",
            Self::Mtu(_) => "mtu+1",
            Self::L4Minimum(-1) => "l4 minimum-1",
            Self::L4Minimum(0) => "at l4 minimum",
            Self::L4Minimum(_) => "l4 minimum+1",
        }
    }
}

/// The longest frame aimed at: test runs of XDP programs take at most
/// about a page, so MTUs of jumbo worlds are not aimed at.
const LONGEST: usize = 3000;

impl Case {
    /// Appends the world's threshold frames to `steps` (see the module);
    /// `malformed` adds the ones below a minimum.
    pub(super) fn thresholds(d: &mut Draw, world: &World, malformed: bool, steps: &mut Vec<Step>) {
        let mtu = world.settings.mtu as usize;
        for vip in &world.vips {
            let spec = vip.spec;
            let v6 = spec.addr.is_ipv6();
            let overheads = encap::vip_overheads(&spec, vip.reals.iter().map(|(r, w)| (*r, *w)));
            let (kind, l4) = match spec.proto {
                Proto::Tcp => (Kind::Tcp, 20),
                Proto::Udp => (Kind::Udp, 8),
            };
            let l3 = if v6 { 40 } else { 20 };
            let aim = |d: &mut Draw, payload: usize, special: Special, threshold: Threshold| {
                let mut r = Recipe::generate(d, world);
                r.v6 = v6;
                r.client = pool(v6, &CLIENTS4, &CLIENTS6, d.index(CLIENTS4.len()));
                r.dst = spec.addr;
                if spec.port != 0 {
                    r.dport = spec.port;
                }
                r.kind = kind;
                r.tcp_flags = "A";
                r.df = true;
                r.payload = payload;
                r.special = special;
                let label = format!("{}, {}", r.describe(), threshold.name());
                frame(
                    label,
                    FrameKind::Threshold(threshold),
                    r.spec().build().expect("threshold specs build"),
                )
            };
            for overhead in overheads {
                for offset in -1i8..=1 {
                    let inner = mtu as i64 - overhead as i64 + i64::from(offset);
                    let Ok(inner) = usize::try_from(inner) else {
                        continue;
                    };
                    if inner < l3 + l4 || 14 + inner > LONGEST {
                        continue;
                    }
                    let payload = inner - l3 - l4;
                    steps.push(aim(d, payload, Special::None, Threshold::Mtu(offset)));
                }
            }
            if malformed {
                steps.push(aim(
                    d,
                    0,
                    Special::L4Bytes(l4 - 1),
                    Threshold::L4Minimum(-1),
                ));
            }
            steps.push(aim(d, 0, Special::None, Threshold::L4Minimum(0)));
            steps.push(aim(d, 1, Special::None, Threshold::L4Minimum(1)));
        }
    }
}
