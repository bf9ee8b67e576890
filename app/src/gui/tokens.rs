//! Design tokens: every colour and spacing the workbench uses, in one place.

use egui::Color32;

/// SQNR above which a layer's error counts as good (dB).
pub const SQNR_GOOD_DB: f64 = 35.0;
/// SQNR above which a layer's error counts as acceptable (dB).
pub const SQNR_FAIR_DB: f64 = 20.0;

/// Good error (SQNR above [`SQNR_GOOD_DB`]).
pub const GOOD: Color32 = Color32::from_rgb(0x3c, 0xb3, 0x4a);
/// Acceptable error.
pub const FAIR: Color32 = Color32::from_rgb(0xe0, 0xb0, 0x20);
/// Bad error.
pub const BAD: Color32 = Color32::from_rgb(0xe0, 0x4a, 0x3a);
/// Results that no longer describe the current configuration.
pub const STALE: Color32 = Color32::from_gray(0x80);
/// The "outdated" label: results of an older configuration that nothing is re-evaluating.
pub const OUTDATED: Color32 = Color32::from_rgb(0xe0, 0x8a, 0x3a);

/// Histogram bars.
pub const HISTOGRAM: Color32 = Color32::from_rgb(0x5b, 0x8d, 0xd6);
/// Local-error bars of the overview.
pub const LOCAL: Color32 = Color32::from_rgb(0x5b, 0x8d, 0xd6);
/// Accumulated-error bars of the overview.
pub const ACCUMULATED: Color32 = Color32::from_rgb(0xe0, 0x8a, 0x3a);
/// Sensitivity bars.
pub const SENSITIVITY: Color32 = Color32::from_rgb(0x5b, 0x8d, 0xd6);
/// Reference lines of the sensitivity chart (all layers quantized).
pub const REFERENCE_QUANTIZED: Color32 = Color32::from_rgb(0xe0, 0x8a, 0x3a);
/// Reference lines of the sensitivity chart (float model).
pub const REFERENCE_FLOAT: Color32 = Color32::from_rgb(0x3c, 0xb3, 0x4a);
/// Heat-map colours from the worst to the best metric.
pub const HEATMAP: [Color32; 3] = [BAD, FAIR, GOOD];
/// Path points off the Pareto front.
pub const PATH_POINT: Color32 = Color32::from_gray(0x90);
/// Pareto-front points and line.
pub const PARETO: Color32 = Color32::from_rgb(0x5b, 0x8d, 0xd6);
/// The chosen point of a mixed-precision search.
pub const CHOSEN: Color32 = Color32::from_rgb(0xe0, 0x8a, 0x3a);
/// The point applied to the recipe.
pub const APPLIED: Color32 = Color32::from_rgb(0x3c, 0xb3, 0x4a);
/// Radius of path points; Pareto points and highlighted ones are larger.
pub const POINT_RADIUS: f32 = 3.0;
/// Radius of the chosen and applied points' rings.
pub const HIGHLIGHT_RADIUS: f32 = 8.0;
/// How close (points) a click must be to a path point to pick it.
pub const PICK_DISTANCE: f32 = 12.0;
/// Height of a heat-map row.
pub const HEATMAP_ROW_HEIGHT: f32 = 22.0;
/// Height of the analysis charts.
pub const ANALYSIS_PLOT_HEIGHT: f32 = 300.0;
/// Per-channel maxima of a weight.
pub const CHANNEL_MAX: Color32 = Color32::from_rgb(0x5b, 0x8d, 0xd6);
/// Per-channel minima of a weight.
pub const CHANNEL_MIN: Color32 = Color32::from_rgb(0x9b, 0x6d, 0xc6);
/// The per-tensor range drawn over per-channel ranges.
pub const TENSOR_RANGE: Color32 = Color32::from_rgb(0xe0, 0x4a, 0x3a);
/// Observer clip lines, in the order of [`crate::gui::detail::HISTOGRAM_OBSERVERS`].
pub const OBSERVER_LINES: [Color32; 4] = [
    Color32::from_rgb(0xe0, 0x4a, 0x3a),
    Color32::from_rgb(0x3c, 0xb3, 0x4a),
    Color32::from_rgb(0xb0, 0x5c, 0xd0),
    Color32::from_rgb(0xe0, 0x8a, 0x3a),
];
/// Clip lines of a chosen observer the histogram does not otherwise draw (EMA, manual).
pub const OTHER_OBSERVER_LINE: Color32 = Color32::from_rgb(0x20, 0xb0, 0xc0);
/// Width of an observer line; the chosen observer's is [`CHOSEN_LINE_WIDTH`].
pub const LINE_WIDTH: f32 = 1.0;
/// Width of the chosen observer's clip lines.
pub const CHOSEN_LINE_WIDTH: f32 = 3.5;

/// Graph view: a layer without the chosen figure (no result yet, or kept float).
pub const GRAPH_NO_VALUE: Color32 = Color32::from_gray(0xa8);
/// Graph view: an operator that is not a quantizable layer (SQNR and sensitivity colourings).
pub const GRAPH_OP: Color32 = Color32::from_gray(0xd4);
/// Graph view: a graph input or output.
pub const GRAPH_TERMINAL: Color32 = Color32::from_rgb(0xc8, 0xd8, 0xe8);
/// Graph view: quantized (the layer's weights or inputs, or an op reading a quantized tensor).
pub const GRAPH_QUANTIZED: Color32 = Color32::from_rgb(0x5b, 0x8d, 0xd6);
/// Graph view: float (nothing quantized there by the plan).
pub const GRAPH_FLOAT: Color32 = Color32::from_gray(0xc0);
/// Graph view: kept float by the recipe (`float_ops`, `float_nodes`, a layer's keep-float).
pub const GRAPH_EXCLUDED: Color32 = Color32::from_rgb(0xb0, 0x5c, 0xd0);
/// Graph view: the Q/DQ markers of the placement target.
pub const Q_MARKER: Color32 = Color32::from_rgb(0xe0, 0x8a, 0x3a);
/// Graph view: the outline of selected layers.
pub const GRAPH_SELECTED: Color32 = Color32::from_rgb(0x1e, 0x90, 0xff);
/// Graph view: edges.
pub const GRAPH_EDGE: Color32 = Color32::from_gray(0x8c);

/// Default width of the left (model & data) panel.
pub const LEFT_PANEL_WIDTH: f32 = 230.0;
/// Default width of the right (layer detail) panel.
pub const RIGHT_PANEL_WIDTH: f32 = 400.0;
/// Height of a layer-table row.
pub const ROW_HEIGHT: f32 = 22.0;
/// Height of the plots in the detail panel.
pub const DETAIL_PLOT_HEIGHT: f32 = 200.0;
/// Space between sections.
pub const SECTION_SPACE: f32 = 8.0;

/// The colour of an SQNR value.
pub fn sqnr_color(sqnr_db: f64) -> Color32 {
    if sqnr_db > SQNR_GOOD_DB {
        GOOD
    } else if sqnr_db > SQNR_FAIR_DB {
        FAIR
    } else {
        BAD
    }
}

/// The colour of a value at `t` (0 = worst, 1 = best) along [`HEATMAP`].
pub fn scale_color(t: f64) -> Color32 {
    let t = if t.is_finite() { t.clamp(0.0, 1.0) as f32 } else { 0.0 };
    let (a, b, u) = if t < 0.5 { (HEATMAP[0], HEATMAP[1], t * 2.0) } else { (HEATMAP[1], HEATMAP[2], t * 2.0 - 1.0) };
    a.lerp_to_gamma(b, u)
}
