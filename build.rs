//! Build script: records the commit the binary is built from, so that `certroll
//! --version` says which code runs (`0.1.0 (commit 1a2b3c4d5e6f)`, with `-dirty` when the
//! work tree had changes). Without git, or outside a repository (a crates tarball), the
//! version is printed alone: the build never fails for want of git.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    Some(text.trim().to_string())
}

fn main() {
    let version = env!("CARGO_PKG_VERSION");
    let long = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(commit) if !commit.is_empty() => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            let mark = if dirty { "-dirty" } else { "" };
            format!("{version} (commit {commit}{mark})")
        }
        _ => version.to_string(),
    };
    println!("cargo:rustc-env=CERTROLL_LONG_VERSION={long}");
    // A new commit or a checkout changes HEAD or the branch's ref; staged edits change
    // the index. `--git-path` finds them in a linked work tree too. Only existing files
    // are watched (a missing one would rerun this script on every build).
    let head = git(&["symbolic-ref", "-q", "HEAD"]);
    let watched = ["HEAD", "index", "packed-refs"]
        .into_iter()
        .map(str::to_string)
        .chain(head);
    for name in watched {
        if let Some(path) = git(&["rev-parse", "--git-path", &name]) {
            if std::path::Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
