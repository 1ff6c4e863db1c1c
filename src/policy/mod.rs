//! The policy: message facts and recipient facts become a decision per recipient (DESIGN §7).
//!
//! Rules are data (`[[policy.rules]]`, or the NTA 7516 profile in `profile`), evaluated in
//! order, first match wins. Message conditions are tested before recipient conditions, and the
//! posture is looked up only when a rule that needs it is reached: mail that is not
//! confidential never waits for DNS or a probe.
//!
//! A `deliver` with `require` picks the lane by the recipient's posture: the strongest lane that
//! enforces at least the required level and no more than the domain supports (a `dane-only`
//! lane for a DANE domain). A posture below the requirement, or no such lane, quarantines
//! rather than delivers weaker: Sluis never downgrades.

pub mod profile;

use std::future::Future;
use std::sync::Arc;

use serde::Serialize;

use crate::config::{ActionKind, RuleConfig};
use crate::posture::{Assessment, Level, RecipientClass};

/// What the message is, as far as the policy cares. No identifier values: detector names only.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MessageFacts {
    pub sensitive: bool,
    pub score: u32,
    pub detectors: Vec<String>,
    pub forward_signals: Vec<String>,
    pub uninspectable: bool,
    pub tagged: bool,
    pub size: u64,
    pub sender_domain: String,
}

impl MessageFacts {
    /// Sensitive, uninspectable or tagged: what the NTA 7516 profile protects.
    pub fn confidential(&self) -> bool {
        self.sensitive || self.uninspectable || self.tagged
    }

    pub fn automated_forward(&self) -> bool {
        !self.forward_signals.is_empty()
    }
}

/// The recipient, as far as the policy cares.
#[derive(Debug, Clone, Serialize)]
pub struct RecipientFacts {
    pub domain: String,
    /// The effective class: a lapsed managed or partner domain is `unmanaged`.
    pub class: RecipientClass,
    pub lapsed: bool,
}

/// Where posture assessments come from (the cache in production, fixed answers in tests).
pub trait PostureSource {
    fn posture(&self, domain: &str) -> impl Future<Output = Arc<Assessment>> + Send;
}

impl PostureSource for crate::posture::Postures {
    fn posture(&self, domain: &str) -> impl Future<Output = Arc<Assessment>> + Send {
        self.of(domain)
    }
}

impl<P: PostureSource + Send + Sync> PostureSource for Arc<P> {
    fn posture(&self, domain: &str) -> impl Future<Output = Arc<Assessment>> + Send {
        P::posture(self, domain)
    }
}

/// A lane and the level its MTA enforces.
#[derive(Debug, Clone)]
pub struct LaneLevel {
    pub name: String,
    pub level: Level,
}

/// The decision for one recipient.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub rule: String,
    pub action: ActionKind,
    /// deliver: the lane.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lane: Option<String>,
    /// The lowest level delivery (or a release) must be enforced at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require: Option<Level>,
    /// Why: the conditions that matched, and any lane consideration.
    pub reasons: Vec<String>,
    /// The rule's text for the reply or the notice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_text: Option<String>,
    #[serde(skip_serializing)]
    pub notify: bool,
    /// The sender may override a hold by this rule (`allow_override`).
    #[serde(skip_serializing)]
    pub allow_override: bool,
    #[serde(skip_serializing)]
    pub posture: Option<Arc<Assessment>>,
}

pub struct Policy {
    rules: Vec<RuleConfig>,
    lanes: Vec<LaneLevel>,
    default_lane: String,
    /// `policy.confidential_tags`, lowercase.
    tags: Vec<String>,
}

impl Policy {
    pub fn new(rules: Vec<RuleConfig>, lanes: Vec<LaneLevel>, default_lane: String) -> Policy {
        Policy {
            rules,
            lanes,
            default_lane,
            tags: Vec::new(),
        }
    }

    /// Subject tags (any case) that make a message confidential.
    pub fn with_tags(mut self, tags: &[String]) -> Policy {
        self.tags = tags.iter().map(|t| t.to_lowercase()).collect();
        self
    }

    /// Whether the sender tagged `subject` confidential.
    pub fn tagged(&self, subject: &str) -> bool {
        let subject = subject.to_lowercase();
        self.tags.iter().any(|t| subject.contains(t.as_str()))
    }

    pub fn from_config(config: &crate::config::Config) -> Policy {
        let lanes = config
            .upstream
            .lanes
            .iter()
            .map(|(name, l)| LaneLevel {
                name: name.clone(),
                level: l.level,
            })
            .collect();
        Policy::new(
            config.policy.rules.clone(),
            lanes,
            config.upstream.default_lane.clone(),
        )
        .with_tags(&config.policy.confidential_tags)
    }

