//! Sluis: an outbound mail gateway that enforces NTA 7516 for Dutch healthcare.
//!
//! The modules follow the data flow of one message (DESIGN §2–§3; README "How the code is laid
//! out"): `smtp` (the inbound protocol) hands each transaction to the `pipeline`, which takes
//! its facts from `inspect` and `posture`, its decision from `policy`, and acts through `relay`
//! and `quarantine`, recording in `audit`. `app` wires the running gateway; `admin` serves
//! operators; `config`, `terms`, `wire`, `spool` and `metrics` are shared below them all.

pub mod admin;
pub mod app;
pub mod audit;
pub mod config;
pub mod inspect;
pub mod metrics;
pub mod pipeline;
pub mod policy;
pub mod portal;
pub mod posture;
pub mod quarantine;
pub mod relay;
pub mod review;
pub mod smtp;
pub mod spool;
pub mod store;
pub mod terms;
pub mod wire;
