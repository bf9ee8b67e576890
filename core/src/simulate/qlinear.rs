//! Emulating ONNX Runtime's uint8 `QLinearAdd` and `QLinearMul` (x86-64 MLAS) in the simulated
//! graph.
//!
//! Where the export has `DequantizeLinear → Add|Mul → QuantizeLinear` on both inputs, ORT's QDQ
//! fusion runs `com.microsoft.QLinearAdd|QLinearMul`, whose arithmetic is not that of the float op
//! between fake quantizations. With raw uint8 codes `a`, `b` (zero points included) and
//! `r_A = s_a / s_c`, `r_B = s_b / s_c` in f32 (`mlas/lib/qladd.cpp`, `x86_64/avx2/qladd_avx2.cpp`):
//!
//! - Add, both inputs vectors: `c = round(fma(a, r_A, fma(b, r_B, F)))` with the fixed part
//!   `F = z_c − fma(r_A, z_a, r_B · z_b)`;
//! - Add, input `B` one value per span (a scalar constant, or a `[C, 1, 1]` one against NCHW):
//!   `c = round(fma(a, r_A, F + b · r_B))`; when input 0 is that scalar, A and B swap;
//! - Mul: `c = round(f32((a − z_a)(b − z_b)) · (s_a · s_b / s_c) + z_c)` (`mlas/lib/qlmul.cpp`; the
//!   zero point is added before rounding, which decides ties: measured with power-of-two scales,
//!   where `−2.5 + 79` gives 76 in ORT, not `round(−2.5) + 79 = 77`);
//!
//! rounding half to even and saturating to [0, 255]. The fused multiply-adds are computed in f64
//! (the product of an 8-bit integer by an f32 is exact there) and rounded once to f32. The
//! replacement's output is `(c − z_c) · s_c`, which the output's fake quantization maps back to `c`.

use crate::model::OnnxModel;
use crate::model::graph::{float_tensor, node};
use crate::model::onnx as pb;
use crate::plan::ActQuant;

use super::graph::{F32, F64, cast, codes_of, double_tensor, fq_name, full_u8};

/// Whether constant `name` holds one value per span of ORT's broadcast loop: a single value, or
/// one whose innermost dimension is 1 (per channel against NCHW).
fn per_span_scalar(model: &OnnxModel, name: &str) -> bool {
    model.constants().get(name).is_some_and(|t| t.dims.iter().product::<i64>() == 1 || t.dims.last() == Some(&1))
}

/// The nodes and constants replacing the Add or Mul `n` (inputs already rewired to the fake
/// quantized `x0`, `x1`; output quantized by `y`), or None when the kernel is not the uint8 one.
pub(super) fn emulate(
    model: &OnnxModel,
    n: &pb::NodeProto,
    x0: &ActQuant,
    x1: &ActQuant,
    y: &ActQuant,
) -> Option<(Vec<pb::NodeProto>, Vec<pb::TensorProto>)> {
    if ![x0, x1, y].iter().all(|a| full_u8(a))
        || n.input.len() != 2
        || n.input[0] != fq_name(&x0.tensor)
        || n.input[1] != fq_name(&x1.tensor)
    {
        return None;
    }
    let out = n.output.first()?.clone();
    let base = if n.name.is_empty() { out.clone() } else { n.name.clone() };
    let k = |s: &str| format!("{base}/qb_qlinear/{s}");
    let (mut nodes, q0) = codes_of(x0, &k("a"));
    let (more, q1) = codes_of(x1, &k("b"));
    nodes.extend(more);
    let q = |a: &ActQuant| if std::ptr::eq(a, x0) { q0.clone() } else { q1.clone() };
    let (sc, zc) = (y.params.scale, y.params.zero_point as f32);
    let mut inits = vec![
        float_tensor(&k("zc"), &[], &[zc]),
        float_tensor(&k("sc"), &[], &[sc]),
        float_tensor(&k("lo"), &[], &[0.0]),
        float_tensor(&k("hi"), &[], &[255.0]),
    ];
    let code = match n.op_type.as_str() {
        "Mul" => {
            let ratio = x0.params.scale * x1.params.scale / sc;
            inits.push(float_tensor(&k("za"), &[], &[x0.params.zero_point as f32]));
            inits.push(float_tensor(&k("zb"), &[], &[x1.params.zero_point as f32]));
            inits.push(float_tensor(&k("ratio"), &[], &[ratio]));
            nodes.extend([
                node("Sub", k("a_centred"), &[&q(x0), &k("za")], k("a_c")),
                node("Sub", k("b_centred"), &[&q(x1), &k("zb")], k("b_c")),
                node("Mul", k("product"), &[&k("a_c"), &k("b_c")], k("ab")),
                node("Mul", k("rescale"), &[&k("ab"), &k("ratio")], k("scaled")),
                node("Add", k("add_zp"), &[&k("scaled"), &k("zc")], k("shifted")),
                node("Round", k("round"), &[&k("shifted")], k("code")),
            ]);
            k("code")
        }
        "Add" => {
            // A is the vector operand, B the one that may be a scalar per span.
            let (a, b, scalar_b) = if per_span_scalar(model, &x1.tensor) {
                (x0, x1, true)
            } else if per_span_scalar(model, &x0.tensor) {
                (x1, x0, true)
            } else {
                (x0, x1, false)
            };
            let r_a = a.params.scale / sc;
            let r_b = b.params.scale / sc;
            let fixed = zc - r_a.mul_add(a.params.zero_point as f32, r_b * b.params.zero_point as f32);
            inits.extend([
                double_tensor(&k("r_a64"), &[f64::from(r_a)]),
                double_tensor(&k("r_b64"), &[f64::from(r_b)]),
                double_tensor(&k("fixed64"), &[f64::from(fixed)]),
                float_tensor(&k("r_b"), &[], &[r_b]),
                float_tensor(&k("fixed"), &[], &[fixed]),
            ]);
            nodes.extend([cast(&k("a64"), &q(a), F64), cast(&k("b64"), &q(b), F64)]);
            let partial = if scalar_b {
                nodes.extend([
                    node("Mul", k("b_scaled"), &[&q(b), &k("r_b")], k("b_r")),
                    node("Add", k("fixed_b"), &[&k("fixed"), &k("b_r")], k("partial")),
                ]);
                k("partial")
            } else {
                nodes.extend([
                    node("Mul", k("b_scaled64"), &[&k("b64"), &k("r_b64")], k("b_r64")),
                    node("Add", k("fma_b"), &[&k("b_r64"), &k("fixed64")], k("partial64")),
                    cast(&k("partial"), &k("partial64"), F32),
                ]);
                k("partial")
            };
            nodes.extend([
                cast(&k("partial_f64"), &partial, F64),
                node("Mul", k("a_scaled64"), &[&k("a64"), &k("r_a64")], k("a_r64")),
                node("Add", k("fma_a"), &[&k("a_r64"), &k("partial_f64")], k("sum64")),
                cast(&k("sum"), &k("sum64"), F32),
                node("Round", k("round"), &[&k("sum")], k("code")),
            ]);
            k("code")
        }
        _ => return None,
    };
    nodes.extend([
        node("Clip", k("saturate"), &[&code, &k("lo"), &k("hi")], k("q_c")),
        node("Sub", k("sub_zp"), &[&k("q_c"), &k("zc")], k("centred")),
        node("Mul", k("dequantize"), &[&k("centred"), &k("sc")], out),
    ]);
    Some((nodes, inits))
}
