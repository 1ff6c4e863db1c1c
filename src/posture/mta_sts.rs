//! MTA-STS (RFC 8461): a domain announces in DNS (`_mta-sts` TXT, with a policy id) that its
//! policy is at `https://mta-sts.<domain>/.well-known/mta-sts.txt`; in `enforce` mode, mail may
//! only go to MX hosts matching the policy's patterns, over TLS with a WebPKI-valid certificate.
//!
//! The fetch validates the server's certificate (Mozilla's roots plus `posture.ca_file`),
//! follows no redirect (RFC 8461 3.3), reads at most 64 KiB and gives up after a time bound.
//! Policies are cached on disk by domain for their `max_age`, so they survive restarts; a
//! changed id in DNS triggers a refetch, and a refetch that fails keeps the cached policy
//! (RFC 8461 5.1): an attacker who blocks the fetch cannot turn enforcement off.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::ServerName;
use serde::{Deserialize, Serialize};
use tokio_rustls::TlsConnector;

use super::dns::{Outcome, Resolve};

/// The largest policy read (RFC 8461 3.2 suggests 64 KiB).
const MAX_POLICY: usize = 64 * 1024;
/// RFC 8461 3.2: max_age is at most 31557600 s (a year).
const MAX_AGE_LIMIT: u64 = 31_557_600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Enforce,
    Testing,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub mode: Mode,
    pub mx: Vec<String>,
    pub max_age: u64,
}

/// Parses a policy (RFC 8461 3.2): `key: value` lines, CRLF or LF.
pub fn parse(text: &str) -> Result<Policy, String> {
    let mut version = None;
    let mut mode = None;
    let mut mx = Vec::new();
    let mut max_age = None;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            return Err(format!("line {line:?} is not `key: value`"));
        };
        let value = value.trim();
        match key.trim() {
            "version" => version = Some(value.to_string()),
            "mode" => {
                mode = Some(match value {
                    "enforce" => Mode::Enforce,
                    "testing" => Mode::Testing,
                    "none" => Mode::None,
                    other => return Err(format!("unknown mode {other:?}")),
                })
            }
            "mx" => mx.push(value.trim_end_matches('.').to_ascii_lowercase()),
            "max_age" => {
                let n: u64 = value
                    .parse()
                    .map_err(|_| format!("max_age {value:?} is not a number"))?;
                max_age = Some(n.min(MAX_AGE_LIMIT));
            }
            // Unknown keys are ignored (RFC 8461 3.2, extensibility).
            _ => {}
        }
    }
    if version.as_deref() != Some("STSv1") {
        return Err(format!("version is {version:?}, not STSv1"));
    }
    let mode = mode.ok_or("no mode")?;
    let max_age = max_age.ok_or("no max_age")?;
    if mode != Mode::None && mx.is_empty() {
        return Err("no mx patterns".into());
    }
    Ok(Policy { mode, mx, max_age })
}

/// Whether `host` matches `pattern`: exactly, or `*.example.org` matching one label in front.
pub fn matches(pattern: &str, host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
        None => host == pattern,
    }
}

impl Policy {
    pub fn allows(&self, host: &str) -> bool {
        self.mx.iter().any(|p| matches(p, host))
    }
}

/// Fetches the policy of `domain` over HTTPS (port `port`, 443 but in test setups), the
/// policy host's address looked up through Sluis's own resolver.
pub async fn fetch(
    dns: &impl Resolve,
    domain: &str,
    roots: Arc<RootCertStore>,
    port: u16,
    limit: Duration,
) -> Result<String, String> {
    tokio::time::timeout(limit, fetch_inner(dns, domain, roots, port))
        .await
        .map_err(|_| format!("no policy within {limit:?}"))?
}

