//! The advanced algorithms (#9): each one's defining effect, measured independently of the
//! algorithm's own bookkeeping (QuantBench's simulator on the evaluation set, tract runs of the
//! models), and the accuracy table of every algorithm on the sample models with the exported
//! models checked in ONNX Runtime.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use ndarray::ArrayD;
use quantbench_core::algorithms::{self, AlgorithmSettings, layer_data, smoothquant};
use quantbench_core::calibrate::{CalibrationConfig, calibrate};
use quantbench_core::data::{DataSet, DataSource};
use quantbench_core::model::OnnxModel;
use quantbench_core::model::runtime::Runner;
use quantbench_core::pipeline;
use quantbench_core::plan::{Measured, PlanFilter, QuantPlan};
use quantbench_core::quant::recipe::Recipe;
use quantbench_core::simulate::graph::simulated_proto;
use quantbench_tests::{SAMPLE_MODELS, quantize_sample, run_oracle, sample};
use serde_json::Value;

static NEVER: AtomicBool = AtomicBool::new(false);

fn open(name: &str, file: &str, model: &OnnxModel) -> DataSet {
    DataSet::open(DataSource::from_path(&sample(name, file)).expect("source"), &model.summary.inputs).expect("data")
}

/// Every batch of the set through `runner` (batch 1), returning the outputs named `names`.
fn run_all(runner: &Runner, set: &DataSet, names: &[&str]) -> BTreeMap<String, Vec<ArrayD<f32>>> {
    let mut out: BTreeMap<String, Vec<ArrayD<f32>>> = names.iter().map(|n| ((*n).to_string(), Vec::new())).collect();
    for b in set.batches(1).expect("batches") {
        let values = runner.run(b.expect("batch").inputs).expect("run");
        for (name, v) in runner.output_names.iter().zip(values) {
            if let Some(slot) = out.get_mut(name) {
                slot.push(v);
            }
        }
    }
    out
}

fn calibrated(model: &OnnxModel, calib: &DataSet) -> Measured {
    Measured::calibrated(
        calibrate(model, calib, &CalibrationConfig::default(), &mut |_, _| {}, &NEVER).expect("calibrate"),
    )
}

fn input_shape(set: &DataSet) -> Vec<Vec<usize>> {
    set.sample_shapes.iter().map(|s| [&[1][..], s].concat()).collect()
}

fn max_abs_diff(a: &[ArrayD<f32>], b: &[ArrayD<f32>]) -> (f32, f32) {
    let mut diff = 0.0f32;
    let mut scale = 0.0f32;
    for (x, y) in a.iter().zip(b) {
        for (p, q) in x.iter().zip(y.iter()) {
            diff = diff.max((p - q).abs());
            scale = scale.max(p.abs());
        }
    }
    (diff, scale)
}

/// Mean over channels of (channel range / largest channel range) of a weight (axis 0).
fn range_balance(model: &OnnxModel, layer: &str) -> f32 {
    let l = model.summary.layer(layer).expect("layer");
    let w = model.constant_f32(&l.weight).expect("weight");
    let r: Vec<f32> = w.outer_iter().map(|lane| lane.iter().fold(0.0f32, |m, v| m.max(v.abs()))).collect();
    let top = r.iter().copied().fold(0.0f32, f32::max);
    r.iter().map(|v| v / top).sum::<f32>() / r.len() as f32
}

