//! One frame: the controller takes in worker events, the views draw from the [`ViewContext`] and
//! their own state into their panels and return actions, and the controller applies them.

use super::app::{CentralView, Views, WorkbenchApp};
use super::context::ViewContext;
use super::{actions::Action, view_export};
use super::{
    algorithms, chrome, detail, export, graph_view, model_panel, overview, pareto, path_prompt, sensitivity, summary,
    synthetic_form, table, tokens,
};

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
        let actions = {
            let (ctx, views) = self.split();
            frame_ui(&ctx, views, ui)
        };
        self.actions.extend(actions);
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

/// Draws one frame: menu and toolbar, summary strip, jobs and messages, the model panel, the
/// layer detail, the central view, and the export and save windows; returns what the user asked.
fn frame_ui(ctx: &ViewContext, views: &mut Views, ui: &mut egui::Ui) -> Vec<Action> {
    let mut actions = Vec::new();
    // Views record where they are drawn this frame (for PNG saves); one not drawn has no place.
    views.sensitivity.bars_rect = None;
    views.sensitivity.heatmap_rect = None;
    views.pareto.rect = None;
    chrome::shortcuts(ui.ctx(), &mut actions);
    chrome::dropped_files(ui.ctx(), &mut actions);
    egui::Panel::top("menu").show(ui, |ui| chrome::menu_ui(ctx, ui, &mut actions));
    egui::Panel::top("summary").show(ui, |ui| summary::summary_ui(ctx, ui, &mut actions));
    egui::Panel::bottom("status").show(ui, |ui| chrome::status_ui(ctx, ui, &mut actions));
    egui::Panel::left("model")
        .default_size(tokens::LEFT_PANEL_WIDTH)
        .resizable(true)
        .show(ui, |ui| model_panel::model_ui(ctx, &mut views.preprocess, ui, &mut actions));
    egui::Panel::right("detail")
        .default_size(tokens::RIGHT_PANEL_WIDTH)
        .resizable(true)
        .show(ui, |ui| detail::detail_ui(ctx, &mut views.clip_lines, ui, &mut actions));
    egui::CentralPanel::default().show(ui, |ui| central_ui(ctx, views, ui, &mut actions));
    export::export_window(ctx, &mut views.export, ui.ctx(), &mut actions);
    path_prompt::prompt_window(ctx, &mut views.path_prompt, ui.ctx(), &mut actions);
    synthetic_form::synthetic_window(ctx, &mut views.synthetic, ui.ctx(), &mut actions);
    view_export::save_window(&mut views.save, ui.ctx(), &mut actions);
    actions
}

/// The central view: the layer table, the graph, the error overview, the algorithms, sensitivity or mixed
/// precision, with the tabs that switch between them.
fn central_ui(ctx: &ViewContext, views: &mut Views, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
    if ctx.session.summary.is_none() {
        ui.centered_and_justified(|ui| {
            ui.label("Open an ONNX model (File > Open model…, Ctrl+O) or drop one here");
        });
        return;
    }
    ui.horizontal(|ui| {
        ui.selectable_value(&mut views.central, CentralView::Table, "Layer table");
        ui.selectable_value(&mut views.central, CentralView::Graph, "Graph");
        ui.selectable_value(&mut views.central, CentralView::Overview, "Error overview");
        ui.selectable_value(&mut views.central, CentralView::Algorithms, "Algorithms");
        ui.selectable_value(&mut views.central, CentralView::Sensitivity, "Sensitivity analysis");
        ui.selectable_value(&mut views.central, CentralView::MixedPrecision, "Mixed precision");
    });
    ui.add_space(tokens::SECTION_SPACE / 2.0);
    match views.central {
        CentralView::Table => table::table_ui(ctx, &mut views.table, ui, actions),
        CentralView::Graph => graph_view::graph_ui(ctx, &mut views.graph, ui, actions),
        CentralView::Overview => overview::overview_ui(ctx, ui, actions),
        CentralView::Algorithms => algorithms::algorithms_ui(ctx, &mut views.algorithms, ui, actions),
        CentralView::Sensitivity => sensitivity::sensitivity_ui(ctx, &mut views.sensitivity, ui, actions),
        CentralView::MixedPrecision => pareto::mixed_precision_ui(ctx, &mut views.pareto, ui, actions),
    }
}
