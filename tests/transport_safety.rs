//! Hostile nodes against both transports (a real sshd node and a local node): commands
//! that daemonize or hang end at their deadline and no sooner than their shell, a child
//! left behind on purpose survives, node files that are FIFOs, devices or huge are
//! refused without waiting, a session dropped under a read is a transient failure, and
//! temporary files of a killed write are cleaned by the next write.
//!
//! Time bounds here are generous on purpose: "returned well before the child's 25 s",
//! never a tight figure that a loaded machine could miss.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use certroll::transport::limits::MAX_FILE_BYTES;
use certroll::transport::local::LocalTransport;
use certroll::transport::ssh::SshTransport;
use certroll::transport::{ErrorKind, ExecOutput, HostKeyPolicy, Transport, WriteOptions};
use support::Fleet;

const STRICT: HostKeyPolicy = HostKeyPolicy { accept_new: false };
/// What "well before" means for children that live 25 s.
const WELL_BEFORE: Duration = Duration::from_secs(15);

/// One node reached one way: the transport, and how its paths map to host paths.
struct Node {
    label: &'static str,
    t: Arc<dyn Transport>,
    /// Where the node sees `root` (absolute, as commands and reads name it).
    remote_root: String,
    /// The same directory on this host.
    host_root: PathBuf,
}

impl Node {
    fn path(&self, rel: &str) -> String {
        format!("{}/{rel}", self.remote_root)
    }

    fn host(&self, rel: &str) -> PathBuf {
        self.host_root.join(rel)
    }
}

/// A node behind real sshd and a local node; the fleet and temp dir must outlive them.
fn nodes(fleet: &Fleet, local_dir: &Path) -> Vec<Node> {
    let ssh = SshTransport::connect("app1", &fleet.settings("app1"), STRICT)
        .expect("connect to fleet node");
    vec![
        Node {
            label: "ssh",
            t: Arc::new(ssh),
            remote_root: fleet.remote_path(""),
            host_root: fleet.node("app1").dir.clone(),
        },
        Node {
            label: "local",
            t: Arc::new(LocalTransport::new("app1", local_dir)),
            remote_root: local_dir.display().to_string(),
            host_root: local_dir.to_path_buf(),
        },
    ]
    .into_iter()
    .map(|mut n| {
        n.remote_root = n.remote_root.trim_end_matches('/').to_string();
        n
    })
    .collect()
}

/// Runs `f` on a thread; a call that hangs fails the test instead of hanging it.
fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("{what} did not return within {limit:?}"))
}

/// Runs `check` on each node of a fresh fleet: one behind real sshd, one local.
fn each_node(check: impl Fn(&Node)) {
    let fleet = Fleet::start(&["app1"]);
    let local = tempfile::tempdir().unwrap();
    for n in nodes(&fleet, local.path()) {
        check(&n);
    }
}

/// Runs `command` on `n` with its `deadline`, on a thread (a call that hangs fails the
/// test), and asserts that it returned within `limit`: `why` says what took too long.
fn exec_returns(
    n: &Node,
    command: &str,
    deadline: Duration,
    limit: Duration,
    why: &str,
) -> ExecOutput {
    let (t, command) = (Arc::clone(&n.t), command.to_string());
    let start = Instant::now();
    let out = within(Duration::from_secs(60), "exec", move || {
        t.exec(&command, deadline)
    })
    .unwrap_or_else(|e| panic!("{}: {e}", n.label));
    assert!(
        start.elapsed() < limit,
        "{}: {why} ({:?})",
        n.label,
        start.elapsed()
    );
    out
}

/// A connection to app1 that has read `state` over SFTP, the file's path, and the PID of
/// the sshd process serving the connection (the closest ancestor of a command that is sshd).
fn session_reading(fleet: &Fleet) -> (SshTransport, String, u32) {
    let t = SshTransport::connect("app1", &fleet.settings("app1"), STRICT).unwrap();
    let file = fleet.remote_path("state");
    fs::write(fleet.host_path("app1", &file), b"1").unwrap();
    assert_eq!(t.read_file(&file).unwrap().as_deref(), Some(&b"1"[..]));
    let find = "p=$$; while [ \"$p\" -gt 1 ]; do \
                case $(cat /proc/$p/comm) in sshd*) echo $p; exit 0;; esac; \
                p=$(awk '{print $4}' /proc/$p/stat); done";
    let session = t.exec(find, Duration::from_secs(30)).unwrap();
    let session: u32 = session.stdout.trim().parse().expect("a pid");
    (t, file, session)
}

