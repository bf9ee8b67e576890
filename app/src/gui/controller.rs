//! The controller: the one place that applies the actions views return. It sends commands to the
//! worker, updates the session mirror and the views' states, and starts the file dialogs; the
//! worker's answers are taken in by `events.rs`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use quantbench_core::calibrate::RecipeFile;
use quantbench_core::data::{DataSource, SYNTHETIC_NAME};
use quantbench_core::plan::Measured;
use quantbench_core::quant::recipe::Recipe;
use quantbench_core::worker::{Command, DataRole, ExportKind};

use super::actions::{Action, FilePurpose, SavedView, SelectMode, ViewFormat};
use super::analysis::{RunEnd, SensitivityRun};
use super::app::WorkbenchApp;
use super::context::{file_name, role_index, sanitize};
use super::csv::{pareto_csv, sensitivity_csv, sweep_csv};
use super::export::export_key;
use super::path_prompt::DIALOG_FAILED_WITHIN;
use super::preprocess::PreprocessForm;
use super::settings::Settings;
use super::view_export::SaveDialog;

impl WorkbenchApp {
    /// Opens `path` and the `calib.npz`/`eval.npz` beside it, when present.
    /// Loads the model at `path`, then the data sets `given` and, for the roles not given, the
    /// `calib.npz`/`eval.npz` beside it, then `recipe` (after the load, which resets the recipe).
    fn open_model(&mut self, path: &Path, given: Vec<(DataRole, PathBuf)>, recipe: Option<PathBuf>) {
        let Some(job) = self.send(Command::LoadModel { path: path.to_path_buf() }) else { return };
        self.track(job, format!("Loading {}", file_name(path)));
        let dir = path.parent().unwrap_or_else(|| Path::new("."));
        let mut follow = given;
        for (role, name) in [(DataRole::Calibration, "calib.npz"), (DataRole::Evaluation, "eval.npz")] {
            let p = dir.join(name);
            if p.is_file() && !follow.iter().any(|(r, _)| *r == role) {
                follow.push((role, p));
            }
        }
        follow.sort_by_key(|(role, _)| role_index(*role));
        self.pending.follow_ups.insert(job, (path.to_path_buf(), follow, recipe));
        Settings::remember(&mut self.settings.recent_models, path);
    }

    /// Loads a synthetic set (random inputs the user chose, flagged wherever shown) for `role`.
    fn load_synthetic(&mut self, role: DataRole, shapes: Vec<Vec<usize>>, samples: usize) {
        // Calibration and evaluation sets differ (another seed), as real splits would.
        let seed = role_index(role) as u64 + 1;
        self.send_data(role, DataSource::Synthetic { samples, shapes, seed }, PathBuf::from(SYNTHETIC_NAME));
    }

    /// Sends `source` to the worker as the set for `role`; `shown` is what the panel calls it.
    fn send_data(&mut self, role: DataRole, source: DataSource, shown: PathBuf) {
        let command = match role {
            DataRole::Calibration => Command::LoadCalibration { source },
            DataRole::Evaluation => Command::LoadEvaluation { source },
        };
        if let Some(job) = self.send(command) {
            self.pending.data_jobs.insert(job, (role, shown));
        }
    }

    pub(super) fn load_data(&mut self, role: DataRole, path: &Path) {
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
        self.send_data(role, source, path.to_path_buf());
    }

