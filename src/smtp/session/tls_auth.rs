//! STARTTLS and AUTH: the two commands that change who is talking and how.

use super::{Flow, Session};
use crate::smtp::auth;
use crate::smtp::connection::Line;
use crate::wire::reply::Reply;

impl Session {
    pub(super) async fn starttls(&mut self) -> Flow {
        if self.conn.is_tls() {
            self.reply(Reply::new(503, "5.5.1", "Error: TLS already active"));
            return Flow::Continue;
        }
        // RFC 3207 §4.2 / CVE-2011-0411: anything pipelined after STARTTLS was sent in the
        // clear and must not be executed inside the TLS session.
        let dropped = self.conn.discard_input();
        if dropped > 0 {
            tracing::warn!(peer = %self.peer, bytes = dropped, "discarded commands pipelined after STARTTLS");
        }
        self.conn
            .queue(&Reply::new(220, "2.0.0", "Ready to start TLS").to_bytes());
        let timeout = self.rt.config.timeouts.command;
        if self.conn.flush(timeout).await.is_err() {
            return Flow::Close;
        }
        let acceptor = self.rt.tls.clone();
        if let Err(e) = self.conn.start_tls(&acceptor, timeout).await {
            tracing::info!(peer = %self.peer, error = %e, "TLS handshake failed");
            return Flow::Close;
        }
        self.helo = None;
        self.tx = None;
        self.auth_user = None;
        Flow::Continue
    }
    /// Reads one line of an AUTH exchange; `None` when the client cancelled or sent garbage.
    pub(super) async fn auth_line(&mut self, challenge: &str) -> Result<Option<String>, Flow> {
        self.conn.queue(&Reply::plain(334, challenge).to_bytes());
        let timeout = self.rt.config.timeouts.command;
        if self.conn.flush(timeout).await.is_err() {
            return Err(Flow::Close);
        }
        match self
            .conn
            .read_line(self.rt.config.limits.command_line_length, timeout)
            .await
        {
            Ok(Line::Text(l)) => {
                let text = String::from_utf8_lossy(&l).trim().to_string();
                Ok(if text == "*" { None } else { Some(text) })
            }
            Ok(Line::TooLong) => Ok(None),
            Err(_) => Err(Flow::Close),
        }
    }
    pub(super) async fn auth(&mut self, mechanism: u64, initial: String) -> Flow {
        let Some(creds) = self
            .rt
            .credentials
            .clone()
            .filter(|_| self.rt.config.auth.enabled)
        else {
            self.reply(Reply::new(
                502,
                "5.5.1",
                "Error: authentication not enabled",
            ));
            return Flow::Continue;
        };
        if !self.conn.is_tls() {
            self.reply(Reply::new(
                530,
                "5.7.0",
                "Must issue a STARTTLS command first",
            ));
            return Flow::Continue;
        }
        if self.helo.is_none() || self.auth_user.is_some() || self.tx.is_some() {
            self.reply(Reply::new(503, "5.5.1", "Error: AUTH not allowed now"));
            return Flow::Continue;
        }
        let initial = (!initial.is_empty()).then_some(initial);
        let decoded = if mechanism == smtp_proto::AUTH_PLAIN {
            let response = match initial {
                Some(r) if r == "=" => Some(String::new()),
                Some(r) => Some(r),
                None => match self.auth_line("").await {
                    Ok(r) => r,
                    Err(flow) => return flow,
                },
            };
            match response {
                None => None,
                Some(r) => match auth::decode_plain(&r) {
                    Some(pair) => Some(pair),
                    None => {
                        self.reply(Reply::new(
                            501,
                            "5.5.2",
                            "Error: malformed AUTH PLAIN response",
                        ));
                        return Flow::Continue;
                    }
                },
            }
        } else if mechanism == smtp_proto::AUTH_LOGIN {
            let user = match initial {
                Some(u) => Some(u),
                None => match self.auth_line("VXNlcm5hbWU6").await {
                    Ok(u) => u,
                    Err(flow) => return flow,
                },
            };
            let pass = match user {
                None => None,
                Some(_) => match self.auth_line("UGFzc3dvcmQ6").await {
                    Ok(p) => p,
                    Err(flow) => return flow,
                },
            };
            match (
                user.as_deref().map(auth::decode_login),
                pass.as_deref().map(auth::decode_login),
            ) {
                (Some(Some(u)), Some(Some(p))) => Some((u, p)),
                (None, _) | (_, None) => None,
                _ => {
                    self.reply(Reply::new(
                        501,
                        "5.5.2",
                        "Error: malformed AUTH LOGIN response",
                    ));
                    return Flow::Continue;
                }
            }
        } else {
            self.reply(Reply::new(
                504,
                "5.5.4",
                "Unsupported authentication mechanism",
            ));
            return Flow::Continue;
        };
        let Some((user, pass)) = decoded else {
            self.reply(Reply::new(501, "5.7.0", "Authentication aborted"));
            return Flow::Continue;
        };
        // Earlier failures from this address cost time before the check is even made.
        let guard = self.rt.auth_guard.clone();
        let ip = self.peer.ip();
        let delay = guard.delay_for(ip);
        if !delay.is_zero() {
            crate::metrics::auth_delayed(delay);
            tokio::time::sleep(delay).await;
        }
        let check_user = user.clone();
        let ok = guard
            .check(move |blocks| creds.verify_in(&check_user, &pass, blocks))
            .await;
        crate::metrics::auth_attempt(ok);
        if ok {
            guard.succeeded(ip);
            tracing::info!(peer = %self.peer, user = %user, "authenticated");
            self.auth_user = Some(user);
            self.reply(Reply::new(235, "2.7.0", "Authentication successful"));
        } else {
            guard.failed(ip);
            tracing::warn!(peer = %self.peer, "authentication failed");
            self.reply(Reply::new(
                535,
                "5.7.8",
                "Authentication credentials invalid",
            ));
        }
        Flow::Continue
    }
}