#[test]
fn cle_keeps_float_outputs_and_evens_out_channel_ranges() {
    let model = OnnxModel::load(&sample("mobilenet", "model.onnx")).expect("model");
    let mut recipe = Recipe::new("mobilenet");
    recipe.defaults.algorithms.cross_layer_equalization = true;
    let eval = open("mobilenet", "eval.npz", &model);
    let (eq, report) = algorithms::transform_model(&model, &recipe, &eval, &NEVER).expect("cle");
    assert_eq!(report.equalized_pairs.len(), 8, "{report:?}");
    let out = model.summary.outputs[0].name.clone();
    let before = run_all(&Runner::new(&model, &input_shape(&eval), &[]).expect("runner"), &eval, &[&out]);
    let after = run_all(&Runner::new(&eq, &input_shape(&eval), &[]).expect("runner"), &eval, &[&out]);
    let (diff, scale) = max_abs_diff(&before[&out], &after[&out]);
    assert!(diff <= 1e-4 * scale.max(1.0), "float outputs moved by {diff} (scale {scale})");
    let mut improved = 0;
    for (a, b) in &report.equalized_pairs {
        for l in [a, b] {
            let (old, new) = (range_balance(&model, l), range_balance(&eq, l));
            improved += usize::from(new > old);
        }
    }
    let total: f32 =
        model.summary.layers.iter().filter(|l| l.op_type == "Conv").map(|l| range_balance(&model, &l.name)).sum();
    let total_eq: f32 =
        eq.summary.layers.iter().filter(|l| l.op_type == "Conv").map(|l| range_balance(&eq, &l.name)).sum();
    assert!(total_eq > total * 1.2, "per-channel ranges did not even out: {total} -> {total_eq}");
    assert!(improved >= 8, "only {improved} layers got more even channel ranges");
}

#[test]
fn cle_folds_batch_norm_and_stays_equivalent() {
    let model = OnnxModel::load(&sample("cnn", "model.onnx")).expect("model");
    let mut recipe = Recipe::new("cnn");
    recipe.defaults.algorithms.cross_layer_equalization = true;
    let eval = open("cnn", "eval.npz", &model);
    let (eq, report) = algorithms::transform_model(&model, &recipe, &eval, &NEVER).expect("cle");
    assert_eq!(report.folded_batch_norms, vec!["bn1".to_string(), "bn2".to_string()]);
    assert_eq!(report.equalized_pairs, vec![("conv1".to_string(), "conv2".to_string())], "through ReLU and MaxPool");
    assert!(!eq.summary.op_counts.contains_key("BatchNormalization"));
    let out = model.summary.outputs[0].name.clone();
    let before = run_all(&Runner::new(&model, &input_shape(&eval), &[]).expect("runner"), &eval, &[&out]);
    let after = run_all(&Runner::new(&eq, &input_shape(&eval), &[]).expect("runner"), &eval, &[&out]);
    let (diff, scale) = max_abs_diff(&before[&out], &after[&out]);
    assert!(diff <= 1e-4 * scale.max(1.0), "float outputs moved by {diff} (scale {scale})");
}

/// Per output channel, the mean over the evaluation set of (quantized − float) output of
/// `layer` with only that layer quantized.
fn channel_mean_error(
    model: &OnnxModel,
    recipe: &Recipe,
    measured: &Measured,
    layer: &str,
    eval: &DataSet,
) -> Vec<f64> {
    let l = model.summary.layer(layer).expect("layer");
    // A MatMul's bias is the constant of the Add after it: measure there.
    let output = if l.bias.is_none() {
        let add = model.graph().node.iter().find(|n| n.op_type == "Add" && n.input.contains(&l.output));
        add.map_or(l.output.clone(), |n| n.output[0].clone())
    } else {
        l.output.clone()
    };
    let only = PlanFilter { only: Some([layer.to_string()].into()), ..PlanFilter::default() };
    let plan = QuantPlan::build(model, recipe, measured, &only).expect("plan");
    let proto = simulated_proto(model, &plan).expect("proto");
    let shapes = input_shape(eval);
    let q = run_all(
        &Runner::from_proto(&proto, model, &shapes, std::slice::from_ref(&output)).expect("q"),
        eval,
        &[&output],
    );
    let f = run_all(&Runner::new(model, &shapes, std::slice::from_ref(&output)).expect("f"), eval, &[&output]);
    let channels = l.weight_shape[l.out_channel_axis] as usize;
    let mut sum = vec![0.0f64; channels];
    let mut count = 0usize;
    for (a, b) in q[&output].iter().zip(&f[&output]) {
        // Channel axis: 1 for convolutions (NCHW), last for dense layers.
        let axis = if l.op_type == "Conv" { 1 } else { a.ndim() - 1 };
        for (c, (qa, fb)) in a.axis_iter(ndarray::Axis(axis)).zip(b.axis_iter(ndarray::Axis(axis))).enumerate() {
            sum[c] += qa.iter().zip(fb.iter()).map(|(x, y)| f64::from(x - y)).sum::<f64>();
            if c == 0 {
                count += qa.len();
            }
        }
    }
    sum.iter().map(|s| s / count as f64).collect()
}

