//! What inspection reports: findings that never carry the identifier itself.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    Low,
    Medium,
    High,
}

impl Confidence {
    pub fn name(self) -> &'static str {
        match self {
            Confidence::Low => "low",
            Confidence::Medium => "medium",
            Confidence::High => "high",
        }
    }

    /// What a finding adds to the message's score. Low findings are listed for reviewers but
    /// add nothing: a 9-digit number that passes the 11-proof by chance (one in eleven do) must
    /// not make a message sensitive on its own.
    pub fn weight(self) -> u32 {
        match self {
            Confidence::Low => 0,
            Confidence::Medium => 4,
            Confidence::High => 10,
        }
    }
}

/// Which detector found something. `Custom` names come from the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Detector {
    Bsn,
    Iban,
    DateOfBirth,
    /// A passport or identity-card number named as such, or a machine-readable zone.
    IdDocument,
    Custom(String),
    /// Content that could not be inspected (encrypted, corrupt, over a bound).
    Uninspectable,
}

impl Detector {
    pub fn name(&self) -> &str {
        match self {
            Detector::Bsn => "bsn",
            Detector::Iban => "iban",
            Detector::DateOfBirth => "date-of-birth",
            Detector::IdDocument => "id-document",
            Detector::Custom(n) => n,
            Detector::Uninspectable => "uninspectable",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    #[serde(serialize_with = "detector_name")]
    pub detector: Detector,
    /// Where: `header Subject`, `part 1.2 text/html`, `attachment lab.zip/uitslag.pdf`.
    pub location: String,
    /// The value masked (`***-**-782`), or for uninspectable content the reason.
    pub masked: String,
    /// A keyed hash of the normalised value, to correlate findings without revealing them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    pub confidence: Confidence,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn detector_name<S: serde::Serializer>(d: &Detector, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(d.name())
}

/// The findings of one message as they are found, bounded: at most `cap` are kept (a message
/// made of 100,000 identifiers must not cost memory or audit space in proportion), the rest
/// counted. The score counts every distinct identifier, kept or not, at its highest
/// confidence, so a bound never makes a sensitive message look harmless; when full, a finding
/// of medium or high confidence takes the place of a low one.
pub struct Findings {
    list: Vec<Finding>,
    cap: usize,
    omitted: usize,
    /// Where the kept low-confidence findings are, for replacing them.
    low_slots: Vec<usize>,
    /// Best weight per distinct identifier (weighted ones only), up to `cap` identifiers ...
    best: std::collections::HashMap<(Detector, String), u32>,
    /// ... and the weight of those past it, each counted as found (an overestimate at worst).
    extra: u32,
}

impl Findings {
    pub fn new(cap: usize) -> Findings {
        Findings {
            list: Vec::new(),
            cap: cap.max(1),
            omitted: 0,
            low_slots: Vec::new(),
            best: std::collections::HashMap::new(),
            extra: 0,
        }
    }

    pub fn push(&mut self, f: Finding) {
        let weight = if f.detector == Detector::Uninspectable {
            0
        } else {
            f.confidence.weight()
        };
        if weight > 0 {
            let key = (f.detector.clone(), f.hash.clone().unwrap_or_default());
            let room = self.best.len() < self.cap;
            match self.best.get_mut(&key) {
                Some(w) => *w = (*w).max(weight),
                None if room => {
                    self.best.insert(key, weight);
                }
                None => self.extra = self.extra.saturating_add(weight),
            }
        }
        // What could not be inspected is always kept: the policy acts on it. The walk reports
        // at most one per part (and parts are bounded by inspect.max_parts).
        if f.detector == Detector::Uninspectable || self.list.len() < self.cap {
            if f.confidence == Confidence::Low && f.detector != Detector::Uninspectable {
                self.low_slots.push(self.list.len());
            }
            self.list.push(f);
        } else if f.confidence > Confidence::Low
            && let Some(slot) = self.low_slots.pop()
        {
            self.list[slot] = f;
            self.omitted += 1;
        } else {
            self.omitted += 1;
        }
    }

    /// Each distinct identifier once, at its highest confidence. Uninspectable content adds
    /// nothing here; the policy weighs it separately.
    pub fn score(&self) -> u32 {
        self.best
            .values()
            .fold(self.extra, |sum, w| sum.saturating_add(*w))
    }

    /// The kept findings and how many more there were.
    pub fn finish(self) -> (Vec<Finding>, usize) {
        (self.list, self.omitted)
    }
}

/// The result of inspecting one message: the typed value the policy consumes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Inspection {
    pub sensitive: bool,
    pub score: u32,
    /// At most `inspect.max_findings` of them (`Findings`).
    pub findings: Vec<Finding>,
    /// Findings past `inspect.max_findings`: counted, not kept.
    #[serde(skip_serializing_if = "is_zero")]
    pub findings_omitted: usize,
    /// Header signs of an automated forward, by name (empty: none).
    pub forward: Vec<&'static str>,
    /// The From address, for the envelope heuristics; never shown or logged.
    #[serde(skip)]
    pub header_from: Option<String>,
    /// The From header's display name, for the portal's notification; never logged.
    #[serde(skip)]
    pub from_name: Option<String>,
    /// The decoded Subject, for the sender's confidentiality tags; never shown or logged.
    #[serde(skip)]
    pub subject: Option<String>,
    /// The Message-ID (without angle brackets), for the audit log.
    #[serde(skip)]
    pub message_id: Option<String>,
}

impl Inspection {
    /// Whether some content could not be inspected (the policy decides what that means).
    pub fn uninspectable(&self) -> bool {
        self.findings
            .iter()
            .any(|f| f.detector == Detector::Uninspectable)
    }

    /// Which detectors found something, each once.
    pub fn detectors(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.findings.iter().map(|f| f.detector.name()).collect();
        names.sort_unstable();
        names.dedup();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(detector: Detector, hash: &str, confidence: Confidence) -> Finding {
        Finding {
            detector,
            location: "part 1".into(),
            masked: "***".into(),
            hash: Some(hash.into()),
            confidence,
        }
    }

    #[test]
    fn findings_past_the_cap_are_counted_and_still_score() {
        let mut f = Findings::new(3);
        for n in 0..3 {
            f.push(finding(Detector::Bsn, &format!("low{n}"), Confidence::Low));
        }
        assert_eq!(f.score(), 0, "low findings add nothing");
        // Full of low ones: a high one takes a low one's place.
        f.push(finding(Detector::Bsn, "real", Confidence::High));
        for n in 0..100 {
            f.push(finding(
                Detector::Iban,
                &format!("i{n}"),
                Confidence::Medium,
            ));
        }
        // The same identifier again counts once; identifiers past the cap still count.
        f.push(finding(Detector::Bsn, "real", Confidence::Medium));
        f.push(Finding {
            hash: None,
            masked: "encrypted".into(),
            ..finding(Detector::Uninspectable, "", Confidence::High)
        });
        let score = f.score();
        assert_eq!(score, 10 + 100 * 4);
        let (kept, omitted) = f.finish();
        assert_eq!(
            kept.len(),
            4,
            "three kept and the uninspectable one, always"
        );
        assert_eq!(omitted, 102);
        assert!(kept.iter().any(|k| k.hash.as_deref() == Some("real")));
        assert!(kept.iter().any(|k| k.detector == Detector::Uninspectable));
    }
}
