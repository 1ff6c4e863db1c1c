//! Check digits: the BSN 11-proof, IBAN mod-97 (ISO 7064), Luhn.

/// The BSN 11-proof (elfproef): 9·d1 + 8·d2 + … + 2·d8 − 1·d9 ≡ 0 (mod 11), not all zeros.
/// Takes 9 digits, or 8 where a leading zero was dropped.
pub fn elfproef(digits: &str) -> bool {
    let bytes = digits.as_bytes();
    if !(bytes.len() == 8 || bytes.len() == 9) || !bytes.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let padded: Vec<i64> = std::iter::repeat_n(0, 9 - bytes.len())
        .chain(bytes.iter().map(|b| i64::from(b - b'0')))
        .collect();
    if padded.iter().all(|&d| d == 0) {
        return false;
    }
    let sum: i64 = padded[..8]
        .iter()
        .zip((2..=9).rev())
        .map(|(d, w)| d * w)
        .sum::<i64>()
        - padded[8];
    sum.rem_euclid(11) == 0
}

/// IBAN lengths per country (the SEPA area and common others).
fn iban_length(country: &str) -> Option<usize> {
    Some(match country {
        "NL" => 18,
        "BE" => 16,
        "DE" => 22,
        "FR" | "IT" | "MC" => 27,
        "GB" | "IE" => 22,
        "ES" | "SE" => 24,
        "LU" => 20,
        "AT" => 20,
        "CH" | "LI" => 21,
        "DK" | "FI" | "FO" | "GL" => 18,
        "NO" => 15,
        "PL" => 28,
        "PT" => 25,
        _ => return None,
    })
}

/// ISO 7064 mod-97 on an IBAN without spaces, with the country's length.
pub fn iban(normalised: &str) -> bool {
    let b = normalised.as_bytes();
    if b.len() < 15
        || !b[..2].iter().all(u8::is_ascii_uppercase)
        || !b[2..4].iter().all(u8::is_ascii_digit)
    {
        return false;
    }
    if iban_length(&normalised[..2]) != Some(b.len()) {
        return false;
    }
    let rearranged = b[4..].iter().chain(&b[..4]);
    let mut rem: u32 = 0;
    for &c in rearranged {
        let v = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'Z' => u32::from(c - b'A') + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// The Luhn check, for configured identifiers that use it.
pub fn luhn(digits: &str) -> bool {
    let ds: Vec<u32> = digits.chars().filter_map(|c| c.to_digit(10)).collect();
    if ds.len() < 2 {
        return false;
    }
    let sum: u32 = ds
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_bsn_vectors() {
        assert!(elfproef("111222333"));
        assert!(elfproef("123456782"));
        assert!(!elfproef("123456789"));
        assert!(!elfproef("000000000"));
        assert!(!elfproef("12345678a"));
        assert!(!elfproef("1234567"));
        // 8 digits: a dropped leading zero.
        assert!(elfproef("12345672") == elfproef("012345672"));
    }

    #[test]
    fn known_iban_vectors() {
        assert!(iban("NL91ABNA0417164300"));
        assert!(!iban("NL91ABNA0417164301"));
        assert!(iban("BE68539007547034"));
        assert!(iban("DE89370400440532013000"));
        assert!(!iban("NL91ABNA041716430"));
        assert!(!iban("XX91ABNA0417164300"));
    }

    #[test]
    fn luhn_vectors() {
        assert!(luhn("79927398713"));
        assert!(!luhn("79927398710"));
    }

    proptest! {
        /// For any 8 leading digits exactly one check digit in 0..=9 can satisfy the proof,
        /// or none (when the needed value is 10): never two.
        #[test]
        fn at_most_one_check_digit(prefix in "[0-9]{8}") {
            let valid = (0..10).filter(|d| elfproef(&format!("{prefix}{d}"))).count();
            prop_assert!(valid <= 1);
        }

        /// Changing any single digit of a valid BSN breaks the proof (weights 2..9 and -1 are
        /// all invertible mod 11).
        #[test]
        fn single_digit_change_is_caught(prefix in "[0-9]{8}", pos in 0usize..9, delta in 1u8..10) {
            let Some(check) = (0..10).find(|d| elfproef(&format!("{prefix}{d}"))) else {
                return Ok(());
            };
            let mut digits: Vec<u8> = format!("{prefix}{check}").into_bytes();
            digits[pos] = b'0' + (digits[pos] - b'0' + delta) % 10;
            let changed = String::from_utf8(digits).unwrap();
            prop_assert!(!elfproef(&changed), "{changed}");
        }

        /// Swapping two adjacent different digits is caught too.
        #[test]
        fn adjacent_swap_is_caught(prefix in "[0-9]{8}", pos in 0usize..8) {
            let Some(check) = (0..10).find(|d| elfproef(&format!("{prefix}{d}"))) else {
                return Ok(());
            };
            let mut digits: Vec<u8> = format!("{prefix}{check}").into_bytes();
            prop_assume!(digits[pos] != digits[pos + 1]);
            digits.swap(pos, pos + 1);
            let swapped = String::from_utf8(digits).unwrap();
            prop_assert!(!elfproef(&swapped), "{swapped}");
        }

        /// About one random 9-digit number in eleven passes.
        #[test]
        fn pass_rate_is_about_one_in_eleven(seed in 0u64..1000) {
            let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let mut pass = 0;
            for _ in 0..2200 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                if elfproef(&format!("{:09}", (x >> 20) % 1_000_000_000)) { pass += 1; }
            }
            prop_assert!((120..=290).contains(&pass), "{pass} of 2200");
        }
    }
}
