//! Socket services: a TCP listener or a UDP socket in a node, answering
//! each request with its echo or a fixed reply, and saying which
//! connections and datagrams it served.
//!
//! A TCP exchange is one request (one read: clients send theirs in one
//! write) and one reply: the service reads the request, writes the reply,
//! shuts its side down, and reads on until the client's FIN. Only then does
//! it report the connection served, so that when every served connection
//! has been reported, every segment the clients sent has crossed the
//! network — counters and captures read after that see all of them.
//!
//! [`Services::flush`] makes that point an event: each service answers
//! one more request, sent from inside its own node, and handles requests
//! in order; once every service has reported its marker, every earlier
//! report is in the channel. Nothing waits on time.

use std::{
    io::{self, Read as _, Write as _},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket},
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

/// What a service reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceEvent {
    /// It answered a connection or datagram.
    Served(Served),
    /// An exchange or the service itself failed (it goes on serving if it
    /// can).
    Failed {
        /// The service's [`ServiceSpec::id`].
        service: usize,
        /// What failed.
        error: String,
    },
}

/// Running services; dropping it stops them.
#[derive(Debug)]
pub struct Services {
    specs: Vec<ServiceSpec>,
    stop: Option<io::PipeWriter>,
    threads: Vec<thread::JoinHandle<()>>,
    events: mpsc::Receiver<ServiceEvent>,
}

/// A service that could not start, or could not be reached by its marker.
#[derive(Debug, thiserror::Error)]
#[error("service {proto} {listen} in node {node}: {what}: {source}")]
pub struct ServiceError {
    /// The node.
    pub node: String,
    /// `tcp` or `udp`.
    pub proto: &'static str,
    /// What it was to bind.
    pub listen: SocketAddr,
    /// What was being done.
    pub what: &'static str,
    /// Why it failed.
    #[source]
    pub source: io::Error,
}

/// How long [`Services::flush`] waits for one service's marker.
const MARKER_TIMEOUT: Duration = Duration::from_secs(5);

impl Services {
    /// Starts every service in its node's namespace (`namespace(node)`);
    /// returns once all are bound, or with the first that could not bind.
    pub fn start<'a>(
        specs: &[ServiceSpec],
        namespace: impl Fn(&str) -> Option<&'a Namespace>,
    ) -> Result<Self, ServiceError> {
        let (events_tx, events) = mpsc::channel();
        let mut services = Self {
            specs: specs.to_vec(),
            stop: None,
            threads: Vec::new(),
            events,
        };
        let mut stop_rx: Option<io::PipeReader> = None;
        for spec in specs {
            let error = |what, source| ServiceError {
                node: spec.node.clone(),
                proto: spec.proto.name(),
                listen: spec.listen,
                what,
                source,
            };
            let stop = match &stop_rx {
                Some(rx) => rx.try_clone(),
                None => io::pipe().and_then(|(rx, tx)| {
                    services.stop = Some(tx);
                    let clone = rx.try_clone();
                    stop_rx = Some(rx);
                    clone
                }),
            }
            .map_err(|e| error("stop pipe", e))?;
            let ns = namespace(&spec.node)
                .ok_or_else(|| error("enter node", io::Error::other("no such node")))?;
            let socket = ns
                .run(|| bind(spec))
                .map_err(|e| error("enter node", e))?
                .map_err(|e| error("bind", e))?;
            let (spec, tx) = (spec.clone(), events_tx.clone());
            services
                .threads
                .push(thread::spawn(move || serve(&spec, socket, &stop, &tx)));
        }
        Ok(services)
    }

    /// Sends every service a marker request from inside its node and
    /// waits for each to report it; returns everything reported before
    /// (the markers themselves left out). A service handles requests in
    /// order, so nothing it served earlier is reported later.
    pub fn flush<'a>(
        &self,
        namespace: impl Fn(&str) -> Option<&'a Namespace>,
    ) -> Result<Vec<ServiceEvent>, ServiceError> {
        let mut events = Vec::new();
        for spec in &self.specs {
            let error = |what, source| ServiceError {
                node: spec.node.clone(),
                proto: spec.proto.name(),
                listen: spec.listen,
                what,
                source,
            };
            let ns = namespace(&spec.node)
                .ok_or_else(|| error("enter node", io::Error::other("no such node")))?;
            let marker = ns
                .run(|| send_marker(spec))
                .map_err(|e| error("enter node", e))?
                .map_err(|e| error("marker request", e))?;
            loop {
                match self.events.recv_timeout(MARKER_TIMEOUT) {
                    Ok(ServiceEvent::Served(s)) if s.service == spec.id && s.peer == marker => {
                        break;
                    }
                    Ok(event) => events.push(event),
                    Err(_) => {
                        return Err(error(
                            "marker request",
                            io::Error::new(
                                io::ErrorKind::TimedOut,
                                format!(
                                    "answered, but not reported within {} s",
                                    MARKER_TIMEOUT.as_secs()
                                ),
                            ),
                        ));
                    }
                }
            }
        }
        events.extend(self.events.try_iter());
        Ok(events)
    }
}

