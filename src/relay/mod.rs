//! Relay mode: hand an accepted transaction to an upstream lane and report its verdict.
//!
//! Sluis keeps no queue here. The client's end of DATA is answered only after the upstream has
//! answered, so whatever goes wrong, the message is still in the client's queue unless the
//! upstream took responsibility for it (DESIGN §1).
//!
//! Per-recipient outcomes are squeezed into the one end-of-DATA reply SMTP allows:
//! - all recipients accepted: the upstream's reply to the data;
//! - any recipient deferred (4xx): nothing is sent, the client gets that 4xx and retries all,
//!   which cannot duplicate because nobody received anything yet;
//! - some refused for good (5xx), others accepted: the accepted ones get the message, the
//!   sender gets a delivery status notification for the refused ones (RFC 3464);
//! - all refused: the refusal.
//!
//! Here: the lanes and their commands; `transaction` runs one transaction (staged until its
//! final dot), `pool` keeps sessions between transactions, `dsn` makes every bounce,
//! `socketmap` and `tls_policy` tell the lanes' MTA at delivery what Sluis judged.

pub mod dsn;
pub mod pool;
pub mod received;
pub mod socketmap;
pub mod tls_policy;
mod transaction;

pub use transaction::{Staged, commit, relay, stage};

use std::collections::BTreeMap;
use std::sync::Arc;

use rustls_pki_types::ServerName;
use smtp_proto::{MailFrom, RcptTo, Response};

use crate::config::{Config, LaneConfig, StartTls};
use crate::wire::address::mailbox;
use crate::wire::{Client, Endpoint, Reply, UpstreamError, parse_host_port, tls};

/// A transaction's envelope, as the client gave it.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub id: String,
    pub mail_from: MailFrom<String>,
    pub rcpts: Vec<RcptTo<String>>,
    /// Ask the upstream to require TLS for the onward delivery (RFC 8689) where it offers
    /// REQUIRETLS: set for confidential mail.
    pub require_tls: bool,
}

/// One upstream lane, ready to use.
pub struct Lane {
    pub name: String,
    pub config: LaneConfig,
    pub endpoint: Endpoint,
    /// Sessions kept open between transactions.
    pub pool: Arc<pool::Pool>,
}

impl Lane {
    pub fn from_config(name: &str, config: &LaneConfig) -> Result<Lane, String> {
        let (host, port) = parse_host_port(&config.address)?;
        let connector = match config.starttls {
            StartTls::Off => None,
            _ => {
                let roots = match &config.ca_file {
                    Some(ca) => Some(tls::load_roots(ca).map_err(|e| e.to_string())?),
                    None => None,
                };
                Some(tls::connector(roots))
            }
        };
        let name_for_tls = config.server_name.clone().unwrap_or_else(|| host.clone());
        let server_name = ServerName::try_from(name_for_tls.clone())
            .map_err(|_| format!("{name_for_tls:?} is not a valid TLS server name"))?;
        Ok(Lane {
            name: name.to_string(),
            config: config.clone(),
            endpoint: Endpoint {
                host,
                port,
                connector,
                server_name,
                tls_required: config.starttls == StartTls::Required,
                connect_timeout: config.connect_timeout,
                command_timeout: config.command_timeout,
            },
            pool: Arc::new(pool::Pool::new(config.idle_connections, config.idle_time)),
        })
    }
}

/// All lanes by name, plus which one is the default.
pub struct Lanes {
    pub default: String,
    lanes: BTreeMap<String, Arc<Lane>>,
}

impl Lanes {
    pub fn from_config(config: &Config) -> Result<Lanes, String> {
        let mut lanes = BTreeMap::new();
        for (name, lane) in &config.upstream.lanes {
            let lane = Lane::from_config(name, lane).map_err(|e| format!("lane {name}: {e}"))?;
            lanes.insert(name.clone(), Arc::new(lane));
        }
        Ok(Lanes {
            default: config.upstream.default_lane.clone(),
            lanes,
        })
    }

