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
//! replacement is one node (`model::qlinear_op`) reading both fake-quantized inputs; its output is
//! `(c − z_c) · s_c`, which the output's fake quantization maps back to `c`.

use crate::model::OnnxModel;
use crate::model::onnx as pb;
use crate::model::qlinear_op::{self, QLinearKind, QLinearParams};
use crate::plan::ActQuant;

use super::graph::{fq_name, full_u8};

/// Whether constant `name` holds one value per span of ORT's broadcast loop: a single value, or
/// one whose innermost dimension is 1 (per channel against NCHW).
fn per_span_scalar(model: &OnnxModel, name: &str) -> bool {
    model.constants().get(name).is_some_and(|t| t.dims.iter().product::<i64>() == 1 || t.dims.last() == Some(&1))
}

/// The node replacing the Add or Mul `n` (inputs already rewired to the fake quantized `x0`,
/// `x1`; output quantized by `y`), or None when the kernel is not the uint8 one.
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
    let p = params(model, &n.op_type, x0, x1, y)?;
    let (a, b) = if p.swapped { (x1, x0) } else { (x0, x1) };
    let node = qlinear_op::node(format!("{base}/qb_qlinear"), &fq_name(&a.tensor), &fq_name(&b.tensor), out, &p.params);
    Some((vec![node], Vec::new()))
}

/// The kernel's parameters, and whether ORT's operands A and B are the node's inputs swapped
/// (an Add whose first input is the per-span scalar).
struct Kernel {
    params: QLinearParams,
    swapped: bool,
}

fn grid(a: &ActQuant) -> (f32, f32) {
    (a.params.scale, a.params.zero_point as f32)
}

