//! Reading the journal back: the state of the latest run, rebuilt record by record.
//!
//! A line that does not parse is a write cut short by a crash only if it is the last line
//! or the next run-start follows it (the next process ends the torn line before writing);
//! such a line is skipped with a warning. Anything else unreadable is damage, and refused.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::{JournalError, Record, RunHeader, RunStatus};
use crate::executor::FileHash;
use crate::plan::StepId;

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
    /// Steps started and not done (whether or not they failed since): to re-check on resume.
    pub started: BTreeMap<StepId, StartedStep>,
    /// Steps whose latest record is a failure, with the error.
    pub failed: BTreeMap<StepId, String>,
    /// Node name and actions of every step this run started (done or not).
    pub steps: BTreeMap<StepId, (String, Vec<String>)>,
    /// How the run ended; `None` if its process is still running or died.
    pub end: Option<RunStatus>,
    /// Problems met while reading that did not stop it (a torn last line).
    pub warnings: Vec<String>,
}

impl RunState {
    pub(super) fn empty(run: &str) -> Self {
        RunState {
            run: run.to_string(),
            header: RunHeader {
                fingerprint: String::new(),
                mode: String::new(),
                ca: String::new(),
                strategy: String::new(),
                chain: String::new(),
                generations: Vec::new(),
                params: serde_json::Value::Null,
            },
            started_at: String::new(),
            host: String::new(),
            pid: 0,
            resumes: 0,
            done: BTreeSet::new(),
            started: BTreeMap::new(),
            failed: BTreeMap::new(),
            steps: BTreeMap::new(),
            end: None,
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
                    mode: mode.clone(),
                    ca: ca.clone(),
                    strategy: strategy.clone(),
                    chain: chain.clone(),
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
            Record::StepDone { step, .. } => {
                self.started.remove(step);
                self.failed.remove(step);
                self.done.insert(*step);
            }
            Record::StepFailed { step, error, .. } => {
                self.failed.insert(*step, error.clone());
            }
            Record::RunEnd { status, .. } => self.end = Some(*status),
        }
    }
}

/// Rebuilds the latest run from the journal's text.
pub(super) fn last_run(path: &Path, text: &str) -> Result<Option<RunState>, JournalError> {
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
        if let Record::RunStart { run, .. } = &record {
            latest = Some(run.clone());
            latest_line = i;
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
