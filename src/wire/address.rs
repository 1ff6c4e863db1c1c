//! Mailbox addresses on the wire (RFC 5321 4.1.2).
//!
//! The SMTP parser gives addresses with a quoted local part unquoted (`"john smith"@x.test`
//! arrives as `john smith@x.test`). Written back like that it names another mailbox, or none
//! (`"u@gmail.com"@x.test` would become `u@gmail.com@x.test`), so every address Sluis writes
//! into a command or a header goes through `mailbox`, which quotes the local part again
//! whenever it is not a dot-atom. The domain is what follows the last `@`: a domain holds no
//! `@`, so that is the last unquoted one.

use std::borrow::Cow;

/// `address` as a Mailbox for MAIL FROM, RCPT TO or a header: the local part quoted (with `"`
/// and `\` escaped) unless it is a dot-atom. The null sender and `postmaster` stay as they are.
pub fn mailbox(address: &str) -> Cow<'_, str> {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return Cow::Borrowed(address);
    };
    if is_dot_atom(local) {
        return Cow::Borrowed(address);
    }
    let mut out = String::with_capacity(address.len() + 4);
    out.push('"');
    for c in local.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push_str("\"@");
    out.push_str(domain);
    Cow::Owned(out)
}

/// RFC 5321 Dot-string (with RFC 6531's UTF-8 in atoms).
fn is_dot_atom(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|atom| {
            !atom.is_empty()
                && atom.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b) || b >= 0x80
                })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_local_parts_are_quoted_again() {
        assert_eq!(mailbox("john.smith@x.test"), "john.smith@x.test");
        assert_eq!(mailbox("john smith@x.test"), "\"john smith\"@x.test");
        assert_eq!(mailbox("u@gmail.com@x.test"), "\"u@gmail.com\"@x.test");
        assert_eq!(mailbox("a\"b\\c@x.test"), "\"a\\\"b\\\\c\"@x.test");
        assert_eq!(mailbox("a..b@x.test"), "\"a..b\"@x.test");
        assert_eq!(mailbox(".a@x.test"), "\".a\"@x.test");
        assert_eq!(mailbox("jöran@x.test"), "jöran@x.test");
        assert_eq!(mailbox(""), "");
        assert_eq!(mailbox("postmaster"), "postmaster");
    }
}
