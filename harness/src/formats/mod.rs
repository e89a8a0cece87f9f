//! Data formats that know nothing of the kernel: packets, pcap files and
//! fixture definitions.
