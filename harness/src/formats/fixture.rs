//! Fixture definitions: what each pcap means.
//!
//! A fixture set is a YAML file `fixtures/NAME.yaml` describing the packets
//! of one pcap (by default `pcaps/NAME.pcap`; a `pcap:` key gives another
//! path, relative to the YAML file's directory so that a set can be read
//! from any working directory). The YAML is the source: `dsrlab fixtures
//! gen` ([`generate`]) builds its packets and writes the pcap, which is kept
//! in the repository so that Wireshark and other tools can open it, and which
//! [`FixtureSet::check_pcap`] proves is not stale.
//!
//! ```yaml
//! description: IPv4-in-IPv4 decapsulation
//! provenance: hand-written for dsrlab
//! packets:
//!   - name: ip4in4-tcp
//!     layers: [eth, {ipv4: {tos: 0xb8}}, ipv4, {tcp: {flags: S}}, {payload: {len: 8}}]
//!     expect: decap decap_ip4_in_ip4      # outcome (decap|pass|drop), counter
//!     quirks: {checksum: complete}        # optional: checksum: complete, linear: N
//!     cuts:                               # optional family, see below
//!       eth: pass pass_malformed
//!       ipv4[0]: pass pass_malformed
//!       "*": drop drop_malformed_tunnel
//! ```
//!
//! A packet is a [`PacketSpec`] (`layers`, optional `cut` and `mutate`, see
//! [`crate::formats::packet::spec`]) plus its expectation. Two optional keys
//! expand one packet into a family, one packet per *boundary*: the end of
//! every header and one byte short of it (and one byte short of the whole
//! packet):
//! - `truncations`: the bytes are cut there (`mutate: [truncate: N]`); the
//!   headers still claim the full lengths. Names: `NAME/trunc-N`.
//! - `cuts`: the packet is built as if only N bytes had been sent (`cut:
//!   N`): every header that is still whole has its lengths and checksums
//!   fitted. Names: `NAME/cut-N`.
//!
//! Each maps the layer the boundary truncates (the first whose header is not
//! whole: a label such as `eth`, `ipv4[1]`, `tcp`, `payload`) to the
//! expectation; a key may also be a byte count (`"54"`) for one member, or
//! `"*"` for every layer not listed.
//!
//! YAML anchors and merge keys (`<<: *base`) work for sharing layers
//! between packets.

use std::{
    collections::{BTreeMap, HashSet},
    fmt,
    path::{Component, Path, PathBuf},
};

use dsrlab_abi::decap::Counter;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{
    packet::{
        LayerSpec, Mutation, PacketSpec, diff,
        spec::{BuiltLayer, EthSpec},
    },
    pcap::{self, PcapError},
};

/// What a correct decap program does with a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Passes it on decapsulated.
    Decap,
    /// Passes it on untouched.
    Pass,
    /// Drops it.
    Drop,
}

impl Outcome {
    /// `decap`, `pass` or `drop`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Decap => "decap",
            Self::Pass => "pass",
            Self::Drop => "drop",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The expected outcome of one packet and the one counter that counts it.
/// Written `outcome counter` in YAML (`decap decap_ip4_in_ip4`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct Expectation {
    /// What happens to the packet.
    pub outcome: Outcome,
    /// The counter it increments.
    pub counter: Counter,
}

impl TryFrom<String> for Expectation {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl std::str::FromStr for Expectation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut words = s.split_whitespace();
        let (Some(outcome), Some(counter), None) = (words.next(), words.next(), words.next())
        else {
            return Err(format!(
                "expectation `{s}` is not `OUTCOME COUNTER` (e.g. `pass pass_not_tunnel`)"
            ));
        };
        let outcome = match outcome {
            "decap" => Outcome::Decap,
            "pass" => Outcome::Pass,
            "drop" => Outcome::Drop,
            other => {
                return Err(format!(
                    "unknown outcome `{other}`: expected decap, pass or drop"
                ));
            }
        };
        let counter = Counter::from_name(counter).ok_or_else(|| {
            let names: Vec<&str> = Counter::ALL.iter().map(|c| c.name()).collect();
            format!(
                "unknown counter `{counter}`: expected one of {}",
                names.join(", ")
            )
        })?;
        // Every counter belongs to one outcome; a mismatch is a typo.
        let implied = if counter.is_decap() {
            Outcome::Decap
        } else if counter.name().starts_with("drop_") {
            Outcome::Drop
        } else {
            Outcome::Pass
        };
        if implied != outcome {
            return Err(format!(
                "counter `{}` counts `{implied}` packets, not `{outcome}`",
                counter.name()
            ));
        }
        Ok(Self { outcome, counter })
    }
}

