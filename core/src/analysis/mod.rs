//! Analyses over many evaluations: per-layer sensitivity (`sensitivity.rs`, as AIMET's
//! QuantAnalyzer) and the mixed-precision search. Evaluations are incremental: each starts from
//! the state of an all-float, all-quantized or previous run, so only the graph from the change on
//! re-runs.

mod mixed;
mod mixed_fast;
mod sensitivity;
mod weights;

pub use mixed::{
    MIXED_PRECISION_BITS, MixedPrecision, MixedPrecisionOptions, PathPoint, SearchStep, Target, mixed_precision,
};
pub use sensitivity::{
    LayerSensitivity, SENSITIVITY_SUBSET, SensitivityOptions, SensitivityProgress, SweepPoint, sensitivity,
};
pub use weights::{WEIGHT_ERROR_BITS, WeightErrors, weight_errors};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::simulate::Evaluation;

/// The model metric sensitivity is measured with (higher is better for all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SensitivityMetric {
    /// Accuracy against the labels.
    Accuracy,
    /// Top-1 agreement with the float model.
    Top1Agreement,
    /// SQNR of the first output, dB.
    OutputSqnr,
}

impl SensitivityMetric {
    /// The metric of an evaluation.
    pub fn of(self, e: &Evaluation) -> Result<f64> {
        match self {
            Self::Accuracy => e
                .metrics
                .quant_accuracy
                .ok_or_else(|| Error::Config("accuracy needs an evaluation set with labels".into())),
            Self::Top1Agreement => Ok(e.metrics.top1_agreement),
            Self::OutputSqnr => Ok(e.metrics.output_sqnr_db),
        }
    }
}

impl std::str::FromStr for SensitivityMetric {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "accuracy" => Ok(Self::Accuracy),
            "agreement" | "top1" => Ok(Self::Top1Agreement),
            "sqnr" => Ok(Self::OutputSqnr),
            _ => Err(Error::Config(format!("unknown metric '{s}' (expected accuracy, agreement, sqnr)"))),
        }
    }
}
