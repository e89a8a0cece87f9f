//! Network namespaces owned by this process: created with `netns-rs`
//! (bind-mounted under `/var/run/netns`, where `ip netns` sees them),
//! entered per thread with `setns`, removed on drop — and removed by the
//! [`reap`]er when the process that made them is gone.
//!
//! Every name is `dsrlab-<pid>-<start>-<n>-<label>`: the owner's pid and its
//! start time (clock ticks since boot, from `/proc/<pid>/stat`), so that a
//! reused pid does not keep a dead run's namespaces alive. Links live inside
//! these namespaces, so removing a namespace removes its links; nothing is
//! ever created in the root namespace.

use std::{
    fs, io,
    path::{Path, PathBuf},
    sync::{
        Mutex,
        atomic::{AtomicU32, Ordering},
    },
};

use netns_rs::NetNs;

/// Where `netns-rs` (and `ip netns`) keep named namespaces.
pub const NETNS_DIR: &str = "/var/run/netns";
/// The prefix of every namespace dsrlab creates.
pub const PREFIX: &str = "dsrlab-";

static SEQUENCE: AtomicU32 = AtomicU32::new(0);

/// Held while a namespace is made, and set once the process is shutting
/// down ([`remove_own`]): a namespace is either made before the clean-up
/// lists them, or not at all.
static SHUTTING_DOWN: Mutex<bool> = Mutex::new(false);

/// Failures to create, enter or remove a namespace.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// `netns-rs` could not create or open it.
    #[error("network namespace {name}: {source}")]
    Netns {
        /// The namespace.
        name: String,
        /// Why.
        #[source]
        source: netns_rs::Error,
    },
    /// The process is being interrupted and has removed its namespaces.
    #[error("not creating network namespace {0}: the process is shutting down")]
    ShuttingDown(String),
    /// Creating network namespaces needs CAP_SYS_ADMIN.
    #[error(
        "creating network namespaces needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN): live mode cannot run as this user"
    )]
    NotPermitted,
}

/// A network namespace owned by this process; removed on drop.
#[derive(Debug)]
pub struct Namespace {
    name: String,
    ns: Option<NetNs>,
}

/// A fresh name for a namespace labelled `label`, owned by this process:
/// what [`Namespace::create`] uses, for namespaces made by other means
/// (the `ip` script a benchmark compares with), so that the reaper knows
/// them as this process's.
pub fn owned_name(label: &str) -> String {
    format!(
        "{PREFIX}{}-{}-{}",
        owner_tag(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed),
        sanitize(label)
    )
}

impl Namespace {
    /// Creates a fresh namespace labelled `label` (a node's name).
    pub fn create(label: &str) -> Result<Self, NetnsError> {
        let name = owned_name(label);
        crate::kernel::check_netns_capabilities().map_err(|_| NetnsError::NotPermitted)?;
        let shutting_down = SHUTTING_DOWN.lock().unwrap_or_else(|e| e.into_inner());
        if *shutting_down {
            return Err(NetnsError::ShuttingDown(name));
        }
        let ns = NetNs::new(&name).map_err(|source| NetnsError::Netns {
            name: name.clone(),
            source,
        })?;
        Ok(Self { name, ns: Some(ns) })
    }

    /// The namespace's name (as `ip netns list` shows it).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// An fd referring to the namespace (for `IFLA_NET_NS_FD`).
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.ns().file().as_fd()
    }

    /// Moves the calling thread into the namespace until the guard drops.
    /// Sockets opened meanwhile stay in the namespace for their lifetime.
    pub fn enter(&self) -> io::Result<Entered> {
        let home = netns_rs::get_from_current_thread().map_err(io::Error::other)?;
        self.ns().enter().map_err(io::Error::other)?;
        Ok(Entered { home })
    }

    /// Runs `f` inside the namespace.
    pub fn run<T>(&self, f: impl FnOnce() -> T) -> io::Result<T> {
        let _inside = self.enter()?;
        Ok(f())
    }

    fn ns(&self) -> &NetNs {
        self.ns.as_ref().expect("present until drop")
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        if let Some(ns) = self.ns.take() {
            // Unmounting detaches the name; the kernel frees the namespace
            // (and the links in it) once no fd or thread holds it.
            let _ = ns.remove();
        }
    }
}

