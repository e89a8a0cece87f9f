//! Oracles: given what a program did with a packet, decide whether it did the
//! right thing. They see results only, never the kernel.

pub mod decap;

use std::fmt;

use dsrlab_abi::decap::Counter;

use crate::testrun::Verdict;

/// One way in which a result differs from what was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// The run itself failed (the program or the input, not the harness).
    RunFailed(String),
    /// The program returned another verdict.
    Verdict {
        /// What the expectation asked for.
        expected: Verdict,
        /// What the program returned.
        actual: Verdict,
    },
    /// The output packet differs; the text is a layer-by-layer diff.
    Output(String),
    /// The counters moved differently: the expected counter should have
    /// gone up by one and nothing else.
    Counters {
        /// The counter that should have counted this packet.
        expected: Counter,
        /// The counters that actually changed, with their deltas.
        actual: Vec<(Counter, i64)>,
    },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RunFailed(why) => write!(f, "run failed: {why}"),
            Self::Verdict { expected, actual } => {
                write!(f, "verdict: expected {expected}, actual {actual}")
            }
            Self::Output(diff) => write!(f, "output differs:\n{diff}"),
            Self::Counters { expected, actual } => {
                write!(f, "counters: expected {} +1, actual ", expected.name())?;
                if actual.is_empty() {
                    return f.write_str("no counter moved");
                }
                let moved: Vec<String> = actual
                    .iter()
                    .map(|(c, d)| format!("{} {d:+}", c.name()))
                    .collect();
                f.write_str(&moved.join(", "))
            }
        }
    }
}
