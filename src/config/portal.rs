//! The `[portal]` section: the secure pickup portal (DESIGN §13). Without it there is no
//! portal, and the NTA 7516 profile quarantines what it would otherwise send there.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The pickup portal.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PortalConfig {
    /// Where the portal's HTTPS listener binds (a DMZ address of its own, in production).
    pub listen: SocketAddr,
    /// The address recipients type or follow: `https://veilig.example.nl` (links are built on
    /// it; it is the one address in the notification).
    pub base_url: String,
    /// The portal's TLS certificate chain and private key (PEM). Without them Sluis makes a
    /// self-signed certificate at start and warns: good for a test, not for patients.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// The server secret (32 random bytes) that every message key's wrapping also needs.
    /// Default `<server.spool_dir>/portal.secret`, made at first start (readable by Sluis only).
    pub secret_file: Option<PathBuf>,
    /// The notifications' sender: an address of the organisation's own domain.
    pub from: String,
    /// The organisation's name, as the notification and the pages show it.
    pub organisation: String,
    /// How long a message stays readable; then its key and the message are deleted.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// Show the subject in the notification (off: a subject often names the patient).
    pub show_subject: bool,
    /// Tell the sender when a recipient first read the message.
    pub read_notice: bool,
    /// A CSV file `address,phone` (E.164): the recipients' numbers for SMS codes.
    pub directory_file: Option<PathBuf>,
    /// Allow a code by e-mail when no number or access code is known. Weaker (the mailbox is
    /// what the portal is there to distrust) and audited as such.
    pub allow_email_code: bool,
    /// Digits in a code (6 to 8).
    pub code_digits: u32,
    /// How long the sender's completion link (enter a number or an access code) works, and
    /// how long an item waits for it before it expires and the sender is told.
    #[serde(with = "humantime_serde")]
    pub completion_time: Duration,
    /// How long a recipient's session lasts without a request.
    #[serde(with = "humantime_serde")]
    pub session_idle: Duration,
    /// A reply's size at most (text and attachments together).
    pub max_reply_bytes: u64,
    /// The pages' default language: "nl" or "en" (each page offers the other).
    pub language: String,
    pub sms: Option<SmsConfig>,
}

