//! SMTP AUTH (PLAIN and LOGIN, RFC 4954/4616) against a file of argon2 password hashes.
//!
//! AUTH is a second way to be allowed to relay, for clients outside `allow_networks`. It is only
//! offered over TLS, so passwords never cross the wire in the clear.

use std::collections::HashMap;
use std::path::Path;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {what}")]
    Line {
        path: String,
        line: usize,
        what: String,
    },
}

/// User name → PHC hash string.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    users: HashMap<String, String>,
}

/// A hash of a password nobody has, verified for unknown users so that the time taken does not
/// tell a guesser which user names exist.
const DECOY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2x1aXNkZWNveXNhbHQ$\
                          kX8v0lJrCnm1h9cN3XvJ3Z6Q0lO8x8m1e1B2H4kqR0w";

impl Credentials {
    /// Reads `user:$argon2id$...` lines; `#` starts a comment.
    pub fn load(path: &Path) -> Result<Self, AuthError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::Read {
            path: p.clone(),
            source,
        })?;
        let mut users = HashMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |what: &str| AuthError::Line {
                path: p.clone(),
                line: i + 1,
                what: what.to_string(),
            };
            let (user, hash) = line
                .split_once(':')
                .ok_or_else(|| bad("expected user:hash"))?;
            if user.is_empty() {
                return Err(bad("empty user name"));
            }
            PasswordHash::new(hash).map_err(|e| bad(&format!("not a PHC password hash: {e}")))?;
            if users.insert(user.to_string(), hash.to_string()).is_some() {
                return Err(bad(&format!("user {user:?} appears twice")));
            }
        }
        Ok(Credentials { users })
    }

    /// Checks a password; CPU-heavy by design, so call it off the async executor.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        let (hash, known) = match self.users.get(user) {
            Some(h) => (h.as_str(), true),
            None => (DECOY_HASH, false),
        };
        let ok = PasswordHash::new(hash)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false);
        ok && known
    }
}

/// A PHC argon2id hash of `password`, for the credentials file (`sluis passwd`).
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let mut salt = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt)
        .map_err(|_| argon2::password_hash::Error::Crypto)?;
    let salt = SaltString::encode_b64(&salt)?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// Decodes an AUTH PLAIN response (`authzid NUL authcid NUL passwd`) into user and password.
/// An authorization identity other than the user is refused: nobody may act as someone else.
pub fn decode_plain(b64: &str) -> Option<(String, String)> {
    let raw = B64.decode(b64.trim()).ok()?;
    let mut parts = raw.split(|&b| b == 0);
    let authz = parts.next()?;
    let user = std::str::from_utf8(parts.next()?).ok()?;
    let pass = std::str::from_utf8(parts.next()?).ok()?;
    if parts.next().is_some() || user.is_empty() {
        return None;
    }
    if !authz.is_empty() && authz != user.as_bytes() {
        return None;
    }
    Some((user.to_string(), pass.to_string()))
}

/// Decodes one base64 line of AUTH LOGIN.
pub fn decode_login(b64: &str) -> Option<String> {
    String::from_utf8(B64.decode(b64.trim()).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn hashes_verify_and_wrong_passwords_fail() {
        let hash = hash_password("correct horse").unwrap();
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "# relay users\nehr:{hash}").unwrap();
        let c = Credentials::load(f.path()).unwrap();
        assert!(c.verify("ehr", "correct horse"));
        assert!(!c.verify("ehr", "wrong"));
        assert!(!c.verify("nobody", "correct horse"));
    }

    #[test]
    fn bad_line_is_named() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "\nehr:plaintext").unwrap();
        let e = Credentials::load(f.path()).unwrap_err().to_string();
        assert!(e.contains(":2: not a PHC password hash"), "{e}");
    }

    #[test]
    fn plain_decoding() {
        let enc = |s: &[u8]| B64.encode(s);
        assert_eq!(
            decode_plain(&enc(b"\0ehr\0pw")),
            Some(("ehr".into(), "pw".into()))
        );
        assert_eq!(
            decode_plain(&enc(b"ehr\0ehr\0pw")),
            Some(("ehr".into(), "pw".into()))
        );
        assert_eq!(decode_plain(&enc(b"admin\0ehr\0pw")), None);
        assert_eq!(decode_plain(&enc(b"\0\0pw")), None);
        assert_eq!(decode_plain("!!!"), None);
    }
}
