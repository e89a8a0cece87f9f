//! A named, long-lived `xdp_lb` that outlives the process which loaded it:
//! what `dsrlab lb …` drives.
//!
//! # What persists, where
//!
//! - `/sys/fs/bpf/dsrlab-lb-NAME/`: the program (`xdp_lb`) and its maps
//!   (`LB_VIPS`, `LB_RING`, …, named as in `dsrlab_abi::lb`), pinned with
//!   aya; the pins keep them loaded.
//! - `/run/dsrlab/lb-NAME.json`: the control plane's inputs: the settings
//!   and every operation applied, in order. [`Plane`] is deterministic
//!   (VIP numbers, real ids and rings depend only on the operations and
//!   their order), so replaying the log rebuilds exactly the bookkeeping
//!   that wrote the maps; the file also records the program's kernel id, so
//!   pins replaced behind dsrlab's back are noticed.
//!
//! Every command takes an exclusive `flock` on `/run/dsrlab` while it reads,
//! writes the maps and rewrites the state (atomically: a temporary file
//! renamed over the old one), so two commands never interleave. A change is
//! applied to the maps in the control plane's write order (see
//! [`super::control`]: a real exists before a ring slot names it, ring
//! slots change one atomic element at a time, a real is cleared only when
//! no slot names it), so rebuilding a ring never drops traffic.
//!
//! `unload` removes the pins and the state; without a state file it removes
//! the pins anyway, and it says what it found.
//!
//! Like bpftool, `load` mounts the BPF filesystem on `/sys/fs/bpf` if
//! nothing is mounted there (and says so); it never unmounts it, since other
//! tools' pins may live there.

use std::{
    collections::BTreeMap,
    fmt::{self, Write as _},
    fs,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::AsFd as _,
    path::{Path, PathBuf},
};

use aya::maps::{Array, Map, MapData, PerCpuArray};
use aya::programs::Xdp;
use aya_obj::programs::XdpAttachType;
use dsrlab_abi::lb::{
    ADDRS_MAP, CONFIG_MAP, COUNTERS_MAP, Counter, LRU_MAP, MAX_VIPS, REAL_STATS_MAP, REALS_MAP,
    RING_MAP, Traffic, VIP_STATS_MAP, VIPS_MAP, vip_flags,
};
use serde::{Deserialize, Serialize};

use super::{
    LbError, LbSettings, Proto, Vip, VipSpec,
    control::{Counters, Plane, Write, load_options},
    maps::{LbMaps, apply, map_op},
};
use crate::{datapath, load::LoadedProgram, verdict::Verdict};

pub use crate::pins::{BPFFS, STATE_DIR, ensure_bpffs};
/// The pinned program's file name in an instance's directory.
pub const PROGRAM_PIN: &str = "xdp_lb";
/// The maps pinned, by their names in the object.
pub const PINNED_MAPS: [&str; 9] = [
    VIPS_MAP,
    ADDRS_MAP,
    REALS_MAP,
    RING_MAP,
    LRU_MAP,
    CONFIG_MAP,
    VIP_STATS_MAP,
    REAL_STATS_MAP,
    COUNTERS_MAP,
];
/// Version of the state file's format.
pub const STATE_VERSION: u32 = 1;

