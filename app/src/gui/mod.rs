//! The egui workbench. Long work never runs on the UI thread: every job goes to the core's
//! background worker, whose events are drained in [`eframe::App::logic`]. Each view is a
//! function of a read-only [`context::ViewContext`] and its own state, and returns
//! [`actions::Action`]s; one controller (`controller.rs`, `events.rs`) applies them and the
//! worker's events after the frame. ARCHITECTURE.md (GUI) gives the file order.

mod actions;
mod algorithms;
mod analysis;
mod app;
mod chrome;
mod clip_drag;
mod context;
mod controller;
mod csv;
mod detail;
mod events;
mod export;
mod frame;
mod frame_log;
mod graph_layout;
mod graph_order;
mod graph_style;
mod graph_view;
mod heatmap;
mod model_panel;
mod overview;
mod pareto;
mod path_prompt;
mod placement;
mod preprocess;
mod sensitivity;
mod settings;
mod summary;
mod synthetic_form;
mod table;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_analysis;
#[cfg(test)]
mod tests_files;
#[cfg(test)]
mod tests_graph;
#[cfg(test)]
mod tests_graph_layout;
#[cfg(test)]
mod tests_layer;
mod tokens;
mod view_export;
mod weights_view;

use std::path::PathBuf;

use quantbench_core::worker::DataRole;

pub use actions::Action;
pub use app::WorkbenchApp;

use crate::samples;

/// Starts the GUI, opening `model` or the default bundled sample with the data sets `calib` and
/// `eval` (each, when not given, the `calib.npz`/`eval.npz` beside the model if there is one),
/// then `recipe`.
pub fn run(
    model: Option<PathBuf>,
    calib: Option<PathBuf>,
    eval: Option<PathBuf>,
    recipe: Option<PathBuf>,
) -> anyhow::Result<()> {
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
                let data = [(DataRole::Calibration, calib), (DataRole::Evaluation, eval)];
                let data = data.into_iter().filter_map(|(role, p)| p.map(|p| (role, p))).collect();
                app.push_action(Action::OpenModelWith(path, data, recipe));
            }
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| anyhow::anyhow!("cannot start the GUI: {e}"))
}
