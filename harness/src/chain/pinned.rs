//! A named chain that outlives the process which made it: what
//! `dsrlab chain …` drives, one command per process, as `dsrlab lb` does
//! for a load balancer.
//!
//! # What persists, where
//!
//! - `/sys/fs/bpf/dsrlab-pinned-chain-NAME/`: the root (`root`) and the
//!   chain's maps (`CHAIN_PROGS`, `CHAIN_CONTINUE`, `CHAIN_STATS`, pinned by
//!   name by the loader, so that every slot program loaded later shares
//!   them). Under `tail-call` the program array holds the slot programs (a
//!   pinned map keeps its entries). Under `ext` each populated slot has its
//!   program (`slot-N`) and its link to the root (`slot-N-link`) pinned: the
//!   link keeps the program in its slot, the program pin lets a later
//!   command attach it to a new root.
//! - `/run/dsrlab/chain-NAME.json`: the backend, the root's program id (pins
//!   replaced behind dsrlab's back are refused), reservations, continue sets
//!   and what each slot holds.
//!
//! Replacing a populated slot under `ext` is the in-process chain's root
//! swap across processes: a new root with the same pinned maps, every
//! other slot's pinned program attached to it with a new pinned link, the
//! new program too (each pinned as `NAME-new`: bpffs refuses dots in names,
//! EPERM), and then the pins renamed over the old ones, root first; the old
//! links and root go with their last pins. Until the
//! renames nothing of the old chain changed, and a failure removes what
//! was made. Commands hold the lock on `/run/dsrlab`.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    fs,
    os::fd::AsFd as _,
    path::{Path, PathBuf},
};

use aya::{
    maps::{Array, MapData, ProgramArray},
    programs::{Extension, ProgramFd, Xdp},
};
use aya_obj::programs::XdpAttachType;
use dsrlab_abi::chain::{CONTINUE_MAP, PROGS_MAP, SLOTS, STATS_MAP, SlotStats, VERDICTS};
use serde::{Deserialize, Serialize};

use super::{
    Backend, ChainError, SlotProgram, SlotSource, SlotTarget, check_slot,
    ext::{self, ExtProgram},
    load_slot,
};
use crate::{
    datapath,
    load::{LoadOptions, LoadedProgram, ProgramKind},
    pins::{self, Lock},
    testrun::{self, Quirks, RunError, RunResult, Target},
    verdict::Verdict,
};

/// Prefix of pinned chains' directories in [`BPFFS`].
pub const PIN_PREFIX: &str = "dsrlab-pinned-chain-";
/// The root's pin in a chain's directory.
pub const ROOT_PIN: &str = "root";
/// Version of the state file's format.
pub const STATE_VERSION: u32 = 1;

/// What a pinned chain's state file holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct State {
    /// Format version ([`STATE_VERSION`]).
    pub version: u32,
    /// The chain's name.
    pub name: String,
    /// `tail-call` or `ext`.
    pub backend: String,
    /// The pinned root's kernel program id.
    pub root_id: u32,
    /// Reserved slots and their owners.
    #[serde(default)]
    pub owners: BTreeMap<u32, String>,
    /// Continue sets (bit `v` for XDP action `v`) of slots that have one.
    #[serde(default)]
    pub continue_on: BTreeMap<u32, u32>,
    /// What each populated slot holds.
    #[serde(default)]
    pub slots: BTreeMap<u32, SlotState>,
}

/// A populated slot, as the state file records it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SlotState {
    /// The program's name.
    pub program: String,
    /// Its object (a built-in's name or a file's path).
    pub object: String,
    /// Its kernel program id.
    pub id: u32,
}

/// The paths of a pinned chain.
pub type Paths = pins::InstancePaths;

/// Pinned chains' pins (`/sys/fs/bpf/dsrlab-pinned-chain-NAME`) and state
/// (`/run/dsrlab/chain-NAME.json`).
pub const KIND: pins::Kind = pins::Kind {
    pins: PIN_PREFIX,
    state: "chain-",
};

