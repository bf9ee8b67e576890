//! The mixed-precision view: a target (accuracy drop in points or size in bytes/KB), run/cancel
//! with progress, the search path as a size-vs-metric scatter with its Pareto front and the
//! chosen point highlighted; clicking a point (or its Apply button) applies it to the recipe.

use egui_plot::{Corner, HLine, Legend, Line, MarkerShape, Plot, PlotPoint, Points, VLine};
use quantbench_core::analysis::{PathPoint, Target};

use super::actions::{Action, SavedView};
use super::analysis::{MixedRun, RunEnd};
use super::context::ViewContext;
use super::tokens;

/// How the mixed-precision target is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// Accuracy (or top-1 agreement without labels) drop in points.
    AccuracyDrop,
    /// Quantized size.
    Size,
}

/// Unit of the size target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeUnit {
    /// Bytes.
    Bytes,
    /// Kilobytes (1000 bytes).
    Kilobytes,
}

/// The view's state: the next search's target, and where the front was last drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct ParetoState {
    /// Target kind of the next search.
    pub target_kind: TargetKind,
    /// Accuracy drop target, points.
    pub drop_points: f64,
    /// Size target in `size_unit`s.
    pub size_value: f64,
    /// Unit of `size_value`.
    pub size_unit: SizeUnit,
    /// Where the front was last drawn (for PNG saves).
    pub rect: Option<egui::Rect>,
}

impl Default for ParetoState {
    fn default() -> Self {
        Self {
            target_kind: TargetKind::AccuracyDrop,
            drop_points: 1.0,
            size_value: 16.0,
            size_unit: SizeUnit::Kilobytes,
            rect: None,
        }
    }
}

impl ParetoState {
    /// The target the controls describe.
    pub fn target(&self) -> Target {
        match self.target_kind {
            TargetKind::AccuracyDrop => Target::AccuracyDrop(self.drop_points),
            TargetKind::Size => {
                let bytes = match self.size_unit {
                    SizeUnit::Bytes => self.size_value,
                    SizeUnit::Kilobytes => self.size_value * 1000.0,
                };
                Target::SizeBytes(bytes.round().max(0.0) as u64)
            }
        }
    }
}

/// The metric the search measures a point by (accuracy, or top-1 agreement without labels).
fn point_metric(p: &PathPoint) -> f64 {
    p.accuracy.unwrap_or(p.top1_agreement)
}

/// The name of that metric.
fn metric_label(run: &MixedRun) -> &'static str {
    if run.result.path.first().is_some_and(|p| p.accuracy.is_some()) { "accuracy" } else { "top-1 agreement" }
}

/// A target as text.
pub fn target_text(target: Target) -> String {
    match target {
        Target::AccuracyDrop(points) => format!("drop of at most {points:.2} points"),
        Target::SizeBytes(bytes) => format!("at most {bytes} bytes"),
    }
}

/// A layer-bits summary such as `W[6,4,8]`.
fn bits_text(p: &PathPoint) -> String {
    let bits: Vec<String> = p.bits.iter().map(|(_, b)| b.to_string()).collect();
    format!("W[{}]", bits.join(","))
}

/// The index of the point nearest `pos` among `points` (screen positions), if within `max`.
pub fn nearest(points: &[(usize, egui::Pos2)], pos: egui::Pos2, max: f32) -> Option<usize> {
    points
        .iter()
        .map(|(i, p)| (*i, p.distance(pos)))
        .filter(|(_, d)| *d <= max)
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i)
}

/// Draws the view.
pub fn mixed_precision_ui(ctx: &ViewContext, state: &mut ParetoState, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
    controls_ui(ctx, state, ui, actions);
    ui.separator();
    let Some(run) = &ctx.analysis.mixed else {
        ui.weak("No search yet: set a target and run it (it needs a calibration and an evaluation set).");
        return;
    };
    egui::ScrollArea::vertical().auto_shrink(false).show(ui, |ui| {
        let rect = ui.scope(|ui| front_ui(ctx, run, ui, actions)).response.rect.intersect(ui.clip_rect());
        state.rect = Some(rect);
    });
}

