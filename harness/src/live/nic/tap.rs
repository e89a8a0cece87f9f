//! A NIC that leaves headers unpulled ("Broadcom-like") and can validate
//! checksums: a multi-queue TAP opened with `IFF_NAPI | IFF_NAPI_FRAGS`,
//! GRO off, fed with `writev`.
//!
//! - Unpulled headers: the kernel builds each skb from the iovecs as a
//!   driver builds it from DMA buffers — the first iovec becomes the linear
//!   part and the rest page fragments — so a frame written as (14 bytes,
//!   the rest) reaches TC with only its Ethernet header linear.
//! - Validated checksums: a virtio-net header's `DATA_VALID` is not
//!   honoured by tun on these kernels (measured: the skb stays
//!   `CHECKSUM_NONE`), so the NIC validates per receive queue, as hardware
//!   reports it per descriptor: the frames of queue *q* > 0 leave the NIC
//!   `CHECKSUM_UNNECESSARY` with `csum_level` *q* − 1, set by the NIC's own
//!   TC program (`nic_validate`, first in the interface's TCX chain,
//!   `bpf_csum_level(BPF_CSUM_LEVEL_INC)` per level).
//!
//! With `IFF_NAPI_FRAGS`, tun hands each frame to the stack within the
//! `writev` call (NAPI GRO, then `napi_complete`): by the time a write
//! returns, the frame has been through TC. Frames the stack sends out of
//! the TAP (redirects, fences sent back) are read from whichever queue
//! took them; with no qdisc, each is there the moment it is sent.

use std::{
    fs::{File, OpenOptions},
    io::{self, Read as _},
    os::{fd::AsRawFd, unix::fs::OpenOptionsExt},
    time::Duration,
};

use crate::{
    instruments::{NIC_VALIDATE_ELF, libbpf},
    live::{ethtool, netlink::Rtnl, netns::Namespace, topology::ifindex},
};

const IFF_TAP: libc::c_short = 0x0002;
const IFF_NAPI: libc::c_short = 0x0010;
const IFF_NAPI_FRAGS: libc::c_short = 0x0020;
const IFF_MULTI_QUEUE: libc::c_short = 0x0100;
const IFF_NO_PI: libc::c_short = 0x1000;
/// `TUNSETIFF`: `_IOW('T', 202, int)`.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;

/// Largest fragment tun takes from one iovec.
const PAGE: usize = 4096;

/// Receive queues: plain, validated to level 0, validated to level 1.
pub const QUEUES: usize = 3;

/// `struct ifreq` with the flags member.
#[repr(C)]
struct IfreqFlags {
    name: [libc::c_char; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// The TAP NIC; the device goes away when it drops.
#[derive(Debug)]
pub struct Tap {
    queues: Vec<File>,
    name: String,
    index: u32,
    /// The NIC's validation program (the link before its object).
    validate: (libbpf::Link, libbpf::Object),
}

fn open_queue(name: &str) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open("/dev/net/tun")
        .map_err(|e| io::Error::new(e.kind(), format!("open /dev/net/tun: {e}")))?;
    let mut req = IfreqFlags {
        name: [0; libc::IFNAMSIZ],
        flags: IFF_TAP | IFF_NO_PI | IFF_NAPI | IFF_NAPI_FRAGS | IFF_MULTI_QUEUE,
        _pad: [0; 22],
    };
    for (dst, src) in req.name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    // SAFETY: TUNSETIFF reads and writes the ifreq, alive for the call.
    if unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF, &raw mut req) } < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("TUNSETIFF {name} (IFF_NAPI_FRAGS, multi-queue): {e}"),
        ));
    }
    Ok(file)
}

