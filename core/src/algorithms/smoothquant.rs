//! SmoothQuant (Xiao et al. 2023): for a MatMul/Gemm `Y = X·W` whose input has outlier
//! channels, divide input channel `k` by `s_k = max|X_k|^α / max|W_k|^(1−α)` and multiply weight
//! row `k` by it. The product is unchanged; the activation's channel ranges even out (at α = 0.5
//! activation and weight share the difficulty), so per-tensor activation quantization loses less.
//! The division is a `Mul` by `1/s` inserted before the layer (its output is what gets quantized);
//! the weight is rescaled in place.

use std::sync::atomic::AtomicBool;

use crate::model::onnx as pb;
use ndarray::{ArrayD, Axis};

use super::Transformed;
use super::layer_data::collect_inputs;
use crate::data::DataSet;
use crate::error::Error;
use crate::model::graph::attr_i;
use crate::model::graph::{float_tensor, replace_constant};
use crate::model::{OnnxModel, QuantizableLayer, node_name};
use crate::quant::recipe::Recipe;

/// The tensor SmoothQuant's `Mul` writes for `layer`.
pub fn smoothed_name(input: &str, layer: &str) -> String {
    format!("{input}/qb_smooth/{layer}")
}

/// The axis of the weight that indexes input channels (None when unsupported).
fn in_channel_axis(model: &OnnxModel, layer: &QuantizableLayer) -> Option<usize> {
    if layer.weight_shape.len() != 2 {
        return None;
    }
    match layer.op_type.as_str() {
        "MatMul" => Some(0),
        "Gemm" => {
            let node = model.node(&layer.name).ok()?;
            (attr_i(node, "transA", 0) == 0).then(|| usize::from(attr_i(node, "transB", 0) == 1))
        }
        _ => None,
    }
}

/// Per last-axis channel, the largest |value| over all collected inputs.
pub fn channel_absmax(values: &[ArrayD<f32>]) -> Vec<f32> {
    let k = values.first().and_then(|v| v.shape().last().copied()).unwrap_or(0);
    let mut m = vec![0.0f32; k];
    for v in values {
        let last = v.ndim().saturating_sub(1);
        for lane in v.lanes(Axis(last)) {
            for (mx, x) in m.iter_mut().zip(lane.iter()) {
                if x.is_finite() {
                    *mx = mx.max(x.abs());
                }
            }
        }
    }
    m
}

/// Applies SmoothQuant to every MatMul/Gemm layer whose config sets an α; returns the model, the
/// smoothed layers and the skipped ones with the reason.
pub fn smooth(model: &OnnxModel, recipe: &Recipe, calib: &DataSet, cancel: &AtomicBool) -> Transformed<Vec<String>> {
    let mut skipped = Vec::new();
    let mut todo = Vec::new();
    for l in &model.summary.layers {
        let Some(alpha) = recipe.config_for(&l.name).algorithms.smooth_quant else { continue };
        match in_channel_axis(model, l) {
            None => skipped.push((l.name.clone(), "SmoothQuant applies to MatMul/Gemm with a 2-D weight".into())),
            Some(_) if model.readers(&l.weight) != 1 => {
                skipped.push((l.name.clone(), "its weight is shared with other nodes".into()));
            }
            Some(axis) => todo.push((l, alpha, axis)),
        }
    }
    if todo.is_empty() {
        return Ok((model.clone(), Vec::new(), skipped));
    }
    let layers: Vec<&QuantizableLayer> = todo.iter().map(|(l, _, _)| *l).collect();
    let inputs = collect_inputs(model, &layers, calib, &recipe.calibration_config, &recipe.algorithm_settings, cancel)?;
    let mut proto = model.proto.clone();
    let g = proto.graph.as_mut().ok_or_else(|| Error::InvalidModel("no graph".into()))?;
    let mut done = Vec::new();
    for (l, alpha, axis) in todo {
        let x_max = channel_absmax(&inputs[&l.input]);
        let mut w = model.constant_f32(&l.weight)?;
        let w_max: Vec<f32> =
            w.axis_iter(Axis(axis)).map(|lane| lane.iter().fold(0.0f32, |m, v| m.max(v.abs()))).collect();
        if x_max.len() != w_max.len() {
            skipped.push((l.name.clone(), format!("input has {} channels, weight {}", x_max.len(), w_max.len())));
            continue;
        }
        let s: Vec<f32> = x_max
            .iter()
            .zip(&w_max)
            .map(
                |(&a, &b)| {
                    if a > 0.0 && b > 0.0 { (a.powf(alpha) / b.powf(1.0 - alpha)).clamp(1e-5, 1e5) } else { 1.0 }
                },
            )
            .collect();
        for (mut lane, &sk) in w.axis_iter_mut(Axis(axis)).zip(&s) {
            lane.mapv_inplace(|v| v * sk);
        }
        replace_constant(g, &l.weight, &w.iter().copied().collect::<Vec<_>>())?;
        let inv: Vec<f32> = s.iter().map(|v| 1.0 / v).collect();
        let inv_name = format!("{}/qb_smooth_scale", l.name);
        let k = i64::try_from(inv.len()).map_err(|_| Error::InvalidModel("too many channels".into()))?;
        g.initializer.push(float_tensor(&inv_name, &[k], &inv));
        let out = smoothed_name(&l.input, &l.name);
        let mul = pb::NodeProto {
            op_type: "Mul".into(),
            name: format!("{}/qb_smooth", l.name),
            input: vec![l.input.clone(), inv_name],
            output: vec![out.clone()],
            ..Default::default()
        };
        let Some(pos) = g.node.iter().position(|n| node_name(n) == l.name) else { continue };
        g.node[pos].input[0] = out;
        g.node.insert(pos, mul);
        done.push(l.name.clone());
    }
    let out = OnnxModel::from_checked_proto(proto, model.summary.name.clone(), &model.path)?;
    Ok((out, done, skipped))
}
