//! The recipient's one-time codes (DESIGN §13, issue 17 point 4): the rules, as a state per
//! message and recipient (never per IP address), kept in the store between requests.
//!
//! - a code has 6–8 digits and is valid for 15 minutes;
//! - at most 5 tries per code, after which it is spent;
//! - at most 3 codes per hour;
//! - after 10 failed tries in all, the recipient is locked out (the sender is told).
//!
//! Codes are stored only as a keyed hash (HMAC-SHA256 under the server's key, with the item and
//! recipient): a copy of the store does not give them away, though six digits are few. A try is
//! checked with `ring::hmac::verify`, in constant time.

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

/// How long a code is valid.
pub const CODE_LIFETIME: u64 = 15 * 60;
/// Tries per code.
pub const TRIES_PER_CODE: u32 = 5;
/// Codes per window.
pub const CODES_PER_WINDOW: usize = 3;
pub const CODE_WINDOW: u64 = 60 * 60;
/// Failed tries, over all codes, before the recipient is locked out.
pub const FAILURES_TO_LOCK: u32 = 10;

/// One message's recipient, as far as codes go.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeState {
    /// When each code of the last window was issued (unix seconds).
    pub issued: Vec<u64>,
    /// The code in force: its keyed hash, when it was issued, tries left.
    pub current: Option<Current>,
    /// Failed tries over all codes.
    pub failures: u32,
    pub locked: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Current {
    /// Hex HMAC-SHA256 of the code.
    pub mac: String,
    pub issued_at: u64,
    pub tries_left: u32,
}

/// What asking for a code gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Issued {
    /// Send this code (its digits) to the recipient.
    Code(String),
    /// Three codes in the last hour: the next may be asked for at this time (unix seconds).
    TooMany {
        next_at: u64,
    },
    Locked,
}

/// What a try gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Tried {
    Right,
    Wrong {
        tries_left: u32,
    },
    /// No code in force (none asked for, expired, or its tries spent): ask for a new one.
    NoCode,
    /// This try was the tenth failure: the recipient is locked out now (tell the sender).
    LockedNow,
    Locked,
}

/// The server's key for code hashes.
pub struct CodeKey(hmac::Key);

impl CodeKey {
    pub fn new(secret: &[u8]) -> CodeKey {
        CodeKey(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }
}

impl CodeKey {
    /// The keyed hash an access code the sender chose is stored as.
    pub fn access_mac(&self, item: &str, recipient: &str, code: &str) -> String {
        let code = normal_access(code);
        let mac = hmac::sign(&self.0, &message(item, recipient, &code));
        data_encoding::HEXLOWER.encode(mac.as_ref())
    }
}

/// An access code as compared: without spaces and dashes, in capitals (read out by phone,
/// "ab-12 cd" and "AB12CD" are one code).
fn normal_access(code: &str) -> String {
    code.chars()
        .filter(|c| !matches!(c, ' ' | '-'))
        .flat_map(char::to_uppercase)
        .collect()
}

/// Whether an access code the sender chose is acceptable: 6 to 32 letters and digits once
/// spaces and dashes are gone.
pub fn access_code_ok(code: &str) -> bool {
    let c = normal_access(code);
    (6..=32).contains(&c.chars().count()) && c.chars().all(|c| c.is_ascii_alphanumeric())
}

fn message(item: &str, recipient: &str, code: &str) -> Vec<u8> {
    [
        item.as_bytes(),
        b"\0",
        recipient.as_bytes(),
        b"\0",
        code.as_bytes(),
    ]
    .concat()
}

impl CodeState {
    /// A new code of `digits` digits (6–8), unless the window is full or the recipient locked.
    pub fn issue(
        &mut self,
        key: &CodeKey,
        item: &str,
        recipient: &str,
        digits: u32,
        now: u64,
    ) -> Result<Issued, ring::error::Unspecified> {
        if self.locked {
            return Ok(Issued::Locked);
        }
        self.issued.retain(|&t| now.saturating_sub(t) < CODE_WINDOW);
        if self.issued.len() >= CODES_PER_WINDOW {
            let oldest = self.issued.iter().min().copied().unwrap_or(now);
            return Ok(Issued::TooMany {
                next_at: oldest + CODE_WINDOW,
            });
        }
        let code = random_digits(digits.clamp(6, 8))?;
        let mac = hmac::sign(&key.0, &message(item, recipient, &code));
        self.current = Some(Current {
            mac: data_encoding::HEXLOWER.encode(mac.as_ref()),
            issued_at: now,
            tries_left: TRIES_PER_CODE,
        });
        self.issued.push(now);
        Ok(Issued::Code(code))
    }