impl fmt::Display for Expectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.outcome, self.counter.name())
    }
}

/// How the NIC delivers a packet, beyond its bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(from = "RawQuirks")]
pub struct Quirks {
    /// Delivered CHECKSUM_COMPLETE, as mlx5 does (`checksum: complete`).
    pub checksum_complete: bool,
    /// Delivered CHECKSUM_UNNECESSARY, level 0: the NIC validated the
    /// outermost checksum (`checksum: unnecessary`).
    pub checksum_unnecessary: bool,
    /// Only the first N bytes linear, the rest in page frags (`linear: N`).
    pub linear: Option<u32>,
    /// The context it arrives with (scenarios' `ctx:`; fixtures have none).
    pub ctx: super::ctx::Ctx,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuirks {
    #[serde(default)]
    checksum: Option<ChecksumQuirk>,
    #[serde(default)]
    linear: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum ChecksumQuirk {
    Complete,
    Unnecessary,
}

impl From<RawQuirks> for Quirks {
    fn from(r: RawQuirks) -> Self {
        Self {
            checksum_complete: matches!(r.checksum, Some(ChecksumQuirk::Complete)),
            checksum_unnecessary: matches!(r.checksum, Some(ChecksumQuirk::Unnecessary)),
            linear: r.linear,
            ctx: super::ctx::Ctx::default(),
        }
    }
}

/// One packet of a fixture set, families expanded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixturePacket {
    /// Unique within the set (`ip4in4-tcp`, `ip4in4-tcp/trunc-34`).
    pub name: String,
    /// The concrete recipe (a family member's includes its cut or
    /// truncation).
    pub spec: PacketSpec,
    /// The bytes the recipe builds.
    pub bytes: Vec<u8>,
    /// What must happen to it.
    pub expect: Expectation,
    /// How it is delivered.
    pub quirks: Quirks,
}

impl FixturePacket {
    /// The packet a correct program passes on: for `decap`, the original
    /// Ethernet header with the EtherType of the inner family followed by
    /// the inner packet and any bytes after the outer packet (padding), all
    /// rebuilt from the spec; for `pass`, the input; for `drop`, `None`.
    ///
    /// Sets loaded by [`FixtureSet::from_yaml_file`] were checked to have one.
    pub fn expected_output(&self) -> Option<Vec<u8>> {
        match self.expect.outcome {
            Outcome::Decap => decap_output(&self.spec, &self.bytes).ok(),
            Outcome::Pass => Some(self.bytes.clone()),
            Outcome::Drop => None,
        }
    }
}

/// A fixture set: the packets of one pcap and what each must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixtureSet {
    /// The YAML file's stem.
    pub name: String,
    /// What the set is for.
    pub description: String,
    /// Where the packets come from.
    pub provenance: String,
    /// The pcap it describes.
    pub pcap: PathBuf,
    /// The packets, in pcap order.
    pub packets: Vec<FixturePacket>,
    /// The YAML file it was read from.
    pub yaml: PathBuf,
}

