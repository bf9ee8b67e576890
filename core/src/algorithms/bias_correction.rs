//! Empirical bias correction (Nagel et al. 2019, §4.2; as AIMET's empirical variant): the mean
//! shift quantization causes in each output channel, `E[W̃·X_q − W·X]` over the calibration
//! columns, is subtracted from the layer's bias, so the quantized layer's output mean matches the
//! float one. The bias is the layer's bias input (Conv, Gemm) or, for a MatMul, the constant of
//! the `Add` that alone consumes its output (what exporters emit for `Linear`).

use super::layer_data::{LayerProblem, weight_matrix};
use crate::error::{Error, Result};
use crate::model::{OnnxModel, QuantizableLayer, node_name};
use crate::quant::WeightQuant;

/// The bias tensor bias correction adjusts and the factor the layer applies to it (Gemm's beta),
/// or None when the layer has none it may change.
pub fn bias_of(model: &OnnxModel, layer: &QuantizableLayer) -> Result<Option<(String, f32)>> {
    let out_channels = layer.weight_shape.get(layer.out_channel_axis).copied().unwrap_or(0);
    let consts = model.constants();
    let elements = |t: &str| consts.get(t).map(|p| p.dims.iter().product::<i64>());
    let fits = |t: &str| elements(t) == i64::try_from(out_channels).ok() && model.readers(t) == 1;
    if let Some(b) = &layer.bias {
        let beta = if layer.op_type == "Gemm" {
            let node = model.node(&layer.name)?;
            node.attribute.iter().find(|a| a.name == "beta").map_or(1.0, |a| a.f)
        } else {
            1.0
        };
        return Ok((fits(b) && beta != 0.0).then(|| (b.clone(), beta)));
    }
    if layer.op_type != "MatMul" || model.readers(&layer.output) != 1 {
        return Ok(None);
    }
    let add = model.graph().node.iter().find(|n| n.op_type == "Add" && n.input.contains(&layer.output));
    let Some(add) = add else { return Ok(None) };
    let other = add.input.iter().find(|i| **i != layer.output);
    Ok(other.filter(|t| consts.contains_key(t.as_str()) && fits(t)).map(|t| (t.clone(), 1.0)))
}

/// The corrected bias of `layer` for quantized weight `wq` (None when the layer has no bias it
/// may change).
pub fn correct(
    model: &OnnxModel,
    layer: &QuantizableLayer,
    problem: &LayerProblem,
    wq: &WeightQuant,
) -> Result<Option<(String, Vec<f32>)>> {
    let Some((tensor, beta)) = bias_of(model, layer)? else { return Ok(None) };
    let shift = problem.mean_shift(&weight_matrix(&wq.dequantize(), problem.axis));
    let b = model.constant_f32(&tensor)?;
    if b.len() != shift.len() {
        return Err(Error::InvalidModel(format!(
            "bias '{tensor}' of '{}' has {} values for {} channels ({})",
            layer.name,
            b.len(),
            shift.len(),
            node_name(model.node(&layer.name)?)
        )));
    }
    Ok(Some((tensor, b.iter().zip(&shift).map(|(&b, &d)| b - d / beta).collect())))
}