    pub(super) fn open_recipe(&mut self, path: &Path) {
        match RecipeFile::load(path) {
            Ok(RecipeFile { mut recipe, calibration }) => {
                Settings::remember(&mut self.settings.recent_recipes, path);
                if let Some(summary) = &self.session.summary {
                    recipe.adopt_names(summary);
                }
                self.set_recipe_locally(&recipe);
                // A calibration the file holds replaces the current one (and its refinements).
                let calibration = calibration.map(Arc::new);
                if let Some(c) = &calibration {
                    self.session.measured = Measured { calibration: Some(Arc::clone(c)), refinements: Arc::default() };
                }
                if let Some(job) = self.send(Command::SetRecipe { recipe, calibration }) {
                    self.pending.unacknowledged_changes.insert(job);
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
            let start = std::time::Instant::now();
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
            // No answer within a moment is no user's cancel: the dialog could not open.
            if picked.is_some() || start.elapsed() < DIALOG_FAILED_WITHIN {
                let _ = tx.send((purpose, picked));
                if let Some(ctx) = ctx {
                    ctx.request_repaint();
                }
            }
        });
        if let Err(e) = spawned {
            eprintln!("cannot open a file dialog: {e}");
        }
    }

    /// Opens the path prompt for `purpose`; the field starts in the model's folder (or the last
    /// model's), ready for a file name.
    fn open_path_prompt(&mut self, purpose: FilePurpose) {
        let dir = self
            .session
            .model_path
            .as_deref()
            .or(self.settings.recent_models.first().map(PathBuf::as_path))
            .and_then(Path::parent)
            .filter(|d| !d.as_os_str().is_empty());
        let text = dir.map(|d| format!("{}{}", d.display(), std::path::MAIN_SEPARATOR)).unwrap_or_default();
        self.views.path_prompt.open(purpose, text);
    }

    /// Applies image preprocessing settings and reloads the image folders loaded with the old ones.
    fn apply_preprocess(&mut self, preprocess: quantbench_core::data::Preprocess) {
        self.settings.preprocess = preprocess;
        self.views.preprocess = PreprocessForm::from_preprocess(&self.settings.preprocess);
        for role in [DataRole::Calibration, DataRole::Evaluation] {
            if let Some(dir) = self.image_folders[role_index(role)].clone() {
                self.load_data(role, &dir);
            }
        }
    }

    /// Applies the queued actions.
    pub(crate) fn apply_actions(&mut self, ctx: &egui::Context) {
        for action in std::mem::take(&mut self.actions) {
            self.apply(action, ctx);
        }
    }

    /// Changes the whole-recipe settings with `edit`, here and in the worker (which re-evaluates).
    fn edit_recipe(&mut self, edit: impl FnOnce(&mut quantbench_core::quant::recipe::Recipe)) {
        let Some(mut recipe) = self.session.recipe.clone() else { return };
        edit(&mut recipe);
        self.set_recipe_locally(&recipe);
        if let Some(job) = self.send(Command::SetRecipe { recipe, calibration: None }) {
            self.pending.unacknowledged_changes.insert(job);
        }
    }

    fn apply(&mut self, action: Action, ctx: &egui::Context) {
        match action {
            Action::PickFile(purpose @ (FilePurpose::Export(_) | FilePurpose::SaveView(..)))
            | Action::BrowseFile(purpose) => {
                self.spawn_file_dialog(purpose);
            }
            Action::PickFile(purpose) => self.open_path_prompt(purpose),
            Action::ShowSynthetic(role) => {
                if let Some(summary) = &self.session.summary {
                    self.views.synthetic.open(role, &summary.inputs);
                }
            }
            Action::LoadSynthetic(role, shapes, samples) => self.load_synthetic(role, shapes, samples),
            Action::SetMemoryBudget(mib) => {
                self.settings.memory_budget_mib = mib;
                self.send(Command::SetMemoryBudget { mib });
            }
            Action::OpenModel(path) => self.open_model(&path, Vec::new(), None),
            Action::OpenModelWith(path, data, recipe) => self.open_model(&path, data, recipe),
            Action::LoadData(role, path) => self.load_data(role, &path),
            Action::OpenRecipe(path) => self.open_recipe(&path),
            Action::ApplyPreprocess(preprocess) => self.apply_preprocess(preprocess),
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
                        self.pending.unacknowledged_changes.insert(job);
                    }
                }
            }
            Action::SetDefaults(config) => {
                if let Some(recipe) = &mut self.session.recipe {
                    recipe.defaults = config;
                }
                if let Some(job) = self.send(Command::SetDefaults { config }) {
                    self.pending.unacknowledged_changes.insert(job);
                }
            }
            Action::SetRuntime(runtime) => self.edit_recipe(|recipe| {
                // Defaults chosen for the old profile follow the new one (7-bit weights where the
                // runtime saturates, 8 elsewhere); bits the user chose stay.
                if recipe.defaults.weight.bits == recipe.runtime.default_weight_bits() {
                    recipe.defaults.weight.bits = runtime.default_weight_bits();
                }
                recipe.runtime = runtime;
            }),
            Action::SetTarget(target) => self.edit_recipe(|recipe| recipe.target = target),
            Action::SetWeightsOnly(on) => self.edit_recipe(|recipe| recipe.weights_only = on),
            Action::SetWeightFormat(format) => self.edit_recipe(|recipe| recipe.weight_format = format),
            Action::SetFloatOps(ops) => self.edit_recipe(|recipe| recipe.float_ops = ops),
            Action::SetFloatNodes(nodes) => self.edit_recipe(|recipe| recipe.float_nodes = nodes),
            Action::Calibrate => {
                if let Some(job) = self.send(Command::Calibrate) {
                    self.track(job, "Calibrating");
                    self.pending.calibration = Some(job);
                }
            }
            Action::Evaluate => {
                if let Some(job) = self.send(Command::Evaluate) {
                    self.track(job, "Evaluating");
                    self.pending.evaluation = Some(job);
                }
            }
            Action::Cancel(job) => {
                let _ = self.send(Command::Cancel { job });
            }
            Action::Export(kind, path) => {
                if let Some(job) = self.send(Command::Export { kind, path: path.clone() }) {
                    self.track(job, format!("Exporting {}", file_name(&path)));
                    self.views.export.job = Some(job);
                    self.views.export.last = None;
                }
            }
            Action::ShowExport => {
                self.fill_default_export_paths();
                self.views.export.open = true;
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
            Action::SetLogHistogram(on) => self.settings.log_histogram = on,
            Action::RunSensitivity { .. }
            | Action::RunMixedPrecision(_)
            | Action::ApplyPathPoint(_)
            | Action::SaveView(..)
            | Action::BrowseSavePath(..) => self.apply_analysis(action, ctx),
        }
    }

    /// The export dialog's default paths, for the kinds without a typed one: `<model file
    /// stem>_qdq.onnx` (and alike) in the folder of the last export when there was one, else
    /// beside the model.
    fn fill_default_export_paths(&mut self) {
        let model = self.session.model_path.as_deref();
        let dir = self
            .settings
            .last_export_dir
            .clone()
            .filter(|d| d.is_dir())
            .or_else(|| model.and_then(Path::parent).filter(|d| !d.as_os_str().is_empty()).map(Path::to_path_buf))
            .or_else(|| std::env::current_dir().ok())
            .unwrap_or_else(|| PathBuf::from("."));
        let stem = model
            .and_then(Path::file_stem)
            .map(|s| sanitize(&s.to_string_lossy()))
            .or_else(|| self.session.summary.as_ref().map(|s| sanitize(&s.name)))
            .unwrap_or_else(|| "model".to_string());
        for (kind, name) in [
            (ExportKind::QdqModel, format!("{stem}_qdq.onnx")),
            (ExportKind::Encodings, format!("{stem}_encodings.json")),
            (ExportKind::Recipe, format!("{stem}_recipe.json")),
        ] {
            let path = self.views.export.paths.entry(export_key(kind)).or_default();
            if path.trim().is_empty() {
                *path = dir.join(name).to_string_lossy().into_owned();
            }
        }
    }

    fn select(&mut self, index: usize, mode: SelectMode) {
        let Some(summary) = &self.session.summary else { return };
        let Some(layer) = summary.layers.get(index) else { return };
        match mode {
            SelectMode::Replace => {
                self.selection.selected.clear();
                self.selection.selected.insert(layer.name.clone());
                self.selection.anchor = Some(index);
            }
            SelectMode::Toggle => {
                if !self.selection.selected.remove(&layer.name) {
                    self.selection.selected.insert(layer.name.clone());
                }
                self.selection.anchor = Some(index);
            }
            SelectMode::Range => {
                let anchor = self.selection.anchor.unwrap_or(index);
                let visible = &self.views.table.visible;
                let pos = |i: usize| visible.iter().position(|&v| v == i);
                if let (Some(a), Some(b)) = (pos(anchor), pos(index)) {
                    let (lo, hi) = (a.min(b), a.max(b));
                    self.selection.selected = visible[lo..=hi]
                        .iter()
                        .filter_map(|&i| summary.layers.get(i))
                        .map(|l| l.name.clone())
                        .collect();
                } else {
                    self.selection.selected.insert(layer.name.clone());
                }
            }
        }
        self.selection.focus = Some(index);
    }

    pub(crate) fn apply_theme(&mut self, ctx: &egui::Context) {
        if self.theme_applied != Some(self.settings.dark_mode) {
            ctx.set_theme(if self.settings.dark_mode { egui::Theme::Dark } else { egui::Theme::Light });
            self.theme_applied = Some(self.settings.dark_mode);
        }
    }

    /// Applies an analysis action (run, apply a point, save a view).
    pub(super) fn apply_analysis(&mut self, action: Action, ctx: &egui::Context) {
        match action {
            Action::RunSensitivity { metric, bits } => {
                let Some(job) = self.send(Command::AnalyzeSensitivity { metric, bits: bits.clone() }) else { return };
                self.track(job, "Sensitivity");
                let total = self.session.summary.as_ref().map_or(0, |s| s.layers.len());
                self.analysis.sensitivity_job = Some(job);
                self.analysis.sensitivity =
                    Some(SensitivityRun { metric, bits, total, layers: Vec::new(), revision: None, end: RunEnd::Open });
            }
            Action::RunMixedPrecision(target) => {
                let Some(job) = self.send(Command::MixedPrecision { target }) else { return };
                self.track(job, "Mixed precision");
                self.analysis.mixed_job = Some(job);
                self.analysis.mixed_end = RunEnd::Open;
            }
            Action::ApplyPathPoint(i) => self.apply_path_point(i),
            Action::SaveView(view, format, None) => {
                let dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
                let model = self.session.summary.as_ref().map_or_else(|| "model".to_string(), |s| sanitize(&s.name));
                let name = format!("{model}_{}.{}", view.stem(), format.extension());
                let path = dir.join(name).to_string_lossy().into_owned();
                self.views.save = Some(SaveDialog { view, format, path });
            }
            Action::BrowseSavePath(view, format) => self.spawn_file_dialog(FilePurpose::SaveView(view, format)),
            Action::SaveView(view, format, Some(path)) => self.save_view(view, format, path, ctx),
            _ => {}
        }
    }

    /// Makes path point `i` of the last search the recipe: the current recipe with the point's
    /// weight bits, sent to the worker like any recipe change.
    fn apply_path_point(&mut self, i: usize) {
        let (Some(run), Some(recipe)) = (&mut self.analysis.mixed, &self.session.recipe) else { return };
        if i >= run.result.path.len() {
            return;
        }
        let recipe = run.result.recipe_of(recipe, i);
        run.applied = Some(i);
        self.set_recipe_locally(&recipe);
        if let Some(job) = self.send(Command::SetRecipe { recipe, calibration: None }) {
            self.pending.unacknowledged_changes.insert(job);
        }
        self.notes.push(format!("applied mixed-precision point #{i}"));
    }

    fn save_view(&mut self, view: SavedView, format: ViewFormat, path: PathBuf, ctx: &egui::Context) {
        if format == ViewFormat::Png {
            let rect = match view {
                SavedView::SensitivityBars => self.views.sensitivity.bars_rect,
                SavedView::SweepHeatmap => self.views.sensitivity.heatmap_rect,
                SavedView::ParetoFront => self.views.pareto.rect,
            };
            if let Err(e) = self.saver.save_png(ctx, rect, path) {
                self.errors.push(e);
            }
            return;
        }
        let csv = match view {
            SavedView::SensitivityBars => {
                self.analysis.sensitivity.as_ref().map(|r| sensitivity_csv(r, self.session.summary.as_ref()))
            }
            SavedView::SweepHeatmap => self.analysis.sensitivity.as_ref().map(sweep_csv),
            SavedView::ParetoFront => self.analysis.mixed.as_ref().map(pareto_csv),
        };
        match csv {
            Some(csv) => self.saver.save_bytes(ctx, path, csv.into_bytes()),
            None => self.errors.push(format!("nothing to save yet: {}", file_name(&path))),
        }
    }

    /// Reports finished saves as notes or errors.
    pub(super) fn drain_saves(&mut self) {
        for result in self.saver.drain() {
            match result {
                Ok(path) => self.notes.push(format!("saved {}", path.display())),
                Err(e) => self.errors.push(e),
            }
        }
    }

    /// A path chosen with the save window's Browse button.
    pub(super) fn chose_save_path(&mut self, view: SavedView, format: ViewFormat, path: &Path) {
        if let Some(d) = self.views.save.as_mut().filter(|d| d.view == view && d.format == format) {
            d.path = path.to_string_lossy().into_owned();
        }
    }
}
