//! The audit records' schema (NEN 7513: who, what, when, why), one type per event.
//!
//! Every writer builds one of these; nobody assembles JSON by hand. The JSON of a record is the
//! shape logs have had since the first version (`event` names the variant, field names as
//! below); `tests::records_of_the_previous_version_read_back_unchanged` reads a log written by
//! the version before these types and checks that every record survives a round trip through
//! them byte for byte. `seq`, `time` and `prev` are added by the log itself.

use serde::{Deserialize, Serialize};

use crate::posture::checks::Check;
use crate::terms::{Level, RecipientClass};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Record {
    /// What a transaction carries, once per transaction before its decisions: the facts all
    /// its recipients share (findings, forward signals), so they are not repeated per
    /// recipient.
    Message(Message),
    /// What was decided for one recipient of a transaction, and why.
    Decision(Decision),
    /// What became of a transaction: the lanes' answers and the client's reply.
    Outcome(Outcome),
    /// A reviewer's action on a held item (release, reject, purge).
    Review(Review),
    /// What the upstream said to one lane's share of a released item.
    ReleaseResult(ReleaseResult),
    /// What the lane's delivery report said became of a released recipient.
    ReleaseOutcome(ReleaseOutcome),
    /// Something that happened to a message in the pickup portal (DESIGN §13).
    Portal(PortalEvent),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub transaction: String,
    pub client: String,
    pub user: Option<String>,
    pub sender: String,
    pub recipients: usize,
    pub message_id: Option<String>,
    pub size: u64,
    pub sensitive: bool,
    pub score: u32,
    /// Masked findings ("bsn ***-**-782 in part 1 (high)"), at most `inspect.max_findings`
    /// and a line saying how many more: never a value.
    pub findings: Vec<String>,
    pub forward_signals: Vec<String>,
    pub uninspectable: bool,
    pub tagged: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub transaction: String,
    pub client: String,
    pub user: Option<String>,
    pub sender: String,
    pub recipient: String,
    pub recipient_class: RecipientClass,
    pub message_id: Option<String>,
    /// The action taken: deliver, quarantine, refuse, defer.
    pub decision: String,
    pub rule: String,
    pub reasons: Vec<String>,
    pub lane: Option<String>,
    pub require: Option<Level>,
    pub sensitive: bool,
    pub score: u32,
    /// Masked findings, in records written before the transaction's `Message` record existed;
    /// now they are there, once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub findings: Option<Vec<String>>,
    pub forward_signals: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posture: Option<PostureEvidence>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine_id: Option<String>,
    /// portal: the item the recipient picks the message up from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub portal_id: Option<String>,
}

/// The posture a decision was made on, with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PostureEvidence {
    pub level: Level,
    pub assessed_at: String,
    pub checks: Vec<Check>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub transaction: String,
    pub client: String,
    pub lanes: Vec<LaneOutcome>,
    /// The reply code the client got (0 when `unknown`).
    pub reply: u16,
    /// Written at start for a transaction whose decisions were recorded but whose outcome was
    /// not: the process ended in between, so whether the client got its reply, and whether the
    /// upstream had accepted, is not known here (the upstream's and the client's logs know).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unknown: bool,
    /// The client's retry of a transaction whose positive reply a crash may have cut off: it
    /// got that reply again, and nothing was sent, held or sealed a second time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_of: Option<String>,
    /// Written at start, from the notes of unread replies (`pipeline::repeats`): what is known
    /// of a transaction whose outcome record the process did not write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub positive_reply: Option<PositiveReply>,
}

/// How far a positive reply got, for an outcome recorded at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PositiveReply {
    /// Everything was done (the upstream had accepted, the copy was held) and the positive
    /// reply was being written; whether the client got it is not known.
    Written,
    /// The client sent another command after the positive reply: it read it.
    Read,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaneOutcome {
    pub lane: String,
    pub recipients: Vec<String>,
    /// "250 2.0.0": code and enhanced status, no text (texts can name recipients).
    pub upstream_reply: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Review {
    /// release, release-refused, reject, purge.
    pub action: String,
    pub quarantine_id: String,
    pub transaction: String,
    pub reviewer: String,
    pub reason: String,
    pub sender: String,
    pub recipients: Vec<String>,
    /// release: the lanes it goes through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lanes: Option<Vec<String>>,
    /// release-refused: why Sluis refused it (the recipients' servers cannot meet the level).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// portal: the pickup-portal item the held message was sealed into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub portal_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseResult {
    pub quarantine_id: String,
    pub transaction: String,
    pub reviewer: String,
    pub lane: String,
    pub recipients: Vec<String>,
    pub upstream_reply: String,
    /// The lane accepted (the name is older than this distinction): delivery is the lane's
    /// now; the final outcome is a `release-outcome` record when the lane reports it.
    pub delivered: bool,
    /// The level the lane enforces at delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub report_awaited: bool,
}

/// What a lane's delivery report says became of one released recipient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseOutcome {
    pub quarantine_id: String,
    pub transaction: String,
    pub recipient: String,
    /// delivered, failed or delayed.
    pub outcome: String,
    /// The report's own words: relayed, delivered, failed, delayed.
    pub action: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_mta: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnostic: Option<String>,
}

/// One event of a portal item for one recipient (or for all, on revocation and expiry):
/// notified, opened, code-sent, code-failed, locked, authenticated, viewed, downloaded,
/// replied, revoked, extended, expired, completed, notify-failed, sms-failed,
/// code-mail-failed, read-notice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortalEvent {
    pub portal_id: String,
    pub transaction: String,
    pub action: String,
    /// Empty when the event concerns every recipient.
    pub recipient: String,
    /// How the recipient proved who they are (sms, access-code, email: the lower level).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Who did it, when not the recipient: an administrator, the sender, Sluis itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// What exactly: which download (part number, type, size and SHA-256; never its name,
    /// which may name the patient), tries left, why a send failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Record {
    /// The record as the JSON object the log writes (without `seq`, `time`, `prev`).
    pub fn to_fields(&self) -> serde_json::Map<String, serde_json::Value> {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(m)) => m,
            // Every variant is a struct of plain fields: serialising cannot fail or be other
            // than an object. Should it ever, the record still says what it was.
            _ => {
                let mut m = serde_json::Map::new();
                m.insert("event".into(), "unserialisable".into());
                m
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log written by the version before the typed records (`tests/fixtures/audit-v1`: see
    /// its README for how it was made): every record reads into these types and writes back
    /// to the same fields and values, so old and new logs are one schema.
    #[test]
    fn records_of_the_previous_version_read_back_unchanged() {
        let text = include_str!("../../tests/fixtures/audit-v1/audit.jsonl");
        let mut events = std::collections::BTreeSet::new();
        for line in text.lines() {
            let mut old: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(line).unwrap();
            for k in ["seq", "time", "prev"] {
                old.remove(k);
            }
            let typed: Record = serde_json::from_value(serde_json::Value::Object(old.clone()))
                .unwrap_or_else(|e| panic!("{e}: {line}"));
            assert_eq!(typed.to_fields(), old, "{line}");
            events.insert(old["event"].as_str().unwrap_or_default().to_string());
        }
        let want = ["decision", "outcome", "release-result", "review"];
        assert_eq!(events.into_iter().collect::<Vec<_>>(), want);
    }
}