/// What went wrong with an instance; every variant names the instance and
/// the path or map concerned.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    /// The name is not usable in a path.
    #[error(
        "instance name `{0}` is not valid: use 1 to 48 of A-Z a-z 0-9 _ - (it becomes /sys/fs/bpf/dsrlab-lb-NAME and /run/dsrlab/lb-NAME.json)"
    )]
    BadName(String),
    /// `load` of a name in use.
    #[error(
        "instance `{name}` exists ({what}); `dsrlab lb unload {name}` removes it, or choose another name"
    )]
    Exists {
        /// The name.
        name: String,
        /// What was found.
        what: String,
    },
    /// No such instance.
    #[error("no instance `{name}`: neither {} nor {} exists (`dsrlab lb load {name}` creates it)", .pins.display(), .state.display())]
    NotFound {
        /// The name.
        name: String,
        /// Its pin directory.
        pins: PathBuf,
        /// Its state file.
        state: PathBuf,
    },
    /// Pins without state.
    #[error(
        "instance `{name}`: {} is missing but the pins in {} exist; without the state the control plane cannot be rebuilt: `dsrlab lb unload {name}` removes the pins", .state.display(), .pins.display()
    )]
    StateMissing {
        /// The name.
        name: String,
        /// Its pin directory.
        pins: PathBuf,
        /// Its state file.
        state: PathBuf,
    },
    /// State without pins.
    #[error(
        "instance `{name}`: {} exists but {} is gone (the pins were removed, or the machine rebooted): `dsrlab lb unload {name}` removes the stale state", .state.display(), .pins.display()
    )]
    PinsMissing {
        /// The name.
        name: String,
        /// Its pin directory.
        pins: PathBuf,
        /// Its state file.
        state: PathBuf,
    },
    /// The state file cannot be read or parsed.
    #[error("{}: {what}", .path.display())]
    State {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The pinned program is not the one the state was written for.
    #[error(
        "instance `{name}`: {} holds program id {found}, but the state was written for id {expected}: the pins were replaced behind dsrlab's back; `dsrlab lb unload {name}` and load it again", .path.display()
    )]
    ProgramReplaced {
        /// The name.
        name: String,
        /// The pinned program.
        path: PathBuf,
        /// Id in the state.
        expected: u32,
        /// Id pinned.
        found: u32,
    },
    /// A file system operation failed.
    #[error("{}: {what}: {source}", .path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A pin or map operation failed.
    #[error("{}: {what}", .path.display())]
    Bpf {
        /// The pin.
        path: PathBuf,
        /// What failed, with aya's error.
        what: String,
    },
    /// The control plane refused the operation or could not load.
    #[error("instance `{name}`: {source}")]
    Plane {
        /// The name.
        name: String,
        /// The error.
        #[source]
        source: LbError,
    },
    /// The control plane refused the operation (nothing was written).
    #[error("instance `{name}`: {what}")]
    Refused {
        /// The name.
        name: String,
        /// Why.
        what: String,
    },
    /// Writing the maps failed part-way.
    #[error(
        "instance `{name}`: {what}; the maps may hold part of this change while the state does not: `dsrlab lb show {name}` compares the ring with the state"
    )]
    PartialWrite {
        /// The name.
        name: String,
        /// What failed.
        what: String,
    },
    /// A test run through the pinned program failed.
    #[error("instance `{name}`: test run of frame {frame}: {what}")]
    TestRun {
        /// The name.
        name: String,
        /// 1-based frame number.
        frame: usize,
        /// What failed.
        what: String,
    },
}

fn io_err(path: &Path, what: &'static str) -> impl FnOnce(std::io::Error) -> InstanceError {
    let path = path.to_owned();
    move |source| InstanceError::Io { path, what, source }
}

fn bpf_err(path: &Path, what: impl fmt::Display) -> InstanceError {
    InstanceError::Bpf {
        path: path.to_owned(),
        what: what.to_string(),
    }
}

/// The settings as the state file stores them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsState {
    /// Slots per VIP ring.
    pub ring_size: u32,
    /// Seed of the flow hash.
    pub hash_seed: u32,
    /// `02:00:00:00:00:fe`.
    pub gateway_mac: String,
    /// Largest IP packet, outer header included.
    pub mtu: u32,
    /// GUE destination port.
    pub gue_port: u16,
    /// Echo requests answered.
    pub icmp_echo: bool,
    /// Frag-needed / PTB answered.
    pub send_too_big: bool,
    /// GUE over IPv6 without a UDP checksum (absent in state files written
    /// before it existed: computed).
    #[serde(default)]
    pub gue_v6_zero_checksum: bool,
    /// Outer IPv4 source prefix.
    pub src_v4_prefix: Ipv4Addr,
    /// Outer IPv6 source prefix.
    pub src_v6_prefix: Ipv6Addr,
}

impl From<&LbSettings> for SettingsState {
    fn from(s: &LbSettings) -> Self {
        Self {
            ring_size: s.ring_size,
            hash_seed: s.hash_seed,
            gateway_mac: format_mac(s.gateway_mac),
            mtu: s.mtu,
            gue_port: s.gue_port,
            icmp_echo: s.icmp_echo,
            send_too_big: s.send_too_big,
            gue_v6_zero_checksum: s.gue_v6_zero_checksum,
            src_v4_prefix: s.src_v4_prefix,
            src_v6_prefix: s.src_v6_prefix,
        }
    }
}

impl SettingsState {
    fn settings(&self) -> Result<LbSettings, String> {
        Ok(LbSettings {
            ring_size: self.ring_size,
            hash_seed: self.hash_seed,
            gateway_mac: parse_mac(&self.gateway_mac)?,
            mtu: self.mtu,
            gue_port: self.gue_port,
            icmp_echo: self.icmp_echo,
            send_too_big: self.send_too_big,
            gue_v6_zero_checksum: self.gue_v6_zero_checksum,
            src_v4_prefix: self.src_v4_prefix,
            src_v6_prefix: self.src_v6_prefix,
        })
    }
}

/// One control-plane operation, as logged in the state file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// Add a VIP.
    AddVip {
        /// `198.18.0.10:80/tcp`.
        vip: String,
        /// `vip_flags` bits.
        flags: u32,
    },
    /// Remove a VIP.
    RemoveVip {
        /// The VIP.
        vip: String,
    },
    /// Add a real to a VIP.
    AddReal {
        /// The VIP.
        vip: String,
        /// The real's address.
        real: IpAddr,
        /// Its weight.
        weight: u32,
    },
    /// Remove a real from a VIP.
    RemoveReal {
        /// The VIP.
        vip: String,
        /// The real's address.
        real: IpAddr,
    },
    /// Change a real's weight.
    SetWeight {
        /// The VIP.
        vip: String,
        /// The real's address.
        real: IpAddr,
        /// The new weight.
        weight: u32,
    },
}

