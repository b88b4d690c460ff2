//! One test per finding: each breaks one thing in a healthy fleet and checks that exactly
//! that is reported, with the right severity and exit code.

use time::Duration;

use super::{kinds, link, Fleet};
use crate::exit;
use crate::materials::FileKind;
use crate::tls::{FailureKind, Side};
use crate::verify::{Finding, LinkResult, Phase, Severity};

#[test]
fn healthy_fleet_is_ok() {
    let f = Fleet::new();
    let r = f.run();
    assert_eq!(r.exit_code(), exit::VERIFY_OK, "{}", r.summary());
    assert_eq!(r.summary(), "verify: 3 nodes, 2 links — OK");
    for n in &r.cas[0].nodes {
        assert!(n.findings.is_empty(), "{}: {:?}", n.name, n.findings);
        assert_eq!(n.phase, Phase::Current);
    }
    assert!(r.cas[0].links.iter().all(|l| l.result == LinkResult::Ok));
    assert_eq!(r.cas[0].safe(), Some(true));
}

#[test]
fn wrong_bundle_breaks_the_links_that_verify_with_it() {
    let mut f = Fleet::new();
    f.set("app1", &[2], 1); // app1 trusts only a CA the store does not know
    let r = f.run();
    assert_eq!(r.exit_code(), exit::VERIFY_CRITICAL);
    let k = kinds(&r, "app1");
    assert!(k.contains(&"foreign-anchor".to_string()), "{k:?}");
    assert!(k.contains(&"missing-current-anchor".to_string()), "{k:?}");
    assert_eq!(link(&r, "lb1", "app1").result, LinkResult::Ok);
    match &link(&r, "app1", "db1").result {
        LinkResult::Failed { side, kind, .. } => {
            assert_eq!((*side, *kind), (Side::Client, FailureKind::UnknownIssuer))
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert!(r
        .summary()
        .starts_with("verify: 3 nodes, 2 links — CRITICAL: 1 link would fail"));
}

#[test]
fn expired_leaf_is_critical() {
    let f = Fleet::new();
    let (cert, key) = f.g1.leaf_at(
        &["db1.internal".into()],
        Duration::days(-100),
        Duration::days(-10),
    );
    f.put("db1", "cert.pem", cert.as_bytes(), 0o644);
    f.put("db1", "key.pem", key.as_bytes(), 0o600);
    let r = f.run();
    assert_eq!(kinds(&r, "db1")[0], "expired");
    assert_eq!(r.exit_code(), exit::VERIFY_CRITICAL);
    assert!(matches!(
        link(&r, "app1", "db1").result,
        LinkResult::Failed {
            kind: FailureKind::Expired,
            ..
        }
    ));
}

#[test]
fn leaf_expiring_within_the_window_is_a_warning() {
    let f = Fleet::new();
    let (cert, key) =
        f.g1.leaf_at(&["lb1".into()], Duration::days(-80), Duration::days(10));
    f.put("lb1", "cert.pem", cert.as_bytes(), 0o644);
    f.put("lb1", "key.pem", key.as_bytes(), 0o600);
    let r = f.run();
    assert_eq!(kinds(&r, "lb1"), ["expiring"]);
    assert_eq!(r.exit_code(), exit::VERIFY_WARNING);
    // A narrower window (--warn-within 5d) silences it.
    let opts = crate::verify::VerifyOptions {
        warn_within: Some(std::time::Duration::from_secs(5 * 86_400)),
        ..Default::default()
    };
    assert_eq!(f.run_with(opts).exit_code(), exit::VERIFY_OK);
}

#[test]
fn key_not_matching_the_certificate_is_critical() {
    let f = Fleet::new();
    let (_, other_key) = f.g1.leaf(&["app1.internal".into()]);
    f.put("app1", "key.pem", other_key.as_bytes(), 0o600);
    let r = f.run();
    assert_eq!(kinds(&r, "app1"), ["key-mismatch"]);
    assert_eq!(r.exit_code(), exit::VERIFY_CRITICAL);
    assert!(r.summary().contains("1 key mismatch"), "{}", r.summary());
    // The report never contains the key.
    let text = crate::output::verify::json(&r);
    assert!(!text.contains("PRIVATE KEY"));
}

#[test]
fn corrupt_pem_is_a_finding_not_a_crash() {
    let f = Fleet::new();
    let bad = b"-----BEGIN CERTIFICATE-----\nMIIBnotreallyDER==\n-----END CERTIFICATE-----\n";
    f.put("db1", "cert.pem", bad, 0o644);
    f.put("lb1", "key.pem", b"garbage", 0o600);
    let r = f.run();
    let db1 = &r.cas[0].nodes[f.id("db1")];
    assert!(
        matches!(
            &db1.findings[0],
            Finding::Corrupt {
                file: FileKind::Cert,
                ..
            }
        ),
        "{:?}",
        db1.findings
    );
    assert_eq!(db1.phase, Phase::Unknown);
    assert!(matches!(
        &r.cas[0].nodes[f.id("lb1")].findings[0],
        Finding::Corrupt {
            file: FileKind::Key,
            ..
        }
    ));
    assert_eq!(r.exit_code(), exit::VERIFY_CRITICAL);
    assert!(matches!(
        link(&r, "app1", "db1").result,
        LinkResult::Failed { .. }
    ));
}

#[test]
fn missing_file_is_critical_and_breaks_its_links() {
    let f = Fleet::new();
    f.remove("lb1", "ca.pem");
    let r = f.run();
    assert_eq!(
        r.cas[0].nodes[f.id("lb1")].findings,
        [Finding::Missing {
            file: FileKind::TrustBundle,
            path: "nodes/lb1/ca.pem".into()
        }]
    );
    assert_eq!(r.exit_code(), exit::VERIFY_CRITICAL);
    assert!(matches!(
        link(&r, "lb1", "app1").result,
        LinkResult::Failed { .. }
    ));
    assert_eq!(link(&r, "app1", "db1").result, LinkResult::Ok);
}

#[test]
fn name_not_covered_is_critical_for_a_server() {
    let f = Fleet::new();
    let (cert, key) = f.g1.leaf(&["wrong.internal".into()]);
    f.put("app1", "cert.pem", cert.as_bytes(), 0o644);
    f.put("app1", "key.pem", key.as_bytes(), 0o600);
    let r = f.run();
    let app1 = &r.cas[0].nodes[f.id("app1")];
    assert_eq!(
        app1.findings,
        [Finding::NameNotCovered {
            missing: vec!["app1.internal".into()],
            breaks_links: true
        }]
    );
    assert!(matches!(
        link(&r, "lb1", "app1").result,
        LinkResult::Failed {
            kind: FailureKind::NameMismatch,
            ..
        }
    ));
    assert_eq!(r.exit_code(), exit::VERIFY_CRITICAL);
}

#[test]
fn unreachable_node_is_unknown_and_others_are_still_checked() {
    let f = Fleet::new();
    f.conn.down.lock().unwrap().push(f.id("db1"));
    let r = f.run();
    assert_eq!(kinds(&r, "db1"), ["unreachable"]);
    assert_eq!(r.cas[0].nodes[f.id("db1")].phase, Phase::Unknown);
    assert!(matches!(
        link(&r, "app1", "db1").result,
        LinkResult::Skipped { .. }
    ));
    assert_eq!(link(&r, "lb1", "app1").result, LinkResult::Ok);
    assert_eq!(r.cas[0].safe(), None);
    assert_eq!(r.exit_code(), exit::VERIFY_UNKNOWN);
    // Critical wins over unknown.
    f.remove("lb1", "cert.pem");
    assert_eq!(f.run().exit_code(), exit::VERIFY_CRITICAL);
}

#[test]
fn unreadable_file_is_unknown() {
    let f = Fleet::new();
    let n = &f.conn.nodes[f.id("lb1")];
    n.unreadable
        .lock()
        .unwrap()
        .push("nodes/lb1/key.pem".into());
    let r = f.run();
    assert_eq!(kinds(&r, "lb1"), ["unreadable"]);
    assert!(matches!(
        link(&r, "lb1", "app1").result,
        LinkResult::Skipped { .. }
    ));
    assert_eq!(r.exit_code(), exit::VERIFY_UNKNOWN);
}

#[test]
fn key_file_mode_looser_than_0600() {
    let f = Fleet::new();
    let key = f.conn.nodes[f.id("app1")].files.lock().unwrap()["nodes/app1/key.pem"]
        .0
        .clone();
    f.put("app1", "key.pem", &key, 0o644);
    let r = f.run();
    assert_eq!(
        r.cas[0].nodes[f.id("app1")].findings,
        [Finding::KeyMode {
            path: "nodes/app1/key.pem".into(),
            mode: "0644".into()
        }]
    );
    assert_eq!(r.exit_code(), exit::VERIFY_CRITICAL, "world-readable key");
    f.put("app1", "key.pem", &key, 0o640);
    let r = f.run();
    assert_eq!(r.cas[0].nodes[f.id("app1")].severity(), Severity::Warning);
    assert_eq!(r.exit_code(), exit::VERIFY_WARNING, "group-readable key");
}

#[test]
fn duplicate_and_stray_anchors_are_warnings() {
    let mut f = Fleet::new();
    f.inv.cas[0].bundle_foreign = crate::inventory::BundleForeign::Drop;
    let pem = f.g1.pem() + &f.g1.pem();
    f.put("lb1", "ca.pem", pem.as_bytes(), 0o644);
    let stray = f.g1.pem() + &f.g2.pem();
    f.put("db1", "ca.pem", stray.as_bytes(), 0o644);
    let r = f.run();
    assert_eq!(kinds(&r, "lb1"), ["duplicate-anchor"]);
    assert_eq!(kinds(&r, "db1"), ["stray-anchor"]);
    assert_eq!(r.exit_code(), exit::VERIFY_WARNING);
    assert!(r.cas[0].links.iter().all(|l| l.result == LinkResult::Ok));
}

#[test]
fn foreign_anchors_are_informational_when_kept() {
    let f = Fleet::new();
    let shared = f.g2.pem() + &f.g1.pem();
    f.put("db1", "ca.pem", shared.as_bytes(), 0o644);
    let r = f.run();
    assert_eq!(kinds(&r, "db1"), ["foreign-anchor"]);
    assert_eq!(r.exit_code(), exit::VERIFY_OK, "{}", r.summary());
    assert!(r.summary().ends_with("— OK"), "{}", r.summary());
}

#[test]
fn live_probe_runs_on_the_client_with_the_server_substituted() {
    let mut f = Fleet::new();
    let lb1 = f.id("lb1");
    f.inv.nodes[lb1].probe = Some("tls-probe {server} {name}:443".into());
    let opts = crate::verify::VerifyOptions {
        live: true,
        ..Default::default()
    };
    let r = f.run_with(opts.clone());
    let live = link(&r, "lb1", "app1").live.clone().unwrap();
    assert_eq!(live.command, "tls-probe app1 app1.internal:443");
    assert_eq!((live.status, live.first_line.as_str()), (Some(0), "ok"));
    assert_eq!(
        f.conn.nodes[lb1].commands.lock().unwrap().as_slice(),
        std::slice::from_ref(&live.command)
    );
    assert!(link(&r, "app1", "db1").live.is_none(), "app1 has no probe");
    assert_eq!(r.exit_code(), exit::VERIFY_OK);

    *f.conn.nodes[lb1].script.lock().unwrap() = vec![crate::transport::fake::out(7, "")].into();
    let r = f.run_with(opts);
    assert_eq!(
        link(&r, "lb1", "app1").live.as_ref().unwrap().status,
        Some(7)
    );
    assert_eq!(r.exit_code(), exit::VERIFY_CRITICAL);
    assert!(
        r.summary().contains("1 live probe failed"),
        "{}",
        r.summary()
    );
}
