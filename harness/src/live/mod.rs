//! Live mode: programs attached in network namespaces joined by veth pairs,
//! carrying real frames, observed from outside.
//!
//! - [`netns`]: namespaces owned by this process, entered per thread,
//!   removed on drop, reaped when their owner is gone;
//! - [`netlink`]: the rtnetlink requests that build links, addresses,
//!   routes and neighbours;
//! - [`topology`]: nodes and links from a spec, built and torn down;
//! - [`attach`]: a loaded program at a link end (XDP or TC);
//! - [`packet_socket`]: AF_PACKET injection and capture;
//! - [`replay`]: frames injected at one end, the program's verdict observed
//!   at the other;
//! - [`ethtool`]: offloads of a link end (GRO, checksums);
//! - [`reference`]: the DSR reference topology;
//! - [`service`], [`client`]: socket services and the flows that reach
//!   them;
//! - [`capture`]: every frame at a link end;
//! - [`snmp`]: a namespace's SNMP counters, what its stack did;
//! - [`nic`]: emulated NICs (unpulled headers, validated checksums), each
//!   proving itself with a probe when it comes up.

pub mod attach;
pub mod capture;
pub mod client;
pub mod ethtool;
pub mod fou;
pub mod kernel_decap;
pub mod netlink;
pub mod netns;
pub mod nic;
pub mod packet_socket;
pub mod reference;
pub mod replay;
pub mod service;
pub mod snmp;
pub mod topology;
