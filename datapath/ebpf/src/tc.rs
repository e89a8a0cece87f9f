//! The TC hook (`sched_cls`, ingress): [`Packet`] over an `__sk_buff` and the
//! removal of the outer headers with `bpf_skb_adjust_room`.
//!
//! - Headers are read directly when in the linear part and with
//!   `bpf_skb_load_bytes` otherwise; classification never changes the skb.
//! - Removal: if the linear part holds less than `14 + outer_len` bytes,
//!   `bpf_skb_pull_data(skb, 14 + outer_len)` first (that length is never
//!   beyond `skb->len`); if the pull fails the packet is passed and counted
//!   `PassNonLinear`. Then `bpf_skb_adjust_room(-outer_len,
//!   BPF_ADJ_ROOM_MAC, flags)`, which pops the bytes after the MAC header
//!   and keeps a CHECKSUM_COMPLETE `skb->csum` right (it subtracts the
//!   removed bytes). `flags` always carries `BPF_F_ADJ_ROOM_DECAP_L3_IPV4`
//!   or `_IPV6` for the inner family, so `skb->protocol` follows it when the
//!   family changes, and `BPF_F_ADJ_ROOM_FIXED_GSO`. When the family changes
//!   the EtherType is then written directly: at ingress `skb->csum` starts at
//!   the network header, so the Ethernet header is not part of it.
//! - `adjust_room` resets CHECKSUM_UNNECESSARY to CHECKSUM_NONE (the default
//!   without `BPF_F_ADJ_ROOM_NO_CSUM_RESET`): a NIC's validation of the outer
//!   packet says nothing certain about the inner one, so the stack verifies
//!   the inner checksums itself.
//! - GSO (GRO-merged) skbs: `FIXED_GSO` keeps `gso_size`, which is the
//!   inner payload per segment and does not change when outer headers go;
//!   the kernel marks the skb `SKB_GSO_DODGY` and recomputes `gso_segs`.
//!   It also lets UDP GSO skbs through (the kernel refuses to shrink those
//!   without it). The kernel does not clear the tunnel bits of `gso_type`
//!   (`SKB_GSO_IPXIP4/6`, `SKB_GSO_UDP_TUNNEL`) nor `skb->encapsulation`;
//!   that is harmless for local delivery (the container case), but a merged
//!   decapsulated skb forwarded to a device needing software segmentation
//!   could be segmented as if still tunnelled. A shrink the kernel refuses
//!   (`-ENOTSUPP`) is counted `DropHelperError`. Test runs never see GSO.

use aya_ebpf::{
    EbpfContext,
    bindings::{
        __sk_buff, BPF_F_ADJ_ROOM_DECAP_L3_IPV4, BPF_F_ADJ_ROOM_DECAP_L3_IPV6,
        BPF_F_ADJ_ROOM_FIXED_GSO, BPF_F_ADJ_ROOM_NO_CSUM_RESET, TC_ACT_OK, TC_ACT_SHOT,
        bpf_adj_room_mode::BPF_ADJ_ROOM_MAC,
    },
    helpers::generated::{bpf_skb_adjust_room, bpf_skb_load_bytes, bpf_skb_pull_data},
    programs::TcContext,
};

use crate::{
    decap::{Decision, RemoveError, apply, classify},
    faults::Faults,
    packet::{ETH_HLEN, EthHdr, Packet},
};

/// A TC packet, linear part bounds read once.
pub struct TcPacket<'a> {
    ctx: &'a TcContext,
    data: usize,
    data_end: usize,
}

impl<'a> TcPacket<'a> {
    #[inline(always)]
    pub fn new(ctx: &'a TcContext) -> Self {
        Self {
            ctx,
            data: ctx.data(),
            data_end: ctx.data_end(),
        }
    }
}

