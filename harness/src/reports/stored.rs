//! Snapshots stored beside a scenario, in insta's file format, so that the
//! same files serve `dsrlab run`, `cargo test` and `cargo insta review`.
//!
//! A scenario `dir/x.yaml` with `snapshot: true` keeps, per program and
//! mode, `dir/snapshots/x@<program>-<mode>.snap` (the text dissection of
//! every packet, or a topology's flows) and, for packet runs,
//! `...-output.snap` with its `...-output.snap.pcap` (the output packets,
//! which Wireshark opens). A snapshot that differs or is new is written
//! next to it as `.snap.new` (insta's pending snapshot) for review, never
//! over it — unless the policy accepts, and never in CI.

use std::{
    fmt::Write as _,
    fs, io,
    path::{Path, PathBuf},
};

use similar::{ChangeTag, TextDiff};

use super::{snapshot, topology};
use crate::{
    formats::scenario::load::LoadedScenario,
    runner::{
        SuiteReport,
        scenario::{RunOutcome, ScenarioReport},
    },
};

/// What to do with a snapshot that differs from the stored one or is new.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Compare only; write nothing (CI).
    Check,
    /// Write `.snap.new` for review (the default outside CI).
    Pending,
    /// Write the new snapshot over the stored one.
    Accept,
}

impl Policy {
    /// `Check` in CI (the `CI` variable set, as CI systems do), else
    /// `Pending`.
    pub fn from_environment() -> Self {
        if std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0") {
            Self::Check
        } else {
            Self::Pending
        }
    }
}

/// What became of one snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Equal to the stored one.
    Matched,
    /// Written over (or as) the stored one (`Policy::Accept`).
    Accepted,
    /// There is no stored one; under `Pending` it was written as `.snap.new`.
    New,
    /// It differs from the stored one (the diff, layer by layer for
    /// dissections); under `Pending` it was written as `.snap.new`.
    Changed(String),
    /// Not compared, and why: the running kernel changed what some of the
    /// packets must do (each noted in the report), and stored snapshots
    /// record a kernel that does what the scenario says.
    NotCompared(String),
}

impl Outcome {
    /// Whether the run should fail for it.
    pub const fn fails(&self) -> bool {
        matches!(self, Self::New | Self::Changed(_))
    }
}

/// One snapshot of a scenario's run.
#[derive(Clone, Debug)]
pub struct Checked {
    /// `x@program-mode`, `x@program-mode-output`.
    pub name: String,
    /// The stored file.
    pub path: PathBuf,
    /// What became of it.
    pub outcome: Outcome,
}

/// A snapshot's content: text, or a pcap.
enum Content {
    Text(String),
    Pcap(Vec<u8>),
}

/// Compares every snapshot of `report` (a run of `scenario`, which must
/// have `snapshot: true`) with the stored ones and acts on differences
/// according to `policy`.
pub fn check(
    scenario: &LoadedScenario,
    report: &ScenarioReport,
    policy: Policy,
) -> io::Result<Vec<Checked>> {
    let dir = snapshot_dir(&scenario.path);
    // Snapshots show every packet's input: scenarios that keep one are
    // small enough to hold their inputs.
    let inputs: Vec<Vec<u8>> = scenario
        .packets
        .iter()
        .map(|p| p.into_owned().bytes)
        .collect();
    let mut out = Vec::new();
    for run in &report.runs {
        let name = format!("{}@{}-{}", scenario.name, run.program, run.mode.name());
        let contents = match &run.outcome {
            RunOutcome::Topology(t) => vec![(name, Content::Text(topology::snapshot(t)))],
            RunOutcome::Ran { report: suite, .. } if noted(suite) > 0 => {
                let noted = noted(suite);
                for name in [name.clone(), format!("{name}-output")] {
                    out.push(Checked {
                        path: dir.join(format!("{}.snap", super::scenario::sanitize(&name))),
                        name,
                        outcome: Outcome::NotCompared(format!(
                            "this kernel changes what {noted} packet(s) must do (noted in the report)"
                        )),
                    });
                }
                continue;
            }
            RunOutcome::Ran { report: suite, .. } => vec![
                (
                    name.clone(),
                    Content::Text(snapshot::dissection_of(
                        &inputs.iter().map(Vec::as_slice).collect::<Vec<_>>(),
                        suite,
                    )),
                ),
                (
                    format!("{name}-output"),
                    Content::Pcap(snapshot::output_pcap(suite)),
                ),
            ],
            RunOutcome::Skipped(_) | RunOutcome::SetupFailed(_) => continue,
        };
        for (name, content) in contents {
            let path = dir.join(format!("{}.snap", super::scenario::sanitize(&name)));
            let outcome = compare_and_store(&path, &scenario.path, &content, policy)?;
            out.push(Checked {
                name,
                path,
                outcome,
            });
        }
    }
    Ok(out)
}

