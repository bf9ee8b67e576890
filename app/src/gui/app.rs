//! The application: owns the worker handle, mirrors what the worker reported, tracks jobs, and
//! applies the actions the views return. Long work never runs here: every job is a worker
//! [`Command`], and results arrive as [`Event`]s drained in [`eframe::App::logic`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::OnceLock;

use crossbeam_channel::{Receiver, Sender, bounded};
use quantbench_core::calibrate::RecipeFile;
use quantbench_core::data::DataSource;
use quantbench_core::model::ModelSummary;
use quantbench_core::plan::Measured;
use quantbench_core::quant::recipe::Recipe;
use quantbench_core::simulate::Evaluation;
use quantbench_core::worker::{Command, DataRole, Event, ExportKind, JobId, JobKind, Worker, WorkerHandle};

use super::actions::{Action, FilePurpose, SelectMode};
use super::analysis::{AnalysisState, RunEnd};
use super::settings::Settings;
use super::view_export::ViewSaver;

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
}

impl Session {
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
}

impl ResultsState {
    /// Whether the results are of an older configuration (updating or outdated).
    pub fn is_old(self) -> bool {
        self != Self::Current
    }

    /// The label views show next to results in this state (`None` when current).
    pub fn label(self) -> Option<&'static str> {
        match self {
            Self::Current => None,
            Self::Updating => Some(UPDATING_LABEL),
            Self::Outdated => Some(OUTDATED_LABEL),
        }
    }
}

/// Shown next to results while a newer configuration is being evaluated.
pub const UPDATING_LABEL: &str = "updating…";
/// Shown next to results of an older configuration that nothing is evaluating.
pub const OUTDATED_LABEL: &str = "outdated — re-evaluate";

/// The export dialog's state.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportState {
    /// Whether the window is open.
    pub open: bool,
    /// What to write.
    pub kind: ExportKind,
    /// Where, per kind.
    pub paths: BTreeMap<u8, String>,
    /// The last export's outcome: `Ok(path)` or `Err(reason)`.
    pub last: Option<Result<PathBuf, String>>,
    /// The export job running, if any.
    pub job: Option<JobId>,
}

/// A stable key for an export kind.
pub fn export_key(kind: ExportKind) -> u8 {
    match kind {
        ExportKind::QdqModel => 0,
        ExportKind::Encodings => 1,
        ExportKind::Recipe => 2,
    }
}

impl ExportState {
    /// The path typed for the current kind.
    pub fn path_mut(&mut self) -> &mut String {
        self.paths.entry(export_key(self.kind)).or_default()
    }
}

/// Which view fills the centre.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CentralView {
    /// The layer table.
    Table,
    /// The per-layer error chart.
    Overview,
    /// The advanced algorithms.
    Algorithms,
    /// Sensitivity bar chart and bit-sweep heat map.
    Sensitivity,
    /// Mixed-precision search and Pareto front.
    MixedPrecision,
}

/// Sortable columns of the layer table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortColumn {
    /// Network order.
    Order,
    /// Layer name.
    Name,
    /// Operator type.
    Op,
    /// Weight bits.
    WBits,
    /// Activation bits.
    ABits,
    /// Local SQNR.
    Local,
    /// Accumulated SQNR.
    Accumulated,
    /// Sensitivity (enable-one metric of the last sensitivity run).
    Sensitivity,
}

/// View state of the layer table.
#[derive(Debug, Clone, PartialEq)]
pub struct TableState {
    /// Filter text (name or op, case-insensitive).
    pub filter: String,
    /// Sort column.
    pub sort: SortColumn,
    /// Ascending order.
    pub ascending: bool,
    /// Selected layers (names).
    pub selected: BTreeSet<String>,
    /// Anchor of shift-click ranges (index in network order).
    pub anchor: Option<usize>,
    /// The visible rows as last drawn (indices in network order), for shift-click ranges.
    pub visible: Vec<usize>,
}

