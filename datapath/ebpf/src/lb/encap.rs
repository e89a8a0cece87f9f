//! Encapsulation to a real: IPv4-in-IPv4, IPv6-in-IPv6, IPv4-in-IPv6,
//! optionally with a GUE (variant 1, UDP) header, written in front of the
//! frame's IP packet with `bpf_xdp_adjust_head`.
//!
//! All writes are 16-bit stores at even offsets from the new frame start
//! (the header views of `packet` are 2-byte aligned for the same reason).

use aya_ebpf::{helpers::generated::bpf_xdp_adjust_head, programs::XdpContext};
use dsrlab_abi::lb::{FAMILY_V4, FAMILY_V6, LbConfig, RealDef, config_flags};
use dsrlab_ebpf::packet::{
    ETH_HLEN, ETH_P_IP_BE, ETH_P_IPV6_BE, IPV4_HLEN, IPV6_HLEN, UDP_HLEN, proto,
};

use super::csum::{finish, fold64, sum_bytes, word};

/// What to put in front of the frame's IP packet.
pub struct Encap<'a> {
    pub cfg: &'a LbConfig,
    pub real: &'a RealDef,
    /// The flow hash (outer source, flow label, GUE source port).
    pub hash: u32,
    /// Add a GUE (UDP) header.
    pub gue: bool,
    /// The frame's IP packet is IPv6.
    pub inner_v6: bool,
    /// Its ToS / traffic class.
    pub tos: u8,
    /// Its length per its header.
    pub ip_len: u32,
}

/// Why nothing was sent.
pub enum EncapError {
    /// The real's family cannot carry the packet (IPv6 in IPv4, or no
    /// family). The frame is unchanged.
    Family,
    /// The packet plus `overhead` bytes of headers exceeds the MTU. The
    /// frame is unchanged.
    TooBig { overhead: u32 },
    /// A helper failed; the frame may be changed.
    Helper,
}

/// Stores the 16-bit word `w` at `base + off`.
///
/// # Safety
///
/// `base + off .. base + off + 2` must be in the linear frame, checked
/// against `data_end` in a way the verifier sees, and `base + off` even.
#[inline(always)]
pub(super) unsafe fn put(base: usize, off: usize, w: u16) {
    unsafe { ((base + off) as *mut u16).write(w) }
}

/// Loads the 16-bit word at `base + off` (same contract as [`put`]).
#[inline(always)]
pub(super) unsafe fn get(base: usize, off: usize) -> u16 {
    unsafe { ((base + off) as *const u16).read() }
}

/// Word `i` of a byte array that sits at an even offset of a map value
/// (map values are 8-byte aligned).
#[inline(always)]
pub(super) fn word_of<const N: usize>(bytes: &[u8; N], i: usize) -> u16 {
    word(bytes[2 * i], bytes[2 * i + 1])
}

/// Writes an Ethernet header at `data`: destination `dst` (three words),
/// source `src`, EtherType `proto_be`.
///
/// # Safety
///
/// As [`put`] for 14 bytes at `data`.
#[inline(always)]
pub(super) unsafe fn put_eth(data: usize, dst: [u16; 3], src: [u16; 3], proto_be: u16) {
    unsafe {
        put(data, 0, dst[0]);
        put(data, 2, dst[1]);
        put(data, 4, dst[2]);
        put(data, 6, src[0]);
        put(data, 8, src[1]);
        put(data, 10, src[2]);
        put(data, 12, proto_be);
    }
}

