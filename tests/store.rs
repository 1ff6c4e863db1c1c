//! The store's guarantees, one set of tests run against both backends: files in a scratch
//! directory, and a real PostgreSQL (Debian's server, started by the harness) with a fresh
//! database per test. "Two instances" are two `Store`s opened on the same directory or
//! database, as two Sluis processes would.

mod common;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sluis::config::{Config, StoreKind, StoreTls};
use sluis::spool::SpooledBody;
use sluis::store::{Anchor, Claim, Store, StoreError};

use common::postgres::Postgres;

/// One server for the whole binary; each test gets its own database on it.
fn server() -> &'static Postgres {
    static PG: OnceLock<Postgres> = OnceLock::new();
    PG.get_or_init(|| Postgres::start(1))
}

enum Backend {
    Files(tempfile::TempDir),
    Postgres(String),
}

struct Fixture {
    config: Config,
    _dir: Option<tempfile::TempDir>,
}

impl Fixture {
    fn new(backend: Backend, max_bytes: u64) -> Fixture {
        let mut config = Config::default();
        config.quarantine.max_bytes = max_bytes;
        let dir = match backend {
            Backend::Files(dir) => {
                config.quarantine.dir = Some(dir.path().join("q"));
                Some(dir)
            }
            Backend::Postgres(db) => {
                let pg = server();
                pg.psql(&format!("CREATE DATABASE {db}"));
                config.store.kind = StoreKind::Postgres;
                config.store.url = Some(format!(
                    "postgresql://{}@{}/{db}",
                    common::postgres::PG_USER,
                    pg.addr
                ));
                config.store.password_file = Some(pg.password_file());
                config.store.tls = StoreTls::Off;
                config.store.timeout = Duration::from_secs(2);
                None
            }
        };
        Fixture { config, _dir: dir }
    }

    /// An instance on this backend (call again for a second one).
    async fn open(&self) -> Store {
        Store::open(&self.config).await.expect("store opens")
    }
}

fn files(max_bytes: u64) -> Fixture {
    Fixture::new(Backend::Files(tempfile::tempdir().unwrap()), max_bytes)
}

fn postgres(name: &str, max_bytes: u64) -> Fixture {
    Fixture::new(Backend::Postgres(format!("t_{name}")), max_bytes)
}

/// Each test, once per backend.
macro_rules! both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn files() {
                super::$name(super::files(1 << 30)).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                super::$name(super::postgres(stringify!($name), 1 << 30)).await
            }
        }
    )*};
}

both!(
    an_item_is_stored_whole_and_read_back,
    of_two_instances_claiming_one_item_exactly_one_gets_it,
    a_settled_item_names_who_settled_it,
    a_partly_released_item_stays_held_unclaimed,
    a_crashed_reviewers_claim_expires,
    an_exclusive_job_runs_once_across_instances,
    anchors_are_kept_per_instance,
    sessions_are_shared_and_expire,
    concurrent_hits_from_two_instances_count_exactly,
    a_sealed_portal_item_holds_nothing_readable_and_shreds_whole,
);

async fn body(text: &[u8]) -> SpooledBody {
    let mut b = SpooledBody::new(std::env::temp_dir(), 1024);
    b.write(text).await.unwrap();
    b
}

fn meta(id: &str, created_unix: u64) -> serde_json::Value {
    serde_json::json!({ "id": id, "created_unix": created_unix, "sender": "a@org.test" })
}

async fn put(store: &Store, id: &str, created_unix: u64) {
    let mut b = body(b"Subject: x\r\n\r\nhello\r\n").await;
    store
        .put(
            id,
            created_unix,
            &meta(id, created_unix),
            b"Received: x\r\n",
            &mut b,
        )
        .await
        .unwrap();
}

async fn an_item_is_stored_whole_and_read_back(f: Fixture) {
    let a = f.open().await;
    let b = f.open().await;
    put(&a, "T2", 200).await;
    put(&a, "T1", 100).await;
    // The other instance sees it: message, metadata, order.
    let held = b.get("T1").await.unwrap();
    assert_eq!(held.meta, meta("T1", 100));
    assert_eq!(held.created_unix, 100);
    assert_eq!(held.claim, None);
    assert_eq!(
        b.message("T1").await.unwrap(),
        b"Received: x\r\nSubject: x\r\n\r\nhello\r\n"
    );
    let ids: Vec<String> = b.list().await.unwrap().into_iter().map(|h| h.id).collect();
    assert_eq!(ids, ["T1", "T2"]);
    let (bytes, items) = b.usage().await.unwrap();
    assert_eq!(items, 2);
    assert!(bytes >= 2 * 34, "{bytes}");
    // Withdrawn (the transaction failed): gone without a trace.
    a.withdraw("T2").await.unwrap();
    assert!(matches!(b.get("T2").await, Err(StoreError::NotFound(_))));
    assert!(matches!(b.get("../x").await, Err(StoreError::BadId(_))));
    assert_eq!(b.usage().await.unwrap().1, 1);
}

