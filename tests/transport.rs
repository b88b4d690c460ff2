//! The SSH and local transports against a fleet of real sshd nodes: atomic writes with
//! backups and modes, commands with time limits, typed errors, reconnection, `via` jumps,
//! many nodes in parallel, local nodes. Host-key checks are in `transport_host_keys.rs`.

mod support;

use std::fs;
use std::net::ToSocketAddrs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use certroll::inventory::{Inventory, Node, SshSettings, TransportKind};
use certroll::transport::ssh::{FleetConnector, SshTransport};
use certroll::transport::{
    Connector, ErrorKind, HostKeyPolicy, SecretEnv, Transport, WriteOptions,
};
use support::Fleet;

const STRICT: HostKeyPolicy = HostKeyPolicy { accept_new: false };
const SECS: Duration = Duration::from_secs(20);

fn opts<'a>(mode: u32, tag: Option<&'a str>, what: &'static str) -> WriteOptions<'a> {
    WriteOptions {
        mode,
        backup_tag: tag,
        what,
    }
}

fn connect(fleet: &Fleet, name: &str) -> SshTransport {
    SshTransport::connect(name, &fleet.settings(name), STRICT).expect("connect to fleet node")
}

fn host_mode(path: &Path) -> u32 {
    fs::metadata(path)
        .expect("stat on host")
        .permissions()
        .mode()
        & 0o7777
}

fn node(name: &str, transport: TransportKind, via: Option<usize>) -> Node {
    Node {
        name: name.to_string(),
        transport,
        via,
        trust_bundle: "/srv/certroll-node/ca.pem".into(),
        cert: "/srv/certroll-node/cert.pem".into(),
        key: "/srv/certroll-node/key.pem".into(),
        proof_cert: None,
        reload: None,
        confirm: None,
        confirm_timeout: Duration::from_secs(5),
        probe: None,
        tls: None,
        dns_names: vec![],
        become_with: Default::default(),
        files: Default::default(),
        stores: Default::default(),
    }
}

/// An inventory of the given nodes (already sorted by name), read from `dir/inventory.toml`.
fn inventory(dir: &Path, nodes: Vec<Node>) -> Inventory {
    let mut names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
    names.sort_unstable();
    assert!(
        nodes.iter().map(|n| n.name.as_str()).eq(names),
        "nodes must be sorted by name"
    );
    Inventory {
        source: dir.join("inventory.toml"),
        state_dir: dir.join(".certroll"),
        state: Default::default(),
        cas: vec![],
        nodes,
        links: vec![],
        verify: Default::default(),
        pools: Default::default(),
    }
}

fn leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .expect("list dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.contains(".certroll-"))
        .collect()
}

#[test]
fn write_overwrite_backup_mode_and_read_back() {
    let fleet = Fleet::start(&["app1"]);
    let t = connect(&fleet, "app1");
    let bundle = fleet.remote_path("etc/tls/ca.pem");
    let host = fleet.host_path("app1", &bundle);
    assert_eq!(t.read_file(&bundle).unwrap(), None);
    assert_eq!(t.file_mode(&bundle).unwrap(), None);

    t.write_file(
        &bundle,
        b"old bundle\n",
        opts(0o644, Some("g1"), "trust bundle"),
    )
    .unwrap();
    assert_eq!(fs::read(&host).unwrap(), b"old bundle\n");
    assert_eq!(host_mode(&host), 0o644);
    assert!(
        !host.with_file_name("ca.pem.g1.bak").exists(),
        "nothing to back up on first write"
    );

    t.write_file(
        &bundle,
        b"new bundle\n",
        opts(0o644, Some("g2"), "trust bundle"),
    )
    .unwrap();
    assert_eq!(fs::read(&host).unwrap(), b"new bundle\n");
    assert_eq!(
        fs::read(host.with_file_name("ca.pem.g2.bak")).unwrap(),
        b"old bundle\n"
    );
    assert_eq!(
        t.read_file(&bundle).unwrap().as_deref(),
        Some(&b"new bundle\n"[..])
    );
    assert_eq!(
        t.read_file(&format!("{bundle}.g2.bak")).unwrap().as_deref(),
        Some(&b"old bundle\n"[..])
    );
    assert!(leftovers(host.parent().unwrap()).is_empty());

    // A key: 0600 over SSH and on disk, even replacing a 0644 file.
    let key = fleet.remote_path("etc/tls/key.pem");
    let key_host = fleet.host_path("app1", &key);
    fs::write(&key_host, b"previous").unwrap();
    fs::set_permissions(&key_host, fs::Permissions::from_mode(0o644)).unwrap();
    t.write_file(
        &key,
        b"-----BEGIN PRIVATE KEY-----\n",
        opts(0o600, Some("g2"), "key"),
    )
    .unwrap();
    assert_eq!(t.file_mode(&key).unwrap(), Some(0o600));
    assert_eq!(host_mode(&key_host), 0o600);
    assert_eq!(
        fs::read(key_host.with_file_name("key.pem.g2.bak")).unwrap(),
        b"previous"
    );

    // Paths with spaces and quotes survive the shell steps.
    let odd = fleet.remote_path("odd dir/it's here.pem");
    t.write_file(&odd, b"x", opts(0o644, Some("g1"), "certificate"))
        .unwrap();
    t.write_file(&odd, b"y", opts(0o644, Some("g1"), "certificate"))
        .unwrap();
    assert_eq!(fs::read(fleet.host_path("app1", &odd)).unwrap(), b"y");

    t.remove_file(&bundle, Some("g3")).unwrap();
    assert!(!host.exists());
    assert_eq!(
        fs::read(host.with_file_name("ca.pem.g3.bak")).unwrap(),
        b"new bundle\n"
    );
    t.remove_file(&bundle, Some("g3")).unwrap();
    t.remove_file(&key, None).unwrap();
    assert!(!key_host.exists());
}

