//! The NTA 7516 profile (DESIGN §7): the rules Sluis applies when the configuration lists none.
//! `sluis config check` prints them, so an administrator can copy and adapt them.

use crate::config::{ActionKind, Config, RuleConfig, When};
use crate::posture::{Level, RecipientClass};

fn rule(name: &str, when: When, action: ActionKind) -> RuleConfig {
    RuleConfig {
        name: name.into(),
        when,
        action,
        require: None,
        lane: None,
        reason: None,
        notify: false,
        allow_override: false,
    }
}

/// The default rules, in order. Rule by rule:
///
/// 1. `automated-forward`: an automated forward (Exchange inbox rule, Sieve redirect, resent
///    headers...) to any domain the organisation does not manage and has proven is refused,
///    sensitive or not: the Jeugdzorg leak (`forwards.refuse_to_unmanaged = false` drops it).
/// 2. `lapsed-domain`: a listed domain whose ownership proof failed is quarantined (reached only
///    with `ownership.refuse_lapsed = false`; otherwise RCPT already refused it).
/// 3. `confidential-to-personal`: confidential mail to a webmail or ISP mailbox goes to the
///    secure pickup portal when `[portal]` is configured (NTA 7516 wants the recipient
///    authenticated: the portal does that), and is quarantined with a notice otherwise.
/// 4. `confidential-posture-unknown`: confidential mail to a domain whose DNSSEC is bogus or
///    whose posture could not be established is deferred (4xx), never downgraded.
/// 5. `confidential-unauthenticated`: confidential mail to a domain whose receiving server
///    cannot be authenticated (below `trusted`: no DANE, no MTA-STS) goes to the portal when
///    there is one, and is quarantined with a notice otherwise.
/// 6. `confidential-authenticated`: confidential mail goes out through a lane enforcing at least
///    `trusted`: the DANE lane for a DANE domain, and so on.
/// 7. `deliver`: everything else goes through the default lane.
///
/// "Confidential" is: sensitive by inspection, or a part could not be inspected, or the sender
/// tagged the subject (`policy.confidential_tags`). A reviewer's release of a quarantined
/// confidential message delivers through a lane enforcing at least `trusted` (never weaker).
pub fn nta7516(config: &Config) -> Vec<RuleConfig> {
    let portal = config.portal.is_some();
    let mut rules = Vec::new();
    if config.forwards.refuse_to_unmanaged {
        let mut r = rule(
            "automated-forward",
            When {
                automated_forward: Some(true),
                class: vec![
                    RecipientClass::Partner,
                    RecipientClass::Personal,
                    RecipientClass::Unmanaged,
                ],
                ..When::default()
            },
            ActionKind::Refuse,
        );
        r.reason = Some(
            "Automated forward refused: NTA 7516 allows automatic forwarding only to the \
             organisation's own, proven domains; remove the forwarding rule or ask your mail \
             administrator"
                .into(),
        );
        rules.push(r);
    }
    let mut lapsed = rule(
        "lapsed-domain",
        When {
            lapsed: Some(true),
            ..When::default()
        },
        ActionKind::Quarantine,
    );
    lapsed.reason = Some(
        "The recipient's domain is no longer proven to be ours (ownership check failed); held \
         for review"
            .into(),
    );
    rules.push(lapsed);
    let confidential = || When {
        confidential: Some(true),
        ..When::default()
    };
    let mut personal = rule(
        "confidential-to-personal",
        When {
            class: vec![RecipientClass::Personal],
            ..confidential()
        },
        ActionKind::Quarantine,
    );
    if portal {
        personal.action = ActionKind::Portal;
        personal.reason = Some(
            "Confidential mail to a personal mailbox (webmail/ISP) goes via the secure pickup \
             portal: NTA 7516 requires an authenticated recipient"
                .into(),
        );
    } else {
        personal.require = Some(Level::Trusted);
        personal.notify = true;
        personal.reason = Some(
            "Confidential mail to a personal mailbox (webmail/ISP) is held for review: NTA 7516 \
             requires an authenticated recipient. Use the patient portal or secure mail instead"
                .into(),
        );
    }
    rules.push(personal);
    let mut unknown = rule(
        "confidential-posture-unknown",
        When {
            posture: vec![Level::Bogus, Level::Unknown],
            ..confidential()
        },
        ActionKind::Defer,
    );
    unknown.reason = Some(
        "The recipient domain's transport security cannot be established now (DNSSEC bogus or \
         lookups failed); try again later"
            .into(),
    );
    rules.push(unknown);
    let mut weak = rule(
        "confidential-unauthenticated",
        When {
            posture_below: Some(Level::Trusted),
            ..confidential()
        },
        ActionKind::Quarantine,
    );
    if portal {
        weak.action = ActionKind::Portal;
        weak.reason = Some(
            "Confidential mail goes via the secure pickup portal: the recipient's mail server \
             cannot be authenticated (no DANE or MTA-STS)"
                .into(),
        );
    } else {
        weak.require = Some(Level::Trusted);
        weak.notify = true;
        weak.reason = Some(
            "Confidential mail is held for review: the recipient's mail server cannot be \
             authenticated (no DANE or MTA-STS). Use the secure mail service instead"
                .into(),
        );
    }
    rules.push(weak);
    let mut strong = rule(
        "confidential-authenticated",
        confidential(),
        ActionKind::Deliver,
    );
    strong.require = Some(Level::Trusted);
    rules.push(strong);
    rules.push(rule("deliver", When::default(), ActionKind::Deliver));
    rules
}
