//! Tiny ONNX graphs built in Rust (through tract's protobuf types) for error-path tests.

use std::path::Path;

use prost::Message as _;
use quantbench_core::model::float_value_info;
use quantbench_core::model::onnx as pb;

/// A node of the default domain.
pub fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str]) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        name: name.into(),
        input: inputs.iter().map(|s| (*s).to_string()).collect(),
        output: outputs.iter().map(|s| (*s).to_string()).collect(),
        ..Default::default()
    }
}

/// A model with float input `x` [1, 4], output `y` [1, 4], and `nodes`, at opset 13.
pub fn model_with_nodes(nodes: Vec<pb::NodeProto>) -> pb::ModelProto {
    pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: 13 }],
        producer_name: "quantbench-tests".into(),
        graph: Some(pb::GraphProto {
            name: "g".into(),
            node: nodes,
            input: vec![float_value_info("x", &[1, 4])],
            output: vec![float_value_info("y", &[1, 4])],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Encodes `model` to `path`.
pub fn write_model(model: &pb::ModelProto, path: &Path) {
    std::fs::write(path, model.encode_to_vec()).expect("write model");
}
