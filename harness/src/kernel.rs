//! What this process and kernel allow, asked in one place (as aya's
//! `kernel_features`): everything that needs a capability or a kernel
//! feature checks here first, so that a missing one is named instead of
//! surfacing as a bare EPERM.

pub mod features;

use std::fs;

/// Linux capability numbers (linux/capability.h).
const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_BPF: u32 = 39;

/// Capabilities missing for loading and test-running BPF programs.
#[derive(Debug, thiserror::Error)]
#[error(
    "missing capabilities {missing}: loading and test-running BPF programs needs root or CAP_BPF + CAP_NET_ADMIN + CAP_SYS_ADMIN (run with sudo, or grant them with setcap)"
)]
pub struct MissingCapabilities {
    /// Comma-separated names of the missing capabilities.
    pub missing: String,
}

/// Checks that the effective capability set allows loading BPF programs.
pub fn check_bpf_capabilities() -> Result<(), MissingCapabilities> {
    let effective = effective_capabilities().unwrap_or(0);
    let missing = missing(
        effective,
        &[
            (CAP_BPF, "CAP_BPF"),
            (CAP_NET_ADMIN, "CAP_NET_ADMIN"),
            (CAP_SYS_ADMIN, "CAP_SYS_ADMIN"),
        ],
    );
    // CAP_SYS_ADMIN implies what CAP_BPF grants on kernels that have it.
    if missing.is_empty() || (missing == ["CAP_BPF"] && effective & (1 << CAP_SYS_ADMIN) != 0) {
        return Ok(());
    }
    Err(MissingCapabilities {
        missing: missing.join(", "),
    })
}

/// Checks that the effective capability set allows creating and
/// configuring network namespaces (live mode).
pub fn check_netns_capabilities() -> Result<(), MissingCapabilities> {
    let effective = effective_capabilities().unwrap_or(0);
    let missing = missing(
        effective,
        &[
            (CAP_NET_ADMIN, "CAP_NET_ADMIN"),
            (CAP_SYS_ADMIN, "CAP_SYS_ADMIN"),
        ],
    );
    if missing.is_empty() {
        return Ok(());
    }
    Err(MissingCapabilities {
        missing: missing.join(", "),
    })
}

/// The names of the capabilities of `wanted` that `effective` lacks.
fn missing(effective: u64, wanted: &[(u32, &'static str)]) -> Vec<&'static str> {
    wanted
        .iter()
        .filter(|(bit, _)| effective & (1u64 << bit) == 0)
        .map(|(_, name)| *name)
        .collect()
}

/// The effective capability set of the calling thread (capabilities are per
/// thread; `CapEff` in /proc/thread-self/status).
/// Keeps in the calling thread's effective capability set only the
/// capabilities (by number) `keep` accepts; capabilities are per thread,
/// so the rest of the process keeps its own. For tests and tools that show
/// what can be done with less.
pub fn restrict_thread_capabilities(keep: impl Fn(u32) -> bool) -> std::io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: a v3 header and the two data structs capget fills.
    if unsafe { libc::syscall(libc::SYS_capget, &raw mut header, data.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    for cap in 0..64u32 {
        if !keep(cap) {
            data[(cap / 32) as usize].effective &= !(1 << (cap % 32));
        }
    }
    // SAFETY: as above; capset reads them.
    if unsafe { libc::syscall(libc::SYS_capset, &raw mut header, data.as_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn effective_capabilities() -> Option<u64> {
    let status = fs::read_to_string("/proc/thread-self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}
