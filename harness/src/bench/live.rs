//! Benchmarks of the live mode: how long a topology takes to come up and
//! go down, and the talk's UDP cross-impact (port allocation next to a
//! service that holds many UDP sockets). They report; they never assert.

use std::{
    io,
    net::{Ipv4Addr, SocketAddr, UdpSocket},
    time::{Duration, Instant},
};

use crate::live::{
    netns::Namespace,
    topology::{Topology, TopologyError, TopologySpec},
};

/// One topology built and torn down.
#[derive(Clone, Copy, Debug, Default)]
pub struct UpDown {
    /// Building it.
    pub create: Duration,
    /// Removing it.
    pub delete: Duration,
}

/// Builds `spec` and drops it, timing both halves.
pub fn topology_up_down(spec: &TopologySpec) -> Result<UpDown, TopologyError> {
    let started = Instant::now();
    let topology = Topology::build(spec)?;
    let create = started.elapsed();
    let started = Instant::now();
    drop(topology);
    Ok(UpDown {
        create,
        delete: started.elapsed(),
    })
}

/// Port allocation of a service while another holds many UDP sockets.
#[derive(Clone, Copy, Debug, Default)]
pub struct PortAllocation {
    /// Mean time of one bind to port 0 (the kernel picks a free port).
    pub per_bind: Duration,
    /// Binds that failed because no port was free.
    pub failed: usize,
}

/// The UDP cross-impact of the talk, in both arrangements.
#[derive(Clone, Copy, Debug, Default)]
pub struct UdpCrossImpact {
    /// Sockets the first service holds.
    pub held: usize,
    /// Binds the second service makes.
    pub binds: usize,
    /// Both services in one namespace.
    pub shared: PortAllocation,
    /// Each in its own namespace.
    pub separate: PortAllocation,
    /// The second service alone, for reference.
    pub alone: PortAllocation,
}

fn bind_any() -> io::Result<UdpSocket> {
    UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))
}

/// `binds` binds to port 0, each socket closed before the next, from the
/// calling thread's namespace.
fn allocate(binds: usize) -> PortAllocation {
    let mut failed = 0;
    let started = Instant::now();
    for _ in 0..binds {
        match bind_any() {
            Ok(socket) => drop(socket),
            Err(_) => failed += 1,
        }
    }
    PortAllocation {
        per_bind: started.elapsed() / binds.max(1) as u32,
        failed,
    }
}

/// The ephemeral port range of both namespaces: 5000 ports, so that a few
/// thousand held sockets fill it as tens of thousands would fill the
/// default range, within the file descriptors a process has.
pub const PORT_RANGE: (u16, u16) = (40000, 44999);

/// Service A holds `held` UDP sockets bound to port 0; service B binds
/// `binds` sockets to port 0, one after another: once in A's namespace,
/// once in its own, and once before A started. Both namespaces have the
/// ephemeral range [`PORT_RANGE`]. Needs `held` + a few file descriptors.
pub fn udp_cross_impact(held: usize, binds: usize) -> io::Result<UdpCrossImpact> {
    let ns_error = |e: crate::live::netns::NetnsError| io::Error::other(e.to_string());
    let a = Namespace::create("udp-a").map_err(ns_error)?;
    let b = Namespace::create("udp-b").map_err(ns_error)?;
    for ns in [&a, &b] {
        ns.run(|| {
            std::fs::write(
                "/proc/sys/net/ipv4/ip_local_port_range",
                format!("{} {}", PORT_RANGE.0, PORT_RANGE.1),
            )
        })??;
    }
    let alone = b.run(|| allocate(binds))?;
    let sockets = a.run(|| {
        (0..held)
            .map(|_| bind_any())
            .collect::<io::Result<Vec<_>>>()
    })??;
    let shared = a.run(|| allocate(binds))?;
    let separate = b.run(|| allocate(binds))?;
    drop(sockets);
    Ok(UdpCrossImpact {
        held,
        binds,
        shared,
        separate,
        alone,
    })
}