fn controls_ui(ctx: &ViewContext, s: &mut ParetoState, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
    let ready = ctx.calibrated_with_evaluation_set();
    let progress = ctx.analysis.mixed_job.and_then(|j| ctx.jobs.get(&j));
    ui.horizontal_wrapped(|ui| {
        ui.label("Target:");
        ui.radio_value(&mut s.target_kind, TargetKind::AccuracyDrop, "accuracy drop");
        ui.add_enabled(
            s.target_kind == TargetKind::AccuracyDrop,
            egui::DragValue::new(&mut s.drop_points).range(0.0..=100.0).speed(0.05).suffix(" points"),
        );
        ui.radio_value(&mut s.target_kind, TargetKind::Size, "size");
        let size_enabled = s.target_kind == TargetKind::Size;
        ui.add_enabled(size_enabled, egui::DragValue::new(&mut s.size_value).range(0.0..=1e12).speed(0.1));
        ui.add_enabled_ui(size_enabled, |ui| {
            egui::ComboBox::from_id_salt("size unit")
                .width(48.0)
                .selected_text(if s.size_unit == SizeUnit::Bytes { "B" } else { "KB" })
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut s.size_unit, SizeUnit::Bytes, "B");
                    ui.selectable_value(&mut s.size_unit, SizeUnit::Kilobytes, "KB");
                });
        });
        ui.separator();
        if let Some(job) = ctx.analysis.mixed_job {
            if ui.button("Cancel search").clicked() {
                actions.push(Action::Cancel(job));
            }
            if let Some(p) = progress {
                let fraction = if p.total > 0 { p.done as f32 / p.total as f32 } else { 0.0 };
                let text = if p.stage.is_empty() {
                    "starting".to_string()
                } else {
                    format!("{} {}/{}", p.stage, p.done, p.total)
                };
                ui.add(egui::ProgressBar::new(fraction).desired_width(220.0).text(text));
            }
        } else {
            let run = ui
                .add_enabled(ready, egui::Button::new("Run search"))
                .on_hover_text("Greedy per-layer weight bits (8, 6, 4, 3, 2), every step measured")
                .on_disabled_hover_text("Needs a calibration and an evaluation set");
            if run.clicked() {
                actions.push(Action::RunMixedPrecision(s.target()));
            }
        }
    });
    match &ctx.analysis.mixed_end {
        RunEnd::Cancelled => {
            ui.weak("The last search was cancelled.");
        }
        RunEnd::Failed(e) => {
            ui.colored_label(ui.visuals().error_fg_color, format!("The last search failed: {e}"));
        }
        RunEnd::Open => {}
    }
}

/// Summary, scatter and the Pareto points with Apply buttons.
fn front_ui(ctx: &ViewContext, run: &MixedRun, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
    let path = &run.result.path;
    let label = metric_label(run);
    ui.horizontal_wrapped(|ui| {
        ui.strong("Search path and Pareto front");
        ui.separator();
        ui.label(format!(
            "{} configurations, {} on the front; target: {}",
            path.len(),
            path.iter().filter(|p| p.pareto).count(),
            target_text(run.target)
        ));
        ui.separator();
        super::view_export::save_buttons(ui, SavedView::ParetoFront, "Front", actions);
    });
    match run.result.chosen.and_then(|i| path.get(i).map(|p| (i, p))) {
        Some((i, p)) => {
            ui.colored_label(
                tokens::CHOSEN,
                format!(
                    "Chosen: #{i}, {} bytes, {label} {:.2} %, {}",
                    p.size_bytes,
                    100.0 * point_metric(p),
                    bits_text(p)
                ),
            );
        }
        None => {
            ui.colored_label(ui.visuals().error_fg_color, "No configuration on the path meets the target");
        }
    }
    // Applying a point changes the revision by design; other changes make the path stale.
    if run.applied.is_none() && run.revision != ctx.session.revision {
        ui.colored_label(
            tokens::STALE,
            format!("Searched from revision {}; the configuration changed since", run.revision),
        );
    }
    scatter_ui(run, label, ui, actions);
    ui.weak("Click a point to apply its weight bits to the layer table (the recipe is re-evaluated).");
    ui.add_space(tokens::SECTION_SPACE);
    points_table_ui(run, label, ui, actions);
}

