//! Reading a scenario file: parse, check, resolve and expand it into
//! [`LoadedScenario`], which the runner executes without re-checking.
//!
//! Everything that can be known without the kernel is checked here, so that
//! `dsrlab check` finds it in milliseconds: the format (through the model's
//! serde types), the cross-field rules the types cannot express, and every
//! file a scenario names (objects parsed with aya-obj, fixtures rebuilt and
//! compared with their pcaps, pcaps read). Every error names the scenario
//! file and, when the YAML has one, the `line:column` of the key or value at
//! fault, and says what was expected.
//!
//! Locations come from a second reading of the same text into a tree of
//! located nodes ([`tree`]): the model types stay free of `Spanned`, so the
//! JSON Schema derived from them is the format as authors write it.

mod chain;
mod expect;
mod fields;
mod lb;
mod live;
mod messages;
mod objects;
mod programs;
mod topology;
mod traffic;
mod tree;
mod values;

use std::{
    collections::HashMap,
    fmt,
    net::IpAddr,
    path::{Component, Path, PathBuf},
    sync::Arc,
};

use dsrlab_abi::{decap::Counter, lb::Counter as LbCounter};

pub use self::live::{CaptureSetup, ClientGroup, LB_CHOICE, LiveSetup};

use self::{
    messages::{bare_message, serde_message},
    objects::{Hook, ObjectInfo},
    tree::{Node, Pos, YPath},
};
use super::model::{
    Builtin, ChainBackend, Contract, Expect, Mode, QuirksSpec, Scenario, Stream, VERSION, Value,
};
use crate::{
    formats::{
        fixture::{Expectation, Quirks},
        typed::{self, ObjectTypes, TypeRef},
    },
    lb::{LbSettings, Vip, VipSpec, control::Plane},
};

/// A scenario read, checked and expanded.
#[derive(Clone, Debug)]
pub struct LoadedScenario {
    /// The file it came from.
    pub path: PathBuf,
    /// `name:` or the file stem.
    pub name: String,
    /// The file's content as parsed.
    pub spec: Scenario,
    /// Programs to run, in file order.
    pub programs: Vec<ResolvedProgram>,
    /// Modes to run in.
    pub modes: Vec<Mode>,
    /// Every packet of every stream, in order (a replay read from its pcap
    /// as it goes).
    pub packets: super::traffic::Traffic,
    /// Decap contract counters expected after the run.
    pub after_counters: Vec<(Counter, u64)>,
    /// Lb contract counters expected after the run.
    pub after_lb_counters: Vec<(LbCounter, u64)>,
    /// Load balancer changes, each applied before a stream's first packet,
    /// in traffic order.
    pub lb_changes: Vec<LbChanges>,
    /// The streams' `chain_changes:`, in traffic order.
    pub chain_changes: Vec<ChainChangesAt>,
    /// `after.slots`: the chains' per-slot counters over the run.
    pub after_slots: Vec<AfterSlot>,
    /// Map values expected after the run.
    pub after_maps: Vec<AfterMap>,
    /// Global variables expected after the run.
    pub after_globals: Vec<AfterGlobal>,
    /// The topology, its services, clients and captures (`topology:`).
    pub live: Option<LiveSetup>,
    /// SNMP counter movements expected over a live run (`after.snmp`).
    pub after_snmp: Vec<(String, u64)>,
}

/// Where a program comes from.
#[derive(Clone, Debug)]
pub enum ProgramSource {
    /// One of dsrlab's programs.
    Builtin(Builtin),
    /// A user's ELF object (absolute or relative to the working directory)
    /// and the program's name in it.
    File {
        /// The object file.
        object: PathBuf,
        /// The program in it.
        program: String,
    },
    /// dsrlab's XDP chainer with its slot programs, under one backend.
    Chain(Box<ResolvedChain>),
}

