//! The DNS evidence about a recipient domain, as checks a reviewer can read (like internet.nl's
//! mail test): MX, DANE availability per MX host, the MTA-STS announcement, the NTA 7516
//! record; then the STARTTLS probe of each MX host, which places it on the ladder.

use serde::{Deserialize, Serialize};

use super::dns::{Outcome, Resolve, Security, Tlsa};
use super::ladder::Level;
use super::records;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckResult {
    Pass,
    /// Not a failure, but weaker than it could be (e.g. TLSA records that cannot be used).
    Warn,
    Fail,
    /// A fact without a verdict (no MTA-STS, no NTA 7516 record).
    Info,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub check: String,
    pub result: CheckResult,
    pub evidence: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
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

/// What the DNS said about the MX RRset, for the ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MxFacts {
    /// MX hosts (or the implicit MX); `secure` when the answer was DNSSEC-secure.
    Hosts {
        secure: bool,
    },
    /// Null MX (RFC 7505): the domain takes no mail.
    Null,
    Bogus,
    Failed,
}

/// The TLSA situation of one MX host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsaFacts {
    /// The MX answer was not secure, or the TLSA RRset is not: DANE does not apply.
    NotApplicable,
    /// Secure denial: no TLSA.
    None,
    /// Usable DANE-TA / DANE-EE records: the certificate must match one.
    Usable(Vec<Tlsa>),
    /// Secure TLSA records, none usable: TLS is mandatory, unauthenticated (RFC 7672 2.2).
    Unusable,
    Bogus,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    pub host: String,
    pub tlsa: TlsaFacts,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsFacts {
    pub mx: MxFacts,
    /// MX hosts in preference order (at most `MAX_MX_HOSTS`); empty when mail cannot go there.
    pub hosts: Vec<HostFacts>,
    /// The domain publishes an NTA 7516 record (a claim, never proof).
    pub nta7516: bool,
    /// The policy id of a valid `_mta-sts` TXT record.
    pub sts_id: Option<String>,
}

/// The DNS checks of `domain`, and the facts the ladder is built from.
pub async fn dns_checks(dns: &impl Resolve, domain: &str) -> (Vec<Check>, DnsFacts) {
    let mut facts = DnsFacts {
        mx: MxFacts::Failed,
        hosts: Vec::new(),
        nta7516: false,
        sts_id: None,
    };
    let checks = dns_checks_into(dns, domain, &mut facts).await;
    (checks, facts)
}

