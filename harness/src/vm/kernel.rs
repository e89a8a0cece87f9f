//! Debian's kernels, fetched with apt and unpacked into the project's tools
//! directory: `linux-image-<release>-amd64-unsigned` gives the kernel image
//! and its modules, `depmod` the module index a guest's `modprobe` needs.
//!
//! A kernel is named by its line (`6.1`, `6.12`: the newest package of that
//! line apt offers), by its release (`6.12.115+deb12-amd64`) or by its
//! package name. Each is unpacked once under `<cache>/kernels/<package>/`
//! and marked ready only when complete, so an interrupted fetch is redone.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use super::VmError;

/// A kernel ready to boot.
#[derive(Clone, Debug)]
pub struct Kernel {
    /// The Debian package it comes from.
    pub package: String,
    /// `uname -r` in the guest (`6.12.115+deb12-amd64`).
    pub release: String,
    /// The unpacked package: `boot/vmlinuz-<release>`, `lib/modules/<release>`.
    pub root: PathBuf,
}

impl Kernel {
    /// The kernel image.
    pub fn image(&self) -> PathBuf {
        self.root
            .join("boot")
            .join(format!("vmlinuz-{}", self.release))
    }

    /// The kernel's modules directory.
    pub fn modules(&self) -> PathBuf {
        self.root.join("lib/modules").join(&self.release)
    }
}

/// The kernel named `name`, fetched and unpacked under `cache` unless it
/// already is.
pub fn fetch(name: &str, cache: &Path) -> Result<Kernel, VmError> {
    let packages = candidates(name)?;
    let mut last = None;
    for package in packages {
        match fetch_package(&package, cache) {
            Ok(kernel) => return Ok(kernel),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| VmError::Kernel {
        kernel: name.to_owned(),
        why: "apt offers no such package".into(),
    }))
}

/// The packages `name` may mean, best first.
fn candidates(name: &str) -> Result<Vec<String>, VmError> {
    if name.starts_with("linux-image-") {
        return Ok(vec![name.to_owned()]);
    }
    if name.ends_with("-amd64") {
        return Ok(vec![format!("linux-image-{name}-unsigned")]);
    }
    let names = output(
        Command::new("apt-cache").args(["pkgnames", "linux-image-"]),
        name,
    )?;
    let mut found: Vec<(Vec<u64>, String)> = names
        .lines()
        .filter_map(|package| {
            let release = package
                .strip_prefix("linux-image-")?
                .strip_suffix("-amd64-unsigned")?;
            // Flavours (rt, cloud) are other kernels; only the generic one.
            if release.ends_with("-rt") || release.ends_with("-cloud") {
                return None;
            }
            let line = release.split(['-', '+']).next()?;
            let numbers: Vec<u64> = release
                .split(|c: char| !c.is_ascii_digit())
                .filter(|s| !s.is_empty())
                .filter_map(|s| s.parse().ok())
                .collect();
            let matches = line == name
                || line
                    .strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('.'));
            matches.then(|| (numbers, package.to_owned()))
        })
        .collect();
    found.sort();
    found.reverse();
    if found.is_empty() {
        return Err(VmError::Kernel {
            kernel: name.to_owned(),
            why: "apt knows no linux-image-*-amd64-unsigned package of that line (run \
                  `apt-get update`, or name a package)"
                .into(),
        });
    }
    Ok(found.into_iter().map(|(_, p)| p).collect())
}

fn fetch_package(package: &str, cache: &Path) -> Result<Kernel, VmError> {
    let err = |why: String| VmError::Kernel {
        kernel: package.to_owned(),
        why,
    };
    let dir = cache.join("kernels").join(package);
    let root = dir.join("root");
    let ready = dir.join("READY");
    if let Ok(release) = fs::read_to_string(&ready) {
        return Ok(Kernel {
            package: package.to_owned(),
            release: release.trim().to_owned(),
            root,
        });
    }
    // A fetch that did not finish leaves a directory without READY: start
    // over in a fresh one.
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
    let download = |update: bool| -> Result<(), VmError> {
        if update {
            output(Command::new("apt-get").args(["update", "-qq"]), package)?;
        }
        output(
            Command::new("apt-get")
                .args(["download", "-qq", package])
                .current_dir(&dir),
            package,
        )
        .map(drop)
    };
    // The package lists may predate the package: update once and retry.
    if download(false).is_err() {
        download(true)?;
    }
    let deb = fs::read_dir(&dir)
        .map_err(|e| err(e.to_string()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| err("apt-get download wrote no .deb".into()))?;
    output(
        Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root),
        package,
    )?;
    fs::remove_file(&deb).map_err(|e| err(e.to_string()))?;
    let release = fs::read_dir(root.join("lib/modules"))
        .map_err(|e| err(format!("the package has no lib/modules: {e}")))?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .ok_or_else(|| err("the package has no modules directory".into()))?;
    output(
        Command::new("depmod").arg("-b").arg(&root).arg(&release),
        package,
    )?;
    fs::write(&ready, &release).map_err(|e| err(e.to_string()))?;
    Ok(Kernel {
        package: package.to_owned(),
        release,
        root,
    })
}

/// Runs a host tool; its stderr is the error when it fails.
fn output(command: &mut Command, kernel: &str) -> Result<String, VmError> {
    let program = command.get_program().to_string_lossy().into_owned();
    let out = command.output().map_err(|e| VmError::Tool {
        tool: program.clone(),
        why: format!("cannot run it: {e} (ci/setup installs it)"),
    })?;
    if !out.status.success() {
        return Err(VmError::Kernel {
            kernel: kernel.to_owned(),
            why: format!(
                "{program} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
