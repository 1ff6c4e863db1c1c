//! Prometheus metrics. Labels take values from small fixed sets only (verdicts, rule names, lane
//! names from the configuration): never an address, a subject or anything from a message.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

struct Metrics {
    registry: Registry,
    recipients_refused_total: IntCounterVec,
    domain_ownership_ok: IntGaugeVec,
    findings_total: IntCounterVec,
    inspect_seconds: Histogram,
    sessions_active: IntGauge,
    session_seconds: Histogram,
    messages_total: IntCounterVec,
    upstream_seconds: HistogramVec,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let registry = Registry::new();
    let sessions_active =
        IntGauge::new("sluis_smtp_sessions_active", "SMTP sessions in progress").expect("metric");
    let session_seconds = Histogram::with_opts(
        HistogramOpts::new("sluis_smtp_session_seconds", "Duration of SMTP sessions")
            .buckets(vec![0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0]),
    )
    .expect("metric");
    let messages_total = IntCounterVec::new(
        Opts::new(
            "sluis_messages_total",
            "Messages by verdict and by the rule that decided it",
        ),
        &["verdict", "rule"],
    )
    .expect("metric");
    let upstream_seconds = HistogramVec::new(
        HistogramOpts::new(
            "sluis_upstream_seconds",
            "Time to relay one transaction to an upstream lane",
        )
        .buckets(vec![0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0]),
        &["lane"],
    )
    .expect("metric");
    let findings_total = IntCounterVec::new(
        Opts::new(
            "sluis_findings_total",
            "Findings of patient-identifying content, by detector and confidence",
        ),
        &["detector", "confidence"],
    )
    .expect("metric");
    let inspect_seconds = Histogram::with_opts(
        HistogramOpts::new("sluis_inspect_seconds", "Time to inspect one message")
            .buckets(vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0]),
    )
    .expect("metric");
    let domain_ownership_ok = IntGaugeVec::new(
        Opts::new(
            "sluis_domain_ownership_ok",
            "1 while a managed or partner domain's ownership proof holds, 0 when it has lapsed",
        ),
        &["domain"],
    )
    .expect("metric");
    let recipients_refused_total = IntCounterVec::new(
        Opts::new(
            "sluis_recipients_refused_total",
            "Recipients refused at RCPT, by the rule that refused them",
        ),
        &["rule"],
    )
    .expect("metric");
    let build_info = IntGaugeVec::new(
        Opts::new("sluis_build_info", "Build of the running Sluis"),
        &["version"],
    )
    .expect("metric");
    build_info
        .with_label_values(&[env!("CARGO_PKG_VERSION")])
        .set(1);
    // CPU, memory, open files and start time of this process (process_* families).
    #[cfg(target_os = "linux")]
    registry
        .register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .expect("unique metric names");
    for c in [
        Box::new(sessions_active.clone()) as Box<dyn prometheus::core::Collector>,
        Box::new(session_seconds.clone()),
        Box::new(messages_total.clone()),
        Box::new(upstream_seconds.clone()),
        Box::new(findings_total.clone()),
        Box::new(inspect_seconds.clone()),
        Box::new(domain_ownership_ok.clone()),
        Box::new(recipients_refused_total.clone()),
        Box::new(build_info),
    ] {
        registry.register(c).expect("unique metric names");
    }
    Metrics {
        registry,
        recipients_refused_total,
        domain_ownership_ok,
        findings_total,
        inspect_seconds,
        sessions_active,
        session_seconds,
        messages_total,
        upstream_seconds,
    }
});

/// Counts a session while it lives.
pub struct SessionGuard(std::time::Instant);

impl SessionGuard {
    pub fn start() -> Self {
        METRICS.sessions_active.inc();
        SessionGuard(std::time::Instant::now())
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        METRICS.sessions_active.dec();
        METRICS
            .session_seconds
            .observe(self.0.elapsed().as_secs_f64());
    }
}

/// The verdict a message got, by reply class: deliver (2xx), defer (4xx), refuse (5xx).
pub fn message(code: u16, rule: &'static str) {
    let verdict = match code / 100 {
        2 => "deliver",
        4 => "defer",
        _ => "refuse",
    };
    METRICS
        .messages_total
        .with_label_values(&[verdict, rule])
        .inc();
}

/// Counts an inspection's findings (detector names come from code or configuration, so the
/// label set is bounded) and its duration.
pub fn inspected(result: &crate::inspect::Inspection, d: Duration) {
    METRICS.inspect_seconds.observe(d.as_secs_f64());
    for f in &result.findings {
        METRICS
            .findings_total
            .with_label_values(&[f.detector.name(), f.confidence.name()])
            .inc();
    }
}

/// Ownership of a listed domain (configured domains only: a bounded label set).
pub fn domain_ownership(domain: &str, ok: bool) {
    METRICS
        .domain_ownership_ok
        .with_label_values(&[domain])
        .set(i64::from(ok));
}

pub fn forget_domain(domain: &str) {
    let _ = METRICS.domain_ownership_ok.remove_label_values(&[domain]);
}

/// A recipient refused at RCPT; `rule` is one of a fixed set of names.
pub fn recipient_refused(rule: &'static str) {
    METRICS
        .recipients_refused_total
        .with_label_values(&[rule])
        .inc();
}

pub fn upstream_seconds(lane: &str, d: Duration) {
    METRICS
        .upstream_seconds
        .with_label_values(&[lane])
        .observe(d.as_secs_f64());
}

/// The text exposition format for /metrics.
pub fn render() -> String {
    let mut out = Vec::new();
    let _ = TextEncoder::new().encode(&METRICS.registry.gather(), &mut out);
    String::from_utf8(out).unwrap_or_default()
}
