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
    recipients_total: IntCounterVec,
    posture_lookup_seconds: HistogramVec,
    quarantine_items: IntGauge,
    quarantine_bytes: IntGauge,
    store_up: IntGaugeVec,
    quarantine_reviews_total: IntCounterVec,
    audit_failures_total: prometheus::IntCounter,
    repeats_total: prometheus::IntCounter,
    upstream_results_total: IntCounterVec,
    domain_dns_failing: IntGaugeVec,
    auth_attempts_total: IntCounterVec,
    auth_checks_waiting: IntGauge,
    auth_check_permits: IntGauge,
    auth_delay_seconds_total: prometheus::Counter,
    inspect_failures_total: IntCounterVec,
    tls_policy_lookups_total: IntCounterVec,
    portal_items: IntGauge,
    portal_events_total: IntCounterVec,
    portal_sms_total: IntCounterVec,
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
    let recipients_total = IntCounterVec::new(
        Opts::new(
            "sluis_recipients_total",
            "Policy decisions per recipient, by verdict, the domain's posture and its class",
        ),
        &["verdict", "posture", "class"],
    )
    .expect("metric");
    let posture_lookup_seconds = HistogramVec::new(
        HistogramOpts::new(
            "sluis_posture_lookup_seconds",
            "Time to assess a recipient domain's TLS posture (DNS and probe), by resulting level",
        )
        .buckets(vec![0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0]),
        &["result"],
    )
    .expect("metric");
    let quarantine_items = IntGauge::new(
        "sluis_quarantine_items",
        "Messages held in quarantine for review",
    )
    .expect("metric");
    let quarantine_bytes = IntGauge::new(
        "sluis_quarantine_bytes",
        "Bytes used by the quarantine store",
    )
    .expect("metric");
    let store_up = IntGaugeVec::new(
        Opts::new(
            "sluis_store_up",
            "Whether the state store (files or PostgreSQL) answered its last readiness check",
        ),
        &["kind"],
    )
    .expect("metric");
    let quarantine_reviews_total = IntCounterVec::new(
        Opts::new(
            "sluis_quarantine_reviews_total",
            "Review actions on quarantined messages (release, reject, purge)",
        ),
        &["action"],
    )
    .expect("metric");
    let audit_failures_total = prometheus::IntCounter::new(
        "sluis_audit_write_failures_total",
        "Audit records that could not be written (the transaction was deferred)",
    )
    .expect("metric");
    let repeats_total = prometheus::IntCounter::new(
        "sluis_repeats_total",
        "Retries of a message whose positive reply the client may not have read (after a crash): answered again, not delivered twice",
    )
    .expect("metric");
    let upstream_results_total = IntCounterVec::new(
        Opts::new(
            "sluis_upstream_results_total",
            "Upstream transactions by lane and result (accepted, deferred, refused, unavailable)",
        ),
        &["lane", "result"],
    )
    .expect("metric");
    let auth_attempts_total = IntCounterVec::new(
        Opts::new(
            "sluis_auth_attempts_total",
            "SMTP AUTH attempts by result (accepted, refused)",
        ),
        &["result"],
    )
    .expect("metric");
    let auth_checks_waiting = IntGauge::new(
        "sluis_auth_checks_waiting",
        "Password checks waiting for memory (auth.check_memory)",
    )
    .expect("metric");
    let auth_check_permits = IntGauge::new(
        "sluis_auth_check_permits",
        "Password checks that may run at once (auth.check_memory / memory per check)",
    )
    .expect("metric");
    let auth_delay_seconds_total = prometheus::Counter::new(
        "sluis_auth_delay_seconds_total",
        "Time clients were made to wait after failed logins (per-address back-off)",
    )
    .expect("metric");
    let inspect_failures_total = IntCounterVec::new(
        Opts::new(
            "sluis_inspect_failures_total",
            "Inspections that failed and were reported as uninspectable: the inspector (panic, timeout) or a document reader (pdf, compound, rtf)",
        ),
        &["reason"],
    )
    .expect("metric");
    let tls_policy_lookups_total = IntCounterVec::new(
        Opts::new(
            "sluis_tls_policy_lookups_total",
            "TLS policy lookups by the MTA behind the lanes (socketmap), by the lane's level and \
             the answer (dane-only, secure, fingerprint, encrypt, may, notfound, temp, perm)",
        ),
        &["lane_level", "answer"],
    )
    .expect("metric");
    let domain_dns_failing = IntGaugeVec::new(
        Opts::new(
            "sluis_domain_dns_failing",
            "1 while a listed domain's ownership lookup is bogus or fails (behind a validating \
             resolver, broken DNSSEC shows as a failed lookup)",
        ),
        &["domain", "class"],
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
    let portal_items = IntGauge::new(
        "sluis_portal_items",
        "Messages waiting in the secure pickup portal",
    )
    .expect("metric");
    let portal_events_total = IntCounterVec::new(
        Opts::new(
            "sluis_portal_events_total",
            "Pickup portal events (notified, opened, code-sent, code-failed, locked, viewed, \
             downloaded, replied, revoked, expired...)",
        ),
        &["event"],
    )
    .expect("metric");
    let portal_sms_total = IntCounterVec::new(
        Opts::new(
            "sluis_portal_sms_total",
            "SMS codes handed to the provider (sent) or given up on after every try (failed)",
        ),
        &["result"],
    )
    .expect("metric");
    for c in [
        Box::new(sessions_active.clone()) as Box<dyn prometheus::core::Collector>,
        Box::new(portal_items.clone()),
        Box::new(portal_events_total.clone()),
        Box::new(portal_sms_total.clone()),
        Box::new(session_seconds.clone()),
        Box::new(messages_total.clone()),
        Box::new(upstream_seconds.clone()),
        Box::new(findings_total.clone()),
        Box::new(inspect_seconds.clone()),
        Box::new(domain_ownership_ok.clone()),
        Box::new(recipients_refused_total.clone()),
        Box::new(recipients_total.clone()),
        Box::new(posture_lookup_seconds.clone()),
        Box::new(quarantine_items.clone()),
        Box::new(quarantine_bytes.clone()),
        Box::new(store_up.clone()),
        Box::new(quarantine_reviews_total.clone()),
        Box::new(audit_failures_total.clone()),
        Box::new(repeats_total.clone()),
        Box::new(upstream_results_total.clone()),
        Box::new(domain_dns_failing.clone()),
        Box::new(build_info),
        Box::new(auth_attempts_total.clone()),
        Box::new(auth_checks_waiting.clone()),
        Box::new(auth_check_permits.clone()),
        Box::new(auth_delay_seconds_total.clone()),
        Box::new(inspect_failures_total.clone()),
        Box::new(tls_policy_lookups_total.clone()),
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
        recipients_total,
        posture_lookup_seconds,
        quarantine_items,
        quarantine_bytes,
        store_up,
        quarantine_reviews_total,
        audit_failures_total,
        repeats_total,
        upstream_results_total,
        domain_dns_failing,
        auth_attempts_total,
        auth_checks_waiting,
        auth_check_permits,
        auth_delay_seconds_total,
        inspect_failures_total,
        tls_policy_lookups_total,
        portal_items,
        portal_events_total,
        portal_sms_total,
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
pub fn message(code: u16, rule: &str) {
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
/// `findings`: (detector, confidence) of each finding.
pub fn inspected<'a>(findings: impl IntoIterator<Item = (&'a str, &'a str)>, d: Duration) {
    METRICS.inspect_seconds.observe(d.as_secs_f64());
    for (detector, confidence) in findings {
        METRICS
            .findings_total
            .with_label_values(&[detector, confidence])
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

/// Whether a listed domain's lookups fail (listed domains only: a bounded label set).
pub fn domain_dns_failing(domain: &str, class: &str, failing: bool) {
    METRICS
        .domain_dns_failing
        .with_label_values(&[domain, class])
        .set(i64::from(failing));
}

pub fn forget_domain(domain: &str) {
    let _ = METRICS.domain_ownership_ok.remove_label_values(&[domain]);
    for class in ["managed", "partner"] {
        let _ = METRICS
            .domain_dns_failing
            .remove_label_values(&[domain, class]);
    }
}

/// An AUTH attempt's result.
pub fn auth_attempt(accepted: bool) {
    let result = if accepted { "accepted" } else { "refused" };
    METRICS
        .auth_attempts_total
        .with_label_values(&[result])
        .inc();
}

/// Password checks waiting for a slot: +1 when one starts waiting, -1 when it stops.
pub fn auth_check_waiting(delta: i64) {
    METRICS.auth_checks_waiting.add(delta);
}

pub fn auth_check_permits(n: usize) {
    METRICS.auth_check_permits.set(n as i64);
}

/// A client made to wait after failed logins.
pub fn auth_delayed(d: Duration) {
    METRICS.auth_delay_seconds_total.inc_by(d.as_secs_f64());
}

/// An inspection that failed; `reason` is one of a fixed set (panic, timeout).
pub fn inspect_failed(reason: &'static str) {
    METRICS
        .inspect_failures_total
        .with_label_values(&[reason])
        .inc();
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

/// One recipient's decision (verdict and rule names, levels and classes: bounded sets).
pub fn recipient_decided(verdict: &str, posture: &str, class: &str) {
    METRICS
        .recipients_total
        .with_label_values(&[verdict, posture, class])
        .inc();
}

pub fn posture_lookup(result: &str, d: Duration) {
    METRICS
        .posture_lookup_seconds
        .with_label_values(&[result])
        .observe(d.as_secs_f64());
}

pub fn quarantine_usage(items: usize, bytes: u64) {
    METRICS
        .quarantine_items
        .set(i64::try_from(items).unwrap_or(i64::MAX));
    METRICS
        .quarantine_bytes
        .set(i64::try_from(bytes).unwrap_or(i64::MAX));
}

/// The store's last readiness check: `kind` is "files" or "postgres".
pub fn store_up(kind: &'static str, up: bool) {
    METRICS
        .store_up
        .with_label_values(&[kind])
        .set(i64::from(up));
}

pub fn quarantine_review(action: &'static str) {
    METRICS
        .quarantine_reviews_total
        .with_label_values(&[action])
        .inc();
}

/// How one upstream transaction ended: `result` is one of four fixed names.
pub fn upstream_result(lane: &str, result: &'static str) {
    METRICS
        .upstream_results_total
        .with_label_values(&[lane, result])
        .inc();
}

/// One TLS policy lookup: `lane_level` is a ladder level's name, `answer` one of eight names.
pub fn tls_policy_lookup(lane_level: &'static str, answer: &'static str) {
    METRICS
        .tls_policy_lookups_total
        .with_label_values(&[lane_level, answer])
        .inc();
}

/// A portal item more (sealed) or fewer (shredded); `portal_items` sets the count outright.
pub fn portal_items_change(delta: i64) {
    METRICS.portal_items.add(delta);
}

pub fn portal_items(n: usize) {
    METRICS
        .portal_items
        .set(i64::try_from(n).unwrap_or(i64::MAX));
}

/// One portal event: `event` is one of the fixed names of `portal::Event`.
pub fn portal_event(event: &'static str) {
    METRICS
        .portal_events_total
        .with_label_values(&[event])
        .inc();
}

pub fn portal_sms(sent: bool) {
    METRICS
        .portal_sms_total
        .with_label_values(&[if sent { "sent" } else { "failed" }])
        .inc();
}

pub fn audit_failure() {
    METRICS.audit_failures_total.inc();
}

pub fn repeat() {
    METRICS.repeats_total.inc();
}

/// The text exposition format for /metrics.
pub fn render() -> String {
    let mut out = Vec::new();
    let _ = TextEncoder::new().encode(&METRICS.registry.gather(), &mut out);
    String::from_utf8(out).unwrap_or_default()
}