async fn dns_checks_into(dns: &impl Resolve, domain: &str, facts: &mut DnsFacts) -> Vec<Check> {
    use CheckResult::*;
    let mut out = Vec::new();
    let (hosts, mx_security) = match dns.mx(domain).await {
        Outcome::Found { records, security } => {
            if records.iter().any(|m| m.host.is_empty()) {
                facts.mx = MxFacts::Null;
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
            facts.mx = MxFacts::Bogus;
            out.push(check(
                "mx",
                Fail,
                "MX answer is bogus (DNSSEC validation failed): mail is deferred, never sent in the clear".into(),
                Some(Security::Bogus),
            ));
            return out;
        }
        Outcome::Failed(e) => {
            facts.mx = MxFacts::Failed;
            out.push(check(
                "mx",
                Fail,
                format!("MX lookup failed ({e}): mail is deferred"),
                None,
            ));
            return out;
        }
    };
    facts.mx = MxFacts::Hosts {
        secure: mx_security == Security::Secure,
    };
    if mx_security != Security::Secure {
        out.push(check(
            "dane",
            Info,
            "the MX answer is not DNSSEC-secure: DANE does not apply (RFC 7672 2.2.1)".into(),
            Some(mx_security),
        ));
        facts
            .hosts
            .extend(hosts.iter().take(MAX_MX_HOSTS).map(|h| HostFacts {
                host: h.clone(),
                tlsa: TlsaFacts::NotApplicable,
            }));
    } else {
        for host in hosts.iter().take(MAX_MX_HOSTS) {
            let (c, tlsa) = dane_check(dns, host).await;
            out.push(c);
            facts.hosts.push(HostFacts {
                host: host.clone(),
                tlsa,
            });
        }
    }
    let sts_name = format!("_mta-sts.{domain}");
    out.push(match dns.txt(&sts_name).await {
        Outcome::Found { records, security } => match records::mta_sts(&records) {
            Ok(Some(r)) => {
                facts.sts_id = Some(r.id.clone());
                check(
                    "mta-sts-record",
                    Pass,
                    format!("{sts_name}: v=STSv1, id={}", r.id),
                    Some(security),
                )
            }
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
                facts.nta7516 = true;
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

/// Probes one MX host and places it on the ladder: STARTTLS offered, what TLS it negotiates,
/// whether the certificate matches the host's TLSA records or is WebPKI-valid for its name.
#[allow(clippy::too_many_arguments)]
pub async fn probe_host(
    dns: &impl Resolve,
    prober: &impl super::probe::Prober,
    facts: &HostFacts,
    roots: std::sync::Arc<rustls::RootCertStore>,
    helo: &str,
    port: u16,
    sts: Option<&super::mta_sts::Policy>,
    trust: Option<&super::trust::Expectation>,
) -> (Check, Level) {
    use super::dane::{DaneResult, verify};
    use super::probe::Probe;
    use CheckResult::*;
    let host = &facts.host;
    let label = format!("starttls:{host}");
    match &facts.tlsa {
        TlsaFacts::Bogus => {
            return (
                check(
                    label,
                    Fail,
                    "not probed: its TLSA answer is bogus".into(),
                    None,
                ),
                Level::Bogus,
            );
        }
        TlsaFacts::Failed => {
            return (
                check(
                    label,
                    Fail,
                    "not probed: its TLSA lookup failed".into(),
                    None,
                ),
                Level::Unknown,
            );
        }
        _ => {}
    }
    let ip = match dns.ips(host).await {
        Outcome::Found { records, .. } => records[0],
        Outcome::Bogus => {
            return (
                check(label, Fail, format!("address of {host} is bogus"), None),
                Level::Bogus,
            );
        }
        other => {
            return (
                check(
                    label,
                    Fail,
                    format!("no address for {host}: {other:?}"),
                    None,
                ),
                Level::Unknown,
            );
        }
    };
    match prober.probe(host, ip, port, roots, helo).await {
        Probe::Tls {
            params,
            webpki,
            chain,
        } => {
            let (_, rating) = super::ncsc::rate(&params);
            let tls = format!(
                "{}, {}{} (NCSC: {rating}){}",
                params.version,
                params.cipher,
                params.group.map(|g| format!(", {g}")).unwrap_or_default(),
                chain
                    .first()
                    .and_then(super::trust::facts_of)
                    .map(|f| format!("; {f}"))
                    .unwrap_or_default()
            );
            if let TlsaFacts::Usable(tlsa) = &facts.tlsa {
                let now = rustls_pki_types::UnixTime::now();
                return match verify(tlsa, &chain, host, now) {
                    DaneResult::Matched(rec) => (
                        check(
                            label,
                            Pass,
                            format!("{tls}; certificate matches TLSA {rec} (DANE)"),
                            None,
                        ),
                        Level::Dane,
                    ),
                    DaneResult::NoMatch(why) => (
                        check(
                            label,
                            Fail,
                            format!(
                                "{tls}; certificate does not match its TLSA records ({why}): \
                                 a DANE client must not deliver to {host}"
                            ),
                            None,
                        ),
                        Level::None,
                    ),
                };
            }
            if let Some(policy) = sts {
                // MTA-STS enforce: only listed MX hosts, only with a WebPKI-valid certificate.
                return match (policy.allows(host), webpki) {
                    (false, _) => (
                        check(
                            label,
                            Fail,
                            format!(
                                "{tls}; {host} matches no mx pattern of the MTA-STS policy ({}): \
                                 an MTA-STS sender must not deliver to it",
                                policy.mx.join(", ")
                            ),
                            None,
                        ),
                        Level::None,
                    ),
                    (true, Ok(())) => (
                        check(
                            label,
                            Pass,
                            format!(
                                "{tls}; certificate valid for {host} (WebPKI), listed in the \
                                 MTA-STS policy (enforce)"
                            ),
                            None,
                        ),
                        Level::MtaSts,
                    ),
                    (true, Err(e)) => (
                        check(
                            label,
                            Fail,
                            format!(
                                "{tls}; certificate not valid for {host} ({e}): the MTA-STS \
                                 policy (enforce) forbids delivery to it"
                            ),
                            None,
                        ),
                        Level::None,
                    ),
                };
            }
            if let Some(expectation) = trust {
                // A partner on the trust list: its agreed certificate, or an impostor.
                return match expectation.check(&chain, host) {
                    Ok(why) => (
                        check(label, Pass, format!("{tls}; {why} (trust list)"), None),
                        Level::Trusted,
                    ),
                    Err(why) => (
                        check(
                            label,
                            Fail,
                            format!(
                                "{tls}; {why}: not the server agreed with the partner, mail \
                                 must not go there"
                            ),
                            None,
                        ),
                        Level::None,
                    ),
                };
            }
            match webpki {
                Ok(()) => (
                    check(
                        label,
                        Pass,
                        format!("{tls}; certificate valid for {host} (WebPKI)"),
                        None,
                    ),
                    Level::Verified,
                ),
                Err(e) => (
                    check(
                        label,
                        Warn,
                        format!(
                            "{tls}; certificate not valid for {host} ({e}): encrypted, not authenticated"
                        ),
                        None,
                    ),
                    Level::Encrypted,
                ),
            }
        }
        Probe::NoStartTls => (
            check(
                label,
                Fail,
                format!("{host} offers no STARTTLS: mail to it would travel in plaintext"),
                None,
            ),
            Level::None,
        ),
        Probe::Unreachable(e) => (
            check(label, Fail, format!("{host} ({ip}) unreachable: {e}"), None),
            Level::Unknown,
        ),
        Probe::Failed(e) => (
            check(label, Fail, format!("{host} ({ip}): {e}"), None),
            Level::None,
        ),
    }
}

/// DANE for one MX host whose MX answer was secure (RFC 7672 2.2).
async fn dane_check(dns: &impl Resolve, host: &str) -> (Check, TlsaFacts) {
    use CheckResult::*;
    let name = format!("_25._tcp.{host}");
    let label = format!("dane:{host}");
    match dns.tlsa(&name).await {
        Outcome::Found {
            records,
            security: Security::Secure,
        } => {
            let usable: Vec<Tlsa> = records
                .iter()
                .filter(|t| t.usable_for_smtp())
                .cloned()
                .collect();
            if usable.is_empty() {
                (
                    check(
                        label,
                        Warn,
                        format!(
                            "{name}: {} TLSA record(s), none usable for SMTP: TLS is mandatory, without authentication (RFC 7672 2.2)",
                            records.len()
                        ),
                        Some(Security::Secure),
                    ),
                    TlsaFacts::Unusable,
                )
            } else {
                let shown: Vec<String> = usable
                    .iter()
                    .map(|t| {
                        format!(
                            "{} {} {} {}…",
                            t.usage,
                            t.selector,
                            t.matching,
                            data_encoding::HEXLOWER.encode(&t.data[..t.data.len().min(8)])
                        )
                    })
                    .collect();
                (
                    check(
                        label,
                        Pass,
                        format!("{name}: TLSA {}", shown.join(", ")),
                        Some(Security::Secure),
                    ),
                    TlsaFacts::Usable(usable),
                )
            }
        }
        Outcome::Found { security, .. } => (
            check(
                label,
                Info,
                format!("{name}: TLSA not DNSSEC-secure, ignored: no DANE"),
                Some(security),
            ),
            TlsaFacts::NotApplicable,
        ),
        Outcome::NotFound { security } => (
            check(
                label,
                Info,
                format!("{name}: no TLSA: no DANE"),
                Some(security),
            ),
            if security == Security::Secure {
                TlsaFacts::None
            } else {
                TlsaFacts::NotApplicable
            },
        ),
        Outcome::Bogus => (
            check(
                label,
                Fail,
                format!("{name}: bogus: delivery is deferred, never downgraded"),
                Some(Security::Bogus),
            ),
            TlsaFacts::Bogus,
        ),
        Outcome::Failed(e) => (
            check(
                label,
                Fail,
                format!("{name}: lookup failed ({e}): delivery is deferred, never downgraded"),
                None,
            ),
            TlsaFacts::Failed,
        ),
    }
}
