//! The graph view: the model as a layered directed graph (`graph_layout.rs`, computed once per
//! model), painted with boxes coloured by the chosen measure (`graph_style.rs`), the placement
//! target's Q/DQ markers on the edges, pan (drag), zoom around the pointer (wheel, pinch, ±),
//! Fit, Fit width and "Go to selection". A click on a layer selects it as the table does; the selection
//! made elsewhere is outlined and the view follows the focused layer. Only what is inside the
//! canvas is drawn, and text only when zoomed in enough to read it.

use egui::{Align2, Color32, FontId, Pos2, Rect, Sense, Shape, Stroke, Vec2, pos2, vec2};
use quantbench_core::model::ModelSummary;

use super::actions::{Action, SelectMode};
use super::context::ViewContext;
use super::graph_layout::{GraphLayout, NodeKind};
use super::graph_style::{ColorBy, Figures, MarkerPlace, QMarker, q_markers, text_color};
use super::tokens;

/// Zoom limits (screen points per graph unit).
/// Space above the graph's top after "Fit width", in points.
const FIT_MARGIN: f32 = 12.0;
const MIN_ZOOM: f32 = 0.01;
const MAX_ZOOM: f32 = 2.5;
/// Zoom from which box titles are drawn (their font is then at least 7 points).
const TEXT_ZOOM: f32 = 0.58;
/// Zoom from which subtitles, marker labels and arrowheads are drawn.
const DETAIL_ZOOM: f32 = 0.85;
/// The zoom "Go to selection" brings a smaller zoom up to.
const READABLE_ZOOM: f32 = 1.0;
/// Zoom factor of the ± buttons.
const ZOOM_STEP: f32 = 1.25;
/// Zoom per point of wheel scrolling.
const WHEEL_ZOOM: f32 = 0.0025;

/// What identifies the laid-out model.
type LayoutKey = (Option<std::path::PathBuf>, String, usize, usize, bool);
/// What identifies the markers: layout generation, evaluation revision, samples, tensor count.
type MarkerKey = (u64, u64, usize, usize);

/// The graph view's state: the layout cache, the colouring, and the camera.
#[derive(Debug)]
pub struct GraphState {
    /// What the boxes' colour shows.
    pub color_by: ColorBy,
    /// Whether linear chains of non-layer nodes are collapsed into one box.
    pub collapse: bool,
    layout: Option<(LayoutKey, GraphLayout)>,
    /// Bumped on every new layout (the markers' cache key).
    generation: u64,
    markers: Option<(MarkerKey, Vec<QMarker>)>,
    zoom: f32,
    /// Screen offset of the graph origin from the canvas' top-left corner.
    offset: Vec2,
    fit_pending: bool,
    /// The focused layer the view last followed.
    followed: Option<usize>,
    /// The canvas as last drawn.
    canvas: Option<Rect>,
}

impl Default for GraphState {
    fn default() -> Self {
        Self {
            color_by: ColorBy::default(),
            collapse: true,
            layout: None,
            generation: 0,
            markers: None,
            zoom: 1.0,
            offset: Vec2::ZERO,
            fit_pending: true,
            followed: None,
            canvas: None,
        }
    }
}

impl GraphState {
    /// The layout as last drawn.
    pub fn layout(&self) -> Option<&GraphLayout> {
        self.layout.as_ref().map(|(_, l)| l)
    }

    /// The Q/DQ markers as last drawn.
    pub fn markers(&self) -> &[QMarker] {
        self.markers.as_ref().map_or(&[], |(_, m)| m.as_slice())
    }

    /// The canvas as last drawn.
    #[cfg(test)]
    pub fn canvas(&self) -> Option<Rect> {
        self.canvas
    }

    /// Where a point of the graph is on screen (with the last drawn canvas).
    #[cfg(test)]
    pub fn to_screen(&self, p: [f32; 2]) -> Option<Pos2> {
        Some(self.canvas?.min + self.offset + vec2(p[0], p[1]) * self.zoom)
    }

    fn to_graph(&self, canvas: Rect, p: Pos2) -> [f32; 2] {
        let g = (p - canvas.min - self.offset) / self.zoom;
        [g.x, g.y]
    }

