//! The worker's configuration: exports, and the user's recipe surviving cancelled jobs and a
//! too-small cache budget.

use quantbench_core::calibrate::RecipeFile;
use quantbench_core::model::ModelSummary;
use quantbench_core::quant::LayerConfig;
use quantbench_core::simulate::Evaluation;
use quantbench_core::worker::{Command, Event, JobId, STAGE_CALIBRATION, Worker, WorkerHandle, WorkerOptions};

use super::{cancel_latency, evaluated, evaluating, four_bit_weights, send, setup, spawn, terminal, until, until_done};

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
pub(super) fn read_back(h: &WorkerHandle, dir: &std::path::Path, tag: &str) -> RecipeFile {
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
