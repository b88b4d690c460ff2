//! Tests of the node-side script as text: every function it defines is hidden from the
//! node's commands, and the parts a command is made of parse as one `sh` script.

use super::*;
use crate::layout::safety_script::SAFETY;
use crate::layout::script_io::{command, shipped};
use crate::layout::{inspect::INSPECT, keys_script::KEYS, os_trust_script::OS_TRUST};

/// The parts sent in front of [`SCRIPT`], each with the variable that lists its functions.
const PARTS: [(&str, &str); 4] = [
    (SAFETY, "SAFETY_FUNCTIONS"),
    (KEYS, "KEY_FUNCTIONS"),
    (OS_TRUST, "OS_FUNCTIONS"),
    (INSPECT, "STORE_FUNCTIONS"),
];

/// Every function the script defines is hidden from the node's commands: a reload
/// that calls the node's own `run` or `at` must not get the script's.
#[test]
fn every_function_of_the_script_is_hidden_from_node_commands() {
    let listed_in = |text: &'static str, var: &str| -> Vec<&'static str> {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{var}=\"")))
            .and_then(|l| l.strip_suffix('"'))
            .unwrap_or_else(|| panic!("the {var} line"))
            .split(' ')
            .collect()
    };
    let mut listed = listed_in(SCRIPT, "FUNCTIONS");
    let mut defined: Vec<&str> = Vec::new();
    for (text, var) in PARTS.iter().copied().chain([(SCRIPT, "FUNCTIONS")]) {
        if var != "FUNCTIONS" {
            let reference = format!("${{{var}-}}");
            assert!(
                listed.iter().any(|l| *l == reference),
                "{var} is not in FUNCTIONS"
            );
            listed.extend(listed_in(text, var));
        }
        defined.extend(
            text.lines()
                .filter_map(|l| l.trim_start().split_once("() {").map(|(name, _)| name))
                .filter(|name| name.chars().all(|c| c.is_ascii_lowercase() || c == '_')),
        );
    }
    assert!(defined.len() > 30, "{defined:?}");
    for name in &defined {
        assert!(listed.contains(name), "{name} is not in FUNCTIONS");
    }
}

/// The parts parse as one script, with their comments and as they are shipped.
#[test]
fn the_script_parses() {
    let parts: Vec<&str> = PARTS
        .iter()
        .map(|(text, _)| *text)
        .chain([SCRIPT])
        .collect();
    let shipped = shipped(&parts);
    assert!(
        shipped.len() * 4 < parts.concat().len() * 3,
        "comments are gone"
    );
    for whole in [parts.concat(), shipped] {
        let out = std::process::Command::new("sh")
            .args(["-n", "-c", &whole])
            .output()
            .expect("run sh");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A command travels in one SSH packet: libssh2 fails the exec of one that does not fit in
/// 35,000 bytes, and RFC 4253 (6.1) obliges a server to take only 32,768 bytes of payload.
/// The biggest command certroll sends is an `apply` of every file form with long paths,
/// under `become = "sudo"` (quoted once for `sudo -n -- sh -c`) inside the relaying
/// wrapper (quoted again, plus the wrapper's own script, under 1 KiB): with the script's
/// comments it took 35,699 bytes.
#[test]
fn an_apply_of_every_form_under_sudo_fits_in_one_ssh_packet() {
    use crate::shell::shell_quote;
    let long = format!("/{}", "d".repeat(200));
    let mut args: Vec<String> = [
        "apply", &long, &long, "internal", "app1", "t", "r", "-", "-",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let reload = "systemctl reload nginx && curl -fsS https://127.0.0.1/healthz".to_string();
    args.extend(["0".into(), "0".into(), reload.clone(), reload, "END".into()]);
    args.extend([
        "3".into(),
        long.clone(),
        "update-ca-certificates".into(),
        "a.crt:1200".into(),
    ]);
    for name in [
        "bundle.pem",
        "cert.pem",
        "key.pem",
        "proof.pem",
        "keystore.p12",
        "truststore.p12",
        "combined.pem",
    ] {
        let path = format!("{long}/{name}");
        args.extend([
            name.into(),
            path,
            "w".into(),
            "4096".into(),
            "0600".into(),
            "0755".into(),
        ]);
    }
    let sudo = format!("sudo -n -- sh -c {}", shell_quote(&command(&args)));
    let sent = format!(
        "exec /bin/sh -c '{}' certroll {}",
        "w".repeat(1024),
        shell_quote(&sudo)
    );
    eprintln!("largest command: {} bytes", sent.len());
    assert!(sent.len() <= 32_768, "{} bytes", sent.len());
}
