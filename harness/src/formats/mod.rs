//! Data formats that know nothing of the kernel: packets, pcap files,
//! fixture definitions and scenarios.

pub mod fixture;
pub mod packet;
pub mod pcap;
pub mod scenario;
