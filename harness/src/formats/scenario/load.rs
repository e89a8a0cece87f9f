//! Reading a scenario file: parse, check, resolve and expand it into
//! [`LoadedScenario`], which the runner executes without re-checking.
//! (Being written.)

use std::path::PathBuf;

use dsrlab_abi::decap::Counter;

use super::model::{Builtin, Contract, Expect, Mode, Scenario};
use crate::formats::fixture::{Expectation, Quirks};

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
    /// Every packet of every stream, in order.
    pub packets: Vec<ScenarioPacket>,
    /// Contract counters expected after the run.
    pub after_counters: Vec<(Counter, u64)>,
    /// Raw map values expected after the run: (map, key, value).
    pub after_maps: Vec<(String, Vec<u8>, Vec<u8>)>,
}

/// Where a program comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
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
}

/// A program with everything needed to load and provision it.
#[derive(Clone, Debug)]
pub struct ResolvedProgram {
    /// Where it comes from.
    pub source: ProgramSource,
    /// Its name in reports (the program name).
    pub name: String,
    /// GUE port override for decap programs.
    pub gue_port: Option<u16>,
    /// The contract whose oracles apply (builtins: their own).
    pub contract: Option<Contract>,
    /// Map entries to write before the traffic: (map, [(key, value)]),
    /// sizes already checked against the object.
    pub maps: Vec<(String, Vec<(Vec<u8>, Vec<u8>)>)>,
}

/// One packet of the traffic with everything that applies to it.
#[derive(Clone, Debug)]
pub struct ScenarioPacket {
    /// The stream's name.
    pub stream: String,
    /// 1-based number within its stream.
    pub number: u32,
    /// The packet's name (fixture packet name, `flow-17/2`, or `#N`).
    pub name: String,
    /// The bytes.
    pub bytes: Vec<u8>,
    /// Quirks: scenario's, then stream's, then packet's (later ones win).
    pub quirks: Quirks,
    /// The expectation: the packet's override, else the stream's, else the
    /// scenario's (`None`: only "runs without error" is checked).
    pub expect: Option<Expect>,
    /// The fixture's own expectation (decap contract), for fixture streams.
    pub fixture: Option<Expectation>,
    /// For fixture `decap` packets: the expected output built from the
    /// recipe; for `expect.equals`: the packet of that pcap.
    pub expected_output: Option<Vec<u8>>,
}
