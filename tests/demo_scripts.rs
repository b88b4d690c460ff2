//! The scripts as a newcomer meets them: piped output carries no
//! terminal escapes, a build says so and shows cargo's progress, and `demo-live.sh` names a
//! taken port and how to choose others instead of waiting silently; `test.sh` runs every
//! test binary past a failure.
//!
//! Each test copies the scripts and an example fleet into a temporary directory (the scripts
//! work relative to their own location) and points it at the binaries under test with
//! `CERTROLL_BIN_DIR`, or at stand-ins (`cargo`, `apt-get`, `id`) that record how they
//! were called.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// A copy of every script (they source each other), whose `scripts/NAME` is returned, and
/// of `examples/EXAMPLE` under a temporary root.
fn copy(name: &str, example: &str) -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().expect("temporary directory");
    let scripts = root.path().join("scripts");
    std::fs::create_dir_all(&scripts).expect("scripts dir");
    for e in std::fs::read_dir(Path::new(REPO).join("scripts")).expect("list the scripts") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), scripts.join(e.file_name())).expect("copy a script");
    }
    let script = scripts.join(name);
    if example.is_empty() {
        return (root, script);
    }
    let from = Path::new(REPO).join("examples").join(example);
    let to = root.path().join("examples").join(example);
    std::fs::create_dir_all(&to).expect("example dir");
    for e in std::fs::read_dir(&from).expect("list the example") {
        let e = e.expect("entry");
        if e.file_type().expect("type").is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).expect("copy example file");
        }
    }
    (root, script)
}

fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_certroll"))
        .parent()
        .expect("binary directory")
        .to_path_buf()
}

