//! What outlives a process on purpose: the BPF filesystem that holds
//! named instances' pins, the state directory beside it and the lock that
//! keeps two commands from interleaving. Shared by the named instances
//! (`dsrlab lb`, `dsrlab chain`) and by the chains of a process.

use std::{
    fs,
    os::fd::{AsRawFd as _, OwnedFd},
    path::{Path, PathBuf},
};

/// Where BPF filesystems are mounted by convention.
pub const BPFFS: &str = "/sys/fs/bpf";
/// Where named instances' state files live.
pub const STATE_DIR: &str = "/run/dsrlab";
/// `BPF_FS_MAGIC` from `linux/magic.h`.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// Whether `name` can name an instance: 1 to 48 ASCII letters, digits,
/// `_` or `-` (it becomes part of file names).
pub fn valid_name(name: &str) -> bool {
    (1..=48).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A file-system step that failed: the path, what was being done, why.
#[derive(Debug, thiserror::Error)]
#[error("{}: {what}: {source}", .path.display())]
pub struct PinsError {
    /// The path concerned.
    pub path: PathBuf,
    /// What was being done.
    pub what: &'static str,
    /// Why it failed.
    #[source]
    pub source: std::io::Error,
}

fn err(path: &Path, what: &'static str) -> impl FnOnce(std::io::Error) -> PinsError {
    let path = path.to_owned();
    move |source| PinsError { path, what, source }
}

/// An exclusive lock on [`STATE_DIR`], held while a command runs.
pub struct Lock(#[allow(dead_code)] OwnedFd);

/// Takes the lock on [`STATE_DIR`] (creating it), waiting for another
/// command to finish.
pub fn lock() -> Result<Lock, PinsError> {
    let dir = Path::new(STATE_DIR);
    fs::create_dir_all(dir).map_err(err(dir, "cannot create the state directory"))?;
    let file = fs::File::open(dir).map_err(err(dir, "cannot open the state directory"))?;
    // SAFETY: flock on a valid descriptor.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(err(dir, "cannot lock the state directory")(
            std::io::Error::last_os_error(),
        ));
    }
    Ok(Lock(file.into()))
}

/// Whether `path` is on a BPF filesystem.
pub fn is_bpffs(path: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: statfs writes into a zeroed struct of the right type.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type as i64 == BPF_FS_MAGIC
    }
}

/// Makes sure [`BPFFS`] is a BPF filesystem, mounting one (as bpftool does)
/// if nothing is; `Some(message)` when it mounted. It is never unmounted:
/// other tools' pins may live there.
pub fn ensure_bpffs() -> Result<Option<String>, PinsError> {
    let root = Path::new(BPFFS);
    if is_bpffs(root) {
        return Ok(None);
    }
    let target = std::ffi::CString::new(BPFFS).expect("no NUL");
    // SAFETY: valid NUL-terminated strings; no data argument.
    let rc = unsafe {
        libc::mount(
            c"bpf".as_ptr(),
            target.as_ptr(),
            c"bpf".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(err(
            root,
            "is not a BPF filesystem and mounting one there failed (mount -t bpf bpf /sys/fs/bpf)",
        )(std::io::Error::last_os_error()));
    }
    Ok(Some(format!(
        "mounted a BPF filesystem on {BPFFS} (nothing was mounted there)"
    )))
}

/// Removes every pin in `dir` and the directory; `Ok(false)` if it did not
/// exist.
pub fn remove_dir(dir: &Path) -> Result<bool, PinsError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(err(dir, "cannot read the pin directory")(e)),
    };
    for entry in entries {
        let path = entry
            .map_err(err(dir, "cannot read the pin directory"))?
            .path();
        fs::remove_file(&path).map_err(err(&path, "cannot remove the pin"))?;
    }
    fs::remove_dir(dir).map_err(err(dir, "cannot remove the pin directory"))?;
    Ok(true)
}

/// Writes `json` to `path` through a temporary file renamed over it, so a
/// reader sees the old state or the new, never half of one.
pub fn write_state(path: &Path, json: &str) -> Result<(), PinsError> {
    use std::io::Write as _;
    let tmp = path.with_extension("json.tmp");
    let mut f = fs::File::create(&tmp).map_err(err(&tmp, "cannot write the state"))?;
    f.write_all(json.as_bytes())
        .and_then(|()| f.write_all(b"\n"))
        .and_then(|()| f.sync_all())
        .map_err(err(&tmp, "cannot write the state"))?;
    fs::rename(&tmp, path).map_err(err(path, "cannot replace the state"))
}

/// A kind of named instance: the prefixes of its pin directories in
/// [`BPFFS`] and of its state files in [`STATE_DIR`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kind {
    /// `dsrlab-lb-`: pins in `/sys/fs/bpf/dsrlab-lb-NAME`.
    pub pins: &'static str,
    /// `lb-`: state in `/run/dsrlab/lb-NAME.json`.
    pub state: &'static str,
}

/// Where a named instance lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstancePaths {
    /// The name.
    pub name: String,
    /// Its pin directory.
    pub pins: PathBuf,
    /// Its state file.
    pub state: PathBuf,
}

impl Kind {
    /// The paths of instance `name`; `None` for a name that is not
    /// [`valid_name`].
    pub fn paths(self, name: &str) -> Option<InstancePaths> {
        valid_name(name).then(|| InstancePaths {
            name: name.to_owned(),
            pins: Path::new(BPFFS).join(format!("{}{name}", self.pins)),
            state: Path::new(STATE_DIR).join(format!("{}{name}.json", self.state)),
        })
    }

    /// Every instance of this kind with pins or a state file: (name, pins
    /// present, state present).
    pub fn list(self) -> Vec<(String, bool, bool)> {
        let mut found: std::collections::BTreeMap<String, (bool, bool)> = Default::default();
        for e in fs::read_dir(BPFFS).into_iter().flatten().flatten() {
            if let Some(n) = e
                .file_name()
                .to_str()
                .and_then(|n| n.strip_prefix(self.pins))
            {
                found.entry(n.to_owned()).or_default().0 = true;
            }
        }
        for e in fs::read_dir(STATE_DIR).into_iter().flatten().flatten() {
            if let Some(n) = e
                .file_name()
                .to_str()
                .and_then(|n| n.strip_prefix(self.state))
                .and_then(|n| n.strip_suffix(".json"))
            {
                found.entry(n.to_owned()).or_default().1 = true;
            }
        }
        found.into_iter().map(|(n, (p, s))| (n, p, s)).collect()
    }
}

impl InstancePaths {
    /// `"PATH exists"` for each of its paths that exists (none: the name is
    /// free).
    pub fn existing(&self) -> Vec<String> {
        [&self.pins, &self.state]
            .iter()
            .filter(|p| p.exists())
            .map(|p| format!("{} exists", p.display()))
            .collect()
    }

    /// Where [`write_state`] writes before renaming.
    pub fn state_tmp(&self) -> PathBuf {
        self.state.with_extension("json.tmp")
    }

    /// Removes its pins (whatever they are) and its state; returns what
    /// existed.
    pub fn remove(&self) -> Result<(Option<PathBuf>, Option<PathBuf>), PinsError> {
        let pins = remove_dir(&self.pins)?.then(|| self.pins.clone());
        let _ = fs::remove_file(self.state_tmp());
        let state = match fs::remove_file(&self.state) {
            Ok(()) => Some(self.state.clone()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(err(&self.state, "cannot remove the state")(e)),
        };
        Ok((pins, state))
    }
}
