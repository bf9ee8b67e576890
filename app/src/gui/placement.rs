//! Per-op control and what the placement target quantizes: the op types kept float (a menu
//! above the layer table) and the list of every tensor the last evaluation's plan quantizes,
//! with its producer, parameters and readers, where any node can be kept float (ORT's
//! `nodes_to_exclude`) and brought back.

use std::collections::BTreeSet;

use quantbench_core::model::ModelSummary;
use quantbench_core::plan::QuantizedTensor;
use quantbench_core::quant::recipe::Recipe;

use super::actions::Action;
use super::context::ViewContext;

/// The op types kept float everywhere (ORT's `op_types_to_quantize`, inverted): a menu of the
/// model's op types that the placement target or the layers quantize, each with its node count.
pub fn float_ops_ui(ui: &mut egui::Ui, summary: &ModelSummary, recipe: &Recipe, actions: &mut Vec<Action>) {
    let quantizable: Vec<(&String, &usize)> = summary
        .op_counts
        .iter()
        .filter(|(op, _)| quantbench_core::plan::rule(op).is_some() || summary.layers.iter().any(|l| &l.op_type == *op))
        .collect();
    ui.horizontal_wrapped(|ui| {
        ui.strong("Keep float:");
        let label = if recipe.float_ops.is_empty() {
            "no op type".to_string()
        } else {
            recipe.float_ops.iter().cloned().collect::<Vec<_>>().join(", ")
        };
        ui.menu_button(label, |ui| {
            for (op, count) in &quantizable {
                let mut on = recipe.float_ops.contains(*op);
                if ui.checkbox(&mut on, format!("{op} ({count})")).changed() {
                    let mut ops = recipe.float_ops.clone();
                    if on {
                        ops.insert((*op).clone());
                    } else {
                        ops.remove(*op);
                    }
                    actions.push(Action::SetFloatOps(ops));
                }
            }
        })
        .response
        .on_hover_text(
            "Op types whose nodes stay float everywhere (layers and the ops the placement target quantizes)",
        );
    });
}

/// The nodes kept float, each with a button that quantizes it again.
fn float_nodes_ui(ui: &mut egui::Ui, recipe: &Recipe, actions: &mut Vec<Action>) {
    if recipe.float_nodes.is_empty() {
        return;
    }
    ui.horizontal_wrapped(|ui| {
        ui.label("Nodes kept float:");
        for node in &recipe.float_nodes {
            if ui.small_button(format!("{node} ×")).on_hover_text("Quantize this node again").clicked() {
                let mut nodes = recipe.float_nodes.clone();
                nodes.remove(node);
                actions.push(Action::SetFloatNodes(nodes));
            }
        }
    });
}

/// Whether `row` matches the filter text (tensor, producer or op type, case-insensitive).
fn matches(row: &QuantizedTensor, filter: &str) -> bool {
    let f = filter.to_lowercase();
    f.is_empty()
        || row.tensor.to_lowercase().contains(&f)
        || row.op_type.to_lowercase().contains(&f)
        || row.producer.as_ref().is_some_and(|p| p.to_lowercase().contains(&f))
}

/// The tensors the placement target quantizes (from the last evaluation's plan): tensor,
/// producer node and op, bits, scale, zero point and readers; "keep float" on a producer node
/// adds it to the recipe's float nodes.
pub fn quantized_ui(ctx: &ViewContext, ui: &mut egui::Ui, recipe: &Recipe, actions: &mut Vec<Action>) {
    float_nodes_ui(ui, recipe, actions);
    let Some((_, evaluation)) = &ctx.session.evaluation else { return };
    let rows = &evaluation.quantized;
    let title = format!("Quantized tensors: {} ({} placement)", rows.len(), recipe.target);
    egui::CollapsingHeader::new(title).id_salt("quantized tensors").default_open(false).show(ui, |ui| {
        let filter_id = egui::Id::unique("quantized tensors filter");
        let mut filter: String = ui.data_mut(|d| d.get_temp(filter_id).unwrap_or_default());
        ui.horizontal(|ui| {
            ui.label("Filter:");
            ui.add(egui::TextEdit::singleline(&mut filter).hint_text("tensor, node or op").desired_width(160.0));
        });
        ui.data_mut(|d| d.insert_temp(filter_id, filter.clone()));
        let shown: Vec<&QuantizedTensor> = rows.iter().filter(|r| matches(r, &filter)).collect();
        let row_height = ui.text_style_height(&egui::TextStyle::Body) + 4.0;
        egui::ScrollArea::vertical().id_salt("quantized rows").max_height(220.0).show_rows(
            ui,
            row_height,
            shown.len(),
            |ui, range| {
                egui::Grid::new("quantized grid").striped(true).num_columns(6).show(ui, |ui| {
                    for h in ["tensor", "from", "bits", "scale", "zero point", "readers"] {
                        ui.strong(h);
                    }
                    ui.end_row();
                    for row in &shown[range] {
                        ui.label(&row.tensor);
                        producer_ui(ui, row, recipe, actions);
                        ui.label(row.bits.to_string());
                        if row.dynamic {
                            ui.label("dynamic");
                            ui.label("–");
                        } else {
                            ui.label(format!("{:.4e}", row.scale));
                            ui.label(row.zero_point.to_string());
                        }
                        ui.label(row.readers.len().to_string()).on_hover_text(row.readers.join("\n"));
                        ui.end_row();
                    }
                });
            },
        );
    });
}

/// The producer cell: node and op type, with a menu that keeps the node float.
fn producer_ui(ui: &mut egui::Ui, row: &QuantizedTensor, recipe: &Recipe, actions: &mut Vec<Action>) {
    let Some(node) = &row.producer else {
        ui.label(&row.op_type);
        return;
    };
    ui.menu_button(format!("{node} ({})", row.op_type), |ui| {
        if ui.button("Keep this node float").clicked() {
            let mut nodes: BTreeSet<String> = recipe.float_nodes.clone();
            nodes.insert(node.clone());
            actions.push(Action::SetFloatNodes(nodes));
            ui.close();
        }
    });
}