    /// Builds the layout when the model (or the collapse toggle) changed.
    fn ensure_layout(&mut self, ctx: &ViewContext, summary: &ModelSummary) {
        let same = |(path, name, nodes, layers, collapse): &LayoutKey| {
            *path == ctx.session.model_path
                && *name == summary.name
                && (*nodes, *layers, *collapse) == (summary.nodes.len(), summary.layers.len(), self.collapse)
        };
        if self.layout.as_ref().is_some_and(|(k, _)| same(k)) {
            return;
        }
        let key = (
            ctx.session.model_path.clone(),
            summary.name.clone(),
            summary.nodes.len(),
            summary.layers.len(),
            self.collapse,
        );
        self.layout = Some((key, GraphLayout::build(summary, self.collapse)));
        self.generation += 1;
        self.fit_pending = true;
        self.followed = ctx.selection.focus;
    }

    /// Recomputes the markers when the evaluation or the layout changed.
    fn ensure_markers(&mut self, ctx: &ViewContext, summary: &ModelSummary) {
        let Some((_, layout)) = &self.layout else { return };
        let Some((revision, evaluation)) = &ctx.session.evaluation else {
            self.markers = None;
            return;
        };
        let key = (self.generation, *revision, evaluation.samples, evaluation.quantized.len());
        if self.markers.as_ref().is_some_and(|(k, _)| *k == key) {
            return;
        }
        self.markers = Some((key, q_markers(layout, summary, &evaluation.quantized)));
    }

    fn zoom_around(&mut self, canvas: Rect, at: Pos2, factor: f32) {
        let g = self.to_graph(canvas, at);
        self.zoom = (self.zoom * factor).clamp(MIN_ZOOM, MAX_ZOOM);
        self.offset = at - canvas.min - vec2(g[0], g[1]) * self.zoom;
    }

    fn fit(&mut self, canvas: Rect) {
        let Some(layout) = self.layout() else { return };
        let [a, b, c, d] = layout.bounds;
        let (w, h) = ((c - a).max(1.0), (d - b).max(1.0));
        let zoom = (canvas.width() / w).min(canvas.height() / h) * 0.95;
        self.zoom = zoom.clamp(MIN_ZOOM, 1.0);
        self.center_on(canvas, [f32::midpoint(a, c), f32::midpoint(b, d)]);
    }

    /// Fits the graph's width (at most at a readable 1:1), its top (the inputs) at the canvas's
    /// top: where a deep, narrow model is read from, which a whole fit shows too small.
    fn fit_width(&mut self, canvas: Rect) {
        let Some(layout) = self.layout() else { return };
        let [a, b, c, _] = layout.bounds;
        self.zoom = (canvas.width() / (c - a).max(1.0) * 0.95).clamp(MIN_ZOOM, 1.0);
        self.offset = vec2(canvas.width() / 2.0 - f32::midpoint(a, c) * self.zoom, FIT_MARGIN - b * self.zoom);
    }

    fn center_on(&mut self, canvas: Rect, p: [f32; 2]) {
        self.offset = canvas.size() / 2.0 - vec2(p[0], p[1]) * self.zoom;
    }

    /// Centres the view on layer `layer`'s box, zoomed in to at least `min_zoom`.
    fn go_to_layer(&mut self, canvas: Rect, layer: usize, min_zoom: f32) {
        let Some(center) = self.layout().and_then(|l| Some(l.nodes[(*l.layer_nodes.get(layer)?)?].center)) else {
            return;
        };
        self.zoom = self.zoom.max(min_zoom);
        self.center_on(canvas, center);
    }
}

