//! Mixed precision: at the size of uniform W4, the searched configuration beats uniform W4 on
//! accuracy on at least two sample models, and the exported model, run in ONNX Runtime, meets the
//! requested target.

use std::path::Path;

use quantbench_tests::{SAMPLE_MODELS, quantize_sample as quantize, run_cli, run_oracle, sample, texts};
use serde_json::Value;

fn ort_accuracy(name: &str, quant: &Path) -> f64 {
    let out =
        run_oracle("ort_compare.py", &[sample(name, "model.onnx"), quant.to_path_buf(), sample(name, "eval.npz")]);
    let v: Value = serde_json::from_str(&out).expect("json");
    v["quant_accuracy"].as_f64().expect("accuracy")
}

#[test]
fn mixed_precision_beats_uniform_w4_at_its_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wins = Vec::new();
    let mut table = vec!["| model | uniform W4 | mixed at W4 size | size W4 / mixed (B) | mixed in ORT |".to_string()];
    for name in SAMPLE_MODELS {
        let (_, w4) = quantize(name, dir.path(), "w4", &["--w-bits", "4"]);
        let budget = w4["metrics"]["quant_size_bytes"].as_u64().expect("size");
        let w4_acc = w4["metrics"]["quant_accuracy"].as_f64().expect("acc");
        let (q, mixed) = quantize(name, dir.path(), "mixed", &["--target-size", &budget.to_string()]);
        let size = mixed["metrics"]["quant_size_bytes"].as_u64().expect("size");
        let acc = mixed["metrics"]["quant_accuracy"].as_f64().expect("acc");
        assert!(size <= budget, "{name}: {size} > {budget}");
        let in_ort = ort_accuracy(name, &q);
        assert!((in_ort - acc).abs() < 0.005, "{name}: ORT runs the chosen config at {in_ort} vs simulated {acc}");
        assert!(
            mixed["mixed_precision"]["path"].as_array().is_some_and(|p| p.len() > 1),
            "{name}: search path reported"
        );
        if acc > w4_acc {
            wins.push(name);
        }
        table.push(format!(
            "| {name} | {:.2} % | {:.2} % | {budget} / {size} | {:.2} % |",
            100.0 * w4_acc,
            100.0 * acc,
            100.0 * in_ort
        ));
    }
    eprintln!("{}", table.join("\n"));
    assert!(wins.len() >= 2, "mixed precision beat uniform W4 only on {wins:?}");
}

