//! The background worker on the sample models: progress order, cancellation latency, panic
//! containment, superseded and coalesced evaluations, clean shutdown, and the waker.
//!
//! Events are awaited with generous timeouts (never sleeps), so a slow machine makes the tests
//! slower, not flaky. Measured figures are printed with `eprintln!` (run with `--nocapture`).

mod analysis;
mod configuration;
mod jobs;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use quantbench_core::data::DataSource;
use quantbench_core::model::ModelSummary;
use quantbench_core::quant::LayerConfig;
use quantbench_core::simulate::Evaluation;
use quantbench_core::worker::{Command, DataRole, Event, JobId, STAGE_FLOAT_REFERENCE, Worker, WorkerHandle};
use quantbench_tests::sample;

/// Longest wait for one event: generous, for a slow 2-core machine running tests in parallel.
const PATIENCE: Duration = Duration::from_mins(1);
/// The bound the issue sets on cancellation.
const CANCEL_BOUND: Duration = Duration::from_millis(250);

/// A worker whose waker counts its calls.
fn spawn() -> (WorkerHandle, Arc<AtomicUsize>) {
    let wakes = Arc::new(AtomicUsize::new(0));
    let w = Arc::clone(&wakes);
    let handle = Worker::spawn(Box::new(move || {
        w.fetch_add(1, Ordering::Relaxed);
    }))
    .expect("spawn worker");
    (handle, wakes)
}

fn send(h: &WorkerHandle, command: Command) -> JobId {
    h.send(command).expect("send")
}

fn next(h: &WorkerHandle, seen: &[Event]) -> Event {
    h.recv_timeout(PATIENCE).unwrap_or_else(|| panic!("no event within {PATIENCE:?}; so far: {seen:#?}"))
}

/// Receives events until the terminal event of `job`; returns every event received, in order.
fn until_done(h: &WorkerHandle, job: JobId) -> Vec<Event> {
    let mut events = Vec::new();
    loop {
        let e = next(h, &events);
        let done = e.job() == job && e.is_terminal();
        events.push(e);
        if done {
            return events;
        }
    }
}

/// Receives events until `pred` holds for one; returns every event received, in order.
fn until(h: &WorkerHandle, pred: impl Fn(&Event) -> bool) -> Vec<Event> {
    let mut events = Vec::new();
    loop {
        let e = next(h, &events);
        let hit = pred(&e);
        events.push(e);
        if hit {
            return events;
        }
    }
}

/// The terminal event of `job` among `events`.
fn terminal(events: &[Event], job: JobId) -> &Event {
    events.iter().find(|e| e.job() == job && e.is_terminal()).unwrap_or_else(|| panic!("no end of {job}: {events:#?}"))
}

fn source(name: &str, file: &str) -> DataSource {
    DataSource::Npz(sample(name, file))
}

/// Loads `name` with its calibration and evaluation sets, sending every command at once (they
/// take effect in order), and calibrates when asked. Returns the summary and recipe revision.
fn setup(h: &WorkerHandle, name: &str, calibrate: bool) -> (ModelSummary, u64) {
    let load = send(h, Command::LoadModel { path: sample(name, "model.onnx") });
    let calib = send(h, Command::LoadCalibration { source: source(name, "calib.npz") });
    let eval = send(h, Command::LoadEvaluation { source: source(name, "eval.npz") });
    let cal = calibrate.then(|| send(h, Command::Calibrate));
    let events = until_done(h, cal.unwrap_or(eval));
    let Event::ModelLoaded { summary, .. } = terminal(&events, load) else { panic!("{events:#?}") };
    let ok = |job, role| matches!(terminal(&events, job), Event::DataLoaded { role: r, .. } if *r == role);
    assert!(ok(calib, DataRole::Calibration) && ok(eval, DataRole::Evaluation), "{events:#?}");
    let revision = match cal.map(|c| terminal(&events, c)) {
        Some(Event::Calibrated { revision, measured, .. }) => {
            assert!(measured.calibration.is_some());
            *revision
        }
        None => 1,
        Some(other) => panic!("calibration failed: {other:?}"),
    };
    (*summary.clone(), revision)
}

fn progress_of(events: &[Event], job: JobId) -> Vec<(String, usize, usize)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Progress { job: j, stage, done, total } if *j == job => Some((stage.clone(), *done, *total)),
            _ => None,
        })
        .collect()
}

/// Progress of one job: each stage's `done` rises, stages come in `stage_order` (those seen),
/// and the last report is complete.
fn check_progress(progress: &[(String, usize, usize)], stage_order: &[String]) {
    assert!(!progress.is_empty(), "no progress at all");
    let rank = |s: &str| stage_order.iter().position(|o| o == s).unwrap_or_else(|| panic!("unknown stage {s}"));
    for w in progress.windows(2) {
        let ((s0, d0, _), (s1, d1, _)) = (&w[0], &w[1]);
        let (r0, r1) = (rank(s0), rank(s1));
        assert!(r0 < r1 || (r0 == r1 && d0 < d1), "progress out of order: {w:?}");
    }
    let (stage, done, total) = progress.last().expect("non-empty");
    assert_eq!(done, total, "the last progress ({stage}) is complete: {progress:?}");
    assert_eq!(stage, stage_order.last().expect("stages"), "progress ends with the last stage");
}

/// Waits until `job` reports unfinished progress in a stage `in_stage` accepts (so it is really
/// running, with work left); panics if it ends first.
fn until_running(h: &WorkerHandle, job: JobId, in_stage: impl Fn(&str) -> bool) {
    let seen = until(h, |e| match e {
        Event::Progress { job: j, stage, done, total } => *j == job && in_stage(stage) && done < total,
        e => e.job() == job && e.is_terminal(),
    });
    assert!(matches!(seen.last(), Some(Event::Progress { .. })), "{job} ended before it was seen running: {seen:#?}");
}

/// The stages of an evaluation proper (after the float reference).
fn evaluating(stage: &str) -> bool {
    stage != STAGE_FLOAT_REFERENCE
}

/// Sends `Cancel` once `job` reports progress in a stage `in_stage` accepts, and returns the time
/// until `Cancelled`.
fn cancel_latency(h: &WorkerHandle, job: JobId, in_stage: impl Fn(&str) -> bool) -> Duration {
    until_running(h, job, in_stage);
    let sent = Instant::now();
    send(h, Command::Cancel { job });
    let events = until_done(h, job);
    let latency = sent.elapsed();
    assert_eq!(terminal(&events, job), &Event::Cancelled { job }, "{events:#?}");
    latency
}

fn evaluated(events: &[Event], job: JobId) -> (u64, Evaluation) {
    match terminal(events, job) {
        Event::Evaluated { revision, evaluation, .. } => (*revision, (**evaluation).clone()),
        other => panic!("{job} did not evaluate: {other:?}"),
    }
}

fn four_bit_weights() -> LayerConfig {
    let mut c = LayerConfig::default();
    c.weight.bits = 4;
    c
}
