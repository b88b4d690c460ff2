//! Unit tests of building nodes from the inventory: placeholders, paths, vias, file clashes.

use super::*;

#[test]
fn placeholders_are_checked() {
    assert_eq!(unknown_placeholder("/etc/{ca}/{node}.pem"), None);
    assert_eq!(unknown_placeholder("/etc/{nod}/x"), Some("{nod}"));
    assert_eq!(unknown_placeholder("/etc/{ca"), Some("{ca"));
    assert_eq!(unknown_placeholder("/plain"), None);
}

#[test]
fn key_paths_fall_back_to_defaults() {
    let p = key_at("app1", &["ssh", "host"]);
    assert_eq!(p.at[0].to_string(), "nodes.app1.ssh.host");
    assert_eq!(p.at[1].to_string(), "defaults.ssh.host");
}

#[test]
fn fill_matches_node_paths() {
    let node = Node {
        name: "app1".into(),
        transport: TransportKind::Local,
        via: None,
        trust_bundle: "/etc/{ca}/{node}/ca.pem".into(),
        cert: "/x/{node}{ca}{nod}{".into(),
        key: "/plain/key.pem".into(),
        proof_cert: Some("{ca}".into()),
        reload: None,
        confirm: None,
        confirm_timeout: std::time::Duration::from_secs(1),
        probe: None,
        tls: None,
        dns_names: Vec::new(),
        become_with: Become::Login,
        files: FileSettings::default(),
        stores: Default::default(),
    };
    let p = node.paths("edge");
    let mut out = String::from("stale");
    for (template, expected) in [
        (&node.trust_bundle, &p.trust_bundle),
        (&node.cert, &p.cert),
        (&node.key, &p.key),
    ] {
        fill(&mut out, template, "edge", "app1");
        assert_eq!(&out, expected);
    }
    fill(&mut out, "{ca}", "edge", "app1");
    assert_eq!(Some(out), p.proof_cert);
}
