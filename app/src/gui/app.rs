//! The application's state: the worker handle, the mirror of what the worker reported, jobs,
//! messages, the selection, and each view's own state. Views read it through a
//! [`ViewContext`]; only the controller (`controller.rs`, `events.rs`) changes it, by applying
//! the actions views return and the worker's events.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::OnceLock;

use crossbeam_channel::{Receiver, Sender, bounded};
use quantbench_core::worker::{Command, DataRole, JobId, Worker, WorkerHandle, WorkerOptions};

use super::actions::{Action, FilePurpose};
use super::algorithms::AlgorithmsState;
use super::analysis::AnalysisResults;
use super::clip_drag::ClipLines;
use super::context::{JobInfo, ResultsState, Selection, Session, ViewContext};
use super::export::ExportState;
use super::frame_log::FrameLog;
use super::graph_view::GraphState;
use super::pareto::ParetoState;
use super::path_prompt::PathPromptState;
use super::preprocess::PreprocessForm;
use super::sensitivity::SensitivityState;
use super::settings::Settings;
use super::synthetic_form::SyntheticForm;
use super::table::TableState;
use super::view_export::{SaveDialog, ViewSaver};

/// Which view fills the centre.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CentralView {
    /// The layer table.
    Table,
    /// The model's graph.
    Graph,
    /// The per-layer error chart.
    Overview,
    /// The advanced algorithms.
    Algorithms,
    /// Sensitivity bar chart and bit-sweep heat map.
    Sensitivity,
    /// Mixed-precision search and Pareto front.
    MixedPrecision,
}

/// Each view's own state (what it draws from besides the [`ViewContext`]).
#[derive(Debug)]
pub struct Views {
    /// Which view fills the centre.
    pub central: CentralView,
    /// The layer table.
    pub table: TableState,
    /// The graph view.
    pub graph: GraphState,
    /// The layer detail's draggable clip lines.
    pub clip_lines: ClipLines,
    /// The advanced-algorithms view.
    pub algorithms: AlgorithmsState,
    /// The sensitivity view.
    pub sensitivity: SensitivityState,
    /// The mixed-precision view.
    pub pareto: ParetoState,
    /// The export dialog.
    pub export: ExportState,
    /// The save-view window, when open.
    pub save: Option<SaveDialog>,
    /// The image preprocessing form (applied settings live in [`Settings::preprocess`]).
    pub preprocess: PreprocessForm,
    /// The path prompt (open model, data, recipe), when open.
    pub path_prompt: PathPromptState,
    /// The synthetic-inputs form, when open.
    pub synthetic: SyntheticForm,
}

/// What opens once a model has loaded: the model's path, the data sets (role, path), a recipe.
pub type FollowUp = (PathBuf, Vec<(DataRole, PathBuf)>, Option<PathBuf>);

/// Jobs the controller waits for, and what it does when they end.
#[derive(Debug, Default)]
pub struct Pending {
    /// Data sets, then a recipe, to open once a model job has loaded.
    pub follow_ups: BTreeMap<JobId, FollowUp>,
    /// Data-set jobs and what they load.
    pub data_jobs: BTreeMap<JobId, (DataRole, PathBuf)>,
    /// The evaluation that will cover the newest config change.
    pub evaluation: Option<JobId>,
    /// A calibration that will be followed by an evaluation.
    pub calibration: Option<JobId>,
    /// Config changes sent but not yet acknowledged.
    pub unacknowledged_changes: BTreeSet<JobId>,
}

/// The QuantBench workbench.
pub struct WorkbenchApp {
    pub(super) worker: Option<WorkerHandle>,
    pub(super) repaint_ctx: Arc<OnceLock<egui::Context>>,
    /// Persisted settings.
    pub settings: Settings,
    /// Mirror of the worker's session.
    pub session: Session,
    /// Jobs in flight, by id.
    pub jobs: BTreeMap<JobId, JobInfo>,
    /// Jobs whose end the controller acts on.
    pub pending: Pending,
    /// Error messages, oldest first.
    pub errors: Vec<String>,
    /// Short status notes (e.g. "calibration set: calib.npz").
    pub notes: Vec<String>,
    /// The layer selection and the focused layer.
    pub selection: Selection,
    /// Sensitivity and mixed-precision results.
    pub analysis: AnalysisResults,
    /// Each view's own state.
    pub views: Views,
    /// Saves views as CSV/PNG off the UI thread.
    pub(super) saver: ViewSaver,
    /// The image folders last asked for, per role (calibration, evaluation): re-loaded when the
    /// preprocessing changes, and the form shows while there is one.
    pub image_folders: [Option<PathBuf>; 2],
    /// Per-frame timings, when `QB_FRAME_LOG` asks for them.
    pub(super) frame_log: Option<FrameLog>,
    pub(super) actions: Vec<Action>,
    pub(super) files_tx: Sender<(FilePurpose, Option<PathBuf>)>,
    pub(super) files_rx: Receiver<(FilePurpose, Option<PathBuf>)>,
    pub(super) theme_applied: Option<bool>,
}

