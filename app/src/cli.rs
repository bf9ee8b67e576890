//! Headless subcommands (docs/CLI.md): a stable contract that scripts and tests depend on.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use quantbench_core::algorithms;
use quantbench_core::calibrate::{Calibration, CalibrationConfig, RecipeFile, calibrate as run_calibration};
use quantbench_core::data::{DataSet, DataSource, InputShape};
use quantbench_core::model::OnnxModel;
use quantbench_core::observe::Observer;
use quantbench_core::pipeline::{self, Stage};
use quantbench_core::plan::Measured;
use quantbench_core::quant::RuntimeProfile;
use quantbench_core::quant::recipe::Recipe;
use quantbench_core::report::Report;
use quantbench_core::simulate::{EvalConfig, Simulator};

/// QuantBench: post-training quantization workbench for ONNX models.
#[derive(Debug, Parser)]
#[command(name = "quantbench", version, about)]
pub struct Cli {
    /// Subcommand; without one the GUI opens.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Model to open in the GUI (a bundled sample model when omitted).
    pub model: Option<PathBuf>,
}

/// The headless subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a model's inputs, outputs, nodes and quantizable layers (needs no data).
    Inspect {
        /// The ONNX model.
        model: PathBuf,
        /// Print the summary as JSON (stable field names, deterministic order).
        #[arg(long)]
        json: bool,
    },
    /// Stream calibration data through the model once and print every tensor's range and the
    /// clip range each observer picks.
    Calibrate {
        /// The ONNX model.
        model: PathBuf,
        /// Calibration data: .npz, .npy, or a folder of images.
        #[arg(long)]
        calib: PathBuf,
        /// Fix dynamic input dims the data cannot: name=1x3x48x192 (repeatable).
        #[arg(long = "input-shape", value_name = "NAME=DIMS")]
        input_shapes: Vec<String>,
        /// The runtime whose arithmetic the simulation reproduces and the defaults avoid
        /// saturating: auto (this CPU), reference, ort-x86-avx2, ort-x86-vnni, ort-arm.
        #[arg(long, value_name = "PROFILE")]
        runtime: Option<String>,
        /// Write a recipe (default configuration + the calibration statistics).
        #[arg(long, value_name = "RECIPE.json")]
        save_recipe: Option<PathBuf>,
    },
    /// Calibrate, simulate the quantized model on an evaluation set and write a report with
    /// model-level metrics, per-layer local and accumulated errors, and predictions.
    Analyze {
        /// The ONNX model.
        model: PathBuf,
        #[command(flatten)]
        quant: QuantOptions,
        /// Evaluation data (labels give accuracies).
        #[arg(long)]
        eval: PathBuf,
        /// Where to write the report JSON.
        #[arg(long, value_name = "REPORT.json")]
        report: PathBuf,
        /// Skip per-layer local errors (faster).
        #[arg(long)]
        no_local: bool,
        /// Add per-layer sensitivity (enable-one, disable-one, weights/activations only, sweep).
        #[arg(long)]
        sensitivity: bool,
        /// Bit widths of the sensitivity sweep.
        #[arg(long, value_delimiter = ',', default_value = "2,4,8")]
        bits: Vec<u8>,
        /// Sensitivity metric: accuracy (default with labels), agreement, sqnr.
        #[arg(long)]
        metric: Option<String>,
    },
    /// Calibrate, quantize and export a QDQ ONNX model (plus optional report and encodings).
    Quantize {
        /// The ONNX model.
        model: PathBuf,
        #[command(flatten)]
        quant: QuantOptions,
        /// Evaluation data: simulate the quantized model on it and fill the report.
        #[arg(long)]
        eval: Option<PathBuf>,
        /// Where to write the QDQ model.
        #[arg(long, value_name = "OUT.onnx")]
        out: PathBuf,
        /// Where to write the report JSON (needs --eval).
        #[arg(long, value_name = "REPORT.json")]
        report: Option<PathBuf>,
        /// Where to write encodings JSON (AIMET and ONNX Runtime overrides).
        #[arg(long, value_name = "ENC.json")]
        encodings: Option<PathBuf>,
        /// Mixed precision: choose per-layer weight bits so that accuracy (top-1 agreement
        /// without labels) drops at most this many points (needs --eval).
        #[arg(long, value_name = "POINTS", conflicts_with = "target_size")]
        target_accuracy_drop: Option<f64>,
        /// Mixed precision: choose per-layer weight bits for the best accuracy within this
        /// quantized size in bytes (needs --eval).
        #[arg(long, value_name = "BYTES")]
        target_size: Option<u64>,
    },
}

