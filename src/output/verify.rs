//! `certroll verify` output: tables for people (per node, per link, one summary line)
//! and versioned JSON for monitoring.
//!
//! The JSON format is documented in `docs/verify.md`; bump [`JSON_VERSION`] on any
//! incompatible change.

use std::fmt::Write as _;

use serde_json::{json, Value};
use time::OffsetDateTime;

use super::style::{pad, Style};
use crate::verify::finding::mode_text;
use crate::verify::node::rfc3339;
use crate::verify::{
    CaReport, CertSummary, Finding, LinkReport, LinkResult, NodeReport, Report, Severity,
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
    out
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
        let _ = writeln!(out, "  {} {}", mark(style, f.severity()), f.message(&ca.ca));
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
        for f in &n.findings {
            let _ = writeln!(
                out,
                "      {} {}",
                mark(style, f.severity()),
                f.message(&n.name)
            );
        }
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
    let anchors: Vec<String> = n
        .anchors
        .iter()
        .map(|a| match a.generation_number {
            // An anchor of no generation, kept on purpose (`bundle_foreign = "keep"`).
            None if foreign => "foreign".to_string(),
            number => gen_name(number, a.generation.as_str()),
        })
        .collect();
    let (leaf, expires) = match &n.leaf {
        Some(l) => (
            gen_name(l.generation_number, l.generation.as_str()),
            expiry(l, now),
        ),
        None => ("-".into(), "-".into()),
    };
    [
        n.name.clone(),
        n.phase.as_str().to_string(),
        if anchors.is_empty() {
            "-".into()
        } else {
            anchors.join(",")
        },
        leaf,
        expires,
        n.severity().as_str().to_string(),
    ]
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
                format!("{} {arrow} {}", l.client_name, l.server_name),
                l.tls_name.clone(),
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
            let _ = writeln!(out, "      ↳ {v}");
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
            let _ = writeln!(out, "      {} live: {what}", mark(style, sev));
        }
    }
}

fn link_result(l: &LinkReport, style: Style) -> String {
    match &l.result {
        LinkResult::Ok => style.green("ok"),
        LinkResult::Failed { side, kind, detail } => style.red(&format!(
            "FAILS ({} side, {}): {detail}",
            json!(side).as_str().unwrap_or_default(),
            json!(kind).as_str().unwrap_or_default()
        )),
        LinkResult::Skipped { reason } => style.magenta(&format!("unchecked: {reason}")),
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
        "nodes": ca.nodes.iter().map(node_json).collect::<Vec<_>>(),
        "links": ca.links.iter().map(link_json).collect::<Vec<_>>(),
    })
}

fn finding_json(f: &Finding, node: &str) -> Value {
    let mut v = json!(f);
    if let Some(obj) = v.as_object_mut() {
        obj.insert("severity".into(), json!(f.severity()));
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
        "not_after": rfc3339(c.not_after),
        "sans": c.sans,
    })
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
