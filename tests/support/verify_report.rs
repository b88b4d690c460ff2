//! Reading `certroll verify --format json` in tests: the document (version 1, see
//! docs/verify.md) with lookups by node, link and finding kind that panic with the
//! whole command output when what they look for is not there.

use serde_json::Value;

use super::verify_kit::{Run, VerifyFleet};

/// One parsed verify report of the fleet's only CA, with the run that printed it.
pub struct VerifyReport {
    pub run: Run,
    pub json: Value,
}

impl VerifyFleet {
    /// Runs `certroll verify --format json EXTRA...` and parses its report.
    pub fn verify_json(&self, extra: &[&str]) -> VerifyReport {
        let mut args = vec!["verify", "--format", "json"];
        args.extend_from_slice(extra);
        let run = self.certroll(&args);
        let json: Value = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("verify --format json printed no JSON ({e})\n{run}"));
        let report = VerifyReport { run, json };
        report.expect_consistent();
        report
    }
}

impl VerifyReport {
    /// The process exit code.
    pub fn code(&self) -> i32 {
        self.run.code
    }

    /// The fleet-wide `status` (`ok`, `warning`, `unknown`, `critical`).
    pub fn status(&self) -> &str {
        self.str_at(&self.json, "status")
    }

    /// The first (only) CA's section.
    pub fn ca(&self) -> &Value {
        &self.json["cas"][0]
    }

    /// The CA's `safe` verdict: `Some(true/false)`, or `None` when a link could not be tried.
    pub fn safe(&self) -> Option<bool> {
        self.ca()["safe"].as_bool()
    }

    /// The node's entry.
    #[track_caller]
    pub fn node(&self, name: &str) -> &Value {
        self.ca()["nodes"]
            .as_array()
            .and_then(|nodes| nodes.iter().find(|n| n["node"] == name))
            .unwrap_or_else(|| panic!("the report has no node {name}\n{}", self.run))
    }

    /// The node's rollover phase (`current`, `trusting-both`, `switched`, ...).
    #[track_caller]
    pub fn phase(&self, node: &str) -> &str {
        self.str_at(self.node(node), "phase")
    }

    /// The kinds of the node's findings, in report order.
    #[track_caller]
    pub fn finding_kinds(&self, node: &str) -> Vec<String> {
        self.node(node)["findings"]
            .as_array()
            .unwrap_or_else(|| panic!("node {node} has no findings array\n{}", self.run))
            .iter()
            .map(|f| f["kind"].as_str().unwrap_or("?").to_string())
            .collect()
    }

    /// The node's finding of `kind`; panics (showing the report) when it has none.
    #[track_caller]
    pub fn finding(&self, node: &str, kind: &str) -> &Value {
        self.node(node)["findings"]
            .as_array()
            .and_then(|fs| fs.iter().find(|f| f["kind"] == kind))
            .unwrap_or_else(|| {
                panic!(
                    "node {node} has no {kind:?} finding (it has {:?})\n{}",
                    self.finding_kinds(node),
                    self.run
                )
            })
    }

    /// The link `client → server`.
    #[track_caller]
    pub fn link(&self, client: &str, server: &str) -> &Value {
        self.ca()["links"]
            .as_array()
            .and_then(|ls| {
                ls.iter()
                    .find(|l| l["client"] == client && l["server"] == server)
            })
            .unwrap_or_else(|| panic!("the report has no link {client} → {server}\n{}", self.run))
    }

    /// Panics unless every node's findings are exactly `kinds` for `node` and empty for
    /// the others, so a fault shows up where it was made and nowhere else.
    #[track_caller]
    pub fn expect_findings_only_on(&self, node: &str, kinds: &[&str]) {
        for n in self.ca()["nodes"].as_array().expect("nodes array") {
            let name = self.str_at(n, "node");
            let found = self.finding_kinds(name);
            let want: Vec<String> = if name == node {
                kinds.iter().map(|k| k.to_string()).collect()
            } else {
                vec![]
            };
            assert_eq!(
                found, want,
                "findings of node {name} are not the expected ones\n{}",
                self.run
            );
        }
    }

    /// Panics unless the link's result is `ok`.
    #[track_caller]
    pub fn expect_link_ok(&self, client: &str, server: &str) {
        let link = self.link(client, server);
        assert_eq!(
            link["result"], "ok",
            "link {client} → {server} should handshake\n{}",
            self.run
        );
    }

    /// Panics unless the link failed with `kind`, refused by `side`.
    #[track_caller]
    pub fn expect_link_failed(&self, client: &str, server: &str, side: &str, kind: &str) {
        let link = self.link(client, server);
        assert_eq!(
            (
                &link["result"],
                &link["side"],
                &link["kind"],
                &link["status"]
            ),
            (
                &Value::from("failed"),
                &Value::from(side),
                &Value::from(kind),
                &Value::from("critical")
            ),
            "link {client} → {server} should fail on the {side} side with {kind}\n{}",
            self.run
        );
    }

    /// The document's own invariants: version 1, its exit code is the process's, and
    /// the summary line is the text output's last line.
    #[track_caller]
    fn expect_consistent(&self) {
        assert_eq!(self.json["version"], 1, "report version\n{}", self.run);
        assert_eq!(
            self.json["exit_code"].as_i64(),
            Some(i64::from(self.run.code)),
            "the report's exit_code is not the process's\n{}",
            self.run
        );
        let summary = self.str_at(&self.json, "summary");
        assert!(
            summary.starts_with("verify: "),
            "summary line {summary:?}\n{}",
            self.run
        );
    }

    #[track_caller]
    fn str_at<'a>(&self, v: &'a Value, field: &str) -> &'a str {
        v[field]
            .as_str()
            .unwrap_or_else(|| panic!("field {field:?} is not a string in {v}\n{}", self.run))
    }
}
