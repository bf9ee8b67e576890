//! The sensitivity view: run/cancel with progress, the per-layer bar chart (enable-one,
//! disable-one, weights-only, activations-only; sorted by sensitivity or in network order), the
//! layers x bit widths heat map of the sweep, CSV/PNG export of both, and the layer table's
//! sensitivity column.

use std::collections::{BTreeMap, BTreeSet};

use egui_plot::{Bar, BarChart, HLine, Legend, Plot, uniform_grid_spacer};
use quantbench_core::analysis::{LayerSensitivity, SensitivityMetric};

use super::actions::{Action, SavedView, SelectMode};
use super::analysis::{AnalysisResults, RunEnd, SensitivityRun, display_value, metric_axis, metric_name, metric_text};
use super::context::ViewContext;
use super::tokens;
use super::weights_view::{WeightsViewState, weights_ui};

/// Bit widths offered for the sweep.
pub const SWEEP_CHOICES: [u8; 6] = [2, 3, 4, 5, 6, 8];

/// Which per-layer figure the bar chart shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// Only this layer quantized.
    EnableOne,
    /// Every layer but this one quantized.
    DisableOne,
    /// Only this layer's weights quantized.
    WeightsOnly,
    /// Only this layer's input activation quantized.
    ActivationsOnly,
}

impl Measure {
    /// All, in display order.
    pub const ALL: [Self; 4] = [Self::EnableOne, Self::DisableOne, Self::WeightsOnly, Self::ActivationsOnly];

    /// Short label.
    pub fn label(self) -> &'static str {
        match self {
            Self::EnableOne => "enable-one",
            Self::DisableOne => "disable-one",
            Self::WeightsOnly => "weights only",
            Self::ActivationsOnly => "activations only",
        }
    }

    /// What it measures, for hover text.
    pub fn explanation(self) -> &'static str {
        match self {
            Self::EnableOne => "metric with only this layer quantized (lower: more sensitive)",
            Self::DisableOne => "metric with every layer but this one quantized (higher: more sensitive)",
            Self::WeightsOnly => "metric with only this layer's weights quantized (lower: more sensitive)",
            Self::ActivationsOnly => "metric with only this layer's input activation quantized (lower: more sensitive)",
        }
    }

    /// The raw metric of a layer.
    pub fn of(self, l: &LayerSensitivity) -> f64 {
        match self {
            Self::EnableOne => l.enable_one,
            Self::DisableOne => l.disable_one,
            Self::WeightsOnly => l.weights_only,
            Self::ActivationsOnly => l.activations_only,
        }
    }

    /// Whether a higher value means a more sensitive layer (disable-one: keeping the layer in
    /// float recovers more).
    pub fn higher_is_more_sensitive(self) -> bool {
        self == Self::DisableOne
    }
}

/// Bar order of the sensitivity chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarOrder {
    /// Most sensitive first.
    Sensitivity,
    /// Network order.
    Network,
}

/// The view's state: the next run's metric and sweep, what the chart shows, where it was drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct SensitivityState {
    /// Metric of the next sensitivity run.
    pub metric: SensitivityMetric,
    /// Sweep bits of the next run.
    pub sweep_bits: BTreeSet<u8>,
    /// What the bar chart shows.
    pub measure: Measure,
    /// Bar order.
    pub order: BarOrder,
    /// Where the bar chart was last drawn (for PNG saves).
    pub bars_rect: Option<egui::Rect>,
    /// Where the heat map was last drawn (for PNG saves).
    pub heatmap_rect: Option<egui::Rect>,
    /// The weight-only error view (data-free).
    pub weights: WeightsViewState,
}

impl Default for SensitivityState {
    fn default() -> Self {
        Self {
            metric: SensitivityMetric::Accuracy,
            sweep_bits: [2, 4, 8].into(),
            measure: Measure::EnableOne,
            order: BarOrder::Sensitivity,
            bars_rect: None,
            heatmap_rect: None,
            weights: WeightsViewState::default(),
        }
    }
}

/// Height of the weight-only view below the sensitivity results.
const WEIGHTS_VIEW_HEIGHT: f32 = 360.0;

/// Layer indices (into `layers`) in bar order.
pub fn bar_order(layers: &[LayerSensitivity], measure: Measure, order: BarOrder) -> Vec<usize> {
    let mut ix: Vec<usize> = (0..layers.len()).collect();
    if order == BarOrder::Sensitivity {
        ix.sort_by(|&a, &b| {
            let (va, vb) = (measure.of(&layers[a]), measure.of(&layers[b]));
            let c = va.total_cmp(&vb);
            (if measure.higher_is_more_sensitive() { c.reverse() } else { c }).then(a.cmp(&b))
        });
    }
    ix
}

