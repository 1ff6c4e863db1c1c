//! What Sluis knows about a recipient's domain: its class, whether a managed or partner domain
//! is still ours (ownership), and the DNS answers behind that. The TLS posture ladder of
//! DESIGN §4 (`ladder`: DNS facts, DANE, the STARTTLS probe) lives here too.

pub mod anchors;
pub mod checks;
pub mod class;
pub mod dane;
pub mod dns;
pub mod ladder;
pub mod lookup;
pub mod mta_sts;
pub mod ncsc;
pub mod ownership;
pub mod probe;
pub mod records;
pub mod trust;

pub use class::{Classifier, RecipientClass, Standing, domain_of, standing};
pub use ladder::{Assessment, Level, PostureCache};
pub use lookup::Postures;
pub use ownership::{Ownership, OwnershipStatus, Registry};
