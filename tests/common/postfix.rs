//! Postfix instances started by the suite: the client MTA in front of Sluis, the lanes behind
//! it, receiving MX hosts.

use super::*;

/// A Postfix instance started by the suite: the client MTA in front of Sluis, or a receiving MTA.
pub struct PostfixClient {
    pub dir: PathBuf,
    pub port: u16,
}

/// The receiving Postfix keeps every message in one Maildir.
pub type PostfixReceiver = PostfixClient;

static POSTFIX: OnceLock<PostfixClient> = OnceLock::new();
static RECEIVER: OnceLock<PostfixReceiver> = OnceLock::new();

/// The shared Postfix whose relayhost is Sluis (see the module docs).
pub fn postfix_client() -> &'static PostfixClient {
    POSTFIX.get_or_init(|| {
        PostfixClient::start(
            "client",
            "smtpd_peername_lookup = no\ntransport_maps = regexp:{d}/transport\n\
             smtp_tls_security_level = may\nsmtp_connect_timeout = 5s\n\
             minimal_backoff_time = 1s\nmaximal_backoff_time = 2s\nqueue_run_delay = 1s\n",
        )
    })
}

/// A Postfix configured with deploy/postfix/relayhost-main.cf, its relayhost pointed at
/// `sluis`: the integration the README documents, tested as shipped.
pub fn postfix_with_relayhost(sluis: SocketAddr) -> PostfixClient {
    let snippet = std::fs::read_to_string("deploy/postfix/relayhost-main.cf")
        .expect("deploy/postfix/relayhost-main.cf");
    assert!(snippet.contains("relayhost = [127.0.0.1]:2525"));
    let snippet = snippet.replace(
        "relayhost = [127.0.0.1]:2525",
        &format!("relayhost = [{}]:{}", sluis.ip(), sluis.port()),
    );
    PostfixClient::start(&format!("relayhost-{}", sluis.port()), &snippet)
}

/// A Postfix with the lanes of deploy/postfix/lanes-master.cf, its lane ports moved to
/// `ports` (may, dane, secure): the outbound MTA behind Sluis, tested as shipped.
pub fn postfix_with_lanes(ports: [u16; 3]) -> PostfixClient {
    let snippet = std::fs::read_to_string("deploy/postfix/lanes-master.cf")
        .expect("deploy/postfix/lanes-master.cf");
    let mut master = snippet;
    for (default, port) in [10025, 10026, 10027].into_iter().zip(ports) {
        let from = format!("127.0.0.1:{default} inet");
        assert!(master.contains(&from), "{from} missing from the snippet");
        master = master.replace(&from, &format!("127.0.0.1:{port} inet"));
    }
    PostfixClient::start_with_master(
        &format!("lanes-{}", ports[0]),
        "smtp_connect_timeout = 2s\n",
        &master,
    )
}

/// The lanes of deploy/postfix/lanes-master.cf and lanes-main.cf as a deployment runs them:
/// they look up the test zones through the validating resolver (DNSSEC, for DANE), trust
/// `ca_file`, ask Sluis's TLS policy socketmap on `policy_port` (the snippet's 127.0.0.1:8461
/// moved there), and route delivery reports for sluis.test to `report_port` (2526 there).
pub fn postfix_lanes_resolving(
    ports: [u16; 3],
    policy_port: u16,
    report_port: u16,
    ca_file: &Path,
) -> PostfixClient {
    let main = std::fs::read_to_string("deploy/postfix/lanes-main.cf")
        .expect("deploy/postfix/lanes-main.cf");
    let route = "sluis.example.org=smtp:[127.0.0.1]:2526";
    assert!(main.contains(route), "{route} missing from lanes-main.cf");
    let main = main.replace(route, &format!("sluis.test=smtp:[127.0.0.1]:{report_port}"));
    let snippet = std::fs::read_to_string("deploy/postfix/lanes-master.cf")
        .expect("deploy/postfix/lanes-master.cf");
    let map = "socketmap:inet:127.0.0.1:8461:";
    assert_eq!(
        snippet.matches(map).count(),
        3,
        "one policy map per lane transport"
    );
    let mut master = snippet.replace(map, &format!("socketmap:inet:127.0.0.1:{policy_port}:"));
    for (default, port) in [10025, 10026, 10027].into_iter().zip(ports) {
        let from = format!("127.0.0.1:{default} inet");
        assert!(master.contains(&from), "{from} missing from the snippet");
        master = master.replace(&from, &format!("127.0.0.1:{port} inet"));
    }
    let dir = scratch("resolv").keep();
    let resolv = dir.join("resolv.conf");
    let (ip, _) = super::dns::RESOLVER.split_once(':').unwrap();
    std::fs::write(&resolv, format!("nameserver {ip}\noptions trust-ad\n")).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    after_exit(&format!("rm -rf {}", dir.display()));
    PostfixClient::start_in(
        &format!("lanes-dns-{}", ports[0]),
        &format!(
            "smtp_connect_timeout = 2s\nsmtp_tls_CAfile = {}\nsmtp_tls_loglevel = 1\n\
             minimal_backoff_time = 1s\nmaximal_backoff_time = 2s\nqueue_run_delay = 1s\n{main}",
            ca_file.display()
        ),
        &master,
        Some(&resolv),
    )
}

