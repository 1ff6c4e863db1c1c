//! An HTTPS server for MTA-STS policies: nginx on 127.0.4.1:443, started by the suite, serving
//! `<www>/<host>/...` for whatever host name the client asks (SNI and Host), with one
//! certificate for every `mta-sts.<domain>` name used, issued by a test CA. Tests write the
//! policy files; `redirect.txt` in a host's directory makes nginx answer 301 instead.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::{Pki, after_exit, pki_for, require, wait_for};

pub const WEB_IP: &str = "127.0.4.1";

pub struct Web {
    pub dir: PathBuf,
    /// The CA behind the web server's certificate (and the MX hosts' certificates the
    /// MTA-STS tests use): give it as `--ca-file`.
    pub pki: Pki,
}

/// The host names the certificate covers: the MTA-STS test domains' policy hosts and MXes.
pub const NAMES: &[&str] = &[
    "mta-sts.stsok.test",
    "mx.stsok.test",
    "mta-sts.stsredir.test",
    "mx.stsredir.test",
];

pub fn web() -> &'static Web {
    static WEB: OnceLock<Web> = OnceLock::new();
    WEB.get_or_init(|| {
        let nginx = require("nginx");
        let _ = Command::new("pkill").args(["-f", "sluis-e2e-web-"]).status();
        std::thread::sleep(std::time::Duration::from_millis(200));
        let dir = std::env::temp_dir().join(format!("sluis-e2e-web-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["www", "logs", "tmp", "pki"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let pki = pki_for(&dir.join("pki"), NAMES);
        let d = dir.display();
        let conf = dir.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "daemon on;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/logs/error.log;\n\
                 events {{ worker_connections 64; }}\n\
                 http {{\n  access_log {d}/logs/access.log;\n  client_body_temp_path {d}/tmp;\n  \
                 proxy_temp_path {d}/tmp;\n  fastcgi_temp_path {d}/tmp;\n  uwsgi_temp_path {d}/tmp;\n  \
                 scgi_temp_path {d}/tmp;\n  default_type text/plain;\n  \
                 server {{\n    listen {WEB_IP}:443 ssl;\n    server_name _;\n    \
                 ssl_certificate {cert};\n    ssl_certificate_key {key};\n    \
                 root {d}/www/$host;\n    \
                 location / {{\n      if (-f {d}/www/$host/redirect.txt) {{ return 301 https://example.invalid/; }}\n    }}\n  }}\n}}\n",
                cert = pki.cert.display(),
                key = pki.key.display(),
            ),
        )
        .unwrap();
        let out = Command::new(nginx)
            .arg("-c")
            .arg(&conf)
            .args(["-e", &format!("{d}/logs/error.log")])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "nginx: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let up = wait_for(std::time::Duration::from_secs(10), || {
            std::net::TcpStream::connect((WEB_IP, 443)).ok()
        });
        assert!(up.is_some(), "nginx did not listen");
        after_exit(&format!(
            "kill $(cat {d}/nginx.pid) 2>/dev/null; sleep 1; rm -rf {d}"
        ));
        Web { dir, pki }
    })
}

impl Web {
    /// Serves `policy` as `https://mta-sts.<domain>/.well-known/mta-sts.txt` (or, with
    /// `None`, nothing: 404).
    pub fn set_policy(&self, domain: &str, policy: Option<&str>) {
        let dir = self.host_dir(domain).join(".well-known");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("mta-sts.txt");
        match policy {
            Some(p) => std::fs::write(file, p).unwrap(),
            None => {
                let _ = std::fs::remove_file(file);
            }
        }
    }

    /// Makes `mta-sts.<domain>` answer every request with a redirect.
    pub fn redirect(&self, domain: &str) {
        let dir = self.host_dir(domain);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("redirect.txt"), "yes").unwrap();
    }

    fn host_dir(&self, domain: &str) -> PathBuf {
        self.dir.join("www").join(format!("mta-sts.{domain}"))
    }

    pub fn ca(&self) -> &Path {
        &self.pki.ca
    }
}

/// A plain HTTP GET on 127.0.0.1:`port`; (status line, body).
pub fn http_get(port: u16, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

/// One HTTP/1.1 request with an optional bearer token and JSON body; the whole response text.
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}
