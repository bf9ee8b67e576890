//! Calibration against ONNX Runtime's calibrators: golden files made by
//! `tests/oracle/calib_golden.py` (checked in under `tests/golden/calib/`, and regenerated and
//! compared here).

use std::sync::atomic::AtomicBool;

use quantbench_core::calibrate::{Calibration, CalibrationConfig, calibrate};
use quantbench_core::data::{DataSet, DataSource};
use quantbench_core::model::OnnxModel;
use quantbench_core::observe::Observer;
use quantbench_core::quant::{QRange, WeightScheme, compute_scale_zp, quantize_weight};
use quantbench_tests::{SAMPLE_MODELS, repo_root, run_oracle, sample};
use serde_json::Value;

fn golden(name: &str) -> Value {
    let p = repo_root().join("tests/golden/calib").join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&p).expect("read golden")).expect("golden JSON")
}

fn f(v: &Value) -> f32 {
    v.as_f64().expect("number") as f32
}

fn pair(v: &Value) -> (f32, f32) {
    (f(&v[0]), f(&v[1]))
}

/// Distance in units in the last place between two positive f32 values.
fn ulps(a: f32, b: f32) -> u32 {
    a.to_bits().abs_diff(b.to_bits())
}

fn calibrated(name: &str) -> (OnnxModel, Calibration) {
    let model = OnnxModel::load(&sample(name, "model.onnx")).expect("load");
    let set = DataSet::open(DataSource::Npz(sample(name, "calib.npz")), &model.summary.inputs).expect("data");
    let cal = calibrate(&model, &set, &CalibrationConfig::default(), &mut |_, _| {}, &AtomicBool::new(false))
        .expect("calibrate");
    (model, cal)
}

/// Checks `(lo, hi)` against ORT's within `rel` of the tensor's absolute maximum.
fn check_range(what: &str, got: (f32, f32), want: (f32, f32), absmax: f32, rel: f32) -> Option<String> {
    let tol = rel * absmax.max(1e-12);
    ((got.0 - want.0).abs() > tol || (got.1 - want.1).abs() > tol)
        .then(|| format!("{what}: ours ({}, {}) vs ORT ({}, {}), tolerance {tol}", got.0, got.1, want.0, want.1))
}

#[test]
fn compute_scale_zp_equals_onnx_runtime_on_its_own_ranges() {
    for name in SAMPLE_MODELS {
        let g = golden(name);
        for (tensor, t) in g["activations"].as_object().expect("activations") {
            let (lo, hi) = pair(&t["minmax"]);
            for (key, range, symmetric) in
                [("uint8_asym", QRange::new(8, false, false), false), ("int8_sym", QRange::new(8, true, false), true)]
            {
                let p = compute_scale_zp(lo, hi, range, symmetric);
                let want_scale = f(&t[key]["scale"]);
                assert_eq!(
                    i64::from(p.zero_point),
                    t[key]["zero_point"].as_i64().expect("zp"),
                    "{name}/{tensor} {key}"
                );
                assert!(ulps(p.scale, want_scale) <= 1, "{name}/{tensor} {key}: {} vs {want_scale}", p.scale);
            }
        }
    }
}