/// The paths of chain `name` (validated as instance names are).
pub fn paths(name: &str) -> Result<Paths, ChainError> {
    KIND.paths(name).ok_or_else(|| {
        pinned(
            name,
            "a name is 1 to 48 letters, digits, `_` or `-`".to_owned(),
        )
    })
}

fn slot_program(paths: &Paths, slot: u32) -> PathBuf {
    paths.pins.join(format!("slot-{slot}"))
}

fn slot_link(paths: &Paths, slot: u32) -> PathBuf {
    paths.pins.join(format!("slot-{slot}-link"))
}

fn pinned(name: &str, what: String) -> ChainError {
    ChainError::Pinned {
        name: name.to_owned(),
        what,
    }
}

fn pins_err(e: pins::PinsError) -> ChainError {
    ChainError::Io {
        what: format!("{}: {}", e.path.display(), e.what),
        source: e.source,
    }
}

fn bpf(what: impl Into<String>) -> impl FnOnce(String) -> ChainError {
    let what = what.into();
    move |e| ChainError::Failed(format!("{what}: {e}"))
}

/// What `create` made, for the CLI to print.
#[derive(Clone, Debug)]
pub struct Created {
    /// The chain's paths.
    pub paths: Paths,
    /// The root's kernel id.
    pub root_id: u32,
    /// The root's instructions after the verifier's rewrites.
    pub instructions: Option<u32>,
    /// Set when `create` mounted bpffs.
    pub mounted: Option<String>,
}

/// Creates chain `name` of `backend` with every slot empty: the root and
/// its maps pinned, the state written. On failure, what was made goes.
pub fn create(name: &str, backend: Backend) -> Result<Created, ChainError> {
    let paths = paths(name)?;
    let _lock = pins::lock().map_err(pins_err)?;
    let mounted = pins::ensure_bpffs().map_err(pins_err)?;
    let found = paths.existing();
    if !found.is_empty() {
        return Err(pinned(
            name,
            format!(
                "{} (`dsrlab chain destroy {name}` removes it)",
                found.join(", ")
            ),
        ));
    }
    let made = (|| {
        fs::create_dir(&paths.pins)
            .map_err(super::io_err(format!("creating {}", paths.pins.display())))?;
        let mut root = load_root(backend, &paths.pins)?;
        let path = paths.pins.join(ROOT_PIN);
        root.pin(&path)
            .map_err(|e| bpf(format!("pinning the root at {}", path.display()))(e.to_string()))?;
        let root_id = program_id(&root)?;
        let state = State {
            version: STATE_VERSION,
            name: name.to_owned(),
            backend: backend.name().to_owned(),
            root_id,
            owners: BTreeMap::new(),
            continue_on: BTreeMap::new(),
            slots: BTreeMap::new(),
        };
        write_state(&paths, &state)?;
        Ok(Created {
            paths: paths.clone(),
            root_id,
            instructions: root.instructions(),
            mounted: mounted.clone(),
        })
    })();
    if made.is_err() {
        let _ = pins::remove_dir(&paths.pins);
        let _ = fs::remove_file(&paths.state);
    }
    made
}

fn load_root(backend: Backend, pins: &Path) -> Result<LoadedProgram, ChainError> {
    let options = LoadOptions {
        pin_directory: Some(pins),
        ..LoadOptions::default()
    };
    let object = match backend {
        Backend::TailCall => datapath::XDP_CHAIN_TAIL,
        Backend::Ext => datapath::XDP_CHAIN_EXT,
    };
    Ok(LoadedProgram::builtin(object, &options)?)
}

fn program_id(program: &LoadedProgram) -> Result<u32, ChainError> {
    program
        .program()
        .info()
        .map(|i| i.id())
        .map_err(|e| ChainError::Failed(format!("the id of `{}`: {e}", program.name())))
}

