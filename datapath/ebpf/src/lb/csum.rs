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
