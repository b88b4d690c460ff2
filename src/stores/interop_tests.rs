//! Every store certroll writes, in each profile, read by the tools its readers are built
//! on: `keytool -list` of the installed JDK and `openssl pkcs12 -info` of OpenSSL 3
//! without `-legacy`. The tools must be installed (scripts/test.sh installs them): a test
//! that cannot run them fails rather than skipping.

use std::process::Command;

use super::fixtures::{leaf_and_anchors, pw};
use super::jks::Jks;
use super::{keystore_form, truststore_form, Pkcs12Profile, StoreForm, TruststoreFormat};

fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> String {
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).expect("write the store");
    p.to_string_lossy().into_owned()
}

/// Runs a tool with the password in a file or on standard input, never on its command line.
fn run(cmd: &mut Command, stdin: &str) -> String {
    use std::io::Write;
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?} (install the JDK and openssl): {e}"));
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.as_bytes())
        .expect("password to stdin");
    drop(input);
    let out = child.wait_with_output().expect("wait");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{cmd:?} failed: {text}");
    text
}

fn keytool_list(path: &str, password: &str) -> String {
    run(
        Command::new("keytool").args(["-list", "-keystore", path]),
        &format!("{password}\n"),
    )
}

/// `openssl pkcs12 -info` with `extra` (`-noout`, or `-nokeys` to see the bag attributes).
fn openssl_info(dir: &tempfile::TempDir, path: &str, password: &str, extra: &str) -> String {
    let pass = write(dir, "pass.txt", password.as_bytes());
    run(
        Command::new("openssl").args([
            "pkcs12",
            "-info",
            extra,
            "-in",
            path,
            "-passin",
            &format!("file:{pass}"),
        ]),
        "",
    )
}

#[test]
fn keytool_and_openssl_3_read_every_pkcs12_store_in_each_profile() {
    let (leaf, trust) = leaf_and_anchors();
    let dir = tempfile::tempdir().expect("tempdir");
    for profile in [Pkcs12Profile::Modern, Pkcs12Profile::Legacy] {
        let ks = keystore_form(profile)
            .render(&leaf, &pw("k3y-pass"))
            .unwrap();
        let path = write(&dir, "keystore.p12", &ks);
        let listed = keytool_list(&path, "k3y-pass");
        assert!(listed.contains("PrivateKeyEntry"), "{profile:?}: {listed}");
        openssl_info(&dir, &path, "k3y-pass", "-noout");

        let ts = truststore_form(TruststoreFormat::Pkcs12, profile)
            .render(&trust, &pw("changeit"))
            .unwrap();
        let path = write(&dir, "truststore.p12", &ts);
        let listed = keytool_list(&path, "changeit");
        assert_eq!(
            listed.matches("trustedCertEntry").count(),
            trust.anchors.len(),
            "{profile:?}: Java loads every anchor: {listed}"
        );
        openssl_info(&dir, &path, "changeit", "-noout");
        let info = openssl_info(&dir, &path, "changeit", "-nokeys");
        assert!(
            info.contains("2.16.840.1.113894.746875.1.1") || info.contains("Trusted key usage"),
            "{profile:?}: the Java attribute is there: {info}"
        );
    }
}

#[test]
fn keytool_reads_every_anchor_of_a_jks_truststore() {
    let (_, trust) = leaf_and_anchors();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        &dir,
        "truststore.jks",
        &Jks.render(&trust, &pw("changeit")).unwrap(),
    );
    let listed = keytool_list(&path, "changeit");
    assert!(listed.contains("jks") || listed.contains("JKS"), "{listed}");
    assert_eq!(
        listed.matches("trustedCertEntry").count(),
        trust.anchors.len()
    );
}

#[test]
fn a_store_keytool_wrote_reads_back_in_certroll() {
    // The reader side: keytool's own JKS and PKCS#12 truststores parse with their anchors.
    let (_, trust) = leaf_and_anchors();
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = write(
        &dir,
        "a.pem",
        pem::encode(&pem::Pem::new("CERTIFICATE", trust.anchors[0].der.clone())).as_bytes(),
    );
    for (kind, form) in [
        (
            "JKS",
            truststore_form(TruststoreFormat::Jks, Pkcs12Profile::Modern),
        ),
        (
            "PKCS12",
            truststore_form(TruststoreFormat::Pkcs12, Pkcs12Profile::Modern),
        ),
    ] {
        let path = dir.path().join(format!("made-by-keytool.{kind}"));
        let path = path.to_string_lossy().into_owned();
        run(
            Command::new("keytool").args([
                "-importcert",
                "-noprompt",
                "-alias",
                "a",
                "-file",
                &cert,
                "-keystore",
                &path,
                "-storetype",
                kind,
            ]),
            "changeit\nchangeit\n",
        );
        let bytes = std::fs::read(&path).expect("keytool wrote it");
        let back = form.read(&bytes, &pw("changeit")).unwrap();
        assert_eq!(back.anchors.len(), 1, "{kind}");
        assert_eq!(back.anchors[0].der, trust.anchors[0].der, "{kind}");
        assert!(back.anchors[0].java_trusted, "{kind}");
    }
}