#[test]
fn bias_correction_reduces_the_per_channel_mean_error() {
    for (name, layers, bits) in
        [("cnn", &["conv1", "conv2", "fc"][..], 4), ("transformer", &["mlp_fc1_matmul", "attn_q_proj"][..], 4)]
    {
        let model = OnnxModel::load(&sample(name, "model.onnx")).expect("model");
        let calib = open(name, "calib.npz", &model);
        let eval = open(name, "eval.npz", &model);
        let mut recipe = Recipe::new(name);
        recipe.defaults.weight.bits = bits;
        recipe.defaults.algorithms.bias_correction = true;
        // The BatchNormalization folding bias correction starts with.
        let (model, _) = algorithms::transform_model(&model, &recipe, &calib, &NEVER).expect("fold");
        let plain = calibrated(&model, &calib);
        let calibration = plain.calibration.clone().expect("calibrated");
        let refinements =
            pipeline::refine(&model, &recipe, &calibration, &calib, &mut |_, _| {}, &NEVER).expect("refine");
        let refined = Measured { calibration: Some(calibration), refinements };
        for layer in layers {
            assert!(refined.refinements.layers[*layer].bias.is_some(), "{name} {layer}: no bias corrected");
            let mean_abs = |v: Vec<f64>| v.iter().map(|x| x.abs()).sum::<f64>() / v.len() as f64;
            let before = mean_abs(channel_mean_error(&model, &recipe, &plain, layer, &eval));
            let after = mean_abs(channel_mean_error(&model, &recipe, &refined, layer, &eval));
            assert!(after < before, "{name} {layer}: mean |per-channel mean error| {before:.3e} -> {after:.3e}");
        }
    }
}

fn layer_metric(report: &Value, layer: &str, metric: &str) -> f64 {
    report["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .find(|l| l["name"] == layer)
        .and_then(|l| l["local"][metric].as_f64())
        .unwrap_or_else(|| panic!("no local {metric} for {layer}"))
}

#[test]
fn adaround_and_easyquant_beat_nearest_rounding_layer_by_layer() {
    // The simulator's local error: each layer alone, on the evaluation set (not the calibration
    // data the algorithms saw).
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["cnn", "mlp"] {
        let (_, nearest) = quantize_sample(name, dir.path(), "w4_nearest", &["--w-bits", "4"]);
        let (_, ada) = quantize_sample(name, dir.path(), "w4_adaround", &["--w-bits", "4", "--adaround"]);
        let (_, easy) = quantize_sample(name, dir.path(), "w4_easyquant", &["--w-bits", "4", "--easyquant"]);
        for l in nearest["layers"].as_array().expect("layers") {
            let layer = l["name"].as_str().expect("name");
            let (n, a) = (layer_metric(&nearest, layer, "mse"), layer_metric(&ada, layer, "mse"));
            assert!(a < n, "{name} {layer}: AdaRound local MSE {a:.3e} vs nearest {n:.3e}");
            let (n, e) = (layer_metric(&nearest, layer, "cosine"), layer_metric(&easy, layer, "cosine"));
            assert!(e >= n - 1e-4, "{name} {layer}: EasyQuant local cosine {e:.5} vs MinMax {n:.5}");
        }
    }
}

/// Spread of per-channel ranges: largest / median channel absmax.
fn spread(absmax: &[f32]) -> f32 {
    let mut v: Vec<f32> = absmax.iter().copied().filter(|x| *x > 0.0).collect();
    v.sort_by(f32::total_cmp);
    v[v.len() - 1] / v[v.len() / 2]
}

/// A model whose MatMul input has one outlier channel (40× the others), and data for it.
fn outlier_model(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    use quantbench_core::model::float_value_info;
    use quantbench_core::model::onnx as pb;
    use quantbench_tests::onnx_build::{node, write_model};
    let tensor = |name: &str, dims: &[i64], v: &[f32]| pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: 1,
        raw_data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ..Default::default()
    };
    let gain: Vec<f32> = (0..8).map(|i| if i == 3 { 40.0 } else { 1.0 + 0.1 * i as f32 }).collect();
    let w: Vec<f32> = (0..32).map(|i| ((i * 7 % 11) as f32 - 5.0) / 10.0).collect();
    let proto = pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: 13 }],
        graph: Some(pb::GraphProto {
            name: "outlier".into(),
            node: vec![node("Mul", "gain", &["x", "g"], &["h"]), node("MatMul", "proj", &["h", "w"], &["y"])],
            initializer: vec![tensor("g", &[8], &gain), tensor("w", &[8, 4], &w)],
            input: vec![float_value_info("x", &[1, 8])],
            output: vec![float_value_info("y", &[1, 4])],
            ..Default::default()
        }),
        ..Default::default()
    };
    let model = dir.join("outlier.onnx");
    write_model(&proto, &model);
    let mut rng = algorithms::layer_data::SplitMix::new(7);
    let x = ndarray::Array2::from_shape_fn((64, 8), |_| (rng.below(2001) as f32 - 1000.0) / 1000.0);
    let data = dir.join("outlier.npz");
    let mut npz = ndarray_npy::NpzWriter::new(std::fs::File::create(&data).expect("npz"));
    npz.add_array("x", &x).expect("x");
    npz.finish().expect("npz");
    (model, data)
}