async fn of_two_instances_claiming_one_item_exactly_one_gets_it(f: Fixture) {
    let a = Arc::new(f.open().await);
    let b = Arc::new(f.open().await);
    for round in 0..20 {
        let id = format!("R{round}");
        put(&a, &id, round).await;
        let (ca, cb) = (Claim::new("alice", "release"), Claim::new("bob", "release"));
        let lease = Duration::from_secs(900);
        let (ra, rb) = tokio::join!(
            {
                let (a, id, ca) = (a.clone(), id.clone(), ca.clone());
                async move { a.claim(&id, &ca, lease).await }
            },
            {
                let (b, id, cb) = (b.clone(), id.clone(), cb.clone());
                async move { b.claim(&id, &cb, lease).await }
            }
        );
        let (winner, loser) = match (&ra, &rb) {
            (Ok(_), Err(StoreError::Busy { claim, .. })) => (&ca, claim),
            (Err(StoreError::Busy { claim, .. }), Ok(_)) => (&cb, claim),
            other => panic!("round {round}: not exactly one claim: {other:?}"),
        };
        // The loser is told who has it.
        assert_eq!(loser.by, winner.by);
        assert_eq!(loser.action, "release");
        let shown = a.get(&id).await.unwrap().claim.expect("claimed");
        assert_eq!(shown.by, winner.by);
        // Only the holder settles.
        let other = if winner.by == "alice" { &cb } else { &ca };
        assert!(matches!(
            a.settle(&id, other, None).await,
            Err(StoreError::Busy { .. })
        ));
        a.settle(&id, winner, None).await.unwrap();
    }
}

async fn a_settled_item_names_who_settled_it(f: Fixture) {
    let a = f.open().await;
    let b = f.open().await;
    put(&a, "S1", 1).await;
    let claim = Claim::new("alice", "reject");
    a.claim("S1", &claim, Duration::from_secs(60))
        .await
        .unwrap();
    a.settle("S1", &claim, None).await.unwrap();
    let late = Claim::new("bob", "release");
    match b.claim("S1", &late, Duration::from_secs(60)).await {
        Err(StoreError::Settled { claim, .. }) => {
            assert_eq!(
                (claim.by.as_str(), claim.action.as_str()),
                ("alice", "reject")
            );
            let said = StoreError::Settled {
                id: "S1".into(),
                claim,
            }
            .to_string();
            assert!(said.contains("reject by alice"), "{said}");
        }
        other => panic!("expected Settled, got {other:?}"),
    }
    assert!(matches!(b.get("S1").await, Err(StoreError::Settled { .. })));
    assert!(matches!(
        b.message("S1").await,
        Err(StoreError::Settled { .. })
    ));
    assert!(b.list().await.unwrap().is_empty());
    assert_eq!(b.usage().await.unwrap(), (0, 0));
    // Tombstones go with retention.
    assert_eq!(
        b.forget_settled(sluis::store::now_unix() + 1)
            .await
            .unwrap(),
        1
    );
    assert!(matches!(b.get("S1").await, Err(StoreError::NotFound(_))));
}

async fn a_partly_released_item_stays_held_unclaimed(f: Fixture) {
    let a = f.open().await;
    put(&a, "P1", 1).await;
    let claim = Claim::new("alice", "release");
    a.claim("P1", &claim, Duration::from_secs(60))
        .await
        .unwrap();
    let remaining = serde_json::json!({ "id": "P1", "created_unix": 1, "left": ["b@x.test"] });
    a.settle("P1", &claim, Some(&remaining)).await.unwrap();
    let held = a.get("P1").await.unwrap();
    assert_eq!(held.meta, remaining);
    assert_eq!(held.claim, None);
    // Given up without a change: claimable again.
    let again = Claim::new("bob", "release");
    a.claim("P1", &again, Duration::from_secs(60))
        .await
        .unwrap();
    a.release_claim("P1", &again).await.unwrap();
    assert_eq!(a.get("P1").await.unwrap().claim, None);
    assert_eq!(a.message("P1").await.unwrap().len(), 34);
}

