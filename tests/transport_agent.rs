//! Authentication through ssh-agent: a node whose inventory names no identity file is
//! reached with the key an agent holds, and refused when the agent holds none. Its own
//! test binary, because it points `SSH_AUTH_SOCK` of the whole process at a test agent.

mod support;

use std::process::Command;

use certroll::transport::ssh::SshTransport;
use certroll::transport::{ErrorKind, HostKeyPolicy, Transport};
use support::Fleet;

/// An ssh-agent on a socket in `dir`, killed on drop.
struct Agent {
    pid: String,
    socket: std::path::PathBuf,
}

impl Agent {
    fn start(dir: &std::path::Path) -> Agent {
        let socket = dir.join("agent.sock");
        let out = Command::new("ssh-agent")
            .arg("-a")
            .arg(&socket)
            .arg("-s")
            .output()
            .expect("run ssh-agent (install openssh-client)");
        assert!(
            out.status.success(),
            "ssh-agent: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let pid = text
            .split(';')
            .find_map(|part| part.trim().strip_prefix("SSH_AGENT_PID="))
            .expect("ssh-agent prints its pid")
            .to_string();
        Agent { pid, socket }
    }

    fn add(&self, key: &std::path::Path) {
        let out = Command::new("ssh-add")
            .arg(key)
            .env("SSH_AUTH_SOCK", &self.socket)
            .output()
            .expect("run ssh-add");
        assert!(
            out.status.success(),
            "ssh-add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn clear(&self) {
        let out = Command::new("ssh-add")
            .arg("-D")
            .env("SSH_AUTH_SOCK", &self.socket)
            .output()
            .expect("run ssh-add -D");
        assert!(
            out.status.success(),
            "ssh-add -D: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(&self.pid).status();
    }
}

#[test]
fn a_node_without_identity_file_is_reached_with_the_agents_key() {
    let fleet = Fleet::start(&["app1"]);
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(dir.path());
    // The only test in this binary: no other thread reads the environment meanwhile.
    std::env::set_var("SSH_AUTH_SOCK", &agent.socket);
    let mut settings = fleet.settings("app1");
    settings.identity_file = None;

    agent.add(fleet.identity());
    let t =
        SshTransport::connect("app1", &settings, HostKeyPolicy::default()).expect("agent login");
    let out = t
        .exec("echo agent-ok", std::time::Duration::from_secs(30))
        .unwrap();
    assert_eq!(out.stdout.trim(), "agent-ok");
    drop(t);

    agent.clear();
    let err = match SshTransport::connect("app1", &settings, HostKeyPolicy::default()) {
        Ok(_) => panic!("an empty agent must not log in"),
        Err(e) => e,
    };
    assert_eq!(err.kind, ErrorKind::Auth, "{err}");
    assert!(
        err.to_string().contains("ssh-agent"),
        "the message says the agent was tried: {err}"
    );
}