#[test]
fn smoothquant_evens_out_outlier_channels_and_keeps_float_outputs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, data) = outlier_model(dir.path());
    let model = OnnxModel::load(&path).expect("model");
    let set = DataSet::open(DataSource::from_path(&data).expect("src"), &model.summary.inputs).expect("data");
    let mut recipe = Recipe::new("outlier");
    recipe.defaults.algorithms.smooth_quant = Some(0.5);
    let (smoothed, report) = algorithms::transform_model(&model, &recipe, &set, &NEVER).expect("smooth");
    assert_eq!(report.smoothed_layers, vec!["proj".to_string()]);
    let settings = AlgorithmSettings::default();
    let config = CalibrationConfig::default();
    let old = model.summary.layer("proj").expect("layer");
    let new = smoothed.summary.layer("proj").expect("layer");
    assert_eq!(new.input, smoothquant::smoothed_name("h", "proj"));
    let before = layer_data::collect_inputs(&model, &[old], &set, &config, &settings, &NEVER).expect("inputs");
    let after = layer_data::collect_inputs(&smoothed, &[new], &set, &config, &settings, &NEVER).expect("inputs");
    let s0 = spread(&smoothquant::channel_absmax(&before["h"]));
    let s1 = spread(&smoothquant::channel_absmax(&after[&new.input]));
    assert!(s0 > 20.0 && s1 < s0 / 3.0, "activation channel spread {s0:.2} -> {s1:.2}");
    let shapes = input_shape(&set);
    let y0 = run_all(&Runner::new(&model, &shapes, &[]).expect("r"), &set, &["y"]);
    let y1 = run_all(&Runner::new(&smoothed, &shapes, &[]).expect("r"), &set, &["y"]);
    let (diff, scale) = max_abs_diff(&y0["y"], &y1["y"]);
    assert!(diff <= 1e-5 * scale.max(1.0), "float outputs moved by {diff} (scale {scale})");
    // The transformer sample (no outliers): every MatMul smoothed, float function unchanged.
    let model = OnnxModel::load(&sample("transformer", "model.onnx")).expect("model");
    let eval = open("transformer", "eval.npz", &model);
    let mut recipe = Recipe::new("transformer");
    recipe.defaults.algorithms.smooth_quant = Some(0.5);
    let (smoothed, report) = algorithms::transform_model(&model, &recipe, &eval, &NEVER).expect("smooth");
    assert_eq!(report.smoothed_layers.len(), model.summary.layers.len(), "{report:?}");
    let out = model.summary.outputs[0].name.clone();
    let shapes = input_shape(&eval);
    let before = run_all(&Runner::new(&model, &shapes, &[]).expect("r"), &eval, &[&out]);
    let after = run_all(&Runner::new(&smoothed, &shapes, &[]).expect("r"), &eval, &[&out]);
    let (diff, scale) = max_abs_diff(&before[&out], &after[&out]);
    assert!(diff <= 1e-4 * scale.max(1.0), "float outputs moved by {diff} (scale {scale})");
}

