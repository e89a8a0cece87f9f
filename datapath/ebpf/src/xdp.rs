//! The XDP hook: [`Packet`] over an `xdp_md` (frags allowed) and the removal
//! of the outer headers with `bpf_xdp_adjust_head`.
//!
//! Headers are read directly when the linear part holds them and with
//! `bpf_xdp_load_bytes` otherwise, so the classification of a packet does
//! not depend on where the driver split it. The removal copies the Ethernet
//! header over the last 14 bytes of the outer headers and moves `data`
//! forward by `outer_len` (`bpf_xdp_adjust_head`); the kernel allows that
//! only if the new start is at most `data_end - 14`, i.e. if the linear part
//! holds `14 + outer_len` bytes. When it does not, the packet is passed
//! untouched and counted `PassNonLinear` (the stack gets the tunnel packet;
//! nothing is lost, it is just not decapsulated here). So for every split of
//! the same packet the counter and verdict are those of the fully linear
//! packet, except that a decapsulation becomes `PassNonLinear` when the
//! linear part is shorter than `14 + outer_len`.

use aya_ebpf::{
    bindings::xdp_action::{XDP_DROP, XDP_PASS},
    helpers::generated::{bpf_xdp_adjust_head, bpf_xdp_get_buff_len, bpf_xdp_load_bytes},
    programs::XdpContext,
};

use crate::{
    decap::{Decision, RemoveError, apply, classify},
    faults::Faults,
    packet::{ETH_HLEN, Packet, opaque},
};

/// An XDP packet, linear part bounds read once.
pub struct XdpPacket<'a> {
    ctx: &'a XdpContext,
    data: usize,
    data_end: usize,
}

impl<'a> XdpPacket<'a> {
    #[inline(always)]
    pub fn new(ctx: &'a XdpContext) -> Self {
        Self {
            ctx,
            data: ctx.data(),
            data_end: ctx.data_end(),
        }
    }
}

impl Packet for XdpPacket<'_> {
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
        // The helper only when the linear part is too short.
        if crate::packet::linear_holds(self.data, self.data_end, n) {
            return true;
        }
        core::hint::cold_path();
        unsafe { bpf_xdp_get_buff_len(self.ctx.ctx) >= u64::from(n) }
    }

    #[inline(always)]
    fn vlan_tag_in_metadata(&self) -> bool {
        // A tag the NIC stripped is invisible here (only the rx-metadata
        // kfunc could tell); a tag in the frame is seen as EtherType 0x8100.
        false
    }

    #[inline(always)]
    unsafe fn load_bytes(&self, off: u32, dst: *mut u8, len: u32) -> bool {
        unsafe { bpf_xdp_load_bytes(self.ctx.ctx, off, dst.cast(), len) == 0 }
    }
}

/// The largest outer header length removed in place: the verifier only
/// grants a range to a packet pointer whose variable offset plus the access
/// stays below 64 KiB, and no driver's linear part comes near 32 KiB.
const MAX_OUTER_LEN: u32 = 0x7fff;

/// Removes `decap.outer_len` bytes after the Ethernet header: copies the
/// Ethernet header (with the inner EtherType) over the last 14 bytes of the
/// outer headers, then moves the start of the packet there. No bounds check
/// or pointer reload is needed after the helper; if the helper fails, the
/// packet (whose outer header was overwritten) is dropped.
#[inline(always)]
fn remove(ctx: &XdpContext, decap: &Decision) -> Result<(), RemoveError> {
    let data = ctx.data();
    let data_end = ctx.data_end();
    // Masked after the opaque move so that the mask stays: 6.1's verifier
    // has lost the bound of `outer_len` here (see `MAX_OUTER_LEN`).
    if decap.outer_len > MAX_OUTER_LEN {
        return Err(RemoveError::NonLinear);
    }
    let outer_len = opaque(decap.outer_len as usize) & MAX_OUTER_LEN as usize;
    // Opaque, so that the compiler keeps the first check (it would otherwise
    // drop it as implied by the second) and writes through the very pointer
    // the second check bounds; the verifier needs both.
    let dst = opaque(data + outer_len);
    if data + ETH_HLEN as usize > data_end || dst + ETH_HLEN as usize > data_end {
        return Err(RemoveError::NonLinear);
    }
    let src = data as *const u16;
    let dst = dst as *mut u16;
    // SAFETY: both 14-byte ranges are in the linear part; they do not
    // overlap (`outer_len` >= 20). Volatile: a plain copy between two packet
    // addresses becomes a call to `memmove`, which the verifier rejects.
    unsafe {
        for i in 0..6 {
            dst.add(i).write_volatile(src.add(i).read_volatile());
        }
        dst.add(6).write_volatile(decap.ethertype_be());
    }
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, decap.outer_len as i32) } != 0 {
        return Err(RemoveError::Helper);
    }
    Ok(())
}

/// The body of an XDP decap program built with faults `F`.
#[inline(always)]
pub fn run<F: Faults>(ctx: &XdpContext) -> u32 {
    let decision = classify::<_, F>(&XdpPacket::new(ctx));
    apply::<F, _>(&decision, |d| remove(ctx, d), (XDP_PASS, XDP_DROP))
}
