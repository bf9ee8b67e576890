//! ONNX Runtime's uint8 `QLinearAdd` / `QLinearMul` (x86-64 MLAS) as one tract operator, for
//! the simulation's graphs only (never in an export). Its inputs are the fake-quantized values of
//! the two operands (each exactly on its own grid), its output the dequantized result,
//! `(c − z_c) · s_c`. It computes, element by element and bit for bit, what the node chain
//! QuantCodes → Sub/Cast → Mul → Add (f64 where MLAS fuses) → Cast → Round → Clip → Sub → Mul
//! computes (`simulate::qlinear` documents the arithmetic), in one pass instead of twelve to
//! fifteen, with broadcasting as ONNX Add/Mul.

use tract_onnx::tract_core::ops::binary::BinMiniOp;
use tract_onnx::tract_hir::internal::{DatumType, InferenceOp, Tensor, TractResult, bail};
use tract_onnx::tract_hir::ops::binary::BinIntoHir;

use super::fake_quant::{DOMAIN, round_small, saturate};
use super::graph::{float_attribute, int_attribute};
use super::onnx as pb;

/// The operator's name in [`DOMAIN`].
pub const OP_TYPE: &str = "QLinearBinary";

/// Which kernel: the multiplication, the addition of two vectors, or the addition of a vector
/// `A` and a `B` with one value per span of ORT's broadcast loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QLinearKind {
    /// `c = round(f32((a − z_a)(b − z_b)) · ratio + z_c)`.
    Mul,
    /// `c = round(f32(a · r_a + f32(b · r_b + fixed)))`, both products and sums in f64.
    Add,
    /// `c = round(f32(a · r_a + (fixed + b · r_b)))`, the part in brackets in f32.
    AddScalarB,
}

impl QLinearKind {
    fn code(self) -> i64 {
        match self {
            Self::Mul => 0,
            Self::Add => 1,
            Self::AddScalarB => 2,
        }
    }

    fn from_code(code: i64) -> Option<Self> {
        [Self::Mul, Self::Add, Self::AddScalarB].into_iter().find(|k| k.code() == code)
    }
}

/// The grids and factors of one QLinearAdd/QLinearMul (uint8, full [0, 255] range).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QLinearParams {
    /// The kernel.
    pub kind: QLinearKind,
    /// Scale and zero point of input `A` (the node's first input).
    pub a: (f32, f32),
    /// Scale and zero point of input `B`.
    pub b: (f32, f32),
    /// Scale and zero point of the output.
    pub c: (f32, f32),
    /// Mul: `s_a · s_b / s_c`; Add: `r_a = s_a / s_c`.
    pub r_a: f32,
    /// Add: `r_b = s_b / s_c` (unused by Mul).
    pub r_b: f32,
    /// Add: `z_c − (r_a · z_a + r_b · z_b)` (unused by Mul).
    pub fixed: f32,
}

const NAMES: [&str; 9] =
    ["a_scale", "a_zero_point", "b_scale", "b_zero_point", "c_scale", "c_zero_point", "r_a", "r_b", "fixed"];

impl QLinearParams {
    fn values(&self) -> [f32; 9] {
        [self.a.0, self.a.1, self.b.0, self.b.1, self.c.0, self.c.1, self.r_a, self.r_b, self.fixed]
    }