/// A chain under one backend, its slots resolved.
#[derive(Clone, Debug)]
pub struct ResolvedChain {
    /// The backend of this program under test.
    pub backend: ChainBackend,
    /// Every backend the chain runs under (one program each).
    pub backends: Vec<ChainBackend>,
    /// The slot programs, by slot, in order.
    pub slots: Vec<(u32, ResolvedProgram)>,
    /// Verdicts that go on, by slot: bit `v` for XDP action `v`.
    pub continue_on: Vec<(u32, u32)>,
    /// Reserved slots and their owners.
    pub owners: Vec<(u32, String)>,
}

impl ResolvedChain {
    /// The owner `slot` is reserved for, if any.
    pub fn owner(&self, slot: u32) -> Option<&str> {
        self.owners
            .iter()
            .find(|(s, _)| *s == slot)
            .map(|(_, o)| o.as_str())
    }
}

/// A stream's `chain_changes:`, applied to every chain before the
/// stream's first packet: detaches, then attaches.
#[derive(Clone, Debug)]
pub struct ChainChangesAt {
    /// The stream.
    pub stream: String,
    /// 0-based index in [`LoadedScenario::packets`] of the stream's first
    /// packet.
    pub before: usize,
    /// Who makes them.
    pub owner: Option<String>,
    /// Slots emptied.
    pub detach: Vec<u32>,
    /// Slots filled or replaced.
    pub attach: Vec<(u32, ResolvedProgram)>,
}

/// What of a slot `after.slots` counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotCounter {
    /// Runs of the slot's program.
    Packets,
    /// Its verdicts of this XDP action.
    Verdict(u32),
}

/// One `after.slots` check: a slot's counter over the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AfterSlot {
    /// The slot.
    pub slot: u32,
    /// The counter.
    pub counter: SlotCounter,
    /// Its expected total.
    pub total: u64,
}

/// A program with everything needed to load and provision it.
#[derive(Clone, Debug)]
pub struct ResolvedProgram {
    /// Where it comes from.
    pub source: ProgramSource,
    /// Its name in reports (the program name).
    pub name: String,
    /// Globals set before loading, name → bytes: `globals:`, and the
    /// decap builtins' `gue_port` as their `GUE_PORT`.
    pub globals: Vec<(String, Vec<u8>)>,
    /// The contract whose oracles apply (builtins: their own).
    pub contract: Option<Contract>,
    /// Map entries to write before the traffic: (map, [(key, value)]),
    /// sizes already checked against the object.
    pub maps: Vec<(String, MapEntries)>,
    /// For programs of the lb contract: the configuration to give the
    /// control plane.
    pub lb: Option<LbSetup>,
    /// The types of its object's maps and globals, when its BTF has them
    /// (to show what a packet counted, typed).
    pub types: Option<Arc<ObjectTypes>>,
}

impl ResolvedProgram {
    /// The globals as the loader takes them.
    pub fn global_options(&self) -> Vec<(&str, &[u8])> {
        self.globals
            .iter()
            .map(|(name, bytes)| (name.as_str(), bytes.as_slice()))
            .collect()
    }
}

/// A load balancer's configuration, checked: what the control plane is
/// given before any traffic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LbSetup {
    /// Deployment settings (ring size, seed, MTU, ...).
    pub settings: LbSettings,
    /// The VIPs in file order, each with its reals and their weights.
    pub vips: Vec<(VipSpec, Vec<(IpAddr, u32)>)>,
}

/// One change to the load balancers' configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LbOp {
    /// Adds `real` to `vip` with `weight`.
    AddReal {
        /// The VIP.
        vip: Vip,
        /// The real.
        real: IpAddr,
        /// Its weight.
        weight: u32,
    },
    /// Removes `real` from `vip`.
    RemoveReal {
        /// The VIP.
        vip: Vip,
        /// The real.
        real: IpAddr,
    },
    /// Gives `real` of `vip` another weight.
    SetWeight {
        /// The VIP.
        vip: Vip,
        /// The real.
        real: IpAddr,
        /// The new weight.
        weight: u32,
    },
}

/// A stream's `lb_changes:`, applied to every lb program before the
/// stream's first packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LbChanges {
    /// The stream.
    pub stream: String,
    /// 0-based index in [`LoadedScenario::packets`] of the stream's first
    /// packet.
    pub before: usize,
    /// The changes, in order.
    pub ops: Vec<LbOp>,
}

