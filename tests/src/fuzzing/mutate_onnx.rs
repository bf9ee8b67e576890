//! Structural mutations of ONNX models, made on the decoded `ModelProto` (opsets, nodes,
//! attributes, initializers, value infos) and re-encoded.

use prost::Message as _;
use quantbench_core::model::onnx as pb;

use super::Rng;
use super::mutate_bytes::INTERESTING_NUMBERS;

const INTERESTING_I64: &[i64] = &[
    0,
    1,
    -1,
    2,
    3,
    4,
    7,
    8,
    64,
    255,
    256,
    65535,
    65536,
    i32::MAX as i64,
    i32::MIN as i64,
    1 << 31,
    1 << 32,
    1 << 40,
    1 << 53,
    1 << 61,
    1 << 62,
    i64::MAX,
    i64::MIN,
];

const OPS: &[&str] = &[
    "Conv",
    "ConvTranspose",
    "Gemm",
    "MatMul",
    "Relu",
    "Clip",
    "Add",
    "Mul",
    "Reshape",
    "Flatten",
    "Transpose",
    "BatchNormalization",
    "Softmax",
    "Constant",
    "Identity",
    "Concat",
    "Slice",
    "Gather",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Resize",
    "Pad",
    "Squeeze",
    "Unsqueeze",
    "LayerNormalization",
    "HardSwish",
    "Sigmoid",
    "QuantizeLinear",
    "DequantizeLinear",
    "Cast",
    "Expand",
    "ConstantOfShape",
    "Range",
    "Tile",
    "TopK",
    "Split",
    "ReduceMean",
    "Einsum",
    "If",
    "Loop",
    "Scan",
    "NotAnOp",
    "",
];

const ATTRS: &[&str] = &[
    "group",
    "transA",
    "transB",
    "axis",
    "axes",
    "kernel_shape",
    "strides",
    "pads",
    "dilations",
    "perm",
    "value",
    "alpha",
    "beta",
    "to",
    "shape",
    "epsilon",
    "mode",
    "auto_pad",
    "output_padding",
    "keepdims",
    "split",
];

fn interesting_i64(rng: &mut Rng) -> i64 {
    if rng.chance(1, 4) { rng.next_u64() as i64 } else { *rng.pick(INTERESTING_I64) }
}

/// Decodes `base` as a model and applies 1–3 structural mutations, re-encoding the result; falls
/// back to raw bytes when `base` is not a model.
pub fn mutate_model_bytes(rng: &mut Rng, base: &[u8], donor: &[u8]) -> Vec<u8> {
    let Ok(mut model) = pb::ModelProto::decode(base) else { return base.to_vec() };
    let donor = pb::ModelProto::decode(donor).ok();
    for _ in 0..=rng.below(3) {
        mutate_model(rng, &mut model, donor.as_ref());
    }
    model.encode_to_vec()
}

fn tensor_names(g: &pb::GraphProto) -> Vec<String> {
    let mut names: Vec<String> = g.node.iter().flat_map(|n| n.input.iter().chain(&n.output)).cloned().collect();
    names.extend(g.initializer.iter().map(|t| t.name.clone()));
    names.extend(g.input.iter().chain(&g.output).map(|v| v.name.clone()));
    if names.is_empty() {
        names.push("x".into());
    }
    names
}

fn mutate_model(rng: &mut Rng, m: &mut pb::ModelProto, donor: Option<&pb::ModelProto>) {
    match rng.below(10) {
        0 => m.ir_version = interesting_i64(rng),
        1 => mutate_opsets(rng, &mut m.opset_import),
        _ => {
            let g = m.graph.get_or_insert_with(pb::GraphProto::default);
            let names = tensor_names(g);
            match rng.below(9) {
                0 | 1 => mutate_initializers(rng, g),
                2 | 3 => mutate_node(rng, g, &names),
                4 => mutate_node_list(rng, g),
                5 => mutate_value_infos(rng, g),
                6 => inject_constant(rng, g, &names),
                7 => {
                    if let Some(dg) = donor.and_then(|d| d.graph.as_ref()) {
                        if !dg.node.is_empty() && rng.chance(1, 2) {
                            let n = rng.pick(&dg.node).clone();
                            let at = rng.below(g.node.len() + 1);
                            g.node.insert(at, n);
                        } else if !dg.initializer.is_empty() {
                            g.initializer.push(rng.pick(&dg.initializer).clone());
                        }
                    }
                }
                _ => {
                    // Rename an initializer, or list it as a graph input too.
                    if !g.initializer.is_empty() {
                        let i = rng.below(g.initializer.len());
                        if rng.chance(1, 2) {
                            g.initializer[i].name.clone_from(rng.pick(&names));
                        } else {
                            let name = g.initializer[i].name.clone();
                            g.input.push(pb::ValueInfoProto { name, ..Default::default() });
                        }
                    }
                }
            }
        }
    }
}

