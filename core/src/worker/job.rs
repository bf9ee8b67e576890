//! Job bodies and the job thread: one long job at a time (load a model, calibrate, evaluate,
//! export, sensitivity, mixed precision), with progress, a cancel flag checked every sample, and
//! panics turned into errors.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::Sender;

use super::error::{JobError, panic_message};
use super::progress::ProgressReporter;
use super::session::EvaluationInputs;
use super::{Event, EventSink, ExportKind, JobId};
use crate::analysis::{
    LayerSensitivity, MixedPrecision, SearchStep, SensitivityMetric, Target, WeightErrors, weight_errors,
};
use crate::calibrate::RecipeFile;
use crate::data::DataSet;
use crate::model::OnnxModel;
use crate::pipeline::{self, Stage};
use crate::plan::Measured;
use crate::quant::recipe::Recipe;
use crate::simulate::{ESTIMATE_SAMPLES, Evaluation, SimState, Simulator};

/// Stage name of the calibration pass.
pub const STAGE_CALIBRATION: &str = "calibration";
/// Stage name of the float reference run that precedes the first evaluation.
pub const STAGE_FLOAT_REFERENCE: &str = "float reference";
/// Progress stage of the model transforms (CLE, SmoothQuant).
pub const STAGE_TRANSFORM: &str = "model transform";
/// Progress stage of the layer-wise algorithms (AdaRound, EasyQuant, bias correction).
pub const STAGE_ALGORITHMS: &str = "layer-wise algorithms";
/// Stage name of a sensitivity analysis (progress counts layers).
pub const STAGE_SENSITIVITY: &str = "layers analysed";
/// Stage name of the first part of a mixed-precision search (progress counts layers measured).
pub const STAGE_LAYER_NOISE: &str = "per-layer noise";
/// Stage name of the search path of a mixed-precision search (progress counts configurations).
pub const STAGE_SEARCH_PATH: &str = "search path";
/// The message of the panic [`DebugCommand::PanicInEvaluation`](super::DebugCommand) injects.
pub const INJECTED_PANIC: &str = "injected panic (debug command)";

/// What a job does, with everything it needs (snapshotted from the session).
#[derive(Debug)]
pub(crate) enum JobSpec {
    /// Load a model.
    LoadModel { path: PathBuf },
    /// Calibrate.
    /// Transform the model as the recipe asks (CLE, SmoothQuant), calibrate, then run the
    /// layer-wise algorithms (AdaRound, EasyQuant, bias correction).
    Calibrate { model: Arc<OnnxModel>, data: Arc<DataSet>, recipe: Box<Recipe> },
    /// Evaluate; panic once the float reference is ready when `inject_panic`.
    Evaluate { inputs: Box<EvaluationInputs>, inject_panic: bool },
    /// Write an export of `recipe`.
    Export { model: Arc<OnnxModel>, recipe: Box<Recipe>, measured: Measured, kind: ExportKind, path: PathBuf },
    /// Per-layer sensitivity of the recipe, streaming each layer's result.
    Sensitivity { inputs: Box<EvaluationInputs>, metric: SensitivityMetric, bits: Vec<u8> },
    /// Mixed-precision search from the recipe.
    MixedPrecision { inputs: Box<EvaluationInputs>, target: Target },
}

/// What a job produced.
#[derive(Debug)]
pub(crate) enum JobOutput {
    Model(Box<OnnxModel>, Vec<WeightErrors>),
    /// An export was written.
    Exported {
        kind: ExportKind,
        path: PathBuf,
    },
    /// A calibration with the layer-wise algorithms' results, and the model it was made on.
    Calibration {
        measured: Measured,
        model: Arc<OnnxModel>,
    },
    /// The evaluation, and the simulator state it left with the float reference it ran on.
    Evaluation {
        evaluation: Box<Evaluation>,
        state: Box<SimState>,
        simulator: Arc<Simulator>,
        /// The estimating subset's reference and the state its estimate left.
        estimate: Option<(Arc<Simulator>, Box<SimState>)>,
    },
    /// A finished sensitivity analysis.
    Sensitivity {
        metric: SensitivityMetric,
        bits: Vec<u8>,
        layers: Vec<LayerSensitivity>,
    },
    /// A finished mixed-precision search.
    MixedPrecision {
        target: Target,
        result: Box<MixedPrecision>,
    },
}