#[test]
fn write_errors_name_the_action_file_and_node() {
    let fleet = Fleet::start(&["app1"]);
    let t = connect(&fleet, "app1");
    fs::write(fleet.node("app1").dir.join("plain"), b"a file").unwrap();
    let path = fleet.remote_path("plain/ca.pem");
    let err = t
        .write_file(&path, b"x", opts(0o644, None, "trust bundle"))
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Io);
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "failed to write trust bundle {path} on node app1: "
        )),
        "{text}"
    );
    assert!(text.contains("not a directory"), "{text}");
    let err = t
        .write_file("relative.pem", b"x", opts(0o644, None, "certificate"))
        .unwrap_err();
    assert!(
        err.to_string().contains("relative.pem on node app1"),
        "{err}"
    );
}

#[test]
fn exec_captures_output_and_status_and_kills_on_timeout() {
    let fleet = Fleet::start(&["app1"]);
    let t = connect(&fleet, "app1");
    let out = t.exec("echo out; echo err >&2; exit 7", SECS).unwrap();
    assert_eq!(
        (out.status, out.stdout.as_str(), out.stderr.as_str()),
        (Some(7), "out\n", "err\n")
    );
    assert!(t
        .exec("test -d /srv/certroll-node", SECS)
        .unwrap()
        .success());
    // A lot of stderr must not stall stdout; what is kept of it is capped.
    let out = t
        .exec(
            "head -c 3000000 /dev/zero | tr '\\0' e >&2; echo done",
            SECS,
        )
        .unwrap();
    assert_eq!(
        (out.status, out.stdout.as_str(), out.stderr.len()),
        (
            Some(0),
            "done\n",
            certroll::transport::limits::MAX_OUTPUT_BYTES
        )
    );

    let start = Instant::now();
    let cmd = "sleep 60 & echo $! > /srv/certroll-node/bg.pid; echo started; sleep 60";
    // The deadline leaves a loaded machine time to print "started"; the bound only proves
    // the call did not wait for the 60 s sleeps.
    let out = t.exec(cmd, Duration::from_secs(5)).unwrap();
    assert_eq!(out.status, None, "timed out commands have no status");
    assert_eq!(out.stdout, "started\n");
    assert!(
        start.elapsed() < Duration::from_secs(40),
        "timeout took {:?}",
        start.elapsed()
    );
    // The whole process group died, background job included; the session still works.
    let check = t
        .exec(
            "kill -0 $(cat /srv/certroll-node/bg.pid) 2>/dev/null && echo alive || echo gone",
            SECS,
        )
        .unwrap();
    assert_eq!(check.stdout, "gone\n");
}