fn write_state(paths: &Paths, state: &State) -> Result<(), ChainError> {
    let json = serde_json::to_string_pretty(state).expect("the state serializes");
    pins::write_state(&paths.state, &json).map_err(pins_err)
}

/// What `destroy` removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destroyed {
    /// The pin directory, if it existed.
    pub pins: Option<PathBuf>,
    /// The state file, if it existed.
    pub state: Option<PathBuf>,
}

/// Removes chain `name`: its pins (whatever the state says, or without
/// one) and its state. A chain with neither is an error.
pub fn destroy(name: &str) -> Result<Destroyed, ChainError> {
    let paths = paths(name)?;
    let _lock = pins::lock().map_err(pins_err)?;
    let (pins, state) = paths.remove().map_err(pins_err)?;
    if pins.is_none() && state.is_none() {
        return Err(not_found(&paths));
    }
    Ok(Destroyed { pins, state })
}

fn not_found(paths: &Paths) -> ChainError {
    pinned(
        &paths.name,
        format!(
            "no such chain: neither {} nor {} exists (`dsrlab chain create {}` makes one)",
            paths.pins.display(),
            paths.state.display(),
            paths.name
        ),
    )
}

/// Every pinned chain with pins or a state file: (name, pins present,
/// state present).
pub fn list() -> Vec<(String, bool, bool)> {
    KIND.list()
}

/// A pinned chain opened for one command (the lock held until dropped).
pub struct PinnedChain {
    paths: Paths,
    state: State,
    backend: Backend,
    root: Xdp,
    _lock: Lock,
}

impl PinnedChain {
    /// Opens chain `name`: its state and pinned root, checked against each
    /// other.
    pub fn open(name: &str) -> Result<Self, ChainError> {
        let paths = paths(name)?;
        let lock = pins::lock().map_err(pins_err)?;
        if !paths.state.exists() {
            if paths.pins.exists() {
                return Err(pinned(
                    name,
                    format!(
                        "{} is missing but {} exists (`dsrlab chain destroy {name}` removes the pins)",
                        paths.state.display(),
                        paths.pins.display()
                    ),
                ));
            }
            return Err(not_found(&paths));
        }
        let text = fs::read_to_string(&paths.state)
            .map_err(super::io_err(format!("reading {}", paths.state.display())))?;
        let state: State = serde_json::from_str(&text).map_err(|e| {
            pinned(
                name,
                format!("{}: not a chain's state: {e}", paths.state.display()),
            )
        })?;
        if state.version != STATE_VERSION {
            return Err(pinned(
                name,
                format!(
                    "{}: state version {}, this dsrlab writes {STATE_VERSION}",
                    paths.state.display(),
                    state.version
                ),
            ));
        }
        let backend = match state.backend.as_str() {
            "tail-call" => Backend::TailCall,
            "ext" => Backend::Ext,
            other => {
                return Err(pinned(
                    name,
                    format!("{}: unknown backend `{other}`", paths.state.display()),
                ));
            }
        };
        let path = paths.pins.join(ROOT_PIN);
        let root = Xdp::from_pin(&path, XdpAttachType::Interface).map_err(|e| {
            pinned(
                name,
                format!("cannot open the pinned root {}: {e}", path.display()),
            )
        })?;
        let id = root
            .info()
            .map_err(|e| pinned(name, format!("the pinned root's id: {e}")))?
            .id();
        if id != state.root_id {
            return Err(pinned(
                name,
                format!(
                    "the pinned root is program {id}, the state says {}: the pins were replaced \
                     behind dsrlab's back",
                    state.root_id
                ),
            ));
        }
        Ok(Self {
            paths,
            state,
            backend,
            root,
            _lock: lock,
        })
    }

    /// The backend.
    pub const fn backend(&self) -> Backend {
        self.backend
    }

    /// The state (what each slot holds, reservations, continue sets).
    pub const fn state(&self) -> &State {
        &self.state
    }

