//! ONNX Runtime's float Div: a correctly rounded quotient. tract declutters every float Div into
//! a product by the reciprocal (`x · (1 / q)`), one ulp off the quotient in about a third of the
//! cases; where a quantized tensor follows (a hardswish's `/ 6`, a LayerNorm's `/ σ`), such an
//! ulp sometimes moves a value across a rounding boundary, and the calibration and the simulation
//! part from ORT. [`divide_exactly`] puts [`ExactDiv`] in place of the f32 Div of every ONNX Div
//! node of a typed model before tract declutters it; the divisions tract wires for other
//! operators (InstanceNormalization's, whose ORT kernel computes otherwise) stay as they are.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::binary::{BinMiniOp, TypedBinOp};
use tract_onnx::tract_core::ops::math::Div;
use tract_onnx::tract_hir::internal::bail;

use super::qlinear_op::{Operand, broadcasts, for_each_element};

/// `a / b` in f32, with ONNX broadcasting (equal ranks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExactDiv;

impl BinMiniOp for ExactDiv {
    fn name(&self) -> &'static str {
        "QuantBenchExactDiv"
    }

    fn result_datum_type(&self, a: DatumType, b: DatumType) -> TractResult<DatumType> {
        if a != DatumType::F32 || b != DatumType::F32 {
            bail!("ExactDiv divides f32, not {a:?} by {b:?}");
        }
        Ok(DatumType::F32)
    }

    fn is_commutative(&self) -> bool {
        false
    }

    fn eval_in_a(&self, a: &mut Tensor, b: &Tensor) -> TractResult<()> {
        let (shape, bs) = (a.shape().to_vec(), b.shape().to_vec());
        if !broadcasts(&bs, &shape) {
            bail!("ExactDiv: {bs:?} does not broadcast to {shape:?}");
        }
        let b = b.try_as_plain_ram()?;
        let mut a = a.try_as_plain_ram_mut()?;
        for_each_element(a.as_slice_mut::<f32>()?, &shape, Operand::InPlace, (b.as_slice::<f32>()?, &bs), |x, y| x / y);
        Ok(())
    }

    fn eval_out_of_place(&self, c: &mut Tensor, a: &Tensor, b: &Tensor) -> TractResult<()> {
        let (cs, as_, bs) = (c.shape().to_vec(), a.shape().to_vec(), b.shape().to_vec());
        if !broadcasts(&as_, &cs) || !broadcasts(&bs, &cs) {
            bail!("ExactDiv: {as_:?} and {bs:?} do not broadcast to {cs:?}");
        }
        let (a, b) = (a.try_as_plain_ram()?, b.try_as_plain_ram()?);
        let mut c = c.try_as_plain_ram_mut()?;
        let a = Operand::Values(a.as_slice::<f32>()?, &as_);
        for_each_element(c.as_slice_mut::<f32>()?, &cs, a, (b.as_slice::<f32>()?, &bs), |x, y| x / y);
        Ok(())
    }
}

/// Puts [`ExactDiv`] in place of every Div of two f32 tensors in `model` that an ONNX Div node of
/// `proto`'s graph became (tract names it after the node, or its first output when unnamed).
pub(crate) fn divide_exactly(model: &mut TypedModel, proto: &super::onnx::ModelProto) -> TractResult<()> {
    let names: std::collections::BTreeSet<String> = proto
        .graph
        .iter()
        .flat_map(|g| &g.node)
        .filter(|n| n.op_type == "Div" && super::graph::is_default_domain(&n.domain))
        .map(|n| if n.name.is_empty() { n.output.first().cloned().unwrap_or_default() } else { n.name.clone() })
        .collect();
    let f32_div = |model: &TypedModel, id: usize| -> TractResult<bool> {
        let node = model.node(id);
        let is_div = node.op_as::<TypedBinOp>().is_some_and(|b| b.0.is::<Div>()) && names.contains(&node.name);
        Ok(is_div && model.node_input_facts(id)?.iter().all(|f| f.datum_type == f32::datum_type()))
    };
    for id in 0..model.nodes().len() {
        if f32_div(model, id)? {
            model.node_mut(id).op = Box::new(TypedBinOp(Box::new(ExactDiv), None));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The quotient is the correctly rounded one where the reciprocal's product is not, with
    /// broadcasting both ways.
    #[test]
    fn quotients_are_correctly_rounded() {
        let a: Vec<f32> = (1..=600).map(|i| i as f32 * 0.37).collect();
        let wrong = a.iter().filter(|&&x| x * (1.0 / 6.0f32) != x / 6.0).count();
        assert!(wrong > 50, "the reciprocal's product differs in {wrong} of 600 cases only");
        let t = |v: &[f32], s: &[usize]| Tensor::from_shape(s, v).unwrap();
        let (x, six) = (t(&a, &[2, 300]), t(&[6.0, 3.0], &[2, 1]));
        let mut c = Tensor::zero::<f32>(&[2, 300]).unwrap();
        ExactDiv.eval_out_of_place(&mut c, &x, &six).unwrap();
        let got = c.try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec();
        let want: Vec<f32> = a.iter().enumerate().map(|(i, x)| x / if i < 300 { 6.0 } else { 3.0 }).collect();
        assert_eq!(got, want);
        let mut inplace = x.clone();
        ExactDiv.eval_in_a(&mut inplace, &six).unwrap();
        assert_eq!(inplace.try_as_plain_ram().unwrap().as_slice::<f32>().unwrap(), &want[..]);
    }
}
