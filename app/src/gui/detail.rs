//! Layer detail: the activation histogram of the layer's input with every observer's clip range,
//! the weight's per-channel ranges, and the layer's error metrics.

use egui_plot::{Bar, BarChart, HLine, Legend, LineStyle, Plot, VLine};
use quantbench_core::calibrate::WeightStats;
use quantbench_core::model::QuantizableLayer;
use quantbench_core::observe::{Observer, TensorStats};
use quantbench_core::quant::LayerConfig;
use quantbench_core::simulate::LayerResult;

use super::actions::Action;
use super::app::WorkbenchApp;
use super::table::observer_label;
use super::tokens;

/// Observers whose clip ranges the histogram shows, in the order of
/// [`tokens::OBSERVER_LINES`].
pub const HISTOGRAM_OBSERVERS: [Observer; 4] = [
    Observer::MinMax,
    Observer::Percentile { percentile: 99.99 },
    Observer::Entropy { num_bins: 2048, num_quantized_bins: 128 },
    Observer::Mse,
];

/// Bars the histogram is re-binned into.
const DISPLAY_BINS: usize = 160;

/// Draws the panel for the focused layer.
pub fn detail_ui(app: &mut WorkbenchApp, ui: &mut egui::Ui, _actions: &mut Vec<Action>) {
    let (Some(summary), Some(index)) = (&app.session.summary, app.focus) else {
        ui.heading("Layer detail");
        ui.weak("Select a layer in the table or the overview");
        return;
    };
    let Some(layer) = summary.layers.get(index) else { return };
    let config = app.session.recipe.as_ref().map(|r| r.config_for(&layer.name)).unwrap_or_default();
    let calibration = app.session.recipe.as_ref().and_then(|r| r.calibration.as_ref());
    let result = app.session.evaluation.as_ref().and_then(|(_, e)| e.layers.iter().find(|l| l.name == layer.name));
    let stale = app.results_stale();
    let log = &mut app.settings.log_histogram;
    egui::ScrollArea::vertical().show(ui, |ui| {
        ui.heading(&layer.name);
        ui.label(format!(
            "{}  ·  weight {:?}  ·  {}",
            layer.op_type,
            layer.weight_shape,
            if config.keep_float {
                "float".to_string()
            } else {
                format!(
                    "W{} A{} {}",
                    config.weight.bits,
                    config.activation.bits,
                    observer_label(&config.activation.observer)
                )
            }
        ));
        ui.add_space(tokens::SECTION_SPACE);
        metrics_ui(ui, result, stale);
        ui.add_space(tokens::SECTION_SPACE);
        ui.horizontal(|ui| {
            ui.strong(format!("Activation histogram: {}", layer.input));
            ui.checkbox(log, "log scale");
        });
        match calibration.and_then(|c| c.activations.get(&layer.input)) {
            Some(stats) => histogram_ui(ui, layer, stats, &config, *log),
            None => {
                ui.weak("Not calibrated yet");
            }
        }
        ui.add_space(tokens::SECTION_SPACE);
        ui.strong(format!("Weight ranges per channel: {}", layer.weight));
        match calibration.and_then(|c| c.weights.get(&layer.weight).or_else(|| c.weights.get(&layer.name))) {
            Some(w) => weight_ui(ui, layer, w),
            None => {
                ui.weak("Not calibrated yet");
            }
        }
    });
}

fn metrics_ui(ui: &mut egui::Ui, result: Option<&LayerResult>, stale: bool) {
    let Some(r) = result else {
        ui.weak("No evaluation yet");
        return;
    };
    if stale {
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label(egui::RichText::new("updating… (values below are for the previous configuration)").italics());
        });
    }
    egui::Grid::new("layer metrics").num_columns(3).striped(true).show(ui, |ui| {
        ui.label("");
        ui.strong("local");
        ui.strong("accumulated");
        ui.end_row();
        let cell = |ui: &mut egui::Ui, v: Option<f64>, fmt: &dyn Fn(f64) -> String| {
            let text = v.map_or_else(|| "—".to_string(), fmt);
            ui.label(if stale { egui::RichText::new(text).color(tokens::STALE) } else { egui::RichText::new(text) });
        };
        let db = |v: f64| if v.is_infinite() { "exact".to_string() } else { format!("{v:.2} dB") };
        let sci = |v: f64| format!("{v:.3e}");
        let cos = |v: f64| format!("{v:.6}");
        #[allow(clippy::type_complexity)]
        let rows: [(&str, &dyn Fn(f64) -> String, fn(&quantbench_core::metrics::TensorMetrics) -> f64); 4] = [
            ("SQNR", &db, |m| m.sqnr_db),
            ("MSE", &sci, |m| m.mse),
            ("cosine", &cos, |m| m.cosine),
            ("max |error|", &sci, |m| m.max_abs),
        ];
        for (label, fmt, get) in rows {
            ui.label(label);
            cell(ui, r.local.as_ref().map(get), fmt);
            cell(ui, Some(get(&r.accumulated)), fmt);
            ui.end_row();
        }
    });
}

