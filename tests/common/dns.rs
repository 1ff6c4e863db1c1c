//! A DNSSEC-signed test zone on this machine: knot (authoritative, signing) on 127.0.1.53:53
//! serves `test.` and its children; unbound on 127.0.2.53:53 resolves them (a stub zone, no
//! way out to the real root). Sluis asks unbound and validates itself against the DNSKEY of
//! `test.` as its trust anchor, exactly as a deployment with a private anchor would.
//!
//! Child zones (all signed unless said otherwise), each with `_sluis TXT "<TOKEN>"`:
//! managed.test, partner.test, lapsing.test (its TXT can be removed and restored), pinned.test,
//! unsigned.test (no DS: insecure), bogus.test (a corrupted DS: bogus).
//! dane.test has MX hosts with TLSA records (one usable, one PKIX-only), an MTA-STS
//! announcement and an NTA 7516 record; nullmx.test has a null MX. daneok.test (127.0.3.11),
//! danetaok.test (127.0.3.13) and webpki.test (127.0.3.12) have one MX host each, for tests
//! that start a STARTTLS server there and publish TLSA records for its certificate.
//! expired.test (127.0.3.17) and wrongname.test (127.0.3.18) likewise, for Postfix MX hosts
//! with an expired and a wrong-name certificate. stsok.test (MX 127.0.3.14) and stsredir.test (MX 127.0.3.16) announce MTA-STS (id=1), their
//! `mta-sts` hosts being nginx on 127.0.4.1 (`web.rs`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use super::{require, wait_for};

pub const TOKEN: &str = "sluis-verification=t0k3n-e2e";
pub const RESOLVER: &str = "127.0.2.53:53";
/// A resolver that does not validate but passes DNSSEC records on (unbound as an iterator).
pub const PASSTHROUGH_RESOLVER: &str = "127.0.2.54:53";
const KNOT_ADDR: &str = "127.0.1.53";
const SIGNED: &[&str] = &[
    "managed.test",
    "partner.test",
    "lapsing.test",
    "pinned.test",
    "bogus.test",
    "dane.test",
    "nullmx.test",
    "daneok.test",
    "danetaok.test",
    "webpki.test",
    "stsok.test",
    "stsredir.test",
    "expired.test",
    "wrongname.test",
];

/// A made-up SHA-256 association, for TLSA records that are only looked up, not matched.
pub const TLSA_HASH: &str = "8d02536c887482bc34ff54e41d2ba659bf85b341a0a20afadb5813dcfbcf286d";
const UNSIGNED: &[&str] = &["unsigned.test"];

pub struct DnsTopology {
    pub dir: PathBuf,
    pub anchor: PathBuf,
    /// The DNSKEY records of `test.` as Knot's keymgr prints them (no TTL, no class).
    pub keymgr_dnskey: String,
    /// The SHA-256 DS record of `test.`.
    pub test_ds: String,
    /// Extra records per zone, as zone-file lines; rewritten by `set_records`.
    records: Mutex<BTreeMap<String, Vec<String>>>,
    serial: Mutex<u32>,
}

static DNS: OnceLock<DnsTopology> = OnceLock::new();

