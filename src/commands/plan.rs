//! `certroll plan`: compute and print the plan (a dry run), optionally prove it.

use crate::output::style::plural;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use super::{select_ca, CaGenerations, CommandError};
use crate::exit;
use crate::inventory::Inventory;
use crate::output::plan::{dot, json_to, text_to, PlanView};
use crate::output::{unless_reader_left, Format, Style};
use crate::pki::CaStore;
use crate::plan::{Plan, RotationState};
use crate::session::decide::{decide, Intent};
use crate::session::holdings::start_of;
use crate::session::rollback;
use crate::simulate::{check_with, CheckError, CheckOptions, CheckReport, Start};
use crate::transport::HostKeyPolicy;

/// Arguments of `certroll plan`.
#[derive(Debug, Clone, Default)]
pub struct PlanArgs {
    pub inventory: PathBuf,
    pub ca: Option<String>,
    /// `--rotate`, `--strategy`, `--chain`.
    pub intent: Intent,
    pub format: Format,
    pub check: bool,
    /// Random orders tried by `--check`.
    pub orders: usize,
    pub detailed_exitcode: bool,
}

/// What the planner decided, with the generations it talks about.
pub struct Planned {
    pub inv: Inventory,
    pub plan: Plan,
    pub current: Option<u32>,
    pub next: Option<u32>,
    /// A rollback: how far the rotation got, where `--check` starts from.
    pub start: Option<RotationState>,
}

impl Planned {
    pub fn view(&self) -> PlanView<'_> {
        PlanView {
            inv: &self.inv,
            plan: &self.plan,
            current: self.current,
            next: self.next,
        }
    }
}

/// Builds the plan `plan`/`apply` would carry out, without touching any node.
///
/// Without `--rotate`: a CA never created means bootstrap of every member; otherwise the
/// nodes' certificates are read (as `apply` does) to find what to install or renew.
pub fn build(inv: Inventory, args: &PlanArgs) -> Result<Planned, CommandError> {
    let ca = select_ca(&inv, args.ca.as_deref())?;
    let spec = &inv.cas[ca];
    let store = CaStore::new(&inv.state_dir);
    let gens = CaGenerations::read(&store, spec)?;
    let (current, next) = gens.numbers();
    if args.intent.rollback {
        let last = super::open_state(&inv)?.read_last_run(Some(&spec.name))?;
        let connector = super::connector(&inv, HostKeyPolicy::default());
        let found = rollback::find(
            &inv,
            ca,
            &gens,
            last.as_ref(),
            &*connector,
            args.intent.parallel.max(1),
        )?;
        for w in &found.warnings {
            crate::errln!("warning: {}", crate::output::escape::block(w));
        }
        return Ok(Planned {
            inv,
            plan: found.plan,
            current,
            next,
            start: Some(found.state),
        });
    }
    let mut plan = decide(
        &inv,
        ca,
        &gens,
        || super::connector(&inv, HostKeyPolicy::default()),
        args.intent,
    )?;
    if plan.mode == crate::plan::Mode::Rotate {
        let expires = gens.current.as_ref().map(|c| c.not_after);
        let now = time::OffsetDateTime::now_utc();
        plan.notes
            .extend(crate::plan::window_fit(&plan, &inv, now, expires));
    }
    Ok(Planned {
        inv,
        plan,
        current,
        next,
        start: None,
    })
}

/// Runs `certroll plan` and returns the exit code.
pub fn run(args: &PlanArgs) -> Result<i32, CommandError> {
    let (inv, _state) = super::load_with_state(&args.inventory)?;
    let planned = build(inv, args)?;
    let view = planned.view();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let written = match args.format {
        Format::Text | Format::Prometheus => text_to(&view, Style::stdout(), &mut out),
        Format::Json => json_to(&view, &mut out),
        Format::Dot => out.write_all(dot(&view).as_bytes()),
    }
    .and_then(|()| out.flush());
    if written
        .as_ref()
        .is_err_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    {
        crate::console::stdout_gone();
    }
    unless_reader_left(written).context("failed to write the plan to standard output")?;
    drop(out);
    let code = if args.detailed_exitcode && !planned.plan.is_empty() {
        exit::PLAN_HAS_WORK
    } else {
        exit::OK
    };
    // The plan's reader left and the check's verdict would go down the same pipe: nobody
    // can read anything more, so the command ends quietly (as `grep | head` does).
    if args.check && crate::console::nobody_reads_stderr_after_stdout() {
        std::mem::forget(planned);
        return Ok(code);
    }
    if args.check {
        let opts = CheckOptions {
            random_orders: args.orders,
            ..CheckOptions::default()
        };
        let start = start_of(&planned.inv, &planned.plan, || {
            super::connector(&planned.inv, HostKeyPolicy::default())
        })?;
        let report = prove(&planned, opts, start)
            .map_err(|e| CommandError::Other(anyhow::Error::new(e).context("plan check FAILED")))?;
        let style = Style::stderr();
        crate::errln!(
            "{} {} × {}, {}, {}: every link stayed up",
            style.green("plan check passed:"),
            plural(report.orders, "order"),
            plural(report.steps, "step"),
            plural(report.links, "link"),
            plural(report.handshakes, "distinct handshake"),
        );
    }
    // The process ends right after this: freeing millions of small allocations one by
    // one (a tenth of the run on a 100,000-node fleet) would only delay the exit.
    std::mem::forget(planned);
    Ok(code)
}

/// `--check`: the plan from the state it starts in. A rollback starts from the files the
/// rotation left, checked twice: with every interrupted step on its node, and with none.
fn prove(planned: &Planned, opts: CheckOptions, start: Start) -> Result<CheckReport, CheckError> {
    let Some(state) = &planned.start else {
        return check_with(&planned.inv, &planned.plan, opts, &start);
    };
    let (inv, plan) = (&planned.inv, &planned.plan);
    let reached = Start {
        rotated: state.start_files(true),
        ..start.clone()
    };
    let mut report = check_with(inv, plan, opts, &reached)?;
    let not_reached = Start {
        rotated: state.start_files(false),
        ..start
    };
    let without = check_with(inv, plan, opts, &not_reached)?;
    report.orders += without.orders;
    report.handshakes += without.handshakes;
    Ok(report)
}
