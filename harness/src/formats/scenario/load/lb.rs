//! Load balancers: a program's `lb:` configuration checked and replayed
//! through the control plane's bookkeeping ([`Plane`], pure), so that what
//! the control plane would refuse (a ring size that is not prime, a VIP
//! listed twice, a change to a real a VIP does not have) is found here with
//! its line and column; and the streams' `lb_changes:` checked against the
//! configuration as it stands when the stream starts.

use std::{
    mem::size_of,
    net::{IpAddr, Ipv6Addr, SocketAddr},
};

use dsrlab_abi::lb::{
    CONFIG_MAP, COUNTERS_MAP, Counter, FlowKey, FlowState, LRU_MAP, LbConfig, MAX_VIPS,
    REAL_STATS_MAP, REALS_MAP, RING_MAP, RealDef, Traffic, VIP_STATS_MAP, VIPS_MAP, VipKey,
    VipMeta, vip_flags,
};

use super::{
    Checked, LbOp, LbSetup, Loader, ScenarioError,
    objects::{Hook, ObjectInfo},
    tree::YPath,
};
use crate::{
    formats::scenario::model::{LbChange, LbSpec, RealSpec, VipFlag},
    lb::{
        LbSettings, Proto, Vip, VipSpec,
        control::{LbError, Plane},
        maglev,
    },
};

/// `BPF_MAP_TYPE_PERCPU_ARRAY`.
const BPF_MAP_TYPE_PERCPU_ARRAY: u32 = 6;

/// The maps the lb contract needs: name, key size, value size.
const LB_MAPS: [(&str, usize, usize); 8] = [
    (VIPS_MAP, size_of::<VipKey>(), size_of::<VipMeta>()),
    (REALS_MAP, 4, size_of::<RealDef>()),
    (RING_MAP, 4, 4),
    (LRU_MAP, size_of::<FlowKey>(), size_of::<FlowState>()),
    (CONFIG_MAP, 4, size_of::<LbConfig>()),
    (VIP_STATS_MAP, 4, size_of::<Traffic>()),
    (REAL_STATS_MAP, 4, size_of::<Traffic>()),
    (COUNTERS_MAP, 4, 8),
];

/// Whether dsrlab may use `addr`: 198.18.0.0/15 or 2001:db8::/32.
pub(super) fn allowed(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => u32::from(a) >> 17 == 0xc612 >> 1,
        IpAddr::V6(a) => a.segments()[..2] == [0x2001, 0x0db8],
    }
}

const RANGES: &str = "198.18.0.0/15 and 2001:db8::/32, the only ranges dsrlab uses";

/// An address inside dsrlab's ranges.
fn address(text: &str, what: &str) -> Result<IpAddr, String> {
    let addr: IpAddr = text
        .trim()
        .parse()
        .map_err(|_| format!("{what} `{text}` is not an IPv4 or IPv6 address"))?;
    if !allowed(addr) {
        return Err(format!("{what} {addr} is outside {RANGES}"));
    }
    Ok(addr)
}

/// Parses `198.18.0.10:80/tcp` or `[2001:db8::10]:443/udp`.
pub(super) fn parse_vip(text: &str) -> Result<Vip, String> {
    let shape = "expected `address:port/proto` (198.18.0.10:80/tcp, \
                 \"[2001:db8::10]:443/udp\"; port 0 for all ports)";
    let Some((socket, proto)) = text.trim().rsplit_once('/') else {
        return Err(format!("VIP `{text}` has no `/proto`; {shape}"));
    };
    let proto = match proto {
        "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        other => {
            return Err(format!(
                "VIP `{text}`: protocol `{other}` is not balanced; expected tcp or udp"
            ));
        }
    };
    let socket: SocketAddr = socket.parse().map_err(|_| {
        if socket.parse::<Ipv6Addr>().is_ok() || socket.matches(':').count() > 1 {
            format!("VIP `{text}`: an IPv6 VIP is written in brackets, `[address]:port/proto`")
        } else {
            format!("VIP `{text}`: {shape}")
        }
    })?;
    if !allowed(socket.ip()) {
        return Err(format!("VIP {} is outside {RANGES}", socket.ip()));
    }
    Ok(Vip {
        addr: socket.ip(),
        port: socket.port(),
        proto,
    })
}

