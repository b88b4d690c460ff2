//! Bounds on what certroll reads from a node and what it may leave behind there.
//!
//! A node is not trusted to be well-formed: its `cert.pem` may be a FIFO that never
//! ends, a link to `/dev/zero`, or a huge file; its commands may print without end.
//! Both transports read only regular files of at most [`MAX_FILE_BYTES`] (refusing
//! anything else with [`ErrorKind::FileRefused`], without opening it when its type
//! alone says no), keep at most [`MAX_OUTPUT_BYTES`] of a command's output, and
//! recognise the temporary files of their own interrupted atomic writes by name, so
//! that the next write of the same file removes them and nothing else. The SSH transport
//! sends no command longer than [`MAX_COMMAND_BYTES`].

use super::{ErrorKind, TransportError};

/// Largest node file certroll reads: a trust bundle of thousands of anchors fits.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;
/// Most output kept of one command, per stream; the rest is read and discarded.
pub const MAX_OUTPUT_BYTES: usize = 1024 * 1024;

/// Largest command sent over SSH, wrappers and quoting included: libssh2 sends a command
/// in one packet and refuses one of more than 35,000 bytes ("Unable to send channel
/// request"), after which the session cannot be trusted.
pub const MAX_COMMAND_BYTES: usize = 35_000;

/// Why a command of `size` bytes is not sent.
pub(crate) fn command_too_long(size: usize) -> String {
    format!(
        "the command is {size} bytes, more than the {MAX_COMMAND_BYTES} one SSH packet carries \
         (under `become = \"sudo\"` it is quoted once more): put a long reload or confirm \
         command into a script on the node and name the script"
    )
}

/// Hex digits of the random part of a temporary file name.
const TEMP_SUFFIX_LEN: usize = 12;

/// The error for a file certroll will not read.
pub(crate) fn refused(node: &str, path: &str, why: impl Into<String>) -> TransportError {
    TransportError::new(
        node,
        format!("read {path}"),
        ErrorKind::FileRefused,
        why.into(),
    )
}

/// Why a file of this kind is refused, e.g. "it is a FIFO, not a regular file".
pub(crate) fn not_regular(kind: &str) -> String {
    format!("it is {kind}, not a regular file; certroll reads only regular files")
}

/// Why a file of `size` bytes is refused.
pub(crate) fn too_large(size: u64) -> String {
    format!("it is larger than certroll reads ({size} bytes, at most {MAX_FILE_BYTES})")
}

/// The name of a temporary file for an atomic write of file `name`: `.<name>.certroll-<hex>`.
pub(crate) fn temp_name(name: &str, suffix: &str) -> String {
    format!(".{name}.certroll-{suffix}")
}

/// True when `candidate` is a temporary file certroll made for writing `name`
/// (`.<name>.certroll-` then exactly twelve lower-case hex digits).
pub(crate) fn is_temp_of(candidate: &str, name: &str) -> bool {
    let Some(rest) = candidate
        .strip_prefix('.')
        .and_then(|c| c.strip_prefix(name))
        .and_then(|c| c.strip_prefix(".certroll-"))
    else {
        return false;
    };
    rest.len() == TEMP_SUFFIX_LEN
        && rest
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A shell glob matching exactly the names [`is_temp_of`] accepts, for `dir/`; every
/// part but the hex-digit classes is quoted.
pub(crate) fn temp_glob(dir: &str, name: &str) -> String {
    let prefix = format!("{}/{}", dir.trim_end_matches('/'), temp_name(name, ""));
    let digit = "[0-9a-f]".repeat(TEMP_SUFFIX_LEN);
    format!("{}{digit}", crate::shell::shell_quote(&prefix))
}

/// Appends what fits under [`MAX_OUTPUT_BYTES`] of `chunk` to `buf`.
pub(crate) fn keep_output(buf: &mut Vec<u8>, chunk: &[u8]) {
    let room = MAX_OUTPUT_BYTES.saturating_sub(buf.len());
    buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
}

/// A random hex suffix for temporary files.
pub(crate) fn random_suffix() -> String {
    hex::encode(rand::random::<[u8; 6]>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_recognised_exactly() {
        let made = temp_name("ca.pem", &super::random_suffix());
        assert!(is_temp_of(&made, "ca.pem"), "{made}");
        for other in [
            "ca.pem",
            ".ca.pem.certroll-",
            ".ca.pem.certroll-0123456789ab.bak",
            ".ca.pem.certroll-0123456789AB",
            ".ca.pem.certroll-0123456789a",
            ".ca.pem.certroll-0123456789xz",
            ".cert.pem.certroll-0123456789ab",
            "ca.pem.certroll-0123456789ab",
        ] {
            assert!(!is_temp_of(other, "ca.pem"), "{other}");
        }
    }

    #[test]
    fn temp_glob_matches_only_temp_names_in_the_shell() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("it's $dir");
        std::fs::create_dir(&d).unwrap();
        for n in [
            ".c a.pem.certroll-0123456789ab",
            ".c a.pem.certroll-0123456789a",
            ".c a.pem.certroll-0123456789abc",
            "c a.pem",
        ] {
            std::fs::write(d.join(n), b"x").unwrap();
        }
        let script = format!(
            "for f in {}; do [ -e \"$f\" ] && printf '%s\\n' \"${{f##*/}}\"; done; true",
            temp_glob(d.to_str().unwrap(), "c a.pem")
        );
        let out = std::process::Command::new("sh")
            .args(["-c", &script])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            ".c a.pem.certroll-0123456789ab\n"
        );
    }

    #[test]
    fn output_is_capped() {
        let mut buf = vec![0u8; MAX_OUTPUT_BYTES - 2];
        keep_output(&mut buf, b"abcd");
        assert_eq!(buf.len(), MAX_OUTPUT_BYTES);
        assert_eq!(&buf[buf.len() - 2..], b"ab");
        keep_output(&mut buf, b"more");
        assert_eq!(buf.len(), MAX_OUTPUT_BYTES);
    }
}
