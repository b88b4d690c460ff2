//! The passphrase of an `encrypted` CA store asked on a terminal: `script` (util-linux)
//! gives certroll a pseudo-terminal, and what is typed is fed through it. A new CA asks
//! twice and is written encrypted with what was typed; a later run asks once; a wrong
//! passphrase typed there is refused (exit 78) with nothing written.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

mod support;
use support::run::{finish, prepare, Run};

const INVENTORY: &str = "[ca.internal]\nsubject = \"CN=Prompt CA\"\nkey_store = \"encrypted\"\n\n\
     [defaults]\ntransport = \"local\"\ntrust_bundle = \"nodes/{node}/ca.pem\"\n\
     cert = \"nodes/{node}/cert.pem\"\nkey = \"nodes/{node}/key.pem\"\n\n\
     [nodes.app]\n[nodes.db]\n\n[[links]]\nclient = \"app\"\nserver = \"db\"\n";

/// Runs `certroll ARGS` on a pseudo-terminal, typing `typed` into it (within the tests'
/// usual time limit).
fn on_terminal(dir: &Path, args: &str, typed: &str) -> Run {
    let found = Command::new("script").arg("--version").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "these tests need `script` (apt-get install bsdutils)"
    );
    let command = format!("{} -i certroll.toml {args}", env!("CARGO_BIN_EXE_certroll"));
    let mut cmd = Command::new("script");
    cmd.args(["-q", "-e", "-c", &command, "/dev/null"])
        .current_dir(dir);
    let mut child = prepare(&mut cmd)
        .stdin(Stdio::piped())
        .spawn()
        .expect("start script");
    let mut stdin = child.stdin.take().expect("script's stdin");
    stdin
        .write_all(typed.as_bytes())
        .expect("type into the terminal");
    drop(stdin);
    finish(vec!["certroll".into(), args.into()], child)
}

/// Every file under `dir`, by path (the state directory and the nodes' files).
fn snapshot(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("list a directory").flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                todo.push(p);
            } else if p.file_name().is_some_and(|n| n != "lock" && n != "journal") {
                out.push((p.clone(), std::fs::read(&p).unwrap_or_default()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn an_encrypted_store_asks_its_passphrase_on_the_terminal() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("certroll.toml"), INVENTORY).expect("write the inventory");
    for n in ["app", "db"] {
        std::fs::create_dir_all(dir.path().join("nodes").join(n)).expect("node dir");
    }

    on_terminal(dir.path(), "apply --yes", "tty secret 1\ntty secret 1\n")
        .expect_code(0)
        .expect_output("passphrase for CA internal: ")
        .expect_output("passphrase for CA internal (again): ");

    let key = dir.path().join(".certroll/ca/internal/g1/ca.key");
    let pem = std::fs::read_to_string(&key).expect("read the CA key");
    assert!(
        pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
        "{pem}"
    );
    let opened = Command::new("openssl")
        .args(["pkey", "-noout", "-passin", "pass:tty secret 1", "-in"])
        .arg(&key)
        .output()
        .expect("run openssl (apt-get install openssl)");
    assert!(
        opened.status.success(),
        "openssl opens the key with the typed passphrase: {}",
        String::from_utf8_lossy(&opened.stderr)
    );

    let before = snapshot(dir.path());
    let wrong = on_terminal(dir.path(), "apply --rotate --yes", "not the secret\n");
    wrong.expect_code(78).expect_output("wrong passphrase");
    assert!(
        !wrong.output().contains("(again)"),
        "an existing CA asks once\n{wrong}"
    );
    assert!(
        before == snapshot(dir.path()),
        "a refused run writes nothing"
    );

    on_terminal(dir.path(), "apply --rotate --yes", "tty secret 1\n").expect_code(0);
    let g2 = std::fs::read_to_string(dir.path().join(".certroll/ca/internal/g2/ca.key"))
        .expect("read the G2 key");
    assert!(g2.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
}