/// Quantization options shared by `analyze` and `quantize`. Flags change the recipe's defaults;
/// per-layer overrides in a recipe take precedence.
#[derive(Debug, clap::Args)]
pub struct QuantOptions {
    /// Calibration data: .npz, .npy, or a folder of images.
    #[arg(long)]
    pub calib: PathBuf,
    /// Start from this recipe (defaults, per-layer overrides).
    #[arg(long, value_name = "R.json")]
    pub recipe: Option<PathBuf>,
    /// Activation observer: minmax, ema[:C], percentile[:P], entropy, mse, manual:MIN,MAX.
    #[arg(long)]
    pub observer: Option<String>,
    /// Weight bits (2–16).
    #[arg(long = "w-bits")]
    pub w_bits: Option<u8>,
    /// Activation bits (2–16).
    #[arg(long = "a-bits")]
    pub a_bits: Option<u8>,
    /// Per-tensor weights instead of per-channel.
    #[arg(long = "per-tensor")]
    pub per_tensor: bool,
    /// The runtime whose arithmetic the simulation reproduces and the defaults avoid saturating:
    /// auto (this CPU, the default for a new recipe), reference, ort-x86-avx2, ort-x86-vnni,
    /// ort-arm. Without a recipe, ort-x86-avx2 gets 7-bit weights unless --w-bits says otherwise.
    #[arg(long, value_name = "PROFILE")]
    pub runtime: Option<String>,
    /// Dynamic activation quantization: ranges computed per batch at run time (exported as
    /// DynamicQuantizeLinear, as ONNX Runtime's quantize_dynamic does).
    #[arg(long)]
    pub dynamic: bool,
    /// Fix dynamic input dims the data cannot: name=1x3x48x192 (repeatable).
    #[arg(long = "input-shape", value_name = "NAME=DIMS")]
    pub input_shapes: Vec<String>,
    /// Cross-layer equalization of Conv→ReLU/ReLU6→Conv pairs (BatchNormalization folded first).
    #[arg(long)]
    pub cle: bool,
    /// SmoothQuant on MatMul/Gemm layers with migration strength ALPHA (default 0.5).
    #[arg(long, value_name = "ALPHA", num_args = 0..=1, default_missing_value = "0.5")]
    pub smoothquant: Option<f32>,
    /// Empirical bias correction.
    #[arg(long = "bias-correction")]
    pub bias_correction: bool,
    /// AdaRound: learned weight rounding.
    #[arg(long)]
    pub adaround: bool,
    /// AdaRound optimisation steps per layer.
    #[arg(long = "adaround-iterations", value_name = "N")]
    pub adaround_iterations: Option<usize>,
    /// EasyQuant: weight and activation scale search maximising output cosine similarity.
    #[arg(long)]
    pub easyquant: bool,
    /// Save the recipe used (with its calibration).
    #[arg(long, value_name = "R.json")]
    pub save_recipe: Option<PathBuf>,
}

/// Runs a subcommand.
pub fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Inspect { model, json } => inspect(&model, json),
        Command::Calibrate { model, calib, input_shapes, runtime, save_recipe } => {
            calibrate(&model, &calib, &input_shapes, runtime.as_deref(), save_recipe.as_deref())
        }
        Command::Analyze { model, quant, eval, report, no_local, sensitivity, bits, metric } => {
            let sens = sensitivity.then_some(SensitivityOptions { bits, metric });
            analyze(&model, &quant, &eval, &report, no_local, sens.as_ref())
        }
        Command::Quantize { model, quant, eval, out, report, encodings, target_accuracy_drop, target_size } => {
            use quantbench_core::analysis::Target;
            let target = target_accuracy_drop.map(Target::AccuracyDrop).or(target_size.map(Target::SizeBytes));
            quantize(&model, &quant, eval.as_deref(), &out, report.as_deref(), encodings.as_deref(), target)
        }
    }
}