    /// Checks a try against the code in force.
    pub fn check(
        &mut self,
        key: &CodeKey,
        item: &str,
        recipient: &str,
        given: &str,
        now: u64,
    ) -> Tried {
        if self.locked {
            return Tried::Locked;
        }
        let Some(current) = self.current.as_mut() else {
            return Tried::NoCode;
        };
        if now.saturating_sub(current.issued_at) >= CODE_LIFETIME || current.tries_left == 0 {
            self.current = None;
            return Tried::NoCode;
        }
        let given = given.trim();
        let right = data_encoding::HEXLOWER
            .decode(current.mac.as_bytes())
            .is_ok_and(|mac| {
                given.bytes().all(|b| b.is_ascii_digit())
                    && hmac::verify(&key.0, &message(item, recipient, given), &mac).is_ok()
            });
        if right {
            self.current = None;
            self.failures = 0;
            return Tried::Right;
        }
        current.tries_left -= 1;
        let tries_left = current.tries_left;
        if tries_left == 0 {
            self.current = None;
        }
        self.failures += 1;
        if self.failures >= FAILURES_TO_LOCK {
            self.locked = true;
            self.current = None;
            return Tried::LockedNow;
        }
        Tried::Wrong { tries_left }
    }
}

impl CodeState {
    /// Checks a try against the access code the sender chose (its keyed hash `mac`): no
    /// per-code tries, but every failure counts towards the lock.
    pub fn check_access(
        &mut self,
        key: &CodeKey,
        item: &str,
        recipient: &str,
        given: &str,
        mac: &str,
    ) -> Tried {
        if self.locked {
            return Tried::Locked;
        }
        let given = normal_access(given);
        let right = data_encoding::HEXLOWER
            .decode(mac.as_bytes())
            .is_ok_and(|mac| hmac::verify(&key.0, &message(item, recipient, &given), &mac).is_ok());
        if right {
            self.failures = 0;
            return Tried::Right;
        }
        self.failures += 1;
        if self.failures >= FAILURES_TO_LOCK {
            self.locked = true;
            return Tried::LockedNow;
        }
        Tried::Wrong {
            tries_left: FAILURES_TO_LOCK - self.failures,
        }
    }
}

/// `n` uniformly random decimal digits (rejection sampling: no modulo bias).
fn random_digits(n: u32) -> Result<String, ring::error::Unspecified> {
    let rng = SystemRandom::new();
    let mut out = String::with_capacity(n as usize);
    while out.len() < n as usize {
        let mut b = [0u8; 1];
        rng.fill(&mut b)?;
        if b[0] < 250 {
            out.push(char::from(b'0' + b[0] % 10));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CodeKey {
        CodeKey::new(b"a server key of the test, 32 b!!")
    }

    fn code(s: &mut CodeState, now: u64) -> String {
        match s.issue(&key(), "P1", "a@x.test", 6, now).unwrap() {
            Issued::Code(c) => c,
            other => panic!("{other:?}"),
        }
    }

    /// A wrong code of the right shape.
    fn wrong(right: &str) -> String {
        right
            .chars()
            .map(|c| if c == '9' { '0' } else { '9' })
            .collect()
    }

    #[test]
    fn a_code_opens_once_within_its_lifetime_for_its_own_item_and_recipient() {
        let mut s = CodeState::default();
        let c = code(&mut s, 1000);
        assert_eq!(c.len(), 6);
        assert!(c.bytes().all(|b| b.is_ascii_digit()));
        // Another item or recipient: the code is not theirs.
        let mut t = s.clone();
        assert_eq!(
            t.check(&key(), "P2", "a@x.test", &c, 1001),
            Tried::Wrong { tries_left: 4 }
        );
        let mut t = s.clone();
        assert_eq!(
            t.check(&key(), "P1", "b@x.test", &c, 1001),
            Tried::Wrong { tries_left: 4 }
        );
        // Expired after 15 minutes.
        let mut t = s.clone();
        assert_eq!(
            t.check(&key(), "P1", "a@x.test", &c, 1000 + CODE_LIFETIME),
            Tried::NoCode
        );
        assert_eq!(
            s.check(&key(), "P1", "a@x.test", &format!(" {c}\n"), 1899),
            Tried::Right
        );
        assert_eq!(s.check(&key(), "P1", "a@x.test", &c, 1900), Tried::NoCode);
        // Stored: a keyed hash, not the digits.
        let stored = serde_json::to_string(&s).unwrap();
        assert!(!stored.contains(&c), "{stored}");
    }

    #[test]
    fn five_tries_per_code_three_codes_an_hour_locked_after_ten_failures() {
        let mut s = CodeState::default();
        let c = code(&mut s, 0);
        for left in (0..5).rev() {
            assert_eq!(
                s.check(&key(), "P1", "a@x.test", &wrong(&c), 1),
                Tried::Wrong { tries_left: left }
            );
        }
        // Spent: even the right code no longer opens.
        assert_eq!(s.check(&key(), "P1", "a@x.test", &c, 2), Tried::NoCode);
        let c2 = code(&mut s, 10);
        let _c3 = code(&mut s, 20);
        assert_eq!(
            s.issue(&key(), "P1", "a@x.test", 6, 30).unwrap(),
            Issued::TooMany {
                next_at: CODE_WINDOW
            }
        );
        // c2 was replaced by c3; four more failures on c3 make nine, the tenth locks.
        assert_eq!(
            s.check(&key(), "P1", "a@x.test", &c2, 31),
            Tried::Wrong { tries_left: 4 }
        );
        for left in (1..4).rev() {
            assert_eq!(
                s.check(&key(), "P1", "a@x.test", "000000", 32),
                Tried::Wrong { tries_left: left }
            );
        }
        assert_eq!(s.failures, 9);
        assert_eq!(
            s.check(&key(), "P1", "a@x.test", "000001", 33),
            Tried::LockedNow
        );
        assert_eq!(
            s.check(&key(), "P1", "a@x.test", "000001", 34),
            Tried::Locked
        );
        assert_eq!(
            s.issue(&key(), "P1", "a@x.test", 6, CODE_WINDOW * 5)
                .unwrap(),
            Issued::Locked
        );
    }

    #[test]
    fn access_codes_compare_as_read_out_and_lock_after_ten_failures() {
        let k = key();
        let mac = k.access_mac("P1", "a@x.test", "ab-12 cd");
        assert!(access_code_ok("ab-12 cd") && !access_code_ok("ab1") && !access_code_ok("ab12c!"));
        let mut s = CodeState::default();
        assert_eq!(
            s.check_access(&k, "P1", "a@x.test", "AB12CD", &mac),
            Tried::Right
        );
        assert_eq!(
            s.check_access(&k, "P1", "b@x.test", "AB12CD", &mac),
            Tried::Wrong { tries_left: 9 },
            "another recipient's code"
        );
        for n in 2..FAILURES_TO_LOCK {
            assert_eq!(
                s.check_access(&k, "P1", "a@x.test", "XX12CD", &mac),
                Tried::Wrong {
                    tries_left: FAILURES_TO_LOCK - n
                }
            );
        }
        assert_eq!(
            s.check_access(&k, "P1", "a@x.test", "no", &mac),
            Tried::LockedNow
        );
        assert_eq!(
            s.check_access(&k, "P1", "a@x.test", "AB12CD", &mac),
            Tried::Locked
        );
    }

    #[test]
    fn a_right_code_clears_the_failures_and_a_new_hour_allows_new_codes() {
        let mut s = CodeState::default();
        let c = code(&mut s, 0);
        assert!(matches!(
            s.check(&key(), "P1", "a@x.test", &wrong(&c), 1),
            Tried::Wrong { .. }
        ));
        assert_eq!(s.check(&key(), "P1", "a@x.test", &c, 2), Tried::Right);
        assert_eq!(s.failures, 0);
        code(&mut s, 3);
        code(&mut s, 4);
        assert!(matches!(
            s.issue(&key(), "P1", "a@x.test", 6, 5).unwrap(),
            Issued::TooMany { .. }
        ));
        assert!(matches!(
            s.issue(&key(), "P1", "a@x.test", 8, CODE_WINDOW + 1).unwrap(),
            Issued::Code(c) if c.len() == 8
        ));
    }
}
