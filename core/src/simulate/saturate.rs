//! Emulating ONNX Runtime's saturating u8×s8 kernels (x86 without VNNI) in the simulated graph.
//!
//! `vpmaddubsw` multiplies the raw uint8 activations (zero point included) by the int8 weights
//! and adds each pair of neighbouring products along the reduction axis into an int16 with
//! saturation; the pair sums then add up exactly in int32, and the zero-point term
//! `z_a · Σ w` is subtracted exactly afterwards. Verified against ONNX Runtime 1.31 on an AMD EPYC
//! (AVX2, no VNNI) with zero mismatching outputs: MatMul/Gemm pair along K (`k = 2j, 2j + 1`, an
//! odd last element pairs with padding); QLinearConv computes in NHWC, so K runs over
//! `(kh, kw, c)` with the channel fastest and pairs may straddle kernel taps.
//!
//! A quantized layer marked [`LayerPlan::saturates`] is replaced by float ONNX ops computing the
//! same integers (all values stay below 2^24, so float32 holds them exactly): the pairs are formed
//! by a batched MatMul (or, for convolutions, by a one-hot "im2col" Conv followed by a grouped
//! 1×1 Conv with two inputs per group), clipped to the int16 range, summed, corrected by the
//! zero-point term, offset by the int32 bias and scaled by `s_a · s_w`.

use crate::model::onnx as pb;

use crate::model::OnnxModel;
use crate::model::graph::{attr_f, attr_i, float_tensor, int_attribute, int64_tensor, node};
use crate::plan::{ActQuant, LayerPlan};
use crate::quant::WeightQuant;

/// The int16 limits as float constants.
const LO: f32 = i16::MIN as f32;
const HI: f32 = i16::MAX as f32;

/// What both emulations share: names of the activation's integer tensors and of the output,
/// and the layer's bias.
struct Ctx<'a> {
    layer: &'a str,
    node: &'a pb::NodeProto,
    wq: &'a WeightQuant,
    op_type: &'a str,
    out: String,
    q: String,
    za: String,
    sa: String,
    int_bias: Option<Vec<f32>>,
    float_bias: Option<String>,
}

impl Ctx<'_> {
    fn p(&self, s: &str) -> String {
        format!("{}/qb_sat/{s}", self.layer)
    }
}

/// Nodes and constants replacing one layer's node.
pub(super) struct Emulation {
    /// The nodes, in order.
    pub nodes: Vec<pb::NodeProto>,
    /// The constants they read.
    pub inits: Vec<pb::TensorProto>,
}

/// Per-output-channel weight scales (one value repeated for per-tensor weights), or None when
/// a zero point is not 0 (the emulation covers symmetric weights, as the defaults use).
fn channel_scales(wq: &WeightQuant, channels: usize) -> Option<Vec<f32>> {
    if wq.params.iter().any(|p| p.zero_point != 0) || wq.group_size.is_some() {
        return None;
    }
    match wq.params.len() {
        1 => Some(vec![wq.params[0].scale; channels]),
        n if n == channels => Some(wq.params.iter().map(|p| p.scale).collect()),
        _ => None,
    }
}

/// Builds the replacement of `node` (the layer `lp`, whose activation input is `act`), or None
/// when the layer's form is not one ONNX Runtime runs with the saturating kernel.
pub(super) fn emulate(
    model: &OnnxModel,
    layer_node: &pb::NodeProto,
    lp: &LayerPlan,
    act: &ActQuant,
) -> Option<Emulation> {
    let wq = lp.weight_quant.as_ref()?;
    let layer = model.summary.layer(&lp.layer)?;
    let t = &act.tensor;
    let fq = |s: &str| format!("{t}/qb_fq/{s}");
    // The bias, integer when the plan quantized it, else the float tensor added after scaling.
    let int_bias = lp.bias.as_ref().map(|b| b.q.iter().map(|&v| v as f32).collect::<Vec<f32>>());
    let float_bias = if int_bias.is_none() { layer_node.input.get(2).filter(|b| !b.is_empty()).cloned() } else { None };
    let (codes, q) = super::graph::codes_of(act, &format!("{}/qb_sat/act", lp.layer));
    let ctx = Ctx {
        layer: &lp.layer,
        node: layer_node,
        wq,
        op_type: &layer.op_type,
        out: layer_node.output.first()?.clone(),
        q,
        za: fq("zero_point"),
        sa: fq("scale"),
        int_bias,
        float_bias,
    };
    let mut emulation = match layer.op_type.as_str() {
        "MatMul" | "Gemm" => emulate_matmul(&ctx),
        "Conv" => emulate_conv(&ctx),
        _ => None,
    }?;
    emulation.nodes.splice(0..0, codes);
    Some(emulation)
}

