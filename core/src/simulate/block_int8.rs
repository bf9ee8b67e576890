//! Emulating the int8 inputs of ONNX Runtime's MatMulNBits at accuracy level 4, which its QDQ
//! fusion gives a block-wise DequantizeLinear → MatMul (`plan::int8_block_input`): per row of the
//! input and block of `B` along K (the last block padded with zeros), `s = max|a| / 127` and
//! `q = round(a · (127 / max|a|))` (half to even), and the kernel sums `q · w` per block scaled by
//! `s`. The simulation computes the same products in float: the MatMul reads `q · s` instead of
//! `a` (the integer sums are exact; the float sums differ only in rounding order).

use crate::model::graph::{float_tensor, int_attribute, int64_tensor, node};
use crate::model::onnx as pb;

/// The nodes and constants that replace input 0 of `matmul` by its int8 blocks for a `[K, N]`
/// weight in blocks of `block`; None for opsets before 11 (no Round).
pub(super) fn emulate(
    matmul: &pb::NodeProto,
    opset: i64,
    k: usize,
    block: usize,
) -> Option<(Vec<pb::NodeProto>, Vec<pb::TensorProto>)> {
    if opset < 11 || block == 0 {
        return None;
    }
    let a = matmul.input.first()?.clone();
    let base = if matmul.name.is_empty() { matmul.output.first()?.clone() } else { matmul.name.clone() };
    let n = |s: &str| format!("{base}/qb_int8_blocks/{s}");
    let padded = k.div_ceil(block) * block;
    let (k_i, padded_i, block_i) = (k as i64, padded as i64, block as i64);
    let mut inits = vec![
        int64_tensor(&n("rows_k"), &[-1, k_i]),
        int64_tensor(&n("rows_blocks"), &[-1, padded_i / block_i, block_i]),
        int64_tensor(&n("rows_padded"), &[-1, padded_i]),
        float_tensor(&n("q_max"), &[], &[127.0]),
        float_tensor(&n("zero"), &[], &[0.0]),
    ];
    let mut nodes = vec![
        node("Shape", n("shape"), &[&a], n("shape_out")),
        node("Reshape", n("rows"), &[&a, &n("rows_k")], n("rows_out")),
    ];
    let mut rows = n("rows_out");
    if padded > k {
        inits.push(int64_tensor(&n("pads"), &[0, 0, 0, padded_i - k_i]));
        nodes.push(node("Pad", n("pad"), &[&rows, &n("pads")], n("pad_out")));
        rows = n("pad_out");
    }
    nodes.push(node("Reshape", n("blocks"), &[&rows, &n("rows_blocks")], n("blocks_out")));
    nodes.push(node("Abs", n("abs"), &[&n("blocks_out")], n("abs_out")));
    let mut max = if opset >= 18 {
        inits.push(int64_tensor(&n("axes"), &[2]));
        node("ReduceMax", n("max"), &[&n("abs_out"), &n("axes")], n("max_out"))
    } else {
        let mut m = node("ReduceMax", n("max"), &[&n("abs_out")], n("max_out"));
        m.attribute.push(pb::AttributeProto { name: "axes".into(), r#type: 7, ints: vec![2], ..Default::default() });
        m
    };
    max.attribute.push(int_attribute("keepdims", 1));
    nodes.push(max);
    // 127 / max|a|, and 0 for a block of zeros (as MLAS: the product would be 0 · ∞), and
    // max|a| / 127.
    nodes.push(node("Equal", n("all_zero"), &[&n("max_out"), &n("zero")], n("all_zero_out")));
    nodes.push(node("Div", n("ratio"), &[&n("q_max"), &n("max_out")], n("ratio_out")));
    nodes.push(node("Where", n("inverse"), &[&n("all_zero_out"), &n("zero"), &n("ratio_out")], n("inverse_out")));
    nodes.push(node("Div", n("scale"), &[&n("max_out"), &n("q_max")], n("scale_out")));
    nodes.push(node("Mul", n("scaled"), &[&n("blocks_out"), &n("inverse_out")], n("scaled_out")));
    nodes.push(node("Round", n("round"), &[&n("scaled_out")], n("q")));
    nodes.push(node("Mul", n("dequantize"), &[&n("q"), &n("scale_out")], n("dq_out")));
    nodes.push(node("Reshape", n("unblock"), &[&n("dq_out"), &n("rows_padded")], n("unblock_out")));
    let mut unpadded = n("unblock_out");
    if padded > k {
        inits.push(int64_tensor(&n("starts"), &[0]));
        inits.push(int64_tensor(&n("ends"), &[k_i]));
        inits.push(int64_tensor(&n("slice_axes"), &[1]));
        nodes.push(node("Slice", n("unpad"), &[&unpadded, &n("starts"), &n("ends"), &n("slice_axes")], n("unpad_out")));
        unpadded = n("unpad_out");
    }
    nodes.push(node("Reshape", n("restore"), &[&unpadded, &n("shape_out")], n("out")));
    let mut mm = matmul.clone();
    mm.input[0] = n("out");
    nodes.push(mm);
    Some((nodes, inits))
}