    /// The paths.
    pub const fn paths(&self) -> &Paths {
        &self.paths
    }

    fn root_fd(&self) -> Result<ProgramFd, ChainError> {
        self.root
            .fd()
            .and_then(|fd| fd.try_clone().map_err(Into::into))
            .map_err(|e| ChainError::Failed(format!("the pinned root's fd: {e}")))
    }

    fn map(&self, name: &str) -> Result<MapData, ChainError> {
        let path = self.paths.pins.join(name);
        MapData::from_pin(&path)
            .map_err(|e| ChainError::Failed(format!("opening {}: {e}", path.display())))
    }

    fn check_owner(&self, slot: u32, who: Option<&str>) -> Result<(), ChainError> {
        check_slot(slot)?;
        match (self.state.owners.get(&slot), who) {
            (Some(owner), Some(who)) if owner == who => Ok(()),
            (Some(owner), _) => Err(ChainError::Reserved {
                slot,
                owner: owner.clone(),
            }),
            (None, _) => Ok(()),
        }
    }

    /// Reserves `slot` for `owner` (refused if someone else has it).
    pub fn reserve(&mut self, slot: u32, owner: &str) -> Result<(), ChainError> {
        check_slot(slot)?;
        if let Some(other) = self.state.owners.get(&slot).filter(|o| *o != owner) {
            return Err(ChainError::Reserved {
                slot,
                owner: other.clone(),
            });
        }
        self.state.owners.insert(slot, owner.to_owned());
        write_state(&self.paths, &self.state)
    }

    /// Sets which verdicts of `slot` go on (bit `v` for XDP action `v`; 0:
    /// `XDP_PASS` only).
    pub fn set_continue(&mut self, slot: u32, verdicts: u32) -> Result<(), ChainError> {
        check_slot(slot)?;
        let mut array: Array<MapData, u32> =
            Array::try_from(aya::maps::Map::Array(self.map(CONTINUE_MAP)?))
                .map_err(super::map_err(CONTINUE_MAP))?;
        array
            .set(slot, &verdicts, 0)
            .map_err(super::map_err(format!("the continue set of slot {slot}")))?;
        if verdicts == 0 {
            self.state.continue_on.remove(&slot);
        } else {
            self.state.continue_on.insert(slot, verdicts);
        }
        write_state(&self.paths, &self.state)
    }

    /// Loads the program of `source` (with `options`) for `slot` and puts
    /// it there on behalf of `owner`, replacing what was there in one step;
    /// returns what it replaced. Refused, with the chain as it was, for a
    /// slot reserved for someone else or a program that cannot go in.
    pub fn attach(
        &mut self,
        slot: u32,
        source: SlotSource<'_>,
        options: &LoadOptions<'_>,
        owner: Option<&str>,
    ) -> Result<Option<SlotState>, ChainError> {
        self.check_owner(slot, owner)?;
        let root = self.root_fd()?;
        let target = SlotTarget {
            backend: self.backend,
            pins: &self.paths.pins,
            root: Some(&root),
        };
        let program = load_slot(&target, source, slot, options)?;
        let record = SlotState {
            program: program.name().to_owned(),
            object: program.loaded().object().to_owned(),
            id: program_id(program.loaded())?,
        };
        match program {
            SlotProgram::TailCall(p) => self.set_prog_array(slot, &p)?,
            SlotProgram::Ext(p) if self.state.slots.contains_key(&slot) => {
                self.swap_root(slot, p)?;
            }
            SlotProgram::Ext(mut p) => {
                p.attach_to_fd(&root, slot)?;
                p.pin_link(&slot_link(&self.paths, slot))?;
                if let Err(e) = pin_program(p.loaded_mut(), &slot_program(&self.paths, slot)) {
                    let _ = fs::remove_file(slot_link(&self.paths, slot));
                    return Err(e);
                }
            }
        }
        let old = self.state.slots.insert(slot, record);
        write_state(&self.paths, &self.state)?;
        Ok(old)
    }

