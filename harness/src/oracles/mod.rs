//! Oracles: given what a program did with a packet, decide whether it did the
//! right thing. They see results only, never the kernel.

pub mod agree;
pub mod capture;
pub mod decap;
pub mod expect;
pub mod flows;
pub mod lb;
pub mod reference;

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
    /// The verdict is not the one named or of the class asked for.
    VerdictClass {
        /// The name or class asked for.
        expected: String,
        /// What the program returned.
        actual: Verdict,
        /// The counters the packet moved (contract counters, or a user
        /// object's counter arrays), when they were watched.
        moved: Option<Vec<String>>,
    },
    /// An output field has another value (or is missing).
    Field {
        /// `label.name`.
        path: String,
        /// The value asked for.
        expected: String,
        /// The value found, if the field exists.
        actual: Option<String>,
    },
    /// A state check after the run failed (it could not be made, or a
    /// counter total differs).
    After(String),
    /// A map value or global differs after the run.
    State {
        /// The map and key, or the global (`map tallies key 1`).
        at: String,
        /// The field within the value (`bytes`, `via.gateway`), or empty.
        field: String,
        /// What was written.
        expected: String,
        /// What is there, in the same notation.
        actual: String,
    },
    /// Nothing checked the packets of this stream: no expectation, no
    /// contract, no `after:` check.
    Unchecked(String),
    /// The output packet differs; the text is a layer-by-layer diff.
    Output(String),
    /// The counters moved otherwise than the reference model says (every
    /// counter that moved or should have, by name, with its delta).
    CounterDeltas {
        /// What the model expects to move.
        expected: Vec<(&'static str, i64)>,
        /// What moved.
        actual: Vec<(&'static str, i64)>,
    },
    /// A live flow saw something else than its `expect:`.
    Flow(String),
    /// A capture holds something else than its `expect:`.
    Capture(String),
    /// The stack behind the program did something else with the packet
    /// (dropped it for another reason, or did not).
    Stack(String),
    /// Test-run and live mode did different things with the same packet
    /// (each difference, both sides named).
    ModesDisagree(String),
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
            Self::VerdictClass {
                expected,
                actual,
                moved,
            } => {
                write!(f, "verdict: expected {expected}, actual {actual}")?;
                match moved.as_deref() {
                    Some([]) => f.write_str(" (no counter moved)"),
                    Some(moved) => write!(f, " (counters moved: {})", moved.join(", ")),
                    None => Ok(()),
                }
            }
            Self::Field {
                path,
                expected,
                actual,
            } => match actual {
                Some(actual) => write!(f, "{path}: expected {expected}, actual {actual}"),
                None => write!(
                    f,
                    "{path}: expected {expected}, but the output has no such field"
                ),
            },
            Self::After(what) => write!(f, "after the run: {what}"),
            Self::State {
                at,
                field,
                expected,
                actual,
            } => {
                let dot = if field.is_empty() { "" } else { "." };
                write!(
                    f,
                    "after the run: {at}{dot}{field}: expected {expected}, actual {actual}"
                )
            }
            Self::Unchecked(stream) => write!(
                f,
                "stream `{stream}` checks nothing: no `expect:`, no contract and no `after:` \
                 applies, so it passes whatever the program does; give it an `expect:` (or \
                 run with --allow-unchecked)"
            ),
            Self::ModesDisagree(what) => write!(f, "modes disagree: {what}"),
            Self::Flow(what) | Self::Capture(what) => f.write_str(what),
            Self::Stack(what) => write!(f, "stack: {what}"),
            Self::Output(diff) => write!(f, "output differs:\n{diff}"),
            Self::CounterDeltas { expected, actual } => {
                let list = |d: &[(&str, i64)]| {
                    if d.is_empty() {
                        return "no counter moved".to_owned();
                    }
                    let moved: Vec<String> = d.iter().map(|(c, n)| format!("{c} {n:+}")).collect();
                    moved.join(", ")
                };
                write!(
                    f,
                    "counters: expected {}, actual {}",
                    list(expected),
                    list(actual)
                )
            }
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
