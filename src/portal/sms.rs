//! Sending SMS codes (issue 17 point 4): an HTTP provider (a JSON POST of `{"to", "text"}` with
//! a bearer token, the shape of the Dutch providers' APIs), or a file outbox that appends one
//! JSON line per SMS (development and tests). A failed send is retried (`portal.sms.tries`),
//! counted, and reported to the caller, which tells the recipient to try again later.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use tokio::io::AsyncWriteExt;

use crate::config::{SmsConfig, SmsKind};

#[derive(Debug, thiserror::Error)]
pub enum SmsError {
    #[error("the SMS outbox {path}: {source}")]
    Outbox {
        path: String,
        source: std::io::Error,
    },
    #[error("the SMS provider: {0}")]
    Provider(String),
    #[error("SMS settings: {0}")]
    Config(String),
}

/// Each try must finish within this.
const TRY_TIME: Duration = Duration::from_secs(10);

pub enum Sms {
    File(PathBuf),
    Http {
        url: hyper::Uri,
        token: String,
        roots: Arc<RootCertStore>,
        tries: u32,
    },
}

#[derive(serde::Serialize)]
struct Message<'a> {
    to: &'a str,
    text: &'a str,
}

impl Sms {
    pub fn from_config(c: &SmsConfig) -> Result<Sms, SmsError> {
        match c.kind {
            SmsKind::File => {
                Ok(Sms::File(c.path.clone().ok_or_else(|| {
                    SmsError::Config("kind = \"file\" needs path".into())
                })?))
            }
            SmsKind::Http => {
                let url = c
                    .url
                    .as_deref()
                    .ok_or_else(|| SmsError::Config("kind = \"http\" needs url".into()))?
                    .parse::<hyper::Uri>()
                    .map_err(|e| SmsError::Config(format!("url: {e}")))?;
                let token = match &c.token_file {
                    Some(f) => std::fs::read_to_string(f)
                        .map_err(|e| SmsError::Config(format!("{}: {e}", f.display())))?
                        .trim()
                        .to_string(),
                    None => {
                        return Err(SmsError::Config("kind = \"http\" needs token_file".into()));
                    }
                };
                let mut roots = RootCertStore::empty();
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                if let Some(f) = &c.ca_file {
                    let extra = crate::wire::tls::load_roots(f)
                        .map_err(|e| SmsError::Config(e.to_string()))?;
                    for cert in extra.roots {
                        roots.roots.push(cert);
                    }
                }
                Ok(Sms::Http {
                    url,
                    token,
                    roots: Arc::new(roots),
                    tries: c.tries.max(1),
                })
            }
        }
    }

    /// Sends `text` to `to` (E.164). Never logs either: both are the recipient's.
    pub async fn send(&self, to: &str, text: &str) -> Result<(), SmsError> {
        let line = serde_json::to_vec(&Message { to, text }).unwrap_or_default();
        let result = match self {
            Sms::File(path) => append(path, &line).await,
            Sms::Http {
                url,
                token,
                roots,
                tries,
            } => {
                let mut last = SmsError::Provider("not tried".into());
                let mut ok = false;
                for n in 0..*tries {
                    if n > 0 {
                        tokio::time::sleep(Duration::from_millis(500 << n.min(4))).await;
                    }
                    match tokio::time::timeout(TRY_TIME, post(url, token, roots, &line)).await {
                        Ok(Ok(())) => {
                            ok = true;
                            break;
                        }
                        Ok(Err(e)) => last = e,
                        Err(_) => {
                            last = SmsError::Provider(format!(
                                "no answer within {}s",
                                TRY_TIME.as_secs()
                            ))
                        }
                    }
                }
                if ok { Ok(()) } else { Err(last) }
            }
        };
        crate::metrics::portal_sms(result.is_ok());
        result
    }
}

async fn append(path: &PathBuf, line: &[u8]) -> Result<(), SmsError> {
    let err = |source| SmsError::Outbox {
        path: path.display().to_string(),
        source,
    };
    let mut f = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .await
        .map_err(err)?;
    let mut data = line.to_vec();
    data.push(b'\n');
    f.write_all(&data).await.map_err(err)?;
    f.sync_data().await.map_err(err)
}

async fn post(
    url: &hyper::Uri,
    token: &str,
    roots: &Arc<RootCertStore>,
    body: &[u8],
) -> Result<(), SmsError> {
    let p = |e: String| SmsError::Provider(e);
    let request = http::Request::post(url.clone())
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body.to_vec())
        .map_err(|e| p(e.to_string()))?;
    let client = crate::wire::http::HttpClient {
        roots: roots.clone(),
        timeout: TRY_TIME,
        // The answer is read only so the connection ends cleanly; its text is the
        // provider's and may echo the number, so it is not reported.
        limit: 64 * 1024,
    };
    let status = client
        .send(request)
        .await
        .map_err(|e| p(e.to_string()))?
        .status();
    if status.is_success() {
        Ok(())
    } else {
        Err(p(format!("answered {status}")))
    }
}
