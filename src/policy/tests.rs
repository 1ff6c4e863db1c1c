use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::config::{Config, When};

/// Fixed postures, counting lookups.
struct Fixed {
    levels: HashMap<&'static str, Level>,
    lookups: AtomicUsize,
}

impl Fixed {
    fn new(levels: &[(&'static str, Level)]) -> Fixed {
        Fixed {
            levels: levels.iter().copied().collect(),
            lookups: AtomicUsize::new(0),
        }
    }
}

impl PostureSource for Fixed {
    fn posture(&self, domain: &str) -> impl Future<Output = Arc<Assessment>> + Send {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        let posture = self.levels.get(domain).copied().unwrap_or(Level::Unknown);
        let domain = domain.to_string();
        async move {
            Arc::new(Assessment {
                domain,
                posture,
                nta7516_record: false,
                mta_sts_mx: Vec::new(),
                assessed_at: String::new(),
                checks: Vec::new(),
            })
        }
    }
}

fn lanes() -> Vec<LaneLevel> {
    [
        ("default", Level::None),
        ("dane", Level::Dane),
        ("secure", Level::Trusted),
    ]
    .into_iter()
    .map(|(n, l)| LaneLevel {
        name: n.into(),
        level: l,
    })
    .collect()
}

fn nta_policy() -> Policy {
    Policy::new(
        profile::nta7516(&Config::default()),
        lanes(),
        "default".into(),
    )
}

fn sensitive() -> MessageFacts {
    MessageFacts {
        sensitive: true,
        score: 6,
        detectors: vec!["bsn".into()],
        ..MessageFacts::default()
    }
}

fn rcpt(domain: &str, class: RecipientClass) -> RecipientFacts {
    RecipientFacts {
        domain: domain.into(),
        class,
        lapsed: false,
    }
}

fn decide(p: &Policy, m: &MessageFacts, r: &RecipientFacts, f: &Fixed) -> Decision {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(p.decide(m, r, f))
}

#[test]
fn the_profile_is_valid_and_ends_with_a_catch_all() {
    let rules = profile::nta7516(&Config::default());
    assert_eq!(validate(&rules), Ok(()));
    assert_eq!(rules.first().unwrap().name, "automated-forward");
    assert_eq!(rules.last().unwrap().name, "deliver");
}

#[test]
fn plain_mail_is_delivered_without_a_posture_lookup() {
    let f = Fixed::new(&[]);
    let d = decide(
        &nta_policy(),
        &MessageFacts::default(),
        &rcpt("example.test", RecipientClass::Unmanaged),
        &f,
    );
    assert_eq!(
        (d.rule.as_str(), d.action),
        ("deliver", ActionKind::Deliver)
    );
    assert_eq!(d.lane.as_deref(), Some("default"));
    assert_eq!(f.lookups.load(Ordering::SeqCst), 0, "lazy facts");
}

#[test]
fn sensitive_mail_takes_the_lane_of_its_posture() {
    let f = Fixed::new(&[
        ("dane.test", Level::Dane),
        ("sts.test", Level::MtaSts),
        ("plain.test", Level::Verified),
        ("bogus.test", Level::Bogus),
    ]);
    let p = nta_policy();
    let d = decide(
        &p,
        &sensitive(),
        &rcpt("dane.test", RecipientClass::Unmanaged),
        &f,
    );
    assert_eq!(
        (d.action, d.lane.as_deref()),
        (ActionKind::Deliver, Some("dane"))
    );
    assert_eq!(d.rule, "confidential-authenticated");
    let d = decide(
        &p,
        &sensitive(),
        &rcpt("sts.test", RecipientClass::Unmanaged),
        &f,
    );
    assert_eq!(
        (d.action, d.lane.as_deref()),
        (ActionKind::Deliver, Some("secure"))
    );
    let d = decide(
        &p,
        &sensitive(),
        &rcpt("plain.test", RecipientClass::Unmanaged),
        &f,
    );
    assert_eq!(
        (d.rule.as_str(), d.action),
        ("confidential-unauthenticated", ActionKind::Quarantine)
    );
    assert!(d.notify);
    assert!(
        d.reasons
            .iter()
            .any(|r| r.contains("verified, below trusted")),
        "{:?}",
        d.reasons
    );
    let d = decide(
        &p,
        &sensitive(),
        &rcpt("bogus.test", RecipientClass::Unmanaged),
        &f,
    );
    assert_eq!(
        (d.rule.as_str(), d.action),
        ("confidential-posture-unknown", ActionKind::Defer)
    );
    // Each domain was assessed once per decision.
    assert_eq!(f.lookups.load(Ordering::SeqCst), 4);
}

#[test]
fn personal_mailboxes_forwards_and_lapsed_domains() {
    let f = Fixed::new(&[("gmail.com", Level::MtaSts)]);
    let p = nta_policy();
    let d = decide(
        &p,
        &sensitive(),
        &rcpt("gmail.com", RecipientClass::Personal),
        &f,
    );
    assert_eq!(d.rule, "confidential-to-personal");
    assert_eq!(d.action, ActionKind::Quarantine);
    assert_eq!(d.require, Some(Level::Trusted));
    // Not confidential: a personal mailbox is fine.
    let d = decide(
        &p,
        &MessageFacts::default(),
        &rcpt("gmail.com", RecipientClass::Personal),
        &f,
    );
    assert_eq!(d.action, ActionKind::Deliver);

    let fwd = MessageFacts {
        forward_signals: vec!["exchange-inbox-rule".into()],
        ..MessageFacts::default()
    };
    let d = decide(
        &p,
        &fwd,
        &rcpt("elsewhere.test", RecipientClass::Unmanaged),
        &f,
    );
    assert_eq!(
        (d.rule.as_str(), d.action),
        ("automated-forward", ActionKind::Refuse)
    );
    assert!(d.reasons[0].contains("exchange-inbox-rule"));
    let d = decide(&p, &fwd, &rcpt("ours.test", RecipientClass::Managed), &f);
    assert_eq!(d.action, ActionKind::Deliver);

    let mut lapsed = rcpt("old.test", RecipientClass::Unmanaged);
    lapsed.lapsed = true;
    let d = decide(&p, &MessageFacts::default(), &lapsed, &f);
    assert_eq!(
        (d.rule.as_str(), d.action),
        ("lapsed-domain", ActionKind::Quarantine)
    );
    assert_eq!(
        f.lookups.load(Ordering::SeqCst),
        0,
        "none of these needed a posture"
    );
}

#[test]
fn with_a_portal_the_profile_sends_there_instead_of_the_quarantine() {
    let f = Fixed::new(&[
        ("gmail.com", Level::MtaSts),
        ("plain.test", Level::Encrypted),
        ("daneok.test", Level::Dane),
        ("broken.test", Level::Bogus),
    ]);
    let config = Config {
        portal: Some(crate::config::PortalConfig::default()),
        ..Config::default()
    };
    let p = Policy::new(profile::nta7516(&config), lanes(), "default".into());
    let m = sensitive();
    let at = |domain: &str, class| {
        let d = decide(&p, &m, &rcpt(domain, class), &f);
        (d.rule, d.action)
    };
    assert_eq!(
        at("gmail.com", RecipientClass::Personal),
        ("confidential-to-personal".into(), ActionKind::Portal)
    );
    assert_eq!(
        at("plain.test", RecipientClass::Unmanaged),
        ("confidential-unauthenticated".into(), ActionKind::Portal)
    );
    // What the portal does not replace: DANE still delivers, bogus DNS still defers.
    assert_eq!(
        at("daneok.test", RecipientClass::Unmanaged).1,
        ActionKind::Deliver
    );
    assert_eq!(
        at("broken.test", RecipientClass::Unmanaged).1,
        ActionKind::Defer
    );
    // Plain mail to a webmail box is delivered, portal or not.
    let d = decide(
        &p,
        &MessageFacts::default(),
        &rcpt("gmail.com", RecipientClass::Personal),
        &f,
    );
    assert_eq!(d.action, ActionKind::Deliver);
    assert!(crate::policy::validate(&profile::nta7516(&config)).is_ok());
}

#[test]
fn uninspectable_and_tagged_mail_is_protected_like_sensitive_mail() {
    let f = Fixed::new(&[("plain.test", Level::Encrypted)]);
    let p = nta_policy();
    for m in [
        MessageFacts {
            uninspectable: true,
            ..MessageFacts::default()
        },
        MessageFacts {
            tagged: true,
            ..MessageFacts::default()
        },
    ] {
        let d = decide(&p, &m, &rcpt("plain.test", RecipientClass::Unmanaged), &f);
        assert_eq!(d.action, ActionKind::Quarantine, "{m:?}");
    }
}

#[test]
fn subject_tags_match_in_any_case() {
    let p = nta_policy().with_tags(&["[Vertrouwelijk]".to_string()]);
    assert!(p.tagged("Uitslag [VERTROUWELIJK] lab"));
    assert!(!p.tagged("Uitslag vertrouwelijk"));
}

#[test]
fn never_a_lane_weaker_than_required() {
    // No lane enforces trusted or better: sensitive mail to a DANE domain is held.
    let p = Policy::new(
        profile::nta7516(&Config::default()),
        vec![LaneLevel {
            name: "default".into(),
            level: Level::None,
        }],
        "default".into(),
    );
    let f = Fixed::new(&[("dane.test", Level::Dane)]);
    let d = decide(
        &p,
        &sensitive(),
        &rcpt("dane.test", RecipientClass::Unmanaged),
        &f,
    );
    assert_eq!(d.action, ActionKind::Quarantine);
    assert!(d.reasons.last().unwrap().contains("no lane enforces"));
    assert_eq!(p.release_lane(Some(Level::Trusted)), None);

    let p = nta_policy();
    assert_eq!(
        p.release_lane(Some(Level::Trusted)).as_deref(),
        Some("secure")
    );
    assert_eq!(p.release_lane(Some(Level::Dane)).as_deref(), Some("dane"));
    assert_eq!(p.release_lane(None).as_deref(), Some("default"));
}

#[test]
fn custom_rules_match_detectors_senders_size_and_nta_record() {
    let rules = vec![
        RuleConfig {
            name: "big-iban-from-finance".into(),
            when: When {
                detectors: vec!["iban".into()],
                sender_domains: vec!["finance.test".into()],
                min_size: Some(100),
                ..When::default()
            },
            action: ActionKind::Refuse,
            require: None,
            lane: None,
            reason: Some("no".into()),
            notify: false,
            allow_override: false,
        },
        RuleConfig {
            name: "nta-claim".into(),
            when: When {
                nta7516_record: Some(true),
                ..When::default()
            },
            action: ActionKind::Defer,
            require: None,
            lane: None,
            reason: None,
            notify: false,
            allow_override: false,
        },
        RuleConfig {
            name: "rest".into(),
            when: When::default(),
            action: ActionKind::Deliver,
            require: None,
            lane: None,
            reason: None,
            notify: false,
            allow_override: false,
        },
    ];
    assert_eq!(validate(&rules), Ok(()));
    let p = Policy::new(rules, lanes(), "default".into());
    let f = Fixed::new(&[]);
    let m = MessageFacts {
        detectors: vec!["iban".into()],
        sender_domain: "finance.test".into(),
        size: 500,
        ..MessageFacts::default()
    };
    let r = rcpt("x.test", RecipientClass::Unmanaged);
    assert_eq!(decide(&p, &m, &r, &f).rule, "big-iban-from-finance");
    let small = MessageFacts {
        size: 10,
        ..m.clone()
    };
    // Falls through to nta-claim, which needs the posture (no record) and so to "rest".
    assert_eq!(decide(&p, &small, &r, &f).rule, "rest");
    assert_eq!(f.lookups.load(Ordering::SeqCst), 1);
}

#[test]
fn validation_names_the_problem() {
    let mut rules = profile::nta7516(&Config::default());
    rules.pop();
    let (i, key, msg) = validate(&rules).unwrap_err();
    assert_eq!((i, key), (rules.len() - 1, "when"));
    assert!(msg.contains("end with a rule without `when`"));

    let mut rules = profile::nta7516(&Config::default());
    rules[1].name = rules[0].name.clone();
    assert_eq!(validate(&rules).unwrap_err().1, "name");

    let mut rules = profile::nta7516(&Config::default());
    rules[0].require = Some(Level::Dane);
    assert_eq!(validate(&rules).unwrap_err().1, "require");

    let mut rules = profile::nta7516(&Config::default());
    rules[0].when.posture_below = Some(Level::Bogus);
    assert_eq!(validate(&rules).unwrap_err().1, "when.posture_below");

    let mut rules = profile::nta7516(&Config::default());
    let last = rules.len() - 2;
    rules[last].lane = Some("dane".into());
    assert_eq!(validate(&rules).unwrap_err().1, "lane", "lane with require");
}

#[test]
fn a_deliver_rule_can_name_its_lane() {
    let rules = vec![RuleConfig {
        name: "all-secure".into(),
        when: When::default(),
        action: ActionKind::Deliver,
        require: None,
        lane: Some("secure".into()),
        reason: None,
        notify: false,
        allow_override: false,
    }];
    assert_eq!(validate(&rules), Ok(()));
    let p = Policy::new(rules, lanes(), "default".into());
    let d = decide(
        &p,
        &sensitive(),
        &rcpt("x.test", RecipientClass::Unmanaged),
        &Fixed::new(&[]),
    );
    assert_eq!(d.lane.as_deref(), Some("secure"));
}
