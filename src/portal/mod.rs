//! The secure pickup portal (DESIGN §13, issue 17): confidential mail for recipients whose
//! server cannot be authenticated is sealed, the recipient notified, and the message read in a
//! browser after the recipient proves who they are.
//!
//! `seal` (the cryptography), `item` (what the store keeps), `service` (the portal built from
//! the configuration: sealing, events, expiry), `mail` (notifications and notices), `phones`
//! (where numbers come from), `sms` (providers), `code` and `access` (codes and visits),
//! `complete` (the sender's completion page), `reply`, and `web` (the HTTPS pages).

pub mod access;
pub mod code;
pub mod complete;
pub mod item;
pub mod mail;
pub mod phones;
pub mod reply;
pub mod seal;
pub mod service;
pub mod sms;
pub mod web;