fn histogram_ui(ui: &mut egui::Ui, layer: &QuantizableLayer, stats: &TensorStats, config: &LayerConfig, log: bool) {
    if stats.count == 0 || stats.max.partial_cmp(&stats.min) != Some(std::cmp::Ordering::Greater) {
        ui.weak("The tensor is constant over the calibration set");
        return;
    }
    let (lo, hi) = (stats.min, stats.max);
    let counts = stats.histogram.rebin(lo, hi, DISPLAY_BINS);
    let width = f64::from(hi - lo) / DISPLAY_BINS as f64;
    let bars: Vec<Bar> = counts
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let h = if log { (c + 1.0).log10() } else { c };
            Bar::new(f64::from(lo) + (i as f64 + 0.5) * width, h).width(width)
        })
        .collect();
    let qrange = config.activation.qrange();
    let ranges: Vec<(String, (f32, f32), bool)> = HISTOGRAM_OBSERVERS
        .iter()
        .map(|o| {
            let chosen = std::mem::discriminant(o) == std::mem::discriminant(&config.activation.observer);
            (observer_label(o), o.range(stats, qrange, config.activation.symmetric), chosen)
        })
        .collect();
    let chosen_range = config.activation.observer.range(stats, qrange, config.activation.symmetric);
    Plot::new(("activation histogram", &layer.name))
        .height(tokens::DETAIL_PLOT_HEIGHT)
        .legend(Legend::default())
        .y_axis_label(if log { "log10(count + 1)" } else { "count" })
        .allow_scroll(false)
        .show(ui, |plot| {
            plot.bar_chart(BarChart::new("samples", bars).color(tokens::HISTOGRAM));
            for (k, (label, (a, b), chosen)) in ranges.iter().enumerate() {
                let color = tokens::OBSERVER_LINES[k % tokens::OBSERVER_LINES.len()];
                let width = if *chosen { tokens::CHOSEN_LINE_WIDTH } else { tokens::LINE_WIDTH };
                let style = if *chosen { LineStyle::Solid } else { LineStyle::dashed_dense() };
                let name = if *chosen { format!("{label} (chosen)") } else { label.clone() };
                for x in [a, b] {
                    plot.vline(VLine::new(name.clone(), f64::from(*x)).color(color).width(width).style(style));
                }
            }
            // The quantization grid of the chosen range: visible once zoomed in.
            let bounds = plot.plot_bounds();
            let (cl, ch) = chosen_range;
            let steps = f64::from(qrange.qmax - qrange.qmin);
            let step = f64::from(ch - cl) / steps.max(1.0);
            if step > 0.0 && bounds.width() / step < 60.0 {
                let first = ((bounds.min()[0] - f64::from(cl)) / step).ceil().max(0.0) as i64;
                let last = ((bounds.max()[0] - f64::from(cl)) / step).floor().min(steps) as i64;
                for k in first..=last {
                    plot.vline(
                        VLine::new("grid", f64::from(cl) + k as f64 * step)
                            .color(tokens::STALE.gamma_multiply(0.5))
                            .width(0.5),
                    );
                }
            }
        });
    ui.horizontal_wrapped(|ui| {
        for (k, (label, (a, b), chosen)) in ranges.iter().enumerate() {
            let color = tokens::OBSERVER_LINES[k % tokens::OBSERVER_LINES.len()];
            let text = egui::RichText::new(format!("{label}: [{a:.3}, {b:.3}]")).color(color);
            ui.label(if *chosen { text.strong().underline() } else { text });
        }
    });
}

fn weight_ui(ui: &mut egui::Ui, layer: &QuantizableLayer, w: &WeightStats) {
    let n = w.channel_min.len().min(w.channel_max.len());
    if n == 0 {
        ui.weak("No channels");
        return;
    }
    let maxs: Vec<Bar> = (0..n).map(|c| Bar::new(c as f64, f64::from(w.channel_max[c])).width(0.8)).collect();
    let mins: Vec<Bar> = (0..n).map(|c| Bar::new(c as f64, f64::from(w.channel_min[c])).width(0.8)).collect();
    let spread = |i: usize| f64::from(w.channel_max[i] - w.channel_min[i]);
    let widest = (0..n).map(spread).fold(0.0, f64::max);
    let narrowest = (0..n).map(spread).fold(f64::INFINITY, f64::min);
    Plot::new(("weight ranges", &layer.name))
        .height(tokens::DETAIL_PLOT_HEIGHT * 0.8)
        .legend(Legend::default())
        .x_axis_label("output channel")
        .allow_scroll(false)
        .show(ui, |plot| {
            plot.bar_chart(BarChart::new("channel max", maxs).color(tokens::CHANNEL_MAX));
            plot.bar_chart(BarChart::new("channel min", mins).color(tokens::CHANNEL_MIN));
            plot.hline(HLine::new("per-tensor range", f64::from(w.stats.max)).color(tokens::TENSOR_RANGE));
            plot.hline(HLine::new("per-tensor range", f64::from(w.stats.min)).color(tokens::TENSOR_RANGE));
        });
    if narrowest > 0.0 {
        ui.weak(format!(
            "{n} channels; widest range is {:.1}× the narrowest: one per-tensor scale wastes that many levels on the narrow channels",
            widest / narrowest
        ));
    }
}
