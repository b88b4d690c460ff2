//! `verify --textfile-dir DIR`: DIR/certroll.prom for node_exporter's textfile
//! collector, written the way the collector requires: a temporary file in DIR, written,
//! synced, then renamed over the old file, so that a scrape sees the old metrics or the
//! new ones, never half a file.
//!
//! The temporary file is created before anything is verified ([`Textfile::open`]): a
//! missing or unwritable directory is refused at once, before any node is contacted,
//! and a run that fails or is interrupted leaves the old file as it was (the temporary
//! one is removed when the [`Textfile`] is dropped uncommitted).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::prometheus::LAST_SUCCESS;

/// The file the collector reads.
pub const FILE_NAME: &str = "certroll.prom";

/// Why the textfile could not be written.
#[derive(Debug, thiserror::Error)]
pub enum TextfileError {
    #[error("the textfile directory {0} does not exist: create it (the textfile collector's --collector.textfile.directory) or pass another --textfile-dir")]
    Missing(PathBuf),
    #[error("the textfile directory {0} is not a directory")]
    NotADirectory(PathBuf),
    #[error("failed to {action} {path} (writing the metrics for the textfile collector)")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A textfile being written: the temporary file exists, the final one is untouched.
#[derive(Debug)]
pub struct Textfile {
    dir: PathBuf,
    tmp: PathBuf,
    file: Option<File>,
}

impl Textfile {
    /// Checks `dir` and creates the temporary file in it (mode 0644: the collector may
    /// run as another user; the metrics hold no secret).
    pub fn open(dir: &Path) -> Result<Textfile, TextfileError> {
        match fs::metadata(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(TextfileError::Missing(dir.to_path_buf()))
            }
            Err(source) => {
                return Err(TextfileError::Io {
                    action: "look at the textfile directory",
                    path: dir.to_path_buf(),
                    source,
                })
            }
            Ok(m) if !m.is_dir() => return Err(TextfileError::NotADirectory(dir.to_path_buf())),
            Ok(_) => {}
        }
        let nonce: u64 = rand::random();
        // A name the collector ignores (it reads only `*.prom`).
        let tmp = dir.join(format!(
            ".{FILE_NAME}.{}.{nonce:016x}.tmp",
            std::process::id()
        ));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)
            .map_err(|source| TextfileError::Io {
                action: "create a temporary file in the textfile directory:",
                path: tmp.clone(),
                source,
            })?;
        Ok(Textfile {
            dir: dir.to_path_buf(),
            tmp,
            file: Some(file),
        })
    }

    /// The final file, DIR/certroll.prom.
    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// The last-success times of the current file, per CA (empty when there is none or
    /// it cannot be read: a first run has nothing to carry).
    pub fn previous_last_success(&self) -> BTreeMap<String, i64> {
        fs::read_to_string(self.path())
            .map(|text| last_success(&text))
            .unwrap_or_default()
    }

    /// Writes `text`, syncs it, renames it over the final file and syncs the directory.
    pub fn commit(mut self, text: &str) -> Result<PathBuf, TextfileError> {
        let io = |action, path: &Path| {
            let path = path.to_path_buf();
            move |source| TextfileError::Io {
                action,
                path,
                source,
            }
        };
        let Some(mut file) = self.file.take() else {
            return Err(io("write", &self.tmp)(std::io::ErrorKind::NotFound.into()));
        };
        file.write_all(text.as_bytes())
            .map_err(io("write", &self.tmp))?;
        file.sync_all().map_err(io("sync", &self.tmp))?;
        drop(file);
        let path = self.path();
        fs::rename(&self.tmp, &path).map_err(io("rename the temporary file to", &path))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io("sync the directory", &self.dir))?;
        Ok(path)
    }
}

impl Drop for Textfile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            // Uncommitted: nothing of this run reaches the collector. Best effort; the
            // collector ignores the name anyway.
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// `certroll_verify_last_success_timestamp_seconds{ca="NAME"} VALUE` lines of `text`.
/// CA names are plain (`[A-Za-z0-9._-]+`), so the label needs no unescaping.
fn last_success(text: &str) -> BTreeMap<String, i64> {
    let prefix = format!("{LAST_SUCCESS}{{ca=\"");
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(&prefix)?;
            let (ca, rest) = rest.split_once("\"}")?;
            let value = rest.trim().parse::<f64>().ok()?;
            // Unix seconds fit an i64 exactly as long as the float is integral.
            Some((ca.to_string(), value as i64))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn commit_replaces_the_file_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE_NAME), "old\n").unwrap();
        let t = Textfile::open(dir.path()).unwrap();
        // Until the commit, the collector still reads the old file.
        assert_eq!(
            fs::read_to_string(dir.path().join(FILE_NAME)).unwrap(),
            "old\n"
        );
        let path = t.commit("new\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new\n");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn an_uncommitted_textfile_leaves_the_old_file_and_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE_NAME), "old\n").unwrap();
        drop(Textfile::open(dir.path()).unwrap());
        assert_eq!(
            fs::read_to_string(dir.path().join(FILE_NAME)).unwrap(),
            "old\n"
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_missing_directory_or_a_file_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = Textfile::open(&missing).unwrap_err().to_string();
        assert!(
            err.contains("does not exist") && err.contains("nope"),
            "{err}"
        );
        fs::write(&missing, "").unwrap();
        let err = Textfile::open(&missing).unwrap_err().to_string();
        assert!(err.contains("is not a directory"), "{err}");
    }

    #[test]
    fn the_last_success_of_each_ca_is_read_back() {
        let text = format!(
            "# HELP {LAST_SUCCESS} x\n{LAST_SUCCESS}{{ca=\"internal\"}} 1700000000\n\
             {LAST_SUCCESS}{{ca=\"edge\"}} 1.7e+09\nother{{ca=\"x\"}} 3\n"
        );
        let got = last_success(&text);
        assert_eq!(got.get("internal"), Some(&1_700_000_000));
        assert_eq!(got.get("edge"), Some(&1_700_000_000));
        assert_eq!(got.len(), 2);
    }
}
