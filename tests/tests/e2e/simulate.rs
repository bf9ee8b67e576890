//! Simulation: the metrics move the way physics says they must, and `analyze` writes the report.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use quantbench_core::calibrate::{CalibrationConfig, calibrate};
use quantbench_core::data::{DataSet, DataSource};
use quantbench_core::metrics::EXACT_SQNR_DB;
use quantbench_core::model::OnnxModel;
use quantbench_core::plan::{Measured, PlanFilter, QuantPlan};
use quantbench_core::quant::Granularity;
use quantbench_core::quant::recipe::Recipe;
use quantbench_core::simulate::{EvalConfig, Evaluation, Simulator};
use quantbench_tests::{SAMPLE_MODELS, analyze_sample, sample, texts};

/// A calibrated default recipe and a simulator over the eval set.
fn setup(name: &str) -> (OnnxModel, Recipe, Measured, Simulator) {
    let model = OnnxModel::load(&sample(name, "model.onnx")).expect("load");
    let never = AtomicBool::new(false);
    let calib = DataSet::open(DataSource::Npz(sample(name, "calib.npz")), &model.summary.inputs).expect("calib");
    let recipe = Recipe::new(&model.summary.name);
    let measured = Measured::calibrated(
        calibrate(&model, &calib, &CalibrationConfig::default(), &mut |_, _| {}, &never).expect("calibrate"),
    );
    let eval = DataSet::open(DataSource::Npz(sample(name, "eval.npz")), &model.summary.inputs).expect("eval");
    let sim = Simulator::new(&model, &eval, &EvalConfig::default(), &never).expect("simulator");
    (model, recipe, measured, sim)
}

fn run(model: &OnnxModel, recipe: &Recipe, measured: &Measured, sim: &Simulator) -> Evaluation {
    let plan = QuantPlan::build(model, recipe, measured, &PlanFilter::default()).expect("plan");
    sim.evaluate(&plan, &EvalConfig::default(), &mut |_| {}, &AtomicBool::new(false)).expect("evaluate")
}

#[test]
fn keep_float_everywhere_is_bit_exact() {
    for name in SAMPLE_MODELS {
        let (model, mut recipe, measured, sim) = setup(name);
        recipe.defaults.keep_float = true;
        let e = run(&model, &recipe, &measured, &sim);
        assert_eq!(e.metrics.output_sqnr_db, EXACT_SQNR_DB, "{name}");
        assert_eq!(e.predictions_quant, e.predictions_float, "{name}");
        for l in &e.layers {
            assert_eq!(l.accumulated.max_abs, 0.0, "{name}/{}: bit-exact", l.name);
            assert!(l.local.is_none() && l.w_bits.is_none() && l.a_bits.is_none(), "{name}/{}", l.name);
        }
        assert_eq!(e.metrics.quant_size_bytes, e.metrics.float_size_bytes);
    }
}

#[test]
fn errors_follow_the_bit_width() {
    for name in SAMPLE_MODELS {
        let (model, mut recipe, measured, sim) = setup(name);
        let mut by_bits = Vec::new();
        for bits in [2u8, 4, 8, 16] {
            recipe.defaults.weight.bits = bits;
            recipe.defaults.activation.bits = bits;
            by_bits.push((bits, run(&model, &recipe, &measured, &sim)));
        }
        let sqnr: Vec<f64> = by_bits.iter().map(|(_, e)| e.metrics.output_sqnr_db).collect();
        assert!(sqnr.windows(2).all(|w| w[0] < w[1]), "{name}: output SQNR rises with bits: {sqnr:?}");
        let e16 = &by_bits[3].1;
        assert!(e16.metrics.top1_agreement >= 0.999, "{name}: 16-bit agreement {}", e16.metrics.top1_agreement);
        let e8 = &by_bits[2].1;
        let e2 = &by_bits[0].1;
        assert!(sqnr[0] < sqnr[2] - 20.0, "{name}: 2-bit error is large: {sqnr:?}");
        assert!(e2.metrics.top1_agreement < e8.metrics.top1_agreement, "{name}");
        for (l8, l2) in e8.layers.iter().zip(&e2.layers) {
            let (a, b) = (l8.local.expect("local").sqnr_db, l2.local.expect("local").sqnr_db);
            assert!(a > b, "{name}/{}: local SQNR 8-bit {a} > 2-bit {b}", l8.name);
        }
        assert!(e2.metrics.quant_size_bytes < e8.metrics.quant_size_bytes);
        assert!(e8.metrics.quant_size_bytes < e8.metrics.float_size_bytes);
    }
}