/// A value a check after the run expects, and how to compare it.
#[derive(Clone, Debug)]
pub struct ExpectedValue {
    /// The bytes it encodes to; all of them are compared when untyped.
    pub bytes: Vec<u8>,
    /// Its BTF type and the value as written: only what is written is
    /// compared, and differences are named field by field.
    pub typed: Option<(Arc<ObjectTypes>, TypeRef, Value)>,
}

impl ExpectedValue {
    /// What differs in `actual`, field by field (an empty field: the
    /// whole value); empty when it matches.
    pub fn mismatches(&self, actual: &[u8]) -> Vec<typed::Mismatch> {
        match &self.typed {
            Some((types, ty, written)) => typed::compare(types, *ty, written, actual),
            None if actual == self.bytes => Vec::new(),
            None => vec![typed::Mismatch {
                field: String::new(),
                expected: hex_string(&self.bytes),
                actual: hex_string(actual),
            }],
        }
    }
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A map value expected after the run.
#[derive(Clone, Debug)]
pub struct AfterMap {
    /// The map.
    pub map: String,
    /// The key's bytes.
    pub key: Vec<u8>,
    /// The key as the scenario wrote it, for messages.
    pub key_shown: String,
    /// The value summed over the CPUs (per-CPU maps) or the value.
    pub summed: Option<ExpectedValue>,
    /// The value on each CPU, from CPU 0.
    pub per_cpu: Vec<ExpectedValue>,
}

/// A global variable expected after the run: a slice of its section's map.
#[derive(Clone, Debug)]
pub struct AfterGlobal {
    /// The variable.
    pub name: String,
    /// The map of its section (`.bss`, `.data`).
    pub map: String,
    /// Its offset in the section.
    pub offset: usize,
    /// What it must hold.
    pub expected: ExpectedValue,
}

/// A map's entries: (key bytes, value).
pub type MapEntries = Vec<(Vec<u8>, EntryValue)>;

/// What a map entry stores at its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryValue {
    /// Bytes of the map's value size (on every CPU of a per-CPU map).
    Bytes(Vec<u8>),
    /// Program arrays: the program of the same object, by name.
    Program(String),
    /// Maps of maps: the map of the same object, by name.
    Map(String),
}

/// One packet of the traffic with everything that applies to it.
#[derive(Clone, Debug)]
pub struct ScenarioPacket {
    /// The stream's name (shared by its packets).
    pub stream: Arc<str>,
    /// 1-based number within its stream.
    pub number: u32,
    /// The packet's name (fixture packet name, `flow-17/2`, or `#N`).
    pub name: String,
    /// The bytes.
    pub bytes: Vec<u8>,
    /// Quirks: scenario's, then stream's, then packet's (later ones win).
    pub quirks: Quirks,
    /// The expectation: the packet's override, else the stream's, else the
    /// scenario's (`None`: only "runs without error" is checked); shared
    /// by the packets it applies to.
    pub expect: Option<Arc<Expect>>,
    /// The fixture's own expectation (decap contract), for fixture streams.
    pub fixture: Option<Expectation>,
    /// For fixture `decap` packets: the expected output built from the
    /// recipe; for `expect.equals`: the packet of that pcap.
    pub expected_output: Option<Vec<u8>>,
}

/// Why a scenario cannot be used. Every message starts with the scenario
/// file and, when the YAML has one, the `line:column` at fault.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The scenario file could not be read.
    #[error("{}: cannot read: {source}", .path.display())]
    Read {
        /// The scenario file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid scenario, or something it names is not
    /// usable (a missing object, a stale fixture, a map of another size).
    #[error("{}{}: {message}", .path.display(), crate::formats::location(*.line, *.column))]
    Invalid {
        /// The scenario file.
        path: PathBuf,
        /// 1-based line of the key or value at fault, when known.
        line: Option<u64>,
        /// 1-based column, when known.
        column: Option<u64>,
        /// What is wrong and what was expected.
        message: String,
    },
}