/// Draws the toolbar, the legend and the graph.
pub fn graph_ui(ctx: &ViewContext, state: &mut GraphState, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
    let Some(summary) = &ctx.session.summary else { return };
    state.ensure_layout(ctx, summary);
    state.ensure_markers(ctx, summary);
    let figures = Figures::new(ctx, summary, state.color_by);
    let mut command = None;
    ui.horizontal_wrapped(|ui| {
        ui.label("Color by:");
        egui::ComboBox::from_id_salt("graph color by").selected_text(state.color_by.label()).show_ui(ui, |ui| {
            for mode in ColorBy::ALL {
                ui.selectable_value(&mut state.color_by, mode, mode.label());
            }
        });
        ui.checkbox(&mut state.collapse, "Collapse chains")
            .on_hover_text("One box for each linear chain of operators that are not quantizable layers");
        for (label, c) in
            [("Fit", Command::Fit), ("Fit width", Command::FitWidth), ("−", Command::ZoomOut), ("+", Command::ZoomIn)]
        {
            if ui.button(label).clicked() {
                command = Some(c);
            }
        }
        let focus = ctx.selection.focus;
        if ui.add_enabled(focus.is_some(), egui::Button::new("Go to selection")).clicked() {
            command = Some(Command::GoTo);
        }
        if let Some(layout) = state.layout() {
            ui.weak(format!("{} boxes, {} ONNX nodes", layout.nodes.len(), summary.nodes.len()));
        }
    });
    legend_ui(ctx, state, &figures, ui);
    if ctx.results.is_old() && ctx.session.evaluation.is_some() {
        ui.horizontal(|ui| {
            super::summary::results_state_ui(ui, ctx.results, Some("(colours show an earlier configuration)"));
        });
    }
    let (response, painter) = ui.allocate_painter(ui.available_size(), Sense::click_and_drag());
    let canvas = response.rect;
    state.canvas = Some(canvas);
    if state.fit_pending {
        state.fit(canvas);
        state.fit_pending = false;
    }
    match command {
        Some(Command::Fit) => state.fit(canvas),
        Some(Command::FitWidth) => state.fit_width(canvas),
        Some(Command::ZoomIn) => state.zoom_around(canvas, canvas.center(), ZOOM_STEP),
        Some(Command::ZoomOut) => state.zoom_around(canvas, canvas.center(), 1.0 / ZOOM_STEP),
        Some(Command::GoTo) => {
            if let Some(f) = ctx.selection.focus {
                state.go_to_layer(canvas, f, READABLE_ZOOM);
            }
        }
        None => {}
    }
    // The focus moved elsewhere (the table, a chart): follow it.
    if ctx.selection.focus != state.followed {
        state.followed = ctx.selection.focus;
        if let Some(f) = ctx.selection.focus {
            state.go_to_layer(canvas, f, state.zoom);
        }
    }
    navigate(state, &response, ui);
    if response.double_clicked() {
        state.fit(canvas);
    }
    let hovered = response.hover_pos().and_then(|p| state.layout()?.node_at(state.to_graph(canvas, p)));
    if response.clicked()
        && let Some(p) = response.interact_pointer_pos()
        && let Some(layout) = state.layout()
        && let Some(node) = layout.node_at(state.to_graph(canvas, p))
        && let Some(layer) = layout.nodes[node].layer
    {
        let mode = SelectMode::from_modifiers(ui.input(|i| i.modifiers));
        actions.push(Action::Select(layer, mode));
        // The view does not jump to a box the user just clicked.
        state.followed = Some(layer);
    }
    paint(ctx, state, &figures, &painter.with_clip_rect(canvas), hovered);
    if let Some(node) = hovered
        && let Some(layout) = state.layout()
    {
        let text = figures.hover_text(&layout.nodes[node]);
        response.on_hover_ui_at_pointer(|ui| {
            ui.label(text);
        });
    }
}

/// A toolbar button's request, applied once the canvas is known.
#[derive(Debug, Clone, Copy)]
enum Command {
    Fit,
    FitWidth,
    ZoomIn,
    ZoomOut,
    GoTo,
}

/// Pan by dragging, zoom around the pointer by the wheel or a pinch.
fn navigate(state: &mut GraphState, response: &egui::Response, ui: &egui::Ui) {
    let canvas = response.rect;
    if response.dragged() {
        state.offset += response.drag_delta();
    }
    if let Some(p) = response.hover_pos() {
        let (scroll, pinch) = ui.input(|i| (i.smooth_scroll_delta.y, i.zoom_delta()));
        let factor = pinch * (scroll * WHEEL_ZOOM).exp();
        if (factor - 1.0).abs() > 1e-4 {
            state.zoom_around(canvas, p, factor);
        }
    }
}

fn intersects(r: [f32; 4], view: [f32; 4]) -> bool {
    r[0] <= view[2] && r[2] >= view[0] && r[1] <= view[3] && r[3] >= view[1]
}

