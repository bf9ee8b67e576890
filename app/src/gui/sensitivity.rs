//! The sensitivity view: run/cancel with progress, the per-layer bar chart (enable-one,
//! disable-one, weights-only, activations-only; sorted by sensitivity or in network order), the
//! layers x bit widths heat map of the sweep, CSV/PNG export of both, and the layer table's
//! sensitivity column.

use std::collections::BTreeMap;

use egui_plot::{Bar, BarChart, HLine, Legend, Plot, uniform_grid_spacer};
use quantbench_core::analysis::{LayerSensitivity, SensitivityMetric};

use super::actions::{Action, SelectMode};
use super::analysis::{
    AnalysisState, BarOrder, Measure, RunEnd, SWEEP_CHOICES, SavedView, SensitivityRun, ViewFormat, display_value,
    metric_axis, metric_name, metric_text,
};
use super::app::WorkbenchApp;
use super::tokens;

/// Width of the heat map's layer-name column.
const HEATMAP_LABEL_WIDTH: f32 = 140.0;
/// Width of a heat-map cell.
const HEATMAP_CELL_WIDTH: f32 = 64.0;

/// Draws the view.
pub fn sensitivity_ui(app: &mut WorkbenchApp, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
    controls_ui(app, ui, actions);
    ui.separator();
    let Some(run) = &app.analysis.sensitivity else {
        ui.weak("No sensitivity results yet: run the analysis (it needs a calibration and an evaluation set).");
        return;
    };
    if run.layers.is_empty() {
        ui.weak("Waiting for the first layer...");
        return;
    }
    egui::ScrollArea::vertical().auto_shrink(false).show(ui, |ui| {
        // A PNG shows the visible part of a view (the scroll area clips the rest).
        let rect = ui.scope(|ui| bars_ui(app, ui, actions)).response.rect.intersect(ui.clip_rect());
        app.saver.rects.insert(SavedView::SensitivityBars, rect);
        ui.add_space(tokens::SECTION_SPACE);
        let rect = ui.scope(|ui| heatmap_ui(app, ui, actions)).response.rect.intersect(ui.clip_rect());
        app.saver.rects.insert(SavedView::SweepHeatmap, rect);
    });
}

/// Metric, sweep bits, Run/Cancel with progress, and what the shown results are.
fn controls_ui(app: &mut WorkbenchApp, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
    let has_labels = app.session.evaluation_set.as_ref().is_some_and(|d| d.has_labels);
    let ready = app.calibrated_with_evaluation_set();
    let state = &mut app.analysis;
    if !has_labels && state.metric == SensitivityMetric::Accuracy {
        state.metric = SensitivityMetric::Top1Agreement;
    }
    ui.horizontal_wrapped(|ui| {
        ui.label("Metric:");
        egui::ComboBox::from_id_salt("sensitivity metric").selected_text(metric_name(state.metric)).show_ui(ui, |ui| {
            for m in [SensitivityMetric::Accuracy, SensitivityMetric::Top1Agreement, SensitivityMetric::OutputSqnr] {
                let enabled = has_labels || m != SensitivityMetric::Accuracy;
                ui.add_enabled_ui(enabled, |ui| ui.selectable_value(&mut state.metric, m, metric_name(m)));
            }
        });
        ui.separator();
        ui.label("Sweep bits:");
        for b in SWEEP_CHOICES {
            let mut on = state.sweep_bits.contains(&b);
            if ui.checkbox(&mut on, b.to_string()).changed() {
                if on {
                    state.sweep_bits.insert(b);
                } else {
                    state.sweep_bits.remove(&b);
                }
            }
        }
        ui.separator();
        if let Some(job) = state.sensitivity_job {
            if ui.button("Cancel sensitivity").clicked() {
                actions.push(Action::Cancel(job));
            }
            let (done, total) = state.sensitivity.as_ref().map_or((0, 0), |r| (r.layers.len(), r.total));
            let fraction = if total > 0 { done as f32 / total as f32 } else { 0.0 };
            ui.add(egui::ProgressBar::new(fraction).desired_width(200.0).text(format!("{done} of {total} layers")));
        } else {
            let run = ui
                .add_enabled(ready, egui::Button::new("Run sensitivity"))
                .on_hover_text("Per layer: enable-one, disable-one, weights only, activations only, bit sweep")
                .on_disabled_hover_text("Needs a calibration and an evaluation set");
            if run.clicked() {
                let bits = state.sweep_bits.iter().copied().collect();
                actions.push(Action::RunSensitivity { metric: state.metric, bits });
            }
        }
    });
    if let Some(run) = &app.analysis.sensitivity {
        ui.horizontal(|ui| {
            let what = format!("{} of {} layers, {}", run.layers.len(), run.total, metric_name(run.metric));
            match (&run.end, run.revision) {
                (RunEnd::Cancelled, _) => ui.weak(format!("Cancelled: {what}")),
                (RunEnd::Failed(e), _) => {
                    ui.colored_label(ui.visuals().error_fg_color, format!("Failed ({what}): {e}"))
                }
                (RunEnd::Open, None) => ui.weak(format!("Running: {what}")),
                (RunEnd::Open, Some(rev)) if rev != app.session.revision => ui.colored_label(
                    tokens::STALE,
                    format!("{what}; the configuration changed since this run (revision {rev})"),
                ),
                (RunEnd::Open, Some(_)) => ui.weak(what),
            };
        });
    }
}

