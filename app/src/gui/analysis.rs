//! Sensitivity and mixed-precision state: what the user asked for, what the worker streamed back,
//! the actions that start, apply and save them, and the CSV of every analysis view.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;

use quantbench_core::analysis::{LayerSensitivity, MixedPrecision, SensitivityMetric, Target};
use quantbench_core::model::ModelSummary;
use quantbench_core::worker::{Command, Event, JobId};

use super::actions::{Action, FilePurpose};
use super::app::{WorkbenchApp, file_name, sanitize};

/// SQNR drawn for exact (infinite SQNR) results.
pub const EXACT_DB: f64 = 100.0;
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

/// A view that can be saved as CSV or PNG.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SavedView {
    /// The sensitivity bar chart (every measure of every layer).
    SensitivityBars,
    /// The bit-sweep heat map.
    SweepHeatmap,
    /// The mixed-precision search path and Pareto front.
    ParetoFront,
}

impl SavedView {
    /// Default file stem.
    pub fn stem(self) -> &'static str {
        match self {
            Self::SensitivityBars => "sensitivity",
            Self::SweepHeatmap => "bit_sweep",
            Self::ParetoFront => "pareto_front",
        }
    }
}

/// File format of a saved view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewFormat {
    /// The data, one row per layer (or path point).
    Csv,
    /// The view's pixels.
    Png,
}

impl ViewFormat {
    /// File extension.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Png => "png",
        }
    }
}

/// The save window: which view, in which format, to which path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaveDialog {
    /// The view.
    pub view: SavedView,
    /// CSV or PNG.
    pub format: ViewFormat,
    /// Where (typed, or chosen with Browse).
    pub path: String,
}

/// How a run ended when it did not finish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEnd {
    /// Still running (or finished: see the run's revision).
    Open,
    /// Cancelled by the user.
    Cancelled,
    /// Failed; the message is in the error list too.
    Failed(String),
}

/// One sensitivity run: streamed layers while it runs, all of them once finished.
#[derive(Debug, Clone, PartialEq)]
pub struct SensitivityRun {
    /// The metric measured.
    pub metric: SensitivityMetric,
    /// The sweep's bit widths (sorted).
    pub bits: Vec<u8>,
    /// Layers the run covers (known from the first streamed layer; the model's count before).
    pub total: usize,
    /// Results so far, network order.
    pub layers: Vec<LayerSensitivity>,
    /// The recipe revision analysed, once finished.
    pub revision: Option<u64>,
    /// How it ended, when it did not finish.
    pub end: RunEnd,
}

/// A finished mixed-precision search.
#[derive(Debug, Clone, PartialEq)]
pub struct MixedRun {
    /// The recipe revision searched from.
    pub revision: u64,
    /// The target asked for.
    pub target: Target,
    /// Path, Pareto flags and chosen point.
    pub result: MixedPrecision,
    /// The point last applied to the recipe.
    pub applied: Option<usize>,
}

/// State of the sensitivity and mixed-precision views.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalysisState {
    /// Metric of the next sensitivity run.
    pub metric: SensitivityMetric,
    /// Sweep bits of the next run.
    pub sweep_bits: BTreeSet<u8>,
    /// What the bar chart shows.
    pub measure: Measure,
    /// Bar order.
    pub order: BarOrder,
    /// The sensitivity job running.
    pub sensitivity_job: Option<JobId>,
    /// The current (or last) sensitivity run.
    pub sensitivity: Option<SensitivityRun>,
    /// Target kind of the next search.
    pub target_kind: TargetKind,
    /// Accuracy drop target, points.
    pub drop_points: f64,
    /// Size target in `size_unit`s.
    pub size_value: f64,
    /// Unit of `size_value`.
    pub size_unit: SizeUnit,
    /// The search job running.
    pub mixed_job: Option<JobId>,
    /// The last finished search.
    pub mixed: Option<MixedRun>,
    /// The last failure or cancellation of a search.
    pub mixed_end: RunEnd,
    /// The save window, when open.
    pub save: Option<SaveDialog>,
}

