//! What Sluis knows about a recipient's domain: its class, whether a managed or partner domain
//! is still ours (ownership), and the DNS answers behind that. The TLS posture ladder of
//! DESIGN §4 (DANE, MTA-STS, probes) will live here too.

pub mod checks;
pub mod class;
pub mod dns;
pub mod ownership;
pub mod probe;
pub mod records;

pub use class::{Classifier, RecipientClass, domain_of};
pub use ownership::{Ownership, OwnershipStatus, Registry};
