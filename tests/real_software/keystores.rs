//! The stores Java software reads, proven under traffic: a private
//! Tomcat 10.1 whose HTTPS connector requires a client certificate and reads a PKCS#12
//! keystore and truststore, and a Java client with a PKCS#12 keystore and a JKS
//! truststore opening a new connection per request, both configured from
//! docs/recipes.md (`tomcat`, `tomcat server.xml`, `java client`, `java client command`,
//! `tomcat links`) on two local nodes under one root.
//!
//! - `tomcat_serves_and_reloads_…` proves everything before certroll: the stores an
//!   operator makes with openssl and keytool, Tomcat serving them, the Java client, and
//!   the recipe's reload (the manager's `sslReload`) through a rotation done by hand and
//!   twenty reloads back to back: zero failed requests, the new leaf served, the old CA's
//!   client refused once the truststore dropped it.
//! - `tomcat_and_a_java_client_take_over_…` hands the same fleet to certroll: `ca import`
//!   of the openssl-made CA, then `apply --rotate` three times (the takeover and two
//!   rotations), the client running the whole time. Zero failed requests; every store
//!   keeps its group and mode and stays readable by its service user; no PEM private key
//!   and no key store but the current ones on the nodes; `verify --live` OK.
//!
//! Needs root, a JDK 17, tomcat10, tomcat10-admin, openssl and curl (`scripts/test.sh`
//! installs them); a missing tool fails the test, it is never skipped.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::disk;
use super::java_client::{self, JavaClient};
use super::recipes::{toml_value, without_keys, Recipes};
use super::stores::{self, Access, Leaf, OperatorCa};
use super::tomcat::{self, Tomcat, TomcatPorts};
use crate::support::cli::Control;
use crate::support::users;

/// How long traffic may take to show what a step waits for.
const WAIT: Duration = Duration::from_secs(60);
/// Reloads back to back: at least, at most.
const MIN_RELOADS: u32 = 20;
const MAX_RELOADS: u32 = 300;
/// Requests curl makes on its one connection while Tomcat reloads.
const KEPT_REQUESTS: usize = 20;
/// The Java client's store password (any; Tomcat's comes from its server.xml).
const CLIENT_PASSWORD: &str = "Java-Client-Store-Password-1";
const CA_SUBJECT: &str = "Tomcat Takeover CA";

static ONE_TOMCAT: Mutex<()> = Mutex::new(());

/// The two nodes' files under one root (the node side), and the operator's directory
/// with the openssl CA and certroll's control directory (never on a node).
struct Site {
    /// Held for the whole test: one Tomcat test at a time (two JVM servers, their
    /// clients and keytool at once are too much for a small CI machine).
    _one: MutexGuard<'static, ()>,
    root: tempfile::TempDir,
    ops: tempfile::TempDir,
    recipes: Recipes,
    ports: TomcatPorts,
    tomcat: String,
    client: String,
}

impl Site {
    fn new() -> Site {
        let one = ONE_TOMCAT.lock().unwrap_or_else(|p| p.into_inner());
        tomcat::preflight();
        users::ensure_user(users::SERVICE);
        let root = tempfile::tempdir().expect("temp dir");
        // Tomcat and the client run as their own users and must reach their files.
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod the root");
        let recipes = Recipes::load();
        let ports = TomcatPorts::free();
        let tomcat = tomcat::adapted(&recipes, "tomcat", root.path(), &ports);
        let client = tomcat::adapted(&recipes, "java client", root.path(), &ports);
        Site {
            _one: one,
            root,
            ops: tempfile::tempdir().expect("temp dir"),
            recipes,
            ports,
            tomcat,
            client,
        }
    }

    fn root(&self) -> &Path {
        self.root.path()
    }

    fn tomcat_file(&self, key: &str) -> PathBuf {
        PathBuf::from(toml_value(&self.tomcat, key))
    }

    fn client_file(&self, key: &str) -> PathBuf {
        PathBuf::from(toml_value(&self.client, key))
    }

