//! Wire headers and the [`Packet`] trait: how the shared core reads a packet,
//! and [`network`], the one validation of an IP header after Ethernet.
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

/// Whether the linear area `[data, data_end)` holds `n` bytes, in a form
/// every verifier from 6.1 on follows. Never `data + n <= data_end`:
/// verifiers before 6.13 lose the bounds of a byte-swapped length (an IP
/// total length) and refuse pointer math with it ("unbounded min value",
/// found on 6.12 by the VM matrix), and LLVM hoists the sum above any bound
/// check. Compared as lengths instead, with the available length opaque to
/// the compiler: otherwise LLVM derives from this check that later fixed
/// offsets are in bounds and drops their own checks, which 6.1's verifier
/// cannot follow ("invalid access to packet"). Opaque through [`opaque`],
/// a register move, rather than `black_box`, which spills the value to the
/// stack and loads it back on every check.
#[inline(always)]
pub fn linear_holds(data: usize, data_end: usize, n: u32) -> bool {
    n as usize <= opaque(data_end - data)
}

/// IPv4 header length without options.
pub const IPV4_HLEN: u32 = 20;
/// IPv6 fixed header length.
pub const IPV6_HLEN: u32 = 40;
/// UDP header length.
pub const UDP_HLEN: u32 = 8;
/// TCP header length without options.
pub const TCP_HLEN: u32 = 20;
/// ICMP / ICMPv6 header length (type, code, checksum, 4 more bytes).
pub const ICMP_HLEN: u32 = 8;
/// IPv6 fragment header length.
pub const IPV6_FRAG_HLEN: u32 = 8;

/// EtherType IPv4, as stored in [`EthHdr::proto`] (network byte order).
pub const ETH_P_IP_BE: u16 = 0x0800u16.to_be();
/// EtherType IPv6, as stored in [`EthHdr::proto`] (network byte order).
pub const ETH_P_IPV6_BE: u16 = 0x86ddu16.to_be();

/// IP protocol numbers the core looks at.
pub mod proto {
    pub const HOPOPTS: u8 = 0;
    pub const ICMP: u8 = 1;
    pub const IPIP: u8 = 4;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const IPV6: u8 = 41;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const ICMPV6: u8 = 58;
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

/// IPv6 fixed header.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Ipv6Hdr {
    pub version_tc_flow: [u8; 4],
    pub payload_len: u16,
    pub nexthdr: u8,
    pub hop_limit: u8,
    pub saddr: [u16; 8],
    pub daddr: [u16; 8],
}

/// IPv6 fragment extension header.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Ipv6FragHdr {
    pub nexthdr: u8,
    pub reserved: u8,
    pub frag_off: u16,
    pub id: [u16; 2],
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

/// TCP header without options.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct TcpHdr {
    pub source: u16,
    pub dest: u16,
    pub seq: [u16; 2],
    pub ack_seq: [u16; 2],
    /// Data offset (high nibble) and reserved bits.
    pub doff: u8,
    /// [`tcp_flags`].
    pub flags: u8,
    pub window: u16,
    pub check: u16,
    pub urg_ptr: u16,
}

/// Bits of [`TcpHdr::flags`].
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
}

/// ICMP / ICMPv6 header: type, code, checksum and the 4 type-specific bytes
/// (echo id and sequence, next-hop MTU, ...).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct IcmpHdr {
    pub kind: u8,
    pub code: u8,
    pub checksum: u16,
    pub rest: [u16; 2],
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
unsafe impl Header for Ipv6Hdr {}
unsafe impl Header for Ipv6FragHdr {}
unsafe impl Header for TcpHdr {}
unsafe impl Header for IcmpHdr {}

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

/// The network layer of an Ethernet frame, checked against the frame.
#[derive(Clone, Copy)]
pub struct Network {
    /// IPv6 (else IPv4).
    pub v6: bool,
    /// IPv4 ToS or IPv6 traffic class.
    pub tos: u8,
    /// IPv4 protocol or IPv6 next header.
    pub protocol: u8,
    /// IPv4 `frag_off` as on the wire (flags and offset); 0 for IPv6.
    pub frag_off_be: u16,
    /// IPv4 IHL·4 (options included) or 40.
    pub hdr_len: u32,
    /// What the IP header says follows it: IPv4 total length minus IHL·4,
    /// IPv6 payload length. Checked to be in the packet; bytes beyond it
    /// (Ethernet padding) are not counted.
    pub carried: u32,
    /// Length of the IP packet per its header: IPv4 total length, 40 +
    /// IPv6 payload length (`hdr_len + carried`). Also makes the struct
    /// larger than 16 bytes, so that `Result<Network, _>` is returned
    /// through memory: returned as an integer pair (the ABI for small
    /// aggregates), its fields reach the BPF code as byte-wise stack
    /// stores that the verifier reloads as unbounded scalars.
    pub ip_len: u32,
}

