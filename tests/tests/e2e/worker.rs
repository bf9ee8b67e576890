//! The background worker on the sample models: progress order, cancellation latency, panic
//! containment, superseded and coalesced evaluations, clean shutdown, and the waker.
//!
//! Events are awaited with generous timeouts (never sleeps), so a slow machine makes the tests
//! slower, not flaky. Measured figures are printed with `eprintln!` (run with `--nocapture`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use quantbench_core::calibrate::RecipeFile;
use quantbench_core::data::DataSource;
use quantbench_core::model::ModelSummary;
use quantbench_core::plan::Measured;
use quantbench_core::quant::LayerConfig;
use quantbench_core::simulate::Evaluation;
use quantbench_core::worker::{
    Command, DataRole, DebugCommand, Event, INJECTED_PANIC, JobId, JobKind, STAGE_CALIBRATION, STAGE_FLOAT_REFERENCE,
    Worker, WorkerHandle, WorkerOptions,
};
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

#[test]
fn progress_arrives_in_order_and_ends_with_completion() {
    let (h, wakes) = spawn();
    let (summary, revision) = setup(&h, "mobilenet", false);
    let started = Instant::now();
    let cal = send(&h, Command::Calibrate);
    let events = until_done(&h, cal);
    let calibration_ms = started.elapsed().as_millis();
    assert_eq!(events.first(), Some(&Event::Started { job: cal, kind: JobKind::Calibrate }));
    let Some(Event::Calibrated { revision: cal_rev, measured, .. }) = events.last() else { panic!("{events:#?}") };
    assert_eq!(*cal_rev, revision + 1, "calibration is a new recipe revision");
    assert_eq!(measured.calibration.as_ref().map(|c| c.num_samples), Some(256));
    let progress = progress_of(&events, cal);
    let calibration_progress = progress.len();
    check_progress(&progress, &[STAGE_CALIBRATION.to_string()]);
    assert!(progress.iter().all(|(_, _, total)| *total == 256), "{progress:?}");

    let started = Instant::now();
    let eval = send(&h, Command::Evaluate);
    let events = until_done(&h, eval);
    let evaluation_ms = started.elapsed().as_millis();
    assert_eq!(events.first(), Some(&Event::Started { job: eval, kind: JobKind::Evaluate }));
    let Some(Event::Evaluated { revision, evaluation, .. }) = events.last() else { panic!("{events:#?}") };
    assert_eq!(*revision, *cal_rev);
    assert_eq!(evaluation.predictions_quant.len(), 397);
    let mut stages = vec![STAGE_FLOAT_REFERENCE.to_string(), "quantized model".to_string()];
    stages.extend(summary.layers.iter().map(|l| format!("layer {}", l.name)));
    let progress = progress_of(&events, eval);
    check_progress(&progress, &stages);
    assert_eq!(progress[0], (STAGE_FLOAT_REFERENCE.to_string(), 0, 397), "the float reference comes first");
    eprintln!(
        "worker progress: calibration {calibration_ms} ms ({} progress events), first evaluation {evaluation_ms} ms \
         ({} progress events)",
        calibration_progress,
        progress.len()
    );
    // Every event sent was followed by a wake-up.
    let received = wakes.load(Ordering::Relaxed);
    assert!(received >= events.len(), "waker called {received} times for at least {} events", events.len());
    h.shutdown();
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

#[test]
fn cancel_during_calibration_ends_the_job_within_250_ms() {
    let (h, _) = spawn();
    setup(&h, "mobilenet", false);
    let cal = send(&h, Command::Calibrate);
    // A queued job is cancelled at once, without running.
    let queued = send(&h, Command::Evaluate);
    send(&h, Command::Cancel { job: queued });
    let latency = cancel_latency(&h, cal, |s| s == STAGE_CALIBRATION);
    eprintln!("worker cancel latency during calibration (mobilenet): {:.1} ms", latency.as_secs_f64() * 1e3);
    assert!(latency < CANCEL_BOUND, "cancel took {latency:?}");
    // The worker goes on serving: the cancelled calibration left no calibration behind.
    let eval = send(&h, Command::Evaluate);
    let events = until_done(&h, eval);
    assert!(!events.iter().any(|e| e.job() == queued && e != &Event::Cancelled { job: queued }), "{events:#?}");
    let Event::Failed { error, .. } = terminal(&events, eval) else { panic!("{events:#?}") };
    assert!(error.contains("no calibration"), "{error}");
    h.shutdown();
}

#[test]
fn cancel_during_evaluation_ends_the_job_within_250_ms() {
    let (h, _) = spawn();
    setup(&h, "mobilenet", true);
    let eval = send(&h, Command::Evaluate);
    let latency = cancel_latency(&h, eval, evaluating);
    eprintln!("worker cancel latency during evaluation (mobilenet): {:.1} ms", latency.as_secs_f64() * 1e3);
    assert!(latency < CANCEL_BOUND, "cancel took {latency:?}");
    // The next evaluation runs to the end (on the float reference the cancelled one built).
    let again = send(&h, Command::Evaluate);
    let events = until_done(&h, again);
    assert!(matches!(terminal(&events, again), Event::Evaluated { .. }), "{events:#?}");
    assert!(progress_of(&events, again).iter().all(|(s, _, _)| s != STAGE_FLOAT_REFERENCE), "reference reused");
    h.shutdown();
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

#[test]
fn an_injected_panic_fails_the_job_and_the_worker_keeps_its_state() {
    let (h, _) = spawn();
    let (summary, _) = setup(&h, "cnn", true);
    let layer = summary.layers[0].name.clone();
    let change = send(&h, Command::UpdateLayer { layer: layer.clone(), config: Some(four_bit_weights()) });
    let events = until(&h, |e| matches!(e, Event::RecipeChanged { job, .. } if *job == change));
    let Some(Event::RecipeChanged { revision, evaluation: Some(auto), .. }) = events.last() else {
        panic!("a config change with model, calibration and evaluation set triggers an evaluation: {events:#?}")
    };
    let (revision, auto) = (*revision, *auto);
    let events = until_done(&h, auto);
    let (rev, before) = evaluated(&events, auto);
    assert_eq!(rev, revision);
    let dir = tempfile::tempdir().expect("tempdir");
    let recipe_before = read_back(&h, dir.path(), "before");

    let boom = send(&h, Command::Debug(DebugCommand::PanicInEvaluation));
    let events = until_done(&h, boom);
    let Event::Failed { error, .. } = terminal(&events, boom) else { panic!("{events:#?}") };
    assert_eq!(error, &format!("internal error: {INJECTED_PANIC}"));

    let eval = send(&h, Command::Evaluate);
    let events = until_done(&h, eval);
    let (rev, after) = evaluated(&events, eval);
    assert_eq!(rev, revision, "the panic changed nothing");
    assert_eq!(after, before, "same recipe, same data: same results");
    assert_eq!(after.layers[0].w_bits, Some(4), "the override survived");
    assert_eq!(read_back(&h, dir.path(), "after"), recipe_before, "the recipe read back is unchanged");
    // And config changes go on evaluating (incrementally, from the last evaluation's state).
    let change = send(&h, Command::UpdateLayer { layer, config: None });
    let events = until(&h, |e| matches!(e, Event::RecipeChanged { job, .. } if *job == change));
    let Some(Event::RecipeChanged { evaluation: Some(auto), .. }) = events.last() else { panic!("{events:#?}") };
    let auto = *auto;
    let (_, restored) = evaluated(&until_done(&h, auto), auto);
    // Back to the defaults, which follow this CPU's runtime profile (7-bit weights without VNNI).
    let default_bits = quantbench_core::quant::RuntimeProfile::detect().default_weight_bits();
    assert_eq!(restored.layers[0].w_bits, Some(default_bits));
    h.shutdown();
}

#[test]
fn a_config_change_supersedes_the_running_evaluation() {
    let (h, _) = spawn();
    setup(&h, "mobilenet", true);
    let mut config = LayerConfig::default();
    config.weight.bits = 6;
    let first = send(&h, Command::SetDefaults { config });
    let events = until(&h, |e| e.job() == first);
    let Some(Event::RecipeChanged { revision: r1, evaluation: Some(k1), .. }) = events.last() else {
        panic!("{events:#?}")
    };
    let (r1, k1) = (*r1, *k1);
    // Make sure the first evaluation is really running before the second change.
    until_running(&h, k1, evaluating);
    config.weight.bits = 5;
    let second = send(&h, Command::SetDefaults { config });
    let events = until(&h, |e| e.job() == second);
    let Some(Event::RecipeChanged { revision: r2, evaluation: Some(k2), .. }) = events.last() else {
        panic!("{events:#?}")
    };
    let (r2, k2) = (*r2, *k2);
    assert!(r2 > r1 && k2 > k1, "a new revision and a new evaluation job");
    let mut all = events;
    all.extend(until_done(&h, k2));
    // The contract: a superseded evaluation ends in `Superseded`, never `Evaluated`; every
    // `Evaluated` is for the newest revision.
    assert_eq!(terminal(&all, k1), &Event::Superseded { job: k1 }, "{all:#?}");
    let (rev, e) = evaluated(&all, k2);
    assert_eq!(rev, r2);
    assert!(e.layers.iter().filter_map(|l| l.w_bits).all(|b| b == 5), "evaluated the newest recipe");
    for ev in &all {
        if let Event::Evaluated { revision, .. } = ev {
            assert_eq!(*revision, r2, "{ev:?}");
        }
    }
    h.shutdown();
}

#[test]
fn a_burst_of_50_config_changes_causes_at_most_3_evaluations() {
    let (h, _) = spawn();
    let (summary, _) = setup(&h, "mobilenet", true);
    let mut changes = Vec::new();
    for i in 0..50_usize {
        let layer = summary.layers[i % summary.layers.len()].name.clone();
        let mut config = LayerConfig::default();
        config.weight.bits = 8 - (i % 5) as u8;
        changes.push(send(&h, Command::UpdateLayer { layer, config: Some(config) }));
    }
    let last = *changes.last().expect("changes");
    let mut events = until(&h, |e| e.job() == last);
    let Some(Event::RecipeChanged { revision, evaluation: Some(eval), .. }) = events.last() else {
        panic!("{events:#?}")
    };
    let (revision, eval) = (*revision, *eval);
    events.extend(until_done(&h, eval));
    let (rev, _) = evaluated(&events, eval);
    assert_eq!(rev, revision);
    let changed = events.iter().filter(|e| matches!(e, Event::RecipeChanged { .. })).count();
    assert_eq!(changed, 50, "every change is acknowledged");
    let started: Vec<JobId> = events
        .iter()
        .filter_map(|e| match e {
            Event::Started { job, kind: JobKind::Evaluate } => Some(*job),
            _ => None,
        })
        .collect();
    eprintln!("worker: a burst of 50 config changes started {} evaluation(s): {started:?}", started.len());
    assert!((1..=3).contains(&started.len()), "{started:?}");
    for job in &started[..started.len() - 1] {
        assert_eq!(terminal(&events, *job), &Event::Superseded { job: *job });
    }
    // Nothing else is on its way.
    assert_eq!(h.recv_timeout(Duration::from_millis(300)), None);
    h.shutdown();
}

#[test]
fn shutdown_joins_the_worker_promptly_while_a_job_runs() {
    let (h, _) = spawn();
    setup(&h, "mobilenet", false);
    let cal = send(&h, Command::Calibrate);
    until_running(&h, cal, |_| true);
    let started = Instant::now();
    h.shutdown();
    let took = started.elapsed();
    eprintln!("worker shutdown during calibration: {:.1} ms", took.as_secs_f64() * 1e3);
    assert!(took < Duration::from_secs(1), "shutdown took {took:?}");
}

#[test]
fn missing_state_and_core_errors_arrive_as_failed_events() {
    let (h, _) = spawn();
    let failed = |job: JobId| -> String {
        let events = until_done(&h, job);
        match terminal(&events, job) {
            Event::Failed { error, .. } => error.clone(),
            other => panic!("{job} did not fail: {other:?}"),
        }
    };
    let e = failed(send(&h, Command::Calibrate));
    assert!(e.contains("no model is loaded"), "{e}");
    let e = failed(send(&h, Command::SetDefaults { config: LayerConfig::default() }));
    assert!(e.contains("no model is loaded"), "{e}");
    let e = failed(send(&h, Command::LoadModel { path: sample("mlp", "missing.onnx") }));
    assert!(e.starts_with("cannot read model") && e.ends_with("missing.onnx"), "{e}");
    let load = send(&h, Command::LoadModel { path: sample("mlp", "model.onnx") });
    assert!(matches!(terminal(&until_done(&h, load), load), Event::ModelLoaded { .. }));
    let e = failed(send(&h, Command::Calibrate));
    assert!(e.contains("no calibration data is loaded"), "{e}");
    let e = failed(send(&h, Command::Evaluate));
    assert!(e.contains("no evaluation data is loaded"), "{e}");
    let e = failed(send(&h, Command::LoadEvaluation { source: source("cnn", "eval.npz") }));
    assert!(e.contains("eval.npz"), "a data set of another model is refused: {e}");
    let e = failed(send(&h, Command::UpdateLayer { layer: "nope".into(), config: None }));
    assert!(e.contains("'nope' is not a quantizable layer"), "{e}");
    // Without a calibration, an evaluation fails with core's message (and no evaluation is
    // triggered by config changes).
    let eval = send(&h, Command::LoadEvaluation { source: source("mlp", "eval.npz") });
    until_done(&h, eval);
    let e = failed(send(&h, Command::Evaluate));
    assert!(e.contains("calibrate"), "{e}");
    let change = send(&h, Command::SetDefaults { config: four_bit_weights() });
    let events = until_done(&h, change);
    assert!(matches!(terminal(&events, change), Event::RecipeChanged { evaluation: None, .. }), "{events:#?}");
    h.shutdown();
}

#[test]
fn exports_go_through_the_worker() {
    use quantbench_core::worker::ExportKind;
    let (h, _) = spawn();
    let dir = tempfile::tempdir().expect("tempdir");
    // Without a model the export fails with a message, and the worker keeps serving.
    let early = send(&h, Command::Export { kind: ExportKind::Recipe, path: dir.path().join("early.json") });
    let events = until_done(&h, early);
    assert!(matches!(terminal(&events, early), Event::Failed { .. }), "{events:#?}");
    setup(&h, "mlp", true);
    for (kind, file) in
        [(ExportKind::QdqModel, "q.onnx"), (ExportKind::Encodings, "enc.json"), (ExportKind::Recipe, "r.json")]
    {
        let path = dir.path().join(file);
        let job = send(&h, Command::Export { kind, path: path.clone() });
        let events = until_done(&h, job);
        match terminal(&events, job) {
            Event::Exported { kind: k, path: p, .. } => assert_eq!((*k, p), (kind, &path)),
            other => panic!("{kind:?}: {other:?}"),
        }
        assert!(path.is_file(), "{kind:?} written");
    }
    let file = RecipeFile::load(&dir.path().join("r.json")).expect("recipe reloads");
    assert!(file.calibration.is_some(), "the exported recipe carries the calibration");
    h.shutdown();
}

/// The worker's current recipe, read back through a recipe export.
fn read_back(h: &WorkerHandle, dir: &std::path::Path, tag: &str) -> RecipeFile {
    use quantbench_core::worker::ExportKind;
    let path = dir.join(format!("{tag}.recipe.json"));
    let job = send(h, Command::Export { kind: ExportKind::Recipe, path: path.clone() });
    let events = until_done(h, job);
    assert!(matches!(terminal(&events, job), Event::Exported { .. }), "{events:#?}");
    RecipeFile::load(&path).expect("the exported recipe loads")
}

/// The defaults `configure` sets: percentile activations.
fn percentile_defaults() -> LayerConfig {
    let mut defaults = LayerConfig::default();
    defaults.activation.observer = quantbench_core::observe::Observer::Percentile { percentile: 99.9 };
    defaults
}

/// Sends a config change and returns the evaluation it triggers (not awaited).
fn change(h: &WorkerHandle, command: Command) -> JobId {
    let job = send(h, command);
    let events = until(h, |e| e.job() == job);
    let Some(Event::RecipeChanged { evaluation: Some(auto), .. }) = events.last() else { panic!("{events:#?}") };
    *auto
}

/// Sets new defaults and an override on the first layer, and waits for the evaluation they
/// trigger; returns it.
fn configure(h: &WorkerHandle, summary: &ModelSummary) -> Evaluation {
    send(h, Command::SetDefaults { config: percentile_defaults() });
    let auto =
        change(h, Command::UpdateLayer { layer: summary.layers[0].name.clone(), config: Some(four_bit_weights()) });
    evaluated(&until_done(h, auto), auto).1
}

/// A cancelled calibration and a cancelled evaluation leave the worker serving, with the user's
/// recipe (defaults, override, calibration) and data sets as they were.
#[test]
fn cancelled_jobs_leave_the_configuration_intact() {
    let (h, _) = spawn();
    let (summary, _) = setup(&h, "mobilenet", true);
    let before = configure(&h, &summary);
    let dir = tempfile::tempdir().expect("tempdir");
    let recipe = read_back(&h, dir.path(), "before");
    assert_eq!(recipe.recipe.layers.get(&summary.layers[0].name).map(|c| c.weight.bits), Some(4));

    let cal = send(&h, Command::Calibrate);
    cancel_latency(&h, cal, |s| s == STAGE_CALIBRATION);
    assert_eq!(read_back(&h, dir.path(), "after_calibration"), recipe, "a cancelled calibration changed the recipe");

    // A change whose evaluation is cancelled: the change itself is the user's and stays.
    let mut six = percentile_defaults();
    six.weight.bits = 6;
    let eval = change(&h, Command::SetDefaults { config: six });
    cancel_latency(&h, eval, evaluating);
    let changed = read_back(&h, dir.path(), "after_evaluation");
    assert_eq!(changed.recipe.defaults, six, "the change survived its cancelled evaluation");
    let rest = |f: &RecipeFile| (f.recipe.layers.clone(), f.calibration.clone());
    assert_eq!(rest(&changed), rest(&recipe), "the rest is intact");

    // The data sets are still loaded: evaluating and calibrating again work, with the results
    // of before.
    let eval = send(&h, Command::Evaluate);
    let (_, six_bits) = evaluated(&until_done(&h, eval), eval);
    assert_eq!(six_bits.layers[0].w_bits, Some(4), "the override");
    assert!(six_bits.layers[1..].iter().all(|l| l.w_bits == Some(6)), "the new defaults");
    let eval = change(&h, Command::SetDefaults { config: percentile_defaults() });
    let (_, after) = evaluated(&until_done(&h, eval), eval);
    assert_eq!(after, before, "same configuration, same results");
    let cal = send(&h, Command::Calibrate);
    let events = until_done(&h, cal);
    let Event::Calibrated { recipe: recalibrated, measured, .. } = terminal(&events, cal) else {
        panic!("{events:#?}")
    };
    let again = RecipeFile { recipe: (**recalibrated).clone(), calibration: measured.calibration.as_deref().cloned() };
    assert_eq!(again, recipe, "the same calibration set gives the same calibration");
    h.shutdown();
}

/// A worker whose cache budget is too small for an evaluation's activations: evaluations after a
/// change run in full instead of incrementally, and give exactly what an unlimited worker gives;
/// nothing fails and the configuration read back is the user's.
#[test]
fn over_the_memory_budget_the_worker_falls_back_to_full_evaluations() {
    let tiny = Worker::spawn_with(Box::new(|| {}), WorkerOptions { cache_budget_mib: 1 }).expect("spawn");
    let (normal, _) = spawn();
    let mut results = Vec::new();
    let dir = tempfile::tempdir().expect("tempdir");
    for (tag, h) in [("tiny", &tiny), ("normal", &normal)] {
        let (summary, _) = setup(h, "cnn", true);
        let first = configure(h, &summary);
        // A second change: evaluated incrementally by the normal worker, in full by the tiny one.
        let last = summary.layers.last().expect("layers").name.clone();
        let auto = change(h, Command::UpdateLayer { layer: last.clone(), config: Some(four_bit_weights()) });
        let (_, second) = evaluated(&until_done(h, auto), auto);
        assert_ne!(first, second, "{tag}: the change shows");
        let recipe = read_back(h, dir.path(), tag);
        let mut overridden = vec![summary.layers[0].name.clone(), last];
        overridden.sort();
        assert_eq!(recipe.recipe.layers.keys().cloned().collect::<Vec<_>>(), overridden, "{tag}: both overrides kept");
        results.push((first, second, recipe));
    }
    assert_eq!(results[0], results[1], "the budget changes how, not what");
    tiny.shutdown();
    normal.shutdown();
}

/// Calibrates through the worker (after `setup(.., false)`) and returns the calibrated recipe.
fn calibrated_recipe(h: &WorkerHandle) -> (u64, quantbench_core::quant::recipe::Recipe, Measured) {
    let cal = send(h, Command::Calibrate);
    match terminal(&until_done(h, cal), cal) {
        Event::Calibrated { revision, recipe, measured, .. } => (*revision, (**recipe).clone(), measured.clone()),
        other => panic!("calibration failed: {other:?}"),
    }
}

/// The float reference of `name`'s evaluation set, built with the core API as the worker does.
fn core_simulator(name: &str) -> (quantbench_core::model::OnnxModel, quantbench_core::simulate::Simulator) {
    use quantbench_core::data::DataSet;
    use quantbench_core::simulate::{EvalConfig, Simulator};
    let model = quantbench_core::model::OnnxModel::load(&sample(name, "model.onnx")).expect("model");
    let set = DataSet::open(source(name, "eval.npz"), &model.summary.inputs).expect("eval set");
    let never = std::sync::atomic::AtomicBool::new(false);
    let sim = Simulator::new(&model, &set, &EvalConfig::default(), &never).expect("float reference");
    (model, sim)
}

#[test]
fn sensitivity_streams_each_layer_in_order_and_matches_the_core_function() {
    use quantbench_core::analysis::{SensitivityMetric, sensitivity};
    use quantbench_core::worker::STAGE_SENSITIVITY;
    let (h, _) = spawn();
    let (summary, _) = setup(&h, "mlp", false);
    let (revision, recipe, measured) = calibrated_recipe(&h);
    let started = Instant::now();
    let job = send(&h, Command::AnalyzeSensitivity { metric: SensitivityMetric::Accuracy, bits: vec![8, 2, 8] });
    let events = until_done(&h, job);
    let sweep_ms = started.elapsed().as_millis();
    assert_eq!(events.first(), Some(&Event::Started { job, kind: JobKind::Sensitivity }));
    let streamed: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::SensitivityLayer { job: j, index, total, result } if *j == job => {
                Some((*index, *total, (**result).clone()))
            }
            _ => None,
        })
        .collect();
    let n = summary.layers.len();
    assert_eq!(streamed.iter().map(|s| (s.0, s.1)).collect::<Vec<_>>(), (0..n).map(|i| (i, n)).collect::<Vec<_>>());
    let names: Vec<&str> = streamed.iter().map(|s| s.2.name.as_str()).collect();
    assert_eq!(names, summary.layers.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(), "network order");
    // Each layer is streamed before the job ends, and its progress follows it.
    let progress = progress_of(&events, job);
    check_progress(&progress, &[STAGE_FLOAT_REFERENCE.to_string(), STAGE_SENSITIVITY.to_string()]);
    assert_eq!(progress.last(), Some(&(STAGE_SENSITIVITY.to_string(), n, n)));
    let Some(Event::SensitivityAnalyzed { revision: rev, metric, bits, layers, .. }) = events.last() else {
        panic!("{events:#?}")
    };
    assert_eq!((*rev, *metric, bits.as_slice()), (revision, SensitivityMetric::Accuracy, &[2u8, 8][..]));
    assert_eq!(layers, &streamed.into_iter().map(|s| s.2).collect::<Vec<_>>(), "the end repeats the stream");

    let (model, sim) = core_simulator("mlp");
    let never = std::sync::atomic::AtomicBool::new(false);
    let expected =
        sensitivity(&sim, &model, &recipe, &measured, SensitivityMetric::Accuracy, &[2, 8], &mut |_| {}, &never)
            .expect("core");
    assert_eq!(layers, &expected, "the worker's results are the core function's");
    eprintln!("worker sensitivity sweep (mlp, {n} layers, bits 2,8): {sweep_ms} ms");
    h.shutdown();
}

