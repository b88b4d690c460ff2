//! A private Tomcat 10.1 for the keystore tests: its own CATALINA_BASE in the test's
//! directory, its own ports on 127.0.0.1, the `server.xml` of docs/recipes.md, run as the
//! `tomcat` user that the `tomcat10` package creates. Never the system service: nothing
//! under /etc/tomcat10 or /var/lib/tomcat10 of the machine is read or changed.
//!
//! The HTTPS connector requires a client certificate and reads a PKCS#12 keystore and
//! truststore from the paths of the recipe (moved under the test's root); the manager's
//! text interface on a second, plain connector reloads them (`sslReload`, the recipe's
//! `reload`). The JVM is started directly (`Bootstrap start`, not catalina.sh), so the
//! process the test holds is Tomcat itself and is stopped by its process id.

use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::recipes::{self, toml_value, Ports, Recipes, DB_PORT, LB_PORT, WEB_PORT};

/// The ports the Tomcat recipes are written with: HTTPS and the manager's plain HTTP.
pub const HTTPS_PORT: &str = "8444";
pub const MANAGER_PORT: &str = "8081";
/// Where the Debian packages put Tomcat and its manager webapp.
pub const CATALINA_HOME: &str = "/usr/share/tomcat10";
const TOMCAT_CONF: &str = "/usr/share/tomcat10/etc";
/// The longest Tomcat may take to accept connections (it takes 2–5 s).
const START: Duration = Duration::from_secs(60);
/// The user the `tomcat10` package creates: the service user of the stores.
pub const USER: &str = "tomcat";
/// The manager account the reload logs in with.
const MANAGER_USER: &str = "certroll";

/// Fails loudly, naming the package, when a tool the Tomcat tests need is missing.
pub fn preflight() {
    let tools = [
        ("/usr/bin/java", "openjdk-17-jdk-headless"),
        ("/usr/bin/keytool", "openjdk-17-jdk-headless"),
        ("/usr/share/tomcat10/bin/bootstrap.jar", "tomcat10"),
        ("/usr/share/tomcat10/etc/web.xml", "tomcat10"),
        ("/usr/share/tomcat10-admin/manager", "tomcat10-admin"),
        ("/usr/bin/openssl", "openssl"),
        ("/usr/bin/curl", "curl"),
        ("/usr/bin/setpriv", "util-linux"),
    ];
    for (path, package) in tools {
        assert!(
            Path::new(path).exists(),
            "{path} not found: install it with `apt-get install -y {package}` (scripts/test.sh does)"
        );
    }
    let id = Command::new("id")
        .args(["-u", USER])
        .output()
        .expect("run id");
    assert!(
        id.status.success(),
        "no `{USER}` user: install tomcat10 (scripts/test.sh does)"
    );
}

/// The free ports standing in for the recipes' 8444 and 8081.
#[derive(Debug, Clone, Copy)]
pub struct TomcatPorts {
    pub https: u16,
    pub manager: u16,
}

impl TomcatPorts {
    pub fn free() -> TomcatPorts {
        let a = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        let b = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        TomcatPorts {
            https: a.local_addr().expect("port").port(),
            manager: b.local_addr().expect("port").port(),
        }
    }
}

/// A recipe with every `/etc/`, `/run/`, `/var/` path under `root` and the Tomcat ports
/// replaced (the other recipes' ports stay as written).
pub fn adapted(recipes: &Recipes, name: &str, root: &Path, ports: &TomcatPorts) -> String {
    let same = Ports {
        web: WEB_PORT.parse().expect("port"),
        lb: LB_PORT.parse().expect("port"),
        db: DB_PORT.parse().expect("port"),
    };
    recipes::adapt(recipes.raw(name), &root.display().to_string(), &same)
        .replace(HTTPS_PORT, &ports.https.to_string())
        .replace(MANAGER_PORT, &ports.manager.to_string())
}