fn inspect(path: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let model = OnnxModel::load(path)?;
    if json {
        let text = serde_json::to_string_pretty(&model.summary).context("serializing the summary")?;
        println!("{text}");
    } else {
        print!("{}", model.summary.to_text());
    }
    Ok(())
}

/// The `--runtime` profile (this CPU's when not given).
fn runtime_profile(name: Option<&str>) -> anyhow::Result<RuntimeProfile> {
    Ok(name.map_or_else(|| Ok(RuntimeProfile::detect()), str::parse::<RuntimeProfile>)?)
}

/// Parses repeated `--input-shape` values.
fn parse_input_shapes(values: &[String]) -> anyhow::Result<Vec<InputShape>> {
    values.iter().map(|v| v.parse::<InputShape>().map_err(anyhow::Error::from)).collect()
}

fn calibrate(
    model_path: &std::path::Path,
    calib: &std::path::Path,
    input_shapes: &[String],
    runtime: Option<&str>,
    save_recipe: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    check_outputs(&[save_recipe])?;
    let runtime = runtime_profile(runtime)?;
    let model = OnnxModel::load(model_path)?;
    let config = CalibrationConfig { input_shapes: parse_input_shapes(input_shapes)?, ..CalibrationConfig::default() };
    let set = DataSet::open(DataSource::from_path(calib)?, &model.summary.inputs)?;
    let never = std::sync::atomic::AtomicBool::new(false);
    let cal = run_calibration(&model, &set, &config, &mut |_, _| {}, &never)?;
    for (tensor, count) in cal.non_finite() {
        eprintln!("warning: tensor '{tensor}' produced {count} non-finite values (excluded from its statistics)");
    }
    let uint8 = quantbench_core::quant::QRange::new(8, false, false);
    println!("{} samples, {} activation tensors, {} weights", cal.num_samples, cal.order.len(), cal.weights.len());
    println!("{:<32} {:>12} {:>12}  clip ranges by observer", "tensor", "min", "max");
    for name in &cal.order {
        let Some(stats) = cal.activations.get(name) else { continue };
        let ranges: Vec<String> = Observer::ALL
            .iter()
            .skip(2)
            .map(|o| {
                let (lo, hi) = o.range(stats, uint8, false);
                format!("{} [{lo:.4}, {hi:.4}]", o.name())
            })
            .collect();
        println!("{name:<32} {:>12.5} {:>12.5}  {}", stats.min, stats.max, ranges.join("  "));
    }
    if let Some(path) = save_recipe {
        let mut recipe = Recipe::for_runtime(&model.summary.name, runtime);
        recipe.calibration_config = config;
        write_outputs(&[(path, RecipeFile { recipe, calibration: Some(cal) }.to_json()?.into_bytes())])?;
        eprintln!("recipe written to {}", path.display());
    }
    Ok(())
}

/// Checks, before any work, that every output can be written (so a run that fails leaves no
/// output behind, and a bad path fails at once rather than after calibration).
fn check_outputs(paths: &[Option<&std::path::Path>]) -> anyhow::Result<()> {
    for p in paths.iter().flatten() {
        quantbench_core::fsutil::check_writable(p)?;
    }
    Ok(())
}

/// Writes a command's outputs, all computed beforehand, each atomically; when one cannot be
/// written, those already written by this call are removed again.
fn write_outputs(files: &[(&std::path::Path, Vec<u8>)]) -> anyhow::Result<()> {
    let files: Vec<(&std::path::Path, &[u8])> = files.iter().map(|(p, b)| (*p, b.as_slice())).collect();
    Ok(quantbench_core::fsutil::write_all_or_none(&files)?)
}