impl Default for TableState {
    fn default() -> Self {
        Self {
            filter: String::new(),
            sort: SortColumn::Order,
            ascending: true,
            selected: BTreeSet::new(),
            anchor: None,
            visible: Vec::new(),
        }
    }
}

/// The QuantBench workbench.
pub struct WorkbenchApp {
    worker: Option<WorkerHandle>,
    repaint_ctx: Arc<OnceLock<egui::Context>>,
    /// Persisted settings.
    pub settings: Settings,
    /// Mirror of the worker's session.
    pub session: Session,
    /// Jobs in flight, by id.
    pub jobs: BTreeMap<JobId, JobInfo>,
    /// Data sets to open once a model job has loaded.
    follow_ups: BTreeMap<JobId, (PathBuf, Vec<(DataRole, PathBuf)>)>,
    /// Data-set jobs and what they load.
    data_jobs: BTreeMap<JobId, (DataRole, PathBuf)>,
    /// The evaluation that will cover the newest config change.
    pub pending_evaluation: Option<JobId>,
    /// A calibration that will be followed by an evaluation.
    pub pending_calibration: Option<JobId>,
    /// Config changes sent but not yet acknowledged.
    pub unacknowledged_changes: BTreeSet<JobId>,
    /// Error messages, oldest first.
    pub errors: Vec<String>,
    /// Short status notes (e.g. "calibration set: calib.npz").
    pub notes: Vec<String>,
    /// The focused layer (index in network order), shown in the detail panel.
    pub focus: Option<usize>,
    /// Layer table view state.
    pub table: TableState,
    /// Central view.
    pub view: CentralView,
    /// Export dialog.
    pub export: ExportState,
    /// The advanced-algorithms view.
    pub algorithms: super::algorithms::AlgorithmsState,
    /// Sensitivity and mixed-precision views.
    pub analysis: AnalysisState,
    /// Saves views as CSV/PNG off the UI thread.
    pub saver: ViewSaver,
    /// The image preprocessing form (applied settings live in [`Settings::preprocess`]).
    pub preprocess_form: super::preprocess::PreprocessForm,
    /// The image folders last asked for, per role (calibration, evaluation): re-loaded when the
    /// preprocessing changes, and the form shows while there is one.
    pub image_folders: [Option<PathBuf>; 2],
    /// Per-frame timings, when `QB_FRAME_LOG` asks for them.
    pub(super) frame_log: Option<super::frame_log::FrameLog>,
    /// The activation histogram's draggable clip lines.
    pub clip_lines: super::clip_drag::ClipLines,
    actions: Vec<Action>,
    files_tx: Sender<(FilePurpose, PathBuf)>,
    files_rx: Receiver<(FilePurpose, PathBuf)>,
    theme_applied: Option<bool>,
}

