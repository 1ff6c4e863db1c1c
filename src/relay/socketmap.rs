//! The TLS policy socketmap (DESIGN §16): Postfix's lane transports look up
//! `socketmap:inet:<addr>:<lane level>` with the next-hop domain, and Sluis answers with its
//! judgement of that domain as a policy (`tls_policy`), from the same posture cache the
//! decisions use.
//!
//! The protocol (Postfix's socketmap_table(5)): netstrings both ways, request `<name> <key>`,
//! reply `OK <data>`, `NOTFOUND `, `TEMP <reason>` or `PERM <reason>`; a connection carries
//! any number of lookups. Requests are small (a map name and a domain): anything longer, or not
//! a netstring, closes the connection. When Sluis does not answer, Postfix defers: fail closed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;

use super::tls_policy::{Answer, Partner, answer, floor_of, is_domain_key};
use crate::policy::PostureSource;

/// A map name (a level's name) and a domain name, with room to spare.
const MAX_REQUEST: usize = 512;
/// Connections at once: Postfix opens one per smtp process that looks up.
const MAX_CONNECTIONS: usize = 256;
/// Postfix keeps connections open between deliveries; an idle one is closed after this.
const IDLE: Duration = Duration::from_secs(300);
/// A request that has begun must arrive whole within this.
const REQUEST_TIME: Duration = Duration::from_secs(10);

/// What the socketmap answers from: the posture cache (through `P`) and the trust list; and
/// who may ask (`server.allow_networks`: a lookup makes Sluis query DNS and probe MX hosts, which
/// nobody else may have it do).
pub struct Judge<P> {
    pub postures: P,
    pub partners: HashMap<String, Partner>,
    pub allow: Vec<ipnet::IpNet>,
}

impl<P: PostureSource + Sync> Judge<P> {
    /// The answer to one request, `<name> <key>`.
    pub async fn lookup(&self, request: &str) -> Answer {
        let Some((name, key)) = request.split_once(' ') else {
            return Answer::Perm("the request is not \"<map name> <key>\"".into());
        };
        let Some(floor) = floor_of(name) else {
            return Answer::Perm(format!(
                "unknown map name {:?}: use a lane level (none, encrypted, verified, trusted, mta-sts, dane)",
                name.chars().take(32).collect::<String>()
            ));
        };
        let domain = key.trim_end_matches('.').to_ascii_lowercase();
        if !is_domain_key(&domain) {
            return Answer::NotFound;
        }
        let assessment = self.postures.posture(&domain).await;
        answer(floor, &assessment, self.partners.get(&domain))
    }
}

/// Serves lookups until `shutdown`, answering from the judge of the current configuration.
pub async fn serve<P>(
    listener: TcpListener,
    judge: watch::Receiver<Arc<Judge<P>>>,
    shutdown: CancellationToken,
) where
    P: PostureSource + Send + Sync + 'static,
{
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "TLS policy socketmap: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let allowed = {
            let current = judge.borrow();
            let ip = peer.ip().to_canonical();
            current.allow.iter().any(|n| n.contains(&ip))
        };
        if !allowed {
            tracing::warn!(%peer, "TLS policy socketmap: client not in allow_networks, closed");
            continue;
        }
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "TLS policy socketmap: too many connections, closing one");
            continue;
        };
        let judge = judge.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            tokio::select! {
                _ = shutdown.cancelled() => {}
                r = connection(stream, judge) => if let Err(why) = r {
                    tracing::debug!(%peer, %why, "TLS policy socketmap connection closed");
                }
            }
        });
    }
}

async fn connection<P>(
    stream: TcpStream,
    judge: watch::Receiver<Arc<Judge<P>>>,
) -> Result<(), String>
where
    P: PostureSource + Sync,
{
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    loop {
        // Wait for the first byte of a request as long as Postfix likes to keep the
        // connection, then for the rest only briefly.
        let more = tokio::time::timeout(IDLE, read.fill_buf())
            .await
            .map_err(|_| "idle".to_string())?
            .map_err(|e| e.to_string())?;
        if more.is_empty() {
            return Ok(());
        }
        let request = tokio::time::timeout(REQUEST_TIME, netstring(&mut read))
            .await
            .map_err(|_| "request incomplete".to_string())??;
        let current = judge.borrow().clone();
        let reply = current.lookup(&request).await;
        let floor = request
            .split_once(' ')
            .and_then(|(name, _)| floor_of(name))
            .map_or("invalid", |l| l.name());
        crate::metrics::tls_policy_lookup(floor, kind(&reply));
        let text = match reply {
            Answer::Policy(p) => format!("OK {p}"),
            Answer::NotFound => "NOTFOUND ".to_string(),
            Answer::Temp(why) => format!("TEMP {why}"),
            Answer::Perm(why) => format!("PERM {why}"),
        };
        write
            .write_all(format!("{}:{text},", text.len()).as_bytes())
            .await
            .map_err(|e| e.to_string())?;
    }
}