#[test]
fn accuracy_drop_target_holds_in_onnx_runtime() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["mlp", "mobilenet"] {
        let (q, r) = quantize(name, dir.path(), "drop", &["--target-accuracy-drop", "0.5"]);
        let float = r["metrics"]["float_accuracy"].as_f64().expect("float");
        let in_ort = ort_accuracy(name, &q);
        assert!((float - in_ort) * 100.0 <= 0.5 + 1e-9, "{name}: ORT accuracy {in_ort} vs float {float}");
        let chosen = r["mixed_precision"]["chosen"].as_u64().expect("chosen");
        let bits = &r["mixed_precision"]["path"][chosen as usize]["bits"];
        assert!(bits.as_array().is_some_and(|b| !b.is_empty()), "{name}: {bits}");
    }
    // An impossible target is a clean error.
    let out = dir.path().join("none.onnx");
    let o = run_cli(&[
        "quantize".as_ref(),
        sample("mlp", "model.onnx").as_os_str(),
        "--calib".as_ref(),
        sample("mlp", "calib.npz").as_os_str(),
        "--eval".as_ref(),
        sample("mlp", "eval.npz").as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--target-size".as_ref(),
        "10".as_ref(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(texts(&o).1.contains("no configuration meets the target"), "{}", texts(&o).1);
    assert!(!out.exists());
}

/// The fast search (noise measured once per layer on a subset and scaled by the weights' own
/// noise, path points estimated on the subset, the crossing refined on the whole set) chooses a
/// whole-set measured point that meets the target and is as good as the exhaustive search's
/// (every point on the whole set), on every sample model and both kinds of target.
#[test]
fn the_fast_search_chooses_as_well_as_the_exhaustive_one() {
    use quantbench_core::analysis::{MixedPrecisionOptions, Target, mixed_precision};
    use quantbench_core::calibrate::{CalibrationConfig, calibrate};
    use quantbench_core::data::{DataSet, DataSource};
    use quantbench_core::plan::{Measured, PlanFilter, QuantPlan};
    use quantbench_core::simulate::{EvalConfig, Simulator};
    let never = std::sync::atomic::AtomicBool::new(false);
    let mut table = vec![
        "| model | target | exhaustive: points, size, metric | fast: points (whole set), size, metric |".to_string(),
    ];
    for name in SAMPLE_MODELS {
        let model = quantbench_core::model::OnnxModel::load(&sample(name, "model.onnx")).expect("model");
        let calib = DataSet::open(DataSource::Npz(sample(name, "calib.npz")), &model.summary.inputs).expect("calib");
        let set = DataSet::open(DataSource::Npz(sample(name, "eval.npz")), &model.summary.inputs).expect("eval");
        let recipe = quantbench_core::quant::recipe::Recipe::new(&model.summary.name);
        let measured = Measured::calibrated(
            calibrate(&model, &calib, &CalibrationConfig::default(), &mut |_, _| {}, &never).expect("calibrate"),
        );
        let sim = Simulator::new(&model, &set, &EvalConfig::default(), &never).expect("float reference");
        let n = sim.num_samples();
        let search = |target, options| {
            mixed_precision(&sim, &model, &recipe, &measured, target, options, &mut |_| {}, &never).expect("search")
        };
        let w4_size = {
            let mut r = recipe.clone();
            r.defaults.weight.bits = 4;
            let plan = QuantPlan::build(&model, &r, &measured, &PlanFilter::default()).expect("plan");
            quantbench_core::simulate::quantized_size_bytes(&model, &plan)
        };
        for target in [Target::AccuracyDrop(1.0), Target::SizeBytes(w4_size)] {
            let exact = search(target, MixedPrecisionOptions::exhaustive());
            let fast = search(target, MixedPrecisionOptions { subset: 0, max_points: 6 });
            assert!(exact.path.iter().all(|p| p.samples == n), "{name}: exhaustive on the whole set");
            assert!(fast.path.iter().any(|p| p.samples < n), "{name}: the fast search estimates on a subset");
            let (e, f) = (exact.chosen.expect("exhaustive chose"), fast.chosen.expect("fast chose"));
            let (pe, pf) = (&exact.path[e], &fast.path[f]);
            assert_eq!(pf.samples, n, "{name}: chosen on the whole set");
            assert!(pf.pareto, "{name}: the chosen point is on the whole-set front");
            // The chosen point's figures are a plain evaluation's of its recipe.
            let plan =
                QuantPlan::build(&model, &fast.recipe_of(&recipe, f), &measured, &PlanFilter::default()).expect("plan");
            let config = EvalConfig { skip_local: true, ..EvalConfig::default() };
            let (ev, _) = sim.evaluate_from(None, &plan, &config, &mut |_| {}, &never).expect("evaluate");
            assert_eq!(
                (ev.metrics.quant_size_bytes, ev.metrics.quant_accuracy),
                (pf.size_bytes, pf.accuracy),
                "{name}"
            );
            let drop = |p: &quantbench_core::analysis::PathPoint| (fast.float_metric - p.metric()) * 100.0;
            match target {
                Target::AccuracyDrop(points) => {
                    assert!(drop(pf) <= points + 1e-9, "{name}: fast drop {}", drop(pf));
                    assert!(
                        pf.size_bytes as f64 <= 1.15 * pe.size_bytes as f64,
                        "{name}: fast {} B vs exhaustive {} B",
                        pf.size_bytes,
                        pe.size_bytes
                    );
                }
                Target::SizeBytes(max) => {
                    assert!(pf.size_bytes <= max, "{name}");
                    assert!(
                        pf.metric() >= pe.metric() - 0.02,
                        "{name}: fast {} vs exhaustive {}",
                        pf.metric(),
                        pe.metric()
                    );
                }
            }
            let whole = fast.path.iter().filter(|p| p.samples == n).count();
            table.push(format!(
                "| {name} | {target:?} | {}, {} B, {:.2} % | {} ({whole}), {} B, {:.2} % |",
                exact.path.len(),
                pe.size_bytes,
                100.0 * pe.metric(),
                fast.path.len(),
                pf.size_bytes,
                100.0 * pf.metric()
            ));
        }
    }
    eprintln!("{}", table.join("\n"));
}
