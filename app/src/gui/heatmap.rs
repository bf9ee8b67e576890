//! The bit-sweep heat map of the sensitivity view: one row per layer, a column per bit width for
//! weights and for activations.

use quantbench_core::analysis::LayerSensitivity;

use super::actions::{Action, SavedView};
use super::analysis::{SensitivityRun, display_value, metric_name, metric_text};
use super::tokens;
use super::view_export::save_buttons;

/// Width of the heat map's layer-name column.
const HEATMAP_LABEL_WIDTH: f32 = 140.0;
/// Width of a heat-map cell.
const HEATMAP_CELL_WIDTH: f32 = 64.0;

/// The heat map of the bit sweep: one row per layer, a column per bit width for weights and for
/// activations; colour = metric (red worst, green best), hover shows the value.
pub fn heatmap_ui(run: &SensitivityRun, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
    ui.horizontal(|ui| {
        ui.strong("Bit sweep");
        ui.weak(format!("({} with only the layer quantized, at each bit width)", metric_name(run.metric)));
        ui.separator();
        save_buttons(ui, SavedView::SweepHeatmap, "Heat map", actions);
    });
    if run.bits.is_empty() {
        ui.weak("No sweep bits were chosen for this run.");
        return;
    }
    let metric = run.metric;
    let cell = |l: &LayerSensitivity, col: usize| -> Option<f64> {
        let (bits, weights) =
            if col < run.bits.len() { (run.bits[col], true) } else { (run.bits[col - run.bits.len()], false) };
        l.sweep
            .iter()
            .find(|p| p.bits == bits)
            .map(|p| display_value(metric, if weights { p.weights } else { p.activations }))
    };
    let cols = 2 * run.bits.len();
    let values: Vec<f64> = run.layers.iter().flat_map(|l| (0..cols).filter_map(move |c| cell(l, c))).collect();
    let (lo, hi) = values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    let row_h = tokens::HEATMAP_ROW_HEIGHT;
    // A header row, then a row per layer; a gap between the weight and the activation columns.
    let gap = HEATMAP_CELL_WIDTH / 3.0;
    let width = HEATMAP_LABEL_WIDTH + cols as f32 * HEATMAP_CELL_WIDTH + gap;
    let height = row_h * (run.layers.len() + 1) as f32;
    let (rect, response) = ui.allocate_exact_size(egui::vec2(width, height), egui::Sense::hover());
    let painter = ui.painter_at(rect);
    let text_color = ui.visuals().text_color();
    let font = egui::TextStyle::Body.resolve(ui.style());
    let col_x = |c: usize| {
        rect.left() + HEATMAP_LABEL_WIDTH + c as f32 * HEATMAP_CELL_WIDTH + if c >= run.bits.len() { gap } else { 0.0 }
    };
    let cell_rect = |r: usize, c: usize| {
        egui::Rect::from_min_size(
            egui::pos2(col_x(c), rect.top() + row_h * (r + 1) as f32),
            egui::vec2(HEATMAP_CELL_WIDTH - 2.0, row_h - 2.0),
        )
    };
    for c in 0..cols {
        let (prefix, b) = if c < run.bits.len() { ("W", run.bits[c]) } else { ("A", run.bits[c - run.bits.len()]) };
        let center = egui::pos2(col_x(c) + HEATMAP_CELL_WIDTH / 2.0, rect.top() + row_h / 2.0);
        painter.text(center, egui::Align2::CENTER_CENTER, format!("{prefix}{b}"), font.clone(), text_color);
    }
    for (r, l) in run.layers.iter().enumerate() {
        let y = rect.top() + row_h * (r as f32 + 1.5);
        let label = egui::pos2(rect.left() + HEATMAP_LABEL_WIDTH - 6.0, y);
        painter.text(label, egui::Align2::RIGHT_CENTER, &l.name, font.clone(), text_color);
        for c in 0..cols {
            let Some(v) = cell(l, c) else { continue };
            let t = if hi > lo { (v - lo) / (hi - lo) } else { 1.0 };
            let fill = tokens::scale_color(t);
            let cr = cell_rect(r, c);
            painter.rect_filled(cr, 2.0, fill);
            let ink = if fill.intensity() > 0.55 { egui::Color32::BLACK } else { egui::Color32::WHITE };
            painter.text(cr.center(), egui::Align2::CENTER_CENTER, format!("{v:.1}"), font.clone(), ink);
        }
    }
    if let Some(pos) = response.hover_pos() {
        let hit = (0..run.layers.len())
            .flat_map(|r| (0..cols).map(move |c| (r, c)))
            .find(|&(r, c)| cell_rect(r, c).contains(pos));
        if let Some((r, c)) = hit {
            let l = &run.layers[r];
            let (part, b) = if c < run.bits.len() {
                ("weights", run.bits[c])
            } else {
                ("activations", run.bits[c - run.bits.len()])
            };
            let raw = l
                .sweep
                .iter()
                .find(|p| p.bits == b)
                .map(|p| if c < run.bits.len() { p.weights } else { p.activations });
            if let Some(raw) = raw {
                response.on_hover_text_at_pointer(format!(
                    "{}: {part} at {b} bits: {} {}",
                    l.name,
                    metric_name(metric),
                    metric_text(metric, raw)
                ));
            }
        }
    }
    ui.weak("W: only the layer's weights at that width; A: only its input activation. Red is worst, green best.");
}
