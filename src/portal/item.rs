//! What the store keeps of a portal item (`store::SealedItem::meta`): who sent it, and per
//! recipient the grant (the wrapped message key, the link's hash) and how they prove who they
//! are. No content, no subject (unless `portal.show_subject`), no phone number in the clear:
//! the number is sealed under the message key, so only an opened link reads it.

use ring::aead::NONCE_LEN;
use serde::{Deserialize, Serialize};

use super::seal::{Grant, Sealed};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Meta {
    pub transaction: String,
    /// The envelope sender: notices and replies go there, and only there.
    pub sender: String,
    /// The From header's display name (or the address), for the notification.
    pub sender_name: String,
    /// RFC 3339.
    pub created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The sealed message's nonce (hex); the ciphertext is the store's blob.
    pub nonce: String,
    pub size: u64,
    pub recipients: Vec<Grantee>,
    /// The sender's completion link (hash, hex) while some recipient waits for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_expires: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Grantee {
    pub address: String,
    /// SHA-256 of the link secret (hex).
    pub link_hash: String,
    pub nonce: String,
    pub wrapped_key: String,
    pub auth: Auth,
    /// The notification went out.
    #[serde(default)]
    pub notified: bool,
}

/// How a recipient proves who they are.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Auth {
    /// A code by SMS: the number, sealed under the message key; `hint` is its last two digits.
    Sms {
        hint: String,
        nonce: String,
        number: String,
    },
    /// A code the sender chose and passes on by phone: its keyed hash.
    AccessCode { mac: String },
    /// A code to the recipient's mailbox (only with `portal.allow_email_code`): the lower
    /// level, recorded as such.
    Email,
    /// Nothing known yet: the recipient's link waits, wrapped under the sender's completion
    /// link, until the sender gives a number or an access code.
    Pending { nonce: String, link: String },
}

impl Auth {
    /// The method's name in audit records.
    pub fn method(&self) -> &'static str {
        match self {
            Auth::Sms { .. } => "sms",
            Auth::AccessCode { .. } => "access-code",
            Auth::Email => "email",
            Auth::Pending { .. } => "pending",
        }
    }
}

pub fn hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(bytes)
}

pub fn unhex(s: &str) -> Option<Vec<u8>> {
    data_encoding::HEXLOWER.decode(s.as_bytes()).ok()
}

pub fn nonce_of(s: &str) -> Option<[u8; NONCE_LEN]> {
    unhex(s)?.try_into().ok()
}

impl Grantee {
    pub fn grant(&self) -> Option<Grant> {
        Some(Grant {
            recipient: self.address.clone(),
            link_hash: unhex(&self.link_hash)?.try_into().ok()?,
            nonce: nonce_of(&self.nonce)?,
            wrapped_key: unhex(&self.wrapped_key)?,
        })
    }
}

impl Meta {
    pub fn sealed(&self, ciphertext: Vec<u8>) -> Option<Sealed> {
        Some(Sealed {
            nonce: nonce_of(&self.nonce)?,
            ciphertext,
        })
    }

    pub fn grantee(&self, address: &str) -> Option<&Grantee> {
        self.recipients.iter().find(|g| g.address == address)
    }

    pub fn grantee_mut(&mut self, address: &str) -> Option<&mut Grantee> {
        self.recipients.iter_mut().find(|g| g.address == address)
    }

    /// The recipient whose link hashes to `hash`.
    pub fn by_link(&self, hash: &[u8; 32]) -> Option<&Grantee> {
        let want = hex(hash);
        // Digests of both sides are compared, so the time taken says nothing of either.
        self.recipients
            .iter()
            .find(|g| crate::quarantine::report::token_matches(&want, &g.link_hash))
    }
}
