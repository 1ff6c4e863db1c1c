//! The signs of an automated forward, from the message's headers and its envelope (DESIGN §5);
//! the policy decides what they mean for each recipient.

use crate::posture::domain_of;

use super::Session;

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
}
