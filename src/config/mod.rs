//! Configuration: the TOML schema, the embedded defaults, command-line overrides and the checks
//! of values on their own. A leaf: checks that need other modules' code (certificates,
//! credentials, lanes, policy rules, trust anchors) run in `app::check`, through the same
//! `Source::error`, so every error reads alike.
//!
//! Errors name the file, the line and the dotted key (`sluis.toml:14: limits.recipients: ...`), or
//! the flag when the value came from the command line, so an administrator can fix them without
//! guessing. `sluis config check` runs exactly this code (by `app::load_config`) and prints the
//! effective configuration.

mod locate;
mod policy;
mod portal;
mod schema;
mod web;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use toml_edit::ImDocument;

pub use policy::*;
pub use portal::{PortalConfig, SmsConfig, SmsKind};
pub use schema::*;
pub use web::{OidcConfig, WebConfig};

/// Settings given as flags; each overrides the file (or the embedded default).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub upstream: Option<String>,
    pub allow_net: Vec<IpNet>,
    pub spool: Option<PathBuf>,
    pub admin: Option<SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read the configuration: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {key}: {message}")]
    Invalid {
        path: String,
        line: usize,
        key: String,
        message: String,
    },
    #[error("{origin}: {key}: {message}")]
    Unlocated {
        origin: String,
        key: String,
        message: String,
    },
}

/// Where the configuration text came from, kept so that later checks can point at a line.
pub struct Source {
    path: String,
    text: String,
    /// (key prefix, flag) of the values the command line set.
    flags: Vec<(&'static str, &'static str)>,
}

impl Source {
    /// Whether the file sets `key` (dotted).
    pub fn sets(&self, key: &str) -> bool {
        ImDocument::parse(self.text.as_str())
            .ok()
            .is_some_and(|doc| locate::span_of(&doc, key).is_some())
    }

    /// An error about `key`: the flag that set it, or the key's line when the file sets it.
    pub fn error(&self, key: &str, message: String) -> ConfigError {
        if let Some((_, flag)) = self.flags.iter().find(|(k, _)| key.starts_with(k)) {
            return ConfigError::Unlocated {
                origin: format!("command line {flag}"),
                key: key.to_string(),
                message,
            };
        }
        if let Ok(doc) = ImDocument::parse(self.text.as_str())
            && let Some(span) = locate::span_of(&doc, key)
        {
            return ConfigError::Invalid {
                path: self.path.clone(),
                line: locate::line_of(&self.text, span.start),
                key: key.to_string(),
                message,
            };
        }
        ConfigError::Unlocated {
            origin: format!("{} (default value)", self.path),
            key: key.to_string(),
            message,
        }
    }

    /// A parse error from serde/toml, turned into file:line: key: message.
    fn parse_error(&self, err: toml::de::Error) -> ConfigError {
        let message = err.message().trim().to_string();
        let Some(span) = err.span() else {
            return ConfigError::Unlocated {
                origin: self.path.clone(),
                key: "(document)".to_string(),
                message,
            };
        };
        let key = ImDocument::parse(self.text.as_str())
            .ok()
            .and_then(|doc| locate::key_at(&doc, span.start))
            .unwrap_or_else(|| "(syntax)".to_string());
        ConfigError::Invalid {
            path: self.path.clone(),
            line: locate::line_of(&self.text, span.start),
            key,
            message,
        }
    }
}

/// Reads `path` (or the embedded default when `None`) and applies `overrides`; the source is
/// kept for errors about values found later.
pub fn read(path: Option<&Path>, overrides: &Overrides) -> Result<(Config, Source), ConfigError> {
    let mut source = match path {
        Some(p) => Source {
            path: p.display().to_string(),
            text: std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                path: p.display().to_string(),
                source,
            })?,
            flags: Vec::new(),
        },
        None => Source {
            path: "(embedded default)".to_string(),
            text: String::new(),
            flags: Vec::new(),
        },
    };
    let mut config: Config = toml::from_str(&source.text).map_err(|e| source.parse_error(e))?;
    source.flags = apply(&mut config, overrides);
    Ok((config, source))
}