async fn a_crashed_reviewers_claim_expires(f: Fixture) {
    let a = f.open().await;
    put(&a, "C1", 1).await;
    let crashed = Claim::new("alice", "release");
    a.claim("C1", &crashed, Duration::from_secs(60))
        .await
        .unwrap();
    let next = Claim::new("bob", "release");
    assert!(matches!(
        a.claim("C1", &next, Duration::from_secs(60)).await,
        Err(StoreError::Busy { .. })
    ));
    // The lease is whole seconds: past it, the claim can be taken over.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let next = Claim::new("bob", "release");
    let held = a.claim("C1", &next, Duration::from_secs(1)).await.unwrap();
    assert_eq!(held.claim.unwrap().by, "bob");
    // The crashed claim no longer settles anything.
    assert!(matches!(
        a.settle("C1", &crashed, None).await,
        Err(StoreError::Busy { .. })
    ));
}

async fn an_exclusive_job_runs_once_across_instances(f: Fixture) {
    let a = f.open().await;
    let b = f.open().await;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let first = a.exclusive("retention", async move {
        let _ = started_tx.send(());
        let _ = rx.await;
        "first"
    });
    let second = async {
        let _ = started_rx.await;
        let skipped = b.exclusive("retention", async { "second" }).await.unwrap();
        let other = b
            .exclusive("portal-expiry", async { "other" })
            .await
            .unwrap();
        let _ = tx.send(());
        (skipped, other)
    };
    let (first, (skipped, other)) = tokio::join!(first, second);
    assert_eq!(first.unwrap(), Some("first"));
    assert_eq!(skipped, None, "the job ran twice at once");
    assert_eq!(other, Some("other"));
    // Released afterwards.
    assert_eq!(
        b.exclusive("retention", async { 1 }).await.unwrap(),
        Some(1)
    );
}

async fn anchors_are_kept_per_instance(f: Fixture) {
    let a = f.open().await;
    let anchor = |instance: &str, seq| Anchor {
        instance: instance.into(),
        seq,
        hash: format!("{seq:064x}"),
        at: 1_700_000_000 + seq,
    };
    a.put_anchor(&anchor("gw-0", 1)).await.unwrap();
    a.put_anchor(&anchor("gw-1", 7)).await.unwrap();
    a.put_anchor(&anchor("gw-0", 5)).await.unwrap();
    assert_eq!(
        f.open().await.anchors().await.unwrap(),
        vec![anchor("gw-0", 5), anchor("gw-1", 7)]
    );
}

async fn sessions_are_shared_and_expire(f: Fixture) {
    let a = f.open().await;
    let b = f.open().await;
    let now = sluis::store::now_unix();
    let v = serde_json::json!({ "reviewer": "alice", "roles": ["reviewer"] });
    a.put_session("s-1f2e", &v, now + 3600).await.unwrap();
    a.put_session("s-gone", &v, now + 1).await.unwrap();
    a.put_session("s-old", &v, now - 1).await.unwrap();
    assert_eq!(b.session("s-1f2e").await.unwrap(), Some(v.clone()));
    assert_eq!(
        b.session("s-old").await.unwrap(),
        None,
        "an expired session was read"
    );
    assert_eq!(b.session("s-none").await.unwrap(), None);
    b.drop_session("s-1f2e").await.unwrap();
    assert_eq!(a.session("s-1f2e").await.unwrap(), None);
    assert!(matches!(
        a.session("../x").await,
        Err(StoreError::BadKey(_))
    ));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(a.session("s-gone").await.unwrap(), None);
    assert_eq!(a.forget_expired().await.unwrap(), 2);
}

async fn concurrent_hits_from_two_instances_count_exactly(f: Fixture) {
    let a = Arc::new(f.open().await);
    let b = Arc::new(f.open().await);
    let window = Duration::from_secs(3600);
    let mut tasks = Vec::new();
    for i in 0..40 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            s.hit("code:item-1:rcpt", window).await.unwrap()
        }));
    }
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.unwrap());
    }
    seen.sort();
    assert_eq!(
        seen,
        (1..=40).collect::<Vec<u64>>(),
        "hits lost or counted twice"
    );
    // Another key counts apart.
    assert_eq!(a.hit("code:item-2:rcpt", window).await.unwrap(), 1);
}