#[test]
fn per_channel_beats_per_tensor_on_mobilenet() {
    let (model, mut recipe, measured, sim) = setup("mobilenet");
    let per_channel = run(&model, &recipe, &measured, &sim);
    recipe.defaults.weight.granularity = Granularity::PerTensor;
    let per_tensor = run(&model, &recipe, &measured, &sim);
    let (pc, pt) = (per_channel.metrics, per_tensor.metrics);
    assert!(pc.quant_accuracy > pt.quant_accuracy, "{:?} vs {:?}", pc.quant_accuracy, pt.quant_accuracy);
    assert!(pc.output_sqnr_db > pt.output_sqnr_db + 10.0, "{} vs {}", pc.output_sqnr_db, pt.output_sqnr_db);
}

#[test]
fn analyze_writes_a_complete_report_for_every_sample() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in SAMPLE_MODELS {
        let report = dir.path().join(format!("{name}.json"));
        let out = analyze_sample(name, &report, &[]);
        assert!(out.status.success(), "{name}: {}", texts(&out).1);
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&report).expect("read")).expect("json");
        assert_eq!(r["model"]["name"], name);
        assert!(r["model"]["inputs"].is_array() && r["model"]["outputs"].is_array());
        for key in ["float_accuracy", "quant_accuracy", "top1_agreement", "output_sqnr_db"] {
            assert!(r["metrics"][key].is_number(), "{name}: metrics.{key}");
        }
        let layers = r["layers"].as_array().expect("layers");
        assert!(!layers.is_empty());
        for l in layers {
            for key in ["name", "op", "w_bits", "a_bits", "observer", "local_sqnr_db", "accumulated_sqnr_db"] {
                assert!(l.get(key).is_some_and(|v| !v.is_null()), "{name}: layer field {key} in {l}");
            }
        }
        let n = 397;
        assert_eq!(r["predictions"]["float"].as_array().expect("float").len(), n, "{name}");
        assert_eq!(r["predictions"]["quant"].as_array().expect("quant").len(), n, "{name}");
        // The smallest memory budget (most float values recomputed) writes the same report.
        let small = dir.path().join(format!("{name}.small.json"));
        let out = analyze_sample(name, &small, &["--memory-budget", "1"]);
        assert!(out.status.success(), "{name}: {}", texts(&out).1);
        let s: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&small).expect("read")).expect("json");
        assert_eq!(s, r, "{name}: --memory-budget 1 gives the same report");
    }
}

#[test]
fn analyze_rejects_bad_options_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let report = dir.path().join("r.json");
    for (flag, value, expect) in [
        ("--w-bits", "1", "weight bits must be 2–16"),
        ("--a-bits", "17", "activation bits must be 2–16"),
        ("--observer", "kl", "unknown observer 'kl'"),
        ("--memory-budget", "0", "--memory-budget must be at least 1 MiB"),
    ] {
        let out = analyze_sample("mlp", &report, &[flag, value]);
        let (_, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(1), "{flag} {value}: {stderr}");
        assert!(stderr.contains(expect), "{flag} {value}: {stderr}");
        assert!(!report.exists(), "no report after a failure");
    }
}

