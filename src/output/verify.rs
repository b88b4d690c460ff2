//! `certroll verify` output: tables for people (per node, per link, one summary line)
//! and versioned JSON for monitoring.
//!
//! The JSON format is documented in `docs/verify.md`; bump [`JSON_VERSION`] on any
//! incompatible change.

use std::fmt::Write as _;

use serde_json::{json, Value};
use time::OffsetDateTime;

use super::escape;
use super::style::{pad, Style};
use crate::verify::check::Check;
use crate::verify::finding::mode_text;
use crate::verify::report::rfc3339;
use crate::verify::{
    CaReport, CertSummary, Finding, LinkReport, LinkResult, NodeReport, Report, Severity, StoreCert,
};

/// Version of the JSON verify format.
pub const JSON_VERSION: u32 = 1;

/// Text for people: per CA a node table and a link table, then the summary line.
pub fn text(report: &Report, style: Style) -> String {
    let mut out = String::new();
    for ca in &report.cas {
        ca_text(&mut out, ca, report.checked_at, style);
    }
    let line = report.summary();
    let _ = writeln!(out, "{}", paint(style, report.severity(), &line));
    for ca in report.cas.iter().filter(|c| never_created(c)) {
        let _ = writeln!(
            out,
            "  hint: CA {} was never created, so no node holds its files yet: run `certroll apply` to bootstrap the fleet",
            ca.ca
        );
    }
    out
}

/// The local store holds no generation of this CA: the fleet was never bootstrapped.
fn never_created(ca: &CaReport) -> bool {
    ca.findings.iter().any(|f| {
        matches!(f, Finding::StoreUnavailable { message } if message.starts_with(crate::verify::NEVER_CREATED))
    })
}

fn paint(style: Style, sev: Severity, text: &str) -> String {
    match sev {
        Severity::Ok => style.green(text),
        Severity::Warning => style.yellow(text),
        Severity::Unknown => style.magenta(text),
        Severity::Critical => style.red(&style.bold(text)),
    }
}

fn gen_name(number: Option<u32>, label: &str) -> String {
    number.map_or_else(|| label.to_string(), |n| format!("G{n}"))
}

fn ca_text(out: &mut String, ca: &CaReport, now: OffsetDateTime, style: Style) {
    let gens = match (ca.current, ca.next) {
        (Some(c), Some(n)) => format!("G{c} → G{n}, rotation in progress"),
        (Some(c), None) => format!("G{c}"),
        _ => "generations unknown".to_string(),
    };
    let _ = writeln!(out, "{}", style.bold(&format!("CA {} ({gens})", ca.ca)));
    for f in &ca.findings {
        let message = f.message(&ca.ca);
        let _ = writeln!(
            out,
            "  {} {}",
            mark(style, f.severity()),
            escape::line(&message)
        );
    }
    let rows: Vec<[String; 6]> = ca.nodes.iter().map(|n| node_row(n, now)).collect();
    let header = ["NODE", "PHASE", "ANCHORS", "LEAF", "EXPIRES", "STATUS"].map(String::from);
    let widths = column_widths(&header, &rows);
    let _ = writeln!(out, "  {}", style.dim(&join(&header, &widths)));
    for (n, row) in ca.nodes.iter().zip(&rows) {
        let sev = n.severity();
        let status = paint(style, sev, &row[5]);
        let mut cells = row.clone();
        cells[5] = String::new();
        let _ = writeln!(out, "  {}{status}", join(&cells, &widths));
        findings_text(out, n, style);
    }
    links_text(out, ca, style);
    let safety = match (ca.safe(), ca.rotating()) {
        (Some(true), true) => {
            style.green("SAFE: every link handshakes at this point of the rotation")
        }
        (Some(true), false) => style.green("every link handshakes"),
        (Some(false), _) => style.red(&style.bold("NOT SAFE: at least one link would fail")),
        (None, _) => style.magenta("safety unknown: some links could not be checked"),
    };
    let _ = writeln!(out, "  {safety}\n");
}

