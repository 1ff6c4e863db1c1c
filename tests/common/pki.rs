//! Test certificate authorities and certificates (openssl), and the TLS settings that use them.

use super::*;

/// A test CA and a leaf for `name` signed by it, made with the openssl command line.
pub struct Pki {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub fn pki(dir: &Path, name: &str) -> Pki {
    pki_for(dir, &[name])
}

/// A test CA and one leaf for all of `names` (subjectAltName DNS entries).
pub fn pki_for(dir: &Path, names: &[&str]) -> Pki {
    let name = names[0];
    let openssl = require("openssl");
    let run = |args: &[&str]| {
        let out = Command::new(&openssl)
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=Sluis Test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        &format!("/CN={name}"),
    ]);
    let sans: Vec<String> = names.iter().map(|n| format!("DNS:{n}")).collect();
    std::fs::write(
        dir.join("ext"),
        format!("subjectAltName={}\n", sans.join(",")),
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "leaf.crt",
        "-days",
        "2",
        "-extfile",
        "ext",
    ]);
    Pki {
        ca: dir.join("ca.crt"),
        cert: dir.join("leaf.crt"),
        key: dir.join("leaf.key"),
    }
}

/// A test CA and a leaf for `name` whose validity ended in 2021, as PEM files in `dir` (made
/// with rcgen: this openssl cannot backdate a certificate).
pub fn expired_pki(dir: &Path, name: &str) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Sluis Expired Test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let leaf = params.signed_by(&key, &issuer).unwrap();
    let p = Pki {
        ca: dir.join("expired-ca.crt"),
        cert: dir.join("expired-leaf.crt"),
        key: dir.join("expired-leaf.key"),
    };
    std::fs::write(&p.ca, ca.pem()).unwrap();
    std::fs::write(&p.cert, leaf.pem()).unwrap();
    std::fs::write(&p.key, key.serialize_pem()).unwrap();
    p
}

pub fn tls_section(p: &Pki) -> String {
    format!(
        "[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        p.cert.display(),
        p.key.display()
    )
}
