//! Layer detail: the activation histogram of the layer's input with every observer's clip range
//! (the chosen one's lines can be dragged to set a manual range), the weight's per-channel ranges,
//! and the layer's error metrics.

use egui_plot::{Bar, BarChart, HLine, Legend, LineStyle, Plot, VLine};
use quantbench_core::algorithms::smoothquant::smoothed_name;
use quantbench_core::analysis::{WEIGHT_ERROR_BITS, WeightErrors};
use quantbench_core::calibrate::{Calibration, WeightStats};
use quantbench_core::model::QuantizableLayer;
use quantbench_core::observe::{Observer, TensorStats};
use quantbench_core::quant::{Granularity, LayerConfig};
use quantbench_core::simulate::LayerResult;

use super::actions::Action;
use super::clip_drag::{ClipDrag, ClipLines, line_near, moved};
use super::context::{ResultsState, ViewContext};
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
/// The panel's state is the histogram's draggable clip lines.
pub fn detail_ui(ctx: &ViewContext, lines: &mut ClipLines, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
    let (Some(summary), Some(index)) = (&ctx.session.summary, ctx.selection.focus) else {
        ui.heading("Layer detail");
        ui.weak("Select a layer in the table or the overview");
        return;
    };
    let Some(layer) = summary.layers.get(index) else { return };
    let config = ctx.session.recipe.as_ref().map(|r| r.config_for(&layer.name)).unwrap_or_default();
    let calibration = ctx.session.measured.calibration.as_deref();
    let result = ctx.session.evaluation.as_ref().and_then(|(_, e)| e.layers.iter().find(|l| l.name == layer.name));
    let state = ctx.results;
    let log = ctx.settings.log_histogram;
    egui::ScrollArea::vertical().show(ui, |ui| {
        ui.heading(&layer.name);
        ui.label(format!(
            "{}  ·  weight {:?}  ·  {}",
            layer.op_type,
            layer.weight_shape,
            if config.keep_float {
                "float".to_string()
            } else if ctx.session.recipe.as_ref().is_some_and(|r| r.weights_only) {
                format!("W{}, activations float (weights only)", config.weight.bits)
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
        metrics_ui(ui, result, state);
        ui.add_space(tokens::SECTION_SPACE);
        // After SmoothQuant the layer reads its input through an inserted Mul, whose output is
        // what is calibrated and quantized.
        let smoothed = smoothed_name(&layer.input, &layer.name);
        let input = calibration
            .and_then(|c| c.activations.get_key_value(&smoothed).or_else(|| c.activations.get_key_value(&layer.input)));
        ui.horizontal(|ui| {
            ui.strong(format!(
                "Activation histogram: {}",
                input.map_or(layer.input.as_str(), |(name, _)| name.as_str())
            ));
            let mut on = log;
            if ui.checkbox(&mut on, "log scale").changed() {
                actions.push(Action::SetLogHistogram(on));
            }
        });
        match calibration.zip(input) {
            Some((calibration, (tensor, stats))) => {
                let view = HistogramView { layer, calibration, tensor, stats, config: &config, log };
                clip_range_ui(ui, &view, actions);
                histogram_ui(ui, &view, lines, actions);
            }
            None => {
                ui.weak("Not calibrated yet");
            }
        }
        ui.add_space(tokens::SECTION_SPACE);
        ui.strong(format!("Weight ranges per channel: {}", layer.weight));
        // The calibration's (of the weights its transforms produced), else the loaded weights'.
        let from_weights = ctx.session.weights.iter().find(|w| w.layer == layer.name);
        match calibration
            .and_then(|c| c.weights.get(&layer.weight).or_else(|| c.weights.get(&layer.name)))
            .or(from_weights.map(|w| &w.stats))
        {
            Some(w) => weight_ui(ui, layer, w),
            None => {
                ui.weak("Not calibrated yet");
            }
        }
        if let Some(w) = from_weights {
            weight_errors_ui(ui, w, &config);
        }
    });
}

/// What the activation histogram shows.
struct HistogramView<'a> {
    layer: &'a QuantizableLayer,
    /// The calibration the statistics belong to: it memoises observer ranges, so the entropy
    /// search does not run again on every frame.
    calibration: &'a Calibration,
    /// The activation tensor shown.
    tensor: &'a str,
    stats: &'a TensorStats,
    config: &'a LayerConfig,
    log: bool,
}

impl HistogramView<'_> {
    /// The clip range of the layer's chosen observer.
    fn chosen_range(&self) -> (f32, f32) {
        let a = &self.config.activation;
        self.range(&a.observer)
    }

    /// The clip range `observer` chooses with the layer's activation settings (memoised).
    fn range(&self, observer: &Observer) -> (f32, f32) {
        let a = &self.config.activation;
        self.calibration.range_of(self.tensor, self.stats, observer, a.qrange(), a.symmetric)
    }

    /// The layer's config with its activation observer replaced.
    fn with_observer(&self, observer: Observer) -> Action {
        let mut c = *self.config;
        c.activation.observer = observer;
        Action::UpdateLayers(vec![(self.layer.name.clone(), Some(c))])
    }
}

/// The layer's observer (statistical or manual) and, for a manual one, its range as two numbers.
fn clip_range_ui(ui: &mut egui::Ui, view: &HistogramView<'_>, actions: &mut Vec<Action>) {
    let current = view.config.activation.observer;
    ui.horizontal_wrapped(|ui| {
        ui.label("Observer:");
        let mut chosen = current;
        let (lo, hi) = view.chosen_range();
        let manual_here =
            if lo < hi { Observer::Manual { min: lo, max: hi } } else { Observer::Manual { min: -1.0, max: 1.0 } };
        egui::ComboBox::from_id_salt(("detail observer", &view.layer.name))
            .width(110.0)
            .selected_text(observer_label(&current))
            .show_ui(ui, |ui| {
                for o in Observer::ALL {
                    ui.selectable_value(&mut chosen, o, observer_label(&o));
                }
                let manual = if matches!(current, Observer::Manual { .. }) { current } else { manual_here };
                ui.selectable_value(&mut chosen, manual, "Manual")
                    .on_hover_text("Clip at a range you type or drag on the histogram");
            });
        if chosen != current {
            actions.push(view.with_observer(chosen));
        }
        if let Observer::Manual { min, max } = current {
            // Each end stays on its side of the other, so the range is always valid.
            let (mut lo, mut hi) = (min, max);
            let speed = f64::from(max - min) / 200.0;
            ui.label("min");
            ui.add(egui::DragValue::new(&mut lo).speed(speed).range(f32::MIN..=max.next_down()).max_decimals(4));
            ui.label("max");
            ui.add(egui::DragValue::new(&mut hi).speed(speed).range(min.next_up()..=f32::MAX).max_decimals(4));
            let typed = Observer::Manual { min: lo, max: hi };
            if (lo, hi) != (min, max) && typed.validate().is_ok() {
                actions.push(view.with_observer(typed));
            }
        } else {
            ui.weak("drag a solid line to set the range by hand");
        }
    });
}

fn metrics_ui(ui: &mut egui::Ui, result: Option<&LayerResult>, state: ResultsState) {
    let Some(r) = result else {
        ui.weak("No evaluation yet");
        return;
    };
    let stale = state.is_old();
    if stale {
        ui.horizontal_wrapped(|ui| {
            super::summary::results_state_ui(ui, state, Some("(values below are of an earlier configuration)"));
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

/// The histogram with every observer's clip lines; the chosen observer's lines can be dragged,
/// and releasing one sets the layer's observer to the dragged manual range.
// One plot with its drag handling; splitting it would scatter the drag's steps.
#[allow(clippy::too_many_lines)]
fn histogram_ui(ui: &mut egui::Ui, view: &HistogramView<'_>, lines: &mut ClipLines, actions: &mut Vec<Action>) {
    let (stats, config, layer) = (view.stats, view.config, view.layer);
    if stats.count == 0 || stats.max.partial_cmp(&stats.min) != Some(std::cmp::Ordering::Greater) {
        ui.weak("The tensor is constant over the calibration set");
        return;
    }
    if lines.drag.as_ref().is_some_and(|d| d.layer != layer.name) {
        lines.drag = None;
    }
    let (lo, hi) = (stats.min, stats.max);
    let counts = stats.histogram.rebin(lo, hi, DISPLAY_BINS);
    let width = f64::from(hi - lo) / DISPLAY_BINS as f64;
    let bars: Vec<Bar> = counts
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let h = if view.log { (c + 1.0).log10() } else { c };
            Bar::new(f64::from(lo) + (i as f64 + 0.5) * width, h).width(width)
        })
        .collect();
    let qrange = config.activation.qrange();
    let chosen_observer = config.activation.observer;
    let is_chosen = |o: &Observer| std::mem::discriminant(o) == std::mem::discriminant(&chosen_observer);
    let mut ranges: Vec<(String, (f32, f32), bool, egui::Color32)> = HISTOGRAM_OBSERVERS
        .iter()
        .enumerate()
        .map(|(k, o)| {
            let color = tokens::OBSERVER_LINES[k % tokens::OBSERVER_LINES.len()];
            (observer_label(o), view.range(o), is_chosen(o), color)
        })
        .collect();
    if !HISTOGRAM_OBSERVERS.iter().any(is_chosen) {
        // EMA or a manual range: drawn as a line pair of its own.
        ranges.push((observer_label(&chosen_observer), view.chosen_range(), true, tokens::OTHER_OBSERVER_LINE));
    }
    // While a line is dragged, the chosen lines follow the pointer.
    let dragged = lines.drag_of(&layer.name).map(|d| d.range);
    let chosen_range = dragged.unwrap_or_else(|| view.chosen_range());
    for r in &mut ranges {
        if r.2 {
            r.1 = chosen_range;
        }
    }
    // Whether the pointer is on (or was pressed on) a chosen line, with last frame's transform:
    // the plot must not pan then, so it is decided before the plot is shown.
    let (hover, press, down) =
        ui.input(|i| (i.pointer.hover_pos(), i.pointer.press_origin(), i.pointer.primary_down()));
    let near =
        |p: Option<egui::Pos2>| lines.transform_of(&layer.name).zip(p).and_then(|(t, p)| line_near(t, chosen_range, p));
    let on_line = near(hover).is_some() || (down && near(press).is_some());
    let dragging = dragged.is_some();
    let response = Plot::new(("activation histogram", &layer.name))
        .height(tokens::DETAIL_PLOT_HEIGHT)
        .legend(Legend::default())
        .y_axis_label(if view.log { "log10(count + 1)" } else { "count" })
        .allow_scroll(false)
        .allow_drag(!(on_line || dragging))
        .allow_boxed_zoom(!(on_line || dragging))
        .show(ui, |plot| {
            plot.bar_chart(BarChart::new("samples", bars).color(tokens::HISTOGRAM));
            for (label, (a, b), chosen, color) in &ranges {
                let width = if *chosen { tokens::CHOSEN_LINE_WIDTH } else { tokens::LINE_WIDTH };
                let style = if *chosen { LineStyle::Solid } else { LineStyle::dashed_dense() };
                let name = if *chosen { format!("{label} (chosen)") } else { label.clone() };
                for x in [a, b] {
                    plot.vline(VLine::new(name.clone(), f64::from(*x)).color(*color).width(width).style(style));
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
    let transform = response.transform;
    lines.transform = Some((layer.name.clone(), transform));
    if on_line || dragging {
        ui.ctx().set_cursor_icon(egui::CursorIcon::ResizeHorizontal);
    }
    let r = &response.response;
    if !dragging
        && r.drag_started_by(egui::PointerButton::Primary)
        && let Some(end) = press.and_then(|p| line_near(&transform, chosen_range, p))
    {
        lines.drag = Some(ClipDrag { layer: layer.name.clone(), end, range: chosen_range });
    }
    if let Some(drag) = lines.drag.as_mut().filter(|d| d.layer == layer.name) {
        if let Some(p) = ui.input(|i| i.pointer.interact_pos()) {
            drag.range = moved(drag.range, drag.end, transform.value_from_position(p).x as f32);
        }
        if r.drag_stopped() || !ui.input(|i| i.pointer.primary_down()) {
            let (min, max) = drag.range;
            lines.drag = None;
            actions.push(view.with_observer(Observer::Manual { min, max }));
        }
    }
    ui.horizontal_wrapped(|ui| {
        for (label, (a, b), chosen, color) in &ranges {
            let text = egui::RichText::new(format!("{label}: [{a:.3}, {b:.3}]")).color(*color);
            ui.label(if *chosen { text.strong().underline() } else { text });
        }
    });
}

/// The weight-only SQNR at each bit width, with the layer's granularity (from the weights alone).
fn weight_errors_ui(ui: &mut egui::Ui, w: &WeightErrors, config: &LayerConfig) {
    let granularity = config.weight.granularity;
    ui.horizontal_wrapped(|ui| {
        ui.label(format!("Weight-only SQNR ({}):", granularity_label(granularity)));
        for bits in WEIGHT_ERROR_BITS {
            if let Some(db) = w.sqnr_db(bits, granularity) {
                let text = egui::RichText::new(format!("W{bits} {db:.1} dB")).color(tokens::sqnr_color(db));
                if bits == config.weight.bits {
                    ui.strong(text)
                } else {
                    ui.label(text)
                };
            }
        }
    });
}

/// How a weight granularity is named next to its figures.
pub fn granularity_label(g: Granularity) -> &'static str {
    match g {
        Granularity::PerTensor => "per tensor",
        Granularity::PerChannel => "per channel",
        Granularity::PerGroup { .. } => "per channel; groups do better",
    }
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