/// Loads the model, builds the recipe from the options and prepares it (transform, calibration,
/// refinements; writes nothing). Returns the model in use, the recipe and what was measured.
fn prepare(model_path: &std::path::Path, opts: &QuantOptions) -> anyhow::Result<(Arc<OnnxModel>, Recipe, Measured)> {
    let model = OnnxModel::load(model_path)?;
    if model.summary.layers.is_empty() {
        let ops: Vec<&str> = quantbench_core::plan::OP_HANDLERS.iter().map(|(op, _)| *op).collect();
        anyhow::bail!(
            "nothing to quantize: the model has no quantizable layer ({} with a constant weight): {}",
            ops.join(", "),
            model_path.display()
        );
    }
    let mut recipe = match &opts.recipe {
        Some(p) => {
            let mut r = Recipe::load(p)?;
            if let Some(name) = &opts.runtime {
                r.runtime = name.parse()?;
            }
            r
        }
        None => Recipe::for_runtime(&model.summary.name, runtime_profile(opts.runtime.as_deref())?),
    };
    let d = &mut recipe.defaults;
    if let Some(o) = &opts.observer {
        d.activation.observer = o.parse::<Observer>()?;
    }
    if let Some(b) = opts.w_bits {
        d.weight.bits = b;
    }
    if let Some(b) = opts.a_bits {
        d.activation.bits = b;
    }
    if opts.per_tensor {
        d.weight.granularity = quantbench_core::quant::Granularity::PerTensor;
    }
    if opts.dynamic {
        d.activation.dynamic = true;
    }
    let a = &mut d.algorithms;
    a.cross_layer_equalization |= opts.cle;
    a.smooth_quant = opts.smoothquant.or(a.smooth_quant);
    a.bias_correction |= opts.bias_correction;
    a.ada_round |= opts.adaround;
    a.easy_quant |= opts.easyquant;
    if let Some(n) = opts.adaround_iterations {
        recipe.algorithm_settings.ada_round.iterations = n;
    }
    recipe.validate(&model.summary)?;
    recipe.calibration_config.input_shapes = parse_input_shapes(&opts.input_shapes)?;
    let set = DataSet::open(DataSource::from_path(&opts.calib)?, &model.summary.inputs)?;
    let never = std::sync::atomic::AtomicBool::new(false);
    let mut reached = None;
    let mut algorithms_started = None;
    let mut on_progress = |stage, _, _| {
        if stage == Stage::Algorithms && reached != Some(Stage::Algorithms) {
            algorithms_started = Some(std::time::Instant::now());
        }
        reached = Some(stage);
    };
    let prepared =
        pipeline::prepare(Arc::new(model), &recipe, &set, &mut on_progress, &never).with_context(|| match reached {
            Some(Stage::Transform) => "model transform failed",
            Some(Stage::Algorithms) => "the layer-wise algorithms failed",
            Some(Stage::Calibration) | None => "calibration failed",
        })?;
    if let Some(report) = &prepared.transform {
        print_transform_report(report);
    }
    let measured = prepared.measured;
    for (tensor, count) in measured.calibration.as_deref().map(Calibration::non_finite).unwrap_or_default() {
        eprintln!("warning: tensor '{tensor}' produced {count} non-finite values (excluded from its statistics)");
    }
    if let Some(t) = algorithms_started {
        for (layer, r) in &measured.refinements.layers {
            eprintln!(
                "refined {layer}: output reconstruction MSE {:.3e} (nearest rounding) -> {:.3e}{}",
                r.mse.0,
                r.mse.1,
                if r.bias.is_some() { ", bias corrected" } else { "" }
            );
        }
        eprintln!("layer-wise algorithms took {:.1} s", t.elapsed().as_secs_f64());
    }
    Ok((prepared.model, recipe, measured))
}

fn print_transform_report(r: &algorithms::TransformReport) {
    if !r.folded_batch_norms.is_empty() {
        eprintln!("folded BatchNormalization: {}", r.folded_batch_norms.join(", "));
    }
    for (a, b) in &r.equalized_pairs {
        eprintln!("equalized {a} -> {b}");
    }
    if !r.smoothed_layers.is_empty() {
        eprintln!("SmoothQuant: {}", r.smoothed_layers.join(", "));
    }
    for (layer, why) in &r.skipped {
        eprintln!("note: {layer} not transformed: {why}");
    }
}

/// The float reference on the evaluation set at `eval`, built once per run (the report,
/// sensitivity and the mixed-precision search all evaluate against it), with its settings.
fn float_reference(
    model: &OnnxModel,
    recipe: &Recipe,
    eval: &std::path::Path,
    no_local: bool,
) -> anyhow::Result<(Simulator, EvalConfig)> {
    let set = DataSet::open(DataSource::from_path(eval)?, &model.summary.inputs)?;
    let config = pipeline::eval_config(recipe, no_local);
    let never = std::sync::atomic::AtomicBool::new(false);
    Ok((pipeline::reference(model, &set, &config, &never)?, config))
}

