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
    /// Login through the hospital's OpenID Connect provider.
    pub oidc: Option<OidcConfig>,
    /// The key of the senders' links in hold notices (32 bytes; made at first start, mode
    /// 0600; the same file on every instance). Default `<server.spool_dir>/web.secret`.
    pub secret_file: Option<PathBuf>,
    /// How long a sender's link in a hold notice works.
    #[serde(with = "humantime_serde")]
    pub sender_link_time: Duration,
}

/// The identity provider (authorization code flow with PKCE); roles come from a group claim.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The issuer (`https://login.ziekenhuis.nl/realms/staff`); its discovery document is at
    /// `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    /// A file holding the client secret (confidential client).
    pub client_secret_file: PathBuf,
    /// CA certificates (PEM) for the provider, beside Mozilla's roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The ID token claim with the person's groups.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Groups that give each role (the highest one counts: admin, reviewer, auditor). A
    /// person in none of them cannot log in.
    #[serde(default)]
    pub reviewer_groups: Vec<String>,
    #[serde(default)]
    pub auditor_groups: Vec<String>,
    #[serde(default)]
    pub admin_groups: Vec<String>,
    /// The login button's label ("Ziekenhuis-account").
    #[serde(default = "default_provider_name")]
    pub name: String,
}

fn default_groups_claim() -> String {
    "groups".into()
}

fn default_provider_name() -> String {
    "OpenID Connect".into()
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
            oidc: None,
            secret_file: None,
            sender_link_time: Duration::from_secs(7 * 24 * 3600),
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
    if w.sender_link_time.is_zero() {
        return err("web.sender_link_time", "must be above zero".into());
    }
    if !matches!(w.language.as_str(), "nl" | "en") {
        return err(
            "web.language",
            format!("{:?}: \"nl\" or \"en\"", w.language),
        );
    }
    if let Some(o) = &w.oidc {
        validate_oidc(o, src)?;
    }
    match &w.users_file {
        None if w.oidc.is_none() => {
            return err(
                "web.users_file",
                "not set, and no [web.oidc]: nobody could log in (add accounts with `sluis \
                 user add`, or configure the identity provider)"
                    .into(),
            );
        }
        Some(users) if std::fs::metadata(users).is_err() => {
            return err(
                "web.users_file",
                format!(
                    "{}: cannot be read (add accounts with `sluis user add`)",
                    users.display()
                ),
            );
        }
        _ => {}
    }
    Ok(())
}

fn validate_oidc(o: &OidcConfig, src: &super::Source) -> Result<(), super::ConfigError> {
    let err = |key: &str, msg: String| Err(src.error(key, msg));
    let loopback = ["http://127.", "http://[::1]", "http://localhost"]
        .iter()
        .any(|p| o.issuer.starts_with(p));
    if !(o.issuer.starts_with("https://") || loopback) {
        return err(
            "web.oidc.issuer",
            format!("{:?}: an https:// URL (http only on loopback)", o.issuer),
        );
    }
    if o.client_id.trim().is_empty() {
        return err("web.oidc.client_id", "empty".into());
    }
    match std::fs::read_to_string(&o.client_secret_file) {
        Ok(s) if !s.trim().is_empty() => {}
        Ok(_) => {
            return err(
                "web.oidc.client_secret_file",
                format!("{}: empty", o.client_secret_file.display()),
            );
        }
        Err(e) => {
            return err(
                "web.oidc.client_secret_file",
                format!("{}: {e}", o.client_secret_file.display()),
            );
        }
    }
    if o.reviewer_groups.is_empty() && o.auditor_groups.is_empty() && o.admin_groups.is_empty() {
        return err(
            "web.oidc.reviewer_groups",
            "no group gives any role (reviewer_groups, auditor_groups, admin_groups): nobody \
             could log in"
                .into(),
        );
    }
    if o.groups_claim.trim().is_empty() {
        return err("web.oidc.groups_claim", "empty".into());
    }
    Ok(())
}
