//! QuantizeLinear→DequantizeLinear of a per-tensor quantized activation as one tract operator,
//! for the simulation's graphs only (never in an export): `(clip(round(x / s) + z, qmin, qmax) −
//! z) · s` in f32, with `x / s` correctly rounded (ONNX Runtime divides; tract would rewrite an
//! ONNX Div into a product by the reciprocal, one ulp off in about a third of the cases) and
//! rounding half to even. It gives, bit for bit, what the six ONNX nodes Div (in f64) → Round →
//! Add → Clip → Sub → Mul give, in one pass over the tensor instead of eight (two of them in f64).

use tract_onnx::tract_core::ops::element_wise::{ElementWiseMiniOp, ElementWiseOp};
use tract_onnx::tract_hir::internal::{Datum, DatumType, ElementWiseIntoHir, InferenceOp, Tensor, TractResult, bail};

use super::graph::float_attribute;
use super::onnx as pb;

/// The ONNX domain of QuantBench's simulation-only operators.
pub const DOMAIN: &str = "ai.quantbench.sim";
/// The operator's type: `(clip(round(x / s) + z) − z) · s`.
pub const OP_TYPE: &str = "FakeQuant";
/// The operator computing only the codes `round(x / s) + z` (no clip: applied to an already
/// fake-quantized tensor, it recovers the integers exactly).
pub const CODES_OP_TYPE: &str = "QuantCodes";
/// Every operator of the domain.
pub const OP_TYPES: [&str; 3] = [OP_TYPE, CODES_OP_TYPE, super::qlinear_op::OP_TYPE];

/// Quantization parameters of one activation, as the operator's attributes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FakeQuantParams {
    /// Scale.
    pub scale: f32,
    /// Zero point.
    pub zero_point: f32,
    /// Smallest integer code.
    pub qmin: f32,
    /// Largest integer code.
    pub qmax: f32,
}

/// A node computing `output = fake_quant(input)` with `p`.
pub fn node(name: String, input: &str, output: String, p: FakeQuantParams) -> pb::NodeProto {
    node_of(OP_TYPE, name, input, output, p)
}

/// A node computing the integer codes (as floats) `output = round(input / s) + z` with `p`.
pub fn codes_node(name: String, input: &str, output: String, p: FakeQuantParams) -> pb::NodeProto {
    node_of(CODES_OP_TYPE, name, input, output, p)
}

fn node_of(op: &str, name: String, input: &str, output: String, p: FakeQuantParams) -> pb::NodeProto {
    let mut n = super::graph::node(op, name, &[input], output);
    n.domain = DOMAIN.to_string();
    n.attribute.extend([
        float_attribute("scale", p.scale),
        float_attribute("zero_point", p.zero_point),
        float_attribute("qmin", p.qmin),
        float_attribute("qmax", p.qmax),
    ]);
    n
}

/// The operators (tract's element-wise form, evaluated in place): the fake quantization, or
/// (`codes`) only its integer codes.
#[derive(Debug, Clone, PartialEq)]
struct FakeQuant {
    params: FakeQuantParams,
    codes: bool,
}

// The parameters are finite (a NaN scale never reaches a plan), so equality is an equivalence.
impl Eq for FakeQuant {}

/// `x` rounded to the nearest integer, half to even, as `f32::round_ties_even` but without a
/// branch or a libm call, so that the loops below vectorise (the x86-64 baseline has no SSE4.1
/// `roundps`): adding and subtracting 2²³ rounds in the current mode, which is to nearest even.
#[inline]
pub fn round_half_even(x: f32) -> f32 {
    const TO_INT: f32 = 8_388_608.0; // 2^23: from here on every f32 is an integer
    let a = x.abs();
    let r = if a < TO_INT { (a + TO_INT) - TO_INT } else { a };
    r.copysign(x)
}

/// `q.max(lo).min(hi)` (NaN gives `lo`, as there), written as the comparisons x86's `maxps` /
/// `minps` compute, so that the loop has no NaN fix-ups (`f32::max` needs three more vector
/// instructions per bound).
#[inline]
pub(super) fn saturate(q: f32, lo: f32, hi: f32) -> f32 {
    let q = if q > lo { q } else { lo };
    if q < hi { q } else { hi }
}

