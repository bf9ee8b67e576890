//! The parity oracle shared by the real-world tests: a model through the real binary
//! (`calibrate --save-recipe`, `quantize --recipe`, QDQ export), the export run in ONNX Runtime,
//! and QuantBench's simulation of the same recipe run in tract, every output of every sample
//! compared.

use std::fs::File;
use std::path::Path;

use ndarray::{ArrayD, Axis, IxDyn, OwnedRepr};
use ndarray_npy::NpzReader;
use quantbench_core::data::{DataSet, DataSource};
use quantbench_core::model::OnnxModel;
use quantbench_core::model::runtime::Runner;
use quantbench_tests::{run_cli, run_oracle, texts};

/// Reads `key` of the `.npz` at `path` as an f32 array.
pub fn read_npz(path: &Path, key: &str) -> Result<ArrayD<f32>, String> {
    let file = File::open(path).map_err(|e| format!("open {}: {e}", path.display()))?;
    let mut npz = NpzReader::new(file).map_err(|e| format!("read {}: {e}", path.display()))?;
    npz.by_name::<OwnedRepr<f32>, IxDyn>(key).map_err(|e| format!("'{key}' in {}: {e}", path.display()))
}

/// What the CLI's export run in ONNX Runtime gives against QuantBench's own simulation.
pub struct Parity {
    /// Fraction of samples where the report's quantized top-1 (first output) is ORT's, or of the
    /// predictions of a [`Predictions`] rule once [`Parity::predict`] has applied it.
    pub agreement: f64,
    /// What `agreement` counts: "samples' top-1" or the rule's predictions.
    pub counted: String,
    /// The simulation's first output per sample, and ORT's (samples stacked on a first axis).
    sim_first: Vec<ArrayD<f32>>,
    ort_first: ArrayD<f32>,
    /// Worst |simulation − ORT| over every output, and that output's max |float| (its scale).
    pub max_diff: f32,
    pub scale: f32,
    /// Output SQNR (first output, against float) in the report and in ORT.
    pub sqnr_sim: f64,
    pub sqnr_ort: f64,
}

/// SQNR of `q` against `f` in dB (200 for an exact match), as `ort_compare.py` computes it.
fn sqnr_db(f: &ArrayD<f32>, q: &ArrayD<f32>) -> f64 {
    let signal: f64 = f.iter().map(|v| f64::from(*v).powi(2)).sum();
    let noise: f64 = f.iter().zip(q).map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2)).sum();
    if noise == 0.0 { 200.0 } else { 10.0 * (signal / noise).log10() }
}

fn argmax<'a>(a: impl IntoIterator<Item = &'a f32>) -> usize {
    a.into_iter().enumerate().fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| if v > bv { (i, v) } else { (bi, bv) }).0
}

/// The real binary end to end: `calibrate --save-recipe`, `quantize --recipe` (QDQ export,
/// report, the recipe used), the export run in ONNX Runtime, and QuantBench's simulation of the
/// same recipe run in tract; every output of every sample compared. Calibrates and evaluates on
/// `{name}.npz`.
pub fn parity(dir: &Path, name: &str, layers: usize) -> Result<Parity, String> {
    let data = dir.join(format!("{name}.npz"));
    parity_on(dir, name, layers, &data, &data)
}

/// [`parity`] calibrated on `data` and evaluated on `eval` (every comparison is on `eval`).
pub fn parity_on(dir: &Path, name: &str, layers: usize, data: &Path, eval: &Path) -> Result<Parity, String> {
    parity_with(dir, name, layers, [data, eval], &[])
}

