//! The control plane of `xdp_lb`: VIPs, reals and weights in, map entries
//! out.
//!
//! Two layers, so that the bookkeeping is testable without a kernel:
//!
//! - [`Plane`] (pure) keeps the configuration and turns each operation into
//!   an ordered list of [`Write`]s to the datapath's maps;
//! - [`Lb`] owns a loaded `xdp_lb` and applies those writes through aya.
//!
//! # Changing a ring while traffic flows
//!
//! Adding, removing or re-weighting a real rebuilds that VIP's Maglev ring
//! ([`maglev`]) and writes the slots that changed, one array element at a
//! time. Each element write is atomic (a 4-byte array value), so a packet
//! reads either the old or the new real of a slot, and both are valid: a
//! new real's `LB_REALS` entry is written before any slot names it, and a
//! removed real's entry is cleared only after no slot names it any more.
//! During the rewrite the ring is a mix of old and new slots, which only
//! means some new flows land on the old choice; established flows keep
//! their real through the connection table.
//!
//! # Real ids
//!
//! A real (an address) has one id for all the VIPs it serves, allocated from
//! 1 up. An id is freed when the last VIP drops the real, which is after
//! every ring that named it was rewritten; freed ids are reused only when
//! no never-used id is left, oldest first, because connection-table entries
//! may still name a freed id and would follow it to its next owner.
//!
//! # ICMP echo entries
//!
//! The datapath answers echo requests to an address with a VIP entry
//! `(addr, 0, 1 | 58, family)`; the plane keeps one per distinct VIP
//! address, created with the first VIP at that address and removed with the
//! last. Its [`VipMeta`] has flags 0 and `vip_num` [`ECHO_VIP_NUM`]
//! (`MAX_VIPS`: it owns no ring and no statistics).

use std::{
    collections::{BTreeMap, VecDeque},
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::Path,
};

use aya::maps::{Array, MapError, PerCpuArray};
use dsrlab_abi::lb::{
    AddrEntry, COUNTERS_MAP, Counter, DEFAULT_GUE_PORT, DEFAULT_RING_SIZE, FAMILY_V4, FAMILY_V6,
    LbConfig, MAX_REALS, MAX_VIPS, REAL_STATS_MAP, RING_MAP, RING_SIZE_GLOBAL, RealDef, Traffic,
    VIP_STATS_MAP, VipKey, VipMeta, config_flags,
};

use super::{
    addrs,
    maglev::{self, Backend, MaglevError},
    model::{ModelState, vip_key},
};
use crate::{
    datapath::Object,
    load::{CounterError, LoadError, LoadOptions, LoadedProgram},
};

/// `vip_num` of the ICMP echo entries: no ring, no statistics.
pub const ECHO_VIP_NUM: u32 = MAX_VIPS;

/// The transport protocol of a VIP (the datapath balances TCP and UDP only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
}

impl Proto {
    /// The IP protocol number.
    pub const fn number(self) -> u8 {
        match self {
            Self::Tcp => 6,
            Self::Udp => 17,
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        })
    }
}

/// A VIP's identity: address, port (0: all ports) and protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Vip {
    /// Address.
    pub addr: IpAddr,
    /// Destination port; 0 for the "all ports" VIP.
    pub port: u16,
    /// Protocol.
    pub proto: Proto,
}

/// `198.18.0.10:80/tcp`, `[2001:db8::10]:443/udp`.
impl fmt::Display for Vip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr {
            IpAddr::V4(a) => write!(f, "{a}:{}/{}", self.port, self.proto),
            IpAddr::V6(a) => write!(f, "[{a}]:{}/{}", self.port, self.proto),
        }
    }
}

impl Vip {
    /// Its `LB_VIPS` key.
    pub fn key(&self) -> VipKey {
        let (addr, family) = addr_bytes(self.addr);
        vip_key(addr, self.port, self.proto.number(), family)
    }
}

/// A VIP to add: its identity and its [`vip_flags`](dsrlab_abi::lb::vip_flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VipSpec {
    /// Address.
    pub addr: IpAddr,
    /// Destination port; 0 for the "all ports" VIP.
    pub port: u16,
    /// Protocol.
    pub proto: Proto,
    /// `vip_flags` bits.
    pub flags: u32,
}

