//! The model summary: plain data describing a loaded ONNX graph (inputs, outputs, nodes,
//! quantizable layers, size). Built from the protobuf alone, so it needs no data and no typing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One dimension of a tensor shape: a fixed size or a symbolic name (`batch`, `?` when unnamed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Dim {
    /// A concrete size.
    Fixed(u64),
    /// A dynamic dimension, by its ONNX `dim_param` name (`?` if the model leaves it unnamed).
    Symbolic(String),
}

impl std::fmt::Display for Dim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Fixed(n) => write!(f, "{n}"),
            Self::Symbolic(s) => f.write_str(s),
        }
    }
}

/// Formats a shape as `[batch, 3, 32, 32]`.
pub fn shape_to_string(shape: &[Dim]) -> String {
    let dims: Vec<String> = shape.iter().map(ToString::to_string).collect();
    format!("[{}]", dims.join(", "))
}

/// A graph input or output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorInfo {
    /// ONNX tensor name.
    pub name: String,
    /// Element type, e.g. `float32`.
    pub elem_type: String,
    /// Shape, possibly with symbolic dims.
    pub shape: Vec<Dim>,
}

/// One node of the graph, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Node name (the first output's name when the file leaves it empty).
    pub name: String,
    /// ONNX operator type, e.g. `Conv`.
    pub op_type: String,
    /// Operator domain; empty for the default ONNX domain.
    pub domain: String,
    /// Input tensor names (empty strings for omitted optional inputs).
    pub inputs: Vec<String>,
    /// Output tensor names.
    pub outputs: Vec<String>,
}

/// A layer whose weight QuantBench can quantize: Conv, ConvTranspose, Gemm, or MatMul with a
/// constant weight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuantizableLayer {
    /// Node name; the layer's identity in recipes and reports.
    pub name: String,
    /// ONNX operator type.
    pub op_type: String,
    /// The activation input tensor.
    pub input: String,
    /// The constant weight tensor.
    pub weight: String,
    /// Shape of the weight.
    pub weight_shape: Vec<u64>,
    /// Axis of the weight that indexes output channels (per-channel quantization axis).
    pub out_channel_axis: usize,
    /// The constant bias tensor, if any.
    pub bias: Option<String>,
    /// The layer's output tensor.
    pub output: String,
    /// Convolution group count (1 for non-convolutions); equal to the channel count for
    /// depthwise convolutions.
    pub group: u64,
}

/// Everything `inspect` shows about a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSummary {
    /// Model name: the file stem.
    pub name: String,
    /// The default-domain opset the model imports.
    pub opset: i64,
    /// Producer recorded in the file, e.g. `pytorch 2.1`.
    pub producer: String,
    /// Graph inputs that are not initializers, in graph order.
    pub inputs: Vec<TensorInfo>,
    /// Graph outputs, in graph order.
    pub outputs: Vec<TensorInfo>,
    /// All nodes in file order.
    pub nodes: Vec<NodeInfo>,
    /// Quantizable layers in file order.
    pub layers: Vec<QuantizableLayer>,
    /// Number of nodes per op type, sorted by op type.
    pub op_counts: BTreeMap<String, usize>,
    /// Number of elements in floating-point constants (initializers and `Constant` nodes).
    pub param_count: u64,
    /// Bytes of all constants as stored in the float model.
    pub float_size_bytes: u64,
    /// Nodes the file left unnamed or named generically (`Conv@0`), renamed at load from their
    /// weight or output tensor: previous name → name in use (recipes keyed by the previous names
    /// still load).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub renamed: BTreeMap<String, String>,
}

impl ModelSummary {
    /// The quantizable layer called `name`.
    pub fn layer(&self, name: &str) -> Option<&QuantizableLayer> {
        self.layers.iter().find(|l| l.name == name)
    }

    /// A human-readable multi-line description, as `quantbench inspect` prints it.
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(s, "model     {}", self.name);
        let _ = writeln!(s, "opset     {}", self.opset);
        if !self.producer.is_empty() {
            let _ = writeln!(s, "producer  {}", self.producer);
        }
        let _ = writeln!(s, "params    {} ({} bytes as float)", self.param_count, self.float_size_bytes);
        for (label, list) in [("inputs", &self.inputs), ("outputs", &self.outputs)] {
            let _ = writeln!(s, "{label}:");
            for t in list {
                let _ = writeln!(s, "  {} {} {}", t.name, t.elem_type, shape_to_string(&t.shape));
            }
        }
        let ops: Vec<String> = self.op_counts.iter().map(|(k, v)| format!("{k}×{v}")).collect();
        let _ = writeln!(s, "ops       {}", ops.join(", "));
        let _ = writeln!(s, "quantizable layers ({}):", self.layers.len());
        for l in &self.layers {
            let shape: Vec<String> = l.weight_shape.iter().map(ToString::to_string).collect();
            let _ = writeln!(
                s,
                "  {:<24} {:<13} weight {} [{}] axis {}{}",
                l.name,
                l.op_type,
                l.weight,
                shape.join("x"),
                l.out_channel_axis,
                if l.group > 1 { format!(" group {}", l.group) } else { String::new() }
            );
        }
        let _ = writeln!(s, "nodes ({}):", self.nodes.len());
        for n in &self.nodes {
            let _ = writeln!(
                s,
                "  {:<24} {:<20} ({}) -> ({})",
                n.name,
                n.op_type,
                n.inputs.join(", "),
                n.outputs.join(", ")
            );
        }
        s
    }
}
