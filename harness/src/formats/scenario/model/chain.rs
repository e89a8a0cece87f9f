//! Chains under test: the XDP chainer's root and its slot programs
//! (`chain:` in place of `builtin:` or `object:`), and the changes to its
//! slots scheduled between streams.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ProgramSpec;

/// A chain: dsrlab's XDP chainer with its slots filled, run as one
/// program (the root) and judged as one: a packet's verdict and output are
/// the chain's. Its slots' counters are checked by `after.slots`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChainSpec {
    /// The backends to run it under: each is a program under test of its
    /// own (`<label>@tail-call`, `<label>@ext`), held to the same
    /// expectations, and the two are compared packet by packet. Default:
    /// both.
    #[serde(default = "ChainBackend::all")]
    pub backends: Vec<ChainBackend>,
    /// The slot programs by slot number (0 to 19; run in that order,
    /// empty slots skipped): each a program as in `programs:`, with its
    /// `maps:`, `globals:` and `lb:`. dsrlab's XDP programs run as their
    /// chain builds; a user's program must include `dsrlab_chain.h` for
    /// the tail-call backend, and may be any XDP program under `ext`.
    pub slots: BTreeMap<u32, ProgramSpec>,
    /// Which verdicts of a slot go on to the next populated slot, by slot
    /// (`XDP_PASS`, `XDP_TX`, ...); default `[XDP_PASS]`. Any other ends
    /// the chain with that verdict.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub continue_on: BTreeMap<u32, Vec<String>>,
    /// Slots reserved for an owner (a team, a service): owner → slots.
    /// Only `chain_changes:` made as that owner change them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub owners: BTreeMap<String, Vec<u32>>,
}

/// How the chain's root runs its slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ChainBackend {
    /// A program array and tail calls (the rootlet): runs everywhere.
    TailCall,
    /// Slot functions replaced by extension programs (the talk's XDP
    /// Chainer): needs BPF trampolines (the VM stage's kernels).
    Ext,
}

impl ChainBackend {
    /// Both, the default.
    pub fn all() -> Vec<Self> {
        vec![Self::TailCall, Self::Ext]
    }

    /// The name in scenarios and reports.
    pub const fn name(self) -> &'static str {
        match self {
            Self::TailCall => "tail-call",
            Self::Ext => "ext",
        }
    }
}

/// Changes to the slots of every chain, made before a stream's first
/// packet, between two packets, while the root keeps running: detaches
/// first, then attaches (a populated slot is replaced in one step).
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChainChanges {
    /// Who makes them: a slot reserved for another owner (`owners:`)
    /// refuses them, and the run fails in setup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Slots to empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub detach: Vec<u32>,
    /// Slots to fill or replace, as in `chain.slots`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attach: BTreeMap<u32, ProgramSpec>,
}
