//! Reading the journal back: the state of the latest run, rebuilt record by record.
//!
//! A line that does not parse is a write cut short by a crash only if it is the last line
//! or the next run-start follows it (the next process ends the torn line before writing);
//! such a line is skipped with a warning. Anything else unreadable is damage, and refused.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::{FileHash, JournalError, Record, RunHeader, RunParams, RunStatus, JOURNAL_VERSION};
use crate::inventory::{ChainMode, Strategy};
use crate::plan::{Action, Mode, StepId};

/// A step journaled as started and not (yet) done: the files it was writing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartedStep {
    pub node: String,
    pub files: Vec<FileHash>,
}

/// One run as the journal tells it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunState {
    pub run: String,
    /// What the run was started (or last resumed) with.
    pub header: RunHeader,
    /// When the run first began (RFC 3339).
    pub started_at: String,
    /// Host and pid of the process that last began or resumed the run.
    pub host: String,
    pub pid: u32,
    /// How many times the run was resumed.
    pub resumes: u32,
    /// Steps confirmed.
    pub done: BTreeSet<StepId>,
    /// What certroll's own TLS confirm proved of a confirmed step (its `proof`).
    pub proofs: BTreeMap<StepId, String>,
    /// Steps started and not done (whether or not they failed since): to re-check on resume.
    pub started: BTreeMap<StepId, StartedStep>,
    /// Steps whose latest record is a failure, with the error.
    pub failed: BTreeMap<StepId, String>,
    /// Node name and actions of every step this run started (done or not).
    pub steps: BTreeMap<StepId, (String, Vec<Action>)>,
    /// How the run ended; `None` if its process is still running or died.
    pub end: Option<RunStatus>,
    /// Nodes whose latest confirmed step was written without a restart
    /// (`restart_on_prune = false`): their running process has not loaded it.
    pub restart_pending: BTreeSet<String>,
    /// Problems met while reading that did not stop it (a torn last line).
    pub warnings: Vec<String>,
}

impl RunState {
    pub(super) fn empty(run: &str) -> Self {
        RunState {
            run: run.to_string(),
            header: RunHeader {
                fingerprint: String::new(),
                mode: Mode::Bootstrap,
                ca: String::new(),
                strategy: Strategy::default(),
                chain: ChainMode::default(),
                generations: Vec::new(),
                params: RunParams::default(),
            },
            started_at: String::new(),
            host: String::new(),
            pid: 0,
            resumes: 0,
            done: BTreeSet::new(),
            proofs: BTreeMap::new(),
            started: BTreeMap::new(),
            failed: BTreeMap::new(),
            steps: BTreeMap::new(),
            end: None,
            restart_pending: BTreeSet::new(),
            warnings: Vec::new(),
        }
    }

    /// True when the run finished with every step done.
    pub fn is_complete(&self) -> bool {
        self.end == Some(RunStatus::Complete)
    }

    /// Folds one record of this run into the state.
    pub(super) fn apply(&mut self, record: &Record) {
        match record {
            Record::RunStart {
                time,
                fingerprint,
                mode,
                ca,
                strategy,
                chain,
                generations,
                host,
                pid,
                params,
                ..
            } => {
                if self.started_at.is_empty() {
                    self.started_at = time.clone();
                } else {
                    self.resumes += 1;
                }
                self.header = RunHeader {
                    fingerprint: fingerprint.clone(),
                    mode: *mode,
                    ca: ca.clone(),
                    strategy: *strategy,
                    chain: *chain,
                    generations: generations.clone(),
                    params: params.clone(),
                };
                self.host = host.clone();
                self.pid = *pid;
                self.end = None;
            }
            Record::StepStart {
                step,
                node,
                files,
                actions,
                ..
            } => {
                self.failed.remove(step);
                self.steps.insert(*step, (node.clone(), actions.clone()));
                self.started.insert(
                    *step,
                    StartedStep {
                        node: node.clone(),
                        files: files.clone(),
                    },
                );
            }
            Record::StepDone { step, proof, .. } => {
                self.started.remove(step);
                self.failed.remove(step);
                self.done.insert(*step);
                match proof {
                    Some(proof) => self.proofs.insert(*step, proof.clone()),
                    None => self.proofs.remove(step),
                };
                if let Some((node, _)) = self.steps.get(step) {
                    if proof.as_deref() == Some(super::RESTART_PENDING) {
                        self.restart_pending.insert(node.clone());
                    } else {
                        self.restart_pending.remove(node);
                    }
                }
            }
            Record::StepFailed { step, error, .. } => {
                self.failed.insert(*step, error.clone());
            }
            Record::RunEnd { status, .. } => self.end = Some(*status),
        }
    }
}