fn mutate_opsets(rng: &mut Rng, opsets: &mut Vec<pb::OperatorSetIdProto>) {
    match rng.below(4) {
        0 => opsets.clear(),
        1 => opsets.push(pb::OperatorSetIdProto {
            domain: (*rng.pick(&["", "ai.onnx", "com.microsoft", "ai.onnx.ml"])).to_string(),
            version: interesting_i64(rng),
        }),
        _ => {
            if let Some(o) = opsets.first_mut() {
                o.version = *rng.pick(&[0, 1, 6, 7, 9, 11, 13, 17, 21, 99, -1, i64::MAX]);
            }
        }
    }
}

fn mutate_tensor(rng: &mut Rng, t: &mut pb::TensorProto) {
    match rng.below(9) {
        0 => {
            if t.dims.is_empty() {
                t.dims.push(interesting_i64(rng));
            } else {
                let i = rng.below(t.dims.len());
                t.dims[i] = interesting_i64(rng);
            }
        }
        1 => {
            if rng.chance(1, 2) {
                t.dims.push(*rng.pick(&[0, 1, 2, 1 << 31, 1 << 62]));
            } else {
                t.dims.pop();
            }
        }
        2 => t.data_type = if rng.chance(1, 3) { interesting_i64(rng) as i32 } else { rng.below(25) as i32 },
        3 => {
            let n = rng.below(t.raw_data.len() + 1);
            t.raw_data.truncate(n);
        }
        4 => {
            // raw_data → float_data (or back), keeping the values.
            if t.raw_data.is_empty() {
                t.raw_data = t.float_data.iter().flat_map(|f| f.to_le_bytes()).collect();
                t.float_data.clear();
            } else {
                t.float_data =
                    t.raw_data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
                t.raw_data.clear();
            }
        }
        5 => {
            t.raw_data.clear();
            t.float_data.clear();
            t.int64_data = vec![interesting_i64(rng); rng.below(4)];
            t.int32_data = vec![interesting_i64(rng) as i32; rng.below(4)];
        }
        6 => {
            t.data_location = Some(1);
            t.raw_data.clear();
            t.external_data = vec![
                pb::StringStringEntryProto {
                    key: "location".into(),
                    value: (*rng.pick(&["weights.bin", "", "../w.bin", "/etc/hostname", "."])).to_string(),
                },
                pb::StringStringEntryProto { key: "offset".into(), value: rng.pick(INTERESTING_NUMBERS).to_string() },
                pb::StringStringEntryProto { key: "length".into(), value: rng.pick(INTERESTING_NUMBERS).to_string() },
            ];
        }
        7 => {
            let v = rng.pick(&[f32::NAN, f32::INFINITY, -0.0, f32::MAX, 1e-45]);
            if t.raw_data.len() >= 4 {
                let at = rng.below(t.raw_data.len() / 4) * 4;
                t.raw_data[at..at + 4].copy_from_slice(&v.to_le_bytes());
            } else {
                t.float_data.push(*v);
            }
        }
        _ => t.segment = Some(pb::tensor_proto::Segment { begin: interesting_i64(rng), end: interesting_i64(rng) }),
    }
}

fn mutate_initializers(rng: &mut Rng, g: &mut pb::GraphProto) {
    if g.initializer.is_empty() || rng.chance(1, 10) {
        g.initializer.push(pb::TensorProto { name: "w".into(), dims: vec![4, 4], data_type: 1, ..Default::default() });
    }
    let i = rng.below(g.initializer.len());
    match rng.below(12) {
        0 => {
            g.initializer.remove(i);
        }
        1 => {
            let dup = g.initializer[i].clone();
            g.initializer.push(dup);
        }
        _ => mutate_tensor(rng, &mut g.initializer[i]),
    }
}

fn mutate_attribute(rng: &mut Rng, a: &mut pb::AttributeProto) {
    match rng.below(8) {
        0 => a.i = interesting_i64(rng),
        1 => {
            let n = rng.below(6);
            a.ints = (0..n).map(|_| interesting_i64(rng)).collect();
        }
        2 => a.r#type = rng.below(15) as i32,
        3 => a.f = *rng.pick(&[f32::NAN, f32::INFINITY, -1.0, 0.0, 1e30]),
        4 => a.floats = vec![*rng.pick(&[f32::NAN, 0.0, 1.0, -1e30]); rng.below(5)],
        5 => {
            let mut t = a.t.take().unwrap_or_default();
            mutate_tensor(rng, &mut t);
            a.t = Some(t);
        }
        6 => a.s = rng.pick(&[&b"linear"[..], b"nearest", b"SAME_UPPER", b"", b"\xFF\xFE"]).to_vec(),
        _ => a.name = (*rng.pick(ATTRS)).to_string(),
    }
}