/// [`parity_on`] with extra `quantize` flags (`--target tensorrt`, say).
pub fn parity_with(
    dir: &Path,
    name: &str,
    layers: usize,
    [data, eval]: [&Path; 2],
    flags: &[&str],
) -> Result<Parity, String> {
    use quantbench_core::calibrate::RecipeFile;
    use quantbench_core::plan::{PlanFilter, QuantPlan};
    use quantbench_core::simulate::graph::simulated_proto;
    let file = |suffix: &str| dir.join(format!("{name}{suffix}"));
    let model_path = file(".onnx");
    let (calibrated, used, qdq, report) =
        (file(".calibrated.json"), file(".used.json"), file(".qdq.onnx"), file(".report.json"));
    let cli = |args: &[&std::ffi::OsStr], stage: &str| -> Result<(), String> {
        let o = run_cli(args);
        if o.status.success() { Ok(()) } else { Err(format!("{stage} failed: {}", texts(&o).1.trim())) }
    };
    cli(
        &[
            "calibrate".as_ref(),
            model_path.as_os_str(),
            "--calib".as_ref(),
            data.as_os_str(),
            "--save-recipe".as_ref(),
            calibrated.as_os_str(),
        ],
        "calibrate",
    )?;
    cli(
        &[
            "quantize".as_ref(),
            model_path.as_os_str(),
            "--calib".as_ref(),
            data.as_os_str(),
            "--recipe".as_ref(),
            calibrated.as_os_str(),
            "--eval".as_ref(),
            eval.as_os_str(),
            "--out".as_ref(),
            qdq.as_os_str(),
            "--report".as_ref(),
            report.as_os_str(),
            "--save-recipe".as_ref(),
            used.as_os_str(),
        ]
        .into_iter()
        .chain(flags.iter().map(std::ffi::OsStr::new))
        .collect::<Vec<_>>(),
        "quantize",
    )?;
    let ort_out = file(".qdq.ort.npz");
    run_oracle("ort_run.py", &[qdq.as_os_str(), eval.as_os_str(), ort_out.as_os_str()]);

    let model = OnnxModel::load(&model_path).map_err(|e| e.to_string())?;
    let saved = RecipeFile::load(&used).map_err(|e| e.to_string())?;
    let recipe = saved.recipe.clone();
    let measured = measured_again(&model, saved, data)?;
    let plan = QuantPlan::build(&model, &recipe, &measured, &PlanFilter::default()).map_err(|e| e.to_string())?;
    if plan.layers.iter().filter(|l| l.weight_quant.is_some()).count() != layers {
        return Err(format!("the plan quantizes {} layers, expected {layers}", plan.layers.len()));
    }
    let proto = simulated_proto(&model, &plan).map_err(|e| e.to_string())?;
    let set = DataSet::open(DataSource::Npz(eval.to_path_buf()), &model.summary.inputs).map_err(|e| e.to_string())?;
    let shapes: Vec<Vec<usize>> = set.sample_shapes.iter().map(|s| [&[1][..], s].concat()).collect();
    let runner = Runner::from_proto(&proto, &model, &shapes, &[]).map_err(|e| format!("simulated model: {e}"))?;
    let ort: Vec<ArrayD<f32>> = runner.output_names.iter().map(|n| read_npz(&ort_out, n)).collect::<Result<_, _>>()?;
    let (mut max_diff, mut scale) = (0f32, 1f32);
    let mut sim_first = Vec::new();
    for batch in set.batches(1).map_err(|e| e.to_string())? {
        let batch = batch.map_err(|e| e.to_string())?;
        let i = batch.first_sample;
        let outputs = runner.run(batch.inputs).map_err(|e| format!("simulate sample {i}: {e}"))?;
        for (o, (sim, ort)) in outputs.iter().zip(&ort).enumerate() {
            // ort_run.py stacks each sample's outputs whole on a new first axis.
            let want = ort.index_axis(Axis(0), i);
            if sim.shape() != want.shape() {
                return Err(format!("output {o} sample {i}: simulated {:?}, ORT {:?}", sim.shape(), want.shape()));
            }
            let diff = sim.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            if diff.is_nan() {
                return Err(format!("output {o} sample {i}: NaN"));
            }
            max_diff = max_diff.max(diff);
            scale = scale.max(want.iter().fold(0f32, |m, v| m.max(v.abs())));
        }
        sim_first.push(outputs[0].clone());
    }
    let (json, quant) = report_predictions(&report)?;
    let ort_top1: Vec<u64> = ort[0].outer_iter().map(|s| argmax(&s) as u64).collect();
    if quant.len() != set.num_samples || ort_top1.len() != set.num_samples {
        return Err(format!("{} report predictions, {} ORT, {} samples", quant.len(), ort_top1.len(), set.num_samples));
    }
    report_is_the_simulation(&quant, &sim_first)?;
    let agree = quant.iter().zip(&ort_top1).filter(|(a, b)| a == b).count();
    Ok(Parity {
        agreement: agree as f64 / quant.len() as f64,
        counted: format!("top-1 of {} samples", quant.len()),
        sim_first,
        ort_first: ort[0].clone(),
        max_diff,
        scale,
        sqnr_sim: json["metrics"]["output_sqnr_db"].as_f64().ok_or("no output_sqnr_db")?,
        // Against the float model run by ORT on `eval`.
        sqnr_ort: sqnr_db(&read_npz(&file(".ort.npz"), &runner.output_names[0])?, &ort[0]),
    })
}

/// The report at `path` and its quantized predictions (top-1 per sample).
fn report_predictions(path: &Path) -> Result<(serde_json::Value, Vec<u64>), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let quant = json["predictions"]["quant"]
        .as_array()
        .map(|a| a.iter().filter_map(serde_json::Value::as_u64).collect())
        .unwrap_or_default();
    Ok((json, quant))
}

/// How a model's predictions are read from its first output, sample by sample, where the
/// argmax of the whole output is no prediction at all (a CTC recogniser's steps, a detector's
/// probability map or anchors).
#[derive(Debug, Clone, PartialEq)]
pub enum Predictions {
    /// The argmax over the last axis at every position (a CTC model's class at each step).
    ArgmaxLast,
    /// Whether each value is above the threshold (a probability map's pixels, a score).
    Above(f32),
    /// Whether, at each position of the last axis' rows, the product of the values at
    /// `channels` is above the threshold (a YOLOX anchor's objectness × class score).
    ScoreAbove { channels: Vec<usize>, threshold: f32 },
}