/// MatMul / Gemm: pairs along K by a batched MatMul.
fn emulate_matmul(ctx: &Ctx<'_>) -> Option<Emulation> {
    let (node_of, wq, out) = (ctx.node, ctx.wq, ctx.out.clone());
    let p = |s: &str| ctx.p(s);
    let (q, za, sa) = (&ctx.q, &ctx.za, &ctx.sa);
    let (int_bias, float_bias) = (&ctx.int_bias, ctx.float_bias.clone());
    let (trans_b, gemm) = if ctx.op_type == "Gemm" {
        if attr_i(node_of, "transA", 0) != 0
            || attr_f(node_of, "alpha", 1.0) != 1.0
            || attr_f(node_of, "beta", 1.0) != 1.0
        {
            return None;
        }
        (attr_i(node_of, "transB", 0) != 0, true)
    } else {
        (false, false)
    };
    let shape = wq.q.shape();
    if shape.len() != 2 {
        return None;
    }
    let (k, n) = if trans_b { (shape[1], shape[0]) } else { (shape[0], shape[1]) };
    let w = |kk: usize, nn: usize| -> f32 { f32::from(if trans_b { wq.q[[nn, kk]] } else { wq.q[[kk, nn]] }) };
    let scales = channel_scales(wq, n)?;
    let k2 = k / 2;
    let mut nodes = Vec::new();
    let mut inits = Vec::new();
    // Pairs: [M, K2, 1, 2] × [K2, 2, N] → [M, K2, 1, N].
    let mut w2 = Vec::with_capacity(k2 * 2 * n);
    for j in 0..k2 {
        for i in 0..2 {
            for nn in 0..n {
                w2.push(w(2 * j + i, nn));
            }
        }
    }
    inits.push(float_tensor(&p("w_pairs"), &[k2 as i64, 2, n as i64], &w2));
    inits.push(float_tensor(&p("lo"), &[], &[LO]));
    inits.push(float_tensor(&p("hi"), &[], &[HI]));
    inits.push(float_tensor(&p("ones"), &[1, k2 as i64], &vec![1.0; k2]));
    inits.push(int64_tensor(&p("pair_shape"), &[-1, k2 as i64, 1, 2]));
    inits.push(int64_tensor(&p("sum_shape"), &[-1, k2 as i64, n as i64]));
    let even = if k % 2 == 1 {
        inits.push(int64_tensor(&p("zero"), &[0]));
        inits.push(int64_tensor(&p("k_even"), &[2 * k2 as i64]));
        inits.push(int64_tensor(&p("k"), &[k as i64]));
        inits.push(int64_tensor(&p("last_axis"), &[-1]));
        nodes.push(node("Slice", p("even"), &[q, &p("zero"), &p("k_even"), &p("last_axis")], p("q_even")));
        p("q_even")
    } else {
        q.clone()
    };
    nodes.push(node("Reshape", p("pairs"), &[&even, &p("pair_shape")], p("a_pairs")));
    nodes.push(node("MatMul", p("pair_sums"), &[&p("a_pairs"), &p("w_pairs")], p("pair_sum")));
    nodes.push(node("Clip", p("saturate"), &[&p("pair_sum"), &p("lo"), &p("hi")], p("pair_sat")));
    nodes.push(node("Reshape", p("flat"), &[&p("pair_sat"), &p("sum_shape")], p("pair_rows")));
    nodes.push(node("MatMul", p("sum"), &[&p("ones"), &p("pair_rows")], p("sum_even")));
    let mut acc = p("sum_even");
    if k % 2 == 1 {
        // The odd last element pairs with padding: one product, which cannot saturate.
        inits.push(float_tensor(&p("w_last"), &[1, n as i64], &(0..n).map(|nn| w(k - 1, nn)).collect::<Vec<_>>()));
        inits.push(int64_tensor(&p("col_shape"), &[-1, 1, 1]));
        nodes.push(node("Slice", p("last"), &[q, &p("k_even"), &p("k"), &p("last_axis")], p("q_last")));
        nodes.push(node("Reshape", p("last_col"), &[&p("q_last"), &p("col_shape")], p("q_last_col")));
        nodes.push(node("MatMul", p("last_product"), &[&p("q_last_col"), &p("w_last")], p("last_prod")));
        nodes.push(node("Add", p("add_last"), &[&acc, &p("last_prod")], p("sum_all")));
        acc = p("sum_all");
    }
    let colsum: Vec<f32> = (0..n).map(|nn| (0..k).map(|kk| w(kk, nn)).sum()).collect();
    finish(&mut nodes, &mut inits, &p, &acc, za, sa, &colsum, &scales, int_bias.as_deref(), &[n as i64]);
    // Back to the input's leading dims: [M, 1, N] → A.shape[:-1] ++ [N].
    inits.push(int64_tensor(&p("n"), &[n as i64]));
    inits.push(int64_tensor(&p("start"), &[0]));
    inits.push(int64_tensor(&p("end"), &[-1]));
    nodes.push(node("Shape", p("shape"), &[q], p("a_shape")));
    nodes.push(node("Slice", p("lead"), &[&p("a_shape"), &p("start"), &p("end")], p("lead_dims")));
    let mut concat = node("Concat", p("out_shape"), &[&p("lead_dims"), &p("n")], p("out_dims"));
    concat.attribute.push(int_attribute("axis", 0));
    nodes.push(concat);
    let scaled = p("scaled");
    match float_bias {
        Some(b) if gemm => {
            nodes.push(node("Reshape", p("unflatten"), &[&scaled, &p("out_dims")], p("unbiased")));
            nodes.push(node("Add", p("float_bias"), &[&p("unbiased"), &b], out));
        }
        _ => nodes.push(node("Reshape", p("unflatten"), &[&scaled, &p("out_dims")], out)),
    }
    Some(Emulation { nodes, inits })
}

