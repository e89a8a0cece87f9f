//! Instruments: the harness's own BPF programs, which observe what the
//! kernel does with the packets of a live run — they are not part of the
//! datapath under test, and never change a packet.
//!
//! - [`skb_state`]: the skb as a program receives it (linear bytes,
//!   checksum state), recorded before the program under test;
//! - [`drop_watch`]: where the kernel drops a namespace's packets, and
//!   the reason;
//! - [`csum_audit`]: the checksum auditor, which re-sums every
//!   CHECKSUM_COMPLETE packet after the program and compares with
//!   `skb->csum`;
//! - `nic_validate`: the checksum hardware of the emulated NICs
//!   ([`crate::live::nic`]), part of the NICs rather than an observer.
//!
//! They are written in C (`bpf/*.bpf.c`), compiled by clang in build.rs and
//! loaded with libbpf ([`libbpf`]): they read kernel structures with CO-RE
//! and call kfuncs, which libbpf resolves against the running kernel.

pub mod csum_audit;
pub mod drop_watch;
pub mod libbpf;
pub mod skb_state;

/// The `csum_audit` object (empty when the BPF build was skipped).
pub const CSUM_AUDIT_ELF: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/csum_audit.bpf.o"));

/// The `drop_watch` object (empty when the BPF build was skipped).
pub const DROP_WATCH_ELF: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/drop_watch.bpf.o"));

/// The `nic_validate` object (empty when the BPF build was skipped).
pub const NIC_VALIDATE_ELF: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/nic_validate.bpf.o"));

/// The trampoline probes' target (`crate::kernel::features`).
pub const PROBE_TARGET_ELF: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/probe_target.bpf.o"));

/// The EXT (freplace) probe.
pub const PROBE_EXT_ELF: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/probe_ext.bpf.o"));

/// The fentry probe.
pub const PROBE_FENTRY_ELF: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/probe_fentry.bpf.o"));

/// The `skb_state` object (empty when the BPF build was skipped).
pub const SKB_STATE_ELF: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/skb_state.bpf.o"));
