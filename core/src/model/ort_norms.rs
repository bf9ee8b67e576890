//! ONNX Runtime's float BatchNormalization (inference) and InstanceNormalization, bit for bit.
//!
//! BatchNormalization: ORT's CPU kernel
//! (`batch_norm.h`) folds the statistics as `inv_std = 1 / sqrt(var + ε)`, `a = inv_std · scale`,
//! `b = bias − mean · a`, then computes `x · a + b` with the product and the sum each rounded;
//! tract folds them as `scale / sqrt(var + ε)` and `bias − (mean · scale) / sqrt(var + ε)`, an
//! ulp apart in about half the elements. Real exporters leave BatchNormalization unfused
//! (Paddle's models have dozens), and where a quantized tensor follows, such ulps move values
//! across rounding boundaries.
//!
//! InstanceNormalization: ORT's kernel (`instance_norm.cc`) takes, per sample and channel, the
//! mean by Eigen's `mean()` (the sum in [`eigen_sum`]'s order, divided by the count), the squared
//! norm of the centred values by Eigen's `squaredNorm()` (the same order over an expression, so
//! from the first element whatever the row's alignment), `inv = 1 / sqrt(norm / W + ε)`,
//! `a = inv · scale`, `b = bias − mean · a`, and `x · a + b`; tract lowers the operator into
//! reductions and a division of its own.
//!
//! These builders replace tract's for the two ONNX operators.

use super::ort_reduce::eigen_sum;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::{
    EvalContext, EvalOp, Op, StaticName, TypedOp, args_1, as_op, op_as_typed_op, op_out_of_plan,
};
use tract_onnx::tract_hir::internal::{Expansion, InferenceOp, InferenceResult, Solver, TensorProxy, bail, expand};

/// Which ONNX normalization an [`OrtNormalization`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum NormKind {
    /// BatchNormalization (inference): `x`, scale, bias, mean, variance.
    Batch,
    /// InstanceNormalization: `x`, scale, bias.
    Instance,
}

impl NormKind {
    /// The ONNX operator's name, for messages.
    fn onnx_name(self) -> &'static str {
        match self {
            Self::Batch => "BatchNormalization",
            Self::Instance => "InstanceNormalization",
        }
    }
}

/// An ONNX normalization with ORT's arithmetic; its per-channel inputs must be constants.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct OrtNormalization {
    kind: NormKind,
    /// ε's bits (tract's operators compare and hash).
    epsilon_bits: u32,
}

/// What [`PerChannel`] computes on each (sample, channel) row of its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum RowOp {
    /// `x · p[c] + q[c]`, the product and the sum each rounded to f32 (BatchNormalization, folded).
    Affine,
    /// ORT's instance normalization with scale `p[c]`, bias `q[c]` and ε (its bits).
    InstanceNorm { epsilon_bits: u32 },
}

/// A normalization on a typed graph: one vector pair `(p, q)` indexed by the channel (axis 1),
/// applied to each row of the trailing axes.
#[derive(Debug, Clone, PartialEq, Hash)]
pub(crate) struct PerChannel {
    row: RowOp,
    p: Arc<Tensor>,
    q: Arc<Tensor>,
}

/// Tensors compare element by element; the vectors come from finite constants (a NaN would make
/// an operator unequal to itself, which only costs tract a missed deduplication).
impl Eq for PerChannel {}

impl PerChannel {
    /// The ONNX operator it computes, for messages.
    fn onnx_name(&self) -> &'static str {
        match self.row {
            RowOp::Affine => NormKind::Batch,
            RowOp::InstanceNorm { .. } => NormKind::Instance,
        }
        .onnx_name()
    }
}

/// ORT's folded factors `(a, b)` of BatchNormalization from its statistics.
pub(crate) fn folded(scale: &[f32], bias: &[f32], mean: &[f32], var: &[f32], epsilon: f32) -> (Vec<f32>, Vec<f32>) {
    let a: Vec<f32> = var.iter().zip(scale).map(|(v, s)| (1.0 / (v + epsilon).sqrt()) * s).collect();
    let b = bias.iter().zip(mean).zip(&a).map(|((b, m), a)| b - m * a).collect();
    (a, b)
}