/// How many of a run's packets the running kernel judged otherwise.
fn noted(suite: &SuiteReport) -> usize {
    suite.folded_notes.packets + suite.packets.iter().filter(|p| !p.notes.is_empty()).count()
}

/// `dir/snapshots` of a scenario `dir/x.yaml`.
pub fn snapshot_dir(scenario: &Path) -> PathBuf {
    scenario
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join("snapshots")
}

fn compare_and_store(
    path: &Path,
    scenario: &Path,
    content: &Content,
    policy: Policy,
) -> io::Result<Outcome> {
    let stored = read_stored(path)?;
    let outcome = match (&stored, content) {
        (None, _) => Outcome::New,
        (Some(Stored::Text(old)), Content::Text(new)) if old.trim_end() == new.trim_end() => {
            Outcome::Matched
        }
        (Some(Stored::Pcap(old)), Content::Pcap(new)) if old == new => Outcome::Matched,
        (Some(Stored::Text(old)), Content::Text(new)) => Outcome::Changed(diff(old, new)),
        (Some(_), Content::Pcap(new)) => Outcome::Changed(format!(
            "the output pcap differs ({} bytes now); the text snapshot shows how",
            new.len()
        )),
        (Some(Stored::Pcap(_)), Content::Text(new)) => Outcome::Changed(diff("", new)),
    };
    match (policy, &outcome) {
        (_, Outcome::Matched) | (Policy::Check, _) => Ok(outcome),
        (Policy::Accept, _) => {
            write(path, scenario, content)?;
            remove_pending(path)?;
            Ok(Outcome::Accepted)
        }
        (Policy::Pending, _) => {
            write(&pending(path), scenario, content)?;
            Ok(outcome)
        }
    }
}

enum Stored {
    Text(String),
    Pcap(Vec<u8>),
}

/// The stored snapshot's content (the text after insta's header, or the
/// pcap beside a binary snapshot's header), if there is one.
fn read_stored(path: &Path) -> io::Result<Option<Stored>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let (header, body) = split_header(&text);
    if header.contains("snapshot_kind: binary") {
        let pcap = sibling(path, "pcap");
        return match fs::read(&pcap) {
            Ok(bytes) => Ok(Some(Stored::Pcap(bytes))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        };
    }
    Ok(Some(Stored::Text(body.to_owned())))
}

/// insta's header (`---` … `---`) and the content after it.
fn split_header(text: &str) -> (&str, &str) {
    let Some(rest) = text.strip_prefix("---\n") else {
        return ("", text);
    };
    match rest.find("\n---\n") {
        Some(end) => (&rest[..end], &rest[end + 5..]),
        None => ("", text),
    }
}

/// `x.snap` → `x.snap.new`.
fn pending(path: &Path) -> PathBuf {
    sibling(path, "new")
}

/// `x.snap` → `x.snap.<ext>`.
fn sibling(path: &Path, ext: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(ext);
    PathBuf::from(name)
}

fn write(path: &Path, scenario: &Path, content: &Content) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let mut header = format!(
        "---\nsource: dsrlab\nexpression: {}\ninput_file: {}\n",
        path.file_stem().unwrap_or_default().to_string_lossy(),
        scenario.display()
    );
    match content {
        Content::Text(text) => {
            header.push_str("---\n");
            fs::write(path, header + text)
        }
        Content::Pcap(bytes) => {
            header.push_str("extension: pcap\nsnapshot_kind: binary\n---\n");
            fs::write(path, header)?;
            fs::write(sibling(path, "pcap"), bytes)
        }
    }
}

