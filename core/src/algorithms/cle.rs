//! Cross-layer equalization (Nagel et al. 2019, "Data-Free Quantization Through Weight
//! Equalization and Bias Correction", §4.1). For consecutive convolutions `conv1 → act → conv2`
//! where `act` is ReLU or ReLU6 (Clip with min 0) and nothing else reads the tensors between
//! them, output channel `c` of `conv1` is divided by `s_c = √(r1_c / r2_c)` and input channel `c`
//! of `conv2` multiplied by it (`r` = the channels' weight ranges), which equalizes the ranges
//! and leaves the float function unchanged because ReLU is positively homogeneous. ReLU6 is not:
//! its Clip becomes `Min(Relu(x), 6 / S_c)` with a per-channel cap, so the float function stays
//! exactly equivalent. A MaxPool may sit after the activation. Depthwise convolutions work on
//! either side. Sweeps repeat until chains of
//! pairs converge.

use std::collections::BTreeMap;

use crate::model::onnx as pb;
use ndarray::{ArrayD, Axis};

use super::{Skipped, Transformed};
use crate::error::{Error, Result};
use crate::model::graph::{float_tensor, replace_constant};
use crate::model::{OnnxModel, node_name};
use crate::quant::recipe::Recipe;

/// One equalizable pair.
#[derive(Debug, Clone)]
struct Pair {
    first: String,
    second: String,
    /// The Clip node between them (ReLU6), with its max; None for ReLU.
    clip: Option<(String, f32)>,
    /// Whether the second convolution is depthwise (one input channel per group).
    second_depthwise: bool,
}

fn scalar(model: &OnnxModel, name: &str) -> Option<f32> {
    let v = model.constant_f32(name).ok()?;
    (v.len() == 1).then(|| v.iter().copied().next()).flatten()
}

/// The Clip's (min, max) when both are constants (inputs at opset >= 11, attributes before).
fn clip_bounds(model: &OnnxModel, n: &pb::NodeProto) -> Option<(f32, f32)> {
    let attr = |k: &str| n.attribute.iter().find(|a| a.name == k).map(|a| a.f);
    let input = |i: usize| n.input.get(i).filter(|s| !s.is_empty()).and_then(|s| scalar(model, s));
    let min = input(1).or_else(|| attr("min"))?;
    let max = input(2).or_else(|| attr("max"))?;
    Some((min, max))
}

fn find_pairs(model: &OnnxModel, recipe: &Recipe) -> (Vec<Pair>, Skipped) {
    let graph = model.graph();
    let outputs: Vec<&str> = model.summary.outputs.iter().map(|o| o.name.as_str()).collect();
    let mut pairs = Vec::new();
    let mut skipped = Vec::new();
    for l1 in model.summary.layers.iter().filter(|l| l.op_type == "Conv") {
        if !recipe.config_for(&l1.name).algorithms.cross_layer_equalization {
            continue;
        }
        let mut skip = |why: &str| skipped.push((l1.name.clone(), why.to_string()));
        if model.readers(&l1.output) != 1 || outputs.contains(&l1.output.as_str()) {
            skip("its output has several readers; not equalized as a first layer");
            continue;
        }
        let Some(act) = graph.node.iter().find(|n| n.input.first() == Some(&l1.output)) else { continue };
        let clip = match act.op_type.as_str() {
            "Relu" => None,
            "Clip" => match clip_bounds(model, act) {
                Some((lo, hi)) if lo == 0.0 && hi > 0.0 && hi.is_finite() => Some((node_name(act), hi)),
                _ => {
                    skip("followed by a Clip that is not ReLU6-like (min 0, constant max)");
                    continue;
                }
            },
            _ => continue,
        };
        let Some(mut act_out) = act.output.first() else { continue };
        if model.readers(act_out) != 1 || outputs.contains(&act_out.as_str()) {
            continue;
        }
        // Max pooling commutes with a positive per-channel scale too.
        if let Some(pool) = graph.node.iter().find(|n| n.input.first() == Some(act_out) && n.op_type == "MaxPool")
            && pool.output.len() == 1
        {
            act_out = &pool.output[0];
            if model.readers(act_out) != 1 || outputs.contains(&act_out.as_str()) {
                continue;
            }
        }
        let Some(l2) = model.summary.layers.iter().find(|l| l.op_type == "Conv" && l.input == *act_out) else {
            continue;
        };
        if !recipe.config_for(&l2.name).algorithms.cross_layer_equalization {
            continue;
        }
        if model.readers(&l1.weight) != 1 || model.readers(&l2.weight) != 1 {
            skip("a weight is shared with other nodes");
            continue;
        }
        let c = l1.weight_shape[0];
        let second_depthwise = l2.group > 1 && l2.weight_shape.get(1) == Some(&1) && l2.group == c;
        if l2.group > 1 && !second_depthwise {
            skip("followed by a grouped (not depthwise) convolution");
            continue;
        }
        if !second_depthwise && l2.weight_shape.get(1) != Some(&c) {
            continue;
        }
        pairs.push(Pair { first: l1.name.clone(), second: l2.name.clone(), clip, second_depthwise });
    }
    (pairs, skipped)
}

fn channel_absmax(w: &ArrayD<f32>, axis: usize) -> Vec<f32> {
    w.axis_iter(Axis(axis)).map(|lane| lane.iter().fold(0.0f32, |m, v| m.max(v.abs()))).collect()
}