fn node_row(n: &NodeReport, now: OffsetDateTime) -> [String; 6] {
    let foreign = n
        .findings
        .iter()
        .any(|f| matches!(f, crate::verify::Finding::ForeignAnchor { .. }));
    let anchors = anchors_cell(&n.anchors, foreign);
    let (leaf, expires) = match &n.leaf {
        Some(l) => (
            gen_name(l.generation_number, l.generation.as_str()),
            expiry(l, now),
        ),
        None => ("-".into(), "-".into()),
    };
    [
        escape::line(&n.name).into_owned(),
        n.phase.as_str().to_string(),
        anchors,
        leaf,
        expires,
        n.severity().as_str().to_string(),
    ]
}

/// Findings of one kind shown per node; the rest are counted (a bundle of 10,000 stray
/// anchors gives one line per kind, not 10,000).
const SHOWN_PER_KIND: usize = 3;

fn findings_text(out: &mut String, n: &NodeReport, style: Style) {
    let mut shown: Vec<(&'static str, usize)> = Vec::new();
    for f in &n.findings {
        let noun = f.noun().0;
        let seen = match shown.iter_mut().find(|(k, _)| *k == noun) {
            Some((_, c)) => {
                *c += 1;
                *c
            }
            None => {
                shown.push((noun, 1));
                1
            }
        };
        if seen <= SHOWN_PER_KIND {
            // Subjects, SANs, file names and errors come from the node: shown, never obeyed.
            let message = f.message(&n.name);
            let _ = writeln!(
                out,
                "      {} {}",
                mark(style, f.severity()),
                escape::line(&message)
            );
        }
    }
    for f in &n.findings {
        let noun = f.noun();
        let Some(i) = shown.iter().position(|(k, _)| *k == noun.0) else {
            continue;
        };
        let (_, total) = shown.remove(i);
        if total > SHOWN_PER_KIND {
            let more = total - SHOWN_PER_KIND;
            let what = if more == 1 { noun.0 } else { noun.1 };
            let _ = writeln!(
                out,
                "      {} … and {more} more {what} on node {} (all of them in --format json)",
                mark(style, f.severity()),
                n.name
            );
        }
    }
}

/// The bundle's anchors by generation: `G1,G2`; a long bundle is summarised by counts,
/// e.g. `10000 anchors: G1, unknown ×9999`.
/// The anchors column: generation names, `foreign` for an anchor of no generation kept on
/// purpose (`bundle_foreign = "keep"`), long bundles summarised by kind.
fn anchors_cell(anchors: &[CertSummary], foreign: bool) -> String {
    const LISTED: usize = 4;
    let names: Vec<String> = anchors
        .iter()
        .map(|a| match a.generation_number {
            None if foreign => "foreign".to_string(),
            number => gen_name(number, a.generation.as_str()),
        })
        .collect();
    if names.is_empty() {
        return "-".into();
    }
    if names.len() <= LISTED {
        return names.join(",");
    }
    let mut groups: Vec<(&str, usize)> = Vec::new();
    for name in &names {
        match groups.iter_mut().find(|(g, _)| g == name) {
            Some((_, c)) => *c += 1,
            None => groups.push((name, 1)),
        }
    }
    let shown: Vec<String> = groups
        .iter()
        .take(LISTED)
        .map(|(g, c)| {
            if *c == 1 {
                g.to_string()
            } else {
                format!("{g} ×{c}")
            }
        })
        .collect();
    let rest = groups.len().saturating_sub(LISTED);
    let tail = if rest > 0 {
        format!(", {rest} more kinds")
    } else {
        String::new()
    };
    format!("{} anchors: {}{tail}", names.len(), shown.join(", "))
}

fn expiry(l: &CertSummary, now: OffsetDateTime) -> String {
    let date = l.not_after.date();
    let days = (l.not_after - now).whole_days();
    format!("{date} ({days}d)")
}

fn links_text(out: &mut String, ca: &CaReport, style: Style) {
    if ca.links.is_empty() {
        return;
    }
    let rows: Vec<[String; 3]> = ca
        .links
        .iter()
        .map(|l| {
            let arrow = if l.mutual { "⇄" } else { "→" };
            [
                escape::line(&format!("{} {arrow} {}", l.client_name, l.server_name)).into_owned(),
                escape::line(&l.tls_name).into_owned(),
                String::new(),
            ]
        })
        .collect();
    let header = ["LINK", "NAME", "RESULT"].map(String::from);
    let widths = column_widths(&header, &rows);
    let _ = writeln!(out, "  {}", style.dim(&join(&header, &widths)));
    for (l, row) in ca.links.iter().zip(&rows) {
        let _ = writeln!(out, "  {}{}", join(row, &widths), link_result(l, style));
        for v in &l.order_violations {
            let _ = writeln!(out, "      ↳ {}", escape::line(v));
        }
        if let Some(live) = &l.live {
            let what = match (&live.error, live.status) {
                (Some(e), _) => e.clone(),
                (None, Some(s)) => format!("exit {s}: {}", live.first_line),
                (None, None) => "no exit status".into(),
            };
            let sev = if live.ok() {
                Severity::Ok
            } else {
                Severity::Critical
            };
            // The probe's output and the handshake's error come from the node.
            let _ = writeln!(
                out,
                "      {} live: {}",
                mark(style, sev),
                escape::line(&what)
            );
        }
    }
}

fn link_result(l: &LinkReport, style: Style) -> String {
    match &l.result {
        LinkResult::Ok => style.green("ok"),
        LinkResult::Failed { side, kind, detail } => style.red(&format!(
            "FAILS ({} side, {}): {}",
            json!(side).as_str().unwrap_or_default(),
            json!(kind).as_str().unwrap_or_default(),
            escape::line(detail)
        )),
        LinkResult::Skipped { reason } => {
            style.magenta(&format!("unchecked: {}", escape::line(reason)))
        }
    }
}

fn mark(style: Style, sev: Severity) -> String {
    match sev {
        Severity::Ok => style.green("✓"),
        Severity::Warning => style.yellow("!"),
        Severity::Unknown => style.magenta("?"),
        Severity::Critical => style.red("✗"),
    }
}

fn column_widths<const N: usize>(header: &[String; N], rows: &[[String; N]]) -> [usize; N] {
    let mut w = header.each_ref().map(|h| h.chars().count());
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            w[i] = w[i].max(cell.chars().count());
        }
    }
    w
}

