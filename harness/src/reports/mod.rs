//! Reports: what humans and CI read about a run. They depend on results
//! only.

pub mod findings;
pub mod pcap_diff;
pub mod scenario;
pub mod snapshot;
pub mod stored;
pub mod table;
pub mod topology;