#[test]
fn calibration_matches_onnx_runtime_calibrators() {
    let mut failures = Vec::new();
    for name in SAMPLE_MODELS {
        let g = golden(name);
        let (model, cal) = calibrated(name);
        assert_eq!(cal.num_samples as u64, g["num_samples"].as_u64().expect("n"), "{name}");
        let uint8 = QRange::new(8, false, false);
        for (tensor, t) in g["activations"].as_object().expect("activations") {
            // ORT calibrates a weight held in a Constant node as an activation; QuantBench keeps
            // it with the weights.
            let Some(stats) = cal.activations.get(tensor).or_else(|| cal.weights.get(tensor).map(|w| &w.stats)) else {
                failures.push(format!("{name}/{tensor}: not calibrated by QuantBench"));
                continue;
            };
            let want = pair(&t["minmax"]);
            let absmax = want.0.abs().max(want.1.abs());
            // Ranges come from two inference engines: equal up to float rounding.
            failures.extend(check_range(
                &format!("{name}/{tensor} minmax"),
                (stats.min, stats.max),
                want,
                absmax,
                1e-5,
            ));
            let p = compute_scale_zp(stats.min, stats.max, uint8, false);
            if i64::from(p.zero_point) != t["uint8_asym"]["zero_point"].as_i64().expect("zp") {
                failures.push(format!(
                    "{name}/{tensor}: zero point {} vs ORT {}",
                    p.zero_point, t["uint8_asym"]["zero_point"]
                ));
            }
            for (key, obs) in [
                ("percentile", Observer::Percentile { percentile: 99.999 }),
                ("entropy", Observer::Entropy { num_bins: 512, num_quantized_bins: 128 }),
            ] {
                let got = obs.range(stats, uint8, false);
                failures.extend(check_range(&format!("{name}/{tensor} {key}"), got, pair(&t[key]), absmax, 0.01));
            }
        }
        for (weight, w) in g["weights"].as_object().expect("weights") {
            let layer = model.summary.layers.iter().find(|l| &l.weight == weight).expect("layer of weight");
            assert_eq!(layer.out_channel_axis as u64, w["axis"].as_u64().expect("axis"), "{name}/{weight}");
            let t = model.constant_f32(weight).expect("weight");
            let wq = quantize_weight(&t.view(), layer.out_channel_axis, &WeightScheme::default()).expect("quantize");
            let want = w["per_channel"].as_array().expect("channels");
            assert_eq!(wq.params.len(), want.len(), "{name}/{weight}");
            for (c, (p, e)) in wq.params.iter().zip(want).enumerate() {
                assert_eq!(i64::from(p.zero_point), e["zero_point"].as_i64().expect("zp"), "{name}/{weight}[{c}]");
                assert!(ulps(p.scale, f(&e["scale"])) <= 1, "{name}/{weight}[{c}]: {} vs {}", p.scale, e["scale"]);
            }
            assert!(cal.weights.contains_key(weight), "{name}/{weight} has weight statistics");
        }
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn golden_files_regenerate_from_onnx_runtime() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in SAMPLE_MODELS {
        let out = dir.path().join(format!("{name}.json"));
        run_oracle("calib_golden.py", &[sample(name, "model.onnx"), sample(name, "calib.npz"), out.clone()]);
        let fresh: Value = serde_json::from_str(&std::fs::read_to_string(&out).expect("read")).expect("json");
        let kept = golden(name);
        let tensors = |v: &Value| v["activations"].as_object().expect("act").keys().cloned().collect::<Vec<_>>();
        assert_eq!(tensors(&fresh), tensors(&kept), "{name}: same calibrated tensors");
        for (tensor, t) in kept["activations"].as_object().expect("act") {
            for key in ["minmax", "percentile", "entropy"] {
                let (a, b) = (pair(&t[key]), pair(&fresh["activations"][tensor][key]));
                let absmax = a.0.abs().max(a.1.abs());
                assert!(check_range(key, a, b, absmax, 1e-5).is_none(), "{name}/{tensor} {key}: {a:?} vs {b:?}");
            }
        }
    }
}

#[test]
fn recipe_with_calibration_round_trips_losslessly() {
    use quantbench_core::calibrate::RecipeFile;
    use quantbench_core::quant::recipe::Recipe;
    let (model, cal) = calibrated("cnn");
    let mut recipe = Recipe::new(&model.summary.name);
    recipe.defaults.activation.observer = Observer::Percentile { percentile: 99.99 };
    let file = RecipeFile { recipe, calibration: Some(cal) };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("recipe.json");
    file.save(&path).expect("save");
    let back = RecipeFile::load(&path).expect("load");
    assert_eq!(back, file, "every statistic survives the round trip bit for bit");
    back.recipe.validate(&model.summary).expect("valid for its model");
    // The configuration alone reads the same file (the statistics are not part of it).
    assert_eq!(Recipe::load(&path).expect("config"), file.recipe);
}

#[test]
fn calibration_cancels_and_reports_progress() {
    let model = OnnxModel::load(&sample("mobilenet", "model.onnx")).expect("load");
    let set = DataSet::open(DataSource::Npz(sample("mobilenet", "calib.npz")), &model.summary.inputs).expect("data");
    let mut seen = Vec::new();
    let cal =
        calibrate(&model, &set, &CalibrationConfig::default(), &mut |d, t| seen.push((d, t)), &AtomicBool::new(false))
            .expect("calibrate");
    assert_eq!(seen.len(), cal.num_samples);
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "progress increases");
    assert_eq!(seen.last(), Some(&(256, 256)));
    let err = calibrate(&model, &set, &CalibrationConfig::default(), &mut |_, _| {}, &AtomicBool::new(true))
        .expect_err("cancelled");
    assert!(matches!(err, quantbench_core::Error::Cancelled), "{err}");
}

#[test]
fn non_finite_activations_are_reported_not_folded() {
    use quantbench_tests::onnx_build::{model_with_nodes, node, write_model};
    let dir = tempfile::tempdir().expect("tempdir");
    let model_path = dir.path().join("log.onnx");
    // y = Log(x): x = 0 gives -inf.
    write_model(&model_with_nodes(vec![node("Log", "log", &["x"], &["y"])]), &model_path);
    let data = dir.path().join("zeros.npz");
    let mut w = ndarray_npy::NpzWriter::new(std::fs::File::create(&data).expect("create"));
    w.add_array(
        "x",
        &ndarray::Array2::<f32>::from_shape_fn((3, 4), |(i, j)| if i == 1 { 0.0 } else { (j + 1) as f32 }),
    )
    .expect("add");
    w.finish().expect("finish");
    let model = OnnxModel::load(&model_path).expect("load");
    let set = DataSet::open(DataSource::Npz(data), &model.summary.inputs).expect("data");
    let cal = calibrate(&model, &set, &CalibrationConfig::default(), &mut |_, _| {}, &AtomicBool::new(false))
        .expect("calibrate");
    assert_eq!(cal.non_finite(), vec![("y".to_string(), 4)]);
    let y = &cal.activations["y"];
    assert_eq!((y.min, y.max, y.count), (0.0, 4f32.ln(), 8), "only finite values shape the range");
    let out = quantbench_tests::run_cli(&[
        "calibrate".as_ref(),
        model_path.as_os_str(),
        "--calib".as_ref(),
        dir.path().join("zeros.npz").as_os_str(),
    ]);
    let (_, stderr) = quantbench_tests::texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("warning: tensor 'y' produced 4 non-finite values"), "{stderr}");
}
