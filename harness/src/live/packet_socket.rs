//! AF_PACKET sockets on one link end: injecting frames and capturing them.
//!
//! Where a socket sees a frame depends on the protocol it is bound to, and
//! the live runner relies on it: an `ETH_P_ALL` socket is a tap that sees a
//! received frame *before* TC ingress (after XDP), while a socket bound to
//! one EtherType is a protocol handler that sees it *after* TC ingress, with
//! the protocol the programs left in `skb->protocol`. So a socket per
//! EtherType observes exactly what XDP and TC together delivered to the
//! stack.

use std::{
    io, mem,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    time::Duration,
};

/// `ETH_P_ALL`: every protocol.
pub const ETH_P_ALL: u16 = 0x0003;
/// `SOL_PACKET`.
const SOL_PACKET: libc::c_int = 263;
/// `PACKET_IGNORE_OUTGOING`: do not see what this host sends.
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
/// `PACKET_AUXDATA`: a `tpacket_auxdata` control message with each frame.
const PACKET_AUXDATA: libc::c_int = 8;
/// The frame had a VLAN tag, now in `tp_vlan_tci`.
const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
/// `tp_vlan_tpid` is set.
const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;

/// `struct tpacket_auxdata` (linux/if_packet.h).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct TpacketAuxdata {
    tp_status: u32,
    tp_len: u32,
    tp_snaplen: u32,
    tp_mac: u16,
    tp_net: u16,
    tp_vlan_tci: u16,
    tp_vlan_tpid: u16,
}

/// The `PACKET_AUXDATA` control message of a received `msg`, if any.
fn auxdata(msg: &libc::msghdr) -> Option<TpacketAuxdata> {
    // SAFETY: the CMSG macros walk the control buffer `msg` describes,
    // which recvmsg filled; the payload is read unaligned.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == SOL_PACKET && (*cmsg).cmsg_type == PACKET_AUXDATA {
                return Some(std::ptr::read_unaligned(
                    libc::CMSG_DATA(cmsg).cast::<TpacketAuxdata>(),
                ));
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
    }
    None
}

/// A raw AF_PACKET socket bound to one interface and protocol, in the
/// namespace of the thread that opened it.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: u32,
    protocol: u16,
}

impl std::os::fd::AsFd for PacketSocket {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl PacketSocket {
    /// Opens a socket on interface `ifindex` receiving `protocol` (an
    /// EtherType, or [`ETH_P_ALL`]).
    pub fn open(ifindex: u32, protocol: u16) -> io::Result<Self> {
        // SAFETY: plain socket(2); the fd is owned below.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                i32::from(protocol.to_be()),
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let socket = Self {
            fd,
            ifindex,
            protocol,
        };
        let addr = socket.address();
        // SAFETY: `addr` is a valid sockaddr_ll of the given size.
        let rc = unsafe {
            libc::bind(
                socket.fd.as_raw_fd(),
                (&raw const addr).cast(),
                mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(socket)
    }

    /// Opens a socket that only sends: bound to protocol 0, it receives
    /// nothing, so nothing queues up on it.
    pub fn sender(ifindex: u32) -> io::Result<Self> {
        Self::open(ifindex, 0)
    }

    /// Opens a capture of frames arriving on `ifindex` (not those it sends).
    pub fn capture_arriving(ifindex: u32, protocol: u16) -> io::Result<Self> {
        let socket = Self::open(ifindex, protocol)?;
        socket.set_int(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)?;
        socket.want_auxdata()?;
        Ok(socket)
    }

    /// The protocol it is bound to.
    pub const fn protocol(&self) -> u16 {
        self.protocol
    }

    /// Sends one whole Ethernet frame out of the interface.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        let addr = self.address();
        // SAFETY: buffer and address are valid for the given lengths.
        let sent = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&raw const addr).cast(),
                mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        match sent {
            n if n < 0 => Err(io::Error::last_os_error()),
            n if n as usize != frame.len() => Err(io::Error::other(format!(
                "short send: {n} of {} bytes",
                frame.len()
            ))),
            _ => Ok(()),
        }
    }

