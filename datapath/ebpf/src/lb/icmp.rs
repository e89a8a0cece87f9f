//! ICMP and ICMPv6: echo requests to a VIP answered in place, errors about
//! a VIP's flow sent to the real serving it, and the frag-needed /
//! packet-too-big replies to packets too big to encapsulate.

use aya_ebpf::{
    helpers::generated::{bpf_xdp_adjust_head, bpf_xdp_adjust_tail},
    programs::XdpContext,
};
use dsrlab_abi::lb::{Counter, FAMILY_V4, FAMILY_V6, config_flags};
use dsrlab_ebpf::packet::{
    ETH_HLEN, ETH_P_IP_BE, ETH_P_IPV6_BE, ICMP_HLEN, IPV4_HLEN, IPV6_HLEN, IcmpHdr, Ipv4Hdr,
    Ipv6Hdr, Network, UdpPorts, opaque, proto,
};

use super::{
    Addrs, Flow, Linear, MALFORMED, NOT_VIP, Outcome, addrs_at,
    csum::{finish, replace, sum_addr, word},
    encap::{get, put, put_eth},
    forward, hdr_len, header, l4_off, lookup_vip,
    maps::LB_CONFIG,
    tx,
};

/// ICMP echo request and reply types.
const ECHO_REQUEST: u8 = 8;
const ECHO_REPLY: u8 = 0;
/// ICMP destination unreachable; code 4: fragmentation needed.
const DEST_UNREACH: u8 = 3;
const FRAG_NEEDED: u8 = 4;
/// ICMPv6 types.
const V6_DEST_UNREACH: u8 = 1;
const V6_PACKET_TOO_BIG: u8 = 2;
const V6_ECHO_REQUEST: u8 = 128;
const V6_ECHO_REPLY: u8 = 129;

/// Bytes of the offending packet a too-big reply quotes.
const QUOTE_V4: u32 = IPV4_HLEN + 8;
const QUOTE_V6: u32 = IPV6_HLEN + 8;

/// An ICMP (IPv4 protocol 1) or ICMPv6 (IPv6 next header 58) packet that is
/// not a fragment.
#[inline(always)]
pub fn process<const V6: bool>(
    ctx: &XdpContext,
    pkt: &Linear,
    net: &Network,
    addrs: &Addrs,
) -> Outcome {
    if net.carried < ICMP_HLEN {
        return MALFORMED;
    }
    let Some(icmp) = header::<IcmpHdr>(pkt, l4_off(net)) else {
        return MALFORMED;
    };
    match (V6, icmp.kind) {
        (false, ECHO_REQUEST) | (true, V6_ECHO_REQUEST) => echo::<V6>(ctx, net, addrs, &icmp),
        (false, DEST_UNREACH) | (true, V6_DEST_UNREACH | V6_PACKET_TOO_BIG) => {
            error::<V6>(ctx, pkt, net)
        }
        _ => NOT_VIP,
    }
}

/// An echo request: answered in place if echo is on and the destination
/// has an echo entry.
#[inline(always)]
fn echo<const V6: bool>(ctx: &XdpContext, net: &Network, addrs: &Addrs, icmp: &IcmpHdr) -> Outcome {
    let Some(cfg) = LB_CONFIG.get(0) else {
        return NOT_VIP;
    };
    if cfg.flags & config_flags::ICMP_ECHO == 0 {
        return NOT_VIP;
    }
    let (protocol, family) = if V6 {
        (proto::ICMPV6, FAMILY_V6)
    } else {
        (proto::ICMP, FAMILY_V4)
    };
    if lookup_vip(&addrs.dst, 0, protocol, family).is_none() {
        return NOT_VIP;
    }
    let data = ctx.data();
    let data_end = ctx.data_end();
    let ip = data + ETH_HLEN as usize;
    if V6 {
        // ICMPv6 right after the fixed header.
        if data + (ETH_HLEN + IPV6_HLEN + ICMP_HLEN) as usize > data_end {
            return MALFORMED;
        }
        // SAFETY: bounded above.
        unsafe {
            swap_macs(data);
            put(ip, 6, word(proto::ICMPV6, 64));
            for i in 0..4 {
                put32(ip, 8 + 4 * i, addrs.dst[i]);
                put32(ip, 24 + 4 * i, addrs.src[i]);
            }
            let icmp_at = ip + IPV6_HLEN as usize;
            let old = word(V6_ECHO_REQUEST, icmp.code);
            let new = word(V6_ECHO_REPLY, icmp.code);
            put(icmp_at, 0, new);
            put(icmp_at, 2, replace(icmp.checksum, old, new));
        }
    } else {
        if data + (ETH_HLEN + IPV4_HLEN) as usize > data_end {
            return MALFORMED;
        }
        // SAFETY: bounded above; the ICMP header (after options) is bounded
        // on its own below.
        unsafe {
            swap_macs(data);
            put(ip, 8, word(64, proto::ICMP));
            put32(ip, 12, addrs.dst[0]);
            put32(ip, 16, addrs.src[0]);
            ipv4_checksum(ip, data_end, net.hdr_len);
            let icmp_at = ip + hdr_len(net) as usize;
            if icmp_at + ICMP_HLEN as usize > data_end {
                return MALFORMED;
            }
            let old = word(ECHO_REQUEST, icmp.code);
            let new = word(ECHO_REPLY, icmp.code);
            put(icmp_at, 0, new);
            put(icmp_at, 2, replace(icmp.checksum, old, new));
        }
    }
    tx(Counter::IcmpEchoReply)
}