/// Whether the process whose PID (as the node sees it) is in `pidfile` ends within 10 s.
fn ends_soon(n: &Node, pidfile: &str) -> bool {
    // A killed orphan may stay a zombie until its reaper runs: that counts as gone.
    let cmd = format!(
        "p=$(cat '{pidfile}'); i=0; while [ $i -lt 100 ]; do \
         s=$(awk '{{print $3}}' /proc/$p/stat 2>/dev/null); \
         if [ -z \"$s\" ] || [ \"$s\" = Z ]; then echo gone; exit 0; fi; \
         sleep 0.1; i=$((i+1)); done; echo alive"
    );
    let out =
        n.t.exec(&cmd, Duration::from_secs(60))
            .expect("check the process");
    out.stdout.trim() == "gone"
}

#[test]
fn daemonizing_reload_does_not_outlive_confirm_timeout() {
    each_node(|n| {
        // The shell exits at once; the child keeps its output open for 25 s.
        let deadline = Duration::from_secs(3);
        let out = exec_returns(n, "sleep 25 & true", deadline, WELL_BEFORE, "took");
        assert_eq!(out.status, Some(0), "{}: {out:?}", n.label);

        // The shell does not exit in time: the deadline holds, and the group is killed.
        let pidfile = n.path("bg.pid");
        let cmd = format!("sleep 25 & echo $! > '{pidfile}'; echo started; sleep 25");
        let out = exec_returns(n, &cmd, Duration::from_secs(2), WELL_BEFORE, "took");
        assert_eq!(out.status, None, "{}: {out:?}", n.label);
        assert_eq!(out.stdout, "started\n", "{}", n.label);
        assert!(
            ends_soon(n, &pidfile),
            "{}: the background child survived the deadline",
            n.label
        );
    });
}

#[test]
fn probe_that_leaves_a_child_holding_its_output_returns_at_once() {
    each_node(|n| {
        let cmd = "sleep 25 & echo started; echo warn >&2; exit 3";
        let out = exec_returns(n, cmd, Duration::from_secs(2), WELL_BEFORE, "took");
        assert_eq!(out.status, Some(3), "{}", n.label);
        assert_eq!(out.stdout, "started\n", "{}", n.label);
        assert_eq!(out.stderr, "warn\n", "{}", n.label);
    });
}

#[test]
fn child_left_behind_on_purpose_is_not_killed_and_may_still_write() {
    each_node(|n| {
        let marker = n.path("reloaded-later");
        // Like `(sleep 2; nginx -s reload) &`: it writes to the inherited output later.
        let cmd = format!("(sleep 40; echo late; echo late >&2; touch '{marker}') & echo started");
        let (deadline, limit) = (Duration::from_secs(60), Duration::from_secs(30));
        let out = exec_returns(n, &cmd, deadline, limit, "waited for the child");
        assert_eq!(out.status, Some(0), "{}", n.label);
        assert_eq!(out.stdout, "started\n", "{}", n.label);
        let host = n.host("reloaded-later");
        let until = Instant::now() + Duration::from_secs(90);
        while !host.exists() && Instant::now() < until {
            thread::sleep(Duration::from_millis(100));
        }
        assert!(
            host.exists(),
            "{}: the child left behind was killed",
            n.label
        );
        // The session is still usable after it.
        assert!(n.t.exec("true", Duration::from_secs(30)).unwrap().success());
    });
}

/// Once certroll has gone (its connection closed, sshd's session over), a child that a
/// node command left behind still writes its output, more than a pipe holds on each stream,
/// without dying of SIGPIPE or blocking: the wrapper's relays drain it into /dev/null.
#[test]
fn child_left_behind_writes_after_the_connection_is_gone_without_sigpipe_or_blocking() {
    let fleet = Fleet::start(&["app1"]);
    let t = SshTransport::connect("app1", &fleet.settings("app1"), STRICT).unwrap();
    let done = fleet.remote_path("wrote-after-close");
    // `&&`: a `head` killed by SIGPIPE (status 141) stops the chain before the `touch`.
    let cmd = format!(
        "(sleep 5; head -c 262144 /dev/zero && head -c 262144 /dev/zero >&2 && touch '{done}') & \
         echo started"
    );
    let out = within(Duration::from_secs(60), "exec", move || {
        let out = t.exec(&cmd, Duration::from_secs(60));
        // Closes the connection: sshd's session ends before the child writes.
        drop(t);
        out
    })
    .unwrap();
    assert_eq!((out.status, out.stdout.as_str()), (Some(0), "started\n"));
    let host = fleet.host_path("app1", &done);
    let until = Instant::now() + Duration::from_secs(60);
    while !host.exists() && Instant::now() < until {
        thread::sleep(Duration::from_millis(100));
    }
    assert!(
        host.exists(),
        "the child left behind died or blocked writing its output after the connection closed"
    );
}