impl Predictions {
    /// The rule's predictions for one sample's output.
    fn of(&self, a: &ndarray::ArrayViewD<f32>) -> Vec<usize> {
        let last = a.shape().last().copied().unwrap_or(1).max(1);
        let values: Vec<f32> = a.iter().copied().collect();
        match self {
            Self::ArgmaxLast => values.chunks(last).map(argmax).collect(),
            Self::Above(t) => values.iter().map(|v| usize::from(v > t)).collect(),
            Self::ScoreAbove { channels, threshold } => values
                .chunks(last)
                .map(|row| usize::from(channels.iter().map(|&c| row[c]).product::<f32>() > *threshold))
                .collect(),
        }
    }
}

impl Parity {
    /// Counts agreement by `rule`, over every prediction of every sample, instead of the
    /// samples' top-1; returns how many predictions there were and how many of ORT's were
    /// positive (for the threshold rules; 0 for the argmax).
    pub fn predict(&mut self, rule: &Predictions) -> (usize, usize) {
        let (mut agree, mut total, mut positive) = (0, 0, 0);
        for (i, sim) in self.sim_first.iter().enumerate() {
            let ort = self.ort_first.index_axis(Axis(0), i);
            let (s, o) = (rule.of(&sim.view()), rule.of(&ort));
            agree += s.iter().zip(&o).filter(|(a, b)| a == b).count();
            total += o.len();
            positive += if *rule == Predictions::ArgmaxLast { 0 } else { o.iter().sum::<usize>() };
        }
        self.agreement = agree as f64 / total.max(1) as f64;
        self.counted = format!("{total} predictions ({rule:?})");
        (total, positive)
    }
}

/// What the CLI measured for the saved recipe: its calibration, and the layer-wise algorithms'
/// results, which are not saved with it and are computed again, as the CLI did, on the
/// calibration set `data` (they are deterministic).
fn measured_again(
    model: &OnnxModel,
    saved: quantbench_core::calibrate::RecipeFile,
    data: &Path,
) -> Result<quantbench_core::plan::Measured, String> {
    let mut measured = quantbench_core::plan::Measured {
        calibration: saved.calibration.map(std::sync::Arc::new),
        ..Default::default()
    };
    if let Some(calibration) = &measured.calibration
        && quantbench_core::algorithms::needs_refinement(model, &saved.recipe)
    {
        let calib =
            DataSet::open(DataSource::Npz(data.to_path_buf()), &model.summary.inputs).map_err(|e| e.to_string())?;
        let never = std::sync::atomic::AtomicBool::new(false);
        measured.refinements =
            quantbench_core::pipeline::refine(model, &saved.recipe, calibration, &calib, &mut |_, _| {}, &never)
                .map_err(|e| e.to_string())?;
    }
    Ok(measured)
}

/// The report's predictions `quant` are the simulation's (the same graph, run by the CLI in
/// batches; `sim` its first output per sample, run here): the same class, or one whose value this
/// run puts within 1 % of the output's scale of the maximum (a near-tie that the batch's float
/// summation order may flip, as on the flattened [40, 6625] CTC output of rapidocr_rec, where
/// every step's blank is near 1).
fn report_is_the_simulation(quant: &[u64], sim: &[ArrayD<f32>]) -> Result<(), String> {
    let sim_top1: Vec<u64> = sim.iter().map(|a| argmax(a) as u64).collect();
    let near_tie = |a: &ArrayD<f32>, got: u64| {
        let top = a.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v));
        let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
        a.iter().nth(got as usize).is_some_and(|v| top - v <= 0.01 * scale)
    };
    if sim.iter().zip(&sim_top1).zip(quant).any(|((a, s), q)| s != q && !near_tie(a, *q)) {
        return Err(format!("report predictions {quant:?} differ from the simulation's {sim_top1:?}"));
    }
    Ok(())
}

/// Adds to `failures` what breaks the parity bar: top-1 agreement below 99.5 %, an output more
/// than 1 % of its scale away from ORT's, or output SQNR differing by more than 0.1 dB.
pub fn check_parity(name: &str, p: &Parity, failures: &mut Vec<String>) {
    eprintln!(
        "{}: sim/ORT agreement {:.2} % of {}, max |sim - ORT| {:.3e} (output scale {:.3}), SQNR sim {:.2} dB / ORT {:.2} dB",
        name,
        100.0 * p.agreement,
        p.counted,
        p.max_diff,
        p.scale,
        p.sqnr_sim,
        p.sqnr_ort
    );
    if p.agreement < 0.995 {
        failures.push(format!("{}: agreement {:.2} % of {}", name, 100.0 * p.agreement, p.counted));
    }
    if p.max_diff > 0.01 * p.scale {
        failures.push(format!("{}: max |sim - ORT| {:e} (scale {})", name, p.max_diff, p.scale));
    }
    if (p.sqnr_sim - p.sqnr_ort).abs() > 0.1 {
        failures.push(format!("{}: SQNR sim {:.2} vs ORT {:.2} dB", name, p.sqnr_sim, p.sqnr_ort));
    }
}
