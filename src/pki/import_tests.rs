//! Tests of `ca import`: every refusal leaves the store untouched; accepted imports
//! store the key 0600 (or none), the anchor, and the right pointers.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use time::OffsetDateTime;

use super::*;

fn spec() -> CaSpec {
    CaSpec::new("internal", "CN=Test CA")
}

/// A certificate and its key, PEM.
struct Made {
    cert: String,
    key: KeyPair,
}

fn params(cn: &str, ca: bool, days: (i64, i64)) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(rcgen::DnType::CommonName, cn);
    p.is_ca = if ca {
        IsCa::Ca(BasicConstraints::Unconstrained)
    } else {
        IsCa::ExplicitNoCa
    };
    let now = OffsetDateTime::now_utc();
    p.not_before = now + time::Duration::days(days.0);
    p.not_after = now + time::Duration::days(days.1);
    p
}

fn root(cn: &str) -> Made {
    let key = KeyPair::generate().unwrap();
    let cert = params(cn, true, (-1, 365)).self_signed(&key).unwrap().pem();
    Made { cert, key }
}

fn signed_by(cn: &str, ca: bool, by: &Made) -> Made {
    let key = KeyPair::generate().unwrap();
    let issuer = Issuer::from_ca_cert_pem(&by.cert, &by.key).unwrap();
    let cert = params(cn, ca, (-1, 300))
        .signed_by(&key, &issuer)
        .unwrap()
        .pem();
    Made { cert, key }
}

fn src(name: &str, text: &str) -> ImportSource {
    ImportSource {
        path: PathBuf::from(name),
        bytes: text.as_bytes().to_vec(),
    }
}

