//! Which quantized nodes ONNX Runtime 1.31's QDQ fusions turn into integer kernels on the CPU,
//! for the export's placement: the saturation profile marks the layers (`integer_kernel`), the
//! simulation emulates the kernels whose arithmetic differs from the float op's (`qlinear_io`).

use crate::model::OnnxModel;
use crate::model::graph::{consumers, is_graph_output};
use crate::observe::Calibration;

use super::{ActQuant, LayerPlan, QuantPlan};

/// Whether ONNX Runtime's QDQ fusions turn `lp` into a u8×s8 integer kernel on the CPU, for the
/// export's placement (Q/DQ on the inputs of quantized layers), as measured with ONNX Runtime
/// 1.31: Gemm becomes QGemm; MatMul becomes MatMulIntegerToFloat, QLinearMatMul or (with a
/// following bias Add) QGemm, except that MatMul → Add with a float result runs as a float Gemm;
/// Conv becomes QLinearConv only when its output goes straight into a QuantizeLinear, directly or
/// through a Relu or Clip (which ORT folds into the output range). A true depthwise Conv (one input
/// channel per group, as many outputs as groups) runs an exact kernel; ConvTranspose stays float.
pub fn integer_kernel(model: &OnnxModel, lp: &LayerPlan, plan: &QuantPlan, calibration: Option<&Calibration>) -> bool {
    let Some(layer) = model.summary.layer(&lp.layer) else { return false };
    match layer.op_type.as_str() {
        "Gemm" => true,
        "MatMul" => match gemm_bias_add(model, layer, calibration) {
            // ORT's MatMulAddFusion makes a Gemm of MatMul → Add(bias [N]); QDQ then fuses it into
            // QGemm only when the Add's output is requantized, and leaves a float Gemm otherwise.
            Some(add) => add.output.first().is_some_and(|o| output_requantized(model, o, plan)),
            None => true,
        },
        "Conv" => {
            let shape = &layer.weight_shape;
            let depthwise = layer.group > 1 && shape.get(1) == Some(&1) && shape.first() == Some(&layer.group);
            shape.len() == 4 && !depthwise && output_requantized(model, &layer.output, plan)
        }
        _ => false,
    }
}

/// The bias Add that ONNX Runtime's MatMulAddFusion merges with the MatMul `layer` into a Gemm:
/// its only reader, an Add of a constant `[N]` (or `[1, N]`), when the MatMul's input is 2-D, or N-D with a
/// fully known shape (the input's rank comes from the calibration; unknown without one).
fn gemm_bias_add<'m>(
    model: &'m OnnxModel,
    layer: &crate::model::QuantizableLayer,
    calibration: Option<&Calibration>,
) -> Option<&'m crate::model::onnx::NodeProto> {
    let graph = model.graph();
    let readers = consumers(graph, &layer.output);
    let consts = model.constants();
    let n = layer.weight_shape.get(1).copied();
    let add = match readers.as_slice() {
        [add] if add.op_type == "Add" && !is_graph_output(graph, &layer.output) => *add,
        _ => return None,
    };
    let bias = add.input.iter().find(|i| **i != layer.output).and_then(|b| consts.get(b.as_str()));
    // `[N]`, or `[1, …, 1, N]` (seen in a jax2tf export).
    let bias_of_n = |b: &&crate::model::onnx::TensorProto| {
        b.dims.split_last().is_some_and(|(last, rest)| u64::try_from(*last).ok() == n && rest.iter().all(|&d| d == 1))
    };
    if !bias.is_some_and(bias_of_n) {
        return None;
    }
    let rank = calibration.and_then(|c| c.activations.get(&layer.input)).map(|s| s.rank);
    let concrete_inputs =
        model.summary.inputs.iter().all(|i| i.shape.iter().all(|d| matches!(d, crate::model::Dim::Fixed(_))));
    (rank == Some(2) || (rank.is_some_and(|r| r > 2) && concrete_inputs)).then_some(add)
}

/// The quantized inputs and output of the non-layer node `n` when ONNX Runtime's QDQ fusion turns
/// it into a QLinear* kernel: every input read through a DequantizeLinear and the output going
/// only into a static QuantizeLinear, directly or through a Relu/Clip ORT folds (the returned
/// output is then the Relu/Clip's: the grid the kernel requantizes to). The simulation emulates
/// the kernels whose arithmetic differs from the float op's (`simulate::softmax`,
/// `simulate::qlinear`). An opset-12 Softmax the
/// export converts to opset 13 becomes Flatten → Softmax → Reshape (unless its axis is -1), which
/// ORT leaves float.
pub fn qlinear_io<'p>(
    model: &OnnxModel,
    plan: &'p QuantPlan,
    n: &crate::model::onnx::NodeProto,
) -> Option<(Vec<&'p ActQuant>, &'p ActQuant)> {
    let name = crate::model::node_name(n);
    let opset = model.summary.opset;
    if n.op_type == "Softmax" {
        let axis = n.attribute.iter().find(|a| a.name == "axis").map(|a| a.i);
        if opset < 13 && plan.export_opset(opset) >= 13 && axis != Some(-1) {
            return None;
        }
    }
    let inputs: Vec<&ActQuant> = n
        .input
        .iter()
        .map(|t| plan.activations.get(t).filter(|a| !a.dynamic && a.consumers.contains(&name)))
        .collect::<Option<_>>()?;
    // The output quantized directly, or through a Relu/Clip ORT removes first (ClipQuantFusion
    // turns Add → Clip → Q into a QLinearAdd requantizing to the Clip output's grid).
    let y = requantized_output(model, n.output.first()?, plan)?;
    Some((inputs, y))
}