    /// Evaluates the kernel into `c` (shape `cs`) over the broadcast inputs. The inputs are on
    /// their grids (the operator reads fake-quantized tensors), so `x · (1/s)` is within 2^-22
    /// of the integer `x / s` is (|q − z| ≤ 255) and rounds to the code the QuantCodes
    /// operator's correctly rounded division gives; `1/s` is finite, as the builder requires
    /// normal scales. Each kernel gets its own loops (no branch on it per element).
    fn eval(&self, c: &mut [f32], cs: &[usize], a: Operand<'_>, b: (&[f32], &[usize])) {
        let p = *self;
        let (ia, ib, (sc, zc)) = (1.0 / p.a.0, 1.0 / p.b.0, p.c);
        // Saturating before rounding gives the same integer (the bounds are integers).
        let out = move |sum: f32| (round_small(saturate(sum, 0.0, 255.0)) - zc) * sc;
        match p.kind {
            QLinearKind::Mul => for_each_element(c, cs, a, b, |x, y| {
                let (ca, cb) = (round_small(x * ia), round_small(y * ib));
                out(ca * cb * p.r_a + zc)
            }),
            QLinearKind::Add => for_each_element(c, cs, a, b, |x, y| {
                let (qa, qb) = (round_small(x * ia) + p.a.1, round_small(y * ib) + p.b.1);
                let partial = (f64::from(qb) * f64::from(p.r_b) + f64::from(p.fixed)) as f32;
                out((f64::from(qa) * f64::from(p.r_a) + f64::from(partial)) as f32)
            }),
            QLinearKind::AddScalarB => for_each_element(c, cs, a, b, |x, y| {
                let (qa, qb) = (round_small(x * ia) + p.a.1, round_small(y * ib) + p.b.1);
                let partial = p.fixed + qb * p.r_b;
                out((f64::from(qa) * f64::from(p.r_a) + f64::from(partial)) as f32)
            }),
        }
    }
}

/// Input `A` of an evaluation: its values and shape, or the output itself (computed in place,
/// A having the output's shape).
#[derive(Clone, Copy)]
pub(super) enum Operand<'a> {
    Values(&'a [f32], &'a [usize]),
    InPlace,
}

/// `c[i] = f(a[i], b[i])` with ONNX broadcasting (equal ranks), span by span.
#[inline]
pub(super) fn for_each_element(
    c: &mut [f32],
    cs: &[usize],
    a: Operand<'_>,
    b: (&[f32], &[usize]),
    f: impl Fn(f32, f32) -> f32,
) {
    let a_shape = match a {
        Operand::Values(_, s) => s,
        Operand::InPlace => cs,
    };
    for_each_span(cs, a_shape, b.1, &mut |span| {
        let out = &mut c[span.c..span.c + span.len];
        let ys = span.b.map(|j| &b.0[j..j + span.len]);
        let y = b.0[span.b_at];
        match (&a, ys) {
            (Operand::InPlace, Some(ys)) => out.iter_mut().zip(ys).for_each(|(z, &y)| *z = f(*z, y)),
            (Operand::InPlace, None) => out.iter_mut().for_each(|z| *z = f(*z, y)),
            (Operand::Values(a, _), ys) => match (span.a, ys) {
                (Some(i), Some(ys)) => {
                    out.iter_mut().zip(&a[i..i + span.len]).zip(ys).for_each(|((z, &x), &y)| *z = f(x, y));
                }
                (Some(i), None) => out.iter_mut().zip(&a[i..i + span.len]).for_each(|(z, &x)| *z = f(x, y)),
                (None, Some(ys)) => out.iter_mut().zip(ys).for_each(|(z, &y)| *z = f(a[span.a_at], y)),
                (None, None) => out.fill(f(a[span.a_at], y)),
            },
        }
    });
}

/// The node computing `out` from the fake-quantized `a` and `b` with `p`.
pub fn node(name: String, a: &str, b: &str, out: String, p: &QLinearParams) -> pb::NodeProto {
    let mut n = super::graph::node(OP_TYPE, name, &[a, b], out);
    n.domain = DOMAIN.to_string();
    n.attribute.push(int_attribute("kind", p.kind.code()));
    n.attribute.extend(NAMES.iter().zip(p.values()).map(|(name, v)| float_attribute(name, v)));
    n
}

#[derive(Debug, Clone, PartialEq)]
struct QLinearBinary(QLinearParams);

/// Attributes are finite floats (checked at build), so equality is reflexive.
impl Eq for QLinearBinary {}

/// A contiguous run of the output and where its inputs are: `Some(start)` for an input that
/// advances with the output, `None` for one that stays at the element `*_at`.
struct Span {
    c: usize,
    len: usize,
    a: Option<usize>,
    b: Option<usize>,
    a_at: usize,
    b_at: usize,
}

