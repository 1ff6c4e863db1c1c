//! The decision per recipient: the policy's rules over the message's and the recipient's facts,
//! with postures looked up only when a rule asks (DESIGN §7, "facts are computed lazily").

use smtp_proto::RcptTo;

use crate::policy::{Decision, MessageFacts};
use crate::terms::RecipientClass;

use super::Pipeline;

/// One recipient's decision with the class it was made for.
#[derive(Debug, Clone)]
pub struct Judged {
    pub class: RecipientClass,
    pub decision: Decision,
}

impl Pipeline {
    /// Every recipient's decision, in the order of `rcpts` (decided concurrently: their
    /// posture lookups overlap).
    pub(super) async fn decide_all(
        &self,
        rcpts: &[RcptTo<String>],
        facts: &MessageFacts,
    ) -> Vec<Judged> {
        let decisions = rcpts.iter().map(|rcpt| async {
            let r = self.recipient_facts(&rcpt.address);
            let class = r.class;
            let decision = self.policy.decide(facts, &r, &self.postures).await;
            let posture = decision
                .posture
                .as_ref()
                .map_or("not-assessed", |p| p.posture.name());
            crate::metrics::recipient_decided(decision.action.name(), posture, class.name());
            Judged { class, decision }
        });
        futures_util::future::join_all(decisions).await
    }
}