impl Op {
    /// Carries the operation out on the plane.
    pub fn apply(&self, plane: &mut Plane) -> Result<Vec<Write>, String> {
        let vip = |s: &str| parse_vip(s);
        let r = match self {
            Self::AddVip { vip: v, flags } => {
                let v = vip(v)?;
                plane.add_vip(VipSpec {
                    addr: v.addr,
                    port: v.port,
                    proto: v.proto,
                    flags: *flags,
                })
            }
            Self::RemoveVip { vip: v } => plane.remove_vip(&vip(v)?),
            Self::AddReal {
                vip: v,
                real,
                weight,
            } => plane.add_real(&vip(v)?, *real, *weight),
            Self::RemoveReal { vip: v, real } => plane.remove_real(&vip(v)?, *real),
            Self::SetWeight {
                vip: v,
                real,
                weight,
            } => plane.set_weight(&vip(v)?, *real, *weight),
        };
        r.map_err(|e| e.to_string())
    }
}

/// The state file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// [`STATE_VERSION`].
    pub version: u32,
    /// The instance's name.
    pub name: String,
    /// Kernel id of the pinned program.
    pub program_id: u32,
    /// Where the pins are.
    pub pins: PathBuf,
    /// Settings at load.
    pub settings: SettingsState,
    /// Every operation since, in order.
    pub ops: Vec<Op>,
}

impl State {
    /// Rebuilds the control plane by replaying the log.
    pub fn plane(&self) -> Result<Plane, String> {
        let settings = self.settings.settings()?;
        let (mut plane, _) = Plane::new(settings).map_err(|e| e.to_string())?;
        for (i, op) in self.ops.iter().enumerate() {
            op.apply(&mut plane)
                .map_err(|e| format!("replaying operation {}: {e}", i + 1))?;
        }
        Ok(plane)
    }
}

/// The paths of an instance.
pub type Paths = crate::pins::InstancePaths;

/// Load balancers' pins (`/sys/fs/bpf/dsrlab-lb-NAME`) and state
/// (`/run/dsrlab/lb-NAME.json`).
pub const KIND: crate::pins::Kind = crate::pins::Kind {
    pins: "dsrlab-lb-",
    state: "lb-",
};

/// The paths of instance `name` (validated).
pub fn paths(name: &str) -> Result<Paths, InstanceError> {
    KIND.paths(name)
        .ok_or_else(|| InstanceError::BadName(name.to_owned()))
}

use crate::pins::{Lock, PinsError, lock as lock_state};

fn lock() -> Result<Lock, InstanceError> {
    lock_state().map_err(InstanceError::from)
}

impl From<PinsError> for InstanceError {
    fn from(e: PinsError) -> Self {
        Self::Io {
            path: e.path,
            what: e.what,
            source: e.source,
        }
    }
}

/// The pinned maps of an instance, opened.
struct Maps {
    dir: PathBuf,
    maps: BTreeMap<&'static str, Map>,
}

impl LbMaps for Maps {
    fn lb_map(&self, name: &'static str) -> Result<&Map, String> {
        self.maps
            .get(name)
            .ok_or_else(|| format!("{} is not opened", self.dir.join(name).display()))
    }
    fn lb_map_mut(&mut self, name: &'static str) -> Result<&mut Map, String> {
        let dir = &self.dir;
        self.maps
            .get_mut(name)
            .ok_or_else(|| format!("{} is not opened", dir.join(name).display()))
    }
}

impl Maps {
    fn open(dir: &Path) -> Result<Self, InstanceError> {
        let mut maps = BTreeMap::new();
        for name in PINNED_MAPS {
            let path = dir.join(name);
            let data = MapData::from_pin(&path)
                .map_err(|e| bpf_err(&path, format!("cannot open the pinned map: {e}")))?;
            let map = Map::from_map_data(data).map_err(|e| bpf_err(&path, e))?;
            maps.insert(name, map);
        }
        Ok(Self {
            dir: dir.to_owned(),
            maps,
        })
    }

    fn err(&self, what: String) -> InstanceError {
        bpf_err(&self.dir, what)
    }
}

/// Traffic of one entry of `LB_VIP_STATS` / `LB_REAL_STATS`, summed over
/// CPUs.
pub fn traffic(maps: &impl LbMaps, map: &'static str, index: u32) -> Result<Traffic, String> {
    let values = PerCpuArray::<_, Traffic>::try_from(maps.lb_map(map)?)
        .and_then(|m| m.get(&index, 0))
        .map_err(map_op(map, format!("read entry {index}")))?;
    Ok(values.iter().fold(Traffic::default(), |sum, t| Traffic {
        packets: sum.packets + t.packets,
        bytes: sum.bytes + t.bytes,
    }))
}

