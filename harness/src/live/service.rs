//! Socket services: a TCP listener or a UDP socket in a node, answering
//! each request with its echo or a fixed reply, and saying which
//! connections and datagrams it served.
//!
//! A TCP exchange is one request and one reply: the service reads the
//! request, writes the reply, shuts its side down, and reads on until the
//! client's FIN. Only then does it report the connection served, so that
//! when every served connection has been reported, every segment the
//! clients sent has crossed the network — counters and captures read after
//! that see all of them, with no waiting on time.

use std::{
    io::{self, Read as _, Write as _},
    net::{SocketAddr, TcpListener, UdpSocket},
    os::fd::{AsFd, AsRawFd, BorrowedFd},
    sync::mpsc,
    thread,
    time::Duration,
};

use super::netns::Namespace;

/// How long a service waits on one client before giving the connection up.
const PEER_TIMEOUT: Duration = Duration::from_secs(5);

/// TCP or UDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Proto {
    /// `tcp` or `udp`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }
}

/// What a service answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// The request, back.
    Echo,
    /// These bytes.
    Fixed(Vec<u8>),
}

/// A service to start.
#[derive(Clone, Debug)]
pub struct ServiceSpec {
    /// Its number in reports (the scenario's order).
    pub id: usize,
    /// The node it runs in.
    pub node: String,
    /// TCP or UDP.
    pub proto: Proto,
    /// The address and port it binds.
    pub listen: SocketAddr,
    /// What it answers.
    pub reply: Reply,
}

/// One connection or datagram a service answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Served {
    /// The service's [`ServiceSpec::id`].
    pub service: usize,
    /// TCP or UDP.
    pub proto: Proto,
    /// The client's address and port as the service saw them.
    pub peer: SocketAddr,
    /// The address and port the client reached (for a wildcard bind: the
    /// address the request was sent to, TCP only).
    pub local: SocketAddr,
}

/// Running services; dropping it stops them.
#[derive(Debug)]
pub struct Services {
    stop: Option<io::PipeWriter>,
    threads: Vec<thread::JoinHandle<()>>,
    served: mpsc::Receiver<Served>,
}

/// A service that could not start.
#[derive(Debug, thiserror::Error)]
#[error("service {proto} {listen} in node {node}: {source}")]
pub struct ServiceError {
    /// The node.
    pub node: String,
    /// `tcp` or `udp`.
    pub proto: &'static str,
    /// What it was to bind.
    pub listen: SocketAddr,
    /// Why it failed.
    #[source]
    pub source: io::Error,
}

impl Services {
    /// Starts every service in its node's namespace (`namespace(node)`);
    /// returns once all are bound, or with the first that could not bind.
    pub fn start<'a>(
        specs: &[ServiceSpec],
        namespace: impl Fn(&str) -> Option<&'a Namespace>,
    ) -> Result<Self, ServiceError> {
        let (stop_rx, stop_tx) = io::pipe().map_err(|source| ServiceError {
            node: String::new(),
            proto: "pipe",
            listen: SocketAddr::from(([0, 0, 0, 0], 0)),
            source,
        })?;
        let (served_tx, served) = mpsc::channel();
        let mut services = Self {
            stop: Some(stop_tx),
            threads: Vec::new(),
            served,
        };
        for spec in specs {
            let error = |source| ServiceError {
                node: spec.node.clone(),
                proto: spec.proto.name(),
                listen: spec.listen,
                source,
            };
            let ns =
                namespace(&spec.node).ok_or_else(|| error(io::Error::other("no such node")))?;
            let socket = ns.run(|| bind(spec)).map_err(error)?.map_err(error)?;
            let stop = stop_rx.try_clone().map_err(error)?;
            let (spec, tx) = (spec.clone(), served_tx.clone());
            services
                .threads
                .push(thread::spawn(move || serve(&spec, socket, &stop, &tx)));
        }
        Ok(services)
    }

    /// The next connection or datagram served, waiting up to `timeout`.
    pub fn next_served(&self, timeout: Duration) -> Option<Served> {
        self.served.recv_timeout(timeout).ok()
    }

    /// Everything served and already reported.
    pub fn served_so_far(&self) -> Vec<Served> {
        self.served.try_iter().collect()
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        // Closing the pipe's only writer wakes every service's poll.
        drop(self.stop.take());
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A bound socket, ready to serve (bound in the node's namespace: sockets
/// keep the namespace they were made in, whichever thread uses them).
#[derive(Debug)]
enum Bound {
    Tcp(TcpListener),
    Udp(UdpSocket),
}

fn bind(spec: &ServiceSpec) -> io::Result<Bound> {
    let domain = socket2::Domain::for_address(spec.listen);
    let (kind, proto) = match spec.proto {
        Proto::Tcp => (socket2::Type::STREAM, socket2::Protocol::TCP),
        Proto::Udp => (socket2::Type::DGRAM, socket2::Protocol::UDP),
    };
    let socket = socket2::Socket::new(domain, kind, Some(proto))?;
    socket.set_reuse_address(true)?;
    if spec.listen.is_ipv6() {
        // `[::]` takes IPv4 too, as with the default bindv6only=0: the
        // behaviour of a service that binds it, made explicit.
        socket.set_only_v6(false)?;
    }
    socket.bind(&spec.listen.into())?;
    Ok(match spec.proto {
        Proto::Tcp => {
            socket.listen(128)?;
            Bound::Tcp(socket.into())
        }
        Proto::Udp => Bound::Udp(socket.into()),
    })
}

/// Waits until `socket` is readable (true) or `stop` is closed (false).
fn readable(socket: BorrowedFd<'_>, stop: BorrowedFd<'_>) -> bool {
    let mut fds = [
        libc::pollfd {
            fd: socket.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: stop.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    loop {
        // SAFETY: two valid pollfds.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if rc < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        return rc > 0 && fds[1].revents == 0 && fds[0].revents & libc::POLLIN != 0;
    }
}

fn answer(reply: &Reply, request: &[u8]) -> Vec<u8> {
    match reply {
        Reply::Echo => request.to_vec(),
        Reply::Fixed(bytes) => bytes.clone(),
    }
}

fn serve(spec: &ServiceSpec, socket: Bound, stop: &io::PipeReader, tx: &mpsc::Sender<Served>) {
    let mut buf = vec![0u8; 65536];
    match socket {
        Bound::Tcp(listener) => {
            while readable(listener.as_fd(), stop.as_fd()) {
                let Ok((mut conn, peer)) = listener.accept() else {
                    continue;
                };
                let local = conn.local_addr().unwrap_or(spec.listen);
                let mut exchange = || -> io::Result<()> {
                    conn.set_read_timeout(Some(PEER_TIMEOUT))?;
                    let n = conn.read(&mut buf)?;
                    conn.write_all(&answer(&spec.reply, &buf[..n]))?;
                    conn.shutdown(std::net::Shutdown::Write)?;
                    // Until the client's FIN: its last segment has arrived.
                    while conn.read(&mut buf)? > 0 {}
                    Ok(())
                };
                if exchange().is_ok() {
                    let _ = tx.send(Served {
                        service: spec.id,
                        proto: Proto::Tcp,
                        peer,
                        local,
                    });
                }
            }
        }
        Bound::Udp(socket) => {
            while readable(socket.as_fd(), stop.as_fd()) {
                let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                if socket
                    .send_to(&answer(&spec.reply, &buf[..n]), peer)
                    .is_ok()
                {
                    let _ = tx.send(Served {
                        service: spec.id,
                        proto: Proto::Udp,
                        peer,
                        local: spec.listen,
                    });
                }
            }
        }
    }
}
