//! Emulating ONNX Runtime's `QLinearSoftmax` (uint8) in the simulated graph.
//!
//! Where the export has `DequantizeLinear → Softmax → QuantizeLinear`, ORT's QDQ fusion runs the
//! integer kernel `com.microsoft.QLinearSoftmax` (`contrib_ops/cpu/quantization/qlinear_softmax.cc`),
//! which does not compute `Q(softmax(DQ(x)))`: it looks `exp` up in a table of 256 float values
//! built once for the input scale `s_x` and the reduced length `D`,
//!
//! `table[i] = (f32) exp((i − 255 + b) · s_x)` in f64, with `b = max(0, ln(FLT_MAX / D) − 5) / s_x`,
//!
//! indexes it per row with `255 − max(x) + x` (raw uint8 values), sums the row in f32 and writes
//! `min(255, nearbyint(table · ⌊1 / s_y⌋ / sum) + z_y)`. The output scale enters only through
//! `⌊1 / s_y⌋` (254 for the fixed scale 1/255 in f32), so the kernel's outputs are not those of
//! the float softmax. The simulation replaces such a Softmax by float ops computing the same
//! integers (its output is `(q − z_y) · s_y`, which the output's fake quantization maps back to
//! `q`). Opsets below 13 reduce over all axes from `axis` on, done here on the flattened 2-D form.

use crate::model::graph::{float_tensor, int_attribute, int64_tensor, node};
use crate::model::onnx as pb;
use crate::plan::ActQuant;

use super::graph::{F32, F64, cast, codes_of, double_tensor, exact_div, fq_name, full_u8};