/// Why a fixture set could not be read, built, or matched with its pcap.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    /// The file could not be read or written.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The YAML does not describe a fixture set.
    #[error("{}{}: {message}", .path.display(), super::location(*.line, *.column))]
    Yaml {
        /// The file.
        path: PathBuf,
        /// 1-based line, when known.
        line: Option<u64>,
        /// 1-based column, when known.
        column: Option<u64>,
        /// What is wrong.
        message: String,
    },
    /// One packet cannot be built or contradicts its expectation.
    #[error("{}{}: packet `{packet}`: {message}", .path.display(), super::location(*.line, *.column))]
    Packet {
        /// The file.
        path: PathBuf,
        /// 1-based line of the packet's name.
        line: Option<u64>,
        /// 1-based column of the packet's name.
        column: Option<u64>,
        /// The packet's name.
        packet: String,
        /// What is wrong.
        message: String,
    },
    /// The pcap could not be read or written.
    #[error(transparent)]
    Pcap(#[from] PcapError),
    /// The pcap does not hold what the YAML builds.
    #[error("{} is stale: {detail} {} (run `dsrlab fixtures gen`)", .pcap.display(), .yaml.display())]
    Stale {
        /// The pcap.
        pcap: PathBuf,
        /// The YAML.
        yaml: PathBuf,
        /// How it differs (`packet 7 differs from`).
        detail: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSet {
    description: String,
    provenance: String,
    #[serde(default)]
    pcap: Option<PathBuf>,
    packets: Vec<RawPacket>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPacket {
    name: Spanned<String>,
    layers: Vec<LayerSpec>,
    #[serde(default)]
    cut: Option<usize>,
    #[serde(default)]
    mutate: Vec<Mutation>,
    expect: Expectation,
    #[serde(default)]
    quirks: Quirks,
    #[serde(default)]
    truncations: Option<BTreeMap<String, Expectation>>,
    #[serde(default)]
    cuts: Option<BTreeMap<String, Expectation>>,
}

impl FixtureSet {
    /// Reads and builds the fixture set in `path`.
    pub fn from_yaml_file(path: &Path) -> Result<Self, FixtureError> {
        let text = std::fs::read_to_string(path).map_err(|source| FixtureError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_yaml_str(&text, path)
    }

    /// Reads and builds a fixture set from YAML `text`; `path` names it in
    /// errors and anchors the relative pcap path.
    pub fn from_yaml_str(text: &str, path: &Path) -> Result<Self, FixtureError> {
        let raw: RawSet = serde_saphyr::from_str(text).map_err(|e| {
            let loc = e.location();
            let mut message = e.without_snippet().to_string();
            // The location leads the message already (`file:line:column:`).
            if let Some(l) = loc
                && let Some(m) =
                    message.strip_suffix(&format!(" at line {}, column {}", l.line(), l.column()))
            {
                message = m.to_owned();
            }
            FixtureError::Yaml {
                path: path.to_owned(),
                line: loc.map(|l| l.line()),
                column: loc.map(|l| l.column()),
                message,
            }
        })?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dir = path.parent().unwrap_or(Path::new(""));
        let pcap = normalize(
            &dir.join(
                raw.pcap
                    .unwrap_or_else(|| Path::new("..").join("pcaps").join(format!("{name}.pcap"))),
            ),
        );
        let mut packets = Vec::new();
        let mut names = HashSet::new();
        for p in raw.packets {
            let (line, column) = (p.name.referenced.line(), p.name.referenced.column());
            let packet_name = p.name.value.clone();
            let err = |message: String, packet: &str| FixtureError::Packet {
                path: path.to_owned(),
                line: Some(line),
                column: Some(column),
                packet: packet.to_owned(),
                message,
            };
            for fp in expand(p).map_err(|m| err(m, &packet_name))? {
                validate(&fp).map_err(|m| err(m, &fp.name))?;
                if !names.insert(fp.name.clone()) {
                    return Err(err("the name is used twice in this set".into(), &fp.name));
                }
                packets.push(fp);
            }
        }
        Ok(Self {
            name,
            description: raw.description,
            provenance: raw.provenance,
            pcap,
            packets,
            yaml: path.to_owned(),
        })
    }

    /// The built packets, in order.
    pub fn packet_bytes(&self) -> Vec<&[u8]> {
        self.packets.iter().map(|p| p.bytes.as_slice()).collect()
    }

    /// Reads the pcap and checks that it holds exactly the packets the YAML
    /// builds.
    pub fn load_pcap(&self) -> Result<Vec<Vec<u8>>, FixtureError> {
        let stale = |detail: String| FixtureError::Stale {
            pcap: self.pcap.clone(),
            yaml: self.yaml.clone(),
            detail,
        };
        if !self.pcap.exists() {
            return Err(stale("it does not exist and is built from".into()));
        }
        let stored = pcap::read_file(&self.pcap)?;
        for (i, (s, p)) in stored.iter().zip(&self.packets).enumerate() {
            if *s != p.bytes {
                let first = diff(&p.bytes, s)
                    .and_then(|d| d.lines().next().map(str::to_owned))
                    .unwrap_or_default();
                return Err(stale(format!(
                    "packet {} (`{}`: {first}) differs from",
                    i + 1,
                    p.name
                )));
            }
        }
        if stored.len() != self.packets.len() {
            return Err(stale(format!(
                "it holds {} packets, {} built by",
                stored.len(),
                self.packets.len()
            )));
        }
        Ok(stored)
    }

    /// Checks that the pcap is not stale (see [`FixtureSet::load_pcap`]).
    pub fn check_pcap(&self) -> Result<(), FixtureError> {
        self.load_pcap().map(drop)
    }

    /// Writes the pcap from the YAML.
    pub fn write_pcap(&self) -> Result<(), FixtureError> {
        if let Some(dir) = self.pcap.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| FixtureError::Io {
                path: dir.to_owned(),
                source,
            })?;
        }
        Ok(pcap::write_file(&self.pcap, &self.packet_bytes())?)
    }
}

/// Builds every `*.yaml` in `fixtures_dir` and writes its pcap; returns each
/// pcap (relative to `repo_root` when inside it) and its packet count.
pub fn generate(
    fixtures_dir: &Path,
    repo_root: &Path,
) -> Result<Vec<(PathBuf, usize)>, FixtureError> {
    let io = |source| FixtureError::Io {
        path: fixtures_dir.to_owned(),
        source,
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(fixtures_dir)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io)?;
    paths.retain(|p| p.extension().is_some_and(|e| e == "yaml"));
    paths.sort();
    let mut written = Vec::new();
    for path in paths {
        let set = FixtureSet::from_yaml_file(&path)?;
        set.write_pcap()?;
        let shown = relative_to(&set.pcap, repo_root);
        written.push((shown, set.packets.len()));
    }
    Ok(written)
}

fn relative_to(path: &Path, root: &Path) -> PathBuf {
    let abs = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_owned());
    abs(path)
        .strip_prefix(abs(root))
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| path.to_owned())
}