impl Default for PortalConfig {
    fn default() -> Self {
        PortalConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            base_url: String::new(),
            cert_file: None,
            key_file: None,
            secret_file: None,
            from: String::new(),
            organisation: String::new(),
            retention: Duration::from_secs(90 * 24 * 3600),
            show_subject: false,
            read_notice: false,
            directory_file: None,
            allow_email_code: false,
            code_digits: 6,
            completion_time: Duration::from_secs(7 * 24 * 3600),
            session_idle: Duration::from_secs(15 * 60),
            max_reply_bytes: 10 * 1024 * 1024,
            language: "nl".into(),
            sms: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmsKind {
    /// JSON `{"to", "text"}` POSTed to `url` with a bearer token (the Dutch providers' shape).
    Http,
    /// One JSON line `{"to", "text"}` per SMS appended to `path`: development and tests.
    File,
}

/// How SMS codes are sent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SmsConfig {
    pub kind: SmsKind,
    /// kind = "http": the provider's endpoint (https, or http on loopback).
    #[serde(default)]
    pub url: Option<String>,
    /// kind = "http": a file holding the bearer token.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// kind = "http": CA certificates (PEM) for the provider, beside Mozilla's roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// kind = "file": the outbox.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Tries per SMS before it counts as failed.
    #[serde(default = "default_tries")]
    pub tries: u32,
}

fn default_tries() -> u32 {
    3
}

/// The portal section's values on their own; and that no rule sends to a portal that is not
/// configured.
pub(super) fn validate(c: &super::Config, src: &super::Source) -> Result<(), super::ConfigError> {
    let err = |key: &str, msg: String| Err(src.error(key, msg));
    let Some(p) = &c.portal else {
        if let Some(i) = c
            .policy
            .rules
            .iter()
            .position(|r| r.action == crate::terms::ActionKind::Portal)
        {
            return err(
                &format!("policy.rules[{i}].action"),
                "\"portal\", but there is no [portal] section".into(),
            );
        }
        return Ok(());
    };
    let Some(rest) = p.base_url.strip_prefix("https://") else {
        return err(
            "portal.base_url",
            format!(
                "{:?}: must be the https:// address recipients use",
                p.base_url
            ),
        );
    };
    let host = rest.trim_end_matches('/');
    if host.is_empty() || host.contains(['/', '?', '#', '@', ' ']) {
        return err(
            "portal.base_url",
            format!("{:?}: give scheme and host (and port) only", p.base_url),
        );
    }
    match p.from.rsplit_once('@') {
        Some((local, domain)) if !local.is_empty() && domain.contains('.') => {}
        _ => {
            return err(
                "portal.from",
                format!(
                    "{:?} is not an address: notifications need a sender of the \
                     organisation's own domain",
                    p.from
                ),
            );
        }
    }
    if p.organisation.trim().is_empty() {
        return err(
            "portal.organisation",
            "empty: recipients must see who sent them a message".into(),
        );
    }
    match (&p.cert_file, &p.key_file) {
        (Some(_), None) => {
            return err("portal.cert_file", "set, but portal.key_file is not".into());
        }
        (None, Some(_)) => {
            return err("portal.key_file", "set, but portal.cert_file is not".into());
        }
        _ => {}
    }
    if !(6..=8).contains(&p.code_digits) {
        return err(
            "portal.code_digits",
            format!("{}: a code has 6 to 8 digits", p.code_digits),
        );
    }
    if p.retention < Duration::from_secs(3600) {
        return err("portal.retention", "must be at least an hour".into());
    }
    if p.completion_time.is_zero() || p.completion_time > p.retention {
        return err(
            "portal.completion_time",
            "must be above zero and at most portal.retention".into(),
        );
    }
    if p.session_idle < Duration::from_secs(60) {
        return err("portal.session_idle", "must be at least a minute".into());
    }
    if !matches!(p.language.as_str(), "nl" | "en") {
        return err(
            "portal.language",
            format!("{:?}: \"nl\" or \"en\"", p.language),
        );
    }
    if let Some(f) = &p.directory_file
        && let Err(e) = std::fs::read(f)
    {
        return err("portal.directory_file", format!("{}: {e}", f.display()));
    }
    if let Some(s) = &p.sms {
        validate_sms(s, src)?;
    }
    Ok(())
}

fn validate_sms(s: &SmsConfig, src: &super::Source) -> Result<(), super::ConfigError> {
    let err = |key: &str, msg: String| Err(src.error(key, msg));
    if s.tries == 0 || s.tries > 10 {
        return err("portal.sms.tries", "1 to 10".into());
    }
    match s.kind {
        SmsKind::File => {
            if s.path.is_none() {
                return err("portal.sms.kind", "\"file\" needs portal.sms.path".into());
            }
            for (key, set) in [
                ("portal.sms.url", s.url.is_some()),
                ("portal.sms.token_file", s.token_file.is_some()),
            ] {
                if set {
                    return err(key, "set, but portal.sms.kind is \"file\"".into());
                }
            }
        }
        SmsKind::Http => {
            let Some(url) = &s.url else {
                return err("portal.sms.kind", "\"http\" needs portal.sms.url".into());
            };
            let loopback = ["http://127.", "http://[::1]", "http://localhost"]
                .iter()
                .any(|p| url.starts_with(p));
            if !url.starts_with("https://") && !loopback {
                return err(
                    "portal.sms.url",
                    format!("{url:?}: https://, or http:// on this host only"),
                );
            }
            match &s.token_file {
                None => {
                    return err(
                        "portal.sms.kind",
                        "\"http\" needs portal.sms.token_file".into(),
                    );
                }
                Some(f) => match std::fs::read_to_string(f) {
                    Ok(t) if !t.trim().is_empty() => {}
                    Ok(_) => {
                        return err("portal.sms.token_file", format!("{}: empty", f.display()));
                    }
                    Err(e) => return err("portal.sms.token_file", format!("{}: {e}", f.display())),
                },
            }
            if let Some(f) = &s.ca_file
                && let Err(e) = std::fs::read(f)
            {
                return err("portal.sms.ca_file", format!("{}: {e}", f.display()));
            }
        }
    }
    Ok(())
}
