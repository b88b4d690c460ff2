//! Live progress of an `apply`, rendered three ways from the executor's events:
//! bars on an interactive terminal (an overall bar and one line per step in flight),
//! one timestamped line per event otherwise (readable in cron mail and logs), and NDJSON
//! on stdout for `--format json`. Colour is used only on a terminal and never under NO_COLOR.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::executor::{Event, EventSink};
use crate::plan::{actions_label, Action, StepId};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressFormat {
    /// Bars when stderr is a terminal, else lines.
    #[default]
    Auto,
    /// One timestamped line per event on stderr.
    Lines,
    /// One JSON object per event on stdout.
    Json,
}

/// An [`EventSink`] that shows progress.
pub struct Progress {
    inner: Inner,
}

enum Inner {
    Bars(Bars),
    Lines {
        out: Mutex<Box<dyn Write + Send>>,
        color: bool,
    },
    Json {
        out: Mutex<Box<dyn Write + Send>>,
    },
}

/// Whether to colour output: only on a terminal, and not when NO_COLOR is set to anything.
pub fn color_wanted(is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    is_terminal && no_color.is_none_or(|v| v.is_empty())
}

impl Progress {
    /// Progress for this process's stderr/stdout in `format`.
    pub fn new(format: ProgressFormat) -> Progress {
        let tty = std::io::stderr().is_terminal();
        let color = color_wanted(tty, std::env::var_os("NO_COLOR").as_deref());
        match format {
            ProgressFormat::Json => Progress::json(Box::new(std::io::stdout())),
            ProgressFormat::Auto if tty => Progress::bars(ProgressDrawTarget::stderr(), color),
            _ => Progress::lines(Box::new(std::io::stderr()), color),
        }
    }

    /// Timestamped lines to `out`.
    pub fn lines(out: Box<dyn Write + Send>, color: bool) -> Progress {
        Progress {
            inner: Inner::Lines {
                out: Mutex::new(out),
                color,
            },
        }
    }

    /// NDJSON to `out`, each event with a `time` field.
    pub fn json(out: Box<dyn Write + Send>) -> Progress {
        Progress {
            inner: Inner::Json {
                out: Mutex::new(out),
            },
        }
    }

    /// Bars drawn to `target`.
    pub fn bars(target: ProgressDrawTarget, color: bool) -> Progress {
        Progress {
            inner: Inner::Bars(Bars::new(target, color)),
        }
    }
}