/// A shared Postfix that accepts mail for every domain (SMTPUTF8 included) into one Maildir.
pub fn postfix_receiver() -> &'static PostfixReceiver {
    RECEIVER.get_or_init(|| postfix_receiver_of("receiver"))
}

/// A receiver of one test's own (its log shows only that test's sessions). Like the shared
/// one it refuses gone@ (550) and later@ (450) at RCPT, and a message whose subject is
/// "refuse-at-data" at the end of DATA (550).
pub fn postfix_receiver_of(role: &str) -> PostfixReceiver {
    PostfixClient::start(
        role,
        "smtputf8_enable = yes\nvirtual_mailbox_domains = regexp:{d}/domains\n\
         virtual_mailbox_base = {d}/mail\nvirtual_mailbox_maps = regexp:{d}/mailboxes\n\
         virtual_uid_maps = static:65534\nvirtual_gid_maps = static:65534\n\
         virtual_mailbox_limit = 0\nheader_checks = regexp:{d}/header_checks\n\
         smtpd_recipient_restrictions = check_recipient_access regexp:{d}/reject, \
         permit_mynetworks, reject\n",
    )
}

/// The services of every test instance (chroot off); benches/soak.sh uses the same file.
const MASTER_CF: &str = include_str!("../fixtures/postfix/master.cf");

impl PostfixClient {
    fn start(role: &str, extra_main_cf: &str) -> PostfixClient {
        PostfixClient::start_with_master(role, extra_main_cf, "")
    }

    /// Like `start`, with `extra_master` (services) added to master.cf. Without an smtpd of its
    /// own in `extra_master`, the instance listens on a free port.
    fn start_with_master(role: &str, extra_main_cf: &str, extra_master: &str) -> PostfixClient {
        PostfixClient::start_in(role, extra_main_cf, extra_master, None)
    }

