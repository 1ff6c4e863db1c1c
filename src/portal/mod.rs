//! The secure pickup portal (DESIGN §13, issue 17): confidential mail for recipients whose
//! server cannot be authenticated is sealed, the recipient notified, and the message read in a
//! browser after the recipient proves who they are. So far: sealing (`seal`) and the rules of the
//! recipient's one-time codes (`code`).

pub mod access;
pub mod code;
pub mod complete;
pub mod item;
pub mod mail;
pub mod phones;
pub mod seal;
pub mod service;
pub mod sms;
pub mod web;