    fn tomcat_access() -> Access<'static> {
        Access {
            group: tomcat::USER,
            mode: 0o640,
        }
    }

    fn client_access() -> Access<'static> {
        Access {
            group: users::SERVICE,
            mode: 0o640,
        }
    }

    /// The password files: Tomcat's holds the `truststorePassword` of its server.xml
    /// (Tomcat 10.1 reads the truststore's password from nowhere else).
    fn passwords(&self) {
        let xml = self.recipes.raw("tomcat server.xml");
        stores::password_file(
            &self.tomcat_file("store_password_file"),
            &tomcat::xml_attribute(xml, "truststorePassword"),
            Site::tomcat_access(),
        );
        stores::password_file(
            &self.client_file("store_password_file"),
            CLIENT_PASSWORD,
            Site::client_access(),
        );
    }

    /// Both truststores hold exactly `cas`.
    fn trust(&self, cas: &[&OperatorCa]) {
        assert_eq!(toml_value(&self.tomcat, "truststore_format"), "pkcs12");
        assert_eq!(toml_value(&self.client, "truststore_format"), "jks");
        stores::truststore(
            &self.tomcat_file("truststore"),
            "PKCS12",
            cas,
            &self.tomcat_file("store_password_file"),
            Site::tomcat_access(),
        );
        stores::truststore(
            &self.client_file("truststore"),
            "JKS",
            cas,
            &self.client_file("store_password_file"),
            Site::client_access(),
        );
    }

    /// New keys and leaves from `ca` in both keystores; returns the client's leaf.
    fn serve(&self, ca: &OperatorCa) -> Leaf {
        stores::keystore(
            &self.tomcat_file("keystore"),
            &ca.leaf("tomcat1"),
            ca,
            &self.tomcat_file("store_password_file"),
            Site::tomcat_access(),
        );
        let client = ca.leaf("java1");
        stores::keystore(
            &self.client_file("keystore"),
            &client,
            ca,
            &self.client_file("store_password_file"),
            Site::client_access(),
        );
        client
    }

    /// Asserts that keytool and openssl open all four stores, the truststores with
    /// `anchors` trusted certificates each.
    fn assert_readers_open(&self, anchors: usize) {
        let tomcat_pw = self.tomcat_file("store_password_file");
        let client_pw = self.client_file("store_password_file");
        let checks = [
            (self.tomcat_file("keystore"), "PKCS12", &tomcat_pw, None),
            (
                self.tomcat_file("truststore"),
                "PKCS12",
                &tomcat_pw,
                Some(anchors),
            ),
            (self.client_file("keystore"), "PKCS12", &client_pw, None),
            (
                self.client_file("truststore"),
                "JKS",
                &client_pw,
                Some(anchors),
            ),
        ];
        for (store, format, password, anchors) in checks {
            stores::assert_readers_open(&store, format, password, anchors);
        }
    }

    /// The Java client of the recipe, as the service user.
    fn client(&self) -> JavaClient {
        let source = java_client::install_source(self.root());
        let recipe = tomcat::adapted(
            &self.recipes,
            "java client command",
            self.root(),
            &self.ports,
        );
        JavaClient::start(
            &java_client::command(recipe.trim(), &source),
            users::SERVICE,
        )
    }

    /// curl making `n` requests, one every 250 ms, on one connection (kept alive), with
    /// `leaf` and `ca`; prints `ok` and the number of new connections after each.
    fn curl_one_connection(&self, leaf: &Leaf, ca: &OperatorCa, n: usize) -> Child {
        let resolve = format!("tomcat1.internal:{}:127.0.0.1", self.ports.https);
        let url = format!("https://tomcat1.internal:{}/", self.ports.https);
        Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "60",
                "--rate",
                "4/s",
                "--resolve",
                &resolve,
            ])
            .args(["-w", "%{num_connects}\\n", "--cacert"])
            .arg(&ca.cert)
            .arg("--cert")
            .arg(&leaf.cert)
            .arg("--key")
            .arg(&leaf.key)
            .args(vec![url; n])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start curl")
    }

    /// Waits (bounded) until curl gets Tomcat's `ok` with `leaf` and `ca`: Tomcat's first
    /// requests after its start are slow (classes loaded, code compiled), and the Java
    /// client's traffic is measured from a warm server.
    fn warm_up(&self, tomcat: &Tomcat, leaf: &Leaf, ca: &OperatorCa) {
        let end = Instant::now() + WAIT;
        while !self.curl_ok(leaf, ca) {
            assert!(
                Instant::now() < end,
                "Tomcat does not answer curl within {WAIT:?}\n{}",
                tomcat.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Whether curl gets Tomcat's `ok` with `leaf` as its client certificate and `ca`
    /// as its only anchor.
    fn curl_ok(&self, leaf: &Leaf, ca: &OperatorCa) -> bool {
        let resolve = format!("tomcat1.internal:{}:127.0.0.1", self.ports.https);
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "30", "--resolve", &resolve, "--cacert"])
            .arg(&ca.cert)
            .arg("--cert")
            .arg(&leaf.cert)
            .arg("--key")
            .arg(&leaf.key)
            .arg(format!("https://tomcat1.internal:{}/", self.ports.https))
            .output()
            .expect("run curl");
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok"
    }
}