/// Stores the 32-bit word `w` (memory order) at `base + off` as two 16-bit
/// words.
///
/// # Safety
///
/// As [`put`] for 4 bytes.
#[inline(always)]
unsafe fn put32(base: usize, off: usize, w: u32) {
    unsafe {
        put(base, off, w as u16);
        put(base, off + 2, (w >> 16) as u16);
    }
}

/// Swaps the MAC addresses of the Ethernet header at `data`.
///
/// # Safety
///
/// 12 bytes at `data` bounded against `data_end`.
#[inline(always)]
unsafe fn swap_macs(data: usize) {
    unsafe {
        let mac = [
            get(data, 0),
            get(data, 2),
            get(data, 4),
            get(data, 6),
            get(data, 8),
            get(data, 10),
        ];
        for i in 0..3 {
            put(data, 2 * i, mac[3 + i]);
            put(data, 6 + 2 * i, mac[i]);
        }
    }
}

/// Recomputes the checksum of the IPv4 header of `hdr_len` bytes at `ip`.
///
/// # Safety
///
/// 20 bytes at `ip` bounded against `data_end`; `hdr_len` bytes present.
#[inline(always)]
unsafe fn ipv4_checksum(ip: usize, data_end: usize, hdr_len: u32) {
    unsafe {
        put(ip, 10, 0);
        let mut sum = 0u32;
        for i in 0..10 {
            sum += u32::from(get(ip, 2 * i));
        }
        // Options: at most 40 bytes, each word bounded on its own.
        for i in 10..30 {
            if 2 * i as u32 >= hdr_len {
                break;
            }
            let p = opaque(ip + 2 * i);
            if p + 2 > data_end {
                break;
            }
            sum += u32::from(get(p, 0));
        }
        put(ip, 10, finish(sum));
    }
}

/// A destination-unreachable or packet-too-big error: sent to the real of
/// the flow it quotes, if that flow is a VIP's.
#[inline(always)]
fn error<const V6: bool>(ctx: &XdpContext, pkt: &Linear, net: &Network) -> Outcome {
    let quote = l4_off(net) + ICMP_HLEN;
    let avail = net.carried - ICMP_HLEN;
    let (family, q_protocol, q_hdr_len) = if V6 {
        if avail < IPV6_HLEN + 8 {
            return NOT_VIP;
        }
        let Some(ip) = header::<Ipv6Hdr>(pkt, quote) else {
            return NOT_VIP;
        };
        if ip.version_tc_flow[0] >> 4 != 6 {
            return NOT_VIP;
        }
        (FAMILY_V6, ip.nexthdr, IPV6_HLEN)
    } else {
        if avail < IPV4_HLEN + 8 {
            return NOT_VIP;
        }
        let Some(ip) = header::<Ipv4Hdr>(pkt, quote) else {
            return NOT_VIP;
        };
        let hdr_len = u32::from(ip.version_ihl & 0x0f) * 4;
        if ip.version_ihl >> 4 != 4 || hdr_len < IPV4_HLEN || hdr_len + 8 > avail {
            return NOT_VIP;
        }
        (FAMILY_V4, ip.protocol, hdr_len)
    };
    let (Some(q_addrs), Some(ports)) = (
        addrs_at(pkt, quote, V6),
        header::<UdpPorts>(pkt, quote + q_hdr_len),
    ) else {
        return NOT_VIP;
    };
    if q_protocol != proto::TCP && q_protocol != proto::UDP {
        return NOT_VIP;
    }
    // The quoted packet went from the VIP to the client.
    let Some(meta) = lookup_vip(&q_addrs.src, ports.source, q_protocol, family) else {
        return NOT_VIP;
    };
    let flow = Flow {
        src: q_addrs.dst,
        dst: q_addrs.src,
        sport: ports.dest,
        dport: ports.source,
        proto: q_protocol,
        family,
    };
    forward::<V6>(ctx, net, &meta, &flow, false, pkt.len(), true)
}