pub fn dns() -> &'static DnsTopology {
    DNS.get_or_init(DnsTopology::start)
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl DnsTopology {
    fn start() -> DnsTopology {
        for p in ["knotd", "knotc", "keymgr", "unbound"] {
            require(p);
        }
        // A previous run that died may still hold the addresses.
        let _ = Command::new("pkill")
            .args(["-f", "sluis-e2e-dns-"])
            .status();
        std::thread::sleep(std::time::Duration::from_millis(200));
        // That pkill may also have ended an earlier run's clean-up watchdog: remove what such a
        // run left behind.
        for entry in std::fs::read_dir(std::env::temp_dir())
            .into_iter()
            .flatten()
            .flatten()
        {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with("sluis-e2e-dns-")
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let dir = std::env::temp_dir().join(format!("sluis-e2e-dns-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["knot/zones", "knot/db", "knot/keys", "knot/run", "unbound"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let d = dir.display().to_string();
        let mut conf = format!(
            "server:\n    rundir: \"{d}/knot/run\"\n    listen: {KNOT_ADDR}@53\n\
             database:\n    storage: \"{d}/knot/db\"\n\
             keystore:\n  - id: default\n    config: \"{d}/knot/keys\"\n\
             policy:\n  - id: manual\n    manual: on\n    single-type-signing: on\n    \
             algorithm: ecdsap256sha256\n\
             template:\n  - id: default\n    storage: \"{d}/knot/zones\"\n    file: \"%s.zone\"\n    \
             zonefile-sync: -1\n    zonefile-load: difference-no-serial\n    journal-content: all\n\
             zone:\n"
        );
        for z in std::iter::once("test").chain(SIGNED.iter().copied()) {
            conf.push_str(&format!(
                "  - domain: {z}.\n    dnssec-signing: on\n    dnssec-policy: manual\n"
            ));
        }
        for z in UNSIGNED {
            conf.push_str(&format!("  - domain: {z}.\n"));
        }
        let knot_conf = dir.join("knot/knot.conf");
        std::fs::write(&knot_conf, conf).unwrap();
        let keymgr = |zone: &str, args: &[&str]| {
            run(Command::new("keymgr")
                .arg("-c")
                .arg(&knot_conf)
                .arg(format!("{zone}."))
                .args(args))
        };
        // Keys first, so the DS records can go into the parent before knot starts.
        let mut ds = Vec::new();
        for z in std::iter::once("test").chain(SIGNED.iter().copied()) {
            keymgr(
                z,
                &[
                    "generate",
                    "algorithm=ecdsap256sha256",
                    "ksk=yes",
                    "zsk=yes",
                ],
            );
        }
        for z in SIGNED {
            let out = keymgr(z, &["ds"]);
            let line = out
                .lines()
                .find(|l| l.contains(" DS ") && l.split_whitespace().nth(4) == Some("2"))
                .expect("SHA-256 DS")
                .to_string();
            // bogus.test: a DS whose digest matches no key.
            let line = if *z == "bogus.test" {
                let mut fields: Vec<String> = line.split_whitespace().map(String::from).collect();
                let last = fields.last_mut().unwrap();
                let flipped = if last.starts_with('0') { "1" } else { "0" };
                last.replace_range(0..1, flipped);
                fields.join(" ")
            } else {
                line
            };
            ds.push(line);
        }
        // Zone-file syntax with TTL and class, as hickory's anchor parser reads it.
        let keymgr_dnskey: String = keymgr("test", &["dnskey"])
            .lines()
            .filter(|l| l.contains(" DNSKEY "))
            .map(|l| l.to_string() + "\n")
            .collect();
        let test_dnskey = keymgr_dnskey.replace(" DNSKEY ", " 3600 IN DNSKEY ");
        let anchor = dir.join("test.anchor");
        std::fs::write(&anchor, &test_dnskey).unwrap();
        let test_ds = keymgr("test", &["ds"])
            .lines()
            .find(|l| l.split_whitespace().nth(4) == Some("2"))
            .expect("DS of test.")
            .to_string();

        let topo = DnsTopology {
            dir: dir.clone(),
            anchor,
            keymgr_dnskey,
            test_ds: test_ds.clone(),
            records: Mutex::new(BTreeMap::new()),
            serial: Mutex::new(1),
        };
        {
            let mut r = topo.records.lock().unwrap();
            let mut parent = vec!["ns A 127.0.1.53".to_string()];
            for z in SIGNED.iter().chain(UNSIGNED) {
                let label = z.trim_end_matches(".test");
                parent.push(format!("{label} NS ns.test."));
            }
            parent.extend(ds.iter().map(|l| {
                // "managed.test. 3600 DS ..." -> keep as an absolute line.
                l.to_string()
            }));
            r.insert("test".into(), parent);
            for z in SIGNED.iter().chain(UNSIGNED) {
                r.insert((*z).into(), vec![format!("_sluis TXT \"{TOKEN}\"")]);
            }
            r.get_mut("dane.test").unwrap().extend([
                "@ MX 10 mx".to_string(),
                "@ MX 20 mx2".to_string(),
                "mx A 127.0.3.1".to_string(),
                "mx2 A 127.0.3.2".to_string(),
                format!("_25._tcp.mx TLSA 3 1 1 {TLSA_HASH}"),
                format!("_25._tcp.mx2 TLSA 0 0 1 {TLSA_HASH}"),
                "_mta-sts TXT \"v=STSv1; id=20261122\"".to_string(),
                "@ TXT \"v=NTA7516-1;startdate=2024-01;enddate=2027-12;provider=TestProvider;ntamx=10 mx.dane.test\""
                    .to_string(),
            ]);
            r.get_mut("nullmx.test")
                .unwrap()
                .push("@ MX 0 .".to_string());
            // One MX host each; tests start the servers and publish TLSA records to match.
            for (zone, ip) in [
                ("daneok.test", "127.0.3.11"),
                ("danetaok.test", "127.0.3.13"),
                ("webpki.test", "127.0.3.12"),
                ("expired.test", "127.0.3.17"),
                ("wrongname.test", "127.0.3.18"),
            ] {
                r.get_mut(zone)
                    .unwrap()
                    .extend(["@ MX 10 mx".to_string(), format!("mx A {ip}")]);
            }
            // MTA-STS domains: the MX host and the policy host (nginx, tests/common/web.rs).
            for (zone, ip) in [
                ("stsok.test", "127.0.3.14"),
                ("stsredir.test", "127.0.3.16"),
            ] {
                r.get_mut(zone).unwrap().extend([
                    "@ MX 10 mx".to_string(),
                    format!("mx A {ip}"),
                    format!("mta-sts A {}", super::web::WEB_IP),
                    "_mta-sts TXT \"v=STSv1; id=1\"".to_string(),
                ]);
            }
        }
        for z in std::iter::once("test")
            .chain(SIGNED.iter().copied())
            .chain(UNSIGNED.iter().copied())
        {
            topo.write_zone(z);
        }
        run(Command::new("knotd").arg("-c").arg(&knot_conf).arg("-d"));
        let up = wait_for(std::time::Duration::from_secs(10), || {
            Command::new("kdig")
                .args(["+short", "@127.0.1.53", "ns.test", "A"])
                .output()
                .ok()
                .filter(|o| String::from_utf8_lossy(&o.stdout).contains("127.0.1.53"))
        });
        assert!(up.is_some(), "knot did not answer");

        // Two resolvers: unbound validating (what deployments use), and unbound as a plain
        // iterator that passes signatures on without judging them, so that Sluis's own
        // validation meets bogus data instead of SERVFAIL.
        for (name, addr, validation) in [
            (
                "unbound",
                "127.0.2.53",
                format!("trust-anchor: \"{test_ds}\""),
            ),
            (
                "unbound-iter",
                "127.0.2.54",
                "module-config: \"iterator\"".to_string(),
            ),
        ] {
            std::fs::create_dir_all(dir.join(name)).unwrap();
            let conf = dir.join(format!("{name}/unbound.conf"));
            std::fs::write(
                &conf,
                format!(
                    "server:\n  interface: {addr}\n  port: 53\n  outgoing-interface: {addr}\n  \
                     username: \"\"\n  chroot: \"\"\n  directory: \"{d}/{name}\"\n  \
                     pidfile: \"{d}/{name}/unbound.pid\"\n  logfile: \"{d}/{name}/unbound.log\"\n  \
                     use-syslog: no\n  do-ip6: no\n  num-threads: 1\n  val-log-level: 2\n  \
                     do-not-query-localhost: no\n  access-control: 127.0.0.0/8 allow\n  \
                     local-zone: \".\" refuse\n  local-zone: \"test.\" transparent\n  \
                     {validation}\n  cache-max-ttl: 1\n  cache-max-negative-ttl: 1\n\
                     remote-control:\n  control-enable: no\n\
                     stub-zone:\n  name: \"test.\"\n  stub-addr: 127.0.1.53@53\n"
                ),
            )
            .unwrap();
            run(Command::new("unbound").arg("-c").arg(&conf));
        }
        let up = wait_for(std::time::Duration::from_secs(10), || {
            Command::new("kdig")
                .args(["+dnssec", "@127.0.2.53", "_sluis.managed.test", "TXT"])
                .output()
                .ok()
                .filter(|o| {
                    let s = String::from_utf8_lossy(&o.stdout);
                    s.contains(TOKEN) && s.contains(" ad")
                })
        });
        assert!(
            up.is_some(),
            "unbound did not validate managed.test: {}",
            std::fs::read_to_string(dir.join("unbound/unbound.log")).unwrap_or_default()
        );
        // Stop both once this test binary is gone.
        super::after_exit(&format!(
            "knotc -c {d}/knot/knot.conf stop >/dev/null 2>&1; \
             kill $(cat {d}/unbound/unbound.pid) $(cat {d}/unbound-iter/unbound.pid) 2>/dev/null; \
             sleep 1; rm -rf {d}"
        ));
        topo
    }

    fn write_zone(&self, zone: &str) {
        let serial = {
            let mut s = self.serial.lock().unwrap();
            *s += 1;
            *s
        };
        let records = self.records.lock().unwrap();
        let mut text = format!(
            "$ORIGIN {zone}.\n$TTL 1\n@ SOA ns.test. hostmaster.test. {serial} 60 60 3600 1\n@ NS ns.test.\n"
        );
        for line in records.get(zone).into_iter().flatten() {
            text.push_str(line);
            text.push('\n');
        }
        std::fs::write(self.dir.join(format!("knot/zones/{zone}..zone")), &text).unwrap();
        // knot names zone files after the domain with its trailing dot: "%s.zone".
        std::fs::write(self.dir.join(format!("knot/zones/{zone}.zone")), text).unwrap();
    }

    /// Replaces the extra records of `zone` and has knot reload (and re-sign) it.
    pub fn set_records(&self, zone: &str, lines: &[&str]) {
        self.records
            .lock()
            .unwrap()
            .insert(zone.into(), lines.iter().map(|l| l.to_string()).collect());
        self.write_zone(zone);
        run(Command::new("knotc")
            .arg("-c")
            .arg(self.dir.join("knot/knot.conf"))
            .args(["zone-reload", &format!("{zone}.")]));
    }

    /// Adds records to `zone` and has knot reload it.
    pub fn add_records(&self, zone: &str, lines: &[&str]) {
        let mut all = self
            .records
            .lock()
            .unwrap()
            .get(zone)
            .cloned()
            .unwrap_or_default();
        all.extend(lines.iter().map(|l| l.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        self.set_records(zone, &all);
    }

    pub fn anchor_path(&self) -> &Path {
        &self.anchor
    }
}

/// The association data of a TLSA record with selector `selector` and SHA-256 matching for the
/// first certificate in a PEM file: "3 1 1 <this>" for a leaf, "2 0 1 <this>" for a CA.
pub fn tlsa_sha256(pem: &Path, selector: u8) -> String {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let cert = CertificateDer::from_pem_file(pem).expect("PEM certificate");
    let data = match selector {
        0 => cert.as_ref().to_vec(),
        _ => {
            let (_, c) = x509_parser::parse_x509_certificate(cert.as_ref()).unwrap();
            c.tbs_certificate.subject_pki.raw.to_vec()
        }
    };
    ring::digest::digest(&ring::digest::SHA256, &data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
