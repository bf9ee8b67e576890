//! The weight-only algorithms a layer's weight is quantized with, and their settings
//! (configuration; the algorithms live in `algorithms::{hqq, gptq, awq}`).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How a layer's weight is rounded onto its grid.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightAlgorithm {
    /// Round to nearest on the observer's (min/max) grid.
    #[default]
    Rtn,
    /// HQQ (Badri & Shaji 2023): zero points optimised for an lp error norm, data-free.
    Hqq,
    /// GPTQ (Frantar et al. 2022): column-wise rounding with second-order error feedback from the
    /// layer's calibration inputs.
    Gptq,
    /// AWQ (Lin et al. 2023): per-input-channel scales from the calibration inputs' magnitudes
    /// protect the salient weights; the layer's input is divided by them at run time.
    Awq,
}

/// Every weight algorithm with its CLI/recipe name.
pub const WEIGHT_ALGORITHMS: [(WeightAlgorithm, &str); 4] = [
    (WeightAlgorithm::Rtn, "rtn"),
    (WeightAlgorithm::Hqq, "hqq"),
    (WeightAlgorithm::Gptq, "gptq"),
    (WeightAlgorithm::Awq, "awq"),
];

impl WeightAlgorithm {
    /// The CLI/recipe name.
    pub fn name(self) -> &'static str {
        WEIGHT_ALGORITHMS.iter().find(|(a, _)| *a == self).map_or("rtn", |(_, n)| n)
    }

    /// Parses a CLI/recipe name.
    pub fn parse(name: &str) -> Option<Self> {
        WEIGHT_ALGORITHMS.iter().find(|(_, n)| n.eq_ignore_ascii_case(name)).map(|(a, _)| *a)
    }

    /// Whether it learns from calibration data (GPTQ, AWQ).
    pub fn needs_data(self) -> bool {
        matches!(self, Self::Gptq | Self::Awq)
    }
}

/// HQQ's optimiser settings (defaults: ONNX Runtime's and the paper's).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HqqSettings {
    /// The p of the lp error norm the zero points minimise (p < 1: sparse, outlier-tolerant).
    pub lp_norm: f32,
    /// The half-quadratic penalty β at the first iteration.
    pub beta: f32,
    /// The factor β grows by per iteration.
    pub kappa: f32,
    /// The most iterations (fewer when the mean absolute error stops decreasing).
    pub iterations: usize,
}

impl Default for HqqSettings {
    fn default() -> Self {
        Self { lp_norm: 0.7, beta: 10.0, kappa: 1.01, iterations: 20 }
    }
}

impl HqqSettings {
    /// Checks that p, β and κ are positive and finite.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [("lp_norm", self.lp_norm), ("beta", self.beta), ("kappa", self.kappa)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::Config(format!("HQQ {name} must be positive, got {v}")));
            }
        }
        Ok(())
    }
}

/// GPTQ's settings (defaults: the reference implementation's).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GptqSettings {
    /// Dampening added to the Hessian's diagonal, as a fraction of its mean diagonal.
    pub damp: f32,
    /// Quantize columns in order of decreasing Hessian diagonal (with static groups).
    pub act_order: bool,
    /// Columns per lazy batch update.
    pub block_columns: usize,
}

impl Default for GptqSettings {
    fn default() -> Self {
        Self { damp: 0.01, act_order: false, block_columns: 128 }
    }
}

impl GptqSettings {
    /// Checks the dampening (finite, not negative) and the block size (at least 1).
    pub fn validate(&self) -> Result<()> {
        if !(self.damp.is_finite() && self.damp >= 0.0) {
            return Err(Error::Config(format!("GPTQ dampening must be 0 or more, got {}", self.damp)));
        }
        if self.block_columns == 0 {
            return Err(Error::Config("GPTQ needs blocks of at least one column".into()));
        }
        Ok(())
    }
}

/// AWQ's search settings (default: the reference implementation's).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AwqSettings {
    /// Exponents α tried, evenly spaced in `[0, 1)` starting at 0.
    pub grid: usize,
}

impl Default for AwqSettings {
    fn default() -> Self {
        Self { grid: 20 }
    }
}

impl AwqSettings {
    /// Checks that at least one exponent (α = 0) is tried.
    pub fn validate(&self) -> Result<()> {
        if self.grid == 0 {
            return Err(Error::Config("AWQ needs a grid of at least one exponent".into()));
        }
        Ok(())
    }
}