/// Cells padded to their column and joined by two spaces; the last cell is not padded.
fn join<const N: usize>(cells: &[String; N], widths: &[usize; N]) -> String {
    let mut s = String::new();
    for (i, cell) in cells.iter().enumerate() {
        if i + 1 == N {
            s.push_str(cell);
        } else {
            s.push_str(&pad(cell, cell.chars().count(), widths[i] + 2));
        }
    }
    s
}

/// JSON for monitoring (see `docs/verify.md`).
pub fn json(report: &Report) -> String {
    let doc = json!({
        "version": JSON_VERSION,
        "checked_at": rfc3339(report.checked_at),
        "status": report.severity(),
        "exit_code": report.exit_code(),
        "summary": report.summary(),
        "cas": report.cas.iter().map(ca_json).collect::<Vec<_>>(),
    });
    // Invariant: a serde_json::Value always serializes.
    serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
}

fn ca_json(ca: &CaReport) -> Value {
    json!({
        "ca": ca.ca,
        "generation": { "current": ca.current, "next": ca.next, "previous": ca.previous },
        "rotating": ca.rotating(),
        "safe": ca.safe(),
        "status": ca.severity(),
        "findings": ca.findings.iter().map(|f| finding_json(f, &ca.ca)).collect::<Vec<_>>(),
        "ca_certificates": ca.ca_certs.iter().map(store_cert_json).collect::<Vec<_>>(),
        "nodes": ca.nodes.iter().map(node_json).collect::<Vec<_>>(),
        "links": ca.links.iter().map(link_json).collect::<Vec<_>>(),
    })
}

