//! The NCSC-NL "ICT-beveiligingsrichtlijnen voor TLS" (2021) ratings of what a handshake
//! negotiated: each of protocol version, cipher suite and key-exchange group is good,
//! sufficient, to be phased out, or insufficient, and the connection is as good as its worst.
//!
//! rustls only negotiates TLS 1.2 with ECDHE and AEAD ciphers, and TLS 1.3, so a completed
//! handshake is never worse than "sufficient" (TLS 1.2 itself is rated sufficient); a server
//! that offers nothing rustls accepts fails the handshake and is reported as such.

use crate::wire::stream::TlsParams;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rating {
    Insufficient,
    PhaseOut,
    Sufficient,
    Good,
}

impl Rating {
    pub fn name(self) -> &'static str {
        match self {
            Rating::Good => "good",
            Rating::Sufficient => "sufficient",
            Rating::PhaseOut => "phase out",
            Rating::Insufficient => "insufficient",
        }
    }
}

fn version(v: &str) -> Rating {
    match v {
        "TLSv1.3" => Rating::Good,
        "TLSv1.2" => Rating::Sufficient,
        "TLSv1.1" | "TLSv1.0" => Rating::PhaseOut,
        _ => Rating::Insufficient,
    }
}

fn cipher(c: &str) -> Rating {
    let aead = c.contains("_GCM_") || c.contains("CHACHA20_POLY1305");
    if c.starts_with("TLS13_") {
        return if aead {
            Rating::Good
        } else {
            Rating::Sufficient
        };
    }
    match (c.contains("ECDHE") || c.contains("_DHE_"), aead) {
        (true, true) => Rating::Good,
        (true, false) => Rating::Sufficient,
        // Without forward secrecy.
        (false, _) => Rating::PhaseOut,
    }
}

fn group(g: Option<&str>) -> Rating {
    match g {
        Some("X25519" | "X448" | "secp256r1" | "secp384r1") => Rating::Good,
        Some(g) if g.starts_with("X25519MLKEM") || g.starts_with("secp256r1MLKEM") => Rating::Good,
        Some(g) if g.starts_with("FFDHE") => Rating::Sufficient,
        // TLS 1.2 resumption and the like can leave it unknown: say so, judge the rest.
        None => Rating::Good,
        Some(_) => Rating::PhaseOut,
    }
}

/// The rating of a connection and why, e.g. `sufficient (TLS 1.2 is sufficient)`.
pub fn rate(p: &TlsParams) -> (Rating, String) {
    let parts = [
        (version(&p.version), format!("{} is", p.version)),
        (cipher(&p.cipher), format!("{} is", p.cipher)),
        (
            group(p.group.as_deref()),
            format!("{} is", p.group.as_deref().unwrap_or("the group")),
        ),
    ];
    let worst = parts.iter().map(|(r, _)| *r).min().unwrap_or(Rating::Good);
    let why: Vec<String> = parts
        .iter()
        .filter(|(r, _)| *r == worst && worst != Rating::Good)
        .map(|(r, what)| format!("{what} {}", r.name()))
        .collect();
    let text = if why.is_empty() {
        worst.name().to_string()
    } else {
        format!("{} ({})", worst.name(), why.join(", "))
    };
    (worst, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &str, c: &str, g: Option<&str>) -> TlsParams {
        TlsParams {
            version: v.into(),
            cipher: c.into(),
            group: g.map(str::to_string),
        }
    }

    #[test]
    fn ratings_follow_the_guidelines() {
        assert_eq!(
            rate(&p("TLSv1.3", "TLS13_AES_256_GCM_SHA384", Some("X25519"))).1,
            "good"
        );
        let (r, why) = rate(&p(
            "TLSv1.2",
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            Some("secp256r1"),
        ));
        assert_eq!(r, Rating::Sufficient);
        assert_eq!(why, "sufficient (TLSv1.2 is sufficient)");
        assert_eq!(
            rate(&p("TLSv1.2", "TLS_RSA_WITH_AES_128_CBC_SHA", None)).0,
            Rating::PhaseOut
        );
        assert_eq!(
            rate(&p("SSLv3", "TLS_RSA_WITH_RC4_128_SHA", None)).0,
            Rating::Insufficient
        );
        assert_eq!(
            rate(&p("TLSv1.3", "TLS13_AES_128_GCM_SHA256", Some("FFDHE2048"))).0,
            Rating::Sufficient
        );
    }
}
