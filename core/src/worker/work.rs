//! The worker's internal view of a command: control (cancel, stop), quick work applied on the
//! worker thread, or a job for the job thread.

use std::path::PathBuf;

use super::{Command, DataRole, DebugCommand, JobId};
use crate::analysis::{SensitivityMetric, Target};
use crate::data::DataSource;
use crate::quant::LayerConfig;
use crate::quant::recipe::Recipe;

/// A command sorted by how the worker handles it.
#[derive(Debug)]
pub(crate) enum Work {
    /// Stop the worker.
    Shutdown,
    /// Cancel a job.
    Cancel(JobId),
    /// Applied on the worker thread.
    Quick(Quick),
    /// Run on the job thread.
    Job(JobRequest),
}

/// Work quick enough for the worker thread (headers only, recipe edits).
#[derive(Debug)]
pub(crate) enum Quick {
    LoadData { role: DataRole, source: DataSource },
    SetRecipe(Box<Recipe>, Option<std::sync::Arc<crate::observe::Calibration>>),
    UpdateLayer { layer: String, config: Option<LayerConfig> },
    SetDefaults(LayerConfig),
    SetMemoryBudget(usize),
}

/// A job for the job thread.
#[derive(Debug)]
pub(crate) enum JobRequest {
    LoadModel(PathBuf),
    Calibrate,
    /// An evaluation; `inject_panic` makes it panic (test hook).
    Evaluate {
        inject_panic: bool,
    },
    /// Write an export of the current recipe.
    Export {
        kind: super::ExportKind,
        path: PathBuf,
    },
    /// Sensitivity of the current recipe.
    Sensitivity {
        metric: SensitivityMetric,
        bits: Vec<u8>,
    },
    /// Mixed-precision search from the current recipe.
    MixedPrecision {
        target: Target,
    },
}

/// A queued piece of work.
#[derive(Debug)]
pub(crate) enum Queued {
    Quick(Quick),
    Job(JobRequest),
}

impl Queued {
    /// A plain evaluation: reads the state when it starts, so it holds nothing up and a newer
    /// one makes it redundant.
    pub(crate) fn is_evaluation(&self) -> bool {
        matches!(self, Self::Job(JobRequest::Evaluate { inject_panic: false }))
    }
}

impl From<Command> for Work {
    fn from(command: Command) -> Self {
        match command {
            Command::LoadModel { path } => Self::Job(JobRequest::LoadModel(path)),
            Command::LoadCalibration { source } => Self::Quick(Quick::LoadData { role: DataRole::Calibration, source }),
            Command::LoadEvaluation { source } => Self::Quick(Quick::LoadData { role: DataRole::Evaluation, source }),
            Command::Calibrate => Self::Job(JobRequest::Calibrate),
            Command::SetRecipe { recipe, calibration } => Self::Quick(Quick::SetRecipe(Box::new(recipe), calibration)),
            Command::UpdateLayer { layer, config } => Self::Quick(Quick::UpdateLayer { layer, config }),
            Command::SetDefaults { config } => Self::Quick(Quick::SetDefaults(config)),
            Command::SetMemoryBudget { mib } => Self::Quick(Quick::SetMemoryBudget(mib)),
            Command::Evaluate => Self::Job(JobRequest::Evaluate { inject_panic: false }),
            Command::Export { kind, path } => Self::Job(JobRequest::Export { kind, path }),
            Command::AnalyzeSensitivity { metric, bits } => Self::Job(JobRequest::Sensitivity { metric, bits }),
            Command::MixedPrecision { target } => Self::Job(JobRequest::MixedPrecision { target }),
            Command::Cancel { job } => Self::Cancel(job),
            Command::Shutdown => Self::Shutdown,
            Command::Debug(DebugCommand::PanicInEvaluation) => Self::Job(JobRequest::Evaluate { inject_panic: true }),
        }
    }
}
