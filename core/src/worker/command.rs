//! Commands: what the app asks the worker to do. Options are typed data, never strings.

use std::path::PathBuf;

use super::JobId;
use crate::analysis::{SensitivityMetric, Target};
use crate::data::DataSource;
use crate::quant::LayerConfig;
use crate::quant::recipe::Recipe;

/// A request to the worker. [`WorkerHandle::send`](super::WorkerHandle::send) gives each one a
/// [`JobId`]; the events that answer it carry that id.
///
/// Commands take effect in the order sent, with one exception: a queued evaluation holds nothing
/// up, because an evaluation always evaluates the state current when it *starts*. Every command
/// except `Cancel` and `Shutdown` ends in exactly one terminal event (see
/// [`Event::is_terminal`](super::Event::is_terminal)).
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Load and check an ONNX model (a job: `Started`, then `ModelLoaded`). This starts a fresh
    /// session: the data sets, recipe and cached results of the previous model are dropped, and
    /// the recipe becomes [`Recipe::for_local_runtime`] for the new model.
    LoadModel {
        /// The `.onnx` file.
        path: PathBuf,
    },
    /// Open a calibration set against the loaded model (headers only; answered by `DataLoaded`).
    /// A calibration already running keeps the set it started with.
    LoadCalibration {
        /// Where the samples are.
        source: DataSource,
    },
    /// Open an evaluation set against the loaded model (answered by `DataLoaded`). A running
    /// evaluation is superseded and re-run on the new set.
    LoadEvaluation {
        /// Where the samples are.
        source: DataSource,
    },
    /// Calibrate the recipe on the calibration set, with the recipe's `calibration_config`
    /// (a job: `Started`, `Progress`..., then `Calibrated`). The result replaces the recipe's
    /// calibration and is a new recipe revision; it does not trigger an evaluation by itself.
    Calibrate,
    /// Replace the whole recipe. A config change: answered by `RecipeChanged`, and triggers an
    /// evaluation.
    SetRecipe {
        /// The new recipe (checked against the model).
        recipe: Recipe,
        /// A calibration that comes with it (a recipe file's): it replaces the current one and
        /// its refinements. None keeps both.
        calibration: Option<std::sync::Arc<crate::observe::Calibration>>,
    },
    /// Set (`Some`) or remove (`None`) the override of one layer. A config change.
    UpdateLayer {
        /// The quantizable layer (node) name.
        layer: String,
        /// Its new configuration; `None` makes it follow the defaults again.
        config: Option<LayerConfig>,
    },
    /// Replace the defaults of every layer without an override. A config change.
    SetDefaults {
        /// The new defaults.
        config: LayerConfig,
    },
    /// Set the memory the evaluations' caches may use, in MiB (0: the default; quick: ends in
    /// `MemoryBudgetSet`). The cached float reference is dropped, so the next evaluation builds
    /// one within the new budget; results are the same at any budget.
    SetMemoryBudget {
        /// The budget in MiB.
        mib: usize,
    },
    /// Evaluate the current recipe on the evaluation set (a job: `Started`, `Progress`..., then
    /// `Evaluated`). The float reference over the evaluation set is computed by the first
    /// evaluation and kept until the model, evaluation set or input shapes change; later
    /// evaluations re-run only what changed since the previous one. At most one evaluation waits
    /// in the queue: a newer `Evaluate` supersedes a queued one.
    Evaluate,
    /// Export the current recipe: the QDQ model, encodings JSON, or the recipe itself.
    Export {
        /// What to write.
        kind: ExportKind,
        /// Where.
        path: PathBuf,
    },
    /// Per-layer sensitivity of the current recipe on the evaluation set (a job: `Started`,
    /// `Progress`..., one `SensitivityLayer` per layer in network order as each finishes, then
    /// `SensitivityAnalyzed`). Builds the float reference first when none is cached. A config
    /// change while it runs does not stop it: the results describe the revision it started from.
    AnalyzeSensitivity {
        /// The model metric measured.
        metric: SensitivityMetric,
        /// Bit widths of each layer's sweep (2–16; empty: no sweep).
        bits: Vec<u8>,
    },
    /// Search per-layer weight bits for the current recipe under a target (a job: `Started`,
    /// `Progress`..., then `MixedPrecisionFound` with the search path, its Pareto front and the
    /// chosen point). The recipe is not changed: apply a point with `SetRecipe`.
    MixedPrecision {
        /// What the chosen configuration must meet.
        target: Target,
    },
    /// Cancel a running or queued job. A queued job ends in `Cancelled` at once; a running one
    /// within one sample. Unknown or finished jobs are ignored. No event of its own.
    Cancel {
        /// The job to cancel.
        job: JobId,
    },
    /// Stop the worker: the running job is cancelled and the thread exits. No event of its own;
    /// [`WorkerHandle::shutdown`](super::WorkerHandle::shutdown) sends it and joins the thread.
    Shutdown,
    /// Test hooks (not part of the product's API).
    #[doc(hidden)]
    Debug(DebugCommand),
}

/// Test hooks for the worker's failure paths.
/// What an export writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExportKind {
    /// The QDQ ONNX model.
    QdqModel,
    /// Encodings JSON (AIMET and ONNX Runtime overrides).
    Encodings,
    /// The recipe (configuration + calibration), reloadable.
    Recipe,
}

#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DebugCommand {
    /// An evaluation job (kind `Evaluate`) that panics once its plan is built and the float
    /// reference is ready: it must end in `Failed` and leave the worker's state intact.
    PanicInEvaluation,
}