/// What `dsrlab check` prints for a scenario that loads: its programs and
/// the packets of each stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// The scenario file.
    pub path: PathBuf,
    /// The scenario's name.
    pub name: String,
    /// Program names, in file order.
    pub programs: Vec<String>,
    /// Each stream's name and packet count, in traffic order.
    pub streams: Vec<(String, usize)>,
    /// The modes it runs in.
    pub modes: Vec<Mode>,
}

/// `scenarios/x.yaml: ok: `x`: 2 programs (xdp_decap, tc_decap), 46 packets
/// (decap-tunnels 34, flows 12), modes test-run`
impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = |n: usize, what: &str| {
            if n == 1 {
                format!("1 {what}")
            } else {
                format!("{n} {what}s")
            }
        };
        let total: usize = self.streams.iter().map(|(_, n)| n).sum();
        let streams: Vec<String> = self
            .streams
            .iter()
            .map(|(name, n)| format!("{name} {n}"))
            .collect();
        let modes: Vec<&str> = self.modes.iter().map(|m| m.name()).collect();
        write!(
            f,
            "{}: ok: `{}`: {} ({}), {} ({}), modes {}",
            self.path.display(),
            self.name,
            plural(self.programs.len(), "program"),
            self.programs.join(", "),
            plural(total, "packet"),
            streams.join(", "),
            modes.join(", ")
        )
    }
}

impl LoadedScenario {
    /// The summary `dsrlab check` prints.
    pub fn summary(&self) -> Summary {
        // Stream names are unique (checked when loading).
        let mut streams: Vec<(String, usize)> = self
            .spec
            .traffic
            .iter()
            .map(|s| {
                let name = stream_name(s);
                let n = self.packets.iter().filter(|p| *p.stream == *name).count();
                (name, n)
            })
            .collect();
        if let Some(live) = &self.live {
            streams.extend(live.clients.iter().map(|c| (c.name.clone(), c.flows.len())));
        }
        Summary {
            path: self.path.clone(),
            name: self.name.clone(),
            programs: self.programs.iter().map(|p| p.name.clone()).collect(),
            streams,
            modes: self.modes.clone(),
        }
    }
}

/// Reads, checks and expands the scenario in `path`.
pub fn load(path: &Path) -> Result<LoadedScenario, ScenarioError> {
    let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
        path: path.to_owned(),
        source,
    })?;
    load_str(&text, path)
}

/// Checks and expands the scenario `text`, as if read from `path`: `path`
/// names it in errors and anchors its relative paths.
pub fn load_str(text: &str, path: &Path) -> Result<LoadedScenario, ScenarioError> {
    Loader::new(text, path)?.load()
}

/// Loads the scenario in `path` and summarizes it (what `dsrlab check`
/// does).
pub fn check(path: &Path) -> Result<Summary, ScenarioError> {
    load(path).map(|s| s.summary())
}

/// The name a stream has in reports: `name:`, else its file's stem, else
/// `generated`.
fn stream_name(s: &Stream) -> String {
    if let Some(name) = &s.name {
        return name.clone();
    }
    let stem = |p: &PathBuf| {
        p.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    match (&s.fixture, &s.pcap) {
        (Some(f), _) => stem(f),
        (None, Some(p)) => stem(p),
        (None, None) => "generated".into(),
    }
}

struct Loader<'a> {
    path: &'a Path,
    dir: PathBuf,
    tree: Node,
    spec: Scenario,
    /// `expect.equals` pcaps by resolved path.
    equals: HashMap<PathBuf, std::sync::Arc<Vec<Vec<u8>>>>,
}

/// A program as resolved, with what the checks of the traffic and `after`
/// need to know about it.
struct Checked {
    program: ResolvedProgram,
    /// Its object's maps and programs; `None` for a builtin whose object
    /// was not built (`AYA_BUILD_SKIP=1`).
    info: Option<ObjectInfo>,
    /// The object, as named in messages.
    object: String,
    /// Where it runs.
    hook: Hook,
    /// For lb programs: the control plane's bookkeeping as the traffic so
    /// far has changed it (`lb_changes:`).
    plane: Option<Plane>,
}