/// Conv (any group count): a one-hot im2col Conv per group, then a grouped 1×1 Conv per pair.
fn emulate_conv(ctx: &Ctx<'_>) -> Option<Emulation> {
    let (node_of, wq, out) = (ctx.node, ctx.wq, ctx.out.clone());
    let p = |s: &str| ctx.p(s);
    let (q, za, sa) = (&ctx.q, &ctx.za, &ctx.sa);
    let (int_bias, float_bias) = (&ctx.int_bias, ctx.float_bias.clone());
    let shape = wq.q.shape();
    let groups = usize::try_from(attr_i(node_of, "group", 1)).ok().filter(|&g| g > 0)?;
    if shape.len() != 4 || shape[0] % groups != 0 {
        return None;
    }
    // Per group g: Cg input channels, Mg outputs, K = Cg·kh·kw, padded to whole pairs.
    let (m, cg, kh, kw) = (shape[0], shape[1], shape[2], shape[3]);
    let mg = m / groups;
    let scales = channel_scales(wq, m)?;
    let k = cg * kh * kw;
    let k2 = k.div_ceil(2);
    // NHWC order within a group: k = (ih · kw + iw) · Cg + c.
    let index = |ci: usize, ih: usize, iw: usize| (ih * kw + iw) * cg + ci;
    let mut eye = vec![0f32; groups * 2 * k2 * cg * kh * kw];
    let mut wg = vec![0f32; groups * k2 * mg * 2];
    for g in 0..groups {
        for ci in 0..cg {
            for ih in 0..kh {
                for iw in 0..kw {
                    let kk = index(ci, ih, iw);
                    let row = g * 2 * k2 + kk;
                    eye[((row * cg + ci) * kh + ih) * kw + iw] = 1.0;
                    let (j, i) = (kk / 2, kk % 2);
                    for mm in 0..mg {
                        wg[(((g * k2 + j) * mg) + mm) * 2 + i] = f32::from(wq.q[[g * mg + mm, ci, ih, iw]]);
                    }
                }
            }
        }
    }
    let colsum: Vec<f32> =
        (0..m).map(|mm| wq.q.index_axis(ndarray::Axis(0), mm).iter().map(|&v| f32::from(v)).sum()).collect();
    let mut nodes = Vec::new();
    let mut inits = vec![
        float_tensor(&p("im2col"), &[(groups * 2 * k2) as i64, cg as i64, kh as i64, kw as i64], &eye),
        float_tensor(&p("w_pairs"), &[(groups * k2 * mg) as i64, 2, 1, 1], &wg),
        float_tensor(&p("lo"), &[], &[LO]),
        float_tensor(&p("hi"), &[], &[HI]),
        float_tensor(&p("ones"), &[1, k2 as i64], &vec![1.0; k2]),
        int64_tensor(&p("sum_shape"), &[0, groups as i64, k2 as i64, -1]),
        int64_tensor(&p("m"), &[m as i64]),
        int64_tensor(&p("i0"), &[0]),
        int64_tensor(&p("i1"), &[1]),
        int64_tensor(&p("i2"), &[2]),
        int64_tensor(&p("i4"), &[4]),
    ];
    // Patches of the centred input (so that padding reads the zero point), then raw.
    nodes.push(node("Sub", p("centre"), &[q, za], p("centred")));
    let mut patches = node("Conv", p("patches"), &[&p("centred"), &p("im2col")], p("patch_centred"));
    patches.attribute.push(int_attribute("group", groups as i64));
    patches.attribute.extend(
        node_of
            .attribute
            .iter()
            .filter(|a| ["auto_pad", "dilations", "pads", "strides"].contains(&a.name.as_str()))
            .cloned(),
    );
    nodes.push(patches);
    nodes.push(node("Add", p("uncentre"), &[&p("patch_centred"), za], p("patch")));
    let mut pairs = node("Conv", p("pair_sums"), &[&p("patch"), &p("w_pairs")], p("pair_sum"));
    pairs.attribute.push(int_attribute("group", (groups * k2) as i64));
    nodes.push(pairs);
    nodes.push(node("Clip", p("saturate"), &[&p("pair_sum"), &p("lo"), &p("hi")], p("pair_sat")));
    nodes.push(node("Reshape", p("flat"), &[&p("pair_sat"), &p("sum_shape")], p("pair_rows")));
    nodes.push(node("MatMul", p("sum"), &[&p("ones"), &p("pair_rows")], p("sum_flat")));
    nodes.push(node("Shape", p("shape"), &[&p("patch")], p("patch_shape")));
    nodes.push(node("Slice", p("batch"), &[&p("patch_shape"), &p("i0"), &p("i1")], p("batch_dim")));
    nodes.push(node("Slice", p("spatial"), &[&p("patch_shape"), &p("i2"), &p("i4")], p("spatial_dims")));
    let mut concat = node("Concat", p("out_shape"), &[&p("batch_dim"), &p("m"), &p("spatial_dims")], p("out_dims"));
    concat.attribute.push(int_attribute("axis", 0));
    nodes.push(concat);
    nodes.push(node("Reshape", p("unflatten"), &[&p("sum_flat"), &p("out_dims")], p("sum_even")));
    finish(
        &mut nodes,
        &mut inits,
        &p,
        &p("sum_even"),
        za,
        sa,
        &colsum,
        &scales,
        int_bias.as_deref(),
        &[m as i64, 1, 1],
    );
    match float_bias {
        Some(b) => {
            inits.push(int64_tensor(&p("bias_shape"), &[m as i64, 1, 1]));
            nodes.push(node("Reshape", p("bias_col"), &[&b, &p("bias_shape")], p("bias")));
            nodes.push(node("Add", p("float_bias"), &[&p("scaled"), &p("bias")], out));
        }
        None => nodes.push(node("Identity", p("output"), &[&p("scaled")], out)),
    }
    Some(Emulation { nodes, inits })
}

