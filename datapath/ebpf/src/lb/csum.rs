//! Internet checksums (RFC 1071) over 16-bit words as loaded from memory.
//!
//! Every word here is a `u16` as loaded from the packet (network byte
//! order in memory); the one's complement sum is byte-order independent, so
//! a sum of such words, folded and complemented, is stored back as is.

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

/// The one's complement sum of the `len` bytes at `start`, or `None` if
/// they are not all before `end` (or longer than a page).
///
/// Whole blocks go through `bpf_csum_diff`; the rest, fewer than
/// [`BLOCK`] bytes, in halving steps. Every step but the last byte covers
/// an even number of bytes, so each word stays at the parity it has from
/// `start`. The verifier walks the steps (and what follows) once per block
/// count, up to [`MAX_BLOCKS`] times: `xdp_lb` costs it 256 821
/// instructions instead of 8 292 without this sum, which 6.1 still takes.
#[inline(always)]
pub fn sum_bytes(start: usize, end: usize, len: u32) -> Option<u32> {
    use aya_ebpf::helpers::generated::bpf_csum_diff;
    let mut p = start;
    let mut left = len as usize;
    let mut acc = 0u32;
    let add_block = |p: usize, size: usize, acc: &mut u32| -> Option<()> {
        if p + size > end {
            return None;
        }
        // SAFETY: `p .. p + size` is in the frame (checked above); the
        // helper only reads it.
        let r =
            unsafe { bpf_csum_diff(core::ptr::null_mut(), 0, p as *mut u32, size as u32, *acc) };
        if r < 0 {
            return None;
        }
        *acc = r as u32;
        Some(())
    };
    for _ in 0..MAX_BLOCKS {
        if left < BLOCK {
            break;
        }
        add_block(p, BLOCK, &mut acc)?;
        p += BLOCK;
        left -= BLOCK;
    }
    if left >= BLOCK {
        return None;
    }
    let mut size = BLOCK / 2;
    while size >= 4 {
        if left & size != 0 {
            add_block(p, size, &mut acc)?;
            p += size;
        }
        size /= 2;
    }
    let mut acc = u64::from(acc);
    if left & 2 != 0 {
        if p + 2 > end {
            return None;
        }
        // SAFETY: checked above.
        acc += u64::from(unsafe { (p as *const u16).read_unaligned() });
        p += 2;
    }
    if left & 1 != 0 {
        if p + 1 > end {
            return None;
        }
        // SAFETY: checked above. The odd last byte is the high half of a
        // word padded with zero (RFC 1071).
        acc += u64::from(word(unsafe { (p as *const u8).read() }, 0));
    }
    Some(fold64(acc))
}
