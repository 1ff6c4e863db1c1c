//! The facts a decision is made on: what inspection found in the message, the signs of an
//! automated forward (headers and envelope), and each recipient's standing (class, lapsed).
//! Postures are not here: the policy asks for them lazily (`decide::Postures`), so mail that
//! needs none never waits for DNS.

use crate::inspect::{Inspection, Inspector};
use crate::policy::{MessageFacts, RecipientFacts};
use crate::posture::{domain_of, standing};
use crate::smtp::SessionFacts;
use crate::spool::SpooledBody;
use crate::wire::Reply;

use super::Pipeline;

impl Pipeline {
    /// RCPT time: a listed domain whose ownership proof failed may belong to someone else now.
    /// Refused here, per recipient, before any content is sent (DESIGN §7 rule 2), when
    /// `ownership.refuse_lapsed` says so.
    pub(super) fn recipient_allowed(
        &self,
        session: &SessionFacts,
        address: &str,
    ) -> Result<(), Reply> {
        if !self.config.ownership.refuse_lapsed {
            return Ok(());
        }
        let r = self.recipient_facts(address);
        if !r.lapsed {
            return Ok(());
        }
        let domain = r.domain;
        tracing::warn!(client = %session.client_ip, %domain, "recipient refused: domain ownership lapsed");
        crate::metrics::recipient_refused("lapsed-domain");
        Err(Reply::new(
            550,
            "5.7.1",
            format!(
                "<{address}>: Recipient refused: the ownership proof of {domain} has lapsed, so \
                 the domain may no longer belong to the intended organisation; mail to it is \
                 held back until the proof returns (ask your mail administrator)"
            ),
        ))
    }

    /// A recipient's domain, class and whether it lapsed.
    pub(super) fn recipient_facts(&self, address: &str) -> RecipientFacts {
        let domain = domain_of(address);
        let listed = self.classifier.class_of_domain(&domain);
        let s = standing(listed, self.ownership.is_proven(&domain));
        RecipientFacts {
            domain,
            class: s.class,
            lapsed: s.lapsed,
        }
    }

    /// Inspects the message as `sluis scan` does; `None` when it could not be read at all (the
    /// policy then treats it as uninspectable).
    pub(super) async fn inspect(&self, body: &mut SpooledBody, id: &str) -> Option<Inspection> {
        if let Some(result) = self.inspector.too_large(body.len()) {
            count(&result, std::time::Duration::ZERO);
            return Some(result);
        }
        let light = body.len() <= crate::inspect::LIGHT_SIZE;
        // A small message needs no slot: the slots bound the memory of messages being parsed.
        let slot = match light {
            true => None,
            false => Some(self.inspect_slots.clone().acquire_owned().await.ok()?),
        };
        let spilled = body.is_spilled();
        if let Some(raw) = body
            .in_memory()
            .filter(|raw| light && Inspector::is_light(raw))
        {
            // One small text part: inspected here, which spares two thread hand-overs per
            // message (about a tenth of the CPU a relayed message costs, README), and where it
            // is, without a copy.
            let started = std::time::Instant::now();
            let result = self.inspector.inspect(raw);
            count(&result, started.elapsed());
            return Some(result);
        }
        let raw = match body.read_all().await {
            Ok(raw) => raw,
            Err(e) => {
                tracing::error!(%id, error = %e, "cannot read the spooled message for inspection");
                return None;
            }
        };
        let started = std::time::Instant::now();
        if light && spilled && Inspector::is_light(&raw) {
            // The same, spilled to disk (a `limits.memory_buffer` under `LIGHT_SIZE`).
            let result = self.inspector.inspect(&raw);
            count(&result, started.elapsed());
            return Some(result);
        }
        let slot = match slot {
            Some(s) => s,
            None => self.inspect_slots.clone().acquire_owned().await.ok()?,
        };
        let inspector = self.inspector.clone();
        // The inspection bounds its own time (inspect.max_time, checked between parts); this is
        // the guard should one step overrun it. Either way the message is uninspectable, and
        // the slot stays taken until the worker is done, so overruns cannot pile up.
        let limit = self.config.inspect.max_time.saturating_mul(2);
        let worker = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            inspector.inspect(&raw)
        });
        let result = match tokio::time::timeout(limit, worker).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => {
                crate::metrics::inspect_failed("panic");
                Inspection::failed("inspection failed (internal error); reported, not read")
            }
            Err(_) => {
                crate::metrics::inspect_failed("timeout");
                tracing::warn!(%id, ?limit, "inspection overran its time limit: uninspectable");
                Inspection::failed("inspection time limit exceeded")
            }
        };
        count(&result, started.elapsed());
        Some(result)
    }

    /// The message's facts for the policy.
    pub(super) fn message_facts(
        &self,
        envelope_from: &str,
        inspection: Option<&Inspection>,
        size: usize,
    ) -> MessageFacts {
        let tagged = inspection
            .and_then(|i| i.subject.as_deref())
            .is_some_and(|s| self.policy.tagged(s));
        MessageFacts {
            sensitive: inspection.is_some_and(|i| i.sensitive),
            score: inspection.map_or(0, |i| i.score),
            detectors: inspection
                .map(|i| i.detectors().into_iter().map(str::to_string).collect())
                .unwrap_or_default(),
            forward_signals: self
                .forward_signals(envelope_from, inspection)
                .iter()
                .map(|s| s.to_string())
                .collect(),
            // A message that could not be inspected at all is treated as uninspectable.
            uninspectable: inspection.is_none_or(|i| i.uninspectable()),
            tagged,
            size: size as u64,
            sender_domain: domain_of(envelope_from),
        }
    }

    /// All signs of an automated forward: the message's headers and its envelope (DESIGN §5);
    /// the policy decides what they mean for each recipient.
    fn forward_signals(
        &self,
        envelope_from: &str,
        inspection: Option<&Inspection>,
    ) -> Vec<&'static str> {
        let Some(i) = inspection else {
            return Vec::new();
        };
        let from = i.header_from.as_deref();
        let from_is_managed = from.is_some_and(|f| self.classifier.is_managed(&domain_of(f)));
        let mut signals = i.forward.clone();
        signals.extend(crate::inspect::forward::envelope_signals(
            envelope_from,
            from,
            from_is_managed,
        ));
        signals
    }
}

fn count(result: &Inspection, took: std::time::Duration) {
    crate::metrics::inspected(
        result
            .findings
            .iter()
            .map(|f| (f.detector.name(), f.confidence.name())),
        took,
    );
}

/// The findings as the audit log and the quarantine keep them: masked, never the values, and
/// what was past `inspect.max_findings` said in one line.
pub(super) fn masked_findings(inspection: Option<&Inspection>) -> Vec<String> {
    let Some(i) = inspection else {
        return Vec::new();
    };
    let mut out: Vec<String> = i
        .findings
        .iter()
        .map(|f| {
            format!(
                "{} {} in {} ({})",
                f.detector.name(),
                f.masked,
                f.location,
                f.confidence.name()
            )
        })
        .collect();
    if i.findings_omitted > 0 {
        out.push(format!(
            "and {} more findings, not listed (inspect.max_findings)",
            i.findings_omitted
        ));
    }
    out
}
