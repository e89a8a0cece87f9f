//! Loading BPF programs into the kernel: the repo's own objects and users'
//! ELF files, through aya.
//!
//! A [`LoadedProgram`] owns the aya [`Ebpf`] instance, so the program and its
//! maps live exactly as long as it does, unless the caller pins them
//! ([`LoadedProgram::pin`], `Map::pin`), as `lb::instance` does.

use std::{
    os::fd::{AsFd as _, BorrowedFd},
    path::{Path, PathBuf},
};

use aya::{
    Ebpf, EbpfLoader,
    maps::PerCpuArray,
    programs::{Program, ProgramError},
};

use crate::datapath::Object;

pub mod sections;

/// The program types the test-run engine can drive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgramKind {
    /// `BPF_PROG_TYPE_XDP`.
    Xdp,
    /// `BPF_PROG_TYPE_SCHED_CLS` (TC classifier).
    SchedCls,
}

impl ProgramKind {
    /// Lower-case name used in reports.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Xdp => "xdp",
            Self::SchedCls => "sched_cls",
        }
    }
}

/// Where a program came from, for error messages and reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// One of the objects built from `datapath/ebpf`.
    Builtin,
    /// A user's ELF object.
    File(PathBuf),
}

/// What can go wrong while loading; every variant names the object and
/// program.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The process may not load BPF programs.
    #[error(transparent)]
    Capabilities(#[from] crate::kernel::MissingCapabilities),
    /// The embedded object is empty because the BPF build was skipped.
    #[error(
        "object {object} was not built (AYA_BUILD_SKIP is set?): rebuild without it to run built-in programs"
    )]
    NotBuilt {
        /// Object name.
        object: String,
    },
    /// The object file could not be read.
    #[error("cannot read object {object}: {source}")]
    Read {
        /// The path.
        object: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// libbpf's TC section names could not be rewritten for aya.
    #[error("object {object}: {reason}")]
    Sections {
        /// The path.
        object: String,
        /// What in the object stopped the rewrite.
        reason: String,
    },
    /// aya could not parse or prepare the ELF object.
    #[error("cannot load object {object}: {source}")]
    Object {
        /// Object name or path.
        object: String,
        /// aya's error (boxed: it is large and errors are rare).
        #[source]
        source: Box<aya::EbpfError>,
    },
    /// The object has no program of that name.
    #[error("object {object} has no program named `{program}` (it has: {available})")]
    NoSuchProgram {
        /// Object name or path.
        object: String,
        /// The requested program.
        program: String,
        /// Comma-separated names of the programs it does have.
        available: String,
    },
    /// The program's type is not one the test-run engine drives.
    #[error(
        "program `{program}` in {object} is a {kind} program; only XDP and sched_cls (TC) programs can be test-run"
    )]
    UnsupportedType {
        /// Object name or path.
        object: String,
        /// The program.
        program: String,
        /// Its type as aya reports it.
        kind: String,
    },
    /// The kernel refused the program; the verifier log says why.
    #[error("the kernel refused program `{program}` from {object}: {source}")]
    Verifier {
        /// Object name or path.
        object: String,
        /// The program.
        program: String,
        /// aya's error, which carries the verifier log.
        #[source]
        source: Box<ProgramError>,
    },
}

/// Options applied before loading.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions<'a> {
    /// Read-only globals to override (`volatile const` in C, `static` read
    /// with `read_volatile` in Rust), as name → bytes in target byte order.
    pub globals: Vec<(&'a str, &'a [u8])>,
    /// Read-only globals to set where the object has them (the chain's,
    /// which a program need not know of under the EXT backend).
    pub optional_globals: Vec<(&'a str, &'a [u8])>,
    /// Maps whose `max_entries` differ from the object's, as name → entries
    /// (`LB_RING` sized for a non-default ring, for instance).
    pub max_entries: Vec<(&'a str, u32)>,
    /// Where maps pinned by name are found (and pinned when absent): a
    /// bpffs directory that programs sharing maps share, such as a chain's
    /// root and its slot programs.
    pub pin_directory: Option<&'a Path>,
}

/// A program loaded into the kernel, ready to be test-run or attached.
pub struct LoadedProgram {
    ebpf: Ebpf,
    object: String,
    program: String,
    kind: ProgramKind,
    origin: Origin,
    /// Counter maps' sizes as read once: the oracles read counters around
    /// packets, and asking the kernel each time costs a syscall.
    counter_entries: Box<std::sync::Mutex<Vec<(String, u32)>>>,
}

