//! The pickup portal seen from outside: an HTTPS client with a cookie jar (as a browser keeps
//! one), speaking to the portal's own listener, and the links its mails carry.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use super::*;

/// One HTTP response.
#[derive(Debug, Clone)]
pub struct Page {
    pub status: u16,
    /// Header names in lowercase; repeated headers joined by "\n".
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Page {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }

    /// The value of the hidden CSRF field of the page's first form.
    pub fn csrf(&self) -> String {
        let text = self.text();
        let at = text
            .find("name=\"csrf\" value=\"")
            .expect("a form with a CSRF token");
        let rest = &text[at + 19..];
        rest[..rest.find('"').unwrap()].to_string()
    }
}

/// A browser-like client: one host name, the test CA, the cookies it was given.
pub struct Browser {
    pub addr: SocketAddr,
    pub host: String,
    config: Arc<rustls::ClientConfig>,
    pub cookies: BTreeMap<String, String>,
}

impl Browser {
    pub fn new(addr: SocketAddr, host: &str, ca: &Path) -> Browser {
        let mut roots = rustls::RootCertStore::empty();
        use rustls_pki_types::pem::PemObject;
        for cert in rustls_pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        Browser {
            addr,
            host: host.to_string(),
            config: Arc::new(config),
            cookies: BTreeMap::new(),
        }
    }

    /// Another browser (no cookies) on the same portal.
    pub fn fresh(&self) -> Browser {
        Browser {
            addr: self.addr,
            host: self.host.clone(),
            config: self.config.clone(),
            cookies: BTreeMap::new(),
        }
    }

    pub fn get(&mut self, path: &str) -> Page {
        self.request("GET", path, "", &[])
    }

    /// A form POST (application/x-www-form-urlencoded).
    pub fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
            .collect();
        self.request(
            "POST",
            path,
            &body.join("&"),
            &[("Content-Type", "application/x-www-form-urlencoded")],
        )
    }

    /// A multipart form POST: text fields, then files (field name, file name, bytes).
    pub fn post_multipart(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
        files: &[(&str, &str, &[u8])],
    ) -> Page {
        let boundary = "sluis-test-boundary-7f3a";
        let mut body = Vec::new();
        for (k, v) in fields {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
                )
                .as_bytes(),
            );
        }
        for (k, name, bytes) in files {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"; filename=\"{name}\"\r\n\
                     Content-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            );
            body.extend_from_slice(bytes);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        let ct = format!("multipart/form-data; boundary={boundary}");
        self.request_bytes("POST", path, &body, &[("Content-Type", &ct)])
    }

    /// Follows one 303 (as a browser does after a form POST).
    pub fn follow(&mut self, page: &Page) -> Page {
        assert_eq!(page.status, 303, "{page:?}");
        let to = page.header("location").to_string();
        self.get(&to)
    }

    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        body: &str,
        extra: &[(&str, &str)],
    ) -> Page {
        self.request_bytes(method, path, body.as_bytes(), extra)
    }

    pub fn request_bytes(
        &mut self,
        method: &str,
        path: &str,
        body: &[u8],
        extra: &[(&str, &str)],
    ) -> Page {
        let name = rustls_pki_types::ServerName::try_from(self.host.clone()).unwrap();
        let conn = rustls::ClientConnection::new(self.config.clone(), name).unwrap();
        let tcp = TcpStream::connect(self.addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let cookie = if self.cookies.is_empty() {
            String::new()
        } else {
            let c: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            format!("Cookie: {}\r\n", c.join("; "))
        };
        let headers: String = extra.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
        write!(
            tls,
            "{method} {path} HTTP/1.1\r\nHost: {}:{}\r\nConnection: close\r\n{cookie}{headers}\
             Content-Length: {}\r\n\r\n",
            self.host,
            self.addr.port(),
            body.len()
        )
        .unwrap();
        tls.write_all(body).unwrap();
        let mut raw = Vec::new();
        let _ = tls.read_to_end(&mut raw);
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("an HTTP response");
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut headers: BTreeMap<String, String> = BTreeMap::new();
        for l in lines {
            if let Some((k, v)) = l.split_once(':') {
                let k = k.trim().to_ascii_lowercase();
                let v = v.trim().to_string();
                if k == "set-cookie" {
                    self.take_cookie(&v);
                }
                headers
                    .entry(k)
                    .and_modify(|e| {
                        e.push('\n');
                        e.push_str(&v);
                    })
                    .or_insert(v);
            }
        }
        let mut body = raw[split + 4..].to_vec();
        if headers
            .get("transfer-encoding")
            .is_some_and(|t| t.contains("chunked"))
        {
            body = dechunk(&body);
        }
        Page {
            status,
            headers,
            body,
        }
    }

    fn take_cookie(&mut self, set: &str) {
        let first = set.split(';').next().unwrap_or("");
        if let Some((k, v)) = first.split_once('=') {
            if v.is_empty() || set.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), v.to_string());
            }
        }
    }
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(
            std::str::from_utf8(&data[..eol])
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .trim(),
            16,
        )
        .unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[eol + 4 + size..];
    }
}

/// The portal paths of the links in a mail: `/r/<id>/<secret>` or `/c/<id>/<secret>`.
pub fn links_in(mail: &str, kind: char) -> Vec<String> {
    let marker = format!("/{kind}/");
    mail.split_whitespace()
        .filter_map(|w| w.find(&marker).map(|at| w[at..].to_string()))
        .collect()
}

/// The SMS lines of a file outbox: (to, text).
pub fn sms_outbox(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["to"].as_str().unwrap().to_string(),
                v["text"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The code in an SMS text ("... uw code is 123456 ...").
pub fn code_in(text: &str) -> String {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|w| (6..=8).contains(&w.len()))
        .expect("a code in the SMS")
        .to_string()
}

/// Runs `script` (under tests/browser/) with node and Debian's Chromium, with `env`; the JSON
/// object it printed last.
pub fn run_browser_script(script: &str, env: &[(&str, &str)]) -> serde_json::Value {
    require("chromium");
    let node = require("node");
    let out = Command::new(node)
        .arg(format!("tests/browser/{script}"))
        .envs(env.iter().copied())
        .output()
        .expect("node");
    assert!(
        out.status.success(),
        "{script}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("{e}: {text}"))
}
