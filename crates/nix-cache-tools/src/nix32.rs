//! Nix's base-32 encoding ("nix32"): alphabet `0123456789abcdfghijklmnpqrsvwxyz` (no e, o,
//! u, t), bytes read little-endian, most significant digit printed first. Used in store
//! path hash parts (20 bytes → 32 chars) and narinfo `NarHash`/`FileHash` (sha256 → 52).

pub(crate) const ALPHABET: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";

/// Length in characters of the nix32 encoding of `n` bytes.
pub(crate) fn encoded_len(n: usize) -> usize {
    (n * 8).div_ceil(5)
}

pub(crate) fn encode(bytes: &[u8]) -> String {
    let len = encoded_len(bytes.len());
    let mut out = String::with_capacity(len);
    for n in (0..len).rev() {
        let b = n * 5;
        let i = b / 8;
        let j = b % 8;
        let lo = bytes[i] as u16 >> j;
        let hi = if i + 1 < bytes.len() {
            (bytes[i + 1] as u16) << (8 - j)
        } else {
            0
        };
        out.push(ALPHABET[((lo | hi) & 0x1f) as usize] as char);
    }
    out
}

/// Decodes a nix32 string; `None` when a character is outside the alphabet or the
/// string does not encode a whole number of bytes.
pub(crate) fn decode(s: &str) -> Option<Vec<u8>> {
    let n_bytes = s.len() * 5 / 8;
    if encoded_len(n_bytes) != s.len() {
        return None;
    }
    let mut out = vec![0u8; n_bytes];
    for (n, c) in s.bytes().rev().enumerate() {
        let digit = ALPHABET.iter().position(|&a| a == c)? as u16;
        let b = n * 5;
        let i = b / 8;
        let j = b % 8;
        out[i] |= (digit << j) as u8;
        let carry = digit >> (8 - j);
        if i + 1 < n_bytes {
            out[i + 1] |= carry as u8;
        } else if carry != 0 {
            return None;
        }
    }
    Some(out)
}

pub(crate) fn is_valid(s: &str) -> bool {
    s.bytes().all(|c| ALPHABET.contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        // sha256("") as Nix prints it: `nix hash file --type sha256 --base32 /dev/null`.
        let empty = [
            0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f,
            0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b,
            0x78, 0x52, 0xb8, 0x55,
        ];
        assert_eq!(
            encode(&empty),
            "0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73"
        );
        assert_eq!(decode(&encode(&empty)).unwrap(), empty);
    }

    #[test]
    fn round_trip_and_rejects() {
        for len in [0usize, 1, 5, 20, 32, 64] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let s = encode(&bytes);
            assert_eq!(s.len(), encoded_len(len));
            assert_eq!(decode(&s).unwrap(), bytes);
        }
        assert!(decode("e000000000000000000000000000000a").is_none());
        assert!(decode("zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz").is_none());
    }
}
