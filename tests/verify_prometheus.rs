//! `certroll verify --format prometheus` and `--textfile-dir` through the real binary on
//! a local fleet: the output is parsed by the reference parser of the Python
//! `prometheus_client` package (tests/support/exposition.py), and every sample is checked
//! against the `--format json` report of the same fleet, in both directions: no sample
//! without its report entry, no node, link, check or certificate without its samples.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use support::local::{LocalFleet, NODES};

/// One parsed sample.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses exposition text with prometheus_client's parser.
fn parse(text: &str) -> (Vec<Value>, Vec<Sample>) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/exposition.py");
    // Debian's python3, where apt installs python3-prometheus-client (a python3 earlier
    // in PATH, e.g. pyenv's, would not see the package).
    let mut child = Command::new("/usr/bin/python3")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run /usr/bin/python3 (scripts/test.sh installs it)");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(text.as_bytes())
        .expect("feed the parser");
    let out = child.wait_with_output().expect("wait for the parser");
    assert!(
        out.status.success(),
        "the exposition parser refused the output: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("the parser prints JSON");
    let samples = doc["samples"]
        .as_array()
        .expect("samples")
        .iter()
        .map(|s| Sample {
            name: s["name"].as_str().expect("name").to_string(),
            labels: s["labels"]
                .as_object()
                .expect("labels")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().expect("label value").to_string()))
                .collect(),
            value: s["value"].as_f64().expect("value"),
        })
        .collect();
    (
        doc["families"].as_array().expect("families").clone(),
        samples,
    )
}

fn unix(text: &Value) -> f64 {
    let s = text.as_str().expect("a time");
    OffsetDateTime::parse(s, &Rfc3339)
        .expect("an RFC 3339 time")
        .unix_timestamp() as f64
}

/// The exit-code convention of a JSON status.
fn code(status: &Value) -> f64 {
    match status.as_str().expect("a status") {
        "ok" => 0.0,
        "warning" => 1.0,
        "critical" => 2.0,
        "unknown" => 3.0,
        other => panic!("unknown status {other}"),
    }
}

/// A hexadecimal serial number in decimal (the x509 exporter's `serial_number`).
fn decimal(hex: &str) -> String {
    let mut digits: Vec<u8> = vec![0]; // least significant first
    for c in hex.chars() {
        let mut carry = c.to_digit(16).expect("hex digit") as u8;
        for d in digits.iter_mut() {
            let v = *d * 16 + carry;
            *d = v % 10;
            carry = v / 10;
        }
        while carry > 0 {
            digits.push(carry % 10);
            carry /= 10;
        }
    }
    while digits.len() > 1 && digits.last() == Some(&0) {
        digits.pop();
    }
    digits.iter().rev().map(|d| char::from(b'0' + d)).collect()
}

