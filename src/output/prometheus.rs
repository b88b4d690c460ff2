//! `certroll verify --format prometheus`: the report in the Prometheus text exposition
//! format (version 0.0.4), for node_exporter's textfile collector or any scraper.
//!
//! Certificate metrics reuse x509-certificate-exporter's names and labels
//! (`x509_cert_not_after`, `x509_cert_not_before`, `x509_cert_expired` with `filepath`,
//! `filename`, `subject_CN`, `issuer_CN`, `serial_number` in decimal), so its dashboards
//! and alerts work unchanged; certroll adds `node` and `ca`. certroll's own metrics are
//! gauges only: every value describes this run (or, for the last success, a time), so a
//! cron job that runs verify again replaces them and nothing needs to count across runs.
//! Every metric is documented in docs/operations.md#metrics.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use crate::inventory::Inventory;
use crate::pki::CaStore;
use crate::verify::check::{node_results, Check};
use crate::verify::{CaReport, CertSummary, LinkResult, Phase, Report, Severity};

/// The name of the metric carried from one run to the next (see [`render`]).
pub const LAST_SUCCESS: &str = "certroll_verify_last_success_timestamp_seconds";

/// Every rollover phase, for `certroll_rotation_phase_nodes` (one series each, zeros
/// included, so that a sum over phases is the number of nodes).
const PHASES: [Phase; 8] = [
    Phase::Current,
    Phase::Stale,
    Phase::Old,
    Phase::TrustingBoth,
    Phase::Switched,
    Phase::Pruned,
    Phase::Irregular,
    Phase::Unknown,
];

/// One metric family: its samples in the order they were added.
struct Family {
    name: &'static str,
    help: &'static str,
    samples: Vec<(String, i64)>,
    seen: HashSet<String>,
}

/// The families in output order; a family without samples is left out.
struct Families(Vec<Family>);

impl Families {
    fn add(&mut self, name: &'static str, labels: &[(&str, &str)], value: i64) {
        let Some(family) = self.0.iter_mut().find(|f| f.name == name) else {
            return;
        };
        let text = label_set(labels);
        // The same certificate twice in one bundle is one series.
        if family.seen.insert(text.clone()) {
            family.samples.push((text, value));
        }
    }

    fn write(self) -> String {
        let mut out = String::new();
        for f in self.0.into_iter().filter(|f| !f.samples.is_empty()) {
            let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
            let _ = writeln!(out, "# TYPE {} gauge", f.name);
            for (labels, value) in f.samples {
                let _ = writeln!(out, "{}{labels} {value}", f.name);
            }
        }
        out
    }
}

fn families() -> Families {
    let f = |name, help| Family {
        name,
        help,
        samples: Vec::new(),
        seen: HashSet::new(),
    };
    Families(vec![
        f("x509_cert_not_after", "Indicates the certificate's not after timestamp"),
        f("x509_cert_not_before", "Indicates the certificate's not before timestamp"),
        f("x509_cert_expired", "Indicates if the certificate is expired"),
        f("certroll_verify_timestamp_seconds", "When this verify checked the CA (Unix time)."),
        f(LAST_SUCCESS, "When a verify last found the CA without critical or unknown results (Unix time); carried over in the textfile while later runs fail."),
        f("certroll_verify_success", "1 when verify found nothing critical or unknown for the CA, else 0."),
        f("certroll_verify_status", "The CA's worst result: 0 OK, 1 warning, 2 critical, 3 unknown (verify's exit codes)."),
        f("certroll_verify_node_success", "1 when verify found nothing critical or unknown on the node, else 0."),
        f("certroll_verify_node_status", "The node's worst result: 0 OK, 1 warning, 2 critical, 3 unknown."),
        f("certroll_verify_check_status", "The result of one check of a node (or of the CA without a node label): 0 OK, 1 warning, 2 critical, 3 unknown."),
        f("certroll_verify_link_handshake_success", "1 when the link's in-memory TLS handshake succeeded, 0 when it failed; absent when it could not be tried."),
        f("certroll_verify_link_status", "The link's result: 0 OK, 2 critical (handshake or live probe failed), 3 unknown (not tried)."),
        f("certroll_verify_link_live_success", "verify --live: 1 when the client's probe of the server succeeded, else 0."),
        f("certroll_ca_generation", "The CA's generation number in use (role=\"current\") and being rolled out (role=\"next\")."),
        f("certroll_rotation_in_progress", "1 while a rotation of the CA runs (a next generation exists), else 0."),
        f("certroll_rotation_phase_nodes", "How many of the CA's nodes are in each rollover phase."),
        f("certroll_verify_node_phase", "1 for the node's rollover phase (the phase label)."),
    ])
}

