//! The configuration schema: what `config/sluis.toml` may contain.
//!
//! Every struct denies unknown keys, so a misspelt key is an error that names the file and line
//! instead of a setting silently ignored. Formats (networks, addresses, durations) are parsed by
//! serde while the TOML is read, so their errors carry the position of the offending value.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// The whole effective configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub tls: TlsConfig,
    pub auth: AuthConfig,
    pub limits: LimitsConfig,
    pub timeouts: TimeoutsConfig,
    pub upstream: UpstreamConfig,
    pub inspect: InspectConfig,
    pub dns: DnsConfig,
    pub ownership: OwnershipConfig,
    /// The organisation's own (managed) and its partners' domains, proven by DNS.
    pub domains: Vec<DomainConfig>,
    pub recipients: RecipientsConfig,
    pub forwards: ForwardsConfig,
    pub posture: PostureConfig,
    pub policy: super::policy::PolicyConfig,
    pub store: super::policy::StoreConfig,
    pub quarantine: super::policy::QuarantineConfig,
    pub audit: super::policy::AuditConfig,
    pub review: super::policy::ReviewConfig,
    /// The secure pickup portal (DESIGN §13): absent, there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub portal: Option<super::portal::PortalConfig>,
    /// The reviewers' web interface (DESIGN §14): absent, there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub web: Option<super::web::WebConfig>,
    pub log: LogConfig,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Validation {
    InProcess,
    Resolver,
}

/// How recipient domains are placed on the TLS posture ladder (DESIGN §4).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PostureConfig {
    /// The port MX hosts are probed on (25; another only in test setups).
    pub probe_port: u16,
    /// Extra trusted CAs (PEM) for WebPKI checks of MX certificates, beside Mozilla's roots.
    pub ca_file: Option<PathBuf>,
    /// How long an assessment is kept.
    #[serde(with = "humantime_serde")]
    pub cache_lifetime: Duration,
    /// How long a bogus or unknown result is kept (short: a repaired domain is seen soon).
    #[serde(with = "humantime_serde")]
    pub failure_lifetime: Duration,
    /// At most this many domains are kept.
    pub max_domains: usize,
}