impl VipSpec {
    /// The VIP's identity.
    pub const fn vip(&self) -> Vip {
        Vip {
            addr: self.addr,
            port: self.port,
            proto: self.proto,
        }
    }
}

/// An address as the maps store it: 16 bytes (IPv4 in the first 4) and its
/// family.
pub fn addr_bytes(addr: IpAddr) -> ([u8; 16], u8) {
    let mut bytes = [0u8; 16];
    match addr {
        IpAddr::V4(a) => {
            bytes[..4].copy_from_slice(&a.octets());
            (bytes, FAMILY_V4)
        }
        IpAddr::V6(a) => (a.octets(), FAMILY_V6),
    }
}

/// The `LB_REALS` entry of a real at `addr`.
pub fn real_def(addr: IpAddr) -> RealDef {
    let (addr, family) = addr_bytes(addr);
    RealDef {
        addr,
        family,
        pad: [0; 3],
    }
}

/// Deployment-wide settings (`LB_CONFIG`, plus the ring size the program was
/// loaded with).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LbSettings {
    /// Slots per VIP ring; prime. The program must be loaded for it
    /// ([`load_options`]).
    pub ring_size: u32,
    /// Seed of the flow hash.
    pub hash_seed: u32,
    /// MAC every encapsulated packet is sent to.
    pub gateway_mac: [u8; 6],
    /// Largest IP packet, outer header included, the path carries:
    /// 116 (68 plus the largest overhead, 48) to 65535.
    pub mtu: u32,
    /// UDP destination port of GUE encapsulation.
    pub gue_port: u16,
    /// Answer ICMP / ICMPv6 echo requests to VIP addresses.
    pub icmp_echo: bool,
    /// Answer packets too big to encapsulate with frag-needed / PTB.
    pub send_too_big: bool,
    /// Leave the outer UDP checksum of GUE over IPv6 zero (every real has
    /// opted in to zero-checksum UDP over IPv6, RFC 6935); computed if
    /// false.
    pub gue_v6_zero_checksum: bool,
    /// Outer IPv4 source prefix (the first two bytes are used).
    pub src_v4_prefix: Ipv4Addr,
    /// Outer IPv6 source prefix (the first twelve bytes are used).
    pub src_v6_prefix: Ipv6Addr,
}

impl Default for LbSettings {
    /// The default ring, seed 0, MTU 1500, GUE on 6080 with its checksum
    /// over IPv6, both ICMP answers on, sources from 198.19.0.0/16 and 2001:db8:5352::/96.
    fn default() -> Self {
        Self {
            ring_size: DEFAULT_RING_SIZE,
            hash_seed: 0,
            gateway_mac: [0x02, 0, 0, 0, 0, 0xfe],
            mtu: 1500,
            gue_port: DEFAULT_GUE_PORT,
            icmp_echo: true,
            send_too_big: true,
            gue_v6_zero_checksum: false,
            src_v4_prefix: Ipv4Addr::new(198, 19, 0, 0),
            src_v6_prefix: Ipv6Addr::new(0x2001, 0xdb8, 0x5352, 0, 0, 0, 0, 0),
        }
    }
}

impl LbSettings {
    /// The `LB_CONFIG` value.
    pub fn config(&self) -> LbConfig {
        let mut flags = 0;
        if self.icmp_echo {
            flags |= config_flags::ICMP_ECHO;
        }
        if self.send_too_big {
            flags |= config_flags::SEND_TOO_BIG;
        }
        if self.gue_v6_zero_checksum {
            flags |= config_flags::GUE_V6_ZERO_CSUM;
        }
        LbConfig {
            gateway_mac: self.gateway_mac,
            gue_port: self.gue_port,
            hash_seed: self.hash_seed,
            mtu: self.mtu,
            flags,
            src_v4_prefix: self.src_v4_prefix.octets(),
            src_v6_prefix: self.src_v6_prefix.octets(),
        }
    }

