//! Settings of the advanced algorithms, recipe-wide (configuration; the algorithms themselves
//! live in `algorithms`).

use serde::{Deserialize, Serialize};

use super::weight_algorithm::{AwqSettings, GptqSettings, HqqSettings};
use crate::error::{Error, Result};

/// AdaRound's hyper-parameters (defaults after Nagel et al. 2020 and AIMET).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AdaRoundSettings {
    /// Optimisation steps per layer.
    pub iterations: usize,
    /// Columns (output positions) per step.
    pub batch_columns: usize,
    /// Weight λ of the rounding regulariser.
    pub reg_weight: f32,
    /// β of the regulariser at the end of the warm-up (annealed down to `beta_end`).
    pub beta_start: f32,
    /// β at the last step.
    pub beta_end: f32,
    /// Fraction of the steps without the regulariser.
    pub warmup: f32,
    /// Adam learning rate.
    pub learning_rate: f32,
}

impl Default for AdaRoundSettings {
    fn default() -> Self {
        Self {
            iterations: 1000,
            batch_columns: 256,
            reg_weight: 0.01,
            beta_start: 20.0,
            beta_end: 2.0,
            warmup: 0.2,
            learning_rate: 0.01,
        }
    }
}

/// EasyQuant's search space (after Wu et al. 2020).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EasyQuantSettings {
    /// Alternating rounds (weights, then activation).
    pub rounds: usize,
    /// Candidate scales per search, evenly spaced in `[low, high]` × the observer's scale.
    pub candidates: usize,
    /// Smallest scale factor tried.
    pub low: f32,
    /// Largest scale factor tried.
    pub high: f32,
}

impl Default for EasyQuantSettings {
    fn default() -> Self {
        Self { rounds: 2, candidates: 64, low: 0.5, high: 1.2 }
    }
}

/// Settings of the algorithms, recipe-wide.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AlgorithmSettings {
    /// Calibration samples the layer-wise algorithms use (the first ones of the set).
    pub max_samples: usize,
    /// Output positions per layer the layer-wise problems keep (a deterministic random subset).
    pub max_columns: usize,
    /// Memory for the layers' collected float inputs, in MiB: layers are refined in consecutive
    /// chunks whose inputs fit (one float pass over the samples per chunk).
    pub inputs_budget_mib: usize,
    /// Seed of that subset and of AdaRound's batches.
    pub seed: u64,
    /// AdaRound.
    pub ada_round: AdaRoundSettings,
    /// EasyQuant.
    pub easy_quant: EasyQuantSettings,
    /// Cross-layer equalization sweeps over all pairs (chains converge over sweeps).
    pub cle_iterations: usize,
    /// HQQ.
    pub hqq: HqqSettings,
    /// GPTQ.
    pub gptq: GptqSettings,
    /// AWQ.
    pub awq: AwqSettings,
}

impl Default for AlgorithmSettings {
    fn default() -> Self {
        Self {
            max_samples: 256,
            max_columns: 4096,
            inputs_budget_mib: 128,
            seed: 0,
            ada_round: AdaRoundSettings::default(),
            easy_quant: EasyQuantSettings::default(),
            cle_iterations: 20,
            hqq: HqqSettings::default(),
            gptq: GptqSettings::default(),
            awq: AwqSettings::default(),
        }
    }
}

impl AlgorithmSettings {
    /// Checks every value is usable.
    pub fn validate(&self) -> Result<()> {
        let a = &self.ada_round;
        let e = &self.easy_quant;
        let bad = |m: &str| Err(Error::Config(format!("algorithm settings: {m}")));
        if self.max_samples == 0 || self.max_columns == 0 {
            return bad("max_samples and max_columns must be above 0");
        }
        if a.iterations == 0 || a.batch_columns == 0 {
            return bad("AdaRound needs at least one iteration and one column per batch");
        }
        let finite_pos = |v: f32| v.is_finite() && v > 0.0;
        if !finite_pos(a.learning_rate) || !finite_pos(a.beta_start) || !finite_pos(a.beta_end) {
            return bad("AdaRound's learning rate and betas must be finite and above 0");
        }
        if !(a.reg_weight.is_finite() && a.reg_weight >= 0.0 && (0.0..1.0).contains(&a.warmup)) {
            return bad("AdaRound's regulariser weight must be >= 0 and its warm-up in [0, 1)");
        }
        if e.rounds == 0 || e.candidates < 2 || !finite_pos(e.low) || !(e.high.is_finite() && e.high > e.low) {
            return bad("EasyQuant needs rounds >= 1, candidates >= 2 and 0 < low < high");
        }
        self.hqq.validate()?;
        self.gptq.validate()?;
        self.awq.validate()
    }
}