impl Default for PostureConfig {
    fn default() -> Self {
        PostureConfig {
            probe_port: 25,
            ca_file: None,
            cache_lifetime: Duration::from_secs(3600),
            failure_lifetime: Duration::from_secs(60),
            max_domains: 10_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Name in the greeting, the EHLO reply and the `Received:` header.
    pub hostname: String,
    /// Addresses the SMTP listener binds.
    pub listen: Vec<SocketAddr>,
    /// Client networks that may relay through Sluis without authenticating.
    pub allow_networks: Vec<IpNet>,
    /// Where message bodies too large for memory and (later) quarantined mail are kept.
    pub spool_dir: PathBuf,
    /// Address of the admin HTTP listener (/healthz, /metrics); none when absent.
    pub admin_listen: Option<SocketAddr>,
    /// How long a positive reply the client may not have read is remembered, so that the
    /// client's retry of the same message (after a crash cut the reply off) is answered, not
    /// delivered again. Zero turns it off.
    #[serde(with = "humantime_serde")]
    pub repeat_window: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain offered with STARTTLS. When absent, a self-signed certificate is
    /// generated at start (with a warning): encryption without authentication.
    pub cert_file: Option<PathBuf>,
    /// PEM private key for `cert_file`.
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Offer AUTH PLAIN/LOGIN after STARTTLS. An authenticated client may relay from any address.
    pub enabled: bool,
    /// Lines of `user:$argon2id$...` (PHC strings, as `sluis passwd` prints them).
    pub credentials_file: Option<PathBuf>,
    /// Memory password checks may use at once, in bytes. Each argon2 check takes its hash's
    /// memory cost (19 MiB for `sluis passwd`); checks that do not fit wait their turn.
    pub check_memory: usize,
    /// What a failed login costs its client address: the next attempt from there waits this
    /// long, doubling with every further failure (at most 30 s), until 15 minutes pass without
    /// one.
    #[serde(with = "humantime_serde")]
    pub failure_delay: Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            enabled: false,
            credentials_file: None,
            check_memory: 128 * 1024 * 1024,
            failure_delay: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Longest command line accepted, CRLF included (RFC 5321 minimum: 512).
    pub command_line_length: usize,
    /// Longest message text line accepted, CRLF included (RFC 5321 §4.5.3.1.6: 1000).
    pub text_line_length: usize,
    /// Largest message accepted, in bytes; announced with SIZE and enforced while streaming.
    pub message_size: usize,
    /// Bytes of a message held in memory before the rest is spooled to a file.
    pub memory_buffer: usize,
    /// Recipients per transaction.
    pub recipients: usize,
    /// Concurrent SMTP sessions in total.
    pub sessions: usize,
    /// Concurrent SMTP sessions from one client address.
    pub sessions_per_client: usize,
    /// Errors in one session before Sluis says 421 and hangs up.
    pub errors_per_session: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TimeoutsConfig {
    /// Waiting for the next command (RFC 5321 §4.5.3.2.7: at least 5 minutes).
    #[serde(with = "humantime_serde")]
    pub command: Duration,
    /// Waiting for the next block of message data (RFC 5321 §4.5.3.2.5: 3 minutes).
    #[serde(with = "humantime_serde")]
    pub data_block: Duration,
    /// After SIGTERM, how long sessions in progress may take to finish.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// The lane all mail takes until the policy chooses otherwise.
    pub default_lane: String,
    /// Named upstream MTAs; the policy picks one per required TLS level (DESIGN §1).
    pub lanes: BTreeMap<String, LaneConfig>,
    /// Where Sluis answers the lanes' MTA's TLS policy lookups (a Postfix socketmap for
    /// `smtp_tls_policy_maps`, DESIGN §16). Off unless set.
    pub policy_map_listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StartTls {
    /// Use STARTTLS when the upstream offers it; no certificate check.
    Opportunistic,
    /// Refuse to relay (4xx) unless STARTTLS succeeds.
    Required,
    /// Never use STARTTLS to this upstream.
    Off,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LaneConfig {
    /// `host:port` of the upstream SMTP service.
    pub address: String,
    /// The weakest TLS posture this lane's MTA enforces when it delivers (e.g. `dane` for a
    /// Postfix service with `smtp_tls_security_level = dane-only`). The policy sends mail that
    /// requires a level only through a lane that enforces it.
    pub level: crate::terms::Level,
    pub starttls: StartTls,
    /// Verify the upstream's certificate against this PEM CA bundle (and `server_name`).
    pub ca_file: Option<PathBuf>,
    /// Name to verify the upstream certificate against; defaults to the host of `address`.
    pub server_name: Option<String>,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Per-command reply timeouts of RFC 5321 §4.5.3.2 (greeting, MAIL, RCPT: 5 min).
    #[serde(with = "humantime_serde")]
    pub command_timeout: Duration,
    /// Reply to DATA (RFC 5321 §4.5.3.2.3: 2 minutes).
    #[serde(with = "humantime_serde")]
    pub data_init_timeout: Duration,
    /// Writing one block of data (RFC 5321 §4.5.3.2.5: 3 minutes).
    #[serde(with = "humantime_serde")]
    pub data_block_timeout: Duration,
    /// Reply after the final dot (RFC 5321 §4.5.3.2.6: 10 minutes).
    #[serde(with = "humantime_serde")]
    pub data_done_timeout: Duration,
    /// Upstream sessions kept open between transactions (RSET before the next one); 0: a new
    /// session per transaction.
    pub idle_connections: usize,
    /// How long an idle upstream session is kept for reuse.
    #[serde(with = "humantime_serde")]
    pub idle_time: Duration,
}

/// Content inspection: what makes a message carry patient data (DESIGN §6).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct InspectConfig {
    /// Score at which a message counts as sensitive. A high-confidence finding weighs 10, a
    /// medium one 4, a low one 0.
    pub threshold: u32,
    /// Bytes around a number searched for context words.
    pub context_window: usize,
    /// Largest message inspected. Inspection parses a message in memory (one per core at a
    /// time), so this bounds its memory; a larger message is reported as uninspectable.
    pub max_message_size: usize,
    /// Bytes all decompression (attachments, ZIP, PDF streams) of one message may produce.
    pub max_decompressed_bytes: u64,
    /// Nesting of attached messages and archives.
    pub max_depth: usize,
    /// MIME parts plus archive members inspected per message.
    pub max_parts: usize,
    /// Findings kept per message (for the audit log, the quarantine and `sluis scan`); more
    /// are counted ("and 99,000 more") and still count towards the score.
    pub max_findings: usize,
    /// Time inspection of one message may take.
    #[serde(with = "humantime_serde")]
    pub max_time: Duration,
    /// Secret for the keyed hash of findings (at least 16 bytes). Without it a random key per
    /// process: hashes then correlate only within one run.
    pub hash_key_file: Option<PathBuf>,
    /// Use the built-in keyword lists (the lists below extend them).
    pub default_keywords: bool,
    /// Extra words that name an identifier (like "bsn").
    pub identifier_keywords: Vec<String>,
    /// Extra words that make a care context (like "patiënt").
    pub care_keywords: Vec<String>,
    /// Extra words that make a number look like something else (like "factuur").
    pub anti_keywords: Vec<String>,
    /// Organisation-specific identifiers: patient numbers, case numbers.
    pub identifiers: Vec<IdentifierConfig>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Checksum {
    None,
    Elfproef,
    Luhn,
    Mod97,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IdentifierConfig {
    /// Shown as the detector in findings, logs and metrics.
    pub name: String,
    /// A regular expression (Rust regex syntax) matching the identifier.
    pub pattern: String,
    #[serde(default = "no_checksum")]
    pub checksum: Checksum,
    /// Words that must be near a match for high confidence; none: every match is high.
    #[serde(default)]
    pub keywords: Vec<String>,
}

fn no_checksum() -> Checksum {
    Checksum::None
}

impl Default for InspectConfig {
    fn default() -> Self {
        InspectConfig {
            threshold: 10,
            context_window: 200,
            max_message_size: 25 * 1024 * 1024,
            max_decompressed_bytes: 100 * 1024 * 1024,
            max_depth: 5,
            max_parts: 1000,
            max_findings: 1000,
            max_time: Duration::from_secs(10),
            hash_key_file: None,
            default_keywords: true,
            identifier_keywords: Vec::new(),
            care_keywords: Vec::new(),
            anti_keywords: Vec::new(),
            identifiers: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    /// The recursive resolver Sluis asks.
    pub resolver: SocketAddr,
    /// Who validates DNSSEC: Sluis itself ("in-process", against the trust anchor), or the
    /// resolver, whose AD bit Sluis then trusts ("resolver": only for a validating resolver on
    /// this host or a link you trust, as Postfix does).
    pub validation: Validation,
    /// DNSKEY records (zone-file syntax) to trust; default: the IANA root keys.
    pub trust_anchor_file: Option<PathBuf>,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Answers are cached no longer than this, whatever their TTL.
    #[serde(with = "humantime_serde")]
    pub max_cache_ttl: Duration,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            resolver: SocketAddr::from(([127, 0, 0, 1], 53)),
            validation: Validation::InProcess,
            trust_anchor_file: None,
            timeout: Duration::from_secs(5),
            max_cache_ttl: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OwnershipConfig {
    /// The TXT record proving a domain is still ours: `<txt_label>.<domain>`.
    pub txt_label: String,
    /// The value that record must hold (the organisation's token).
    pub token: String,
    /// How often every listed domain's proof is checked again.
    #[serde(with = "humantime_serde")]
    pub check_interval: Duration,
    /// Refuse every recipient in a listed domain whose proof has lapsed (550 5.7.1 at RCPT):
    /// the domain may belong to someone else now.
    pub refuse_lapsed: bool,
}

impl Default for OwnershipConfig {
    fn default() -> Self {
        OwnershipConfig {
            txt_label: "_sluis".into(),
            token: String::new(),
            check_interval: Duration::from_secs(3600),
            refuse_lapsed: true,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DomainClass {
    Managed,
    Partner,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DomainConfig {
    pub name: String,
    pub class: DomainClass,
    /// A token for this domain instead of ownership.token (a partner's own agreement).
    #[serde(default)]
    pub token: Option<String>,
    /// When set, the domain's NS set must be exactly these hosts, or it counts as lapsed.
    #[serde(default)]
    pub pinned_ns: Vec<String>,
    /// Trust list (posture `trusted`): SHA-256 pins of the SubjectPublicKeyInfo its MX hosts'
    /// certificates must carry ("sha256:<hex>"; `sluis check-domain` shows them).
    #[serde(default)]
    pub tls_pins: Vec<String>,
    /// Trust list: a CA (PEM) the MX hosts' certificates must chain to, for their names.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RecipientsConfig {
    /// Personal mailbox domains in addition to the shipped list (webmail, ISPs).
    pub personal_domains: Vec<String>,
    /// Domains to take off the shipped personal list.
    pub not_personal_domains: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ForwardsConfig {
    /// Refuse automated forwards (inbox rules, auto-forwarding, redirects) to any recipient
    /// that is not in a proven managed domain (550 5.7.1).
    pub refuse_to_unmanaged: bool,
}

impl Default for ForwardsConfig {
    fn default() -> Self {
        ForwardsConfig {
            refuse_to_unmanaged: true,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter: `info`, `sluis=debug`, ...; `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            hostname: default_hostname(),
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 2525))],
            allow_networks: vec![
                "127.0.0.0/8".parse().expect("literal network"),
                "::1/128".parse().expect("literal network"),
            ],
            spool_dir: PathBuf::from("/var/spool/sluis"),
            admin_listen: None,
            // Postfix's maximal_queue_lifetime: no client retries longer.
            repeat_window: Duration::from_secs(5 * 86_400),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            command_line_length: 2048,
            text_line_length: 1000,
            message_size: 50 * 1024 * 1024,
            memory_buffer: 1024 * 1024,
            recipients: 100,
            sessions: 500,
            sessions_per_client: 100,
            errors_per_session: 20,
        }
    }
}

impl Default for TimeoutsConfig {
    fn default() -> Self {
        TimeoutsConfig {
            command: Duration::from_secs(300),
            data_block: Duration::from_secs(180),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        let mut lanes = BTreeMap::new();
        lanes.insert("default".to_string(), LaneConfig::default());
        UpstreamConfig {
            default_lane: "default".to_string(),
            lanes,
            policy_map_listen: None,
        }
    }
}

impl Default for LaneConfig {
    fn default() -> Self {
        LaneConfig {
            address: "127.0.0.1:10025".to_string(),
            level: crate::terms::Level::None,
            starttls: StartTls::Opportunistic,
            ca_file: None,
            server_name: None,
            connect_timeout: Duration::from_secs(30),
            command_timeout: Duration::from_secs(300),
            data_init_timeout: Duration::from_secs(120),
            data_block_timeout: Duration::from_secs(180),
            data_done_timeout: Duration::from_secs(600),
            idle_connections: 16,
            idle_time: Duration::from_secs(5),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".to_string(),
        }
    }
}

/// The machine's host name, as the greeting's default.
fn default_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}