    fn set_prog_array(&self, slot: u32, program: &LoadedProgram) -> Result<(), ChainError> {
        if program.kind() != ProgramKind::Xdp {
            return Err(ChainError::NotChainable {
                program: program.name().to_owned(),
                why: "a chain holds XDP programs".to_owned(),
            });
        }
        let mut array: ProgramArray<MapData> =
            ProgramArray::try_from(aya::maps::Map::ProgramArray(self.map(PROGS_MAP)?))
                .map_err(super::map_err(PROGS_MAP))?;
        let fd = program
            .program()
            .fd()
            .map_err(|e| ChainError::Failed(format!("the fd of `{}`: {e}", program.name())))?;
        array
            .set(slot, fd, 0)
            .map_err(|e| ChainError::NotChainable {
                program: program.name().to_owned(),
                why: format!(
                    "the root's program array refused it ({e}): it must be an XDP program without \
                 frags, like the root"
                ),
            })
    }

    /// The ext backend's replacement across processes (see the module's
    /// documentation).
    fn swap_root(&mut self, slot: u32, mut new: ExtProgram) -> Result<(), ChainError> {
        let fresh = |p: &Path| {
            let mut s = p.as_os_str().to_owned();
            s.push("-new");
            PathBuf::from(s)
        };
        let mut made: Vec<(PathBuf, PathBuf)> = Vec::new();
        let result = (|| {
            let mut root = load_root(Backend::Ext, &self.paths.pins)?;
            let root_fd = ext::root_fd(&root)?;
            for &other in self.state.slots.keys().filter(|&&s| s != slot) {
                let pin = slot_program(&self.paths, other);
                let mut program = Extension::from_pin(&pin)
                    .map_err(|e| ChainError::Failed(format!("opening {}: {e}", pin.display())))?;
                let name = format!("slot {other}'s program");
                let id = ext::attach(&mut program, &name, &root_fd, other)?;
                let link = slot_link(&self.paths, other);
                ext::pin_link(&mut program, id, &fresh(&link))?;
                made.push((fresh(&link), link));
            }
            new.attach_to_fd(&root_fd, slot)?;
            let link = slot_link(&self.paths, slot);
            new.pin_link(&fresh(&link))?;
            made.push((fresh(&link), link));
            let program = slot_program(&self.paths, slot);
            pin_program(new.loaded_mut(), &fresh(&program))?;
            made.push((fresh(&program), program));
            let root_pin = self.paths.pins.join(ROOT_PIN);
            pin_program(&mut root, &fresh(&root_pin))?;
            // The root first: from here on the pins name the new chain.
            made.insert(0, (fresh(&root_pin), root_pin));
            program_id(&root)
        })();
        let root_id = match result {
            Ok(id) => id,
            Err(e) => {
                for (new, _) in &made {
                    let _ = fs::remove_file(new);
                }
                return Err(e);
            }
        };
        for (new, old) in &made {
            fs::rename(new, old).map_err(super::io_err(format!(
                "renaming {} over {}",
                new.display(),
                old.display()
            )))?;
        }
        self.state.root_id = root_id;
        self.root = Xdp::from_pin(self.paths.pins.join(ROOT_PIN), XdpAttachType::Interface)
            .map_err(|e| ChainError::Failed(format!("reopening the new root: {e}")))?;
        Ok(())
    }