    /// Receives one frame if one is queued, as it was on the wire: a VLAN
    /// tag that the kernel moved into the skb's metadata on receive (before
    /// TC and the sockets see the frame) is put back, as libpcap does.
    /// `buf` is scratch space; a frame longer than it is cut.
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<Option<Vec<u8>>> {
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let mut control = [0u64; 8]; // room for one aligned tpacket_auxdata cmsg
        // SAFETY: msghdr is plain data; zero is a valid value.
        let mut msg: libc::msghdr = unsafe { mem::zeroed() };
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = mem::size_of_val(&control);
        // SAFETY: msg points at live buffers of the sizes it states.
        let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &raw mut msg, libc::MSG_DONTWAIT) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::WouldBlock {
                Ok(None)
            } else {
                Err(e)
            };
        }
        let mut frame = buf[..n as usize].to_vec();
        if let Some(aux) = auxdata(&msg)
            && aux.tp_status & TP_STATUS_VLAN_VALID != 0
            && frame.len() >= 12
        {
            let tpid = if aux.tp_status & TP_STATUS_VLAN_TPID_VALID != 0 {
                aux.tp_vlan_tpid
            } else {
                0x8100
            };
            let mut tag = tpid.to_be_bytes().to_vec();
            tag.extend(aux.tp_vlan_tci.to_be_bytes());
            frame.splice(12..12, tag);
        }
        Ok(Some(frame))
    }

    /// Asks for each frame's `tpacket_auxdata` (VLAN tag, lengths).
    pub fn want_auxdata(&self) -> io::Result<()> {
        self.set_int(SOL_PACKET, PACKET_AUXDATA, 1)
    }

    /// Waits up to `timeout` for a frame to be queued; false on time-out.
    pub fn wait_readable(&self, timeout: Duration) -> io::Result<bool> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        loop {
            // SAFETY: one valid pollfd.
            let rc = unsafe { libc::poll(&raw mut pfd, 1, ms) };
            if rc >= 0 {
                return Ok(rc > 0);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Frames dropped because the receive buffer was full since the last
    /// call (`PACKET_STATISTICS`, which resets on read).
    pub fn drops(&self) -> io::Result<u32> {
        let mut stats = libc::tpacket_stats {
            tp_packets: 0,
            tp_drops: 0,
        };
        let mut len = mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
        // SAFETY: a tpacket_stats of the stated size.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&raw mut stats).cast(),
                &raw mut len,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stats.tp_drops)
    }

    /// The receive buffer's size in bytes, as the kernel granted it.
    pub fn receive_buffer(&self) -> io::Result<usize> {
        let mut value: libc::c_int = 0;
        let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: an int option of the stated size.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&raw mut value).cast(),
                &raw mut len,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(value as usize)
    }

    /// Sets the receive buffer (bytes), so bursts are not dropped.
    pub fn set_receive_buffer(&self, bytes: usize) -> io::Result<()> {
        let bytes = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        // SO_RCVBUFFORCE ignores rmem_max (we are CAP_NET_ADMIN); fall back
        // to the capped option without it.
        self.set_int(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, bytes)
            .or_else(|_| self.set_int(libc::SOL_SOCKET, libc::SO_RCVBUF, bytes))
    }

    fn set_int(&self, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
        // SAFETY: an int option of the right size.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                (&raw const value).cast(),
                mem::size_of::<libc::c_int>() as u32,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    fn address(&self) -> libc::sockaddr_ll {
        // SAFETY: sockaddr_ll is plain data; zero is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = self.protocol.to_be();
        addr.sll_ifindex = self.ifindex as i32;
        addr
    }
}

/// The protocol the kernel gives a received frame (`eth_type_trans`):
/// its EtherType, or 802.3/802.2 for length fields; `None` when the frame
/// is too short to have an Ethernet header.
pub fn received_protocol(frame: &[u8]) -> Option<u16> {
    const ETH_P_802_3: u16 = 0x0001;
    const ETH_P_802_2: u16 = 0x0004;
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    Some(if ethertype >= 0x0600 {
        ethertype
    } else if frame.get(14..16) == Some(&[0xff, 0xff]) {
        ETH_P_802_3 // raw 802.3 (Novell)
    } else {
        ETH_P_802_2
    })
}
