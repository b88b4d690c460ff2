//! Reading a node's store password from its `store_password_file`, on the node.
//!
//! The password is the one the application's own configuration reads, so it lives on the
//! node; certroll needs it to write the keystore and truststore and to open them in
//! `verify`. The file script reads it (`password`) the way it reads any file another user
//! could have planted: through directories only root or the writing user control, else
//! with the rights of the user who controls them; a file every user may read, an empty
//! one, a directory or a missing one is refused with its path. The text comes back on the
//! command's output, never in a command line, and is kept in a [`Password`], which no
//! message, journal entry or `Debug` output shows.

use super::{command, failure, script_io, LayoutError, WRITE_TIMEOUT};
use crate::inventory::Node;
use crate::stores::Password;
use crate::transport::Transport;

/// The exit status of the script for a bad password file.
pub const BAD_PASSWORD_FILE: i32 = 18;

/// The password in the file `path` on `node` (see the module's text).
pub fn store_password(t: &dyn Transport, node: &Node, path: &str) -> Result<Password, LayoutError> {
    let args = vec!["password".to_string(), path.to_string()];
    let out = t.exec_input(&command(&args), &[], WRITE_TIMEOUT)?;
    let action = format!("read the store password file {path}");
    if !out.success() {
        return Err(failure(node, action, &out));
    }
    match out
        .stdout
        .split_once(&format!("{}\n", script_io::PASSWORD_FOLLOWS))
    {
        Some((_, text)) if !text.is_empty() => Ok(Password::new(text)),
        _ => Err(LayoutError::Node {
            node: node.name.clone(),
            action,
            message: "the file script printed no password".into(),
            ownership: false,
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::transport::local::LocalTransport;

    fn read(dir: &std::path::Path, body: Option<&[u8]>, mode: u32) -> Result<String, String> {
        let p = dir.join("pass");
        let _ = std::fs::remove_file(&p);
        if let Some(b) = body {
            std::fs::write(&p, b).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let node = super::super::tests::node(dir);
        let t = LocalTransport::new("n1", dir);
        store_password(&t, &node, p.to_str().unwrap())
            .map(|p| p.expose().to_string())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_password_is_read_without_its_final_newline() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            read(dir.path(), Some(b"s3cret pass\n"), 0o600).unwrap(),
            "s3cret pass"
        );
        assert_eq!(
            read(dir.path(), Some(b"no-newline"), 0o640).unwrap(),
            "no-newline"
        );
    }

    #[test]
    fn a_missing_world_readable_empty_or_directory_password_file_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pass").display().to_string();
        for (body, mode, want) in [
            (None, 0o600, "does not exist"),
            (Some(&b"pw\n"[..]), 0o644, "readable by every user"),
            (Some(&b"\n"[..]), 0o600, "is empty"),
            (Some(&b""[..]), 0o600, "is empty"),
        ] {
            let e = read(dir.path(), body, mode).unwrap_err();
            assert!(e.contains(&path) && e.contains(want), "{want}: {e}");
            assert!(!e.contains("pw"), "never the password: {e}");
        }
        let _ = std::fs::remove_file(dir.path().join("pass"));
        std::fs::create_dir(dir.path().join("pass")).unwrap();
        let node = super::super::tests::node(dir.path());
        let e = store_password(&LocalTransport::new("n1", dir.path()), &node, &path).unwrap_err();
        assert!(e.to_string().contains("is a directory"), "{e}");
    }
}