/// Reads one netstring: `<length>:<bytes>,`.
async fn netstring<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> Result<String, String> {
    let mut len: usize = 0;
    let mut digits = 0;
    loop {
        let b = r.read_u8().await.map_err(|e| e.to_string())?;
        match b {
            b'0'..=b'9' if digits < 4 => {
                len = len * 10 + usize::from(b - b'0');
                digits += 1;
            }
            b':' if digits > 0 => break,
            _ => return Err("not a netstring".into()),
        }
    }
    if len > MAX_REQUEST {
        return Err(format!("a request of {len} bytes (at most {MAX_REQUEST})"));
    }
    let mut body = vec![0; len + 1];
    r.read_exact(&mut body).await.map_err(|e| e.to_string())?;
    if body.pop() != Some(b',') {
        return Err("netstring without its comma".into());
    }
    String::from_utf8(body).map_err(|_| "a request that is not UTF-8".into())
}

/// The answer's name for the metric.
fn kind(a: &Answer) -> &'static str {
    match a {
        Answer::Policy(p) => ["dane-only", "secure", "fingerprint", "encrypt", "may"]
            .into_iter()
            .find(|k| p.split(' ').next() == Some(*k))
            .unwrap_or("other"),
        Answer::NotFound => "notfound",
        Answer::Temp(_) => "temp",
        Answer::Perm(_) => "perm",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::posture::Assessment;
    use crate::terms::Level;

    struct Fixed(Level);

    impl PostureSource for Fixed {
        async fn posture(&self, domain: &str) -> Arc<Assessment> {
            Arc::new(Assessment {
                domain: domain.into(),
                posture: self.0,
                nta7516_record: false,
                mta_sts_mx: vec!["mx.example.nl".into()],
                assessed_at: String::new(),
                checks: Vec::new(),
            })
        }
    }

    async fn ask(level: Level, requests: &[u8]) -> Vec<u8> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let judge = Arc::new(Judge {
            postures: Fixed(level),
            partners: HashMap::new(),
            allow: vec!["127.0.0.0/8".parse().unwrap()],
        });
        let (_tx, rx) = watch::channel(judge);
        let stop = CancellationToken::new();
        tokio::spawn(serve(listener, rx, stop.clone()));
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(requests).await.unwrap();
        c.shutdown().await.unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut out)).await;
        stop.cancel();
        out
    }

    #[tokio::test]
    async fn lookups_on_one_connection_are_answered_in_order() {
        let requests: String = [
            "none example.nl",
            "dane example.nl",
            "none [mx.example.nl]:25",
            "bogus example",
        ]
        .iter()
        .map(|r| format!("{}:{r},", r.len()))
        .collect();
        let out = ask(Level::MtaSts, requests.as_bytes()).await;
        let want: String = [
            "OK secure match=mx.example.nl servername=hostname",
            "TEMP example.nl: posture mta-sts is below the lane's level dane",
            "NOTFOUND ",
        ]
        .iter()
        .map(|r| format!("{}:{r},", r.len()))
        .collect();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with(&want), "{text}");
        assert!(
            text[want.len()..].contains(":PERM unknown map name \"bogus\""),
            "{text}"
        );
    }

    #[tokio::test]
    async fn what_is_not_a_small_netstring_closes_the_connection() {
        for bad in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"99999:",
            b"600:",
            b"4:none!",
        ] {
            let out = ask(Level::Dane, bad).await;
            assert!(out.is_empty(), "{:?}", String::from_utf8_lossy(&out));
        }
        // A request cut short is never answered.
        assert!(ask(Level::Dane, b"16:none exam").await.is_empty());
    }

    #[tokio::test]
    async fn a_client_outside_the_allowed_networks_is_closed_unanswered() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let judge = Arc::new(Judge {
            postures: Fixed(crate::terms::Level::Dane),
            partners: HashMap::new(),
            allow: vec!["10.0.0.0/8".parse().unwrap()],
        });
        let (_tx, rx) = watch::channel(judge);
        let stop = CancellationToken::new();
        tokio::spawn(serve(listener, rx, stop.clone()));
        let mut c = TcpStream::connect(addr).await.unwrap();
        let _ = c.write_all(b"16:dane example.nl,").await;
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut out)).await;
        stop.cancel();
        assert!(out.is_empty(), "{:?}", String::from_utf8_lossy(&out));
    }
}