/// Draws the view.
pub fn sensitivity_ui(ctx: &ViewContext, state: &mut SensitivityState, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
    controls_ui(ctx, state, ui, actions);
    ui.separator();
    let Some(run) = ctx.analysis.sensitivity.as_ref().filter(|r| !r.layers.is_empty()) else {
        if ctx.analysis.sensitivity.is_some() {
            ui.weak("Waiting for the first layer...");
        } else {
            ui.weak("No sensitivity results yet: run the analysis (it needs a calibration and an evaluation set).");
        }
        ui.add_space(tokens::SECTION_SPACE);
        let height = ui.available_height();
        weights_ui(ctx, &mut state.weights, height, ui, actions);
        return;
    };
    egui::ScrollArea::vertical().auto_shrink(false).show(ui, |ui| {
        // A PNG shows the visible part of a view (the scroll area clips the rest).
        let rect = ui.scope(|ui| bars_ui(ctx, run, state, ui, actions)).response.rect.intersect(ui.clip_rect());
        state.bars_rect = Some(rect);
        ui.add_space(tokens::SECTION_SPACE);
        let rect = ui.scope(|ui| super::heatmap::heatmap_ui(run, ui, actions)).response.rect.intersect(ui.clip_rect());
        state.heatmap_rect = Some(rect);
        ui.add_space(tokens::SECTION_SPACE);
        egui::CollapsingHeader::new("Weight-only error per bit width (from the weights alone)")
            .id_salt("weights only")
            .show(ui, |ui| weights_ui(ctx, &mut state.weights, WEIGHTS_VIEW_HEIGHT, ui, actions));
    });
}

