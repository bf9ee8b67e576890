//! The steps `analyze` and `quantize` share: the recipe prepared from the options (transform,
//! calibration, refinements), the float reference, the simulated report and its printed
//! summary, and the recipe file `--save-recipe` writes.

use std::sync::Arc;

use anyhow::Context as _;
use quantbench_core::algorithms;
use quantbench_core::calibrate::{Calibration, RecipeFile};
use quantbench_core::data::{DataSet, DataSource};
use quantbench_core::model::OnnxModel;
use quantbench_core::observe::Observer;
use quantbench_core::pipeline::{self, Stage};
use quantbench_core::plan::Measured;
use quantbench_core::quant::recipe::Recipe;
use quantbench_core::quant::{
    Granularity, TARGETS, Target, WEIGHT_ALGORITHMS, WEIGHT_FORMATS, WeightAlgorithm, WeightFormat, WeightScheme,
};
use quantbench_core::report::Report;
use quantbench_core::simulate::{EvalConfig, SimState, Simulator};

use super::args::QuantOptions;
use super::{parse_input_shapes, runtime_profile};

/// Loads the model, builds the recipe from the options and prepares it (transform, calibration,
/// refinements; writes nothing). Returns the model in use, the recipe and what was measured.
pub(super) fn prepare(
    model_path: &std::path::Path,
    opts: &QuantOptions,
) -> anyhow::Result<(Arc<OnnxModel>, Recipe, Measured)> {
    let model = OnnxModel::load(model_path)?;
    if model.summary.layers.is_empty() {
        let ops: Vec<&str> = quantbench_core::plan::OP_HANDLERS.iter().map(|(op, _)| *op).collect();
        anyhow::bail!(
            "nothing to quantize: the model has no quantizable layer ({} with a constant weight): {}",
            ops.join(", "),
            model_path.display()
        );
    }
    let mut recipe = recipe_from_options(&model, opts)?;
    recipe.validate(&model.summary)?;
    recipe.calibration_config.input_shapes = parse_input_shapes(&opts.input_shapes)?;
    let Some(calib) = &opts.calib else {
        if !recipe.weights_only {
            anyhow::bail!("--calib is needed to quantize activations (or quantize weights only: --weights-only)");
        }
        if algorithms::needs_refinement(&model, &recipe) || algorithms::needs_transform(&model, &recipe) {
            anyhow::bail!("the chosen algorithms learn from data: give calibration data with --calib");
        }
        return Ok((Arc::new(model), recipe, Measured::default()));
    };
    let set = DataSet::open(DataSource::from_path(calib)?, &model.summary.inputs)?;
    let never = std::sync::atomic::AtomicBool::new(false);
    let mut reached = None;
    let mut algorithms_started = None;
    let mut on_progress = |stage, _, _| {
        if stage == Stage::Algorithms && reached != Some(Stage::Algorithms) {
            algorithms_started = Some(std::time::Instant::now());
        }
        reached = Some(stage);
    };
    if recipe.weights_only && !algorithms::needs_transform(&model, &recipe) {
        // Weights only: no activation ranges are needed; the layers' inputs alone are calibrated
        // (their ranks say which MatMuls ONNX Runtime's fusions turn into Gemm), and the
        // algorithms read the layers' inputs.
        let config =
            quantbench_core::quant::CalibrationConfig { layer_inputs_only: true, ..recipe.calibration_config.clone() };
        let calibration = Arc::new(
            quantbench_core::calibrate::calibrate(&model, &set, &config, &mut |_, _| {}, &never)
                .context("calibration failed")?,
        );
        let refinements = if algorithms::needs_refinement(&model, &recipe) {
            let started = std::time::Instant::now();
            let r = pipeline::refine(&model, &recipe, &calibration, &set, &mut |_, _| {}, &never)
                .context("the layer-wise algorithms failed")?;
            print_refinements(&r, started);
            r
        } else {
            Arc::default()
        };
        return Ok((Arc::new(model), recipe, Measured { calibration: Some(calibration), refinements }));
    }
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
        print_refinements(&measured.refinements, t);
    }
    Ok((prepared.model, recipe, measured))
}

