//! Sluis: an outbound mail gateway that enforces NTA 7516 for Dutch healthcare.
//!
//! The modules follow the data flow of one message (DESIGN §2):
//! `smtp` (inbound session) → `spool` (body storage) → `relay` (upstream lanes),
//! with `config`, `metrics` and `admin` around them.

pub mod admin;
pub mod audit;
pub mod config;
pub mod inspect;
pub mod metrics;
pub mod policy;
pub mod posture;
pub mod quarantine;
pub mod relay;
pub mod smtp;
pub mod spool;

pub mod terms;
pub mod wire;
