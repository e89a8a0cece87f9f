//! The flow hash: Linux's `jhash_3words` (`include/linux/jhash.h`, the
//! lookup3-based version) over the folded source address, the ports and the
//! protocol.

/// `rol32`.
#[inline(always)]
fn rol(w: u32, s: u32) -> u32 {
    w.rotate_left(s)
}

/// Linux's `jhash_3words(a, b, c, initval)`:
/// `__jhash_nwords(a, b, c, initval + JHASH_INITVAL + (3 << 2))`, then
/// `__jhash_final`.
#[inline(always)]
pub fn jhash_3words(a: u32, b: u32, c: u32, initval: u32) -> u32 {
    const JHASH_INITVAL: u32 = 0xdead_beef;
    let init = initval.wrapping_add(JHASH_INITVAL).wrapping_add(3 << 2);
    let (mut a, mut b, mut c) = (
        a.wrapping_add(init),
        b.wrapping_add(init),
        c.wrapping_add(init),
    );
    c ^= b;
    c = c.wrapping_sub(rol(b, 14));
    a ^= c;
    a = a.wrapping_sub(rol(c, 11));
    b ^= a;
    b = b.wrapping_sub(rol(a, 25));
    c ^= b;
    c = c.wrapping_sub(rol(b, 16));
    a ^= c;
    a = a.wrapping_sub(rol(c, 4));
    b ^= a;
    b = b.wrapping_sub(rol(a, 14));
    c ^= b;
    c.wrapping_sub(rol(b, 24))
}

/// `fold(addr)` of the contract: the XOR of the four big-endian `u32` words
/// of a 16-byte address (an IPv4 address in the first 4 bytes, zeros after
/// it, folds to itself). `words` are the address's 32-bit words as loaded
/// from memory (network order).
#[inline(always)]
pub fn fold(words: &[u32; 4]) -> u32 {
    // XOR commutes with the byte swap: swap once at the end.
    u32::from_be(words[0] ^ words[1] ^ words[2] ^ words[3])
}