/// Rebuilds the latest run from the journal's text (the latest of CA `ca`, when given).
pub(super) fn last_run(
    path: &Path,
    text: &str,
    ca: Option<&str>,
) -> Result<Option<RunState>, JournalError> {
    let lines: Vec<&str> = text.lines().collect();
    let mut runs: BTreeMap<String, RunState> = BTreeMap::new();
    let mut latest: Option<String> = None;
    let mut latest_line = 0;
    // (line index, text): only torn lines after the latest run-start are reported; an
    // older one was already reported by the run that started after it.
    let mut warnings: Vec<(usize, String)> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let record: Record = match serde_json::from_str(line) {
            Ok(r) => r,
            Err(e) if e.is_data() => return Err(refuse(path, i, line, e)),
            Err(e) if is_torn(&lines[i + 1..]) => {
                warnings.push((
                    i,
                    format!(
                        "ignored line {} of journal {}: it was cut short by an interrupted write ({e})",
                        i + 1,
                        path.display()
                    ),
                ));
                continue;
            }
            Err(e) => return Err(corrupt(path, i, e.to_string())),
        };
        if let Record::RunStart {
            run,
            version,
            ca: of,
            ..
        } = &record
        {
            if *version > JOURNAL_VERSION {
                return Err(newer(path, i, *version));
            }
            if ca.is_none_or(|ca| ca == of) {
                latest = Some(run.clone());
                latest_line = i;
            }
            runs.entry(run.clone())
                .or_insert_with(|| RunState::empty(run));
        }
        let Some(state) = runs.get_mut(record.run()) else {
            return Err(corrupt(
                path,
                i,
                format!("record of run {} before its run-start", record.run()),
            ));
        };
        state.apply(&record);
    }
    Ok(latest.and_then(|id| runs.remove(&id)).map(|mut s| {
        s.warnings = warnings
            .into_iter()
            .filter(|(i, _)| *i > latest_line)
            .map(|(_, w)| w)
            .collect();
        s
    }))
}

/// A complete JSON line that is not a record this build knows. A newer writer's record
/// is named as such; anything else (an unknown mode, a missing field) is damage. Neither
/// is a torn write, so neither is skipped.
fn refuse(path: &Path, index: usize, line: &str, e: serde_json::Error) -> JournalError {
    #[derive(serde::Deserialize)]
    struct Versioned {
        #[serde(default)]
        version: u32,
    }
    match serde_json::from_str::<Versioned>(line) {
        Ok(v) if v.version > JOURNAL_VERSION => newer(path, index, v.version),
        _ => corrupt(path, index, e.to_string()),
    }
}

fn newer(path: &Path, index: usize, version: u32) -> JournalError {
    JournalError::Newer {
        path: path.to_path_buf(),
        line: index + 1,
        version,
    }
}

fn corrupt(path: &Path, index: usize, message: String) -> JournalError {
    JournalError::Corrupt {
        path: path.to_path_buf(),
        line: index + 1,
        message,
    }
}

