//! Wire headers and the [`Packet`] trait: how the shared core reads a packet.
//!
//! The headers are `#[repr(C)]` views whose fields are at most 16 bits wide,
//! so their alignment (2) holds at every offset the core reads (the Ethernet
//! header, IPv4 options and the UDP header all have even lengths; frames
//! start at least 2-byte aligned) and field loads compile to plain 8/16-bit
//! loads. Multi-byte fields are in network byte order, as on the wire.

use core::{
    arch::asm,
    mem::{MaybeUninit, size_of},
};

/// Ethernet header length.
pub const ETH_HLEN: u32 = 14;
/// IPv4 header length without options.
pub const IPV4_HLEN: u32 = 20;
/// IPv6 fixed header length.
pub const IPV6_HLEN: u32 = 40;
/// UDP header length.
pub const UDP_HLEN: u32 = 8;

/// EtherType IPv4, as stored in [`EthHdr::proto`] (network byte order).
pub const ETH_P_IP_BE: u16 = 0x0800u16.to_be();
/// EtherType IPv6, as stored in [`EthHdr::proto`] (network byte order).
pub const ETH_P_IPV6_BE: u16 = 0x86ddu16.to_be();

/// IP protocol numbers the core looks at.
pub mod proto {
    pub const HOPOPTS: u8 = 0;
    pub const IPIP: u8 = 4;
    pub const UDP: u8 = 17;
    pub const IPV6: u8 = 41;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const DSTOPTS: u8 = 60;
    pub const MOBILITY: u8 = 135;
    pub const HIP: u8 = 139;
    pub const SHIM6: u8 = 140;
    pub const EXP1: u8 = 253;
    pub const EXP2: u8 = 254;
}

/// Ethernet header.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EthHdr {
    /// Destination and source MAC addresses.
    pub addrs: [u16; 6],
    /// EtherType, network byte order.
    pub proto: u16,
}

/// IPv4 header without options.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Ipv4Hdr {
    pub version_ihl: u8,
    pub tos: u8,
    pub tot_len: u16,
    pub id: u16,
    pub frag_off: u16,
    pub ttl: u8,
    pub protocol: u8,
    pub check: u16,
    pub addrs: [u16; 4],
}

/// The first 8 bytes of an IPv6 header: everything but the addresses.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Ipv6Prefix {
    pub version_tc_flow: [u8; 4],
    pub payload_len: u16,
    pub nexthdr: u8,
    pub hop_limit: u8,
}

/// The first 8 bytes of an IP header of either version: enough to check the
/// version and lengths of an inner packet (IPv4 `tot_len` is at 2..4, IPv6
/// `payload_len` at 4..6).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct IpPrefix {
    pub b0: u8,
    pub b1: u8,
    pub v4_tot_len: u16,
    pub v6_payload_len: u16,
    pub b6: u8,
    pub b7: u8,
}

/// The ports of a UDP header (its first 4 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct UdpPorts {
    pub source: u16,
    pub dest: u16,
}

/// UDP header.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct UdpHdr {
    pub source: u16,
    pub dest: u16,
    pub len: u16,
    pub check: u16,
}

/// A header that can be read from a packet: plain bytes, any bit pattern is
/// valid, alignment at most 2.
///
/// # Safety
///
/// Implementors must be `#[repr(C)]` plain old data with alignment ≤ 2.
pub unsafe trait Header: Copy {}
unsafe impl Header for EthHdr {}
unsafe impl Header for Ipv4Hdr {}
unsafe impl Header for Ipv6Prefix {}
unsafe impl Header for IpPrefix {}
unsafe impl Header for UdpPorts {}
unsafe impl Header for UdpHdr {}

/// The view of one hook's packet that the core needs.
///
/// Offsets are from the start of the frame (the Ethernet header). The
/// "linear" area `[data, data_end)` can be read directly; the packet may
/// hold more bytes beyond it (XDP frags, non-linear skb), reachable only
/// through [`Packet::load_bytes`].
pub trait Packet {
    /// Address of the first byte of the frame.
    fn data(&self) -> usize;
    /// Address one past the last directly readable byte.
    fn data_end(&self) -> usize;
    /// Whether the whole packet (linear and non-linear) holds at least `n`
    /// bytes. Must be cheap when the linear area already holds them.
    fn has_len(&self, n: u32) -> bool;
    /// Whether the frame carried a VLAN tag that is no longer in the data
    /// (the stack moved it to metadata before the hook ran).
    fn vlan_tag_in_metadata(&self) -> bool;
    /// Copies `len` bytes at `off` into `dst` with the hook's helper.
    /// Returns false if the packet is shorter than `off + len`.
    ///
    /// # Safety
    ///
    /// `dst` must be valid for `len` bytes of writes.
    unsafe fn load_bytes(&self, off: u32, dst: *mut u8, len: u32) -> bool;
}

/// Why a header could not be read.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    /// The packet ends before the header does.
    Short,
    /// The header is in the packet but not in the linear area, and the
    /// caller asked not to fall back to the helper (fault injection only).
    NonLinear,
}

/// Reads the header `T` at `off`: a pointer into the packet when the linear
/// area holds it, else a pointer to `buf` after copying it there with
/// [`Packet::load_bytes`] (unless `fallback` is false, which is only ever a
/// compile-time constant).
///
/// The returned pointer is valid for reads of one `T` as long as `buf` lives
/// and the packet is not modified.
#[inline(always)]
pub fn read<P: Packet, T: Header>(
    pkt: &P,
    off: u32,
    buf: &mut MaybeUninit<T>,
    fallback: bool,
) -> Result<*const T, Miss> {
    let start = pkt.data() + off as usize;
    if start + size_of::<T>() <= pkt.data_end() {
        return Ok(start as *const T);
    }
    // Keep the fallback out of the straight-line fast path.
    core::hint::cold_path();
    if !fallback {
        return Err(if pkt.has_len(off + size_of::<T>() as u32) {
            Miss::NonLinear
        } else {
            Miss::Short
        });
    }
    // SAFETY: `buf` has room for one `T`.
    if unsafe { pkt.load_bytes(off, buf.as_mut_ptr().cast(), size_of::<T>() as u32) } {
        Ok(buf.as_ptr())
    } else {
        Err(Miss::Short)
    }
}

/// Returns `x` unchanged, hiding its value from the optimizer (one register
/// move). Used where the compiler would otherwise fold a bounds check that
/// the verifier needs into a stronger one, or derive a packet pointer in a
/// way the verifier cannot follow. (An empty asm template would emit no
/// instruction and give two BTF line-info records the same offset, which
/// the kernel rejects.)
#[inline(always)]
pub fn opaque(mut x: usize) -> usize {
    // SAFETY: a register-to-itself move.
    unsafe { asm!("{0} = {0}", inout(reg) x, options(pure, nomem, nostack, preserves_flags)) };
    x
}
