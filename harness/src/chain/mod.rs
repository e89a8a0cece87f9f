//! The XDP chainer's control plane (semantics: `dsrlab_abi::chain`): a
//! root program and up to 20 slot programs, attached, replaced and
//! detached by slot while the root keeps running.
//!
//! Backend `tail-call` (the rootlet): the root tail-calls the first
//! populated slot of its program array and each slot program goes on to
//! the next (`dsrlab_ebpf::chain::Chain::finish`); attaching is one update
//! of the array, which the kernel makes atomically.
//!
//! Backend `ext` (the talk's XDP Chainer, as libxdp's dispatcher): the root
//! calls 20 global slot functions in order; a slot program is loaded as an
//! extension (freplace) of its slot's function and attached by a BPF
//! link; replacing one builds a new root with every slot's program and
//! swaps the roots in one step ([`ext`]).
//!
//! The maps are pinned by name in a bpffs directory of the chain's own, so
//! that slot programs loaded later share the root's; the directory goes
//! with the chain, and the directories of processes that died are removed
//! by the next chain. The same slot program object serves both backends
//! (its `CHAIN_BY_TAIL_CALL` global tells it which).

pub mod ext;
pub mod pinned;

use std::{
    fs, io,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
};

use aya::{
    maps::{Array, MapData, ProgramArray},
    programs::{Program, XdpMode, xdp::XdpLink},
};
use dsrlab_abi::chain::{
    CONTINUE_MAP, PROGS_MAP, SLOT_GLOBAL, SLOTS, STATS_MAP, SlotStats, TAIL_CALL_GLOBAL,
};

use crate::{
    datapath::{self, Object},
    live::netns::Namespace,
    load::{LoadError, LoadOptions, LoadedProgram, Origin, ProgramKind},
};

/// Where chains pin their maps: `/sys/fs/bpf/dsrlab-chain-<pid>-<n>`.
const PIN_PREFIX: &str = "dsrlab-chain-";

/// How the root runs the slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A program array and tail calls (the rootlet).
    TailCall,
    /// Slot functions replaced by EXT programs (needs BPF trampolines).
    Ext,
}

impl Backend {
    /// The name in scenarios and reports: `tail-call`, `ext`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::TailCall => "tail-call",
            Self::Ext => "ext",
        }
    }
}

/// A program loaded for one slot of one chain.
pub enum SlotProgram {
    /// For the tail-call backend: an XDP program for the program array.
    TailCall(LoadedProgram),
    /// For the EXT backend: the extension of the slot's function.
    Ext(ext::ExtProgram),
}

impl SlotProgram {
    /// The program's name.
    pub fn name(&self) -> &str {
        self.loaded().name()
    }

    /// The loaded program (its maps, its counters), under either backend.
    pub const fn loaded(&self) -> &LoadedProgram {
        match self {
            Self::TailCall(p) => p,
            Self::Ext(p) => p.loaded(),
        }
    }

    /// The loaded program, for writing its maps.
    pub fn loaded_mut(&mut self) -> &mut LoadedProgram {
        match self {
            Self::TailCall(p) => p,
            Self::Ext(p) => p.loaded_mut(),
        }
    }

    /// Hands the loaded program, not yet in a slot, to `configure` (a
    /// control plane that takes programs over, such as [`crate::lb::Lb`])
    /// and takes back what it returns, for the same slot and backend.
    pub fn configure<E>(
        self,
        configure: impl FnOnce(LoadedProgram) -> Result<LoadedProgram, E>,
    ) -> Result<Self, E> {
        match self {
            Self::TailCall(p) => configure(p).map(Self::TailCall),
            Self::Ext(p) => {
                configure(p.into_loaded()).map(|p| Self::Ext(ext::ExtProgram::from_loaded(p)))
            }
        }
    }

    /// Its map `name` alone, the program dropped (unloaded once no packet
    /// runs it): what a replaced program leaves for its counters to be
    /// read after its last packet, for one file descriptor.
    pub fn into_map(mut self, name: &str) -> Option<aya::maps::Map> {
        self.loaded_mut().take_map(name)
    }
}

impl std::fmt::Debug for SlotProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match self {
            Self::TailCall(_) => Backend::TailCall,
            Self::Ext(_) => Backend::Ext,
        };
        write!(f, "SlotProgram({} for {})", self.name(), backend.name())
    }
}