/// The value of attribute `name="…"` in an XML text (the first one).
pub fn xml_attribute(xml: &str, name: &str) -> String {
    let key = format!(" {name}=\"");
    let start = xml
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in:\n{xml}"))
        + key.len();
    let len = xml[start..].find('"').expect("closing quote");
    xml[start..start + len].to_string()
}

/// A Tomcat started by the test, stopped (by its process id) when dropped.
pub struct Tomcat {
    child: Child,
    pub base: PathBuf,
    pub ports: TomcatPorts,
    /// The recipe's reload command, adapted.
    pub reload: String,
}

impl Tomcat {
    /// Writes CATALINA_BASE under `root/var/lib/tomcat10` with the recipe's server.xml,
    /// the manager's user (a fresh password in tomcat-users.xml and in manager.curl),
    /// `webapps/ROOT/index.html` = `ok`, and starts Tomcat as `tomcat`; returns once it
    /// accepts connections on the HTTPS port. The stores must already be in place.
    pub fn start(recipes: &Recipes, root: &Path, ports: TomcatPorts) -> Tomcat {
        let base = root.join("var/lib/tomcat10");
        for dir in [
            "conf/Catalina/localhost",
            "logs",
            "work",
            "temp",
            "webapps/ROOT",
        ] {
            std::fs::create_dir_all(base.join(dir)).expect("mkdir CATALINA_BASE");
        }
        let server_xml = adapted(recipes, "tomcat server.xml", root, &ports);
        std::fs::write(base.join("conf/server.xml"), &server_xml).expect("write server.xml");
        for file in ["web.xml", "catalina.properties", "logging.properties"] {
            std::fs::copy(
                Path::new(TOMCAT_CONF).join(file),
                base.join("conf").join(file),
            )
            .unwrap_or_else(|e| panic!("copy {TOMCAT_CONF}/{file}: {e}"));
        }
        std::fs::write(base.join("webapps/ROOT/index.html"), "ok\n").expect("write index");

        let password = format!("reload-{}-{}", std::process::id(), ports.manager);
        let users = root.join("etc/tomcat10/tomcat-users.xml");
        assert_eq!(
            users.display().to_string(),
            xml_attribute(&server_xml, "pathname"),
            "the recipe's realm reads tomcat-users.xml"
        );
        write_file(
            &users,
            &format!(
                "<tomcat-users>\n  <user username=\"{MANAGER_USER}\" password=\"{password}\" roles=\"manager-script\"/>\n</tomcat-users>\n"
            ),
            0o640,
        );
        chgrp(&users, USER);
        write_file(
            &root.join("etc/tomcat10/manager.curl"),
            &format!("user = \"{MANAGER_USER}:{password}\"\n"),
            0o600,
        );
        // Tomcat writes logs, its work directory and temporary files; it reads the rest.
        for dir in ["conf/Catalina", "logs", "work", "temp"] {
            chown_tree(&base.join(dir), USER);
        }
        let toml = adapted(recipes, "tomcat", root, &ports);
        let reload = toml_value(&toml, "reload");

        let console = std::fs::File::create(base.join("logs/console.log")).expect("console log");
        let err = console.try_clone().expect("console log");
        let child = Command::new("setpriv")
            .args(["--reuid", USER, "--regid", USER, "--init-groups", "--"])
            .arg("java")
            .args(["-Xmx256m", "-XX:+UseSerialGC"])
            .arg(format!("-Dcatalina.home={CATALINA_HOME}"))
            .arg(format!("-Dcatalina.base={}", base.display()))
            .arg(format!("-Djava.io.tmpdir={}", base.join("temp").display()))
            .arg(format!(
                "-Djava.util.logging.config.file={}",
                base.join("conf/logging.properties").display()
            ))
            .arg("-Djava.util.logging.manager=org.apache.juli.ClassLoaderLogManager")
            .arg("-cp")
            .arg(format!(
                "{CATALINA_HOME}/bin/bootstrap.jar:{CATALINA_HOME}/bin/tomcat-juli.jar"
            ))
            .args(["org.apache.catalina.startup.Bootstrap", "start"])
            .current_dir(&base)
            .stdin(Stdio::null())
            .stdout(console)
            .stderr(err)
            .spawn()
            .expect("start Tomcat");
        let mut tomcat = Tomcat {
            child,
            base,
            ports,
            reload,
        };
        tomcat.wait_until_listening();
        tomcat
    }

