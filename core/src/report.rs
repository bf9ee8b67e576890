//! The analysis report (docs/CLI.md#report-fields): the JSON that `quantbench analyze` and `quantize` write.

use serde::{Deserialize, Serialize};

use crate::metrics::TensorMetrics;
use crate::model::{ModelSummary, TensorInfo};
use crate::quant::{CpuInt8, LayerConfig, RuntimeProfile};
use crate::simulate::{Evaluation, ModelMetrics};

/// The model part of a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportModel {
    /// Model name.
    pub name: String,
    /// Graph inputs.
    pub inputs: Vec<TensorInfo>,
    /// Graph outputs.
    pub outputs: Vec<TensorInfo>,
}

/// One layer's row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportLayer {
    /// Layer (node) name.
    pub name: String,
    /// Op type.
    pub op: String,
    /// Weight bits (null when the weight stays float; 0 for ternary).
    pub w_bits: Option<u8>,
    /// Activation bits (null when the input stays float).
    pub a_bits: Option<u8>,
    /// Observer of the input activation.
    pub observer: Option<String>,
    /// SQNR of the layer alone quantized (null when it stays float).
    pub local_sqnr_db: Option<f64>,
    /// SQNR at the layer's output with the whole model quantized.
    pub accumulated_sqnr_db: f64,
    /// All local metrics.
    pub local: Option<TensorMetrics>,
    /// All accumulated metrics.
    pub accumulated: TensorMetrics,
    /// The runtime's int16 pair sums can overflow in this layer (see `runtime`).
    #[serde(default)]
    pub saturates: bool,
}

/// The runtime the report's simulation reproduces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportRuntime {
    /// Profile name, e.g. `ort-x86-avx2`.
    pub profile: String,
    /// What its arithmetic is.
    pub description: String,
    /// The CPU this report was made on, with its int8 features.
    pub local_cpu: String,
    /// The profile ONNX Runtime has on this CPU.
    pub local_profile: String,
    /// Notes for people: the defaults chosen for the profile, layers that can saturate.
    pub notes: Vec<String>,
}

impl ReportRuntime {
    /// The runtime section for `profile`, with the default weight bits the recipe uses and the
    /// layers whose int16 pair sums can overflow.
    pub fn new(profile: RuntimeProfile, default_weight_bits: u8, saturating: &[String], inexact: &[String]) -> Self {
        let cpu = CpuInt8::local();
        let mut notes = Vec::new();
        if profile.saturates_u8s8_pairs() {
            if default_weight_bits == profile.default_weight_bits() {
                notes.push(format!(
                    "{profile} sums u8×s8 product pairs in int16 with saturation: the default weights have {} bits \
                     (as ONNX Runtime's reduce_range), which cannot overflow",
                    profile.default_weight_bits()
                ));
            }
            if !saturating.is_empty() {
                notes.push(format!(
                    "{} layer(s) can overflow int16 pair sums on {profile} (simulated as the runtime computes them; \
                     7-bit weights avoid it): {}",
                    saturating.len(),
                    saturating.join(", ")
                ));
            }
            if !inexact.is_empty() {
                notes.push(format!(
                    "{} layer(s) take int8 (signed) activations with 8-bit weights, whose kernels on {profile} are not \
                     simulated exactly (ONNX Runtime measured several dB worse; use uint8 activations or 7-bit \
                     weights): {}",
                    inexact.len(),
                    inexact.join(", ")
                ));
            }
        }
        Self {
            profile: profile.name().into(),
            description: profile.description().into(),
            local_cpu: cpu.describe(),
            local_profile: cpu.profile().name().into(),
            notes,
        }
    }
}

/// Argmax of the first output on the evaluation set, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Predictions {
    /// Float model.
    pub float: Vec<usize>,
    /// Quantized model.
    pub quant: Vec<usize>,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The model.
    pub model: ReportModel,
    /// The default layer configuration used.
    pub config: LayerConfig,
    /// The runtime the simulation reproduces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<ReportRuntime>,
    /// Model-level metrics.
    pub metrics: ModelMetrics,
    /// Per quantizable layer, network order.
    pub layers: Vec<ReportLayer>,
    /// Predictions on the evaluation set.
    pub predictions: Predictions,
    /// The metric sensitivity was measured with (when asked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitivity_metric: Option<crate::analysis::SensitivityMetric>,
    /// Per-layer sensitivity (when asked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitivity: Option<Vec<crate::analysis::LayerSensitivity>>,
    /// The mixed-precision search (when a target was given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mixed_precision: Option<crate::analysis::MixedPrecision>,
}

impl Report {
    /// Builds the report of an evaluation.
    pub fn new(summary: &ModelSummary, config: LayerConfig, eval: &Evaluation) -> Self {
        Self {
            model: ReportModel {
                name: summary.name.clone(),
                inputs: summary.inputs.clone(),
                outputs: summary.outputs.clone(),
            },
            config,
            runtime: None,
            metrics: eval.metrics.clone(),
            layers: eval
                .layers
                .iter()
                .map(|l| ReportLayer {
                    name: l.name.clone(),
                    op: l.op.clone(),
                    w_bits: l.w_bits,
                    a_bits: l.a_bits,
                    observer: l.observer.clone(),
                    local_sqnr_db: l.local.map(|m| m.sqnr_db),
                    accumulated_sqnr_db: l.accumulated.sqnr_db,
                    local: l.local,
                    accumulated: l.accumulated,
                    saturates: l.saturates,
                })
                .collect(),
            predictions: Predictions { float: eval.predictions_float.clone(), quant: eval.predictions_quant.clone() },
            sensitivity_metric: None,
            sensitivity: None,
            mixed_precision: None,
        }
    }
}
