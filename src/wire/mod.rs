//! What several sides share on the wire: the SMTP client (upstream lanes, the posture probe,
//! DSNs and notices), TLS client configurations, SMTP replies and the plain-or-TLS stream.
//! Nothing here decides anything about a message; it only speaks the protocols.

pub mod address;
pub mod client;
pub mod reply;
pub mod stream;
pub mod tls;

pub use client::{Client, Endpoint, UpstreamError, parse_host_port};
pub use reply::Reply;