    /// Empties `slot` on behalf of `owner`; returns what it held.
    pub fn detach(
        &mut self,
        slot: u32,
        owner: Option<&str>,
    ) -> Result<Option<SlotState>, ChainError> {
        self.check_owner(slot, owner)?;
        if !self.state.slots.contains_key(&slot) {
            return Ok(None);
        }
        match self.backend {
            Backend::TailCall => {
                let mut array: ProgramArray<MapData> =
                    ProgramArray::try_from(aya::maps::Map::ProgramArray(self.map(PROGS_MAP)?))
                        .map_err(super::map_err(PROGS_MAP))?;
                array
                    .clear_index(&slot)
                    .map_err(super::map_err(format!("emptying slot {slot}")))?;
            }
            // The link goes with its last pin, and the slot's own function
            // is back.
            Backend::Ext => {
                for pin in [
                    slot_link(&self.paths, slot),
                    slot_program(&self.paths, slot),
                ] {
                    fs::remove_file(&pin)
                        .map_err(super::io_err(format!("removing {}", pin.display())))?;
                }
            }
        }
        let old = self.state.slots.remove(&slot);
        write_state(&self.paths, &self.state)?;
        Ok(old)
    }

    /// Every slot's counters, summed over CPUs.
    pub fn stats(&self) -> Result<Vec<SlotStats>, ChainError> {
        super::stats_of(&self.map(STATS_MAP)?)
    }

    /// Runs `frame` once through the root (`BPF_PROG_TEST_RUN`).
    pub fn test_run(&self, frame: &[u8]) -> Result<Result<RunResult, RunError>, ChainError> {
        let fd = self
            .root
            .fd()
            .map_err(|e| ChainError::Failed(format!("the pinned root's fd: {e}")))?;
        let target = Target {
            fd: fd.as_fd(),
            kind: ProgramKind::Xdp,
            name: ROOT_PIN,
        };
        Ok(testrun::run_target(target, frame, Quirks::default(), 1))
    }

    /// `show`: the backend, the root, and per slot its owner, program,
    /// continue set and counters.
    pub fn describe(&self) -> Result<String, ChainError> {
        let stats = self.stats()?;
        let insns = self
            .root
            .info()
            .ok()
            .and_then(|i| i.size_translated())
            .map_or_else(|| "?".to_owned(), |b| (b / 8).to_string());
        let mut out = String::new();
        let _ = writeln!(
            out,
            "chain {}: {} backend, root program id {} ({insns} insns), pinned in {}, state {}",
            self.paths.name,
            self.backend.name(),
            self.state.root_id,
            self.paths.pins.display(),
            self.paths.state.display()
        );
        let _ = writeln!(
            out,
            "{:>4}  {:<12} {:<24} {:>8}  {:<22} {:>9}  verdicts",
            "slot", "owner", "program", "id", "goes on after", "packets"
        );
        for slot in 0..SLOTS {
            let s = &stats[slot as usize];
            let owner = self.state.owners.get(&slot);
            let held = self.state.slots.get(&slot);
            if owner.is_none() && held.is_none() && s.packets == 0 {
                continue;
            }
            let verdicts: Vec<String> = (0..VERDICTS)
                .filter(|&v| s.verdicts[v] > 0)
                .map(|v| format!("{} {}", Verdict::Xdp(v as u32), s.verdicts[v]))
                .collect();
            let goes_on = continue_names(self.state.continue_on.get(&slot).copied().unwrap_or(0));
            let _ = writeln!(
                out,
                "{slot:>4}  {:<12} {:<24} {:>8}  {goes_on:<22} {:>9}  {}",
                owner.map_or("-", String::as_str),
                held.map_or("(empty)", |h| h.program.as_str()),
                held.map_or_else(|| "-".to_owned(), |h| h.id.to_string()),
                s.packets,
                verdicts.join(", ")
            );
        }
        Ok(out)
    }
}

/// A continue set's verdicts by name (0: `XDP_PASS`, the default).
pub fn continue_names(mask: u32) -> String {
    if mask == 0 {
        return "XDP_PASS".to_owned();
    }
    (0..VERDICTS as u32)
        .filter(|v| mask & (1 << v) != 0)
        .map(|v| Verdict::Xdp(v).name())
        .collect::<Vec<_>>()
        .join(",")
}

fn pin_program(program: &mut LoadedProgram, path: &Path) -> Result<(), ChainError> {
    program
        .pin(path)
        .map_err(|e| ChainError::Failed(format!("pinning {}: {e}", path.display())))
}
