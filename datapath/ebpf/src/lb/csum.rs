//! Internet checksums (RFC 1071) over 16-bit words as loaded from memory.
//!
//! Every word here is a `u16` as loaded from the packet (network byte
//! order in memory); the one's complement sum is byte-order independent, so
//! a sum of such words, folded and complemented, is stored back as is.

use dsrlab_ebpf::packet::opaque;

/// Folds a 32-bit sum of 16-bit words to 16 bits with end-around carry.
#[inline(always)]
pub fn fold(sum: u32) -> u16 {
    let s = (sum & 0xffff) + (sum >> 16);
    let s = (s & 0xffff) + (s >> 16);
    s as u16
}

/// Folds a 64-bit sum of 16-bit words to 32 bits with end-around carry
/// (enough for [`fold`] after it).
#[inline(always)]
pub fn fold64(sum: u64) -> u32 {
    let s = (sum & 0xffff_ffff) + (sum >> 32);
    ((s & 0xffff_ffff) + (s >> 32)) as u32
}

/// The checksum of data whose words add up to `sum`.
#[inline(always)]
pub fn finish(sum: u32) -> u16 {
    !fold(sum)
}

/// The 16-bit word of two bytes in memory order.
#[inline(always)]
pub const fn word(b0: u8, b1: u8) -> u16 {
    u16::from_ne_bytes([b0, b1])
}

/// Sum of the eight words of an IPv6 address (or of an IPv4 address in the
/// first two words, zeros after it).
#[inline(always)]
pub fn sum_addr(words: &[u16; 8]) -> u32 {
    words.iter().map(|&w| u32::from(w)).sum()
}

/// RFC 1624 eqn. 3: the checksum `check` after one covered word changes
/// from `old` to `new`: `~(~check + ~old + new)`.
#[inline(always)]
pub fn replace(check: u16, old: u16, new: u16) -> u16 {
    !fold(u32::from(!check) + u32::from(!old) + u32::from(new))
}

/// Bytes per `bpf_csum_diff` call of [`sum_bytes`]: a multiple of 4 (the
/// helper's unit) well under its 512-byte limit.
const BLOCK: usize = 128;
/// Blocks in the longest linear XDP frame (a page).
const MAX_BLOCKS: usize = 4096 / BLOCK;
/// Bound of the variable offsets below (a page and the Ethernet header
/// fit): the verifier needs one to let a packet pointer carry them.
const OFFSET_MASK: usize = 0x1fff;

/// Whether `n` bytes at `p` run past `end`, compared in the form the
/// verifier reads as a bound on `p` (LLVM would rewrite `p + 1 > end` as
/// `p >= end`, or move the sum onto `end`, neither of which it accepts).
#[inline(always)]
fn beyond(p: usize, n: usize, end: usize) -> bool {
    opaque(p + n) > end
}

/// The one's complement sum of the `len` bytes at offset `start` of the
/// frame `[data, end)`, or `None` if they are not all there (or longer
/// than a page).
///
/// Shaped for the verifier, which walks every loop iteration and would
/// otherwise walk everything after a loop once per iteration it can leave
/// from: the last `len % 4` bytes first and the words after the whole
/// blocks are addressed by offsets computed from `len` (unknown to it, so
/// one walk covers every length), and no pointer a loop moves is used after
/// it. Every part starts at an even distance from `start`, so each word
/// keeps its parity.
#[inline(always)]
pub fn sum_bytes(data: usize, end: usize, start: usize, len: u32) -> Option<u32> {
    use aya_ebpf::helpers::generated::bpf_csum_diff;
    let len = len as usize;
    if len > MAX_BLOCKS * BLOCK {
        return None;
    }
    let mut acc = 0u64;
    // The last len % 4 bytes: one word, and the odd byte as the high half
    // of a word padded with zero (RFC 1071).
    let rem = len & 3;
    if rem != 0 {
        let p = data + (opaque(start + (len & !3)) & OFFSET_MASK);
        if beyond(p, 1, end) {
            return None;
        }
        // SAFETY: each byte read is checked against `end` first.
        let b0 = unsafe { (p as *const u8).read() };
        let b1 = if rem >= 2 {
            if beyond(p, 2, end) {
                return None;
            }
            unsafe { ((p + 1) as *const u8).read() }
        } else {
            0
        };
        acc += u64::from(word(b0, b1));
        if rem == 3 {
            if beyond(p, 3, end) {
                return None;
            }
            acc += u64::from(word(unsafe { ((p + 2) as *const u8).read() }, 0));
        }
    }
    // Whole blocks from the start.
    let blocks = len / BLOCK;
    let mut p = data + start;
    let mut sum = 0u32;
    for k in 0..MAX_BLOCKS {
        if k >= blocks {
            break;
        }
        if beyond(p, BLOCK, end) {
            return None;
        }
        // SAFETY: `p .. p + BLOCK` is in the frame (checked above); the
        // helper only reads it.
        let r =
            unsafe { bpf_csum_diff(core::ptr::null_mut(), 0, p as *mut u32, BLOCK as u32, sum) };
        if r < 0 {
            return None;
        }
        sum = r as u32;
        p += BLOCK;
    }
    acc += u64::from(sum);
    // The whole words between the blocks and the last bytes.
    let words = (len % BLOCK) / 4;
    let mut q = data + (opaque(start + (len & !(BLOCK - 1))) & OFFSET_MASK);
    for j in 0..BLOCK / 4 {
        if j >= words {
            break;
        }
        if beyond(q, 4, end) {
            return None;
        }
        // SAFETY: checked above.
        unsafe {
            acc += u64::from((q as *const u16).read_unaligned());
            acc += u64::from(((q + 2) as *const u16).read_unaligned());
        }
        q += 4;
    }
    Some(fold64(acc))
}