impl Op for PerChannel {
    fn name(&self) -> StaticName {
        match self.row {
            RowOp::Affine => "QuantBenchChannelAffine".into(),
            RowOp::InstanceNorm { .. } => "QuantBenchInstanceNorm".into(),
        }
    }

    op_as_typed_op!();
}

impl EvalOp for PerChannel {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let (p, q) = (self.p.try_as_plain_ram()?, self.q.try_as_plain_ram()?);
        let (p, q) = (p.as_slice::<f32>()?, q.as_slice::<f32>()?);
        let shape = input.shape().to_vec();
        let min_rank = if self.row == RowOp::Affine { 2 } else { 3 };
        if shape.len() < min_rank || shape[1] != p.len() {
            bail!("{}: {} channels for input {shape:?}", self.onnx_name(), p.len());
        }
        let w: usize = shape[2..].iter().product();
        let x = input.try_as_plain_ram()?;
        let x = x.as_slice::<f32>()?;
        let mut out = vec![0f32; x.len()];
        if w > 0 {
            for (i, (row, y)) in x.chunks(w).zip(out.chunks_mut(w)).enumerate() {
                let c = i % p.len();
                match self.row {
                    RowOp::Affine => {
                        for (o, v) in y.iter_mut().zip(row) {
                            *o = v * p[c] + q[c];
                        }
                    }
                    RowOp::InstanceNorm { epsilon_bits } => {
                        instance_norm_row(row, i * w, p[c], q[c], f32::from_bits(epsilon_bits), y);
                    }
                }
            }
        }
        Ok(tvec!(tract_ndarray::ArrayD::from_shape_vec(shape, out)?.into_tensor().into_tvalue()))
    }
}

impl TypedOp for PerChannel {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(f32::fact(inputs[0].shape.clone())))
    }

    as_op!();
}

/// The typing rules of a normalization with `arity` inputs: `x`, then one vector per channel
/// (axis 1) each; the output has `x`'s type and shape.
fn per_channel_rules<'r, 'p: 'r>(
    op: &str,
    arity: usize,
    s: &mut Solver<'r>,
    inputs: &'p [TensorProxy],
    outputs: &'p [TensorProxy],
) -> InferenceResult {
    if inputs.len() != arity || outputs.len() != 1 {
        bail!("{op}: {arity} inputs and 1 output expected, {} and {}", inputs.len(), outputs.len());
    }
    s.equals(&outputs[0].datum_type, &inputs[0].datum_type)?;
    for input in &inputs[1..] {
        s.equals(&input.datum_type, &inputs[0].datum_type)?;
        s.equals(&input.rank, 1)?;
        s.equals(&input.shape[0], &inputs[0].shape[1])?;
    }
    s.equals(&inputs[0].shape, &outputs[0].shape)?;
    Ok(())
}

impl Expansion for OrtNormalization {
    fn name(&self) -> StaticName {
        match self.kind {
            NormKind::Batch => "OrtBatchNorm".into(),
            NormKind::Instance => "OrtInstanceNorm".into(),
        }
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        let arity = if self.kind == NormKind::Batch { 5 } else { 3 };
        per_channel_rules(self.kind.onnx_name(), arity, s, inputs, outputs)
    }