impl WorkbenchApp {
    /// A new app with its worker; `storage` restores the settings.
    pub fn new(storage: Option<&dyn eframe::Storage>) -> Self {
        let settings: Settings = storage.and_then(|s| eframe::get_value(s, eframe::APP_KEY)).unwrap_or_default();
        let repaint_ctx: Arc<OnceLock<egui::Context>> = Arc::new(OnceLock::new());
        let waker_ctx = Arc::clone(&repaint_ctx);
        let mut errors = Vec::new();
        let worker = match Worker::spawn(Box::new(move || {
            if let Some(ctx) = waker_ctx.get() {
                ctx.request_repaint();
            }
        })) {
            Ok(w) => Some(w),
            Err(e) => {
                errors.push(format!("cannot start the worker: {e}"));
                None
            }
        };
        let (files_tx, files_rx) = bounded(16);
        let preprocess_form = super::preprocess::PreprocessForm::from_preprocess(&settings.preprocess);
        Self {
            worker,
            repaint_ctx,
            settings,
            session: Session::default(),
            jobs: BTreeMap::new(),
            follow_ups: BTreeMap::new(),
            data_jobs: BTreeMap::new(),
            pending_evaluation: None,
            pending_calibration: None,
            unacknowledged_changes: BTreeSet::new(),
            errors,
            notes: Vec::new(),
            focus: None,
            table: TableState::default(),
            view: CentralView::Table,
            export: ExportState {
                open: false,
                kind: ExportKind::QdqModel,
                paths: BTreeMap::new(),
                last: None,
                job: None,
            },
            algorithms: super::algorithms::AlgorithmsState::default(),
            analysis: AnalysisState::default(),
            saver: ViewSaver::default(),
            preprocess_form,
            image_folders: [None, None],
            frame_log: super::frame_log::FrameLog::from_env(),
            clip_lines: super::clip_drag::ClipLines::default(),
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

    /// Whether the shown results describe the current configuration, are being updated, or are
    /// outdated with nothing running to update them.
    pub fn results_state(&self) -> ResultsState {
        let updating = self.pending_evaluation.is_some()
            || !self.unacknowledged_changes.is_empty()
            || (self.pending_calibration.is_some() && self.session.evaluation_set.is_some());
        if updating {
            ResultsState::Updating
        } else if self.session.evaluation_is_current() {
            ResultsState::Current
        } else {
            ResultsState::Outdated
        }
    }

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

    pub(super) fn track(&mut self, job: JobId, label: impl Into<String>) {
        self.jobs.insert(job, JobInfo { label: label.into(), stage: String::new(), done: 0, total: 0, started: false });
    }

    /// Opens `path` and the `calib.npz`/`eval.npz` beside it, when present.
    fn open_model(&mut self, path: &Path) {
        let Some(job) = self.send(Command::LoadModel { path: path.to_path_buf() }) else { return };
        self.track(job, format!("Loading {}", file_name(path)));
        let dir = path.parent().unwrap_or_else(|| Path::new("."));
        let mut follow = Vec::new();
        for (role, name) in [(DataRole::Calibration, "calib.npz"), (DataRole::Evaluation, "eval.npz")] {
            let p = dir.join(name);
            if p.is_file() {
                follow.push((role, p));
            }
        }
        self.follow_ups.insert(job, (path.to_path_buf(), follow));
        Settings::remember(&mut self.settings.recent_models, path);
    }

    fn load_data(&mut self, role: DataRole, path: &Path) {
        let source = match DataSource::from_path(path) {
            Ok(DataSource::Images { dir, .. }) => {
                self.image_folders[role_index(role)] = Some(dir.clone());
                DataSource::Images { dir, preprocess: self.settings.preprocess.clone() }
            }
            Ok(s) => s,
            Err(e) => {
                self.errors.push(e.to_string());
                return;
            }
        };
        let command = match role {
            DataRole::Calibration => Command::LoadCalibration { source },
            DataRole::Evaluation => Command::LoadEvaluation { source },
        };
        if let Some(job) = self.send(command) {
            self.data_jobs.insert(job, (role, path.to_path_buf()));
        }
    }

    fn open_recipe(&mut self, path: &Path) {
        match RecipeFile::load(path) {
            Ok(RecipeFile { recipe, calibration }) => {
                Settings::remember(&mut self.settings.recent_recipes, path);
                self.set_recipe_locally(&recipe);
                // A calibration the file holds replaces the current one (and its refinements).
                let calibration = calibration.map(Arc::new);
                if let Some(c) = &calibration {
                    self.session.measured = Measured { calibration: Some(Arc::clone(c)), refinements: Arc::default() };
                }
                if let Some(job) = self.send(Command::SetRecipe { recipe, calibration }) {
                    self.unacknowledged_changes.insert(job);
                }
                self.notes.push(format!("recipe: {}", file_name(path)));
            }
            Err(e) => self.errors.push(e.to_string()),
        }
    }

    pub(super) fn set_recipe_locally(&mut self, recipe: &Recipe) {
        self.session.recipe = Some(recipe.clone());
    }

    /// Where a dropped file goes: models open, recipes load, data sets go to calibration when none
    /// is loaded (or the name says `calib`), else evaluation (or the name says `eval`).
    pub fn route_dropped(&self, path: &Path) -> Action {
        let ext = path.extension().map(|e| e.to_string_lossy().to_lowercase()).unwrap_or_default();
        let name = file_name(path).to_lowercase();
        match ext.as_str() {
            "onnx" => Action::OpenModel(path.to_path_buf()),
            "json" => Action::OpenRecipe(path.to_path_buf()),
            _ => {
                let role = if name.contains("eval") || name.contains("test") {
                    DataRole::Evaluation
                } else if name.contains("calib") || self.session.calibration.is_none() {
                    DataRole::Calibration
                } else {
                    DataRole::Evaluation
                };
                Action::LoadData(role, path.to_path_buf())
            }
        }
    }

    pub(super) fn spawn_file_dialog(&self, purpose: FilePurpose) {
        let tx = self.files_tx.clone();
        let ctx = self.repaint_ctx.get().cloned();
        let start_dir = self.session.model_path.as_ref().and_then(|p| p.parent().map(Path::to_path_buf));
        // rfd blocks until the user answers, so the dialog runs on a short-lived thread of its own.
        let spawned = std::thread::Builder::new().name("file-dialog".into()).spawn(move || {
            let mut dialog = rfd::FileDialog::new();
            if let Some(dir) = start_dir {
                dialog = dialog.set_directory(dir);
            }
            let picked = match purpose {
                FilePurpose::Model => dialog.add_filter("ONNX model", &["onnx"]).pick_file(),
                FilePurpose::Data(_) => dialog.add_filter("NumPy data", &["npz", "npy"]).pick_file(),
                FilePurpose::ImageFolder(_) => dialog.pick_folder(),
                FilePurpose::Recipe => dialog.add_filter("Recipe", &["json"]).pick_file(),
                FilePurpose::Export(kind) => {
                    let (name, ext) = match kind {
                        ExportKind::QdqModel => ("model_qdq.onnx", "onnx"),
                        ExportKind::Encodings => ("encodings.json", "json"),
                        ExportKind::Recipe => ("recipe.json", "json"),
                    };
                    dialog.set_file_name(name).add_filter(ext, &[ext]).save_file()
                }
                FilePurpose::SaveView(view, format) => {
                    let ext = format.extension();
                    dialog.set_file_name(format!("{}.{ext}", view.stem())).add_filter(ext, &[ext]).save_file()
                }
            };
            if let Some(path) = picked {
                let _ = tx.send((purpose, path));
                if let Some(ctx) = ctx {
                    ctx.request_repaint();
                }
            }
        });
        if let Err(e) = spawned {
            eprintln!("cannot open a file dialog: {e}");
        }
    }

    /// Applies the queued actions.
    pub(crate) fn apply_actions(&mut self, ctx: &egui::Context) {
        for action in std::mem::take(&mut self.actions) {
            self.apply(action, ctx);
        }
    }

    fn apply(&mut self, action: Action, ctx: &egui::Context) {
        match action {
            Action::PickFile(purpose) => self.spawn_file_dialog(purpose),
            Action::OpenModel(path) => self.open_model(&path),
            Action::LoadData(role, path) => self.load_data(role, &path),
            Action::OpenRecipe(path) => self.open_recipe(&path),
            Action::ApplyPreprocess(preprocess) => {
                self.settings.preprocess = preprocess;
                self.preprocess_form = super::preprocess::PreprocessForm::from_preprocess(&self.settings.preprocess);
                for role in [DataRole::Calibration, DataRole::Evaluation] {
                    if let Some(dir) = self.image_folders[role_index(role)].clone() {
                        self.load_data(role, &dir);
                    }
                }
            }
            Action::Dropped(path) => {
                let next = self.route_dropped(&path);
                self.apply(next, ctx);
            }
            Action::UpdateLayers(changes) => {
                for (layer, config) in changes {
                    if let Some(recipe) = &mut self.session.recipe {
                        match config {
                            Some(c) => recipe.layers.insert(layer.clone(), c),
                            None => recipe.layers.remove(&layer),
                        };
                    }
                    if let Some(job) = self.send(Command::UpdateLayer { layer, config }) {
                        self.unacknowledged_changes.insert(job);
                    }
                }
            }
            Action::SetDefaults(config) => {
                if let Some(recipe) = &mut self.session.recipe {
                    recipe.defaults = config;
                }
                if let Some(job) = self.send(Command::SetDefaults { config }) {
                    self.unacknowledged_changes.insert(job);
                }
            }
            Action::SetRuntime(runtime) => {
                let Some(mut recipe) = self.session.recipe.clone() else { return };
                // Defaults chosen for the old profile follow the new one (7-bit weights where the
                // runtime saturates, 8 elsewhere); bits the user chose stay.
                if recipe.defaults.weight.bits == recipe.runtime.default_weight_bits() {
                    recipe.defaults.weight.bits = runtime.default_weight_bits();
                }
                recipe.runtime = runtime;
                self.set_recipe_locally(&recipe);
                if let Some(job) = self.send(Command::SetRecipe { recipe, calibration: None }) {
                    self.unacknowledged_changes.insert(job);
                }
            }
            Action::Calibrate => {
                if let Some(job) = self.send(Command::Calibrate) {
                    self.track(job, "Calibrating");
                    self.pending_calibration = Some(job);
                }
            }
            Action::Evaluate => {
                if let Some(job) = self.send(Command::Evaluate) {
                    self.track(job, "Evaluating");
                    self.pending_evaluation = Some(job);
                }
            }
            Action::Cancel(job) => {
                let _ = self.send(Command::Cancel { job });
            }
            Action::Export(kind, path) => {
                if let Some(job) = self.send(Command::Export { kind, path: path.clone() }) {
                    self.track(job, format!("Exporting {}", file_name(&path)));
                    self.export.job = Some(job);
                    self.export.last = None;
                }
            }
            Action::ShowExport => {
                if self.export.paths.is_empty() {
                    self.fill_default_export_paths();
                }
                self.export.open = true;
            }
            Action::Select(index, mode) => self.select(index, mode),
            Action::DismissError(i) => {
                if i < self.errors.len() {
                    self.errors.remove(i);
                }
            }
            Action::ToggleTheme => {
                self.settings.dark_mode = !self.settings.dark_mode;
                self.apply_theme(ctx);
            }
            Action::RunSensitivity { .. }
            | Action::RunMixedPrecision(_)
            | Action::ApplyPathPoint(_)
            | Action::SaveView(..)
            | Action::BrowseSavePath(..) => self.apply_analysis(action, ctx),
        }
    }

    fn fill_default_export_paths(&mut self) {
        let dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        let stem = self.session.summary.as_ref().map_or_else(|| "model".to_string(), |s| sanitize(&s.name));
        for (kind, name) in [
            (ExportKind::QdqModel, format!("{stem}_qdq.onnx")),
            (ExportKind::Encodings, format!("{stem}_encodings.json")),
            (ExportKind::Recipe, format!("{stem}_recipe.json")),
        ] {
            self.export.paths.insert(export_key(kind), dir.join(name).to_string_lossy().into_owned());
        }
    }

    fn select(&mut self, index: usize, mode: SelectMode) {
        let Some(summary) = &self.session.summary else { return };
        let Some(layer) = summary.layers.get(index) else { return };
        match mode {
            SelectMode::Replace => {
                self.table.selected.clear();
                self.table.selected.insert(layer.name.clone());
                self.table.anchor = Some(index);
            }
            SelectMode::Toggle => {
                if !self.table.selected.remove(&layer.name) {
                    self.table.selected.insert(layer.name.clone());
                }
                self.table.anchor = Some(index);
            }
            SelectMode::Range => {
                let anchor = self.table.anchor.unwrap_or(index);
                let visible = &self.table.visible;
                let pos = |i: usize| visible.iter().position(|&v| v == i);
                if let (Some(a), Some(b)) = (pos(anchor), pos(index)) {
                    let (lo, hi) = (a.min(b), a.max(b));
                    self.table.selected = visible[lo..=hi]
                        .iter()
                        .filter_map(|&i| summary.layers.get(i))
                        .map(|l| l.name.clone())
                        .collect();
                } else {
                    self.table.selected.insert(layer.name.clone());
                }
            }
        }
        self.focus = Some(index);
    }

    pub(crate) fn apply_theme(&mut self, ctx: &egui::Context) {
        if self.theme_applied != Some(self.settings.dark_mode) {
            ctx.set_theme(if self.settings.dark_mode { egui::Theme::Dark } else { egui::Theme::Light });
            self.theme_applied = Some(self.settings.dark_mode);
        }
    }

    /// Drains the worker's events and finished file dialogs (never blocks).
    pub(crate) fn drain(&mut self, ctx: &egui::Context) {
        let _ = self.repaint_ctx.get_or_init(|| ctx.clone());
        self.apply_theme(ctx);
        while let Ok((purpose, path)) = self.files_rx.try_recv() {
            match purpose {
                FilePurpose::Model => self.push_action(Action::OpenModel(path)),
                FilePurpose::Data(role) | FilePurpose::ImageFolder(role) => {
                    self.push_action(Action::LoadData(role, path));
                }
                FilePurpose::Recipe => self.push_action(Action::OpenRecipe(path)),
                FilePurpose::Export(kind) => {
                    self.export.kind = kind;
                    *self.export.path_mut() = path.to_string_lossy().into_owned();
                }
                FilePurpose::SaveView(view, format) => self.analysis.chose_save_path(view, format, &path),
            }
        }
        self.drain_saves();
        // A bounded number per frame keeps the frame short while a job floods progress.
        for _ in 0..512 {
            let Some(event) = self.worker.as_ref().and_then(WorkerHandle::try_recv) else { break };
            self.on_event(event);
        }
        self.apply_actions(ctx);
    }

    // One arm per worker event; splitting it would scatter the event contract.
    #[allow(clippy::too_many_lines)]
    fn on_event(&mut self, event: Event) {
        let job = event.job();
        if event.is_terminal() {
            self.jobs.remove(&job);
        }
        if self.analysis.on_event(&event) {
            return;
        }
        match event {
            Event::Started { job, kind } => {
                let label = match kind {
                    JobKind::LoadModel => "Loading model",
                    JobKind::Calibrate => "Calibrating",
                    JobKind::Evaluate => "Evaluating",
                    JobKind::Export => "Exporting",
                    JobKind::Sensitivity => "Sensitivity",
                    JobKind::MixedPrecision => "Mixed precision",
                };
                self.jobs.entry(job).or_insert_with(|| JobInfo {
                    label: label.into(),
                    stage: String::new(),
                    done: 0,
                    total: 0,
                    started: true,
                });
                if let Some(j) = self.jobs.get_mut(&job) {
                    j.started = true;
                }
            }
            Event::Progress { job, stage, done, total } => {
                if let Some(j) = self.jobs.get_mut(&job) {
                    j.stage = stage;
                    j.done = done;
                    j.total = total;
                }
            }
            Event::ModelLoaded { job, summary } => {
                let (path, follow) = self.follow_ups.remove(&job).map_or((None, Vec::new()), |(p, f)| (Some(p), f));
                self.session = Session {
                    model_path: path,
                    recipe: Some(Recipe::for_local_runtime(&summary.name)),
                    summary: Some(*summary),
                    ..Session::default()
                };
                self.table = TableState::default();
                self.focus = None;
                self.pending_evaluation = None;
                self.pending_calibration = None;
                self.unacknowledged_changes.clear();
                self.export.paths.clear();
                self.analysis.clear_results();
                self.notes.clear();
                self.image_folders = [None, None];
                for (role, path) in follow {
                    self.load_data(role, &path);
                }
                if self.session.summary.as_ref().is_some_and(|s| !s.layers.is_empty()) {
                    self.focus = Some(0);
                }
            }
            Event::DataLoaded { job, role, num_samples, has_labels } => {
                let Some((_, path)) = self.data_jobs.remove(&job) else { return };
                if !path.is_dir() {
                    self.image_folders[role_index(role)] = None;
                }
                let info = DataInfo { path: path.clone(), num_samples, has_labels };
                let role_name = match role {
                    DataRole::Calibration => "calibration",
                    DataRole::Evaluation => "evaluation",
                };
                self.notes.push(format!("{role_name} set: {} ({num_samples} samples)", file_name(&path)));
                match role {
                    DataRole::Calibration => {
                        self.session.calibration = Some(info);
                        self.push_action(Action::Calibrate);
                    }
                    DataRole::Evaluation => {
                        self.session.evaluation_set = Some(info);
                        self.session.evaluation = None;
                        // Analyses measured on the previous set no longer apply.
                        self.analysis.clear_results();
                        if self.calibrated() {
                            self.push_action(Action::Evaluate);
                        }
                    }
                }
            }
            Event::Calibrated { job, revision, recipe, measured } => {
                if self.pending_calibration == Some(job) {
                    self.pending_calibration = None;
                }
                self.session.revision = revision;
                self.session.recipe = Some(*recipe);
                self.session.measured = measured;
                if self.session.evaluation_set.is_some() {
                    self.push_action(Action::Evaluate);
                }
            }
            Event::RecipeChanged { job, revision, evaluation } => {
                self.unacknowledged_changes.remove(&job);
                self.session.revision = self.session.revision.max(revision);
                if let Some(eval) = evaluation {
                    if !self.jobs.contains_key(&eval) {
                        self.track(eval, "Evaluating");
                    }
                    self.pending_evaluation = Some(eval);
                }
            }
            Event::Evaluated { job, revision, evaluation } => {
                if self.pending_evaluation == Some(job) {
                    self.pending_evaluation = None;
                }
                if revision >= self.session.revision {
                    self.session.revision = revision;
                    self.session.evaluation = Some((revision, *evaluation));
                }
            }
            Event::Failed { job, error } => {
                if self.pending_evaluation == Some(job) {
                    self.pending_evaluation = None;
                }
                if self.pending_calibration == Some(job) {
                    self.pending_calibration = None;
                }
                self.unacknowledged_changes.remove(&job);
                self.follow_ups.remove(&job);
                let what = self.data_jobs.remove(&job).map(|(_, p)| format!("{}: ", file_name(&p))).unwrap_or_default();
                if self.export.job == Some(job) {
                    self.export.job = None;
                    self.export.last = Some(Err(error.clone()));
                }
                self.analysis.job_ended(job, &RunEnd::Failed(error.clone()));
                self.errors.push(format!("{what}{error}"));
            }
            Event::Cancelled { job } | Event::Superseded { job } => {
                if self.pending_evaluation == Some(job) {
                    self.pending_evaluation = None;
                }
                if self.pending_calibration == Some(job) {
                    self.pending_calibration = None;
                }
                self.analysis.job_ended(job, &RunEnd::Cancelled);
                if self.export.job == Some(job) {
                    self.export.job = None;
                    self.export.last = Some(Err("cancelled".into()));
                }
                self.follow_ups.remove(&job);
            }
            Event::SensitivityLayer { .. } | Event::SensitivityAnalyzed { .. } | Event::MixedPrecisionFound { .. } => {}
            Event::Exported { job, kind, path } => {
                if self.export.job == Some(job) {
                    self.export.job = None;
                }
                if kind == ExportKind::Recipe {
                    Settings::remember(&mut self.settings.recent_recipes, &path);
                }
                self.notes.push(format!("exported {}", path.display()));
                self.export.last = Some(Ok(path));
            }
        }
    }

    /// Whether the recipe has been calibrated.
    pub fn calibrated(&self) -> bool {
        self.session.measured.calibration.is_some()
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

pub(super) fn sanitize(name: &str) -> String {
    let s: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    if s.is_empty() { "model".into() } else { s }
}

impl Drop for WorkbenchApp {
    fn drop(&mut self) {
        if let Some(worker) = self.worker.take() {
            worker.shutdown();
        }
    }
}
