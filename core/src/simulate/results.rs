//! What an evaluation measures: per-layer and model-level results, progress, and the quantized
//! model's size.

use serde::{Deserialize, Serialize};

use crate::metrics::TensorMetrics;
use crate::model::OnnxModel;
use crate::plan::QuantPlan;

/// Results for one quantizable layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerResult {
    /// Layer (node) name.
    pub name: String,
    /// Op type.
    pub op: String,
    /// Weight bits, when the weight is quantized (0 for ternary).
    pub w_bits: Option<u8>,
    /// Activation bits, when the input activation is quantized.
    pub a_bits: Option<u8>,
    /// Observer name of the input activation, when quantized.
    pub observer: Option<String>,
    /// Error of this layer alone quantized, fed float inputs.
    pub local: Option<TensorMetrics>,
    /// Error at this layer's output with the whole plan applied.
    pub accumulated: TensorMetrics,
    /// The plan's runtime sums this layer's product pairs in a saturating int16 that its
    /// weights can overflow (simulated as the runtime computes it).
    #[serde(default)]
    pub saturates: bool,
}

/// Model-level metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMetrics {
    /// Accuracy of the float model (when labels exist).
    pub float_accuracy: Option<f64>,
    /// Accuracy of the quantized model (when labels exist).
    pub quant_accuracy: Option<f64>,
    /// Fraction of samples whose top-1 class is the same as float's.
    pub top1_agreement: f64,
    /// SQNR of the first model output.
    pub output_sqnr_db: f64,
    /// Size of the float model's constants.
    pub float_size_bytes: u64,
    /// Size of the quantized model's constants (integers at their bit width, scales, zero points).
    pub quant_size_bytes: u64,
}

/// Everything an evaluation measures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Model-level metrics.
    pub metrics: ModelMetrics,
    /// Per quantizable layer, in network order.
    pub layers: Vec<LayerResult>,
    /// Argmax of the first output of the float model, per sample.
    pub predictions_float: Vec<usize>,
    /// Argmax of the first output of the quantized model, per sample.
    pub predictions_quant: Vec<usize>,
    /// The activations (and float constants) the plan quantizes under its placement target.
    #[serde(default)]
    pub quantized: Vec<crate::plan::QuantizedTensor>,
    /// Evaluation samples the model metrics and predictions cover: the whole set, or the size of
    /// the subset an estimate ran on.
    #[serde(default)]
    pub samples: usize,
}

/// Progress of an evaluation: the stage and how far it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Stage name, e.g. "quantized model" or "layer conv1".
    pub stage: String,
    /// Samples done in this stage.
    pub done: usize,
    /// Samples in this stage.
    pub total: usize,
}

/// Bytes of the quantized model's constants: quantized weights at their bit width plus one f32
/// scale and one zero point per parameter set, int32 biases, and every other constant as stored.
pub fn quantized_size_bytes(model: &OnnxModel, plan: &QuantPlan) -> u64 {
    let mut size = model.summary.float_size_bytes;
    // A weight shared by several layers is stored once; a weight the float size does not count
    // (e.g. one computed in the graph) must not make the size wrap below zero.
    let mut seen = std::collections::BTreeSet::new();
    for lp in &plan.layers {
        let layer = model.summary.layer(&lp.layer);
        let layer_weight_elems: u64 = layer.map_or(0, |l| l.weight_shape.iter().product());
        if let Some(wq) = &lp.weight_quant {
            let bits = if lp.config.weight.ternary { 2 } else { u64::from(lp.config.weight.bits) };
            if seen.insert(layer.map_or(lp.layer.as_str(), |l| l.weight.as_str())) {
                size = size.saturating_sub(layer_weight_elems * 4) + (layer_weight_elems * bits).div_ceil(8);
            }
            size += 8 * wq.params.len() as u64;
        }
        if let Some(b) = &lp.bias {
            size += 4 * b.scales.len() as u64;
        }
    }
    size + 8 * plan.activations.len() as u64
}
