//! verify as a monitor: `--live` runs each client's probe on the client over SSH and
//! reports it per link, and the cron wrapper of `examples/cron/` logs, mails and keeps
//! certroll's exit code.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use certroll::exit;

use crate::support::verify_kit::{run_command, FleetSpec, Run, TlsFile, VerifyFleet};

/// A probe that runs on the client (it reads a marker in the client's own directory)
/// and fails for a server whose `probe-down-<server>` marker exists there.
const PROBE: &str = "if [ -e /srv/certroll-node/probe-down-{server} ]; then \
                     echo '{server} refused at {name}' >&2; exit 4; fi; echo 'reached {name} ({host})'";

#[test]
fn live_probes_run_on_each_client_and_report_per_link() {
    let f = FleetSpec::standard()
        .probe("lb1", PROBE)
        .probe("app1", PROBE)
        .bootstrap();

    let r = f.verify_json(&["--live"]);
    assert_eq!(r.code(), exit::VERIFY_OK, "{}", r.run);
    for (client, server, name) in [
        ("lb1", "app1", "app1.internal"),
        ("app1", "db1", "db1.internal"),
    ] {
        let live = &r.link(client, server)["live"];
        assert_eq!(live["status"], 0, "probe of {client} → {server}\n{}", r.run);
        assert_eq!(
            live["first_line"],
            format!("reached {name} ({name})"),
            "{}",
            r.run
        );
        assert!(live["error"].is_null(), "{}", r.run);
        assert!(
            live["command"]
                .as_str()
                .unwrap_or("")
                .contains(&format!("probe-down-{server} ]")),
            "the command shows the substituted server (a shell-safe name stands as it is)\n{}",
            r.run
        );
    }

    // The marker lives on app1 only: only app1's probe towards db1 fails.
    f.touch("app1", "probe-down-db1");
    let r = f.verify_json(&["--live"]);
    assert_eq!(r.code(), exit::VERIFY_CRITICAL, "{}", r.run);
    let failed = r.link("app1", "db1");
    assert_eq!(failed["live"]["status"], 4, "{}", r.run);
    assert_eq!(failed["live"]["first_line"], "db1 refused at db1.internal");
    assert_eq!(failed["status"], "critical", "{}", r.run);
    assert_eq!(
        failed["result"], "ok",
        "the handshake itself is fine\n{}",
        r.run
    );
    assert_eq!(r.link("lb1", "app1")["live"]["status"], 0, "{}", r.run);
    assert_eq!(r.link("lb1", "app1")["status"], "ok", "{}", r.run);

    // Without --live the probes are not run and the fleet is OK.
    let r = f.verify_json(&[]);
    assert_eq!(r.code(), exit::VERIFY_OK, "{}", r.run);
    assert!(r.link("app1", "db1")["live"].is_null(), "{}", r.run);

    // The text report shows a failed probe's first line under its link.
    f.touch("lb1", "probe-down-app1");
    let text = f.certroll(&["verify", "--live"]);
    text.expect_code(exit::VERIFY_CRITICAL);
    assert!(
        text.stdout.contains("app1 refused at app1.internal"),
        "the text report shows the probe's first line\n{text}"
    );
}

/// Runs the cron wrapper with `mail` replaced by a script that records what it sends.
fn cron(f: &VerifyFleet, bin_dir: &Path, log: &Path) -> Run {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/cron/certroll-verify-cron.sh"
    );
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    run_command(
        Command::new("sh")
            .arg(script)
            .env("PATH", path)
            .env("CERTROLL", env!("CARGO_BIN_EXE_certroll"))
            .env("CERTROLL_INVENTORY", &f.inventory)
            .env("CERTROLL_VERIFY_LOG", log)
            .env("CERTROLL_VERIFY_MAILTO", "pki-oncall@example.test"),
        vec!["certroll-verify-cron.sh".into()],
    )
}

#[test]
fn cron_wrapper_logs_mails_and_keeps_the_exit_code() {
    let f = FleetSpec::standard().bootstrap();
    let work = f.fleet.dir().join("cron");
    fs::create_dir_all(&work).unwrap();
    let mailbox = work.join("mailbox");
    let mail = work.join("mail");
    fs::write(
        &mail,
        format!(
            "#!/bin/sh\n{{ echo \"args: $*\"; cat; }} >> '{}'\n",
            mailbox.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&mail, fs::Permissions::from_mode(0o755)).unwrap();
    let log = work.join("log/verify.log");

    let run = cron(&f, &work, &log);
    run.expect_code(exit::VERIFY_OK);
    let logged = fs::read_to_string(&log).expect("the wrapper writes its log");
    assert!(logged.contains("certroll verify exit 0"), "{logged}");
    assert!(logged.contains("verify: 3 nodes, 2 links — OK"), "{logged}");
    assert!(!mailbox.exists(), "no mail when all is well\n{run}");

    f.chmod("app1", TlsFile::Key, 0o644);
    let run = cron(&f, &work, &log);
    run.expect_code(exit::VERIFY_CRITICAL);
    let logged = fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("certroll verify exit 0") && logged.contains("certroll verify exit 2"),
        "the log keeps both runs\n{logged}"
    );
    let mailed = fs::read_to_string(&mailbox).expect("a mail was sent");
    assert!(
        mailed.contains("args: -s certroll verify on ")
            && mailed.contains(": CRITICAL pki-oncall@example.test"),
        "subject and recipient\n{mailed}"
    );
    assert!(
        mailed.contains("key-mode") || mailed.contains("0644"),
        "{mailed}"
    );
    assert!(mailed.contains("CRITICAL"), "{mailed}");

    f.chmod("app1", TlsFile::Key, 0o600);
    f.fleet.stop("db1");
    let run = cron(&f, &work, &log);
    run.expect_code(exit::VERIFY_UNKNOWN);
}
