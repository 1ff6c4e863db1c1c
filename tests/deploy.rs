//! What an administrator installs: the systemd unit, the Debian package, the Postfix lane
//! snippet, the container and Kubernetes files, checked as shipped.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

#[test]
fn systemd_unit_verifies_cleanly() {
    let analyze = require("systemd-analyze");
    let dir = scratch("unit");
    let unit = std::fs::read_to_string("deploy/systemd/sluis.service").unwrap();
    for must in [
        "User=sluis",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "StateDirectory=sluis",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(unit.contains(must), "unit lacks {must}");
    }
    // systemd-analyze wants the binary to exist: point the copy at the one just built.
    let path = dir.path().join("sluis.service");
    std::fs::write(&path, unit.replace("/usr/bin/sluis", SLUIS)).unwrap();
    let out = Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze: {said}"
    );
}

#[test]
fn debian_package_installs_a_working_sluis() {
    let dir = scratch("deb");
    let out = Command::new("bash")
        .args(["deploy/debian/build-deb.sh"])
        .arg(dir.path().join("out"))
        .env("SLUIS_BIN", SLUIS)
        .output()
        .unwrap();
    assert_success(&out, "command");
    let deb = String::from_utf8_lossy(&out.stdout)
        .trim()
        .lines()
        .last()
        .unwrap()
        .to_string();
    let info = Command::new("dpkg-deb")
        .args(["-f", &deb, "Package", "Version"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&info.stdout).contains("Package: sluis"));

    // Install into a scratch root and run it from there.
    let root = dir.path().join("root");
    let x = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&root)
        .status()
        .unwrap();
    assert!(x.success());
    let bin = root.join("usr/bin/sluis");
    let v = Command::new(&bin).arg("--version").output().unwrap();
    assert!(
        String::from_utf8_lossy(&v.stdout).starts_with("sluis "),
        "{v:?}"
    );
    let check = Command::new(&bin)
        .args(["config", "check", "--config"])
        .arg(root.join("etc/sluis/sluis.toml"))
        .output()
        .unwrap();
    assert_success(&check, "sluis config check");
    assert!(String::from_utf8_lossy(&check.stdout).contains("spool_dir = \"/var/lib/sluis\""));
    assert_eq!(
        std::fs::read(root.join("lib/systemd/system/sluis.service")).unwrap(),
        std::fs::read("deploy/systemd/sluis.service").unwrap()
    );
    let man = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "gzip -dc {}",
            root.join("usr/share/man/man8/sluis.8.gz").display()
        ))
        .output()
        .unwrap();
    let man = String::from_utf8_lossy(&man.stdout);
    assert!(
        man.contains(".TH sluis 8") && man.contains("serve"),
        "{man}"
    );
    let conffiles = Command::new("dpkg-deb")
        .args(["-I", &deb, "conffiles"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&conffiles.stdout).trim(),
        "/etc/sluis/sluis.toml"
    );
}

#[test]
fn postfix_lane_snippet_delivers_each_lane_with_its_tls_level() {
    let ports = [free_port(), free_port(), free_port()];
    let lanes = postfix_with_lanes(ports);
    let d = lanes.dir.display().to_string();
    // The lane transports carry the TLS level the lane promises.
    let p = Command::new("postconf")
        .args(["-c", &d, "-P"])
        .output()
        .unwrap();
    let p = String::from_utf8_lossy(&p.stdout);
    assert!(
        p.contains("sluis-dane-only/unix/smtp_tls_security_level = dane-only"),
        "{p}"
    );
    assert!(p.contains("sluis-secure/unix/smtp_tls_security_level = secure"));
    assert!(p.contains("sluis-may/unix/smtp_tls_security_level = may"));

    // Sluis relays into each lane; each lane hands the message to its own transport.
    for (port, transport) in ports
        .iter()
        .zip(["sluis-may", "sluis-dane-only", "sluis-secure"])
    {
        let sluis = Sluis::start(*port, "");
        let mut c = Smtp::connect(sluis.port);
        c.hello();
        let body = format!("Subject: lane\r\nMessage-ID: <{transport}@org.test>\r\n\r\nx\r\n");
        let r = c.send_message("a@org.test", &["b@lane.invalid"], body.as_bytes());
        assert!(r.starts_with("250"), "{transport}: {r}");
        let seen = wait_for(Duration::from_secs(20), || {
            lanes
                .maillog()
                .lines()
                .any(|l| {
                    l.contains(&format!("/{transport}/smtp[")) && l.contains("to=<b@lane.invalid>")
                })
                .then_some(())
        });
        assert!(
            seen.is_some(),
            "{transport} did not deliver:\n{}",
            lanes.maillog()
        );
    }
    let _ = Command::new("postfix").args(["-c", &d, "stop"]).output();
}