impl EventSink for Progress {
    fn event(&self, event: &Event) {
        // Progress output is best effort: a closed pipe must not stop a rollover.
        match &self.inner {
            Inner::Bars(b) => b.event(event),
            Inner::Lines { out, color } => {
                let line = format!(
                    "{} {}\n",
                    timestamp(),
                    paint(event, &describe(event), *color)
                );
                let _ = lock(out).write_all(line.as_bytes());
            }
            Inner::Json { out } => {
                let _ = writeln!(lock(out), "{}", json_line(event));
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Only whole writes happen under the lock; a poisoned writer is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// UTC now at one-second precision, e.g. `2026-11-21T14:02:03Z`.
fn timestamp() -> String {
    let f = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::now_utc()
        .format(&f)
        .unwrap_or_else(|_| String::from("-"))
}

/// The event as one JSON object with a `time` field.
pub fn json_line(event: &Event) -> String {
    let mut v = serde_json::to_value(event).unwrap_or(serde_json::Value::Null);
    if let Some(map) = v.as_object_mut() {
        map.insert("time".into(), crate::journal::now_rfc3339().into());
    }
    v.to_string()
}

fn step_label(step: StepId, node: &str, actions: &[Action]) -> String {
    format!("step {step} {node} {}", actions_label(actions))
}

/// The event in words, without timestamp, e.g. `step 4 app1 leaf-swap done (312 ms)`, on
/// one line: an error carries what a node said, so control characters in it are shown as
/// escapes ([`super::escape::line`]), never obeyed by the terminal.
pub fn describe(event: &Event) -> String {
    let text = words(event);
    match super::escape::line(&text) {
        std::borrow::Cow::Borrowed(_) => text,
        std::borrow::Cow::Owned(escaped) => escaped,
    }
}

fn words(event: &Event) -> String {
    match event {
        Event::RunStarted {
            run,
            steps,
            already_done,
            parallel,
            resumed,
        } => {
            let verb = if *resumed { "resumed" } else { "started" };
            format!(
                "run {run} {verb}: {}, {already_done} already done, up to {parallel} at once",
                super::style::plural(*steps, "step")
            )
        }
        Event::StepSkipped {
            step,
            node,
            actions,
        } => {
            format!(
                "{} skipped (done in an earlier run)",
                step_label(*step, node, actions)
            )
        }
        Event::StepStarted {
            step,
            node,
            actions,
            recheck,
        } => {
            let how = if *recheck {
                "resumed: checking what the earlier attempt left on the node"
            } else {
                "started"
            };
            format!("{} {how}", step_label(*step, node, actions))
        }
        Event::StepRetry {
            step,
            node,
            actions,
            attempt,
            error,
            delay_ms,
        } => {
            format!(
                "{} retry {attempt} in {delay_ms} ms: {error}",
                step_label(*step, node, actions)
            )
        }
        Event::StepDone {
            step,
            node,
            actions,
            elapsed_ms,
            proof,
        } => match proof {
            None => format!(
                "{} done ({elapsed_ms} ms)",
                step_label(*step, node, actions)
            ),
            Some(proof) => format!(
                "{} done ({elapsed_ms} ms; {proof})",
                step_label(*step, node, actions)
            ),
        },
        Event::StepFailed {
            step,
            node,
            actions,
            error,
        } => {
            format!("{} failed: {error}", step_label(*step, node, actions))
        }
        Event::StepBlocked {
            step,
            node,
            actions,
            waiting_on,
        } => {
            format!(
                "{} blocked: waits for failed step {waiting_on}",
                step_label(*step, node, actions)
            )
        }
        Event::PoolWait {
            step,
            node,
            actions,
            pool,
            down,
            budget,
        } => format!(
            "{} waits for pool {pool}: {} of {budget} allowed unavailable ({})",
            step_label(*step, node, actions),
            down.len(),
            down.join(", ")
        ),
        Event::HealthGate {
            step,
            node,
            actions,
            pool,
            healthy_ms,
        } => format!(
            "{} confirmed: must stay healthy for {} before the next member of pool {pool} goes",
            step_label(*step, node, actions),
            crate::duration::format(Duration::from_millis(*healthy_ms))
        ),
        Event::PoolClosed { pool, until, wait } => {
            if *wait {
                format!("pool {pool}: every restart window is closed until {until}; waiting for it")
            } else {
                format!("pool {pool}: every restart window is closed until {until}; stopping here (--no-wait), `certroll apply` resumes")
            }
        }
        Event::PoolStopped {
            pool,
            node,
            step,
            error,
        } => format!(
            "pool {pool} stopped: member {node} (step {step}) failed, so no other member of {pool} restarts in this run; `certroll apply` resumes once {node} is back: {error}"
        ),
        Event::RunFinished {
            run,
            done,
            failed,
            blocked,
            complete,
            elapsed_ms,
        } => {
            let state = if *complete { "complete" } else { "incomplete" };
            let secs = *elapsed_ms as f64 / 1000.0;
            format!(
                "run {run} {state}: {done} done, {failed} failed, {blocked} blocked ({secs:.1} s)"
            )
        }
    }
}

/// Wraps `text` in the ANSI colour of the event's outcome when `color` is on.
fn paint(event: &Event, text: &str, color: bool) -> String {
    let code = match event {
        Event::StepDone { .. } | Event::RunFinished { complete: true, .. } => "32",
        Event::StepFailed { .. }
        | Event::PoolStopped { .. }
        | Event::RunFinished {
            complete: false, ..
        } => "31",
        Event::StepRetry { .. }
        | Event::StepBlocked { .. }
        | Event::PoolWait { .. }
        | Event::PoolClosed { .. } => "33",
        _ => return text.to_string(),
    };
    if color {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// The terminal view: an overall bar and a spinner per step in flight.
struct Bars {
    multi: MultiProgress,
    overall: ProgressBar,
    active: Mutex<HashMap<StepId, ProgressBar>>,
    color: bool,
}

impl Bars {
    fn new(target: ProgressDrawTarget, color: bool) -> Bars {
        let multi = MultiProgress::with_draw_target(target);
        let template = if color {
            "{elapsed_precise} [{bar:40.cyan/blue}] {pos}/{len} steps {msg}"
        } else {
            "{elapsed_precise} [{bar:40}] {pos}/{len} steps {msg}"
        };
        let overall = multi.add(ProgressBar::new(0).with_style(style(template)));
        Bars {
            multi,
            overall,
            active: Mutex::new(HashMap::new()),
            color,
        }
    }

    fn event(&self, event: &Event) {
        match event {
            Event::RunStarted { steps, .. } => self.overall.set_length(*steps as u64),
            Event::StepStarted {
                step,
                node,
                actions,
                ..
            } => {
                let spinner = self
                    .multi
                    .add(ProgressBar::new_spinner().with_style(style("  {spinner} {msg}")));
                spinner.set_message(step_label(*step, node, actions));
                spinner.enable_steady_tick(Duration::from_millis(120));
                lock(&self.active).insert(*step, spinner);
            }
            Event::StepRetry { step, .. } => {
                if let Some(s) = lock(&self.active).get(step) {
                    s.set_message(describe(event));
                }
            }
            Event::StepDone { step, .. } | Event::StepFailed { step, .. } => {
                self.finish(*step, event)
            }
            Event::StepSkipped { .. } => self.overall.inc(1),
            Event::StepBlocked { .. }
            | Event::PoolWait { .. }
            | Event::PoolStopped { .. }
            | Event::PoolClosed { .. } => self.print(event, true),
            Event::HealthGate { step, .. } => {
                if let Some(s) = lock(&self.active).get(step) {
                    s.set_message(describe(event));
                }
            }
            Event::RunFinished { complete, .. } => {
                // `finish` would fill the bar; an incomplete run keeps its real count.
                if *complete {
                    self.overall.finish();
                } else {
                    self.overall.abandon();
                }
                self.print(event, false);
            }
        }
    }

    fn finish(&self, step: StepId, event: &Event) {
        if let Some(s) = lock(&self.active).remove(&step) {
            s.finish_and_clear();
            self.multi.remove(&s);
        }
        self.print(event, true);
    }

    /// Prints a line above the bars; `count` advances the overall bar.
    fn print(&self, event: &Event, count: bool) {
        let _ = self
            .multi
            .println(paint(event, &describe(event), self.color));
        if count {
            self.overall.inc(1);
        }
    }
}

fn style(template: &str) -> ProgressStyle {
    // The templates are constants of this file; a typo would show as a plain default bar.
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

#[cfg(test)]
#[path = "progress_tests.rs"]
mod tests;