    fn wait_until_listening(&mut self) {
        let end = Instant::now() + START;
        while TcpStream::connect(("127.0.0.1", self.ports.https)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "Tomcat exited ({status}) before it listened\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < end,
                "Tomcat does not listen on 127.0.0.1:{} after {START:?}\n{}",
                self.ports.https,
                self.log()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs the recipe's reload command (`sh -c`, as certroll runs it); panics with its
    /// output and Tomcat's log unless it exits 0.
    pub fn reload(&self) {
        let out = Command::new("sh")
            .arg("-c")
            .arg(&self.reload)
            .stdin(Stdio::null())
            .output()
            .expect("run the reload");
        assert!(
            out.status.success(),
            "reload `{}` failed ({}): {}{}\n{}",
            self.reload,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }

    /// The last lines of Tomcat's console log, for a failure message.
    pub fn log(&self) -> String {
        let text = std::fs::read_to_string(self.base.join("logs/console.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().rev().take(40).collect();
        let mut out = String::from("--- Tomcat console (last lines) ---\n");
        for l in lines.into_iter().rev() {
            out += l;
            out.push('\n');
        }
        out
    }
}

impl Drop for Tomcat {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `text` at `path` with `mode`, creating its directory.
pub fn write_file(path: &Path, text: &str, mode: u32) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    }
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// `chgrp group path`.
pub fn chgrp(path: &Path, group: &str) {
    let ok = Command::new("chgrp")
        .arg(group)
        .arg(path)
        .status()
        .expect("run chgrp");
    assert!(ok.success(), "chgrp {group} {}", path.display());
}

fn chown_tree(path: &Path, user: &str) {
    let ok = Command::new("chown")
        .arg("-R")
        .arg(format!("{user}:{user}"))
        .arg(path)
        .status()
        .expect("run chown");
    assert!(ok.success(), "chown -R {user} {}", path.display());
}

#[test]
fn tomcat_recipes_are_found_and_adapted() {
    let r = Recipes::load();
    let ports = TomcatPorts {
        https: 1,
        manager: 2,
    };
    let root = Path::new("/srv/n");
    let node = adapted(&r, "tomcat", root, &ports);
    assert_eq!(toml_value(&node, "tls_address"), "127.0.0.1:1");
    assert_eq!(
        toml_value(&node, "keystore"),
        "/srv/n/etc/tomcat10/tls/keystore.p12"
    );
    assert_eq!(toml_value(&node, "truststore_format"), "pkcs12");
    assert!(toml_value(&node, "reload").starts_with(
        "curl -fsS -K /srv/n/etc/tomcat10/manager.curl http://127.0.0.1:2/manager/text/sslReload"
    ));
    let xml = adapted(&r, "tomcat server.xml", root, &ports);
    // The connector reads the node's stores, with the node's password file.
    for (attribute, key) in [
        ("certificateKeystoreFile", "keystore"),
        ("truststoreFile", "truststore"),
        ("certificateKeystorePasswordFile", "store_password_file"),
    ] {
        assert_eq!(xml_attribute(&xml, attribute), toml_value(&node, key));
    }
    assert_eq!(xml_attribute(&xml, "certificateVerification"), "required");
    assert_eq!(
        xml_attribute(&xml, "docBase"),
        "/usr/share/tomcat10-admin/manager"
    );
    let client = adapted(&r, "java client", root, &ports);
    let command = adapted(&r, "java client command", root, &ports);
    for key in ["keystore", "truststore", "store_password_file"] {
        assert!(
            command.contains(&format!(" {} ", toml_value(&client, key)))
                || command.trim_end().ends_with(&toml_value(&client, key)),
            "the Java client's command uses its node's {key}: {command}"
        );
    }
    assert!(command.contains("--port 1 "), "{command}");
}