fn mutate_node(rng: &mut Rng, g: &mut pb::GraphProto, names: &[String]) {
    if g.node.is_empty() {
        g.node.push(pb::NodeProto {
            op_type: "Relu".into(),
            input: vec!["x".into()],
            output: vec!["y".into()],
            ..Default::default()
        });
    }
    let i = rng.below(g.node.len());
    let n = &mut g.node[i];
    match rng.below(8) {
        0 => n.op_type = (*rng.pick(OPS)).to_string(),
        1 => n.domain = (*rng.pick(&["", "ai.onnx", "com.microsoft", "ai.onnx.ml", "custom"])).to_string(),
        2 | 3 => {
            let list = if rng.chance(2, 3) { &mut n.input } else { &mut n.output };
            let choice = rng.below(4);
            match choice {
                0 if !list.is_empty() => {
                    let k = rng.below(list.len());
                    list.remove(k);
                }
                1 => list.push(rng.pick(names).clone()),
                _ if !list.is_empty() => {
                    let k = rng.below(list.len());
                    list[k] = if rng.chance(1, 4) { String::new() } else { rng.pick(names).clone() };
                }
                _ => list.push("nonexistent".into()),
            }
        }
        4 => n.name = (*rng.pick(&["", "n", "a b", "ünïcode", "\u{0}"])).to_string(),
        5 | 6 if !n.attribute.is_empty() => {
            let k = rng.below(n.attribute.len());
            if rng.chance(1, 8) {
                n.attribute.remove(k);
            } else {
                mutate_attribute(rng, &mut n.attribute[k]);
            }
        }
        _ => {
            let mut a = pb::AttributeProto { name: (*rng.pick(ATTRS)).to_string(), r#type: 2, ..Default::default() };
            mutate_attribute(rng, &mut a);
            n.attribute.push(a);
        }
    }
}

fn mutate_node_list(rng: &mut Rng, g: &mut pb::GraphProto) {
    if g.node.is_empty() {
        return;
    }
    let i = rng.below(g.node.len());
    let j = rng.below(g.node.len());
    match rng.below(4) {
        0 => {
            g.node.remove(i);
        }
        1 => {
            let n = g.node[i].clone();
            g.node.insert(j, n);
        }
        2 => g.node.swap(i, j),
        _ => g.node.truncate(i + 1),
    }
}

fn mutate_value_infos(rng: &mut Rng, g: &mut pb::GraphProto) {
    use pb::tensor_shape_proto::dimension::Value as DimValue;
    use pb::type_proto::Value as TypeValue;
    let list = if rng.chance(1, 2) { &mut g.input } else { &mut g.output };
    if list.is_empty() {
        list.push(pb::ValueInfoProto { name: "x".into(), ..Default::default() });
    }
    let i = rng.below(list.len());
    match rng.below(6) {
        0 => {
            list.remove(i);
        }
        1 => {
            let v = list[i].clone();
            list.push(v);
        }
        2 => list[i].r#type = None,
        _ => {
            let t = list[i].r#type.get_or_insert_with(pb::TypeProto::default);
            if !matches!(t.value, Some(TypeValue::TensorType(_))) {
                t.value = Some(TypeValue::TensorType(pb::type_proto::Tensor { elem_type: 1, shape: None }));
            }
            let Some(TypeValue::TensorType(tt)) = t.value.as_mut() else { return };
            if rng.chance(1, 4) {
                tt.elem_type = rng.below(25) as i32;
                return;
            }
            let shape = tt.shape.get_or_insert_with(pb::TensorShapeProto::default);
            let dim = pb::tensor_shape_proto::Dimension {
                value: match rng.below(4) {
                    0 => None,
                    1 => Some(DimValue::DimParam(
                        (*rng.pick(&["", "batch", "?", "unk__1", "n+1", "2*batch", "1/2"])).to_string(),
                    )),
                    _ => Some(DimValue::DimValue(interesting_i64(rng))),
                },
                ..Default::default()
            };
            if shape.dim.is_empty() || rng.chance(1, 4) {
                shape.dim.push(dim);
            } else if rng.chance(1, 6) {
                shape.dim.clear();
            } else {
                let k = rng.below(shape.dim.len());
                shape.dim[k] = dim;
            }
        }
    }
}

/// Replaces a tensor with a `Constant` node whose value has interesting dims.
fn inject_constant(rng: &mut Rng, g: &mut pb::GraphProto, names: &[String]) {
    let out = if g.initializer.is_empty() || rng.chance(1, 3) {
        rng.pick(names).clone()
    } else {
        let k = rng.below(g.initializer.len());
        g.initializer.remove(k).name
    };
    let mut t = pb::TensorProto { dims: vec![2, 2], data_type: 1, float_data: vec![1.0; 4], ..Default::default() };
    mutate_tensor(rng, &mut t);
    let node = pb::NodeProto {
        op_type: "Constant".into(),
        output: vec![out],
        attribute: vec![pb::AttributeProto { name: "value".into(), r#type: 4, t: Some(t), ..Default::default() }],
        ..Default::default()
    };
    g.node.insert(0, node);
}