/// Whether `tensor` (an op's output) feeds only a static QuantizeLinear in the export (see
/// [`requantized_output`]).
fn output_requantized(model: &OnnxModel, tensor: &str, plan: &QuantPlan) -> bool {
    requantized_output(model, tensor, plan).is_some()
}

/// The quantization of `tensor` (an op's output) when it feeds only a static QuantizeLinear in
/// the export, directly or through a single Relu or Clip that ORT removes because the quantized
/// range lies inside it (`ReluQuantFusion` / `ClipQuantFusion`): the grid ORT's integer kernel
/// requantizes its accumulators to.
pub fn requantized_output<'p>(model: &OnnxModel, tensor: &str, plan: &'p QuantPlan) -> Option<&'p ActQuant> {
    let graph = model.graph();
    let quantized_only = |t: &str| -> Option<&ActQuant> {
        let a = plan.activations.get(t)?;
        let readers = consumers(graph, t);
        let only = !a.dynamic
            && (is_graph_output(graph, t) || !readers.is_empty())
            && readers.iter().all(|n| a.consumers.contains(&crate::model::node_name(n)));
        only.then_some(a)
    };
    if let Some(a) = quantized_only(tensor) {
        return Some(a);
    }
    let readers = consumers(graph, tensor);
    let [act] = readers.as_slice() else { return None };
    if is_graph_output(graph, tensor) {
        return None;
    }
    let a = act.output.first().and_then(|o| quantized_only(o))?;
    let p = a.params;
    let (lo, hi) = ((p.range.qmin - p.zero_point) as f32 * p.scale, (p.range.qmax - p.zero_point) as f32 * p.scale);
    let eps = 1e-5 * p.scale.max(f32::MIN_POSITIVE);
    let folded = match act.op_type.as_str() {
        "Relu" => p.zero_point == p.range.qmin,
        "Clip" => {
            let bound = |i: usize, attr: &str, default: f32| -> Option<f32> {
                match act.input.get(i).filter(|s| !s.is_empty()) {
                    Some(name) => {
                        let view = model.constant_f32(name).ok()?;
                        view.iter().next().copied()
                    }
                    None => Some(act.attribute.iter().find(|x| x.name == attr).map_or(default, |x| x.f)),
                }
            };
            let (Some(cmin), Some(cmax)) = (bound(1, "min", f32::MIN), bound(2, "max", f32::MAX)) else { return None };
            cmin <= lo + eps && cmax >= hi - eps
        }
        _ => false,
    };
    folded.then_some(a)
}

/// `(K, block)` when ONNX Runtime runs `lp` as MatMulNBits with int8 inputs: its QDQ fusion turns
/// a block-wise DequantizeLinear (4 or 8 bits, blocks of a power of two ≥ 16 along K of a 2-D
/// `[K, N]` weight) → MatMul into MatMulNBits with accuracy level 4, its session default
/// (`session.qdq_matmulnbits_accuracy_level`), which quantizes the input per row and block of K to
/// int8 (scale `max|a| / 127`) and sums the blocks' integer products. The MatMulNBits format is
/// written without an accuracy level (float inputs), and Gemm is not fused, nor a MatMul that
/// MatMulAddFusion makes a Gemm first (`gemm_bias_add`).
pub fn int8_block_input(
    model: &OnnxModel,
    plan: &QuantPlan,
    lp: &LayerPlan,
    calibration: Option<&Calibration>,
) -> Option<(usize, usize)> {
    use crate::quant::{RuntimeProfile, WeightFormat};
    let wq = lp.weight_quant.as_ref()?;
    // A MatMul that MatMulAddFusion turns into a Gemm first stays a float Gemm.
    if model.summary.layer(&lp.layer).is_some_and(|l| gemm_bias_add(model, l, calibration).is_some()) {
        return None;
    }
    let block = wq.group_size?;
    let eight_bits = wq.params.iter().all(|p| p.range.qmin >= -128 && p.range.qmax <= 255);
    let fused = plan.runtime != RuntimeProfile::Reference
        && plan.weight_format == WeightFormat::Qdq
        && lp.op_type == "MatMul"
        && wq.q.ndim() == 2
        && wq.axis == Some(1)
        && block >= 16
        && block.is_power_of_two()
        && eight_bits
        && wq.float_zero.is_none();
    fused.then(|| (wq.q.shape()[0], block))
}
