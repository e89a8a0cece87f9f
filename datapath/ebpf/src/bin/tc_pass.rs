//! `tc_pass`: returns TC_ACT_OK and does nothing else.
//!
//! The benchmark's floor for sched_cls programs: the cost of a test-run
//! call with a program that does no work.
#![no_std]
#![no_main]

use aya_ebpf::{bindings::TC_ACT_OK, macros::classifier, programs::TcContext};

#[classifier]
pub fn tc_pass(_ctx: TcContext) -> i32 {
    TC_ACT_OK
}

dsrlab_ebpf::program_object!();
