//! Emulating ONNX Runtime's `QLinearAveragePool` (NCHW, 2-D windows) in the simulated graph.
//!
//! Where the export has `DequantizeLinear → AveragePool → QuantizeLinear`, ORT's QDQ fusion runs
//! `com.microsoft.QLinearAveragePool` (`contrib_ops/cpu/quantization/qlinear_pool.cc`): it
//! dequantizes the input to f32 (`(q − z) · s`, the simulation's fake-quantized value), then per
//! output sums the window's values in f32 in row-major order (padding skipped), divides by the
//! element count (the window's valid elements, or the whole kernel with `count_include_pad`) and
//! quantizes. tract's AveragePool sums in another order, which lands about one output code in 256
//! one step away. The replacement sums the window's shifted slices of the zero-padded input in
//! ORT's order (adding a padded zero leaves an f32 sum unchanged) and divides exactly.

use crate::model::graph::{attr_i, attr_ints, int64_tensor, node};
use crate::model::onnx as pb;
use crate::plan::ActQuant;

use super::graph::{exact_div, fq_name, full_u8};

/// The nodes and constants replacing the AveragePool `pool`, whose input 0 is the
/// fake-quantized `x` and whose output is quantized by `y`; None outside the emulated form
/// (uint8, rank-4 input, 2-D kernel, explicit pads, floor mode, opset 11 or later).
pub(super) fn emulate(
    pool: &pb::NodeProto,
    opset: i64,
    x: &ActQuant,
    y: &ActQuant,
) -> Option<(Vec<pb::NodeProto>, Vec<pb::TensorProto>)> {
    let kernel = attr_ints(pool, "kernel_shape")?;
    let [kh, kw] = kernel.as_slice() else { return None };
    let strides = attr_ints(pool, "strides").unwrap_or_else(|| vec![1, 1]);
    let pads = attr_ints(pool, "pads").unwrap_or_else(|| vec![0; 4]);
    let auto_pad = pool.attribute.iter().find(|a| a.name == "auto_pad").map(|a| a.s.as_slice());
    let plain = !matches!(auto_pad, Some(p) if !p.is_empty() && p != b"NOTSET")
        && attr_i(pool, "ceil_mode", 0) == 0
        && attr_ints(pool, "dilations").is_none_or(|d| d.iter().all(|&v| v == 1));
    if !full_u8(x) || !full_u8(y) || !plain || opset < 11 || strides.len() != 2 || pads.len() != 4 {
        return None;
    }
    if pool.input.first() != Some(&fq_name(&x.tensor)) || x.params.range.qmin != 0 {
        return None;
    }
    let out = pool.output.first()?.clone();
    let base = if pool.name.is_empty() { out.clone() } else { pool.name.clone() };
    let k = |s: &str| format!("{base}/qb_avgpool/{s}");
    let input = fq_name(&x.tensor);
    let mut inits = vec![
        int64_tensor(&k("pads"), &[0, 0, pads[0], pads[1], 0, 0, pads[2], pads[3]]),
        int64_tensor(&k("axes"), &[2, 3]),
        int64_tensor(&k("steps"), &[strides[0], strides[1]]),
        crate::model::graph::float_tensor(&k("zero"), &[], &[0.0]),
        crate::model::graph::float_tensor(&k("one"), &[], &[1.0]),
    ];
    let mut nodes = vec![
        node("Pad", k("pad"), &[&input, &k("pads")], k("padded")),
        // Ones where the input is, zeros in the padding: the valid element count per window.
        node("Mul", k("zeros"), &[&input, &k("zero")], k("x0")),
        node("Add", k("ones"), &[&k("x0"), &k("one")], k("x1")),
        node("Pad", k("pad_ones"), &[&k("x1"), &k("pads")], k("padded_ones")),
    ];
    // The window offset (i, j) as a slice of the padded input with the output's shape: from
    // (i, j) to `kernel − 1 − offset` before the end, every stride.
    let end = |k_len: i64, i: i64| if i == k_len - 1 { i64::MAX } else { i - (k_len - 1) };
    let mut sum: Option<(String, String)> = None;
    for i in 0..*kh {
        for j in 0..*kw {
            let tag = format!("{i}_{j}");
            inits.push(int64_tensor(&k(&format!("starts_{tag}")), &[i, j]));
            inits.push(int64_tensor(&k(&format!("ends_{tag}")), &[end(*kh, i), end(*kw, j)]));
            let slice = |src: &str, what: &str| {
                node(
                    "Slice",
                    k(&format!("{what}_{tag}")),
                    &[src, &k(&format!("starts_{tag}")), &k(&format!("ends_{tag}")), &k("axes"), &k("steps")],
                    k(&format!("{what}_{tag}")),
                )
            };
            nodes.push(slice(&k("padded"), "window"));
            nodes.push(slice(&k("padded_ones"), "valid"));
            let (value, count) = (k(&format!("window_{tag}")), k(&format!("valid_{tag}")));
            sum = Some(match sum {
                None => (value, count),
                Some((s, c)) => {
                    nodes.push(node("Add", k(&format!("sum_{tag}")), &[&s, &value], k(&format!("sum_{tag}"))));
                    nodes.push(node("Add", k(&format!("count_{tag}")), &[&c, &count], k(&format!("count_{tag}"))));
                    (k(&format!("sum_{tag}")), k(&format!("count_{tag}")))
                }
            });
        }
    }
    let (total, valid) = sum?;
    let count = if attr_i(pool, "count_include_pad", 0) != 0 {
        inits.push(crate::model::graph::float_tensor(&k("kernel_count"), &[], &[(kh * kw) as f32]));
        k("kernel_count")
    } else {
        valid
    };
    nodes.extend(exact_div(&k("mean"), &total, &count, out));
    Some((nodes, inits))
}
