//! The policy, quarantine, audit and review sections of the configuration (DESIGN §7–§9).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::terms::ActionKind;
use crate::terms::{Level, RecipientClass};

/// How recipients are decided.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Subject tags by which a sender marks a message confidential (case-insensitive). A tag
    /// can only raise protection: the message is then treated as confidential whatever
    /// inspection found.
    pub confidential_tags: Vec<String>,
    /// Send the sender a notice, saying what to do, when a recipient is quarantined by a rule
    /// with `notify = true`.
    pub notify_quarantined: bool,
    /// The rules, in order, first match wins. Empty: the NTA 7516 profile (DESIGN §7).
    pub rules: Vec<RuleConfig>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            confidential_tags: vec![
                "[vertrouwelijk]".into(),
                "[confidential]".into(),
                "[beveiligd]".into(),
            ],
            notify_quarantined: true,
            rules: Vec::new(),
        }
    }
}

/// One rule: when every condition in `when` holds, `action`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Shown in the audit log, the metrics and replies.
    pub name: String,
    #[serde(default)]
    pub when: When,
    pub action: ActionKind,
    /// deliver: the lowest posture the lane must enforce. The lane is then the strongest one
    /// the recipient's domain supports at or above it (DESIGN §1 lanes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require: Option<Level>,
    /// deliver: always through this lane (instead of `require`); the lane's MTA must enforce
    /// whatever this rule's mail needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lane: Option<String>,
    /// refuse / defer / quarantine: the human part of the reply (and of the notice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// quarantine: tell the sender (see `policy.notify_quarantined`).
    #[serde(default)]
    pub notify: bool,
    /// quarantine: the sender may release the hold themselves through the link in the notice,
    /// with a justification (audited). Off in the NTA 7516 profile.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_override: bool,
}

/// Conditions; all that are set must hold. Message facts first, then recipient facts; the
/// posture is looked up only when a rule that needs it is reached.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct When {
    /// The inspection's score met `inspect.threshold`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sensitive: Option<bool>,
    /// Sensitive, or uninspectable, or tagged by the sender: what the NTA 7516 profile protects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidential: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_score: Option<u32>,
    /// Any finding by one of these detectors (bsn, iban, dob, keyword names, identifiers...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub detectors: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub automated_forward: Option<bool>,
    /// Some part could not be inspected (encrypted, over a bound, corrupt).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uninspectable: Option<bool>,
    /// The sender tagged the subject with one of `policy.confidential_tags`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tagged: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_size: Option<u64>,
    /// The envelope sender's domain is one of these.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sender_domains: Vec<String>,
    /// The recipient's class (a lapsed managed/partner domain counts as unmanaged).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub class: Vec<RecipientClass>,
    /// The recipient's domain is a listed domain whose ownership proof failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lapsed: Option<bool>,
    /// The recipient domain's posture is one of these.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub posture: Vec<Level>,
    /// The posture is known and weaker than this (bogus and unknown never match).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub posture_below: Option<Level>,
    /// The recipient's domain publishes an NTA 7516 record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nta7516_record: Option<bool>,
}

impl When {
    pub fn is_empty(&self) -> bool {
        self == &When::default()
    }

    pub fn needs_posture(&self) -> bool {
        !self.posture.is_empty() || self.posture_below.is_some() || self.nta7516_record.is_some()
    }
}

/// Where quarantined mail waits for review (DESIGN §9).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct QuarantineConfig {
    /// Default: `<server.spool_dir>/quarantine`.
    pub dir: Option<PathBuf>,
    /// Items older than this are removed by `sluis quarantine purge` without an age given.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// The store never grows beyond this: when full, messages that need it are deferred
    /// (452 4.3.1), never dropped.
    pub max_bytes: u64,
}

impl Default for QuarantineConfig {
    fn default() -> Self {
        QuarantineConfig {
            dir: None,
            retention: Duration::from_secs(30 * 24 * 3600),
            max_bytes: 1024 * 1024 * 1024,
        }
    }
}

/// Which backend holds quarantine, portal and review state (DESIGN §15).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// Files under the spool: one host.
    #[default]
    Files,
    /// PostgreSQL: several instances share the state.
    Postgres,
}

/// Whether the connection to PostgreSQL is encrypted, and how the server is checked.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum StoreTls {
    /// TLS required, the server's certificate verified against `ca_file` (or the WebPKI roots)
    /// and its name against the host in `url`.
    #[default]
    Verify,
    /// No TLS: only for a server on the same host or a private link.
    Off,
}

/// The state store (DESIGN §15).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub kind: StoreKind,
    /// `postgresql://user@host:port/database`: never with a password in it.
    pub url: Option<String>,
    /// A file holding the database password; without it, the SLUIS_STORE_PASSWORD variable.
    pub password_file: Option<PathBuf>,
    pub tls: StoreTls,
    /// CA certificates (PEM) that sign the server's certificate, for `tls = "verify"`.
    pub ca_file: Option<PathBuf>,
    /// This instance's name in audit anchors. Default: the host name (a pod's name).
    pub instance: Option<String>,
    /// Connections to the database at most.
    pub pool_size: usize,
    /// Each statement (and getting a connection) must finish within this, or the mail that
    /// needed it is deferred.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            kind: StoreKind::Files,
            url: None,
            password_file: None,
            tls: StoreTls::Verify,
            ca_file: None,
            instance: None,
            pool_size: 16,
            timeout: Duration::from_secs(5),
        }
    }
}

/// The tamper-evident decision log (DESIGN §9, NEN 7513).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Default: `<server.spool_dir>/audit/audit.jsonl`.
    pub file: Option<PathBuf>,
    /// Rotate (rename with a timestamp, start a new file that continues the chain) past this.
    pub rotate_bytes: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            file: None,
            rotate_bytes: 64 * 1024 * 1024,
        }
    }
}

/// The review API on the admin listener.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ReviewConfig {
    /// A file holding the bearer token reviewers' tools send; without it the API is off.
    pub token_file: Option<PathBuf>,
    /// Where the lanes' delivery reports of released mail arrive (SMTP; the lane's MTA routes
    /// `server.hostname` here). With it a release keeps its item until the report says what
    /// became of it; without it a release ends when the lane accepts.
    pub report_listen: Option<std::net::SocketAddr>,
}
