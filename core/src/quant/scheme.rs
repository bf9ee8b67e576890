//! Quantization schemes: what the user chooses per layer for weights and activations.

use serde::{Deserialize, Serialize};

use super::observer::Observer;
use super::qparams::{QParams, QRange, scale_zp};
use super::weight_algorithm::WeightAlgorithm;
use crate::error::{Error, Result};

/// How many (scale, zero point) pairs a weight gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Granularity {
    /// One for the whole tensor.
    PerTensor,
    /// One per output channel.
    PerChannel,
    /// One per group of `group_size` consecutive elements within each output channel.
    PerGroup {
        /// Elements per group.
        group_size: usize,
    },
}

/// How a layer's weight is quantized.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WeightScheme {
    /// Bit width, 2–16 (ignored when `ternary`).
    pub bits: u8,
    /// Signed integers.
    pub signed: bool,
    /// Symmetric range around zero.
    pub symmetric: bool,
    /// Narrow signed range (int8: [-127, 127]), as ONNX Runtime uses for symmetric weights.
    pub narrow_range: bool,
    /// Per tensor, per channel or per group.
    pub granularity: Granularity,
    /// Ternary weights {-s, 0, +s} with a threshold (TWN: 0.7 · mean |w|).
    pub ternary: bool,
    /// Scales rounded up to powers of two (integer accelerators that rescale by shifts).
    pub power_of_two: bool,
}

impl Default for WeightScheme {
    /// ONNX Runtime's common setup: int8 symmetric (narrow) per-channel.
    fn default() -> Self {
        Self {
            bits: 8,
            signed: true,
            symmetric: true,
            narrow_range: true,
            granularity: Granularity::PerChannel,
            ternary: false,
            power_of_two: false,
        }
    }
}

impl WeightScheme {
    /// The integer range of the scheme (`[-1, 1]` for ternary).
    pub fn qrange(&self) -> QRange {
        if self.ternary { QRange { qmin: -1, qmax: 1 } } else { QRange::new(self.bits, self.signed, self.narrow_range) }
    }

    /// Checks the bit width and group size.
    pub fn validate(&self) -> Result<()> {
        if !(2..=16).contains(&self.bits) {
            return Err(Error::Config(format!("weight bits must be 2–16, got {}", self.bits)));
        }
        if !self.signed && self.bits > 15 && !self.ternary {
            return Err(Error::Config("unsigned weights take at most 15 bits (16-bit weights are signed)".into()));
        }
        if let Granularity::PerGroup { group_size: 0 } = self.granularity {
            return Err(Error::Config("per-group quantization needs a group size above 0".into()));
        }
        Ok(())
    }
}

/// How a layer's input activation is quantized.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ActivationScheme {
    /// Bit width, 2–16.
    pub bits: u8,
    /// Signed integers.
    pub signed: bool,
    /// Symmetric range around zero.
    pub symmetric: bool,
    /// How the clip range is chosen from the calibration statistics.
    pub observer: Observer,
    /// Dynamic quantization: the range is computed per batch at run time.
    pub dynamic: bool,
    /// Scales rounded up to powers of two (integer accelerators that rescale by shifts).
    pub power_of_two: bool,
}

impl Default for ActivationScheme {
    /// ONNX Runtime's common setup: uint8 asymmetric per-tensor, MinMax.
    fn default() -> Self {
        Self {
            bits: 8,
            signed: false,
            symmetric: false,
            observer: Observer::MinMax,
            dynamic: false,
            power_of_two: false,
        }
    }
}

impl ActivationScheme {
    /// The integer range of the scheme.
    pub fn qrange(&self) -> QRange {
        QRange::new(self.bits, self.signed, false)
    }

    /// The (scale, zero point) of the clip range `range` under this scheme.
    pub fn params(&self, range: (f32, f32)) -> QParams {
        scale_zp(range.0, range.1, self.qrange(), self.symmetric, self.power_of_two)
    }

    /// Checks the bit width and observer parameters.
    pub fn validate(&self) -> Result<()> {
        if !(2..=16).contains(&self.bits) {
            return Err(Error::Config(format!("activation bits must be 2–16, got {}", self.bits)));
        }
        self.observer.validate()
    }
}

/// The full configuration of one layer (or the global default).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct LayerConfig {
    /// Leave the layer in float.
    pub keep_float: bool,
    /// Weight quantization.
    pub weight: WeightScheme,
    /// Input-activation quantization.
    pub activation: ActivationScheme,
    /// Which advanced PTQ algorithms apply to the layer.
    pub algorithms: LayerAlgorithms,
}

/// The advanced post-training algorithms a layer takes part in (all off by default: nearest
/// rounding of observer ranges, as ONNX Runtime does). Their settings live in the recipe's
/// [`AlgorithmSettings`](crate::algorithms::AlgorithmSettings).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct LayerAlgorithms {
    /// Cross-layer equalization (Nagel et al. 2019): a Conv→(ReLU/ReLU6)→Conv pair is equalized
    /// when both layers have it. Changes the float model (equivalently), so it needs a new
    /// calibration.
    pub cross_layer_equalization: bool,
    /// SmoothQuant migration strength α in [0, 1] (MatMul/Gemm only): activation outliers move
    /// into the weight through a per-input-channel scale. Changes the float model (equivalently),
    /// so it needs a new calibration.
    pub smooth_quant: Option<f32>,
    /// EasyQuant: alternating search of weight and activation scales maximising the cosine
    /// similarity of the layer output.
    pub easy_quant: bool,
    /// AdaRound (Nagel et al. 2020): learned up/down rounding of the weight minimising the
    /// layer's output reconstruction error.
    pub ada_round: bool,
    /// Empirical bias correction: the bias absorbs the mean output shift quantization causes.
    pub bias_correction: bool,
    /// How the weight is rounded: nearest (RTN), HQQ (data-free), GPTQ or AWQ (from the layer's
    /// calibration inputs).
    pub weight_algorithm: WeightAlgorithm,
}

impl LayerAlgorithms {
    /// Whether an algorithm that rewrites the float model (CLE, SmoothQuant) is on.
    pub fn transforms_model(&self) -> bool {
        self.cross_layer_equalization || self.smooth_quant.is_some()
    }

    /// Whether an algorithm that refines the layer's quantization on calibration data is on.
    pub fn refines(&self) -> bool {
        self.easy_quant || self.ada_round || self.bias_correction || self.weight_algorithm.needs_data()
    }

    /// Checks the SmoothQuant strength.
    pub fn validate(&self) -> Result<()> {
        if let Some(alpha) = self.smooth_quant
            && !(0.0..=1.0).contains(&alpha)
        {
            return Err(Error::Config(format!("SmoothQuant alpha must be in [0, 1], got {alpha}")));
        }
        Ok(())
    }
}

impl LayerConfig {
    /// Checks both schemes.
    pub fn validate(&self) -> Result<()> {
        self.weight.validate()?;
        self.activation.validate()?;
        self.algorithms.validate()
    }
}