/// Whether `x` (of the same rank) broadcasts to `c`: each dimension equal or 1.
pub(super) fn broadcasts(x: &[usize], c: &[usize]) -> bool {
    x.len() == c.len() && x.iter().zip(c).all(|(&d, &e)| d == e || d == 1)
}

/// Row-major strides of `shape`, 0 where the dimension is broadcast to `c`'s.
fn strides(shape: &[usize], c: &[usize]) -> Vec<usize> {
    let mut st = vec![0; shape.len()];
    let mut acc = 1;
    for d in (0..shape.len()).rev() {
        st[d] = if shape[d] == c[d] { acc } else { 0 };
        acc *= shape[d];
    }
    st
}

/// Calls `f` for the spans covering the broadcast of `a` and `b` into `c` (equal ranks): the
/// trailing dimensions over which each input either follows `c` or is constant make one span.
fn for_each_span(c: &[usize], a: &[usize], b: &[usize], f: &mut dyn FnMut(Span)) {
    if c.contains(&0) {
        return;
    }
    let r = c.len();
    // Whether an input follows c (Some(true)), is constant (Some(false)) over dims [k..].
    let class = |x: &[usize], d: usize| if c[d] == 1 { None } else { Some(x[d] == c[d]) };
    let (mut ka, mut kb) = (None, None);
    let mut k = r;
    while k > 0 {
        let (ca, cb) = (class(a, k - 1), class(b, k - 1));
        let fits = |seen: Option<bool>, now: Option<bool>| now.is_none() || seen.is_none() || seen == now;
        if !fits(ka, ca) || !fits(kb, cb) {
            break;
        }
        ka = ka.or(ca);
        kb = kb.or(cb);
        k -= 1;
    }
    let len: usize = c[k..].iter().product();
    let (sa, sb) = (strides(a, c), strides(b, c));
    let (follows_a, follows_b) = (ka != Some(false), kb != Some(false));
    let mut index = vec![0usize; k];
    let (mut off_a, mut off_b) = (0usize, 0usize);
    let total: usize = c[..k].iter().product();
    for n in 0..total {
        f(Span {
            c: n * len,
            len,
            a: follows_a.then_some(off_a),
            b: follows_b.then_some(off_b),
            a_at: off_a,
            b_at: off_b,
        });
        // Odometer over the outer dims.
        for d in (0..k).rev() {
            index[d] += 1;
            off_a += sa[d];
            off_b += sb[d];
            if index[d] < c[d] {
                break;
            }
            off_a -= sa[d] * c[d];
            off_b -= sb[d] * c[d];
            index[d] = 0;
        }
    }
}

impl BinMiniOp for QLinearBinary {
    fn name(&self) -> &'static str {
        "QuantBenchQLinearBinary"
    }

    fn result_datum_type(&self, a: DatumType, b: DatumType) -> TractResult<DatumType> {
        if a != DatumType::F32 || b != DatumType::F32 {
            bail!("QLinearBinary computes in f32, not {a:?} and {b:?}");
        }
        Ok(DatumType::F32)
    }

    /// The inputs have roles (A is the vector operand of an Add): tract must not swap them.
    fn is_commutative(&self) -> bool {
        false
    }

    /// `a` has the output's shape: computed in place, `b` broadcast.
    fn eval_in_a(&self, a: &mut Tensor, b: &Tensor) -> TractResult<()> {
        let (shape, bs) = (a.shape().to_vec(), b.shape().to_vec());
        if bs.len() != shape.len() {
            bail!("QLinearBinary: rank of {bs:?} differs from {shape:?}");
        }
        if !broadcasts(&bs, &shape) {
            bail!("QLinearBinary: {bs:?} does not broadcast to {shape:?}");
        }
        let b = b.try_as_plain_ram()?;
        let mut a = a.try_as_plain_ram_mut()?;
        self.0.eval(a.as_slice_mut::<f32>()?, &shape, Operand::InPlace, (b.as_slice::<f32>()?, &bs));
        Ok(())
    }

    fn eval_out_of_place(&self, c: &mut Tensor, a: &Tensor, b: &Tensor) -> TractResult<()> {
        let (cs, as_, bs) = (c.shape().to_vec(), a.shape().to_vec(), b.shape().to_vec());
        if as_.len() != cs.len() || bs.len() != cs.len() {
            bail!("QLinearBinary: ranks of {as_:?} and {bs:?} differ from {cs:?}");
        }
        if !broadcasts(&as_, &cs) || !broadcasts(&bs, &cs) {
            bail!("QLinearBinary: {as_:?} and {bs:?} do not broadcast to {cs:?}");
        }
        let (a, b) = (a.try_as_plain_ram()?, b.try_as_plain_ram()?);
        let mut c = c.try_as_plain_ram_mut()?;
        let a = Operand::Values(a.as_slice::<f32>()?, &as_);
        self.0.eval(c.as_slice_mut::<f32>()?, &cs, a, (b.as_slice::<f32>()?, &bs));
        Ok(())
    }
}