    fn validate(&self) -> Result<(), LbError> {
        if !maglev::is_prime(self.ring_size) {
            return Err(LbError::RingSizeNotPrime(self.ring_size));
        }
        if u64::from(self.ring_size) * u64::from(MAX_VIPS) > u64::from(u32::MAX) {
            return Err(LbError::Settings(format!(
                "ring size {} is too large: {MAX_VIPS} rings of it exceed a BPF array's u32 index",
                self.ring_size
            )));
        }
        if !(116..=65535).contains(&self.mtu) {
            return Err(LbError::Settings(format!(
                "mtu {} is out of range 116..=65535 (68 plus the largest encapsulation overhead, 48, up to the largest IP packet)",
                self.mtu
            )));
        }
        Ok(())
    }
}

/// [`LoadOptions`] for `xdp_lb` with a ring of `ring_size` slots: the
/// `RING_SIZE` global and `LB_RING`'s max entries. `ring_size_le` must hold
/// `ring_size.to_le_bytes()` (BPF is little-endian here) and outlive the
/// options.
pub fn load_options(ring_size: u32, ring_size_le: &[u8; 4]) -> LoadOptions<'_> {
    LoadOptions {
        globals: vec![(RING_SIZE_GLOBAL, ring_size_le)],
        max_entries: vec![(RING_MAP, ring_size.saturating_mul(MAX_VIPS))],
        ..LoadOptions::default()
    }
}

