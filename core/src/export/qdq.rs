//! QDQ ONNX export as ONNX Runtime's `quantize_static(quant_format=QDQ)` writes it: integer
//! weight initializers + DequantizeLinear (per-channel `axis`), QuantizeLinear→DequantizeLinear
//! on activations, int32 biases. Bits below 8 use the b-bit grid stored in 8-bit types
//! (activations are clipped to the b-bit range first); 9–16 bits use 16-bit types through ONNX
//! Runtime's `com.microsoft` Q/DQ. Per-group (block-wise) weights are written by `blockwise`:
//! DequantizeLinear with `block_size` and INT4/UINT4 (opset 21), or MatMulNBits in place of the
//! layer node.

use std::collections::BTreeMap;

use crate::model::onnx as pb;

use crate::emit::{ConstantNames, Emitted, Sink, emit};
use crate::error::{Error, Result};
use crate::model::OnnxModel;
use crate::model::graph::float_tensor;
use crate::plan::{ActQuant, BiasQuant, LayerPlan, QuantPlan};
use crate::quant::{QParams, WeightFormat};

use super::blockwise::{self, NBits};

/// ONNX element types used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IntType {
    U8,
    I8,
    U16,
    I16,
    I32,
}

impl IntType {
    fn code(self) -> i32 {
        match self {
            Self::U8 => 2,
            Self::I8 => 3,
            Self::U16 => 4,
            Self::I16 => 5,
            Self::I32 => 6,
        }
    }

    fn for_params(p: &QParams) -> Self {
        let signed = p.range.qmin < 0;
        let wide = p.range.qmax > 255 || p.range.qmin < -128;
        match (signed, wide) {
            (false, false) => Self::U8,
            (true, false) => Self::I8,
            (false, true) => Self::U16,
            (true, true) => Self::I16,
        }
    }

    fn is_16(self) -> bool {
        matches!(self, Self::U16 | Self::I16)
    }

    /// The full range of the stored type.
    fn range(self) -> (i32, i32) {
        match self {
            Self::U8 => (0, 255),
            Self::I8 => (-128, 127),
            Self::U16 => (0, 65535),
            Self::I16 => (-32768, 32767),
            Self::I32 => (i32::MIN, i32::MAX),
        }
    }
}

fn int_tensor(name: &str, dims: &[i64], ty: IntType, values: &[i32]) -> pb::TensorProto {
    let raw: Vec<u8> = match ty {
        IntType::U8 => values.iter().map(|&v| v as u8).collect(),
        IntType::I8 => values.iter().map(|&v| (v as i8) as u8).collect(),
        IntType::U16 => values.iter().flat_map(|&v| (v as u16).to_le_bytes()).collect(),
        IntType::I16 => values.iter().flat_map(|&v| (v as i16).to_le_bytes()).collect(),
        IntType::I32 => values.iter().flat_map(|&v| v.to_le_bytes()).collect(),
    };
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: ty.code(),
        raw_data: raw,
        ..Default::default()
    }
}

