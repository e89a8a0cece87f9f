//! Data formats that know nothing of the kernel: packets, pcap files and
//! fixture definitions.

pub mod fixture;
pub mod packet;
pub mod pcap;