/// Checks every sample against the report and every report entry against the samples.
fn check_against_report(samples: &[Sample], report: &Value, fleet: &LocalFleet) {
    let checked_at = unix(&report["checked_at"]);
    let mut explained = vec![false; samples.len()];
    let mut find = |name: &str, want: &[(&str, &str)]| -> f64 {
        let hits: Vec<usize> = samples
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                s.name == name
                    && want
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(i, _)| i)
            .collect();
        assert_eq!(hits.len(), 1, "{name} {want:?}: {} series", hits.len());
        explained[hits[0]] = true;
        samples[hits[0]].value
    };
    for ca in report["cas"].as_array().expect("cas") {
        let name = ca["ca"].as_str().expect("ca name");
        let c = [("ca", name)];
        assert_eq!(find("certroll_verify_timestamp_seconds", &c), checked_at);
        assert_eq!(find("certroll_verify_status", &c), code(&ca["status"]));
        let ok = code(&ca["status"]) <= 1.0;
        assert_eq!(find("certroll_verify_success", &c), f64::from(u8::from(ok)));
        if ok {
            assert_eq!(
                find("certroll_verify_last_success_timestamp_seconds", &c),
                checked_at
            );
        }
        let rotating = ca["rotating"].as_bool().expect("rotating");
        assert_eq!(
            find("certroll_rotation_in_progress", &c),
            f64::from(u8::from(rotating))
        );
        for role in ["current", "next"] {
            if let Some(g) = ca["generation"][role].as_u64() {
                let v = find("certroll_ca_generation", &[("ca", name), ("role", role)]);
                assert_eq!(v, g as f64);
            }
        }
        let nodes = ca["nodes"].as_array().expect("nodes");
        for phase in [
            "current",
            "stale",
            "old",
            "trusting-both",
            "switched",
            "pruned",
            "irregular",
            "unknown",
        ] {
            let n = nodes.iter().filter(|n| n["phase"] == phase).count();
            let v = find(
                "certroll_rotation_phase_nodes",
                &[("ca", name), ("phase", phase)],
            );
            assert_eq!(v, n as f64, "phase {phase}");
        }
        let worst_of = |findings: &Value, check: &str| -> f64 {
            findings
                .as_array()
                .expect("findings")
                .iter()
                .filter(|f| f["check"] == check)
                .map(|f| code(&f["severity"]))
                // Precedence: critical (2) > unknown (3) > warning (1) > ok (0).
                .max_by_key(|c| match *c as u8 {
                    2 => 4,
                    other => other,
                })
                .unwrap_or(0.0)
        };
        for check in ["store", "ca_certificate"] {
            let v = find(
                "certroll_verify_check_status",
                &[("ca", name), ("check", check)],
            );
            assert_eq!(v, worst_of(&ca["findings"], check), "CA check {check}");
        }
        for n in nodes {
            let node = n["node"].as_str().expect("node name");
            let l = [("ca", name), ("node", node)];
            assert_eq!(find("certroll_verify_node_status", &l), code(&n["status"]));
            let ok = code(&n["status"]) <= 1.0;
            assert_eq!(
                find("certroll_verify_node_success", &l),
                f64::from(u8::from(ok))
            );
            let phase = n["phase"].as_str().expect("phase");
            let p = [("ca", name), ("node", node), ("phase", phase)];
            assert_eq!(find("certroll_verify_node_phase", &p), 1.0);
            for check in [
                "reachable",
                "files",
                "key_match",
                "validity",
                "names",
                "issuer",
                "anchors",
                "key_protection",
                "rollover",
                "live_tls",
                "keystores",
            ] {
                let k = [("ca", name), ("node", node), ("check", check)];
                let v = find("certroll_verify_check_status", &k);
                assert_eq!(v, worst_of(&n["findings"], check), "{node} {check}");
            }
            let files = [("leaf", "cert.pem"), ("anchors", "ca.pem")];
            for (field, file) in files {
                let certs: Vec<&Value> = match &n[field] {
                    Value::Array(a) => a.iter().collect(),
                    Value::Null => Vec::new(),
                    one => vec![one],
                };
                let path = format!("{}/nodes/{node}/{file}", fleet.root().display());
                for cert in certs {
                    x509(
                        &mut find,
                        cert,
                        &path,
                        &[("ca", name), ("node", node)],
                        checked_at,
                    );
                }
            }
        }
        for cert in ca["ca_certificates"].as_array().expect("ca_certificates") {
            let g = cert["generation_number"].as_u64().expect("generation");
            let file = if cert["anchor"] == true {
                "anchor.pem"
            } else {
                "ca.pem"
            };
            let path = format!("{}/g{g}/{file}", fleet.ca_dir().display());
            x509(&mut find, cert, &path, &[("ca", name)], checked_at);
        }
        for link in ca["links"].as_array().expect("links") {
            let l = [
                ("ca", name),
                ("client", link["client"].as_str().expect("client")),
                ("server", link["server"].as_str().expect("server")),
                (
                    "server_name",
                    link["server_name"].as_str().expect("server_name"),
                ),
            ];
            assert_eq!(
                find("certroll_verify_link_status", &l),
                code(&link["status"])
            );
            match link["result"].as_str().expect("result") {
                "ok" => assert_eq!(find("certroll_verify_link_handshake_success", &l), 1.0),
                "failed" => assert_eq!(find("certroll_verify_link_handshake_success", &l), 0.0),
                _ => {}
            }
        }
    }
    let unexplained: Vec<&Sample> = samples
        .iter()
        .zip(&explained)
        .filter(|(_, e)| !**e)
        .map(|(s, _)| s)
        .collect();
    assert!(
        unexplained.is_empty(),
        "samples without a report entry: {unexplained:#?}"
    );
}