fn files(cert: &Made, key: Option<&Made>, anchor: Option<&Made>) -> ImportFiles {
    ImportFiles {
        cert: src("ca.pem", &cert.cert),
        key: key.map(|k| src("ca.key", &k.key.serialize_pem())),
        token_label: None,
        anchor: anchor.map(|a| src("root.pem", &a.cert)),
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Imports into a fresh store and expects `kind`, with the store directory untouched.
fn refused(f: &ImportFiles, next: bool, kind: Refusal) -> String {
    let state = tempfile::tempdir().unwrap();
    let store = CaStore::new(state.path());
    let err = store.import(&spec(), f, next, now()).unwrap_err();
    assert_eq!(err.refusal(), Some(kind), "{err}");
    assert!(!state.path().join("ca").exists(), "a refusal wrote files");
    let text = err.to_string();
    assert!(text.contains("nothing was written"), "{text}");
    text
}

#[test]
fn refuses_a_certificate_that_is_not_a_ca() {
    let r = root("Corp Root");
    let leaf = signed_by("web1", false, &r);
    let msg = refused(&files(&leaf, Some(&leaf), None), false, Refusal::NotCa);
    assert!(msg.contains("ca.pem") && msg.contains("not a CA"), "{msg}");
}

#[test]
fn refuses_a_key_that_does_not_match() {
    let (a, b) = (root("Corp Root"), root("Other Root"));
    let msg = refused(&files(&a, Some(&b), None), false, Refusal::KeyMismatch);
    assert!(
        msg.contains("ca.key") && msg.contains("does not belong"),
        "{msg}"
    );
    assert!(!msg.contains("PRIVATE KEY"), "{msg}");
}

#[test]
fn refuses_a_key_that_is_not_pkcs8() {
    let a = root("Corp Root");
    let mut f = files(&a, None, None);
    f.key = Some(src(
        "ca.key",
        "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n",
    ));
    let msg = refused(&f, false, Refusal::BadKey);
    assert!(msg.contains("pkcs8"), "{msg}");
}

#[test]
fn refuses_an_expired_ca() {
    let key = KeyPair::generate().unwrap();
    let cert = params("Old Root", true, (-400, -1))
        .self_signed(&key)
        .unwrap()
        .pem();
    let old = Made { cert, key };
    let msg = refused(&files(&old, Some(&old), None), false, Refusal::Expired);
    assert!(msg.contains("expired"), "{msg}");
}

#[test]
fn refuses_an_anchor_that_does_not_certify_the_intermediate() {
    let (r, other) = (root("Corp Root"), root("Other Root"));
    let inter = signed_by("Issuing CA 1", true, &r);
    let msg = refused(
        &files(&inter, Some(&inter), Some(&other)),
        false,
        Refusal::AnchorDoesNotCertify,
    );
    assert!(
        msg.contains("root.pem") && msg.contains("did not sign"),
        "{msg}"
    );
}

#[test]
fn refuses_an_intermediate_without_its_anchor() {
    let r = root("Corp Root");
    let inter = signed_by("Issuing CA 1", true, &r);
    let msg = refused(&files(&inter, None, None), false, Refusal::NeedsAnchor);
    assert!(msg.contains("--anchor"), "{msg}");
}

#[test]
fn refuses_a_next_generation_without_key_or_current() {
    let r = root("Corp Root");
    refused(&files(&r, None, None), true, Refusal::NextNeedsKey);
    refused(&files(&r, Some(&r), None), true, Refusal::NoCurrent);
}

#[test]
fn refuses_to_import_over_a_generation_a_rotation_uses() {
    let state = tempfile::tempdir().unwrap();
    let store = CaStore::new(state.path());
    let spec = spec();
    let r = root("Corp Root");
    store
        .import(&spec, &files(&r, Some(&r), None), false, now())
        .unwrap();
    store.begin_rotation(&spec, now()).unwrap();
    let before = fs::read_to_string(state.path().join("ca/internal/current")).unwrap();
    let n = root("Next Root");
    for next in [false, true] {
        let err = store
            .import(&spec, &files(&n, Some(&n), None), next, now())
            .unwrap_err();
        assert_eq!(err.refusal(), Some(Refusal::InUse), "{err}");
        assert!(err.to_string().contains("in progress"), "{err}");
    }
    let after = fs::read_to_string(state.path().join("ca/internal/current")).unwrap();
    assert_eq!(before, after);
    assert!(!state.path().join("ca/internal/g3").exists());
}

#[test]
fn refuses_to_replace_a_generation_certroll_created() {
    let state = tempfile::tempdir().unwrap();
    let store = CaStore::new(state.path());
    store.init(&spec(), now()).unwrap();
    let r = root("Corp Root");
    let err = store
        .import(&spec(), &files(&r, Some(&r), None), false, now())
        .unwrap_err();
    assert_eq!(err.refusal(), Some(Refusal::Exists), "{err}");
    assert!(err.to_string().contains("--next"), "{err}");
}

#[test]
fn public_only_import_stores_no_key_and_cannot_issue() {
    let state = tempfile::tempdir().unwrap();
    let store = CaStore::new(state.path());
    let r = root("Corp Root");
    let got = store
        .import(&spec(), &files(&r, None, None), false, now())
        .unwrap();
    assert!(got.public_only && got.generation == 1 && !got.next);
    let ca = store.current(&spec()).unwrap().unwrap();
    assert!(ca.key.is_none() && ca.imported && !ca.can_issue());
    assert!(!state.path().join("ca/internal/g1/ca.key").exists());
    let err = crate::pki::issue_leaf(&spec(), &ca, "web1", &[], now()).unwrap_err();
    assert!(err.to_string().contains("public-only"), "{err}");
    // Rotating away from it works, without a cross certificate (no key to sign one).
    let (next, cross) = store.begin_rotation(&spec(), now()).unwrap();
    assert_eq!(next.generation, 2);
    assert!(cross.is_none());
}

#[test]
fn keyed_intermediate_import_stores_key_0600_and_anchor() {
    let state = tempfile::tempdir().unwrap();
    let store = CaStore::new(state.path());
    let r = root("Corp Root");
    let i1 = signed_by("Issuing CA 1", true, &r);
    let got = store
        .import(&spec(), &files(&i1, Some(&i1), Some(&r)), false, now())
        .unwrap();
    assert_eq!(got.anchor_subject.as_deref(), Some("CN=Corp Root"));
    let key = state.path().join("ca/internal/g1/ca.key");
    assert_eq!(
        fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let ca = store.current(&spec()).unwrap().unwrap();
    assert!(ca.can_issue());
    assert_eq!(
        ca.anchor_der(),
        pem::parse(&r.cert).unwrap().into_contents()
    );
    assert_eq!(ca.chain_extra(), Some(ca.cert_pem.as_str()));

    // The next intermediate under the same root, staged, then begun.
    let i2 = signed_by("Issuing CA 2", true, &r);
    let staged = store
        .import(&spec(), &files(&i2, Some(&i2), Some(&r)), true, now())
        .unwrap();
    assert_eq!((staged.generation, staged.next), (2, true));
    assert!(store.next_is_staged(&spec()).unwrap());
    let next = store.next(&spec()).unwrap().unwrap();
    assert!(next.same_anchor(&ca));
    let (begun, cross) = store.begin_rotation(&spec(), now()).unwrap();
    assert_eq!(begun.cert_der, next.cert_der);
    assert!(cross.is_none());
    assert!(!store.next_is_staged(&spec()).unwrap());
}

#[test]
fn reimporting_a_public_only_generation_archives_the_first() {
    let state = tempfile::tempdir().unwrap();
    let store = CaStore::new(state.path());
    let r = root("Corp Root");
    store
        .import(&spec(), &files(&r, None, None), false, now())
        .unwrap();
    let again = store
        .import(&spec(), &files(&r, Some(&r), None), false, now())
        .unwrap();
    assert_eq!(again.generation, 2);
    assert!(!again.public_only);
    assert_eq!(store.archived(&spec()).unwrap().len(), 1);
}