/// The report as exposition text. `carried` holds, per CA, the last-success time of an
/// earlier run (from the previous textfile): a failing run keeps it instead of losing it.
pub fn render(report: &Report, inv: &Inventory, carried: &BTreeMap<String, i64>) -> String {
    let mut fam = families();
    let checked = report.checked_at.unix_timestamp();
    let store = CaStore::new(&inv.state_dir);
    for ca in &report.cas {
        certificates(&mut fam, ca, inv, &store, report.checked_at);
        let name = ca.ca.as_str();
        let ok = success(ca.severity());
        fam.add(
            "certroll_verify_timestamp_seconds",
            &[("ca", name)],
            checked,
        );
        let last = if ok {
            Some(checked)
        } else {
            carried.get(name).copied()
        };
        if let Some(t) = last {
            fam.add(LAST_SUCCESS, &[("ca", name)], t);
        }
        fam.add("certroll_verify_success", &[("ca", name)], i64::from(ok));
        fam.add(
            "certroll_verify_status",
            &[("ca", name)],
            code(ca.severity()),
        );
        for c in Check::CA {
            let labels = [("ca", name), ("check", c.as_str())];
            fam.add(
                "certroll_verify_check_status",
                &labels,
                code(c.result(&ca.findings)),
            );
        }
        nodes(&mut fam, ca);
        links(&mut fam, ca);
        rotation(&mut fam, ca);
    }
    fam.write()
}

/// Whether a result counts as a successful verify: nothing critical, nothing unknown.
pub fn success(s: Severity) -> bool {
    s <= Severity::Warning
}

fn code(s: Severity) -> i64 {
    i64::from(s.exit_code())
}

/// The x509 metrics of every leaf and anchor on the nodes and of the CA certificates in
/// the local store.
fn certificates(
    fam: &mut Families,
    ca: &CaReport,
    inv: &Inventory,
    store: &CaStore,
    now: time::OffsetDateTime,
) {
    for n in &ca.nodes {
        let paths = inv.nodes.get(n.node).map(|node| node.paths(&ca.ca));
        let Some(paths) = paths else { continue };
        let certs = n
            .leaf
            .iter()
            .map(|l| (l, &paths.cert))
            .chain(n.anchors.iter().map(|a| (a, &paths.trust_bundle)));
        for (cert, path) in certs {
            x509(fam, cert, path, &[("ca", &ca.ca), ("node", &n.name)], now);
        }
    }
    let Some(spec) = inv.cas.iter().find(|s| s.name == ca.ca) else {
        return;
    };
    for c in &ca.ca_certs {
        let path = store.generation_file(spec, c.number, c.anchor);
        let path = path.to_string_lossy();
        x509(fam, &c.cert, &path, &[("ca", &ca.ca)], now);
    }
}

fn x509(
    fam: &mut Families,
    cert: &CertSummary,
    path: &str,
    extra: &[(&str, &str)],
    now: time::OffsetDateTime,
) {
    let serial = decimal(&cert.serial);
    let filename = path.rsplit('/').next().unwrap_or(path);
    let mut labels = vec![
        ("filename", filename),
        ("filepath", path),
        ("issuer_CN", cert.issuer_cn.as_str()),
        ("serial_number", serial.as_str()),
        ("subject_CN", cert.subject_cn.as_str()),
    ];
    labels.extend_from_slice(extra);
    let expired = i64::from(cert.not_after <= now);
    fam.add(
        "x509_cert_not_after",
        &labels,
        cert.not_after.unix_timestamp(),
    );
    fam.add(
        "x509_cert_not_before",
        &labels,
        cert.not_before.unix_timestamp(),
    );
    fam.add("x509_cert_expired", &labels, expired);
}