/// `1.5 · 2^23`: for |y| ≤ 2^22, `(y + ROUNDER) − ROUNDER` is `y` rounded half to even (the sum
/// lies in [2^23, 2^24), where the f32 spacing is 1, and `ROUNDER` is even).
const ROUNDER: f32 = 12_582_912.0;

/// `y` rounded half to even, for |y| ≤ 2^22 (two operations; see [`ROUNDER`]).
#[inline]
pub(super) fn round_small(y: f32) -> f32 {
    (y + ROUNDER) - ROUNDER
}

/// Whether `v` is an integer the [`ROUNDER`] trick covers.
fn small_integer(v: f32) -> bool {
    v.fract() == 0.0 && v.abs() <= 4_194_304.0
}

impl FakeQuant {
    fn apply(&self, xs: &mut [f32]) {
        let FakeQuantParams { scale, zero_point, qmin, qmax } = self.params;
        if self.codes {
            for x in xs {
                *x = round_half_even(*x / scale) + zero_point;
            }
            return;
        }
        let (lo, hi) = (qmin - zero_point, qmax - zero_point);
        if small_integer(lo) && small_integer(hi) && small_integer(zero_point) {
            // Clamping before rounding gives the same integer (the bounds are integers, NaN goes
            // to `lo` as `saturate` sends it to `qmin`), and `q − z` is then the rounded value
            // itself: six operations per element instead of about twenty.
            for x in xs {
                let y = saturate(*x / scale, lo, hi);
                *x = round_small(y) * scale;
            }
            return;
        }
        for x in xs {
            let q = saturate(round_half_even(*x / scale) + zero_point, qmin, qmax);
            *x = (q - zero_point) * scale;
        }
    }
}

impl ElementWiseMiniOp for FakeQuant {
    fn name(&self) -> String {
        if self.codes { "QuantBenchQuantCodes".into() } else { "QuantBenchFakeQuant".into() }
    }

    fn eval_in_place(&self, t: &mut Tensor, out_dt: Option<DatumType>) -> TractResult<()> {
        let dt = out_dt.unwrap_or(t.datum_type());
        if dt != f32::datum_type() {
            bail!("FakeQuant computes in f32, not {dt:?}");
        }
        let mut plain = t.try_as_plain_ram_mut()?;
        self.apply(plain.as_slice_mut::<f32>()?);
        Ok(())
    }
}

/// tract's builder of the operator from its ONNX node.
fn build(
    _ctx: &tract_onnx::model::ParsingContext,
    node: &tract_onnx::pb::NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let attr = |name: &str| -> TractResult<f32> { node.get_attr::<f32>(name) };
    let params = FakeQuantParams {
        scale: attr("scale")?,
        zero_point: attr("zero_point")?,
        qmin: attr("qmin")?,
        qmax: attr("qmax")?,
    };
    if !(params.scale.is_finite() && params.scale > 0.0) {
        bail!("FakeQuant scale {} is not a positive finite number", params.scale);
    }
    let op = FakeQuant { params, codes: node.op_type == CODES_OP_TYPE };
    Ok((ElementWiseOp(Box::new(op), None).into_hir(), vec![]))
}