/// A full store refuses: the pipeline defers (452) rather than dropping the mail.
#[tokio::test]
async fn a_full_store_refuses_on_both_backends() {
    for f in [files(100 * 1024), postgres("full", 100 * 1024)] {
        let s = f.open().await;
        let mut big = body(&vec![b'x'; 150 * 1024]).await;
        let r = s.put("BIG", 1, &meta("BIG", 1), b"", &mut big).await;
        assert!(
            matches!(r, Err(StoreError::Full { .. })),
            "{}: {r:?}",
            s.kind()
        );
        assert!(s.list().await.unwrap().is_empty());
    }
}

/// A schema newer than the binary knows is refused with a message saying what to do.
#[tokio::test]
async fn a_newer_schema_is_refused() {
    let f = postgres("newer", 1 << 30);
    f.open().await;
    server().psql_in("t_newer", "INSERT INTO sluis_schema (version) VALUES (999)");
    let err = match Store::open(&f.config).await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a newer schema was accepted"),
    };
    assert!(
        err.contains("schema is version 999, newer than this Sluis knows (4)"),
        "{err}"
    );
}

/// The files backend's own promises: private files, and what a crash leaves is cleaned up.
#[tokio::test]
async fn files_are_private_and_crash_leftovers_go() {
    use std::os::unix::fs::PermissionsExt;
    let f = files(1 << 30);
    let s = f.open().await;
    put(&s, "ABC", 1).await;
    let dir = f.config.quarantine.dir.clone().unwrap();
    for name in ["ABC.eml", "ABC.json"] {
        let mode = std::fs::metadata(dir.join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name}");
    }
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    // What a kill between the two renames leaves: a message without its JSON.
    std::fs::write(dir.join("HALF.eml"), b"x").unwrap();
    std::fs::write(dir.join(".tmp-HALF.json"), b"{").unwrap();
    std::fs::write(dir.join("GONE.claim"), b"{}").unwrap();
    let s = f.open().await;
    for name in ["HALF.eml", ".tmp-HALF.json", "GONE.claim"] {
        assert!(!dir.join(name).exists(), "{name} left behind");
    }
    assert_eq!(s.usage().await.unwrap().1, 1);
}

/// `tls = "verify"`: the server's certificate must chain to `ca_file` and name the host in
/// the URL; a server signed by another CA is refused (and only that store check fails).
#[tokio::test]
async fn tls_to_the_database_is_verified() {
    let pg = Postgres::start_tls(5);
    let url = |host: &str| {
        format!(
            "postgresql://{}@{host}:{}/postgres?hostaddr={}",
            common::postgres::PG_USER,
            pg.addr.port(),
            pg.addr.ip()
        )
    };
    let mut config = Config::default();
    config.store.kind = StoreKind::Postgres;
    config.store.password_file = Some(pg.password_file());
    config.store.tls = StoreTls::Verify;
    config.store.timeout = Duration::from_secs(2);
    config.store.ca_file = pg.ca.clone();
    config.store.url = Some(url("db.test"));
    let store = Store::open(&config).await.expect("opens over verified TLS");
    store
        .check(Duration::from_secs(2))
        .await
        .expect("answers over TLS");
    put(&store, "TLS1", 1).await;
    let ssl = pg.psql("SELECT count(*) FROM pg_stat_ssl WHERE ssl");
    assert_ne!(ssl, "0", "no connection used TLS");

    // The wrong name for the certificate.
    config.store.url = Some(url("other.test"));
    let wrong_name = Store::open(&config).await.unwrap();
    let err = wrong_name
        .check(Duration::from_secs(2))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("certificate"), "{err}");

    // Another CA.
    let other = tempfile::tempdir().unwrap();
    let other_ca = common::pki(other.path(), "db.test");
    config.store.url = Some(url("db.test"));
    config.store.ca_file = Some(other_ca.ca);
    let wrong_ca = Store::open(&config).await.unwrap();
    let err = wrong_ca
        .check(Duration::from_secs(2))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("certificate"), "{err}");
}

