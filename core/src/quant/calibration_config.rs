//! How a calibration pass runs (configuration; the pass is `calibrate`, its results `observe`).

use serde::{Deserialize, Serialize};

use crate::data::InputShape;

/// Settings of a calibration pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CalibrationConfig {
    /// Samples per inference call (models with a fixed batch dim use theirs). Batch 1 is the
    /// fastest per sample in tract on small models, and makes the moving average per sample.
    pub batch_size: usize,
    /// Shapes for dynamic dims the data cannot fix.
    pub input_shapes: Vec<InputShape>,
    /// Observe only the tensors TensorRT's placement reads (the quantizable layers' inputs and
    /// the residual Adds' residual inputs) instead of every float activation: fewer outputs for
    /// tract to keep and fewer histograms to fill.
    pub layer_inputs_only: bool,
}

impl Default for CalibrationConfig {
    fn default() -> Self {
        Self { batch_size: 1, input_shapes: Vec::new(), layer_inputs_only: false }
    }
}
