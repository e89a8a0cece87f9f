//! Traffic: each stream read (fixture set, pcap or generator), its
//! overrides checked, and its packets expanded with their quirks and
//! expectations; and the `after:` checks.

use std::{
    borrow::Cow,
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    sync::Arc,
};

use dsrlab_abi::{decap::Counter, lb::Counter as LbCounter};

use super::{AfterGlobal, AfterMap, Checked, Loader, ScenarioError, merge, tree::YPath};
use crate::formats::{
    ctx::{Ctx, CtxSpec},
    fixture::{FixtureSet, Quirks},
    packet::PacketSpec,
    pcap,
    scenario::{
        generate,
        model::{Expect, Generator, IpLenAround, NamedLengths, PacketRecipe, Protocol, Tunnel},
        traffic::{Expander, Level, Override, Raw, Source, Traffic},
    },
};
use crate::lb::{Proto, encap};

/// `after:` decoded: decap and lb contract counters, map and global checks.
type After = (
    Vec<(Counter, u64)>,
    Vec<(LbCounter, u64)>,
    Vec<AfterMap>,
    Vec<AfterGlobal>,
);

impl Loader<'_> {
    /// `generator`, at `at`, with `ip_len_around: mtu` replaced by the
    /// lengths it names: the MTU of each load balancer of `programs` less
    /// the overhead of each encapsulation the reals of its VIPs that the
    /// generator reaches can use.
    fn aimed<'g>(
        &self,
        at: &YPath,
        generator: &'g Generator,
        programs: &[Checked],
    ) -> Result<Cow<'g, Generator>, ScenarioError> {
        if generator.ip_len_around != Some(IpLenAround::Named(NamedLengths::Mtu)) {
            return Ok(Cow::Borrowed(generator));
        }
        let at = at.key("ip_len_around");
        if generator.tunnel != Tunnel::None {
            // The load balancer would see the outer header as its packet:
            // neither the VIP reached nor the length meant is the inner one.
            return Err(self.at_value(
                &at,
                "`mtu` aims plain packets at the load balancer's VIPs; a tunnelled stream \
                 takes lengths",
            ));
        }
        let setups: Vec<_> = programs
            .iter()
            .filter_map(|c| c.program.lb.as_ref())
            .collect();
        if setups.is_empty() {
            return Err(self.at_value(
                &at,
                "`mtu` takes the thresholds of the scenario's load balancer, and it has no \
                 xdp_lb program (with `lb:`)",
            ));
        }
        let mut lengths = BTreeSet::new();
        for setup in setups {
            for (vip, reals) in &setup.vips {
                let proto = match vip.proto {
                    Proto::Tcp => Protocol::Tcp,
                    Proto::Udp => Protocol::Udp,
                };
                if !generate::reaches(generator, vip.addr, proto, vip.port) {
                    continue;
                }
                for overhead in encap::vip_overheads(vip, reals.iter().copied()) {
                    if let Some(len) = setup.settings.mtu.checked_sub(overhead as u32) {
                        lengths.insert(len);
                    }
                }
            }
        }
        if lengths.is_empty() {
            return Err(self.at_value(
                &at,
                "`mtu`: no VIP of the load balancer is among the generator's dst, protocols \
                 and dport with a real that can carry its packets",
            ));
        }
        Ok(Cow::Owned(Generator {
            ip_len_around: Some(IpLenAround::Lengths(lengths.into_iter().collect())),
            ..generator.clone()
        }))
    }

    /// Checks, reads and expands one stream.
    pub(super) fn stream(
        &mut self,
        p: &YPath,
        i: usize,
        name: &str,
        programs: &[Checked],
        traffic: &mut Traffic,
    ) -> Result<(), ScenarioError> {
        let s = &self.spec.traffic[i];
        let inline = (!s.inline.is_empty()).then_some(&s.inline);
        let generated = match &s.generate {
            Some(g) => Some(self.aimed(&p.key("generate"), g, programs)?),
            None => None,
        };
        // A classic pcap no expectation compares with another pcap is
        // replayed from the file as the run goes: checked and counted here,
        // never held whole.
        if let (None, Some(rel), None, None) = (&s.fixture, &s.pcap, &s.generate, inline) {
            let path = self.resolve(rel);
            let at = p.key("pcap");
            let pcapng = pcap::is_pcapng(&path)
                .map_err(|e| self.at_value(&at, format!("cannot use pcap: {e}")))?;
            if !pcapng && !self.compares_with_pcap(i) {
                let mut count = 0;
                let mut largest = 0;
                let stream = pcap::PacketStream::open(&path)
                    .map_err(|e| self.at_value(&at, format!("cannot use pcap: {e}")))?;
                for packet in stream {
                    let packet =
                        packet.map_err(|e| self.at_value(&at, format!("cannot use pcap: {e}")))?;
                    count += 1;
                    largest = largest.max(packet.len());
                }
                let expander = self.expander(p, i, name, programs, count)?;
                traffic.push_lazy(Source::Pcap(path), (count, largest), expander);
                return Ok(());
            }
        }
        // A generator likewise: its flows drawn and its largest packet
        // built here, every packet generated as the run goes.
        if let (None, None, Some(generator), None) = (&s.fixture, &s.pcap, &generated, inline)
            && !self.compares_with_pcap(i)
        {
            let at = p.key("generate");
            let error = |e: generate::GenerateError| {
                self.at_value(
                    &at.key(e.field),
                    format!("`{}` in a generator: {}", e.field, e.problem),
                )
            };
            let packets = generate::stream(generator, name).map_err(error)?;
            let count = packets.len();
            let largest = packets.largest().map_err(error)?;
            let source = Source::Generated(Box::new(packets));
            let expander = self.expander(p, i, name, programs, count)?;
            traffic.push_lazy(source, (count, largest), expander);
            return Ok(());
        }
        let raw: Vec<Raw> = match (&s.fixture, &s.pcap, &generated, inline) {
            (Some(rel), None, None, None) => {
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
            (None, Some(rel), None, None) => pcap::read_file(&self.resolve(rel))
                .map_err(|e| self.at_value(&p.key("pcap"), format!("cannot use pcap: {e}")))?
                .into_iter()
                .enumerate()
                .map(|(n, bytes)| (format!("#{}", n + 1), bytes, Quirks::default(), None, None))
                .collect(),
            (None, None, None, Some(inline)) => inline
                .iter()
                .enumerate()
                .map(|(j, packet)| {
                    let at = p.key("inline").index(j);
                    if packet.layers.is_empty() {
                        return Err(self.at_value(&at, "an inline packet needs `layers`"));
                    }
                    let recipe = PacketRecipe {
                        layers: packet.layers.clone(),
                        cut: packet.cut,
                        mutate: packet.mutate.clone(),
                    };
                    let bytes = self.build_recipe(&at, &recipe)?;
                    let name = packet.name.clone().unwrap_or_else(|| format!("#{}", j + 1));
                    Ok((name, bytes, Quirks::default(), None, None))
                })
                .collect::<Result<_, ScenarioError>>()?,
            (None, None, Some(generator), None) => generate::expand(generator, name)
                .map_err(|e| {
                    self.at_value(
                        &p.key("generate").key(e.field),
                        format!("`{}` in a generator: {}", e.field, e.problem),
                    )
                })?
                .into_iter()
                .map(|g| (g.name, g.bytes, Quirks::default(), None, None))
                .collect(),
            (f, pc, g, i) => {
                let given: Vec<&str> = [
                    ("fixture", f.is_some()),
                    ("pcap", pc.is_some()),
                    ("generate", g.is_some()),
                    ("inline", i.is_some()),
                ]
                .into_iter()
                .filter_map(|(k, set)| set.then_some(k))
                .collect();
                return Err(match given.as_slice() {
                    [first, second, ..] => self.at_key(
                        &p.key(second),
                        format!(
                            "a stream has both `{first}` and `{second}`; give exactly one of \
                             `fixture`, `pcap`, `generate`, `inline`"
                        ),
                    ),
                    _ => self.at_value(
                        p,
                        "a stream needs one of `fixture`, `pcap`, `generate` or `inline`",
                    ),
                });
            }
        };
        let expander = self.expander(p, i, name, programs, raw.len())?;
        let packets = raw
            .into_iter()
            .enumerate()
            .map(|(k, raw)| expander.expand(k, raw))
            .collect();
        traffic.push_expanded(packets);
        Ok(())
    }

    /// Whether an expectation of stream `i` (its own, an override's, or the
    /// scenario's it inherits) compares outputs with a pcap (`equals:`).
    fn compares_with_pcap(&self, i: usize) -> bool {
        let s = &self.spec.traffic[i];
        let equals = |e: Option<&Expect>| e.is_some_and(|e| e.equals.is_some());
        equals(s.expect.as_ref())
            || (s.expect.is_none() && equals(self.spec.expect.as_ref()))
            || s.packets
                .values()
                .any(|o| equals(o.expect.as_ref()) || equals(o.also_expect.as_ref()))
    }

    /// Checks stream `i`'s overrides and expectations for its `count`
    /// packets, builds what they compare with, and returns what expands its
    /// raw packets.
    fn expander(
        &mut self,
        p: &YPath,
        i: usize,
        name: &str,
        programs: &[Checked],
        count: usize,
    ) -> Result<Expander, ScenarioError> {
        let s = &self.spec.traffic[i];
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
        let mut overrides = s.packets.clone();
        for (n, o) in &s.packets {
            if o.name.is_some() || !o.layers.is_empty() || o.cut.is_some() || !o.mutate.is_empty() {
                return Err(self.at_key(
                    &p.key("packets").key(n),
                    "`name`, `layers`, `cut` and `mutate` belong to packets written `inline:`; \
                     `packets:` gives the stream's packets quirks, context and expectations",
                ));
            }
        }
        for (j, packet) in s.inline.iter().enumerate() {
            let number = u32::try_from(j + 1).unwrap_or(u32::MAX);
            if overrides.contains_key(&number) {
                return Err(self.at_key(
                    &p.key("packets").key(number),
                    format!(
                        "packet {number} is written inline: give its quirks, context and \
                         expectation in its `inline` entry"
                    ),
                ));
            }
            overrides.insert(number, packet.clone());
        }
        let stream_quirks = s.quirks;
        let stream_ctx = s.ctx.clone();
        self.check_quirks(&p.key("quirks"), &stream_quirks, programs)?;
        self.check_ctx(&p.key("ctx"), &stream_ctx, programs)?;
        self.check_expect(&p.key("expect"), stream_expect.as_ref(), programs)?;
        for (n, o) in &overrides {
            let at = p.key("packets").key(n);
            self.check_quirks(&at.key("quirks"), &o.quirks, programs)?;
            self.check_ctx(&at.key("ctx"), &o.ctx, programs)?;
            if o.expect.is_some() && o.also_expect.is_some() {
                return Err(self.at_key(
                    &at.key("also_expect"),
                    "give `expect` (replaces the stream's expectation) or `also_expect` (adds to \
                     it), not both",
                ));
            }
            self.check_expect(&at.key("expect"), o.expect.as_ref(), programs)?;
            self.check_expect(&at.key("also_expect"), o.also_expect.as_ref(), programs)?;
        }
        // The expectation every packet without its own inherits, where it
        // is written, built for all `count` packets.
        let (inherited, inherited_at) = match &stream_expect {
            Some(e) => (Some(e.clone()), p.key("expect")),
            None => (scenario_expect, YPath::root().key("expect")),
        };
        let inherited_level = self.level(inherited.clone(), &inherited_at, (name, count))?;
        let mut built = BTreeMap::new();
        for (n, o) in &overrides {
            let number = *n;
            let level = match (o.expect.as_ref(), o.also_expect.as_ref()) {
                (Some(e), _) => {
                    let at = p.key("packets").key(number).key("expect");
                    Some(self.level(Some(e.clone()), &at, (name, number as usize))?)
                }
                (None, Some(more)) => {
                    let (at, needs) = if more.equals.is_some() {
                        (
                            p.key("packets").key(number).key("also_expect"),
                            number as usize,
                        )
                    } else {
                        (inherited_at.clone(), count)
                    };
                    let merged = merge_expect(inherited.clone(), more);
                    Some(self.level(Some(merged), &at, (name, needs))?)
                }
                (None, None) => None,
            };
            built.insert(
                number,
                Override {
                    level,
                    quirks: o.quirks,
                    ctx: o.ctx.clone(),
                },
            );
        }
        Ok(Expander {
            stream: name.into(),
            inherited: inherited_level,
            overrides: built,
            quirks: merge(merge(Quirks::default(), &self.spec.quirks), &stream_quirks),
            ctx: Ctx::default().merged(&self.spec.ctx).merged(&stream_ctx),
        })
    }

    /// An expectation written at `at` as packets use it: its recipe built,
    /// the pcap it compares with loaded, which must hold `needs` packets
    /// (of stream `name`).
    fn level(
        &mut self,
        expect: Option<Expect>,
        at: &YPath,
        (name, needs): (&str, usize),
    ) -> Result<Level, ScenarioError> {
        let mut level = Level::default();
        if let Some(recipe) = expect.as_ref().and_then(|e| e.packet.as_ref()) {
            level.recipe_output = Some(self.build_recipe(&at.key("packet"), recipe)?);
        }
        if let Some(rel) = expect.as_ref().and_then(|e| e.equals.as_ref()) {
            let key = self.equals_pcap(&at.key("equals"), rel)?;
            let pcap = Arc::clone(&self.equals[&key]);
            if pcap.len() < needs {
                return Err(self.at_value(
                    &at.key("equals"),
                    format!(
                        "{} has {} packets; stream `{name}` needs {needs} (its packet N is compared with packet N)",
                        self.resolve(rel).display(),
                        pcap.len()
                    ),
                ));
            }
            level.equals = Some(pcap);
        }
        level.expect = expect.map(Arc::new);
        Ok(level)
    }

    /// Builds a packet from its layer recipe; the error names the recipe.
    pub(super) fn build_recipe(
        &self,
        at: &YPath,
        recipe: &PacketRecipe,
    ) -> Result<Vec<u8>, ScenarioError> {
        let value = serde_json::json!({
            "layers": recipe.layers,
            "cut": recipe.cut,
            "mutate": recipe.mutate,
        });
        let spec: PacketSpec = serde_json::from_value(value)
            .map_err(|e| self.at_value(&at.key("layers"), format!("not a packet recipe: {e}")))?;
        spec.build()
            .map_err(|e| self.at_value(&at.key("layers"), format!("cannot build the packet: {e}")))
    }

    /// Reads an `expect.equals` pcap into `self.equals` (once per file);
    /// returns its key there.
    pub(super) fn equals_pcap(&mut self, at: &YPath, rel: &Path) -> Result<PathBuf, ScenarioError> {
        let path = self.resolve(rel);
        if !self.equals.contains_key(&path) {
            let packets = pcap::read_file(&path)
                .map_err(|e| self.at_value(at, format!("cannot use pcap: {e}")))?;
            self.equals.insert(path.clone(), Arc::new(packets));
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
            return Ok((Vec::new(), Vec::new(), Vec::new(), Vec::new()));
        };
        let at = YPath::root().key("after");
        let mut counters = Vec::new();
        let mut lb_counters = Vec::new();
        for (name, &total) in &after.counters {
            let c = self.check_counter(&at.key("counters").key(name), true, name, programs)?;
            counters.extend(c.decap.map(|c| (c, total)));
            lb_counters.extend(c.lb.map(|c| (c, total)));
        }
        let maps = self.after_maps(&at.key("maps"), &after.maps, programs)?;
        let globals = self.after_globals(&at.key("globals"), &after.globals, programs)?;
        Ok((counters, lb_counters, maps, globals))
    }
}