/// Paints the edges, the markers and the boxes inside the canvas.
fn paint(ctx: &ViewContext, state: &GraphState, figures: &Figures, painter: &egui::Painter, hovered: Option<usize>) {
    let (Some(layout), Some(canvas)) = (state.layout(), state.canvas) else { return };
    let zoom = state.zoom;
    let [x0, y0] = state.to_graph(canvas, canvas.min);
    let [x1, y1] = state.to_graph(canvas, canvas.max);
    let view = [x0, y0, x1, y1];
    let screen = |p: [f32; 2]| canvas.min + state.offset + vec2(p[0], p[1]) * zoom;
    let edge_stroke = Stroke::new((1.2 * zoom).clamp(0.6, 2.0), tokens::GRAPH_EDGE);
    for edge in layout.edges.iter().filter(|e| intersects(e.bounds, view)) {
        let points: Vec<Pos2> = edge.points.iter().map(|&p| screen(p)).collect();
        let end = points.last().copied();
        painter.add(Shape::line(points, edge_stroke));
        if zoom >= DETAIL_ZOOM
            && let Some(end) = end
        {
            let s = 4.0 * zoom;
            painter.add(Shape::convex_polygon(
                vec![end, end + vec2(-s, -1.6 * s), end + vec2(s, -1.6 * s)],
                tokens::GRAPH_EDGE,
                Stroke::NONE,
            ));
        }
    }
    let selected_stroke = Stroke::new((2.5 * zoom).clamp(1.5, 4.0), tokens::GRAPH_SELECTED);
    let text_size = 12.0 * zoom;
    for (i, node) in layout.nodes.iter().enumerate() {
        let r = node.rect();
        if !intersects(r, view) {
            continue;
        }
        let rect = Rect::from_min_max(screen([r[0], r[1]]), screen([r[2], r[3]]));
        let fill = figures.fill(state.color_by, node);
        let rounding = if node.kind == NodeKind::Op { 3.0 * zoom } else { rect.height() / 2.0 };
        let name = node.layer.map(|l| ctx.session.summary.as_ref().map_or("", |s| s.layers[l].name.as_str()));
        let selected = name.is_some_and(|n| ctx.selection.selected.contains(n));
        let stroke = if selected {
            selected_stroke
        } else if hovered == Some(i) {
            Stroke::new(1.5, Color32::BLACK)
        } else if zoom >= TEXT_ZOOM / 2.0 {
            Stroke::new(0.5, Color32::from_black_alpha(90))
        } else {
            Stroke::NONE
        };
        painter.rect(rect, rounding, fill, stroke, egui::StrokeKind::Outside);
        if node.layer.is_some() && node.layer == ctx.selection.focus {
            painter.rect_stroke(
                rect.expand(3.0),
                rounding,
                Stroke::new(1.0, tokens::GRAPH_SELECTED),
                egui::StrokeKind::Outside,
            );
        }
        if zoom >= TEXT_ZOOM {
            let color = text_color(fill);
            let detail = zoom >= DETAIL_ZOOM && !node.subtitle.is_empty() && node.kind == NodeKind::Op;
            let title_at = if detail { pos2(rect.center().x, rect.center().y - 6.5 * zoom) } else { rect.center() };
            // Font sizes in steps of a quarter point, so galleys are reused while zooming.
            let size = (text_size * 4.0).round() / 4.0;
            painter.text(title_at, Align2::CENTER_CENTER, &node.title, FontId::proportional(size), color);
            if detail {
                let sub = pos2(rect.center().x, rect.center().y + 7.5 * zoom);
                let size = (10.0 * zoom * 4.0).round() / 4.0;
                painter.text(sub, Align2::CENTER_CENTER, &node.subtitle, FontId::proportional(size), color);
            }
        }
    }
    paint_markers(state, layout, painter, view, &screen);
}

