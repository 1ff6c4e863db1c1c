//! What the web sides (the pickup portal, the reviewers' and senders' pages) share: the HTTPS
//! listener, the hardening every response gets (a strict Content-Security-Policy: nothing but
//! the origin's own stylesheet, no script; HSTS, no referrer, no framing, no caching), cookies
//! (`__Host-`, Secure, HttpOnly, SameSite=Strict) and the double-submit CSRF token.

pub mod tls;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use tokio_util::sync::CancellationToken;

pub use tls::acceptor;

const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// The headers every answer carries (a middleware: `axum::middleware::from_fn(harden)`).
pub async fn harden(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
        ),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=()"),
    );
    response
}

/// A cookie's value from the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: host-only, secure, not for scripts, never sent cross-site.
pub fn set_cookie(name: &str, value: &str, max_age: Option<u64>) -> String {
    let age = max_age
        .map(|a| format!("; Max-Age={a}"))
        .unwrap_or_default();
    format!("{name}={value}; Path=/; Secure; HttpOnly; SameSite=Strict{age}")
}

/// A fresh random token: 256 bits, base64url without padding (43 characters).
pub fn new_token() -> Option<String> {
    let mut b = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).ok()?;
    Some(data_encoding::BASE64URL_NOPAD.encode(&b))
}

/// Whether a form's CSRF token is the one in the `name` cookie (compared as digests: constant
/// time).
pub fn csrf_ok(headers: &HeaderMap, name: &str, given: &str) -> bool {
    cookie(headers, name).is_some_and(|c| c.len() == 43 && same_secret(given, c))
}

/// Whether two secrets are equal, compared as SHA-256 digests: the comparison's timing says
/// nothing about where they differ.
pub fn same_secret(given: &str, expected: &str) -> bool {
    let digest = |s: &str| ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    digest(given).as_ref() == digest(expected).as_ref()
}

/// The pages' language: Dutch (the default) or English; every page offers the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Nl,
    En,
}

impl Lang {
    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "nl" => Some(Lang::Nl),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        self.pick("nl", "en")
    }

    pub fn other(self) -> Lang {
        self.pick(Lang::En, Lang::Nl)
    }

    /// `nl` or `en`, as the language is.
    pub fn pick<T>(self, nl: T, en: T) -> T {
        match self {
            Lang::Nl => nl,
            Lang::En => en,
        }
    }
}

/// For each web side's test of its words: how many `.t("…")` calls `src` makes, and the keys
/// among them `t` has no text for in either language.
#[cfg(test)]
pub fn missing_words(src: &str, t: fn(Lang, &str) -> &'static str) -> (usize, Vec<String>) {
    let mut n = 0;
    let mut missing = Vec::new();
    for part in src.split(".t(\"").skip(1) {
        let key = &part[..part.find('"').unwrap_or(0)];
        n += 1;
        for lang in [Lang::Nl, Lang::En] {
            if t(lang, key) == "?" {
                missing.push(format!("{key} ({})", lang.code()));
            }
        }
    }
    (n, missing)
}

pub fn esc(s: &str) -> String {
    html_escape::encode_text(s).into_owned()
}

pub fn attr(s: &str) -> String {
    html_escape::encode_double_quoted_attribute(s).into_owned()
}

/// Serves `app` over TLS on `listener` until `shutdown`; `side` names it in the log.
pub async fn serve(
    side: &'static str,
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    app: Router,
    shutdown: CancellationToken,
) {
    let tls = tls::TlsListener::new(listener, acceptor, shutdown.clone());
    if let Err(e) = axum::serve(tls, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
    {
        tracing::error!(error = %e, side, "a web listener stopped");
    }
}