impl Default for AnalysisState {
    fn default() -> Self {
        Self {
            metric: SensitivityMetric::Accuracy,
            sweep_bits: [2, 4, 8].into(),
            measure: Measure::EnableOne,
            order: BarOrder::Sensitivity,
            sensitivity_job: None,
            sensitivity: None,
            target_kind: TargetKind::AccuracyDrop,
            drop_points: 1.0,
            size_value: 16.0,
            size_unit: SizeUnit::Kilobytes,
            mixed_job: None,
            mixed: None,
            mixed_end: RunEnd::Open,
            save: None,
        }
    }
}

impl AnalysisState {
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

    /// A path chosen with the save window's Browse button.
    pub fn chose_save_path(&mut self, view: SavedView, format: ViewFormat, path: &std::path::Path) {
        if let Some(d) = self.save.as_mut().filter(|d| d.view == view && d.format == format) {
            d.path = path.to_string_lossy().into_owned();
        }
    }

    /// Forgets every result (a new model or evaluation set was loaded); running jobs end on their
    /// own (as superseded).
    pub fn clear_results(&mut self) {
        self.sensitivity = None;
        self.mixed = None;
        self.mixed_end = RunEnd::Open;
    }

    /// Takes in an analysis event; returns whether it was one.
    pub fn on_event(&mut self, event: &Event) -> bool {
        match event {
            Event::SensitivityLayer { job, total, result, .. } => {
                if self.sensitivity_job == Some(*job)
                    && let Some(run) = &mut self.sensitivity
                {
                    run.total = *total;
                    run.layers.push((**result).clone());
                }
            }
            Event::SensitivityAnalyzed { job, revision, metric, bits, layers } => {
                if self.sensitivity_job == Some(*job) {
                    self.sensitivity_job = None;
                    self.sensitivity = Some(SensitivityRun {
                        metric: *metric,
                        bits: bits.clone(),
                        total: layers.len(),
                        layers: layers.clone(),
                        revision: Some(*revision),
                        end: RunEnd::Open,
                    });
                }
            }
            Event::MixedPrecisionFound { job, revision, target, result } => {
                if self.mixed_job == Some(*job) {
                    self.mixed_job = None;
                    self.mixed_end = RunEnd::Open;
                    self.mixed = Some(MixedRun {
                        revision: *revision,
                        target: *target,
                        result: (**result).clone(),
                        applied: None,
                    });
                }
            }
            _ => return false,
        }
        true
    }

    /// A job ended without its result (failed, cancelled or superseded).
    pub fn job_ended(&mut self, job: JobId, end: &RunEnd) {
        if self.sensitivity_job == Some(job) {
            self.sensitivity_job = None;
            if let Some(run) = &mut self.sensitivity {
                run.end = end.clone();
            }
        }
        if self.mixed_job == Some(job) {
            self.mixed_job = None;
            self.mixed_end = end.clone();
        }
    }
}

/// The metric's name for labels.
pub fn metric_name(metric: SensitivityMetric) -> &'static str {
    match metric {
        SensitivityMetric::Accuracy => "accuracy",
        SensitivityMetric::Top1Agreement => "top-1 agreement",
        SensitivityMetric::OutputSqnr => "output SQNR",
    }
}

/// The axis label of a metric.
pub fn metric_axis(metric: SensitivityMetric) -> &'static str {
    match metric {
        SensitivityMetric::Accuracy => "accuracy (%)",
        SensitivityMetric::Top1Agreement => "top-1 agreement (%)",
        SensitivityMetric::OutputSqnr => "output SQNR (dB)",
    }
}

/// A raw metric on the display scale: percent for accuracy and agreement, dB (exact results
/// drawn at [`EXACT_DB`]) for SQNR.
pub fn display_value(metric: SensitivityMetric, v: f64) -> f64 {
    match metric {
        SensitivityMetric::Accuracy | SensitivityMetric::Top1Agreement => 100.0 * v,
        SensitivityMetric::OutputSqnr if v.is_nan() => 0.0,
        SensitivityMetric::OutputSqnr => v.clamp(-EXACT_DB, EXACT_DB),
    }
}

