//! A scenario's packets, stream after stream: expanded in memory where a
//! stream is small (fixtures, inline packets), read from its pcap or
//! generated again as the run goes where it is a replay or a generator — a
//! capture of ten million packets or a million generated ones is never held
//! whole.
//!
//! All kinds are expanded by the same [`Expander`] (the stream's
//! expectations, quirks and context, checked when the scenario loaded), so
//! a packet is the same whichever way it was read.

use std::{
    borrow::Cow,
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use super::{
    generate::Packets,
    load::ScenarioPacket,
    model::{CtxSpec, Expect, QuirksSpec},
};
use crate::formats::{
    ctx::Ctx,
    fixture::{Expectation, Quirks},
    pcap::{PacketStream, PcapError},
};

/// One raw packet of a stream: (name, bytes, the fixture's quirks, the
/// fixture's expectation, the fixture's expected output).
pub(crate) type Raw = (
    String,
    Vec<u8>,
    Quirks,
    Option<Expectation>,
    Option<Vec<u8>>,
);

/// An expectation as it applies to a packet: the `expect:`, the output
/// built from its `packet:` recipe, the pcap its `equals:` names.
#[derive(Clone, Debug, Default)]
pub(crate) struct Level {
    pub expect: Option<Arc<Expect>>,
    pub recipe_output: Option<Vec<u8>>,
    pub equals: Option<Arc<Vec<Vec<u8>>>>,
}

/// A packet's own entry under `packets:` (or inline): its expectation,
/// when it has one, and quirks and context over the stream's.
#[derive(Clone, Debug)]
pub(crate) struct Override {
    pub level: Option<Level>,
    pub quirks: QuirksSpec,
    pub ctx: CtxSpec,
}

/// How a stream's raw packets become scenario packets.
#[derive(Clone, Debug)]
pub(crate) struct Expander {
    pub stream: Arc<str>,
    /// The stream's expectation, else the scenario's.
    pub inherited: Level,
    pub overrides: BTreeMap<u32, Override>,
    /// The scenario's quirks, then the stream's.
    pub quirks: Quirks,
    /// The scenario's context, then the stream's.
    pub ctx: Ctx,
}

impl Expander {
    /// The `k`-th (0-based) packet of the stream.
    pub fn expand(&self, k: usize, raw: Raw) -> ScenarioPacket {
        let (name, bytes, fixture_quirks, fixture, fixture_output) = raw;
        let number = u32::try_from(k + 1).unwrap_or(u32::MAX);
        let o = self.overrides.get(&number);
        let level = o.and_then(|o| o.level.as_ref()).unwrap_or(&self.inherited);
        let mut expected_output = fixture_output;
        if let Some(output) = &level.recipe_output {
            expected_output = Some(output.clone());
        }
        if let Some(output) = level.equals.as_ref().and_then(|pcap| pcap.get(k)) {
            expected_output = Some(output.clone());
        }
        let quirks = super::load::merge(
            super::load::fixture_quirks_over(self.quirks, fixture_quirks),
            &o.map(|o| o.quirks).unwrap_or_default(),
        );
        let mut ctx = self.ctx;
        if let Some(o) = o {
            ctx = ctx.merged(&o.ctx);
        }
        ctx.read_back = level.expect.as_ref().is_some_and(|e| e.ctx.is_some());
        ScenarioPacket {
            stream: self.stream.clone(),
            number,
            name,
            bytes,
            quirks: Quirks { ctx, ..quirks },
            expect: level.expect.clone(),
            fixture,
            expected_output,
        }
    }
}

/// Which packets a worker takes, by their bytes: the same answer for every
/// packet of a flow (a generated flow's later packets are not built once
/// its first is refused).
pub type Keep = dyn Fn(&[u8]) -> bool + Sync;

/// Where a lazily read stream's raw packets come from.
#[derive(Clone, Debug)]
pub(crate) enum Source {
    /// A classic pcap file.
    Pcap(PathBuf),
    /// A generator's packets, not yet taken: each iteration takes a clone.
    Generated(Box<Packets>),
}

/// One stream's packets.
#[derive(Clone, Debug)]
enum Part {
    /// Expanded when the scenario loaded.
    Expanded(Vec<ScenarioPacket>),
    /// Read or generated as the run goes: `count` packets, checked when
    /// the scenario loaded.
    Lazy {
        source: Source,
        count: usize,
        largest: usize,
        expander: Box<Expander>,
    },
}

/// Every packet of a scenario, in traffic order.
#[derive(Clone, Debug, Default)]
pub struct Traffic {
    parts: Vec<Part>,
    len: usize,
    /// Why a replay could not be read to its end, by any iteration since
    /// the last [`Traffic::take_error`].
    failed: Arc<Mutex<Option<String>>>,
}

impl Traffic {
    /// Adds a stream expanded in memory.
    pub(crate) fn push_expanded(&mut self, packets: Vec<ScenarioPacket>) {
        self.len += packets.len();
        self.parts.push(Part::Expanded(packets));
    }

    /// Adds a stream read from `source` as the run goes, of `count`
    /// packets (the largest `largest` bytes), expanded by `expander`.
    pub(crate) fn push_lazy(
        &mut self,
        source: Source,
        (count, largest): (usize, usize),
        expander: Expander,
    ) {
        self.len += count;
        self.parts.push(Part::Lazy {
            source,
            count,
            largest,
            expander: Box::new(expander),
        });
    }

    /// Packets in all.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The largest packet's length.
    pub fn largest(&self) -> usize {
        self.parts
            .iter()
            .map(|part| match part {
                Part::Expanded(packets) => packets.iter().map(|p| p.bytes.len()).max().unwrap_or(0),
                Part::Lazy { largest, .. } => *largest,
            })
            .max()
            .unwrap_or(0)
    }

    /// Whether any packet's quirks satisfy `test` (replays: their
    /// stream's quirks and their packets' own overrides, the only places
    /// quirks come from).
    pub fn any_quirks(&self, test: impl Fn(&Quirks) -> bool) -> bool {
        self.parts.iter().any(|part| match part {
            Part::Expanded(packets) => packets.iter().any(|p| test(&p.quirks)),
            Part::Lazy { expander, .. } => {
                test(&expander.quirks)
                    || expander
                        .overrides
                        .keys()
                        .any(|&n| test(&expander.expand(n as usize - 1, placeholder()).quirks))
            }
        })
    }

    /// Whether any packet's expectation may satisfy `test`, without reading
    /// or generating a lazily read stream (its stream's expectation and its
    /// packets' own, the only places expectations come from; the stream's
    /// counts even if every packet has its own).
    pub fn any_expect(&self, test: impl Fn(&Expect) -> bool) -> bool {
        self.parts.iter().any(|part| match part {
            Part::Expanded(packets) => packets
                .iter()
                .any(|p| p.expect.as_deref().is_some_and(&test)),
            Part::Lazy { expander, .. } => {
                expander.inherited.expect.as_deref().is_some_and(&test)
                    || expander.overrides.values().any(|o| {
                        o.level
                            .as_ref()
                            .and_then(|l| l.expect.as_deref())
                            .is_some_and(&test)
                    })
            }
        })
    }

    /// Every packet, in order; a replay reads its pcap as it goes. A read
    /// that fails (the file changed since the scenario loaded) ends the
    /// iteration, and [`Traffic::take_error`] says why.
    pub fn iter(&self) -> TrafficIter<'_> {
        TrafficIter {
            parts: self.parts.iter(),
            current: Current::None,
            failed: &self.failed,
            keep: None,
            position: 0,
        }
    }

    /// The packets whose bytes `keep` takes, each with its 0-based
    /// position in the whole traffic: a worker's share. A replay's other
    /// packets are read but never expanded.
    pub fn select<'a>(
        &'a self,
        keep: &'a Keep,
    ) -> impl Iterator<Item = (usize, Cow<'a, ScenarioPacket>)> + 'a {
        let mut packets = self.iter();
        packets.keep = Some(keep);
        std::iter::from_fn(move || {
            let packet = packets.next()?;
            Some((packets.position - 1, packet))
        })
    }

    /// Why an iteration ended before the traffic's end, if one did (a run
    /// that read part of its traffic checked part of it: a setup failure).
    pub fn take_error(&self) -> Option<String> {
        self.failed.lock().ok()?.take()
    }

    /// Packet `i` (0-based); a replay's is read from its pcap.
    pub fn get(&self, i: usize) -> Option<Cow<'_, ScenarioPacket>> {
        self.iter().nth(i)
    }
}