#[test]
fn tomcat_serves_and_reloads_its_pkcs12_stores_without_dropping_a_request() {
    let site = Site::new();
    let legacy = OperatorCa::new(site.ops.path(), "legacy", "Legacy Corp CA");
    site.passwords();
    site.trust(&[&legacy]);
    let old_client = site.serve(&legacy);
    let tomcat = Tomcat::start(&site.recipes, site.root(), site.ports);
    site.warm_up(&tomcat, &old_client, &legacy);
    let mut client = site.client();
    client.wait_for(0, 5, Some("CN=Legacy Corp CA"), WAIT);

    // A rotation by hand, in certroll's order, each step followed by the recipe's reload.
    let next = OperatorCa::new(site.ops.path(), "next", "Next Corp CA");
    site.trust(&[&legacy, &next]);
    tomcat.reload();
    let ok = client.seen().tally.ok;
    client.wait_for(ok, 3, None, WAIT);
    let new_client = site.serve(&next);
    tomcat.reload();
    let ok = client.seen().tally.ok;
    client.wait_for(ok, 3, Some("CN=Next Corp CA"), WAIT);
    site.trust(&[&next]);
    tomcat.reload();
    let ok = client.seen().tally.ok;
    client.wait_for(ok, 3, None, WAIT);
    site.assert_readers_open(1);
    // The reload read the truststore again: the old CA's client is refused now.
    assert!(
        site.curl_ok(&new_client, &next),
        "curl with the new client leaf\n{}",
        tomcat.log()
    );
    assert!(
        !site.curl_ok(&old_client, &next),
        "Tomcat still accepts a client of the pruned CA\n{}",
        tomcat.log()
    );

    // Reloads back to back while the client makes new connections and curl keeps one
    // connection open across them (a request every 250 ms on the same connection).
    let mut kept = site.curl_one_connection(&new_client, &next, KEPT_REQUESTS);
    let ok = client.seen().tally.ok;
    let end = Instant::now() + WAIT;
    let mut reloads = 0;
    while reloads < MAX_RELOADS && Instant::now() < end {
        tomcat.reload();
        reloads += 1;
        let curl_done = matches!(kept.try_wait(), Ok(Some(_)));
        if reloads >= MIN_RELOADS && client.seen().tally.ok >= ok + 10 && curl_done {
            break;
        }
    }
    let during = client.seen().tally.ok - ok;
    eprintln!("{reloads} reloads back to back, {during} requests of the Java client meanwhile");
    assert!(
        during >= 10 && reloads >= MIN_RELOADS,
        "only {during} requests during {reloads} reloads"
    );
    let kept = kept.wait_with_output().expect("wait for curl");
    let replies = String::from_utf8_lossy(&kept.stdout);
    let connects: Vec<&str> = replies.lines().filter(|l| *l != "ok").collect();
    assert!(
        kept.status.success()
            && replies.lines().filter(|l| *l == "ok").count() == KEPT_REQUESTS
            && connects.iter().filter(|c| **c != "0").count() == 1,
        "curl's one connection across the reloads: {:?}\n{replies}{}",
        kept.status,
        String::from_utf8_lossy(&kept.stderr)
    );
    let (seen, stderr) = client.stop();
    eprintln!("java client: {seen:?}");
    assert_eq!(
        seen.tally.failed,
        0,
        "failed requests: {:#?}\nclient stderr:\n{stderr}\n{}",
        seen.tally.failures,
        tomcat.log()
    );
    assert!(seen.tally.ok >= 40, "too little traffic: {seen:?}");
    assert_eq!(
        seen.issuers,
        ["CN=Legacy Corp CA", "CN=Next Corp CA"],
        "the leaves Tomcat served, in order"
    );
}

/// certroll's inventory for the two nodes: the recipes without their `ssh` lines, on
/// local transport, and their link.
fn inventory(site: &Site) -> String {
    // Both nodes live on this one machine, so the PEM certificate and bundle links the
    // recipes leave at their defaults (/etc/tls/cert.pem, /etc/tls/ca.pem on each host)
    // get a directory per node under the test's root: the one mechanical change.
    let root = site.root().display();
    format!(
        "[certroll]\nstate_dir = \".certroll\"\n\n[ca.internal]\nsubject = \"CN={CA_SUBJECT}\"\n\n\
         [defaults]\ntransport = \"local\"\nconfirm_timeout = \"60s\"\n\
         cert = \"{root}/etc/tls/{{node}}/cert.pem\"\ntrust_bundle = \"{root}/etc/tls/{{node}}/ca.pem\"\n\n{}\n{}\n{}",
        without_keys(&site.tomcat, &["ssh"]),
        without_keys(&site.client, &["ssh"]),
        site.recipes.raw("tomcat links"),
    )
}

