//! Socket clients: one flow per 5-tuple, each from its own source address
//! and port, one request and one reply, and what came back recorded — the
//! reply and who sent it, or the error the kernel reported.
//!
//! The errors are the kernel's: a TCP RST is `ECONNREFUSED` (or
//! `ECONNRESET` after the handshake), an ICMP port unreachable on a
//! connected UDP socket is `ECONNREFUSED` at the next receive, ICMP host or
//! network unreachable is `EHOSTUNREACH` / `ENETUNREACH`; nothing within
//! the deadline is a timeout.

use std::{
    io::{self, Read as _, Write as _},
    net::{Shutdown, SocketAddr, TcpStream, UdpSocket},
    time::Duration,
};

use super::service::Proto;

/// One flow to make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowSpec {
    /// 1-based number in its client group.
    pub number: u32,
    /// TCP or UDP.
    pub proto: Proto,
    /// The source address and port to bind.
    pub src: SocketAddr,
    /// Where to send.
    pub dst: SocketAddr,
    /// The request's bytes.
    pub request: Vec<u8>,
}

/// How a flow ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlowOutcome {
    /// A reply came back.
    Reply {
        /// Its bytes.
        bytes: Vec<u8>,
        /// The connected peer it came from: the flow's destination (a
        /// connected socket takes nothing from anyone else).
        from: SocketAddr,
    },
    /// Refused: RST, or ICMP port unreachable.
    Refused(String),
    /// ICMP host or network unreachable, or no route.
    Unreachable(String),
    /// Nothing within the deadline.
    Timeout,
    /// Any other error.
    Failed(String),
}

impl FlowOutcome {
    /// `reply`, `refused`, `unreachable`, `timeout` or `failed`.
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::Reply { .. } => "reply",
            Self::Refused(_) => "refused",
            Self::Unreachable(_) => "unreachable",
            Self::Timeout => "timeout",
            Self::Failed(_) => "failed",
        }
    }

    fn of(e: &io::Error) -> Self {
        match e.raw_os_error() {
            Some(libc::ECONNREFUSED | libc::ECONNRESET) => Self::Refused(e.to_string()),
            Some(libc::EHOSTUNREACH | libc::ENETUNREACH) => Self::Unreachable(e.to_string()),
            Some(libc::ETIMEDOUT | libc::EAGAIN) => Self::Timeout,
            _ if e.kind() == io::ErrorKind::TimedOut => Self::Timeout,
            _ => Self::Failed(e.to_string()),
        }
    }
}

/// Makes `flow` from the calling thread's namespace, waiting up to
/// `timeout` for the connection and for the reply.
pub fn run(flow: &FlowSpec, timeout: Duration) -> FlowOutcome {
    let result = match flow.proto {
        Proto::Tcp => tcp(flow, timeout),
        Proto::Udp => udp(flow, timeout),
    };
    result.unwrap_or_else(|e| FlowOutcome::of(&e))
}

fn socket(flow: &FlowSpec, kind: socket2::Type) -> io::Result<socket2::Socket> {
    let proto = match flow.proto {
        Proto::Tcp => socket2::Protocol::TCP,
        Proto::Udp => socket2::Protocol::UDP,
    };
    let socket = socket2::Socket::new(socket2::Domain::for_address(flow.src), kind, Some(proto))?;
    socket.set_reuse_address(true)?;
    socket.bind(&flow.src.into())?;
    Ok(socket)
}

fn tcp(flow: &FlowSpec, timeout: Duration) -> io::Result<FlowOutcome> {
    let socket = socket(flow, socket2::Type::STREAM)?;
    socket.connect_timeout(&flow.dst.into(), timeout)?;
    let mut stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(timeout))?;
    stream.write_all(&flow.request)?;
    let mut bytes = Vec::new();
    // The service shuts its side down after the reply.
    stream.read_to_end(&mut bytes)?;
    let from = stream.peer_addr()?;
    // Our FIN tells the service the exchange is over.
    let _ = stream.shutdown(Shutdown::Both);
    Ok(FlowOutcome::Reply { bytes, from })
}

fn udp(flow: &FlowSpec, timeout: Duration) -> io::Result<FlowOutcome> {
    let socket = socket(flow, socket2::Type::DGRAM)?;
    // Connected, so that ICMP errors come back as errors; a reply from
    // another address than `dst` is filtered out (a timeout), as for any
    // connected UDP client.
    socket.connect(&flow.dst.into())?;
    let socket: UdpSocket = socket.into();
    socket.set_read_timeout(Some(timeout))?;
    socket.send(&flow.request)?;
    let mut buf = vec![0u8; 65536];
    let n = socket.recv(&mut buf)?;
    Ok(FlowOutcome::Reply {
        bytes: buf[..n].to_vec(),
        from: flow.dst,
    })
}
