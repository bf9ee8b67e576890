//! The plan's quantized activations as plain rows, for the views that show which tensors a
//! placement target quantizes (the GUI's "Quantized tensors" list).

use serde::{Deserialize, Serialize};

use crate::model::OnnxModel;
use crate::model::graph::{constants, node_name};

use super::QuantPlan;

/// One activation (or float constant) the plan quantizes, with where it comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantizedTensor {
    /// The tensor.
    pub tensor: String,
    /// The node computing it, `None` for a graph input or a constant.
    pub producer: Option<String>,
    /// The producer's op type, or "input" / "constant".
    pub op_type: String,
    /// Scale (1 for a dynamic tensor, whose scale is computed at run time).
    pub scale: f32,
    /// Zero point.
    pub zero_point: i32,
    /// Bit width.
    pub bits: u8,
    /// Scale and zero point computed per batch at run time.
    pub dynamic: bool,
    /// The nodes that read the quantized value.
    pub readers: Vec<String>,
}

impl QuantPlan {
    /// Every quantized activation and constant of the plan, in network order of the producer
    /// (graph inputs and constants first).
    pub fn quantized_tensors(&self, model: &OnnxModel) -> Vec<QuantizedTensor> {
        let graph = model.graph();
        let consts = constants(graph);
        let mut rows: Vec<(usize, QuantizedTensor)> = self
            .activations
            .values()
            .map(|a| {
                let producer = graph.node.iter().enumerate().find(|(_, n)| n.output.contains(&a.tensor));
                let op_type = match producer {
                    Some((_, n)) => n.op_type.clone(),
                    None if consts.contains_key(a.tensor.as_str()) => "constant".to_string(),
                    None => "input".to_string(),
                };
                let row = QuantizedTensor {
                    tensor: a.tensor.clone(),
                    producer: producer.map(|(_, n)| node_name(n)),
                    op_type,
                    scale: a.params.scale,
                    zero_point: a.params.zero_point,
                    bits: a.scheme.bits,
                    dynamic: a.dynamic,
                    readers: a.consumers.clone(),
                };
                (producer.map_or(0, |(i, _)| i + 1), row)
            })
            .collect();
        rows.sort_by_key(|(i, _)| *i);
        rows.into_iter().map(|(_, r)| r).collect()
    }
}