fn finding_json(f: &Finding, node: &str) -> Value {
    let mut v = json!(f);
    if let Some(obj) = v.as_object_mut() {
        obj.insert("severity".into(), json!(f.severity()));
        obj.insert("check".into(), json!(Check::of(f).as_str()));
        obj.insert("message".into(), json!(f.message(node)));
    }
    v
}

fn cert_json(c: &CertSummary) -> Value {
    json!({
        "subject": c.subject,
        "issuer": c.issuer,
        "generation": c.generation,
        "generation_number": c.generation_number,
        "not_before": rfc3339(c.not_before),
        "not_after": rfc3339(c.not_after),
        "serial": c.serial,
        "sans": c.sans,
    })
}

fn store_cert_json(c: &StoreCert) -> Value {
    let mut v = cert_json(&c.cert);
    if let Some(obj) = v.as_object_mut() {
        obj.insert("anchor".into(), json!(c.anchor));
    }
    v
}

fn node_json(n: &NodeReport) -> Value {
    json!({
        "node": n.name,
        "phase": n.phase,
        "status": n.severity(),
        "anchors": n.anchors.iter().map(cert_json).collect::<Vec<_>>(),
        "leaf": n.leaf.as_ref().map(cert_json),
        "chain_extra": n.chain_extra,
        "key_mode": n.key_mode.map(mode_text),
        "stores": n.stores,
        "findings": n.findings.iter().map(|f| finding_json(f, &n.name)).collect::<Vec<_>>(),
    })
}

fn link_json(l: &LinkReport) -> Value {
    let mut v = json!({
        "client": l.client_name,
        "server": l.server_name,
        "server_name": l.tls_name,
        "mutual": l.mutual,
        "status": l.severity(),
        "order_violations": l.order_violations,
        "live": l.live,
    });
    if let (Some(obj), Value::Object(result)) = (v.as_object_mut(), json!(l.result)) {
        obj.extend(result);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::materials::FileKind;
    use crate::verify::{Generation, Phase};

    fn anchor(generation: Generation, number: Option<u32>) -> CertSummary {
        CertSummary {
            subject: "CN=x".into(),
            issuer: "CN=x".into(),
            subject_cn: "x".into(),
            issuer_cn: "x".into(),
            generation,
            generation_number: number,
            not_before: OffsetDateTime::UNIX_EPOCH,
            not_after: OffsetDateTime::UNIX_EPOCH,
            serial: "01".into(),
            sans: Vec::new(),
        }
    }

    #[test]
    fn a_bundle_of_ten_thousand_anchors_is_summarised_in_one_short_row() {
        let mut anchors = vec![anchor(Generation::Current, Some(1))];
        anchors.extend((0..9_999).map(|_| anchor(Generation::Unknown, None)));
        let findings = (0..9_999)
            .map(|_| Finding::StrayAnchor {
                subject: "CN=x".into(),
            })
            .chain([Finding::Missing {
                file: FileKind::Key,
                path: "/k".into(),
            }])
            .collect();
        let node = NodeReport {
            node: 0,
            name: "big".into(),
            phase: Phase::Stale,
            anchors,
            leaf: None,
            chain_extra: 0,
            key_mode: None,
            stores: Vec::new(),
            findings,
        };
        let report = Report {
            checked_at: OffsetDateTime::UNIX_EPOCH,
            cas: vec![CaReport {
                ca: "internal".into(),
                current: Some(1),
                next: None,
                previous: Vec::new(),
                findings: Vec::new(),
                ca_certs: Vec::new(),
                nodes: vec![node],
                links: Vec::new(),
            }],
        };
        let out = text(&report, Style::plain());
        assert!(out.len() < 2_000, "{} bytes:\n{out}", out.len());
        assert!(out.contains("10000 anchors: G1, unknown ×9999"), "{out}");
        assert!(
            out.contains("… and 9996 more stray anchors on node big"),
            "{out}"
        );
        assert!(out.contains("/k on node big does not exist"), "{out}");
        assert_eq!(
            anchors_cell(&[anchor(Generation::Current, Some(1))], false),
            "G1"
        );
    }
}
