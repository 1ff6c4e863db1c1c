//! TLS on both sides of Sluis: the configured certificate towards clients, and STARTTLS towards
//! the upstream (opportunistic, required, verified). The upstream here is a second Sluis, a
//! real STARTTLS server, relaying on to smtp-sink so the dump shows how each hop was made.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn starttls_offers_the_configured_certificate() {
    let dir = scratch("pki");
    let p = pki(dir.path(), "gw.sluis.test");
    let sink = Sink::start(&[]);
    let sluis = Sluis::start(sink.port, &tls_section(&p));

    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", sluis.port))
        .await
        .unwrap();
    let mut plain = BufReader::new(tcp);
    let mut line = String::new();
    plain.read_line(&mut line).await.unwrap();
    plain.get_mut().write_all(b"EHLO c.test\r\n").await.unwrap();
    loop {
        line.clear();
        plain.read_line(&mut line).await.unwrap();
        if line.starts_with("250 ") {
            break;
        }
    }
    plain.get_mut().write_all(b"STARTTLS\r\n").await.unwrap();
    line.clear();
    plain.read_line(&mut line).await.unwrap();
    assert!(line.starts_with("220"));
    // A verifying client that trusts only the test CA: the handshake succeeds only if Sluis
    // presents the configured leaf, valid for the name.
    let roots = sluis::wire::tls::load_roots(&p.ca).unwrap();
    let config =
        rustls::ClientConfig::builder_with_provider(sluis::wire::stream::crypto_provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = rustls_pki_types::ServerName::try_from("gw.sluis.test").unwrap();
    let mut tls = connector
        .connect(name, plain.into_inner())
        .await
        .expect("verified handshake with the configured certificate");
    tls.write_all(b"QUIT\r\n").await.unwrap();
    assert!(!sluis.log().contains("self-signed"));
}

#[test]
fn config_check_refuses_a_key_that_does_not_match_the_certificate() {
    let dir = scratch("pki");
    let a = pki(dir.path(), "a.test");
    let other = scratch("pki2");
    let b = pki(other.path(), "b.test");
    let cfg = dir.path().join("sluis.toml");
    std::fs::write(
        &cfg,
        format!(
            "[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            a.cert.display(),
            b.key.display()
        ),
    )
    .unwrap();
    let out = config_check(&cfg);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(":2: tls.cert_file:"), "{err}");
}

/// Client -> Sluis A -> Sluis B (STARTTLS server) -> smtp-sink; the sink's dumps and the
/// client's reply. `lane` holds keys for A's default lane: the base config ends inside that
/// table, so bare keys appended to it land there.
fn through_two_gateways(lane: &str, upstream_extra: &str, token: &str) -> (Vec<String>, String) {
    let sink = Sink::start(&[]);
    let b = Sluis::start(sink.port, upstream_extra);
    let a = Sluis::start(b.port, lane);
    let mut c = Smtp::connect(a.port);
    c.hello();
    let body = format!("Subject: tls\r\nMessage-ID: <{token}@org.test>\r\n\r\nx\r\n");
    let reply = c.send_message("a@org.test", &["b@partner.test"], body.as_bytes());
    let dumps = if reply.starts_with("250") {
        sink.wait_token(token, 1, WAIT)
    } else {
        sink.with_token(token)
    };
    (dumps, reply)
}

#[test]
fn upstream_starttls_is_used_when_offered() {
    let (dumps, reply) = through_two_gateways("", "", "tls-opportunistic-1");
    assert!(reply.starts_with("250"), "{reply}");
    assert_eq!(dumps.len(), 1);
    // Sluis B's Received header records that A spoke TLS to it.
    assert!(dumps[0].contains("with ESMTPS id"), "{}", dumps[0]);
    assert!(
        dumps[0].contains("(using TLSv1.3 with cipher"),
        "{}",
        dumps[0]
    );
}

#[test]
fn required_starttls_to_an_upstream_without_it_defers() {
    // smtp-sink offers no STARTTLS.
    let sink = Sink::start(&[]);
    let sluis = Sluis::start(sink.port, "starttls = \"required\"\n");
    let mut c = Smtp::connect(sluis.port);
    c.hello();
    let r = c.send_message(
        "a@org.test",
        &["b@partner.test"],
        b"Subject: x\r\n\r\nx\r\n",
    );
    assert!(r.starts_with("451 4.4.1"), "{r}");
    assert!(r.contains("STARTTLS required"), "{r}");
    assert!(sink.messages().is_empty());
}

#[test]
fn verified_upstream_tls_checks_ca_and_name() {
    let dir = scratch("pki");
    let p = pki(dir.path(), "upstream.sluis.test");
    let good = format!(
        "starttls = \"required\"\nca_file = \"{}\"\nserver_name = \"upstream.sluis.test\"\n",
        p.ca.display()
    );
    let (dumps, reply) = through_two_gateways(&good, &tls_section(&p), "tls-verified-1");
    assert!(reply.starts_with("250"), "{reply}");
    assert_eq!(dumps.len(), 1);

    let wrong_name = format!(
        "starttls = \"required\"\nca_file = \"{}\"\nserver_name = \"other.sluis.test\"\n",
        p.ca.display()
    );
    let (dumps, reply) = through_two_gateways(&wrong_name, &tls_section(&p), "tls-verified-2");
    assert!(reply.starts_with("451 4.4.1"), "{reply}");
    assert!(reply.contains("TLS handshake failed"), "{reply}");
    assert!(dumps.is_empty());
}

#[test]
fn dsn_parameters_are_passed_upstream() {
    let sink = Sink::start(&[]);
    let sluis = Sluis::start(sink.port, "");
    let mut c = Smtp::connect(sluis.port);
    c.hello();
    assert!(
        c.cmd("MAIL FROM:<a@org.test> RET=HDRS ENVID=env+2Bid-7")
            .starts_with("250")
    );
    assert!(
        c.cmd("RCPT TO:<b@partner.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@partner.test")
            .starts_with("250")
    );
    assert!(
        c.cmd("RCPT TO:<c@partner.test> NOTIFY=NEVER")
            .starts_with("250")
    );
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(b"Subject: dsn\r\nMessage-ID: <dsn-params-1@org.test>\r\n\r\nx\r\n.\r\n");
    assert!(c.reply().starts_with("250"));
    let d = sink.wait_token("dsn-params-1@org.test", 1, WAIT);
    assert_eq!(d.len(), 1);
    assert!(
        d[0].contains("X-Mail-Args: <a@org.test> RET=HDRS ENVID=env+2Bid-7"),
        "{}",
        d[0]
    );
    assert!(
        d[0].contains(
            "X-Rcpt-Args: <b@partner.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@partner.test"
        ),
        "{}",
        d[0]
    );
    assert!(
        d[0].contains("X-Rcpt-Args: <c@partner.test> NOTIFY=NEVER"),
        "{}",
        d[0]
    );
}
