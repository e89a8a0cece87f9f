//! The Internet checksum (RFC 1071) in parts: a sum of big-endian 16-bit
//! words that callers add up over pieces where they lie (a header and the
//! bytes it carries, a pseudo-header), then fold and complement.

/// The sum of `bytes` as big-endian 16-bit words, an odd last byte padded
/// with zero. Pieces added together must each start at an even offset of
/// what they cover (all but the last of even length).
pub fn word_sum(bytes: &[u8]) -> u64 {
    let (words, rest) = bytes.as_chunks::<2>();
    let mut sum: u64 = words
        .iter()
        .map(|&w| u64::from(u16::from_be_bytes(w)))
        .sum();
    if let [last] = rest {
        sum += u64::from(*last) << 8;
    }
    sum
}

/// Folds a sum of words to 16 bits with end-around carry.
pub fn fold(mut sum: u64) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The checksum of what adds up to `sum`: folded and complemented.
pub fn finish(sum: u64) -> u16 {
    !fold(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_sum_as_the_whole_and_match_rfc_1071s_example() {
        // RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(word_sum(&data)), 0xddf2);
        assert_eq!(word_sum(&data[..4]) + word_sum(&data[4..]), word_sum(&data));
        assert_eq!(finish(word_sum(&data)), !0xddf2);
        // An odd last byte is the high half of a word.
        assert_eq!(word_sum(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
    }
}
