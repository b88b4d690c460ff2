//! What the real binary prints when it fails: each level of an error once, every top-level
//! message naming its file or directory, causes on their own lines, and the exit code of
//! the README. Also: a reader that closes standard output early is not a failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A temporary control directory with an inventory of local nodes `app1 → db1`, or of
/// `nodes` extra unlinked servers of app1 for a plan too large for a pipe.
struct Control {
    dir: tempfile::TempDir,
}

impl Control {
    fn new(extra_servers: usize) -> Control {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::from(
            "[certroll]\nstate_dir = \".certroll\"\n\n[ca.internal]\nsubject = \"CN=Errors CA\"\n\n\
             [defaults]\ntransport = \"local\"\ntrust_bundle = \"nodes/{node}/tls/ca.pem\"\n\
             cert = \"nodes/{node}/tls/cert.pem\"\nkey = \"nodes/{node}/tls/key.pem\"\n\n\
             [nodes.app1]\n[nodes.db1]\n\n[[links]]\nclient = \"app1\"\nserver = \"db1\"\n",
        );
        for i in 0..extra_servers {
            text.push_str(&format!(
                "\n[nodes.srv{i}]\n[[links]]\nclient = \"app1\"\nserver = \"srv{i}\"\n"
            ));
        }
        std::fs::write(dir.path().join("certroll.toml"), text).unwrap();
        Control { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn run(&self, args: &[&str]) -> Output {
        certroll(&self.path("certroll.toml"), args)
    }
}

fn certroll(inventory: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_certroll"))
        .arg("-i")
        .arg(inventory)
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run certroll")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts the exit code and the exact text on standard error.
#[track_caller]
fn assert_report(out: &Output, code: i32, expected: &str) {
    assert_eq!(
        (out.status.code(), stderr(out).as_str()),
        (Some(code), expected),
        "stdout:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn ca_store_error_names_the_store_once_with_its_causes() {
    let c = Control::new(0);
    // The CA's directory of the store is a file: nothing under it can be read.
    std::fs::create_dir_all(c.path(".certroll/ca")).unwrap();
    std::fs::write(c.path(".certroll/ca/internal"), b"").unwrap();
    let store = c.path(".certroll/ca/internal");
    let expected = format!(
        "error: failed to read the CA store {store}\n  \
         caused by: failed to read generation pointer {store}/current\n  \
         caused by: Not a directory (os error 20)\n",
        store = store.display()
    );
    assert_report(&c.run(&["plan"]), 1, &expected);
    assert_report(&c.run(&["apply", "--yes"]), 1, &expected);
}

#[test]
fn directory_where_a_node_file_belongs_is_reported_once() {
    let c = Control::new(0);
    let out = c.run(&["apply", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let cert = c.path("nodes/db1/tls/cert.pem");
    std::fs::remove_file(&cert).unwrap();
    std::fs::create_dir(&cert).unwrap();
    let read = format!(
        "failed to read {} on node db1: it is a directory, not a regular file; \
         certroll reads only regular files",
        cert.display()
    );

    let expected = format!("error: could not read the fleet's certificates: {read}\n");
    assert_report(&c.run(&["plan"]), 75, &expected);

    let out = c.run(&["verify"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains(&format!("certificate unreadable: {read}\n")),
        "{report}"
    );
    for line in report.lines() {
        assert!(line.matches("failed to read").count() <= 1, "{line}");
    }
}

#[test]
fn bad_inventory_reports_file_line_and_column_and_exits_78_and_a_missing_one_66() {
    let c = Control::new(0);
    let bad = c.path("bad.toml");
    std::fs::write(&bad, "[certroll\nstate_dir = 1\n").unwrap();
    let out = certroll(&bad, &["plan"]);
    let expected = format!(
        "error: {}:1:10: invalid inventory: unclosed table, expected `]`\n",
        bad.display()
    );
    assert_report(&out, 78, &expected);

    // No file to point into: exit 66 (EX_NOINPUT), said once, with where to look instead.
    let missing = c.path("missing.toml");
    let expected = format!(
        "error: no inventory file at {}\n  hint: name the inventory with -i PATH or \
         CERTROLL_INVENTORY=PATH (the default is certroll.toml in the current directory); to start \
         one, `certroll init my-fleet` writes a commented starter inventory, then: certroll -i \
         my-fleet/certroll.toml plan\n",
        missing.display()
    );
    assert_report(&certroll(&missing, &["status"]), 66, &expected);
    let unreadable = c.path("nodes");
    std::fs::create_dir_all(&unreadable).unwrap();
    let expected = format!(
        "error: failed to read inventory {}\n  caused by: Is a directory (os error 21)\n",
        unreadable.display()
    );
    assert_report(&certroll(&unreadable, &["status"]), 66, &expected);
    assert!(!c.path(".certroll").exists(), "nothing may be created");
}

#[test]
fn plan_into_a_closed_pipe_exits_zero_quietly() {
    // A plan far larger than a pipe holds, read by a consumer that stops after one line:
    // certroll is still writing when the pipe closes.
    let c = Control::new(4000);
    let script = format!(
        "{bin} -i {inv} plan | head -1 >/dev/null; echo \"exit=${{PIPESTATUS[0]}}\"",
        bin = env!("CARGO_BIN_EXE_certroll"),
        inv = c.path("certroll.toml").display()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run bash");
    assert_eq!(
        (
            String::from_utf8_lossy(&out.stdout).trim(),
            stderr(&out).as_str()
        ),
        ("exit=0", ""),
    );
}

#[test]
fn a_key_mode_of_0666_is_refused_at_load_and_nothing_is_written() {
    let c = Control::new(0);
    let inventory = c.path("certroll.toml");
    let text = std::fs::read_to_string(&inventory).unwrap();
    let text = text.replace("[nodes.db1]\n", "[nodes.db1]\nkey_mode = \"0666\"\n");
    std::fs::write(&inventory, text).unwrap();
    let expected = format!(
        "error: {}:15:12: key_mode \"0666\" of node db1 lets other users at the private key \
         and lets its group write it\n  hint: a private key is for its owner (\"0600\") and at \
         most readable by its group (\"0640\"); 0666 would be written to the node at every run\n",
        inventory.display()
    );
    for args in [&["apply", "--yes"][..], &["plan"][..], &["verify"][..]] {
        assert_report(&c.run(args), 78, &expected);
    }
    assert!(!c.path(".certroll").exists(), "nothing may be created");
    assert!(!c.path("nodes").exists(), "no node file may be written");
}
