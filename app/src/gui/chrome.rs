//! The frame around the views: menu and toolbar, shortcuts, dropped files, jobs with progress and
//! Cancel, and messages.

use egui::{Key, KeyboardShortcut, Modifiers};
use quantbench_core::worker::DataRole;

use super::actions::{Action, FilePurpose};
use super::context::{ViewContext, file_name};
use crate::samples;

/// Ctrl+O opens a model, Ctrl+E the export dialog.
const OPEN: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND, Key::O);
const EXPORT: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND, Key::E);

/// Keyboard shortcuts.
pub fn shortcuts(ctx: &egui::Context, actions: &mut Vec<Action>) {
    if ctx.input_mut(|i| i.consume_shortcut(&OPEN)) {
        actions.push(Action::PickFile(FilePurpose::Model));
    }
    if ctx.input_mut(|i| i.consume_shortcut(&EXPORT)) {
        actions.push(Action::ShowExport);
    }
}

/// Files dropped on the window.
pub fn dropped_files(ctx: &egui::Context, actions: &mut Vec<Action>) {
    let dropped: Vec<_> = ctx.input(|i| {
        i.raw.dropped_files.iter().map(|f| f.path().to_path_buf()).filter(|p| !p.as_os_str().is_empty()).collect()
    });
    actions.extend(dropped.into_iter().map(Action::Dropped));
}

/// Menu bar and toolbar.
pub fn menu_ui(ctx: &ViewContext, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
    egui::MenuBar::new().ui(ui, |ui| {
        ui.menu_button("File", |ui| {
            if ui.add(egui::Button::new("Open model…").shortcut_text(ui.ctx().format_shortcut(&OPEN))).clicked() {
                actions.push(Action::PickFile(FilePurpose::Model));
            }
            ui.menu_button("Sample models", |ui| {
                for (name, path) in samples::models() {
                    if ui.button(name).clicked() {
                        actions.push(Action::OpenModel(path));
                    }
                }
            });
            ui.menu_button("Recent models", |ui| {
                if ctx.settings.recent_models.is_empty() {
                    ui.label("none yet");
                }
                for p in &ctx.settings.recent_models {
                    if ui.button(p.display().to_string()).clicked() {
                        actions.push(Action::OpenModel(p.clone()));
                    }
                }
            });
            ui.separator();
            if ui.button("Calibration data…").clicked() {
                actions.push(Action::PickFile(FilePurpose::Data(DataRole::Calibration)));
            }
            if ui.button("Evaluation data…").clicked() {
                actions.push(Action::PickFile(FilePurpose::Data(DataRole::Evaluation)));
            }
            ui.separator();
            if ui.button("Open recipe…").clicked() {
                actions.push(Action::PickFile(FilePurpose::Recipe));
            }
            ui.menu_button("Recent recipes", |ui| {
                if ctx.settings.recent_recipes.is_empty() {
                    ui.label("none yet");
                }
                for p in &ctx.settings.recent_recipes {
                    if ui.button(p.display().to_string()).clicked() {
                        actions.push(Action::OpenRecipe(p.clone()));
                    }
                }
            });
            if ui.add(egui::Button::new("Export…").shortcut_text(ui.ctx().format_shortcut(&EXPORT))).clicked() {
                actions.push(Action::ShowExport);
            }
        });
        ui.separator();
        if ui.button("Open…").on_hover_text("Open an ONNX model (Ctrl+O)").clicked() {
            actions.push(Action::PickFile(FilePurpose::Model));
        }
        let loaded = ctx.session.summary.is_some();
        if ui
            .add_enabled(loaded && ctx.session.calibration.is_some(), egui::Button::new("Calibrate"))
            .on_hover_text("Stream the calibration set through the float model")
            .clicked()
        {
            actions.push(Action::Calibrate);
        }
        if ui
            .add_enabled(
                loaded && ctx.simulatable() && ctx.session.evaluation_set.is_some(),
                egui::Button::new("Evaluate"),
            )
            .clicked()
        {
            actions.push(Action::Evaluate);
        }
        if ui.add_enabled(loaded, egui::Button::new("Export…")).on_hover_text("Export (Ctrl+E)").clicked() {
            actions.push(Action::ShowExport);
        }
        ui.separator();
        let theme = if ctx.settings.dark_mode { "Light theme" } else { "Dark theme" };
        if ui.button(theme).on_hover_text("Switch the theme").clicked() {
            actions.push(Action::ToggleTheme);
        }
        if let Some(path) = &ctx.session.model_path {
            ui.separator();
            ui.label(egui::RichText::new(file_name(path)).strong()).on_hover_text(path.display().to_string());
        }
    });
}

/// Jobs with progress and Cancel, then error messages (dismissable), then status notes.
pub fn status_ui(ctx: &ViewContext, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
    ui.add_space(2.0);
    for (id, job) in ctx.jobs {
        ui.horizontal(|ui| {
            ui.spinner();
            let text = if job.stage.is_empty() { job.label.clone() } else { format!("{}: {}", job.label, job.stage) };
            let fraction = if job.total > 0 { job.done as f32 / job.total as f32 } else { 0.0 };
            let bar = egui::ProgressBar::new(fraction).desired_width(280.0).show_percentage();
            ui.label(text);
            ui.add(bar);
            if ui.small_button("Cancel").on_hover_text(format!("Cancel {id}")).clicked() {
                actions.push(Action::Cancel(*id));
            }
        });
    }
    for (i, e) in ctx.errors.iter().enumerate() {
        ui.horizontal(|ui| {
            ui.colored_label(ui.visuals().error_fg_color, e.as_str());
            if ui.small_button("Dismiss").clicked() {
                actions.push(Action::DismissError(i));
            }
        });
    }
    ui.horizontal(|ui| {
        if ctx.jobs.is_empty() {
            ui.label("Ready");
        } else {
            ui.label(format!("{} job(s) running", ctx.jobs.len()));
        }
        if let Some(note) = ctx.notes.last() {
            ui.separator();
            ui.weak(note);
        }
    });
}