/// Prints what the layer-wise algorithms achieved per layer and how long they took (to stderr).
fn print_refinements(refinements: &algorithms::Refinements, started: std::time::Instant) {
    for (layer, r) in &refinements.layers {
        eprintln!(
            "refined {layer}: output reconstruction MSE {:.3e} (nearest rounding) -> {:.3e}{}",
            r.mse.0,
            r.mse.1,
            if r.bias.is_some() { ", bias corrected" } else { "" }
        );
    }
    eprintln!("layer-wise algorithms took {:.1} s", started.elapsed().as_secs_f64());
}

/// The recipe the options describe: the `--recipe` file or a new one for the runtime, with the
/// flags applied to its defaults (per-layer overrides in the file take precedence).
fn recipe_from_options(model: &OnnxModel, opts: &QuantOptions) -> anyhow::Result<Recipe> {
    let mut recipe = match &opts.recipe {
        Some(p) => {
            let mut r = Recipe::load(p)?;
            r.adopt_names(&model.summary);
            if let Some(name) = &opts.runtime {
                r.runtime = name.parse()?;
            }
            r
        }
        None => Recipe::for_runtime(&model.summary.name, runtime_profile(opts.runtime.as_deref())?),
    };
    if let Some(t) = &opts.target {
        recipe.target = Target::parse(t).ok_or_else(|| {
            let names: Vec<&str> = TARGETS.iter().map(|(_, n)| *n).collect();
            anyhow::anyhow!("unknown target '{t}': use one of {}", names.join(", "))
        })?;
    }
    exclude(model, &mut recipe, opts)?;
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
    if opts.weights_only {
        recipe.weights_only = true;
        if opts.recipe.is_none() && !opts.w_symmetric {
            // ONNX Runtime's weight-only default (DefaultWeightOnlyQuantConfig): uint, asymmetric.
            d.weight = WeightScheme { signed: false, symmetric: false, narrow_range: false, ..d.weight };
        }
    }
    if opts.w_symmetric {
        d.weight = WeightScheme { signed: true, symmetric: true, ..d.weight };
    }
    if opts.dynamic {
        d.activation.dynamic = true;
    }
    if opts.pow2_scales {
        d.weight.power_of_two = true;
        d.activation.power_of_two = true;
    }
    let a = &mut d.algorithms;
    a.cross_layer_equalization |= opts.cle;
    a.smooth_quant = opts.smoothquant.or(a.smooth_quant);
    a.bias_correction |= opts.bias_correction;
    a.ada_round |= opts.adaround;
    a.easy_quant |= opts.easyquant;
    if let Some(name) = &opts.weight_algorithm {
        a.weight_algorithm = WeightAlgorithm::parse(name).ok_or_else(|| {
            let names: Vec<&str> = WEIGHT_ALGORITHMS.iter().map(|(_, n)| *n).collect();
            anyhow::anyhow!("unknown weight algorithm '{name}': use one of {}", names.join(", "))
        })?;
        if a.weight_algorithm == WeightAlgorithm::Hqq && opts.weight_format.is_none() {
            // HQQ's real zero points are written by MatMulNBits only.
            recipe.weight_format = WeightFormat::MatMulNBits;
        }
    }
    if let Some(n) = opts.adaround_iterations {
        recipe.algorithm_settings.ada_round.iterations = n;
    }
    if let Some(f) = &opts.weight_format {
        recipe.weight_format = WeightFormat::parse(f).ok_or_else(|| {
            let names: Vec<&str> = WEIGHT_FORMATS.iter().map(|(_, n)| *n).collect();
            anyhow::anyhow!("unknown weight format '{f}': use one of {}", names.join(", "))
        })?;
    }
    if let Some(block) = opts.block_size {
        block_wise(model, &mut recipe, block)?;
    }
    Ok(recipe)
}