/// Save buttons of one view.
fn save_buttons(ui: &mut egui::Ui, view: SavedView, what: &str, actions: &mut Vec<Action>) {
    if ui.small_button(format!("{what} CSV")).on_hover_text("Save the data as CSV").clicked() {
        actions.push(Action::SaveView(view, ViewFormat::Csv, None));
    }
    if ui.small_button(format!("{what} PNG")).on_hover_text("Save the view as a PNG image").clicked() {
        actions.push(Action::SaveView(view, ViewFormat::Png, None));
    }
}

/// Reference lines for the chart: the metric of the float model and of the whole recipe, when
/// the last evaluation describes the analysed revision.
fn references(app: &WorkbenchApp, run: &SensitivityRun) -> Vec<(&'static str, f64, egui::Color32)> {
    let Some((rev, e)) = &app.session.evaluation else { return Vec::new() };
    if run.revision.unwrap_or(app.session.revision) != *rev {
        return Vec::new();
    }
    let mut lines = Vec::new();
    let float = match run.metric {
        SensitivityMetric::Accuracy => e.metrics.float_accuracy,
        SensitivityMetric::Top1Agreement => Some(1.0),
        SensitivityMetric::OutputSqnr => None,
    };
    if let Some(f) = float {
        lines.push(("float model", display_value(run.metric, f), tokens::REFERENCE_FLOAT));
    }
    if let Ok(q) = run.metric.of(e) {
        lines.push(("all layers quantized", display_value(run.metric, q), tokens::REFERENCE_QUANTIZED));
    }
    lines
}

/// Where the bars start: a margin below the lowest value (or 0 when all values are positive and
/// the lowest is within a third of the highest of 0, so bars of very different values compare).
fn bar_base(values: impl Iterator<Item = f64>) -> f64 {
    let (lo, hi) =
        values.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if !lo.is_finite() {
        return 0.0;
    }
    if lo >= 0.0 && lo < hi / 3.0 {
        return 0.0;
    }
    let margin = ((hi - lo) * 0.25).max(0.5);
    lo - margin
}

