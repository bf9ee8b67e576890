//! Builds a [`ModelSummary`] from the ONNX protobuf: shapes, nodes, constants, quantizable layers.

use std::collections::BTreeMap;

use tract_onnx::pb;
use tract_onnx::pb::tensor_shape_proto::dimension::Value as DimValue;
use tract_onnx::pb::type_proto::Value as TypeValue;

use super::graph::{attr_i, constants, is_default_domain, node_name};
use super::summary::{Dim, ModelSummary, NodeInfo, QuantizableLayer, TensorInfo};
use crate::error::{Error, Result};

/// The ONNX name of an element type code.
pub(crate) fn elem_type_name(code: i32) -> &'static str {
    match code {
        1 => "float32",
        2 => "uint8",
        3 => "int8",
        4 => "uint16",
        5 => "int16",
        6 => "int32",
        7 => "int64",
        8 => "string",
        9 => "bool",
        10 => "float16",
        11 => "float64",
        12 => "uint32",
        13 => "uint64",
        16 => "bfloat16",
        21 => "uint4",
        22 => "int4",
        _ => "unknown",
    }
}

/// Bytes per element of an element type code (strings count as 0).
fn elem_size_bytes(code: i32) -> u64 {
    match code {
        2 | 3 | 9 | 21 | 22 => 1,
        4 | 5 | 10 | 16 => 2,
        1 | 6 | 12 => 4,
        7 | 11 | 13 => 8,
        _ => 0,
    }
}

fn is_float(code: i32) -> bool {
    matches!(code, 1 | 10 | 11 | 16)
}

fn tensor_info(v: &pb::ValueInfoProto) -> TensorInfo {
    let (elem_type, shape) = match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(TypeValue::TensorType(t)) => {
            let shape = t
                .shape
                .as_ref()
                .map(|s| {
                    s.dim
                        .iter()
                        .map(|d| match &d.value {
                            Some(DimValue::DimValue(n)) if *n >= 0 => Dim::Fixed(n.unsigned_abs()),
                            Some(DimValue::DimParam(p)) if !p.is_empty() => Dim::Symbolic(p.clone()),
                            _ => Dim::Symbolic("?".into()),
                        })
                        .collect()
                })
                .unwrap_or_default();
            (elem_type_name(t.elem_type).to_string(), shape)
        }
        _ => ("unknown".to_string(), Vec::new()),
    };
    TensorInfo { name: v.name.clone(), elem_type, shape }
}

fn dims_u64(t: &pb::TensorProto) -> Result<Vec<u64>> {
    t.dims
        .iter()
        .map(|&d| {
            u64::try_from(d).map_err(|_| Error::InvalidModel(format!("tensor '{}' has negative dim {d}", t.name)))
        })
        .collect()
}

/// Recognises a quantizable layer: the op type is known and its weight input is a float constant.
fn quantizable_layer(n: &pb::NodeProto, consts: &BTreeMap<&str, &pb::TensorProto>) -> Result<Option<QuantizableLayer>> {
    let op = n.op_type.as_str();
    if op == "Gather" {
        return embedding(n, consts);
    }
    if !matches!(op, "Conv" | "ConvTranspose" | "Gemm" | "MatMul") || n.input.len() < 2 {
        return Ok(None);
    }
    let Some(weight) = consts.get(n.input[1].as_str()).filter(|t| is_float(t.data_type)) else {
        return Ok(None);
    };
    let weight_shape = dims_u64(weight)?;
    let rank = weight_shape.len();
    let out_channel_axis = match op {
        "Conv" if rank >= 3 => 0,
        "ConvTranspose" if rank >= 3 => 1,
        "Gemm" if rank == 2 => usize::from(attr_i(n, "transB", 0) == 0),
        "MatMul" if rank >= 2 => rank - 1,
        _ => return Ok(None),
    };
    let bias = n
        .input
        .get(2)
        .filter(|b| !b.is_empty() && consts.get(b.as_str()).is_some_and(|t| is_float(t.data_type)))
        .cloned();
    let group = if op.starts_with("Conv") { attr_i(n, "group", 1).max(1).unsigned_abs() } else { 1 };
    Ok(Some(QuantizableLayer {
        name: node_name(n),
        op_type: op.to_string(),
        input: n.input[0].clone(),
        weight: n.input[1].clone(),
        weight_shape,
        out_channel_axis,
        bias,
        output: n.output.first().cloned().unwrap_or_default(),
        group,
    }))
}

