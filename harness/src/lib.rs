//! dsrlab: a testing and verification harness for DSR datapaths.
//!
//! The modules follow the data flow of a run:
//! [`formats`] (packets, pcaps, fixtures; no kernel) → [`load`] (BPF objects
//! into the kernel) → [`testrun`] (one packet through a program) →
//! [`oracles`] (did it do the right thing?) → [`reports`] (what a human or CI
//! reads).
pub mod bench;
pub mod chain;
pub mod datapath;
pub mod formats;
pub mod instruments;
pub mod kernel;
pub mod lb;
pub mod live;
pub mod load;
pub mod maps;
pub mod oracles;
pub mod pins;
pub mod reports;
pub mod runner;
pub mod testrun;
pub mod verdict;
pub mod vm;