/// The cancel flags of a job.
#[derive(Debug, Clone, Default)]
pub(crate) struct CancelFlags {
    /// Stops the job (user cancel, supersede, shutdown).
    pub job: Arc<AtomicBool>,
    /// Stops building the float reference too (user cancel, shutdown). A superseded evaluation
    /// still finishes the float reference, which the next evaluation then reuses.
    pub reference: Arc<AtomicBool>,
}

/// A finished job, sent from the job thread to the worker.
#[derive(Debug)]
pub(crate) struct JobDone {
    /// The job.
    pub id: JobId,
    /// What it produced.
    pub result: Result<JobOutput, JobError>,
    /// A float reference the job built (kept even when the job failed afterwards).
    pub built_simulator: Option<Arc<Simulator>>,
}

/// Runs a job to its end on the current thread and reports it on `done`. Never panics: a panic
/// inside the job becomes [`JobError::Panic`].
pub(crate) fn run(id: JobId, spec: JobSpec, flags: &CancelFlags, sink: &EventSink, done: &Sender<JobDone>) {
    let mut progress = ProgressReporter::new(id, sink.clone());
    let mut built_simulator = None;
    let mut job = JobContext { id, flags, sink, progress: &mut progress, built_simulator: &mut built_simulator };
    let result = catch_unwind(AssertUnwindSafe(|| body(spec, &mut job)))
        .unwrap_or_else(|payload| Err(JobError::Panic(panic_message(&*payload))));
    progress.finish();
    // An error means the worker has stopped and nobody waits for the result.
    let _ = done.send(JobDone { id, result, built_simulator });
}

/// What a running job reports to and is stopped by.
struct JobContext<'a> {
    id: JobId,
    flags: &'a CancelFlags,
    /// For results streamed before the terminal event (never dropped).
    sink: &'a EventSink,
    progress: &'a mut ProgressReporter,
    /// A float reference the job built, for the session to keep.
    built_simulator: &'a mut Option<Arc<Simulator>>,
}

fn body(spec: JobSpec, job: &mut JobContext<'_>) -> Result<JobOutput, JobError> {
    match spec {
        JobSpec::LoadModel { path } => {
            let model = OnnxModel::load(&path)?;
            // What the weights alone tell, for a start without data (ONNX Runtime's weight scheme).
            let weights = weight_errors(&model, &Recipe::for_local_runtime(&model.summary.name).defaults.weight)?;
            Ok(JobOutput::Model(Box::new(model), weights))
        }
        JobSpec::Calibrate { model, data, recipe } => {
            let progress = &mut *job.progress;
            let mut on_progress = |stage, done, total| {
                let name = match stage {
                    Stage::Transform => STAGE_TRANSFORM,
                    Stage::Calibration => STAGE_CALIBRATION,
                    Stage::Algorithms => STAGE_ALGORITHMS,
                };
                progress.report(name, done, total);
            };
            let prepared = pipeline::prepare(model, &recipe, &data, &mut on_progress, &job.flags.job)?;
            Ok(JobOutput::Calibration { measured: prepared.measured, model: prepared.model })
        }
        JobSpec::Evaluate { inputs, inject_panic } => evaluate(&inputs, inject_panic, job),
        JobSpec::Export { model, recipe, measured, kind, path } => {
            match kind {
                ExportKind::Recipe => {
                    let calibration = measured.calibration.as_deref().cloned();
                    RecipeFile { recipe: *recipe, calibration }.save(&path)?;
                }
                ExportKind::QdqModel | ExportKind::Encodings => {
                    let plan = pipeline::plan(&model, &recipe, &measured)?;
                    if kind == ExportKind::QdqModel {
                        crate::export::write_qdq(&model, &plan, &path)?;
                    } else {
                        crate::export::write_encodings(&plan, &path)?;
                    }
                }
            }
            Ok(JobOutput::Exported { kind, path })
        }
        JobSpec::Sensitivity { inputs, metric, bits } => analyze_sensitivity(&inputs, metric, bits, job),
        JobSpec::MixedPrecision { inputs, target } => search_mixed_precision(&inputs, target, job),
    }
}

/// The cached float reference, or a new one (kept in `job.built_simulator` for the session).
fn float_reference(inputs: &EvaluationInputs, job: &mut JobContext<'_>) -> Result<Arc<Simulator>, JobError> {
    if let Some(s) = &inputs.simulator {
        return Ok(Arc::clone(s));
    }
    let n = inputs.data.num_samples;
    job.progress.report(STAGE_FLOAT_REFERENCE, 0, n);
    let s = Arc::new(Simulator::new(&inputs.model, &inputs.data, &inputs.config, &job.flags.reference)?);
    job.progress.report(STAGE_FLOAT_REFERENCE, n, n);
    *job.built_simulator = Some(Arc::clone(&s));
    Ok(s)
}