/// Replaces the frame (an IPv4 packet with DF or an IPv6 packet, unchanged
/// so far) with an ICMP frag-needed / ICMPv6 packet-too-big from its
/// destination to its source, announcing `mtu` and quoting its first 28 /
/// 48 bytes.
#[inline(always)]
pub fn too_big<const V6: bool>(ctx: &XdpContext, mtu: u32) -> Result<(), ()> {
    let data = ctx.data();
    let data_end = ctx.data_end();
    let frame_len = (data_end - data) as i32;
    let (quote, new_hdrs) = if V6 {
        (QUOTE_V6, IPV6_HLEN + ICMP_HLEN)
    } else {
        (QUOTE_V4, IPV4_HLEN + ICMP_HLEN)
    };
    // What the reply needs from the frame, before it is overwritten. Each
    // family bounds its own constant length (the verifier follows `data`
    // plus a constant).
    // SAFETY: every read is within the bound checked before it.
    let (mac, client, vip) = unsafe {
        let mut client = [0u16; 8];
        let mut vip = [0u16; 8];
        let ip = data + ETH_HLEN as usize;
        if V6 {
            if data + (ETH_HLEN + QUOTE_V6) as usize > data_end {
                return Err(());
            }
            for i in 0..8 {
                client[i] = get(ip, 8 + 2 * i);
                vip[i] = get(ip, 24 + 2 * i);
            }
        } else {
            if data + (ETH_HLEN + QUOTE_V4) as usize > data_end {
                return Err(());
            }
            client[0] = get(ip, 12);
            client[1] = get(ip, 14);
            vip[0] = get(ip, 16);
            vip[1] = get(ip, 18);
        }
        let mac = [
            get(data, 0),
            get(data, 2),
            get(data, 4),
            get(data, 6),
            get(data, 8),
            get(data, 10),
        ];
        (mac, client, vip)
    };
    let keep = (ETH_HLEN + quote) as i32;
    // SAFETY: helper calls on our context.
    unsafe {
        if bpf_xdp_adjust_tail(ctx.ctx, keep - frame_len) != 0
            || bpf_xdp_adjust_head(ctx.ctx, -(new_hdrs as i32)) != 0
        {
            return Err(());
        }
    }
    let data = ctx.data();
    let data_end = ctx.data_end();
    let reply_mac = ([mac[3], mac[4], mac[5]], [mac[0], mac[1], mac[2]]);
    let icmp_len = (ICMP_HLEN + quote) as u16;
    if V6 {
        if data + (ETH_HLEN + IPV6_HLEN + ICMP_HLEN + QUOTE_V6) as usize > data_end {
            return Err(());
        }
        let mtu_hi = ((mtu >> 16) as u16).to_be();
        let mtu_lo = (mtu as u16).to_be();
        let icmp_head = word(V6_PACKET_TOO_BIG, 0);
        // SAFETY: bounded above.
        unsafe {
            put_eth(data, reply_mac.0, reply_mac.1, ETH_P_IPV6_BE);
            let ip = data + ETH_HLEN as usize;
            put(ip, 0, word(0x60, 0));
            put(ip, 2, 0);
            put(ip, 4, icmp_len.to_be());
            put(ip, 6, word(proto::ICMPV6, 64));
            for i in 0..8 {
                put(ip, 8 + 2 * i, vip[i]);
                put(ip, 24 + 2 * i, client[i]);
            }
            let icmp = ip + IPV6_HLEN as usize;
            put(icmp, 0, icmp_head);
            put(icmp, 4, mtu_hi);
            put(icmp, 6, mtu_lo);
            // Pseudo-header: addresses, upper-layer length, next header.
            let mut sum = sum_addr(&vip)
                + sum_addr(&client)
                + u32::from(icmp_len.to_be())
                + u32::from(word(0, proto::ICMPV6))
                + u32::from(icmp_head)
                + u32::from(mtu_hi)
                + u32::from(mtu_lo);
            for i in 0..(QUOTE_V6 / 2) as usize {
                sum += u32::from(get(icmp, ICMP_HLEN as usize + 2 * i));
            }
            put(icmp, 2, finish(sum));
        }
    } else {
        if data + (ETH_HLEN + IPV4_HLEN + ICMP_HLEN + QUOTE_V4) as usize > data_end {
            return Err(());
        }
        let mtu = (mtu as u16).to_be();
        let icmp_head = word(DEST_UNREACH, FRAG_NEEDED);
        let words = [
            word(0x45, 0),
            ((IPV4_HLEN + ICMP_HLEN + QUOTE_V4) as u16).to_be(),
            0,
            0,
            word(64, proto::ICMP),
            0,
            vip[0],
            vip[1],
            client[0],
            client[1],
        ];
        let check = finish(words.iter().map(|&w| u32::from(w)).sum());
        // SAFETY: bounded above.
        unsafe {
            put_eth(data, reply_mac.0, reply_mac.1, ETH_P_IP_BE);
            let ip = data + ETH_HLEN as usize;
            for (i, &w) in words.iter().enumerate() {
                put(ip, 2 * i, w);
            }
            put(ip, 10, check);
            let icmp = ip + IPV4_HLEN as usize;
            put(icmp, 0, icmp_head);
            put(icmp, 4, 0);
            put(icmp, 6, mtu);
            let mut sum = u32::from(icmp_head) + u32::from(mtu);
            for i in 0..(QUOTE_V4 / 2) as usize {
                sum += u32::from(get(icmp, ICMP_HLEN as usize + 2 * i));
            }
            put(icmp, 2, finish(sum));
        }
    }
    Ok(())
}