/// `LB_COUNTERS` summed over CPUs (one batched lookup).
pub fn counters(maps: &impl LbMaps) -> Result<Counters, String> {
    let Map::PerCpuArray(data) = maps.lb_map(COUNTERS_MAP)? else {
        return Err(format!("map {COUNTERS_MAP} is not a per-CPU array"));
    };
    let values = crate::maps::sum_per_cpu_u64(data.fd().as_fd(), Counter::COUNT)
        .map_err(|e| format!("map {COUNTERS_MAP}: batched lookup: {e}"))?;
    let mut c = Counters::default();
    for (slot, v) in c.0.iter_mut().zip(values) {
        *slot = v;
    }
    Ok(c)
}

/// Entries of `LB_RING`.
pub fn ring_len(maps: &impl LbMaps) -> Result<u32, String> {
    Array::<_, u32>::try_from(maps.lb_map(RING_MAP)?)
        .map(|m| m.len())
        .map_err(map_op(RING_MAP, "open"))
}

/// One VIP's ring as the kernel holds it.
pub fn ring(maps: &impl LbMaps, vip_num: u32, ring_size: u32) -> Result<Vec<u32>, String> {
    let m = Array::<_, u32>::try_from(maps.lb_map(RING_MAP)?).map_err(map_op(RING_MAP, "open"))?;
    (0..ring_size)
        .map(|slot| {
            let index = vip_num * ring_size + slot;
            m.get(&index, 0)
                .map_err(map_op(RING_MAP, format!("read slot {index}")))
        })
        .collect()
}

/// An instance opened for a command (its lock held).
pub struct Instance {
    paths: Paths,
    state: State,
    plane: Plane,
    maps: Maps,
    program: Xdp,
    _lock: Lock,
}

impl fmt::Debug for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instance")
            .field("paths", &self.paths)
            .finish_non_exhaustive()
    }
}

/// What `load` did, for the CLI to print.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The instance's paths.
    pub paths: Paths,
    /// Kernel id of the program.
    pub program_id: u32,
    /// Instructions after the verifier's rewrites.
    pub instructions: Option<u32>,
    /// Set when `load` mounted bpffs.
    pub mounted: Option<String>,
}

/// Loads `xdp_lb` as instance `name` with `settings`: pins the program and
/// its maps, writes `LB_CONFIG` and the state file. On any failure, what
/// was created is removed again.
pub fn load(name: &str, settings: LbSettings) -> Result<Loaded, InstanceError> {
    let paths = paths(name)?;
    let plane_err = |source| InstanceError::Plane {
        name: name.to_owned(),
        source,
    };
    let (_, config_writes) = Plane::new(settings).map_err(plane_err)?;
    let lock = lock()?;
    let mounted = ensure_bpffs()?;
    let found = paths.existing();
    if !found.is_empty() {
        return Err(InstanceError::Exists {
            name: name.to_owned(),
            what: found.join(", "),
        });
    }
    let le = settings.ring_size.to_le_bytes();
    let mut program =
        LoadedProgram::builtin(datapath::XDP_LB, &load_options(settings.ring_size, &le))
            .map_err(|e| plane_err(LbError::Load(e)))?;
    let created = (|| {
        fs::create_dir(&paths.pins)
            .map_err(io_err(&paths.pins, "cannot create the pin directory"))?;
        let prog_pin = paths.pins.join(PROGRAM_PIN);
        program
            .pin(&prog_pin)
            .map_err(|e| bpf_err(&prog_pin, format!("cannot pin the program: {e}")))?;
        for map in PINNED_MAPS {
            let path = paths.pins.join(map);
            program
                .map(map)
                .ok_or_else(|| bpf_err(&path, "the xdp_lb object has no such map"))?
                .pin(&path)
                .map_err(|e| bpf_err(&path, format!("cannot pin the map: {e}")))?;
        }
        let mut maps = Maps::open(&paths.pins)?;
        let entries = ring_len(&maps).map_err(|e| maps.err(e))?;
        let needed = u64::from(MAX_VIPS) * u64::from(settings.ring_size);
        if u64::from(entries) != needed {
            return Err(plane_err(LbError::RingMapSize {
                entries,
                ring_size: settings.ring_size,
                needed,
            }));
        }
        apply(&mut maps, config_writes).map_err(|e| maps.err(e))?;
        let program_id = pinned_program(&paths)?
            .info()
            .map_err(|e| bpf_err(&prog_pin, e))?
            .id();
        let state = State {
            version: STATE_VERSION,
            name: name.to_owned(),
            program_id,
            pins: paths.pins.clone(),
            settings: SettingsState::from(&settings),
            ops: Vec::new(),
        };
        write_state(&paths, &state)?;
        Ok(program_id)
    })();
    match created {
        Ok(program_id) => {
            drop(lock);
            Ok(Loaded {
                paths,
                program_id,
                instructions: program.instructions(),
                mounted,
            })
        }
        Err(e) => {
            let _ = remove_pins(&paths.pins);
            let _ = fs::remove_file(&paths.state);
            let _ = fs::remove_file(paths.state_tmp());
            Err(e)
        }
    }
}