/// Finds the one sample of a metric with these labels and marks it explained.
type Find<'a> = dyn FnMut(&str, &[(&str, &str)]) -> f64 + 'a;

/// The three x509 series of one certificate.
fn x509(find: &mut Find<'_>, cert: &Value, path: &str, extra: &[(&str, &str)], checked_at: f64) {
    let serial = decimal(cert["serial"].as_str().expect("serial"));
    let cn = |dn: &str| -> String {
        // The fleet's subjects are CN first; the CN may hold quotes but no comma.
        let cn = dn.split(", ").next().unwrap_or_default();
        cn.strip_prefix("CN=").unwrap_or(cn).to_string()
    };
    let subject = cn(cert["subject"].as_str().expect("subject"));
    let issuer = cn(cert["issuer"].as_str().expect("issuer"));
    let filename = path.rsplit('/').next().expect("a file name");
    let mut labels = vec![
        ("filepath", path),
        ("filename", filename),
        ("serial_number", serial.as_str()),
        ("subject_CN", subject.as_str()),
        ("issuer_CN", issuer.as_str()),
    ];
    labels.extend_from_slice(extra);
    let not_after = unix(&cert["not_after"]);
    assert_eq!(find("x509_cert_not_after", &labels), not_after);
    assert_eq!(
        find("x509_cert_not_before", &labels),
        unix(&cert["not_before"])
    );
    let expired = f64::from(u8::from(not_after <= checked_at));
    assert_eq!(find("x509_cert_expired", &labels), expired);
}

/// Runs verify in both formats (the same fleet state) and compares them.
fn compare(fleet: &LocalFleet) -> Vec<Sample> {
    let prom = fleet.certroll(&["verify", "--format", "prometheus"]);
    let (run, report) = fleet.verify_json(&[]);
    assert_eq!(
        prom.code, run.code,
        "both formats exit alike\n{prom}\n{run}"
    );
    let (families, samples) = parse(&prom.stdout);
    for f in &families {
        assert_eq!(f["type"], "gauge", "no counters across cron runs: {f}");
        let name = f["name"].as_str().expect("family name");
        assert!(
            name.starts_with("x509_cert_") || name.starts_with("certroll_"),
            "{name}"
        );
        if name.contains("timestamp") {
            assert!(name.ends_with("_timestamp_seconds"), "{name}");
        }
    }
    // A second within the same second or the next: the two runs' `checked_at` may differ.
    let times: Vec<f64> = samples
        .iter()
        .filter(|s| s.name == "certroll_verify_timestamp_seconds")
        .map(|s| s.value)
        .collect();
    let json_time = unix(&report["checked_at"]);
    let shift = times.first().map_or(0.0, |t| json_time - t);
    assert!((0.0..=60.0).contains(&shift), "runs {shift} s apart");
    let mut report = report;
    if shift != 0.0 {
        // Compare against the report as the prometheus run saw the same files.
        let t = OffsetDateTime::from_unix_timestamp(times[0] as i64).expect("a time");
        report["checked_at"] = Value::String(t.format(&Rfc3339).expect("format"));
    }
    check_against_report(&samples, &report, fleet);
    samples
}