#[test]
fn fifo_device_and_huge_node_files_are_refused_without_hanging() {
    each_node(|n| {
        let fifo = n.host("cert.pem");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        std::os::unix::fs::symlink("/dev/zero", n.host("zero.pem")).unwrap();
        let big = fs::File::create(n.host("big.pem")).unwrap();
        big.set_len(MAX_FILE_BYTES + 1).unwrap();
        for (rel, says) in [
            ("cert.pem", "it is a FIFO, not a regular file"),
            ("zero.pem", "it is a character device, not a regular file"),
            ("big.pem", "it is larger than certroll reads"),
        ] {
            let (t, path) = (Arc::clone(&n.t), n.path(rel));
            let err = within(Duration::from_secs(60), "read_file", move || {
                t.read_file(&path)
            })
            .expect_err("refused");
            assert_eq!(err.kind, ErrorKind::FileRefused, "{}: {err}", n.label);
            let text = err.to_string();
            let want = format!("failed to read {} on node app1: {says}", n.path(rel));
            assert!(text.starts_with(&want), "{}: {text}", n.label);
        }
        // A regular file at the limit is still read.
        fs::write(n.host("ok.pem"), b"pem").unwrap();
        assert_eq!(
            n.t.read_file(&n.path("ok.pem")).unwrap().as_deref(),
            Some(&b"pem"[..])
        );
    });
}

#[test]
fn stale_temp_files_of_a_killed_write_are_removed_by_the_next_write() {
    each_node(|n| {
        let stale = [
            ".ca.pem.certroll-0123456789ab",
            ".ca.pem.certroll-fedcba987654",
        ];
        let foreign = [
            ".ca.pem.certroll-keepme",
            ".cert.pem.certroll-0123456789ab",
            "ca.pem.bak",
        ];
        for name in stale.iter().chain(&foreign) {
            fs::write(n.host(name), b"x").unwrap();
        }
        let opts = WriteOptions {
            mode: 0o644,
            backup_tag: None,
            what: "trust bundle",
        };
        n.t.write_file(&n.path("ca.pem"), b"bundle", opts).unwrap();
        for name in stale {
            assert!(!n.host(name).exists(), "{}: {name} left", n.label);
        }
        for name in foreign {
            assert!(n.host(name).exists(), "{}: {name} removed", n.label);
        }
        assert_eq!(fs::read(n.host("ca.pem")).unwrap(), b"bundle");
    });
}

#[test]
fn dropped_ssh_session_under_a_read_is_transient_and_the_next_call_reconnects() {
    let fleet = Fleet::start(&["app1"]);
    // The SFTP channel is open; find the sshd process serving this connection.
    let (t, file, session) = session_reading(&fleet);
    // A second connection kills it: the first one drops with its SFTP channel open.
    let killer = SshTransport::connect("app1", &fleet.settings("app1"), STRICT).unwrap();
    killer
        .exec(&format!("kill -KILL {session}"), Duration::from_secs(30))
        .unwrap();
    let err = t.read_file(&file).expect_err("the session is gone");
    assert_eq!(err.kind, ErrorKind::Transient, "{err}");
    assert!(err.to_string().contains("node app1"), "{err}");
    assert_eq!(t.read_file(&file).unwrap().as_deref(), Some(&b"1"[..]));
}

#[test]
fn dropped_sftp_channel_under_a_read_is_transient_and_the_next_call_reconnects() {
    let fleet = Fleet::start(&["app1"]);
    let (t, file, session) = session_reading(&fleet);
    // The SFTP server of this connection (sshd's child serving internal-sftp) dies;
    // the connection itself stays up and sshd closes the SFTP channel.
    let kill = format!(
        "for d in /proc/[0-9]*; do \
           if [ \"$(awk '{{print $4}}' $d/stat)\" = {session} ] && \
              grep -q internal-sftp $d/cmdline; then kill -KILL ${{d#/proc/}}; fi; done"
    );
    let killer = SshTransport::connect("app1", &fleet.settings("app1"), STRICT).unwrap();
    killer.exec(&kill, Duration::from_secs(30)).unwrap();
    thread::sleep(Duration::from_millis(500));
    let err = t.read_file(&file).expect_err("the SFTP channel is gone");
    assert_eq!(err.kind, ErrorKind::Transient, "{err}");
    assert_eq!(t.read_file(&file).unwrap().as_deref(), Some(&b"1"[..]));
}
