//! Captures at link ends: every frame an interface sends or receives, read
//! by an AF_PACKET socket in the interface's namespace.
//!
//! A capture is opened before the traffic and read after it. The kernel
//! hands a frame to the socket as it passes the interface, in the same
//! pass as the frame's own processing, so once the traffic's last event is
//! observed (every client done, every service has seen the end of its
//! connections) everything that crossed the interface is queued; reading
//! is a drain, not a wait. A receive buffer that overflowed is an error,
//! never a shorter capture.

use std::io;

use super::{netns::Namespace, packet_socket::PacketSocket};

/// `ETH_P_ALL`: every protocol.
const ETH_P_ALL: u16 = 0x0003;

/// Receive buffer of a capture: room for tens of thousands of small frames.
const BUFFER: usize = 32 << 20;

/// An open capture.
#[derive(Debug)]
pub struct Capture {
    socket: PacketSocket,
}

impl Capture {
    /// Opens a capture of interface `ifindex` in `ns`.
    pub fn open(ns: &Namespace, ifindex: u32) -> io::Result<Self> {
        let socket = ns.run(|| PacketSocket::open(ifindex, ETH_P_ALL))??;
        socket.want_auxdata()?;
        socket.set_receive_buffer(BUFFER)?;
        // Counting starts now.
        socket.drops()?;
        Ok(Self { socket })
    }

    /// Every frame captured so far, in order; an error if any was lost.
    pub fn drain(&self) -> io::Result<Vec<Vec<u8>>> {
        let mut buf = vec![0u8; 65536 + 64];
        let mut frames = Vec::new();
        while let Some(frame) = self.socket.try_recv(&mut buf)? {
            frames.push(frame);
        }
        match self.socket.drops()? {
            0 => Ok(frames),
            n => Err(io::Error::other(format!(
                "the capture lost {n} frames: its receive buffer ({} bytes) overflowed",
                self.socket
                    .receive_buffer()
                    .map_or_else(|e| format!("size unknown: {e}"), |b| b.to_string())
            ))),
        }
    }
}
