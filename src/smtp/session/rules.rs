//! The built-in recipient rules that act on message facts: automated forwards may only go to
//! proven managed domains (DESIGN §7 rule 1). The configurable policy will take these over.

use smtp_proto::RcptTo;

use crate::posture::domain_of;

use super::Session;

/// The refusal of an automated forward, as an SMTP response (also used in the DSN).
pub(super) fn forward_refusal(why: &str, signals: &[&str]) -> smtp_proto::Response<String> {
    smtp_proto::Response {
        code: 550,
        esc: [5, 7, 1],
        message: format!(
            "Automated forward refused: the recipient's domain {why} (signals: {}). NTA 7516 \
             allows automatic forwarding only to the organisation's own domains; remove the \
             forwarding rule or ask your mail administrator",
            signals.join(", ")
        ),
    }
}

impl Session {
    /// All signs of an automated forward: the message's headers and its envelope.
    pub(super) fn forward_signals(
        &self,
        envelope_from: &str,
        inspection: Option<&crate::inspect::Inspection>,
    ) -> Vec<&'static str> {
        let Some(i) = inspection else {
            return Vec::new();
        };
        let from = i.header_from.as_deref();
        let from_is_managed = from.is_some_and(|f| self.rt.classifier.is_managed(&domain_of(f)));
        let mut signals = i.forward.clone();
        signals.extend(crate::inspect::forward::envelope_signals(
            envelope_from,
            from,
            from_is_managed,
        ));
        signals
    }
    /// Recipients an automated forward may not go to, with why: only proven managed domains
    /// may receive one (DESIGN §7 rule 1).
    pub(super) fn forward_refusals(&self, rcpts: &[RcptTo<String>]) -> Vec<(usize, &'static str)> {
        use crate::posture::RecipientClass;
        rcpts
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let domain = domain_of(&r.address);
                let why = match self.rt.classifier.class_of_domain(&domain) {
                    RecipientClass::Managed if self.rt.ownership.is_proven(&domain) => return None,
                    RecipientClass::Managed => {
                        "is a managed domain whose ownership proof has lapsed"
                    }
                    RecipientClass::Partner => {
                        "is a partner domain, not one this organisation manages"
                    }
                    RecipientClass::Personal => "is a personal mailbox domain",
                    RecipientClass::Unmanaged => "is not a domain this organisation manages",
                };
                Some((i, why))
            })
            .collect()
    }
}