    /// Decides for one recipient.
    pub async fn decide(
        &self,
        msg: &MessageFacts,
        rcpt: &RecipientFacts,
        postures: &impl PostureSource,
    ) -> Decision {
        let mut posture: Option<Arc<Assessment>> = None;
        for rule in &self.rules {
            let Some(mut reasons) = message_matches(rule, msg) else {
                continue;
            };
            let Some(r) = recipient_matches(rule, rcpt) else {
                continue;
            };
            reasons.extend(r);
            if rule.when.needs_posture() {
                let p = match &posture {
                    Some(p) => p.clone(),
                    None => {
                        let p = postures.posture(&rcpt.domain).await;
                        posture = Some(p.clone());
                        p
                    }
                };
                let Some(r) = posture_matches(rule, &p) else {
                    continue;
                };
                reasons.extend(r);
            }
            if rule.action == ActionKind::Deliver
                && let Some(required) = rule.require
            {
                let p = match posture {
                    Some(p) => p,
                    None => postures.posture(&rcpt.domain).await,
                };
                return self.deliver_at_least(rule, required, reasons, p);
            }
            let lane = (rule.action == ActionKind::Deliver).then(|| {
                rule.lane
                    .clone()
                    .unwrap_or_else(|| self.default_lane.clone())
            });
            return Decision {
                rule: rule.name.clone(),
                action: rule.action,
                lane,
                require: rule.require,
                reasons,
                reply_text: rule.reason.clone(),
                notify: rule.notify,
                allow_override: rule.allow_override,
                posture,
            };
        }
        // Validation demands a final rule without conditions; should a configuration slip
        // through without one, hold the message rather than guess.
        Decision {
            rule: "no-rule-matched".into(),
            action: ActionKind::Defer,
            lane: None,
            require: None,
            reasons: vec!["no policy rule matched".into()],
            reply_text: None,
            notify: false,
            allow_override: false,
            posture,
        }
    }

    fn deliver_at_least(
        &self,
        rule: &RuleConfig,
        required: Level,
        mut reasons: Vec<String>,
        p: Arc<Assessment>,
    ) -> Decision {
        let level = p.posture;
        let mut d = Decision {
            rule: rule.name.clone(),
            action: ActionKind::Deliver,
            lane: None,
            require: Some(required),
            reasons: Vec::new(),
            reply_text: rule.reason.clone(),
            notify: rule.notify,
            allow_override: rule.allow_override,
            posture: Some(p),
        };
        if level.strength().is_none() {
            reasons.push(format!(
                "posture {level}: cannot deliver at {required} or better now"
            ));
            d.action = ActionKind::Defer;
        } else if !level.at_least(required) {
            reasons.push(format!(
                "posture {level} is below the required {required}: held, never downgraded"
            ));
            d.action = ActionKind::Quarantine;
        } else {
            match self.lane_between(required, level) {
                Some(lane) => {
                    reasons.push(format!(
                        "posture {level}, required {required}: lane {} enforces {}",
                        lane.name, lane.level
                    ));
                    d.lane = Some(lane.name.clone());
                }
                None => {
                    reasons.push(format!(
                        "no lane enforces a level from {required} up to {level}: held, never \
                         downgraded (configure upstream.lanes.<name>.level)"
                    ));
                    d.action = ActionKind::Quarantine;
                }
            }
        }
        d.reasons = reasons;
        d
    }

    /// The strongest lane enforcing at least `required` and at most `supported`.
    fn lane_between(&self, required: Level, supported: Level) -> Option<&LaneLevel> {
        self.lanes
            .iter()
            .filter(|l| l.level.at_least(required) && supported.at_least(l.level))
            .max_by_key(|l| l.level.strength())
    }

    /// The lane a release of mail held under `required` goes through: the weakest lane that
    /// still enforces it (the likeliest to deliver without ever being weaker).
    pub fn release_lane(&self, required: Option<Level>) -> Option<String> {
        match required {
            None => Some(self.default_lane.clone()),
            Some(r) => self
                .lanes
                .iter()
                .filter(|l| l.level.at_least(r))
                .min_by_key(|l| l.level.strength())
                .map(|l| l.name.clone()),
        }
    }

    /// Whether some rule may need a recipient domain's posture (so DNS must work).
    pub fn needs_posture(&self) -> bool {
        self.rules.iter().any(|r| {
            r.when.needs_posture() || (r.action == ActionKind::Deliver && r.require.is_some())
        })
    }
}

