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
fn effective_capabilities() -> Option<u64> {
    let status = fs::read_to_string("/proc/thread-self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}