fn agreement(a: &Value, b: &Value) -> f64 {
    let (a, b) = (a.as_array().expect("array"), b.as_array().expect("array"));
    a.iter().zip(b).filter(|(x, y)| x.as_u64() == y.as_u64()).count() as f64 / a.len() as f64
}

/// The algorithms table: every sample model at W4A8 and the MobileNet-style model at per-tensor
/// W8A8, nearest rounding vs each algorithm, each exported model run in ONNX Runtime (which must
/// agree with the simulation). `QB_ALGORITHMS_TABLE=path` also writes the Markdown table.
#[test]
fn algorithms_table_checked_in_onnx_runtime() {
    let dir = tempfile::tempdir().expect("tempdir");
    let algos: [(&str, &[&str]); 7] = [
        ("nearest", &[]),
        ("CLE", &["--cle"]),
        ("bias correction", &["--bias-correction"]),
        ("AdaRound", &["--adaround"]),
        ("EasyQuant", &["--easyquant"]),
        ("SmoothQuant", &["--smoothquant", "0.5"]),
        ("CLE + AdaRound + BC", &["--cle", "--adaround", "--bias-correction"]),
    ];
    let mut settings: Vec<(&str, &str, Vec<&str>)> =
        SAMPLE_MODELS.iter().map(|m| (*m, "W4A8 per-channel", vec!["--w-bits", "4"])).collect();
    settings.push(("mobilenet", "W8A8 per-tensor", vec!["--per-tensor"]));
    let mut rows = vec![
        format!("| model | setting | float | {} |", algos.map(|a| a.0).join(" | ")),
        format!("|---|---|---|{}", "---|".repeat(algos.len())),
    ];
    let mut failures = Vec::new();
    for (name, setting, flags) in &settings {
        let mut cells = Vec::new();
        let mut float = 0.0;
        let mut accs = BTreeMap::new();
        for (i, (algo, extra)) in algos.iter().enumerate() {
            let args: Vec<&str> = flags.iter().chain(extra.iter()).copied().collect();
            let (q, report) = quantize_sample(name, dir.path(), &format!("{setting}_{i}").replace(' ', "_"), &args);
            let ort: Value = serde_json::from_str(&run_oracle(
                "ort_compare.py",
                &[sample(name, "model.onnx"), q.clone(), sample(name, "eval.npz")],
            ))
            .expect("oracle json");
            let agree = agreement(&report["predictions"]["quant"], &ort["quant_predictions"]);
            let sim = report["metrics"]["quant_accuracy"].as_f64().expect("acc") * 100.0;
            let in_ort = ort["quant_accuracy"].as_f64().expect("acc") * 100.0;
            float = report["metrics"]["float_accuracy"].as_f64().expect("acc") * 100.0;
            if agree < 0.995 {
                failures
                    .push(format!("{name} {setting} {algo}: ORT agrees with the simulation on {:.2} %", agree * 100.0));
            }
            accs.insert(*algo, in_ort);
            cells.push(format!(
                "{in_ort:.2}{}",
                if (sim - in_ort).abs() > 0.005 { format!(" (sim {sim:.2})") } else { String::new() }
            ));
        }
        rows.push(format!("| {name} | {setting} | {float:.2} | {} |", cells.join(" | ")));
        // Where nearest rounding loses more than a point, AdaRound and CLE (alone or combined
        // with the others) must win some back.
        let base = accs["nearest"];
        if float - base > 1.0 {
            let ada = accs["AdaRound"].max(accs["CLE + AdaRound + BC"]);
            let cle = accs["CLE"].max(accs["CLE + AdaRound + BC"]);
            if ada <= base || cle <= base {
                failures.push(format!("{name} {setting}: nearest {base:.2}, AdaRound {ada:.2}, CLE {cle:.2}"));
            }
        }
    }
    let table = rows.join("\n");
    println!("{table}");
    if let Ok(path) = std::env::var("QB_ALGORITHMS_TABLE") {
        std::fs::write(Path::new(&path), format!("{table}\n")).expect("write table");
    }
    assert!(failures.is_empty(), "{}\n{table}", failures.join("\n"));
}

