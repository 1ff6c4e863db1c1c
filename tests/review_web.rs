//! The reviewers' web interface (issue 18), end to end: local accounts made with
//! `sluis user add`, a login with a password and a TOTP code over HTTPS, the quarantine list,
//! an item page with identifiers masked, the audited reveal, release (delivered to smtp-sink)
//! and reject, each audited with the login's identity; roles, CSRF, lock-out, logout.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::portal::*;
use common::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);
const BSN: &str = "123456782";
const PASSWORD: &str = "paard-batterij-nietje";

/// Mail from hold.test is held; everything else is delivered.
const RULES: &str = "[policy]\nnotify_quarantined = false\n\n\
    [[policy.rules]]\nname = \"hold\"\naction = \"quarantine\"\n\
    reason = \"held for review\"\nwhen = { sender_domains = [\"hold.test\"] }\n\n\
    [[policy.rules]]\nname = \"deliver\"\naction = \"deliver\"\n";

struct Review {
    sluis: Sluis,
    /// The admin listener (/metrics).
    admin: u16,
    /// The OpenID provider, when the test has one.
    idp: Option<Idp>,
    sink: Sink,
    pki: Pki,
    port: u16,
    /// name → TOTP secret (base32).
    secrets: Vec<(String, String)>,
    _keep: tempfile::TempDir,
}

/// `sluis user add`: the TOTP secret it printed.
fn add_user(file: &Path, name: &str, role: &str) -> String {
    let mut child = Command::new(SLUIS)
        .args(["user", "add", name, "--role", role, "--file"])
        .arg(file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("otpauth://totp/Sluis:"), "{said}");
    said.lines()
        .find_map(|l| l.split("use the URI): ").nth(1))
        .expect("the secret")
        .trim()
        .to_string()
}

/// The TOTP code of `secret` for the step `steps` away from now.
fn code(secret: &str, steps: i64) -> String {
    let bytes = totp_rs::Secret::try_from_base32(secret).unwrap();
    let t = totp_rs::Builder::new()
        .with_secret(bytes.as_bytes().to_vec())
        .with_account_name("x")
        .build()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    t.generate((now + steps * 30) as u64).to_string()
}

/// tests/browser/idp.mjs: a real OpenID provider on https://localhost:PORT.
struct Idp {
    child: std::process::Child,
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const CLIENT_SECRET: &str = "sluis-client-secret-for-the-tests";

fn idp(pki: &Pki, web_port: u16, dir: &Path) -> (Idp, u16) {
    let node = require("node");
    let port = free_port();
    // Its output to a file: a pipe nobody reads any more would end the provider at its next
    // warning.
    let log = dir.join("idp.log");
    let child = Command::new(node)
        .arg("tests/browser/idp.mjs")
        .env("PORT", port.to_string())
        .env("ISSUER", format!("https://localhost:{port}"))
        .env("CLIENT_ID", "sluis")
        .env("CLIENT_SECRET", CLIENT_SECRET)
        .env(
            "REDIRECT",
            format!("https://review.test:{web_port}/oidc/callback"),
        )
        .env("CERT", &pki.cert)
        .env("KEY", &pki.key)
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(dir.join("idp.err")).unwrap())
        .spawn()
        .expect("node");
    let idp = Idp { child };
    let ready = wait_for(WAIT, || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("ready")
            .then_some(())
    });
    assert!(
        ready.is_some(),
        "the OpenID provider did not start: {}",
        std::fs::read_to_string(dir.join("idp.err")).unwrap_or_default()
    );
    (idp, port)
}

fn review() -> Review {
    review_with(false)
}

fn review_with(oidc: bool) -> Review {
    review_of(oidc, RULES, "")
}

/// A gateway with `rules` and `web` appended to its [web] section.
fn review_of(oidc: bool, rules: &str, web: &str) -> Review {
    let keep = scratch("review");
    let pki = pki_for(keep.path(), &["review.test", "localhost"]);
    let users = keep.path().join("users");
    let secrets = vec![
        ("alice".to_string(), add_user(&users, "alice", "reviewer")),
        ("audrey".to_string(), add_user(&users, "audrey", "auditor")),
    ];
    let port = free_port();
    let sink = Sink::start(&[]);
    let mut cfg = format!(
        "{rules}\n[web]\nlisten = \"127.0.0.1:{port}\"\nbase_url = \"https://review.test:{port}\"\n\
         cert_file = \"{}\"\nkey_file = \"{}\"\nusers_file = \"{}\"\n{web}",
        pki.cert.display(),
        pki.key.display(),
        users.display()
    );
    let idp = oidc.then(|| {
        let (idp, idp_port) = idp(&pki, port, keep.path());
        let secret = keep.path().join("client-secret");
        std::fs::write(&secret, format!("{CLIENT_SECRET}\n")).unwrap();
        cfg.push_str(&format!(
            "\n[web.oidc]\nissuer = \"https://localhost:{idp_port}\"\nclient_id = \"sluis\"\n\
             client_secret_file = \"{}\"\nca_file = \"{}\"\nname = \"Ziekenhuis-account\"\n\
             reviewer_groups = [\"sluis-reviewers\"]\nauditor_groups = [\"sluis-auditors\"]\n",
            secret.display(),
            pki.ca.display()
        ));
        idp
    });
    let (sluis, admin) = Sluis::start_with_admin(sink.port, &cfg);
    let up = wait_for(WAIT, || {
        sluis
            .log()
            .contains("reviewers' web interface ready")
            .then_some(())
    });
    assert!(up.is_some(), "{}", sluis.log());
    Review {
        sluis,
        admin,
        idp,
        sink,
        pki,
        port,
        secrets,
        _keep: keep,
    }
}

