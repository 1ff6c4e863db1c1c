//! `sluis check-domain DOMAIN`: what Sluis knows about a recipient domain, with the evidence:
//! its class, for listed domains whether the ownership proof holds, and the posture ladder.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use sluis::config::Overrides;

use super::{Format, out};

#[derive(Args)]
pub struct CheckDomainArgs {
    domain: String,
    #[arg(long, short)]
    config: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Resolver to ask, overriding dns.resolver (e.g. a test or staging setup).
    #[arg(long, value_name = "ADDR:PORT")]
    resolver: Option<SocketAddr>,
    /// DNSKEY trust anchors (zone-file syntax), overriding dns.trust_anchor_file.
    #[arg(long, value_name = "FILE")]
    trust_anchor: Option<PathBuf>,
    /// Extra CA certificates (PEM) trusted for WebPKI, besides Mozilla's roots.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// Skip the active STARTTLS probe of the MX hosts.
    #[arg(long)]
    no_probe: bool,
}

pub fn check_domain(args: CheckDomainArgs) -> anyhow::Result<()> {
    let CheckDomainArgs {
        domain,
        config,
        format,
        resolver,
        trust_anchor,
        ca_file,
        no_probe,
    } = args;
    use sluis::posture::{Classifier, OwnershipStatus, standing};
    let mut cfg = sluis::app::load_config(config.as_deref(), &Overrides::default())?;
    if let Some(r) = resolver {
        cfg.dns.resolver = r;
    }
    if trust_anchor.is_some() {
        cfg.dns.trust_anchor_file = trust_anchor;
    }
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let class = Classifier::new(&cfg).class_of_domain(&domain);
    let dns = sluis::posture::dns::Dns::new(&cfg.dns)?;
    let listed = cfg
        .domains
        .iter()
        .find(|d| d.name.eq_ignore_ascii_case(&domain));
    let runtime = tokio::runtime::Runtime::new()?;
    let ownership =
        listed.map(|d| runtime.block_on(sluis::posture::ownership::check(&dns, &cfg, d)));
    let status = ownership
        .as_ref()
        .map_or(OwnershipStatus::NotRequired, |o| o.status);
    let effective = standing(class, status == OwnershipStatus::Proven).class;
    let mut checks: Vec<serde_json::Value> = ownership
        .iter()
        .map(|o| {
            serde_json::json!({
                "check": "ownership",
                "result": if o.status == OwnershipStatus::Proven { "pass" } else { "fail" },
                "evidence": o.evidence,
                "dnssec": o.dnssec,
            })
        })
        .collect();
    let mut opts = sluis::posture::ladder::ProbeOptions::from_config(&cfg, ca_file.as_deref())
        .map_err(anyhow::Error::msg)?;
    opts.enabled = !no_probe;
    let assessment = runtime.block_on(sluis::posture::ladder::assess(
        &dns,
        &sluis::posture::probe::StartTlsProber,
        &domain,
        &opts,
    ));
    // What Postfix behind each lane gets from the TLS policy socketmap for this domain.
    let partners = sluis::relay::tls_policy::partners(&cfg);
    let policies: Vec<(String, String)> = cfg
        .upstream
        .lanes
        .iter()
        .map(|(name, lane)| {
            use sluis::relay::tls_policy::{Answer, answer};
            let line = match answer(lane.level, &assessment, partners.get(&domain)) {
                Answer::Policy(p) => p,
                Answer::NotFound => "not found (the lane's own level)".into(),
                Answer::Temp(why) | Answer::Perm(why) => format!("defer: {why}"),
            };
            (format!("{name} ({})", lane.level), line)
        })
        .collect();
    let dns_checks = &assessment.checks;
    checks.extend(
        dns_checks
            .iter()
            .map(|c| serde_json::to_value(c).unwrap_or_default()),
    );
    match format {
        Format::Json => out!(
            "{}",
            serde_json::json!({
                "domain": domain,
                "class": class,
                "effective_class": effective,
                "ownership": status.name(),
                "posture": assessment.posture,
                "nta7516_record": assessment.nta7516_record,
                "assessed_at": assessment.assessed_at,
                "checks": checks,
                "postfix_policy": policies
                    .iter()
                    .map(|(lane, line)| serde_json::json!({"lane": lane, "policy": line}))
                    .collect::<Vec<_>>(),
            })
        ),
        Format::Text => {
            out!("{domain}");
            out!("  class      {}", class.name());
            out!("  posture    {}", assessment.posture);
            out!("  ownership  {}", status.name());
            if effective != class {
                out!("  treated as {} (ownership not proven)", effective.name());
            }
            if let Some(o) = &ownership {
                out!("  evidence   {}", o.evidence);
            }
            for (lane, line) in &policies {
                out!("  postfix    lane {lane}: {line}");
            }
            for c in dns_checks {
                let dnssec = c
                    .dnssec
                    .map(|s| format!(" [dnssec {}]", s.name()))
                    .unwrap_or_default();
                out!(
                    "  {:<22} {:<4} {}{dnssec}",
                    c.check,
                    format!("{:?}", c.result).to_lowercase(),
                    c.evidence
                );
            }
        }
    }
    Ok(())
}