fn nodes(fam: &mut Families, ca: &CaReport) {
    for n in &ca.nodes {
        let labels = [("ca", ca.ca.as_str()), ("node", n.name.as_str())];
        let sev = n.severity();
        fam.add(
            "certroll_verify_node_success",
            &labels,
            i64::from(success(sev)),
        );
        fam.add("certroll_verify_node_status", &labels, code(sev));
        for (check, result) in node_results(n) {
            let labels = [labels[0], labels[1], ("check", check.as_str())];
            fam.add("certroll_verify_check_status", &labels, code(result));
        }
        let phase = [labels[0], labels[1], ("phase", n.phase.as_str())];
        fam.add("certroll_verify_node_phase", &phase, 1);
    }
}

fn links(fam: &mut Families, ca: &CaReport) {
    for l in &ca.links {
        let labels = [
            ("ca", ca.ca.as_str()),
            ("client", l.client_name.as_str()),
            ("server", l.server_name.as_str()),
            ("server_name", l.tls_name.as_str()),
        ];
        match l.result {
            LinkResult::Ok => fam.add("certroll_verify_link_handshake_success", &labels, 1),
            LinkResult::Failed { .. } => {
                fam.add("certroll_verify_link_handshake_success", &labels, 0)
            }
            LinkResult::Skipped { .. } => {}
        }
        fam.add("certroll_verify_link_status", &labels, code(l.severity()));
        if let Some(live) = &l.live {
            fam.add(
                "certroll_verify_link_live_success",
                &labels,
                i64::from(live.ok()),
            );
        }
    }
}

fn rotation(fam: &mut Families, ca: &CaReport) {
    let name = ca.ca.as_str();
    for (role, number) in [("current", ca.current), ("next", ca.next)] {
        if let Some(n) = number {
            fam.add(
                "certroll_ca_generation",
                &[("ca", name), ("role", role)],
                i64::from(n),
            );
        }
    }
    fam.add(
        "certroll_rotation_in_progress",
        &[("ca", name)],
        i64::from(ca.rotating()),
    );
    for phase in PHASES {
        let count = ca.nodes.iter().filter(|n| n.phase == phase).count();
        let labels = [("ca", name), ("phase", phase.as_str())];
        fam.add(
            "certroll_rotation_phase_nodes",
            &labels,
            i64::try_from(count).unwrap_or(i64::MAX),
        );
    }
}

/// `{a="x",b="y"}` with values escaped as the exposition format requires: backslash,
/// double quote and line feed.
fn label_set(labels: &[(&str, &str)]) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
    out
}

/// A hexadecimal serial number in decimal, as x509-certificate-exporter labels it
/// ("" for text that is not hexadecimal).
fn decimal(hex_text: &str) -> String {
    let Ok(bytes) = hex::decode(hex_text) else {
        return String::new();
    };
    // Base-10^9 limbs, least significant first.
    let mut limbs: Vec<u32> = vec![0];
    for byte in bytes {
        let mut carry = u64::from(byte);
        for limb in limbs.iter_mut() {
            let v = u64::from(*limb) * 256 + carry;
            *limb = (v % 1_000_000_000) as u32;
            carry = v / 1_000_000_000;
        }
        while carry > 0 {
            limbs.push((carry % 1_000_000_000) as u32);
            carry /= 1_000_000_000;
        }
    }
    let mut out = String::new();
    for (i, limb) in limbs.iter().rev().enumerate() {
        if i == 0 {
            let _ = write!(out, "{limb}");
        } else {
            let _ = write!(out, "{limb:09}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_numbers_are_decimal_like_the_x509_exporter() {
        assert_eq!(decimal("00"), "0");
        assert_eq!(decimal("ff"), "255");
        assert_eq!(decimal("0100"), "256");
        // 2^64 = 18446744073709551616
        assert_eq!(decimal("010000000000000000"), "18446744073709551616");
        assert_eq!(
            decimal("7fffffffffffffffffffffffffffffffffffffff"),
            "730750818665451459101842416358141509827966271487"
        );
        assert_eq!(decimal("zz"), "");
    }

    #[test]
    fn label_values_are_escaped_per_the_exposition_format() {
        assert_eq!(
            label_set(&[("subject_CN", "a\"b\\c\nd"), ("ca", "x")]),
            r#"{subject_CN="a\"b\\c\nd",ca="x"}"#
        );
    }
}