/// Equalizes every pair both of whose layers ask for it; returns the model, the pairs and the
/// layers skipped with the reason.
pub fn equalize(model: &OnnxModel, recipe: &Recipe, iterations: usize) -> Transformed<Vec<(String, String)>> {
    let (pairs, skipped) = find_pairs(model, recipe);
    if pairs.is_empty() {
        return Ok((model.clone(), Vec::new(), skipped));
    }
    let mut weights: BTreeMap<String, ArrayD<f32>> = BTreeMap::new();
    let mut biases: BTreeMap<String, Vec<f32>> = BTreeMap::new();
    for p in &pairs {
        for l in [&p.first, &p.second] {
            let layer = model.summary.layer(l).ok_or_else(|| Error::InvalidModel(format!("no layer '{l}'")))?;
            if !weights.contains_key(l) {
                weights.insert(l.clone(), model.constant_f32(&layer.weight)?);
                if let Some(b) = &layer.bias {
                    biases.insert(l.clone(), model.constant_f32(b)?.iter().copied().collect());
                }
            }
        }
    }
    // Cumulative per-channel scale of each pair (for the ReLU6 caps).
    let mut total: Vec<Vec<f32>> = pairs.iter().map(|p| vec![1.0; weights[&p.first].shape()[0]]).collect();
    for _ in 0..iterations.max(1) {
        let mut largest_change = 0.0f32;
        for (p, cum) in pairs.iter().zip(total.iter_mut()) {
            let r1 = channel_absmax(&weights[&p.first], 0);
            let r2 = if p.second_depthwise {
                channel_absmax(&weights[&p.second], 0)
            } else {
                channel_absmax(&weights[&p.second], 1)
            };
            let s: Vec<f32> = r1
                .iter()
                .zip(&r2)
                .map(|(&a, &b)| if a > 0.0 && b > 0.0 { (a / b).sqrt().clamp(1e-6, 1e6) } else { 1.0 })
                .collect();
            for (c, &sc) in s.iter().enumerate() {
                largest_change = largest_change.max((sc - 1.0).abs());
                cum[c] *= sc;
            }
            if let Some(w1) = weights.get_mut(&p.first) {
                for (mut lane, &sc) in w1.axis_iter_mut(Axis(0)).zip(&s) {
                    lane.mapv_inplace(|v| v / sc);
                }
            }
            if let Some(b1) = biases.get_mut(&p.first) {
                for (b, &sc) in b1.iter_mut().zip(&s) {
                    *b /= sc;
                }
            }
            if let Some(w2) = weights.get_mut(&p.second) {
                let axis = usize::from(!p.second_depthwise);
                for (mut lane, &sc) in w2.axis_iter_mut(Axis(axis)).zip(&s) {
                    lane.mapv_inplace(|v| v * sc);
                }
            }
        }
        if largest_change < 1e-6 {
            break;
        }
    }
    let mut proto = model.proto.clone();
    let g = proto.graph.as_mut().ok_or_else(|| Error::InvalidModel("no graph".into()))?;
    for (l, w) in &weights {
        if let Some(layer) = model.summary.layer(l) {
            replace_constant(g, &layer.weight, &w.iter().copied().collect::<Vec<_>>())?;
        }
    }
    for (l, b) in &biases {
        if let Some(bias) = model.summary.layer(l).and_then(|x| x.bias.clone()) {
            replace_constant(g, &bias, b)?;
        }
    }
    replace_relu6(g, &pairs, &total, &weights)?;
    let out = OnnxModel::from_checked_proto(proto, model.summary.name.clone(), &model.path)?;
    let names = pairs.into_iter().map(|p| (p.first, p.second)).collect();
    Ok((out, names, skipped))
}

/// ReLU6 → `Min(Relu(x), cap / S)` per channel, for every pair through a Clip.
fn replace_relu6(
    g: &mut pb::GraphProto,
    pairs: &[Pair],
    total: &[Vec<f32>],
    weights: &BTreeMap<String, ArrayD<f32>>,
) -> Result<()> {
    for (p, cum) in pairs.iter().zip(total) {
        let Some((clip, max)) = &p.clip else { continue };
        let rank = weights[&p.first].ndim();
        let Some(pos) = g.node.iter().position(|n| node_name(n) == *clip) else { continue };
        let node = g.node[pos].clone();
        let (x, y) = (node.input[0].clone(), node.output[0].clone());
        let relu_out = format!("{y}/qb_cle_relu");
        let cap_name = format!("{clip}/qb_cle_cap");
        let mut dims = vec![1i64; rank];
        dims[1] = i64::try_from(cum.len()).map_err(|_| Error::InvalidModel("too many channels".into()))?;
        let caps: Vec<f32> = cum.iter().map(|s| max / s).collect();
        g.initializer.push(float_tensor(&cap_name, &dims, &caps));
        let relu = pb::NodeProto {
            op_type: "Relu".into(),
            name: format!("{clip}/qb_cle_relu"),
            input: vec![x],
            output: vec![relu_out.clone()],
            ..Default::default()
        };
        let min = pb::NodeProto {
            op_type: "Min".into(),
            name: clip.clone(),
            input: vec![relu_out, cap_name],
            output: vec![y],
            ..Default::default()
        };
        g.node.splice(pos..=pos, [relu, min]);
    }
    Ok(())
}