#[test]
fn incremental_reevaluation_equals_a_full_one() {
    use quantbench_core::quant::LayerConfig;
    for name in SAMPLE_MODELS {
        let (model, mut recipe, measured, sim) = setup(name);
        let never = AtomicBool::new(false);
        let cfg = EvalConfig::default();
        let plan = QuantPlan::build(&model, &recipe, &measured, &PlanFilter::default()).expect("plan");
        let (_, state) = sim.evaluate_from(None, &plan, &cfg, &mut |_| {}, &never).expect("full");
        assert_eq!(state.nodes_rerun, state.nodes_total);
        // Change one layer in the middle: weights to 4 bits, activation observer to percentile.
        let layers = &model.summary.layers;
        let target = &layers[layers.len() / 2].name;
        let mut changed = LayerConfig::default();
        changed.weight.bits = 4;
        changed.activation.observer = quantbench_core::observe::Observer::Percentile { percentile: 99.9 };
        recipe.layers.insert(target.clone(), changed);
        let plan2 = QuantPlan::build(&model, &recipe, &measured, &PlanFilter::default()).expect("plan");
        let (inc, state2) = sim.evaluate_from(Some(&state), &plan2, &cfg, &mut |_| {}, &never).expect("incremental");
        assert!(
            state2.nodes_rerun < state2.nodes_total,
            "{name}: only a suffix re-runs ({} of {})",
            state2.nodes_rerun,
            state2.nodes_total
        );
        let full = sim.evaluate(&plan2, &cfg, &mut |_| {}, &never).expect("full");
        assert_eq!(inc, full, "{name}: incremental result equals the full one");
        // And back again, incrementally.
        recipe.layers.clear();
        let (back, _) = sim.evaluate_from(Some(&state2), &plan, &cfg, &mut |_| {}, &never).expect("incremental back");
        assert_eq!(back, sim.evaluate(&plan, &cfg, &mut |_| {}, &never).expect("full"), "{name}");
    }
}

/// On real models (a 54-Conv MobileNetV3 classifier and a CRNN text recogniser from the corpus),
/// a one-layer change anywhere re-runs only a suffix from the compact cache (codes of the layers'
/// quantized inputs; a cut that crosses an uncached tensor moves earlier) and gives exactly what
/// a full evaluation gives: weights to 4 bits, or the activation observer changed.
#[test]
fn incremental_reevaluation_on_real_models_equals_a_full_one() {
    use quantbench_core::quant::LayerConfig;
    let dir = tempfile::tempdir().expect("tempdir");
    quantbench_tests::run_oracle("corpus.py", &["fetch"]);
    for name in ["rapidocr_cls", "ddddocr_ocr"] {
        for (n, split) in [("8", "calib"), ("6", "eval")] {
            quantbench_tests::run_oracle(
                "corpus.py",
                &["data".as_ref(), name.as_ref(), dir.path().as_os_str(), n.as_ref(), split.as_ref()],
            );
        }
        let file = |suffix: &str| dir.path().join(format!("{name}{suffix}"));
        let model = OnnxModel::load(&file(".onnx")).expect("load");
        let never = AtomicBool::new(false);
        let calib = DataSet::open(DataSource::Npz(file(".npz")), &model.summary.inputs).expect("calib");
        let eval = DataSet::open(DataSource::Npz(file(".eval.npz")), &model.summary.inputs).expect("eval");
        let measured = Measured::calibrated(
            calibrate(&model, &calib, &CalibrationConfig::default(), &mut |_, _| {}, &never).expect("calibrate"),
        );
        let sim = Simulator::new(&model, &eval, &EvalConfig::default(), &never).expect("simulator");
        let cfg = EvalConfig::default();
        let mut recipe = Recipe::new(&model.summary.name);
        let plan = QuantPlan::build(&model, &recipe, &measured, &PlanFilter::default()).expect("plan");
        let (_, state) = sim.evaluate_from(None, &plan, &cfg, &mut |_| {}, &never).expect("full");
        assert!(state.cache_bytes() > 0, "{name}: the cache holds the layers' inputs");
        let layers = &model.summary.layers;
        for (i, at) in [1, layers.len() / 2, layers.len() - 1].into_iter().enumerate() {
            let mut changed = LayerConfig::default();
            if i % 2 == 0 {
                changed.weight.bits = 4;
            } else {
                changed.activation.observer = quantbench_core::observe::Observer::Percentile { percentile: 99.0 };
            }
            recipe.layers.clear();
            recipe.layers.insert(layers[at].name.clone(), changed);
            let plan2 = QuantPlan::build(&model, &recipe, &measured, &PlanFilter::default()).expect("plan");
            let (inc, s2) = sim.evaluate_from(Some(&state), &plan2, &cfg, &mut |_| {}, &never).expect("incremental");
            assert!(
                s2.nodes_rerun < s2.nodes_total,
                "{name} layer {at}: {} of {} re-run",
                s2.nodes_rerun,
                s2.nodes_total
            );
            let full = sim.evaluate(&plan2, &cfg, &mut |_| {}, &never).expect("full");
            assert_eq!(inc, full, "{name}: a change of layer {at} evaluated incrementally equals a full evaluation");
        }
    }
}

