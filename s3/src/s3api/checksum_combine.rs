//! CRC combination: the CRC of `A ‖ B` from `crc(A)`, `crc(B)` and `len(B)` alone.
//!
//! Why: a multipart upload's FULL_OBJECT checksum is the CRC of the whole object, and the
//! parts' CRCs were already computed as they streamed in. Re-reading gigabytes to get it
//! again would cost a second pass over every byte; combining costs O(log len) per part.
//!
//! The arithmetic: a CRC is the remainder of the message polynomial, so appending
//! `len(B)` bytes multiplies A's remainder by `x^(8·len(B))` modulo the polynomial, and
//! B's remainder adds (xor) to it. The all-ones initial value and final xor of CRC-32,
//! CRC-32C and CRC-64/NVME cancel out in that sum, so finished values combine directly:
//! `crc(A‖B) = crc(A) · x^(8·len(B)) mod P  ⊕  crc(B)`.
//! Every one of these CRCs is bit-reflected: bit `width-1` of a value holds `x^0`.

use super::checksum::Algorithm;

/// A reflected CRC: its polynomial (reflected, without the top term) and width.
#[derive(Clone, Copy, Debug)]
struct Crc {
    poly: u64,
    width: u32,
}

const CRC32: Crc = Crc { poly: 0xEDB8_8320, width: 32 };
const CRC32C: Crc = Crc { poly: 0x82F6_3B78, width: 32 };
const CRC64NVME: Crc = Crc { poly: 0x9A6C_9329_AC4B_C9B5, width: 64 };

impl Crc {
    fn of(algorithm: Algorithm) -> Option<Crc> {
        match algorithm {
            Algorithm::Crc32 => Some(CRC32),
            Algorithm::Crc32c => Some(CRC32C),
            Algorithm::Crc64Nvme => Some(CRC64NVME),
            Algorithm::Sha1 | Algorithm::Sha256 => None,
        }
    }

    /// The polynomial `1` (x^0) in reflected order.
    fn one(self) -> u64 {
        1 << (self.width - 1)
    }

    /// `a · b mod P`, both reflected.
    fn multiply(self, a: u64, mut b: u64) -> u64 {
        let mut bit = self.one();
        let mut product = 0;
        while bit != 0 {
            if a & bit != 0 {
                product ^= b;
            }
            bit >>= 1;
            // b · x: a right shift in reflected order, reduced by P when x^width falls out.
            b = if b & 1 != 0 { (b >> 1) ^ self.poly } else { b >> 1 };
        }
        product
    }

    /// `x^(8·len_bytes) mod P`, by squaring (`x^8`, `x^16`, `x^32`, … for each set bit).
    fn shift_of(self, len_bytes: u64) -> u64 {
        let mut power = self.one() >> 1; // x^1
        for _ in 0..3 {
            power = self.multiply(power, power); // x^2, x^4, x^8
        }
        let (mut result, mut n) = (self.one(), len_bytes);
        while n != 0 {
            if n & 1 != 0 {
                result = self.multiply(result, power);
            }
            power = self.multiply(power, power);
            n >>= 1;
        }
        result
    }
}

/// `crc(A ‖ B)` of the algorithm, given `crc(A)`, `crc(B)` and `len(B)`; `None` for an
/// algorithm that is not a CRC (SHA digests cannot be combined).
pub fn combine(algorithm: Algorithm, crc_a: u64, crc_b: u64, len_b: u64) -> Option<u64> {
    let crc = Crc::of(algorithm)?;
    Some(crc.multiply(crc_a, crc.shift_of(len_b)) ^ crc_b)
}

/// The CRC of a concatenation, from each piece's (CRC, length) in order; the CRC of
/// nothing is 0 for all three algorithms.
pub fn combine_all(algorithm: Algorithm, pieces: &[(u64, u64)]) -> Option<u64> {
    Crc::of(algorithm)?;
    pieces.iter().try_fold(0, |acc, &(crc, len)| combine(algorithm, acc, crc, len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3api::checksum::Hasher;
    use crate::s3api::encoding::base64_decode;

    fn crc_of(algorithm: Algorithm, data: &[u8]) -> u64 {
        let mut h = Hasher::new(algorithm);
        h.update(data);
        let bytes = base64_decode(&h.finish()).unwrap();
        bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
    }

    /// Combining the CRCs of the pieces of a message must give the CRC of the whole, for
    /// pieces of every awkward size (empty, one byte, not a multiple of 8, large).
    #[test]
    fn combined_crcs_equal_the_crc_of_the_whole() {
        let data: Vec<u8> =
            (0..70_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let cuts = [0usize, 1, 2, 9, 4096, 4103, 65_537, 70_000];
        for algorithm in [Algorithm::Crc32, Algorithm::Crc32c, Algorithm::Crc64Nvme] {
            let pieces: Vec<(u64, u64)> = cuts
                .windows(2)
                .map(|w| (crc_of(algorithm, &data[w[0]..w[1]]), (w[1] - w[0]) as u64))
                .collect();
            let combined = combine_all(algorithm, &pieces).unwrap();
            assert_eq!(combined, crc_of(algorithm, &data), "{algorithm:?}");
            // A wrong length gives a wrong CRC: the shift really depends on it.
            let (a, b) = (crc_of(algorithm, &data[..9]), crc_of(algorithm, &data[9..100]));
            assert_ne!(combine(algorithm, a, b, 90), Some(crc_of(algorithm, &data[..100])));
        }
        assert_eq!(combine_all(Algorithm::Sha256, &[]), None);
    }
}