/// The per-layer bar chart.
fn bars_ui(app: &mut WorkbenchApp, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
    let Some(run) = &app.analysis.sensitivity else { return };
    ui.horizontal_wrapped(|ui| {
        ui.strong("Sensitivity per layer");
        ui.separator();
        for m in Measure::ALL {
            ui.selectable_value(&mut app.analysis.measure, m, m.label()).on_hover_text(m.explanation());
        }
        ui.separator();
        ui.selectable_value(&mut app.analysis.order, BarOrder::Sensitivity, "by sensitivity");
        ui.selectable_value(&mut app.analysis.order, BarOrder::Network, "network order");
        ui.separator();
        save_buttons(ui, SavedView::SensitivityBars, "Chart", actions);
    });
    let (measure, metric) = (app.analysis.measure, run.metric);
    let order = super::analysis::bar_order(&run.layers, measure, app.analysis.order);
    let color =
        if run.revision.is_some_and(|r| r != app.session.revision) { tokens::STALE } else { tokens::SENSITIVITY };
    let references = references(app, run);
    let values: Vec<f64> = order.iter().map(|&i| display_value(metric, measure.of(&run.layers[i]))).collect();
    // Bars rise from just below the lowest value, so small differences (a few tenths of a
    // percent) stay visible.
    let base = bar_base(values.iter().copied().chain(references.iter().map(|r| r.1)));
    let bars: Vec<Bar> = order
        .iter()
        .zip(&values)
        .enumerate()
        .map(|(x, (&i, &v))| Bar::new(x as f64, v - base).base_offset(base).width(0.6).name(&run.layers[i].name))
        .collect();
    let names: Vec<String> = order.iter().map(|&i| run.layers[i].name.clone()).collect();
    let response = Plot::new("sensitivity bars")
        .height(tokens::ANALYSIS_PLOT_HEIGHT)
        .legend(Legend::default())
        .y_axis_label(metric_axis(metric))
        .x_axis_label(match app.analysis.order {
            BarOrder::Sensitivity => "layer (most sensitive first)",
            BarOrder::Network => "layer (network order)",
        })
        .x_grid_spacer(uniform_grid_spacer(|_| [1.0, 5.0, 10.0]))
        .x_axis_formatter({
            let names = names.clone();
            move |mark, _| {
                let i = mark.value.round();
                if (mark.value - i).abs() < 1e-6 && i >= 0.0 {
                    names.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            }
        })
        .allow_scroll(false)
        .show(ui, |plot| {
            let chart = BarChart::new(format!("{} ({})", measure.label(), metric_name(metric)), bars)
                .color(color)
                .element_formatter(Box::new(move |bar, _| {
                    let v = bar.base_offset.unwrap_or(0.0) + bar.value;
                    match metric {
                        SensitivityMetric::OutputSqnr => format!("{}\n{v:.2} dB", bar.name),
                        _ => format!("{}\n{v:.2} %", bar.name),
                    }
                }));
            plot.bar_chart(chart);
            for (name, y, c) in references {
                plot.hline(HLine::new(name, y).color(c).width(1.5));
            }
            plot.pointer_coordinate()
        });
    if response.response.clicked()
        && let Some(p) = response.inner
        && let Some(name) = names.get(p.x.round().max(0.0) as usize)
        && let Some(index) = app.session.summary.as_ref().and_then(|s| s.layers.iter().position(|l| &l.name == name))
    {
        actions.push(Action::Select(index, SelectMode::Replace));
    }
    ui.weak(format!("{}. Click a bar to select its layer.", measure.explanation()));
}

/// The heat map of the bit sweep: one row per layer, a column per bit width for weights and for
/// activations; colour = metric (red worst, green best), hover shows the value.
fn heatmap_ui(app: &WorkbenchApp, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
    let Some(run) = &app.analysis.sensitivity else { return };
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

/// The layer table's sensitivity column: the enable-one metric of the last run.
pub struct SensitivityColumn<'a> {
    metric: Option<SensitivityMetric>,
    by_name: BTreeMap<&'a str, &'a LayerSensitivity>,
    /// Lowest and highest enable-one value (for the colour).
    range: (f64, f64),
}

impl<'a> SensitivityColumn<'a> {
    /// The column for the last sensitivity run (empty without one).
    pub fn new(analysis: &'a AnalysisState) -> Self {
        let run = analysis.sensitivity.as_ref();
        let by_name: BTreeMap<&str, &LayerSensitivity> =
            run.map(|r| r.layers.iter().map(|l| (l.name.as_str(), l)).collect()).unwrap_or_default();
        let range = by_name
            .values()
            .map(|l| l.enable_one)
            .filter(|v| v.is_finite())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
        Self { metric: run.map(|r| r.metric), by_name, range }
    }

    /// The sort key of a layer (its enable-one metric: lower is more sensitive).
    pub fn key(&self, layer: &str) -> Option<f64> {
        self.by_name.get(layer).map(|l| l.enable_one)
    }

    /// Draws a layer's cell.
    pub fn cell_ui(&self, ui: &mut egui::Ui, layer: &str) {
        let (Some(metric), Some(l)) = (self.metric, self.by_name.get(layer)) else {
            ui.weak("-").on_hover_text("Run a sensitivity analysis (Sensitivity tab)");
            return;
        };
        let (lo, hi) = self.range;
        let t = if hi > lo && l.enable_one.is_finite() { (l.enable_one - lo) / (hi - lo) } else { 1.0 };
        ui.painter().rect_filled(ui.max_rect(), 2.0, tokens::scale_color(t).gamma_multiply(0.35));
        ui.label(metric_text(metric, l.enable_one)).on_hover_text(format!(
            "{} with only this layer quantized (enable-one)\ndisable-one: {}\nweights only: {}\nactivations only: {}",
            metric_name(metric),
            metric_text(metric, l.disable_one),
            metric_text(metric, l.weights_only),
            metric_text(metric, l.activations_only)
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::bar_base;

    #[test]
    fn bars_start_just_below_close_values_and_at_zero_for_spread_ones() {
        assert_eq!(bar_base([99.0, 97.0, 98.0].into_iter()), 96.5);
        assert_eq!(bar_base([99.5, 99.5].into_iter()), 99.0);
        assert_eq!(bar_base([90.0, 10.0].into_iter()), 0.0);
        assert_eq!(bar_base([-5.0, 20.0, f64::NAN].into_iter()), -11.25);
        assert_eq!(bar_base(std::iter::empty()), 0.0);
    }
}