impl WorkbenchApp {
    /// A new app with its worker; `storage` restores the settings.
    pub fn new(storage: Option<&dyn eframe::Storage>) -> Self {
        let settings: Settings = storage.and_then(|s| eframe::get_value(s, eframe::APP_KEY)).unwrap_or_default();
        let repaint_ctx: Arc<OnceLock<egui::Context>> = Arc::new(OnceLock::new());
        let waker_ctx = Arc::clone(&repaint_ctx);
        let mut errors = Vec::new();
        let waker = Box::new(move || {
            if let Some(ctx) = waker_ctx.get() {
                ctx.request_repaint();
            }
        });
        let options = WorkerOptions { cache_budget_mib: settings.memory_budget_mib };
        let worker = match Worker::spawn_with(waker, options) {
            Ok(w) => Some(w),
            Err(e) => {
                errors.push(format!("cannot start the worker: {e}"));
                None
            }
        };
        let (files_tx, files_rx) = bounded(16);
        let views = Views {
            central: CentralView::Table,
            table: TableState::default(),
            graph: GraphState::default(),
            clip_lines: ClipLines::default(),
            algorithms: AlgorithmsState::default(),
            sensitivity: SensitivityState::default(),
            pareto: ParetoState::default(),
            export: ExportState::default(),
            save: None,
            preprocess: PreprocessForm::from_preprocess(&settings.preprocess),
            path_prompt: PathPromptState::default(),
            synthetic: SyntheticForm::default(),
        };
        Self {
            worker,
            repaint_ctx,
            settings,
            session: Session::default(),
            jobs: BTreeMap::new(),
            pending: Pending::default(),
            errors,
            notes: Vec::new(),
            selection: Selection::default(),
            analysis: AnalysisResults::default(),
            views,
            saver: ViewSaver::default(),
            image_folders: [None, None],
            frame_log: FrameLog::from_env(),
            actions: Vec::new(),
            files_tx,
            files_rx,
            theme_applied: None,
        }
    }

    /// Queues an action, applied at the end of the next frame (the views' path; tests use it too).
    pub fn push_action(&mut self, action: Action) {
        self.actions.push(action);
    }

    /// Whether any job is in flight.
    pub fn busy(&self) -> bool {
        !self.jobs.is_empty()
    }

    /// Whether the recipe can be simulated: calibrated, or weights only (no activation ranges).
    pub fn simulatable(&self) -> bool {
        self.session.measured.calibration.is_some() || self.session.recipe.as_ref().is_some_and(|r| r.weights_only)
    }

    /// Whether the shown results describe the current configuration, are an estimate of it on a
    /// subset (the whole set's on their way), are being updated, or are outdated with nothing
    /// running to update them.
    pub fn results_state(&self) -> ResultsState {
        let updating = self.pending.evaluation.is_some()
            || !self.pending.unacknowledged_changes.is_empty()
            || (self.pending.calibration.is_some() && self.session.evaluation_set.is_some());
        let estimate = self.session.evaluation_is_current()
            && self.pending.unacknowledged_changes.is_empty()
            && self.session.estimate_samples().is_some();
        if updating && estimate {
            ResultsState::Estimate
        } else if updating {
            ResultsState::Updating
        } else if self.session.evaluation_is_current() {
            ResultsState::Current
        } else {
            ResultsState::Outdated
        }
    }

    /// What views read this frame, and their states to draw into: the context borrows every
    /// field but [`WorkbenchApp::views`], so each view takes the context and its own state.
    pub fn split(&mut self) -> (ViewContext<'_>, &mut Views) {
        let results = self.results_state();
        let ctx = ViewContext {
            session: &self.session,
            settings: &self.settings,
            jobs: &self.jobs,
            results,
            selection: &self.selection,
            analysis: &self.analysis,
            errors: &self.errors,
            notes: &self.notes,
            image_folders: &self.image_folders,
        };
        (ctx, &mut self.views)
    }

    /// Sends a command to the worker; a failure becomes an error message.
    pub(super) fn send(&mut self, command: Command) -> Option<JobId> {
        let Some(worker) = &self.worker else {
            self.errors.push("the worker is not running".into());
            return None;
        };
        match worker.send(command) {
            Ok(id) => Some(id),
            Err(e) => {
                self.errors.push(format!("cannot send to the worker: {e}"));
                None
            }
        }
    }

    /// Shows `job` in the jobs bar under `label` until it ends.
    pub(super) fn track(&mut self, job: JobId, label: impl Into<String>) {
        self.jobs.insert(job, JobInfo { label: label.into(), stage: String::new(), done: 0, total: 0, started: false });
    }
}

impl Drop for WorkbenchApp {
    fn drop(&mut self) {
        if let Some(worker) = self.worker.take() {
            worker.shutdown();
        }
    }
}