/// Simulates `recipe` against the float reference and returns the report.
fn simulate_report(
    reference: &(Simulator, EvalConfig),
    model: &OnnxModel,
    recipe: &Recipe,
    measured: &Measured,
) -> anyhow::Result<Report> {
    let never = std::sync::atomic::AtomicBool::new(false);
    let plan = pipeline::plan(model, recipe, measured)?;
    Ok(pipeline::report(&reference.0, model, recipe, &plan, &reference.1, &never)?.0)
}

fn report_json(report: &Report) -> anyhow::Result<Vec<u8>> {
    Ok(serde_json::to_string_pretty(report).context("serializing the report")?.into_bytes())
}

fn print_summary(report: &Report) {
    let m = &report.metrics;
    let pct = |v: Option<f64>| v.map_or_else(|| "n/a".to_string(), |a| format!("{:.2} %", 100.0 * a));
    println!(
        "accuracy float {} quant {} | top-1 agreement {:.2} % | output SQNR {:.2} dB | size {} -> {} bytes",
        pct(m.float_accuracy),
        pct(m.quant_accuracy),
        100.0 * m.top1_agreement,
        m.output_sqnr_db,
        m.float_size_bytes,
        m.quant_size_bytes
    );
    if let Some(r) = &report.runtime {
        println!("runtime {} ({}); this CPU: {} -> {}", r.profile, r.description, r.local_cpu, r.local_profile);
        for note in &r.notes {
            println!("note: {note}");
        }
    }
    for l in &report.layers {
        let bits = |b: Option<u8>| b.map_or_else(|| "f".to_string(), |b| b.to_string());
        let local = l.local_sqnr_db.map_or_else(|| "-".to_string(), |v| format!("{v:.2}"));
        println!(
            "  {:<24} {:<13} W{:<2} A{:<2} local {:>7} dB  accumulated {:>7.2} dB{}",
            l.name,
            l.op,
            bits(l.w_bits),
            bits(l.a_bits),
            local,
            l.accumulated_sqnr_db,
            if l.saturates { "  (int16 pair sums can overflow)" } else { "" }
        );
    }
}

/// What `analyze --sensitivity` measures.
struct SensitivityOptions {
    bits: Vec<u8>,
    metric: Option<String>,
}

fn analyze(
    model_path: &std::path::Path,
    opts: &QuantOptions,
    eval: &std::path::Path,
    report_path: &std::path::Path,
    no_local: bool,
    sensitivity: Option<&SensitivityOptions>,
) -> anyhow::Result<()> {
    check_outputs(&[Some(report_path), opts.save_recipe.as_deref()])?;
    let (model, recipe, measured) = prepare(model_path, opts)?;
    let reference = float_reference(&model, &recipe, eval, no_local)?;
    let mut report = simulate_report(&reference, &model, &recipe, &measured)?;
    if let Some(s) = sensitivity {
        use quantbench_core::analysis::{SensitivityMetric, sensitivity as run_sensitivity};
        if let Some(b) = s.bits.iter().find(|b| !(2..=16).contains(*b)) {
            anyhow::bail!("--bits values must be 2–16, got {b}");
        }
        let metric = match &s.metric {
            Some(m) => m.parse::<SensitivityMetric>()?,
            None if report.metrics.quant_accuracy.is_some() => SensitivityMetric::Accuracy,
            None => SensitivityMetric::Top1Agreement,
        };
        let never = std::sync::atomic::AtomicBool::new(false);
        let rows = run_sensitivity(&reference.0, &model, &recipe, &measured, metric, &s.bits, &mut |_| {}, &never)?;
        report.sensitivity_metric = Some(metric);
        report.sensitivity = Some(rows);
    }
    let mut files = vec![(report_path, report_json(&report)?)];
    if let Some(p) = &opts.save_recipe {
        files.push((p.as_path(), recipe_file(recipe, &measured)?));
    }
    write_outputs(&files)?;
    print_summary(&report);
    Ok(())
}

/// The recipe file `--save-recipe` writes: the recipe with the calibration it was measured with.
fn recipe_file(recipe: Recipe, measured: &Measured) -> anyhow::Result<Vec<u8>> {
    let calibration = measured.calibration.as_deref().cloned();
    Ok(RecipeFile { recipe, calibration }.to_json()?.into_bytes())
}