fn placeholder() -> Raw {
    (String::new(), Vec::new(), Quirks::default(), None, None)
}

impl<'a> IntoIterator for &'a Traffic {
    type Item = Cow<'a, ScenarioPacket>;
    type IntoIter = TrafficIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// A packet's own name, if it has one, and bytes.
type NamedBytes = (Option<String>, Vec<u8>);

/// A lazily read stream, open.
enum Reader {
    Pcap(PacketStream),
    Generated(Box<Packets>),
}

impl Reader {
    fn open(source: &Source) -> Result<Self, String> {
        match source {
            Source::Pcap(path) => PacketStream::open(path)
                .map(Self::Pcap)
                .map_err(|e| e.to_string()),
            Source::Generated(packets) => Ok(Self::Generated(packets.clone())),
        }
    }

    /// The generated flow the next packet belongs to (none for captures).
    fn next_flow(&self) -> Option<usize> {
        match self {
            Self::Pcap(_) => None,
            Self::Generated(packets) => packets.next_flow(),
        }
    }

    /// Passes over the next generated packet without building it.
    fn pass_over(&mut self) -> bool {
        match self {
            Self::Pcap(_) => false,
            Self::Generated(packets) => packets.pass_over(),
        }
    }

    /// The next packet's name, if it has one of its own (a capture's
    /// packets are named by their number, when taken), and bytes.
    fn next(&mut self) -> Option<Result<NamedBytes, String>> {
        match self {
            Self::Pcap(stream) => Some(
                stream
                    .next()?
                    .map(|bytes| (None, bytes))
                    .map_err(|e| e.to_string()),
            ),
            Self::Generated(packets) => Some(
                packets
                    .next()?
                    .map(|p| (Some(p.name), p.bytes))
                    .map_err(|e| e.to_string()),
            ),
        }
    }
}

enum Current<'a> {
    None,
    Expanded(std::slice::Iter<'a, ScenarioPacket>),
    Lazy {
        reader: Reader,
        source: &'a Source,
        expander: &'a Expander,
        k: usize,
        count: usize,
        /// A generated flow whose first packet `keep` refused.
        refused: Option<usize>,
    },
}

/// The packets of a [`Traffic`], in order.
pub struct TrafficIter<'a> {
    parts: std::slice::Iter<'a, Part>,
    current: Current<'a>,
    failed: &'a Mutex<Option<String>>,
    /// Only packets whose bytes this takes (the others skipped).
    keep: Option<&'a Keep>,
    /// Packets passed so far, taken or skipped.
    position: usize,
}