#[test]
fn refused_connection_is_transient_and_the_transport_reconnects() {
    let fleet = Fleet::start(&["app1"]);
    let t = connect(&fleet, "app1");
    let file = fleet.remote_path("state");
    t.write_file(&file, b"1", opts(0o644, None, "certificate"))
        .unwrap();
    fleet.stop("app1");
    let err = t.read_file(&file).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Transient, "{err}");
    let err = t.read_file(&file).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Transient, "{err}");
    assert!(err.to_string().contains("node app1"), "{err}");
    fleet.start_node("app1");
    assert_eq!(t.read_file(&file).unwrap().as_deref(), Some(&b"1"[..]));
}

/// `c` via `b` via `a`; `b` and `c` use names only the nodes can resolve.
#[test]
fn via_chains_reach_nodes_only_the_jump_host_can_resolve() {
    let fleet = Fleet::start(&["a", "b", "c"]);
    let hidden = |n: &str| SshSettings {
        host: fleet.internal_host(n),
        ..fleet.settings(n)
    };
    let hidden_host = fleet.internal_host("c");
    assert!(
        (hidden_host.as_str(), 22).to_socket_addrs().is_err(),
        "{hidden_host} must not resolve here"
    );
    let direct = SshTransport::connect("c", &hidden("c"), STRICT)
        .err()
        .expect("not reachable directly");
    assert_eq!(direct.kind, ErrorKind::Transient);

    let inv = inventory(
        fleet.dir(),
        vec![
            node("a", TransportKind::Ssh(fleet.settings("a")), None),
            node("b", TransportKind::Ssh(hidden("b")), Some(0)),
            node("c", TransportKind::Ssh(hidden("c")), Some(1)),
        ],
    );
    let connector = FleetConnector::new(inv, STRICT, SecretEnv::none());
    for (id, name) in ["a", "b", "c"].iter().enumerate() {
        fs::write(fleet.node(name).dir.join("whoami"), name).unwrap();
        let t = connector.connect(id).unwrap();
        assert!(
            Arc::ptr_eq(&t, &connector.connect(id).unwrap()),
            "one transport per node"
        );
        assert_eq!(
            t.read_file("/srv/certroll-node/whoami").unwrap().as_deref(),
            Some(name.as_bytes())
        );
    }
    // A megabyte each way through two tunnels, byte for byte.
    let c = connector.connect(2).unwrap();
    let big: Vec<u8> = (0..1_048_576u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    c.write_file(
        "/srv/certroll-node/big.bin",
        &big,
        opts(0o600, Some("g1"), "certificate"),
    )
    .unwrap();
    assert_eq!(fs::read(fleet.node("c").dir.join("big.bin")).unwrap(), big);
    assert_eq!(
        c.exec("wc -c < /srv/certroll-node/big.bin", SECS)
            .unwrap()
            .stdout
            .trim(),
        "1048576"
    );
    // The jump hosts logged the forwarded connections; c's sshd saw them come from them.
    assert!(
        fleet.log("c").contains("Accepted publickey"),
        "{}",
        fleet.log("c")
    );
    let b_log = fleet.log("b");
    assert!(
        b_log.matches("Accepted publickey").count() >= 2,
        "b serves its own and c's jump session:\n{b_log}"
    );
    // Losing the first jump host breaks the chain promptly; once it is back, c reconnects.
    fleet.stop("a");
    let start = Instant::now();
    let err = c.exec("true", SECS).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Transient, "{err}");
    assert!(start.elapsed() < SECS, "took {:?}", start.elapsed());
    fleet.start_node("a");
    assert!(c.exec("true", SECS).unwrap().success());
}

