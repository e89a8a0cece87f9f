//! Traffic: each stream read (fixture set, pcap or generator), its
//! overrides checked, and its packets expanded with their quirks and
//! expectations; and the `after:` checks.

use std::path::{Path, PathBuf};

use dsrlab_abi::{decap::Counter, lb::Counter as LbCounter};

use super::{
    Checked, Loader, ScenarioError, ScenarioPacket, fixture_quirks_over, merge, tree::YPath,
};
use crate::formats::{
    fixture::{Expectation, FixtureSet, Quirks},
    pcap,
    scenario::generate,
};

/// `after:` decoded: decap and lb contract counters, and (map, key, value)
/// checks.
type After = (
    Vec<(Counter, u64)>,
    Vec<(LbCounter, u64)>,
    Vec<(String, Vec<u8>, Vec<u8>)>,
);

impl Loader<'_> {
    /// Checks, reads and expands one stream.
    pub(super) fn stream(
        &mut self,
        p: &YPath,
        i: usize,
        name: &str,
        programs: &[Checked],
    ) -> Result<Vec<ScenarioPacket>, ScenarioError> {
        let s = &self.spec.traffic[i];
        // (name, bytes, fixture quirks, fixture expectation, fixture output)
        type Raw = (
            String,
            Vec<u8>,
            Quirks,
            Option<Expectation>,
            Option<Vec<u8>>,
        );
        let raw: Vec<Raw> = match (&s.fixture, &s.pcap, &s.generate) {
            (Some(rel), None, None) => {
                let at = p.key("fixture");
                let err = |e| self.at_value(&at, format!("cannot use fixture set: {e}"));
                let set = FixtureSet::from_yaml_file(&self.resolve(rel)).map_err(err)?;
                set.check_pcap().map_err(err)?;
                set.packets
                    .iter()
                    .map(|fp| {
                        (
                            fp.name.clone(),
                            fp.bytes.clone(),
                            fp.quirks,
                            Some(fp.expect),
                            fp.expected_output(),
                        )
                    })
                    .collect()
            }
            (None, Some(rel), None) => pcap::read_file(&self.resolve(rel))
                .map_err(|e| self.at_value(&p.key("pcap"), format!("cannot use pcap: {e}")))?
                .into_iter()
                .enumerate()
                .map(|(n, bytes)| (format!("#{}", n + 1), bytes, Quirks::default(), None, None))
                .collect(),
            (None, None, Some(generator)) => generate::expand(generator, name)
                .map_err(|e| {
                    self.at_value(
                        &p.key("generate").key(e.field),
                        format!("`{}` in a generator: {}", e.field, e.problem),
                    )
                })?
                .into_iter()
                .map(|g| (g.name, g.bytes, Quirks::default(), None, None))
                .collect(),
            (f, pc, g) => {
                let given: Vec<&str> = [
                    ("fixture", f.is_some()),
                    ("pcap", pc.is_some()),
                    ("generate", g.is_some()),
                ]
                .into_iter()
                .filter_map(|(k, set)| set.then_some(k))
                .collect();
                return Err(match given.as_slice() {
                    [first, second, ..] => self.at_key(
                        &p.key(second),
                        format!(
                            "a stream has both `{first}` and `{second}`; give exactly one of \
                             `fixture`, `pcap`, `generate`"
                        ),
                    ),
                    _ => self.at_value(p, "a stream needs one of `fixture`, `pcap` or `generate`"),
                });
            }
        };
        let count = raw.len();
        for &n in s.packets.keys() {
            if n == 0 || n as usize > count {
                return Err(self.at_key(
                    &p.key("packets").key(n),
                    format!(
                        "packet {n} does not exist: stream `{name}` has {count} packets, numbered from 1"
                    ),
                ));
            }
        }
        // Expectations: check each once, and load the pcaps they compare
        // with, which must cover every packet they apply to.
        let scenario_expect = self.spec.expect.clone();
        let stream_expect = s.expect.clone();
        let overrides = s.packets.clone();
        let stream_quirks = s.quirks;
        self.check_quirks(&p.key("quirks"), &stream_quirks, programs)?;
        self.check_expect(&p.key("expect"), stream_expect.as_ref(), programs)?;
        for (n, o) in &overrides {
            self.check_quirks(&p.key("packets").key(n).key("quirks"), &o.quirks, programs)?;
            self.check_expect(
                &p.key("packets").key(n).key("expect"),
                o.expect.as_ref(),
                programs,
            )?;
        }
        let mut packets = Vec::with_capacity(count);
        for (k, (pname, bytes, fixture_quirks, fixture, fixture_output)) in
            raw.into_iter().enumerate()
        {
            let number = u32::try_from(k + 1).unwrap_or(u32::MAX);
            let o = overrides.get(&number);
            // The expectation, where it is written, and how many packets
            // of an `equals` pcap it needs.
            let (expect, level, needs) = match (o.and_then(|o| o.expect.as_ref()), &stream_expect) {
                (Some(e), _) => (
                    Some(e.clone()),
                    p.key("packets").key(number).key("expect"),
                    k + 1,
                ),
                (None, Some(e)) => (Some(e.clone()), p.key("expect"), count),
                (None, None) => (scenario_expect.clone(), YPath::root().key("expect"), count),
            };
            let mut expected_output = fixture_output;
            if let Some(rel) = expect.as_ref().and_then(|e| e.equals.as_ref()) {
                let pcap = self.equals_pcap(&level.key("equals"), rel)?;
                let pcap = &self.equals[&pcap];
                let Some(out) = pcap.get(k) else {
                    return Err(self.at_value(
                        &level.key("equals"),
                        format!(
                            "{} has {} packets; stream `{name}` needs {needs} (its packet N is compared with packet N)",
                            self.resolve(rel).display(),
                            pcap.len()
                        ),
                    ));
                };
                expected_output = Some(out.clone());
            }
            let quirks = merge(
                fixture_quirks_over(
                    merge(merge(Quirks::default(), &self.spec.quirks), &stream_quirks),
                    fixture_quirks,
                ),
                &o.map(|o| o.quirks).unwrap_or_default(),
            );
            packets.push(ScenarioPacket {
                stream: name.to_owned(),
                number,
                name: pname,
                bytes,
                quirks,
                expect,
                fixture,
                expected_output,
            });
        }
        Ok(packets)
    }

    /// Reads an `expect.equals` pcap into `self.equals` (once per file);
    /// returns its key there.
    pub(super) fn equals_pcap(&mut self, at: &YPath, rel: &Path) -> Result<PathBuf, ScenarioError> {
        let path = self.resolve(rel);
        if !self.equals.contains_key(&path) {
            let packets = pcap::read_file(&path)
                .map_err(|e| self.at_value(at, format!("cannot use pcap: {e}")))?;
            self.equals.insert(path.clone(), packets);
        }
        Ok(path)
    }

    /// Quirks asked for explicitly (scenario, stream, packet) must reach
    /// some program in some mode of the scenario: quirks no program can be
    /// given are an error that says why for each, not a run of skips.
    /// (Where they reach one program and not another, the other skips
    /// those packets with the reason, as it does a fixture's own quirks.)
    pub(super) fn check_quirks(
        &self,
        at: &YPath,
        q: &super::QuirksSpec,
        programs: &[Checked],
    ) -> Result<(), ScenarioError> {
        use super::{Mode, objects::Hook};
        use crate::formats::scenario::model::ChecksumQuirk;
        if q.is_empty() {
            return Ok(());
        }
        let complete = q.checksum == Some(ChecksumQuirk::Complete);
        let unnecessary = q.checksum == Some(ChecksumQuirk::Unnecessary);
        let linear = q.linear.is_some();
        let reaches = |hook: Hook, mode: Mode| match (mode, hook) {
            (Mode::TestRun, Hook::Xdp) => !complete && !unnecessary,
            (Mode::TestRun, _) => !unnecessary && !linear,
            (Mode::Netns, Hook::Xdp) => !complete && !unnecessary && !linear,
            (Mode::Netns, _) => !(complete && linear),
        };
        if programs
            .iter()
            .any(|c| self.spec.modes.iter().any(|&m| reaches(c.hook, m)))
        {
            return Ok(());
        }
        let why: Vec<String> = programs
            .iter()
            .map(|c| {
                let why = match c.hook {
                    Hook::Xdp if complete || unnecessary => {
                        "checksum state is an skb property; XDP runs before the skb exists"
                    }
                    Hook::Xdp => {
                        "XDP gets linear: N in test runs only (live, generic XDP lays non-linear skbs out again): add test-run to `modes`"
                    }
                    _ if complete && linear => {
                        "checksum: complete with linear: N is not emulated (skb test runs are linear; the VXLAN NIC's tunnel pulls the inner headers)"
                    }
                    _ => {
                        "TC programs get linear: N and checksum: unnecessary live only, behind the TAP NIC (skb test runs are linear and unvalidated): add netns to `modes`"
                    }
                };
                format!("`{}`: {why}", c.program.name)
            })
            .collect();
        Err(self.at_key(
            at,
            format!(
                "these quirks reach no program in modes {}: {}",
                self.spec
                    .modes
                    .iter()
                    .map(|m| m.name())
                    .collect::<Vec<_>>()
                    .join(", "),
                why.join("; ")
            ),
        ))
    }

    /// Checks `after.snmp`: live TC programs only (see the model).
    pub(super) fn after_snmp(
        &self,
        programs: &[Checked],
    ) -> Result<Vec<(String, u64)>, ScenarioError> {
        let Some(after) = self.spec.after.as_ref().filter(|a| !a.snmp.is_empty()) else {
            return Ok(Vec::new());
        };
        let at = YPath::root().key("after").key("snmp");
        if !self.spec.modes.contains(&super::Mode::Netns) || self.spec.topology.is_some() {
            return Err(self.at_key(
                &at,
                "`after.snmp` is what the live rig's stack counted: it needs `modes:` with netns, and no `topology:`",
            ));
        }
        if let Some(c) = programs.iter().find(|c| c.hook != super::objects::Hook::Tc) {
            return Err(self.at_key(
                &at,
                format!(
                    "`after.snmp` needs TC programs, which run behind the TAP NIC and its stack; `{}` is not one (XDP runs on the inert veth rig)",
                    c.program.name
                ),
            ));
        }
        after
            .snmp
            .iter()
            .map(|(name, &want)| {
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
                    return Err(self.at_key(
                        &at.key(name),
                        format!("`{name}` is not an SNMP counter name (like UdpInCsumErrors)"),
                    ));
                }
                Ok((name.clone(), want))
            })
            .collect()
    }

    /// Checks and decodes `after:`: (counters, map checks).
    pub(super) fn after(&self, programs: &[Checked]) -> Result<After, ScenarioError> {
        let Some(after) = &self.spec.after else {
            return Ok((Vec::new(), Vec::new(), Vec::new()));
        };
        let at = YPath::root().key("after");
        let mut counters = Vec::new();
        let mut lb_counters = Vec::new();
        for (name, &total) in &after.counters {
            let c = self.check_counter(&at.key("counters").key(name), true, name, programs)?;
            counters.extend(c.decap.map(|c| (c, total)));
            lb_counters.extend(c.lb.map(|c| (c, total)));
        }
        let mut maps = Vec::new();
        for (j, check) in after.maps.iter().enumerate() {
            let at = at.key("maps").index(j);
            let mut sizes = None;
            for c in programs {
                let Some(info) = &c.info else { continue };
                let Some(m) = info.maps.get(&check.map) else {
                    return Err(self.at_value(
                        &at.key("map"),
                        format!(
                            "map `{}` is not in {} (program `{}`); it has: {}",
                            check.map,
                            c.object,
                            c.program.name,
                            info.map_names()
                        ),
                    ));
                };
                sizes.get_or_insert((m.key_size, m.value_size));
            }
            let key = self.sized(
                &at.key("key"),
                &check.map,
                "key",
                &check.key,
                sizes.map(|s| s.0),
            )?;
            let value = self.sized(
                &at.key("value"),
                &check.map,
                "value",
                &check.value,
                sizes.map(|s| s.1),
            )?;
            maps.push((check.map.clone(), key, value));
        }
        Ok((counters, lb_counters, maps))
    }
}
