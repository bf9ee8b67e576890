//! Opset conversion of the default ONNX domain, from opset 10 up to 21: what export needs when
//! per-channel DequantizeLinear (opset 13) or block-wise DequantizeLinear with INT4 weights
//! (opset 21) goes into an older model. Only the operators
//! whose signature or semantics changed between the two opsets are rewritten, each to the form
//! that computes the same in the new opset (as `onnx.version_converter`'s adapters do):
//!
//! | op | changed at | rewrite |
//! |---|---|---|
//! | Clip | 11 | `min`/`max` attributes → inputs |
//! | Pad | 11 | `pads`/`value` attributes → inputs |
//! | Resize | 11 | `roi` input inserted; opset 10's sampling is `asymmetric` (nearest, as ONNX Runtime rounds it: `floor` when upsampling, `ceil` when downsampling) |
//! | Scatter | 11 | renamed ScatterElements (same semantics) |
//! | Dropout | 12 | `ratio` attribute → input |
//! | Split | 13 | `split` attribute → input |
//! | Squeeze, Unsqueeze, ReduceSum | 13 | `axes` attribute → input |
//! | Softmax, LogSoftmax, Hardmax | 13 | the old 2-D coercion around `axis` made explicit: Flatten → op on the last axis → Reshape to the input's shape (unless `axis` is already the last) |
//! | RoiAlign | 16 | the old sampling made explicit: `coordinate_transformation_mode = output_half_pixel` |
//! | ReduceMean, ReduceMax, ReduceMin, ReduceProd, ReduceL1, ReduceL2, ReduceLogSum, ReduceLogSumExp, ReduceSumSquare | 18 | `axes` attribute → input |
//! | Split | 18 | without a `split` input, the equal split made explicit: `num_outputs` |
//! | GridSample | 20 | `mode` renamed: `bilinear` → `linear`, `bicubic` → `cubic` |
//! | GroupNormalization, DFT | 21, 20 | refused (their inputs' meaning changed) |
//!
//! The other operators that changed between 13 and 21 gained types or optional attributes and
//! inputs whose defaults keep the old behaviour.
//!
//! An operator that changed in a way this module does not convert is refused by name, never
//! written in a form the new opset reads differently.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::graph::{
    attr_i, attr_s, constants, dtype, float_tensor, int_attribute, int64_tensor, is_default_domain, node, node_name,
};
use super::onnx as pb;
use crate::error::{Error, Result};

/// The oldest opset converted from.
pub const OLDEST_CONVERTED: i64 = 10;
/// The newest opset converted to (ops that changed after it are not known here).
pub const NEWEST_TARGET: i64 = 21;

/// The opsets at which `op`'s signature changed (among the versions this module converts).
fn changed_at(op: &str) -> &'static [i64] {
    match op {
        "Clip" | "Pad" | "Resize" | "Scatter" => &[11],
        "Dropout" => &[12],
        "Squeeze" | "Unsqueeze" | "ReduceSum" | "Softmax" | "LogSoftmax" | "Hardmax" => &[13],
        "Split" => &[13, 18],
        "RoiAlign" => &[16],
        "ReduceMean" | "ReduceMax" | "ReduceMin" | "ReduceProd" | "ReduceL1" | "ReduceL2" | "ReduceLogSum"
        | "ReduceLogSumExp" | "ReduceSumSquare" => &[18],
        "GridSample" | "DFT" => &[20],
        "GroupNormalization" => &[21],
        _ => &[],
    }
}

/// Whether `op` changed in (`from`, `to`] at `version`.
fn changes(op: &str, from: i64, to: i64, version: i64) -> bool {
    changed_at(op).contains(&version) && from < version && version <= to
}