impl From<LoadedProgram> for SlotProgram {
    fn from(program: LoadedProgram) -> Self {
        Self::TailCall(program)
    }
}

/// What fills a slot.
struct Occupant {
    program: SlotProgram,
}

/// Why a chain operation was refused or failed; nothing is left attached.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// A slot number past the chain.
    #[error("slot {slot} is out of range: a chain has slots 0 to {}", SLOTS - 1)]
    SlotOutOfRange {
        /// The slot asked for.
        slot: u32,
    },
    /// A slot reserved for another owner.
    #[error("slot {slot} is reserved for `{owner}`")]
    Reserved {
        /// The slot.
        slot: u32,
        /// Who it is reserved for.
        owner: String,
    },
    /// A program that cannot run in a chain.
    #[error("program `{program}` cannot go into a chain: {why}")]
    NotChainable {
        /// The program.
        program: String,
        /// Why.
        why: String,
    },
    /// Loading the root or a slot program failed.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// An operation on the chain failed.
    #[error("chain: {0}")]
    Failed(String),
    /// A pinned chain (`dsrlab chain`) cannot be made or used as asked.
    #[error("chain `{name}`: {what}")]
    Pinned {
        /// The chain's name.
        name: String,
        /// What is wrong.
        what: String,
    },
    /// A map or pin operation failed.
    #[error("chain: {what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why.
        #[source]
        source: io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> ChainError {
    let what = what.into();
    move |source| ChainError::Io { what, source }
}

fn map_err(what: impl Into<String>) -> impl FnOnce(aya::maps::MapError) -> ChainError {
    let what = what.into();
    move |e| ChainError::Io {
        what,
        source: io::Error::other(e),
    }
}

/// A chain: its root, its slot programs, its pinned maps.
pub struct Chain {
    backend: Backend,
    root: LoadedProgram,
    slots: Vec<Option<Occupant>>,
    /// Who each slot is reserved for (a team, a service), if anyone.
    owners: Vec<Option<String>>,
    /// The root's link at a device, if it is attached to one.
    device: Option<XdpLink>,
    pins: PathBuf,
}