/// tract's builder for the operator.
pub(super) fn build(
    _ctx: &tract_onnx::model::ParsingContext,
    node: &tract_onnx::pb::NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let kind = QLinearKind::from_code(node.get_attr::<i64>("kind")?);
    let Some(kind) = kind else { bail!("QLinearBinary: unknown kind") };
    let mut v = [0f32; 9];
    for (slot, name) in v.iter_mut().zip(NAMES) {
        *slot = node.get_attr::<f32>(name)?;
    }
    if v.iter().any(|x| !x.is_finite()) || [v[0], v[2], v[4]].iter().any(|s| *s < f32::MIN_POSITIVE) {
        bail!("QLinearBinary: scales must be normal positive numbers and every factor finite");
    }
    let p =
        QLinearParams { kind, a: (v[0], v[1]), b: (v[2], v[3]), c: (v[4], v[5]), r_a: v[6], r_b: v[7], fixed: v[8] };
    Ok((QLinearBinary(p).into_hir(), vec![]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spans cover every output element once, reading the right input elements, whichever
    /// input broadcasts; an empty output has none (tract evaluates empty slices while
    /// optimising).
    #[test]
    fn spans_cover_the_broadcast_once() {
        let cases: [(&[usize], &[usize], &[usize]); 5] = [
            (&[2, 3, 4], &[2, 3, 4], &[2, 3, 4]),
            (&[2, 3, 4], &[2, 3, 4], &[1, 3, 1]),
            (&[2, 3, 4], &[2, 1, 4], &[1, 3, 1]),
            (&[2, 3, 4], &[1, 1, 1], &[2, 3, 1]),
            (&[2, 0, 4], &[2, 0, 4], &[1, 1, 4]),
        ];
        for (c, a, b) in cases {
            let index = |x: &[usize], at: &[usize]| {
                x.iter().zip(at).fold(0, |acc, (&d, &i)| acc * d + if d == 1 { 0 } else { i })
            };
            let n: usize = c.iter().product();
            let mut seen = vec![0; n];
            for_each_span(c, a, b, &mut |s| {
                for e in 0..s.len {
                    let flat = s.c + e;
                    seen[flat] += 1;
                    let at: Vec<usize> =
                        (0..c.len()).map(|d| flat / c[d + 1..].iter().product::<usize>() % c[d]).collect();
                    assert_eq!(s.a.map_or(s.a_at, |i| i + e), index(a, &at), "{c:?} {a:?} {b:?}: A at {at:?}");
                    assert_eq!(s.b.map_or(s.b_at, |j| j + e), index(b, &at), "{c:?} {a:?} {b:?}: B at {at:?}");
                }
            });
            assert!(seen.iter().all(|&k| k == 1), "{c:?} {a:?} {b:?}: {seen:?}");
        }
    }
}
