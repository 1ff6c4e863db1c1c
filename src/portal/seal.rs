//! Sealing a message for the pickup portal (DESIGN §13, issue 17): the message is encrypted
//! once with a random 256-bit key (AES-256-GCM); that key is stored only wrapped, once per
//! recipient, under a key derived (HKDF-SHA256) from the secret in that recipient's link and
//! the server secret (`portal.key_file`). What is stored (the sealed message, each grant with
//! the link's hash) opens nothing: neither alone nor with the server secret. The link secret is
//! never stored; its SHA-256 finds the grant. Deleting the grants shreds the message.
//!
//! Every key, nonce and link secret comes from ring's system random source; the item id (and
//! for a grant the recipient) is bound in as associated data, so a grant or a sealed message
//! moved to another item or recipient does not open.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf::{HKDF_SHA256, Salt};
use ring::rand::{SecureRandom, SystemRandom};

/// Bytes of randomness in a link secret (and of the message key, and of the server secret).
const SECRET_LEN: usize = 32;
/// What a derived key is for, and which version of this scheme made it: a recipient's grant,
/// a session's copy of the message key, a link kept for the sender's completion page.
const GRANT: &[u8] = b"sluis-portal-wrap-v1";
const SESSION: &[u8] = b"sluis-portal-session-v1";
const COMPLETION: &[u8] = b"sluis-portal-completion-v1";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("the system's random source failed")]
    Random,
    #[error("a cryptographic operation failed")]
    Crypto,
    #[error("the link does not open this message")]
    NotOpened,
    #[error("not a link secret of this portal")]
    BadLink,
    #[error("the server secret must be {SECRET_LEN} bytes")]
    BadServerSecret,
}

/// The server's half of every wrapping key (`portal.key_file`).
pub struct ServerSecret([u8; SECRET_LEN]);

impl ServerSecret {
    pub fn from_bytes(bytes: &[u8]) -> Result<ServerSecret, SealError> {
        let secret: [u8; SECRET_LEN] = bytes.try_into().map_err(|_| SealError::BadServerSecret)?;
        Ok(ServerSecret(secret))
    }

    /// A key of its own for another purpose (the codes' HMAC key), derived from this one.
    pub fn derive(&self, purpose: &[u8]) -> Result<[u8; SECRET_LEN], SealError> {
        let prk = Salt::new(HKDF_SHA256, purpose).extract(&self.0);
        let mut key = [0u8; SECRET_LEN];
        prk.expand(&[purpose], Len32)
            .and_then(|okm| okm.fill(&mut key))
            .map_err(|_| SealError::Crypto)?;
        Ok(key)
    }

    /// A new random secret, for a key file made at first start.
    pub fn generate() -> Result<(ServerSecret, [u8; SECRET_LEN]), SealError> {
        let bytes = random::<SECRET_LEN>()?;
        Ok((ServerSecret(bytes), bytes))
    }
}

/// The message, encrypted with its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub nonce: [u8; NONCE_LEN],
    /// Ciphertext and tag.
    pub ciphertext: Vec<u8>,
}

/// One recipient's way in: the message key, wrapped under the key of that recipient's link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub recipient: String,
    /// SHA-256 of the link secret: how a link finds its grant; it opens nothing.
    pub link_hash: [u8; 32],
    pub nonce: [u8; NONCE_LEN],
    /// The wrapped message key and its tag.
    pub wrapped_key: Vec<u8>,
}

/// The secret that goes into one recipient's link (base64url, no padding). Never stored.
pub struct LinkSecret(pub String);

/// A message's own key: it seals the message and each recipient's notes (their number).
pub struct MessageKey([u8; SECRET_LEN]);

/// What sealing gives: the sealed message, per recipient the grant to store and the link
/// secret to send, and the message key (for notes; never stored).
pub type SealedMessage = (Sealed, Vec<(Grant, LinkSecret)>, MessageKey);

/// Seals `message` of item `item` for `recipients`: the sealed message, per recipient the
/// grant to store and the link secret to send, and the message key (for notes; never stored).
pub fn seal(
    item: &str,
    message: &[u8],
    recipients: &[&str],
    server: &ServerSecret,
) -> Result<SealedMessage, SealError> {
    let message_key = random::<SECRET_LEN>()?;
    let sealed = encrypt(&message_key, item.as_bytes(), message)?;
    let sealed = Sealed {
        nonce: sealed.0,
        ciphertext: sealed.1,
    };
    let mut grants = Vec::with_capacity(recipients.len());
    for recipient in recipients {
        let link = random::<SECRET_LEN>()?;
        let (nonce, wrapped_key) = wrap(server, &link, GRANT, item, recipient, &message_key)?;
        grants.push((
            Grant {
                recipient: recipient.to_string(),
                link_hash: hash(&link),
                nonce,
                wrapped_key,
            },
            LinkSecret(data_encoding::BASE64URL_NOPAD.encode(&link)),
        ));
    }
    Ok((sealed, grants, MessageKey(message_key)))
}

