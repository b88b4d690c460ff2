//! `become = "sudo"`: an operator logs in as himself and certroll writes root's files and
//! runs root's commands through `sudo -n`; a sudo that wants a password fails at once and
//! says so. Real accounts and real sudoers.d rules (see `support::users`).

use crate::support::cli::{mode, Control};
use crate::support::inventory::{FleetInventory, BUNDLE, CERT, KEY, RELOADED};
use crate::support::users::{self, ensure_user, owner, sudoers, OPERATOR, OPERATOR_PW};
use crate::support::Fleet;
use crate::{assert_verify_ok, on_node, status_steps};

#[test]
fn become_sudo_writes_root_owned_files_and_reloads_as_root_for_an_unprivileged_login() {
    let fleet = users::sudo_fleet(&["lb1", "app1"]);
    let inv = FleetInventory::new(&fleet)
        .mutual_link("lb1", "app1")
        .login_user("app1", OPERATOR)
        .node_key("app1", "become", "sudo");
    let ctl = Control::new(&fleet, &inv);
    let run = ctl.apply_ok(&[]);
    for remote in [BUNDLE, CERT, KEY, RELOADED] {
        let p = on_node(&fleet, "app1", remote);
        assert_eq!(owner(&p), (0, 0), "{} is root's\n{run}", p.display());
    }
    assert_eq!(mode(&on_node(&fleet, "app1", KEY)), 0o600);
    ctl.apply_ok(&["--rotate"]);
    // verify reads the root-only key through sudo too.
    assert_verify_ok(&ctl);
}

#[test]
fn become_sudo_that_asks_for_a_password_fails_at_once_and_says_so() {
    ensure_user(OPERATOR_PW);
    sudoers(OPERATOR_PW, false);
    let fleet = Fleet::start(&["lb1", "app1"]);
    users::quiet_root_shells(&fleet);
    users::allow_login(&fleet);
    let inv = FleetInventory::new(&fleet)
        .link("lb1", "app1")
        .login_user("app1", OPERATOR_PW)
        .default_key("confirm_timeout", "10m")
        .node_key("app1", "become", "sudo");
    let ctl = Control::new(&fleet, &inv);
    let run = ctl.certroll(&["apply", "--yes"]);
    run.expect_code(75)
        .expect_output("sudo asks for a password")
        .expect_output("NOPASSWD")
        .expect_output("node app1");
    assert!(
        !on_node(&fleet, "app1", KEY).exists(),
        "nothing was written on app1\n{run}"
    );
    let steps = status_steps(&ctl);
    assert!(
        steps
            .iter()
            .any(|(node, _, state)| node == "app1" && state == "failed"),
        "app1's step failed (not retried until a timeout): {steps:?}"
    );
}

/// Regression: the whole step travels as one command in one SSH packet, and under
/// `become = "sudo"` the node-side script is quoted twice. With the script's comments
/// shipped, a step whose reload and confirm commands are 3 KiB each (operators write long
/// ones) made a command of more than 35,000 bytes, which libssh2 refuses to send.
#[test]
fn become_sudo_with_long_node_commands_still_fits_a_step_in_one_packet() {
    let fleet = users::sudo_fleet(&["lb1", "app1"]);
    let padding = "x".repeat(3072);
    let reload = format!("touch {RELOADED} || echo {padding}");
    let confirm = format!("test -e {RELOADED} || echo {padding}");
    let inv = FleetInventory::new(&fleet)
        .mutual_link("lb1", "app1")
        .login_user("app1", OPERATOR)
        .node_key("app1", "become", "sudo")
        .node_key("app1", "reload", &reload)
        .node_key("app1", "confirm", &confirm);
    let ctl = Control::new(&fleet, &inv);
    ctl.apply_ok(&[]);
    let reloaded = on_node(&fleet, "app1", RELOADED);
    let before = std::fs::metadata(&reloaded).and_then(|m| m.modified());
    ctl.apply_ok(&["--rotate"]);
    assert_ne!(
        std::fs::metadata(&reloaded).and_then(|m| m.modified()).ok(),
        before.ok(),
        "the rotation reloaded app1 through sudo"
    );
    assert_verify_ok(&ctl);
}
