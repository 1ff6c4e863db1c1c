//! Showing a finding without showing the identifier: masks for people, keyed hashes for
//! correlation (the same BSN in two messages gives the same hash, which reveals nothing without
//! the key).

use ring::hmac;

/// The key of the keyed hash: from the configuration, or random for this process.
pub struct HashKey(hmac::Key);

impl HashKey {
    pub fn new(secret: &[u8]) -> Self {
        HashKey(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    pub fn random() -> Self {
        let mut secret = [0u8; 32];
        // A failing system RNG leaves a zero key: hashes then still never contain the value.
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret);
        HashKey::new(&secret)
    }

    /// 64 bits of HMAC-SHA256 over `kind:value`, in hex.
    pub fn hash(&self, kind: &str, normalised: &str) -> String {
        let tag = hmac::sign(&self.0, format!("{kind}:{normalised}").as_bytes());
        data_encoding::HEXLOWER.encode(&tag.as_ref()[..8])
    }
}

/// `***-**-782`: the last three digits, as reviewers know from paper forms.
pub fn bsn(digits: &str) -> String {
    let tail = &digits[digits.len().saturating_sub(3)..];
    format!("***-**-{tail}")
}

/// `NL**…00`: the country and the last two characters.
pub fn iban(normalised: &str) -> String {
    let cc = &normalised[..2.min(normalised.len())];
    let tail = &normalised[normalised.len().saturating_sub(2)..];
    format!("{cc}**…{tail}")
}

/// Dates reveal nothing in the mask.
pub fn date() -> String {
    "**-**-****".to_string()
}

/// The first character and the last two, for configured identifiers.
pub fn generic(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() <= 4 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..1].iter().collect();
    let tail: String = chars[chars.len() - 2..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 3))
}

/// A file or member name fit for a finding's location: runs of five or more digits (with
/// separators between them) become `*`, so a name like "scan BSN 123456782.png" does not carry
/// the number into logs and reports.
pub fn name(raw: &str) -> String {
    let chars: Vec<char> = raw.chars().collect();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        // A run of digits, possibly split by single separators between digits.
        let mut j = i;
        let mut digits = 0;
        while j < chars.len() {
            if chars[j].is_ascii_digit() {
                digits += 1;
                j += 1;
            } else if " .-/".contains(chars[j])
                && chars.get(j + 1).is_some_and(char::is_ascii_digit)
            {
                j += 1;
            } else {
                break;
            }
        }
        for c in &chars[i..j] {
            out.push(if digits >= 5 && c.is_ascii_digit() {
                '*'
            } else {
                *c
            });
        }
        i = j;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_hide_all_but_a_tail() {
        assert_eq!(bsn("123456782"), "***-**-782");
        assert_eq!(iban("NL91ABNA0417164300"), "NL**…00");
        assert_eq!(generic("PAT1234567"), "P*******67");
        assert_eq!(generic("ab1"), "***");
        assert_eq!(name("scan BSN 123456782.png"), "scan BSN *********.png");
        assert_eq!(
            name("1234.56.782 uitslag 2024-03-01.pdf"),
            "****.**.*** uitslag ****-**-**.pdf"
        );
        assert_eq!(
            name("brief v2 2024.docx"),
            "brief v* ****.docx",
            "errs towards hiding"
        );
        assert_eq!(name("brief v2.docx"), "brief v2.docx");
    }

    #[test]
    fn hash_is_keyed_and_stable() {
        let k1 = HashKey::new(b"one");
        let k2 = HashKey::new(b"two");
        assert_eq!(k1.hash("bsn", "123456782"), k1.hash("bsn", "123456782"));
        assert_ne!(k1.hash("bsn", "123456782"), k2.hash("bsn", "123456782"));
        assert!(!k1.hash("bsn", "123456782").contains("782"));
    }
}
