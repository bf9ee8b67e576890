//! The export dialog: QDQ ONNX, encodings JSON or recipe, to a typed or chosen path.

use std::collections::BTreeMap;
use std::path::PathBuf;

use quantbench_core::worker::{ExportKind, JobId};

use super::actions::{Action, FilePurpose};
use super::context::ViewContext;
use super::path_prompt::save_check_ui;
use super::tokens;

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

impl Default for ExportState {
    fn default() -> Self {
        Self { open: false, kind: ExportKind::QdqModel, paths: BTreeMap::new(), last: None, job: None }
    }
}

/// Draws the export window when open.
pub fn export_window(ctx: &ViewContext, state: &mut ExportState, egui_ctx: &egui::Context, actions: &mut Vec<Action>) {
    let mut open = state.open;
    let loaded = ctx.session.summary.is_some();
    let calibrated = ctx.simulatable();
    egui::Window::new("Export").open(&mut open).resizable(false).collapsible(false).show(egui_ctx, |ui| {
        ui.horizontal(|ui| {
            ui.selectable_value(&mut state.kind, ExportKind::QdqModel, "QDQ ONNX model");
            ui.selectable_value(&mut state.kind, ExportKind::Encodings, "Encodings JSON");
            ui.selectable_value(&mut state.kind, ExportKind::Recipe, "Recipe");
        });
        ui.add_space(tokens::SECTION_SPACE / 2.0);
        let kind = state.kind;
        ui.horizontal(|ui| {
            ui.label("Path:");
            ui.add(egui::TextEdit::singleline(state.path_mut()).desired_width(360.0));
            if ui.button("Browse…").clicked() {
                actions.push(Action::PickFile(FilePurpose::Export(kind)));
            }
        });
        let written = match &state.last {
            Some(Ok(p)) => Some(p.clone()),
            _ => None,
        };
        let path = save_check_ui(ui, state.path_mut(), written.as_deref());
        let needs_calibration = kind != ExportKind::Recipe;
        let ready = loaded && path.is_some() && (calibrated || !needs_calibration) && state.job.is_none();
        ui.horizontal(|ui| {
            if let (true, Some(path)) = (ui.add_enabled(ready, egui::Button::new("Write export")).clicked(), path) {
                actions.push(Action::Export(kind, path));
            }
            if state.job.is_some() {
                ui.spinner();
                ui.label("exporting…");
            } else if needs_calibration && !calibrated {
                ui.weak("calibrate first (or quantize weights only)");
            }
        });
        match &state.last {
            Some(Ok(p)) => {
                ui.colored_label(tokens::GOOD, format!("Exported to {}", p.display()));
            }
            Some(Err(e)) => {
                ui.colored_label(ui.visuals().error_fg_color, format!("Export failed: {e}"));
            }
            None => {}
        }
    });
    state.open = open;
}
