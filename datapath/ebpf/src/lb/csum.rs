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

/// The most bytes one `bpf_csum_diff` call sums (the helper's limit).
const HELPER_MAX: usize = 512;
/// Longer than any linear XDP frame (a page less head- and tailroom).
const MAX_LEN: usize = 4096;
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

/// Adds the piece of `SIZE` bytes (a power of two, at least 4) that `len`
/// holds, if its bit is set: it starts after the larger pieces, at
/// `start + (len & !(2 * SIZE - 1))`.
#[inline(always)]
fn add_piece<const SIZE: usize>(start: usize, end: usize, len: usize, acc: &mut u64) -> Option<()> {
    use aya_ebpf::helpers::generated::bpf_csum_diff;
    if len & SIZE == 0 {
        return Some(());
    }
    let p = start + (opaque(len & !(2 * SIZE - 1)) & OFFSET_MASK);
    if beyond(p, SIZE, end) {
        return None;
    }
    let chunk = if SIZE < HELPER_MAX { SIZE } else { HELPER_MAX };
    let mut sum = 0u32;
    for i in 0..SIZE / chunk {
        // SAFETY: `p .. p + SIZE` is in the frame (checked above); the
        // helper only reads it.
        let r = unsafe {
            bpf_csum_diff(
                core::ptr::null_mut(),
                0,
                (p + i * chunk) as *mut u32,
                chunk as u32,
                sum,
            )
        };
        if r < 0 {
            return None;
        }
        sum = r as u32;
    }
    *acc += u64::from(sum);
    Some(())
}

/// The one's complement sum of the `len` bytes at `start`, or `None` if
/// they are not all before `end` (or longer than a page).
///
/// Shaped for the verifier: no loop and no pointer carried from one step
/// to the next. Each power of two in `len` from 2048 down to 4 is one
/// piece, summed by `bpf_csum_diff` at an offset computed from `len`
/// (unknown to the verifier, so one walk covers every length and the
/// states after each step are alike); the last `len % 4` bytes are read
/// one by one. A pointer advanced by a loop made 6.18 walk everything
/// after the loop once per possible exit (31 times the instructions), and
/// 6.1 rejected a bounded loop LLVM had turned into a countdown ("the
/// sequence of jumps is too complex"). Every piece starts a multiple of 4
/// bytes after `start`, so each word keeps its parity.
#[inline(always)]
pub fn sum_bytes(start: usize, end: usize, len: u32) -> Option<u32> {
    let len = len as usize;
    if len >= MAX_LEN {
        return None;
    }
    let mut acc = 0u64;
    add_piece::<2048>(start, end, len, &mut acc)?;
    add_piece::<1024>(start, end, len, &mut acc)?;
    add_piece::<512>(start, end, len, &mut acc)?;
    add_piece::<256>(start, end, len, &mut acc)?;
    add_piece::<128>(start, end, len, &mut acc)?;
    add_piece::<64>(start, end, len, &mut acc)?;
    add_piece::<32>(start, end, len, &mut acc)?;
    add_piece::<16>(start, end, len, &mut acc)?;
    add_piece::<8>(start, end, len, &mut acc)?;
    add_piece::<4>(start, end, len, &mut acc)?;
    // The last len % 4 bytes; an odd last byte is the high half of a word
    // padded with zero (RFC 1071).
    let rem = len & 3;
    if rem != 0 {
        let p = start + (opaque(len & !3) & OFFSET_MASK);
        // One check per byte: the verifier bounds a packet pointer by
        // constant offsets only.
        let byte = |i: usize| -> Option<u8> {
            if beyond(p, i + 1, end) {
                return None;
            }
            // SAFETY: checked above.
            Some(unsafe { ((p + i) as *const u8).read() })
        };
        let b0 = byte(0)?;
        let b1 = if rem >= 2 { byte(1)? } else { 0 };
        let b2 = if rem == 3 { byte(2)? } else { 0 };
        acc += u64::from(word(b0, b1)) + u64::from(word(b2, 0));
    }
    Some(fold64(acc))
}
