//! Folding BatchNormalization into the convolution before it (inference form):
//! `W'[c] = W[c] · γ_c / √(σ²_c + ε)`, `b'_c = (b_c − μ_c) · γ_c / √(σ²_c + ε) + β_c`.
//! The convolution then writes the BatchNormalization's output tensor, so everything downstream
//! keeps its names.

use ndarray::Axis;

use crate::error::{Error, Result};
use crate::model::graph::{float_tensor, replace_constant};
use crate::model::{OnnxModel, node_name};

/// Folds every BatchNormalization that alone reads a Conv's output (with constant, unshared
/// weights); returns the new model and the folded nodes' names.
pub fn fold_batch_norms(model: &OnnxModel) -> Result<(OnnxModel, Vec<String>)> {
    let mut proto = model.proto.clone();
    let mut folded = Vec::new();
    let consts = model.constants();
    let outputs: Vec<&str> = model.summary.outputs.iter().map(|o| o.name.as_str()).collect();
    let graph = model.graph();
    let mut remove = Vec::new();
    let mut rename: Vec<(String, String, String)> = Vec::new(); // (conv, old output, new output)
    let mut new_weights = Vec::new();
    let mut new_biases: Vec<(String, String, Vec<f32>, bool)> = Vec::new(); // (conv, name, values, exists)
    for bn in graph.node.iter().filter(|n| n.op_type == "BatchNormalization") {
        let Some(x) = bn.input.first() else { continue };
        let Some(conv) = graph.node.iter().find(|n| n.op_type == "Conv" && n.output.first() == Some(x)) else {
            continue;
        };
        let params: Vec<&String> = bn.input.iter().skip(1).collect();
        if params.len() != 4
            || !params.iter().all(|p| consts.contains_key(p.as_str()))
            || bn.output.len() != 1
            || model.readers(x) != 1
            || outputs.contains(&x.as_str())
        {
            continue;
        }
        let Some(w_name) = conv.input.get(1).filter(|w| consts.contains_key(w.as_str()) && model.readers(w) == 1)
        else {
            continue;
        };
        let bias_name = conv.input.get(2).filter(|b| !b.is_empty());
        if bias_name.is_some_and(|b| !consts.contains_key(b.as_str()) || model.readers(b) != 1) {
            continue;
        }
        let eps = bn.attribute.iter().find(|a| a.name == "epsilon").map_or(1e-5, |a| a.f);
        let (gamma, beta, mean, var) = (
            model.constant_f32(params[0])?,
            model.constant_f32(params[1])?,
            model.constant_f32(params[2])?,
            model.constant_f32(params[3])?,
        );
        let mut w = model.constant_f32(w_name)?;
        let c = w.shape()[0];
        if [&gamma, &beta, &mean, &var].iter().any(|a| a.len() != c) {
            continue;
        }
        let f: Vec<f32> = gamma.iter().zip(var.iter()).map(|(&g, &v)| g / (v + eps).sqrt()).collect();
        for (mut lane, &fc) in w.axis_iter_mut(Axis(0)).zip(&f) {
            lane.mapv_inplace(|v| v * fc);
        }
        let b: Vec<f32> = match bias_name {
            Some(b) => model.constant_f32(b)?.iter().copied().collect(),
            None => vec![0.0; c],
        };
        let b2: Vec<f32> = (0..c).map(|i| (b[i] - mean[i]) * f[i] + beta[i]).collect();
        let conv_name = node_name(conv);
        new_weights.push((w_name.clone(), w.iter().copied().collect::<Vec<f32>>()));
        match bias_name {
            Some(b) => new_biases.push((conv_name.clone(), b.clone(), b2, true)),
            None => new_biases.push((conv_name.clone(), format!("{conv_name}.folded_bias"), b2, false)),
        }
        rename.push((conv_name, x.clone(), bn.output[0].clone()));
        remove.push(node_name(bn));
        folded.push(node_name(bn));
    }
    if folded.is_empty() {
        return Ok((model.clone(), folded));
    }
    let g = proto.graph.as_mut().ok_or_else(|| Error::InvalidModel("no graph".into()))?;
    for (name, v) in &new_weights {
        replace_constant(g, name, v)?;
    }
    for (conv, name, v, exists) in new_biases {
        if exists {
            replace_constant(g, &name, &v)?;
        } else {
            let len = i64::try_from(v.len()).map_err(|_| Error::InvalidModel("bias too long".into()))?;
            g.initializer.push(float_tensor(&name, &[len], &v));
            if let Some(n) = g.node.iter_mut().find(|n| node_name(n) == conv) {
                n.input.resize(2, String::new());
                n.input.push(name);
            }
        }
    }
    for (conv, _old, new) in &rename {
        if let Some(n) = g.node.iter_mut().find(|n| node_name(n) == *conv) {
            n.output[0].clone_from(new);
        }
    }
    g.node.retain(|n| !remove.contains(&node_name(n)));
    // Value infos of the removed tensors would dangle.
    let old: Vec<&String> = rename.iter().map(|(_, o, _)| o).collect();
    g.value_info.retain(|v| !old.contains(&&v.name));
    let out = OnnxModel::from_checked_proto(proto, model.summary.name.clone(), &model.path)?;
    Ok((out, folded))
}
