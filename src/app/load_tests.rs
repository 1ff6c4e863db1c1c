//! `app::load_config` end to end: file:line: key errors from the leaf's checks and the wired
//! ones alike, flags, the profile switch.

use crate::app::load_config as load;
use crate::config::*;
use std::io::Write;

fn load_text(text: &str) -> Result<Config, ConfigError> {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    load(Some(f.path()), &Overrides::default())
}

#[test]
fn embedded_default_is_valid() {
    let c = load(None, &Overrides::default()).unwrap();
    assert_eq!(c.upstream.default_lane, "default");
}

#[test]
fn unknown_key_names_line_and_key() {
    let e = load_text("[server]\nhostname = \"gw.test\"\nlisten_adress = 1\n").unwrap_err();
    let s = e.to_string();
    assert!(s.contains(":3: server.listen_adress: unknown field"), "{s}");
}

#[test]
fn bad_network_names_line_and_key() {
    let e = load_text("[server]\n\nallow_networks = [\"10.0.0.0/33\"]\n").unwrap_err();
    let s = e.to_string();
    assert!(s.contains(":3: server.allow_networks:"), "{s}");
}

#[test]
fn semantic_error_names_line_and_key() {
    let e = load_text("[limits]\nrecipients = 5\n\nsessions = 2\nsessions_per_client = 9\n")
        .unwrap_err();
    let s = e.to_string();
    assert!(s.contains(":5: limits.sessions_per_client:"), "{s}");
    let e = load_text(
        "[[inspect.identifiers]]\nname = \"patnr\"\npattern = \"PAT\\\\d+\"\n\n\
         [[inspect.identifiers]]\nname = \"case\"\npattern = \"(unclosed\"\n",
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains(":7: inspect.identifiers[1].pattern: identifier \"case\""),
        "{e}"
    );
    let e = load_text("[upstream]\ndefault_lane = \"strict\"\n").unwrap_err();
    assert!(
        e.to_string()
            .contains(":2: upstream.default_lane: no lane named")
    );
}

#[test]
fn policy_errors_name_the_rule_and_a_profile_switch_beside_rules_is_refused() {
    let e = load_text(
        "[[policy.rules]]\nname = \"x\"\naction = \"refuse\"\nrequire = \"dane\"\n\n\
         [[policy.rules]]\nname = \"rest\"\naction = \"deliver\"\n",
    )
    .unwrap_err();
    assert!(
        e.to_string().contains(":4: policy.rules[0].require:"),
        "{e}"
    );
    let rules = "[[policy.rules]]\nname = \"rest\"\naction = \"deliver\"\n";
    let e = load_text(&format!(
        "[forwards]\nrefuse_to_unmanaged = false\n\n{rules}"
    ))
    .unwrap_err();
    assert!(
        e.to_string()
            .contains(":2: forwards.refuse_to_unmanaged: only shapes the NTA 7516 profile"),
        "{e}"
    );
    // Without rules of one's own it shapes the profile: no forward rule then.
    let c = load_text("[forwards]\nrefuse_to_unmanaged = false\n").unwrap();
    assert!(!c.policy.rules.iter().any(|r| r.name == "automated-forward"));
    assert!(load_text(rules).is_ok());
}

#[test]
fn flags_override_file_and_name_the_flag_on_error() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(b"[server]\nlisten = [\"127.0.0.1:25\"]\n")
        .unwrap();
    let o = Overrides {
        listen: Some("127.0.0.1:2600".parse().unwrap()),
        upstream: Some("no-port".into()),
        ..Default::default()
    };
    let e = load(Some(f.path()), &o).unwrap_err().to_string();
    assert!(e.contains("--upstream"), "{e}");
    let o = Overrides {
        listen: Some("127.0.0.1:2600".parse().unwrap()),
        ..Default::default()
    };
    let c = load(Some(f.path()), &o).unwrap();
    assert_eq!(c.server.listen, vec!["127.0.0.1:2600".parse().unwrap()]);
}

#[test]
fn rendered_config_reads_back_identical() {
    let c = load(None, &Overrides::default()).unwrap();
    let back: Config = toml::from_str(&render(&c)).unwrap();
    assert_eq!(back, c);
}

#[test]
fn store_settings_are_checked_and_none_is_ignored() {
    // A password in the URL names the line and says where it belongs.
    let e = load_text(
        "[store]\nkind = \"postgres\"\n\nurl = \"postgresql://sluis:secret@db.test/sluis\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains(":4: store.url: holds a password"), "{e}");
    assert!(!e.contains("secret"), "the password is repeated: {e}");
    let e = load_text("[store]\nkind = \"postgres\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("store.kind: \"postgres\" needs store.url"),
        "{e}"
    );
    // Database settings beside the files store would be ignored: an error instead.
    let e = load_text("[store]\nurl = \"postgresql://sluis@db.test/sluis\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(":2: store.url: set, but store.kind is \"files\""),
        "{e}"
    );
    let c = load_text(
        "[store]\nkind = \"postgres\"\nurl = \"postgresql://sluis@db.test:5433/sluis\"\n",
    )
    .unwrap();
    assert_eq!(c.store.kind, StoreKind::Postgres);
}
