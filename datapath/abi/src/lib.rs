//! The ABI between dsrlab's BPF programs and userspace.
//!
//! Everything here is `#[repr(C)]`/`#[repr(u32)]` data and constants: map
//! names, map indices and global variable names that both sides must agree
//! on. No logic lives here; the BPF side and the harness each interpret
//! these values on their own.
#![no_std]

pub mod chain;
pub mod decap;
pub mod lb;