fn pinned_program(paths: &Paths) -> Result<Xdp, InstanceError> {
    let path = paths.pins.join(PROGRAM_PIN);
    Xdp::from_pin(&path, XdpAttachType::Interface)
        .map_err(|e| bpf_err(&path, format!("cannot open the pinned program: {e}")))
}

fn write_state(paths: &Paths, state: &State) -> Result<(), InstanceError> {
    let json = serde_json::to_string_pretty(state).expect("the state serializes");
    Ok(crate::pins::write_state(&paths.state, &json)?)
}

fn read_state(paths: &Paths) -> Result<State, InstanceError> {
    let text =
        fs::read_to_string(&paths.state).map_err(io_err(&paths.state, "cannot read the state"))?;
    let state: State = serde_json::from_str(&text).map_err(|e| InstanceError::State {
        path: paths.state.clone(),
        what: format!("not a dsrlab lb state file: {e}"),
    })?;
    if state.version != STATE_VERSION {
        return Err(InstanceError::State {
            path: paths.state.clone(),
            what: format!(
                "state format version {} (this dsrlab reads version {STATE_VERSION})",
                state.version
            ),
        });
    }
    if state.name != paths.name {
        return Err(InstanceError::State {
            path: paths.state.clone(),
            what: format!("it belongs to instance `{}`", state.name),
        });
    }
    Ok(state)
}

fn remove_pins(dir: &Path) -> Result<bool, InstanceError> {
    Ok(crate::pins::remove_dir(dir)?)
}

/// What `unload` removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unloaded {
    /// The pin directory, if it existed.
    pub pins: Option<PathBuf>,
    /// The state file, if it existed.
    pub state: Option<PathBuf>,
}

/// Removes instance `name`: its pins (whatever the state says, or without
/// one) and its state file. An instance with neither is an error.
pub fn unload(name: &str) -> Result<Unloaded, InstanceError> {
    let paths = paths(name)?;
    let _lock = lock()?;
    let (pins, state) = paths.remove()?;
    if pins.is_none() && state.is_none() {
        return Err(InstanceError::NotFound {
            name: name.to_owned(),
            pins: paths.pins,
            state: paths.state,
        });
    }
    Ok(Unloaded { pins, state })
}

/// Every instance with pins or a state file: (name, pins present, state
/// present).
pub fn list() -> Result<Vec<(String, bool, bool)>, InstanceError> {
    Ok(KIND.list())
}

impl Instance {
    /// Opens instance `name`: its state replayed into a plane, its pinned
    /// maps and program, with the lock held until dropped.
    pub fn open(name: &str) -> Result<Self, InstanceError> {
        let paths = paths(name)?;
        let lock = lock()?;
        match (paths.pins.exists(), paths.state.exists()) {
            (false, false) => {
                return Err(InstanceError::NotFound {
                    name: name.to_owned(),
                    pins: paths.pins,
                    state: paths.state,
                });
            }
            (true, false) => {
                return Err(InstanceError::StateMissing {
                    name: name.to_owned(),
                    pins: paths.pins,
                    state: paths.state,
                });
            }
            (false, true) => {
                return Err(InstanceError::PinsMissing {
                    name: name.to_owned(),
                    pins: paths.pins,
                    state: paths.state,
                });
            }
            (true, true) => {}
        }
        let state = read_state(&paths)?;
        let plane = state.plane().map_err(|what| InstanceError::State {
            path: paths.state.clone(),
            what,
        })?;
        let program = pinned_program(&paths)?;
        let found = program
            .info()
            .map_err(|e| bpf_err(&paths.pins.join(PROGRAM_PIN), e))?
            .id();
        if found != state.program_id {
            return Err(InstanceError::ProgramReplaced {
                name: name.to_owned(),
                path: paths.pins.join(PROGRAM_PIN),
                expected: state.program_id,
                found,
            });
        }
        let maps = Maps::open(&paths.pins)?;
        Ok(Self {
            paths,
            state,
            plane,
            maps,
            program,
            _lock: lock,
        })
    }

    /// The paths.
    pub const fn paths(&self) -> &Paths {
        &self.paths
    }

    /// The control plane's bookkeeping.
    pub const fn plane(&self) -> &Plane {
        &self.plane
    }

    /// The state as read (and as updated by [`Instance::apply`]).
    pub const fn state(&self) -> &State {
        &self.state
    }

