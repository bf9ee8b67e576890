//! What views read: the session as the worker last reported it, the selection, jobs, messages and
//! whether the results on screen are current, gathered in one read-only [`ViewContext`]. Views
//! never see the app itself: they draw from a context and their own state, and return actions.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use quantbench_core::analysis::WeightErrors;
use quantbench_core::model::ModelSummary;
use quantbench_core::plan::Measured;
use quantbench_core::quant::recipe::Recipe;
use quantbench_core::simulate::Evaluation;
use quantbench_core::worker::{DataRole, JobId};

use super::analysis::AnalysisResults;
use super::settings::Settings;

/// A data set the worker opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataInfo {
    /// Where it is.
    pub path: PathBuf,
    /// Number of samples.
    pub num_samples: usize,
    /// Whether it has labels.
    pub has_labels: bool,
}

impl DataInfo {
    /// Whether the set is synthetic (random inputs the user chose instead of data).
    pub fn is_synthetic(&self) -> bool {
        self.path.as_os_str() == quantbench_core::data::SYNTHETIC_NAME
    }
}

/// A job the app is waiting for.
#[derive(Debug, Clone, PartialEq)]
pub struct JobInfo {
    /// What it does, for the user.
    pub label: String,
    /// The current stage, when reported.
    pub stage: String,
    /// Progress within the stage.
    pub done: usize,
    /// Size of the stage (0 when unknown).
    pub total: usize,
    /// Whether the job started on the job thread.
    pub started: bool,
}

/// What the worker last told us about the session.
#[derive(Debug, Default)]
pub struct Session {
    /// The loaded model's path.
    pub model_path: Option<PathBuf>,
    /// The loaded model.
    pub summary: Option<ModelSummary>,
    /// The calibration set.
    pub calibration: Option<DataInfo>,
    /// The evaluation set.
    pub evaluation_set: Option<DataInfo>,
    /// The recipe as the app believes the worker holds it (config changes applied locally at once).
    pub recipe: Option<Recipe>,
    /// What the worker measured for it (calibration, refinements), as last reported.
    pub measured: Measured,
    /// The newest recipe revision reported by the worker.
    pub revision: u64,
    /// The last evaluation and the revision it describes.
    pub evaluation: Option<(u64, Evaluation)>,
    /// Each layer's weight ranges and weight-only errors, from the weights alone (no data).
    pub weights: Vec<WeightErrors>,
}

impl Session {
    /// The shown evaluation's sample count and the evaluation set's, when it is an estimate on a
    /// subset of the set.
    pub fn estimate_samples(&self) -> Option<(usize, usize)> {
        let (_, e) = self.evaluation.as_ref()?;
        let total = self.evaluation_set.as_ref()?.num_samples;
        (e.samples > 0 && e.samples < total).then_some((e.samples, total))
    }

    /// Whether the shown evaluation describes the newest recipe revision the worker reported.
    pub fn evaluation_is_current(&self) -> bool {
        matches!(&self.evaluation, Some((rev, _)) if *rev == self.revision)
    }
}

/// Whether the results on screen describe the current configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultsState {
    /// The shown evaluation is of the current configuration.
    Current,
    /// A newer configuration is being evaluated: a change is on its way to the worker, or an
    /// evaluation (or a calibration followed by one) is queued or running.
    Updating,
    /// The configuration changed and nothing is evaluating it (e.g. the evaluation was
    /// cancelled): the shown results are of an older configuration until the user re-evaluates.
    Outdated,
    /// The shown results are of the current configuration, on the fixed subset of the
    /// evaluation set the worker evaluates first; the whole set's are on their way.
    Estimate,
}

impl ResultsState {
    /// Whether the results are of an older configuration (updating or outdated).
    pub fn is_old(self) -> bool {
        matches!(self, Self::Updating | Self::Outdated)
    }

    /// The label views show next to results in this state (`None` when current).
    pub fn label(self) -> Option<&'static str> {
        match self {
            Self::Current => None,
            Self::Updating => Some(UPDATING_LABEL),
            Self::Outdated => Some(OUTDATED_LABEL),
            Self::Estimate => Some(ESTIMATE_LABEL),
        }
    }
}

/// Shown next to results while a newer configuration is being evaluated.
pub const UPDATING_LABEL: &str = "updating…";
/// Shown next to results of the current configuration on the estimating subset.
pub const ESTIMATE_LABEL: &str = "estimate — refining…";
/// Shown next to results of an older configuration that nothing is evaluating.
pub const OUTDATED_LABEL: &str = "outdated — re-evaluate";

/// Which layers are selected and which one the detail panel shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Selected layers (names).
    pub selected: BTreeSet<String>,
    /// Anchor of shift-click ranges (index in network order).
    pub anchor: Option<usize>,
    /// The focused layer (index in network order), shown in the detail panel.
    pub focus: Option<usize>,
}

/// Everything a view may read, borrowed from the app for one frame.
#[derive(Debug, Clone, Copy)]
pub struct ViewContext<'a> {
    /// The worker's session as last reported (with local config changes applied).
    pub session: &'a Session,
    /// Persisted settings.
    pub settings: &'a Settings,
    /// Jobs in flight, by id.
    pub jobs: &'a BTreeMap<JobId, JobInfo>,
    /// Whether the shown results describe the current configuration.
    pub results: ResultsState,
    /// The layer selection and focus.
    pub selection: &'a Selection,
    /// Sensitivity and mixed-precision results.
    pub analysis: &'a AnalysisResults,
    /// Error messages, oldest first.
    pub errors: &'a [String],
    /// Short status notes, oldest first.
    pub notes: &'a [String],
    /// The image folders loaded per role (calibration, evaluation), when the sets are folders.
    pub image_folders: &'a [Option<PathBuf>; 2],
}

impl ViewContext<'_> {
    /// Whether the recipe can be simulated: calibrated, or weights only (no activation ranges).
    pub fn simulatable(&self) -> bool {
        self.session.measured.calibration.is_some() || self.session.recipe.as_ref().is_some_and(|r| r.weights_only)
    }

    /// Whether the analyses can run: a calibrated recipe and an evaluation set.
    pub fn calibrated_with_evaluation_set(&self) -> bool {
        self.simulatable() && self.session.evaluation_set.is_some()
    }
}

/// The index of a role in per-role arrays.
pub fn role_index(role: DataRole) -> usize {
    match role {
        DataRole::Calibration => 0,
        DataRole::Evaluation => 1,
    }
}

/// The file name of a path, for messages.
pub fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// A model name made safe for a file name (`model` when nothing is left).
pub fn sanitize(name: &str) -> String {
    let s: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    if s.is_empty() { "model".into() } else { s }
}
