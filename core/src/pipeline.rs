//! The quantization pipeline behind both faces of QuantBench, the CLI and the worker: prepare a
//! recipe on a model (transform → calibrate → refine), plan it, evaluate it against a float
//! reference built once, and export it. Callers choose what to print or stream; the order and
//! the rules (the app quantizes only the layers' inputs, refinements start from the plan without
//! them) live here only.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::algorithms::{self, Refinements, TransformReport};
use crate::calibrate::calibrate;
use crate::data::DataSet;
use crate::error::Result;
use crate::model::OnnxModel;
use crate::observe::Calibration;
use crate::plan::{Measured, PlanFilter, QuantPlan};
use crate::quant::CalibrationConfig;
use crate::quant::recipe::Recipe;
use crate::report::{Report, ReportRuntime};
use crate::simulate::{EvalConfig, Evaluation, SimState, Simulator};

/// A step of [`prepare`], for progress reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The model transforms (BN folding, CLE, SmoothQuant): one step.
    Transform,
    /// The calibration pass: batches.
    Calibration,
    /// The layer-wise algorithms: layers.
    Algorithms,
}

/// A recipe prepared on a model.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The model in use: the one given, or its transform when the recipe asks for one.
    pub model: Arc<OnnxModel>,
    /// The calibration of `model` and the refinements computed from it.
    pub measured: Measured,
    /// What the transforms did (None when none ran).
    pub transform: Option<TransformReport>,
}

/// The calibration settings a quantizing run uses: the recipe's, observing only the quantizable
/// layers' inputs when the target quantizes nothing else (TensorRT's placement); ONNX Runtime's
/// placement reads the statistics of every tensor its registry may quantize.
pub fn quantization_calibration(recipe: &Recipe) -> CalibrationConfig {
    let layer_inputs_only = recipe.target == crate::quant::Target::TensorRt;
    CalibrationConfig { layer_inputs_only, ..recipe.calibration_config.clone() }
}

/// Transforms `model` as `recipe` asks (else keeps it), calibrates it on `set` and runs the
/// layer-wise algorithms the recipe selects. `progress(stage, done, total)` follows each stage,
/// starting with `done = 0` as the stage begins.
pub fn prepare(
    model: Arc<OnnxModel>,
    recipe: &Recipe,
    set: &DataSet,
    progress: &mut dyn FnMut(Stage, usize, usize),
    cancel: &AtomicBool,
) -> Result<Prepared> {
    let (model, transform) = if algorithms::needs_transform(&model, recipe) {
        progress(Stage::Transform, 0, 1);
        let (transformed, report) = algorithms::transform_model(&model, recipe, set, cancel)?;
        (Arc::new(transformed), Some(report))
    } else {
        (model, None)
    };
    progress(Stage::Calibration, 0, set.num_samples);
    let calibration = Arc::new(calibrate(
        &model,
        set,
        &quantization_calibration(recipe),
        &mut |done, total| progress(Stage::Calibration, done, total),
        cancel,
    )?);
    let refinements = if algorithms::needs_refinement(&model, recipe) {
        refine(&model, recipe, &calibration, set, &mut |done, total| progress(Stage::Algorithms, done, total), cancel)?
    } else {
        Arc::default()
    };
    Ok(Prepared { model, measured: Measured { calibration: Some(calibration), refinements }, transform })
}

/// Runs the layer-wise algorithms of `recipe` on `model` (calibrated as `calibration`): each
/// selected layer starts from its quantization in the plan without refinements.
pub fn refine(
    model: &OnnxModel,
    recipe: &Recipe,
    calibration: &Arc<Calibration>,
    set: &DataSet,
    on_progress: &mut dyn FnMut(usize, usize),
    cancel: &AtomicBool,
) -> Result<Arc<Refinements>> {
    let unrefined = Measured { calibration: Some(Arc::clone(calibration)), refinements: Arc::default() };
    let base = QuantPlan::build(model, recipe, &unrefined, &PlanFilter::default())?;
    let tasks = base.refine_tasks(model);
    on_progress(0, tasks.len());
    let settings = &recipe.algorithm_settings;
    Ok(Arc::new(algorithms::refine(model, &tasks, settings, &recipe.calibration_config, set, on_progress, cancel)?))
}

/// The whole plan of `recipe`.
pub fn plan(model: &OnnxModel, recipe: &Recipe, measured: &Measured) -> Result<QuantPlan> {
    QuantPlan::build(model, recipe, measured, &PlanFilter::default())
}

/// The evaluation settings for `recipe` (its input shapes), with or without per-layer errors.
pub fn eval_config(recipe: &Recipe, skip_local: bool) -> EvalConfig {
    EvalConfig { input_shapes: recipe.calibration_config.input_shapes.clone(), skip_local, ..EvalConfig::default() }
}

/// The float reference on an evaluation set: the float model run once, its outputs and layer
/// tensors cached for every evaluation after.
pub fn reference(model: &OnnxModel, eval: &DataSet, config: &EvalConfig, cancel: &AtomicBool) -> Result<Simulator> {
    Simulator::new(model, eval, config, cancel)
}

/// Evaluates `plan` against `reference` and writes the report (metrics, layers, runtime notes);
/// also returns the evaluation and its state (a base for incremental evaluations after it).
pub fn report(
    reference: &Simulator,
    model: &OnnxModel,
    recipe: &Recipe,
    plan: &QuantPlan,
    config: &EvalConfig,
    cancel: &AtomicBool,
) -> Result<(Report, Evaluation, SimState)> {
    let (evaluation, state) = reference.evaluate_from(None, plan, config, &mut |_| {}, cancel)?;
    let mut report = Report::new(&model.summary, recipe.defaults, &evaluation);
    let saturating: Vec<String> = plan.saturating_layers().into_iter().map(String::from).collect();
    let inexact: Vec<String> = plan.inexact_layers().into_iter().map(String::from).collect();
    report.runtime = Some(ReportRuntime::new(recipe.runtime, recipe.defaults.weight.bits, &saturating, &inexact));
    Ok((report, evaluation, state))
}
