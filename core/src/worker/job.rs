//! Job bodies and the job thread: one long job at a time (load a model, calibrate, evaluate),
//! with progress, a cancel flag checked every sample, and panics turned into errors.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::Sender;

use super::error::{JobError, panic_message};
use super::progress::ProgressReporter;
use super::session::EvaluationInputs;
use super::{EventSink, ExportKind, JobId};
use crate::algorithms::{self, Refinements};
use crate::calibrate::{Calibration, CalibrationConfig, calibrate};
use crate::data::DataSet;
use crate::model::OnnxModel;
use crate::plan::{PlanFilter, QuantPlan};
use crate::quant::recipe::Recipe;
use crate::simulate::{Evaluation, SimState, Simulator};

/// Stage name of the calibration pass.
pub const STAGE_CALIBRATION: &str = "calibration";
/// Stage name of the float reference run that precedes the first evaluation.
pub const STAGE_FLOAT_REFERENCE: &str = "float reference";
/// Progress stage of the model transforms (CLE, SmoothQuant).
pub const STAGE_TRANSFORM: &str = "model transform";
/// Progress stage of the layer-wise algorithms (AdaRound, EasyQuant, bias correction).
pub const STAGE_ALGORITHMS: &str = "layer-wise algorithms";
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
    Export { model: Arc<OnnxModel>, recipe: Box<Recipe>, kind: ExportKind, path: PathBuf },
}

/// What a job produced.
#[derive(Debug)]
pub(crate) enum JobOutput {
    Model(Box<OnnxModel>),
    /// An export was written.
    Exported {
        kind: ExportKind,
        path: PathBuf,
    },
    /// A calibration, the model it was made on and the layer-wise algorithms' results.
    Calibration {
        calibration: Box<Calibration>,
        model: Arc<OnnxModel>,
        refinements: Arc<Refinements>,
    },
    /// The evaluation, and the simulator state it left with the float reference it ran on.
    Evaluation {
        evaluation: Box<Evaluation>,
        state: Box<SimState>,
        simulator: Arc<Simulator>,
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
    pub id: JobId,
    pub result: Result<JobOutput, JobError>,
    /// A float reference the job built (kept even when the job failed afterwards).
    pub built_simulator: Option<Arc<Simulator>>,
}

/// Runs a job to its end on the current thread and reports it on `done`. Never panics: a panic
/// inside the job becomes [`JobError::Panic`].
pub(crate) fn run(id: JobId, spec: JobSpec, flags: &CancelFlags, sink: EventSink, done: &Sender<JobDone>) {
    let mut progress = ProgressReporter::new(id, sink);
    let mut built_simulator = None;
    let result = catch_unwind(AssertUnwindSafe(|| body(spec, flags, &mut progress, &mut built_simulator)))
        .unwrap_or_else(|payload| Err(JobError::Panic(panic_message(&*payload))));
    progress.finish();
    // An error means the worker has stopped and nobody waits for the result.
    let _ = done.send(JobDone { id, result, built_simulator });
}

fn body(
    spec: JobSpec,
    flags: &CancelFlags,
    progress: &mut ProgressReporter,
    built_simulator: &mut Option<Arc<Simulator>>,
) -> Result<JobOutput, JobError> {
    match spec {
        JobSpec::LoadModel { path } => Ok(JobOutput::Model(Box::new(OnnxModel::load(&path)?))),
        JobSpec::Calibrate { model, data, mut recipe } => {
            let model = if algorithms::needs_transform(&model, &recipe) {
                progress.report(STAGE_TRANSFORM, 0, 1);
                let (transformed, _) = algorithms::transform_model(&model, &recipe, &data, &flags.job)?;
                Arc::new(transformed)
            } else {
                model
            };
            let mut on_progress = |done, total| progress.report(STAGE_CALIBRATION, done, total);
            // The app shows and quantizes only the layers' inputs.
            let config = CalibrationConfig { layer_inputs_only: true, ..recipe.calibration_config.clone() };
            let calibration = calibrate(&model, &data, &config, &mut on_progress, &flags.job)?;
            recipe.calibration = Some(calibration);
            let refinements = if algorithms::needs_refinement(&model, &recipe) {
                let mut on_progress = |done, total| progress.report(STAGE_ALGORITHMS, done, total);
                Arc::new(algorithms::refine(&model, &recipe, &data, &mut on_progress, &flags.job)?)
            } else {
                Arc::default()
            };
            let calibration = Box::new(recipe.calibration.take().unwrap_or_else(|| unreachable!("set above")));
            Ok(JobOutput::Calibration { calibration, model, refinements })
        }
        JobSpec::Evaluate { inputs, inject_panic } => evaluate(&inputs, inject_panic, flags, progress, built_simulator),
        JobSpec::Export { model, recipe, kind, path } => {
            match kind {
                ExportKind::Recipe => recipe.save(&path)?,
                ExportKind::QdqModel | ExportKind::Encodings => {
                    let plan = QuantPlan::build(&model, &recipe, &PlanFilter::default())?;
                    if kind == ExportKind::QdqModel {
                        crate::export::write_qdq(&model, &plan, &path)?;
                    } else {
                        crate::export::write_encodings(&plan, &path)?;
                    }
                }
            }
            Ok(JobOutput::Exported { kind, path })
        }
    }
}

/// Plans the recipe (fails fast on config errors), builds the float reference when none is
/// cached, then evaluates, incrementally from the previous evaluation's state when there is one.
fn evaluate(
    inputs: &EvaluationInputs,
    inject_panic: bool,
    flags: &CancelFlags,
    progress: &mut ProgressReporter,
    built_simulator: &mut Option<Arc<Simulator>>,
) -> Result<JobOutput, JobError> {
    let plan = QuantPlan::build(&inputs.model, &inputs.recipe, &PlanFilter::default())?;
    let simulator = if let Some(s) = &inputs.simulator {
        Arc::clone(s)
    } else {
        let n = inputs.data.num_samples;
        progress.report(STAGE_FLOAT_REFERENCE, 0, n);
        let s = Arc::new(Simulator::new(&inputs.model, &inputs.data, &inputs.config, &flags.reference)?);
        progress.report(STAGE_FLOAT_REFERENCE, n, n);
        *built_simulator = Some(Arc::clone(&s));
        s
    };
    if flags.job.load(Ordering::Relaxed) {
        return Err(JobError::Cancelled);
    }
    assert!(!inject_panic, "{INJECTED_PANIC}");
    let mut on_progress = |p: &crate::simulate::Progress| progress.report(&p.stage, p.done, p.total);
    let previous = inputs.previous.as_deref();
    let (evaluation, state) = simulator.evaluate_from(previous, &plan, &inputs.config, &mut on_progress, &flags.job)?;
    Ok(JobOutput::Evaluation { evaluation: Box::new(evaluation), state: Box::new(state), simulator })
}