/// Metric, sweep bits, Run/Cancel with progress, and what the shown results are.
fn controls_ui(ctx: &ViewContext, state: &mut SensitivityState, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
    let has_labels = ctx.session.evaluation_set.as_ref().is_some_and(|d| d.has_labels);
    let ready = ctx.calibrated_with_evaluation_set();
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
        if let Some(job) = ctx.analysis.sensitivity_job {
            if ui.button("Cancel sensitivity").clicked() {
                actions.push(Action::Cancel(job));
            }
            let (done, total) = ctx.analysis.sensitivity.as_ref().map_or((0, 0), |r| (r.layers.len(), r.total));
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
    if let Some(run) = &ctx.analysis.sensitivity {
        ui.horizontal(|ui| {
            let mut what = format!("{} of {} layers, {}", run.layers.len(), run.total, metric_name(run.metric));
            what.push_str(&samples_note(&run.layers));
            match (&run.end, run.revision) {
                (RunEnd::Cancelled, _) => ui.weak(format!("Cancelled: {what}")),
                (RunEnd::Failed(e), _) => {
                    ui.colored_label(ui.visuals().error_fg_color, format!("Failed ({what}): {e}"))
                }
                (RunEnd::Open, None) => ui.weak(format!("Running: {what}")),
                (RunEnd::Open, Some(rev)) if rev != ctx.session.revision => ui.colored_label(
                    tokens::STALE,
                    format!("{what}; the configuration changed since this run (revision {rev})"),
                ),
                (RunEnd::Open, Some(_)) => ui.weak(what),
            };
        });
    }
}

/// What the values rest on: ", on N samples", or for a run that estimated on a subset and refined
/// the leaders of the rankings on the whole set, both counts.
fn samples_note(layers: &[LayerSensitivity]) -> String {
    let Some(subset) = layers.iter().map(|l| l.samples).filter(|&n| n > 0).min() else { return String::new() };
    let refined: Vec<&LayerSensitivity> =
        layers.iter().filter(|l| l.enable_one_samples > l.samples || l.disable_one_samples > l.samples).collect();
    let whole = refined.iter().map(|l| l.enable_one_samples.max(l.disable_one_samples)).max();
    match whole {
        Some(whole) => {
            format!("; estimates on {subset} samples, the {} leading layers refined on all {whole}", refined.len())
        }
        None => format!("; on {subset} samples"),
    }
}

/// Reference lines for the chart: the metric of the float model and of the whole recipe, when
/// the last evaluation describes the analysed revision.
fn references(ctx: &ViewContext, run: &SensitivityRun) -> Vec<(&'static str, f64, egui::Color32)> {
    let Some((rev, e)) = &ctx.session.evaluation else { return Vec::new() };
    if run.revision.unwrap_or(ctx.session.revision) != *rev {
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
fn bars_ui(
    ctx: &ViewContext,
    run: &SensitivityRun,
    state: &mut SensitivityState,
    ui: &mut egui::Ui,
    actions: &mut Vec<Action>,
) {
    ui.horizontal_wrapped(|ui| {
        ui.strong("Sensitivity per layer");
        ui.separator();
        for m in Measure::ALL {
            ui.selectable_value(&mut state.measure, m, m.label()).on_hover_text(m.explanation());
        }
        ui.separator();
        ui.selectable_value(&mut state.order, BarOrder::Sensitivity, "by sensitivity");
        ui.selectable_value(&mut state.order, BarOrder::Network, "network order");
        ui.separator();
        super::view_export::save_buttons(ui, SavedView::SensitivityBars, "Chart", actions);
    });
    let (measure, metric) = (state.measure, run.metric);
    let order = bar_order(&run.layers, measure, state.order);
    let color =
        if run.revision.is_some_and(|r| r != ctx.session.revision) { tokens::STALE } else { tokens::SENSITIVITY };
    let references = references(ctx, run);
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
        .x_axis_label(match state.order {
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
        && let Some(index) = ctx.session.summary.as_ref().and_then(|s| s.layers.iter().position(|l| &l.name == name))
    {
        actions.push(Action::Select(index, SelectMode::Replace));
    }
    ui.weak(format!("{}. Click a bar to select its layer.", measure.explanation()));
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
    pub fn new(analysis: &'a AnalysisResults) -> Self {
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

    /// Where a layer's enable-one value lies between the run's lowest (0, the most sensitive) and
    /// highest (1); `None` without a result for it.
    pub fn scale(&self, layer: &str) -> Option<f64> {
        let l = self.by_name.get(layer)?;
        let (lo, hi) = self.range;
        Some(if hi > lo && l.enable_one.is_finite() { (l.enable_one - lo) / (hi - lo) } else { 1.0 })
    }

    /// The run's lowest and highest enable-one values as text, when there is a run with results.
    pub fn extremes(&self) -> Option<(String, String)> {
        let metric = self.metric?;
        let (lo, hi) = self.range;
        (lo <= hi).then(|| (metric_text(metric, lo), metric_text(metric, hi)))
    }

    /// A layer's figures in words (every measure of the run), when the run has it.
    pub fn describe(&self, layer: &str) -> Option<String> {
        let (Some(metric), Some(l)) = (self.metric, self.by_name.get(layer)) else { return None };
        Some(format!(
            "{} with only this layer quantized (enable-one): {}\ndisable-one: {}\nweights only: {}\nactivations only: {}",
            metric_name(metric),
            metric_text(metric, l.enable_one),
            metric_text(metric, l.disable_one),
            metric_text(metric, l.weights_only),
            metric_text(metric, l.activations_only)
        ))
    }

    /// Draws a layer's cell.
    pub fn cell_ui(&self, ui: &mut egui::Ui, layer: &str) {
        let (Some(metric), Some(l), Some(t), Some(text)) =
            (self.metric, self.by_name.get(layer), self.scale(layer), self.describe(layer))
        else {
            ui.weak("-").on_hover_text("Run a sensitivity analysis (Sensitivity tab)");
            return;
        };
        ui.painter().rect_filled(ui.max_rect(), 2.0, tokens::scale_color(t).gamma_multiply(0.35));
        ui.label(metric_text(metric, l.enable_one)).on_hover_text(text);
    }
}

#[cfg(test)]
mod tests {
    use super::super::analysis::tests::run;
    use super::*;

    #[test]
    fn bars_sort_most_sensitive_first_per_measure() {
        let r = run();
        assert_eq!(bar_order(&r.layers, Measure::EnableOne, BarOrder::Sensitivity), vec![1, 2, 0]);
        assert_eq!(bar_order(&r.layers, Measure::DisableOne, BarOrder::Sensitivity), vec![1, 0, 2]);
        assert_eq!(bar_order(&r.layers, Measure::DisableOne, BarOrder::Network), vec![0, 1, 2]);
    }

    #[test]
    fn bars_start_just_below_close_values_and_at_zero_for_spread_ones() {
        assert_eq!(bar_base([99.0, 97.0, 98.0].into_iter()), 96.5);
        assert_eq!(bar_base([99.5, 99.5].into_iter()), 99.0);
        assert_eq!(bar_base([90.0, 10.0].into_iter()), 0.0);
        assert_eq!(bar_base([-5.0, 20.0, f64::NAN].into_iter()), -11.25);
        assert_eq!(bar_base(std::iter::empty()), 0.0);
    }
}
