//! Expectations: what can be known of them before any packet runs (verdict
//! names that the programs can return, field paths the dissection has,
//! counters of the programs' contract).

use dsrlab_abi::{decap::Counter, lb::Counter as LbCounter};

use super::{Checked, Loader, ProgramSource, ScenarioError, fields, objects::Hook, tree::YPath};
use crate::{
    formats::{
        ctx::{CB_WORDS, CtxSpec},
        scenario::model::{Contract, Expect},
    },
    verdict::{CLASSES, TC_NAMES, XDP_NAMES},
};

/// A counter name resolved in each contract of the programs.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct CounterRef {
    /// The decap counter, when a program has the decap contract.
    pub decap: Option<Counter>,
    /// The lb counter, when a program has the lb contract.
    pub lb: Option<LbCounter>,
}

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
            let at = at.key("counter");
            if let Some(c) = programs
                .iter()
                .find(|c| c.program.contract == Some(Contract::Lb))
            {
                return Err(self.at_value(
                    &at,
                    format!(
                        "`counter` is the one counter a decap packet moves; program `{}` is a \
                         load balancer, whose packets move several counters (tx and lru_miss, \
                         ...), all of which the reference model checks for every packet; \
                         check totals with `after.counters`",
                        c.program.name
                    ),
                ));
            }
            self.check_counter(&at, false, counter, programs)?;
        }
        if let Some(recipe) = &expect.packet {
            if expect.equals.is_some() || expect.output.is_some() {
                return Err(self.at_key(
                    &at.key("packet"),
                    "`packet` is the whole output packet: give it, `equals` or `output`, not two",
                ));
            }
            self.build_recipe(&at.key("packet"), recipe)?;
        }
        if let Some(ctx) = &expect.ctx {
            let at = at.key("ctx");
            if ctx.rx_queue_index.is_some() {
                return Err(self.at_key(
                    &at.key("rx_queue_index"),
                    "an XDP program cannot change its context; `expect.ctx` checks the skb's \
                     fields after a TC program",
                ));
            }
            self.check_ctx(&at, ctx, programs)?;
            if let Some(c) = programs.iter().find(|c| c.hook != Hook::Tc) {
                return Err(self.at_key(
                    &at,
                    format!(
                        "`expect.ctx` checks the skb's context after a TC program; `{}` is not \
                         one (an XDP program's context is not copied back)",
                        c.program.name
                    ),
                ));
            }
        }
        if let Some(reason) = &expect.drop_reason {
            let at = at.key("drop_reason");
            if !self.spec.modes.contains(&super::Mode::Netns) || self.spec.topology.is_some() {
                return Err(self.at_key(
                    &at,
                    "`drop_reason` is what the live stack behind an emulated NIC did: it needs `modes:` with netns, and no `topology:`",
                ));
            }
            if let Some(c) = programs.iter().find(|c| c.hook != Hook::Tc) {
                return Err(self.at_key(
                    &at,
                    format!(
                        "`drop_reason` needs TC programs, which run behind an emulated NIC and its stack; `{}` is not one",
                        c.program.name
                    ),
                ));
            }
            if reason != "none"
                && (reason.is_empty()
                    || !reason
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            {
                return Err(self.at_value(
                    &at,
                    format!(
                        "`{reason}` is not a drop reason: a skb_drop_reason name without SKB_DROP_REASON_ (UDP_CSUM, NO_SOCKET), or `none`"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Checks a `ctx:` (given or expected): at most five `cb` words, a
    /// test-run mode to give it in, and fields every program has.
    pub(super) fn check_ctx(
        &self,
        at: &YPath,
        ctx: &CtxSpec,
        programs: &[Checked],
    ) -> Result<(), ScenarioError> {
        if ctx.is_empty() {
            return Ok(());
        }
        if let Some(cb) = &ctx.cb
            && cb.len() > CB_WORDS
        {
            return Err(self.at_value(
                &at.key("cb"),
                format!("`cb` has {CB_WORDS} words; {} are given", cb.len()),
            ));
        }
        if !self.spec.modes.contains(&super::Mode::TestRun) {
            return Err(self.at_key(
                at,
                "`ctx` is given to and read back from test runs; add test-run to `modes` (a \
                 live packet's context is what the stack gives it)",
            ));
        }
        for field in ctx.fields() {
            let (lacks, kind) = if CtxSpec::SKB_ONLY.contains(&field) {
                (Hook::Xdp, "an skb")
            } else if CtxSpec::XDP_ONLY.contains(&field) {
                (Hook::Tc, "an XDP")
            } else {
                continue;
            };
            if let Some(c) = programs.iter().find(|c| c.hook == lacks) {
                return Err(self.at_key(
                    &at.key(field),
                    format!(
                        "`{field}` is a field of {kind} program's context; `{}` has none",
                        c.program.name
                    ),
                ));
            }
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

    /// Checks that `name` is a counter of every program's contract, and
    /// resolves it in each.
    pub(super) fn check_counter(
        &self,
        at: &YPath,
        is_key: bool,
        name: &str,
        programs: &[Checked],
    ) -> Result<CounterRef, ScenarioError> {
        let err = |m: String| {
            if is_key {
                self.at_key(at, m)
            } else {
                self.at_value(at, m)
            }
        };
        if let Some(c) = programs.iter().find(|c| c.program.contract.is_none()) {
            let hint = match c.program.source {
                ProgramSource::Builtin(_) | ProgramSource::Chain(_) => "",
                ProgramSource::File { .. } => {
                    " (give it `contract: decap` or `contract: lb` if it implements one)"
                }
            };
            return Err(err(format!(
                "counter `{name}` needs programs with a contract; program `{}` has none{hint}",
                c.program.name
            )));
        }
        let mut resolved = CounterRef::default();
        let has = |k: Contract| programs.iter().any(|c| c.program.contract == Some(k));
        let unknown = |contract: &str, names: Vec<&str>| {
            err(format!(
                "unknown counter `{name}` of the {contract} contract; expected one of {}",
                names.join(", ")
            ))
        };
        // In a topology the programs work together: a counter binds the
        // programs of the contract that has it.
        if self.spec.topology.is_some() && has(Contract::Decap) && has(Contract::Lb) {
            resolved.decap = Counter::from_name(name);
            resolved.lb = LbCounter::from_name(name);
            if resolved.decap.is_none() && resolved.lb.is_none() {
                let mut names: Vec<&str> = Counter::ALL.iter().map(|c| c.name()).collect();
                names.extend(LbCounter::ALL.iter().map(|c| c.name()));
                return Err(unknown("decap or lb", names));
            }
            return Ok(resolved);
        }
        if has(Contract::Decap) {
            resolved.decap = Some(Counter::from_name(name).ok_or_else(|| {
                unknown("decap", Counter::ALL.iter().map(|c| c.name()).collect())
            })?);
        }
        if has(Contract::Lb) {
            resolved.lb =
                Some(LbCounter::from_name(name).ok_or_else(|| {
                    unknown("lb", LbCounter::ALL.iter().map(|c| c.name()).collect())
                })?);
        }
        Ok(resolved)
    }
}