/// Gives every MatMul, Gemm and embedding Gather layer per-group weights of `block` along the
/// input dimension (an embedding's: along a row; an override per layer, from its configuration so
/// far); other layers keep theirs.
fn block_wise(model: &OnnxModel, recipe: &mut Recipe, block: usize) -> anyhow::Result<()> {
    if block == 0 {
        anyhow::bail!("--block-size must be above 0");
    }
    let dense: Vec<&str> = model
        .summary
        .layers
        .iter()
        .filter(|l| matches!(l.op_type.as_str(), "MatMul" | "Gemm" | "Gather"))
        .map(|l| l.name.as_str())
        .collect();
    if dense.is_empty() {
        anyhow::bail!("--block-size applies to MatMul, Gemm and embedding Gather layers, and the model has none");
    }
    for name in dense {
        let mut cfg = recipe.config_for(name);
        cfg.weight.granularity = Granularity::PerGroup { group_size: block };
        recipe.layers.insert(name.to_string(), cfg);
    }
    Ok(())
}

/// Prints what the model transform did (to stderr).
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
pub(super) fn float_reference(
    model: &OnnxModel,
    recipe: &Recipe,
    eval: &std::path::Path,
    no_local: bool,
    memory_budget_mib: usize,
) -> anyhow::Result<(Simulator, EvalConfig)> {
    if memory_budget_mib == 0 {
        anyhow::bail!("--memory-budget must be at least 1 MiB");
    }
    let set = DataSet::open(DataSource::from_path(eval)?, &model.summary.inputs)?;
    let config = EvalConfig { cache_budget_mib: memory_budget_mib, ..pipeline::eval_config(recipe, no_local) };
    let never = std::sync::atomic::AtomicBool::new(false);
    Ok((pipeline::reference(model, &set, &config, &never)?, config))
}

/// Simulates `recipe` against the float reference and returns the report.
pub(super) fn simulate_report(
    reference: &(Simulator, EvalConfig),
    model: &OnnxModel,
    recipe: &Recipe,
    measured: &Measured,
) -> anyhow::Result<(Report, SimState)> {
    let never = std::sync::atomic::AtomicBool::new(false);
    let plan = pipeline::plan(model, recipe, measured)?;
    let (report, _, state) = pipeline::report(&reference.0, model, recipe, &plan, &reference.1, &never)?;
    Ok((report, state))
}

/// The report as pretty-printed JSON.
pub(super) fn report_json(report: &Report) -> anyhow::Result<Vec<u8>> {
    Ok(serde_json::to_string_pretty(report).context("serializing the report")?.into_bytes())
}

/// Prints the report's model-level metrics and one line per layer.
pub(super) fn print_summary(report: &Report) {
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

/// The recipe file `--save-recipe` writes: the recipe with the calibration it was measured with.
pub(super) fn recipe_file(recipe: Recipe, measured: &Measured) -> anyhow::Result<Vec<u8>> {
    let calibration = measured.calibration.as_deref().cloned();
    Ok(RecipeFile { recipe, calibration }.to_json()?.into_bytes())
}

/// Adds `--float-op` and `--float-node` to the recipe's exclusions; each must name an op type or
/// a node of the model.
fn exclude(model: &OnnxModel, recipe: &mut Recipe, opts: &QuantOptions) -> anyhow::Result<()> {
    let graph = model.graph();
    for op in &opts.float_ops {
        if !graph.node.iter().any(|n| n.op_type == *op) {
            anyhow::bail!("--float-op {op}: the model has no {op} node (op types are case-sensitive, e.g. Softmax)");
        }
        recipe.float_ops.insert(op.clone());
    }
    for name in &opts.float_nodes {
        // A node's previous name (before it was given a recognisable one) still names it.
        let name = model.summary.renamed.get(name).unwrap_or(name);
        if !graph.node.iter().any(|n| quantbench_core::model::node_name(n) == *name) {
            anyhow::bail!("--float-node {name}: the model has no node named '{name}' (see `quantbench inspect`)");
        }
        recipe.float_nodes.insert(name.clone());
    }
    Ok(())
}