impl Tap {
    /// Creates TAP `name` in `ns` with [`QUEUES`] queues, GRO off, up at
    /// `mtu` with MAC address `mac`, its validation program attached.
    pub fn create(ns: &Namespace, name: &str, mtu: u32, mac: [u8; 6]) -> io::Result<Self> {
        if name.len() >= libc::IFNAMSIZ {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("TAP name {name} is too long"),
            ));
        }
        let validate = libbpf::Object::load("nic_validate", NIC_VALIDATE_ELF)?;
        ns.run(|| {
            // A TAP is made in the namespace of the thread that asks.
            let queues = (0..QUEUES)
                .map(|_| open_queue(name))
                .collect::<io::Result<Vec<_>>>()?;
            // GRO would pull the headers again.
            ethtool::set_feature(name, ethtool::Feature::Gro, false)?;
            let index = ifindex(name)?;
            let mut rtnl = Rtnl::open()?;
            rtnl.set_link(index, Some(mtu), Some(mac), Some(true))
                .map_err(io::Error::other)?;
            // Frames sent out of the NIC (redirects, the return fence)
            // reach its queues in the order they were sent: a qdisc per
            // transmit queue could hold one back behind a later fence.
            rtnl.set_noqueue(index).map_err(io::Error::other)?;
            let link = validate.attach_tcx_ingress_first("nic_validate", index)?;
            Ok(Self {
                queues,
                name: name.to_owned(),
                index,
                validate: (link, validate),
            })
        })?
    }

    /// The fd of the NIC's own TC program, which observers go after.
    pub fn nic_program_fd(&self) -> io::Result<std::os::fd::RawFd> {
        self.validate.1.program_fd("nic_validate")
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The device's index in its namespace.
    pub const fn index(&self) -> u32 {
        self.index
    }

    /// Delivers `frame` as received from the wire: the first `linear`
    /// bytes (all when `None`) in the skb's linear part, the rest in page
    /// fragments; `validated`: `None` for `CHECKSUM_NONE`, `Some(level)`
    /// for `CHECKSUM_UNNECESSARY` with that `csum_level` (0 or 1).
    pub fn deliver(
        &self,
        frame: &[u8],
        linear: Option<usize>,
        validated: Option<u8>,
    ) -> io::Result<()> {
        let queue = match validated {
            None => 0,
            Some(level) if usize::from(level) + 1 < QUEUES => usize::from(level) + 1,
            Some(level) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "csum_level {level}: the NIC validates to level {} at most",
                        QUEUES - 2
                    ),
                ));
            }
        };
        // At least one byte in the head (an empty first iovec would make
        // the whole frame linear; the stack pulls the Ethernet header into
        // a shorter one), and fragments of at most a page each: tun takes
        // no larger iovec as a fragment.
        let split = linear
            .unwrap_or(frame.len())
            .clamp(1.min(frame.len()), frame.len());
        let (head, tail) = frame.split_at(split);
        let iov: Vec<libc::iovec> = std::iter::once(head)
            .chain(tail.chunks(PAGE))
            .filter(|part| !part.is_empty())
            .map(|part| libc::iovec {
                iov_base: part.as_ptr().cast_mut().cast(),
                iov_len: part.len(),
            })
            .collect();
        // SAFETY: every iovec points at live memory of its length; the
        // kernel only reads from them.
        let n =
            unsafe { libc::writev(self.queues[queue].as_raw_fd(), iov.as_ptr(), iov.len() as _) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!(
                    "writing a {}-byte frame into {}: {e}",
                    frame.len(),
                    self.name
                ),
            ));
        }
        Ok(())
    }

    /// The file descriptors of its queues, to poll.
    pub fn fds(&self) -> Vec<std::os::fd::RawFd> {
        self.queues.iter().map(AsRawFd::as_raw_fd).collect()
    }

    /// Waits up to `timeout` for a frame sent out of the device.
    pub fn wait_readable(&self, timeout: Duration) -> io::Result<bool> {
        let mut fds: Vec<libc::pollfd> = self
            .queues
            .iter()
            .map(|q| libc::pollfd {
                fd: q.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        loop {
            // SAFETY: valid pollfds, as many as stated.
            let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as _, ms) };
            if rc >= 0 {
                return Ok(rc > 0);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// A frame the stack sent out of the device, if one is queued on any
    /// queue.
    pub fn try_recv(&mut self, buf: &mut [u8]) -> io::Result<Option<Vec<u8>>> {
        for queue in &mut self.queues {
            match queue.read(buf) {
                Ok(n) => return Ok(Some(buf[..n].to_vec())),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }
}