/// A cache budget too small for the activations: the cache stays within it, the next evaluation
/// re-runs at least as much of the graph as with the default budget, and the results are the
/// same.
#[test]
fn over_the_cache_budget_evaluations_fall_back_to_full_runs() {
    use quantbench_core::quant::LayerConfig;
    let (model, mut recipe, measured, sim) = setup("cnn");
    let never = AtomicBool::new(false);
    let tiny = EvalConfig { cache_budget_mib: 1, ..EvalConfig::default() };
    let plan = QuantPlan::build(&model, &recipe, &measured, &PlanFilter::default()).expect("plan");
    let (first, state) = sim.evaluate_from(None, &plan, &tiny, &mut |_| {}, &never).expect("full");
    assert_eq!(first, run(&model, &recipe, &measured, &sim), "the budget changes nothing in the results");
    let mut changed = LayerConfig::default();
    changed.weight.bits = 4;
    let last = model.summary.layers.last().expect("layers").name.clone();
    recipe.layers.insert(last, changed);
    let plan2 = QuantPlan::build(&model, &recipe, &measured, &PlanFilter::default()).expect("plan");
    let (second, state2) = sim.evaluate_from(Some(&state), &plan2, &tiny, &mut |_| {}, &never).expect("second");
    assert!(state.cache_bytes() <= 1 << 20, "{} bytes cached", state.cache_bytes());
    assert_eq!(second, run(&model, &recipe, &measured, &sim), "same results as a full evaluation");
    // With the default budget the same change re-runs only a suffix (the cache is what differs).
    let cfg = EvalConfig::default();
    let (_, state) = sim.evaluate_from(None, &plan, &cfg, &mut |_| {}, &never).expect("full");
    let (again, state3) = sim.evaluate_from(Some(&state), &plan2, &cfg, &mut |_| {}, &never).expect("incremental");
    assert!(state3.nodes_rerun < state3.nodes_total, "{} of {}", state3.nodes_rerun, state3.nodes_total);
    assert!(state2.nodes_rerun >= state3.nodes_rerun, "{} vs {}", state2.nodes_rerun, state3.nodes_rerun);
    assert_eq!(again, second);
}

