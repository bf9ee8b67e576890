//! The worker's analyses: sensitivity sweeps (streamed, cancelled) and the mixed-precision
//! search, each checked against the core function.

use std::time::Instant;

use quantbench_core::plan::Measured;
use quantbench_core::worker::{Command, Event, JobKind, STAGE_FLOAT_REFERENCE, WorkerHandle};
use quantbench_tests::sample;

use super::{
    CANCEL_BOUND, check_progress, evaluated, progress_of, send, setup, source, spawn, terminal, until, until_done,
};

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
    use quantbench_core::analysis::{SENSITIVITY_SUBSET, SensitivityMetric, SensitivityOptions, sensitivity};
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
    // First every layer's estimate in network order, then the refined leaders (fewer than all:
    // the mlp's evaluation set is larger than the estimating subset).
    let (estimates, refined) = streamed.split_at(n.min(streamed.len()));
    assert_eq!(estimates.iter().map(|s| (s.0, s.1)).collect::<Vec<_>>(), (0..n).map(|i| (i, n)).collect::<Vec<_>>());
    let names: Vec<&str> = estimates.iter().map(|s| s.2.name.as_str()).collect();
    assert_eq!(names, summary.layers.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(), "network order");
    assert!(estimates.iter().all(|s| s.2.samples == SENSITIVITY_SUBSET), "estimates on the subset");
    assert!(!refined.is_empty() && refined.len() <= n, "{} refined of {n}", refined.len());
    let mut last: Vec<_> = estimates.iter().map(|s| s.2.clone()).collect();
    for (index, total, result) in refined {
        assert_eq!((*total, &last[*index].name), (n, &result.name), "a refinement names its layer");
        assert!(result.enable_one_samples.max(result.disable_one_samples) > SENSITIVITY_SUBSET);
        last[*index] = result.clone();
    }
    // Each layer is streamed before the job ends, and its progress follows it.
    let progress = progress_of(&events, job);
    check_progress(&progress, &[STAGE_FLOAT_REFERENCE.to_string(), STAGE_SENSITIVITY.to_string()]);
    let measured_layers = n + refined.len();
    assert_eq!(progress.last(), Some(&(STAGE_SENSITIVITY.to_string(), measured_layers, measured_layers)));
    let Some(Event::SensitivityAnalyzed { revision: rev, metric, bits, layers, .. }) = events.last() else {
        panic!("{events:#?}")
    };
    assert_eq!((*rev, *metric, bits.as_slice()), (revision, SensitivityMetric::Accuracy, &[2u8, 8][..]));
    assert_eq!(layers, &last, "the end is the stream with the refinements applied");

    let (model, sim) = core_simulator("mlp");
    let never = std::sync::atomic::AtomicBool::new(false);
    let options = SensitivityOptions::new(SensitivityMetric::Accuracy, &[2, 8]);
    let expected = sensitivity(&sim, &model, &recipe, &measured, &options, None, &mut |_| {}, &never).expect("core");
    assert_eq!(layers, &expected, "the worker's results are the core function's");
    eprintln!("worker sensitivity sweep (mlp, {n} layers, bits 2,8): {sweep_ms} ms");
    h.shutdown();
}

#[test]
fn cancelling_a_sensitivity_sweep_mid_way_leaves_the_session_usable() {
    use quantbench_core::analysis::SensitivityMetric;
    let (h, _) = spawn();
    let (summary, _) = setup(&h, "mobilenet", true);
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
    eprintln!("worker cancel latency during a sensitivity sweep (mobilenet): {:.1} ms", latency.as_secs_f64() * 1e3);
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
    use quantbench_core::analysis::{MixedPrecisionOptions, Target, mixed_precision};
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
    let expected = mixed_precision(
        &sim,
        &model,
        &recipe,
        &measured,
        target,
        MixedPrecisionOptions::default(),
        &mut |_| {},
        &never,
    )
    .expect("core");
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