impl std::fmt::Debug for LoadedProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedProgram")
            .field("object", &self.object)
            .field("program", &self.program)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl LoadedProgram {
    /// Loads one of the repo's own programs.
    pub fn builtin(object: Object, options: &LoadOptions<'_>) -> Result<Self, LoadError> {
        crate::kernel::check_bpf_capabilities()?;
        if object.elf.is_empty() {
            return Err(LoadError::NotBuilt {
                object: object.program.to_owned(),
            });
        }
        let ebpf = loader(options)
            .load(object.elf)
            .map_err(|source| LoadError::Object {
                object: object.program.to_owned(),
                source: Box::new(source),
            })?;
        Self::finish(ebpf, object.program, object.program, Origin::Builtin)
    }

    /// Loads program `program` from a user's ELF object at `path`.
    pub fn from_file(
        path: &Path,
        program: &str,
        options: &LoadOptions<'_>,
    ) -> Result<Self, LoadError> {
        crate::kernel::check_bpf_capabilities()?;
        let object = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| LoadError::Read {
            object: object.clone(),
            source: e,
        })?;
        let elf = sections::for_aya(&bytes).map_err(|reason| LoadError::Sections {
            object: object.clone(),
            reason,
        })?;
        let ebpf = loader(options)
            .load(&elf)
            .map_err(|source| LoadError::Object {
                object: object.clone(),
                source: Box::new(source),
            })?;
        Self::finish(ebpf, &object, program, Origin::File(path.to_owned()))
    }

    /// Loads program `program` of the ELF `elf` (named `object`, from
    /// `origin`) as an extension (freplace) of the global function
    /// `function` of `target`, an XDP program: where it is attached, it
    /// runs in that function's place with the XDP context (`chain::ext`),
    /// so it is of kind XDP here. It is not attached yet.
    pub fn extension(
        elf: &[u8],
        object: &str,
        origin: Origin,
        program: &str,
        options: &LoadOptions<'_>,
        target: aya::programs::ProgramFd,
        function: &str,
    ) -> Result<Self, LoadError> {
        let elf = sections::for_aya(elf).map_err(|reason| LoadError::Sections {
            object: object.to_owned(),
            reason,
        })?;
        let mut ebpf = loader(options)
            .extension(program)
            .load(&elf)
            .map_err(|source| LoadError::Object {
                object: object.to_owned(),
                source: Box::new(source),
            })?;
        let available = ebpf
            .programs()
            .map(|(name, _)| name.to_owned())
            .collect::<Vec<_>>()
            .join(", ");
        let Some(Program::Extension(ext)) = ebpf.program_mut(program) else {
            return Err(LoadError::NoSuchProgram {
                object: object.to_owned(),
                program: program.to_owned(),
                available,
            });
        };
        ext.load(target, function)
            .map_err(|source| LoadError::Verifier {
                object: object.to_owned(),
                program: program.to_owned(),
                source: Box::new(source),
            })?;
        Ok(Self {
            ebpf,
            object: object.to_owned(),
            program: program.to_owned(),
            kind: ProgramKind::Xdp,
            origin,
            counter_entries: Box::default(),
        })
    }

    fn finish(
        mut ebpf: Ebpf,
        object: &str,
        program: &str,
        origin: Origin,
    ) -> Result<Self, LoadError> {
        let available = ebpf
            .programs()
            .map(|(name, _)| name.to_owned())
            .collect::<Vec<_>>()
            .join(", ");
        let Some(prog) = ebpf.program_mut(program) else {
            return Err(LoadError::NoSuchProgram {
                object: object.to_owned(),
                program: program.to_owned(),
                available,
            });
        };
        let verifier = |source| LoadError::Verifier {
            object: object.to_owned(),
            program: program.to_owned(),
            source: Box::new(source),
        };
        let kind = match prog {
            Program::Xdp(xdp) => {
                xdp.load().map_err(verifier)?;
                ProgramKind::Xdp
            }
            Program::SchedClassifier(cls) => {
                cls.load().map_err(verifier)?;
                ProgramKind::SchedCls
            }
            other => {
                return Err(LoadError::UnsupportedType {
                    object: object.to_owned(),
                    program: program.to_owned(),
                    kind: format!("{:?}", other.prog_type()),
                });
            }
        };
        Ok(Self {
            ebpf,
            object: object.to_owned(),
            program: program.to_owned(),
            kind,
            origin,
            counter_entries: Box::default(),
        })
    }

    /// The program's file descriptor, valid while `self` lives.
    pub fn fd(&self) -> BorrowedFd<'_> {
        let prog = self
            .ebpf
            .program(&self.program)
            .expect("program existed at load time");
        prog.fd().expect("program was loaded in finish()").as_fd()
    }

    /// Takes map `name` out of the object: it outlives the program (a
    /// replaced program's counters, read after its last packet).
    pub fn take_map(&mut self, name: &str) -> Option<aya::maps::Map> {
        self.ebpf.take_map(name)
    }

    /// The aya program (its fd for a program array: the chainer).
    pub fn program(&self) -> &Program {
        self.ebpf
            .program(&self.program)
            .expect("program existed at load time")
    }

    /// The aya program, for attaching it (`live::attach`).
    pub fn program_mut(&mut self) -> &mut Program {
        self.ebpf
            .program_mut(&self.program)
            .expect("program existed at load time")
    }

    /// XDP or sched_cls.
    pub const fn kind(&self) -> ProgramKind {
        self.kind
    }

    /// The program's name.
    pub fn name(&self) -> &str {
        &self.program
    }

    /// The object's name (built-in) or path (user file).
    pub fn object(&self) -> &str {
        &self.object
    }

    /// Where the program came from.
    pub const fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Number of BPF instructions after the kernel's rewrites (what the
    /// verifier accepted), if the kernel reports it.
    pub fn instructions(&self) -> Option<u32> {
        let prog = self.ebpf.program(&self.program)?;
        let info = prog.info().ok()?;
        info.size_translated()
            .map(|bytes| bytes / size_of::<u64>() as u32)
    }

    /// The kernel ids of the maps the program uses.
    pub fn map_ids(&self) -> Vec<u32> {
        self.ebpf
            .program(&self.program)
            .and_then(|p| p.info().ok())
            .and_then(|info| info.map_ids().ok().flatten())
            .unwrap_or_default()
    }

    /// The file descriptor of another program of the same object, loaded
    /// first if it is not (the target of a tail call through a program
    /// array). It must be of the same type as this program.
    pub fn sibling_fd(&mut self, name: &str) -> Result<BorrowedFd<'_>, LoadError> {
        let object = self.object.clone();
        let available = self
            .ebpf
            .programs()
            .map(|(name, _)| name.to_owned())
            .collect::<Vec<_>>()
            .join(", ");
        let kind = self.kind;
        let Some(prog) = self.ebpf.program_mut(name) else {
            return Err(LoadError::NoSuchProgram {
                object,
                program: name.to_owned(),
                available,
            });
        };
        let verifier = |source| LoadError::Verifier {
            object: object.clone(),
            program: name.to_owned(),
            source: Box::new(source),
        };
        let loaded = prog.fd().is_ok();
        match (prog, kind) {
            (Program::Xdp(p), ProgramKind::Xdp) if !loaded => p.load().map_err(verifier)?,
            (Program::SchedClassifier(p), ProgramKind::SchedCls) if !loaded => {
                p.load().map_err(verifier)?;
            }
            (Program::Xdp(_), ProgramKind::Xdp)
            | (Program::SchedClassifier(_), ProgramKind::SchedCls) => {}
            (other, _) => {
                return Err(LoadError::UnsupportedType {
                    object,
                    program: name.to_owned(),
                    kind: format!(
                        "{:?} program, not a {} one like the program under test,",
                        other.prog_type(),
                        kind.name()
                    ),
                });
            }
        }
        let prog = self.ebpf.program(name).expect("found above");
        Ok(prog.fd().expect("loaded above").as_fd())
    }

    /// Pins the program at `path` on a BPF filesystem: it stays loaded after
    /// `self` is dropped until the pin is removed (`dsrlab lb load`).
    pub fn pin(&mut self, path: &Path) -> Result<(), aya::pin::PinError> {
        let program = self.program.clone();
        let prog = self
            .ebpf
            .program_mut(&program)
            .expect("program existed at load time");
        prog.pin(path)
    }

    /// One of the object's maps by name, for callers that know its type and
    /// provision it through aya (a user object's own maps, for instance).
    pub fn map_mut(&mut self, name: &str) -> Option<&mut aya::maps::Map> {
        self.ebpf.map_mut(name)
    }

    /// The names of the object's maps (global data sections included).
    pub fn map_names(&self) -> Vec<String> {
        self.ebpf.maps().map(|(name, _)| name.to_owned()).collect()
    }

    /// One of the object's maps by name, for reading it through aya's typed
    /// maps without `&mut` (statistics, counters).
    pub fn map(&self, name: &str) -> Option<&aya::maps::Map> {
        self.ebpf.map(name)
    }

    /// Sums a per-CPU array of `u64` counters over all possible CPUs, index by
    /// index: counters are per-CPU so that the program never contends, and
    /// only the totals are meaningful to a test.
    pub fn per_cpu_counters(&self, map: &str) -> Result<Vec<u64>, CounterError> {
        self.per_cpu_counters_on(map, None)
    }

    /// [`per_cpu_counters`](Self::per_cpu_counters) of CPU `only` alone,
    /// when given: what one worker's CPU counted.
    pub fn per_cpu_counters_on(
        &self,
        map: &str,
        only: Option<usize>,
    ) -> Result<Vec<u64>, CounterError> {
        let data = self.counter_map(map)?;
        let entries = self.counter_entries(map, data)?;
        // One batched syscall for the whole map: the oracles read the
        // counters around every packet, and a lookup per entry would make
        // the harness syscall-bound on counters, not on test runs.
        crate::maps::sum_per_cpu_words_on(data.fd().as_fd(), entries, 1, only).map_err(|source| {
            CounterError::Batch {
                map: map.to_owned(),
                source,
            }
        })
    }

    /// Counter map `map`: a per-CPU array, or why it is not one.
    fn counter_map(&self, map: &str) -> Result<&aya::maps::MapData, CounterError> {
        match self.ebpf.map(map) {
            Some(aya::maps::Map::PerCpuArray(data)) => Ok(data),
            Some(_) => Err(CounterError::NotPerCpuArray(map.to_owned())),
            None => Err(CounterError::NoSuchMap(map.to_owned())),
        }
    }

    /// The size of counter map `map` (`data`), asked of the kernel once.
    fn counter_entries(&self, map: &str, data: &aya::maps::MapData) -> Result<u32, CounterError> {
        let mut known = self
            .counter_entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, n)) = known.iter().find(|(name, _)| name == map) {
            return Ok(*n);
        }
        let n = data
            .info()
            .map_err(|source| CounterError::Map {
                map: map.to_owned(),
                source: Box::new(source),
            })?
            .max_entries();
        known.push((map.to_owned(), n));
        Ok(n)
    }

    /// Zeroes a per-CPU array of `u64` counters on every CPU.
    pub fn reset_per_cpu_counters(&mut self, map: &str) -> Result<(), CounterError> {
        let cpus = aya::util::nr_cpus().map_err(|(_, e)| CounterError::Cpus(e))?;
        let raw = self
            .ebpf
            .map_mut(map)
            .ok_or_else(|| CounterError::NoSuchMap(map.to_owned()))?;
        let mut array =
            PerCpuArray::<_, u64>::try_from(raw).map_err(|source| CounterError::Map {
                map: map.to_owned(),
                source: Box::new(source),
            })?;
        for i in 0..array.len() {
            let zeroes = aya::maps::PerCpuValues::try_from(vec![0u64; cpus.get() as usize])
                .expect("nr_cpus matches PerCpuValues' expectation");
            array
                .set(i, zeroes, 0)
                .map_err(|source| CounterError::Map {
                    map: map.to_owned(),
                    source: Box::new(source),
                })?;
        }
        Ok(())
    }
}