/// Removes `.` and `dir/..` without touching the file system, so messages
/// say `pcaps/x.pcap`, not `fixtures/../pcaps/x.pcap`.
fn normalize(p: &Path) -> PathBuf {
    let mut out: Vec<Component<'_>> = Vec::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out.iter().collect()
}

/// The base packet followed by its families.
fn expand(p: RawPacket) -> Result<Vec<FixturePacket>, String> {
    let name = p.name.value;
    let spec = PacketSpec {
        layers: p.layers,
        cut: p.cut,
        mutate: p.mutate,
    };
    let built = spec.build_detailed().map_err(|e| e.to_string())?;
    let mut out = vec![FixturePacket {
        name: name.clone(),
        spec: spec.clone(),
        bytes: built.bytes.clone(),
        expect: p.expect,
        quirks: p.quirks,
    }];
    for (family, map, prefix) in [
        ("truncations", &p.truncations, "trunc"),
        ("cuts", &p.cuts, "cut"),
    ] {
        let Some(map) = map else { continue };
        if prefix == "cut" && (spec.cut.is_some() || !spec.mutate.is_empty()) {
            return Err("`cuts` needs a packet without its own `cut` or `mutate`".into());
        }
        let points = boundaries(&built.layers, built.bytes.len());
        check_keys(family, map, &built.layers, &points)?;
        for (n, label) in points {
            let expect = map
                .get(&n.to_string())
                .or_else(|| map.get(&label))
                .or_else(|| map.get("*"))
                .copied()
                .ok_or_else(|| {
                    format!(
                        "{family}: no expectation for layer `{label}` (at {n} bytes); give `{label}:`, `\"{n}\":` or `\"*\":`"
                    )
                })?;
            let mut s = spec.clone();
            if prefix == "cut" {
                s.cut = Some(n);
            } else {
                s.mutate.push(Mutation::Truncate(n));
            }
            let bytes = s.build().map_err(|e| format!("{family} at {n}: {e}"))?;
            out.push(FixturePacket {
                name: format!("{name}/{prefix}-{n}"),
                spec: s,
                bytes,
                expect,
                quirks: p.quirks,
            });
        }
    }
    Ok(out)
}

/// Byte counts at which to cut a packet of `total` bytes: the end of every
/// header and one byte short of it, and one byte short of the whole packet,
/// each with the label of the layer left incomplete.
fn boundaries(layers: &[BuiltLayer], total: usize) -> Vec<(usize, String)> {
    let mut points: Vec<usize> = layers
        .iter()
        .filter(|l| l.header_len > 0)
        .flat_map(|l| {
            let end = l.offset + l.header_len;
            [end - 1, end]
        })
        .chain(total.checked_sub(1))
        .filter(|n| *n < total)
        .collect();
    points.sort_unstable();
    points.dedup();
    points
        .into_iter()
        .filter_map(|n| {
            layers
                .iter()
                .find(|l| l.header_len > 0 && l.offset + l.header_len > n)
                .map(|l| (n, l.label.clone()))
        })
        .collect()
}

fn check_keys(
    family: &str,
    map: &BTreeMap<String, Expectation>,
    layers: &[BuiltLayer],
    points: &[(usize, String)],
) -> Result<(), String> {
    for key in map.keys() {
        let known = key == "*"
            || layers.iter().any(|l| l.label == *key)
            || points.iter().any(|(n, _)| n.to_string() == *key);
        if !known {
            let labels: Vec<&str> = layers.iter().map(|l| l.label.as_str()).collect();
            let counts: Vec<String> = points.iter().map(|(n, _)| n.to_string()).collect();
            return Err(format!(
                "{family}: `{key}` is neither a layer ({}), a boundary ({}) nor `*`",
                labels.join(", "),
                counts.join(", ")
            ));
        }
    }
    Ok(())
}

