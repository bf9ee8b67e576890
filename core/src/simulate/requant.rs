//! Emulating the requantization of ONNX Runtime's `QLinearConv` in the simulated graph.
//!
//! Where the export has `DequantizeLinear → Conv → QuantizeLinear` (directly, or through a Relu
//! or Clip ORT folds into the output range), ORT runs `QLinearConv`: the int32 accumulator
//! `Σ (x − z_x) · w + bias` of the raw codes, then MLAS's `MlasRequantizeOutput`: `f32(acc) · M_c`
//! with `M_c = (s_x · s_w[c]) / s_y` in f32, clamped to `[q_min − z_y, q_max − z_y]`, rounded half
//! to even, plus `z_y`. A float Conv of the dequantized values, fake-quantized afterwards, rounds
//! differently: its sum carries rounding errors, and `y / s_y` is not `acc · M_c`, so a value on a
//! rounding tie (`acc · M_c` exactly `k + 0.5`, which real models meet) lands one code off, and the
//! difference cascades through the layers that follow. The emulation computes ORT's integers:
//! the codes `x / s_x` (exact: the input is on its grid), a Conv of them with the integer weights
//! and bias (exact while partial sums stay below 2^24), the product by `M_c`, the rounding (a
//! FakeQuant of scale 1 whose bounds never bind) and the output scale. The clamp is left to the
//! output's own fake quantization, after the Relu or Clip ORT folds (the same integers, since the
//! bounds are integers and the folded op's range holds the grid's), so that the Conv's output is
//! still a Conv output, on the output's grid.

use crate::model::OnnxModel;
use crate::model::fake_quant::{self, FakeQuantParams};
use crate::model::graph::{float_tensor, node};
use crate::model::onnx as pb;
use crate::plan::{ActQuant, LayerPlan, QuantPlan};

use super::graph::fq_name;
use super::saturate::Emulation;

/// Largest integer below which every f32 integer is exact.
const EXACT: f32 = 16_777_216.0;
/// Bounds of the rounding that never bind (2^22: FakeQuant rounds exactly within them).
const UNCLAMPED: f32 = 4_194_304.0;

/// The replacement of the Conv `node` (layer `lp`, activation input `x`) when ORT runs it as
/// `QLinearConv`, or None (another op, a dynamic or unquantized input or output, weights with a
/// zero point or blocks, a float bias, an integer bias beyond f32's exact integers).
pub(super) fn emulate(
    model: &OnnxModel,
    plan: &QuantPlan,
    conv: &pb::NodeProto,
    lp: &LayerPlan,
    x: &ActQuant,
) -> Option<Emulation> {
    let layer = model.summary.layer(&lp.layer)?;
    let wq = lp.weight_quant.as_ref()?;
    if lp.op_type != "Conv" || x.dynamic || wq.group_size.is_some() || wq.float_zero.is_some() {
        return None;
    }
    let y = crate::plan::requantized_output(model, &layer.output, plan)?;
    let channels = *wq.q.shape().first()?;
    let w_scales: Vec<f32> = match wq.params.len() {
        1 => vec![wq.params[0].scale; channels],
        n if n == channels => wq.params.iter().map(|p| p.scale).collect(),
        _ => return None,
    };
    if y.dynamic || wq.params.iter().any(|p| p.zero_point != 0) || conv.input.len() < 2 {
        return None;
    }
    let has_bias = conv.input.get(2).is_some_and(|b| !b.is_empty());
    let bias: Option<Vec<f32>> = match (&lp.bias, has_bias) {
        (Some(b), true) if b.q.iter().all(|&v| (v as f32).abs() < EXACT) => {
            Some(b.q.iter().map(|&v| v as f32).collect())
        }
        (None, false) => None,
        _ => return None,
    };
    let (sx, sy) = (x.params.scale, y.params.scale);
    let multipliers: Vec<f32> = w_scales.iter().map(|&sw| sx * sw / sy).collect();
    let p = |s: &str| format!("{}/qb_rq/{s}", lp.layer);
    let rank = wq.q.ndim();
    let weight_dims: Vec<i64> = wq.q.shape().iter().map(|&d| d as i64).collect();
    let mut channel_dims = vec![channels as i64];
    channel_dims.extend(std::iter::repeat_n(1, rank.saturating_sub(2)));
    let codes_params = FakeQuantParams {
        scale: sx,
        zero_point: 0.0,
        qmin: x.params.range.qmin as f32,
        qmax: x.params.range.qmax as f32,
    };
    let mut inits = vec![
        float_tensor(&p("w_codes"), &weight_dims, &wq.q.iter().map(|&v| f32::from(v)).collect::<Vec<_>>()),
        float_tensor(&p("multiplier"), &channel_dims, &multipliers),
        float_tensor(&p("y_scale"), &[], &[sy]),
    ];
    let mut int_conv = conv.clone();
    int_conv.name = p("acc");
    int_conv.input = vec![p("x_codes"), p("w_codes")];
    if let Some(b) = &bias {
        inits.push(float_tensor(&p("b_int"), &[channels as i64], b));
        int_conv.input.push(p("b_int"));
    }
    let out = conv.output.first()?.clone();
    int_conv.output = vec![p("acc_out")];
    // Rounded, not clamped: the output's own fake quantization clamps (after the Relu or Clip ORT
    // folds, which it equals then), and the layer's output stays a Conv output, not a clamped one
    // (its accumulated error is measured against the float Conv's).
    let rounding = FakeQuantParams { scale: 1.0, zero_point: 0.0, qmin: -UNCLAMPED, qmax: UNCLAMPED };
    let nodes = vec![
        fake_quant::codes_node(p("codes"), &fq_name(&x.tensor), p("x_codes"), codes_params),
        int_conv,
        node("Mul", p("requantize"), &[&p("acc_out"), &p("multiplier")], p("scaled")),
        fake_quant::node(p("round"), &p("scaled"), p("rounded"), rounding),
        node("Mul", p("dequantize"), &[&p("rounded"), &p("y_scale")], out),
    ];
    Some(Emulation { nodes, inits })
}
