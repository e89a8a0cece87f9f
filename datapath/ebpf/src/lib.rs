//! dsrlab's BPF programs: shared, hook-independent code.
//!
//! Each program is one binary in `src/bin/` (one ELF object each); the code
//! they share lives in this library.
#![no_std]