/// Everything the backend holds, as bytes: every file, or every row of every table.
fn everything(f: &Fixture) -> Vec<u8> {
    match &f._dir {
        Some(dir) => {
            let mut all = Vec::new();
            let mut stack = vec![dir.path().to_path_buf()];
            while let Some(d) = stack.pop() {
                for e in std::fs::read_dir(&d).unwrap().flatten() {
                    if e.path().is_dir() {
                        stack.push(e.path());
                    } else {
                        all.extend(std::fs::read(e.path()).unwrap());
                    }
                }
            }
            all
        }
        None => {
            let url = f.config.store.url.clone().unwrap();
            let db = url.rsplit('/').next().unwrap();
            let pg = server();
            // Text as text, and bytea as 'escape' encoding: printable bytes stay as they are,
            // so plaintext stored by mistake would show (hex would hide it).
            let mut all = String::new();
            for sql in [
                "SELECT id || meta::text || encode(sealed, 'escape') FROM sluis_portal",
                "SELECT key || value::text FROM sluis_session",
                "SELECT meta::text || encode(message, 'escape') FROM sluis_quarantine",
            ] {
                all.push_str(&pg.psql_in(db, sql));
            }
            all.into_bytes()
        }
    }
}

async fn a_sealed_portal_item_holds_nothing_readable_and_shreds_whole(f: Fixture) {
    use sluis::portal::service::{Portal, Sealing};
    let a = Arc::new(f.open().await);
    let b = f.open().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = f.config.clone();
    config.server.spool_dir = dir.path().to_path_buf();
    config.portal = Some(sluis::config::PortalConfig {
        base_url: "https://portal.test".into(),
        from: "beveiligd@org.test".into(),
        organisation: "Ziekenhuis Oost".into(),
        sms: Some(sluis::config::SmsConfig {
            kind: sluis::config::SmsKind::File,
            url: None,
            token_file: None,
            ca_file: None,
            path: Some(dir.path().join("sms.jsonl")),
            tries: 1,
        }),
        ..Default::default()
    });
    let audit =
        Arc::new(sluis::audit::AuditLog::open(&dir.path().join("audit.jsonl"), 1 << 20).unwrap());
    let lanes = Arc::new(sluis::relay::Lanes::from_config(&config).unwrap());
    let portal = Portal::build(&config, a.clone(), audit, lanes)
        .unwrap()
        .unwrap();
    let message = b"From: Dr. Jansen <jansen@org.test>\r\nSubject: Uitslag J. de Vries\r\n\r\n\
                    Patient J. de Vries, BSN 123456782, geboren 12-03-1961.\r\n";
    let phones = [("pat@mail.test".to_string(), "+31612345678".to_string())].into();
    let sealed = portal
        .seal(Sealing {
            id: "T1-P",
            transaction: "T1",
            sender: "jansen@org.test",
            sender_name: "Dr. Jansen",
            subject: Some("Uitslag J. de Vries"),
            message,
            recipients: &["pat@mail.test".to_string(), "other@mail.test".to_string()],
            phones: &phones,
        })
        .await
        .unwrap();
    assert_eq!(
        sealed.links.len(),
        1,
        "the number of one recipient is known"
    );
    assert!(
        sealed.completion.is_some(),
        "the other waits for the sender"
    );
    // Another instance sees the item whole.
    let item = b.sealed_item("T1-P").await.unwrap().unwrap();
    assert_eq!(item.meta["recipients"][0]["address"], "pat@mail.test");
    assert_eq!(b.list_sealed().await.unwrap().len(), 1);
    assert!(!b.sealed_message("T1-P").await.unwrap().is_empty());
    // Nothing readable anywhere in the store: not the identifiers, the text, the subject
    // (portal.show_subject is off), the number, nor the link.
    let all = everything(&f);
    // The dump does show what is stored in the clear (so a leak would show too).
    for visible in ["pat@mail.test", "Dr. Jansen"] {
        assert!(
            all.windows(visible.len()).any(|w| w == visible.as_bytes()),
            "{visible} not in the dump"
        );
    }
    for needle in [
        "123456782",
        "de Vries",
        "Uitslag",
        "12-03-1961",
        "+31612345678",
        "612345678",
        sealed.links[0].1.0.as_str(),
    ] {
        assert!(
            !all.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "{needle} is in the store"
        );
    }
    // Shredding removes the item and its keys on every instance.
    assert!(b.shred("T1-P").await.unwrap());
    assert!(a.sealed_item("T1-P").await.unwrap().is_none());
    assert!(a.sealed_message("T1-P").await.is_err());
    assert!(!b.shred("T1-P").await.unwrap());
    assert!(a.list_sealed().await.unwrap().is_empty());
}
