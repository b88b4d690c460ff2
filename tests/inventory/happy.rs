//! Inventories that load: defaults, merging, list links, several CAs, local paths,
//! relays, the shipped example and generated fleets.

use std::path::{Path, PathBuf};
use std::time::Duration;

use certroll::inventory::{self, Inventory, InventoryError, KeyAlgorithm, TransportKind};

use super::ok;

fn home() -> String {
    std::env::var("HOME").expect("HOME must be set to run the inventory tests")
}

fn ssh(inv: &Inventory, node: &str) -> inventory::SshSettings {
    let id = inv.node_id(node).expect("node exists");
    match &inv.nodes[id].transport {
        TransportKind::Ssh(s) => s.clone(),
        TransportKind::Local => panic!("{node} should be an ssh node"),
    }
}

#[test]
fn defaults_merge_and_nodes_override() {
    let inv = ok(r#"[ca.internal]
[defaults]
ssh = { user = "certroll", port = 2222, identity_file = "~/.ssh/id_ed25519" }
reload = "systemctl reload envoy"
confirm_timeout = "2m"
dns_names = ["shared.internal"]
[nodes.lb1]
ssh = { host = "10.0.0.10", user = "admin", known_hosts = "/etc/ssh/known" }
dns_names = ["lb1.internal"]
[nodes.app1]
ssh = { host = "10.0.0.21", port = 22 }
reload = "nginx -s reload"
"#);
    let (app, lb) = (ssh(&inv, "app1"), ssh(&inv, "lb1"));
    assert_eq!(
        (app.host.as_str(), app.port, app.user.as_str()),
        ("10.0.0.21", 22, "certroll")
    );
    assert_eq!((lb.port, lb.user.as_str()), (2222, "admin"));
    let id_file = PathBuf::from(format!("{}/.ssh/id_ed25519", home()));
    assert_eq!(app.identity_file.as_ref(), Some(&id_file));
    assert_eq!(
        app.known_hosts,
        PathBuf::from(format!("{}/.ssh/known_hosts", home()))
    );
    assert_eq!(lb.known_hosts, PathBuf::from("/etc/ssh/known"));
    let node = |n: &str| &inv.nodes[inv.node_id(n).unwrap()];
    assert_eq!(node("app1").reload.as_deref(), Some("nginx -s reload"));
    assert_eq!(
        node("lb1").reload.as_deref(),
        Some("systemctl reload envoy")
    );
    assert_eq!(node("app1").confirm_timeout, Duration::from_secs(120));
    assert_eq!(node("app1").dns_names, ["shared.internal"]);
    assert_eq!(node("lb1").server_name(), "lb1.internal");
}

#[test]
fn built_in_defaults_with_one_ca() {
    let inv = ok("[ca.internal]\n[nodes.a]\nssh = { host = \"h\" }\n");
    let s = ssh(&inv, "a");
    assert_eq!(
        (s.port, s.user.as_str(), s.identity_file),
        (22, "root", None)
    );
    assert_eq!(
        s.known_hosts,
        PathBuf::from(format!("{}/.ssh/known_hosts", home()))
    );
    let a = &inv.nodes[0];
    let p = a.paths("internal");
    assert_eq!(
        (p.trust_bundle.as_str(), p.cert.as_str()),
        ("/etc/tls/ca.pem", "/etc/tls/cert.pem")
    );
    assert_eq!((p.key.as_str(), p.proof_cert), ("/etc/tls/key.pem", None));
    assert_eq!(a.confirm_timeout, Duration::from_secs(60));
    assert_eq!(
        (
            a.reload.as_ref(),
            a.confirm.as_ref(),
            a.probe.as_ref(),
            a.via
        ),
        (None, None, None, None)
    );
    assert_eq!(a.sans(), ["a"]);
    let ca = &inv.cas[0];
    assert_eq!(
        (ca.subject.as_str(), ca.key_algorithm),
        ("CN=internal CA", KeyAlgorithm::EcdsaP256)
    );
    assert_eq!(inv.state_dir, PathBuf::from("/srv/fleet/.certroll"));
}

#[test]
fn several_cas_get_their_own_paths_and_links() {
    let inv = ok(r#"[ca.mesh]
key_algorithm = "ed25519"
[ca.edge]
subject = "CN=Edge,O=Example"
key_algorithm = "ecdsa-p384"
[nodes.lb]
ssh = { host = "lb" }
[nodes.app]
ssh = { host = "app" }
[[links]]
client = "lb"
server = "app"
ca = "edge"
[[links]]
client = "app"
server = "lb"
mutual = true
ca = "mesh"
"#);
    let names: Vec<_> = inv.cas.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["edge", "mesh"]);
    assert_eq!(inv.cas[0].key_algorithm, KeyAlgorithm::EcdsaP384);
    assert_eq!(inv.cas[1].key_algorithm, KeyAlgorithm::Ed25519);
    let (edge, mesh) = (inv.ca_id("edge").unwrap(), inv.ca_id("mesh").unwrap());
    assert_eq!((inv.links[0].ca, inv.links[1].ca), (edge, mesh));
    assert!(!inv.links[0].mutual && inv.links[1].mutual);
    let lb = &inv.nodes[inv.node_id("lb").unwrap()];
    assert_eq!(lb.paths("edge").trust_bundle, "/etc/tls/edge/ca.pem");
    assert_eq!(lb.paths("mesh").key, "/etc/tls/mesh/key.pem");
}

#[test]
fn list_links_expand_to_the_cross_product_in_file_order() {
    let inv = ok(r#"[ca.x]
[defaults]
transport = "local"
trust_bundle = "{node}/ca.pem"
cert = "{node}/cert.pem"
key = "{node}/key.pem"
[nodes.c1]
[nodes.c2]
[nodes.s1]
[nodes.s2]
[nodes.lonely]
[[links]]
client = ["c2", "c1"]
server = ["s1", "s2"]
[[links]]
client = "s1"
server = "s2"
mutual = true
"#);
    let pairs: Vec<_> = inv
        .links
        .iter()
        .map(|l| {
            (
                inv.nodes[l.client].name.as_str(),
                inv.nodes[l.server].name.as_str(),
                l.mutual,
            )
        })
        .collect();
    let expected = [
        ("c2", "s1", false),
        ("c2", "s2", false),
        ("c1", "s1", false),
        ("c1", "s2", false),
        ("s1", "s2", true),
    ];
    assert_eq!(pairs, expected);
    let names: Vec<_> = inv.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(
        names,
        ["c1", "c2", "lonely", "s1", "s2"],
        "sorted, unlinked nodes kept"
    );
}

#[test]
fn local_paths_resolve_against_the_inventory_directory() {
    let inv = ok(r#"[certroll]
state_dir = "/var/lib/certroll"
[ca.x]
[nodes.a]
transport = "local"
trust_bundle = "nodes/{node}/ca.pem"
cert = "/opt/tls/{node}.pem"
key = "../keys/{node}.key"
proof_cert = "nodes/{node}/cross.pem"
"#);
    let p = inv.nodes[0].paths("x");
    assert_eq!(p.trust_bundle, "/srv/fleet/nodes/a/ca.pem");
    assert_eq!(p.cert, "/opt/tls/a.pem");
    assert_eq!(p.key, "/srv/fleet/../keys/a.key");
    assert_eq!(
        p.proof_cert.as_deref(),
        Some("/srv/fleet/nodes/a/cross.pem")
    );
    assert!(inv.nodes[0].is_local());
    assert_eq!(inv.state_dir, PathBuf::from("/var/lib/certroll"));
}

#[test]
fn via_resolves_to_the_relay_node() {
    let inv = ok("[ca.x]\n[defaults]\nssh = { host = \"h\" }\n[nodes.bastion]\n[nodes.db]\nvia = \"bastion\"\n[nodes.deep]\nvia = \"db\"\n");
    let id = |n| inv.node_id(n).unwrap();
    assert_eq!(inv.nodes[id("db")].via, Some(id("bastion")));
    assert_eq!(inv.nodes[id("deep")].via, Some(id("db")));
    assert_eq!(inv.nodes[id("bastion")].via, None);
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_local_example_loads() {
    let path = manifest_dir().join("examples/local/certroll.toml");
    let inv = inventory::load(&path).unwrap_or_else(|e| panic!("example refused: {e}"));
    assert_eq!(inv.nodes.len(), 8);
    assert_eq!(inv.links.len(), 6 + 6 + 3);
    assert_eq!(inv.links.iter().filter(|l| l.mutual).count(), 6);
    assert!(inv.nodes.iter().all(|n| n.is_local()));
    let dir = manifest_dir().join("examples/local");
    let app1 = &inv.nodes[inv.node_id("app1").unwrap()];
    let expected = dir.join("nodes/app1/tls/key.pem");
    assert_eq!(PathBuf::from(app1.paths("internal").key), expected);
    assert_eq!(inv.state_dir, dir.join(".certroll"));
}

#[test]
fn generated_fleets_load_in_both_forms() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let script = manifest_dir().join("scripts/gen-inventory.py");
    let mut sets = Vec::new();
    for (file, compact) in [("expanded.toml", false), ("compact.toml", true)] {
        let out = dir.path().join(file);
        let mut cmd = std::process::Command::new("python3");
        cmd.arg(&script).args(["300", "900"]).arg(&out);
        if compact {
            cmd.arg("--compact");
        }
        let status = cmd.status().unwrap_or_else(|e| {
            panic!(
                "failed to run python3 {} (install python3): {e}",
                script.display()
            )
        });
        assert!(status.success(), "gen-inventory.py failed");
        let inv =
            inventory::load(&out).unwrap_or_else(|e| panic!("generated inventory refused: {e}"));
        assert_eq!((inv.nodes.len(), inv.links.len()), (300, 900));
        let mut links = inv.links.clone();
        links.sort_unstable_by_key(|l| (l.client, l.server, l.ca));
        sets.push(links);
    }
    assert_eq!(
        sets[0], sets[1],
        "compact and expanded forms describe the same links"
    );
}

#[test]
fn a_missing_file_is_a_read_error_naming_it() {
    let err = inventory::load(Path::new("/nonexistent/certroll.toml")).unwrap_err();
    assert!(matches!(err, InventoryError::NotFound { .. }));
    assert!(
        err.to_string()
            .starts_with("no inventory file at /nonexistent/certroll.toml"),
        "{err}"
    );
}

#[test]
fn the_documented_full_example_loads() {
    let doc = std::fs::read_to_string(manifest_dir().join("docs/inventory.md"))
        .expect("docs/inventory.md is readable");
    let section = doc
        .split("## Full example")
        .nth(1)
        .expect("a Full example section");
    let toml = section
        .split("```toml\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("a toml block in the Full example section");
    let inv = ok(toml);
    assert_eq!(inv.cas.len(), 2);
    assert_eq!(inv.nodes.len(), 4);
    assert_eq!(inv.links.len(), 4);
    let db1 = &inv.nodes[inv.node_id("db1").unwrap()];
    assert_eq!(db1.via, inv.node_id("lb1"));
    assert_eq!(
        db1.paths("edge").proof_cert.as_deref(),
        Some("/etc/tls/edge/cross.pem")
    );
}

#[test]
fn strategy_and_chain_are_read_per_ca() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("certroll.toml");
    let text = "[ca.edge]\nstrategy = \"ordered\"\nchain = \"cross-signed\"\n[ca.data]\n\
        [defaults]\ntransport = \"local\"\ntrust_bundle = \"n/{node}/{ca}/ca.pem\"\n\
        cert = \"n/{node}/{ca}/cert.pem\"\nkey = \"n/{node}/{ca}/key.pem\"\n[nodes.a]\n[nodes.b]\n\
        [[links]]\nclient = \"a\"\nserver = \"b\"\nca = \"edge\"\n\
        [[links]]\nclient = \"a\"\nserver = \"b\"\nca = \"data\"\n";
    std::fs::write(&path, text).unwrap();
    let inv = inventory::load(&path).unwrap();
    let edge = &inv.cas[inv.ca_id("edge").unwrap()];
    assert_eq!(
        (edge.strategy, edge.chain),
        (
            inventory::Strategy::Ordered,
            inventory::ChainMode::CrossSigned
        )
    );
    let data = &inv.cas[inv.ca_id("data").unwrap()];
    assert_eq!(
        (data.strategy, data.chain),
        (inventory::Strategy::Phased, inventory::ChainMode::Plain)
    );
}

#[test]
fn tls_address_and_starttls_inherit_from_defaults() {
    let inv = ok("[ca.internal]\n[defaults]\ntls_address = \"127.0.0.1:443\"\n\n\
                  [nodes.web]\nssh = { host = \"w\" }\n\n\
                  [nodes.db]\nssh = { host = \"d\" }\ntls_address = \"[::1]:5432\"\nstarttls = \"postgres\"\n\n\
                  [nodes.cli]\nssh = { host = \"c\" }\n\n\
                  [[links]]\nclient = \"cli\"\nserver = [\"web\", \"db\"]\n");
    let node = |n: &str| inv.nodes[inv.node_id(n).unwrap()].tls.clone().unwrap();
    assert_eq!(node("web").address(), "127.0.0.1:443");
    assert_eq!(node("web").starttls, certroll::inventory::Starttls::None);
    assert_eq!(
        (
            node("db").host.as_str(),
            node("db").port,
            node("db").starttls
        ),
        ("::1", 5432, certroll::inventory::Starttls::Postgres)
    );
}

#[test]
fn starttls_mysql_smtp_imap_and_ldap_are_accepted() {
    use certroll::inventory::Starttls;
    let inv = ok("[ca.internal]\n\
                  [nodes.db]\nssh = { host = \"d\" }\ntls_address = \"127.0.0.1:3306\"\nstarttls = \"mysql\"\n\n\
                  [nodes.mx]\nssh = { host = \"m\" }\ntls_address = \"127.0.0.1:25\"\nstarttls = \"smtp\"\n\n\
                  [nodes.mail]\nssh = { host = \"i\" }\ntls_address = \"127.0.0.1:143\"\nstarttls = \"imap\"\n\n\
                  [nodes.dir]\nssh = { host = \"l\" }\ntls_address = \"127.0.0.1:389\"\nstarttls = \"ldap\"\n\n\
                  [nodes.cli]\nssh = { host = \"c\" }\n\n\
                  [[links]]\nclient = \"cli\"\nserver = [\"db\", \"mx\", \"mail\", \"dir\"]\n");
    let starttls = |n: &str| {
        inv.nodes[inv.node_id(n).unwrap()]
            .tls
            .clone()
            .unwrap()
            .starttls
    };
    assert_eq!(starttls("db"), Starttls::Mysql);
    assert_eq!(starttls("mx"), Starttls::Smtp);
    assert_eq!(starttls("mail"), Starttls::Imap);
    assert_eq!(starttls("dir"), Starttls::Ldap);
}
