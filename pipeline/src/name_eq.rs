//! Equality of short names (measurements, tag and field keys) without a call into libc.
//!
//! The hot write path compares every key of a line with the previous line's to reuse its
//! checks; `==` on `str` calls `memcmp`, whose call and setup cost more than the compare for
//! names of a few bytes. This compares words inline. It only ever answers equality.

/// Whether `a` and `b` hold the same bytes.
#[inline(always)]
pub fn same_name(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n >= 8 {
        // Whole words, then the last word overlapping what was already compared.
        let mut i = 0;
        while i + 8 < n {
            if word8(a, i) != word8(b, i) {
                return false;
            }
            i += 8;
        }
        return word8(a, n - 8) == word8(b, n - 8);
    }
    if n >= 4 {
        return word4(a, 0) == word4(b, 0) && word4(a, n - 4) == word4(b, n - 4);
    }
    a.iter().zip(b).all(|(x, y)| x == y)
}

#[inline(always)]
fn word8(s: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&s[at..at + 8]);
    u64::from_ne_bytes(w)
}

#[inline(always)]
fn word4(s: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&s[at..at + 4]);
    u32::from_ne_bytes(w)
}

#[cfg(test)]
mod tests {
    use super::same_name;
    use proptest::prelude::*;

    #[test]
    fn every_length_and_every_differing_byte() {
        for n in 0..40 {
            let a: String = (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            assert!(same_name(&a, &a.clone()));
            for at in 0..n {
                let mut b = a.clone().into_bytes();
                b[at] = b'Z';
                let b = String::from_utf8(b).unwrap();
                assert!(!same_name(&a, &b), "{a} vs {b}");
            }
            assert!(!same_name(&a, &format!("{a}x")));
        }
    }

    proptest! {
        #[test]
        fn agrees_with_eq(a in "[a-c]{0,20}", b in "[a-c]{0,20}") {
            prop_assert_eq!(same_name(&a, &b), a == b);
        }
    }
}