fn mac(text: &str) -> Result<[u8; 6], String> {
    let bytes: Vec<u8> = text
        .split([':', '-'])
        .map(|b| u8::from_str_radix(b, 16).map_err(|_| ()))
        .collect::<Result<_, _>>()
        .map_err(|()| format!("`{text}` is not a MAC address (02:00:00:00:00:fe)"))?;
    bytes
        .try_into()
        .map_err(|_| format!("`{text}` is not a MAC address: it needs six bytes"))
}

fn flag_bits(flags: &[VipFlag]) -> u32 {
    flags.iter().fold(0, |bits, f| {
        bits | match f {
            VipFlag::NoSport => vip_flags::NO_SPORT,
            VipFlag::NoLru => vip_flags::NO_LRU,
            VipFlag::DportOnly => vip_flags::DPORT_ONLY,
            VipFlag::Gue => vip_flags::GUE,
        }
    })
}

impl Loader<'_> {
    /// Checks that a user object claiming the lb contract is an XDP program
    /// with the contract's maps.
    pub(super) fn check_lb_object(
        &self,
        p: &YPath,
        hook: Hook,
        info: Option<&ObjectInfo>,
        object: &str,
    ) -> Result<(), ScenarioError> {
        if hook != Hook::Xdp {
            return Err(self.at_value(
                &p.key("contract"),
                format!("the lb contract is an XDP program's; the program in {object} is not XDP"),
            ));
        }
        let Some(info) = info else { return Ok(()) };
        for (name, key, value) in LB_MAPS {
            let fits = info.maps.get(name).is_some_and(|m| {
                m.key_size as usize == key
                    && m.value_size as usize == value
                    && (name != COUNTERS_MAP
                        || (m.map_type == BPF_MAP_TYPE_PERCPU_ARRAY
                            && m.max_entries >= Counter::COUNT))
            });
            if !fits {
                let what = if name == COUNTERS_MAP {
                    format!(
                        "a per-CPU array `{name}` with 4-byte keys, 8-byte values and at least {} entries",
                        Counter::COUNT
                    )
                } else {
                    format!("a map `{name}` with {key}-byte keys and {value}-byte values")
                };
                return Err(self.at_value(
                    &p.key("contract"),
                    format!(
                        "the lb contract (dsrlab_abi::lb) needs {what}; {object} has maps: {}",
                        info.map_names()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Checks a program's `lb:` (absent: defaults, no VIP) and replays it
    /// through the control plane's bookkeeping.
    pub(super) fn lb_setup(
        &self,
        p: &YPath,
        spec: Option<&LbSpec>,
    ) -> Result<(LbSetup, Plane), ScenarioError> {
        let default = LbSpec::default();
        let spec = spec.unwrap_or(&default);
        let at = p.key("lb");
        let mut settings = LbSettings::default();
        if let Some(n) = spec.ring_size {
            if !maglev::is_prime(n) {
                return Err(self.at_value(
                    &at.key("ring_size"),
                    format!("ring size {n} is not prime; Maglev needs a prime (13, 251, 65537)"),
                ));
            }
            let max = u32::MAX / MAX_VIPS;
            if n > max {
                return Err(self.at_value(
                    &at.key("ring_size"),
                    format!(
                        "ring size {n} is too large: {MAX_VIPS} rings of it must fit a BPF array (at most {max})"
                    ),
                ));
            }
            settings.ring_size = n;
        }
        if let Some(seed) = spec.hash_seed {
            settings.hash_seed = seed;
        }
        if let Some(text) = &spec.gateway_mac {
            settings.gateway_mac =
                mac(text).map_err(|e| self.at_value(&at.key("gateway_mac"), e))?;
        }
        if let Some(mtu) = spec.mtu {
            if !(116..=65535).contains(&mtu) {
                return Err(self.at_value(
                    &at.key("mtu"),
                    format!(
                        "mtu {mtu} is out of range 116..=65535 (68 plus the largest encapsulation overhead, 48, up to the largest IP packet)"
                    ),
                ));
            }
            settings.mtu = mtu;
        }
        if let Some(port) = spec.gue_port {
            settings.gue_port = port;
        }
        if let Some(on) = spec.icmp_echo {
            settings.icmp_echo = on;
        }
        if let Some(on) = spec.send_too_big {
            settings.send_too_big = on;
        }
        if let Some(on) = spec.gue_v6_zero_checksum {
            settings.gue_v6_zero_checksum = on;
        }
        if let Some(text) = &spec.src_v4_prefix {
            let at = at.key("src_v4_prefix");
            match address(text, "src_v4_prefix").map_err(|e| self.at_value(&at, e))? {
                IpAddr::V4(a) => settings.src_v4_prefix = a,
                IpAddr::V6(_) => {
                    return Err(self.at_value(&at, "src_v4_prefix must be an IPv4 address"));
                }
            }
        }
        if let Some(text) = &spec.src_v6_prefix {
            let at = at.key("src_v6_prefix");
            match address(text, "src_v6_prefix").map_err(|e| self.at_value(&at, e))? {
                IpAddr::V6(a) => settings.src_v6_prefix = a,
                IpAddr::V4(_) => {
                    return Err(self.at_value(&at, "src_v6_prefix must be an IPv6 address"));
                }
            }
        }
        let (mut plane, _) = Plane::new(settings).map_err(|e| self.at_value(&at, e.to_string()))?;
        let mut vips = Vec::new();
        for (i, entry) in spec.vips.iter().enumerate() {
            let at = at.key("vips").index(i);
            let vip = parse_vip(&entry.vip).map_err(|e| self.at_value(&at.key("vip"), e))?;
            for (j, flag) in entry.flags.iter().enumerate() {
                if entry.flags[..j].contains(flag) {
                    return Err(self.at_value(
                        &at.key("flags").index(j),
                        format!("flag {} is given twice", flag.name()),
                    ));
                }
            }
            let spec = VipSpec {
                addr: vip.addr,
                port: vip.port,
                proto: vip.proto,
                flags: flag_bits(&entry.flags),
            };
            plane.add_vip(spec).map_err(|e| {
                let message = match e {
                    LbError::VipExists(_) => {
                        let first = vips
                            .iter()
                            .position(|(s, _): &(VipSpec, _)| s.vip() == vip)
                            .unwrap_or_default();
                        format!("VIP {vip} is listed twice (first as lb.vips[{first}])")
                    }
                    e => e.to_string(),
                };
                self.at_value(&at.key("vip"), message)
            })?;
            let mut reals = Vec::new();
            for (j, real) in entry.reals.iter().enumerate() {
                let at = at.key("reals").index(j);
                let (text, weight, at_addr) = match real {
                    RealSpec::Addr(a) => (a, 1, at.clone()),
                    RealSpec::Weighted(w) => (&w.addr, w.weight, at.key("addr")),
                };
                let addr = address(text, "real").map_err(|e| self.at_value(&at_addr, e))?;
                plane.add_real(&vip, addr, weight).map_err(|e| {
                    let message = match e {
                        LbError::RealExists { .. } => {
                            format!("real {addr} is listed twice in VIP {vip}")
                        }
                        e => e.to_string(),
                    };
                    self.at_value(&at_addr, message)
                })?;
                reals.push((addr, weight));
            }
            vips.push((spec, reals));
        }
        Ok((LbSetup { settings, vips }, plane))
    }

    /// Checks a stream's `lb_changes:` against every lb program's
    /// configuration as it stands, and applies them to their planes.
    pub(super) fn lb_changes(
        &self,
        p: &YPath,
        changes: &[LbChange],
        programs: &mut [Checked],
    ) -> Result<Vec<LbOp>, ScenarioError> {
        let at = p.key("lb_changes");
        if !changes.is_empty() && programs.iter().all(|c| c.plane.is_none()) {
            return Err(self.at_key(
                &at,
                "`lb_changes` changes load balancers, and no program here is one \
                 (`builtin: xdp_lb` or `contract: lb`)",
            ));
        }
        let mut ops = Vec::new();
        for (i, change) in changes.iter().enumerate() {
            let (kind, vip, addr) = match change {
                LbChange::AddReal { vip, addr, .. } => ("add_real", vip, addr),
                LbChange::RemoveReal { vip, addr } => ("remove_real", vip, addr),
                LbChange::SetWeight { vip, addr, .. } => ("set_weight", vip, addr),
            };
            let at = at.index(i).key(kind);
            let v = parse_vip(vip).map_err(|e| self.at_value(&at.key("vip"), e))?;
            let real = address(addr, "real").map_err(|e| self.at_value(&at.key("addr"), e))?;
            let op = match *change {
                LbChange::AddReal { weight, .. } => LbOp::AddReal {
                    vip: v,
                    real,
                    weight,
                },
                LbChange::RemoveReal { .. } => LbOp::RemoveReal { vip: v, real },
                LbChange::SetWeight { weight, .. } => LbOp::SetWeight {
                    vip: v,
                    real,
                    weight,
                },
            };
            for c in programs.iter_mut() {
                let name = c.program.name.clone();
                let Some(plane) = c.plane.as_mut() else {
                    continue;
                };
                op.apply(plane).map_err(|e| {
                    let (key, message) = match e {
                        LbError::NoSuchVip(_) => (
                            "vip",
                            format!("program `{name}` has no VIP {v} (see its lb.vips)"),
                        ),
                        e @ (LbError::RealExists { .. } | LbError::NoSuchReal { .. }) => {
                            ("addr", format!("program `{name}`: {e}"))
                        }
                        e => ("addr", format!("program `{name}`: {e}")),
                    };
                    self.at_value(&at.key(key), message)
                })?;
            }
            ops.push(op);
        }
        Ok(ops)
    }
}

impl LbOp {
    /// Applies the change to a control plane's bookkeeping (the writes it
    /// returns are dropped: the loader only checks).
    fn apply(&self, plane: &mut Plane) -> Result<(), LbError> {
        match *self {
            Self::AddReal { vip, real, weight } => plane.add_real(&vip, real, weight),
            Self::RemoveReal { vip, real } => plane.remove_real(&vip, real),
            Self::SetWeight { vip, real, weight } => plane.set_weight(&vip, real, weight),
        }
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn vips_parse_in_both_families() {
        let v = parse_vip("198.18.0.10:80/tcp").unwrap();
        assert_eq!(v.to_string(), "198.18.0.10:80/tcp");
        let v = parse_vip("[2001:db8::10]:0/udp").unwrap();
        assert_eq!(v.to_string(), "[2001:db8::10]:0/udp");
        assert!(
            parse_vip("2001:db8::10:80/tcp")
                .unwrap_err()
                .contains("in brackets")
        );
        assert!(
            parse_vip("198.18.0.10:80/sctp")
                .unwrap_err()
                .contains("sctp")
        );
        assert!(
            parse_vip("198.18.0.10/tcp")
                .unwrap_err()
                .contains("expected")
        );
        assert!(
            parse_vip("10.0.0.1:80/tcp")
                .unwrap_err()
                .contains("outside")
        );
    }

    #[test]
    fn only_dsrlabs_ranges_are_allowed() {
        assert!(allowed("198.18.0.0".parse().unwrap()));
        assert!(allowed("198.19.255.255".parse().unwrap()));
        assert!(!allowed("198.20.0.0".parse().unwrap()));
        assert!(!allowed("198.17.255.255".parse().unwrap()));
        assert!(allowed("2001:db8:ffff::1".parse().unwrap()));
        assert!(!allowed("2001:db9::1".parse().unwrap()));
        assert!(!allowed(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    }

    #[test]
    fn macs_parse() {
        assert_eq!(mac("02:00:00:00:00:fe").unwrap(), [2, 0, 0, 0, 0, 0xfe]);
        assert!(mac("02:00:00:00:00").is_err());
        assert!(mac("zz:00:00:00:00:00").is_err());
    }
}