/// The kernel computing the uint8 Add or Mul `op` of `x0` and `x1` into `y`.
fn params(model: &OnnxModel, op: &str, x0: &ActQuant, x1: &ActQuant, y: &ActQuant) -> Option<Kernel> {
    let sc = y.params.scale;
    let c = grid(y);
    match op {
        "Mul" => {
            let ratio = x0.params.scale * x1.params.scale / sc;
            let params =
                QLinearParams { kind: QLinearKind::Mul, a: grid(x0), b: grid(x1), c, r_a: ratio, r_b: 0.0, fixed: 0.0 };
            Some(Kernel { params, swapped: false })
        }
        "Add" => {
            // A is the vector operand, B the one that may be a scalar per span.
            let (a, b, scalar_b, swapped) = if per_span_scalar(model, &x1.tensor) {
                (x0, x1, true, false)
            } else if per_span_scalar(model, &x0.tensor) {
                (x1, x0, true, true)
            } else {
                (x0, x1, false, false)
            };
            let r_a = a.params.scale / sc;
            let r_b = b.params.scale / sc;
            let fixed = c.1 - r_a.mul_add(a.params.zero_point as f32, r_b * b.params.zero_point as f32);
            let kind = if scalar_b { QLinearKind::AddScalarB } else { QLinearKind::Add };
            Some(Kernel { params: QLinearParams { kind, a: grid(a), b: grid(b), c, r_a, r_b, fixed }, swapped })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use ndarray::ArrayD;

    use super::*;
    use crate::model::fake_quant::{self, FakeQuantParams};
    use crate::model::graph::{float_tensor, node};
    use crate::model::runtime::Runner;
    use crate::simulate::graph::{F32, F64, cast, double_tensor};

    /// The ONNX node chain the one operator replaced (as `emulate` emitted it before), from the
    /// fake-quantized `a` and `b` into `out`.
    fn chain(p: &QLinearParams, a: &str, b: &str, out: &str) -> (Vec<pb::NodeProto>, Vec<pb::TensorProto>) {
        let k = |s: &str| format!("chain/{s}");
        let codes = |x: &str, (s, z): (f32, f32), name: &str| {
            let fq = FakeQuantParams { scale: s, zero_point: z, qmin: 0.0, qmax: 255.0 };
            fake_quant::codes_node(k(name), x, k(name), fq)
        };
        let mut nodes = vec![codes(a, p.a, "qa"), codes(b, p.b, "qb")];
        let mut inits = vec![
            float_tensor(&k("zc"), &[], &[p.c.1]),
            float_tensor(&k("sc"), &[], &[p.c.0]),
            float_tensor(&k("lo"), &[], &[0.0]),
            float_tensor(&k("hi"), &[], &[255.0]),
        ];
        if p.kind == QLinearKind::Mul {
            inits.push(float_tensor(&k("za"), &[], &[p.a.1]));
            inits.push(float_tensor(&k("zb"), &[], &[p.b.1]));
            inits.push(float_tensor(&k("ratio"), &[], &[p.r_a]));
            nodes.extend([
                node("Sub", k("n1"), &[&k("qa"), &k("za")], k("a_c")),
                node("Sub", k("n2"), &[&k("qb"), &k("zb")], k("b_c")),
                node("Mul", k("n3"), &[&k("a_c"), &k("b_c")], k("ab")),
                node("Mul", k("n4"), &[&k("ab"), &k("ratio")], k("scaled")),
                node("Add", k("n5"), &[&k("scaled"), &k("zc")], k("shifted")),
                node("Round", k("n6"), &[&k("shifted")], k("code")),
            ]);
        } else {
            inits.extend([
                double_tensor(&k("r_a64"), &[f64::from(p.r_a)]),
                double_tensor(&k("r_b64"), &[f64::from(p.r_b)]),
                double_tensor(&k("fixed64"), &[f64::from(p.fixed)]),
                float_tensor(&k("r_b"), &[], &[p.r_b]),
                float_tensor(&k("fixed"), &[], &[p.fixed]),
            ]);
            nodes.extend([cast(&k("a64"), &k("qa"), F64), cast(&k("b64"), &k("qb"), F64)]);
            if p.kind == QLinearKind::AddScalarB {
                nodes.extend([
                    node("Mul", k("n1"), &[&k("qb"), &k("r_b")], k("b_r")),
                    node("Add", k("n2"), &[&k("fixed"), &k("b_r")], k("partial")),
                ]);
            } else {
                nodes.extend([
                    node("Mul", k("n1"), &[&k("b64"), &k("r_b64")], k("b_r64")),
                    node("Add", k("n2"), &[&k("b_r64"), &k("fixed64")], k("partial64")),
                    cast(&k("partial"), &k("partial64"), F32),
                ]);
            }
            nodes.extend([
                cast(&k("partial_f64"), &k("partial"), F64),
                node("Mul", k("n3"), &[&k("a64"), &k("r_a64")], k("a_r64")),
                node("Add", k("n4"), &[&k("a_r64"), &k("partial_f64")], k("sum64")),
                cast(&k("sum"), &k("sum64"), F32),
                node("Round", k("n5"), &[&k("sum")], k("code")),
            ]);
        }
        nodes.extend([
            node("Clip", k("n7"), &[&k("code"), &k("lo"), &k("hi")], k("q_c")),
            node("Sub", k("n8"), &[&k("q_c"), &k("zc")], k("centred")),
            node("Mul", k("n9"), &[&k("centred"), &k("sc")], out.to_string()),
        ]);
        (nodes, inits)
    }

    /// Runs `x` (shape `xs`) and `y` (shape `ys`), fake-quantized to A's and B's grids, through
    /// the operator and through the chain; returns both outputs.
    fn both(p: &QLinearParams, xs: &[usize], ys: &[usize], seed: u64) -> (ArrayD<f32>, ArrayD<f32>) {
        let fq = |(s, z): (f32, f32)| FakeQuantParams { scale: s, zero_point: z, qmin: 0.0, qmax: 255.0 };
        let mut nodes = vec![
            fake_quant::node("fq_x".into(), "x", "xa".into(), fq(p.a)),
            fake_quant::node("fq_y".into(), "y", "yb".into(), fq(p.b)),
            qlinear_op::node("op".into(), "xa", "yb", "op_out".into(), p),
        ];
        let (more, initializer) = chain(p, "xa", "yb", "chain_out");
        nodes.extend(more);
        let proto = pb::ModelProto {
            ir_version: 8,
            opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: 13 }],
            graph: Some(pb::GraphProto {
                name: "qlinear".into(),
                node: nodes,
                initializer,
                input: vec![crate::model::float_value_info("x", xs), crate::model::float_value_info("y", ys)],
                output: ["op_out", "chain_out"]
                    .iter()
                    .map(|t| pb::ValueInfoProto { name: (*t).to_string(), ..Default::default() })
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let model = OnnxModel::from_checked_proto(proto, "qlinear".into(), Path::new("q.onnx")).expect("model");
        let runner = Runner::new(&model, &[xs.to_vec(), ys.to_vec()], &[]).expect("runner");
        // Values over and beyond both grids' ranges, including exact grid points.
        let mut state = seed;
        let mut values = |shape: &[usize], (s, z): (f32, f32)| {
            let n: usize = shape.iter().product();
            let v = (0..n)
                .map(|_| {
                    state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                    let u = (state >> 40) as f32 / (1u64 << 24) as f32;
                    (u * 300.0 - 20.0 - z) * s
                })
                .collect();
            ArrayD::from_shape_vec(shape.to_vec(), v).expect("shape")
        };
        let inputs = vec![values(xs, p.a), values(ys, p.b)];
        let mut out = runner.run(inputs).expect("run");
        let chain_out = out.pop().expect("chain");
        (out.pop().expect("op"), chain_out)
    }

    /// The one operator gives, bit for bit, what the node chain gives, for each kernel, with
    /// equal shapes and with either input broadcast; with power-of-two scales, which make ties in
    /// the rounding frequent, and with others.
    #[test]
    fn one_operator_equals_the_node_chain() {
        let grids = [
            ((0.0371f32, 128.0f32), (0.052f32, 3.0f32), (0.0813f32, 77.0f32)),
            ((0.5, 128.0), (0.25, 3.0), (0.5, 77.0)),
            ((0.125, 0.0), (0.5, 255.0), (0.25, 128.0)),
        ];
        for (g, (a, b, c)) in grids.into_iter().enumerate() {
            let add = |kind| {
                let (r_a, r_b) = (a.0 / c.0, b.0 / c.0);
                let fixed = c.1 - r_a.mul_add(a.1, r_b * b.1);
                QLinearParams { kind, a, b, c, r_a, r_b, fixed }
            };
            let mul = QLinearParams { kind: QLinearKind::Mul, a, b, c, r_a: a.0 * b.0 / c.0, r_b: 0.0, fixed: 0.0 };
            let (full, per_channel) = (vec![1, 4, 9, 11], vec![1, 4, 1, 1]);
            let cases = [
                (mul, &full, &full),
                (mul, &full, &per_channel),
                (mul, &per_channel, &full),
                (add(QLinearKind::Add), &full, &full),
                (add(QLinearKind::AddScalarB), &full, &per_channel),
                (add(QLinearKind::AddScalarB), &full, &vec![1, 1, 1, 1]),
            ];
            for (i, (p, xs, ys)) in cases.iter().enumerate() {
                for seed in 0..4 {
                    let (got, want) = both(p, xs, ys, seed * 31 + i as u64);
                    assert_eq!(got.shape(), want.shape(), "grids {g}, case {i}");
                    for (x, w) in got.iter().zip(&want) {
                        assert_eq!(x.to_bits(), w.to_bits(), "grids {g}, case {i} ({:?}): {x} vs {w}", p.kind);
                    }
                }
            }
        }
    }
}