    pub fn get(&self, name: &str) -> Option<Arc<Lane>> {
        self.lanes.get(name).cloned()
    }

    pub fn default_lane(&self) -> Arc<Lane> {
        self.lanes
            .get(&self.default)
            .cloned()
            .expect("validated: the default lane exists")
    }
}

/// RFC 3461 xtext, for ENVID and ORCPT passed upstream.
fn xtext(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

fn unavailable(lane: &Lane, e: &UpstreamError) -> Reply {
    Reply::new(
        451,
        "4.4.1",
        format!(
            "Upstream {} unavailable ({e}); message not accepted, try again later",
            lane.name
        ),
    )
}

/// The MAIL command for `env` to an upstream with these capabilities (`tls`: the session is
/// encrypted).
fn mail_command(
    env: &Envelope,
    caps: &smtp_proto::EhloResponse<String>,
    tls: bool,
    size: usize,
) -> Result<String, Reply> {
    let from = &env.mail_from;
    use smtp_proto::*;
    let mut cmd = format!("MAIL FROM:<{}>", mailbox(&from.address));
    if from.flags & MAIL_BODY_8BITMIME != 0 {
        if !caps.has_capability(EXT_8BIT_MIME) {
            return Err(Reply::new(
                554,
                "5.6.3",
                "Upstream does not accept 8BITMIME and Sluis does not convert messages",
            ));
        }
        cmd.push_str(" BODY=8BITMIME");
    } else if from.flags & MAIL_BODY_7BIT != 0 && caps.has_capability(EXT_8BIT_MIME) {
        cmd.push_str(" BODY=7BIT");
    }
    if from.flags & MAIL_SMTPUTF8 != 0 {
        if !caps.has_capability(EXT_SMTP_UTF8) {
            return Err(Reply::new(
                553,
                "5.6.7",
                "Upstream does not accept SMTPUTF8 and the message requires it",
            ));
        }
        cmd.push_str(" SMTPUTF8");
    }
    if caps.has_capability(EXT_SIZE) {
        cmd.push_str(&format!(" SIZE={size}"));
    }
    if caps.has_capability(EXT_DSN) {
        if from.flags & MAIL_RET_FULL != 0 {
            cmd.push_str(" RET=FULL");
        } else if from.flags & MAIL_RET_HDRS != 0 {
            cmd.push_str(" RET=HDRS");
        }
        if let Some(id) = &from.env_id {
            cmd.push_str(&format!(" ENVID={}", xtext(id)));
        }
    }
    // RFC 8689 4.1: only over a TLS session, and only to a server that offers it.
    if env.require_tls && tls && caps.has_capability(EXT_REQUIRE_TLS) {
        cmd.push_str(" REQUIRETLS");
    }
    cmd.push_str("\r\n");
    Ok(cmd)
}

fn rcpt_command(to: &RcptTo<String>, client: &Client) -> String {
    use smtp_proto::*;
    let mut cmd = format!("RCPT TO:<{}>", mailbox(&to.address));
    if client.caps.has_capability(EXT_DSN) {
        let mut notify = Vec::new();
        if to.flags & RCPT_NOTIFY_NEVER != 0 {
            notify.push("NEVER");
        }
        if to.flags & RCPT_NOTIFY_SUCCESS != 0 {
            notify.push("SUCCESS");
        }
        if to.flags & RCPT_NOTIFY_FAILURE != 0 {
            notify.push("FAILURE");
        }
        if to.flags & RCPT_NOTIFY_DELAY != 0 {
            notify.push("DELAY");
        }
        if !notify.is_empty() {
            cmd.push_str(&format!(" NOTIFY={}", notify.join(",")));
        }
        if let Some(orcpt) = &to.orcpt {
            cmd.push_str(&format!(" ORCPT=rfc822;{}", xtext(orcpt)));
        }
    }
    cmd.push_str("\r\n");
    cmd
}

/// Adds the dot-stuffing of RFC 5321 §4.5.2 to content that has only CRLF line ends.
#[derive(Default)]
struct DotStuffer {
    mid_line: bool,
}

impl DotStuffer {
    fn stuff(&mut self, mut chunk: &[u8], out: &mut Vec<u8>) {
        while !chunk.is_empty() {
            if !self.mid_line && chunk[0] == b'.' {
                out.push(b'.');
            }
            match memchr::memchr(b'\n', chunk) {
                Some(i) => {
                    out.extend_from_slice(&chunk[..=i]);
                    chunk = &chunk[i + 1..];
                    self.mid_line = false;
                }
                None => {
                    out.extend_from_slice(chunk);
                    self.mid_line = true;
                    return;
                }
            }
        }
    }
}

/// What one lane did with its share of a transaction.
#[derive(Debug)]
pub struct Relayed {
    /// The lane's verdict, as the client's end of DATA would get it.
    pub reply: Reply,
    /// Recipients the upstream refused for good while it accepted the others: the caller
    /// owes the sender a DSN for them (`dsn`, the one place bounces are made).
    pub refused: Vec<(RcptTo<String>, Response<String>)>,
    /// The upstream session's QUIT, still to be said: the transaction is settled once the
    /// end-of-data reply is in, so the client's reply does not wait for it.
    pub closing: Option<Closing>,
}

/// Work left after an upstream transaction settled (QUIT and its answer).
pub struct Closing(std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>);

impl Closing {
    pub fn new(work: impl std::future::Future<Output = ()> + Send + 'static) -> Closing {
        Closing(Box::pin(work))
    }

    pub async fn finish(self) {
        self.0.await
    }
}

impl std::fmt::Debug for Closing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Closing")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_reply_without_text_still_has_a_line() {
        let r = Reply::from_upstream(&Response {
            code: 550,
            esc: [0, 0, 0],
            message: String::new(),
        });
        assert_eq!(r.lines, vec![String::new()]);
        assert_eq!(r.status, "5.0.0");
    }

    #[test]
    fn requiretls_only_for_confidential_mail_over_tls_to_a_server_offering_it() {
        let mut caps = smtp_proto::EhloResponse::<String> {
            capabilities: smtp_proto::EXT_REQUIRE_TLS | smtp_proto::EXT_SIZE,
            ..Default::default()
        };
        let mut env = Envelope {
            id: "T".into(),
            mail_from: MailFrom {
                address: "a@org.test".into(),
                ..Default::default()
            },
            rcpts: vec![],
            require_tls: true,
        };
        assert_eq!(
            mail_command(&env, &caps, true, 10).unwrap(),
            "MAIL FROM:<a@org.test> SIZE=10 REQUIRETLS\r\n"
        );
        assert!(
            !mail_command(&env, &caps, false, 10)
                .unwrap()
                .contains("REQUIRETLS")
        );
        env.require_tls = false;
        assert!(
            !mail_command(&env, &caps, true, 10)
                .unwrap()
                .contains("REQUIRETLS")
        );
        env.require_tls = true;
        caps.capabilities = smtp_proto::EXT_SIZE;
        assert!(
            !mail_command(&env, &caps, true, 10)
                .unwrap()
                .contains("REQUIRETLS")
        );
    }

    #[test]
    fn xtext_encodes_specials() {
        assert_eq!(xtext("a+b=c d"), "a+2Bb+3Dc+20d");
    }

    #[test]
    fn dot_stuffing_across_chunks() {
        let mut s = DotStuffer::default();
        let mut out = Vec::new();
        s.stuff(b"a\r\n.b\r", &mut out);
        s.stuff(b"\n.", &mut out);
        s.stuff(b"\r\nx", &mut out);
        assert_eq!(out, b"a\r\n..b\r\n..\r\nx");
        assert!(s.mid_line);
    }
}