/// Through the worker (as the GUI uses it): calibrating a recipe that selects CLE + AdaRound on
/// the CNN transforms the model, refines every layer with progress, and the next evaluation is
/// better than nearest rounding; turning the algorithms off and recalibrating goes back to the
/// model as loaded. A cancelled run leaves the configuration as it was.
#[test]
fn algorithms_run_in_the_worker_with_progress_and_cancel() {
    use quantbench_core::worker::{Command, Event, JobId, STAGE_ALGORITHMS, Worker, WorkerHandle};
    let patience = std::time::Duration::from_mins(2);
    let h = Worker::spawn(Box::new(|| {})).expect("worker");
    let until_done = |h: &WorkerHandle, job: JobId| -> Vec<Event> {
        let mut events = Vec::new();
        loop {
            let e = h.recv_timeout(patience).unwrap_or_else(|| panic!("no event; so far {events:#?}"));
            let done = e.job() == job && e.is_terminal();
            events.push(e);
            if done {
                return events;
            }
        }
    };
    let accuracy = |h: &WorkerHandle| -> f64 {
        let job = h.send(Command::Evaluate).expect("send");
        match until_done(h, job).pop() {
            Some(Event::Evaluated { evaluation, .. }) => evaluation.metrics.quant_accuracy.expect("labels"),
            other => panic!("evaluation failed: {other:?}"),
        }
    };
    h.send(Command::LoadModel { path: sample("cnn", "model.onnx") }).expect("send");
    h.send(Command::LoadCalibration { source: DataSource::Npz(sample("cnn", "calib.npz")) }).expect("send");
    let eval = h.send(Command::LoadEvaluation { source: DataSource::Npz(sample("cnn", "eval.npz")) }).expect("send");
    until_done(&h, eval);
    let mut config = quantbench_core::quant::LayerConfig::default();
    config.weight.bits = 4;
    let set = h.send(Command::SetDefaults { config }).expect("send");
    until_done(&h, set);
    let cal = h.send(Command::Calibrate).expect("send");
    until_done(&h, cal);
    let nearest = accuracy(&h);

    config.algorithms.cross_layer_equalization = true;
    config.algorithms.ada_round = true;
    let set = h.send(Command::SetDefaults { config }).expect("send");
    until_done(&h, set);
    // A cancelled calibration keeps the configuration and the previous calibration.
    let cal = h.send(Command::Calibrate).expect("send");
    loop {
        let e = h.recv_timeout(patience).expect("event");
        if matches!(&e, Event::Progress { job, .. } if *job == cal) {
            h.send(Command::Cancel { job: cal }).expect("send");
            break;
        }
        assert!(!e.is_terminal() || e.job() != cal, "ended before any progress: {e:?}");
    }
    let events = until_done(&h, cal);
    assert!(matches!(events.last(), Some(Event::Cancelled { .. } | Event::Calibrated { .. })), "{events:?}");
    let cal = h.send(Command::Calibrate).expect("send");
    let events = until_done(&h, cal);
    let stages: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::Progress { stage, .. } => Some(stage.as_str()),
            _ => None,
        })
        .collect();
    assert!(stages.contains(&STAGE_ALGORITHMS), "no progress of the algorithms: {stages:?}");
    let Some(Event::Calibrated { recipe, measured, .. }) = events.last() else { panic!("{events:#?}") };
    assert_eq!(recipe.defaults, config, "the configuration survived the cancelled run");
    assert_eq!(measured.refinements.layers.len(), 3, "every layer refined");
    let refined = accuracy(&h);
    assert!(refined > nearest + 0.01, "CLE + AdaRound through the worker: {nearest:.4} -> {refined:.4}");

    config.algorithms = quantbench_core::quant::LayerAlgorithms::default();
    let set = h.send(Command::SetDefaults { config }).expect("send");
    until_done(&h, set);
    let cal = h.send(Command::Calibrate).expect("send");
    until_done(&h, cal);
    assert!((accuracy(&h) - nearest).abs() < 1e-9, "back to the model as loaded and nearest rounding");
    h.shutdown();
}