/// Rewrites the default-domain nodes of `model` from its opset to `to` and sets the opset import.
/// Refuses models older than opset 10 that use an operator which changed before it. `path` is the
/// file the model was read from (constants in external data are found beside it).
pub fn upgrade(model: &mut pb::ModelProto, to: i64, path: &Path) -> Result<()> {
    let Some(import) = model.opset_import.iter_mut().find(|o| is_default_domain(&o.domain)) else {
        return Err(Error::InvalidModel("the model imports no default-domain opset".into()));
    };
    let from = import.version;
    if from >= to {
        return Ok(());
    }
    if to > NEWEST_TARGET {
        return Err(Error::Config(format!(
            "converting opset {from} to {to} is not supported (QuantBench converts up to opset {NEWEST_TARGET})"
        )));
    }
    import.version = to;
    // The IR version that first holds the opset (ONNX's version table).
    let ir = match to {
        ..=12 => 7,
        13..=18 => 8,
        19..=20 => 9,
        _ => 10,
    };
    model.ir_version = model.ir_version.max(ir);
    let graph = model.graph.as_mut().ok_or_else(|| Error::InvalidModel("no graph".into()))?;
    if from < OLDEST_CONVERTED {
        let older: BTreeSet<&str> = graph
            .node
            .iter()
            .filter(|n| is_default_domain(&n.domain) && changed_before_10(&n.op_type, from))
            .map(|n| n.op_type.as_str())
            .collect();
        if !older.is_empty() {
            return Err(Error::Config(format!(
                "export needs opset {to}, the model is opset {from} and uses {}, which changed before opset {OLDEST_CONVERTED}; \
                 QuantBench converts models of opset {OLDEST_CONVERTED} and newer",
                older.into_iter().collect::<Vec<_>>().join(", ")
            )));
        }
    }
    let mut names = Names::of(graph);
    let resize_scales = resize_scales(graph, path)?;
    let old = std::mem::take(&mut graph.node);
    for n in old {
        if !is_default_domain(&n.domain) {
            graph.node.push(n);
            continue;
        }
        let rewritten = convert(n, from, to, &mut names, &mut graph.initializer, &resize_scales)?;
        graph.node.extend(rewritten);
    }
    Ok(())
}

/// Whether `op` changed its signature between opset `from` and 10 (not converted): Upsample was
/// removed, Slice and TopK took attributes as inputs at 10, and before 9 more ops changed.
fn changed_before_10(op: &str, from: i64) -> bool {
    matches!(op, "Upsample" | "Slice" | "TopK")
        || (from < 9 && matches!(op, "BatchNormalization" | "Dropout" | "Gemm" | "Concat" | "Cast" | "Flatten"))
}

/// The constant float scales of opset-10 Resize nodes, by tensor name (read as every constant is,
/// by `model::load_tensor`).
fn resize_scales(graph: &pb::GraphProto, path: &Path) -> Result<BTreeMap<String, Vec<f32>>> {
    let consts = constants(graph);
    let mut scales = BTreeMap::new();
    for t in graph.node.iter().filter(|n| n.op_type == "Resize").filter_map(|n| n.input.get(1)) {
        if let Some(c) = consts.get(t.as_str()).filter(|c| c.data_type == dtype::FLOAT) {
            let tensor = super::load_tensor(c, path)?;
            let values = tensor.to_plain_array_view::<f32>().map_err(|e| Error::runtime(&e))?;
            scales.insert(t.clone(), values.iter().copied().collect());
        }
    }
    Ok(scales)
}

/// Fresh, unique tensor and node names.
struct Names(BTreeSet<String>);

impl Names {
    fn of(graph: &pb::GraphProto) -> Self {
        let mut set: BTreeSet<String> = graph.initializer.iter().map(|t| t.name.clone()).collect();
        for n in &graph.node {
            set.insert(n.name.clone());
            set.extend(n.output.iter().cloned());
            set.extend(n.input.iter().cloned());
        }
        set.extend(graph.input.iter().map(|i| i.name.clone()));
        set.extend(graph.output.iter().map(|o| o.name.clone()));
        Self(set)
    }

    fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut k = 1;
        while !self.0.insert(name.clone()) {
            name = format!("{base}_{k}");
            k += 1;
        }
        name
    }
}

fn take_attr(n: &mut pb::NodeProto, name: &str) -> Option<pb::AttributeProto> {
    let ix = n.attribute.iter().position(|a| a.name == name)?;
    Some(n.attribute.remove(ix))
}

fn set_input(n: &mut pb::NodeProto, ix: usize, tensor: String) {
    while n.input.len() < ix {
        n.input.push(String::new());
    }
    if n.input.len() == ix {
        n.input.push(tensor);
    } else {
        n.input[ix] = tensor;
    }
}

