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
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Detector {
    Bsn,
    Iban,
    DateOfBirth,
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

fn detector_name<S: serde::Serializer>(d: &Detector, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(d.name())
}

/// The result of inspecting one message: the typed value the policy consumes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Inspection {
    pub sensitive: bool,
    pub score: u32,
    pub findings: Vec<Finding>,
    /// Header signs of an automated forward, by name (empty: none).
    pub forward: Vec<&'static str>,
    /// The From address, for the envelope heuristics; never shown or logged.
    #[serde(skip)]
    pub header_from: Option<String>,
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
