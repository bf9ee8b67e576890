//! ONNX graph editing, in one place: tensor and node builders, typed attribute access, constant
//! lookup and replacement, and the consumer index. Every module that reads or rewrites a graph
//! (algorithms, plan, simulation, export) goes through these helpers and the protobuf types
//! re-exported as [`crate::model::onnx`].

use std::collections::BTreeMap;

use super::onnx as pb;
use crate::error::{Error, Result};

/// ONNX `TensorProto.DataType` codes used by QuantBench.
pub mod dtype {
    /// float32.
    pub const FLOAT: i32 = 1;
    /// uint8.
    pub const UINT8: i32 = 2;
    /// int8.
    pub const INT8: i32 = 3;
    /// uint16.
    pub const UINT16: i32 = 4;
    /// int16.
    pub const INT16: i32 = 5;
    /// int32.
    pub const INT32: i32 = 6;
    /// int64.
    pub const INT64: i32 = 7;
}

/// A float32 tensor proto.
pub fn float_tensor(name: &str, dims: &[i64], values: &[f32]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.to_string(),
        dims: dims.to_vec(),
        data_type: dtype::FLOAT,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// An int64 1-D tensor proto.
pub fn int64_tensor(name: &str, values: &[i64]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.to_string(),
        dims: vec![values.len() as i64],
        data_type: dtype::INT64,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// A node with one output, in the default domain.
pub fn node(op: &str, name: String, inputs: &[&str], output: String) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.to_string(),
        name,
        input: inputs.iter().map(|s| (*s).to_string()).collect(),
        output: vec![output],
        ..Default::default()
    }
}

/// An INT attribute.
pub fn int_attribute(name: &str, v: i64) -> pb::AttributeProto {
    pb::AttributeProto { name: name.into(), r#type: 2, i: v, ..Default::default() }
}

/// A FLOAT attribute.
pub fn float_attribute(name: &str, v: f32) -> pb::AttributeProto {
    pb::AttributeProto { name: name.into(), r#type: 1, f: v, ..Default::default() }
}

/// The INT attribute `name` of `n`, or `default`.
pub fn attr_i(n: &pb::NodeProto, name: &str, default: i64) -> i64 {
    n.attribute.iter().find(|a| a.name == name).map_or(default, |a| a.i)
}

/// The FLOAT attribute `name` of `n`, or `default`.
pub fn attr_f(n: &pb::NodeProto, name: &str, default: f32) -> f32 {
    n.attribute.iter().find(|a| a.name == name).map_or(default, |a| a.f)
}

/// The INTS attribute `name` of `n`, when present.
pub fn attr_ints(n: &pb::NodeProto, name: &str) -> Option<Vec<i64>> {
    n.attribute.iter().find(|a| a.name == name).map(|a| a.ints.clone())
}

/// The STRING attribute `name` of `n` (empty when absent).
pub fn attr_s(n: &pb::NodeProto, name: &str) -> String {
    n.attribute.iter().find(|a| a.name == name).map(|a| String::from_utf8_lossy(&a.s).to_string()).unwrap_or_default()
}

/// Whether `domain` (of a node or an opset import) is the default ONNX domain.
pub fn is_default_domain(domain: &str) -> bool {
    matches!(domain, "" | "ai.onnx")
}

/// A node's name: its own, else its first output's (layers are keyed by it).
pub fn node_name(n: &pb::NodeProto) -> String {
    if !n.name.is_empty() {
        n.name.clone()
    } else if let Some(o) = n.output.first().filter(|o| !o.is_empty()) {
        o.clone()
    } else {
        format!("<unnamed {}>", n.op_type)
    }
}

/// The nodes reading `tensor`, in graph order.
pub fn consumers<'a>(graph: &'a pb::GraphProto, tensor: &str) -> Vec<&'a pb::NodeProto> {
    graph.node.iter().filter(|n| n.input.iter().any(|i| i == tensor)).collect()
}

/// How many node inputs read `tensor` (a node reading it twice counts twice).
pub fn reader_count(graph: &pb::GraphProto, tensor: &str) -> usize {
    graph.node.iter().map(|n| n.input.iter().filter(|i| *i == tensor).count()).sum()
}

/// Whether `tensor` is a graph output.
pub fn is_graph_output(graph: &pb::GraphProto, tensor: &str) -> bool {
    graph.output.iter().any(|o| o.name == tensor)
}

/// All constant tensors of the graph (initializers and `Constant` node values), by name.
pub fn constants(graph: &pb::GraphProto) -> BTreeMap<&str, &pb::TensorProto> {
    let mut map: BTreeMap<&str, &pb::TensorProto> = graph.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
    for n in graph.node.iter().filter(|n| n.op_type == "Constant") {
        let value = n.attribute.iter().find(|a| a.name == "value").and_then(|a| a.t.as_ref());
        if let (Some(t), Some(out)) = (value, n.output.first()) {
            map.insert(out.as_str(), t);
        }
    }
    map
}