/// The size-vs-metric scatter: every path point, the front, the chosen and applied points;
/// a click near a point applies it.
fn scatter_ui(run: &MixedRun, label: &str, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
    let path = &run.result.path;
    let xy = |p: &PathPoint| [p.size_bytes as f64 / 1000.0, 100.0 * point_metric(p)];
    // Points measured on the subset only (a long path's estimates) are drawn hollow.
    let full = path.iter().map(|p| p.samples).max().unwrap_or(0);
    let off: Vec<[f64; 2]> = path.iter().filter(|p| !p.pareto && p.samples == full).map(xy).collect();
    let estimates: Vec<[f64; 2]> = path.iter().filter(|p| p.samples < full).map(xy).collect();
    let estimate_samples = path.iter().map(|p| p.samples).min().unwrap_or(0);
    let mut front: Vec<[f64; 2]> = path.iter().filter(|p| p.pareto).map(xy).collect();
    front.sort_by(|a, b| a[0].total_cmp(&b[0]));
    let highlight = |i: Option<usize>| i.and_then(|i| path.get(i)).map(xy);
    let (chosen, applied) = (highlight(run.result.chosen), highlight(run.applied));
    let (target_size, target_metric) = match run.target {
        Target::SizeBytes(b) => (Some(b as f64 / 1000.0), None),
        Target::AccuracyDrop(points) => (None, Some(100.0 * run.result.float_metric - points)),
    };
    let response = Plot::new("pareto front")
        .height(tokens::ANALYSIS_PLOT_HEIGHT)
        .legend(Legend::default().position(Corner::RightBottom))
        .x_axis_label("quantized size (KB)")
        .y_axis_label(format!("{label} (%)"))
        .allow_scroll(false)
        .allow_double_click_reset(true)
        .show(ui, |plot| {
            plot.points(
                Points::new("other configurations", off).color(tokens::PATH_POINT).radius(tokens::POINT_RADIUS),
            );
            if !estimates.is_empty() {
                plot.points(
                    Points::new(format!("estimates on {estimate_samples} samples"), estimates)
                        .color(tokens::PATH_POINT)
                        .filled(false)
                        .radius(tokens::POINT_RADIUS),
                );
            }
            plot.line(Line::new("Pareto front", front.clone()).color(tokens::PARETO));
            plot.points(
                Points::new("Pareto points", front)
                    .color(tokens::PARETO)
                    .radius(tokens::POINT_RADIUS + 1.0)
                    .shape(MarkerShape::Circle)
                    .filled(true),
            );
            if let Some(c) = chosen {
                let ring = Points::new("chosen", vec![c]).color(tokens::CHOSEN).filled(false);
                plot.points(ring.radius(tokens::HIGHLIGHT_RADIUS));
            }
            if let Some(a) = applied {
                let ring =
                    Points::new("applied", vec![a]).color(tokens::APPLIED).shape(MarkerShape::Square).filled(false);
                plot.points(ring.radius(tokens::HIGHLIGHT_RADIUS + 2.0));
            }
            if let Some(x) = target_size {
                plot.vline(VLine::new("size target", x).color(tokens::CHOSEN).width(1.0));
            }
            if let Some(y) = target_metric {
                plot.hline(HLine::new("accuracy target", y).color(tokens::CHOSEN).width(1.0));
            }
        });
    if response.response.clicked()
        && let Some(pos) = response.response.interact_pointer_pos()
    {
        let screen: Vec<(usize, egui::Pos2)> = path
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let [x, y] = xy(p);
                (i, response.transform.position_from_point(&PlotPoint::new(x, y)))
            })
            .collect();
        if let Some(i) = nearest(&screen, pos, tokens::PICK_DISTANCE) {
            actions.push(Action::ApplyPathPoint(i));
        }
    }
}

/// The Pareto points, each with an Apply button.
fn points_table_ui(run: &MixedRun, label: &str, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
    egui::Grid::new("pareto points").striped(true).num_columns(6).show(ui, |ui| {
        for h in ["point", "size (bytes)", label, "output SQNR", "weight bits", ""] {
            ui.strong(h);
        }
        ui.end_row();
        for (i, p) in run.result.path.iter().enumerate().filter(|(_, p)| p.pareto) {
            let mut tag = format!("#{i}");
            if run.result.chosen == Some(i) {
                tag.push_str(" chosen");
            }
            if run.applied == Some(i) {
                tag.push_str(" applied");
            }
            ui.label(tag);
            ui.label(p.size_bytes.to_string());
            ui.label(format!("{:.2} %", 100.0 * point_metric(p)));
            ui.label(format!("{:.1} dB", p.output_sqnr_db));
            ui.label(bits_text(p));
            if ui.small_button(format!("Apply #{i}")).on_hover_text("Apply these weight bits to the recipe").clicked() {
                actions.push(Action::ApplyPathPoint(i));
            }
            ui.end_row();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_click_picks_the_nearest_point_within_reach() {
        let pts = [(0, egui::pos2(10.0, 10.0)), (3, egui::pos2(20.0, 10.0)), (5, egui::pos2(100.0, 100.0))];
        assert_eq!(nearest(&pts, egui::pos2(16.0, 11.0), 12.0), Some(3));
        assert_eq!(nearest(&pts, egui::pos2(11.0, 10.0), 12.0), Some(0));
        assert_eq!(nearest(&pts, egui::pos2(60.0, 60.0), 12.0), None);
        assert_eq!(nearest(&[], egui::pos2(0.0, 0.0), 12.0), None);
    }

    #[test]
    fn targets_convert() {
        let mut s = ParetoState { target_kind: TargetKind::Size, size_value: 12.5, ..ParetoState::default() };
        assert_eq!(s.target(), Target::SizeBytes(12_500));
        s.size_unit = SizeUnit::Bytes;
        assert_eq!(s.target(), Target::SizeBytes(13));
        s.target_kind = TargetKind::AccuracyDrop;
        assert_eq!(s.target(), Target::AccuracyDrop(1.0));
    }

    #[test]
    fn texts() {
        assert_eq!(target_text(Target::SizeBytes(1200)), "at most 1200 bytes");
        assert_eq!(target_text(Target::AccuracyDrop(0.5)), "drop of at most 0.50 points");
        let p = PathPoint {
            bits: vec![("a".into(), 6), ("b".into(), 4)],
            size_bytes: 1,
            accuracy: None,
            top1_agreement: 0.5,
            output_sqnr_db: 1.0,
            pareto: true,
            samples: 100,
        };
        assert_eq!(bits_text(&p), "W[6,4]");
        assert_eq!(point_metric(&p), 0.5);
    }
}
