//! Programs under test: dsrlab's own or a user's object, with the map
//! entries and globals they are given before any traffic.

use std::{collections::BTreeMap, path::PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{AttachDecl, ChainSpec, LbSpec};

/// One program under test: one of dsrlab's own (`builtin`), one from a
/// user's ELF object (`object` + `program`), or a chain of them (`chain`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProgramSpec {
    /// One of dsrlab's programs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builtin: Option<Builtin>,
    /// A user's BPF ELF object, relative to the scenario file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<PathBuf>,
    /// An XDP chain of programs in ordered slots (see [`ChainSpec`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<ChainSpec>,
    /// The program's name in `object` (its function / section symbol).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
    /// The program's name in reports, findings, JUnit test cases and
    /// `--out` paths. Default: its program name, or `program@object-file`
    /// when two programs of the scenario share a name (the A/B case of a
    /// good and a broken build).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// UDP port of GUE tunnels (decap programs; default 6080). For the load
    /// balancer it is `lb.gue_port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gue_port: Option<u16>,
    /// The contract the program claims to implement, which turns on the
    /// oracles for it (counters by name). dsrlab's decap programs implement
    /// `decap` and `xdp_lb` implements `lb` without saying so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<Contract>,
    /// The load balancer's configuration (`xdp_lb`, or an object with
    /// `contract: lb`): settings, VIPs and their reals, given to the
    /// control plane before any traffic. Default: the default settings and
    /// no VIP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lb: Option<LbSpec>,
    /// Entries to write into the object's maps before any traffic, by map
    /// name (user objects). Keys and values are typed by the object's BTF
    /// (see [`MapEntry`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub maps: BTreeMap<String, Vec<MapEntry>>,
    /// Global variables of a user's object (`volatile const` in `.rodata`,
    /// or `.data` / `.bss`) set before it is loaded, by name; typed by the
    /// object's BTF like map values (`default_mark: 0x10`), or hex bytes of
    /// the variable's size.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub globals: BTreeMap<String, Value>,
    /// Where the program is attached in the scenario's `topology:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach: Option<AttachDecl>,
}

/// dsrlab's own programs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Builtin {
    /// XDP decapsulation (frags-aware).
    XdpDecap,
    /// TC (sched_cls) decapsulation.
    TcDecap,
    /// Returns XDP_PASS: a floor and a control.
    XdpPass,
    /// Returns TC_ACT_OK: a floor and a control.
    TcPass,
    /// The XDP L4 load balancer (contract `lb`): configured by the
    /// program's `lb:` key, every packet judged by the reference model.
    XdpLb,
}

impl Builtin {
    /// The program's name, as in `datapath/ebpf`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::XdpDecap => "xdp_decap",
            Self::TcDecap => "tc_decap",
            Self::XdpPass => "xdp_pass",
            Self::TcPass => "tc_pass",
            Self::XdpLb => "xdp_lb",
        }
    }

    /// Its embedded object.
    pub const fn object(self) -> crate::datapath::Object {
        use crate::datapath;
        match self {
            Self::XdpDecap => datapath::XDP_DECAP,
            Self::TcDecap => datapath::TC_DECAP,
            Self::XdpPass => datapath::XDP_PASS,
            Self::TcPass => datapath::TC_PASS,
            Self::XdpLb => datapath::XDP_LB,
        }
    }

    /// The contract the program implements, if any.
    pub const fn contract(self) -> Option<Contract> {
        match self {
            Self::XdpDecap | Self::TcDecap => Some(Contract::Decap),
            Self::XdpLb => Some(Contract::Lb),
            Self::XdpPass | Self::TcPass => None,
        }
    }
}

/// A behaviour contract with its own oracles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Contract {
    /// The decap ABI: a per-CPU `DECAP_COUNTERS` array of u64 with the
    /// counters of `dsrlab_abi::decap::Counter`, one increment per packet.
    Decap,
    /// The load balancer ABI and behaviour of `dsrlab_abi::lb` (its maps,
    /// `LB_COUNTERS` with the counters of `dsrlab_abi::lb::Counter`). An XDP
    /// program. Every packet's verdict, output bytes and counter increments
    /// are compared with the reference model's, and per-VIP and per-real
    /// statistics after the run. The run is pinned to one CPU, because the
    /// connection table (`LB_LRU`) is per CPU.
    Lb,
}

/// A key, value or global as a scenario writes it. With the object's BTF
/// it is typed: a number (`42`, `0x2a`, `-1`), an address for a 4- or
/// 16-byte type (`198.18.1.1`, `2001:db8::1`; network order, as addresses
/// are stored; `__be16`/`__be32`/`__be64` numbers are written in network
/// order too), an enumerator's name, a mapping of a struct's members
/// (members not given are zero) or a list for an array. Hex bytes of
/// exactly the type's size (`"0100 0000"`, spaces and `:` allowed) are
/// accepted for any type, and are the only form without BTF.
pub type Value = serde_json::Value;

/// One map entry: its key and exactly one of `value`, `program` (program
/// arrays) and `map` (arrays and hashes of maps).
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MapEntry {
    /// The key (see `Value`).
    pub key: Value,
    /// The value (see `Value`). For per-CPU maps the same value is written
    /// for every CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// Program arrays: the program of the same object that a tail call
    /// through this key jumps to (it is loaded with the program under
    /// test and must be of the same type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
    /// Arrays and hashes of maps: the map of the same object stored at
    /// this key (it must match the outer map's inner map definition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map: Option<String>,
}
