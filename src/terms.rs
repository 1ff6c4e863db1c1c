//! The shared vocabulary: the words every room of Sluis uses for the same things (a posture
//! level, a recipient class, an action, the domain of an address). It imports nothing of the
//! crate, so that configuration, policy, posture, the pipeline and the web sides can all speak
//! it without depending on each other.

use serde::{Deserialize, Serialize};

/// A rung of the ladder, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    Dane,
    MtaSts,
    Trusted,
    Verified,
    Encrypted,
    None,
    /// DNSSEC validation failed: defer, never downgrade.
    Bogus,
    /// Lookups failed or the hosts could not be reached: defer.
    Unknown,
}

impl Level {
    pub const ALL: [Level; 8] = [
        Level::Dane,
        Level::MtaSts,
        Level::Trusted,
        Level::Verified,
        Level::Encrypted,
        Level::None,
        Level::Bogus,
        Level::Unknown,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Level::Dane => "dane",
            Level::MtaSts => "mta-sts",
            Level::Trusted => "trusted",
            Level::Verified => "verified",
            Level::Encrypted => "encrypted",
            Level::None => "none",
            Level::Bogus => "bogus",
            Level::Unknown => "unknown",
        }
    }

    /// Position on the ladder; `None` for bogus and unknown, which are not "weak" but "not
    /// known", and compare with nothing.
    pub fn strength(self) -> Option<u8> {
        match self {
            Level::Dane => Some(5),
            Level::MtaSts => Some(4),
            Level::Trusted => Some(3),
            Level::Verified => Some(2),
            Level::Encrypted => Some(1),
            Level::None => Some(0),
            Level::Bogus | Level::Unknown => None,
        }
    }

    /// Whether this level is `other` or stronger (false for bogus/unknown on either side).
    pub fn at_least(self, other: Level) -> bool {
        matches!((self.strength(), other.strength()), (Some(a), Some(b)) if a >= b)
    }

    /// The receiving server is authenticated (what NTA 7516 asks for sensitive mail).
    pub fn authenticated(self) -> bool {
        self.at_least(Level::Trusted)
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Level::ALL
            .into_iter()
            .find(|l| l.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown posture level {s:?} (one of {})",
                    Level::ALL.map(Level::name).join(", ")
                )
            })
    }
}

/// A recipient's class, as configured; ownership decides whether managed and partner domains
/// count as such right now (see `ownership`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecipientClass {
    Managed,
    Partner,
    Personal,
    Unmanaged,
}

impl RecipientClass {
    pub fn name(self) -> &'static str {
        match self {
            RecipientClass::Managed => "managed",
            RecipientClass::Partner => "partner",
            RecipientClass::Personal => "personal",
            RecipientClass::Unmanaged => "unmanaged",
        }
    }
}

/// What a rule does with a recipient (DESIGN §7).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ActionKind {
    Deliver,
    Quarantine,
    Refuse,
    Defer,
    /// Sealed in the secure pickup portal; the recipient is notified and reads it in a browser
    /// after proving who they are (DESIGN §13).
    Portal,
}

impl ActionKind {
    pub fn name(self) -> &'static str {
        match self {
            ActionKind::Deliver => "deliver",
            ActionKind::Quarantine => "quarantine",
            ActionKind::Refuse => "refuse",
            ActionKind::Defer => "defer",
            ActionKind::Portal => "portal",
        }
    }
}

/// The domain part of an address (after the last `@`: a domain holds none, so that is the last
/// unquoted one), normalised by `normal_domain`; empty when there is none (the null sender, a
/// bare local part).
pub fn domain_of(address: &str) -> String {
    normal_domain(address.rsplit_once('@').map(|(_, d)| d).unwrap_or(""))
}

/// The one form of a domain name every module sees: UTS #46 (IDNA) mapped to ASCII, so that
/// `ｇｍａｉｌ.com`, `GMAIL.com.` and `gmail.com` are one name for classing, the lists, ownership
/// and postures, as they are for DNS; lowercase, without a trailing dot. A name IDNA refuses is
/// kept lowercase as it is: it matches no list and no DNS name.
pub fn normal_domain(domain: &str) -> String {
    let domain = domain.trim_end_matches('.');
    if domain
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && !domain.split('.').any(|label| label.starts_with("xn--"))
    {
        return domain.to_ascii_lowercase();
    }
    match idna::domain_to_ascii(domain) {
        Ok(ascii) if !ascii.is_empty() => ascii.trim_end_matches('.').to_string(),
        _ => domain.to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_one_name_whatever_their_form() {
        assert_eq!(domain_of("u@ｇｍａｉｌ.com"), "gmail.com");
        assert_eq!(domain_of("u@GMAIL.com."), "gmail.com");
        assert_eq!(domain_of("u@gmail.com@x.test"), "x.test");
        assert_eq!(domain_of("u@bücher.example"), "xn--bcher-kva.example");
        assert_eq!(
            domain_of("u@XN--BCHER-KVA.example"),
            "xn--bcher-kva.example"
        );
        assert_eq!(domain_of(""), "");
        assert_eq!(domain_of("postmaster"), "");
    }
}