/// Runs the analysis on the float reference, sending each layer's result as it finishes.
fn analyze_sensitivity(
    inputs: &EvaluationInputs,
    metric: SensitivityMetric,
    bits: Vec<u8>,
    job: &mut JobContext<'_>,
) -> Result<JobOutput, JobError> {
    // Fails fast on config errors (no calibration) and counts the layers analysed.
    let total = pipeline::plan(&inputs.model, &inputs.recipe, &inputs.measured)?.layers.len();
    let simulator = float_reference(inputs, job)?;
    job.progress.report(STAGE_SENSITIVITY, 0, total);
    let (id, sink, progress) = (job.id, job.sink, &mut *job.progress);
    // Estimates stream in network order, then the leaders' refined results replace theirs.
    let mut on_layer = |p: crate::analysis::SensitivityProgress<'_>| {
        sink.send(Event::SensitivityLayer { job: id, index: p.index, total, result: Box::new(p.layer.clone()) });
        progress.report(STAGE_SENSITIVITY, p.done, p.total);
    };
    let layers = crate::analysis::sensitivity(
        &simulator,
        &inputs.model,
        &inputs.recipe,
        &inputs.measured,
        &crate::analysis::SensitivityOptions::new(metric, &bits),
        inputs.previous.as_deref(),
        &mut on_layer,
        &job.flags.job,
    )?;
    Ok(JobOutput::Sensitivity { metric, bits, layers })
}

/// Runs the search on the float reference, reporting its two stages as progress.
fn search_mixed_precision(
    inputs: &EvaluationInputs,
    target: Target,
    job: &mut JobContext<'_>,
) -> Result<JobOutput, JobError> {
    pipeline::plan(&inputs.model, &inputs.recipe, &inputs.measured)?;
    let simulator = float_reference(inputs, job)?;
    let progress = &mut *job.progress;
    let mut on_step = |step: SearchStep<'_>| match step {
        SearchStep::LayerMeasured { done, total } => progress.report(STAGE_LAYER_NOISE, done, total),
        SearchStep::PathPoint { done, total, .. } => progress.report(STAGE_SEARCH_PATH, done, total),
    };
    let result = crate::analysis::mixed_precision(
        &simulator,
        &inputs.model,
        &inputs.recipe,
        &inputs.measured,
        target,
        crate::analysis::MixedPrecisionOptions::default(),
        &mut on_step,
        &job.flags.job,
    )?;
    Ok(JobOutput::MixedPrecision { target, result: Box::new(result) })
}

/// Plans the recipe (fails fast on config errors), builds the float reference when none is
/// cached, then evaluates, incrementally from the previous evaluation's state when there is one.
fn evaluate(inputs: &EvaluationInputs, inject_panic: bool, job: &mut JobContext<'_>) -> Result<JobOutput, JobError> {
    let plan = pipeline::plan(&inputs.model, &inputs.recipe, &inputs.measured)?;
    let simulator = float_reference(inputs, job)?;
    if job.flags.job.load(Ordering::Relaxed) {
        return Err(JobError::Cancelled);
    }
    assert!(!inject_panic, "{INJECTED_PANIC}");
    // Progressive: first the fixed subset (incremental on its own reference), sent at once.
    let estimate = if simulator.num_samples() > ESTIMATE_SAMPLES {
        let (sub, previous) = match inputs.estimate.as_ref().filter(|_| inputs.simulator.is_some()) {
            Some((sub, previous)) => (Arc::clone(sub), previous.clone()),
            None => (simulator.estimate_subset(ESTIMATE_SAMPLES, &job.flags.job)?, None),
        };
        let (e, state) = sub.evaluate_from(previous.as_deref(), &plan, &inputs.config, &mut |_| {}, &job.flags.job)?;
        job.sink.send(Event::EvaluationEstimate { job: job.id, revision: inputs.revision, evaluation: Box::new(e) });
        Some((sub, Box::new(state)))
    } else {
        None
    };
    let progress = &mut *job.progress;
    let mut on_progress = |p: &crate::simulate::Progress| progress.report(&p.stage, p.done, p.total);
    let previous = inputs.previous.as_deref();
    let (evaluation, state) =
        simulator.evaluate_from(previous, &plan, &inputs.config, &mut on_progress, &job.flags.job)?;
    Ok(JobOutput::Evaluation { evaluation: Box::new(evaluation), state: Box::new(state), simulator, estimate })
}
