//! Fingerprints and safety numbers (PROTOCOL.md §8), after Signal's
//! construction with a KEZ label and the Ed25519 key as the only input.

use sha2::{Digest, Sha512};

use crate::keys::PublicKey;

const LABEL: &[u8] = b"kez-safety-number-v1\0";
const ITERATIONS: usize = 5200;

fn digits_of(pk: &PublicKey) -> String {
    let mut h = Sha512::new();
    h.update(LABEL);
    h.update(pk.as_bytes());
    let mut out = h.finalize();
    for _ in 1..ITERATIONS {
        let mut h = Sha512::new();
        h.update(out);
        h.update(pk.as_bytes());
        out = h.finalize();
    }
    out[..30]
        .chunks(5)
        .map(|c| {
            let n = c.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
            format!("{:05}", n % 100_000)
        })
        .collect()
}

fn groups(digits: &str) -> String {
    digits.as_bytes().chunks(5).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join(" ")
}

/// One key's fingerprint: 30 digits in 6 groups of 5.
pub fn fingerprint(pk: &PublicKey) -> String {
    groups(&digits_of(pk))
}

/// The pair's safety number: 60 digits in 12 groups of 5, the same on both sides.
pub fn safety_number(a: &PublicKey, b: &PublicKey) -> String {
    let (da, db) = (digits_of(a), digits_of(b));
    let (lo, hi) = if da <= db { (da, db) } else { (db, da) };
    groups(&(lo + &hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8032_test_keys_give_the_independently_computed_number() {
        let a = PublicKey::from_hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a").unwrap();
        let b = PublicKey::from_hex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c").unwrap();
        assert_eq!(safety_number(&a, &b), "48816 62298 58517 51718 87039 65081 69549 34571 82025 17408 77738 40941");
        assert_eq!(safety_number(&a, &b), safety_number(&b, &a));
    }
}
