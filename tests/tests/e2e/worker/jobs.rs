//! The worker's jobs: progress order, cancellation latency, panic containment, superseded and
//! coalesced evaluations, clean shutdown, and errors arriving as `Failed` events.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use quantbench_core::quant::LayerConfig;
use quantbench_core::simulate::{ESTIMATE_SAMPLES, Evaluation};
use quantbench_core::worker::{
    Command, DebugCommand, Event, INJECTED_PANIC, JobId, JobKind, STAGE_CALIBRATION, STAGE_FLOAT_REFERENCE,
};
use quantbench_tests::sample;

use super::configuration::read_back;
use super::{
    CANCEL_BOUND, cancel_latency, check_progress, evaluated, evaluating, four_bit_weights, progress_of, send, setup,
    source, spawn, terminal, until, until_done, until_running,
};

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
    assert_eq!((evaluation.predictions_quant.len(), evaluation.samples), (397, 397));
    // Progressive: one estimate on the fixed subset first, of the same revision.
    let estimates: Vec<&Evaluation> = events
        .iter()
        .filter_map(|e| match e {
            Event::EvaluationEstimate { job, revision: r, evaluation } if *job == eval && r == revision => {
                Some(&**evaluation)
            }
            _ => None,
        })
        .collect();
    assert_eq!(estimates.len(), 1, "{events:#?}");
    let first = estimates[0];
    assert_eq!((first.samples, first.predictions_quant.len()), (ESTIMATE_SAMPLES, ESTIMATE_SAMPLES));
    assert_eq!(first.layers.len(), evaluation.layers.len(), "per-layer results too");
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