impl Packet for TcPacket<'_> {
    #[inline(always)]
    fn data(&self) -> usize {
        self.data
    }

    #[inline(always)]
    fn data_end(&self) -> usize {
        self.data_end
    }

    #[inline(always)]
    fn has_len(&self, n: u32) -> bool {
        n <= self.ctx.len()
    }

    #[inline(always)]
    fn vlan_tag_in_metadata(&self) -> bool {
        // The receive path untags 802.1Q/802.1ad frames before TC ingress.
        // SAFETY: reading a field of the context.
        unsafe { (*self.ctx.as_ptr().cast::<__sk_buff>()).vlan_present != 0 }
    }

    #[inline(always)]
    unsafe fn load_bytes(&self, off: u32, dst: *mut u8, len: u32) -> bool {
        unsafe { bpf_skb_load_bytes(self.ctx.as_ptr(), off, dst.cast(), len) == 0 }
    }
}

/// `EINVAL`, as helpers return it (negated).
const EINVAL: i64 = 22;

/// Removes `decap.outer_len` bytes after the Ethernet header.
#[inline(always)]
fn remove<F: Faults>(ctx: &TcContext, decap: &Decision) -> Result<(), RemoveError> {
    let skb = ctx.as_ptr().cast::<__sk_buff>();
    let need = ETH_HLEN + decap.outer_len;
    if ctx.data() + need as usize > ctx.data_end() && unsafe { bpf_skb_pull_data(skb, need) } != 0 {
        return Err(RemoveError::NonLinear);
    }
    let family = if decap.inner_v6() {
        BPF_F_ADJ_ROOM_DECAP_L3_IPV6
    } else {
        BPF_F_ADJ_ROOM_DECAP_L3_IPV4
    };
    let mut flags = u64::from(family | BPF_F_ADJ_ROOM_FIXED_GSO);
    if F::KEEP_CSUM_STATE {
        flags |= u64::from(BPF_F_ADJ_ROOM_NO_CSUM_RESET);
    }
    let len_diff = -(decap.outer_len as i32);
    let mut rc = unsafe { bpf_skb_adjust_room(skb, len_diff, BPF_ADJ_ROOM_MAC, flags) };
    // Kernels before 6.3 know no DECAP_L3 flags and refuse them (EINVAL)
    // before touching the skb. Without them `skb->protocol` keeps the outer
    // family, which is right when the family does not change; a family
    // change cannot be made right there and stays a helper error.
    if rc == -EINVAL && decap.inner_v6() == decap.outer_v6() {
        rc = unsafe {
            bpf_skb_adjust_room(skb, len_diff, BPF_ADJ_ROOM_MAC, flags & !u64::from(family))
        };
    }
    if rc != 0 {
        return Err(RemoveError::Helper);
    }
    if decap.inner_v6() != decap.outer_v6() {
        let data = ctx.data();
        if data + ETH_HLEN as usize > ctx.data_end() {
            return Err(RemoveError::Helper);
        }
        // SAFETY: the Ethernet header is in the linear part.
        unsafe { (*(data as *mut EthHdr)).proto = decap.ethertype_be() };
    }
    if F::TOS_WITHOUT_CSUM_FIXUP {
        let data = ctx.data();
        if data + ETH_HLEN as usize + 4 > ctx.data_end() {
            return Err(RemoveError::Helper);
        }
        if decap.inner_v6() {
            // IPv6 has no header checksum to notice: flip a flow-label
            // bit. Deliberately no skb->csum update.
            // SAFETY: the first four bytes of the inner IPv6 header are in
            // the linear part.
            unsafe { *((data + ETH_HLEN as usize + 3) as *mut u8) ^= 0x01 };
        } else {
            let mut tos = decap.outer_tos;
            if tos == decap.inner_byte1 {
                tos ^= 0x04;
            }
            // SAFETY: the first two bytes of the inner IPv4 header are in
            // the linear part. Deliberately no checksum update of any kind.
            unsafe { *((data + ETH_HLEN as usize + 1) as *mut u8) = tos };
        }
    }
    Ok(())
}

/// The body of a TC decap program built with faults `F`.
#[inline(always)]
pub fn run<F: Faults>(ctx: &TcContext) -> i32 {
    let decision = classify::<_, F>(&TcPacket::new(ctx));
    apply::<F, _>(&decision, |d| remove::<F>(ctx, d), (TC_ACT_OK, TC_ACT_SHOT))
}