    fn wire(&self, prefix: &str, target: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        let name = self.kind.onnx_name();
        let x = target.outlet_fact(inputs[0])?.clone();
        if x.datum_type != f32::datum_type() {
            bail!("{name} computes in f32 here, not {:?}", x.datum_type);
        }
        let mut vectors = Vec::with_capacity(inputs.len() - 1);
        for &i in &inputs[1..] {
            let Some(k) = target.outlet_fact(i)?.konst.clone() else {
                bail!("{name}: its parameters are not constants")
            };
            vectors.push(k.cast_to::<f32>()?.try_as_plain_ram()?.as_slice::<f32>()?.to_vec());
        }
        let epsilon = f32::from_bits(self.epsilon_bits);
        let op = match self.kind {
            NormKind::Batch => {
                let (a, b) = folded(&vectors[0], &vectors[1], &vectors[2], &vectors[3], epsilon);
                PerChannel { row: RowOp::Affine, p: Arc::new(tensor1(&a)), q: Arc::new(tensor1(&b)) }
            }
            NormKind::Instance => PerChannel {
                row: RowOp::InstanceNorm { epsilon_bits: self.epsilon_bits },
                p: Arc::new(tensor1(&vectors[0])),
                q: Arc::new(tensor1(&vectors[1])),
            },
        };
        target.wire_node(prefix, op, &inputs[..1])
    }
}

/// tract's builder for ONNX BatchNormalization, computing as ORT does.
pub(super) fn build_batch_norm(
    _ctx: &tract_onnx::model::ParsingContext,
    node: &tract_onnx::pb::NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let epsilon = node.get_attr_opt("epsilon")?.unwrap_or(1e-5);
    if node.get_attr_opt::<i64>("spatial")?.unwrap_or(1) != 1 {
        bail!("BatchNormalization: attribute 'spatial' is not supported (deprecated by ONNX operator set 9)");
    }
    if node.get_attr_opt::<i64>("training_mode")?.unwrap_or(0) != 0 {
        bail!("BatchNormalization in training mode is not supported");
    }
    Ok((expand(OrtNormalization { kind: NormKind::Batch, epsilon_bits: f32::to_bits(epsilon) }), vec![]))
}

/// ORT's instance normalization of one row `x` (one sample's channel, `offset` floats into the
/// tensor) into `y`, with the channel's `scale` and `bias`.
pub(crate) fn instance_norm_row(x: &[f32], offset: usize, scale: f32, bias: f32, epsilon: f32, y: &mut [f32]) {
    let w = x.len() as f32;
    let mean = eigen_sum(x, offset) / w;
    let squares: Vec<f32> = x.iter().map(|v| (v - mean) * (v - mean)).collect();
    let inv = 1.0 / (eigen_sum(&squares, 0) / w + epsilon).sqrt();
    let a = inv * scale;
    let b = bias - mean * a;
    for (o, v) in y.iter_mut().zip(x) {
        *o = v * a + b;
    }
}

/// tract's builder for ONNX InstanceNormalization, computing as ORT does.
pub(super) fn build_instance_norm(
    _ctx: &tract_onnx::model::ParsingContext,
    node: &tract_onnx::pb::NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let epsilon: f32 = node.get_attr_opt("epsilon")?.unwrap_or(1e-5);
    Ok((expand(OrtNormalization { kind: NormKind::Instance, epsilon_bits: epsilon.to_bits() }), vec![]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The folding is ORT's: `1 / sqrt` then the product, the mean's product rounded before the
    /// difference; tract's one-division form differs on some channels.
    #[test]
    fn folding_follows_ort() {
        let c = 64;
        let scale: Vec<f32> = (0..c).map(|i| 0.3 + i as f32 * 0.071).collect();
        let var: Vec<f32> = (0..c).map(|i| 0.01 + i as f32 * 0.37).collect();
        let mean: Vec<f32> = (0..c).map(|i| -1.0 + i as f32 * 0.13).collect();
        let bias: Vec<f32> = (0..c).map(|i| 0.5 - i as f32 * 0.05).collect();
        let (a, b) = folded(&scale, &bias, &mean, &var, 1e-5);
        for i in 0..c {
            let inv = 1.0f32 / (var[i] + 1e-5).sqrt();
            assert_eq!(a[i].to_bits(), (inv * scale[i]).to_bits());
            assert_eq!(b[i].to_bits(), (bias[i] - mean[i] * a[i]).to_bits());
        }
        let tract_form = (0..c).filter(|&i| scale[i] / (var[i] + 1e-5).sqrt() != a[i]).count();
        assert!(tract_form > 0, "the two foldings agree on every channel: the test shows nothing");
    }
}