/// What the control plane refuses, or what failed while applying it.
#[derive(Debug, thiserror::Error)]
pub enum LbError {
    /// Writing the maps failed (the message names the map and entry).
    #[error("{0}")]
    Maps(String),
    /// Maglev needs a prime ring size.
    #[error("ring size {0} is not prime")]
    RingSizeNotPrime(u32),
    /// Another setting is out of range.
    #[error("{0}")]
    Settings(String),
    /// The program's `LB_RING` was not sized for the ring size.
    #[error(
        "{RING_MAP} holds {entries} entries but ring size {ring_size} needs {MAX_VIPS} × {ring_size} = {needed}: load xdp_lb with lb::control::load_options({ring_size}, …) or Lb::load"
    )]
    RingMapSize {
        /// Entries the map has.
        entries: u32,
        /// The ring size asked for.
        ring_size: u32,
        /// Entries it needs.
        needed: u64,
    },
    /// `add_vip` of a VIP that exists.
    #[error("VIP {0} already exists")]
    VipExists(Vip),
    /// An operation on a VIP that does not exist.
    #[error("no VIP {0}")]
    NoSuchVip(Vip),
    /// Every VIP number is taken.
    #[error("cannot add VIP {0}: all {MAX_VIPS} VIP numbers are in use")]
    TooManyVips(Vip),
    /// `add_real` of a real the VIP has.
    #[error("real {real} is already a backend of VIP {vip}")]
    RealExists {
        /// The VIP.
        vip: Vip,
        /// The real.
        real: IpAddr,
    },
    /// An operation on a real the VIP does not have.
    #[error("real {real} is not a backend of VIP {vip}")]
    NoSuchReal {
        /// The VIP.
        vip: Vip,
        /// The real.
        real: IpAddr,
    },
    /// Statistics of a real no VIP has.
    #[error("real {0} is not a backend of any VIP")]
    UnknownReal(IpAddr),
    /// Every real id is taken.
    #[error("cannot add real {0}: all {n} real ids are in use", n = MAX_REALS - 1)]
    TooManyReals(IpAddr),
    /// The ring could not be built.
    #[error(transparent)]
    Maglev(#[from] MaglevError),
    /// The program has no map of that name.
    #[error("the program has no map {0}: is it xdp_lb?")]
    NoSuchMap(&'static str),
    /// A map operation failed.
    #[error("map {map}: {op}: {source}")]
    Map {
        /// The map.
        map: &'static str,
        /// What was being done.
        op: String,
        /// aya's error (boxed: it is large and errors are rare).
        #[source]
        source: Box<MapError>,
    },
    /// Loading the program failed.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// Reading the counters failed.
    #[error(transparent)]
    Counters(#[from] CounterError),
    /// The number of possible CPUs could not be read.
    #[error("cannot read the number of possible CPUs: {0}")]
    Cpus(#[source] std::io::Error),
}

/// One change to the datapath's maps, in the order the plane wants them
/// applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// `LB_CONFIG[0]`.
    Config(LbConfig),
    /// `LB_VIPS[key]` = meta, or deleted when `None`.
    Vip {
        /// The key.
        key: VipKey,
        /// The value, `None` to delete.
        meta: Option<VipMeta>,
    },
    /// `LB_REALS[id]` (family 0: unused).
    Real {
        /// The id.
        id: u32,
        /// The definition.
        def: RealDef,
    },
    /// `LB_RING[index]` = real.
    RingSlot {
        /// `vip_num * ring_size + slot`.
        index: u32,
        /// The real id (0: none).
        real: u32,
    },
    /// `LB_ADDRS[slot]` = entry (see [`super::addrs`]).
    Addr {
        /// The slot.
        slot: u32,
        /// Its new value.
        entry: AddrEntry,
    },
    /// `LB_VIP_STATS[vip_num]` zeroed on every CPU (a reused number).
    ResetVipStats(u32),
    /// `LB_REAL_STATS[id]` zeroed on every CPU (a reused id).
    ResetRealStats(u32),
}

#[derive(Clone, Debug)]
struct VipState {
    num: u32,
    flags: u32,
    /// Real address → weight.
    reals: BTreeMap<IpAddr, u32>,
    ring: Vec<u32>,
}

#[derive(Clone, Copy, Debug)]
struct RealState {
    addr: IpAddr,
    /// How many VIPs have this real.
    refs: usize,
}

/// The control plane's bookkeeping, without a kernel: every operation
/// returns the map writes that carry it out, in order.
#[derive(Clone, Debug)]
pub struct Plane {
    settings: LbSettings,
    vips: BTreeMap<Vip, VipState>,
    ids: BTreeMap<IpAddr, u32>,
    reals: BTreeMap<u32, RealState>,
    /// The next never-used id.
    fresh: u32,
    /// Freed ids, oldest first.
    freed: VecDeque<u32>,
}

impl Plane {
    /// A plane with no VIPs, and the write of `LB_CONFIG`.
    pub fn new(settings: LbSettings) -> Result<(Self, Vec<Write>), LbError> {
        settings.validate()?;
        let plane = Self {
            settings,
            vips: BTreeMap::new(),
            ids: BTreeMap::new(),
            reals: BTreeMap::new(),
            fresh: 1,
            freed: VecDeque::new(),
        };
        Ok((plane, vec![Write::Config(settings.config())]))
    }

    /// The settings.
    pub const fn settings(&self) -> &LbSettings {
        &self.settings
    }

    /// The VIPs with their flags, in order.
    pub fn vips(&self) -> impl Iterator<Item = VipSpec> + '_ {
        self.vips.iter().map(|(v, s)| VipSpec {
            addr: v.addr,
            port: v.port,
            proto: v.proto,
            flags: s.flags,
        })
    }

    /// A VIP's number (its ring and statistics slot).
    pub fn vip_num(&self, vip: &Vip) -> Option<u32> {
        self.vips.get(vip).map(|s| s.num)
    }

    /// A VIP's reals and weights.
    pub fn reals_of(&self, vip: &Vip) -> Option<&BTreeMap<IpAddr, u32>> {
        self.vips.get(vip).map(|s| &s.reals)
    }

    /// A VIP's ring as written to `LB_RING`.
    pub fn ring(&self, vip: &Vip) -> Option<&[u32]> {
        self.vips.get(vip).map(|s| s.ring.as_slice())
    }

    /// The id of the real at `addr`, while some VIP has it.
    pub fn real_id(&self, addr: IpAddr) -> Option<u32> {
        self.ids.get(&addr).copied()
    }

    /// Adds a VIP with no reals (its packets are dropped, `DropNoReal`,
    /// until it has one).
    pub fn add_vip(&mut self, spec: VipSpec) -> Result<Vec<Write>, LbError> {
        let vip = spec.vip();
        if self.vips.contains_key(&vip) {
            return Err(LbError::VipExists(vip));
        }
        let num = (0..MAX_VIPS)
            .find(|n| self.vips.values().all(|s| s.num != *n))
            .ok_or(LbError::TooManyVips(vip))?;
        let addrs_before = self.addr_table();
        let mut writes = vec![Write::ResetVipStats(num)];
        if !self.vips.keys().any(|v| v.addr == vip.addr) {
            writes.push(Write::Vip {
                key: echo_key(vip.addr),
                meta: Some(VipMeta {
                    flags: 0,
                    vip_num: ECHO_VIP_NUM,
                }),
            });
        }
        // A free number's ring is all zeros (remove_vip clears it), so the
        // VIP can go live at once.
        writes.push(Write::Vip {
            key: vip.key(),
            meta: Some(VipMeta {
                flags: spec.flags,
                vip_num: num,
            }),
        });
        self.vips.insert(
            vip,
            VipState {
                num,
                flags: spec.flags,
                reals: BTreeMap::new(),
                ring: vec![0; self.settings.ring_size as usize],
            },
        );
        // The address table last: it shows entries that are all there.
        writes.extend(addrs::rewrite(&addrs_before, &self.addr_table()));
        Ok(writes)
    }

    /// Removes a VIP: the address table and its entry first (its traffic
    /// stops matching), then its ring is cleared and its reals released.
    pub fn remove_vip(&mut self, vip: &Vip) -> Result<Vec<Write>, LbError> {
        let addrs_before = self.addr_table();
        let state = self.vips.remove(vip).ok_or(LbError::NoSuchVip(*vip))?;
        let mut writes = addrs::rewrite(&addrs_before, &self.addr_table());
        writes.push(Write::Vip {
            key: vip.key(),
            meta: None,
        });
        if !self.vips.keys().any(|v| v.addr == vip.addr) {
            writes.push(Write::Vip {
                key: echo_key(vip.addr),
                meta: None,
            });
        }
        let base = state.num * self.settings.ring_size;
        writes.extend(
            state
                .ring
                .iter()
                .enumerate()
                .filter(|(_, real)| **real != 0)
                .map(|(slot, _)| Write::RingSlot {
                    index: base + slot as u32,
                    real: 0,
                }),
        );
        for addr in state.reals.keys() {
            writes.extend(self.release(*addr));
        }
        Ok(writes)
    }

    /// Adds a real to a VIP with `weight` (0: provisioned but given no
    /// slots).
    pub fn add_real(
        &mut self,
        vip: &Vip,
        real: IpAddr,
        weight: u32,
    ) -> Result<Vec<Write>, LbError> {
        let state = self.vips.get(vip).ok_or(LbError::NoSuchVip(*vip))?;
        if state.reals.contains_key(&real) {
            return Err(LbError::RealExists { vip: *vip, real });
        }
        let mut writes = Vec::new();
        let id = match self.ids.get(&real) {
            Some(&id) => id,
            None => {
                let id = self.allocate(real)?;
                // The real exists before any ring slot names it.
                writes.push(Write::ResetRealStats(id));
                writes.push(Write::Real {
                    id,
                    def: real_def(real),
                });
                id
            }
        };
        if let Some(r) = self.reals.get_mut(&id) {
            r.refs += 1;
        }
        if let Some(state) = self.vips.get_mut(vip) {
            state.reals.insert(real, weight);
        }
        writes.extend(self.rebuild(vip)?);
        Ok(writes)
    }

    /// Removes a real from a VIP: the ring first, then (if no VIP has it
    /// any more) its `LB_REALS` entry.
    pub fn remove_real(&mut self, vip: &Vip, real: IpAddr) -> Result<Vec<Write>, LbError> {
        let state = self.vips.get_mut(vip).ok_or(LbError::NoSuchVip(*vip))?;
        if state.reals.remove(&real).is_none() {
            return Err(LbError::NoSuchReal { vip: *vip, real });
        }
        let mut writes = self.rebuild(vip)?;
        writes.extend(self.release(real));
        Ok(writes)
    }

    /// Changes a real's weight in a VIP (0 takes all its slots away but
    /// keeps it provisioned).
    pub fn set_weight(
        &mut self,
        vip: &Vip,
        real: IpAddr,
        weight: u32,
    ) -> Result<Vec<Write>, LbError> {
        let state = self.vips.get_mut(vip).ok_or(LbError::NoSuchVip(*vip))?;
        let Some(w) = state.reals.get_mut(&real) else {
            return Err(LbError::NoSuchReal { vip: *vip, real });
        };
        *w = weight;
        self.rebuild(vip)
    }

    /// The `LB_VIPS` entries: each VIP's and each VIP address's echo entry.
    /// (Several VIPs at one address give its echo entry once.)
    pub fn vip_entries(&self) -> Vec<(VipKey, VipMeta)> {
        let mut entries = Vec::with_capacity(self.vips.len() * 2);
        let mut addrs = std::collections::BTreeSet::new();
        for (vip, s) in &self.vips {
            entries.push((
                vip.key(),
                VipMeta {
                    flags: s.flags,
                    vip_num: s.num,
                },
            ));
            if addrs.insert(vip.addr) {
                entries.push((
                    echo_key(vip.addr),
                    VipMeta {
                        flags: 0,
                        vip_num: ECHO_VIP_NUM,
                    },
                ));
            }
        }
        entries
    }

    /// The address table `LB_ADDRS` for [`Self::vip_entries`].
    fn addr_table(&self) -> BTreeMap<u32, AddrEntry> {
        addrs::table(self.vip_entries())
    }

    /// What the maps hold, as the reference model's state (with an empty
    /// connection table).
    pub fn model_state(&self) -> ModelState {
        let mut state = ModelState::new(self.settings.config(), self.settings.ring_size);
        state.vips.extend(self.vip_entries());
        for s in self.vips.values() {
            state.rings.insert(s.num, s.ring.clone());
        }
        for (id, r) in &self.reals {
            state.reals.insert(*id, real_def(r.addr));
        }
        state
    }

    fn allocate(&mut self, real: IpAddr) -> Result<u32, LbError> {
        let id = if self.fresh < MAX_REALS {
            self.fresh += 1;
            self.fresh - 1
        } else {
            self.freed.pop_front().ok_or(LbError::TooManyReals(real))?
        };
        self.ids.insert(real, id);
        self.reals.insert(
            id,
            RealState {
                addr: real,
                refs: 0,
            },
        );
        Ok(id)
    }

    /// Drops one VIP's reference to `real`; frees its id (after the ring
    /// writes already made) when it was the last.
    fn release(&mut self, real: IpAddr) -> Vec<Write> {
        let Some(&id) = self.ids.get(&real) else {
            return Vec::new();
        };
        let Some(r) = self.reals.get_mut(&id) else {
            return Vec::new();
        };
        r.refs -= 1;
        if r.refs > 0 {
            return Vec::new();
        }
        debug_assert!(
            self.vips.values().all(|s| !s.ring.contains(&id)),
            "real {id} freed while a ring names it"
        );
        self.reals.remove(&id);
        self.ids.remove(&real);
        self.freed.push_back(id);
        vec![Write::Real {
            id,
            def: RealDef::default(),
        }]
    }

    /// Rebuilds a VIP's ring; the writes of the slots that changed.
    fn rebuild(&mut self, vip: &Vip) -> Result<Vec<Write>, LbError> {
        let ring_size = self.settings.ring_size;
        let Some(state) = self.vips.get(vip) else {
            return Err(LbError::NoSuchVip(*vip));
        };
        let keys: Vec<(u32, Vec<u8>, u32)> = state
            .reals
            .iter()
            .map(|(addr, weight)| {
                let key = match addr {
                    IpAddr::V4(a) => a.octets().to_vec(),
                    IpAddr::V6(a) => a.octets().to_vec(),
                };
                (self.ids[addr], key, *weight)
            })
            .collect();
        let backends: Vec<Backend<'_>> = keys
            .iter()
            .map(|(id, key, weight)| Backend {
                id: *id,
                key,
                weight: *weight,
            })
            .collect();
        let ring = maglev::build_ring_keyed(&backends, ring_size)?;
        let base = state.num * ring_size;
        let writes = ring
            .iter()
            .zip(&state.ring)
            .enumerate()
            .filter(|(_, (new, old))| new != old)
            .map(|(slot, (new, _))| Write::RingSlot {
                index: base + slot as u32,
                real: *new,
            })
            .collect();
        if let Some(state) = self.vips.get_mut(vip) {
            state.ring = ring;
        }
        Ok(writes)
    }
}

/// The ICMP echo entry of a VIP address.
pub fn echo_key(addr: IpAddr) -> VipKey {
    let (bytes, family) = addr_bytes(addr);
    let proto = if family == FAMILY_V6 { 58 } else { 1 };
    vip_key(bytes, 0, proto, family)
}

/// `LB_COUNTERS` summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters(pub [u64; Counter::COUNT as usize]);

impl Counters {
    /// One counter.
    pub const fn get(&self, counter: Counter) -> u64 {
        self.0[counter as usize]
    }

    /// The increase from `earlier` to `self`, counter by counter.
    pub fn since(&self, earlier: &Self) -> Self {
        let mut d = [0; Counter::COUNT as usize];
        for (i, v) in d.iter_mut().enumerate() {
            *v = self.0[i].wrapping_sub(earlier.0[i]);
        }
        Self(d)
    }

    /// The counters that are not zero, in index order.
    pub fn nonzero(&self) -> Vec<(Counter, u64)> {
        Counter::ALL
            .into_iter()
            .map(|c| (c, self.get(c)))
            .filter(|(_, v)| *v != 0)
            .collect()
    }
}

/// `tx 3, lru_miss 3` (non-zero counters), or `none`.
impl fmt::Display for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nonzero = self.nonzero();
        if nonzero.is_empty() {
            return f.write_str("none");
        }
        let parts: Vec<String> = nonzero
            .iter()
            .map(|(c, v)| format!("{} {v}", c.name()))
            .collect();
        f.write_str(&parts.join(", "))
    }
}