    /// Like `start_with_master`; with `resolv_conf`, Postfix runs in a mount namespace of its
    /// own where that file is /etc/resolv.conf (the test resolver, with `options trust-ad`),
    /// so that it looks up the test zones as a deployment looks up the real ones.
    fn start_in(
        role: &str,
        extra_main_cf: &str,
        extra_master: &str,
        resolv_conf: Option<&Path>,
    ) -> PostfixClient {
        require("postfix");
        let dir =
            std::env::temp_dir().join(format!("sluis-e2e-postfix-{role}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::create_dir_all(dir.join("mail")).unwrap();
        std::fs::create_dir_all(dir.join("q")).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        for (owner, sub) in [("postfix", "data"), ("65534:65534", "mail")] {
            Command::new("chown")
                .arg(owner)
                .arg(dir.join(sub))
                .status()
                .unwrap();
        }
        let port = free_port();
        let d = dir.display().to_string();
        let main_cf = format!(
            "compatibility_level = 3.6\nqueue_directory = {d}/q\ndata_directory = {d}/data\n\
             mail_owner = postfix\nsyslog_name = sluis-e2e-{role}\nmaillog_file = {d}/maillog\n\
             maillog_file_prefixes = {d}\ninet_protocols = ipv4\ninet_interfaces = 127.0.0.1\n\
             myhostname = {role}.test\nmydestination =\nmynetworks = 127.0.0.0/8\n\
             smtpd_recipient_restrictions = permit_mynetworks, reject\n\
             message_size_limit = 104857600\nalias_maps =\nalias_database =\n{}",
            extra_main_cf.replace("{d}", &d)
        );
        std::fs::write(dir.join("main.cf"), main_cf).unwrap();
        std::fs::write(
            dir.join("master.cf"),
            format!("127.0.0.1:{port} inet n - n - - smtpd\n{MASTER_CF}{extra_master}"),
        )
        .unwrap();
        // The client's transport map stands in for relayhost so that each test reaches its
        // own gateway; the receiver takes every domain into one Maildir.
        // (Postfix allows no $1 substitution in transport maps, hence one line per slot.)
        let transport: String = (1..=SLOTS)
            .map(|n| format!("/@slot{n}\\.test$/ smtp:[127.0.11.{n}]:2525\n"))
            .collect();
        std::fs::write(dir.join("transport"), transport).unwrap();
        std::fs::write(dir.join("domains"), "/./ OK\n").unwrap();
        std::fs::write(dir.join("mailboxes"), "/./ inbox/\n").unwrap();
        // Recipients the receiver refuses, for tests of per-recipient outcomes.
        std::fs::write(
            dir.join("header_checks"),
            "/^Subject: refuse-at-data/ REJECT refused at the end of data\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("reject"),
            "/^gone@/ 550 5.1.1 User unknown\n/^later@/ 450 4.2.1 Mailbox busy, try later\n",
        )
        .unwrap();
        // Postfix prints start-up errors only to a terminal: `script` gives it one.
        let start = format!("script -qec 'postfix -c {d} start' /dev/null");
        let out = match resolv_conf {
            None => Command::new("sh").args(["-c", &start]).output(),
            Some(r) => Command::new(require("unshare"))
                .args(["-m", "--propagation", "private", "sh", "-c"])
                .arg(format!(
                    "mount --bind {} /etc/resolv.conf && {start}",
                    r.display()
                ))
                .output(),
        }
        .expect("start postfix");
        assert!(
            out.status.success(),
            "postfix did not start: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        // Stop Postfix once this test binary is gone, whatever way it ends.
        // SLUIS_E2E_KEEP=1 keeps queues and logs for a post-mortem.
        let cleanup = if std::env::var_os("SLUIS_E2E_KEEP").is_some() {
            String::from("true")
        } else {
            format!("rm -rf {d}")
        };
        after_exit(&format!(
            "postfix -c {d} stop >/dev/null 2>&1; sleep 1; {cleanup}"
        ));
        assert!(wait_listening(port), "postfix smtpd did not listen");
        PostfixClient { dir, port }
    }

    /// Submits a message to the client Postfix with swaks; returns the transcript.
    pub fn submit(&self, from: &str, to: &str, data_file: &Path) -> String {
        let port = self.port.to_string();
        let server = format!("127.0.0.1:{port}");
        let data = data_file.display().to_string();
        let t = swaks(&[
            "--server", &server, "--from", from, "--to", to, "--data", &data,
        ]);
        assert!(t.contains("  250 2.0.0 Ok: queued"), "postfix refused: {t}");
        t
    }

    /// Messages still in the client's queue for `rcpt`.
    pub fn queued_for(&self, rcpt: &str) -> usize {
        let out = Command::new("postqueue")
            .args(["-c", &self.dir.display().to_string(), "-j"])
            .output()
            .expect("postqueue");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| {
                v["recipients"]
                    .as_array()
                    .is_some_and(|rs| rs.iter().any(|r| r["address"] == rcpt))
            })
            .count()
    }

    /// The delay reasons Postfix recorded for `rcpt` (e.g. the gateway's 451 text).
    pub fn delay_reasons(&self, rcpt: &str) -> Vec<String> {
        let out = Command::new("postqueue")
            .args(["-c", &self.dir.display().to_string(), "-j"])
            .output()
            .expect("postqueue");
        let mut reasons = Vec::new();
        for v in String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        {
            for r in v["recipients"].as_array().into_iter().flatten() {
                if r["address"] == rcpt {
                    reasons.push(r["delay_reason"].as_str().unwrap_or("").to_string());
                }
            }
        }
        reasons
    }

    /// Asks Postfix to retry deferred mail now.
    pub fn flush(&self) {
        let _ = Command::new("postqueue")
            .args(["-c", &self.dir.display().to_string(), "-f"])
            .output();
    }

    pub fn maillog(&self) -> String {
        std::fs::read_to_string(self.dir.join("maillog")).unwrap_or_default()
    }

    /// Messages delivered into the receiver's Maildir whose text contains `token`.
    pub fn delivered_with(&self, token: &str) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(self.dir.join("mail/inbox").join(sub)) else {
                continue;
            };
            for e in entries.flatten() {
                if let Ok(b) = std::fs::read(e.path()) {
                    let text = String::from_utf8_lossy(&b).into_owned();
                    if text.contains(token) {
                        out.push(text);
                    }
                }
            }
        }
        out
    }

