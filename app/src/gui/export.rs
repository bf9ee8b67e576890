//! The export dialog: QDQ ONNX, encodings JSON or recipe, to a typed or chosen path.

use std::path::PathBuf;

use quantbench_core::worker::ExportKind;

use super::actions::{Action, FilePurpose};
use super::app::WorkbenchApp;
use super::tokens;

/// Draws the export window when open.
pub fn export_window(app: &mut WorkbenchApp, ctx: &egui::Context, actions: &mut Vec<Action>) {
    let mut open = app.export.open;
    let loaded = app.session.summary.is_some();
    let calibrated = app.calibrated();
    egui::Window::new("Export").open(&mut open).resizable(false).collapsible(false).show(ctx, |ui| {
        let state = &mut app.export;
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
        let path = state.path_mut().trim().to_string();
        let needs_calibration = kind != ExportKind::Recipe;
        let ready = loaded && !path.is_empty() && (calibrated || !needs_calibration) && state.job.is_none();
        ui.horizontal(|ui| {
            if ui.add_enabled(ready, egui::Button::new("Write export")).clicked() {
                actions.push(Action::Export(kind, PathBuf::from(&path)));
            }
            if state.job.is_some() {
                ui.spinner();
                ui.label("exporting…");
            } else if needs_calibration && !calibrated {
                ui.weak("calibrate first");
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
    app.export.open = open;
}