/// A bad line is torn if nothing follows it, or the next record is a run-start.
fn is_torn(rest: &[&str]) -> bool {
    match rest.iter().find(|l| !l.trim().is_empty()) {
        None => true,
        Some(next) => matches!(
            serde_json::from_str::<Record>(next),
            Ok(Record::RunStart { .. })
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: &str = r#"{"record":"run-start","run":"r1","time":"t","fingerprint":"f","mode":"rotate","ca":"internal","strategy":"ordered","chain":"cross-signed","generations":[1,2],"host":"h","pid":7,"resumed":false,"params":{"install":[],"renew":[]}}"#;

    fn read(text: &str) -> Result<Option<RunState>, JournalError> {
        last_run(Path::new("/s/journal.jsonl"), text, None)
    }

    #[test]
    fn journal_without_a_version_reads_as_version_one_with_typed_header() {
        let run = read(&format!("{START}\n")).unwrap().unwrap();
        assert_eq!(run.header.mode, Mode::Rotate);
        assert_eq!(run.header.strategy, Strategy::Ordered);
        assert_eq!(run.header.chain, ChainMode::CrossSigned);
        assert!(run.warnings.is_empty());
    }

    #[test]
    fn unknown_mode_is_damage_not_a_default() {
        // Even as the last line, a complete record with an unknown value is never taken
        // for a torn write, and never read as some other mode.
        let line = START.replace(r#""mode":"rotate""#, r#""mode":"rewind""#);
        let err = read(&format!("{line}\n")).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, JournalError::Corrupt { line: 1, .. }),
            "{text}"
        );
        assert!(text.contains("rewind"), "{text}");
    }

    #[test]
    fn newer_journal_version_is_refused_by_name() {
        let line = START.replace(
            r#"{"record":"run-start","#,
            r#"{"record":"run-start","version":3,"#,
        );
        let err = read(&format!("{START}\n{line}\n")).unwrap_err();
        assert!(
            matches!(
                err,
                JournalError::Newer {
                    line: 2,
                    version: 3,
                    ..
                }
            ),
            "{err}"
        );
        // A newer record this build cannot even parse is named the same way.
        let odd = r#"{"record":"run-start","version":4,"mode":"rewind"}"#;
        let err = read(&format!("{odd}\n")).unwrap_err();
        assert!(
            matches!(err, JournalError::Newer { version: 4, .. }),
            "{err}"
        );
    }

    #[test]
    fn records_are_written_with_the_current_version() {
        let record = Record::RunStart {
            version: crate::journal::record_version(Mode::Renew),
            run: "r1".into(),
            time: "t".into(),
            fingerprint: "f".into(),
            mode: Mode::Renew,
            ca: "internal".into(),
            strategy: Strategy::Phased,
            chain: ChainMode::Plain,
            generations: vec![1],
            host: "h".into(),
            pid: 1,
            resumed: false,
            params: RunParams {
                install: vec![],
                renew: vec!["app1".into()],
                ..RunParams::default()
            },
        };
        let line = serde_json::to_string(&record).unwrap();
        assert!(line.contains(r#""version":1"#), "{line}");
        assert!(line.contains(r#""mode":"renew""#), "{line}");
        let back: Record = serde_json::from_str(&line).unwrap();
        assert_eq!(back, record);
    }

    #[test]
    fn a_rollback_header_names_the_rotation_and_the_state_it_started_from() {
        use crate::plan::{NodeProgress, Progress};
        let state = NodeProgress {
            trust_add: Progress::Done,
            leaf_swap: Progress::Unknown,
            trust_prune: Progress::NotStarted,
        };
        let record = Record::RunStart {
            version: crate::journal::record_version(Mode::Rollback),
            run: "r2".into(),
            time: "t".into(),
            fingerprint: "f".into(),
            mode: Mode::Rollback,
            ca: "internal".into(),
            strategy: Strategy::Phased,
            chain: ChainMode::Plain,
            generations: vec![1, 2],
            host: "h".into(),
            pid: 1,
            resumed: false,
            params: RunParams {
                rollback_of: Some("r1".into()),
                rollback_state: vec![("app1".into(), state)],
                ..RunParams::default()
            },
        };
        let line = serde_json::to_string(&record).unwrap();
        assert!(line.contains(r#""mode":"rollback""#), "{line}");
        assert!(line.contains(r#""version":2"#), "{line}");
        assert!(line.contains(r#""rollback_of":"r1""#), "{line}");
        assert!(line.contains(r#""leaf-swap":"unknown""#), "{line}");
        let back: Record = serde_json::from_str(&line).unwrap();
        assert_eq!(back, record);
        // Other runs do not carry the rollback fields.
        let plain = serde_json::to_string(&RunParams::default()).unwrap();
        assert!(!plain.contains("rollback"), "{plain}");
    }

    #[test]
    fn the_last_run_of_a_ca_skips_later_runs_of_other_cas() {
        let other = START
            .replace(r#""run":"r1""#, r#""run":"r2""#)
            .replace(r#""ca":"internal""#, r#""ca":"edge""#);
        assert!(other.contains(r#""ca":"edge""#), "{other}");
        let text = format!("{START}\n{other}\n");
        let path = Path::new("/s/journal.jsonl");
        let last = last_run(path, &text, None).unwrap().unwrap();
        assert_eq!(last.run, "r2");
        let of = last_run(path, &text, Some("internal")).unwrap().unwrap();
        assert_eq!(of.run, "r1");
        assert!(last_run(path, &text, Some("none")).unwrap().is_none());
    }

    #[test]
    fn a_prune_written_without_a_restart_is_pending_until_the_node_restarts() {
        let start = |step: u32, node: &str| {
            format!(
                r#"{{"record":"step-start","run":"r1","time":"t","step":{step},"node":"{node}","actions":["trust-prune"],"files":[]}}"#
            )
        };
        let done = |step: u32, proof: &str| {
            format!(r#"{{"record":"step-done","run":"r1","time":"t","step":{step}{proof}}}"#)
        };
        let pending = format!(r#","proof":"{}""#, super::super::RESTART_PENDING);
        let path = Path::new("/s/journal.jsonl");
        let text = format!("{START}\n{}\n{}\n", start(0, "edge"), done(0, &pending));
        let run = last_run(path, &text, None).unwrap().unwrap();
        assert_eq!(run.restart_pending, BTreeSet::from(["edge".to_string()]));
        let text = format!("{text}{}\n{}\n", start(1, "edge"), done(1, ""));
        let run = last_run(path, &text, None).unwrap().unwrap();
        assert!(run.restart_pending.is_empty());
    }
}