    /// Carries out `op`: the plane checks it, the maps get its writes in
    /// order, then the state file records it.
    pub fn apply(&mut self, op: Op) -> Result<(), InstanceError> {
        let name = self.paths.name.clone();
        // A refusal by the plane comes before any write.
        let writes = op
            .apply(&mut self.plane)
            .map_err(|what| InstanceError::Refused {
                name: name.clone(),
                what,
            })?;
        apply(&mut self.maps, writes).map_err(|what| InstanceError::PartialWrite {
            name: name.clone(),
            what,
        })?;
        self.state.ops.push(op);
        write_state(&self.paths, &self.state)
    }

    /// `LB_COUNTERS` summed over CPUs.
    pub fn counters(&self) -> Result<Counters, InstanceError> {
        counters(&self.maps).map_err(|e| self.maps.err(e))
    }

    /// A VIP's traffic summed over CPUs.
    pub fn vip_stats(&self, vip: &Vip) -> Result<Traffic, InstanceError> {
        let num = self
            .plane
            .vip_num(vip)
            .ok_or_else(|| InstanceError::Plane {
                name: self.paths.name.clone(),
                source: LbError::NoSuchVip(*vip),
            })?;
        traffic(&self.maps, VIP_STATS_MAP, num).map_err(|e| self.maps.err(e))
    }

    /// A real's traffic summed over CPUs.
    pub fn real_stats(&self, real: IpAddr) -> Result<Traffic, InstanceError> {
        let id = self
            .plane
            .real_id(real)
            .ok_or_else(|| InstanceError::Plane {
                name: self.paths.name.clone(),
                source: LbError::UnknownReal(real),
            })?;
        traffic(&self.maps, REAL_STATS_MAP, id).map_err(|e| self.maps.err(e))
    }

    /// The program's kernel id and instruction count.
    pub fn program_info(&self) -> (u32, Option<u32>) {
        match self.program.info() {
            Ok(info) => (
                info.id(),
                info.size_translated().map(|b| b / size_of::<u64>() as u32),
            ),
            Err(_) => (self.state.program_id, None),
        }
    }

    /// A VIP's ring as the kernel holds it.
    pub fn kernel_ring(&self, vip: &Vip) -> Result<Vec<u32>, InstanceError> {
        let num = self
            .plane
            .vip_num(vip)
            .ok_or_else(|| InstanceError::Plane {
                name: self.paths.name.clone(),
                source: LbError::NoSuchVip(*vip),
            })?;
        ring(&self.maps, num, self.plane.settings().ring_size).map_err(|e| self.maps.err(e))
    }

    /// Runs `frame` once through the pinned program (`BPF_PROG_TEST_RUN`)
    /// and returns the verdict and the output frame.
    pub fn test_run(&self, frame: &[u8], n: usize) -> Result<(Verdict, Vec<u8>), InstanceError> {
        let err = |what: String| InstanceError::TestRun {
            name: self.paths.name.clone(),
            frame: n,
            what,
        };
        let fd = self
            .program
            .fd()
            .map_err(|e| err(format!("the pinned program has no descriptor: {e}")))?;
        let target = crate::testrun::Target {
            fd: fd.as_fd(),
            kind: crate::load::ProgramKind::Xdp,
            name: PROGRAM_PIN,
        };
        crate::testrun::run_target(target, frame, crate::testrun::Quirks::default(), 1)
            .map(|r| (r.verdict, r.output))
            .map_err(|e| err(e.to_string()))
    }