/// An embedding: a Gather along axis 0 of a 2-D float constant table `[rows, dim]`, its
/// weight the table (input 0), its input the indices (input 1); each row is a channel.
fn embedding(n: &pb::NodeProto, consts: &BTreeMap<&str, &pb::TensorProto>) -> Result<Option<QuantizableLayer>> {
    let (Some(table), Some(indices)) = (n.input.first(), n.input.get(1)) else { return Ok(None) };
    let Some(t) = consts.get(table.as_str()).filter(|t| is_float(t.data_type) && t.dims.len() == 2) else {
        return Ok(None);
    };
    if attr_i(n, "axis", 0) != 0 {
        return Ok(None);
    }
    Ok(Some(QuantizableLayer {
        name: node_name(n),
        op_type: "Gather".into(),
        input: indices.clone(),
        weight: table.clone(),
        weight_shape: dims_u64(t)?,
        out_channel_axis: 0,
        bias: None,
        output: n.output.first().cloned().unwrap_or_default(),
        group: 1,
    }))
}

/// Builds the summary of a decoded model (the graph must be present).
pub(crate) fn summarize(proto: &pb::ModelProto, name: String) -> Result<ModelSummary> {
    let graph = proto.graph.as_ref().ok_or_else(|| Error::InvalidModel("the model has no graph".into()))?;
    let consts = constants(graph);
    let initializer_names: std::collections::BTreeSet<&str> =
        graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs: Vec<TensorInfo> =
        graph.input.iter().filter(|v| !initializer_names.contains(v.name.as_str())).map(tensor_info).collect();
    if inputs.is_empty() {
        return Err(Error::InvalidModel("the graph has no inputs".into()));
    }
    let outputs: Vec<TensorInfo> = graph.output.iter().map(tensor_info).collect();
    if outputs.is_empty() {
        return Err(Error::InvalidModel("the graph has no outputs".into()));
    }
    let nodes: Vec<NodeInfo> = graph
        .node
        .iter()
        .map(|n| NodeInfo {
            name: node_name(n),
            op_type: n.op_type.clone(),
            domain: n.domain.clone(),
            inputs: n.input.clone(),
            outputs: n.output.clone(),
        })
        .collect();
    let mut op_counts = BTreeMap::new();
    for n in &nodes {
        *op_counts.entry(n.op_type.clone()).or_insert(0) += 1;
    }
    let mut layers = Vec::new();
    for n in &graph.node {
        if let Some(layer) = quantizable_layer(n, &consts)? {
            layers.push(layer);
        }
    }
    let mut param_count = 0u64;
    let mut float_size_bytes = 0u64;
    for t in consts.values() {
        let elems = dims_u64(t)?
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| Error::InvalidModel(format!("tensor '{}' has an overflowing element count", t.name)))?;
        let overflow = || Error::InvalidModel(format!("tensor '{}' is too large to be real", t.name));
        if is_float(t.data_type) {
            param_count = param_count.checked_add(elems).ok_or_else(overflow)?;
        }
        let bytes = elems.checked_mul(elem_size_bytes(t.data_type)).ok_or_else(overflow)?;
        // Inline raw data must fill the shape (4-bit types pack two values a byte: not checked).
        let held = t.raw_data.len() as u64;
        if held > 0 && !matches!(t.data_type, 21 | 22) && elem_size_bytes(t.data_type) > 0 && held != bytes {
            return Err(Error::InvalidModel(format!(
                "tensor '{}' holds {held} bytes of data but its shape {:?} needs {bytes}",
                t.name, t.dims
            )));
        }
        float_size_bytes = float_size_bytes.checked_add(bytes).ok_or_else(overflow)?;
    }
    let opset = proto.opset_import.iter().find(|o| is_default_domain(&o.domain)).map_or(1, |o| o.version);
    let producer = format!("{} {}", proto.producer_name, proto.producer_version).trim().to_string();
    Ok(ModelSummary {
        name,
        opset,
        producer,
        inputs,
        outputs,
        nodes,
        layers,
        op_counts,
        param_count,
        float_size_bytes,
        renamed: BTreeMap::new(),
    })
}