/// Runs the mixed-precision search and returns the chosen recipe with the search.
fn choose_mixed_precision(
    reference: &Simulator,
    model: &OnnxModel,
    recipe: &Recipe,
    measured: &Measured,
    target: quantbench_core::analysis::Target,
) -> anyhow::Result<(Recipe, quantbench_core::analysis::MixedPrecision)> {
    let never = std::sync::atomic::AtomicBool::new(false);
    let search =
        quantbench_core::analysis::mixed_precision(reference, model, recipe, measured, target, &mut |_| {}, &never)?;
    eprintln!("mixed precision: {} configurations measured (size bytes, accuracy or agreement)", search.path.len());
    for (i, p) in search.path.iter().enumerate().filter(|(_, p)| p.pareto) {
        let bits: Vec<String> = p.bits.iter().map(|(_, b)| b.to_string()).collect();
        let metric = p.accuracy.unwrap_or(p.top1_agreement);
        let mark = if search.chosen == Some(i) { "  <- chosen" } else { "" };
        eprintln!("  {:>8} B  {:>7.2} %  W[{}]{mark}", p.size_bytes, 100.0 * metric, bits.join(","));
    }
    let Some(chosen) = search.chosen else {
        anyhow::bail!(
            "no configuration meets the target {target:?}: the mixed-precision search tried {} (see above)",
            search.path.len()
        );
    };
    Ok((search.recipe_of(recipe, chosen), search))
}

fn quantize(
    model_path: &std::path::Path,
    opts: &QuantOptions,
    eval: Option<&std::path::Path>,
    out: &std::path::Path,
    report_path: Option<&std::path::Path>,
    encodings: Option<&std::path::Path>,
    target: Option<quantbench_core::analysis::Target>,
) -> anyhow::Result<()> {
    if report_path.is_some() && eval.is_none() {
        anyhow::bail!("--report needs --eval (the report is measured on the evaluation set)");
    }
    if target.is_some() && eval.is_none() {
        anyhow::bail!("--target-accuracy-drop and --target-size need --eval (targets are measured on it)");
    }
    check_outputs(&[Some(out), report_path, encodings, opts.save_recipe.as_deref()])?;
    let (model, mut recipe, measured) = prepare(model_path, opts)?;
    let reference = eval.map(|e| float_reference(&model, &recipe, e, report_path.is_none())).transpose()?;
    let mut search = None;
    if let (Some(target), Some(reference)) = (target, &reference) {
        let (chosen, s) = choose_mixed_precision(&reference.0, &model, &recipe, &measured, target)?;
        recipe = chosen;
        search = Some(s);
    }
    let plan = pipeline::plan(&model, &recipe, &measured)?;
    let saturating = plan.saturating_layers();
    if !saturating.is_empty() {
        eprintln!(
            "warning: on {} (u8×s8 pairs summed in int16 with saturation) {} layer(s) can overflow; the simulation \
             reproduces it, 7-bit weights (--w-bits 7) avoid it: {}",
            recipe.runtime,
            saturating.len(),
            saturating.join(", ")
        );
    }
    let inexact = plan.inexact_layers();
    if !inexact.is_empty() {
        eprintln!(
            "warning: on {} the int8-activation kernels of {} layer(s) are not simulated exactly (ONNX Runtime \
             measured several dB worse); uint8 activations or 7-bit weights avoid it: {}",
            recipe.runtime,
            inexact.len(),
            inexact.join(", ")
        );
    }
    // Everything is computed before anything is written: a failure leaves no output behind.
    let mut files = vec![(out, quantbench_core::export::qdq_bytes(&model, &plan)?)];
    if let Some(p) = encodings {
        files.push((p, quantbench_core::export::encodings_json(&plan)?.into_bytes()));
    }
    let report = match &reference {
        Some(reference) => {
            let mut report = simulate_report(reference, &model, &recipe, &measured)?;
            report.mixed_precision = search;
            if let Some(p) = report_path {
                files.push((p, report_json(&report)?));
            }
            Some(report)
        }
        None => None,
    };
    if let Some(p) = &opts.save_recipe {
        files.push((p.as_path(), recipe_file(recipe, &measured)?));
    }
    write_outputs(&files)?;
    eprintln!("quantized model written to {}", out.display());
    if let Some(report) = &report {
        print_summary(report);
    }
    Ok(())
}