/// A raw metric as text with its unit.
pub fn metric_text(metric: SensitivityMetric, v: f64) -> String {
    match metric {
        SensitivityMetric::Accuracy | SensitivityMetric::Top1Agreement => format!("{:.2} %", 100.0 * v),
        SensitivityMetric::OutputSqnr if v.is_infinite() && v > 0.0 => "exact".into(),
        SensitivityMetric::OutputSqnr => format!("{v:.1} dB"),
    }
}

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

/// A CSV field, quoted when it holds a comma, quote or line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

/// CSV of a sensitivity run: one row per layer, network order.
pub fn sensitivity_csv(run: &SensitivityRun, summary: Option<&ModelSummary>) -> String {
    let mut out = String::from("index,layer,op,metric,enable_one,disable_one,weights_only,activations_only\n");
    let metric = serde_json::to_value(run.metric).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
    for (i, l) in run.layers.iter().enumerate() {
        let op = summary.and_then(|s| s.layer(&l.name)).map_or("", |s| s.op_type.as_str());
        let _ = writeln!(
            out,
            "{i},{},{},{metric},{},{},{},{}",
            csv_field(&l.name),
            csv_field(op),
            l.enable_one,
            l.disable_one,
            l.weights_only,
            l.activations_only
        );
    }
    out
}

/// CSV of the bit sweep: one row per layer, a weights and an activations column per bit width.
pub fn sweep_csv(run: &SensitivityRun) -> String {
    let mut out = String::from("layer");
    for b in &run.bits {
        let _ = write!(out, ",w{b}");
    }
    for b in &run.bits {
        let _ = write!(out, ",a{b}");
    }
    out.push('\n');
    for l in &run.layers {
        out.push_str(&csv_field(&l.name));
        for b in &run.bits {
            let v = l.sweep.iter().find(|p| p.bits == *b).map_or(f64::NAN, |p| p.weights);
            let _ = write!(out, ",{v}");
        }
        for b in &run.bits {
            let v = l.sweep.iter().find(|p| p.bits == *b).map_or(f64::NAN, |p| p.activations);
            let _ = write!(out, ",{v}");
        }
        out.push('\n');
    }
    out
}

/// CSV of a mixed-precision search: one row per path point, with each layer's weight bits.
pub fn pareto_csv(run: &MixedRun) -> String {
    let mut out = String::from("point,size_bytes,accuracy,top1_agreement,output_sqnr_db,pareto,chosen");
    let layers: Vec<&str> =
        run.result.path.first().map(|p| p.bits.iter().map(|(l, _)| l.as_str()).collect()).unwrap_or_default();
    for l in &layers {
        let _ = write!(out, ",{}", csv_field(&format!("w_bits:{l}")));
    }
    out.push('\n');
    for (i, p) in run.result.path.iter().enumerate() {
        let accuracy = p.accuracy.map(|a| a.to_string()).unwrap_or_default();
        let chosen = run.result.chosen == Some(i);
        let _ = write!(
            out,
            "{i},{},{accuracy},{},{},{},{chosen}",
            p.size_bytes, p.top1_agreement, p.output_sqnr_db, p.pareto
        );
        for (_, b) in &p.bits {
            let _ = write!(out, ",{b}");
        }
        out.push('\n');
    }
    out
}

impl WorkbenchApp {
    /// Whether the analyses can run: a calibrated recipe and an evaluation set.
    pub fn calibrated_with_evaluation_set(&self) -> bool {
        self.calibrated() && self.session.evaluation_set.is_some()
    }