/// A new random secret for a link or a session cookie (base64url, no padding), and the hash
/// under which what it opens is found.
pub fn new_secret() -> Result<(LinkSecret, [u8; 32]), SealError> {
    let raw = random::<SECRET_LEN>()?;
    Ok((
        LinkSecret(data_encoding::BASE64URL_NOPAD.encode(&raw)),
        hash(&raw),
    ))
}

/// The message key from a recipient's grant and link secret.
pub fn unwrap_grant(
    item: &str,
    grant: &Grant,
    link: &str,
    server: &ServerSecret,
) -> Result<MessageKey, SealError> {
    let key = unwrap(
        server,
        &decode_link(link)?,
        GRANT,
        item,
        &grant.recipient,
        &grant.nonce,
        &grant.wrapped_key,
    )?;
    Ok(MessageKey(
        key.try_into().map_err(|_| SealError::NotOpened)?,
    ))
}

/// The message, opened with its key.
pub fn open_message(item: &str, sealed: &Sealed, key: &MessageKey) -> Result<Vec<u8>, SealError> {
    decrypt(&key.0, item.as_bytes(), &sealed.nonce, &sealed.ciphertext)
}

/// Seals a note about one recipient (their phone number) under the message key: readable only
/// by whoever can open the message.
pub fn seal_note(
    key: &MessageKey,
    item: &str,
    recipient: &str,
    plain: &[u8],
) -> Result<([u8; NONCE_LEN], Vec<u8>), SealError> {
    encrypt(&key.0, &note_aad(item, recipient), plain)
}

pub fn open_note(
    key: &MessageKey,
    item: &str,
    recipient: &str,
    nonce: &[u8; NONCE_LEN],
    sealed: &[u8],
) -> Result<Vec<u8>, SealError> {
    decrypt(&key.0, &note_aad(item, recipient), nonce, sealed)
}

/// Wraps the message key for a session whose cookie holds `secret`: the store then keeps
/// what the cookie opens, never the cookie.
pub fn wrap_for_session(
    key: &MessageKey,
    secret: &str,
    item: &str,
    recipient: &str,
    server: &ServerSecret,
) -> Result<([u8; NONCE_LEN], Vec<u8>), SealError> {
    wrap(
        server,
        &decode_link(secret)?,
        SESSION,
        item,
        recipient,
        &key.0,
    )
}

pub fn unwrap_session(
    secret: &str,
    item: &str,
    recipient: &str,
    nonce: &[u8; NONCE_LEN],
    wrapped: &[u8],
    server: &ServerSecret,
) -> Result<MessageKey, SealError> {
    let key = unwrap(
        server,
        &decode_link(secret)?,
        SESSION,
        item,
        recipient,
        nonce,
        wrapped,
    )?;
    Ok(MessageKey(
        key.try_into().map_err(|_| SealError::NotOpened)?,
    ))
}

/// Wraps a recipient's link secret under the sender's completion link, so that the
/// notification can go out once the sender has said how the recipient proves who they are.
pub fn wrap_link_for_sender(
    link: &LinkSecret,
    completion: &str,
    item: &str,
    recipient: &str,
    server: &ServerSecret,
) -> Result<([u8; NONCE_LEN], Vec<u8>), SealError> {
    wrap(
        server,
        &decode_link(completion)?,
        COMPLETION,
        item,
        recipient,
        link.0.as_bytes(),
    )
}

pub fn unwrap_link_for_sender(
    completion: &str,
    item: &str,
    recipient: &str,
    nonce: &[u8; NONCE_LEN],
    wrapped: &[u8],
    server: &ServerSecret,
) -> Result<LinkSecret, SealError> {
    let plain = unwrap(
        server,
        &decode_link(completion)?,
        COMPLETION,
        item,
        recipient,
        nonce,
        wrapped,
    )?;
    String::from_utf8(plain)
        .map(LinkSecret)
        .map_err(|_| SealError::NotOpened)
}

fn wrap(
    server: &ServerSecret,
    secret: &[u8; SECRET_LEN],
    label: &[u8],
    item: &str,
    recipient: &str,
    plain: &[u8],
) -> Result<([u8; NONCE_LEN], Vec<u8>), SealError> {
    let kek = wrapping_key(server, secret, label, item, recipient)?;
    encrypt(&kek, &grant_aad(item, recipient), plain)
}