fn letter(token: &str) -> Vec<u8> {
    format!(
        "From: Dr. A. Jansen <jansen@hold.test>\r\nTo: <pat@patients.test>\r\n\
         Subject: Uitslag {token}\r\nMessage-ID: <{token}@hold.test>\r\n\r\n\
         Patient: J. de Vries, BSN: {BSN}, geboren 12-03-1961. Kenmerk {token}.\r\n"
    )
    .into_bytes()
}

impl Review {
    fn browser(&self) -> Browser {
        Browser::new(
            std::net::SocketAddr::from(([127, 0, 0, 1], self.port)),
            "review.test",
            &self.pki.ca,
        )
    }

    fn secret(&self, name: &str) -> &str {
        &self.secrets.iter().find(|(n, _)| n == name).unwrap().1
    }

    /// Holds one letter per token (one SMTP session); their quarantine ids, in order.
    fn hold(&self, tokens: &[&str]) -> Vec<String> {
        let mut c = Smtp::connect(self.sluis.port);
        c.hello();
        for t in tokens {
            let reply = c.send_message("jansen@hold.test", &["pat@patients.test"], &letter(t));
            assert!(reply.starts_with("250"), "{reply}");
        }
        c.cmd("QUIT");
        tokens
            .iter()
            .map(|t| {
                let dir = self.sluis.dir.path().join("spool/quarantine");
                std::fs::read_dir(&dir)
                    .unwrap()
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "json"))
                    .find(|p| {
                        std::fs::read_to_string(p)
                            .unwrap_or_default()
                            .contains(&format!("{t}@hold.test"))
                    })
                    .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
                    .unwrap_or_else(|| panic!("{t} not held"))
            })
            .collect()
    }

    fn login_with(&self, b: &mut Browser, name: &str, password: &str, code: &str) -> Page {
        let form = b.get("/login");
        assert_eq!(form.status, 200, "{}", form.text());
        b.post(
            "/login",
            &[
                ("csrf", &form.csrf()),
                ("name", name),
                ("password", password),
                ("code", code),
            ],
        )
    }

    /// A browser signed in as `name` (with the code of `step`, so two logins need not wait).
    fn signed_in(&self, name: &str, step: i64) -> Browser {
        let mut b = self.browser();
        let r = self.login_with(&mut b, name, PASSWORD, &code(self.secret(name), step));
        assert_eq!(r.status, 303, "{}", r.text());
        assert_eq!(r.header("location"), "/quarantine");
        b
    }

    fn reviews(&self) -> Vec<Value> {
        std::fs::read_to_string(self.sluis.dir.path().join("spool/audit/audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["event"] == "review")
            .collect()
    }
}

fn users_file_of(r: &Review) -> PathBuf {
    r._keep.path().join("users")
}

#[test]
fn a_reviewer_logs_in_with_password_and_code_and_works_the_quarantine() {
    let r = review();
    let ids = r.hold(&["rv-one", "rv-two"]);
    let mut b = r.browser();
    // Nobody signed in: every page leads to the login.
    for path in ["/quarantine", &format!("/quarantine/{}", ids[0]), "/"] {
        let p = b.get(path);
        assert_eq!((p.status, p.header("location")), (303, "/login"), "{path}");
    }
    let form = b.get("/login");
    for (h, v) in [
        ("strict-transport-security", "max-age=31536000"),
        ("content-security-policy", "default-src 'none'"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
    ] {
        assert!(form.header(h).contains(v), "{h}: {:?}", form.header(h));
    }
    assert!(form.text().contains("<html lang=\"nl\""));
    // Without the form's token: refused.
    let forged = b.post("/login", &[("name", "alice"), ("password", PASSWORD)]);
    assert_eq!(forged.status, 403);
    let secret = r.secret("alice").to_string();
    let wrong = r.login_with(&mut b, "alice", "not the password", &code(&secret, 0));
    assert_eq!(wrong.status, 401);
    assert!(wrong.text().contains("klopt niet"));
    let no_code = r.login_with(&mut b, "alice", PASSWORD, "000000");
    assert_eq!(no_code.status, 401);
    let ok = r.login_with(&mut b, "alice", PASSWORD, &code(&secret, 0));
    assert_eq!(ok.status, 303, "{}", ok.text());
    let cookie = ok.header("set-cookie");
    assert!(
        cookie.contains("__Host-sluis-review=")
            && cookie.contains("Secure; HttpOnly; SameSite=Strict"),
        "{cookie}"
    );
    // The session is in the store under a hash of the cookie, ending after web.session_idle
    // (30 minutes by default) without a request.
    let secret_cookie = cookie
        .lines()
        .find_map(|l| l.strip_prefix("__Host-sluis-review="))
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_string();
    assert_eq!(secret_cookie.len(), 43);
    let journal =
        std::fs::read_to_string(r.sluis.dir.path().join("spool/quarantine/sessions/journal"))
            .unwrap();
    assert!(
        !journal.contains(&secret_cookie),
        "the cookie's secret itself is stored"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expires: Vec<u64> = journal
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["k"].as_str().is_some_and(|k| k.starts_with("rv-")))
        .filter_map(|v| v["e"].as_u64())
        .collect();
    assert_eq!(expires.len(), 1, "{journal}");
    assert!(
        (now + 1790..=now + 1810).contains(&expires[0]),
        "{expires:?}"
    );
    // The same code a second time (another browser): refused, it works once.
    let mut other = r.browser();
    let again = r.login_with(&mut other, "alice", PASSWORD, &code(&secret, 0));
    assert_eq!(again.status, 401);
    assert!(again.text().contains("al gebruikt"), "{}", again.text());

    // The list, and its filters.
    let list = b.get("/quarantine");
    assert_eq!(list.status, 200);
    let text = list.text();
    for id in &ids {
        assert!(
            text.contains(&format!("/quarantine/{id}\"")),
            "{id} not listed"
        );
    }
    assert!(text.contains("local:alice (reviewer)"));
    assert!(!text.contains(BSN));
    assert!(b.get("/quarantine?detector=bsn").text().contains(&ids[0]));
    let none = b.get("/quarantine?domain=other.test").text();
    assert!(none.contains("Geen berichten.") && !none.contains(&ids[0]));
    assert_eq!(b.get("/quarantine?older_than=soon").status, 400);

    // An item: masked.
    let item = b.get(&format!("/quarantine/{}", ids[0]));
    assert_eq!(item.status, 200);
    let text = item.text();
    assert!(
        !text.contains(BSN) && !text.contains("1961"),
        "an identifier shown"
    );
    assert!(
        text.contains("BSN: •••••••••") && text.contains("***-**-782"),
        "{text}"
    );
    assert!(text.contains("<dd>hold</dd>"), "the rule: {text}");

    // The reveal: a reason, the form's token, then the original, audited.
    let reveal = format!("/quarantine/{}/reveal", ids[0]);
    assert_eq!(b.post(&reveal, &[("reason", "x")]).status, 403, "no token");
    let csrf = item.csrf();
    assert_eq!(
        b.post(&reveal, &[("csrf", &csrf), ("reason", " ")]).status,
        400
    );
    let shown = b.post(
        &reveal,
        &[("csrf", &csrf), ("reason", "checking the recipient")],
    );
    assert_eq!(shown.status, 200);
    assert!(shown.text().contains(&format!("BSN: {BSN}")));
    let reviews = r.reviews();
    let rec = reviews
        .iter()
        .find(|v| v["action"] == "reveal")
        .expect("reveal audited");
    assert_eq!(rec["reviewer"], "local:alice");
    assert_eq!(rec["reason"], "checking the recipient");
    assert_eq!(rec["quarantine_id"], ids[0].as_str());

    // Release: delivered to the sink, audited with the login's identity.
    let released = b.post(
        &format!("/quarantine/{}/release", ids[0]),
        &[("csrf", &csrf), ("reason", "patient asked for it by mail")],
    );
    assert_eq!(released.status, 200, "{}", released.text());
    assert!(
        released
            .text()
            .contains("aangenomen voor aflevering door lane")
    );
    let got = wait_for(WAIT, || {
        r.sink
            .messages()
            .into_iter()
            .find(|m| m.contains("Kenmerk rv-one"))
    });
    assert!(got.is_some(), "the released message did not arrive");
    // Off the list at once (the list is kept in memory and refreshed each second).
    assert!(
        !b.get("/quarantine")
            .text()
            .contains(&format!("/quarantine/{}\"", ids[0]))
    );
    let settled = b.get(&format!("/quarantine/{}", ids[0]));
    assert_eq!(settled.status, 410);
    assert!(
        settled.text().contains("release by local:alice"),
        "{}",
        settled.text()
    );

    let rejected = b.post(
        &format!("/quarantine/{}/reject", ids[1]),
        &[("csrf", &csrf), ("reason", "wrong recipient")],
    );
    assert_eq!(rejected.status, 200, "{}", rejected.text());
    let reviews = r.reviews();
    for action in ["release", "reject"] {
        let rec = reviews
            .iter()
            .find(|v| v["action"] == action)
            .expect(action);
        assert_eq!(rec["reviewer"], "local:alice", "{action}");
    }

    // English on request; then logout ends the session.
    assert!(
        b.get("/quarantine?lang=en")
            .text()
            .contains("Held messages")
    );
    let page = b.get("/quarantine");
    let out = b.post("/logout", &[("csrf", &page.csrf())]);
    assert_eq!(out.header("location"), "/login");
    assert_eq!(b.get("/quarantine").status, 303);
}

#[test]
fn an_auditor_reads_masked_pages_and_every_action_is_forbidden() {
    let r = review();
    let tokens: Vec<String> = (0..51).map(|i| format!("au-{i}")).collect();
    let ids = r.hold(&tokens.iter().map(String::as_str).collect::<Vec<_>>());
    let mut b = r.signed_in("audrey", 0);
    // Paging: 50 on the first page, the 51st on the second.
    let first = b.get("/quarantine").text();
    assert_eq!(first.matches("<tr><td><a href=\"/quarantine/").count(), 50);
    assert!(first.contains("rel=\"next\""));
    let second = b.get("/quarantine?page=1").text();
    assert_eq!(second.matches("<tr><td><a href=\"/quarantine/").count(), 1);
    let both = first + &second;
    assert!(
        ids.iter()
            .all(|id| both.contains(&format!("/quarantine/{id}\"")))
    );
    // The item, masked, and no forms to act.
    let item = b.get(&format!("/quarantine/{}", ids[0]));
    assert_eq!(item.status, 200);
    assert!(!item.text().contains(BSN));
    assert!(!item.text().contains("/release\""));
    let csrf = item.csrf();
    for action in ["reveal", "release", "reject", "portal"] {
        let p = b.post(
            &format!("/quarantine/{}/{action}", ids[0]),
            &[("csrf", &csrf), ("reason", "trying")],
        );
        assert_eq!(p.status, 403, "{action}");
        assert!(!p.text().contains(BSN));
    }
    assert!(r.reviews().is_empty(), "nothing was done");
    assert!(r.sink.messages().is_empty());
}

#[test]
fn ten_failed_logins_lock_the_account_and_bad_accounts_files_are_named() {
    let r = review();
    let mut b = r.browser();
    for _ in 0..10 {
        let p = r.login_with(&mut b, "alice", "guess", "123456");
        assert_eq!(p.status, 401);
    }
    let locked = r.login_with(&mut b, "alice", PASSWORD, &code(r.secret("alice"), 0));
    assert_eq!(locked.status, 429, "{}", locked.text());
    assert!(locked.text().contains("Te veel mislukte pogingen"));
    // Another account is not affected.
    r.signed_in("audrey", 0);

    // `user add` refuses a name twice.
    let users = users_file_of(&r);
    let twice = Command::new(SLUIS)
        .args(["user", "add", "audrey", "--role", "admin", "--file"])
        .arg(&users)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!twice.status.success());
    assert!(String::from_utf8_lossy(&twice.stderr).contains("is there already"));

    // A users file with a broken line: `config check` names file and line.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&users)
        .unwrap()
        .write_all(b"bob:boss:x:y\n")
        .unwrap();
    let out = Command::new(SLUIS)
        .args(["config", "check", "--config"])
        .arg(&r.sluis.config)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(said.contains(&format!("{}:3:", users.display())), "{said}");
}

/// Runs tests/browser/review.mjs in Debian's Chromium; what it saw.
fn chromium(r: &Review, name: &str, item: &str, sender: &str, shots: &Path) -> Value {
    run_browser_script(
        "review.mjs",
        &[
            ("WEB", &format!("https://review.test:{}", r.port)),
            ("NAME", name),
            ("PASSWORD", PASSWORD),
            ("CODE", &code(r.secret(name), 0)),
            ("ITEM", item),
            ("SENDER", sender),
            ("SHOTS", &shots.display().to_string()),
        ],
    )
}

#[test]
fn a_reviewer_works_the_quarantine_in_chromium_and_every_page_passes_axe() {
    let r = review_of(false, SENDER_RULES, "");
    let (id, sender) = r.hold_from("jansen@hold.test", "br-one");
    let ids = [id];
    let shots = scratch("shots");
    let seen = chromium(&r, "alice", &ids[0], &sender, shots.path());
    assert_eq!(seen["anonymous_url"], "/login");
    assert!(
        seen["filtered_url"]
            .as_str()
            .unwrap()
            .contains("detector=bsn")
    );
    let item = seen["item_text"].as_str().unwrap();
    assert!(!item.contains(BSN) && item.contains("***-**-782"), "{item}");
    assert!(seen["reveal_text"].as_str().unwrap().contains(BSN));
    let released = seen["release_text"].as_str().unwrap();
    assert!(
        released.contains("aangenomen voor aflevering door lane"),
        "{released}"
    );
    let got = wait_for(WAIT, || {
        r.sink
            .messages()
            .into_iter()
            .find(|m| m.contains("Kenmerk br-one"))
    });
    assert!(got.is_some(), "the released message did not arrive");
    let reviews = r.reviews();
    for action in ["reveal", "release"] {
        let rec = reviews
            .iter()
            .find(|v| v["action"] == action)
            .expect(action);
        assert_eq!(rec["reviewer"], "local:alice", "{action}");
    }
    // No serious or critical accessibility violation on any page, no error in the console.
    let bad: Vec<&Value> = seen["violations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
        .collect();
    assert!(bad.is_empty(), "{bad:#?}");
    assert_eq!(seen["pages"].as_object().unwrap().len(), 9, "{seen}");
    assert!(
        seen["sender_text"].as_str().unwrap().contains(&ids[0]),
        "{seen}"
    );
    assert!(
        seen["audit_text"].as_str().unwrap().contains("reveal"),
        "{seen}"
    );
    assert_eq!(seen["pages"]["list-en"]["lang"], "en");
    assert_eq!(seen["console"].as_array().unwrap().len(), 0, "{seen}");
    for c in seen["cookies"].as_array().unwrap() {
        assert_eq!(
            (c["secure"].as_bool(), c["httpOnly"].as_bool()),
            (Some(true), Some(true))
        );
        assert_eq!(c["sameSite"], "Strict");
    }
    if let Ok(dir) = std::env::var("SLUIS_SCREENSHOTS") {
        for e in std::fs::read_dir(shots.path()).unwrap().flatten() {
            std::fs::copy(e.path(), Path::new(&dir).join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn staff_log_in_through_the_openid_provider_with_roles_from_their_groups() {
    let r = review_with(true);
    assert!(r.idp.is_some());
    let ids = r.hold(&["oi-one"]);
    let shots = scratch("shots");
    let login = |account: &str| {
        run_browser_script(
            "oidc.mjs",
            &[
                ("WEB", &format!("https://review.test:{}", r.port)),
                ("ACCOUNT", account),
                ("SHOTS", &shots.path().display().to_string()),
            ],
        )
    };
    // A reviewer: through the provider's pages, back to the list, signed in with the
    // provider's identity.
    let ann = login("ann");
    assert!(
        ann["provider_url"]
            .as_str()
            .unwrap()
            .starts_with("https://localhost:"),
        "{ann}"
    );
    assert_eq!(ann["final_url"], "/quarantine", "{ann}");
    let text = ann["final_text"].as_str().unwrap();
    assert!(
        text.contains(&ids[0]) || text.contains("jansen@hold.test"),
        "{text}"
    );
    let session = ann["cookies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "__Host-sluis-review")
        .expect("a session cookie");
    assert_eq!(session["sameSite"], "Strict");
    // An auditor: signed in, reads.
    let aud = login("aud");
    assert_eq!(aud["final_url"], "/quarantine", "{aud}");
    // Someone in no group that gives a role: no session, told so.
    let otto = login("otto");
    assert_ne!(otto["final_url"], "/quarantine", "{otto}");
    assert!(
        otto["final_text"]
            .as_str()
            .unwrap()
            .contains("geen rol in Sluis"),
        "{otto}"
    );
    assert!(
        !otto["cookies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "__Host-sluis-review")
    );
    // The provider's pages asked for nothing but the two test hosts (what they asked for
    // elsewhere was stopped).
    for v in [&ann, &aud, &otto] {
        let bad: Vec<&Value> = v["violations"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["page"] == "login")
            .filter(|x| matches!(x["impact"].as_str(), Some("serious" | "critical")))
            .collect();
        assert!(bad.is_empty(), "{bad:#?}");
    }
    // A callback that is not this browser's own login: refused, no session.
    let mut b = r.browser();
    for q in [
        "code=abc&state=def",
        "error=access_denied&state=def",
        "state=def",
    ] {
        let p = b.get(&format!("/oidc/callback?{q}"));
        assert_eq!(p.status, 403, "{q}");
        assert!(
            !p.header("set-cookie").contains("__Host-sluis-review="),
            "{q}"
        );
    }
    let started = b.get("/oidc/start");
    assert_eq!(started.status, 303);
    assert!(
        started
            .header("location")
            .contains("code_challenge_method=S256")
    );
    assert!(started.header("set-cookie").contains("SameSite=Lax"));
    let forged = b.get("/oidc/callback?code=abc&state=not-the-state");
    assert_eq!(forged.status, 403, "a state other than the cookie's");
    let log = r.sluis.log();
    assert!(
        log.contains("signed in through the identity provider"),
        "{log}"
    );
    assert!(log.contains("oidc:ann"));
}

#[test]
fn the_audit_log_is_searched_exported_as_csv_and_verified() {
    let r = review();
    let ids = r.hold(&["au-one", "au-two"]);
    let mut b = r.signed_in("alice", 0);
    let item = b.get(&format!("/quarantine/{}", ids[1]));
    let rejected = b.post(
        &format!("/quarantine/{}/reject", ids[1]),
        &[("csrf", &item.csrf()), ("reason", "wrong recipient")],
    );
    assert_eq!(rejected.status, 200);
    // Anonymous: to the login.
    assert_eq!(r.browser().get("/audit").status, 303);
    // An auditor reads the log.
    let mut a = r.signed_in("audrey", 1);
    let all = a.get("/audit");
    assert_eq!(all.status, 200);
    assert!(
        all.text().contains("Niet gecontroleerd") || all.text().contains("Nog niet gecontroleerd")
    );
    // By transaction (the item's id is its transaction's), by decision, by date.
    let one = a.get(&format!("/audit?transaction={}", ids[0])).text();
    assert!(one.contains(&ids[0]) && !one.contains(&ids[1]), "{one}");
    assert!(one.contains("quarantine"));
    let rejects = a.get("/audit?decision=reject").text();
    assert!(
        rejects.contains("local:alice") && rejects.contains(&ids[1]),
        "{rejects}"
    );
    assert!(rejects.contains("1 regels"), "{rejects}");
    let today = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let today = &today[..10];
    assert!(
        a.get(&format!("/audit?from={today}&to={today}&decision=reject"))
            .text()
            .contains("1 regels")
    );
    assert!(a.get("/audit?from=2099-01-01").text().contains("0 regels"));
    assert_eq!(a.get("/audit?from=01-12-2026").status, 400);
    // The export: CSV a spreadsheet reads, the period's records only.
    let csv = a.get(&format!("/audit/export.csv?from={today}&to={today}"));
    assert_eq!(csv.status, 200);
    assert!(csv.header("content-type").starts_with("text/csv"));
    assert!(
        csv.header("content-disposition")
            .contains(&format!("sluis-audit-{today}-{today}.csv"))
    );
    let mut reader = csv::Reader::from_reader(csv.body.as_slice());
    let head = reader.headers().unwrap().clone();
    assert_eq!(&head[0], "seq");
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    let col = |name: &str| head.iter().position(|h| h == name).unwrap();
    let reject = rows
        .iter()
        .find(|r| &r[col("decision")] == "reject")
        .expect("the reject in the export");
    assert_eq!(&reject[col("reviewer")], "local:alice");
    assert_eq!(&reject[col("reason")], "wrong recipient");
    assert!(
        rows.iter()
            .any(|r| &r[col("event")] == "decision" && r[col("findings")].is_empty())
    );
    assert!(!String::from_utf8_lossy(&csv.body).contains(BSN));
    let none = a.get("/audit/export.csv?from=2099-01-01");
    assert_eq!(
        csv::Reader::from_reader(none.body.as_slice())
            .records()
            .count(),
        0
    );
    // Verification: intact, then damaged once a record is edited.
    let page = a.get("/audit");
    let v = a.post("/audit/verify", &[("csrf", &page.csrf())]);
    assert_eq!(v.status, 303);
    let intact = a.get("/audit").text();
    assert!(intact.contains("Intact"), "{intact}");
    let log = r.sluis.dir.path().join("spool/audit/audit.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    std::fs::write(&log, text.replacen("wrong recipient", "right recipient", 1)).unwrap();
    let page = a.get("/audit");
    a.post("/audit/verify", &[("csrf", &page.csrf())]);
    let damaged = a.get("/audit").text();
    assert!(damaged.contains("BESCHADIGD"), "{damaged}");
    // Verifying needs the form's token.
    assert_eq!(a.post("/audit/verify", &[]).status, 403);
}

/// Held and the sender told, with a link; from hold.test the sender may override, from
/// strict.test not.
const SENDER_RULES: &str = "[policy]\nnotify_quarantined = true\n\n\
    [[policy.rules]]\nname = \"hold-override\"\naction = \"quarantine\"\nnotify = true\n\
    allow_override = true\nreason = \"held for review\"\nwhen = { sender_domains = [\"hold.test\"] }\n\n\
    [[policy.rules]]\nname = \"hold-strict\"\naction = \"quarantine\"\nnotify = true\n\
    reason = \"held for review\"\nwhen = { sender_domains = [\"strict.test\"] }\n\n\
    [[policy.rules]]\nname = \"deliver\"\naction = \"deliver\"\n";

impl Review {
    /// Holds a letter from `from`; its quarantine id and the path of the link in its notice.
    fn hold_from(&self, from: &str, token: &str) -> (String, String) {
        let mut c = Smtp::connect(self.sluis.port);
        c.hello();
        let mail = String::from_utf8(letter(token))
            .unwrap()
            .replace("jansen@hold.test", from);
        let reply = c.send_message(from, &["pat@patients.test"], mail.as_bytes());
        assert!(reply.starts_with("250"), "{reply}");
        c.cmd("QUIT");
        let notice = wait_for(WAIT, || {
            self.sink.messages().into_iter().find(|m| {
                m.contains("Your message is held for review")
                    && m.contains(&format!("{token}@hold.test"))
            })
        })
        .expect("a hold notice");
        let at = notice
            .find("https://review.test:")
            .expect("a link in the notice");
        let link: String = notice[at..]
            .chars()
            .take_while(|c| !c.is_whitespace())
            .collect();
        let path = link.splitn(4, '/').nth(3).map(|p| format!("/{p}")).unwrap();
        let id = path.split('/').nth(2).unwrap().to_string();
        (id, path)
    }

    fn metrics(&self) -> String {
        http_get(self.admin, "/metrics").1
    }
}

#[test]
fn a_senders_link_shows_the_hold_takes_a_false_positive_report_and_overrides_where_allowed() {
    let r = review_of(false, SENDER_RULES, "");
    let (id1, link1) = r.hold_from("jansen@hold.test", "sd-one");
    let (id2, link2) = r.hold_from("jansen@strict.test", "sd-two");
    let mut s = r.browser();
    let page1 = s.get(&link1);
    assert_eq!(page1.status, 200, "{}", page1.text());
    let text = page1.text();
    assert!(text.contains(&id1) && text.contains("pat@patients.test"));
    assert!(text.contains("***-**-782") && !text.contains(BSN));
    assert!(text.contains("/override\""), "the override is offered");
    let page2 = s.get(&link2);
    assert!(
        !page2.text().contains("/override\""),
        "no override where the rule does not allow it"
    );
    // A link opens its own item only; a changed token opens nothing.
    let token1 = link1.rsplit('/').next().unwrap();
    assert_eq!(s.get(&format!("/s/{id2}/{token1}")).status, 404);
    assert_eq!(s.get(&format!("{link1}x")).status, 404);
    let later = token1.replacen(|c: char| c.is_ascii_digit(), "9", 1);
    assert_eq!(
        s.get(&format!("/s/{id1}/{later}")).status,
        404,
        "a forged expiry"
    );

    // A false-positive report: on the item for the reviewers, audited, counted.
    let reported = s.post(
        &format!("{link2}/report"),
        &[
            ("csrf", &page2.csrf()),
            ("comment", "nieuwsbrief zonder patiënt"),
        ],
    );
    assert_eq!(reported.status, 200, "{}", reported.text());
    assert!(!s.get(&link2).text().contains("/report\""), "reported once");
    let mut b = r.signed_in("alice", 0);
    let item = b.get(&format!("/quarantine/{id2}")).text();
    assert!(
        item.contains("De afzender meldt") && item.contains("nieuwsbrief zonder patiënt"),
        "{item}"
    );
    let reviews = r.reviews();
    let fp = reviews
        .iter()
        .find(|v| v["action"] == "false-positive")
        .expect("audited");
    assert_eq!(fp["reviewer"], "sender:jansen@strict.test");
    assert!(
        r.metrics()
            .contains("sluis_quarantine_reviews_total{action=\"false-positive\"} 1"),
        "counted"
    );
    // Without the form's token: refused.
    assert_eq!(
        s.post(&format!("{link2}/report"), &[("comment", "x")])
            .status,
        403
    );
    // No override where the rule does not allow it.
    let refused = s.post(
        &format!("{link2}/override"),
        &[("csrf", &page2.csrf()), ("justification", "urgent")],
    );
    assert_eq!(refused.status, 403);

    // The override: released like a reviewer's release, audited as the sender.
    let empty = s.post(
        &format!("{link1}/override"),
        &[("csrf", &page1.csrf()), ("justification", " ")],
    );
    assert_eq!(empty.status, 400);
    let sent = s.post(
        &format!("{link1}/override"),
        &[
            ("csrf", &page1.csrf()),
            ("justification", "de patiënt vroeg erom"),
        ],
    );
    assert_eq!(sent.status, 200, "{}", sent.text());
    assert!(sent.text().contains("Aangenomen voor aflevering"));
    let got = wait_for(WAIT, || {
        r.sink
            .messages()
            .into_iter()
            .find(|m| m.contains("Kenmerk sd-one") && !m.contains("held for review"))
    });
    assert!(got.is_some(), "the overridden message did not arrive");
    let reviews = r.reviews();
    let release = reviews
        .iter()
        .find(|v| v["action"] == "release")
        .expect("audited");
    assert_eq!(release["reviewer"], "sender:jansen@hold.test");
    assert!(
        release["reason"]
            .as_str()
            .unwrap()
            .contains("de patiënt vroeg erom")
    );
    // Decided: the link stops working.
    let after = s.get(&link1);
    assert_eq!(after.status, 410);
    assert!(after.text().contains("al besloten"));
}

#[test]
fn a_senders_link_stops_at_its_expiry() {
    let r = review_of(false, SENDER_RULES, "sender_link_time = \"2s\"\n");
    let (_, link) = r.hold_from("jansen@hold.test", "sd-exp");
    let mut s = r.browser();
    assert_eq!(s.get(&link).status, 200);
    std::thread::sleep(Duration::from_millis(2500));
    let expired = s.get(&link);
    assert_eq!(expired.status, 410);
    assert!(expired.text().contains("verlopen"));
    // Nor does it act.
    let csrf = s.get("/login").csrf();
    for (action, field) in [("report", "comment"), ("override", "justification")] {
        let p = s.post(
            &format!("{link}/{action}"),
            &[("csrf", &csrf), (field, "late")],
        );
        assert_eq!(p.status, 410, "{action}");
    }
    assert!(r.reviews().is_empty());
}

/// Two instances on one PostgreSQL database, each with its own web listener, the same users
/// file and the same key for the senders' links (as behind a load balancer).
#[test]
fn two_instances_on_postgresql_share_items_logins_and_reviews() {
    let pg = common::postgres::Postgres::start(4);
    pg.psql("CREATE DATABASE review_web");
    let store = pg.store_toml().replace("/postgres\"", "/review_web\"");
    let keep = scratch("review-pg");
    let pki = pki_for(keep.path(), &["review.test"]);
    let users = keep.path().join("users");
    let secret = add_user(&users, "alice", "reviewer");
    let key = keep.path().join("web.secret");
    let sink = Sink::start(&[]);
    let start = || {
        let port = free_port();
        let cfg = format!(
            "{store}\n{RULES}\n[web]\nlisten = \"127.0.0.1:{port}\"\n\
             base_url = \"https://review.test:{port}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n\
             users_file = \"{}\"\nsecret_file = \"{}\"\n",
            pki.cert.display(),
            pki.key.display(),
            users.display(),
            key.display()
        );
        let s = Sluis::start(sink.port, &cfg);
        let up = wait_for(WAIT, || {
            s.log()
                .contains("reviewers' web interface ready")
                .then_some(())
        });
        assert!(up.is_some(), "{}", s.log());
        (s, port)
    };
    let (a, port_a) = start();
    let (b, port_b) = start();
    let browser = |port: u16| {
        Browser::new(
            std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            "review.test",
            &pki.ca,
        )
    };
    // Held through A.
    let mut c = Smtp::connect(a.port);
    c.hello();
    let reply = c.send_message(
        "jansen@hold.test",
        &["pat@patients.test"],
        &letter("pg-one"),
    );
    assert!(reply.starts_with("250"), "{reply}");
    c.cmd("QUIT");
    // Logged in at A; the same session works at B (sessions are in the database).
    let mut at_a = browser(port_a);
    let form = at_a.get("/login");
    let ok = at_a.post(
        "/login",
        &[
            ("csrf", &form.csrf()),
            ("name", "alice"),
            ("password", PASSWORD),
            ("code", &code(&secret, 0)),
        ],
    );
    assert_eq!(ok.status, 303, "{}", ok.text());
    let mut at_b = browser(port_b);
    at_b.cookies = at_a.cookies.clone();
    let list = at_b.get("/quarantine");
    assert_eq!(list.status, 200, "the session of A is not known at B");
    let text = list.text();
    let at = text
        .find("href=\"/quarantine/")
        .expect("the item held through A");
    let id: String = text[at + 18..].chars().take_while(|c| *c != '"').collect();
    // Reviewed through B's pages.
    let item = at_b.get(&format!("/quarantine/{id}"));
    assert_eq!(item.status, 200);
    assert!(!item.text().contains(BSN));
    let released = at_b.post(
        &format!("/quarantine/{id}/release"),
        &[
            ("csrf", &item.csrf()),
            ("reason", "checked with the sender"),
        ],
    );
    assert_eq!(released.status, 200, "{}", released.text());
    let got = wait_for(WAIT, || {
        sink.messages()
            .into_iter()
            .find(|m| m.contains("Kenmerk pg-one"))
    });
    assert!(got.is_some(), "the release did not arrive");
    // A sees it settled, by whom.
    let settled = at_a.get(&format!("/quarantine/{id}"));
    assert_eq!(settled.status, 410);
    assert!(settled.text().contains("local:alice"));
    drop(b);
    drop(a);
}

/// Held with a level a release must meet; a pickup portal beside the web pages.
const PORTAL_RULES: &str = "[policy]\nnotify_quarantined = false\n\n\
    [[policy.rules]]\nname = \"hold\"\naction = \"quarantine\"\nrequire = \"trusted\"\n\
    reason = \"held for review\"\nwhen = { sender_domains = [\"hold.test\"] }\n\n\
    [[policy.rules]]\nname = \"deliver\"\naction = \"deliver\"\n";

#[test]
fn a_release_that_cannot_meet_the_level_offers_the_portal_which_seals_and_notifies() {
    let keep = scratch("portal-dir");
    let directory = keep.path().join("directory.csv");
    std::fs::write(
        &directory,
        "address,phone\npat@patients.test,+31612345678\n",
    )
    .unwrap();
    let portal = format!(
        "\n[portal]\nlisten = \"127.0.0.1:{}\"\nbase_url = \"https://portal.test\"\n\
         from = \"beveiligd@org.test\"\norganisation = \"Ziekenhuis Oost\"\n\
         directory_file = \"{}\"\n[portal.sms]\nkind = \"file\"\npath = \"{}\"\n\n\
         [upstream.lanes.secure]\naddress = \"127.0.0.1:9\"\nlevel = \"trusted\"\n\n\
         [dns]\ntimeout = \"1s\"\n",
        free_port(),
        directory.display(),
        keep.path().join("sms.jsonl").display()
    );
    let r = review_of(false, PORTAL_RULES, &portal);
    let ids = r.hold(&["vp-one"]);
    let mut b = r.signed_in("alice", 0);
    let item = b.get(&format!("/quarantine/{}", ids[0]));
    assert!(
        item.text()
            .contains(&format!("/quarantine/{}/portal\"", ids[0]))
    );
    // The release: refused with the truth (patients.test's server has no posture here: no
    // resolver answers), the portal offered.
    let refused = b.post(
        &format!("/quarantine/{}/release", ids[0]),
        &[("csrf", &item.csrf()), ("reason", "patient asked")],
    );
    assert_eq!(refused.status, 409, "{}", refused.text());
    let text = refused.text();
    assert!(
        text.contains("posture is unknown now") && text.contains("ophaalportal"),
        "{text}"
    );
    assert!(text.contains(&format!("/quarantine/{}/portal\"", ids[0])));
    // Send via the portal: sealed, the patient notified, the item settled, audited.
    let path = format!("/quarantine/{}/portal", ids[0]);
    assert_eq!(
        b.post(&path, &[("csrf", &item.csrf()), ("reason", " ")])
            .status,
        400
    );
    let sent = b.post(
        &path,
        &[
            ("csrf", &item.csrf()),
            ("reason", "patient has no secure mail"),
        ],
    );
    assert_eq!(sent.status, 200, "{}", sent.text());
    let portal_id = format!("{}-R", ids[0]);
    assert!(sent.text().contains(&portal_id) && sent.text().contains("bericht gestuurd"));
    let note = wait_for(WAIT, || {
        r.sink
            .messages()
            .into_iter()
            .find(|m| m.contains("Beveiligd bericht van") && m.contains("pat@patients.test"))
    })
    .expect("the patient's notification");
    assert!(!note.contains(BSN) && !note.contains("Kenmerk vp-one"));
    assert!(
        r.sluis
            .dir
            .path()
            .join(format!("spool/quarantine/portal/{portal_id}.json"))
            .exists()
    );
    assert_eq!(b.get(&format!("/quarantine/{}", ids[0])).status, 410);
    let reviews = r.reviews();
    let rec = reviews
        .iter()
        .find(|v| v["action"] == "portal")
        .expect("audited");
    assert_eq!(rec["reviewer"], "local:alice");
    assert_eq!(rec["portal_id"], portal_id.as_str());
    assert!(
        reviews.iter().any(|v| v["action"] == "release-refused"),
        "{reviews:?}"
    );
}