impl<'a> Loader<'a> {
    fn new(text: &str, path: &'a Path) -> Result<Self, ScenarioError> {
        let invalid = |pos: Option<Pos>, message: String| ScenarioError::Invalid {
            path: path.to_owned(),
            line: pos.map(|p| p.line),
            column: pos.map(|p| p.column),
            message,
        };
        let tree = Node::parse(text).map_err(|e| {
            let pos = e.location().map(|l| Pos {
                line: l.line(),
                column: l.column(),
            });
            let pos = pos.filter(|p| p.line > 0);
            // An unquoted IPv6 VIP is a flow sequence to YAML.
            let hint = pos
                .and_then(|p| text.lines().nth(p.line as usize - 1))
                .filter(|line| line.contains("vip: ["))
                .map_or("", |_| {
                    "; quote an IPv6 VIP, \"[2001:db8::10]:80/tcp\" (YAML reads `[` as the start of a list)"
                });
            invalid(pos, format!("invalid YAML: {}{hint}", bare_message(&e)))
        })?;
        match &tree.kind {
            tree::Kind::Map(_) => {}
            tree::Kind::Scalar(s) if s.is_empty() => {
                return Err(invalid(
                    None,
                    "the file is empty; expected a scenario (`version: 1`, `programs:`, `traffic:`)"
                        .into(),
                ));
            }
            _ => {
                return Err(invalid(
                    tree.pos,
                    "expected a mapping with `version: 1`, `programs:` and `traffic:`".into(),
                ));
            }
        }
        // The version first: a file of another version fails for that
        // reason, not for a key this version does not know.
        let version = YPath::root().key("version");
        match tree.get(&version).and_then(Node::scalar) {
            None if tree.get(&version).is_none() => {
                return Err(invalid(
                    tree.pos,
                    format!("missing key `version`; expected `version: {VERSION}`"),
                ));
            }
            Some(v) if v.parse::<u64>().is_ok_and(|v| v != u64::from(VERSION)) => {
                return Err(invalid(
                    tree.value_pos(&version),
                    format!(
                        "version {v} is not supported; this dsrlab reads version {VERSION} only"
                    ),
                ));
            }
            // Other shapes are type errors, reported by serde below.
            _ => {}
        }
        let spec: Scenario = serde_saphyr::from_str(text).map_err(|e| {
            let (pos, message) = serde_message(&e, &tree);
            invalid(pos, message)
        })?;
        let dir = path.parent().unwrap_or(Path::new("")).to_owned();
        Ok(Self {
            path,
            dir,
            tree,
            spec,
            equals: HashMap::new(),
        })
    }

    fn err(&self, pos: Option<Pos>, message: impl Into<String>) -> ScenarioError {
        ScenarioError::Invalid {
            path: self.path.to_owned(),
            line: pos.map(|p| p.line),
            column: pos.map(|p| p.column),
            message: message.into(),
        }
    }

    /// An error at the value at `p` (or its nearest ancestor).
    fn at_value(&self, p: &YPath, message: impl Into<String>) -> ScenarioError {
        self.err(self.tree.value_pos(p), message)
    }

    /// An error at the key ending `p`.
    fn at_key(&self, p: &YPath, message: impl Into<String>) -> ScenarioError {
        self.err(self.tree.key_pos(p), message)
    }

    /// A path of the scenario, relative to the scenario file's directory.
    fn resolve(&self, rel: &Path) -> PathBuf {
        normalize(&self.dir.join(rel))
    }

