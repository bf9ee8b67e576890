//! The controller's other half: takes in the worker's events (and finished file dialogs and
//! saves) and updates the session mirror, the jobs, the analyses and the views' states.

use quantbench_core::quant::recipe::Recipe;
use quantbench_core::worker::{DataRole, Event, ExportKind, JobKind, WorkerHandle};

use super::actions::{Action, FilePurpose};
use super::analysis::RunEnd;
use super::app::WorkbenchApp;
use super::context::{DataInfo, JobInfo, Selection, Session, file_name, role_index};
use super::path_prompt::NO_DIALOG;
use super::settings::Settings;
use super::table::TableState;

impl WorkbenchApp {
    /// Drains the worker's events and finished file dialogs (never blocks).
    pub(super) fn drain(&mut self, ctx: &egui::Context) {
        let _ = self.repaint_ctx.get_or_init(|| ctx.clone());
        self.apply_theme(ctx);
        while let Ok((purpose, picked)) = self.files_rx.try_recv() {
            let Some(path) = picked else {
                self.dialog_failed(purpose);
                continue;
            };
            match purpose {
                FilePurpose::Model => self.push_action(Action::OpenModel(path)),
                FilePurpose::Data(role) | FilePurpose::ImageFolder(role) => {
                    self.push_action(Action::LoadData(role, path));
                }
                FilePurpose::Recipe => self.push_action(Action::OpenRecipe(path)),
                FilePurpose::Export(kind) => {
                    self.views.export.kind = kind;
                    *self.views.export.path_mut() = path.to_string_lossy().into_owned();
                }
                FilePurpose::SaveView(view, format) => self.chose_save_path(view, format, &path),
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

    /// The system file dialog for `purpose` could not open: say so, and let the path be typed
    /// (the path prompt opens, or stays open, for files to open; save windows have a field).
    fn dialog_failed(&mut self, purpose: FilePurpose) {
        if self.errors.last().is_none_or(|e| e != NO_DIALOG) {
            self.errors.push(NO_DIALOG.to_string());
        }
        if !matches!(purpose, FilePurpose::Export(_) | FilePurpose::SaveView(..)) {
            let prompt = &mut self.views.path_prompt;
            if prompt.purpose != Some(purpose) {
                prompt.open(purpose, String::new());
            }
            prompt.dialog_failed = true;
        }
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
            Event::ModelLoaded { job, summary, weights } => {
                let (path, follow, recipe) =
                    self.pending.follow_ups.remove(&job).map_or((None, Vec::new(), None), |(p, f, r)| (Some(p), f, r));
                self.session = Session {
                    model_path: path,
                    recipe: Some(Recipe::for_local_runtime(&summary.name)),
                    summary: Some(*summary),
                    weights,
                    ..Session::default()
                };
                self.views.table = TableState::default();
                self.selection = Selection::default();
                self.selection.focus = None;
                self.pending.evaluation = None;
                self.pending.calibration = None;
                self.pending.unacknowledged_changes.clear();
                self.views.export.paths.clear();
                self.analysis.clear_results();
                self.notes.clear();
                self.image_folders = [None, None];
                for (role, path) in follow {
                    self.load_data(role, &path);
                }
                if let Some(recipe) = recipe {
                    self.open_recipe(&recipe);
                }
                if self.session.summary.as_ref().is_some_and(|s| !s.layers.is_empty()) {
                    self.selection.focus = Some(0);
                }
            }
            Event::DataLoaded { job, role, num_samples, has_labels } => {
                let Some((_, path)) = self.pending.data_jobs.remove(&job) else { return };
                if !path.is_dir() {
                    self.image_folders[role_index(role)] = None;
                }
                let info = DataInfo { path: path.clone(), num_samples, has_labels };
                if !info.is_synthetic() {
                    Settings::remember(&mut self.settings.recent_data, &path);
                }
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
                        if self.simulatable() {
                            self.push_action(Action::Evaluate);
                        }
                    }
                }
            }
            Event::Calibrated { job, revision, recipe, measured } => {
                if self.pending.calibration == Some(job) {
                    self.pending.calibration = None;
                }
                self.session.revision = revision;
                self.session.recipe = Some(*recipe);
                self.session.measured = measured;
                if self.session.evaluation_set.is_some() {
                    self.push_action(Action::Evaluate);
                }
            }
            Event::RecipeChanged { job, revision, evaluation } => {
                self.pending.unacknowledged_changes.remove(&job);
                self.session.revision = self.session.revision.max(revision);
                if let Some(eval) = evaluation {
                    if !self.jobs.contains_key(&eval) {
                        self.track(eval, "Evaluating");
                    }
                    self.pending.evaluation = Some(eval);
                }
            }
            Event::Evaluated { job, revision, evaluation } => {
                if self.pending.evaluation == Some(job) {
                    self.pending.evaluation = None;
                }
                if revision >= self.session.revision {
                    self.session.revision = revision;
                    self.session.evaluation = Some((revision, *evaluation));
                }
            }
            // The running evaluation's first result, on a subset: shown until the whole set's.
            Event::EvaluationEstimate { job, revision, evaluation } => {
                if self.pending.evaluation == Some(job) && revision >= self.session.revision {
                    self.session.revision = revision;
                    self.session.evaluation = Some((revision, *evaluation));
                }
            }
            Event::Failed { job, error } => {
                if self.pending.evaluation == Some(job) {
                    self.pending.evaluation = None;
                }
                if self.pending.calibration == Some(job) {
                    self.pending.calibration = None;
                }
                self.pending.unacknowledged_changes.remove(&job);
                self.pending.follow_ups.remove(&job);
                let what = self
                    .pending
                    .data_jobs
                    .remove(&job)
                    .map(|(_, p)| format!("{}: ", file_name(&p)))
                    .unwrap_or_default();
                if self.views.export.job == Some(job) {
                    self.views.export.job = None;
                    self.views.export.last = Some(Err(error.clone()));
                }
                self.analysis.job_ended(job, &RunEnd::Failed(error.clone()));
                self.errors.push(format!("{what}{error}"));
            }
            Event::Cancelled { job } | Event::Superseded { job } => {
                if self.pending.evaluation == Some(job) {
                    self.pending.evaluation = None;
                }
                if self.pending.calibration == Some(job) {
                    self.pending.calibration = None;
                }
                self.analysis.job_ended(job, &RunEnd::Cancelled);
                if self.views.export.job == Some(job) {
                    self.views.export.job = None;
                    self.views.export.last = Some(Err("cancelled".into()));
                }
                self.pending.follow_ups.remove(&job);
            }
            Event::SensitivityLayer { .. } | Event::SensitivityAnalyzed { .. } | Event::MixedPrecisionFound { .. } => {}
            Event::MemoryBudgetSet { mib, .. } => {
                self.notes.push(format!("memory budget: {mib} MiB (the next evaluation keeps what fits)"));
            }
            Event::Exported { job, kind, path } => {
                if self.views.export.job == Some(job) {
                    self.views.export.job = None;
                }
                if kind == ExportKind::Recipe {
                    Settings::remember(&mut self.settings.recent_recipes, &path);
                }
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    self.settings.last_export_dir = Some(dir.to_path_buf());
                }
                self.notes.push(format!("exported {}", path.display()));
                self.views.export.last = Some(Ok(path));
            }
        }
    }
}
