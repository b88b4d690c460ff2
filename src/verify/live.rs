//! `verify --live`: run each client's probe command against each of its servers, on
//! the client itself, and report the exit status and first line of output.
//!
//! The probe is the node's `probe` template with `{node}` (the client's own name, as in
//! every command), `{server}` (the server's node name), `{name}` and `{host}` (the name
//! the client uses to reach the server, its first `dns_names` entry) and `{port}` (the
//! port of the server's `tls_address`) substituted, each shell-quoted. A template that
//! uses `{port}` for a server without `tls_address` is reported as an error rather than
//! run with a guess.

use std::sync::Arc;
use std::time::Duration;

use super::report::LiveResult;
use crate::inventory::Node;
use crate::transport::Transport;

/// Fills in a probe template of `client` for `server`; every value is shell-quoted in one
/// pass, so a name cannot inject a command nor another placeholder.
pub fn probe_command(template: &str, client: &Node, server: &Node) -> String {
    let port = server.tls.as_ref().map(|t| t.port.to_string());
    let mut values = vec![
        ("node", client.name.as_str()),
        ("server", server.name.as_str()),
        ("name", server.server_name()),
        ("host", server.server_name()),
    ];
    if let Some(port) = &port {
        values.push(("port", port.as_str()));
    }
    crate::shell::fill(template, &values)
}

/// Runs the probe of `client` towards `server` on the client's transport. `None` when
/// the client has no probe.
pub fn probe(
    client: &Node,
    server: &Node,
    transport: Result<&Arc<dyn Transport>, &str>,
    timeout: Duration,
) -> Option<LiveResult> {
    let command = probe_command(client.probe.as_deref()?, client, server);
    let failed = |error: String| LiveResult {
        command: command.clone(),
        status: None,
        first_line: String::new(),
        error: Some(error),
    };
    if command.contains("{port}") {
        return Some(failed(format!(
            "probe of node {} uses {{port}}, but server {} has no tls_address; set it or write the port in the probe",
            client.name, server.name
        )));
    }
    let transport = match transport {
        Ok(t) => t,
        Err(why) => return Some(failed(format!("node {} unreachable: {why}", client.name))),
    };
    Some(match transport.exec(&command, timeout) {
        Ok(out) => LiveResult {
            first_line: first_line(&out.stdout)
                .or_else(|| first_line(&out.stderr))
                .unwrap_or_default(),
            status: out.status,
            error: out
                .status
                .is_none()
                .then(|| format!("probe timed out after {}s or was killed", timeout.as_secs())),
            command,
        },
        Err(e) => failed(e.to_string()),
    })
}

fn first_line(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| l.chars().take(200).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::InventoryBuilder;

    #[test]
    fn substitutes_server_and_name() {
        let inv = InventoryBuilder::new()
            .dns("app1", &["app1.internal"])
            .link("lb1", "app1")
            .build();
        let app1 = &inv.nodes[inv.node_id("app1").unwrap()];
        let lb1 = &inv.nodes[inv.node_id("lb1").unwrap()];
        assert_eq!(
            probe_command("check {server} {name} {host}:8443 from {node}", lb1, app1),
            "check app1 app1.internal app1.internal:8443 from lb1",
            "shell-safe values stand as they are; others are quoted (see the injection test)"
        );
    }

    #[test]
    fn probe_substitutions_are_quoted_and_port_comes_from_tls_address() {
        let mut inv = InventoryBuilder::new()
            .dns("db1", &["db$(touch /tmp/x)"])
            .link("lb 1", "db1")
            .build();
        let (lb1, db1) = (inv.node_id("lb 1").unwrap(), inv.node_id("db1").unwrap());
        inv.nodes[db1].tls = Some(crate::inventory::TlsTarget {
            host: "127.0.0.1".into(),
            port: 5432,
            starttls: crate::inventory::Starttls::Postgres,
        });
        let cmd = probe_command(
            "printf '%s|' {node} {host} {port}",
            &inv.nodes[lb1],
            &inv.nodes[db1],
        );
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "lb 1|db$(touch /tmp/x)|5432|",
            "{cmd}"
        );
    }

    #[test]
    fn first_line_skips_blank_lines() {
        assert_eq!(first_line("\n  ok: 200\nmore"), Some("ok: 200".into()));
        assert_eq!(first_line(""), None);
    }

    #[test]
    fn port_placeholder_and_missing_connection_are_reported_not_run() {
        let mut inv = InventoryBuilder::new().link("lb1", "app1").build();
        let (lb1, app1) = (inv.node_id("lb1").unwrap(), inv.node_id("app1").unwrap());
        inv.nodes[lb1].probe = Some("check {host}:{port}".into());
        let r = probe(
            &inv.nodes[lb1],
            &inv.nodes[app1],
            Err("down"),
            Duration::from_secs(1),
        );
        let r = r.unwrap();
        assert!(!r.ok());
        assert!(r.error.unwrap().contains("{port}"));
        inv.nodes[lb1].probe = Some("check {host}:8443".into());
        let r = probe(
            &inv.nodes[lb1],
            &inv.nodes[app1],
            Err("down"),
            Duration::from_secs(1),
        );
        assert_eq!(r.unwrap().error.unwrap(), "node lb1 unreachable: down");
        assert!(probe(&inv.nodes[app1], &inv.nodes[lb1], Err("x"), Duration::ZERO).is_none());
    }

    #[test]
    fn probe_injection_through_dns_names_is_quoted() {
        let mut inv = InventoryBuilder::new().link("lb1", "app1").build();
        let (lb1, app1) = (inv.node_id("lb1").unwrap(), inv.node_id("app1").unwrap());
        inv.nodes[app1].dns_names = vec!["app1.example.test$(touch /tmp/x){server}".into()];
        assert_eq!(
            probe_command("check {name}:443", &inv.nodes[lb1], &inv.nodes[app1]),
            "check 'app1.example.test$(touch /tmp/x){server}':443",
            "quoted, and a placeholder inside a value is not substituted again"
        );
    }
}
