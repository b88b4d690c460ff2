//! Tests of the progress renderers.

use std::io::Write;
use std::sync::{Arc, Mutex};

use super::*;

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buf {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

fn events() -> Vec<Event> {
    let a = vec![Action::LeafSwap];
    vec![
        Event::RunStarted {
            run: "r1".into(),
            steps: 5,
            already_done: 1,
            parallel: 16,
            resumed: true,
        },
        Event::StepSkipped {
            step: 0,
            node: "lb1".into(),
            actions: vec![Action::TrustAdd],
        },
        Event::StepStarted {
            step: 4,
            node: "app1".into(),
            actions: a.clone(),
            recheck: false,
        },
        Event::StepRetry {
            step: 4,
            node: "app1".into(),
            actions: a.clone(),
            attempt: 1,
            error: "connection reset".into(),
            delay_ms: 200,
        },
        Event::StepDone {
            step: 4,
            node: "app1".into(),
            actions: a.clone(),
            elapsed_ms: 312,
            proof: None,
        },
        Event::StepFailed {
            step: 5,
            node: "app2".into(),
            actions: a.clone(),
            error: "permission denied".into(),
        },
        Event::StepBlocked {
            step: 6,
            node: "db1".into(),
            actions: vec![Action::TrustPrune],
            waiting_on: 5,
        },
        Event::RunFinished {
            run: "r1".into(),
            done: 2,
            failed: 1,
            blocked: 1,
            complete: false,
            elapsed_ms: 1500,
        },
    ]
}

#[test]
fn lines_are_timestamped_and_readable() {
    let buf = Buf::default();
    let p = Progress::lines(Box::new(buf.clone()), false);
    for e in events() {
        p.event(&e);
    }
    let text = buf.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 8);
    for l in &lines {
        let (ts, _) = l.split_once(' ').unwrap();
        assert!(
            time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339).is_ok(),
            "{l}"
        );
        assert!(ts.ends_with('Z') && ts.len() == 20, "{l}");
        assert!(!l.contains('\x1b'), "no colour when disabled: {l:?}");
    }
    let rest = |i: usize| lines[i].split_once(' ').unwrap().1.to_string();
    assert_eq!(
        rest(0),
        "run r1 resumed: 5 steps, 1 already done, up to 16 at once"
    );
    assert_eq!(
        rest(1),
        "step 0 lb1 trust-add skipped (done in an earlier run)"
    );
    assert_eq!(
        rest(3),
        "step 4 app1 leaf-swap retry 1 in 200 ms: connection reset"
    );
    assert_eq!(rest(4), "step 4 app1 leaf-swap done (312 ms)");
    assert_eq!(rest(5), "step 5 app2 leaf-swap failed: permission denied");
    assert_eq!(
        rest(6),
        "step 6 db1 trust-prune blocked: waits for failed step 5"
    );
    assert_eq!(
        rest(7),
        "run r1 incomplete: 2 done, 1 failed, 1 blocked (1.5 s)"
    );
}

#[test]
fn colour_only_when_wanted() {
    let buf = Buf::default();
    let p = Progress::lines(Box::new(buf.clone()), true);
    p.event(&events()[4]);
    assert!(
        buf.text()
            .contains("\x1b[32mstep 4 app1 leaf-swap done (312 ms)\x1b[0m"),
        "{:?}",
        buf.text()
    );
    let no = std::ffi::OsStr::new("1");
    assert!(color_wanted(true, None));
    assert!(!color_wanted(true, Some(no)), "NO_COLOR=1 disables colour");
    assert!(
        color_wanted(true, Some(std::ffi::OsStr::new(""))),
        "an empty NO_COLOR is ignored"
    );
    assert!(!color_wanted(false, None), "no colour off a terminal");
}

#[test]
fn json_is_one_tagged_object_per_line() {
    let buf = Buf::default();
    let p = Progress::json(Box::new(buf.clone()));
    for e in events() {
        p.event(&e);
    }
    let text = buf.text();
    let values: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(values.len(), 8);
    assert_eq!(values[4]["event"], "step-done");
    assert_eq!(values[4]["elapsed_ms"], 312);
    assert_eq!(values[4]["node"], "app1");
    assert_eq!(values[6]["waiting_on"], 5);
    assert!(values
        .iter()
        .all(|v| v["time"].as_str().is_some_and(|t| t.ends_with('Z'))));
}

#[test]
fn bars_track_every_step_once() {
    let p = Progress::bars(ProgressDrawTarget::hidden(), false);
    let Inner::Bars(bars) = &p.inner else {
        panic!("expected bars")
    };
    for e in events() {
        p.event(&e);
    }
    // skipped + done + failed + blocked.
    assert_eq!(bars.overall.position(), 4);
    assert!(
        bars.active.lock().unwrap().is_empty(),
        "finished steps leave the active list"
    );
    assert!(bars.overall.is_finished());
}
