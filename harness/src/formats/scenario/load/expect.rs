//! Expectations: what can be known of them before any packet runs (verdict
//! names that the programs can return, field paths the dissection has,
//! counters of the programs' contract).

use dsrlab_abi::decap::Counter;

use super::{Checked, Loader, ProgramSource, ScenarioError, fields, objects::Hook, tree::YPath};
use crate::{
    formats::scenario::model::Expect,
    verdict::{CLASSES, TC_NAMES, XDP_NAMES},
};

impl Loader<'_> {
    /// Checks an expectation that applies to packets of every program.
    pub(super) fn check_expect(
        &self,
        at: &YPath,
        expect: Option<&Expect>,
        programs: &[Checked],
    ) -> Result<(), ScenarioError> {
        let Some(expect) = expect else { return Ok(()) };
        if let Some(v) = &expect.verdict {
            self.check_verdict(&at.key("verdict"), v, programs)?;
        }
        for path in expect.fields.keys() {
            fields::check(path).map_err(|e| self.at_key(&at.key("fields").key(path), e))?;
        }
        if let Some(counter) = &expect.counter {
            self.check_counter(&at.key("counter"), false, counter, programs)?;
        }
        Ok(())
    }

    pub(super) fn check_verdict(
        &self,
        at: &YPath,
        verdict: &str,
        programs: &[Checked],
    ) -> Result<(), ScenarioError> {
        if CLASSES.contains(&verdict) {
            return Ok(());
        }
        let hook = if XDP_NAMES.contains(&verdict) {
            Hook::Xdp
        } else if TC_NAMES.contains(&verdict) {
            Hook::Tc
        } else {
            return Err(self.at_value(
                at,
                format!(
                    "unknown verdict `{verdict}`; expected a class ({}) or a kernel name ({}, {})",
                    CLASSES.join(", "),
                    XDP_NAMES.join(", "),
                    TC_NAMES.join(", ")
                ),
            ));
        };
        if let Some(other) = programs.iter().find(|c| c.hook != hook) {
            let kind = |h| if h == Hook::Xdp { "an XDP" } else { "a TC" };
            return Err(self.at_value(
                at,
                format!(
                    "verdict {verdict} cannot come from program `{}`, {} program; a class \
                     ({}) fits every program type",
                    other.program.name,
                    kind(other.hook),
                    CLASSES.join(", ")
                ),
            ));
        }
        Ok(())
    }

    /// Checks that `name` is a counter of every program's contract.
    pub(super) fn check_counter(
        &self,
        at: &YPath,
        is_key: bool,
        name: &str,
        programs: &[Checked],
    ) -> Result<Counter, ScenarioError> {
        let err = |m: String| {
            if is_key {
                self.at_key(at, m)
            } else {
                self.at_value(at, m)
            }
        };
        if let Some(c) = programs.iter().find(|c| c.program.contract.is_none()) {
            let hint = match c.program.source {
                ProgramSource::Builtin(_) => "",
                ProgramSource::File { .. } => " (give it `contract: decap` if it implements it)",
            };
            return Err(err(format!(
                "counter `{name}` needs programs with a contract; program `{}` has none{hint}",
                c.program.name
            )));
        }
        // Decap is the only contract so far: every program has it.
        Counter::from_name(name).ok_or_else(|| {
            let names: Vec<&str> = Counter::ALL.iter().map(|c| c.name()).collect();
            err(format!(
                "unknown counter `{name}` of the decap contract; expected one of {}",
                names.join(", ")
            ))
        })
    }
}