/// A request to `spec`'s own address from inside its node; returns the
/// marker's address as the service sees it.
fn send_marker(spec: &ServiceSpec) -> io::Result<SocketAddr> {
    let target = if spec.listen.ip().is_unspecified() {
        let lo: IpAddr = if spec.listen.is_ipv4() {
            Ipv4Addr::LOCALHOST.into()
        } else {
            Ipv6Addr::LOCALHOST.into()
        };
        SocketAddr::new(lo, spec.listen.port())
    } else {
        spec.listen
    };
    match spec.proto {
        Proto::Tcp => {
            let mut stream = TcpStream::connect_timeout(&target, MARKER_TIMEOUT)?;
            stream.set_read_timeout(Some(MARKER_TIMEOUT))?;
            let me = stream.local_addr()?;
            stream.write_all(b"marker")?;
            let mut reply = Vec::new();
            stream.read_to_end(&mut reply)?;
            Ok(me)
        }
        Proto::Udp => {
            let any: IpAddr = if target.is_ipv4() {
                Ipv4Addr::UNSPECIFIED.into()
            } else {
                Ipv6Addr::UNSPECIFIED.into()
            };
            let socket = UdpSocket::bind((any, 0))?;
            socket.connect(target)?;
            socket.set_read_timeout(Some(MARKER_TIMEOUT))?;
            socket.send(b"marker")?;
            let mut buf = [0u8; 2048];
            socket.recv(&mut buf)?;
            socket.local_addr()
        }
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

/// Waits until `socket` has something — a request, or an error that the
/// next receive reports — (true), or `stop` is closed (false). A failed
/// poll ends the service, as a stop does.
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
        return rc > 0 && fds[1].revents == 0;
    }
}

fn answer(reply: &Reply, request: &[u8]) -> Vec<u8> {
    match reply {
        Reply::Echo => request.to_vec(),
        Reply::Fixed(bytes) => bytes.clone(),
    }
}

fn serve(
    spec: &ServiceSpec,
    socket: Bound,
    stop: &io::PipeReader,
    tx: &mpsc::Sender<ServiceEvent>,
) {
    let mut buf = vec![0u8; 65536];
    let failed = |what: &str, e: io::Error| {
        let _ = tx.send(ServiceEvent::Failed {
            service: spec.id,
            error: format!("{what}: {e}"),
        });
    };
    match socket {
        Bound::Tcp(listener) => {
            while readable(listener.as_fd(), stop.as_fd()) {
                let (mut conn, peer) = match listener.accept() {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        failed("accept", e);
                        continue;
                    }
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
                match exchange() {
                    Ok(()) => {
                        let _ = tx.send(ServiceEvent::Served(Served {
                            service: spec.id,
                            proto: Proto::Tcp,
                            peer,
                            local,
                        }));
                    }
                    Err(e) => failed(&format!("exchange with {peer}"), e),
                }
            }
        }
        Bound::Udp(socket) => {
            while readable(socket.as_fd(), stop.as_fd()) {
                let (n, peer) = match socket.recv_from(&mut buf) {
                    Ok(received) => received,
                    Err(e) => {
                        failed("receive", e);
                        continue;
                    }
                };
                match socket.send_to(&answer(&spec.reply, &buf[..n]), peer) {
                    Ok(_) => {
                        let _ = tx.send(ServiceEvent::Served(Served {
                            service: spec.id,
                            proto: Proto::Udp,
                            peer,
                            local: spec.listen,
                        }));
                    }
                    Err(e) => failed(&format!("reply to {peer}"), e),
                }
            }
        }
    }
}