fn string_attribute(name: &str, v: &str) -> pb::AttributeProto {
    pb::AttributeProto { name: name.into(), r#type: 3, s: v.as_bytes().to_vec(), ..Default::default() }
}

/// One node in the opset `to`: itself, rewritten, or the nodes that replace it.
fn convert(
    mut n: pb::NodeProto,
    from: i64,
    to: i64,
    names: &mut Names,
    inits: &mut Vec<pb::TensorProto>,
    resize_scales: &BTreeMap<String, Vec<f32>>,
) -> Result<Vec<pb::NodeProto>> {
    if n.op_type == "Resize" && to >= 13 && attr_s(&n, "coordinate_transformation_mode") == "tf_half_pixel_for_nn" {
        return Err(Error::Config(format!(
            "Resize '{}' uses coordinate_transformation_mode tf_half_pixel_for_nn, which opset 13 removed",
            node_name(&n)
        )));
    }
    if !changed_at(&n.op_type).iter().any(|&v| from < v && v <= to) {
        return Ok(vec![n]);
    }
    let base = node_name(&n);
    let mut constant_input = |n: &mut pb::NodeProto, ix: usize, suffix: &str, t: pb::TensorProto| {
        let name = names.fresh(&format!("{base}_{suffix}"));
        inits.push(pb::TensorProto { name: name.clone(), ..t });
        set_input(n, ix, name);
    };
    match n.op_type.as_str() {
        "Clip" => {
            let min = take_attr(&mut n, "min");
            let max = take_attr(&mut n, "max");
            if let Some(a) = min {
                constant_input(&mut n, 1, "min", float_tensor("", &[], &[a.f]));
            }
            if let Some(a) = max {
                constant_input(&mut n, 2, "max", float_tensor("", &[], &[a.f]));
            }
        }
        "Pad" => {
            let pads = take_attr(&mut n, "pads").map(|a| a.ints).unwrap_or_default();
            let value = take_attr(&mut n, "value").map(|a| a.f);
            constant_input(&mut n, 1, "pads", int64_tensor("", &pads));
            if let Some(v) = value.filter(|v| *v != 0.0) {
                constant_input(&mut n, 2, "constant_value", float_tensor("", &[], &[v]));
            }
        }
        "Resize" => {
            // Opset 10: Resize(X, scales), sampling as opset 11's `asymmetric` with `floor`.
            // `roi` is optional from opset 13; opsets 11 and 12 need it given (empty).
            let scales_name = n.input.get(1).cloned().unwrap_or_default();
            n.input.truncate(1);
            if to >= 13 {
                n.input.push(String::new());
            } else {
                constant_input(&mut n, 1, "roi", float_tensor("", &[0], &[]));
            }
            n.input.push(scales_name.clone());
            n.attribute.retain(|a| a.name == "mode");
            n.attribute.push(string_attribute("coordinate_transformation_mode", "asymmetric"));
            if matches!(attr_s(&n, "mode").as_str(), "" | "nearest") {
                // ONNX Runtime's opset-10 nearest picks floor when upsampling an axis and ceil
                // when downsampling it; opset 11 has one rounding for all axes.
                let scales = resize_scales.get(&scales_name).filter(|v| !v.is_empty()).ok_or_else(|| {
                    Error::Config(format!(
                        "Resize '{base}' (opset 10, nearest) has scales that are not a constant: its rounding \
                         cannot be written in opset 11"
                    ))
                })?;
                let mode = if scales.iter().all(|&v| v >= 1.0) {
                    "floor"
                } else if scales.iter().all(|&v| v <= 1.0) {
                    "ceil"
                } else {
                    return Err(Error::Config(format!(
                        "Resize '{base}' (opset 10, nearest) upsamples some axes and downsamples others: its \
                         rounding cannot be written in opset 11"
                    )));
                };
                n.attribute.push(string_attribute("nearest_mode", mode));
            }
        }
        "Scatter" => n.op_type = "ScatterElements".into(),
        "Dropout" => {
            if let Some(a) = take_attr(&mut n, "ratio") {
                constant_input(&mut n, 1, "ratio", float_tensor("", &[], &[a.f]));
            }
        }
        "Split" => {
            if changes("Split", from, to, 13)
                && let Some(split) = take_attr(&mut n, "split")
            {
                constant_input(&mut n, 1, "split", int64_tensor("", &split.ints));
            }
            return Ok(vec![since_13(n, from, to)?]);
        }
        "RoiAlign" | "GridSample" | "GroupNormalization" | "DFT" => return Ok(vec![since_13(n, from, to)?]),
        "Squeeze" | "Unsqueeze" | "ReduceSum" | "ReduceMean" | "ReduceMax" | "ReduceMin" | "ReduceProd"
        | "ReduceL1" | "ReduceL2" | "ReduceLogSum" | "ReduceLogSumExp" | "ReduceSumSquare" => {
            if let Some(axes) = take_attr(&mut n, "axes") {
                constant_input(&mut n, 1, "axes", int64_tensor("", &axes.ints));
            }
        }
        "Softmax" | "LogSoftmax" | "Hardmax" => return Ok(coerced_softmax(n, names)),
        _ => unreachable!("changed_at lists only the ops above"),
    }
    Ok(vec![n])
}

/// The conversions of ops that changed after opset 13 (the Split's `split` attribute already an
/// input): explicit defaults, renamed modes, and a refusal for ops whose inputs changed meaning.
fn since_13(mut n: pb::NodeProto, from: i64, to: i64) -> Result<pb::NodeProto> {
    match n.op_type.as_str() {
        "Split" => {
            let split_given = n.input.get(1).is_some_and(|s| !s.is_empty());
            if changes("Split", from, to, 18) && !split_given && attr_i(&n, "num_outputs", 0) == 0 {
                n.attribute.push(int_attribute("num_outputs", n.output.len() as i64));
            }
        }
        "RoiAlign" => {
            if !n.attribute.iter().any(|a| a.name == "coordinate_transformation_mode") {
                n.attribute.push(string_attribute("coordinate_transformation_mode", "output_half_pixel"));
            }
        }
        "GridSample" => {
            let renamed = match attr_s(&n, "mode").as_str() {
                "bilinear" => Some("linear"),
                "bicubic" => Some("cubic"),
                _ => None,
            };
            if let Some(mode) = renamed {
                take_attr(&mut n, "mode");
                n.attribute.push(string_attribute("mode", mode));
            }
        }
        _ => {
            return Err(Error::Config(format!(
                "{} '{}' changed meaning after opset {from}; QuantBench does not convert it to opset {to}",
                n.op_type,
                node_name(&n)
            )));
        }
    }
    Ok(n)
}

/// Softmax-like ops before opset 13 flatten their input to 2-D at `axis` (default 1) and work
/// along the second dimension; from 13 they work along `axis` alone (default -1). Equal when
/// `axis` is the last one; otherwise Flatten → op(axis = -1) → Reshape back to the input's shape.
fn coerced_softmax(mut n: pb::NodeProto, names: &mut Names) -> Vec<pb::NodeProto> {
    let axis = attr_i(&n, "axis", 1);
    n.attribute.retain(|a| a.name != "axis");
    if axis == -1 {
        n.attribute.push(int_attribute("axis", -1));
        return vec![n];
    }
    let base = node_name(&n);
    let x = n.input[0].clone();
    let y = n.output[0].clone();
    let shape = names.fresh(&format!("{base}_input_shape"));
    let flat = names.fresh(&format!("{base}_flattened"));
    let out2d = names.fresh(&format!("{base}_2d"));
    let mut shape_node = node("Shape", names.fresh(&format!("{base}_Shape")), &[&x], shape.clone());
    shape_node.domain.clone_from(&n.domain);
    let mut flatten = node("Flatten", names.fresh(&format!("{base}_Flatten")), &[&x], flat.clone());
    flatten.attribute.push(int_attribute("axis", axis));
    n.input[0] = flat;
    n.output[0].clone_from(&out2d);
    n.attribute.push(int_attribute("axis", -1));
    let reshape = node("Reshape", names.fresh(&format!("{base}_Reshape")), &[&out2d, &shape], y);
    vec![shape_node, flatten, n, reshape]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(opset: i64, nodes: Vec<pb::NodeProto>) -> pb::ModelProto {
        pb::ModelProto {
            ir_version: 7,
            opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: opset }],
            graph: Some(pb::GraphProto { node: nodes, ..Default::default() }),
            ..Default::default()
        }
    }

    fn ints(name: &str, v: &[i64]) -> pb::AttributeProto {
        pb::AttributeProto { name: name.into(), r#type: 7, ints: v.to_vec(), ..Default::default() }
    }

    #[test]
    fn axes_attributes_become_inputs_and_the_opset_is_raised() {
        let mut u = node("Unsqueeze", "u".into(), &["x"], "y".into());
        u.attribute.push(ints("axes", &[0, 2]));
        let mut m = model(11, vec![u]);
        upgrade(&mut m, 13, Path::new("")).expect("upgrade");
        let g = m.graph.as_ref().expect("graph");
        assert_eq!(m.opset_import[0].version, 13);
        assert!(g.node[0].attribute.is_empty());
        assert_eq!(g.node[0].input, ["x", "u_axes"]);
        assert_eq!(g.initializer[0].name, "u_axes");
        assert_eq!(g.initializer[0].raw_data, [0i64.to_le_bytes(), 2i64.to_le_bytes()].concat());
    }

    #[test]
    fn softmax_on_an_inner_axis_is_made_two_dimensional_explicitly() {
        let mut s = node("Softmax", "s".into(), &["x"], "y".into());
        s.attribute.push(super::int_attribute("axis", 1));
        let mut last = node("Softmax", "t".into(), &["y"], "z".into());
        last.attribute.push(super::int_attribute("axis", -1));
        let mut m = model(12, vec![s, last]);
        upgrade(&mut m, 13, Path::new("")).expect("upgrade");
        let g = m.graph.as_ref().expect("graph");
        let ops: Vec<&str> = g.node.iter().map(|n| n.op_type.as_str()).collect();
        assert_eq!(ops, ["Shape", "Flatten", "Softmax", "Reshape", "Softmax"]);
        assert_eq!(g.node[3].output, ["y"], "the output keeps its name");
        assert_eq!(attr_i(&g.node[2], "axis", 0), -1);
        assert_eq!(attr_i(&g.node[4], "axis", 0), -1);
    }

    #[test]
    fn clip_pad_and_resize_of_opset_10_get_their_new_inputs() {
        let mut c = node("Clip", "c".into(), &["x"], "y".into());
        c.attribute.push(pb::AttributeProto { name: "max".into(), r#type: 1, f: 6.0, ..Default::default() });
        let mut p = node("Pad", "p".into(), &["y"], "z".into());
        p.attribute.push(ints("pads", &[0, 1, 0, 1]));
        let r = node("Resize", "r".into(), &["z", "scales"], "w".into());
        let mut m = model(10, vec![c, p, r]);
        if let Some(g) = m.graph.as_mut() {
            g.initializer.push(float_tensor("scales", &[4], &[1.0, 1.0, 2.0, 2.0]));
        }
        upgrade(&mut m, 13, Path::new("")).expect("upgrade");
        let g = m.graph.as_ref().expect("graph");
        assert_eq!(g.node[0].input, ["x", "", "c_max"]);
        assert_eq!(g.node[1].input, ["y", "p_pads"]);
        assert_eq!(g.node[2].input, ["z", "", "scales"]);
        assert_eq!(attr_s(&g.node[2], "coordinate_transformation_mode"), "asymmetric");
        assert_eq!(attr_s(&g.node[2], "nearest_mode"), "floor", "upsampling, as ONNX Runtime rounds at opset 10");
    }

    #[test]
    fn older_models_with_changed_ops_are_refused_by_name() {
        let mut m = model(9, vec![node("Upsample", "up".into(), &["x", "s"], "y".into())]);
        let e = upgrade(&mut m, 13, Path::new("")).expect_err("refused").to_string();
        assert!(e.contains("Upsample") && e.contains("opset 9"), "{e}");
        let mut ok = model(9, vec![node("Relu", "r".into(), &["x"], "y".into())]);
        upgrade(&mut ok, 13, Path::new("")).expect("nothing to convert");
    }
}
