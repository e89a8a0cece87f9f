//! Data formats that know nothing of the kernel: packets, pcap files,
//! fixture definitions and scenarios.

pub mod ctx;
pub mod fixture;
pub mod packet;
pub mod pcap;
pub mod pcapng;
pub mod scenario;
pub mod typed;

/// `:line:column` (or `:line`, or nothing) for an error message that starts
/// with a file path, the way compilers print locations.
pub(crate) fn location(line: Option<u64>, column: Option<u64>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}
