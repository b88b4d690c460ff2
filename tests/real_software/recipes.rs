//! The snippets of docs/recipes.md, as the test uses them: every fenced block whose first
//! line is `# recipe: <name>`, with the mechanical changes the page announces (each node's
//! own root under `/srv/certroll-node`, free ports, the test's sshd lines).

use std::collections::BTreeMap;

/// Ports the recipes are written with, and what each stands for.
pub const WEB_PORT: &str = "8443";
pub const LB_PORT: &str = "9443";
pub const DB_PORT: &str = "5432";

/// The recipes by name, text without the marker line.
pub struct Recipes {
    blocks: BTreeMap<String, String>,
}

impl Recipes {
    /// Reads docs/recipes.md of this repository.
    pub fn load() -> Recipes {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/recipes.md");
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
        Recipes::parse(&text)
    }

    fn parse(text: &str) -> Recipes {
        let mut blocks = BTreeMap::new();
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            if !line.starts_with("```") {
                continue;
            }
            let body: Vec<&str> = lines
                .by_ref()
                .take_while(|l| !l.starts_with("```"))
                .collect();
            if let Some(name) = body.first().and_then(|l| l.strip_prefix("# recipe: ")) {
                let rest = body[1..].join("\n") + "\n";
                blocks.insert(name.trim().to_string(), rest);
            }
        }
        Recipes { blocks }
    }

    /// A recipe as written; panics naming it when docs/recipes.md lacks it.
    pub fn raw(&self, name: &str) -> &str {
        self.blocks
            .get(name)
            .unwrap_or_else(|| panic!("docs/recipes.md has no block `# recipe: {name}`"))
    }

    /// A recipe with the test's ports and every `/etc/`, `/run/` and `/var/` path moved
    /// under `root`.
    pub fn adapted(&self, name: &str, root: &str, ports: &Ports) -> String {
        adapt(self.raw(name), root, ports)
    }
}

/// The free ports standing in for 8443, 9443 and 5432.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub web: u16,
    pub lb: u16,
    pub db: u16,
}

pub fn adapt(text: &str, root: &str, ports: &Ports) -> String {
    adapt_ports(
        text,
        root,
        &[
            (WEB_PORT, ports.web),
            (LB_PORT, ports.lb),
            (DB_PORT, ports.db),
        ],
    )
}

/// A recipe's text with each port of `ports` (as written, e.g. `"443"`) replaced by the
/// test's free port, where it stands as a number of its own (not inside `8443`), and every
/// `/etc/`, `/run/` and `/var/` path moved under `root`.
pub fn adapt_ports(text: &str, root: &str, ports: &[(&str, u16)]) -> String {
    let mut out = text.to_string();
    for (written, port) in ports {
        out = replace_number(&out, written, &port.to_string());
    }
    for dir in ["/etc/", "/run/", "/var/"] {
        // Only absolute paths: a quote, a space or '=' before the slash.
        for before in ["\"", "'", " ", "="] {
            out = out.replace(&format!("{before}{dir}"), &format!("{before}{root}{dir}"));
        }
        if out.starts_with(dir) {
            out = format!("{root}{out}");
        }
    }
    out
}

/// Replaces `number` in `text` where no digit touches it on either side.
fn replace_number(text: &str, number: &str, by: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(number) {
        let before = rest[..at].chars().next_back();
        let after = rest[at + number.len()..].chars().next();
        let alone = !before.is_some_and(|c| c.is_ascii_digit())
            && !after.is_some_and(|c| c.is_ascii_digit());
        out += &rest[..at];
        out += if alone { by } else { number };
        rest = &rest[at + number.len()..];
    }
    out + rest
}

/// Replaces the `ssh = { ... }` line of a node recipe.
pub fn with_ssh_line(recipe: &str, ssh_line: &str) -> String {
    recipe
        .lines()
        .map(|l| {
            if l.starts_with("ssh = ") {
                ssh_line.to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// The value of `key = "..."` in a TOML recipe.
pub fn toml_value(recipe: &str, key: &str) -> String {
    let prefix = format!("{key} = ");
    let line = recipe
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {key} in recipe:\n{recipe}"));
    let value: toml::Value = toml::from_str(&format!("v = {}", &line[prefix.len()..]))
        .unwrap_or_else(|e| panic!("{line}: {e}"));
    value["v"].as_str().unwrap_or_default().to_string()
}

/// Drops the lines of the given keys from a TOML recipe (e.g. for the bootstrap run).
pub fn without_keys(recipe: &str, keys: &[&str]) -> String {
    recipe
        .lines()
        .filter(|l| !keys.iter().any(|k| l.starts_with(&format!("{k} = "))))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Replaces the value of `key` in a TOML recipe.
pub fn with_value(recipe: &str, key: &str, value: &str) -> String {
    let prefix = format!("{key} = ");
    recipe
        .lines()
        .map(|l| {
            if l.starts_with(&prefix) {
                format!("{prefix}{value:?}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

#[test]
fn recipes_are_found_and_adapted() {
    let r = Recipes::load();
    let ports = Ports {
        web: 1,
        lb: 2,
        db: 3,
    };
    let nginx = r.adapted("nginx", "/srv/n", &ports);
    assert_eq!(toml_value(&nginx, "tls_address"), "127.0.0.1:1");
    assert_eq!(toml_value(&nginx, "cert"), "/srv/n/etc/nginx/tls/web1.crt");
    let pg = r.adapted("postgresql", "/srv/n", &ports);
    assert!(toml_value(&pg, "reload").starts_with(
        "runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D /srv/n/var/lib/"
    ));
    assert!(r
        .adapted("pg_hba.conf", "/x", &ports)
        .starts_with("hostssl all all 127.0.0.1/32"));
}

#[test]
fn a_recipe_port_is_replaced_only_where_it_stands_alone() {
    let text = "Listen 127.0.0.1:443\nother 8443 4430 443";
    assert_eq!(
        adapt_ports(text, "/r", &[("443", 1)]),
        "Listen 127.0.0.1:1\nother 8443 4430 1"
    );
}