    fn load(mut self) -> Result<LoadedScenario, ScenarioError> {
        let root = YPath::root();
        if self.spec.programs.is_empty() {
            return Err(self.at_value(
                &root.key("programs"),
                "`programs` is empty; expected at least one program",
            ));
        }
        if self.spec.traffic.is_empty() && self.spec.topology.is_none() {
            return Err(self.at_value(
                &root.key("traffic"),
                "`traffic` is empty or missing; expected at least one stream (or a `topology:` with `clients:`)",
            ));
        }
        self.complete_for_reference()?;
        let mut programs = self
            .spec
            .programs
            .iter()
            .enumerate()
            .map(|(i, p)| self.program(&root.key("programs").index(i), p))
            .collect::<Result<Vec<_>, _>>()?;
        self.label_programs(&root.key("programs"), &mut programs)?;
        let mut programs = chain::expand_chains(programs);
        self.check_expect(&root.key("expect"), self.spec.expect.as_ref(), &programs)?;
        self.check_quirks(&root.key("quirks"), &self.spec.quirks, &programs)?;
        self.check_ctx(&root.key("ctx"), &self.spec.ctx, &programs)?;
        let mut packets = super::traffic::Traffic::default();
        let mut names: Vec<String> = Vec::new();
        let mut lb_changes = Vec::new();
        let mut chain_changes = Vec::new();
        for i in 0..self.spec.traffic.len() {
            let p = root.key("traffic").index(i);
            let name = stream_name(&self.spec.traffic[i]);
            if let Some(first) = names.iter().position(|n| *n == name) {
                let at = if self.spec.traffic[i].name.is_some() {
                    self.tree.value_pos(&p.key("name"))
                } else {
                    self.tree.value_pos(&p)
                };
                return Err(self.err(
                    at,
                    format!(
                        "stream name `{name}` is taken by traffic[{first}]; give each stream its own `name:`"
                    ),
                ));
            }
            names.push(name.clone());
            let changes = self.spec.traffic[i].lb_changes.clone();
            let ops = self.lb_changes(&p, &changes, &mut programs)?;
            if !ops.is_empty() {
                lb_changes.push(LbChanges {
                    stream: name.clone(),
                    before: packets.len(),
                    ops,
                });
            }
            if let Some(changes) = &self.spec.traffic[i].chain_changes {
                chain_changes.push(ChainChangesAt {
                    stream: name.clone(),
                    before: packets.len(),
                    ..self.chain_changes(&p, changes, &programs)?
                });
            }
            self.stream(&p, i, &name, &programs, &mut packets)?;
        }
        let (after_counters, after_lb_counters, after_maps, after_globals) =
            self.after(&programs)?;
        let live = self.live(&programs)?;
        let after_snmp = self.after_snmp(&programs)?;
        let after_slots = self.after_slots(&programs)?;
        let name = self.spec.name.clone().unwrap_or_else(|| {
            self.path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        Ok(LoadedScenario {
            path: self.path.to_owned(),
            name,
            modes: self.spec.modes.clone(),
            programs: programs.into_iter().map(|c| c.program).collect(),
            packets,
            after_counters,
            after_lb_counters,
            after_maps,
            after_globals,
            lb_changes,
            chain_changes,
            after_slots,
            live,
            after_snmp,
            spec: self.spec,
        })
    }
}

/// `base` with the quirks `over` sets (later wins).
pub(crate) fn merge(base: Quirks, over: &QuirksSpec) -> Quirks {
    Quirks {
        checksum_complete: base.checksum_complete
            || over.checksum == Some(super::model::ChecksumQuirk::Complete),
        checksum_unnecessary: base.checksum_unnecessary
            || over.checksum == Some(super::model::ChecksumQuirk::Unnecessary),
        linear: over.linear.or(base.linear),
        ctx: base.ctx,
    }
}

/// `base` with a fixture packet's own quirks, which win over the stream's:
/// the fixture's expectation was written for them.
pub(crate) fn fixture_quirks_over(base: Quirks, fixture: Quirks) -> Quirks {
    Quirks {
        checksum_complete: base.checksum_complete || fixture.checksum_complete,
        checksum_unnecessary: base.checksum_unnecessary || fixture.checksum_unnecessary,
        linear: fixture.linear.or(base.linear),
        ctx: base.ctx,
    }
}

/// Removes `.` and `dir/..` without touching the file system, so messages
/// say `pcaps/x.pcap`, not `scenarios/../pcaps/x.pcap`.
fn normalize(p: &Path) -> PathBuf {
    let mut out: Vec<Component<'_>> = Vec::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    if out.is_empty() {
        return PathBuf::from(".");
    }
    out.iter().collect()
}
