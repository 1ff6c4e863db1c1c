//! The sender's link to a held item (issue 18 point 4): `<web.base_url>/s/<item>/<token>`, in
//! the hold notice. The token is the link's expiry and an HMAC-SHA256 over the item and the
//! expiry under the sender links' key (`web.secret_file`): it opens that item only, until it
//! expires; it is mailed to the item's sender only. Checked in constant time (ring).

use ring::hmac;

pub struct SenderLinks {
    key: hmac::Key,
    pub base_url: String,
    /// How long a link works.
    pub ttl: std::time::Duration,
}

impl SenderLinks {
    pub fn new(secret: &[u8], base_url: &str, ttl: std::time::Duration) -> SenderLinks {
        SenderLinks {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            base_url: base_url.trim_end_matches('/').to_string(),
            ttl,
        }
    }

    fn message(id: &str, expires: u64) -> Vec<u8> {
        format!("sluis-sender-link\0{id}\0{expires}").into_bytes()
    }

    /// The token for item `id`, working until `expires` (unix seconds).
    pub fn token(&self, id: &str, expires: u64) -> String {
        let tag = hmac::sign(&self.key, &Self::message(id, expires));
        format!(
            "{expires}-{}",
            data_encoding::BASE64URL_NOPAD.encode(tag.as_ref())
        )
    }

    /// The link for item `id`, from now.
    pub fn link(&self, id: &str) -> String {
        let expires = crate::store::now_unix() + self.ttl.as_secs();
        format!("{}/s/{id}/{}", self.base_url, self.token(id, expires))
    }

    /// Whether `token` is this key's for item `id`: `Ok(expires)`, `Err(true)` when it was but
    /// has expired, `Err(false)` when it never was.
    pub fn check(&self, id: &str, token: &str, now: u64) -> Result<u64, bool> {
        let (expires, tag) = token.split_once('-').ok_or(false)?;
        let expires: u64 = expires.parse().map_err(|_| false)?;
        let tag = data_encoding::BASE64URL_NOPAD
            .decode(tag.as_bytes())
            .map_err(|_| false)?;
        hmac::verify(&self.key, &Self::message(id, expires), &tag).map_err(|_| false)?;
        if expires <= now {
            return Err(true);
        }
        Ok(expires)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_opens_its_own_item_until_it_expires() {
        let l = SenderLinks::new(
            b"k",
            "https://sluis.test/",
            std::time::Duration::from_secs(60),
        );
        let t = l.token("ITEM1", 1000);
        assert_eq!(l.check("ITEM1", &t, 999), Ok(1000));
        assert_eq!(l.check("ITEM1", &t, 1000), Err(true), "expired");
        assert_eq!(l.check("ITEM2", &t, 999), Err(false), "another item");
        assert_eq!(
            l.check("ITEM1", &t.replace("1000-", "9999-"), 999),
            Err(false),
            "a later expiry"
        );
        assert_eq!(l.check("ITEM1", "garbage", 999), Err(false));
        let other = SenderLinks::new(b"other", "https://x", std::time::Duration::from_secs(1));
        assert_eq!(other.check("ITEM1", &t, 999), Err(false), "another key");
        assert!(l.link("ITEM1").starts_with("https://sluis.test/s/ITEM1/"));
    }
}