/// Errors reading a program's counters.
#[derive(Debug, thiserror::Error)]
pub enum CounterError {
    /// The object has no such map.
    #[error("the program's object has no map named {0}")]
    NoSuchMap(String),
    /// The map exists but is not a per-CPU array of u64, or a syscall failed.
    #[error("map {map}: {source}")]
    Map {
        /// The map.
        map: String,
        /// aya's error (boxed: it is large and errors are rare).
        #[source]
        source: Box<aya::maps::MapError>,
    },
    /// The map exists but is not a per-CPU array.
    #[error("map {0} is not a per-CPU array")]
    NotPerCpuArray(String),
    /// The batched lookup failed.
    #[error("map {map}: batched lookup failed: {source}")]
    Batch {
        /// The map.
        map: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The number of possible CPUs could not be read.
    #[error("cannot read the number of possible CPUs: {0}")]
    Cpus(#[source] std::io::Error),
}

pub(crate) fn loader<'a>(options: &LoadOptions<'a>) -> EbpfLoader<'a> {
    let mut loader = EbpfLoader::new();
    for &(name, bytes) in &options.globals {
        loader.override_global(name, bytes, true);
    }
    for &(name, bytes) in &options.optional_globals {
        loader.override_global(name, bytes, false);
    }
    for &(name, entries) in &options.max_entries {
        loader.map_max_entries(name, entries);
    }
    if let Some(dir) = options.pin_directory {
        loader.default_map_pin_directory(dir);
    }
    loader
}