    /// Applies an analysis action (run, apply a point, save a view).
    pub(super) fn apply_analysis(&mut self, action: Action, ctx: &egui::Context) {
        match action {
            Action::RunSensitivity { metric, bits } => {
                let Some(job) = self.send(Command::AnalyzeSensitivity { metric, bits: bits.clone() }) else { return };
                self.track(job, "Sensitivity");
                let total = self.session.summary.as_ref().map_or(0, |s| s.layers.len());
                self.analysis.sensitivity_job = Some(job);
                self.analysis.sensitivity =
                    Some(SensitivityRun { metric, bits, total, layers: Vec::new(), revision: None, end: RunEnd::Open });
            }
            Action::RunMixedPrecision(target) => {
                let Some(job) = self.send(Command::MixedPrecision { target }) else { return };
                self.track(job, "Mixed precision");
                self.analysis.mixed_job = Some(job);
                self.analysis.mixed_end = RunEnd::Open;
            }
            Action::ApplyPathPoint(i) => self.apply_path_point(i),
            Action::SaveView(view, format, None) => {
                let dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
                let model = self.session.summary.as_ref().map_or_else(|| "model".to_string(), |s| sanitize(&s.name));
                let name = format!("{model}_{}.{}", view.stem(), format.extension());
                let path = dir.join(name).to_string_lossy().into_owned();
                self.analysis.save = Some(SaveDialog { view, format, path });
            }
            Action::BrowseSavePath(view, format) => self.spawn_file_dialog(FilePurpose::SaveView(view, format)),
            Action::SaveView(view, format, Some(path)) => self.save_view(view, format, path, ctx),
            _ => {}
        }
    }

    /// Makes path point `i` of the last search the recipe: the current recipe with the point's
    /// weight bits, sent to the worker like any recipe change.
    fn apply_path_point(&mut self, i: usize) {
        let (Some(run), Some(recipe)) = (&mut self.analysis.mixed, &self.session.recipe) else { return };
        if i >= run.result.path.len() {
            return;
        }
        let recipe = run.result.recipe_of(recipe, i);
        run.applied = Some(i);
        self.set_recipe_locally(&recipe);
        if let Some(job) = self.send(Command::SetRecipe { recipe, calibration: None }) {
            self.unacknowledged_changes.insert(job);
        }
        self.notes.push(format!("applied mixed-precision point #{i}"));
    }

    fn save_view(&mut self, view: SavedView, format: ViewFormat, path: PathBuf, ctx: &egui::Context) {
        if format == ViewFormat::Png {
            if let Err(e) = self.saver.save_png(ctx, view, path) {
                self.errors.push(e);
            }
            return;
        }
        let csv = match view {
            SavedView::SensitivityBars => {
                self.analysis.sensitivity.as_ref().map(|r| sensitivity_csv(r, self.session.summary.as_ref()))
            }
            SavedView::SweepHeatmap => self.analysis.sensitivity.as_ref().map(sweep_csv),
            SavedView::ParetoFront => self.analysis.mixed.as_ref().map(pareto_csv),
        };
        match csv {
            Some(csv) => self.saver.save_bytes(ctx, path, csv.into_bytes()),
            None => self.errors.push(format!("nothing to save yet: {}", file_name(&path))),
        }
    }

