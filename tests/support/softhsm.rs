//! A SoftHSM2 token for the `key_store = "pkcs11"` tests, made with `softhsm2-util` in a
//! directory of the test's. Only std: the library's own token test (src/pki/token_tests.rs)
//! loads this file with `#[path]` as well, so that there is one way to make a token.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The SoftHSM2 module the `pkcs11` tests load.
pub const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// Makes a SoftHSM2 token labelled `label` with user PIN `pin` (SO PIN 1234) under
/// `dir/tokens`; returns the `SOFTHSM2_CONF` file the runs must be given.
pub fn softhsm_token(dir: &Path, label: &str, pin: &str) -> PathBuf {
    assert!(
        Path::new(SOFTHSM_MODULE).is_file(),
        "{SOFTHSM_MODULE} is missing: install softhsm2 (scripts/test.sh does)"
    );
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens).expect("token directory");
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .expect("softhsm2.conf");
    let out = Command::new("softhsm2-util")
        .args(["--init-token", "--free", "--label", label])
        .args(["--so-pin", "1234", "--pin", pin])
        .env("SOFTHSM2_CONF", &conf)
        .output()
        .expect("softhsm2-util must be installed (scripts/test.sh installs softhsm2)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    conf
}
