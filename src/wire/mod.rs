//! What several sides share on the wire: the SMTP client (upstream lanes, the posture probe,
//! DSNs and notices), TLS client configurations, SMTP replies, the plain-or-TLS stream, and the
//! web sides' listener and hardening.
//! Nothing here decides anything about a message; it only speaks the protocols.

pub mod address;
pub mod client;
pub mod http;
pub mod reply;
pub mod secret;
pub mod server_tls;
pub mod stream;
pub mod tls;
pub mod web;

pub use client::{Client, Endpoint, UpstreamError, parse_host_port};
pub use reply::Reply;