    /// Reports finished saves as notes or errors.
    pub(super) fn drain_saves(&mut self) {
        for result in self.saver.drain() {
            match result {
                Ok(path) => self.notes.push(format!("saved {}", path.display())),
                Err(e) => self.errors.push(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use quantbench_core::analysis::{PathPoint, SweepPoint};

    use super::*;

    fn layer(name: &str, enable_one: f64, disable_one: f64) -> LayerSensitivity {
        LayerSensitivity {
            name: name.into(),
            enable_one,
            disable_one,
            weights_only: enable_one,
            activations_only: 1.0,
            sweep: vec![
                SweepPoint { bits: 2, weights: 0.5, activations: 0.75 },
                SweepPoint { bits: 8, weights: 0.98, activations: 0.99 },
            ],
        }
    }

    fn run() -> SensitivityRun {
        SensitivityRun {
            metric: SensitivityMetric::Accuracy,
            bits: vec![2, 8],
            total: 3,
            layers: vec![layer("a", 0.9, 0.5), layer("b,\"x\"", 0.7, 0.6), layer("c", 0.8, 0.4)],
            revision: Some(3),
            end: RunEnd::Open,
        }
    }

    #[test]
    fn bars_sort_most_sensitive_first_per_measure() {
        let r = run();
        assert_eq!(bar_order(&r.layers, Measure::EnableOne, BarOrder::Sensitivity), vec![1, 2, 0]);
        assert_eq!(bar_order(&r.layers, Measure::DisableOne, BarOrder::Sensitivity), vec![1, 0, 2]);
        assert_eq!(bar_order(&r.layers, Measure::DisableOne, BarOrder::Network), vec![0, 1, 2]);
    }

    #[test]
    fn csv_has_one_row_per_layer_and_quotes_names() {
        let csv = sensitivity_csv(&run(), None);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 4, "{csv}");
        assert_eq!(lines[0], "index,layer,op,metric,enable_one,disable_one,weights_only,activations_only");
        assert_eq!(lines[1], "0,a,,accuracy,0.9,0.5,0.9,1");
        assert_eq!(lines[2], "1,\"b,\"\"x\"\"\",,accuracy,0.7,0.6,0.7,1");
        let sweep = sweep_csv(&run());
        assert_eq!(sweep.lines().next(), Some("layer,w2,w8,a2,a8"));
        assert_eq!(sweep.lines().nth(3), Some("c,0.5,0.98,0.75,0.99"));
    }

    #[test]
    fn pareto_csv_marks_chosen_and_front() {
        let point = |bits: u8, size_bytes, acc| PathPoint {
            bits: vec![("fc1".into(), bits), ("fc2".into(), 8)],
            size_bytes,
            accuracy: Some(acc),
            top1_agreement: 1.0,
            output_sqnr_db: 30.0,
            pareto: true,
        };
        let m = MixedRun {
            revision: 1,
            target: Target::AccuracyDrop(1.0),
            result: MixedPrecision {
                path: vec![point(8, 100, 0.99), point(4, 80, 0.98)],
                chosen: Some(1),
                float_metric: 0.99,
            },
            applied: None,
        };
        let csv = pareto_csv(&m);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "point,size_bytes,accuracy,top1_agreement,output_sqnr_db,pareto,chosen,w_bits:fc1,w_bits:fc2"
        );
        assert_eq!(lines[2], "1,80,0.98,1,30,true,true,4,8");
        assert_eq!(lines.len(), 3);
    }

    #[test]
    fn targets_and_values_convert() {
        let mut s = AnalysisState { target_kind: TargetKind::Size, size_value: 12.5, ..AnalysisState::default() };
        assert_eq!(s.target(), Target::SizeBytes(12_500));
        s.size_unit = SizeUnit::Bytes;
        assert_eq!(s.target(), Target::SizeBytes(13));
        s.target_kind = TargetKind::AccuracyDrop;
        assert_eq!(s.target(), Target::AccuracyDrop(1.0));
        assert_eq!(metric_text(SensitivityMetric::OutputSqnr, f64::INFINITY), "exact");
        assert_eq!(display_value(SensitivityMetric::OutputSqnr, f64::INFINITY), EXACT_DB);
        assert_eq!(metric_text(SensitivityMetric::Top1Agreement, 0.5), "50.00 %");
    }

    #[test]
    fn streamed_layers_fill_the_run_and_an_end_is_kept() {
        let mut s = AnalysisState { sensitivity_job: Some(JobId(4)), ..AnalysisState::default() };
        s.sensitivity = Some(SensitivityRun { layers: Vec::new(), revision: None, ..run() });
        let streamed =
            Event::SensitivityLayer { job: JobId(4), index: 0, total: 3, result: Box::new(layer("a", 1.0, 1.0)) };
        assert!(s.on_event(&streamed));
        let other =
            Event::SensitivityLayer { job: JobId(9), index: 0, total: 3, result: Box::new(layer("z", 1.0, 1.0)) };
        assert!(s.on_event(&other));
        assert_eq!(s.sensitivity.as_ref().map(|r| r.layers.len()), Some(1), "only the running job's layers");
        s.job_ended(JobId(4), &RunEnd::Cancelled);
        assert_eq!(s.sensitivity_job, None);
        assert_eq!(s.sensitivity.as_ref().map(|r| r.end.clone()), Some(RunEnd::Cancelled));
        assert!(!s.on_event(&Event::Cancelled { job: JobId(4) }));
    }
}
