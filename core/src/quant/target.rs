//! Where the Q/DQ pairs go: the runtime the export is placed for.

use serde::{Deserialize, Serialize};

/// The placement target of a plan (see `plan::placement`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// ONNX Runtime's placement (its `quantize_static` QDQ registry): the inputs and outputs of
    /// the ops it quantizes, so that its QDQ fusions form QLinear* integer kernels.
    #[default]
    Ort,
    /// TensorRT's explicit quantization: Q/DQ on the activation inputs of the quantizable layers
    /// (Conv, ConvTranspose, Gemm, MatMul) and on the residual input of residual Adds, as NVIDIA
    /// recommends; TensorRT propagates from there.
    #[serde(rename = "tensorrt")]
    TensorRt,
    /// Fully integer accelerators: ONNX Runtime's placement extended to every float activation
    /// of every op (and the float constants of elementwise arithmetic), with fixed output ranges
    /// for Sigmoid, HardSigmoid and Softmax ([0, 1]) and Tanh ([-1, 1]).
    Npu,
}

/// Every target with its CLI/recipe name.
pub const TARGETS: [(Target, &str); 3] = [(Target::Ort, "ort"), (Target::TensorRt, "tensorrt"), (Target::Npu, "npu")];

impl Target {
    /// The CLI/recipe name.
    pub fn name(self) -> &'static str {
        TARGETS.iter().find(|(t, _)| *t == self).map_or("ort", |(_, n)| n)
    }

    /// What the target quantizes, for tooltips and help.
    pub fn description(self) -> &'static str {
        match self {
            Target::Ort => {
                "ONNX Runtime: Q/DQ where its quantize_static puts them (layer inputs and outputs, Add, Mul, Concat, \
                 pools, Softmax, ...), so that ORT runs QLinear* integer kernels"
            }
            Target::TensorRt => {
                "TensorRT: Q/DQ on the inputs of Conv, ConvTranspose, Gemm and MatMul, and on the residual input of \
                 residual Adds"
            }
            Target::Npu => {
                "Fully integer accelerators: every float activation quantized, fixed Sigmoid/Tanh/Softmax output ranges"
            }
        }
    }

    /// Parses a CLI/recipe name.
    pub fn parse(name: &str) -> Option<Self> {
        TARGETS.iter().find(|(_, n)| n.eq_ignore_ascii_case(name)).map(|(t, _)| *t)
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How the block-wise (per-group) weights of MatMul and Gemm layers are written on export.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightFormat {
    /// ONNX DequantizeLinear with `block_size` (opset 21), 4-bit weights as INT4/UINT4: any
    /// runtime that reads ONNX runs it (ONNX Runtime fuses it with the MatMul into MatMulNBits).
    #[default]
    Qdq,
    /// ONNX Runtime's `com.microsoft.MatMulNBits` (packed 2-, 4- or 8-bit weights, `K`, `N`,
    /// `bits`, `block_size`, optional zero points): the format ONNX Runtime's own weight-only
    /// quantizer writes. Layers it cannot express keep the QDQ form.
    #[serde(rename = "matmulnbits")]
    MatMulNBits,
}

/// Every weight format with its CLI/recipe name.
pub const WEIGHT_FORMATS: [(WeightFormat, &str); 2] =
    [(WeightFormat::Qdq, "qdq"), (WeightFormat::MatMulNBits, "matmulnbits")];

impl WeightFormat {
    /// The CLI/recipe name.
    pub fn name(self) -> &'static str {
        WEIGHT_FORMATS.iter().find(|(t, _)| *t == self).map_or("qdq", |(_, n)| n)
    }

    /// Parses a CLI/recipe name.
    pub fn parse(name: &str) -> Option<Self> {
        WEIGHT_FORMATS.iter().find(|(_, n)| n.eq_ignore_ascii_case(name)).map(|(t, _)| *t)
    }
}