    /// `show`: settings, program, and per VIP its flags and reals with
    /// weight, ring slots and share, from the ring the kernel holds
    /// (compared with the state's).
    pub fn describe(&self) -> Result<String, InstanceError> {
        let s = self.plane.settings();
        let (id, insns) = self.program_info();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "instance {}: xdp_lb program id {id}{}, pinned in {}, state {}",
            self.paths.name,
            insns.map_or(String::new(), |n| format!(" ({n} insns)")),
            self.paths.pins.display(),
            self.paths.state.display()
        );
        let _ = writeln!(
            out,
            "settings: ring size {}, hash seed {:#x}, gateway {}, mtu {}, gue port {} (checksum over IPv6 {}), icmp echo {}, send too big {}, outer sources {}/16 {}/96",
            s.ring_size,
            s.hash_seed,
            format_mac(s.gateway_mac),
            s.mtu,
            s.gue_port,
            if s.gue_v6_zero_checksum {
                "zero"
            } else {
                "computed"
            },
            on_off(s.icmp_echo),
            on_off(s.send_too_big),
            s.src_v4_prefix,
            s.src_v6_prefix
        );
        let vips: Vec<VipSpec> = self.plane.vips().collect();
        if vips.is_empty() {
            let _ = writeln!(out, "no VIPs");
        }
        for spec in vips {
            let vip = spec.vip();
            let num = self.plane.vip_num(&vip).unwrap_or_default();
            let ring = self.kernel_ring(&vip)?;
            let planned = self.plane.ring(&vip).unwrap_or_default();
            let _ = writeln!(
                out,
                "VIP {vip} (#{num}), flags {}",
                format_vip_flags(spec.flags)
            );
            let reals = self.plane.reals_of(&vip).cloned().unwrap_or_default();
            if reals.is_empty() {
                let _ = writeln!(out, "  no reals: its traffic is dropped (drop_no_real)");
            } else {
                let _ = writeln!(
                    out,
                    "  {:<40} {:>5} {:>7} {:>8} {:>7}",
                    "real", "id", "weight", "slots", "share"
                );
                for (addr, weight) in &reals {
                    let id = self.plane.real_id(*addr).unwrap_or_default();
                    let slots = ring.iter().filter(|r| **r == id).count();
                    let _ = writeln!(
                        out,
                        "  {:<40} {:>5} {:>7} {:>8} {:>6.2}%",
                        addr.to_string(),
                        id,
                        weight,
                        slots,
                        100.0 * slots as f64 / ring.len().max(1) as f64
                    );
                }
            }
            let empty = ring.iter().filter(|r| **r == 0).count();
            if empty > 0 && !reals.is_empty() {
                let _ = writeln!(out, "  {empty} slots name no real");
            }
            let differ = ring.iter().zip(planned).filter(|(a, b)| a != b).count();
            if differ == 0 {
                let _ = writeln!(
                    out,
                    "  ring in the kernel: {} slots, as the state says",
                    ring.len()
                );
            } else {
                let _ = writeln!(
                    out,
                    "  ring in the kernel: {differ} of {} slots differ from the state (a change failed part-way?)",
                    ring.len()
                );
            }
        }
        Ok(out)
    }

    /// `counters`: global counters, then per VIP and per real.
    pub fn describe_counters(&self) -> Result<String, InstanceError> {
        let mut out = String::new();
        let c = self.counters()?;
        let _ = writeln!(out, "global:");
        for counter in Counter::ALL {
            let _ = writeln!(out, "  {:<20} {:>12}", counter.name(), c.get(counter));
        }
        let vips: Vec<VipSpec> = self.plane.vips().collect();
        if !vips.is_empty() {
            let _ = writeln!(out, "per VIP:");
        }
        for spec in &vips {
            let vip = spec.vip();
            let t = self.vip_stats(&vip)?;
            let _ = writeln!(
                out,
                "  {:<40} {:>12} packets {:>14} bytes",
                vip.to_string(),
                t.packets,
                t.bytes
            );
        }
        let mut reals: Vec<IpAddr> = vips
            .iter()
            .filter_map(|s| self.plane.reals_of(&s.vip()))
            .flat_map(|r| r.keys().copied())
            .collect();
        reals.sort();
        reals.dedup();
        if !reals.is_empty() {
            let _ = writeln!(out, "per real:");
        }
        for real in reals {
            let t = self.real_stats(real)?;
            let _ = writeln!(
                out,
                "  {:<40} {:>12} packets {:>14} bytes",
                real.to_string(),
                t.packets,
                t.bytes
            );
        }
        Ok(out)
    }
}

const fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

/// `02:00:00:00:00:fe`.
pub fn format_mac(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parses `02:00:00:00:00:fe`.
pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = s.split(':').collect();
    let bad =
        || format!("MAC `{s}`: expected six hex bytes separated by colons, e.g. 02:00:00:00:00:fe");
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut mac = [0u8; 6];
    for (b, p) in mac.iter_mut().zip(parts) {
        if p.is_empty() || p.len() > 2 {
            return Err(bad());
        }
        *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    Ok(mac)
}

/// Parses a VIP as [`Vip`]'s `Display` writes it: `198.18.0.10:80/tcp`,
/// `[2001:db8::10]:443/udp`; port 0 is the all-ports VIP.
pub fn parse_vip(s: &str) -> Result<Vip, String> {
    let bad = |why: &str| {
        format!(
            "VIP `{s}`: {why}; expected ADDRESS:PORT/PROTO, e.g. 198.18.0.10:80/tcp or [2001:db8::10]:443/udp (port 0: all ports)"
        )
    };
    let (rest, proto) = s.rsplit_once('/').ok_or_else(|| bad("no /tcp or /udp"))?;
    let proto = match proto {
        "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        other => return Err(bad(&format!("protocol `{other}` is not tcp or udp"))),
    };
    let (addr, port) = rest.rsplit_once(':').ok_or_else(|| bad("no :PORT"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| bad(&format!("port `{port}` is not a number 0-65535")))?;
    let addr: IpAddr = if let Some(inner) = addr.strip_prefix('[').and_then(|a| a.strip_suffix(']'))
    {
        inner
            .parse::<Ipv6Addr>()
            .map(IpAddr::V6)
            .map_err(|_| bad(&format!("`{inner}` is not an IPv6 address")))?
    } else {
        addr.parse::<Ipv4Addr>().map(IpAddr::V4).map_err(|_| {
            bad(&format!(
                "`{addr}` is not an IPv4 address (write IPv6 in brackets)"
            ))
        })?
    };
    Ok(Vip { addr, port, proto })
}

const FLAG_NAMES: [(&str, u32); 4] = [
    ("no_sport", vip_flags::NO_SPORT),
    ("no_lru", vip_flags::NO_LRU),
    ("dport_only", vip_flags::DPORT_ONLY),
    ("gue", vip_flags::GUE),
];

/// Parses `no_sport,gue` (names of `vip_flags`, comma-separated; empty: 0).
pub fn parse_vip_flags(s: &str) -> Result<u32, String> {
    let mut flags = 0;
    for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let Some((_, bit)) = FLAG_NAMES.iter().find(|(n, _)| *n == name) else {
            let known: Vec<&str> = FLAG_NAMES.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "unknown VIP flag `{name}` (known: {})",
                known.join(", ")
            ));
        };
        flags |= bit;
    }
    Ok(flags)
}