fn qdq_node(
    op: &str,
    name: String,
    inputs: Vec<String>,
    output: String,
    axis: Option<i64>,
    wide: bool,
) -> pb::NodeProto {
    let mut n = pb::NodeProto {
        op_type: op.into(),
        name,
        input: inputs,
        output: vec![output],
        domain: if wide { "com.microsoft".into() } else { String::new() },
        ..Default::default()
    };
    if let Some(axis) = axis {
        n.attribute.push(pb::AttributeProto { name: "axis".into(), r#type: 2, i: axis, ..Default::default() });
    }
    n
}

/// DynamicQuantizeLinear → DequantizeLinear for a dynamically quantized activation (uint8 only,
/// as ONNX defines it; ONNX Runtime's `quantize_dynamic` uses the same operator).
fn dynamic_qdq(a: &ActQuant) -> Result<(Vec<pb::NodeProto>, Vec<pb::TensorProto>, String)> {
    let t = &a.tensor;
    if a.params.range.qmin != 0 || a.params.range.qmax != 255 {
        return Err(Error::Config(format!(
            "'{t}': dynamic quantization exports as DynamicQuantizeLinear, which is uint8 only (8-bit unsigned activations)"
        )));
    }
    let outs = [format!("{t}_quantized"), format!("{t}_scale"), format!("{t}_zero_point")];
    let dq_out = format!("{t}_DequantizeLinear_Output");
    let nodes = vec![
        pb::NodeProto {
            op_type: "DynamicQuantizeLinear".into(),
            name: format!("{t}_DynamicQuantizeLinear"),
            input: vec![t.clone()],
            output: outs.to_vec(),
            ..Default::default()
        },
        qdq_node("DequantizeLinear", format!("{t}_DequantizeLinear"), outs.to_vec(), dq_out.clone(), None, false),
    ];
    Ok((nodes, Vec::new(), dq_out))
}

/// Nodes and initializers that quantize the activation `a` (Clip for sub-8-bit grids, then Q, DQ).
fn activation_qdq(a: &ActQuant) -> Result<(Vec<pb::NodeProto>, Vec<pb::TensorProto>, String)> {
    if a.dynamic {
        return dynamic_qdq(a);
    }
    let t = &a.tensor;
    let p = a.params;
    let ty = IntType::for_params(&p);
    let (tmin, tmax) = ty.range();
    let mut nodes = Vec::new();
    let mut inits = vec![
        float_tensor(&format!("{t}_scale"), &[], &[p.scale]),
        int_tensor(&format!("{t}_zero_point"), &[], ty, &[p.zero_point]),
    ];
    let mut source = t.clone();
    if p.range.qmin > tmin || p.range.qmax < tmax {
        // A narrower grid than the stored type: clip to its real range before quantizing.
        let (lo, hi) = p.real_range();
        inits.push(float_tensor(&format!("{t}_clip_min"), &[], &[lo]));
        inits.push(float_tensor(&format!("{t}_clip_max"), &[], &[hi]));
        nodes.push(pb::NodeProto {
            op_type: "Clip".into(),
            name: format!("{t}_Clip"),
            input: vec![t.clone(), format!("{t}_clip_min"), format!("{t}_clip_max")],
            output: vec![format!("{t}_Clip_Output")],
            ..Default::default()
        });
        source = format!("{t}_Clip_Output");
    }
    let q_out = format!("{t}_QuantizeLinear_Output");
    let dq_out = format!("{t}_DequantizeLinear_Output");
    let params = |first: String| vec![first, format!("{t}_scale"), format!("{t}_zero_point")];
    nodes.push(qdq_node(
        "QuantizeLinear",
        format!("{t}_QuantizeLinear"),
        params(source),
        q_out.clone(),
        None,
        ty.is_16(),
    ));
    nodes.push(qdq_node(
        "DequantizeLinear",
        format!("{t}_DequantizeLinear"),
        params(q_out),
        dq_out.clone(),
        None,
        ty.is_16(),
    ));
    Ok((nodes, inits, dq_out))
}

/// Initializers and the DequantizeLinear node of a quantized weight; returns the DQ output name.
fn weight_dq(lp: &LayerPlan, w: &str, dims: &[i64]) -> Result<(Vec<pb::NodeProto>, Vec<pb::TensorProto>, String)> {
    let Some(wq) = &lp.weight_quant else { return Err(Error::Config("no quantized weight".into())) };
    if blockwise::is_blockwise(lp) {
        return blockwise::blocked_dq(lp, w, dims);
    }
    if wq.float_zero.is_some() {
        return Err(Error::Config(format!(
            "layer '{}': real-valued zero points (HQQ) need block-wise weights and the matmulnbits weight format",
            lp.layer
        )));
    }
    let ty = IntType::for_params(&wq.params[0]);
    let values: Vec<i32> = wq.q.iter().map(|&v| i32::from(v)).collect();
    let scales: Vec<f32> = wq.params.iter().map(|p| p.scale).collect();
    let zps: Vec<i32> = wq.params.iter().map(|p| p.zero_point).collect();
    let pdims: Vec<i64> = if wq.axis.is_some() { vec![scales.len() as i64] } else { vec![] };
    let inits = vec![
        int_tensor(&format!("{w}_quantized"), dims, ty, &values),
        float_tensor(&format!("{w}_scale"), &pdims, &scales),
        int_tensor(&format!("{w}_zero_point"), &pdims, ty, &zps),
    ];
    let out = format!("{w}_DequantizeLinear_Output");
    let node = qdq_node(
        "DequantizeLinear",
        format!("{w}_DequantizeLinear"),
        vec![format!("{w}_quantized"), format!("{w}_scale"), format!("{w}_zero_point")],
        out.clone(),
        wq.axis.map(|a| a as i64),
        ty.is_16(),
    );
    Ok((vec![node], inits, out))
}

/// The int32 initializers and DequantizeLinear of a quantized bias (per channel when the weight
/// is); returns the node, initializers and DQ output name.
fn bias_dq(b: &BiasQuant, lp: &LayerPlan, t: &str, dims: &[i64]) -> (pb::NodeProto, Vec<pb::TensorProto>, String) {
    let per_channel = b.scales.len() > 1 && lp.weight_quant.as_ref().is_some_and(|w| w.axis.is_some());
    let (sdims, scales, zps): (Vec<i64>, Vec<f32>, Vec<i32>) = if per_channel {
        (vec![b.scales.len() as i64], b.scales.clone(), vec![0; b.scales.len()])
    } else {
        (vec![], vec![b.scales[0]], vec![0])
    };
    let inits = vec![
        int_tensor(&format!("{t}_quantized"), dims, IntType::I32, &b.q),
        float_tensor(&format!("{t}_quantized_scale"), &sdims, &scales),
        int_tensor(&format!("{t}_quantized_zero_point"), &sdims, IntType::I32, &zps),
    ];
    let out = format!("{t}_DequantizeLinear_Output");
    let node = qdq_node(
        "DequantizeLinear",
        format!("{t}_DequantizeLinear"),
        vec![format!("{t}_quantized"), format!("{t}_quantized_scale"), format!("{t}_quantized_zero_point")],
        out.clone(),
        per_channel.then_some(0),
        false,
    );
    (node, inits, out)
}

/// The QDQ model for `plan`.
pub fn export_qdq(model: &OnnxModel, plan: &QuantPlan) -> Result<pb::ModelProto> {
    let mut proto = model.proto.clone();
    let wide = plan.activations.values().any(|a| !a.dynamic && IntType::for_params(&a.params).is_16())
        || plan
            .layers
            .iter()
            .any(|l| l.weight_quant.as_ref().is_some_and(|w| IntType::for_params(&w.params[0]).is_16()));
    let nbits: BTreeMap<String, NBits> = plan
        .layers
        .iter()
        .filter(|l| plan.weight_format == WeightFormat::MatMulNBits && blockwise::is_blockwise(l))
        .filter_map(|l| blockwise::nbits_layout(model, l).map(|n| (l.layer.clone(), n)))
        .collect();
    let blocked_dq = plan.layers.iter().any(|l| blockwise::is_blockwise(l) && !nbits.contains_key(&l.layer));
    let mut target_opset = plan.export_opset(model.summary.opset);
    if blocked_dq {
        target_opset = target_opset.max(blockwise::BLOCKED_OPSET);
        proto.ir_version = proto.ir_version.max(blockwise::BLOCKED_IR_VERSION);
    }
    if (wide || !nbits.is_empty()) && !proto.opset_import.iter().any(|o| o.domain == "com.microsoft") {
        proto.opset_import.push(pb::OperatorSetIdProto { domain: "com.microsoft".into(), version: 1 });
    }
    proto.producer_name = "quantbench".into();
    proto.producer_version = env!("CARGO_PKG_VERSION").into();
    let graph = proto.graph.as_mut().ok_or_else(|| Error::InvalidModel("no graph".into()))?;
    emit(model, plan, graph, &mut QdqSink { names: ConstantNames::default(), nbits, nbits_inputs: BTreeMap::new() })?;
    // The Q/DQ nodes are written as the target opset reads them; the model's own ops whose
    // signature changed up to it are converted (model::opset).
    crate::model::opset::upgrade(&mut proto, target_opset, &model.path)?;
    Ok(proto)
}

/// The export's sink of the plan walk: Q/DQ nodes and integer constants as ONNX Runtime's
/// `quantize_static` writes them.
struct QdqSink {
    /// Unique names for shared weights and biases.
    names: ConstantNames,
    /// The layers written as MatMulNBits.
    nbits: BTreeMap<String, NBits>,
    /// Their weight inputs (B, scales, zero points), once written.
    nbits_inputs: BTreeMap<String, Vec<String>>,
}

impl Sink for QdqSink {
    fn activation(&mut self, a: &ActQuant) -> Result<Emitted> {
        let (nodes, inits, output) = activation_qdq(a)?;
        Ok(Emitted { nodes, inits, output })
    }

    fn weight(&mut self, lp: &LayerPlan, dims: &[i64]) -> Result<Emitted> {
        let name = self.names.name(&lp.weight, &lp.layer);
        if let Some(l) = self.nbits.get(&lp.layer) {
            let (inits, inputs) = blockwise::nbits_inits(lp, &name, l)?;
            let output = inputs[0].clone();
            self.nbits_inputs.insert(lp.layer.clone(), inputs);
            return Ok(Emitted { nodes: Vec::new(), inits, output });
        }
        let (nodes, inits, output) = weight_dq(lp, &name, dims)?;
        Ok(Emitted { nodes, inits, output })
    }

    fn layer_node(&mut self, node: pb::NodeProto, lp: &LayerPlan, _act: Option<&ActQuant>) -> Emitted {
        match (self.nbits.get(&lp.layer), self.nbits_inputs.get(&lp.layer)) {
            (Some(l), Some(inputs)) => {
                Emitted { nodes: vec![blockwise::nbits_node(&node, inputs, l)], ..Emitted::default() }
            }
            _ => Emitted { nodes: vec![node], ..Emitted::default() },
        }
    }

    fn bias(&mut self, b: &BiasQuant, lp: &LayerPlan, dims: &[i64]) -> Result<Emitted> {
        let name = self.names.name(&b.tensor, &lp.layer);
        let (node, inits, output) = bias_dq(b, lp, &name, dims);
        Ok(Emitted { nodes: vec![node], inits, output })
    }
}