/// Within a budget that keeps only part of the layers' values, the estimate subset is completed in
/// the room set aside for it (it keeps every watched value, so estimates never recompute float
/// values), and its evaluations, full and incremental, equal those on the plain subset.
#[test]
fn the_estimate_subset_keeps_every_value_and_gives_the_same_results() {
    use quantbench_core::quant::LayerConfig;
    use quantbench_core::simulate::ESTIMATE_SAMPLES;
    let never = AtomicBool::new(false);
    let mut completed = Vec::new();
    for name in SAMPLE_MODELS {
        let (model, mut recipe, measured, _) = setup(name);
        let eval = DataSet::open(DataSource::Npz(sample(name, "eval.npz")), &model.summary.inputs).expect("eval");
        let budget = EvalConfig { cache_budget_mib: 1, ..EvalConfig::default() };
        let sim = Simulator::new(&model, &eval, &budget, &never).expect("simulator within 1 MiB");
        let complete = sim.estimate_subset(ESTIMATE_SAMPLES, &never).expect("estimate subset");
        let plain = sim.on_samples(&sim.subset(ESTIMATE_SAMPLES));
        if complete.keeps_every_watched_value() && !plain.keeps_every_watched_value() {
            completed.push(name);
        }
        let cfg = EvalConfig::default();
        let plan = QuantPlan::build(&model, &recipe, &measured, &PlanFilter::default()).expect("plan");
        let (want, state) = plain.evaluate_from(None, &plan, &cfg, &mut |_| {}, &never).expect("full");
        let (got, complete_state) = complete.evaluate_from(None, &plan, &cfg, &mut |_| {}, &never).expect("full");
        assert_eq!(got, want, "{name}: full evaluation on the subset");
        let mut changed = LayerConfig::default();
        changed.weight.bits = 4;
        recipe.layers.insert(model.summary.layers[0].name.clone(), changed);
        let plan2 = QuantPlan::build(&model, &recipe, &measured, &PlanFilter::default()).expect("plan");
        let (want, _) = plain.evaluate_from(Some(&state), &plan2, &cfg, &mut |_| {}, &never).expect("incremental");
        let (got, _) = complete.evaluate_from(Some(&complete_state), &plan2, &cfg, &mut |_| {}, &never).expect("inc");
        assert_eq!(got, want, "{name}: incremental evaluation on the subset");
        assert!(
            Arc::ptr_eq(&complete, &sim.estimate_subset(ESTIMATE_SAMPLES, &never).expect("again"))
                || !completed.contains(&name),
            "{name}: the completed subset is made once"
        );
    }
    assert!(!completed.is_empty(), "no sample model had its estimate subset completed within 1 MiB");
}

/// A float reference built within a memory budget too small for its layers' values keeps only
/// the model outputs (and inputs) and recomputes the rest per evaluation: every result, full or
/// incremental, local and accumulated, equals the one with everything kept, on every sample model.
#[test]
fn a_float_reference_over_the_memory_budget_gives_the_same_results() {
    use quantbench_core::quant::LayerConfig;
    let never = AtomicBool::new(false);
    for name in SAMPLE_MODELS {
        let (model, mut recipe, measured, sim) = setup(name);
        let eval = DataSet::open(DataSource::Npz(sample(name, "eval.npz")), &model.summary.inputs).expect("eval");
        let tiny = EvalConfig { cache_budget_mib: 1, ..EvalConfig::default() };
        let small = Simulator::new(&model, &eval, &tiny, &never).expect("simulator within 1 MiB");
        let cfg = EvalConfig::default();
        let plan = QuantPlan::build(&model, &recipe, &measured, &PlanFilter::default()).expect("plan");
        let (want, state) = sim.evaluate_from(None, &plan, &cfg, &mut |_| {}, &never).expect("full");
        let (got, small_state) = small.evaluate_from(None, &plan, &tiny, &mut |_| {}, &never).expect("full");
        assert_eq!(got, want, "{name}: full evaluation");
        assert!(want.layers.iter().all(|l| l.local.is_some()), "{name}: local errors computed");
        let mut changed = LayerConfig::default();
        changed.weight.bits = 4;
        recipe.layers.insert(model.summary.layers[0].name.clone(), changed);
        let plan2 = QuantPlan::build(&model, &recipe, &measured, &PlanFilter::default()).expect("plan");
        let (want, _) = sim.evaluate_from(Some(&state), &plan2, &cfg, &mut |_| {}, &never).expect("incremental");
        let (got, _) = small.evaluate_from(Some(&small_state), &plan2, &tiny, &mut |_| {}, &never).expect("inc");
        assert_eq!(got, want, "{name}: incremental evaluation");
    }
}