#[test]
fn prometheus_output_parses_and_matches_the_json_report_in_every_value() {
    let fleet = LocalFleet::ops(&[("leaf_validity", "90d"), ("renew_before", "30d")]);
    fleet.apply_ok(&[]);
    let healthy = compare(&fleet);
    let status = |s: &[Sample], name: &str| {
        s.iter()
            .filter(|x| x.name == name)
            .map(|x| x.value)
            .collect::<Vec<_>>()
    };
    assert_eq!(status(&healthy, "certroll_verify_success"), vec![1.0]);
    // Three nodes, each with its leaf and one anchor, and the CA certificate itself.
    assert_eq!(status(&healthy, "x509_cert_not_after").len(), 7);

    // A rotation stopped half-way (db's confirmation fails) and a wrong key on lb.
    fleet.fail_confirm("db", true);
    let stopped = fleet.certroll(&["apply", "--rotate", "--yes"]);
    assert_ne!(stopped.code, 0, "{stopped}");
    fs::copy(
        fleet.node_file("app", "key.pem"),
        fleet.node_file("lb", "key.pem"),
    )
    .expect("copy a key");
    let broken = compare(&fleet);
    assert_eq!(status(&broken, "certroll_rotation_in_progress"), vec![1.0]);
    assert_eq!(status(&broken, "certroll_verify_success"), vec![0.0]);
    let lb_key = broken
        .iter()
        .find(|s| {
            s.name == "certroll_verify_check_status"
                && s.labels.get("node").map(String::as_str) == Some("lb")
                && s.labels.get("check").map(String::as_str) == Some("key_match")
        })
        .expect("lb's key check");
    assert_eq!(lb_key.value, 2.0);
    // The CA's subject CN holds double quotes: escaped in the text, exact after parsing.
    assert!(broken
        .iter()
        .any(|s| s.labels.get("subject_CN").map(String::as_str) == Some("Ops \"Test\" CA G1")));
    for n in NODES {
        assert!(broken
            .iter()
            .any(|s| s.labels.get("node").map(String::as_str) == Some(n)));
    }
}

#[test]
fn textfile_dir_writes_certroll_prom_atomically_and_keeps_the_last_success_of_a_failing_run() {
    let fleet = LocalFleet::ops(&[]);
    fleet.apply_ok(&[]);
    let dir = fleet.root().join("textfile");
    fs::create_dir(&dir).expect("create the textfile directory");
    let dir_arg = dir.to_str().expect("a UTF-8 path");
    let run = fleet.certroll(&["verify", "--textfile-dir", dir_arg]);
    run.expect_code(0).expect_stdout("OK");
    let prom = dir.join("certroll.prom");
    let first = fs::read_to_string(&prom).expect("certroll.prom written");
    let (_, samples) = parse(&first);
    let last = |s: &[Sample]| {
        s.iter()
            .find(|x| x.name == "certroll_verify_last_success_timestamp_seconds")
            .map(|x| x.value)
    };
    let success_at = last(&samples).expect("a last success");
    let entries: Vec<_> = fs::read_dir(&dir).expect("list").collect();
    assert_eq!(entries.len(), 1, "only certroll.prom is left: {entries:?}");

    // A failing run keeps the earlier success time and says it failed.
    fs::remove_file(fleet.node_file("db", "key.pem")).expect("remove a key");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let run = fleet.certroll(&["verify", "--format", "json", "--textfile-dir", dir_arg]);
    run.expect_code(2);
    let (_, samples) = parse(&fs::read_to_string(&prom).expect("certroll.prom"));
    assert_eq!(last(&samples), Some(success_at));
    let ok = samples
        .iter()
        .find(|x| x.name == "certroll_verify_success")
        .expect("success gauge");
    assert_eq!(ok.value, 0.0);
    let at = samples
        .iter()
        .find(|x| x.name == "certroll_verify_timestamp_seconds")
        .expect("run time");
    assert!(at.value > success_at, "{} > {success_at}", at.value);
}

#[test]
fn textfile_dir_missing_or_unwritable_is_refused_before_any_node_is_read_and_nothing_is_written() {
    let fleet = LocalFleet::ops(&[]);
    fleet.apply_ok(&[]);
    let missing = fleet.root().join("no-such-dir");
    let run = fleet.certroll(&["verify", "--textfile-dir", missing.to_str().expect("UTF-8")]);
    run.expect_code(73).expect_output("does not exist");
    assert!(!missing.exists());
    assert!(run.stdout.is_empty(), "no report for a refused run\n{run}");

    let file = fleet.root().join("a-file");
    fs::write(&file, "").expect("write a file");
    let run = fleet.certroll(&["verify", "--textfile-dir", file.to_str().expect("UTF-8")]);
    run.expect_code(73).expect_output("is not a directory");

    // A directory nobody can create files in, root included (tests run as root, so a
    // mode alone would not refuse it).
    let proc_dir = "/proc/self";
    let run = fleet.certroll(&["verify", "--textfile-dir", proc_dir]);
    run.expect_code(73)
        .expect_output("failed to create a temporary file in the textfile directory");
}
