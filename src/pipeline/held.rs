//! The quarantine item a transaction writes for its held recipients: the envelope, the masked
//! findings, and per recipient the rule, the reasons, the level a release must meet and the
//! posture evidence.

use crate::quarantine::{HeldRecipient, Item};

use super::Case;
use super::record::UPSTREAM_DEFERRED;

/// The quarantine item for the recipients at `idx`.
pub(super) fn item(case: &Case, idx: &[usize], id: &str, late: Option<&str>) -> Item {
    let (created, created_unix) = crate::quarantine::stamp();
    Item {
        id: id.to_string(),
        transaction: case.id.clone(),
        created,
        created_unix,
        client: case.session.client_ip.to_string(),
        user: case.session.user.clone(),
        sender: case.mail_from.address.clone(),
        body_8bit: case.mail_from.flags & smtp_proto::MAIL_BODY_8BITMIME != 0,
        smtputf8: case.mail_from.flags & smtp_proto::MAIL_SMTPUTF8 != 0,
        envid: case.mail_from.env_id.clone(),
        message_id: case.message_id.clone(),
        size: case.facts.size,
        sensitive: case.facts.sensitive,
        score: case.facts.score,
        findings: case.findings.clone(),
        forward_signals: case.facts.forward_signals.clone(),
        recipients: idx
            .iter()
            .map(|&i| {
                let d = &case.judged[i].decision;
                let (rule, reasons) = match late {
                    Some(why) => (UPSTREAM_DEFERRED.to_string(), vec![why.to_string()]),
                    None => (d.rule.clone(), d.reasons.clone()),
                };
                HeldRecipient {
                    address: case.rcpts[i].address.clone(),
                    orcpt: case.rcpts[i].orcpt.clone(),
                    rule,
                    reasons,
                    class: Some(case.judged[i].class),
                    allow_override: d.allow_override,
                    // A late-lane hold keeps the lane's requirement: release never weaker.
                    require: d.require,
                    posture: d.posture.as_deref().cloned(),
                }
            })
            .collect(),
        released: Vec::new(),
        sender_reports: Vec::new(),
        report_token: None,
        claim: None,
    }
}