impl Chain {
    /// Loads a root of `backend` with every slot empty.
    pub fn new(backend: Backend) -> Result<Self, ChainError> {
        static CHAINS: AtomicU32 = AtomicU32::new(0);
        crate::pins::ensure_bpffs().map_err(|e| ChainError::Io {
            what: "the BPF filesystem".into(),
            source: io::Error::other(e),
        })?;
        reap();
        let pins = Path::new(crate::pins::BPFFS).join(format!(
            "{PIN_PREFIX}{}-{}",
            std::process::id(),
            CHAINS.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&pins).map_err(io_err(format!("creating {}", pins.display())))?;
        let chain = |root| Self {
            backend,
            root,
            slots: (0..SLOTS).map(|_| None).collect(),
            owners: (0..SLOTS).map(|_| None).collect(),
            device: None,
            pins: pins.clone(),
        };
        let options = LoadOptions {
            pin_directory: Some(&pins),
            ..LoadOptions::default()
        };
        let root = match backend {
            Backend::TailCall => LoadedProgram::builtin(datapath::XDP_CHAIN_TAIL, &options),
            Backend::Ext => LoadedProgram::builtin(datapath::XDP_CHAIN_EXT, &options),
        };
        match root {
            Ok(root) => Ok(chain(root)),
            Err(e) => {
                let _ = fs::remove_dir_all(&pins);
                Err(e.into())
            }
        }
    }

    /// The root: what is test-run or attached to a device.
    pub const fn root(&self) -> &LoadedProgram {
        &self.root
    }

    /// The root, for attaching it.
    pub fn root_mut(&mut self) -> &mut LoadedProgram {
        &mut self.root
    }

    /// Attaches the root to interface `ifindex` of the namespace `ns` by a
    /// BPF link the chain keeps, so that a new root (the ext backend's
    /// replacement) takes its place at the device in one step.
    pub fn attach_root(
        &mut self,
        ns: &Namespace,
        ifindex: u32,
        mode: XdpMode,
    ) -> Result<(), ChainError> {
        let Program::Xdp(xdp) = self.root.program_mut() else {
            unreachable!("the root is an XDP program");
        };
        let link = ns
            .run(|| {
                let id = xdp.attach(ifindex, mode)?;
                xdp.take_link(id)
            })
            .map_err(io_err("entering the device's namespace"))?
            .map_err(|e| {
                ChainError::Failed(format!("attaching the root to ifindex {ifindex}: {e}"))
            })?;
        self.device = Some(link);
        Ok(())
    }

    /// The backend.
    pub const fn backend(&self) -> Backend {
        self.backend
    }

    /// Loads `program` of `object` for `slot`: its slot in `CHAIN_SLOT`,
    /// its chain maps the root's; `options` say what else to set (globals,
    /// map sizes).
    pub fn load_slot_builtin(
        &self,
        object: Object,
        slot: u32,
        options: &LoadOptions<'_>,
    ) -> Result<SlotProgram, ChainError> {
        self.load_slot(SlotSource::Builtin(object), slot, options)
    }

    /// Loads `program` of a user's object at `path` for `slot`, as
    /// [`Chain::load_slot_builtin`] does (C programs include
    /// `datapath/include/dsrlab_chain.h` for the tail-call backend; the EXT
    /// backend takes any XDP program).
    pub fn load_slot_file(
        &self,
        path: &Path,
        program: &str,
        slot: u32,
        options: &LoadOptions<'_>,
    ) -> Result<SlotProgram, ChainError> {
        self.load_slot(SlotSource::File { path, program }, slot, options)
    }

    fn load_slot(
        &self,
        source: SlotSource<'_>,
        slot: u32,
        options: &LoadOptions<'_>,
    ) -> Result<SlotProgram, ChainError> {
        let root = match self.backend {
            Backend::Ext => Some(ext::root_fd(&self.root)?),
            Backend::TailCall => None,
        };
        let target = SlotTarget {
            backend: self.backend,
            pins: &self.pins,
            root: root.as_ref(),
        };
        load_slot(&target, source, slot, options)
    }

    /// Reserves `slot` for `owner` (the talk's "team → slot"): from then on
    /// only [`Chain::attach_as`] by that owner fills or empties it.
    pub fn reserve(&mut self, slot: u32, owner: &str) -> Result<(), ChainError> {
        check_slot(slot)?;
        match &self.owners[slot as usize] {
            Some(other) if other != owner => Err(ChainError::Reserved {
                slot,
                owner: other.clone(),
            }),
            _ => {
                self.owners[slot as usize] = Some(owner.to_owned());
                Ok(())
            }
        }
    }

    /// Who `slot` is reserved for.
    pub fn owner(&self, slot: u32) -> Option<&str> {
        self.owners.get(slot as usize)?.as_deref()
    }

    /// [`Chain::attach`] on behalf of `owner`: refused, with the chain left
    /// as it was, when the slot is reserved for someone else.
    pub fn attach_as(
        &mut self,
        owner: &str,
        slot: u32,
        program: impl Into<SlotProgram>,
    ) -> Result<Option<SlotProgram>, ChainError> {
        self.check_owner(Some(owner), slot)?;
        self.attach_unchecked(slot, program)
    }

    /// [`Chain::detach`] on behalf of `owner`, as [`Chain::attach_as`].
    pub fn detach_as(&mut self, owner: &str, slot: u32) -> Result<Option<SlotProgram>, ChainError> {
        self.check_owner(Some(owner), slot)?;
        self.detach_unchecked(slot)
    }

    fn check_owner(&self, who: Option<&str>, slot: u32) -> Result<(), ChainError> {
        check_slot(slot)?;
        match (&self.owners[slot as usize], who) {
            (Some(owner), Some(who)) if owner == who => Ok(()),
            (Some(owner), _) => Err(ChainError::Reserved {
                slot,
                owner: owner.clone(),
            }),
            (None, _) => Ok(()),
        }
    }

    /// Puts `program` (loaded for `slot`) into `slot`, replacing what was
    /// there in one step: a packet runs either the old program or the new
    /// one. Returns the program it replaced. Refused for a reserved slot
    /// (see [`Chain::attach_as`]).
    pub fn attach(
        &mut self,
        slot: u32,
        program: impl Into<SlotProgram>,
    ) -> Result<Option<SlotProgram>, ChainError> {
        self.check_owner(None, slot)?;
        self.attach_unchecked(slot, program)
    }

    /// Puts `program` (loaded for `slot`) into `slot`, replacing what was
    /// there.
    fn attach_unchecked(
        &mut self,
        slot: u32,
        program: impl Into<SlotProgram>,
    ) -> Result<Option<SlotProgram>, ChainError> {
        let mut program = program.into();
        match (&mut program, self.backend) {
            (SlotProgram::TailCall(p), Backend::TailCall) => self.set_prog_array(slot, p)?,
            (SlotProgram::Ext(p), Backend::Ext) => {
                if self.slots[slot as usize].is_some() {
                    self.swap_root(slot, p)?;
                } else {
                    p.attach_to(&self.root, slot)?;
                }
            }
            (p, backend) => {
                return Err(ChainError::NotChainable {
                    program: p.name().to_owned(),
                    why: format!(
                        "it was loaded for another backend than this chain's ({})",
                        backend.name()
                    ),
                });
            }
        }
        let old = self.slots[slot as usize].replace(Occupant { program });
        Ok(old.map(|o| o.program))
    }

    /// The EXT backend's replacement of `slot` by `new`: a new root (the
    /// same maps, pinned) with every other slot's program and `new`
    /// attached, then the roots swapped, then the old root's links gone.
    /// Where the root runs (a test run, a device) it is one step: the old
    /// root with the old program, or the new with the new.
    fn swap_root(&mut self, slot: u32, new: &mut ext::ExtProgram) -> Result<(), ChainError> {
        let options = LoadOptions {
            pin_directory: Some(&self.pins),
            ..LoadOptions::default()
        };
        let root = LoadedProgram::builtin(datapath::XDP_CHAIN_EXT, &options)?;
        let mut moved = Vec::new();
        let mut attach_all = || -> Result<(), ChainError> {
            for (s, occupant) in self.slots.iter_mut().enumerate() {
                if let Some(Occupant {
                    program: SlotProgram::Ext(p),
                }) = occupant
                    && s as u32 != slot
                {
                    let old = p.attach_to(&root, s as u32)?;
                    moved.push((s, old));
                }
            }
            new.attach_to(&root, slot).map(drop)
        };
        let attached = attach_all();
        let mut root = root;
        let result = attached.and_then(|()| match self.device.take() {
            // The device runs the new root from the next packet on.
            Some(link) => {
                let Program::Xdp(xdp) = root.program_mut() else {
                    unreachable!("the root is an XDP program");
                };
                let link = xdp
                    .attach_to_link(link)
                    .and_then(|id| xdp.take_link(id))
                    .map_err(|e| {
                        ChainError::Failed(format!("swapping the root at the device: {e}"))
                    })?;
                self.device = Some(link);
                Ok(())
            }
            None => Ok(()),
        });
        if let Err(e) = result {
            // Back as it was: the new root's links go, the old ones stay.
            for (s, old) in moved {
                if let Some(Occupant {
                    program: SlotProgram::Ext(p),
                }) = self.slots[s].as_mut()
                {
                    let _ = p.detach();
                    p.restore_link(old);
                }
            }
            return Err(e);
        }
        let _old_root = std::mem::replace(&mut self.root, root);
        for (s, old) in moved {
            if let (
                Some(Occupant {
                    program: SlotProgram::Ext(p),
                }),
                Some(old),
            ) = (self.slots[s].as_mut(), old)
            {
                p.detach_link(old)?;
            }
        }
        Ok(())
    }

    fn set_prog_array(&mut self, slot: u32, program: &LoadedProgram) -> Result<(), ChainError> {
        if program.kind() != ProgramKind::Xdp {
            return Err(ChainError::NotChainable {
                program: program.name().to_owned(),
                why: format!(
                    "it is a {} program; a chain holds XDP programs",
                    program.kind().name()
                ),
            });
        }
        let fd = program
            .program()
            .fd()
            .map_err(|e| ChainError::Io {
                what: format!("the fd of `{}`", program.name()),
                source: io::Error::other(e),
            })?
            .try_clone()
            .map_err(io_err("duplicating a program fd"))?;
        let mut progs = self.progs()?;
        progs.set(slot, &fd, 0).map_err(|e| {
            // The kernel refuses a program whose type, JIT or frags flag
            // differ from the root's.
            ChainError::NotChainable {
                program: program.name().to_owned(),
                why: format!("the root's program array refused it ({e}): it must be an XDP program without frags, like the root"),
            }
        })
    }

    /// The program in `slot`, if any.
    pub fn slot_program(&self, slot: u32) -> Option<&SlotProgram> {
        self.slots
            .get(slot as usize)
            .and_then(Option::as_ref)
            .map(|o| &o.program)
    }

    /// Empties `slot`; returns the program that was there. Refused for a
    /// reserved slot (see [`Chain::detach_as`]).
    pub fn detach(&mut self, slot: u32) -> Result<Option<SlotProgram>, ChainError> {
        self.check_owner(None, slot)?;
        self.detach_unchecked(slot)
    }

    fn detach_unchecked(&mut self, slot: u32) -> Result<Option<SlotProgram>, ChainError> {
        let Some(mut occupant) = self.slots[slot as usize].take() else {
            return Ok(None);
        };
        match &mut occupant.program {
            SlotProgram::Ext(p) => p.detach()?,
            SlotProgram::TailCall(_) => self
                .progs()?
                .clear_index(&slot)
                .map_err(map_err(format!("emptying slot {slot}")))?,
        }
        Ok(Some(occupant.program))
    }

    /// Sets which verdicts of `slot` go on to the next slot (bit `v` for
    /// verdict `v`; 0: the default, `XDP_PASS` only).
    pub fn set_continue(&mut self, slot: u32, verdicts: u32) -> Result<(), ChainError> {
        check_slot(slot)?;
        let map = self
            .root
            .map_mut(CONTINUE_MAP)
            .ok_or_else(|| missing(CONTINUE_MAP))?;
        let mut array: Array<&mut MapData, u32> =
            Array::try_from(map).map_err(map_err(CONTINUE_MAP))?;
        array
            .set(slot, &verdicts, 0)
            .map_err(map_err(format!("the continue set of slot {slot}")))
    }

    /// Every slot's counters, summed over CPUs.
    pub fn stats(&self) -> Result<Vec<SlotStats>, ChainError> {
        let Some(aya::maps::Map::PerCpuArray(map)) = self.root.map(STATS_MAP) else {
            return Err(missing(STATS_MAP));
        };
        stats_of(map)
    }

    /// The chain's pin directory (for a slot program loaded elsewhere).
    pub fn pin_directory(&self) -> &Path {
        &self.pins
    }

    fn progs(&mut self) -> Result<ProgramArray<&mut MapData>, ChainError> {
        let map = self
            .root
            .map_mut(PROGS_MAP)
            .ok_or_else(|| missing(PROGS_MAP))?;
        ProgramArray::try_from(map).map_err(map_err(PROGS_MAP))
    }
}

impl Drop for Chain {
    fn drop(&mut self) {
        // The pins hold the maps (and the program array its programs):
        // remove them with the directory.
        let _ = fs::remove_dir_all(&self.pins);
    }
}

/// `CHAIN_STATS` summed over CPUs, in one batched lookup (the scenario
/// runner reads it around every packet).
fn stats_of(map: &MapData) -> Result<Vec<SlotStats>, ChainError> {
    const WORDS: usize = 1 + dsrlab_abi::chain::VERDICTS;
    let words = crate::maps::sum_per_cpu_words(std::os::fd::AsFd::as_fd(map.fd()), SLOTS, WORDS)
        .map_err(io_err(format!("reading {STATS_MAP}")))?;
    Ok(words
        .chunks(WORDS)
        .map(|w| {
            let mut slot = SlotStats {
                packets: w[0],
                ..SlotStats::default()
            };
            slot.verdicts.copy_from_slice(&w[1..]);
            slot
        })
        .collect())
}

/// What a slot program is loaded from.
#[derive(Clone, Copy, Debug)]
pub enum SlotSource<'a> {
    /// One of dsrlab's objects.
    Builtin(Object),
    /// A program of a user's object file.
    File {
        /// The object.
        path: &'a Path,
        /// The program in it.
        program: &'a str,
    },
}