    pub fn wait_delivered(&self, token: &str, n: usize, limit: Duration) -> Vec<String> {
        wait_for(limit, || {
            let m = self.delivered_with(token);
            (m.len() >= n).then_some(m)
        })
        .unwrap_or_else(|| self.delivered_with(token))
    }
}

/// A Postfix MX host: smtpd on `ip`:25, offering STARTTLS with `tls`'s certificate (a chain
/// when the file holds one), or no STARTTLS at all.
pub fn postfix_mx(ip: &str, tls: Option<&Pki>) -> PostfixClient {
    mx_with(ip, tls, "")
}

/// A Postfix MX host like `postfix_mx` that keeps every message it accepts in one Maildir
/// (`delivered_with`), so that a test sees what was delivered where. Like the receiver it
/// refuses gone@ (550) and later@ (450).
pub fn postfix_mx_keeping(ip: &str, tls: &Pki) -> PostfixClient {
    mx_with(
        ip,
        Some(tls),
        "virtual_mailbox_domains = regexp:{d}/domains\nvirtual_mailbox_base = {d}/mail\n\
         virtual_mailbox_maps = regexp:{d}/mailboxes\nvirtual_uid_maps = static:65534\n\
         virtual_gid_maps = static:65534\nvirtual_mailbox_limit = 0\n\
         smtpd_tls_received_header = yes\n\
         smtpd_recipient_restrictions = check_recipient_access regexp:{d}/reject, \
         permit_mynetworks, reject\n",
    )
}

/// Stops whatever still listens on `ip`:25: a Postfix master of an earlier run whose directory
/// is gone cannot be stopped with `postfix stop`, keeps the address and answers nothing.
fn free_smtp_address(ip: &str) {
    let out = Command::new("ss")
        .args(["-ltnpH", &format!("src {ip}:25")])
        .output();
    let text = out
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    for pid in text.split("pid=").skip(1).filter_map(|p| {
        p.split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse::<u32>().ok())
    }) {
        let _ = Command::new("kill").arg(pid.to_string()).status();
    }
    if !text.trim().is_empty() {
        let gone = wait_for(Duration::from_secs(10), || {
            TcpStream::connect((ip, 25)).is_err().then_some(())
        });
        assert!(gone.is_some(), "{ip}:25 is still taken: {text}");
    }
}

fn mx_with(ip: &str, tls: Option<&Pki>, extra: &str) -> PostfixClient {
    free_smtp_address(ip);
    let main = match tls {
        Some(p) => format!(
            "smtpd_tls_cert_file = {}\nsmtpd_tls_key_file = {}\nsmtpd_tls_security_level = may\n",
            p.cert.display(),
            p.key.display()
        ),
        None => "smtpd_tls_security_level = none\n".to_string(),
    } + extra;
    let mx = PostfixClient::start_with_master(
        &format!("mx-{}", ip.replace('.', "-")),
        &main,
        &format!("{ip}:25 inet n - n - - smtpd\n"),
    );
    let up = wait_for(Duration::from_secs(15), || {
        TcpStream::connect((ip, 25)).ok()
    });
    assert!(up.is_some(), "postfix MX on {ip}:25 did not listen");
    mx
}
