//! What is written down about a transaction: the audit records of its decisions and of its
//! outcome (NEN 7513: who, what, when, why), the one summary log line, and the message metric.

use std::collections::BTreeMap;

use crate::audit::Record;
use crate::audit::record::{Decision, LaneOutcome, Message, Outcome, PostureEvidence};
use crate::posture::domain_of;

use super::Case;

/// The rule of recipients held because a later lane deferred after another had accepted.
pub const UPSTREAM_DEFERRED: &str = "upstream-deferred";

/// The audit records of the decisions: the message's facts once, then one per recipient.
/// `deferred_by`: the recipient whose deferral defers the whole transaction (the others
/// record that, and what they would have been).
pub fn decisions(
    case: &Case,
    quarantine_id: Option<&str>,
    portal_id: Option<&str>,
    deferred_by: Option<usize>,
) -> Vec<Record> {
    let judged = &case.judged;
    let facts = &case.facts;
    let message = Record::Message(Message {
        transaction: case.id.clone(),
        client: case.session.client_ip.to_string(),
        user: case.session.user.clone(),
        sender: case.mail_from.address.clone(),
        recipients: case.rcpts.len(),
        message_id: case.message_id.clone(),
        size: facts.size,
        sensitive: facts.sensitive,
        score: facts.score,
        findings: case.findings.clone(),
        forward_signals: facts.forward_signals.clone(),
        uninspectable: facts.uninspectable,
        tagged: facts.tagged,
    });
    std::iter::once(message)
        .chain((0..judged.len()).map(|i| {
            let d = &judged[i].decision;
            let (decision, rule, reasons) = match deferred_by {
                Some(k) if k != i => (
                    "defer",
                    "deferred-with-transaction",
                    vec![format!(
                        "another recipient was deferred by rule {}; the whole transaction is \
                         retried (would have been: {} by {})",
                        judged[k].decision.rule,
                        d.action.name(),
                        d.rule
                    )],
                ),
                _ => (d.action.name(), d.rule.as_str(), d.reasons.clone()),
            };
            let qid = quarantine_id.filter(|_| decision == "quarantine");
            let mut record = decision_for(case, i, decision, rule, reasons, qid);
            if let Record::Decision(d) = &mut record {
                d.portal_id = portal_id
                    .filter(|_| decision == "portal")
                    .map(str::to_string);
            }
            record
        }))
        .collect()
}

/// One decision for recipient `i`, with the NEN 7513 fields: who, what, when, why.
pub fn decision_for(
    case: &Case,
    i: usize,
    decision: &str,
    rule: &str,
    mut reasons: Vec<String>,
    quarantine_id: Option<&str>,
) -> Record {
    let j = &case.judged[i];
    let d = &j.decision;
    if reasons.is_empty() {
        reasons.push("no condition (catch-all rule)".into());
    }
    Record::Decision(Decision {
        transaction: case.id.clone(),
        client: case.session.client_ip.to_string(),
        user: case.session.user.clone(),
        sender: case.mail_from.address.clone(),
        recipient: case.rcpts[i].address.clone(),
        recipient_class: j.class,
        message_id: case.message_id.clone(),
        decision: decision.to_string(),
        rule: rule.to_string(),
        reasons,
        lane: d.lane.clone(),
        require: d.require,
        sensitive: case.facts.sensitive,
        score: case.facts.score,
        findings: None,
        forward_signals: case.facts.forward_signals.clone(),
        posture: d.posture.as_ref().map(|p| PostureEvidence {
            level: p.posture,
            assessed_at: p.assessed_at.clone(),
            checks: p.checks.clone(),
        }),
        quarantine_id: quarantine_id.map(str::to_string),
        portal_id: None,
    })
}

/// What became of the transaction: each lane's answer and the client's reply code.
pub fn outcome(case: &Case, lanes: &[LaneOutcome], code: u16) -> Record {
    Record::Outcome(Outcome {
        transaction: case.id.clone(),
        client: case.session.client_ip.to_string(),
        lanes: lanes.to_vec(),
        reply: code,
        unknown: false,
        repeat_of: None,
        positive_reply: None,
    })
}

/// The transaction's one log line (domains, counts and rule names: no addresses or findings)
/// and its metric.
pub fn summary(case: &Case, size: usize, status: u16) {
    let (facts, judged) = (&case.facts, &case.judged);
    let rule = match judged.first() {
        Some(j) if judged.iter().all(|o| o.decision.rule == j.decision.rule) => {
            j.decision.rule.as_str()
        }
        _ => "mixed",
    };
    crate::metrics::message(status, rule);
    let mut by_rule: BTreeMap<String, usize> = BTreeMap::new();
    for j in judged {
        *by_rule
            .entry(format!("{}:{}", j.decision.rule, j.decision.action.name()))
            .or_default() += 1;
    }
    tracing::info!(
        id = %case.id,
        client = %case.session.client_ip,
        user = case.session.user.as_deref().unwrap_or("-"),
        from_domain = domain_of(&case.mail_from.address),
        rcpt_domains = %case.rcpts.iter().map(|r| domain_of(&r.address)).collect::<Vec<_>>().join(","),
        rcpts = case.rcpts.len(),
        size,
        status,
        decisions = %by_rule.iter().map(|(k, n)| format!("{k}={n}")).collect::<Vec<_>>().join(","),
        forward = %facts.forward_signals.join(","),
        sensitive = facts.sensitive,
        score = facts.score,
        detectors = %facts.detectors.join(","),
        uninspectable = facts.uninspectable,
        tagged = facts.tagged,
        "transaction"
    );
}
