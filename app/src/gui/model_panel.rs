//! The model & data panel: inputs/outputs, op histogram, parameters, float size, data sets.

use quantbench_core::model::shape_to_string;
use quantbench_core::worker::DataRole;

use super::actions::{Action, FilePurpose};
use super::context::{DataInfo, ViewContext, file_name};
use super::preprocess::PreprocessForm;
use super::summary::human_size;
use super::synthetic_form::SYNTHETIC_WARNING;
use super::tokens;

/// Draws the panel; its state is the image preprocessing form.
pub fn model_ui(ctx: &ViewContext, form: &mut PreprocessForm, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
    egui::ScrollArea::vertical().show(ui, |ui| {
        let Some(s) = &ctx.session.summary else {
            ui.heading("No model");
            ui.label("Open a model, pick a sample from File > Sample models, or drop an .onnx file.");
            return;
        };
        ui.heading(&s.name);
        egui::Grid::new("model facts").num_columns(2).striped(true).show(ui, |ui| {
            ui.label("opset");
            ui.label(s.opset.to_string());
            ui.end_row();
            ui.label("parameters");
            ui.label(s.param_count.to_string());
            ui.end_row();
            ui.label("float size");
            ui.label(human_size(s.float_size_bytes));
            ui.end_row();
            ui.label("nodes");
            ui.label(s.nodes.len().to_string());
            ui.end_row();
            ui.label("quantizable layers");
            ui.label(s.layers.len().to_string());
            ui.end_row();
        });
        ui.add_space(tokens::SECTION_SPACE);
        ui.strong("Data");
        data_ui(ui, "Calibration", ctx.session.calibration.as_ref(), DataRole::Calibration, actions);
        data_ui(ui, "Evaluation", ctx.session.evaluation_set.as_ref(), DataRole::Evaluation, actions);
        memory_budget_ui(ui, ctx.settings.memory_budget_mib, actions);
        if ctx.image_folders.iter().any(Option::is_some) {
            egui::CollapsingHeader::new("Image preprocessing").default_open(true).show(ui, |ui| {
                super::preprocess::preprocess_ui(ui, form, &ctx.settings.preprocess, actions);
            });
        }
        ui.add_space(tokens::SECTION_SPACE);
        egui::CollapsingHeader::new("Inputs & outputs").default_open(true).show(ui, |ui| {
            for (label, list) in [("in", &s.inputs), ("out", &s.outputs)] {
                for t in list {
                    ui.label(format!("{label}  {}  {} {}", t.name, t.elem_type, shape_to_string(&t.shape)));
                }
            }
        });
        egui::CollapsingHeader::new("Operators").default_open(true).show(ui, |ui| {
            let max = s.op_counts.values().copied().max().unwrap_or(1).max(1);
            egui::Grid::new("op histogram").num_columns(2).show(ui, |ui| {
                for (op, n) in &s.op_counts {
                    ui.label(op);
                    let frac = *n as f32 / max as f32;
                    ui.add(egui::ProgressBar::new(frac).desired_width(110.0).text(n.to_string()));
                    ui.end_row();
                }
            });
        });
    });
}

/// The memory budget of the evaluations' caches (applied when the value is let go).
fn memory_budget_ui(ui: &mut egui::Ui, mib: usize, actions: &mut Vec<Action>) {
    ui.horizontal(|ui| {
        ui.label("Memory budget:");
        let id = egui::Id::unique("memory budget");
        let mut value = ui.data(|d| d.get_temp::<usize>(id)).unwrap_or(mib);
        let r = ui
            .add(egui::DragValue::new(&mut value).range(MIN_BUDGET_MIB..=MAX_BUDGET_MIB).speed(16).suffix(" MiB"))
            .on_hover_text(
                "Memory the evaluations may keep (float reference and incremental cache, half each); \
                 what does not fit is recomputed: slower, same results",
            );
        if r.changed() {
            ui.data_mut(|d| d.insert_temp(id, value));
        }
        if (r.lost_focus() || r.drag_stopped()) && value != mib {
            ui.data_mut(|d| d.remove::<usize>(id));
            actions.push(Action::SetMemoryBudget(value));
        }
    });
}

/// The smallest memory budget offered, MiB.
const MIN_BUDGET_MIB: usize = 16;
/// The largest memory budget offered, MiB.
const MAX_BUDGET_MIB: usize = 1 << 20;

fn data_ui(ui: &mut egui::Ui, label: &str, info: Option<&DataInfo>, role: DataRole, actions: &mut Vec<Action>) {
    ui.horizontal(|ui| {
        ui.label(format!("{label}:"));
        match info {
            Some(d) => {
                ui.label(file_name(&d.path)).on_hover_text(d.path.display().to_string());
            }
            None => {
                ui.weak("none");
            }
        }
    });
    ui.horizontal(|ui| {
        if let Some(d) = info {
            ui.weak(format!("{} samples, labels {}", d.num_samples, if d.has_labels { "yes" } else { "no" }));
        }
    });
    if info.is_some_and(DataInfo::is_synthetic) {
        ui.colored_label(ui.visuals().warn_fg_color, SYNTHETIC_WARNING);
    }
    ui.horizontal(|ui| {
        if ui
            .small_button("File…")
            .on_hover_text(format!("Choose the {} set (.npz/.npy)", label.to_lowercase()))
            .clicked()
        {
            actions.push(Action::PickFile(FilePurpose::Data(role)));
        }
        if ui.small_button("Image folder…").clicked() {
            actions.push(Action::PickFile(FilePurpose::ImageFolder(role)));
        }
        if ui
            .small_button("Synthetic…")
            .on_hover_text("No data? Random inputs of the model's shapes (flagged as synthetic)")
            .clicked()
        {
            actions.push(Action::ShowSynthetic(role));
        }
    });
}