fn message_matches(rule: &RuleConfig, m: &MessageFacts) -> Option<Vec<String>> {
    let w = &rule.when;
    let mut reasons = Vec::new();
    let flag = |want: Option<bool>, have: bool| want.is_none_or(|w| w == have);
    if !flag(w.sensitive, m.sensitive)
        || !flag(w.confidential, m.confidential())
        || !flag(w.automated_forward, m.automated_forward())
        || !flag(w.uninspectable, m.uninspectable)
        || !flag(w.tagged, m.tagged)
    {
        return None;
    }
    if w.sensitive.is_some() || w.confidential.is_some() {
        let mut why = Vec::new();
        if m.sensitive {
            why.push(format!(
                "sensitive, score {}: {}",
                m.score,
                m.detectors.join(", ")
            ));
        }
        if m.uninspectable {
            why.push("a part could not be inspected".to_string());
        }
        if m.tagged {
            why.push("tagged confidential by the sender".to_string());
        }
        if why.is_empty() {
            why.push("not sensitive".into());
        }
        reasons.push(format!("message: {}", why.join("; ")));
    }
    if let Some(min) = w.min_score {
        if m.score < min {
            return None;
        }
        reasons.push(format!("score {} ≥ {min}", m.score));
    }
    if !w.detectors.is_empty() {
        let hit: Vec<&String> = w
            .detectors
            .iter()
            .filter(|d| m.detectors.contains(d))
            .collect();
        if hit.is_empty() {
            return None;
        }
        reasons.push(format!(
            "detectors {}",
            hit.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if w.automated_forward == Some(true) {
        reasons.push(format!(
            "automated forward ({})",
            m.forward_signals.join(", ")
        ));
    }
    if w.uninspectable == Some(true) && w.confidential.is_none() {
        reasons.push("a part could not be inspected".into());
    }
    if let Some(min) = w.min_size {
        if m.size < min {
            return None;
        }
        reasons.push(format!("size {} ≥ {min}", m.size));
    }
    if !w.sender_domains.is_empty() {
        if !w
            .sender_domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(&m.sender_domain))
        {
            return None;
        }
        reasons.push(format!("sender domain {}", m.sender_domain));
    }
    Some(reasons)
}

fn recipient_matches(rule: &RuleConfig, r: &RecipientFacts) -> Option<Vec<String>> {
    let w = &rule.when;
    let mut reasons = Vec::new();
    if !w.class.is_empty() {
        if !w.class.contains(&r.class) {
            return None;
        }
        reasons.push(format!(
            "recipient domain {} is {}",
            r.domain,
            r.class.name()
        ));
    }
    if let Some(l) = w.lapsed {
        if l != r.lapsed {
            return None;
        }
        if l {
            reasons.push(format!("ownership of {} has lapsed", r.domain));
        }
    }
    Some(reasons)
}

fn posture_matches(rule: &RuleConfig, p: &Assessment) -> Option<Vec<String>> {
    let w = &rule.when;
    let mut reasons = Vec::new();
    if !w.posture.is_empty() {
        if !w.posture.contains(&p.posture) {
            return None;
        }
        reasons.push(format!("posture of {} is {}", p.domain, p.posture));
    }
    if let Some(below) = w.posture_below {
        if p.posture.strength().is_none() || p.posture.at_least(below) {
            return None;
        }
        reasons.push(format!(
            "posture of {} is {}, below {below}",
            p.domain, p.posture
        ));
    }
    if let Some(want) = w.nta7516_record {
        if want != p.nta7516_record {
            return None;
        }
        reasons.push(format!(
            "NTA 7516 record {}",
            if want { "published" } else { "absent" }
        ));
    }
    Some(reasons)
}

/// Problems with a rule list, as (index, key, message), for config validation.
pub fn validate(rules: &[RuleConfig]) -> Result<(), (usize, &'static str, String)> {
    let mut seen = std::collections::HashSet::new();
    for (i, r) in rules.iter().enumerate() {
        if r.name.is_empty()
            || !r
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err((
                i,
                "name",
                format!(
                    "{:?}: use letters, digits, '-' and '_' (it becomes a metric label)",
                    r.name
                ),
            ));
        }
        if !seen.insert(r.name.as_str()) {
            return Err((i, "name", format!("{:?} is used twice", r.name)));
        }
        if r.require.is_some() && !matches!(r.action, ActionKind::Deliver | ActionKind::Quarantine)
        {
            return Err((
                i,
                "require",
                "only deliver and quarantine rules require a level".into(),
            ));
        }
        if let Some(l) = r.require
            && l.strength().is_none()
        {
            return Err((
                i,
                "require",
                format!("{l} is not a level delivery can enforce"),
            ));
        }
        if let Some(l) = r.when.posture_below
            && l.strength().is_none()
        {
            return Err((
                i,
                "when.posture_below",
                format!("{l} is not on the ladder; use `posture = [\"{l}\"]`"),
            ));
        }
        if r.lane.is_some() && (r.action != ActionKind::Deliver || r.require.is_some()) {
            return Err((
                i,
                "lane",
                "only deliver rules name a lane, and not together with `require` (which \
                 chooses the lane by the recipient's posture)"
                    .into(),
            ));
        }
        if r.allow_override && r.action != ActionKind::Quarantine {
            return Err((
                i,
                "allow_override",
                "only a quarantine rule's hold can be overridden by the sender".into(),
            ));
        }
        if r.notify && r.action != ActionKind::Quarantine {
            return Err((
                i,
                "notify",
                "only quarantine rules notify the sender".into(),
            ));
        }
    }
    match rules.last() {
        None => Err((0, "", "no rules".into())),
        Some(r) if !r.when.is_empty() => Err((
            rules.len() - 1,
            "when",
            format!(
                "the last rule ({:?}) has conditions: end with a rule without `when`, so every \
                 recipient gets a decision",
                r.name
            ),
        )),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests;
