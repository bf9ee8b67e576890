//! Events: what the worker answers. Each carries the [`JobId`] of the job it concerns.

use super::JobId;
use crate::analysis::{LayerSensitivity, MixedPrecision, SensitivityMetric, Target, WeightErrors};
use crate::model::ModelSummary;
use crate::quant::recipe::Recipe;
use crate::simulate::Evaluation;

/// The kind of a job that runs on the job thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    /// Loading and checking a model.
    LoadModel,
    /// A calibration pass.
    Calibrate,
    /// An evaluation (building the float reference first when needed).
    Evaluate,
    /// Writing an export.
    Export,
    /// A sensitivity analysis.
    Sensitivity,
    /// A mixed-precision search.
    MixedPrecision,
}

/// What a data set is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataRole {
    /// Calibration samples.
    Calibration,
    /// Evaluation samples (labels optional).
    Evaluation,
}

/// A message from the worker.
///
/// Every job ends in exactly one *terminal* event: `ModelLoaded`, `DataLoaded`, `Calibrated`,
/// `RecipeChanged`, `Evaluated`, `Exported`, `SensitivityAnalyzed`, `MixedPrecisionFound`,
/// `Failed`, `Cancelled` or `Superseded`. `Started`, `Progress` and `SensitivityLayer` come
/// before it, in order. Progress events may be dropped when the app is slow to drain them; other
/// events never are.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A job began on the job thread.
    Started {
        /// The job.
        job: JobId,
        /// What it does.
        kind: JobKind,
    },
    /// How far a job is: at most about ten per second per job, plus the last one.
    Progress {
        /// The job.
        job: JobId,
        /// Stage name: "calibration", "float reference", "quantized model", "layer conv1", ...
        stage: String,
        /// Samples done in this stage.
        done: usize,
        /// Samples in this stage.
        total: usize,
    },
    /// A model was loaded; the session now holds it, with a fresh recipe.
    ModelLoaded {
        /// The job.
        job: JobId,
        /// What the model holds.
        summary: Box<ModelSummary>,
        /// Each layer's weight ranges and weight-only errors per bit width (no data needed).
        weights: Vec<WeightErrors>,
    },
    /// A data set was opened against the model.
    DataLoaded {
        /// The job.
        job: JobId,
        /// What it is for.
        role: DataRole,
        /// Number of samples.
        num_samples: usize,
        /// Whether it has class labels.
        has_labels: bool,
    },
    /// A calibration finished; it is now what the recipe is measured with.
    Calibrated {
        /// The job.
        job: JobId,
        /// The recipe revision the calibration belongs to.
        revision: u64,
        /// The recipe it was made for.
        recipe: Box<Recipe>,
        /// The calibration and the layer-wise algorithms' results.
        measured: crate::plan::Measured,
    },
    /// A config change was applied.
    RecipeChanged {
        /// The job (the config command).
        job: JobId,
        /// The new recipe revision.
        revision: u64,
        /// The queued evaluation that will cover this revision, when one was triggered (a model,
        /// a calibration and an evaluation set are present). A burst of changes shares one.
        evaluation: Option<JobId>,
    },
    /// An evaluation finished. It is only sent when nothing changed while it ran, so `revision` is
    /// the worker's current recipe revision when the event is sent; otherwise the job ends in
    /// `Superseded`.
    Evaluated {
        /// The job.
        job: JobId,
        /// The recipe revision evaluated.
        revision: u64,
        /// The results.
        evaluation: Box<Evaluation>,
    },
    /// A first result of a running evaluation, on a fixed stratified subset of the evaluation set
    /// (`evaluation.samples` of them, `simulate::ESTIMATE_SAMPLES`), sent before the whole set's
    /// `Evaluated` when the set is larger; the job goes on (a newer change supersedes both).
    EvaluationEstimate {
        /// The job.
        job: JobId,
        /// The recipe revision evaluated.
        revision: u64,
        /// The results on the subset.
        evaluation: Box<Evaluation>,
    },
    /// A job failed (an error from the core, missing state, or a panic reported as
    /// "internal error: ..."). The worker's state is unchanged.
    Failed {
        /// The job.
        job: JobId,
        /// One-line message.
        error: String,
    },
    /// A job was cancelled by a `Cancel` command.
    Cancelled {
        /// The job.
        job: JobId,
    },
    /// A job's result was dropped because something newer made it stale: a config change, a new
    /// evaluation set, or a newer `Evaluate` while it was queued. Its results never arrive as
    /// `Evaluated`; the evaluation that replaces it has its own id.
    Superseded {
        /// The job.
        job: JobId,
    },
    /// An export was written.
    Exported {
        /// The job.
        job: JobId,
        /// What was written.
        kind: super::ExportKind,
        /// Where.
        path: std::path::PathBuf,
    },
    /// One layer of a running sensitivity analysis finished (streamed in network order; not
    /// terminal). A cancelled analysis keeps the layers it streamed.
    SensitivityLayer {
        /// The job.
        job: JobId,
        /// Position of the layer among the analysed layers (0-based).
        index: usize,
        /// Number of layers the analysis covers.
        total: usize,
        /// The layer's results.
        result: Box<LayerSensitivity>,
    },
    /// A sensitivity analysis finished.
    SensitivityAnalyzed {
        /// The job.
        job: JobId,
        /// The recipe revision analysed (the one current when the job started).
        revision: u64,
        /// The metric measured.
        metric: SensitivityMetric,
        /// The sweep's bit widths (sorted, without duplicates).
        bits: Vec<u8>,
        /// Every layer's results, network order (the same as the streamed ones).
        layers: Vec<LayerSensitivity>,
    },
    /// A mixed-precision search finished. `result.chosen` is `None` when no configuration on the
    /// path meets the target.
    MixedPrecisionFound {
        /// The job.
        job: JobId,
        /// The recipe revision searched from.
        revision: u64,
        /// The target asked for.
        target: Target,
        /// The search path (Pareto points flagged) and the chosen point.
        result: Box<MixedPrecision>,
    },
    /// The memory budget was set (`SetMemoryBudget`).
    MemoryBudgetSet {
        /// The job.
        job: JobId,
        /// The budget now in force, MiB (0: the default).
        mib: usize,
    },
}

impl Event {
    /// The job the event concerns.
    pub fn job(&self) -> JobId {
        match self {
            Self::Started { job, .. }
            | Self::Progress { job, .. }
            | Self::ModelLoaded { job, .. }
            | Self::DataLoaded { job, .. }
            | Self::Calibrated { job, .. }
            | Self::RecipeChanged { job, .. }
            | Self::Evaluated { job, .. }
            | Self::EvaluationEstimate { job, .. }
            | Self::Failed { job, .. }
            | Self::Cancelled { job }
            | Self::Superseded { job }
            | Self::Exported { job, .. }
            | Self::SensitivityLayer { job, .. }
            | Self::SensitivityAnalyzed { job, .. }
            | Self::MixedPrecisionFound { job, .. }
            | Self::MemoryBudgetSet { job, .. } => *job,
        }
    }

    /// Whether this is the last event of its job.
    pub fn is_terminal(&self) -> bool {
        !matches!(
            self,
            Self::Started { .. }
                | Self::Progress { .. }
                | Self::SensitivityLayer { .. }
                | Self::EvaluationEstimate { .. }
        )
    }
}