fn remove_pending(path: &Path) -> io::Result<()> {
    let new = pending(path);
    for file in [sibling(&new, "pcap"), new] {
        match fs::remove_file(&file) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// A line diff (dissections have one layer per line), with a few lines of
/// context around each change.
pub fn diff(old: &str, new: &str) -> String {
    let diff = TextDiff::from_lines(old, new);
    let mut out = String::new();
    for group in diff.grouped_ops(2) {
        let _ = writeln!(out, "@@");
        for op in group {
            for change in diff.iter_changes(&op) {
                let sign = match change.tag() {
                    ChangeTag::Delete => '-',
                    ChangeTag::Insert => '+',
                    ChangeTag::Equal => ' ',
                };
                let _ = write!(out, "{sign}{}", change.value());
                if change.missing_newline() {
                    out.push('\n');
                }
            }
        }
    }
    out
}

/// A pending snapshot and what accepting it would change.
#[derive(Clone, Debug)]
pub struct Pending {
    /// The stored snapshot it would replace (which may not exist).
    pub path: PathBuf,
    /// The diff from the stored snapshot (or the whole content, if new).
    pub diff: String,
}

/// The pending snapshots (`*.snap.new`) in `dir`, sorted.
pub fn pending_in(dir: &Path) -> io::Result<Vec<Pending>> {
    let mut found = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        let Some(stored) = path
            .to_str()
            .and_then(|p| p.strip_suffix(".new"))
            .filter(|p| p.ends_with(".snap"))
            .map(PathBuf::from)
        else {
            continue;
        };
        let new = match read_stored(&path)? {
            Some(Stored::Text(text)) => Content::Text(text),
            Some(Stored::Pcap(bytes)) => Content::Pcap(bytes),
            None => continue,
        };
        let diff = match (read_stored(&stored)?, &new) {
            (Some(Stored::Text(old)), Content::Text(new)) => diff(&old, new),
            (None, Content::Text(new)) => diff("", new),
            (_, Content::Pcap(bytes)) => format!("output pcap of {} bytes", bytes.len()),
            (Some(Stored::Pcap(_)), Content::Text(new)) => diff("", new),
        };
        found.push(Pending { path: stored, diff });
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(found)
}

/// Accepts a pending snapshot: `.snap.new` (and its pcap) replace the
/// stored one.
pub fn accept(pending: &Pending) -> io::Result<()> {
    let new = self::pending(&pending.path);
    let new_pcap = sibling(&new, "pcap");
    if new_pcap.exists() {
        fs::rename(&new_pcap, sibling(&pending.path, "pcap"))?;
    }
    fs::rename(&new, &pending.path)
}

/// Rejects a pending snapshot: `.snap.new` (and its pcap) are removed.
pub fn reject(pending: &Pending) -> io::Result<()> {
    remove_pending(&pending.path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_is_new_then_pending_then_accepted_then_matched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snapshots/x@p-test-run.snap");
        let scenario = dir.path().join("x.yaml");
        let text = |t: &str| Content::Text(t.to_owned());
        assert_eq!(
            compare_and_store(&path, &scenario, &text("a\nb\n"), Policy::Check).unwrap(),
            Outcome::New
        );
        assert!(
            !path.exists() && !pending(&path).exists(),
            "Check writes nothing"
        );
        assert_eq!(
            compare_and_store(&path, &scenario, &text("a\nb\n"), Policy::Pending).unwrap(),
            Outcome::New
        );
        let found = pending_in(&dir.path().join("snapshots")).unwrap();
        assert_eq!(found.len(), 1);
        assert!(found[0].diff.contains("+a\n+b\n"), "{}", found[0].diff);
        accept(&found[0]).unwrap();
        assert_eq!(
            compare_and_store(&path, &scenario, &text("a\nb\n"), Policy::Check).unwrap(),
            Outcome::Matched
        );
        let Outcome::Changed(d) =
            compare_and_store(&path, &scenario, &text("a\nc\n"), Policy::Pending).unwrap()
        else {
            panic!("a change is a change");
        };
        assert!(d.contains("-b\n+c\n"), "{d}");
        let found = pending_in(&dir.path().join("snapshots")).unwrap();
        reject(&found[0]).unwrap();
        assert!(
            pending_in(&dir.path().join("snapshots"))
                .unwrap()
                .is_empty()
        );
        // A binary snapshot keeps its pcap beside the header, as insta does.
        let pcap = Content::Pcap(vec![1, 2, 3]);
        let bin = dir.path().join("snapshots/x@p-test-run-output.snap");
        compare_and_store(&bin, &scenario, &pcap, Policy::Accept).unwrap();
        assert_eq!(fs::read(sibling(&bin, "pcap")).unwrap(), [1, 2, 3]);
        assert!(
            fs::read_to_string(&bin)
                .unwrap()
                .contains("snapshot_kind: binary")
        );
        assert_eq!(
            compare_and_store(&bin, &scenario, &pcap, Policy::Check).unwrap(),
            Outcome::Matched
        );
    }
}
