//! The sender's notice about held recipients whose rule asks for it (DESIGN §8): what happened
//! and what to do, never the content or a finding. Sent in the background through the default
//! lane: the client's reply does not wait for it.

use std::sync::Arc;

use crate::relay::Lane;

use super::Case;
use super::act::Held;

/// Sends a notice per held item that has recipients whose rule has `notify`; with `links`,
/// each carries the sender's link to the item.
pub fn held(
    case: &Case,
    stored: &[Held],
    lane: Arc<Lane>,
    links: Option<&crate::quarantine::link::SenderLinks>,
) {
    if case.mail_from.address.is_empty() {
        return;
    }
    for h in stored {
        let held: Vec<(String, String)> = h
            .recipients
            .iter()
            .filter(|&&i| case.judged[i].decision.notify)
            .map(|&i| {
                let d = &case.judged[i].decision;
                (
                    case.rcpts[i].address.clone(),
                    d.reply_text
                        .clone()
                        .unwrap_or_else(|| format!("held by rule {}", d.rule)),
                )
            })
            .collect();
        if held.is_empty() {
            continue;
        }
        let pairs: Vec<(&str, &str)> = held.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let notice = crate::quarantine::notice::compose(
            &case.hostname,
            &case.mail_from.address,
            &h.id,
            case.message_id.as_deref(),
            &pairs,
            links.map(|l| l.link(&h.id)).as_deref(),
        );
        let lane = lane.clone();
        let hostname = case.hostname.clone();
        let to = case.mail_from.address.clone();
        let id = h.id.clone();
        tokio::spawn(async move {
            match crate::relay::dsn::send(&lane, &hostname, &to, &notice).await {
                Ok(()) => tracing::info!(quarantine = %id, "sent the sender a quarantine notice"),
                Err(e) => {
                    tracing::warn!(quarantine = %id, error = %e, "could not send the quarantine notice")
                }
            }
        });
    }
}