/// Whether the graph holds the constant `name` (initializer or `Constant` node).
pub fn has_constant(graph: &pb::GraphProto, name: &str) -> bool {
    graph.initializer.iter().any(|t| t.name == name)
        || graph.node.iter().any(|n| n.op_type == "Constant" && n.output.first().map(String::as_str) == Some(name))
}

/// Replaces the data of the float constant `name` (initializer or `Constant` node) with
/// `values`, keeping its name and dims.
pub fn replace_constant(graph: &mut pb::GraphProto, name: &str, values: &[f32]) -> Result<()> {
    let slot = if let Some(t) = graph.initializer.iter_mut().find(|t| t.name == name) {
        t
    } else {
        graph
            .node
            .iter_mut()
            .filter(|n| n.op_type == "Constant" && n.output.first().map(String::as_str) == Some(name))
            .find_map(|n| n.attribute.iter_mut().find(|a| a.name == "value").and_then(|a| a.t.as_mut()))
            .ok_or_else(|| Error::InvalidModel(format!("constant '{name}' not found")))?
    };
    let dims = slot.dims.clone();
    let keep_name = slot.name.clone();
    *slot = float_tensor(&keep_name, &dims, values);
    Ok(())
}

/// Removes the constant `name` (initializer, its graph input, or Constant node) when nothing
/// reads it any more.
pub fn drop_constant_if_unused(graph: &mut pb::GraphProto, name: &str) {
    if reader_count(graph, name) > 0 || is_graph_output(graph, name) {
        return;
    }
    graph.initializer.retain(|t| t.name != name);
    graph.input.retain(|i| i.name != name);
    graph.node.retain(|n| !(n.op_type == "Constant" && n.output.first().map(String::as_str) == Some(name)));
}

/// A float32 graph input/output declaration with concrete dims.
pub fn float_value_info(name: &str, dims: &[usize]) -> pb::ValueInfoProto {
    value_info(name, dtype::FLOAT, dims)
}

/// The element type code a graph input/output declares (None when it declares no tensor type).
pub fn declared_elem_type(v: &pb::ValueInfoProto) -> Option<i32> {
    match v.r#type.as_ref()?.value.as_ref()? {
        pb::type_proto::Value::TensorType(t) => Some(t.elem_type),
    }
}

/// A graph input/output declaration of element type `elem_type` with concrete dims.
pub fn value_info(name: &str, elem_type: i32, dims: &[usize]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension::Value};
    pb::ValueInfoProto {
        name: name.to_string(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type,
                shape: Some(pb::TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|&d| Dimension { value: Some(Value::DimValue(d as i64)), ..Default::default() })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_are_found_replaced_and_dropped_in_initializers_and_constant_nodes() {
        let mut g = pb::GraphProto::default();
        g.initializer.push(float_tensor("w", &[2], &[1.0, 2.0]));
        let mut c = node("Constant", "c".into(), &[], "b".into());
        c.attribute.push(pb::AttributeProto {
            name: "value".into(),
            r#type: 4,
            t: Some(float_tensor("b", &[1], &[3.0])),
            ..Default::default()
        });
        g.node.push(c);
        g.node.push(node("Add", "add".into(), &["w", "b"], "y".into()));
        assert_eq!(constants(&g).keys().copied().collect::<Vec<_>>(), ["b", "w"]);
        assert!(has_constant(&g, "b") && has_constant(&g, "w") && !has_constant(&g, "y"));
        replace_constant(&mut g, "b", &[7.0]).expect("replace");
        assert_eq!(constants(&g)["b"].raw_data, 7.0f32.to_le_bytes());
        assert!(replace_constant(&mut g, "nope", &[1.0]).is_err());
        assert_eq!(consumers(&g, "w").len(), 1);
        drop_constant_if_unused(&mut g, "w");
        assert!(has_constant(&g, "w"), "still read by add");
        g.node.retain(|n| n.op_type != "Add");
        drop_constant_if_unused(&mut g, "w");
        drop_constant_if_unused(&mut g, "b");
        assert!(!has_constant(&g, "w") && !has_constant(&g, "b"));
    }

    #[test]
    fn attributes_read_with_defaults() {
        let mut n = node("Conv", String::new(), &["x"], "y".into());
        n.attribute.push(int_attribute("group", 4));
        assert_eq!(attr_i(&n, "group", 1), 4);
        assert_eq!(attr_i(&n, "missing", 9), 9);
        assert_eq!(attr_f(&n, "alpha", 0.5), 0.5);
        assert_eq!(attr_ints(&n, "pads"), None);
        assert_eq!(attr_s(&n, "auto_pad"), "");
        assert_eq!(node_name(&n), "y");
    }
}
