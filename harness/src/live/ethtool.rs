//! Offload settings of a link end (what `ethtool -K` changes): GRO and the
//! checksum offloads, through the `SIOCETHTOOL` requests that set one
//! feature each. The kernel maps them onto its generic feature machinery
//! for every driver, veth included.
//!
//! Why not ethtool's netlink family: the one feature set it would add is
//! these three bits; the ioctl needs no new dependency and is as stable an
//! ABI (`ETHTOOL_S*` requests are decades old and still served).

use std::{io, os::fd::AsRawFd};

/// A feature of a link end that a scenario may turn on or off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feature {
    /// Generic receive offload.
    Gro,
    /// Transmit checksum offload (off: the stack completes checksums).
    TxChecksum,
    /// Receive checksum offload.
    RxChecksum,
}

impl Feature {
    /// The `ETHTOOL_S*` command that sets it; the `ETHTOOL_G*` command that
    /// reads it is one less.
    const fn set_command(self) -> u32 {
        match self {
            Self::Gro => 0x0000_002c,        // ETHTOOL_SGRO
            Self::TxChecksum => 0x0000_0017, // ETHTOOL_STXCSUM
            Self::RxChecksum => 0x0000_0015, // ETHTOOL_SRXCSUM
        }
    }

    /// Its name in `ethtool -k` terms.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Gro => "gro",
            Self::TxChecksum => "tx-checksumming",
            Self::RxChecksum => "rx-checksumming",
        }
    }
}

/// `struct ethtool_value`.
#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

/// `struct ifreq` with the `ifr_data` member.
#[repr(C)]
struct IfreqData {
    name: [libc::c_char; libc::IFNAMSIZ],
    data: *mut libc::c_void,
    _pad: [u8; 16],
}

/// Turns `feature` of interface `ifname` (in the calling thread's network
/// namespace) on or off.
pub fn set_feature(ifname: &str, feature: Feature, on: bool) -> io::Result<()> {
    request(ifname, feature.set_command(), u32::from(on))
        .map(drop)
        .map_err(|err| {
            io::Error::new(
                err.kind(),
                format!(
                    "ethtool -K {ifname} {} {}: {err}",
                    feature.name(),
                    if on { "on" } else { "off" }
                ),
            )
        })
}

/// Whether `feature` of interface `ifname` is on.
pub fn feature(ifname: &str, feature: Feature) -> io::Result<bool> {
    request(ifname, feature.set_command() - 1, 0)
        .map(|data| data != 0)
        .map_err(|err| {
            io::Error::new(
                err.kind(),
                format!("ethtool -k {ifname} ({}): {err}", feature.name()),
            )
        })
}

/// One `SIOCETHTOOL` request with an `ethtool_value`; returns its data.
fn request(ifname: &str, cmd: u32, data: u32) -> io::Result<u32> {
    if ifname.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("interface name {ifname} is too long"),
        ));
    }
    // SAFETY: a plain datagram socket; the fd is owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    let socket = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let mut value = EthtoolValue { cmd, data };
    let mut request = IfreqData {
        name: [0; libc::IFNAMSIZ],
        data: (&raw mut value).cast(),
        _pad: [0; 16],
    };
    for (dst, src) in request.name.iter_mut().zip(ifname.bytes()) {
        *dst = src as libc::c_char;
    }
    // SAFETY: SIOCETHTOOL reads `request` and the `ethtool_value` it points
    // to (and writes the latter), both alive for the call.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCETHTOOL, &raw mut request) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(value.data)
}