#[test]
fn container_and_kubernetes_files_agree_and_their_configs_are_valid() {
    let out = Command::new(require("python3"))
        .arg("tests/deploy_files.py")
        .output()
        .unwrap();
    assert_success(&out, "command");
    let configs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let dir = scratch("cfgs");
    // The PostgreSQL variant's secrets, where its configuration expects them mounted.
    let secrets = dir.path().join("sluis-db");
    std::fs::create_dir(&secrets).unwrap();
    std::fs::write(secrets.join("password"), "x").unwrap();
    std::fs::write(secrets.join("ca.crt"), "x").unwrap();
    for which in ["container", "kubernetes", "kubernetes-postgres"] {
        let path = dir.path().join(format!("{which}.toml"));
        let text = configs[which]
            .as_str()
            .unwrap()
            .replace("/run/secrets/sluis-db", &secrets.display().to_string());
        std::fs::write(&path, text).unwrap();
        let check = config_check(&path);
        assert_success(&check, which);
    }
}

#[test]
fn prometheus_rules_pass_promtool_and_their_unit_tests() {
    let promtool = require("promtool");
    for args in [
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts_test.yml"],
    ] {
        let out = Command::new(&promtool)
            .args(args)
            .current_dir("deploy/prometheus")
            .output()
            .unwrap();
        assert_success(&out, &format!("promtool {args:?}"));
    }
}

/// Metric names (sluis_*) in `text`, histogram suffixes stripped.
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find("sluis_") {
        let start = i + pos;
        let end = start
            + bytes[start..]
                .iter()
                .take_while(|b| b.is_ascii_lowercase() || **b == b'_')
                .count();
        let name = &text[start..end];
        let base = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        names.insert(base.to_string());
        i = end;
    }
    names
}

#[test]
fn dashboard_and_alerts_refer_only_to_metrics_sluis_exports() {
    let dashboard = std::fs::read_to_string("deploy/grafana/sluis-dashboard.json").unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    let exprs: String = parsed["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter())
        .map(|t| t["expr"].as_str().unwrap().to_string() + "\n")
        .collect();
    let alerts = std::fs::read_to_string("deploy/prometheus/alerts.yml").unwrap();
    let used: Vec<String> = metric_names(&exprs)
        .into_iter()
        .chain(metric_names(&alerts))
        .collect();
    // Registered by Sluis: every name in src/metrics.rs.
    let registered = metric_names(&std::fs::read_to_string("src/metrics.rs").unwrap());
    for name in &used {
        assert!(
            registered.contains(name),
            "{name} is used but Sluis registers no such metric"
        );
    }
    // And the core families are there in a live scrape after one message.
    let sink = Sink::start(&[]);
    let (sluis, admin) = Sluis::start_with_admin(sink.port, "");
    let mut c = Smtp::connect(sluis.port);
    c.hello();
    let r = c.send_message(
        "a@org.test",
        &["b@partner.test"],
        b"Subject: x\r\n\r\nHello\r\n",
    );
    assert!(r.starts_with("250"), "{r}");
    // Patient data to a domain whose posture cannot be established (no resolver here):
    // deferred, never sent on a guess.
    let r = c.send_message(
        "a@org.test",
        &["b@partner.test"],
        b"Subject: x\r\n\r\nPatient BSN 123456782\r\n",
    );
    assert!(r.starts_with("451 4.4.3"), "{r}");
    let (_, scrape) = http_get(admin, "/metrics");
    for family in [
        "sluis_messages_total",
        "sluis_findings_total",
        "sluis_upstream_seconds",
        "sluis_inspect_seconds",
        "sluis_smtp_sessions_active",
        "sluis_smtp_session_seconds",
        "sluis_build_info",
        "sluis_recipients_total",
        "sluis_quarantine_items",
        "sluis_upstream_results_total",
        "sluis_posture_lookup_seconds",
    ] {
        assert!(
            used.iter().any(|u| u == family),
            "the dashboard or alerts do not show {family}"
        );
        assert!(
            scrape.contains(&format!("# TYPE {family} ")),
            "{family} not in the scrape"
        );
    }
    for process in [
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_cpu_seconds_total",
    ] {
        assert!(
            scrape.contains(&format!("# TYPE {process} ")),
            "{process} not in the scrape"
        );
    }
}