fn unwrap(
    server: &ServerSecret,
    secret: &[u8; SECRET_LEN],
    label: &[u8],
    item: &str,
    recipient: &str,
    nonce: &[u8; NONCE_LEN],
    wrapped: &[u8],
) -> Result<Vec<u8>, SealError> {
    let kek = wrapping_key(server, secret, label, item, recipient)?;
    decrypt(&kek, &grant_aad(item, recipient), nonce, wrapped)
}

fn note_aad(item: &str, recipient: &str) -> Vec<u8> {
    [b"note\0", item.as_bytes(), b"\0", recipient.as_bytes()].concat()
}

/// The SHA-256 of a link secret as the link carries it: the key under which its grant is found.
pub fn link_hash(link: &str) -> Result<[u8; 32], SealError> {
    Ok(hash(&decode_link(link)?))
}

/// Opens a sealed message with a recipient's grant and link secret.
pub fn open(
    item: &str,
    sealed: &Sealed,
    grant: &Grant,
    link: &str,
    server: &ServerSecret,
) -> Result<Vec<u8>, SealError> {
    let key = unwrap_grant(item, grant, link, server)?;
    open_message(item, sealed, &key)
}

fn decode_link(link: &str) -> Result<[u8; SECRET_LEN], SealError> {
    let bytes = data_encoding::BASE64URL_NOPAD
        .decode(link.as_bytes())
        .map_err(|_| SealError::BadLink)?;
    bytes.try_into().map_err(|_| SealError::BadLink)
}

/// HKDF-SHA256: the server secret as salt, the link secret as input keying material, and the
/// item and recipient in the info, so that each grant's key is its own.
fn wrapping_key(
    server: &ServerSecret,
    link: &[u8; SECRET_LEN],
    label: &[u8],
    item: &str,
    recipient: &str,
) -> Result<[u8; SECRET_LEN], SealError> {
    let prk = Salt::new(HKDF_SHA256, &server.0).extract(link);
    let info = [label, b"\0", item.as_bytes(), b"\0", recipient.as_bytes()];
    let mut key = [0u8; SECRET_LEN];
    prk.expand(&info, Len32)
        .and_then(|okm| okm.fill(&mut key))
        .map_err(|_| SealError::Crypto)?;
    Ok(key)
}

struct Len32;

impl ring::hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        SECRET_LEN
    }
}

fn grant_aad(item: &str, recipient: &str) -> Vec<u8> {
    [item.as_bytes(), b"\0", recipient.as_bytes()].concat()
}

fn hash(bytes: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn random<const N: usize>() -> Result<[u8; N], SealError> {
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| SealError::Random)?;
    Ok(bytes)
}

fn key_of(bytes: &[u8; SECRET_LEN]) -> Result<LessSafeKey, SealError> {
    UnboundKey::new(&AES_256_GCM, bytes)
        .map(LessSafeKey::new)
        .map_err(|_| SealError::Crypto)
}

/// AES-256-GCM with a fresh random nonce (each key here seals very few messages: one per
/// message key, one per wrapping key).
fn encrypt(
    key: &[u8; SECRET_LEN],
    aad: &[u8],
    plain: &[u8],
) -> Result<([u8; NONCE_LEN], Vec<u8>), SealError> {
    let nonce = random::<NONCE_LEN>()?;
    let mut data = plain.to_vec();
    key_of(key)?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut data,
        )
        .map_err(|_| SealError::Crypto)?;
    Ok((nonce, data))
}