#[test]
fn cancelling_a_sensitivity_sweep_mid_way_leaves_the_session_usable() {
    use quantbench_core::analysis::SensitivityMetric;
    let (h, _) = spawn();
    let (summary, _) = setup(&h, "cnn", true);
    let job = send(&h, Command::AnalyzeSensitivity { metric: SensitivityMetric::OutputSqnr, bits: vec![2, 4, 8] });
    let seen = until(&h, |e| matches!(e, Event::SensitivityLayer { .. }) || (e.job() == job && e.is_terminal()));
    assert!(matches!(seen.last(), Some(Event::SensitivityLayer { index: 0, .. })), "{seen:#?}");
    let sent = Instant::now();
    send(&h, Command::Cancel { job });
    let events = until_done(&h, job);
    let latency = sent.elapsed();
    assert_eq!(terminal(&events, job), &Event::Cancelled { job }, "{events:#?}");
    let streamed = events.iter().filter(|e| matches!(e, Event::SensitivityLayer { .. })).count();
    assert!(streamed + 1 < summary.layers.len(), "stopped mid-sweep: {streamed} more layer(s) after the first");
    eprintln!("worker cancel latency during a sensitivity sweep (cnn): {:.1} ms", latency.as_secs_f64() * 1e3);
    assert!(latency < CANCEL_BOUND, "cancel took {latency:?}");
    // The session goes on: an evaluation (on the float reference the sweep built) and a new sweep.
    let eval = send(&h, Command::Evaluate);
    let events = until_done(&h, eval);
    assert!(matches!(terminal(&events, eval), Event::Evaluated { .. }), "{events:#?}");
    assert!(progress_of(&events, eval).iter().all(|(s, _, _)| s != STAGE_FLOAT_REFERENCE), "reference reused");
    let again = send(&h, Command::AnalyzeSensitivity { metric: SensitivityMetric::OutputSqnr, bits: vec![] });
    let events = until_done(&h, again);
    let Event::SensitivityAnalyzed { layers, .. } = terminal(&events, again) else { panic!("{events:#?}") };
    assert_eq!(layers.len(), summary.layers.len());
    assert!(layers.iter().all(|l| l.sweep.is_empty() && l.enable_one.is_finite()), "{layers:?}");
    h.shutdown();
}

