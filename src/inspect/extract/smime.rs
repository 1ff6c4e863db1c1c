//! S/MIME `application/pkcs7-mime` parts (RFC 8551): encrypted ones cannot be read, and say
//! so; an opaque signed one carries its content in the clear, inside the CMS structure, and is
//! read. (A clear-signed `multipart/signed` message needs nothing here: its first part is the
//! content, walked like any other.) der-parser reads the BER.

use der_parser::ber::parse_ber;
use der_parser::oid;

/// What a pkcs7-mime part holds.
#[derive(Debug, PartialEq)]
pub enum Cms<'a> {
    /// Not readable without the recipient's key, or compressed: the reason.
    Closed(&'static str),
    /// The signed MIME entity.
    Signed(&'a [u8]),
    /// Certificates only: nothing a person wrote.
    CertsOnly,
    Unreadable,
}

const ENVELOPED: &str = "S/MIME-encrypted message (cannot be inspected)";

/// `smime_type` is the part's parameter, when given; the content type inside the structure
/// decides when it is not (it is optional, and senders get it wrong).
pub fn open<'a>(bytes: &'a [u8], smime_type: Option<&str>) -> Cms<'a> {
    let declared = smime_type.map(str::to_ascii_lowercase);
    let Ok((_, info)) = parse_ber(bytes) else {
        // Unparseable, but declared encrypted: encrypted is the truth the sender told.
        return match declared.as_deref() {
            Some("enveloped-data" | "authenveloped-data") => Cms::Closed(ENVELOPED),
            _ => Cms::Unreadable,
        };
    };
    let Ok(fields) = info.as_sequence() else {
        return Cms::Unreadable;
    };
    let Some(kind) = fields.first().and_then(|o| o.as_oid().ok()) else {
        return Cms::Unreadable;
    };
    if *kind == oid!(1.2.840.113549.1.7.3) || *kind == oid!(1.2.840.113549.1.9.16.1.23) {
        return Cms::Closed(ENVELOPED);
    }
    if *kind == oid!(1.2.840.113549.1.9.16.1.9) {
        return Cms::Closed("S/MIME-compressed content cannot be inspected");
    }
    if *kind != oid!(1.2.840.113549.1.7.2) {
        return Cms::Unreadable;
    }
    signed_content(fields).unwrap_or(Cms::Unreadable)
}

/// SignedData ::= SEQUENCE { version, digestAlgorithms, encapContentInfo SEQUENCE {
/// eContentType, [0] EXPLICIT eContent OCTET STRING OPTIONAL }, ... }
fn signed_content<'a>(info: &[der_parser::ber::BerObject<'a>]) -> Option<Cms<'a>> {
    let explicit = info.get(1)?.as_slice().ok()?;
    let (_, signed) = parse_ber(explicit).ok()?;
    let encap = signed.as_sequence().ok()?.get(2)?.as_sequence().ok()?;
    let Some(content) = encap.get(1) else {
        // Detached: the content travels beside the signature, not in it.
        return Some(Cms::CertsOnly);
    };
    let (_, octets) = parse_ber(content.as_slice().ok()?).ok()?;
    Some(Cms::Signed(octets.as_slice().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_unreadable_unless_declared_encrypted() {
        assert_eq!(open(b"\x30\x03\x02\x01", None), Cms::Unreadable);
        assert_eq!(open(b"xx", Some("Enveloped-Data")), Cms::Closed(ENVELOPED));
        assert_eq!(open(b"", Some("signed-data")), Cms::Unreadable);
    }
}