/// The inherited expectation with `more` on top: `more`'s keys win,
/// `fields` and `ctx` merge key by key.
fn merge_expect(inherited: Option<Expect>, more: &Expect) -> Expect {
    let base = inherited.unwrap_or_default();
    let mut fields = base.fields;
    fields.extend(more.fields.clone());
    let ctx = match (base.ctx, &more.ctx) {
        (Some(base), Some(more)) => Some(CtxSpec {
            mark: more.mark.or(base.mark),
            priority: more.priority.or(base.priority),
            ifindex: more.ifindex.or(base.ifindex),
            ingress_ifindex: more.ingress_ifindex.or(base.ingress_ifindex),
            cb: more.cb.clone().or(base.cb),
            tstamp: more.tstamp.or(base.tstamp),
            rx_queue_index: more.rx_queue_index.or(base.rx_queue_index),
        }),
        (base, more) => more.clone().or(base),
    };
    Expect {
        verdict: more.verdict.clone().or(base.verdict),
        output: more.output.or(base.output),
        fields,
        equals: more.equals.clone().or(base.equals),
        counter: more.counter.clone().or(base.counter),
        drop_reason: more.drop_reason.clone().or(base.drop_reason),
        ctx,
        packet: more.packet.clone().or(base.packet),
    }
}
