//! Dragging a clip line of the activation histogram: the chosen observer's min and max lines can
//! be grabbed with the mouse; releasing sets the layer's observer to a manual range.

use egui_plot::PlotTransform;

/// How close (points) the pointer must be to a clip line to grab it.
pub const GRAB_DISTANCE: f32 = 6.0;

/// Which end of a clip range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClipEnd {
    /// The lower end.
    Min,
    /// The upper end.
    Max,
}

/// A clip line being dragged.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipDrag {
    /// The layer whose histogram it is.
    pub layer: String,
    /// The end being dragged.
    pub end: ClipEnd,
    /// The range as dragged so far.
    pub range: (f32, f32),
}

/// The histogram's interaction state (runtime only, never persisted).
#[derive(Debug, Clone, Default)]
pub struct ClipLines {
    /// The histogram's screen/plot transform as last drawn, with its layer: whether the pointer
    /// is on a line must be known before the plot is shown (so the plot does not pan).
    pub transform: Option<(String, PlotTransform)>,
    /// The drag in progress.
    pub drag: Option<ClipDrag>,
}

impl ClipLines {
    /// The last transform of `layer`'s histogram.
    pub fn transform_of(&self, layer: &str) -> Option<&PlotTransform> {
        self.transform.as_ref().filter(|(l, _)| l == layer).map(|(_, t)| t)
    }

    /// The drag in progress on `layer`'s histogram.
    pub fn drag_of(&self, layer: &str) -> Option<&ClipDrag> {
        self.drag.as_ref().filter(|d| d.layer == layer)
    }
}

/// The value of one end of a range.
pub fn end_value(range: (f32, f32), end: ClipEnd) -> f32 {
    match end {
        ClipEnd::Min => range.0,
        ClipEnd::Max => range.1,
    }
}

/// The end of `range` whose line is within [`GRAB_DISTANCE`] of `pos` (screen), nearest first;
/// `None` outside the plot.
pub fn line_near(transform: &PlotTransform, range: (f32, f32), pos: egui::Pos2) -> Option<ClipEnd> {
    if !transform.frame().contains(pos) {
        return None;
    }
    [ClipEnd::Min, ClipEnd::Max]
        .into_iter()
        .map(|end| (end, (transform.position_from_point_x(f64::from(end_value(range, end))) - pos.x).abs()))
        .filter(|(_, d)| *d <= GRAB_DISTANCE)
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(end, _)| end)
}

/// `range` with `end` moved to `value`, kept finite and ordered (min strictly below max).
pub fn moved(range: (f32, f32), end: ClipEnd, value: f32) -> (f32, f32) {
    if !value.is_finite() {
        return range;
    }
    match end {
        ClipEnd::Min => (value.min(range.1.next_down()), range.1),
        ClipEnd::Max => (range.0, value.max(range.0.next_up())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moving_an_end_keeps_the_range_ordered() {
        assert_eq!(moved((-1.0, 2.0), ClipEnd::Max, 5.0), (-1.0, 5.0));
        assert_eq!(moved((-1.0, 2.0), ClipEnd::Min, -3.0), (-3.0, 2.0));
        let (lo, hi) = moved((-1.0, 2.0), ClipEnd::Min, 7.0);
        assert!(lo < hi && hi == 2.0, "({lo}, {hi})");
        let (lo, hi) = moved((-1.0, 2.0), ClipEnd::Max, -9.0);
        assert!(lo < hi && lo == -1.0, "({lo}, {hi})");
        assert_eq!(moved((-1.0, 2.0), ClipEnd::Max, f32::NAN), (-1.0, 2.0));
    }

    #[test]
    fn a_line_is_grabbed_only_near_it_inside_the_plot() {
        let frame = egui::Rect::from_min_size(egui::pos2(100.0, 0.0), egui::vec2(200.0, 100.0));
        let bounds = egui_plot::PlotBounds::from_min_max([0.0, 0.0], [10.0, 1.0]);
        let t = PlotTransform::new(frame, bounds, egui::Vec2b::new(false, false));
        // x = 2 at 140, x = 8 at 260.
        assert_eq!(line_near(&t, (2.0, 8.0), egui::pos2(143.0, 50.0)), Some(ClipEnd::Min));
        assert_eq!(line_near(&t, (2.0, 8.0), egui::pos2(258.0, 50.0)), Some(ClipEnd::Max));
        assert_eq!(line_near(&t, (2.0, 8.0), egui::pos2(200.0, 50.0)), None);
        assert_eq!(line_near(&t, (2.0, 8.0), egui::pos2(140.0, 150.0)), None, "below the plot");
    }
}