/// Records why an iteration of the traffic ended early (the first reason).
fn fail(failed: &Mutex<Option<String>>, error: String) {
    if let Ok(mut failed) = failed.lock() {
        failed.get_or_insert(error);
    }
}

impl<'a> Iterator for TrafficIter<'a> {
    type Item = Cow<'a, ScenarioPacket>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match &mut self.current {
                Current::Expanded(packets) => {
                    if let Some(p) = packets.next() {
                        self.position += 1;
                        if self.keep.is_some_and(|keep| !keep(&p.bytes)) {
                            continue;
                        }
                        return Some(Cow::Borrowed(p));
                    }
                }
                Current::Lazy {
                    reader,
                    source,
                    expander,
                    k,
                    count,
                    refused,
                } => {
                    if *k < *count {
                        let flow = reader.next_flow();
                        if flow.is_some() && flow == *refused && reader.pass_over() {
                            *k += 1;
                            self.position += 1;
                            continue;
                        }
                        match reader.next() {
                            Some(Ok((name, bytes))) => {
                                let at = *k;
                                *k += 1;
                                self.position += 1;
                                if self.keep.is_some_and(|keep| !keep(&bytes)) {
                                    *refused = flow;
                                    continue;
                                }
                                let name = name.unwrap_or_else(|| format!("#{}", at + 1));
                                let raw = (name, bytes, Quirks::default(), None, None);
                                return Some(Cow::Owned(expander.expand(at, raw)));
                            }
                            Some(Err(e)) => {
                                fail(self.failed, e);
                                return None;
                            }
                            None => {
                                fail(self.failed, ended_early(source, *k, *count));
                                return None;
                            }
                        }
                    }
                }
                Current::None => {}
            }
            self.current = match self.parts.next()? {
                Part::Expanded(packets) => Current::Expanded(packets.iter()),
                Part::Lazy {
                    source,
                    count,
                    expander,
                    ..
                } => match Reader::open(source) {
                    Ok(reader) => Current::Lazy {
                        reader,
                        source,
                        expander,
                        k: 0,
                        count: *count,
                        refused: None,
                    },
                    Err(e) => {
                        fail(self.failed, e);
                        return None;
                    }
                },
            };
        }
    }
}

/// Why a stream ended before the `count` packets it had when the scenario
/// loaded, after `k`.
fn ended_early(source: &Source, k: usize, count: usize) -> String {
    match source {
        Source::Pcap(path) => PcapError {
            path: path.to_path_buf(),
            packet: Some(k + 1),
            what: format!(
                "the replay ended after {k} of the {count} packets it held when the scenario loaded"
            ),
        }
        .to_string(),
        Source::Generated(packets) => format!(
            "stream `{}`: the generator ended after {k} of its {count} packets",
            packets.stream_name()
        ),
    }
}