/// Adds the simulation's operators to tract's ONNX registry.
pub(crate) fn register(onnx: &mut tract_onnx::Onnx) {
    for op in [OP_TYPE, CODES_OP_TYPE] {
        onnx.op_register.insert(op, build);
    }
    onnx.op_register.insert(super::qlinear_op::OP_TYPE, super::qlinear_op::build);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The comparison form of the clamp is `max(lo).min(hi)` everywhere, NaN and infinities too.
    #[test]
    #[allow(clippy::manual_clamp, reason = "the reference is max-then-min, which clamp is not for NaN")]
    fn saturate_is_max_then_min() {
        for q in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0, 0.0, -128.0, -128.5, 127.0, 300.0, 5.5] {
            let (a, b) = (saturate(q, -128.0, 127.0), q.max(-128.0).min(127.0));
            assert_eq!(a.to_bits(), b.to_bits(), "{q}: {a} vs {b}");
        }
    }

    /// The clamp-first path gives, bit for bit, the general formula's values: ties, grid points,
    /// values beyond the range, NaN, infinities and signed zeros, for several grids.
    #[test]
    fn clamping_first_gives_the_general_formula() {
        let grids = [
            (0.1f32, 3.0f32, 0.0f32, 255.0f32),
            (0.5, 0.0, -128.0, 127.0),
            (0.25, 128.0, 0.0, 255.0),
            (3.1e-5, 0.0, -32768.0, 32767.0),
        ];
        for (scale, zero_point, qmin, qmax) in grids {
            let general = |x: f32| {
                let q = saturate(round_half_even(x / scale) + zero_point, qmin, qmax);
                (q - zero_point) * scale
            };
            let mut xs: Vec<f32> = (-70_000..70_000)
                .map(|k| (k as f32 * 0.5 - zero_point) * scale)
                .flat_map(|x| [x, f32::from_bits(x.to_bits() + 1), f32::from_bits(x.to_bits().saturating_sub(1))])
                .collect();
            xs.extend([f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.0, -1e-30, 1e-30, f32::MAX, f32::MIN]);
            let want: Vec<f32> = xs.iter().map(|&x| general(x)).collect();
            FakeQuant { params: FakeQuantParams { scale, zero_point, qmin, qmax }, codes: false }.apply(&mut xs);
            for (got, want) in xs.iter().zip(&want) {
                assert_eq!(got.to_bits(), want.to_bits(), "grid ({scale}, {zero_point}): {got} vs {want}");
            }
        }
    }

    /// The branch-free rounding is `round_ties_even` on ties, near ties, large values, signed
    /// zeros, infinities and NaN.
    #[test]
    fn branch_free_rounding_is_round_ties_even() {
        let mut xs: Vec<f32> = (-2000..2000).map(|k| k as f32 * 0.25).collect();
        for base in [0.5f32, 1.5, 2.5, 1e6 + 0.5, 4_194_304.5, 8_388_607.5, 8_388_608.0, 1e9, f32::MAX] {
            for x in [base, f32::from_bits(base.to_bits() + 1), f32::from_bits(base.to_bits() - 1)] {
                xs.extend([x, -x]);
            }
        }
        xs.extend([0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::MIN_POSITIVE, -1e-30]);
        for x in xs {
            assert_eq!(round_half_even(x).to_bits(), x.round_ties_even().to_bits(), "{x:e}");
        }
        assert!(round_half_even(f32::NAN).is_nan());
    }

    /// The one-pass operator gives what the ONNX node sequence gives, with the quotient rounded
    /// once from f64, on values next to every rounding boundary and beyond the clip range.
    #[test]
    fn one_pass_matches_the_node_sequence() {
        let p = FakeQuantParams { scale: 0.1, zero_point: 3.0, qmin: 0.0, qmax: 255.0 };
        let mut xs: Vec<f32> = (-40..300)
            .flat_map(|k| {
                let x = (k as f32 - 3.0 + 0.5) * p.scale;
                [x, f32::from_bits(x.to_bits() + 1), f32::from_bits(x.to_bits().saturating_sub(1)), -x]
            })
            .collect();
        let expected: Vec<f32> = xs
            .iter()
            .map(|&x| {
                let s = ((f64::from(x) / f64::from(p.scale)) as f32).round_ties_even();
                ((s + p.zero_point).clamp(p.qmin, p.qmax) - p.zero_point) * p.scale
            })
            .collect();
        let codes_of = |x: f32| ((f64::from(x) / f64::from(p.scale)) as f32).round_ties_even() + p.zero_point;
        let mut codes = expected.clone();
        FakeQuant { params: p, codes: true }.apply(&mut codes);
        for (fq, code) in expected.iter().zip(&codes) {
            assert_eq!(*code, codes_of(*fq), "codes of {fq}");
            assert_eq!(((code - p.zero_point) * p.scale).to_bits(), fq.to_bits(), "codes of {fq} give it back");
        }
        FakeQuant { params: p, codes: false }.apply(&mut xs);
        for (i, (got, want)) in xs.iter().zip(&expected).enumerate() {
            assert_eq!(got.to_bits(), want.to_bits(), "element {i}: {got} vs {want}");
        }
    }
}