/// acc − z_a · Σw (+ int32 bias), times `s_a · s_w`, into `p("scaled")`; per-channel constants
/// have shape `dims`.
#[allow(clippy::too_many_arguments)]
fn finish(
    nodes: &mut Vec<pb::NodeProto>,
    inits: &mut Vec<pb::TensorProto>,
    p: &dyn Fn(&str) -> String,
    acc: &str,
    za: &str,
    sa: &str,
    colsum: &[f32],
    scales: &[f32],
    int_bias: Option<&[f32]>,
    dims: &[i64],
) {
    inits.push(float_tensor(&p("colsum"), dims, colsum));
    inits.push(float_tensor(&p("w_scale"), dims, scales));
    nodes.push(node("Mul", p("zp_term"), &[za, &p("colsum")], p("zp_sum")));
    nodes.push(node("Sub", p("correct"), &[acc, &p("zp_sum")], p("acc")));
    let mut acc = p("acc");
    if let Some(b) = int_bias {
        inits.push(float_tensor(&p("bias_q"), dims, b));
        nodes.push(node("Add", p("int_bias"), &[&acc, &p("bias_q")], p("acc_bias")));
        acc = p("acc_bias");
    }
    nodes.push(node("Mul", p("scale"), &[sa, &p("w_scale")], p("out_scale")));
    nodes.push(node("Mul", p("dequantize"), &[&acc, &p("out_scale")], p("scaled")));
}