/// A loaded `xdp_lb` and its control plane.
pub struct Lb {
    program: LoadedProgram,
    plane: Plane,
}

impl fmt::Debug for Lb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lb")
            .field("program", &self.program)
            .field("vips", &self.plane.vips.len())
            .finish_non_exhaustive()
    }
}

fn map_err(map: &'static str, op: impl Into<String>) -> impl FnOnce(MapError) -> LbError {
    let op = op.into();
    move |source| LbError::Map {
        map,
        op,
        source: Box::new(source),
    }
}

impl Lb {
    /// Loads the built-in `xdp_lb` object sized for `settings.ring_size`
    /// and writes its configuration.
    pub fn load(object: Object, settings: LbSettings) -> Result<Self, LbError> {
        Self::load_with(settings, &[], |options| {
            LoadedProgram::builtin(object, options)
        })
    }

    /// Loads `program` from an ELF file sized for `settings.ring_size` and
    /// writes its configuration.
    pub fn load_file(path: &Path, program: &str, settings: LbSettings) -> Result<Self, LbError> {
        Self::load_with(settings, &[], |options| {
            LoadedProgram::from_file(path, program, options)
        })
    }

    /// Loads a program with `load`, given the options sized for
    /// `settings.ring_size` and the `globals` a scenario sets besides, and
    /// writes its configuration.
    pub fn load_with(
        settings: LbSettings,
        globals: &[(&str, &[u8])],
        load: impl FnOnce(&LoadOptions<'_>) -> Result<LoadedProgram, LoadError>,
    ) -> Result<Self, LbError> {
        settings.validate()?;
        let le = settings.ring_size.to_le_bytes();
        let mut options = load_options(settings.ring_size, &le);
        options.globals.extend_from_slice(globals);
        Self::new(load(&options)?, settings)
    }

    /// The program, configured, for something else to run it (a chain's
    /// slot); its control plane goes.
    pub fn into_program(self) -> LoadedProgram {
        self.program
    }

    /// Takes over a loaded `xdp_lb` (loaded with [`load_options`] for
    /// `settings.ring_size`) and writes `LB_CONFIG`.
    pub fn new(program: LoadedProgram, settings: LbSettings) -> Result<Self, LbError> {
        let (plane, writes) = Plane::new(settings)?;
        let mut lb = Self { program, plane };
        let entries = {
            let map = lb.map(RING_MAP)?;
            Array::<_, u32>::try_from(map)
                .map_err(map_err(RING_MAP, "open"))?
                .len()
        };
        let needed = u64::from(MAX_VIPS) * u64::from(settings.ring_size);
        if u64::from(entries) != needed {
            return Err(LbError::RingMapSize {
                entries,
                ring_size: settings.ring_size,
                needed,
            });
        }
        lb.apply(writes)?;
        Ok(lb)
    }

    /// The loaded program, for attaching it (live mode).
    pub fn program_mut(&mut self) -> &mut LoadedProgram {
        &mut self.program
    }

    /// The program, for test runs.
    pub const fn program(&self) -> &LoadedProgram {
        &self.program
    }

    /// The bookkeeping (VIP numbers, real ids, rings).
    pub const fn plane(&self) -> &Plane {
        &self.plane
    }

    /// The maps' contents as the reference model's state.
    pub fn model_state(&self) -> ModelState {
        self.plane.model_state()
    }

    /// Adds a VIP (see [`Plane::add_vip`]).
    pub fn add_vip(&mut self, spec: VipSpec) -> Result<(), LbError> {
        let writes = self.plane.add_vip(spec)?;
        self.apply(writes)
    }

    /// Removes a VIP (see [`Plane::remove_vip`]).
    pub fn remove_vip(&mut self, vip: &Vip) -> Result<(), LbError> {
        let writes = self.plane.remove_vip(vip)?;
        self.apply(writes)
    }

    /// Adds a real to a VIP (see [`Plane::add_real`]).
    pub fn add_real(&mut self, vip: &Vip, real: IpAddr, weight: u32) -> Result<(), LbError> {
        let writes = self.plane.add_real(vip, real, weight)?;
        self.apply(writes)
    }

    /// Removes a real from a VIP (see [`Plane::remove_real`]).
    pub fn remove_real(&mut self, vip: &Vip, real: IpAddr) -> Result<(), LbError> {
        let writes = self.plane.remove_real(vip, real)?;
        self.apply(writes)
    }

    /// Changes a real's weight (see [`Plane::set_weight`]).
    pub fn set_weight(&mut self, vip: &Vip, real: IpAddr, weight: u32) -> Result<(), LbError> {
        let writes = self.plane.set_weight(vip, real, weight)?;
        self.apply(writes)
    }

    /// `LB_COUNTERS` summed over CPUs.
    pub fn counters(&self) -> Result<Counters, LbError> {
        let values = self.program.per_cpu_counters(COUNTERS_MAP)?;
        let mut c = Counters::default();
        for (slot, v) in c.0.iter_mut().zip(values) {
            *slot = v;
        }
        Ok(c)
    }

    /// A VIP's traffic summed over CPUs.
    pub fn vip_stats(&self, vip: &Vip) -> Result<Traffic, LbError> {
        let num = self.plane.vip_num(vip).ok_or(LbError::NoSuchVip(*vip))?;
        self.traffic(VIP_STATS_MAP, num)
    }

    /// A real's traffic summed over CPUs (all its VIPs).
    pub fn real_stats(&self, real: IpAddr) -> Result<Traffic, LbError> {
        let id = self.plane.real_id(real).ok_or(LbError::UnknownReal(real))?;
        self.traffic(REAL_STATS_MAP, id)
    }

    fn map(&self, name: &'static str) -> Result<&aya::maps::Map, LbError> {
        self.program.map(name).ok_or(LbError::NoSuchMap(name))
    }

    fn traffic(&self, map: &'static str, index: u32) -> Result<Traffic, LbError> {
        let array =
            PerCpuArray::<_, Traffic>::try_from(self.map(map)?).map_err(map_err(map, "open"))?;
        let values = array
            .get(&index, 0)
            .map_err(map_err(map, format!("read entry {index}")))?;
        Ok(values.iter().fold(Traffic::default(), |sum, t| Traffic {
            packets: sum.packets + t.packets,
            bytes: sum.bytes + t.bytes,
        }))
    }

    /// Applies writes in order. If one fails, the maps hold the writes
    /// before it while the plane already holds the new state: the `Lb`
    /// should then be dropped.
    fn apply(&mut self, writes: Vec<Write>) -> Result<(), LbError> {
        super::maps::apply(&mut self.program, writes).map_err(LbError::Maps)
    }
}