#[test]
fn mixed_precision_through_the_worker_matches_the_core_function_and_applies() {
    use quantbench_core::analysis::{Target, mixed_precision};
    use quantbench_core::worker::{STAGE_LAYER_NOISE, STAGE_SEARCH_PATH};
    let (h, _) = spawn();
    setup(&h, "mlp", false);
    let (revision, recipe, measured) = calibrated_recipe(&h);
    let target = Target::AccuracyDrop(1.0);
    let job = send(&h, Command::MixedPrecision { target });
    let events = until_done(&h, job);
    assert_eq!(events.first(), Some(&Event::Started { job, kind: JobKind::MixedPrecision }));
    let stages = [STAGE_FLOAT_REFERENCE, STAGE_LAYER_NOISE, STAGE_SEARCH_PATH].map(String::from);
    check_progress(&progress_of(&events, job), &stages);
    let Some(Event::MixedPrecisionFound { revision: rev, target: t, result, .. }) = events.last() else {
        panic!("{events:#?}")
    };
    assert_eq!((*rev, *t), (revision, target));
    let (model, sim) = core_simulator("mlp");
    let never = std::sync::atomic::AtomicBool::new(false);
    let expected = mixed_precision(&sim, &model, &recipe, &measured, target, &mut |_| {}, &never).expect("core");
    assert_eq!(**result, expected, "the worker's search is the core function's");
    let chosen = result.chosen.expect("a 1-point drop is reachable on mlp");
    assert!(result.path[chosen].pareto, "the chosen point is on the Pareto front");
    assert!(result.path.iter().filter(|p| p.pareto).count() >= 2, "a front, not a point");

    // Applying the chosen point is a plain SetRecipe, evaluated to the point's figures.
    let point = result.path[chosen].clone();
    let set = send(&h, Command::SetRecipe { recipe: result.recipe_of(&recipe, chosen), calibration: None });
    let events = until(&h, |e| e.job() == set);
    let Some(Event::RecipeChanged { evaluation: Some(auto), .. }) = events.last() else { panic!("{events:#?}") };
    let auto = *auto;
    let (_, e) = evaluated(&until_done(&h, auto), auto);
    let bits: Vec<(String, u8)> = e.layers.iter().map(|l| (l.name.clone(), l.w_bits.expect("quantized"))).collect();
    assert_eq!(bits, point.bits);
    assert_eq!((e.metrics.quant_size_bytes, e.metrics.quant_accuracy), (point.size_bytes, point.accuracy));

    // Bad requests fail before they start, with the reason; the worker keeps serving.
    for (command, reason) in [
        (Command::MixedPrecision { target: Target::SizeBytes(0) }, "above 0 bytes"),
        (Command::MixedPrecision { target: Target::AccuracyDrop(-1.0) }, "0 points or more"),
        (
            Command::AnalyzeSensitivity {
                metric: quantbench_core::analysis::SensitivityMetric::Accuracy,
                bits: vec![1],
            },
            "sweep bits must be 2",
        ),
    ] {
        let job = send(&h, command);
        let events = until_done(&h, job);
        assert!(matches!(terminal(&events, job), Event::Failed { error, .. } if error.contains(reason)), "{events:#?}");
        assert!(!events.iter().any(|e| matches!(e, Event::Started { job: j, .. } if *j == job)), "{events:#?}");
    }
    h.shutdown();
}