/// Applies the flags; returns (key prefix, flag) pairs so that errors can name the flag.
fn apply(config: &mut Config, o: &Overrides) -> Vec<(&'static str, &'static str)> {
    let mut flags = Vec::new();
    if let Some(listen) = o.listen {
        config.server.listen = vec![listen];
        flags.push(("server.listen", "--listen"));
    }
    if let Some(upstream) = &o.upstream {
        let name = config.upstream.default_lane.clone();
        config
            .upstream
            .lanes
            .entry(name)
            .or_default()
            .address
            .clone_from(upstream);
        flags.push(("upstream.lanes", "--upstream"));
    }
    if !o.allow_net.is_empty() {
        config.server.allow_networks.clone_from(&o.allow_net);
        flags.push(("server.allow_networks", "--allow-net"));
    }
    if let Some(spool) = &o.spool {
        config.server.spool_dir.clone_from(spool);
        flags.push(("server.spool_dir", "--spool"));
    }
    if let Some(admin) = o.admin {
        config.server.admin_listen = Some(admin);
        flags.push(("server.admin_listen", "--admin"));
    }
    flags
}

/// The checks of values on their own (ranges, names, files that must be readable).
pub fn validate(c: &Config, src: &Source) -> Result<(), ConfigError> {
    let err = |key: &str, msg: String| Err(src.error(key, msg));

    if c.server.hostname.is_empty()
        || !c
            .server
            .hostname
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    {
        return err(
            "server.hostname",
            format!("{:?} is not a host name", c.server.hostname),
        );
    }
    if c.server.listen.is_empty() {
        return err("server.listen", "at least one address is needed".into());
    }
    if c.server.allow_networks.is_empty() && !c.auth.enabled {
        return err(
            "server.allow_networks",
            "empty and auth is off: no client could send mail".into(),
        );
    }
    match (&c.tls.cert_file, &c.tls.key_file) {
        (Some(_), None) => return err("tls.cert_file", "set, but tls.key_file is not".into()),
        (None, Some(_)) => return err("tls.key_file", "set, but tls.cert_file is not".into()),
        _ => {}
    }
    if c.auth.check_memory == 0 {
        return err("auth.check_memory", "must be above zero".into());
    }
    if c.auth.enabled && c.auth.credentials_file.is_none() {
        return err(
            "auth.enabled",
            "true, but auth.credentials_file is not set".into(),
        );
    }
    let l = &c.limits;
    if l.command_line_length < 512 {
        return err(
            "limits.command_line_length",
            format!(
                "{} is below the 512 bytes RFC 5321 requires",
                l.command_line_length
            ),
        );
    }
    if l.text_line_length < 1000 {
        return err(
            "limits.text_line_length",
            format!(
                "{} is below the 1000 bytes RFC 5321 requires",
                l.text_line_length
            ),
        );
    }
    for (key, value) in [
        ("limits.message_size", l.message_size),
        ("limits.memory_buffer", l.memory_buffer),
        ("limits.recipients", l.recipients),
        ("limits.sessions", l.sessions),
        ("limits.sessions_per_client", l.sessions_per_client),
        ("limits.errors_per_session", l.errors_per_session),
    ] {
        if value == 0 {
            return err(key, "must be at least 1".into());
        }
    }
    if l.sessions_per_client > l.sessions {
        return err(
            "limits.sessions_per_client",
            format!(
                "{} exceeds limits.sessions ({})",
                l.sessions_per_client, l.sessions
            ),
        );
    }
    for (key, d) in [
        ("timeouts.command", c.timeouts.command),
        ("timeouts.data_block", c.timeouts.data_block),
    ] {
        if d.is_zero() {
            return err(key, "must be longer than zero".into());
        }
    }
    if !c.upstream.lanes.contains_key(&c.upstream.default_lane) {
        return err(
            "upstream.default_lane",
            format!(
                "no lane named {:?} (lanes: {})",
                c.upstream.default_lane,
                c.upstream
                    .lanes
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    for (name, lane) in &c.upstream.lanes {
        if lane.ca_file.is_some() && lane.starttls != StartTls::Required {
            return err(
                &format!("upstream.lanes.{name}.ca_file"),
                "a CA file means nothing unless starttls = \"required\"".into(),
            );
        }
    }
    for (i, id) in c.inspect.identifiers.iter().enumerate() {
        if let Err(e) = regex::bytes::Regex::new(&id.pattern) {
            return err(
                &format!("inspect.identifiers[{i}].pattern"),
                format!("identifier {:?}: {e}", id.name),
            );
        }
        if id.name.is_empty()
            || !id
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return err(
                &format!("inspect.identifiers[{i}].name"),
                format!(
                    "{:?}: use letters, digits, '-' and '_' (it becomes a metric label)",
                    id.name
                ),
            );
        }
    }
    if let Some(f) = &c.inspect.hash_key_file {
        match std::fs::read(f) {
            Ok(k) if k.len() >= 16 => {}
            Ok(_) => {
                return err(
                    "inspect.hash_key_file",
                    format!("{}: shorter than 16 bytes", f.display()),
                );
            }
            Err(e) => return err("inspect.hash_key_file", format!("{}: {e}", f.display())),
        }
    }
    if c.inspect.max_depth > 32 {
        return err(
            "inspect.max_depth",
            format!(
                "{} is above 32: the parser opens at most 64 nested levels, deeper ones are \
                 uninspectable anyway",
                c.inspect.max_depth
            ),
        );
    }
    if c.inspect.max_depth == 0
        || c.inspect.max_parts == 0
        || c.inspect.max_findings == 0
        || c.inspect.max_time.is_zero()
    {
        return err(
            "inspect",
            "max_depth, max_parts, max_findings and max_time must be above zero".into(),
        );
    }
    for (i, d) in c.domains.iter().enumerate() {
        let valid = !d.name.is_empty()
            && d.name.split('.').count() >= 2
            && d.name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        if !valid {
            return err(
                &format!("domains[{i}].name"),
                format!("{:?} is not a domain name", d.name),
            );
        }
        if d.token.is_none() && c.ownership.token.is_empty() {
            return err(
                &format!("domains[{i}].name"),
                format!(
                    "{}: no ownership token (set ownership.token or domains.token)",
                    d.name
                ),
            );
        }
        if c.domains[..i]
            .iter()
            .any(|o| o.name.eq_ignore_ascii_case(&d.name))
        {
            return err(
                &format!("domains[{i}].name"),
                format!("{} is listed twice", d.name),
            );
        }
    }
    if c.ownership.check_interval.is_zero() {
        return err(
            "ownership.check_interval",
            "must be longer than zero".into(),
        );
    }
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&c.log.level) {
        return err("log.level", format!("not a log filter: {e}"));
    }
    for (i, r) in c.policy.rules.iter().enumerate() {
        if let Some(lane) = &r.lane
            && !c.upstream.lanes.contains_key(lane)
        {
            return err(
                &format!("policy.rules[{i}].lane"),
                format!("no lane named {lane:?} in upstream.lanes"),
            );
        }
    }
    for (i, tag) in c.policy.confidential_tags.iter().enumerate() {
        if tag.trim().is_empty() {
            return err(
                &format!("policy.confidential_tags[{i}]"),
                "an empty tag would match every subject".into(),
            );
        }
    }
    if c.quarantine.max_bytes == 0 {
        return err("quarantine.max_bytes", "must be above zero".into());
    }
    if c.audit.rotate_bytes < 4096 {
        return err("audit.rotate_bytes", "must be at least 4096".into());
    }
    validate_store(c, src)?;
    portal::validate(c, src)?;
    web::validate(c, src)?;
    if let Some(f) = &c.review.token_file {
        match std::fs::read_to_string(f) {
            Ok(t) if t.trim().len() >= 16 => {}
            Ok(_) => {
                return err(
                    "review.token_file",
                    format!("{}: the token must be at least 16 characters", f.display()),
                );
            }
            Err(e) => return err("review.token_file", format!("{}: {e}", f.display())),
        }
    }
    Ok(())
}

/// The store's settings: a PostgreSQL store needs a URL without a password in it.
fn validate_store(c: &Config, src: &Source) -> Result<(), ConfigError> {
    let err = |key: &str, msg: String| Err(src.error(key, msg));
    let s = &c.store;
    if s.pool_size == 0 {
        return err("store.pool_size", "must be at least 1".into());
    }
    if s.timeout.is_zero() {
        return err("store.timeout", "must be above zero".into());
    }
    if let Some(i) = &s.instance
        && (i.is_empty() || i.len() > 128 || i.chars().any(|c| c.is_control()))
    {
        return err("store.instance", format!("{i:?} is not an instance name"));
    }
    if s.kind != policy::StoreKind::Postgres {
        // The database settings mean nothing to the files store: set, they would be ignored.
        for (key, set) in [
            ("store.url", s.url.is_some()),
            ("store.password_file", s.password_file.is_some()),
            ("store.ca_file", s.ca_file.is_some()),
        ] {
            if set {
                return err(
                    key,
                    "set, but store.kind is \"files\": it is used only with kind = \"postgres\""
                        .into(),
                );
            }
        }
        return Ok(());
    }
    let Some(url) = &s.url else {
        return err(
            "store.kind",
            "\"postgres\" needs store.url (postgresql://user@host:port/database)".into(),
        );
    };
    let parsed = match url.parse::<tokio_postgres::Config>() {
        Ok(p) => p,
        // The parser's message may quote the URL, password and all: say only what is wrong.
        Err(_) => {
            return err(
                "store.url",
                "not a PostgreSQL URL (postgresql://user@host:port/database)".into(),
            );
        }
    };
    if parsed.get_password().is_some() {
        return err(
            "store.url",
            "holds a password: put it in store.password_file or the SLUIS_STORE_PASSWORD \
             variable, never in the configuration"
                .into(),
        );
    }
    if parsed.get_user().is_none() {
        return err(
            "store.url",
            "names no user (postgresql://USER@host/...)".into(),
        );
    }
    if let Some(f) = &s.password_file
        && let Err(e) = std::fs::read(f)
    {
        return err("store.password_file", format!("{}: {e}", f.display()));
    }
    if let Some(f) = &s.ca_file
        && let Err(e) = std::fs::read(f)
    {
        return err("store.ca_file", format!("{}: {e}", f.display()));
    }
    Ok(())
}

impl Config {
    /// Where quarantined mail is kept.
    pub fn quarantine_dir(&self) -> PathBuf {
        self.quarantine
            .dir
            .clone()
            .unwrap_or_else(|| self.server.spool_dir.join("quarantine"))
    }

    /// The key of the senders' links (`[web]`).
    pub fn web_secret_file(&self) -> Option<PathBuf> {
        let w = self.web.as_ref()?;
        Some(
            w.secret_file
                .clone()
                .unwrap_or_else(|| self.server.spool_dir.join("web.secret")),
        )
    }

    /// The portal's server secret.
    pub fn portal_secret_file(&self) -> Option<PathBuf> {
        let p = self.portal.as_ref()?;
        Some(
            p.secret_file
                .clone()
                .unwrap_or_else(|| self.server.spool_dir.join("portal.secret")),
        )
    }

    /// The current audit log file.
    pub fn audit_file(&self) -> PathBuf {
        self.audit
            .file
            .clone()
            .unwrap_or_else(|| self.server.spool_dir.join("audit/audit.jsonl"))
    }
}

/// The effective configuration as TOML, as `sluis config check` prints it.
pub fn render(config: &Config) -> String {
    toml::to_string_pretty(config).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
}