fn decrypt(
    key: &[u8; SECRET_LEN],
    aad: &[u8],
    nonce: &[u8; NONCE_LEN],
    sealed: &[u8],
) -> Result<Vec<u8>, SealError> {
    let mut data = sealed.to_vec();
    let plain = key_of(key)?
        .open_in_place(
            Nonce::assume_unique_for_key(*nonce),
            Aad::from(aad),
            &mut data,
        )
        .map_err(|_| SealError::NotOpened)?;
    Ok(plain.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &[u8] = b"Subject: Uitslag\r\n\r\nBSN 123456782, geboren 12-03-1961\r\n";

    fn server() -> ServerSecret {
        ServerSecret::generate().unwrap().0
    }

    #[test]
    fn each_recipient_opens_with_their_own_link_and_nothing_else() {
        let s = server();
        let (sealed, grants, _) = seal("P1", MESSAGE, &["a@x.test", "b@y.test"], &s).unwrap();
        let [(ga, la), (gb, lb)] = &grants[..] else {
            panic!("two grants");
        };
        assert_eq!(open("P1", &sealed, ga, &la.0, &s).unwrap(), MESSAGE);
        assert_eq!(open("P1", &sealed, gb, &lb.0, &s).unwrap(), MESSAGE);
        // B's link on A's grant, another item's id, another server secret: nothing.
        assert_eq!(
            open("P1", &sealed, ga, &lb.0, &s),
            Err(SealError::NotOpened)
        );
        assert_eq!(
            open("P2", &sealed, ga, &la.0, &s),
            Err(SealError::NotOpened)
        );
        assert_eq!(
            open("P1", &sealed, ga, &la.0, &server()),
            Err(SealError::NotOpened)
        );
        // A grant moved to another recipient does not open either.
        let mut moved = ga.clone();
        moved.recipient = "b@y.test".into();
        assert_eq!(
            open("P1", &sealed, &moved, &la.0, &s),
            Err(SealError::NotOpened)
        );
        assert_eq!(link_hash(&la.0).unwrap(), ga.link_hash);
    }

    #[test]
    fn what_is_stored_holds_no_plaintext_and_tampering_is_found() {
        let s = server();
        let (sealed, grants, _) = seal("P1", MESSAGE, &["a@x.test"], &s).unwrap();
        let (grant, link) = &grants[0];
        let stored = [
            &sealed.ciphertext[..],
            &grant.wrapped_key[..],
            &grant.link_hash[..],
        ]
        .concat();
        for needle in [&b"123456782"[..], b"Uitslag", link.0.as_bytes()] {
            assert!(
                !stored.windows(needle.len()).any(|w| w == needle),
                "{needle:?}"
            );
        }
        let mut bad = sealed.clone();
        bad.ciphertext[3] ^= 1;
        assert_eq!(
            open("P1", &bad, grant, &link.0, &s),
            Err(SealError::NotOpened)
        );
        let mut bad = grant.clone();
        bad.wrapped_key[0] ^= 1;
        assert_eq!(
            open("P1", &sealed, &bad, &link.0, &s),
            Err(SealError::NotOpened)
        );
    }

    #[test]
    fn links_are_random_and_checked_for_shape() {
        let s = server();
        let (_, a, _) = seal("P1", MESSAGE, &["a@x.test"], &s).unwrap();
        let (_, b, _) = seal("P1", MESSAGE, &["a@x.test"], &s).unwrap();
        assert_ne!(a[0].1.0, b[0].1.0);
        assert_eq!(a[0].1.0.len(), 43, "32 bytes, base64url without padding");
        for bad in ["", "short", "!!!!", &"A".repeat(44)] {
            assert_eq!(link_hash(bad), Err(SealError::BadLink), "{bad:?}");
        }
        assert!(ServerSecret::from_bytes(&[0; 31]).is_err());
        assert!(ServerSecret::from_bytes(&[0; 32]).is_ok());
    }

    #[test]
    fn a_session_and_a_completion_link_each_open_only_their_own_wrapping() {
        let s = server();
        let (sealed, grants, key) = seal("P1", MESSAGE, &["a@x.test"], &s).unwrap();
        let (grant, link) = &grants[0];
        // A visit's cookie secret wraps the message key: it opens the message, and nothing
        // else opens that wrapping (the link, another cookie, another recipient).
        let (cookie, _) = new_secret().unwrap();
        let (n, w) = wrap_for_session(&key, &cookie.0, "P1", "a@x.test", &s).unwrap();
        let k = unwrap_session(&cookie.0, "P1", "a@x.test", &n, &w, &s).unwrap();
        assert_eq!(open_message("P1", &sealed, &k).unwrap(), MESSAGE);
        let (other, _) = new_secret().unwrap();
        for (secret, rcpt) in [
            (&link.0, "a@x.test"),
            (&other.0, "a@x.test"),
            (&cookie.0, "b@x.test"),
        ] {
            assert!(unwrap_session(secret, "P1", rcpt, &n, &w, &s).is_err());
        }
        // A label keeps the wrappings apart: a session wrapping is no grant.
        let forged = Grant {
            nonce: n,
            wrapped_key: w.clone(),
            ..grant.clone()
        };
        assert!(unwrap_grant("P1", &forged, &cookie.0, &s).is_err());
        // The sender's completion secret gives back the recipient's link, and only it does.
        let (completion, _) = new_secret().unwrap();
        let (n, w) = wrap_link_for_sender(link, &completion.0, "P1", "a@x.test", &s).unwrap();
        let back = unwrap_link_for_sender(&completion.0, "P1", "a@x.test", &n, &w, &s).unwrap();
        assert_eq!(back.0, link.0);
        assert!(unwrap_link_for_sender(&link.0, "P1", "a@x.test", &n, &w, &s).is_err());
        // Notes (the number) open with the message key, for their own recipient only.
        let (n, sealed_note) = seal_note(&key, "P1", "a@x.test", b"+31612345678").unwrap();
        assert_eq!(
            open_note(&k, "P1", "a@x.test", &n, &sealed_note).unwrap(),
            b"+31612345678"
        );
        assert!(open_note(&k, "P1", "b@x.test", &n, &sealed_note).is_err());
    }
}
