//! Local accounts, for a hospital without an identity provider (`web.users_file`, written by
//! `sluis user add`): one line each, `name:role:argon2 hash:TOTP secret (base32)`, `#` starts
//! a comment. A login needs the password and a TOTP code (RFC 6238, 30 s steps, one step of
//! skew); a code is accepted once (the caller records the step it used).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use totp_rs::{Secret, Totp};

/// What a person may do in the web interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Works the quarantine: reveal, release, reject, send via the portal.
    Reviewer,
    /// Reads the quarantine (masked) and the audit log; acts on nothing.
    Auditor,
    /// A reviewer who also sees the audit log.
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "reviewer" => Some(Role::Reviewer),
            "auditor" => Some(Role::Auditor),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::Reviewer => "reviewer",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }

    /// Acting on held mail (and seeing it unmasked).
    pub fn acts(self) -> bool {
        matches!(self, Role::Reviewer | Role::Admin)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UsersError {
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

struct Account {
    role: Role,
    hash: String,
    totp: Totp,
}

/// The local accounts.
#[derive(Clone, Default)]
pub struct Users {
    accounts: Arc<HashMap<String, Account>>,
}

/// A hash of a password nobody has (random, made at the first login), checked for unknown
/// names so that the time a login takes does not tell which names exist.
fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        let nobody = crate::wire::web::new_token().unwrap_or_default();
        argon2::password_hash::SaltString::from_b64("c2x1aXNkZWNveXNhbHQ")
            .ok()
            .and_then(|salt| {
                argon2::password_hash::PasswordHasher::hash_password(
                    &argon2::Argon2::default(),
                    nobody.as_bytes(),
                    &salt,
                )
                .map(|h| h.to_string())
                .ok()
            })
            .unwrap_or_default()
    })
}

/// A name a login and the audit log can carry.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

pub fn totp(secret: &[u8], name: &str) -> Result<Totp, String> {
    totp_rs::Builder::new()
        .with_secret(secret.to_vec())
        .with_account_name(name)
        .with_issuer(Some("Sluis"))
        .build()
        .map_err(|e| e.to_string())
}

impl Users {
    pub fn load(path: &Path) -> Result<Users, UsersError> {
        let text = std::fs::read_to_string(path).map_err(|source| UsersError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut accounts = HashMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |what: String| UsersError::Line {
                path: path.display().to_string(),
                line: i + 1,
                what,
            };
            let fields: Vec<&str> = line.split(':').collect();
            let [name, role, hash, secret] = fields[..] else {
                return Err(bad("expected name:role:hash:totp-secret".into()));
            };
            if !valid_name(name) {
                return Err(bad(format!(
                    "{name:?}: a name is 1 to 64 of A-Z a-z 0-9 . _ - @"
                )));
            }
            let role = Role::parse(role)
                .ok_or_else(|| bad(format!("{role:?}: reviewer, auditor or admin")))?;
            PasswordHash::new(hash).map_err(|e| bad(format!("the password hash: {e}")))?;
            let bytes = Secret::try_from_base32(secret)
                .map_err(|e| bad(format!("the TOTP secret: {e}")))?;
            let totp =
                totp(bytes.as_bytes(), name).map_err(|e| bad(format!("the TOTP secret: {e}")))?;
            if accounts
                .insert(
                    name.to_string(),
                    Account {
                        role,
                        hash: hash.to_string(),
                        totp,
                    },
                )
                .is_some()
            {
                return Err(bad(format!("{name:?} is there twice")));
            }
        }
        Ok(Users {
            accounts: Arc::new(accounts),
        })
    }

    /// The account's role and the TOTP step its code matched, when the password and the code
    /// are right; `None` otherwise, after the same work for a name that does not exist. Slow by
    /// design (argon2): call it off the async threads.
    pub fn check(&self, name: &str, password: &str, code: &str, now: u64) -> Option<(Role, u64)> {
        let account = self.accounts.get(name);
        let hash = account.map_or(decoy(), |a| a.hash.as_str());
        let password_ok = PasswordHash::new(hash).is_ok_and(|h| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        });
        let account = account?;
        let step = account.totp.check(code.trim(), now)?;
        password_ok.then_some((account.role, step))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(lines: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), lines).unwrap();
        f
    }

    #[test]
    fn a_login_needs_the_password_and_a_current_code() {
        let hash = crate::smtp::auth::hash_password("correct horse").unwrap();
        let secret = [7u8; 20];
        let b32 = Secret::from(secret).to_base32();
        let f = file(&format!("# local accounts\nalice:reviewer:{hash}:{b32}\n"));
        let users = Users::load(f.path()).unwrap();
        let now = 1_800_000_000;
        let code = totp(&secret, "alice").unwrap().generate(now).to_string();
        let (role, step) = users.check("alice", "correct horse", &code, now).unwrap();
        assert_eq!((role, step), (Role::Reviewer, now / 30));
        assert!(users.check("alice", "wrong", &code, now).is_none());
        let wrong = if code == "000000" { "111111" } else { "000000" };
        assert!(users.check("alice", "correct horse", wrong, now).is_none());
        assert!(
            users
                .check("alice", "correct horse", &code, now + 120)
                .is_none(),
            "an old code"
        );
        assert!(users.check("bob", "correct horse", &code, now).is_none());
    }

    #[test]
    fn bad_lines_are_named_with_their_line() {
        for (text, what) in [
            (
                "alice:reviewer:x\n",
                ":1: expected name:role:hash:totp-secret",
            ),
            ("\nal ice:reviewer:x:y\n", ":2: \"al ice\""),
            ("alice:boss:x:y\n", "\"boss\": reviewer, auditor or admin"),
            ("alice:admin:x:y\n", "the password hash"),
        ] {
            let f = file(text);
            let e = Users::load(f.path()).err().unwrap().to_string();
            assert!(e.contains(what), "{text:?}: {e}");
        }
    }
}