/// Encapsulates the frame's IP packet as `e` says.
#[inline(always)]
pub fn encapsulate(ctx: &XdpContext, e: &Encap<'_>) -> Result<(), EncapError> {
    let outer_v6 = match e.real.family {
        FAMILY_V4 if !e.inner_v6 => false,
        FAMILY_V6 => true,
        _ => return Err(EncapError::Family),
    };
    let udp_len = if e.gue { UDP_HLEN } else { 0 };
    let overhead = if outer_v6 { IPV6_HLEN } else { IPV4_HLEN } + udp_len;
    if u64::from(e.ip_len) + u64::from(overhead) > u64::from(e.cfg.mtu) {
        return Err(EncapError::TooBig { overhead });
    }

    // The MAC the frame was sent to becomes the source.
    let data = ctx.data();
    if data + ETH_HLEN as usize > ctx.data_end() {
        return Err(EncapError::Helper);
    }
    // The inner packet's share of the outer UDP checksum, summed before the
    // frame changes so that a failure leaves it as it was.
    let inner_sum = if outer_v6 && e.gue && e.cfg.flags & config_flags::GUE_V6_ZERO_CSUM == 0 {
        match sum_bytes(data + ETH_HLEN as usize, ctx.data_end(), e.ip_len) {
            Some(sum) => Some(sum),
            None => return Err(EncapError::Helper),
        }
    } else {
        None
    };
    // SAFETY: the Ethernet header is in the frame.
    let local_mac = unsafe { [get(data, 0), get(data, 2), get(data, 4)] };
    let gw = &e.cfg.gateway_mac;
    let gateway_mac = [word_of(gw, 0), word_of(gw, 1), word_of(gw, 2)];

    // SAFETY: plain helper call on our context.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, -(overhead as i32)) } != 0 {
        return Err(EncapError::Helper);
    }
    let data = ctx.data();
    let data_end = ctx.data_end();

    let hash = e.hash;
    let payload_len = udp_len + e.ip_len; // after the outer IP header
    let inner_proto = if e.inner_v6 { proto::IPV6 } else { proto::IPIP };
    let next = if e.gue { proto::UDP } else { inner_proto };
    let addr = &e.real.addr;
    // Every offset below is a constant: the verifier bounds writes through
    // `data` plus a constant, not plus a variable.
    if outer_v6 {
        // Bound for the largest case (GUE); the smallest packet that gets
        // here (IPv4 header + 8) is longer than that.
        if data + (ETH_HLEN + IPV6_HLEN + UDP_HLEN) as usize > data_end {
            return Err(EncapError::Helper);
        }
        let flow = hash & 0xf_ffff;
        let prefix = &e.cfg.src_v6_prefix;
        // SAFETY: bounded above.
        unsafe {
            put_eth(data, gateway_mac, local_mac, ETH_P_IPV6_BE);
            let ip = data + ETH_HLEN as usize;
            put(
                ip,
                0,
                word(0x60 | (e.tos >> 4), (e.tos << 4) | (flow >> 16) as u8),
            );
            put(ip, 2, (flow as u16).to_be());
            put(ip, 4, (payload_len as u16).to_be());
            put(ip, 6, word(next, 64));
            for i in 0..6 {
                put(ip, 8 + 2 * i, word_of(prefix, i));
            }
            put(ip, 20, ((hash >> 16) as u16).to_be());
            put(ip, 22, (hash as u16).to_be());
            for i in 0..8 {
                put(ip, 24 + 2 * i, word_of(addr, i));
            }
            if e.gue {
                let udp = data + (ETH_HLEN + IPV6_HLEN) as usize;
                put_udp(udp, e, payload_len);
                if let Some(inner) = inner_sum {
                    // Pseudo-header (RFC 8200 8.1): both addresses, the
                    // upper-layer length and next header as 32-bit words;
                    // then the UDP header as written, checksum 0.
                    let mut sum = inner as u64;
                    for i in 0..16 {
                        sum += u64::from(get(ip, 8 + 2 * i));
                    }
                    sum += u64::from((payload_len as u16).to_be());
                    sum += u64::from(word(0, proto::UDP));
                    for i in 0..3 {
                        sum += u64::from(get(udp, 2 * i));
                    }
                    let check = finish(fold64(sum));
                    // Zero means "no checksum" in UDP (RFC 768).
                    put(udp, 6, if check == 0 { 0xffff } else { check });
                }
            }
        }
    } else {
        if data + (ETH_HLEN + IPV4_HLEN + UDP_HLEN) as usize > data_end {
            return Err(EncapError::Helper);
        }
        let prefix = &e.cfg.src_v4_prefix;
        let words = [
            word(0x45, e.tos),
            ((IPV4_HLEN + payload_len) as u16).to_be(),
            0,
            0x4000u16.to_be(), // DF
            word(64, next),
            0,
            word_of(prefix, 0),
            (hash as u16).to_be(),
            word_of(addr, 0),
            word_of(addr, 1),
        ];
        let check = finish(words.iter().map(|&w| u32::from(w)).sum());
        // SAFETY: bounded above.
        unsafe {
            put_eth(data, gateway_mac, local_mac, ETH_P_IP_BE);
            let ip = data + ETH_HLEN as usize;
            for (i, &w) in words.iter().enumerate() {
                put(ip, 2 * i, w);
            }
            put(ip, 10, check);
            if e.gue {
                put_udp(data + (ETH_HLEN + IPV4_HLEN) as usize, e, payload_len);
            }
        }
    }
    Ok(())
}

/// Writes the GUE (UDP) header at `udp`: source port from the hash,
/// destination `gue_port`, length `len`, checksum 0 (filled in after it
/// over IPv6).
///
/// # Safety
///
/// As [`put`] for 8 bytes at `udp`.
#[inline(always)]
unsafe fn put_udp(udp: usize, e: &Encap<'_>, len: u32) {
    unsafe {
        put(udp, 0, ((0x8000 | (e.hash & 0x7fff)) as u16).to_be());
        put(udp, 2, e.cfg.gue_port.to_be());
        put(udp, 4, (len as u16).to_be());
        put(udp, 6, 0);
    }
}
