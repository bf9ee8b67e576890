//! Weight-only error per bit width, from the weights alone: a heat map with a row per layer and a
//! column per bit width, available as soon as a model opens (no calibration or evaluation data).
//! It ranks the layers by how much their weights lose, the data-free view of sensitivity; a click
//! on a row selects the layer everywhere.

use quantbench_core::analysis::{WEIGHT_ERROR_BITS, WeightErrors};
use quantbench_core::quant::Granularity;

use super::actions::{Action, SelectMode};
use super::context::ViewContext;
use super::tokens;

/// Width of the layer-name column.
const LABEL_WIDTH: f32 = 180.0;
/// Width of a cell.
const CELL_WIDTH: f32 = 72.0;
/// SQNR at which a cell is fully green (and 0 dB fully red).
const BEST_DB: f64 = 48.0;

/// The view's state: the granularity shown and the row order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WeightsViewState {
    /// Per-tensor figures instead of per-channel ones.
    pub per_tensor: bool,
    /// Rows sorted worst first at the defaults' weight bits (else network order).
    pub worst_first: bool,
}

/// The colour of a weight-only SQNR on the heat map's scale.
pub fn cell_color(db: f64) -> egui::Color32 {
    tokens::scale_color(db / BEST_DB)
}

/// The accessible label of a layer's row (screen readers, tests).
pub fn row_label(layer: &str) -> String {
    format!("{layer}: weight-only errors")
}

/// Row order: network order, or worst first at `bits` (ties in network order).
pub fn row_order(weights: &[WeightErrors], bits: u8, granularity: Granularity, worst_first: bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..weights.len()).collect();
    if worst_first {
        let key = |i: usize| weights[i].sqnr_db(bits, granularity).unwrap_or(f64::INFINITY);
        order.sort_by(|&a, &b| key(a).total_cmp(&key(b)));
    }
    order
}

/// Draws the heat map.
pub fn weights_ui(
    ctx: &ViewContext,
    state: &mut WeightsViewState,
    max_height: f32,
    ui: &mut egui::Ui,
    actions: &mut Vec<Action>,
) {
    let weights = &ctx.session.weights;
    let Some(summary) = &ctx.session.summary else { return };
    let default_bits = ctx.session.recipe.as_ref().map_or(8, |r| r.defaults.weight.bits);
    ui.horizontal_wrapped(|ui| {
        ui.strong("Weight-only error per bit width");
        ui.weak("(SQNR of each layer's weight quantized alone, from the weights: no data needed)");
    });
    ui.horizontal(|ui| {
        ui.checkbox(&mut state.per_tensor, "per tensor");
        ui.checkbox(&mut state.worst_first, format!("worst first at W{default_bits}"));
    });
    if weights.is_empty() {
        ui.weak("No quantizable layers.");
        return;
    }
    let granularity = if state.per_tensor { Granularity::PerTensor } else { Granularity::PerChannel };
    let order = row_order(weights, default_bits, granularity, state.worst_first);
    let row_h = tokens::HEATMAP_ROW_HEIGHT;
    let cols = WEIGHT_ERROR_BITS.len();
    let width = LABEL_WIDTH + cols as f32 * CELL_WIDTH;
    let font = egui::TextStyle::Body.resolve(ui.style());
    let text_color = ui.visuals().text_color();
    // The header, then only the visible rows are laid out and painted.
    let (header, _) = ui.allocate_exact_size(egui::vec2(width, row_h), egui::Sense::hover());
    for (c, bits) in WEIGHT_ERROR_BITS.iter().enumerate() {
        let center = egui::pos2(header.left() + LABEL_WIDTH + (c as f32 + 0.5) * CELL_WIDTH, header.center().y);
        ui.painter().text(center, egui::Align2::CENTER_CENTER, format!("W{bits}"), font.clone(), text_color);
    }
    egui::ScrollArea::vertical().id_salt("weight errors").max_height(max_height).show_rows(
        ui,
        row_h,
        order.len(),
        |ui, rows| {
            for &i in &order[rows] {
                let w = &weights[i];
                let (rect, response) = ui.allocate_exact_size(egui::vec2(width, row_h), egui::Sense::click());
                let name = row_label(&w.layer);
                response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, &name));
                let layer_index = summary.layers.iter().position(|l| l.name == w.layer);
                let selected = ctx.selection.selected.contains(&w.layer);
                let painter = ui.painter_at(rect);
                if selected || response.hovered() {
                    painter.rect_filled(rect, 2.0, ui.visuals().selection.bg_fill.gamma_multiply(0.5));
                }
                let label = egui::pos2(rect.left() + LABEL_WIDTH - 6.0, rect.center().y);
                painter.text(label, egui::Align2::RIGHT_CENTER, &w.layer, font.clone(), text_color);
                for (c, bits) in WEIGHT_ERROR_BITS.iter().enumerate() {
                    let Some(db) = w.sqnr_db(*bits, granularity) else { continue };
                    let cell = egui::Rect::from_min_size(
                        egui::pos2(rect.left() + LABEL_WIDTH + c as f32 * CELL_WIDTH, rect.top() + 1.0),
                        egui::vec2(CELL_WIDTH - 2.0, row_h - 2.0),
                    );
                    let fill = cell_color(db);
                    painter.rect_filled(cell, 2.0, fill);
                    let ink = if fill.intensity() > 0.55 { egui::Color32::BLACK } else { egui::Color32::WHITE };
                    painter.text(cell.center(), egui::Align2::CENTER_CENTER, format!("{db:.1}"), font.clone(), ink);
                }
                let response = response.on_hover_text(format!(
                    "{}: weight-only SQNR {} — click to select",
                    w.layer,
                    WEIGHT_ERROR_BITS
                        .iter()
                        .filter_map(|b| w.sqnr_db(*b, granularity).map(|db| format!("W{b} {db:.1} dB")))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                if let (true, Some(index)) = (response.clicked(), layer_index) {
                    actions.push(Action::Select(index, SelectMode::Replace));
                }
            }
        },
    );
}
