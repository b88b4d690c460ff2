//! The built-in TLS confirm on the sshd fleet: servers whose reload returns before they
//! load their files, and no `confirm` command at all.
//!
//! db1 and db2 (mutual-TLS servers) reload twelve seconds after certroll's reload command
//! returned. Their `tls_address` names `<node>.fleet.certroll-test:<port>`, a name only
//! the node itself resolves, so every handshake of the confirm went through the node's
//! SSH session (a direct-tcpip channel opened by the node's sshd). The rotation must keep
//! every link working; without any confirm the same slow reload breaks links (the
//! control, which proves the slow reload is a real hazard). `verify --live` reports a
//! server that never reloaded.

use std::fs;

use super::harness::{serial, Run, Zdt};
use super::support::topology::PEER_BIN;
use super::support::INTERNAL_SUFFIX;
use super::three_tier;

/// The nodes whose reload is slow and whose TLS certroll confirms itself.
const SLOW: [&str; 2] = ["db1", "db2"];
/// How late their reloads take effect: longer than a step takes on a loaded machine, so
/// that without a confirm the dependants' steps surely run before the reload.
const SLOW_SECS: u64 = 12;

/// Rewrites the inventory: no `confirm` command anywhere; SLOW nodes reload SLOW_SECS seconds
/// after the reload command returns, and get a `tls_address` when `builtin` is set.
fn slow_reload_inventory(zdt: &Zdt, builtin: bool) {
    let text = fs::read_to_string(&zdt.inventory).expect("read inventory");
    let mut text: String = text
        .lines()
        .filter(|l| !l.starts_with("confirm = "))
        .map(|l| format!("{l}\n"))
        .collect();
    let peer_dir = zdt.fleet.remote_path("peer");
    for node in SLOW {
        let port = zdt.peers.listen_port(node).expect("db nodes are servers");
        let reload = format!(
            "setsid sh -c 'sleep {SLOW_SECS}; {PEER_BIN} reload --state-dir {peer_dir}' >/dev/null 2>&1 </dev/null &"
        );
        let mut keys = format!("reload = {reload:?}\n");
        if builtin {
            keys += &format!("tls_address = \"{node}{INTERNAL_SUFFIX}:{port}\"\n");
        }
        let header = format!("[nodes.{node}]\n");
        assert!(text.contains(&header), "no {header} in the inventory");
        text = text.replacen(&header, &format!("{header}{keys}"), 1);
    }
    fs::write(&zdt.inventory, text).expect("write inventory");
}

#[test]
fn builtin_confirm_holds_slow_reloads_without_a_confirm_command() {
    let _serial = serial();
    let zdt = Zdt::bootstrapped(three_tier());
    slow_reload_inventory(&zdt, true);
    let run = zdt.observed(&["apply", "--rotate", "--yes"], "rotate-builtin");
    // Outcomes only (no stall bound: the slow reloads run on a loaded machine).
    let context = "rotation with slow reloads and the built-in confirm";
    assert_eq!(
        run.code,
        Some(0),
        "{context}: certroll failed\n{}",
        run.output
    );
    for snap in [&run.before, &run.after] {
        assert!(
            snap.failures().is_empty(),
            "{context}: failed handshakes:\n{}\nall counters:\n{}\ncertroll {}",
            snap.failures().join("\n"),
            snap.describe(),
            run.output
        );
    }
    let stalled = run.after.stalled_since(&run.before, 1);
    assert!(
        stalled.is_empty(),
        "{context}: links that stopped: {stalled:?}"
    );
    eprintln!(
        "built-in confirm: rotation took {:?}, {} handshakes, 0 failed",
        run.timeline.duration(),
        run.handshakes()
    );
    let live = zdt.certroll(&["verify", "--live", "--format", "json"]);
    assert_eq!(
        live.code,
        Some(0),
        "verify --live after the rotation\n{}",
        shown(&live)
    );
}

#[test]
fn slow_reloads_without_any_confirm_break_links() {
    let _serial = serial();
    let zdt = Zdt::bootstrapped(three_tier());
    slow_reload_inventory(&zdt, false);
    let run = zdt.observed(&["apply", "--rotate", "--yes"], "rotate-unconfirmed");
    assert_eq!(run.code, Some(0), "{}", run.output);
    // Let the last delayed reloads land, then count.
    std::thread::sleep(std::time::Duration::from_secs(SLOW_SECS + 1));
    let after = zdt.peers.live_snapshot();
    assert!(
        !after.failures().is_empty(),
        "the control saw no failure: a slow reload without a confirm must break a link\n{}",
        after.describe()
    );
}

#[test]
fn verify_live_reports_a_server_that_never_reloaded() {
    let _serial = serial();
    let zdt = Zdt::bootstrapped(three_tier());
    let original = fs::read_to_string(&zdt.inventory).expect("read inventory");
    // db1's reload does nothing: it keeps serving its G1 leaf after the rotation.
    let header = "[nodes.db1]\n";
    let lazy = original
        .lines()
        .filter(|l| !l.starts_with("confirm = "))
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        .replacen(header, &format!("{header}reload = \"true\"\n"), 1);
    fs::write(&zdt.inventory, lazy).expect("write inventory");
    zdt.certroll(&["apply", "--rotate", "--yes"])
        .success("rotation with a db1 that never reloads");

    let mut watched = original.clone();
    for node in SLOW {
        let port = zdt.peers.listen_port(node).expect("db nodes are servers");
        let header = format!("[nodes.{node}]\n");
        let key = format!("tls_address = \"{node}{INTERNAL_SUFFIX}:{port}\"\n");
        watched = watched.replacen(&header, &format!("{header}{key}"), 1);
    }
    fs::write(&zdt.inventory, watched).expect("write inventory");
    let run = zdt.certroll(&["verify", "--live", "--format", "json"]);
    let report: serde_json::Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("verify JSON: {e}\n{}", shown(&run)));
    let live_tls = |node: &str| -> Vec<String> {
        report["cas"][0]["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| n["node"] == node)
            .flat_map(|n| n["findings"].as_array().cloned().unwrap_or_default())
            .filter(|f| f["kind"] == "live-tls")
            .map(|f| f["detail"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let db1 = live_tls("db1");
    assert_eq!(db1.len(), 1, "db1 must be reported\n{}", shown(&run));
    assert!(
        db1[0].starts_with("it serves CN=db1") && db1[0].contains("G1"),
        "{}",
        db1[0]
    );
    assert!(live_tls("db2").is_empty(), "db2 reloaded\n{}", shown(&run));
    assert_eq!(
        run.code,
        Some(2),
        "a server not serving its files is critical\n{}",
        shown(&run)
    );
}

fn shown(run: &Run) -> String {
    format!(
        "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        run.code, run.stdout, run.stderr
    )
}