#[test]
fn sixteen_nodes_in_parallel_share_one_session_each() {
    let names: Vec<String> = (0..16).map(|i| format!("n{i:02}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let fleet = Fleet::start(&refs);
    let nodes = names
        .iter()
        .map(|n| node(n, TransportKind::Ssh(fleet.settings(n)), None))
        .collect();
    let connector = Arc::new(FleetConnector::new(
        inventory(fleet.dir(), nodes),
        STRICT,
        SecretEnv::none(),
    ));
    let fleet = &fleet;
    thread::scope(|s| {
        for id in 0..16 {
            for worker in 0..2 {
                let connector = Arc::clone(&connector);
                s.spawn(move || {
                    let t = connector.connect(id).unwrap();
                    let path = format!("/srv/certroll-node/w{worker}/cert.pem");
                    let body = format!("{} {worker}", t.node());
                    t.write_file(
                        &path,
                        body.as_bytes(),
                        opts(0o644, Some("g1"), "certificate"),
                    )
                    .unwrap();
                    let out = t.exec(&format!("cat {path}"), SECS).unwrap();
                    assert_eq!(out.stdout, body);
                });
            }
        }
    });
    for (id, name) in names.iter().enumerate() {
        for worker in 0..2 {
            let host = fleet.node(name).dir.join(format!("w{worker}/cert.pem"));
            assert_eq!(
                fs::read_to_string(host).unwrap(),
                format!("{name} {worker}")
            );
        }
        // One login per node: the transport is shared by both workers.
        let logins = fleet.log(name).matches("Accepted publickey").count();
        assert_eq!(logins, 1, "node {name} (#{id}) logged in {logins} times");
    }
}

#[test]
fn local_nodes_work_in_the_inventory_directory() {
    let dir = tempfile::tempdir().unwrap();
    let inv = inventory(dir.path(), vec![node("me", TransportKind::Local, None)]);
    let connector = FleetConnector::new(inv, STRICT, SecretEnv::none());
    let t = connector.connect(0).unwrap();
    t.write_file(
        "tls/ca.pem",
        b"bundle",
        opts(0o644, Some("g1"), "trust bundle"),
    )
    .unwrap();
    assert_eq!(fs::read(dir.path().join("tls/ca.pem")).unwrap(), b"bundle");
    assert_eq!(t.exec("cat tls/ca.pem", SECS).unwrap().stdout, "bundle");
    let err = connector.connect(5).err().expect("no node 5");
    assert_eq!(err.kind, ErrorKind::Io);
}

#[test]
fn a_port_taken_before_its_sshd_binds_it_moves_the_node_to_a_fresh_port() {
    // Another process holds the port reserved for node `a` when its sshd starts.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let port = taken.local_addr().expect("its address").port();
    let other = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let free = other.local_addr().expect("its address").port();
    drop(other);
    let fleet = Fleet::start_on(&["a", "b"], vec![port, free]);
    assert_ne!(
        fleet.node("a").port,
        port,
        "node a moved off the taken port"
    );
    let kh = fs::read_to_string(fleet.known_hosts()).unwrap();
    for n in ["a", "b"] {
        let p = fleet.node(n).port;
        std::net::TcpStream::connect(("127.0.0.1", p)).expect("node accepts");
        assert!(kh.contains(&format!("[127.0.0.1]:{p},")), "{kh}");
    }
    // The node works over SSH on its new port.
    let t = SshTransport::connect("a", &fleet.settings("a"), STRICT)
        .expect("connect to the moved node");
    assert!(t.exec("true", Duration::from_secs(30)).unwrap().success());
    drop(taken);
}

#[test]
fn fifty_nodes_start_on_distinct_ports() {
    // How long a start takes is a benchmark figure (docs/performance.md), never a test bound.
    let names: Vec<String> = (0..50).map(|i| format!("node{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let fleet = Fleet::start(&refs);
    let mut ports: Vec<u16> = names.iter().map(|n| fleet.node(n).port).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 50);
    for n in &names {
        std::net::TcpStream::connect(("127.0.0.1", fleet.node(n).port)).expect("node accepts");
    }
    let kh = fs::read_to_string(fleet.known_hosts()).unwrap();
    assert_eq!(kh.lines().count(), 50);
    let _unused: PathBuf = fleet.host_path("node0", "/srv/certroll-node/x");
}

/// A command too long for one SSH packet is not sent: the error says how long it is and
/// what to do, names the command by its first line only, and the session still works
/// (libssh2's own refusal, "Unable to send channel request", left it in doubt).
#[test]
fn a_command_longer_than_one_ssh_packet_is_refused_by_size_and_the_session_goes_on() {
    let fleet = Fleet::start(&["app1"]);
    let t = connect(&fleet, "app1");
    let long = format!("true\n# {}", "x".repeat(40_000));
    let err = t
        .exec(&long, Duration::from_secs(30))
        .expect_err("a 40 kB command is not sent");
    let text = err.to_string();
    assert!(
        text.contains("more than the 35000 one SSH packet carries"),
        "{text}"
    );
    assert!(
        text.contains("node app1") && text.contains("run `true…`"),
        "{text}"
    );
    assert!(text.len() < 600, "the command is not repeated: {text}");
    let out = t.exec("echo still here", Duration::from_secs(30)).unwrap();
    assert_eq!(out.stdout, "still here\n");
}
