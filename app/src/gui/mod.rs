//! The egui workbench. Long work never runs on the UI thread: every job goes to the core's
//! background worker, whose events are drained in [`eframe::App::logic`]. Views draw the state
//! and return [`actions::Action`]s, which the app applies after the frame.

mod actions;
mod algorithms;
mod analysis;
mod app;
mod chrome;
mod clip_drag;
mod detail;
mod export;
mod frame_log;
mod model_panel;
mod overview;
mod pareto;
mod preprocess;
mod sensitivity;
mod settings;
mod summary;
mod table;
#[cfg(test)]
mod tests;
mod tokens;
mod view_export;

use std::path::PathBuf;

pub use actions::Action;
pub use app::WorkbenchApp;

use crate::samples;

/// Starts the GUI, opening `model` or the default bundled sample (with the data sets beside it).
pub fn run(model: Option<PathBuf>) -> anyhow::Result<()> {
    let start =
        model.or_else(|| samples::models().into_iter().find(|(n, _)| n == samples::DEFAULT_SAMPLE).map(|m| m.1));
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_inner_size([1400.0, 860.0])
            .with_min_inner_size([900.0, 560.0])
            .with_title("QuantBench")
            .with_drag_and_drop(true),
        ..Default::default()
    };
    eframe::run_native(
        "QuantBench",
        options,
        Box::new(move |cc| {
            let mut app = WorkbenchApp::new(cc.storage);
            if let Some(path) = start {
                app.push_action(Action::OpenModel(path));
            }
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| anyhow::anyhow!("cannot start the GUI: {e}"))
}

impl eframe::App for WorkbenchApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        let start = std::time::Instant::now();
        self.drain(ctx);
        if let Some(log) = &mut self.frame_log {
            log.add(start);
        }
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let start = std::time::Instant::now();
        self.frame_ui(ui);
        let ctx = ui.ctx().clone();
        self.apply_actions(&ctx);
        if self.busy() {
            // Progress bars and spinners animate while jobs run; events also wake the app.
            ctx.request_repaint_after(std::time::Duration::from_millis(100));
        }
        let jobs = self.jobs.len();
        if let Some(log) = &mut self.frame_log {
            log.end_frame(start, jobs);
        }
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.settings);
    }
}

impl WorkbenchApp {
    /// Draws one frame: menu and toolbar, summary strip, jobs and messages, the model panel, the
    /// layer detail, and the table or overview in the centre.
    fn frame_ui(&mut self, ui: &mut egui::Ui) {
        let mut actions = Vec::new();
        // Views record where they are drawn this frame (for PNG saves).
        self.saver.rects.clear();
        chrome::shortcuts(ui.ctx(), &mut actions);
        chrome::dropped_files(ui.ctx(), &mut actions);
        egui::Panel::top("menu").show(ui, |ui| chrome::menu_ui(self, ui, &mut actions));
        egui::Panel::top("summary").show(ui, |ui| summary::summary_ui(self, ui, &mut actions));
        egui::Panel::bottom("status").show(ui, |ui| chrome::status_ui(self, ui, &mut actions));
        egui::Panel::left("model")
            .default_size(tokens::LEFT_PANEL_WIDTH)
            .resizable(true)
            .show(ui, |ui| model_panel::model_ui(self, ui, &mut actions));
        egui::Panel::right("detail")
            .default_size(tokens::RIGHT_PANEL_WIDTH)
            .resizable(true)
            .show(ui, |ui| detail::detail_ui(self, ui, &mut actions));
        egui::CentralPanel::default().show(ui, |ui| chrome::central_ui(self, ui, &mut actions));
        export::export_window(self, ui.ctx(), &mut actions);
        view_export::save_window(self, ui.ctx(), &mut actions);
        for a in actions {
            self.push_action(a);
        }
    }
}