/// Checks what can be checked of a packet against its expectation without
/// any program: a `decap` packet must be a tunnel of the kind its counter
/// names, with an expected output.
fn validate(p: &FixturePacket) -> Result<(), String> {
    if p.expect.outcome == Outcome::Decap {
        let layers = p.spec.resolved().layers;
        let (_, _, counter) = decap_layout(&layers)?;
        if counter != p.expect.counter {
            return Err(format!(
                "expects {} but its layers make a {} packet",
                p.expect.counter.name(),
                counter.name()
            ));
        }
        decap_output(&p.spec, &p.bytes)?;
    }
    Ok(())
}

/// For a tunnel stack: (index of the outer IP, index of the inner IP, the
/// decap counter).
fn decap_layout(layers: &[LayerSpec]) -> Result<(usize, usize, Counter), String> {
    use LayerSpec::{Eth, Gue, Ipv4, Ipv6, Udp};
    let not = || "a `decap` packet must be eth, ipv4|ipv6, [udp, [gue]], ipv4|ipv6, …".to_owned();
    if !matches!(layers.first(), Some(Eth(_))) {
        return Err(not());
    }
    let outer_v4 = match layers.get(1) {
        Some(Ipv4(_)) => true,
        Some(Ipv6(_)) => false,
        _ => return Err(not()),
    };
    let (gue, inner) = match (layers.get(2), layers.get(3)) {
        (Some(Udp(_)), Some(Gue(_))) => (true, 4),
        (Some(Udp(_)), _) => (true, 3),
        _ => (false, 2),
    };
    let inner_v4 = match layers.get(inner) {
        Some(Ipv4(_)) => true,
        Some(Ipv6(_)) => false,
        _ => return Err(not()),
    };
    use Counter::*;
    let counter = match (outer_v4, gue, inner_v4) {
        (true, false, true) => DecapIp4InIp4,
        (true, false, false) => DecapIp6InIp4,
        (false, false, true) => DecapIp4InIp6,
        (false, false, false) => DecapIp6InIp6,
        (true, true, true) => DecapGue4InIp4,
        (true, true, false) => DecapGue6InIp4,
        (false, true, true) => DecapGue4InIp6,
        (false, true, false) => DecapGue6InIp6,
    };
    Ok((1, inner, counter))
}

/// The decapsulated frame, rebuilt from the spec; checks that the inner
/// packet rebuilt alone is byte for byte the one inside `input`.
fn decap_output(spec: &PacketSpec, input: &[u8]) -> Result<Vec<u8>, String> {
    let resolved = spec.resolved();
    let (_, inner, _) = decap_layout(&resolved.layers)?;
    let built = spec.build_detailed().map_err(|e| e.to_string())?;
    let inner_off = built.layers[inner].offset;
    let Some(LayerSpec::Eth(eth)) = resolved.layers.first() else {
        unreachable!("decap_layout checked eth")
    };
    let ethertype = if matches!(resolved.layers[inner], LayerSpec::Ipv4(_)) {
        0x0800
    } else {
        0x86dd
    };
    let eth = EthSpec {
        ethertype: Some(ethertype),
        pad_to: None,
        ..eth.clone()
    };
    let mut out = PacketSpec {
        layers: vec![LayerSpec::Eth(eth)],
        ..PacketSpec::default()
    }
    .build()
    .map_err(|e| e.to_string())?;
    let mut inner_spec = PacketSpec {
        layers: resolved.layers[inner..].to_vec(),
        ..PacketSpec::default()
    };
    let inner_full = inner_spec.build().map_err(|e| e.to_string())?.len();
    inner_spec.cut = spec
        .cut
        .map(|c| c.saturating_sub(inner_off))
        .filter(|c| *c < inner_full);
    let inner_bytes = inner_spec.build().map_err(|e| e.to_string())?;
    let inner_end = inner_off + inner_bytes.len();
    if input.get(inner_off..inner_end) != Some(inner_bytes.as_slice()) {
        return Err(format!(
            "the inner packet rebuilt alone differs from bytes {inner_off}..{inner_end} of the packet \
             (a mutation changed it?), so the decapsulated output is undefined"
        ));
    }
    out.extend_from_slice(&inner_bytes);
    out.extend_from_slice(&input[inner_end..]);
    Ok(out)
}