impl Network {
    /// Offset of the header after the IP header, from the frame start.
    #[inline(always)]
    pub fn l4_off(&self) -> u32 {
        ETH_HLEN + self.hdr_len
    }

    /// IPv4 with MF set or a non-zero fragment offset.
    #[inline(always)]
    pub fn v4_fragment(&self) -> bool {
        self.frag_off_be & 0x3fffu16.to_be() != 0
    }

    /// IPv4 with a non-zero fragment offset (not the first fragment).
    #[inline(always)]
    pub fn v4_later_fragment(&self) -> bool {
        self.frag_off_be & 0x1fffu16.to_be() != 0
    }

    /// IPv4 with DF set.
    #[inline(always)]
    pub fn v4_dont_fragment(&self) -> bool {
        self.frag_off_be & 0x4000u16.to_be() != 0
    }
}

/// Why [`network`] found no usable IP header.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum NetworkError {
    /// The EtherType is neither IPv4 nor IPv6.
    NotIp,
    /// IPv4: fewer than 20 bytes, version ≠ 4, IHL < 5, total length <
    /// IHL·4 or > bytes after the Ethernet header. IPv6: fewer than 40
    /// bytes, version ≠ 6, 40 + payload length > bytes after the Ethernet
    /// header.
    Malformed,
    /// The header is in the packet but not in the linear area and
    /// `fallback` was false.
    NonLinear,
}

/// Reads and checks the IP header after an Ethernet header whose EtherType
/// is `eth_proto_be`: the validation every program here applies before it
/// trusts an IP header (the rules of [`NetworkError::Malformed`]).
#[inline(always)]
pub fn network<P: Packet>(
    pkt: &P,
    eth_proto_be: u16,
    fallback: bool,
) -> Result<Network, NetworkError> {
    let miss = |m| match m {
        Miss::Short => NetworkError::Malformed,
        Miss::NonLinear => NetworkError::NonLinear,
    };
    if eth_proto_be == ETH_P_IP_BE {
        let mut buf = MaybeUninit::<Ipv4Hdr>::uninit();
        // SAFETY: `read` returned a pointer valid for one header.
        let ip = unsafe {
            read(pkt, ETH_HLEN, &mut buf, fallback)
                .map_err(miss)?
                .read()
        };
        if ip.version_ihl >> 4 != 4 {
            return Err(NetworkError::Malformed);
        }
        let hdr_len = u32::from(ip.version_ihl & 0x0f) * 4;
        let tot_len = u32::from(u16::from_be(ip.tot_len));
        if hdr_len < IPV4_HLEN || tot_len < hdr_len || !pkt.has_len(ETH_HLEN + tot_len) {
            return Err(NetworkError::Malformed);
        }
        Ok(Network {
            v6: false,
            tos: ip.tos,
            protocol: ip.protocol,
            frag_off_be: ip.frag_off,
            hdr_len,
            carried: tot_len - hdr_len,
            ip_len: tot_len,
        })
    } else if eth_proto_be == ETH_P_IPV6_BE {
        let mut buf = MaybeUninit::<Ipv6Prefix>::uninit();
        // SAFETY: as above.
        let ip = unsafe {
            read(pkt, ETH_HLEN, &mut buf, fallback)
                .map_err(miss)?
                .read()
        };
        let [b0, b1, _, _] = ip.version_tc_flow;
        if b0 >> 4 != 6 {
            return Err(NetworkError::Malformed);
        }
        let carried = u32::from(u16::from_be(ip.payload_len));
        // Also proves the 32 address bytes after the prefix are there.
        if !pkt.has_len(ETH_HLEN + IPV6_HLEN + carried) {
            return Err(NetworkError::Malformed);
        }
        Ok(Network {
            v6: true,
            tos: (b0 << 4) | (b1 >> 4),
            protocol: ip.nexthdr,
            frag_off_be: 0,
            hdr_len: IPV6_HLEN,
            carried,
            ip_len: IPV6_HLEN + carried,
        })
    } else {
        Err(NetworkError::NotIp)
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