/// `no_sport,gue`, or `none`.
pub fn format_vip_flags(flags: u32) -> String {
    let names: Vec<&str> = FLAG_NAMES
        .iter()
        .filter(|(_, bit)| flags & bit != 0)
        .map(|(n, _)| *n)
        .collect();
    let unknown = flags & !FLAG_NAMES.iter().fold(0, |a, (_, b)| a | b);
    let mut s = if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(",")
    };
    if unknown != 0 {
        let _ = write!(s, " (+{unknown:#x})");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vips_parse_as_they_display() {
        for s in ["198.18.0.10:80/tcp", "[2001:db8::10]:0/udp"] {
            assert_eq!(parse_vip(s).unwrap().to_string(), s);
        }
        for bad in [
            "198.18.0.10:80",
            "198.18.0.10/tcp",
            "2001:db8::1:80/tcp",
            "x:1/tcp",
            "198.18.0.1:99999/udp",
            "198.18.0.1:1/icmp",
        ] {
            let e = parse_vip(bad).unwrap_err();
            assert!(e.starts_with(&format!("VIP `{bad}`")), "{e}");
        }
    }

    #[test]
    fn flags_and_macs_round_trip() {
        let f = parse_vip_flags("gue, no_sport").unwrap();
        assert_eq!(f, vip_flags::GUE | vip_flags::NO_SPORT);
        assert_eq!(format_vip_flags(f), "no_sport,gue");
        assert_eq!(format_vip_flags(0), "none");
        assert!(
            parse_vip_flags("fast")
                .unwrap_err()
                .contains("known: no_sport")
        );
        assert_eq!(
            parse_mac("02:00:00:00:00:fe").unwrap(),
            [2, 0, 0, 0, 0, 0xfe]
        );
        assert!(parse_mac("02:00").is_err());
    }

    #[test]
    fn names_are_checked() {
        assert!(paths("demo-1_x").is_ok());
        for bad in ["", "a/b", "..", "a b", &"x".repeat(49)] {
            assert!(matches!(paths(bad), Err(InstanceError::BadName(_))));
        }
    }

    #[test]
    fn the_log_replays_into_the_same_plane() {
        let settings = LbSettings {
            ring_size: 13,
            ..LbSettings::default()
        };
        let ops = vec![
            Op::AddVip {
                vip: "198.18.0.10:80/tcp".into(),
                flags: vip_flags::GUE,
            },
            Op::AddReal {
                vip: "198.18.0.10:80/tcp".into(),
                real: "198.18.1.1".parse().unwrap(),
                weight: 1,
            },
            Op::AddReal {
                vip: "198.18.0.10:80/tcp".into(),
                real: "198.18.1.2".parse().unwrap(),
                weight: 2,
            },
            Op::RemoveReal {
                vip: "198.18.0.10:80/tcp".into(),
                real: "198.18.1.1".parse().unwrap(),
            },
            Op::SetWeight {
                vip: "198.18.0.10:80/tcp".into(),
                real: "198.18.1.2".parse().unwrap(),
                weight: 3,
            },
        ];
        let state = State {
            version: STATE_VERSION,
            name: "t".into(),
            program_id: 1,
            pins: "/x".into(),
            settings: SettingsState::from(&settings),
            ops: ops.clone(),
        };
        let json = serde_json::to_string(&state).unwrap();
        let back: State = serde_json::from_str(&json).unwrap();
        assert_eq!(back, state);
        let (mut direct, _) = Plane::new(settings).unwrap();
        for op in &ops {
            op.apply(&mut direct).unwrap();
        }
        let replayed = back.plane().unwrap();
        assert_eq!(replayed.model_state(), direct.model_state());
        let vip = parse_vip("198.18.0.10:80/tcp").unwrap();
        assert_eq!(replayed.ring(&vip), direct.ring(&vip));
    }
}
