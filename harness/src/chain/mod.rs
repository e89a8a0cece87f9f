//! The XDP chainer's control plane (semantics: `dsrlab_abi::chain`): a
//! root program and up to 20 slot programs, attached, replaced and
//! detached by slot while the root keeps running.
//!
//! Backend `tail-call` (the rootlet): the root tail-calls the first
//! populated slot of its program array and each slot program goes on to
//! the next (`dsrlab_ebpf::chain::finish`); attaching is one update of the
//! array, which the kernel makes atomically. The maps are pinned by name
//! in a bpffs directory of the chain's own, so that slot programs loaded
//! later share the root's; the directory goes with the chain, and the
//! directories of processes that died are removed by the next chain.

use std::{
    fs, io,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
};

use aya::maps::{Array, MapData, PerCpuArray, ProgramArray};
use dsrlab_abi::chain::{CONTINUE_MAP, PROGS_MAP, SLOT_GLOBAL, SLOTS, STATS_MAP, SlotStats};

use crate::{
    datapath::{self, Object},
    load::{LoadError, LoadOptions, LoadedProgram, ProgramKind},
};

/// Where chains pin their maps: `/sys/fs/bpf/dsrlab-chain-<pid>-<n>`.
const PIN_PREFIX: &str = "dsrlab-chain-";

/// How the root runs the slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A program array and tail calls (the rootlet).
    TailCall,
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
    root: LoadedProgram,
    slots: Vec<Option<LoadedProgram>>,
    pins: PathBuf,
}

impl Chain {
    /// Loads a root of `backend` with every slot empty.
    pub fn new(backend: Backend) -> Result<Self, ChainError> {
        static CHAINS: AtomicU32 = AtomicU32::new(0);
        crate::lb::instance::ensure_bpffs().map_err(|e| ChainError::Io {
            what: "the BPF filesystem".into(),
            source: io::Error::other(e),
        })?;
        reap();
        let pins = Path::new(crate::lb::instance::BPFFS).join(format!(
            "{PIN_PREFIX}{}-{}",
            std::process::id(),
            CHAINS.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&pins).map_err(io_err(format!("creating {}", pins.display())))?;
        let chain = |root| Self {
            root,
            slots: (0..SLOTS).map(|_| None).collect(),
            pins: pins.clone(),
        };
        let options = LoadOptions {
            pin_directory: Some(&pins),
            ..LoadOptions::default()
        };
        let root = match backend {
            Backend::TailCall => LoadedProgram::builtin(datapath::XDP_CHAIN_TAIL, &options),
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

    /// Loads `program` of `object` for `slot`: its slot in `CHAIN_SLOT`,
    /// its chain maps the root's. `globals` are more globals to set.
    pub fn load_slot_builtin(
        &self,
        object: Object,
        slot: u32,
        globals: &[(&str, &[u8])],
    ) -> Result<LoadedProgram, ChainError> {
        check_slot(slot)?;
        let slot_le = slot.to_le_bytes();
        let options = self.slot_options(&slot_le, globals);
        Ok(LoadedProgram::builtin(object, &options)?)
    }

    /// Loads `program` of a user's object at `path` for `slot`, as
    /// [`Chain::load_slot_builtin`] does (C programs include
    /// `datapath/include/dsrlab_chain.h`).
    pub fn load_slot_file(
        &self,
        path: &Path,
        program: &str,
        slot: u32,
        globals: &[(&str, &[u8])],
    ) -> Result<LoadedProgram, ChainError> {
        check_slot(slot)?;
        let slot_le = slot.to_le_bytes();
        let options = self.slot_options(&slot_le, globals);
        Ok(LoadedProgram::from_file(path, program, &options)?)
    }

    fn slot_options<'a>(
        &'a self,
        slot_le: &'a [u8; 4],
        globals: &[(&'a str, &'a [u8])],
    ) -> LoadOptions<'a> {
        let mut all = vec![(SLOT_GLOBAL, slot_le.as_slice())];
        all.extend_from_slice(globals);
        LoadOptions {
            globals: all,
            pin_directory: Some(&self.pins),
            ..LoadOptions::default()
        }
    }

    /// Puts `program` (loaded for `slot`) into `slot`, replacing what was
    /// there in one step: a packet runs either the old program or the new
    /// one. Returns the program it replaced.
    pub fn attach(
        &mut self,
        slot: u32,
        program: LoadedProgram,
    ) -> Result<Option<LoadedProgram>, ChainError> {
        check_slot(slot)?;
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
        })?;
        Ok(self.slots[slot as usize].replace(program))
    }

    /// Empties `slot`; returns the program that was there.
    pub fn detach(&mut self, slot: u32) -> Result<Option<LoadedProgram>, ChainError> {
        check_slot(slot)?;
        if self.slots[slot as usize].is_none() {
            return Ok(None);
        }
        self.progs()?
            .clear_index(&slot)
            .map_err(map_err(format!("emptying slot {slot}")))?;
        Ok(self.slots[slot as usize].take())
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
        let map = self.root.map(STATS_MAP).ok_or_else(|| missing(STATS_MAP))?;
        let array: PerCpuArray<&MapData, SlotStats> =
            PerCpuArray::try_from(map).map_err(map_err(STATS_MAP))?;
        (0..SLOTS)
            .map(|slot| {
                let per_cpu = array
                    .get(&slot, 0)
                    .map_err(map_err(format!("the counters of slot {slot}")))?;
                Ok(per_cpu.iter().fold(SlotStats::default(), |mut sum, s| {
                    sum.packets += s.packets;
                    for (total, n) in sum.verdicts.iter_mut().zip(s.verdicts) {
                        *total += n;
                    }
                    sum
                }))
            })
            .collect()
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
    let Ok(entries) = fs::read_dir(crate::lb::instance::BPFFS) else {
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