/// The thread's place inside a namespace; going back home on drop.
pub struct Entered {
    home: NetNs,
}

impl Drop for Entered {
    fn drop(&mut self) {
        if let Err(e) = self.home.enter() {
            // A thread left in a test namespace would make every later
            // socket of that thread land there: refuse to go on.
            panic!("cannot return to the original network namespace: {e}");
        }
    }
}

/// `pid-start` of this process.
fn owner_tag() -> String {
    let pid = std::process::id();
    format!("{pid}-{}", start_time(pid).unwrap_or(0))
}

/// A process's start time in clock ticks since boot (field 22 of
/// `/proc/<pid>/stat`), or `None` when it is gone.
fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count
    // fields after its closing parenthesis.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

fn sanitize(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The owner of a dsrlab namespace name: (pid, start time).
fn owner_of(name: &str) -> Option<(u32, u64)> {
    let mut parts = name.strip_prefix(PREFIX)?.splitn(3, '-');
    let pid = parts.next()?.parse().ok()?;
    let start = parts.next()?.parse().ok()?;
    Some((pid, start))
}

/// Whether the owner of `name` is still running.
fn owner_alive(name: &str) -> bool {
    match owner_of(name) {
        Some((pid, start)) => start_time(pid) == Some(start),
        // Not ours to judge: leave names we did not make alone.
        None => true,
    }
}

/// dsrlab namespaces currently present, by name.
pub fn list() -> Vec<String> {
    let Ok(entries) = fs::read_dir(NETNS_DIR) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(PREFIX))
        .collect();
    names.sort();
    names
}

/// Removes every dsrlab namespace whose owning process is gone (a run
/// killed with SIGKILL leaves them behind); returns their names.
pub fn reap() -> Vec<String> {
    list()
        .into_iter()
        .filter(|name| !owner_alive(name))
        .filter(|name| remove_by_name(&Path::new(NETNS_DIR).join(name)).is_ok())
        .collect()
}

/// Runs [`reap`] once per process, before the first live run: what a
/// killed earlier run left behind goes before anything new is made.
pub fn reap_once() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for name in reap() {
            eprintln!("dsrlab: removed network namespace {name} left by a run that is gone");
        }
    });
}

/// Removes every namespace of this process and refuses to make more (for
/// signal handlers: the process is about to exit, so its guards will not
/// run).
pub fn remove_own() -> Vec<String> {
    // Waits for a namespace being made, and makes no more.
    let mut shutting_down = SHUTTING_DOWN.lock().unwrap_or_else(|e| e.into_inner());
    *shutting_down = true;
    let own = format!("{PREFIX}{}-", owner_tag());
    list()
        .into_iter()
        .filter(|name| name.starts_with(&own))
        .filter(|name| remove_by_name(&Path::new(NETNS_DIR).join(name)).is_ok())
        .collect()
}

fn remove_by_name(path: &PathBuf) -> io::Result<()> {
    let c =
        std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).map_err(io::Error::other)?;
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
        let e = io::Error::last_os_error();
        // EINVAL: not a mount point (a file left by a failed create).
        if e.raw_os_error() != Some(libc::EINVAL) {
            return Err(e);
        }
    }
    fs::remove_file(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_their_owner() {
        let name = format!("{PREFIX}{}-3-dut", owner_tag());
        let (pid, start) = owner_of(&name).unwrap();
        assert_eq!(pid, std::process::id());
        assert_eq!(Some(start), start_time(pid));
        assert!(owner_alive(&name));
        assert!(!owner_alive(&format!("{PREFIX}{pid}-{}-0-x", start + 1)));
        assert!(owner_alive("dsrlab-not-ours"));
        assert_eq!(sanitize("a b/c"), "a_b_c");
    }
}