/// The nodes and constants replacing `softmax`, whose input 0 is the fake-quantized `x` and
/// whose output is quantized by `y`; None when the kernel is not the uint8 one emulated here.
pub(super) fn emulate(
    softmax: &pb::NodeProto,
    opset: i64,
    x: &ActQuant,
    y: &ActQuant,
) -> Option<(Vec<pb::NodeProto>, Vec<pb::TensorProto>)> {
    if !full_u8(x) || !full_u8(y) || softmax.input.first() != Some(&fq_name(&x.tensor)) {
        return None;
    }
    let out = softmax.output.first()?.clone();
    let base = if softmax.name.is_empty() { out.clone() } else { softmax.name.clone() };
    let k = |s: &str| format!("{base}/qb_softmax/{s}");
    let (mut nodes, q_x) = codes_of(x, &k("x"));
    let default_axis = if opset < 13 { 1 } else { -1 };
    let axis = softmax.attribute.iter().find(|a| a.name == "axis").map_or(default_axis, |a| a.i);
    let mut inits = vec![
        float_tensor(&k("flt_max"), &[], &[f32::MAX]),
        float_tensor(&k("reserve"), &[], &[5.0]),
        float_tensor(&k("y_scale_inv"), &[], &[(1.0f32 / y.params.scale).floor()]),
        float_tensor(&k("top"), &[], &[255.0]),
        float_tensor(&k("y_zp"), &[], &[y.params.zero_point as f32]),
        float_tensor(&k("y_scale"), &[], &[y.params.scale]),
        double_tensor(&k("zero"), &[0.0]),
        double_tensor(&k("x_scale"), &[f64::from(x.params.scale)]),
        double_tensor(&k("i_minus_255"), &(0..256).map(|i| f64::from(i) - 255.0).collect::<Vec<_>>()),
    ];
    // The integers, on the 2-D form (rows × D) for opsets below 13.
    let (q, reduce_axis) = if opset < 13 {
        let mut flat = node("Flatten", k("flatten"), &[&q_x], k("q2d"));
        flat.attribute.push(int_attribute("axis", axis));
        nodes.push(flat);
        (k("q2d"), 1)
    } else {
        (q_x.clone(), axis)
    };
    // D, the reduced length, from the shape at run time.
    inits.push(int64_tensor(&k("axis"), &[reduce_axis]));
    nodes.push(node("Shape", k("shape"), &[&q], k("dims")));
    nodes.push(node("Gather", k("d"), &[&k("dims"), &k("axis")], k("d_i64")));
    nodes.push(cast(&k("d_f32"), &k("d_i64"), F32));
    nodes.extend(exact_div(&k("ratio"), &k("flt_max"), &k("d_f32"), k("max_over_d")));
    nodes.extend([
        cast(&k("ratio_f64"), &k("max_over_d"), F64),
        node("Log", k("log"), &[&k("ratio_f64")], k("log_ratio")),
        node("Sub", k("less_reserve"), &[&k("log_ratio"), &k("reserve_f64")], k("shift_raw")),
        node("Max", k("clamp0"), &[&k("shift_raw"), &k("zero")], k("shift_scaled")),
        node("Div", k("unscale"), &[&k("shift_scaled"), &k("x_scale")], k("bit_shift")),
        node("Add", k("exponent_i"), &[&k("i_minus_255"), &k("bit_shift")], k("steps")),
        node("Mul", k("exponent"), &[&k("steps"), &k("x_scale")], k("exponent_f64")),
        node("Exp", k("exp"), &[&k("exponent_f64")], k("table_f64")),
        cast(&k("table"), &k("table_f64"), F32),
        cast(&k("reserve_f64"), &k("reserve"), F64),
    ]);
    // Per row: index 255 − max + x, looked up, summed, divided, rounded, offset and clipped.
    nodes.push(reduce("ReduceMax", &k("row_max"), &q, reduce_axis, opset, &mut inits));
    nodes.extend([
        node("Sub", k("from_max"), &[&q, &k("row_max/out")], k("below_max")),
        node("Add", k("index_f"), &[&k("below_max"), &k("top")], k("index_f32")),
        cast(&k("index"), &k("index_f32"), I64),
        node("Gather", k("lookup"), &[&k("table"), &k("index")], k("e")),
    ]);
    // Summed one value after the other, as the kernel does (the name asks tract's runner for it).
    let row_sum = k(crate::model::SEQUENTIAL_SUM);
    nodes.push(reduce("ReduceSum", &row_sum, &k("e"), reduce_axis, opset, &mut inits));
    nodes.push(node("Mul", k("times_inv"), &[&k("e"), &k("y_scale_inv")], k("scaled")));
    nodes.extend(exact_div(&k("share"), &k("scaled"), &format!("{row_sum}/out"), k("quotient")));
    let y_float = if opset < 13 { k("y2d") } else { out.clone() };
    nodes.extend([
        node("Round", k("round"), &[&k("quotient")], k("rounded")),
        node("Add", k("add_zp"), &[&k("rounded"), &k("y_zp")], k("shifted")),
        node("Min", k("saturate"), &[&k("shifted"), &k("top")], k("q_y")),
        node("Sub", k("sub_zp"), &[&k("q_y"), &k("y_zp")], k("centred")),
        node("Mul", k("dequantize"), &[&k("centred"), &k("y_scale")], y_float.clone()),
    ]);
    if opset < 13 {
        nodes.push(node("Shape", k("x_shape"), &[&q_x], k("x_dims")));
        nodes.push(node("Reshape", k("unflatten"), &[&y_float, &k("x_dims")], out));
    }
    Some((nodes, inits))
}

const I64: i64 = pb::tensor_proto::DataType::Int64 as i64;

/// `op` over `axis`, keeping dims, in the form of `opset` (axes an input from opset 13 for
/// ReduceSum and 18 for the others; an attribute before).
fn reduce(op: &str, name: &str, input: &str, axis: i64, opset: i64, inits: &mut Vec<pb::TensorProto>) -> pb::NodeProto {
    let axes_as_input = if op == "ReduceSum" { opset >= 13 } else { opset >= 18 };
    let mut n = if axes_as_input {
        let axes = format!("{name}/axes");
        inits.push(int64_tensor(&axes, &[axis]));
        node(op, name.to_string(), &[input, &axes], format!("{name}/out"))
    } else {
        let mut n = node(op, name.to_string(), &[input], format!("{name}/out"));
        n.attribute.push(pb::AttributeProto { name: "axes".into(), r#type: 7, ints: vec![axis], ..Default::default() });
        n
    };
    n.attribute.push(int_attribute("keepdims", 1));
    n
}
