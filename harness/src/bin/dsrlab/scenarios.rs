//! `dsrlab run` and `dsrlab check`: scenario files found, loaded, run and
//! reported.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use dsrlab::{
    formats::scenario::load as scenario_load,
    reports::{
        self,
        stored::{self, Outcome, Policy},
    },
    runner::scenario::{self as scenario_runner, RunOptions},
};
use indicatif::{ProgressBar, ProgressStyle};

use super::{Format, partition::Partition};

/// Scenario files named by `paths`: files as given, directories' `*.yaml`
/// (sorted).
fn scenario_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("cannot read directory {}", path.display()))?
                .map(|e| e.map(|e| e.path()))
                .collect::<Result<_, _>>()?;
            found.retain(|p| p.extension().is_some_and(|e| e == "yaml"));
            found.sort();
            if found.is_empty() {
                bail!("{} holds no scenario (*.yaml)", path.display());
            }
            files.extend(found);
        } else if path.exists() {
            files.push(path.clone());
        } else {
            bail!("{}: no such file or directory", path.display());
        }
    }
    Ok(files)
}

pub(super) fn check_scenarios(paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let mut failed = false;
    for file in scenario_files(paths)? {
        match scenario_load::load(&file) {
            Ok(scenario) => println!(
                "{}: ok: {} program(s), {}, modes {}",
                file.display(),
                scenario.programs.len(),
                match &scenario.live {
                    Some(live) => format!(
                        "a topology of {} nodes, {} flow(s), {} capture(s)",
                        live.topology.nodes.len(),
                        live.clients.iter().map(|c| c.flows.len()).sum::<usize>(),
                        live.captures.len()
                    ),
                    None => format!("{} packet(s)", scenario.packets.len()),
                },
                scenario
                    .modes
                    .iter()
                    .map(|m| m.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// Which scenarios a run takes: the files of `paths`, those of them in
/// `partition`'s share, those whose name contains `filter`.
pub(super) struct Selection<'a> {
    pub paths: &'a [PathBuf],
    pub filter: Option<&'a str>,
    pub partition: Option<Partition>,
}

pub(super) fn run_scenarios(
    selection: &Selection<'_>,
    options: &RunOptions,
    format: Format,
    out: Option<(&Path, bool)>,
    strict: bool,
    snapshots: Policy,
) -> anyhow::Result<ExitCode> {
    let mut scenarios = Vec::new();
    // A scenario that cannot be read is reported (an errored case in JUnit)
    // and fails the run with 2; the others still run.
    let mut unreadable = Vec::new();
    let filter = selection.filter;
    let mut files = scenario_files(selection.paths)?;
    if let Some(share) = selection.partition {
        let all = files.len();
        files.retain(|f| share.holds(f));
        eprintln!(
            "partition hash:{}/{}: {} of {all} scenario files",
            share.k,
            share.n,
            files.len()
        );
        if files.is_empty() {
            // The other shares hold them all: an empty share is not a run
            // that checked nothing.
            if format == Format::Junit {
                println!("{}", reports::scenario::junit(&[], &[], &[]));
            }
            return Ok(ExitCode::SUCCESS);
        }
    }
    for file in files {
        let scenario = match scenario_load::load(&file) {
            Ok(scenario) => scenario,
            Err(e) => {
                eprintln!("{e}");
                unreadable.push((file, e.to_string()));
                continue;
            }
        };
        let in_mode = options
            .modes
            .as_ref()
            .is_none_or(|only| scenario.modes.iter().any(|m| only.contains(m)));
        if filter.is_none_or(|f| scenario.name.contains(f)) && in_mode {
            scenarios.push(scenario);
        }
    }
    if scenarios.is_empty() && !unreadable.is_empty() {
        if format == Format::Junit {
            println!("{}", reports::scenario::junit(&[], &[], &unreadable));
        }
        return Ok(ExitCode::from(2));
    }
    if scenarios.is_empty() {
        match &options.modes {
            Some(modes) => bail!(
                "no scenario matches{} in mode {}: nothing would be checked",
                filter.map(|f| format!(" `{f}`")).unwrap_or_default(),
                modes
                    .iter()
                    .map(|m| m.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => bail!("no scenario matches"),
        }
    }
    if let Some(n) = options.packet {
        let lacking: Vec<String> = scenarios
            .iter()
            .filter(|s| s.live.is_none() && n > s.packets.len())
            .map(|s| format!("{} has {}", s.name, s.packets.len()))
            .collect();
        if !lacking.is_empty() || scenarios.iter().all(|s| s.live.is_some()) {
            bail!(
                "--packet {n} matches nothing in {}: nothing would be checked",
                if lacking.is_empty() {
                    "a topology scenario (its traffic is flows, not numbered packets)".to_owned()
                } else {
                    lacking.join(", ")
                }
            );
        }
    }
    let total: u64 = scenarios
        .iter()
        .map(|s| scenario_runner::planned_runs(s, options))
        .sum();
    // Hidden by indicatif when stderr is not a terminal (CI logs).
    let progress = ProgressBar::new(total).with_style(
        ProgressStyle::with_template("{prefix:>24} [{bar:40}] {pos}/{len} packets {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let mut reports = Vec::new();
    let mut written = Vec::new();
    let mut checked_snapshots = Vec::new();
    for scenario in &scenarios {
        progress.set_prefix(scenario.name.clone());
        let report = scenario_runner::run(scenario, options, &mut || progress.inc(1));
        if let Some((dir, pcapng)) = out {
            written.extend(
                reports::scenario::write_failure_pcaps(dir, scenario, &report, pcapng)
                    .with_context(|| format!("cannot write pcaps under {}", dir.display()))?,
            );
        }
        if scenario.spec.snapshot {
            checked_snapshots.extend(stored::check(scenario, &report, snapshots).with_context(
                || format!("cannot keep the snapshots of {}", scenario.path.display()),
            )?);
        }
        reports.push(report);
    }
    progress.finish_and_clear();
    match format {
        Format::Human => {
            print!("{}", reports::scenario::human(&reports, &written));
            print_snapshots(&checked_snapshots, snapshots);
        }
        Format::Json => {
            let mut json = reports::scenario::json(&reports);
            json["snapshots"] = checked_snapshots
                .iter()
                .map(|c| {
                    serde_json::json!({
                        "name": c.name,
                        "path": c.path,
                        "outcome": match &c.outcome {
                            Outcome::Matched => "matched",
                            Outcome::Accepted => "accepted",
                            Outcome::New => "new",
                            Outcome::Changed(_) => "changed",
                            Outcome::NotCompared(_) => "not_compared",
                        },
                        "diff": match &c.outcome {
                            Outcome::Changed(diff) => Some(diff.as_str()),
                            _ => None,
                        },
                        "why": match &c.outcome {
                            Outcome::NotCompared(why) => Some(why.as_str()),
                            _ => None,
                        },
                    })
                })
                .collect::<Vec<_>>()
                .into();
            json["unreadable"] = unreadable
                .iter()
                .map(|(path, error)| serde_json::json!({"path": path, "error": error}))
                .collect::<Vec<_>>()
                .into();
            println!("{}", serde_json::to_string_pretty(&json)?);
        }
        Format::Junit => println!(
            "{}",
            reports::scenario::junit(&reports, &written, &unreadable)
        ),
    }
    if !unreadable.is_empty() {
        return Ok(ExitCode::from(2));
    }
    if checked_snapshots.iter().any(|c| c.outcome.fails()) {
        return Ok(ExitCode::FAILURE);
    }
    let skipped: usize = reports.iter().map(|r| r.skipped()).sum();
    if strict && skipped > 0 {
        eprintln!("--strict: {skipped} skipped (reasons above) fail the run");
        return Ok(ExitCode::FAILURE);
    }
    Ok(if reports.iter().all(|r| r.ok()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// What became of each snapshot that did not simply match.
fn print_snapshots(checked: &[stored::Checked], policy: Policy) {
    for c in checked {
        let what = match (&c.outcome, policy) {
            (Outcome::Matched, _) => continue,
            (Outcome::Accepted, _) => "accepted".to_owned(),
            (Outcome::NotCompared(why), _) => format!("not compared: {why}"),
            (Outcome::New, Policy::Check) => "new, not written (compare only)".to_owned(),
            (Outcome::New, _) => {
                "new: written as .snap.new, review it with `dsrlab review`".to_owned()
            }
            (Outcome::Changed(diff), Policy::Check) => format!("differs:\n{diff}"),
            (Outcome::Changed(diff), _) => {
                format!("differs (written as .snap.new, review it with `dsrlab review`):\n{diff}")
            }
        };
        println!("\nSNAPSHOT {} ({}): {what}", c.name, c.path.display());
    }
}

/// `dsrlab review`: the pending snapshots beside the scenarios `paths`
/// name, each with its diff; accepted or rejected when asked.
pub(super) fn review_snapshots(
    paths: &[PathBuf],
    accept: bool,
    reject: bool,
) -> anyhow::Result<ExitCode> {
    // A scenario's snapshots are `<its name>@...` in its directory's
    // snapshots/ (its name: `name:`, or the file's stem).
    let mut scenarios: Vec<(PathBuf, String)> = Vec::new();
    for file in scenario_files(paths)? {
        let name = scenario_load::load(&file).map_or_else(
            |_| {
                file.file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
            },
            |s| s.name,
        );
        scenarios.push((stored::snapshot_dir(&file), format!("{name}@")));
    }
    let mut count = 0;
    let mut seen = Vec::new();
    for (dir, prefix) in &scenarios {
        for pending in
            stored::pending_in(dir).with_context(|| format!("cannot read {}", dir.display()))?
        {
            let mine = pending
                .path
                .file_name()
                .is_some_and(|f| f.to_string_lossy().starts_with(prefix.as_str()));
            if !mine || seen.contains(&pending.path) {
                continue;
            }
            seen.push(pending.path.clone());
            count += 1;
            println!("PENDING {}\n{}", pending.path.display(), pending.diff);
            if accept {
                stored::accept(&pending)
                    .with_context(|| format!("cannot accept {}", pending.path.display()))?;
                println!("accepted");
            } else if reject {
                stored::reject(&pending)
                    .with_context(|| format!("cannot reject {}", pending.path.display()))?;
                println!("rejected");
            }
        }
    }
    if count == 0 {
        println!("no pending snapshot");
    } else if !accept && !reject {
        println!("{count} pending: `dsrlab review --accept` or `--reject` to decide");
    }
    Ok(ExitCode::SUCCESS)
}
