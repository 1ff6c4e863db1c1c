//! The DNS evidence about a recipient domain, as checks a reviewer can read (like internet.nl's
//! mail test): MX, DANE availability per MX host, the MTA-STS announcement, the NTA 7516
//! record. The STARTTLS probe, the MTA-STS policy fetch and the posture ladder build on these.

use serde::Serialize;

use super::dns::{Dns, Outcome, Security};
use super::records;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckResult {
    Pass,
    /// Not a failure, but weaker than it could be (e.g. TLSA records that cannot be used).
    Warn,
    Fail,
    /// A fact without a verdict (no MTA-STS, no NTA 7516 record).
    Info,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub check: String,
    pub result: CheckResult,
    pub evidence: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dnssec: Option<Security>,
}

fn check(
    name: impl Into<String>,
    result: CheckResult,
    evidence: String,
    dnssec: Option<Security>,
) -> Check {
    Check {
        check: name.into(),
        result,
        evidence,
        dnssec,
    }
}

/// At most this many MX hosts are looked at (the rest would only repeat the picture).
const MAX_MX_HOSTS: usize = 5;

/// The DNS checks of `domain`, and the MX hosts to probe (none when mail cannot go there).
pub async fn dns_checks(dns: &Dns, domain: &str) -> (Vec<Check>, Vec<String>) {
    let mut hosts = Vec::new();
    let checks = dns_checks_into(dns, domain, &mut hosts).await;
    (checks, hosts)
}

async fn dns_checks_into(dns: &Dns, domain: &str, mx_hosts: &mut Vec<String>) -> Vec<Check> {
    use CheckResult::*;
    let mut out = Vec::new();
    let (hosts, mx_security) = match dns.mx(domain).await {
        Outcome::Found { records, security } => {
            if records.iter().any(|m| m.host.is_empty()) {
                out.push(check(
                    "mx",
                    Fail,
                    "null MX (RFC 7505): the domain accepts no mail".into(),
                    Some(security),
                ));
                return out;
            }
            let list: Vec<String> = records
                .iter()
                .map(|m| format!("{} {}", m.preference, m.host))
                .collect();
            out.push(check(
                "mx",
                Pass,
                format!("MX {}", list.join(", ")),
                Some(security),
            ));
            (
                records.into_iter().map(|m| m.host).collect::<Vec<_>>(),
                security,
            )
        }
        Outcome::NotFound { security } => {
            out.push(check(
                "mx",
                Info,
                format!("no MX: {domain} itself is the implicit MX (RFC 5321 5.1)"),
                Some(security),
            ));
            (vec![domain.to_string()], security)
        }
        Outcome::Bogus => {
            out.push(check(
                "mx",
                Fail,
                "MX answer is bogus (DNSSEC validation failed): mail is deferred, never sent in the clear".into(),
                Some(Security::Bogus),
            ));
            return out;
        }
        Outcome::Failed(e) => {
            out.push(check(
                "mx",
                Fail,
                format!("MX lookup failed ({e}): mail is deferred"),
                None,
            ));
            return out;
        }
    };
    mx_hosts.extend(hosts.iter().take(MAX_MX_HOSTS).cloned());
    if mx_security != Security::Secure {
        out.push(check(
            "dane",
            Info,
            "the MX answer is not DNSSEC-secure: DANE does not apply (RFC 7672 2.2.1)".into(),
            Some(mx_security),
        ));
    } else {
        for host in hosts.iter().take(MAX_MX_HOSTS) {
            out.push(dane_check(dns, host).await);
        }
    }
    let sts_name = format!("_mta-sts.{domain}");
    out.push(match dns.txt(&sts_name).await {
        Outcome::Found { records, security } => match records::mta_sts(&records) {
            Ok(Some(r)) => check(
                "mta-sts-record",
                Pass,
                format!("{sts_name}: v=STSv1, id={}", r.id),
                Some(security),
            ),
            Ok(None) => check(
                "mta-sts-record",
                Info,
                format!("{sts_name}: no v=STSv1 record"),
                Some(security),
            ),
            Err(e) => check(
                "mta-sts-record",
                Fail,
                format!("{sts_name}: {e}"),
                Some(security),
            ),
        },
        Outcome::NotFound { security } => check(
            "mta-sts-record",
            Info,
            format!("no TXT at {sts_name}: no MTA-STS"),
            Some(security),
        ),
        Outcome::Bogus => check(
            "mta-sts-record",
            Fail,
            format!("{sts_name}: bogus"),
            Some(Security::Bogus),
        ),
        Outcome::Failed(e) => check(
            "mta-sts-record",
            Fail,
            format!("{sts_name}: lookup failed ({e})"),
            None,
        ),
    });
    out.push(match dns.txt(domain).await {
        Outcome::Found { records, security } => match records::nta7516(&records) {
            Some(r) => {
                let mx: Vec<String> = r.mx.iter().map(|(p, h)| format!("{p} {h}")).collect();
                check(
                    "nta7516-record",
                    Info,
                    format!(
                        "{}: provider {}, valid {} to {}, ntamx {} (a claim by the domain, not proof)",
                        r.version,
                        r.provider.as_deref().unwrap_or("-"),
                        r.start.as_deref().unwrap_or("?"),
                        r.end.as_deref().unwrap_or("?"),
                        if mx.is_empty() { "-".to_string() } else { mx.join(", ") }
                    ),
                    Some(security),
                )
            }
            None => check("nta7516-record", Info, "no NTA 7516 record".into(), Some(security)),
        },
        Outcome::NotFound { security } => {
            check("nta7516-record", Info, "no NTA 7516 record".into(), Some(security))
        }
        Outcome::Bogus => check("nta7516-record", Fail, "TXT answer is bogus".into(), Some(Security::Bogus)),
        Outcome::Failed(e) => check("nta7516-record", Fail, format!("TXT lookup failed ({e})"), None),
    });
    out
}

