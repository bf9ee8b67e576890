//! Sensitivity and mixed-precision results: what the worker streamed back for the runs the user
//! started, and how their metrics are named and shown. The controls that start a run are the
//! views' state (`sensitivity.rs`, `pareto.rs`); the controller applies the actions.

use quantbench_core::analysis::{LayerSensitivity, MixedPrecision, SensitivityMetric, Target};
use quantbench_core::worker::{Event, JobId};

/// SQNR drawn for exact (infinite SQNR) results.
pub const EXACT_DB: f64 = 100.0;

/// How a run ended when it did not finish.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RunEnd {
    /// Still running (or finished: see the run's revision).
    #[default]
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

/// The analysis runs: the jobs running and the results of the last ones.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AnalysisResults {
    /// The sensitivity job running.
    pub sensitivity_job: Option<JobId>,
    /// The current (or last) sensitivity run.
    pub sensitivity: Option<SensitivityRun>,
    /// The search job running.
    pub mixed_job: Option<JobId>,
    /// The last finished search.
    pub mixed: Option<MixedRun>,
    /// The last failure or cancellation of a search.
    pub mixed_end: RunEnd,
}

impl AnalysisResults {
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
                    // A refined result (the whole set) replaces the layer's estimate.
                    match run.layers.iter_mut().find(|l| l.name == result.name) {
                        Some(slot) => *slot = (**result).clone(),
                        None => run.layers.push((**result).clone()),
                    }
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

#[cfg(test)]
pub(super) mod tests {
    use quantbench_core::analysis::SweepPoint;

    use super::*;

    /// A layer's sensitivity figures (the sweep at 2 and 8 bits).
    pub(crate) fn layer(name: &str, enable_one: f64, disable_one: f64) -> LayerSensitivity {
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
            samples: 64,
            enable_one_samples: 64,
            disable_one_samples: 64,
            enable_one_sqnr_db: 30.0,
            disable_one_sqnr_db: 20.0,
        }
    }

    /// A finished run of three layers.
    pub(crate) fn run() -> SensitivityRun {
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
    fn values_convert() {
        assert_eq!(metric_text(SensitivityMetric::OutputSqnr, f64::INFINITY), "exact");
        assert_eq!(display_value(SensitivityMetric::OutputSqnr, f64::INFINITY), EXACT_DB);
        assert_eq!(metric_text(SensitivityMetric::Top1Agreement, 0.5), "50.00 %");
    }

    #[test]
    fn streamed_layers_fill_the_run_and_an_end_is_kept() {
        let mut s = AnalysisResults { sensitivity_job: Some(JobId(4)), ..AnalysisResults::default() };
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