#[test]
fn tomcat_and_a_java_client_take_over_and_rotate_twice_under_traffic_through_keystores() {
    let site = Site::new();
    let legacy = OperatorCa::new(site.ops.path(), "legacy", "Legacy Corp CA");
    site.passwords();
    site.trust(&[&legacy]);
    let legacy_client = site.serve(&legacy);
    let tomcat = Tomcat::start(&site.recipes, site.root(), site.ports);
    site.warm_up(&tomcat, &legacy_client, &legacy);
    let mut client = site.client();
    client.wait_for(0, 5, Some("CN=Legacy Corp CA"), WAIT);

    let dir = site.ops.path().join("control");
    std::fs::create_dir_all(&dir).expect("control dir");
    let control = Control {
        inventory: dir.join("certroll.toml"),
        dir,
    };
    std::fs::write(&control.inventory, inventory(&site)).expect("write the inventory");
    let files: Vec<(PathBuf, &str)> = ["keystore", "truststore", "store_password_file"]
        .iter()
        .flat_map(|k| {
            [
                (site.tomcat_file(k), tomcat::USER),
                (site.client_file(k), users::SERVICE),
            ]
        })
        .collect();
    let before: Vec<_> = files.iter().map(|(f, _)| stores::access_of(f)).collect();
    let legacy_cert = legacy.cert.display().to_string();
    control
        .certroll(&["ca", "import", "internal", "--cert", &legacy_cert])
        .expect_code(0);

    for generation in 2..=4 {
        let run = control.certroll(&["apply", "--rotate", "--yes"]);
        assert!(
            run.code == 0,
            "rotation to G{generation} failed\n{run}\njava client: {:?}\n{}",
            client.seen(),
            tomcat.log()
        );
        let ok = client.seen().tally.ok;
        let issuer = format!("CN={CA_SUBJECT} G{generation}");
        client.wait_for(ok, 3, Some(&issuer), WAIT);
    }

    let (seen, stderr) = client.stop();
    eprintln!("java client: {seen:?}");
    assert_eq!(
        seen.tally.failed,
        0,
        "failed requests: {:#?}\nclient stderr:\n{stderr}\n{}",
        seen.tally.failures,
        tomcat.log()
    );
    assert!(seen.tally.ok >= 20, "too little traffic: {seen:?}");
    assert_eq!(seen.issuers.len(), 4, "Legacy, G2, G3, G4: {seen:?}");

    for ((file, user), was) in files.iter().zip(&before) {
        assert_eq!(
            &stores::access_of(file),
            was,
            "{} changed owner, group or mode",
            file.display()
        );
        assert!(
            stores::readable_by(user, file),
            "{user} cannot read {}",
            file.display()
        );
    }
    // certroll's stores, in the default profile: read by keytool and by OpenSSL 3, the
    // truststores with their one anchor as a trusted certificate (what Java loads).
    site.assert_readers_open(1);
    // No old private key anywhere, and no PEM key where the services read: the only PEM
    // copy of each node's current key is the one inside certroll's store, which has no link
    // at any path (docs/inventory.md#stores), closed to others, that no service user can read.
    let base = site.root().join("var/lib/tomcat10");
    let in_store: Vec<(PathBuf, &str)> = [("tomcat1", tomcat::USER), ("java1", users::SERVICE)]
        .into_iter()
        .map(|(node, user)| {
            let key = site
                .root()
                .join(format!("etc/tls/{node}/.certroll-internal/current/key.pem"));
            (key, user)
        })
        .collect();
    let current: Vec<Vec<u8>> = in_store
        .iter()
        .map(|(key, _)| std::fs::read(key).expect("the node's key inside its store"))
        .collect();
    for (key, user) in &in_store {
        let mode = std::fs::metadata(key)
            .expect("stat the key")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode & 0o007, 0, "{} is mode {mode:o}", key.display());
        assert!(
            !stores::readable_by(user, key),
            "{user} can read the PEM key {}",
            key.display()
        );
    }
    let pem_keys = disk::other_private_keys(site.root(), &current, std::slice::from_ref(&base));
    assert!(
        pem_keys.is_empty(),
        "old PEM private keys on nodes that read only keystores: {pem_keys:#?}"
    );
    let current_stores: Vec<Vec<u8>> = [site.tomcat_file("keystore"), site.client_file("keystore")]
        .iter()
        .map(|f| std::fs::read(f).expect("read a keystore"))
        .collect();
    let passwords = [
        site.tomcat_file("store_password_file"),
        site.client_file("store_password_file"),
    ];
    let old = stores::other_key_stores(site.root(), &current_stores, &passwords, &[base]);
    assert!(old.is_empty(), "old keys left in key stores: {old:#?}");

    control.certroll(&["verify", "--live"]).expect_code(0);
    drop(tomcat);
}