/// Probes each MX host: STARTTLS offered, what TLS it negotiates, whether the certificate is
/// WebPKI-valid for the MX name.
pub async fn starttls_checks(
    dns: &Dns,
    hosts: &[String],
    roots: std::sync::Arc<rustls::RootCertStore>,
    helo: &str,
) -> Vec<Check> {
    use super::probe::{Probe, probe};
    use CheckResult::*;
    let mut out = Vec::new();
    for host in hosts {
        let label = format!("starttls:{host}");
        let ip = match dns.ips(host).await {
            Outcome::Found { records, .. } => records[0],
            other => {
                out.push(check(
                    label,
                    Fail,
                    format!("no address for {host}: {other:?}"),
                    None,
                ));
                continue;
            }
        };
        out.push(match probe(host, ip, 25, roots.clone(), helo).await {
            Probe::Tls { params, webpki } => {
                let tls = format!(
                    "{}, {}{} (NCSC: good)",
                    params.version,
                    params.cipher,
                    params.group.map(|g| format!(", {g}")).unwrap_or_default()
                );
                match webpki {
                    Ok(()) => check(label, Pass, format!("{tls}; certificate valid for {host} (WebPKI)"), None),
                    Err(e) => check(
                        label,
                        Warn,
                        format!("{tls}; certificate not valid for {host} ({e}): encrypted, not authenticated"),
                        None,
                    ),
                }
            }
            Probe::NoStartTls => check(
                label,
                Fail,
                format!("{host} offers no STARTTLS: mail to it would travel in plaintext"),
                None,
            ),
            Probe::Failed(e) => check(label, Fail, format!("{host} ({ip}): {e}"), None),
        });
    }
    out
}

/// DANE for one MX host whose MX answer was secure (RFC 7672 2.2).
async fn dane_check(dns: &Dns, host: &str) -> Check {
    use CheckResult::*;
    let name = format!("_25._tcp.{host}");
    let label = format!("dane:{host}");
    match dns.tlsa(&name).await {
        Outcome::Found {
            records,
            security: Security::Secure,
        } => {
            let usable: Vec<String> = records
                .iter()
                .filter(|t| t.usable_for_smtp())
                .map(|t| {
                    format!(
                        "{} {} {} {}…",
                        t.usage,
                        t.selector,
                        t.matching,
                        &t.data[..t.data.len().min(16)]
                    )
                })
                .collect();
            if usable.is_empty() {
                check(
                    label,
                    Warn,
                    format!(
                        "{name}: {} TLSA record(s), none usable for SMTP: TLS is mandatory, without authentication (RFC 7672 2.2)",
                        records.len()
                    ),
                    Some(Security::Secure),
                )
            } else {
                check(
                    label,
                    Pass,
                    format!("{name}: TLSA {}", usable.join(", ")),
                    Some(Security::Secure),
                )
            }
        }
        Outcome::Found { security, .. } => check(
            label,
            Info,
            format!("{name}: TLSA not DNSSEC-secure, ignored: no DANE"),
            Some(security),
        ),
        Outcome::NotFound { security } => check(
            label,
            Info,
            format!("{name}: no TLSA: no DANE"),
            Some(security),
        ),
        Outcome::Bogus => check(
            label,
            Fail,
            format!("{name}: bogus: delivery is deferred, never downgraded"),
            Some(Security::Bogus),
        ),
        Outcome::Failed(e) => check(
            label,
            Fail,
            format!("{name}: lookup failed ({e}): delivery is deferred, never downgraded"),
            None,
        ),
    }
}
