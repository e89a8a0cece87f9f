//! Program verdicts and their names: the vocabulary shared by the test-run
//! engine, the oracles and the scenario format (which checks names without
//! touching the kernel).

use std::fmt;

/// XDP actions by value (`enum xdp_action`).
pub const XDP_NAMES: [&str; 5] = [
    "XDP_ABORTED",
    "XDP_DROP",
    "XDP_PASS",
    "XDP_TX",
    "XDP_REDIRECT",
];

/// TC actions by value + 1 (`TC_ACT_UNSPEC` is -1).
pub const TC_NAMES: [&str; 10] = [
    "TC_ACT_UNSPEC",
    "TC_ACT_OK",
    "TC_ACT_RECLASSIFY",
    "TC_ACT_SHOT",
    "TC_ACT_PIPE",
    "TC_ACT_STOLEN",
    "TC_ACT_QUEUED",
    "TC_ACT_REPEAT",
    "TC_ACT_REDIRECT",
    "TC_ACT_TRAP",
];

/// Verdict classes that fit every program type.
pub const CLASSES: [&str; 4] = ["pass", "drop", "tx", "redirect"];

/// A program's return code, named for its program type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// An XDP action.
    Xdp(u32),
    /// A TC action (signed in the kernel; `TC_ACT_UNSPEC` is -1).
    Tc(i32),
}

impl Verdict {
    /// The kernel's name for this verdict (`XDP_PASS`, `TC_ACT_OK`, ...), or
    /// the number when it has none.
    pub fn name(self) -> String {
        match (self.kernel_name(), self) {
            (Some(name), _) => name.to_owned(),
            (None, Self::Xdp(n)) => format!("XDP_{n}?"),
            (None, Self::Tc(n)) => format!("TC_{n}?"),
        }
    }

    /// The kernel's name for this verdict, if it has one.
    fn kernel_name(self) -> Option<&'static str> {
        match self {
            Self::Xdp(n) => XDP_NAMES.get(n as usize).copied(),
            Self::Tc(n) => usize::try_from(n + 1)
                .ok()
                .and_then(|i| TC_NAMES.get(i))
                .copied(),
        }
    }

    /// Whether this verdict is `wanted`: its kernel name, or a class of
    /// [`CLASSES`]. Asked for every packet, so it names nothing it need not.
    pub fn is(self, wanted: &str) -> bool {
        match wanted {
            "pass" => self.passes(),
            "drop" => self.drops(),
            "tx" => self == Self::Xdp(3),
            "redirect" => matches!(self, Self::Xdp(4) | Self::Tc(7)),
            name => match self.kernel_name() {
                Some(known) => known == name,
                None => self.name() == name,
            },
        }
    }

    /// Whether the packet continues up the stack (XDP_PASS, TC_ACT_OK,
    /// TC_ACT_UNSPEC).
    pub const fn passes(self) -> bool {
        matches!(self, Self::Xdp(2) | Self::Tc(0 | -1))
    }

    /// Whether the packet is dropped (XDP_DROP, XDP_ABORTED, TC_ACT_SHOT).
    pub const fn drops(self) -> bool {
        matches!(self, Self::Xdp(0 | 1) | Self::Tc(2))
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}
