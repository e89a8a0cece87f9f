//! Chains: `chain:` resolved into one program under test per backend, its
//! slot programs checked as programs are (and as slots: XDP, in range,
//! ready for the backend), the streams' `chain_changes:` and
//! `after.slots` checked against the chains.

use dsrlab_abi::chain::{SLOT_GLOBAL, SLOTS};

use super::{
    AfterSlot, ChainChangesAt, Checked, Loader, ProgramSource, ResolvedChain, ResolvedProgram,
    ScenarioError, SlotCounter, objects::Hook, tree::YPath,
};
use crate::{
    formats::scenario::model::{ChainBackend, ChainChanges, ChainSpec, ProgramSpec},
    verdict::XDP_NAMES,
};

impl Loader<'_> {
    /// Checks and resolves a chain (`p` is the program, `chain` its
    /// `chain:`), under its first backend: [`expand_chains`] makes one
    /// program per backend once labels are settled.
    pub(super) fn chain(
        &self,
        p: &YPath,
        spec: &ProgramSpec,
        chain: &ChainSpec,
    ) -> Result<Checked, ScenarioError> {
        let at = p.key("chain");
        let others = [
            ("builtin", spec.builtin.is_some()),
            ("object", spec.object.is_some()),
            ("program", spec.program.is_some()),
            ("gue_port", spec.gue_port.is_some()),
            ("contract", spec.contract.is_some()),
            ("lb", spec.lb.is_some()),
            ("maps", !spec.maps.is_empty()),
            ("globals", !spec.globals.is_empty()),
            ("attach", spec.attach.is_some()),
        ];
        if let Some((key, _)) = others.iter().find(|(_, given)| *given) {
            return Err(self.at_key(
                &p.key(key),
                format!(
                    "`{key}` does not go with `chain:`: a chain's programs, with their maps, \
                     globals and configuration, are its `slots:`; a chain takes `label` beside it"
                ),
            ));
        }
        if self.spec.topology.is_some() {
            return Err(self.at_key(
                &at,
                "a chain runs in test-run and netns modes over `traffic:`; a `topology:` takes \
                 builtins and objects",
            ));
        }
        if chain.backends.is_empty() {
            return Err(self.at_value(
                &at.key("backends"),
                "`backends` is empty: give tail-call, ext or both",
            ));
        }
        if let Some(i) =
            (1..chain.backends.len()).find(|&i| chain.backends[..i].contains(&chain.backends[i]))
        {
            return Err(self.at_value(
                &at.key("backends").index(i),
                format!("backend {} is listed twice", chain.backends[i].name()),
            ));
        }
        if chain.slots.is_empty() {
            return Err(self.at_value(
                &at.key("slots"),
                "`slots` is empty: a chain under test needs at least one slot program",
            ));
        }
        let mut slots = Vec::new();
        for (&slot, program) in &chain.slots {
            let resolved =
                self.slot_program(&at.key("slots").key(slot), slot, program, &chain.backends)?;
            slots.push((slot, resolved));
        }
        let mut continue_on = Vec::new();
        for (&slot, verdicts) in &chain.continue_on {
            let at = at.key("continue_on").key(slot);
            self.check_slot_number(&at, slot)?;
            let mut mask = 0u32;
            for (i, name) in verdicts.iter().enumerate() {
                let Some(v) = XDP_NAMES.iter().position(|n| n == name) else {
                    return Err(self.at_value(
                        &at.index(i),
                        format!(
                            "`{name}` is not an XDP verdict; one of {}",
                            XDP_NAMES.join(", ")
                        ),
                    ));
                };
                mask |= 1 << v;
            }
            continue_on.push((slot, mask));
        }
        let mut owners: Vec<(u32, String)> = Vec::new();
        for (owner, reserved) in &chain.owners {
            for (i, &slot) in reserved.iter().enumerate() {
                let at = at.key("owners").key(owner).index(i);
                self.check_slot_number(&at, slot)?;
                if let Some((_, other)) = owners.iter().find(|(s, _)| *s == slot) {
                    return Err(self.at_value(
                        &at,
                        format!("slot {slot} is reserved for `{other}` already"),
                    ));
                }
                owners.push((slot, owner.clone()));
            }
        }
        let name = match &spec.label {
            Some(label) => self.check_label(&p.key("label"), label)?,
            None => "chain".to_owned(),
        };
        Ok(Checked {
            program: ResolvedProgram {
                source: ProgramSource::Chain(Box::new(ResolvedChain {
                    backend: chain.backends[0],
                    backends: chain.backends.clone(),
                    slots,
                    continue_on,
                    owners,
                })),
                name,
                globals: Vec::new(),
                contract: None,
                maps: Vec::new(),
                lb: None,
                types: None,
            },
            info: None,
            object: "chain".to_owned(),
            hook: Hook::Xdp,
            plane: None,
        })
    }

    fn check_slot_number(&self, at: &YPath, slot: u32) -> Result<(), ScenarioError> {
        if slot < SLOTS {
            Ok(())
        } else {
            Err(self.at_key(
                at,
                format!(
                    "slot {slot} is out of range: a chain has slots 0 to {}",
                    SLOTS - 1
                ),
            ))
        }
    }

    /// One slot's program: a program as in `programs:`, of XDP, and able
    /// to go on to the next slot under each of `backends`.
    fn slot_program(
        &self,
        at: &YPath,
        slot: u32,
        spec: &ProgramSpec,
        backends: &[ChainBackend],
    ) -> Result<ResolvedProgram, ScenarioError> {
        self.check_slot_number(at, slot)?;
        if spec.chain.is_some() {
            return Err(self.at_key(
                &at.key("chain"),
                "a slot holds a program, not another chain",
            ));
        }
        if spec.attach.is_some() {
            return Err(self.at_key(
                &at.key("attach"),
                "a slot program runs where the chain's root is attached: `attach` does not apply",
            ));
        }
        let checked = self.program(at, spec)?;
        if checked.hook != Hook::Xdp {
            return Err(self.at_value(
                at,
                format!(
                    "slot {slot}: {} is not an XDP program; a chain holds XDP programs",
                    checked.object
                ),
            ));
        }
        if let (ProgramSource::File { program, .. }, true) = (
            &checked.program.source,
            backends.contains(&ChainBackend::TailCall),
        ) && let Some(Ok(types)) = checked.info.as_ref().map(|i| &i.types)
            && types.global(SLOT_GLOBAL).is_none()
        {
            return Err(self.at_value(
                at,
                format!(
                    "slot {slot}: `{program}` in {} has no {SLOT_GLOBAL} global, so under the \
                     tail-call backend it cannot go on to the next slot: include \
                     dsrlab_chain.h and end with dsrlab_chain_finish(), or run the chain with \
                     `backends: [ext]`, which takes any XDP program",
                    checked.object
                ),
            ));
        }
        Ok(checked.program)
    }

    /// A stream's `chain_changes:`, checked against every chain.
    pub(super) fn chain_changes(
        &self,
        p: &YPath,
        changes: &ChainChanges,
        programs: &[Checked],
    ) -> Result<ChainChangesAt, ScenarioError> {
        let at = p.key("chain_changes");
        let chains: Vec<&ResolvedChain> = programs
            .iter()
            .filter_map(|c| match &c.program.source {
                ProgramSource::Chain(chain) => Some(&**chain),
                _ => None,
            })
            .collect();
        if chains.is_empty() {
            return Err(self.at_key(
                &at,
                "`chain_changes` changes chains, and no program here is one (`chain:`)",
            ));
        }
        let mut backends: Vec<ChainBackend> =
            chains.iter().flat_map(|c| c.backends.clone()).collect();
        backends.dedup();
        for (i, &slot) in changes.detach.iter().enumerate() {
            self.check_slot_number(&at.key("detach").index(i), slot)?;
        }
        let mut attach = Vec::new();
        for (&slot, spec) in &changes.attach {
            let resolved = self.slot_program(&at.key("attach").key(slot), slot, spec, &backends)?;
            attach.push((slot, resolved));
        }
        if attach.is_empty() && changes.detach.is_empty() {
            return Err(self.at_value(
                &at,
                "`chain_changes` changes nothing: give `attach`, `detach` or both",
            ));
        }
        Ok(ChainChangesAt {
            stream: String::new(),
            before: 0,
            owner: changes.owner.clone(),
            detach: changes.detach.clone(),
            attach,
        })
    }

    /// `after.slots`, checked: slots in range, counters by name.
    pub(super) fn after_slots(
        &self,
        programs: &[Checked],
    ) -> Result<Vec<AfterSlot>, ScenarioError> {
        let Some(after) = &self.spec.after else {
            return Ok(Vec::new());
        };
        let at = YPath::root().key("after").key("slots");
        if after.slots.is_empty() {
            return Ok(Vec::new());
        }
        if !programs
            .iter()
            .any(|c| matches!(c.program.source, ProgramSource::Chain(_)))
        {
            return Err(self.at_key(
                &at,
                "`after.slots` checks a chain's slots, and no program here is a chain",
            ));
        }
        let mut checks = Vec::new();
        for (&slot, counters) in &after.slots {
            let at = at.key(slot);
            self.check_slot_number(&at, slot)?;
            for (name, &total) in counters {
                let counter = if name == "packets" {
                    SlotCounter::Packets
                } else if let Some(v) = XDP_NAMES.iter().position(|n| n == name) {
                    SlotCounter::Verdict(v as u32)
                } else {
                    return Err(self.at_key(
                        &at.key(name),
                        format!(
                            "a slot counts `packets` and its verdicts ({}); `{name}` is neither",
                            XDP_NAMES.join(", ")
                        ),
                    ));
                };
                checks.push(AfterSlot {
                    slot,
                    counter,
                    total,
                });
            }
        }
        Ok(checks)
    }
}

/// One program per backend of each chain, named `<label>@<backend>`.
pub(super) fn expand_chains(programs: Vec<Checked>) -> Vec<Checked> {
    let mut out = Vec::new();
    for checked in programs {
        let ProgramSource::Chain(chain) = &checked.program.source else {
            out.push(checked);
            continue;
        };
        for &backend in &chain.backends {
            let mut one = Checked {
                program: checked.program.clone(),
                info: None,
                object: checked.object.clone(),
                hook: checked.hook,
                plane: None,
            };
            one.program.name = format!("{}@{}", checked.program.name, backend.name());
            if let ProgramSource::Chain(c) = &mut one.program.source {
                c.backend = backend;
            }
            out.push(one);
        }
    }
    out
}