async fn fetch_inner(
    dns: &impl Resolve,
    domain: &str,
    roots: Arc<RootCertStore>,
    port: u16,
) -> Result<String, String> {
    let host = format!("mta-sts.{domain}");
    let ips = match dns.ips(&host).await {
        Outcome::Found { records, .. } => records,
        Outcome::NotFound { .. } => return Err(format!("{host} has no address")),
        Outcome::Bogus => return Err(format!("the address of {host} is bogus")),
        Outcome::Failed(e) => return Err(format!("address lookup of {host} failed: {e}")),
    };
    let config = ClientConfig::builder_with_provider(crate::wire::stream::crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name =
        ServerName::try_from(host.clone()).map_err(|_| format!("{host:?} is not a host name"))?;
    let addrs: Vec<std::net::SocketAddr> = ips
        .iter()
        .map(|ip| std::net::SocketAddr::new(*ip, port))
        .collect();
    let tcp = tokio::net::TcpStream::connect(addrs.as_slice())
        .await
        .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
    let tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS with {host} failed (WebPKI): {e}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .map_err(|e| format!("HTTP with {host}: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let request = hyper::Request::get("/.well-known/mta-sts.txt")
        .header(hyper::header::HOST, host.as_str())
        .header(
            hyper::header::USER_AGENT,
            concat!("sluis/", env!("CARGO_PKG_VERSION")),
        )
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("HTTP with {host}: {e}"))?;
    let status = response.status();
    if status.is_redirection() {
        return Err(format!(
            "{host} answered {status}: redirects are not followed (RFC 8461 3.3)"
        ));
    }
    if status != hyper::StatusCode::OK {
        return Err(format!("{host} answered {status}"));
    }
    let body = Limited::new(response.into_body(), MAX_POLICY)
        .collect()
        .await
        .map_err(|e| format!("policy body from {host}: {e} (at most {MAX_POLICY} bytes)"))?
        .to_bytes();
    String::from_utf8(body.to_vec()).map_err(|_| format!("the policy from {host} is not UTF-8"))
}

/// A policy as cached: with the id it was fetched under and when it expires.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Cached {
    pub id: String,
    pub policy: Policy,
    pub fetched_at: u64,
    pub expires_at: u64,
}

/// Policies on disk, one JSON file per domain; without a directory, nothing survives the
/// process (sluis check-domain with no writable spool).
pub struct Cache {
    dir: Option<PathBuf>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

impl Cache {
    pub fn new(dir: Option<&Path>) -> Cache {
        let dir = dir.and_then(|d| {
            std::fs::create_dir_all(d)
                .map(|_| d.to_path_buf())
                .map_err(|e| tracing::warn!(dir = %d.display(), error = %e, "MTA-STS policies will not be cached on disk"))
                .ok()
        });
        Cache { dir }
    }

    fn path(&self, domain: &str) -> Option<PathBuf> {
        let safe = domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        self.dir
            .as_ref()
            .filter(|_| safe && !domain.starts_with('.'))
            .map(|d| d.join(format!("{domain}.json")))
    }

    /// The cached policy, unless it has expired.
    pub fn get(&self, domain: &str) -> Option<Cached> {
        let data = std::fs::read(self.path(domain)?).ok()?;
        let c: Cached = serde_json::from_slice(&data).ok()?;
        (c.expires_at > now()).then_some(c)
    }

    pub fn put(&self, domain: &str, c: &Cached) {
        let Some(path) = self.path(domain) else {
            return;
        };
        let tmp = path.with_extension("json.tmp");
        let json = serde_json::to_vec(c).unwrap_or_default();
        if let Err(e) = std::fs::write(&tmp, json).and_then(|_| std::fs::rename(&tmp, &path)) {
            tracing::warn!(%domain, error = %e, "cannot cache the MTA-STS policy");
        }
    }
}

/// Where the policy in force came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Fetched,
    /// From the cache: the id is unchanged, or a refetch failed (why).
    Cached(Option<String>),
}

/// The policy in force for `domain`, given the id its TXT record announces (`None`: no
/// record). Returns the policy and where it came from, or why there is none.
pub async fn policy_for(
    dns: &impl Resolve,
    domain: &str,
    announced_id: Option<&str>,
    cache: &Cache,
    roots: Arc<RootCertStore>,
    port: u16,
) -> Result<(Policy, Source), String> {
    let cached = cache.get(domain);
    let Some(id) = announced_id else {
        // No record (or it could not be read): a cached policy stays in force until it
        // expires (RFC 8461 5.1).
        return match cached {
            Some(c) => Ok((
                c.policy,
                Source::Cached(Some("no _mta-sts record now".into())),
            )),
            None => Err("no MTA-STS".into()),
        };
    };
    if let Some(c) = &cached
        && c.id == id
    {
        return Ok((c.policy.clone(), Source::Cached(None)));
    }
    let fetched = fetch(dns, domain, roots, port, Duration::from_secs(30))
        .await
        .and_then(|text| parse(&text).map_err(|e| format!("invalid policy: {e}")));
    match (fetched, cached) {
        (Ok(policy), _) => {
            let at = now();
            cache.put(
                domain,
                &Cached {
                    id: id.to_string(),
                    policy: policy.clone(),
                    fetched_at: at,
                    expires_at: at + policy.max_age,
                },
            );
            Ok((policy, Source::Fetched))
        }
        (Err(e), Some(c)) => Ok((c.policy, Source::Cached(Some(e)))),
        (Err(e), None) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_policies_and_refuses_broken_ones() {
        let p = parse("version: STSv1\r\nmode: enforce\r\nmx: mx1.example.org\r\nmx: *.example.net\r\nmax_age: 86400\r\n").unwrap();
        assert_eq!(p.mode, Mode::Enforce);
        assert_eq!(p.mx, ["mx1.example.org", "*.example.net"]);
        assert_eq!(p.max_age, 86400);
        assert_eq!(
            parse("version: STSv1\nmode: testing\nmx: a.b\nmax_age: 99999999999\n")
                .unwrap()
                .max_age,
            MAX_AGE_LIMIT
        );
        assert!(parse("version: STSv2\nmode: enforce\nmx: a\nmax_age: 1\n").is_err());
        assert!(parse("version: STSv1\nmode: enforce\nmax_age: 1\n").is_err());
        assert!(parse("version: STSv1\nmode: strict\nmx: a\nmax_age: 1\n").is_err());
        assert!(parse("<html>not found</html>").is_err());
    }

    #[test]
    fn wildcards_match_exactly_one_label() {
        assert!(matches("*.example.net", "mx1.example.net"));
        assert!(matches("*.example.net", "MX1.Example.NET."));
        assert!(!matches("*.example.net", "a.b.example.net"));
        assert!(!matches("*.example.net", "example.net"));
        assert!(matches("mx.example.org", "mx.example.org"));
        assert!(!matches("mx.example.org", "mx2.example.org"));
    }

    #[test]
    fn the_cache_survives_and_expires() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(Some(dir.path()));
        let policy = parse("version: STSv1\nmode: enforce\nmx: mx.a.test\nmax_age: 60\n").unwrap();
        let c = Cached {
            id: "1".into(),
            policy,
            fetched_at: now(),
            expires_at: now() + 60,
        };
        cache.put("a.test", &c);
        assert_eq!(Cache::new(Some(dir.path())).get("a.test"), Some(c.clone()));
        cache.put(
            "b.test",
            &Cached {
                expires_at: now() - 1,
                ..c
            },
        );
        assert_eq!(cache.get("b.test"), None);
        assert_eq!(cache.get("../etc/passwd"), None);
    }
}
