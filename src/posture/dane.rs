//! DANE for SMTP (RFC 7671, RFC 7672): does the certificate chain an MX host presented match
//! its DNSSEC-secure TLSA records?
//!
//! - DANE-EE (3 x x): the leaf alone must match; its names and dates do not matter (RFC 7672
//!   3.1.1), the TLSA record *is* the authentication.
//! - DANE-TA (2 x x): some certificate the server sent must match; the leaf must chain to it
//!   (signatures, dates, serverAuth) and carry the MX host name (RFC 7672 3.1.2, 3.2.2).
//! - selector 0 = the whole certificate, 1 = its SubjectPublicKeyInfo; matching type
//!   0 = exact, 1 = SHA-256, 2 = SHA-512.
//!
//! Certificates are parsed by x509-parser and chains verified by rustls-webpki: nothing here
//! decodes DER or checks a signature by hand.

use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::dns::Tlsa;

/// The chain the server sent: leaf first.
pub type Chain = Vec<CertificateDer<'static>>;

/// How a chain fared against a TLSA RRset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaneResult {
    /// Authenticated by this record ("3 1 1", "2 0 1"...).
    Matched(String),
    /// No usable record matched; why.
    NoMatch(String),
}

/// Checks `chain` against the usable records of `tlsa` for the MX host `host`.
pub fn verify(
    tlsa: &[Tlsa],
    chain: &[CertificateDer<'_>],
    host: &str,
    now: UnixTime,
) -> DaneResult {
    let Some(leaf) = chain.first() else {
        return DaneResult::NoMatch("the server sent no certificate".into());
    };
    let mut why = Vec::new();
    for t in tlsa.iter().filter(|t| t.usable_for_smtp()) {
        let label = format!("{} {} {}", t.usage, t.selector, t.matching);
        let want = &t.data;
        match t.usage {
            3 => match associates(leaf, t.selector, t.matching) {
                Ok(got) if got == *want => return DaneResult::Matched(label),
                Ok(_) => why.push(format!("{label}: leaf does not match")),
                Err(e) => why.push(format!("{label}: {e}")),
            },
            2 => {
                let anchor = chain
                    .iter()
                    .skip(1)
                    .find(|c| associates(c, t.selector, t.matching).is_ok_and(|got| got == *want));
                match anchor {
                    None => why.push(format!("{label}: no certificate in the chain matches")),
                    Some(anchor) => match chains_to(leaf, &chain[1..], anchor, host, now) {
                        Ok(()) => return DaneResult::Matched(label),
                        Err(e) => why.push(format!("{label}: trust anchor matches, but {e}")),
                    },
                }
            }
            _ => {}
        }
    }
    if why.is_empty() {
        why.push("no usable TLSA record".into());
    }
    DaneResult::NoMatch(why.join("; "))
}

/// The bytes a TLSA record of this selector and matching type would carry for `cert`.
pub(crate) fn associates(
    cert: &CertificateDer<'_>,
    selector: u8,
    matching: u8,
) -> Result<Vec<u8>, String> {
    let selected: Vec<u8> = match selector {
        0 => cert.as_ref().to_vec(),
        1 => {
            let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
                .map_err(|e| format!("unparsable certificate ({e})"))?;
            parsed.tbs_certificate.subject_pki.raw.to_vec()
        }
        other => return Err(format!("selector {other} unknown")),
    };
    Ok(match matching {
        0 => selected,
        1 => ring::digest::digest(&ring::digest::SHA256, &selected)
            .as_ref()
            .to_vec(),
        2 => ring::digest::digest(&ring::digest::SHA512, &selected)
            .as_ref()
            .to_vec(),
        other => return Err(format!("matching type {other} unknown")),
    })
}

/// Whether `leaf` chains through `intermediates` to `anchor` and names `host`.
fn chains_to(
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    anchor: &CertificateDer<'_>,
    host: &str,
    now: UnixTime,
) -> Result<(), String> {
    let anchor = webpki::anchor_from_trusted_cert(anchor)
        .map_err(|e| format!("the anchor is unusable ({e:?})"))?;
    let ee = webpki::EndEntityCert::try_from(leaf)
        .map_err(|e| format!("the leaf is unparsable ({e:?})"))?;
    let provider = crate::wire::stream::crypto_provider();
    ee.verify_for_usage(
        provider.signature_verification_algorithms.all,
        &[anchor],
        intermediates,
        now,
        webpki::KeyUsage::server_auth(),
        None,
        None,
    )
    .map_err(|e| format!("the chain does not verify ({e:?})"))?;
    let name = ServerName::try_from(host.to_string())
        .map_err(|_| format!("{host:?} is not a host name"))?;
    ee.verify_is_valid_for_subject_name(&name)
        .map_err(|e| format!("the leaf does not name {host} ({e:?})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Pki {
        ca: CertificateDer<'static>,
        leaf: CertificateDer<'static>,
        other_leaf: CertificateDer<'static>,
    }

    fn pki(leaf_name: &str) -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec![leaf_name.to_string()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        let other_key = KeyPair::generate().unwrap();
        let other_leaf = CertificateParams::new(vec![leaf_name.to_string()])
            .unwrap()
            .self_signed(&other_key)
            .unwrap();
        Pki {
            ca: ca.der().clone(),
            leaf: leaf.der().clone(),
            other_leaf: other_leaf.der().clone(),
        }
    }

    fn record(usage: u8, selector: u8, matching: u8, cert: &CertificateDer<'_>) -> Tlsa {
        let data = associates(cert, selector, matching).unwrap();
        Tlsa {
            usage,
            selector,
            matching,
            data,
        }
    }

    fn now() -> UnixTime {
        UnixTime::now()
    }

    #[test]
    fn dane_ee_matches_the_leaf_in_every_selector_and_matching_type() {
        let p = pki("mx.example.test");
        for selector in [0, 1] {
            for matching in [0, 1, 2] {
                let t = record(3, selector, matching, &p.leaf);
                // The leaf is not self-signed and its CA is not sent: DANE-EE does not care.
                let result = verify(&[t], std::slice::from_ref(&p.leaf), "other.name", now());
                assert_eq!(
                    result,
                    DaneResult::Matched(format!("3 {selector} {matching}"))
                );
            }
        }
    }

    #[test]
    fn dane_ee_refuses_a_different_key() {
        let p = pki("mx.example.test");
        let t = record(3, 1, 1, &p.leaf);
        let result = verify(
            &[t],
            std::slice::from_ref(&p.other_leaf),
            "mx.example.test",
            now(),
        );
        assert!(
            matches!(result, DaneResult::NoMatch(ref why) if why.contains("leaf does not match")),
            "{result:?}"
        );
    }

    #[test]
    fn dane_ta_needs_the_anchor_in_the_chain_and_the_mx_name() {
        let p = pki("mx.example.test");
        let t = record(2, 0, 1, &p.ca);
        let chain = vec![p.leaf.clone(), p.ca.clone()];
        assert_eq!(
            verify(std::slice::from_ref(&t), &chain, "mx.example.test", now()),
            DaneResult::Matched("2 0 1".into())
        );
        let wrong_name = verify(std::slice::from_ref(&t), &chain, "mx.elsewhere.test", now());
        assert!(
            matches!(wrong_name, DaneResult::NoMatch(ref w) if w.contains("does not name")),
            "{wrong_name:?}"
        );
        let no_anchor = verify(
            std::slice::from_ref(&t),
            std::slice::from_ref(&p.leaf),
            "mx.example.test",
            now(),
        );
        assert!(
            matches!(no_anchor, DaneResult::NoMatch(ref w) if w.contains("no certificate in the chain")),
            "{no_anchor:?}"
        );
        // A leaf of another issuer, with the anchor appended, does not chain to it.
        let forged = verify(
            &[t],
            &[p.other_leaf.clone(), p.ca.clone()],
            "mx.example.test",
            now(),
        );
        assert!(
            matches!(forged, DaneResult::NoMatch(ref w) if w.contains("does not verify")),
            "{forged:?}"
        );
    }

    #[test]
    fn pkix_usages_are_not_used_for_smtp() {
        let p = pki("mx.example.test");
        let t = record(1, 1, 1, &p.leaf);
        assert!(matches!(
            verify(
                &[t],
                std::slice::from_ref(&p.leaf),
                "mx.example.test",
                now()
            ),
            DaneResult::NoMatch(_)
        ));
    }
}
