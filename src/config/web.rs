//! The `[web]` section: the reviewers' web interface (DESIGN §14). Without it there is none
//! (the review API on the admin listener and the command line remain).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The reviewers' web interface.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// Where its HTTPS listener binds (an internal address: reviewers only).
    pub listen: SocketAddr,
    /// The address reviewers use: `https://sluis.ziekenhuis.local`.
    pub base_url: String,
    /// The TLS certificate chain and private key (PEM); without them a self-signed one, with a
    /// warning.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Local accounts (`sluis user add`): one line each, `name:role:argon2 hash:TOTP secret`.
    pub users_file: Option<PathBuf>,
    /// How long a login lasts without a request.
    #[serde(with = "humantime_serde")]
    pub session_idle: Duration,
    /// The pages' default language: "nl" or "en" (each page offers the other).
    pub language: String,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8444)),
            base_url: String::new(),
            cert_file: None,
            key_file: None,
            users_file: None,
            session_idle: Duration::from_secs(30 * 60),
            language: "nl".into(),
        }
    }
}

pub(super) fn validate(c: &super::Config, src: &super::Source) -> Result<(), super::ConfigError> {
    let err = |key: &str, msg: String| Err(src.error(key, msg));
    let Some(w) = &c.web else {
        return Ok(());
    };
    let host = w
        .base_url
        .strip_prefix("https://")
        .map(|h| h.trim_end_matches('/'));
    if host.is_none_or(|h| h.is_empty() || h.contains(['/', '?', '#', '@', ' '])) {
        return err(
            "web.base_url",
            format!(
                "{:?}: the https:// address reviewers use (scheme, host and port only)",
                w.base_url
            ),
        );
    }
    match (&w.cert_file, &w.key_file) {
        (Some(_), None) => return err("web.cert_file", "set, but web.key_file is not".into()),
        (None, Some(_)) => return err("web.key_file", "set, but web.cert_file is not".into()),
        _ => {}
    }
    if w.session_idle < Duration::from_secs(60) || w.session_idle > Duration::from_secs(12 * 3600) {
        return err("web.session_idle", "from a minute to 12 hours".into());
    }
    if !matches!(w.language.as_str(), "nl" | "en") {
        return err(
            "web.language",
            format!("{:?}: \"nl\" or \"en\"", w.language),
        );
    }
    let Some(users) = &w.users_file else {
        return err(
            "web.users_file",
            "not set: nobody could log in (add accounts with `sluis user add`)".into(),
        );
    };
    if let Err(e) = std::fs::metadata(users) {
        return err(
            "web.users_file",
            format!(
                "{}: {e} (add accounts with `sluis user add`)",
                users.display()
            ),
        );
    }
    Ok(())
}