/// The chain a slot program is loaded for: its backend, the directory of
/// its pinned maps, and (for `ext`) its root, whose slot function the
/// program extends.
pub(crate) struct SlotTarget<'a> {
    pub backend: Backend,
    pub pins: &'a Path,
    pub root: Option<&'a aya::programs::ProgramFd>,
}

/// Loads the program of `source` for `slot` of `target`: the chain's
/// globals set (required under tail-call, where the program goes on by
/// itself; where the object has them under ext, where any XDP program
/// will do), its maps the chain's.
pub(crate) fn load_slot(
    target: &SlotTarget<'_>,
    source: SlotSource<'_>,
    slot: u32,
    options: &LoadOptions<'_>,
) -> Result<SlotProgram, ChainError> {
    check_slot(slot)?;
    let slot_le = slot.to_le_bytes();
    let by_tail_call = u32::from(target.backend == Backend::TailCall).to_le_bytes();
    let chain_globals = vec![
        (SLOT_GLOBAL, slot_le.as_slice()),
        (TAIL_CALL_GLOBAL, by_tail_call.as_slice()),
    ];
    let (mut required, mut optional) = match target.backend {
        Backend::TailCall => (chain_globals, Vec::new()),
        Backend::Ext => (Vec::new(), chain_globals),
    };
    required.extend_from_slice(&options.globals);
    optional.extend_from_slice(&options.optional_globals);
    let options = LoadOptions {
        globals: required,
        optional_globals: optional,
        max_entries: options.max_entries.clone(),
        pin_directory: Some(target.pins),
    };
    let program = match source {
        SlotSource::Builtin(object) => object.program,
        SlotSource::File { program, .. } => program,
    };
    match (target.backend, target.root) {
        (Backend::TailCall, _) => {
            let loaded = match source {
                SlotSource::Builtin(object) => LoadedProgram::builtin(object, &options),
                SlotSource::File { path, program } => {
                    LoadedProgram::from_file(path, program, &options)
                }
            };
            loaded.map(SlotProgram::TailCall).map_err(|e| match e {
                // aya names whichever missing global it tried first.
                LoadError::Object { ref source, .. }
                    if [SLOT_GLOBAL, TAIL_CALL_GLOBAL]
                        .iter()
                        .any(|g| source.to_string().contains(g)) =>
                {
                    ChainError::NotChainable {
                        program: program.to_owned(),
                        why: format!(
                            "it has no {SLOT_GLOBAL} global: a tail-call slot program goes on to the next slot by itself (dsrlab_chain.h, dsrlab_ebpf::chain_maps!); the ext backend takes any XDP program"
                        ),
                    }
                }
                e => e.into(),
            })
        }
        (Backend::Ext, root) => {
            let root =
                root.ok_or_else(|| ChainError::Failed("an ext slot needs its root".into()))?;
            let (name, origin, elf) = match source {
                SlotSource::Builtin(object) if object.elf.is_empty() => {
                    return Err(LoadError::NotBuilt {
                        object: object.program.to_owned(),
                    }
                    .into());
                }
                SlotSource::Builtin(object) => (
                    object.program.to_owned(),
                    Origin::Builtin,
                    object.elf.to_vec(),
                ),
                SlotSource::File { path, .. } => {
                    let name = path.display().to_string();
                    let elf = fs::read(path).map_err(|source| LoadError::Read {
                        object: name.clone(),
                        source,
                    })?;
                    (name, Origin::File(path.to_owned()), elf)
                }
            };
            Ok(SlotProgram::Ext(ext::ExtProgram::load(
                (&name, origin),
                &elf,
                program,
                &options,
                root,
                slot,
            )?))
        }
    }
}

fn check_slot(slot: u32) -> Result<(), ChainError> {
    if slot < SLOTS {
        Ok(())
    } else {
        Err(ChainError::SlotOutOfRange { slot })
    }
}

fn missing(map: &str) -> ChainError {
    ChainError::Io {
        what: format!("the root has no map {map}"),
        source: io::Error::from(io::ErrorKind::NotFound),
    }
}

/// Removes the pin directories of chains whose process is gone (a chain
/// killed with SIGKILL cannot remove its own).
fn reap() {
    let Ok(entries) = fs::read_dir(crate::pins::BPFFS) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(PIN_PREFIX)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new("/proc").join(pid.to_string()).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}