fn run(script: &Path, envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("/bin/bash");
    cmd.arg(script)
        .env_remove("NO_COLOR")
        .env_remove("CERTROLL_DEMO_PORT")
        .stdin(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("run the script")
}

/// Stand-ins for `tools` (name, shell body) in `root/fake-bin`, each also appending its name
/// and arguments to `root/calls`; returns a `PATH` that finds them first.
fn fake_tools(root: &Path, tools: &[(&str, &str)]) -> String {
    let fake = root.join("fake-bin");
    std::fs::create_dir_all(&fake).expect("fake bin dir");
    let log = root.join("calls");
    for (name, body) in tools {
        let path = fake.join(name);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\necho \"{name} $*\" >> '{}'\n{body}\n",
                log.display()
            ),
        )
        .expect("write a stand-in");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    format!(
        "{}:{}",
        fake.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// A `PATH` as on a fresh machine with only Rust: the stand-ins of [`fake_tools`] (in
/// `root/fake-bin`) and the few ordinary tools the scripts use before they build (bash,
/// dirname, tr, rm) — no C compiler, no pkg-config.
fn bare_path(root: &Path) -> String {
    let bare = root.join("bare-bin");
    std::fs::create_dir_all(&bare).expect("bare bin dir");
    for tool in ["bash", "dirname", "tr", "rm"] {
        let found = ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{tool} not found in /usr/bin or /bin"));
        std::os::unix::fs::symlink(found, bare.join(tool)).expect("link a tool");
    }
    format!("{}:{}", root.join("fake-bin").display(), bare.display())
}

/// What the stand-ins of [`fake_tools`] were called with, one call a line.
fn calls(root: &Path) -> String {
    std::fs::read_to_string(root.join("calls")).unwrap_or_default()
}

fn show(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn demo_piped_prints_no_terminal_escapes_and_runs_the_whole_job() {
    let (_root, script) = copy("demo.sh", "local");
    let bins = bin_dir();
    let out = run(
        &script,
        &[("CERTROLL_BIN_DIR", bins.to_str().expect("utf-8 path"))],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let text = show(&out);
    assert!(
        !text.contains('\x1b'),
        "ANSI escapes in piped output: {text}"
    );
    assert!(text.contains("$ certroll apply --rotate --yes"), "{text}");
    assert!(text.contains("— OK"), "the final verify passes: {text}");
}

#[test]
fn demo_says_it_builds_and_lets_cargo_show_its_progress() {
    let (root, script) = copy("demo.sh", "local");
    // A stand-in cargo records its arguments; the "built" binary is the one under test.
    let fake = root.path().join("fake-bin");
    std::fs::create_dir_all(&fake).expect("fake bin dir");
    let target = root.path().join("target");
    std::fs::create_dir_all(target.join("release")).expect("release dir");
    std::fs::copy(
        env!("CARGO_BIN_EXE_certroll"),
        target.join("release/certroll"),
    )
    .expect("copy certroll");
    let log = root.path().join("cargo-args");
    let cargo = fake.join("cargo");
    std::fs::write(
        &cargo,
        format!("#!/bin/sh\necho \"$@\" > '{}'\n", log.display()),
    )
    .expect("write fake cargo");
    std::fs::set_permissions(&cargo, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = format!(
        "{}:{}",
        fake.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = run(
        &script,
        &[
            ("PATH", path.as_str()),
            ("CARGO_TARGET_DIR", target.to_str().expect("utf-8 path")),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Building certroll"),
        "{}",
        show(&out)
    );
    let args = std::fs::read_to_string(&log).expect("cargo was called");
    assert!(args.starts_with("build --release"), "{args}");
    assert!(
        !args.contains("--quiet"),
        "cargo's progress is shown: {args}"
    );
}

#[test]
fn demo_live_names_a_taken_port_and_how_to_choose_another() {
    let (_root, script) = copy("demo-live.sh", "local-live");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let port = taken.local_addr().expect("address").port();
    // The taken port is the first of the six the demo needs: the ports below an ephemeral
    // one may be taken at any moment by other processes' connections, which the demo
    // would then name instead (it did, under a full test run).
    let base = port.to_string();
    let bins = bin_dir();
    let out = run(
        &script,
        &[
            ("CERTROLL_DEMO_PORT", base.as_str()),
            ("CERTROLL_BIN_DIR", bins.to_str().expect("utf-8 path")),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "port {port} on 127.0.0.1 is taken (Address already in use)"
        )),
        "{}",
        show(&out)
    );
    assert!(err.contains("CERTROLL_DEMO_PORT="), "{}", show(&out));
    assert!(
        !err.contains("did not start"),
        "it stops before starting any peer: {}",
        show(&out)
    );
    drop(taken);
}

#[test]
fn test_sh_does_not_stop_at_the_first_failing_test_binary() {
    let (root, script) = copy("test.sh", "");
    // As root (the SSH fleet tests need it), with whatever the machine lacks "installed".
    let path = fake_tools(
        root.path(),
        &[("id", "echo 0"), ("apt-get", "exit 0"), ("cargo", "exit 0")],
    );
    let out = run(&script, &[("PATH", path.as_str())]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let calls = calls(root.path());
    assert!(
        calls
            .lines()
            .any(|l| l == "cargo test --locked --no-fail-fast"),
        "one failing test binary must not hide the others: {calls}"
    );
}

/// The build packages a fresh Debian with only Rust lacks (its C library headers aside).
const BUILD_PACKAGES: &str = "gcc pkg-config libssl-dev zlib1g-dev";

#[test]
fn demo_on_a_fresh_machine_names_the_build_packages_it_needs_when_not_root() {
    let (root, script) = copy("demo.sh", "local");
    fake_tools(root.path(), &[("id", "echo 1000"), ("cargo", "exit 0")]);
    let path = bare_path(root.path());
    let out = run(&script, &[("PATH", path.as_str())]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("a C compiler, pkg-config and the OpenSSL and zlib development files"),
        "{}",
        show(&out)
    );
    assert!(
        err.contains(&format!("sudo apt-get install -y {BUILD_PACKAGES}")),
        "{}",
        show(&out)
    );
    assert!(
        !calls(root.path()).contains("cargo build"),
        "no build starts without its prerequisites: {}",
        calls(root.path())
    );
}

#[test]
fn demo_on_a_fresh_machine_installs_the_build_packages_as_root() {
    let (root, script) = copy("demo.sh", "local");
    fake_tools(
        root.path(),
        &[("id", "echo 0"), ("apt-get", "exit 0"), ("cargo", "exit 0")],
    );
    // The "built" binary is a stand-in too: the node commands of the real one would need
    // more of a machine than this bare PATH offers.
    let target = root.path().join("target");
    std::fs::create_dir_all(target.join("release")).expect("release dir");
    std::fs::copy(
        root.path().join("fake-bin/apt-get"),
        target.join("release/certroll"),
    )
    .expect("a stand-in certroll");
    let path = bare_path(root.path());
    let out = run(
        &script,
        &[
            ("PATH", path.as_str()),
            ("CARGO_TARGET_DIR", target.to_str().expect("utf-8 path")),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let calls = calls(root.path());
    let install = calls
        .lines()
        .position(|l| l == format!("apt-get install -y -qq {BUILD_PACKAGES}"))
        .unwrap_or_else(|| panic!("the build packages are installed: {calls}"));
    let build = calls
        .lines()
        .position(|l| l.starts_with("cargo build"))
        .unwrap_or_else(|| panic!("the demo builds: {calls}"));
    assert!(install < build, "installed before the build: {calls}");
}

#[test]
fn test_sh_on_a_fresh_machine_installs_the_build_packages_with_the_test_ones() {
    let (root, script) = copy("test.sh", "");
    fake_tools(
        root.path(),
        &[("id", "echo 0"), ("apt-get", "exit 0"), ("cargo", "exit 0")],
    );
    let path = bare_path(root.path());
    let out = run(&script, &[("PATH", path.as_str())]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let calls = calls(root.path());
    let install = calls
        .lines()
        .find(|l| l.starts_with("apt-get install"))
        .unwrap_or_else(|| panic!("apt-get install was called: {calls}"));
    // (Packages found by an absolute path, like sshd or visudo, depend on this machine.)
    for package in BUILD_PACKAGES
        .split(' ')
        .chain(["softhsm2", "opensc", "openssl", "python3", "curl"])
    {
        assert!(
            install.split(' ').any(|p| p == package),
            "{package} is installed: {install}"
        );
    }
}
