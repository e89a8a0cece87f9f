//! An emulated NIC as a link end of a topology: the link's other end is a
//! veth whose peer sits in a hidden namespace, and a forwarder thread
//! carries frames between that peer and the TAP NIC — in through the NIC
//! as the link's quirks say (`linear`, validated), out of the NIC back
//! onto the veth. The node behind the NIC sees a NIC; the node on the other
//! side sees a veth.

use std::{
    io,
    os::fd::{AsFd, AsRawFd},
    thread,
};

use super::tap::Tap;
use crate::live::{netns::Namespace, packet_socket::PacketSocket};

/// `ETH_P_ALL`.
const ETH_P_ALL: u16 = 0x0003;
/// Largest frame carried.
const MAX_FRAME: usize = 65_536 + 64;

/// How frames reach the node through the NIC.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NicQuirks {
    /// Only this many bytes linear, the rest in page frags.
    pub linear: Option<u32>,
    /// `CHECKSUM_UNNECESSARY` (level 0): the NIC validated the outermost
    /// checksum.
    pub validated: bool,
}

/// A running forwarder; stopped and joined on drop.
#[derive(Debug)]
pub struct NicLink {
    stop: Option<io::PipeWriter>,
    thread: Option<thread::JoinHandle<()>>,
}

impl NicLink {
    /// Carries frames between interface `wire_index` of `wire` (the veth
    /// peer) and `tap`, with `quirks` on the way into the NIC.
    pub fn start(
        wire: &Namespace,
        wire_index: u32,
        tap: Tap,
        quirks: NicQuirks,
    ) -> io::Result<Self> {
        let (from_wire, to_wire) = wire.run(|| {
            let from = PacketSocket::capture_arriving(wire_index, ETH_P_ALL)?;
            from.set_receive_buffer(8 << 20)?;
            let to = PacketSocket::sender(wire_index)?;
            io::Result::Ok((from, to))
        })??;
        let (stop_rx, stop_tx) = io::pipe()?;
        let thread = thread::spawn(move || forward(&from_wire, &to_wire, tap, quirks, &stop_rx));
        Ok(Self {
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }
}

impl Drop for NicLink {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn forward(
    from_wire: &PacketSocket,
    to_wire: &PacketSocket,
    mut tap: Tap,
    quirks: NicQuirks,
    stop: &io::PipeReader,
) {
    let mut buf = vec![0u8; MAX_FRAME];
    let mut fds: Vec<libc::pollfd> = [from_wire.as_fd().as_raw_fd(), stop.as_fd().as_raw_fd()]
        .into_iter()
        .chain(tap.fds())
        .map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    loop {
        // SAFETY: valid pollfds, as many as stated.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as _, -1) };
        if rc < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        if fds[1].revents != 0 {
            return; // stopped
        }
        while let Ok(Some(frame)) = from_wire.try_recv(&mut buf) {
            let linear = quirks.linear.map(|n| n as usize);
            let _ = tap.deliver(&frame, linear, quirks.validated.then_some(0));
        }
        while let Ok(Some(frame)) = tap.try_recv(&mut buf) {
            let _ = to_wire.send(&frame);
        }
    }
}