/// Paints the Q/DQ markers: a diamond on the edge just above the reader, or on the box's
/// top-right corner for a tensor quantized inside a collapsed chain; bits next to it when zoomed in.
fn paint_markers(
    state: &GraphState,
    layout: &GraphLayout,
    painter: &egui::Painter,
    view: [f32; 4],
    screen: &dyn Fn([f32; 2]) -> Pos2,
) {
    let zoom = state.zoom;
    let half = (5.0 * zoom).max(1.8);
    let mut on_node = vec![0usize; 0];
    for m in state.markers() {
        let at = match m.place {
            MarkerPlace::Edge(e) => {
                let Some(&[x, y]) = layout.edges[e].points.last() else { continue };
                [x, y - 14.0]
            }
            MarkerPlace::Node(n) => {
                if on_node.is_empty() {
                    on_node = vec![0; layout.nodes.len()];
                }
                let r = layout.nodes[n].rect();
                on_node[n] += 1;
                [r[2] - 12.0 * on_node[n] as f32, r[1]]
            }
        };
        if !intersects([at[0] - 8.0, at[1] - 8.0, at[0] + 8.0, at[1] + 8.0], view) {
            continue;
        }
        let c = screen(at);
        let diamond = vec![c + vec2(0.0, -half), c + vec2(half, 0.0), c + vec2(0.0, half), c + vec2(-half, 0.0)];
        painter.add(Shape::convex_polygon(diamond, tokens::Q_MARKER, Stroke::new(0.5, Color32::BLACK)));
        if zoom >= DETAIL_ZOOM && matches!(m.place, MarkerPlace::Edge(_)) {
            let font = FontId::proportional((9.0 * zoom * 4.0).round() / 4.0);
            painter.text(
                c + vec2(half + 2.0, 0.0),
                Align2::LEFT_CENTER,
                format!("Q{}", m.bits),
                font,
                tokens::Q_MARKER,
            );
        }
    }
}

/// A colour swatch and its label.
fn swatch(ui: &mut egui::Ui, color: Color32, label: &str) {
    let (rect, _) = ui.allocate_exact_size(vec2(12.0, 12.0), Sense::hover());
    ui.painter().rect(rect, 2.0, color, Stroke::new(0.5, Color32::from_black_alpha(90)), egui::StrokeKind::Inside);
    ui.label(label);
}

/// What the colours and markers mean, for the chosen colouring.
fn legend_ui(ctx: &ViewContext, state: &GraphState, figures: &Figures, ui: &mut egui::Ui) {
    ui.horizontal_wrapped(|ui| {
        match state.color_by {
            ColorBy::LocalSqnr | ColorBy::AccumulatedSqnr => {
                let (good, fair) = (tokens::SQNR_GOOD_DB, tokens::SQNR_FAIR_DB);
                swatch(ui, tokens::GOOD, &format!("> {good:.0} dB"));
                swatch(ui, tokens::FAIR, &format!("{fair:.0}–{good:.0} dB"));
                swatch(ui, tokens::BAD, &format!("≤ {fair:.0} dB"));
                swatch(ui, tokens::GRAPH_NO_VALUE, "no result");
                if figures.stale {
                    swatch(ui, tokens::STALE, "earlier configuration");
                }
            }
            ColorBy::Sensitivity => match figures.sensitivity.extremes() {
                Some((lo, hi)) => {
                    swatch(ui, tokens::scale_color(0.0), &format!("most sensitive ({lo})"));
                    swatch(ui, tokens::scale_color(0.5), "");
                    swatch(ui, tokens::scale_color(1.0), &format!("least sensitive ({hi})"));
                    swatch(ui, tokens::GRAPH_NO_VALUE, "not analysed");
                }
                None => {
                    ui.weak("No sensitivity results: run a sensitivity analysis (Sensitivity analysis tab)");
                }
            },
            ColorBy::Quantization => {
                swatch(ui, tokens::GRAPH_QUANTIZED, "quantized");
                swatch(ui, tokens::GRAPH_FLOAT, "float");
                swatch(ui, tokens::GRAPH_EXCLUDED, "kept float (recipe)");
            }
        }
        if state.color_by != ColorBy::Quantization {
            swatch(ui, tokens::GRAPH_OP, "other op");
        }
        ui.separator();
        let target =
            ctx.session.recipe.as_ref().map_or_else(String::new, |r| format!(" of the {} placement", r.target));
        match ctx.session.evaluation.as_ref() {
            Some((_, e)) => {
                // Constants have no edge: they are listed in the hover of the boxes reading them.
                let constants = e.quantized.iter().filter(|q| q.producer.is_none() && q.op_type == "constant").count();
                let constants =
                    if constants > 0 { format!(" ({constants} constants, not marked)") } else { String::new() };
                let text = format!(
                    "Q/DQ{target}: {} quantized tensors{constants}, {} markers",
                    e.quantized.len(),
                    state.markers().len()
                );
                swatch(ui, tokens::Q_MARKER, &text);
            }
            None => swatch(ui, tokens::Q_MARKER, &format!("Q/DQ{target} (after an evaluation)")),
        }
    });
}
