//! ONNX Runtime's float ReduceSum / ReduceMean over trailing axes, in its summation order.
//!
//! ORT's CPU kernel (`reduction_ops.h`, `FastReduceKR`) views the input as `[rows, n]` and sums
//! each row with Eigen's vectorised reduction (`Map<Matrix>::sum()`, SSE packets of four): two
//! packet accumulators over the aligned part, a third packet if one is left, the packet reduced
//! as `(p0 + p2) + (p1 + p3)`, then the unaligned head and the tail one by one. ReduceMean divides
//! that sum by `n`. tract sums in its own SIMD order, which depends on the CPU; under cancellation
//! (the variance `E[x²] − E[x]²` of a LayerNorm written out as basic ops) the two disagree in the
//! fifth digit, and calibrated ranges after such a node differ from ORT's. [`follow_ort`] puts
//! [`OrtSum`] in place of tract's f32 sums over trailing axes (and of the division that follows
//! a mean) before tract declutters the graph, so every plan QuantBench runs sums as ORT does.
//!
//! Only the sums of the graph's own ReduceSum/ReduceMean nodes: tract also lowers other
//! operators (GlobalAveragePool, LayerNormalization) into sums, which ORT computes with other
//! kernels (MLAS pooling), left as they are. A ReduceSum whose name ends with
//! [`SEQUENTIAL_SUM`] sums one value after the other from zero, as the row sum of ORT's
//! `QLinearSoftmax` kernel does (the simulation's emulation of that kernel names its sum so).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::{
    EvalContext, EvalOp, Op, StaticName, ToDim, TypedModelPatch, TypedOp, args_1, as_op, op_as_typed_op, op_out_of_plan,
};
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::math::Div;
use tract_onnx::tract_core::ops::nn::{Reduce, Reducer};

use super::onnx as pb;

/// Floats per Eigen packet in ORT's CPU build (SSE).
const PACKET: usize = 4;

/// The end of the name of a ReduceSum node to be summed in sequence (see the module's doc).
pub const SEQUENTIAL_SUM: &str = "qb_sequential_sum";

/// In which order a row is summed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Order {
    /// Eigen's vectorised `sum()` (ORT's Reduce kernels).
    Eigen,
    /// One value after the other, from zero.
    Sequential,
}

/// A sum over the trailing axes `axes` of an f32 tensor, in ORT's order, divided by the count of
/// summed values when `mean`. The reduced axes stay, of size 1 (as tract's `Reduce`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct OrtSum {
    axes: TVec<usize>,
    mean: bool,
    order: Order,
}

/// Eigen's `sum()` of `row`, whose first element sits `offset` floats past a 16-byte boundary.
pub(crate) fn eigen_sum(row: &[f32], offset: usize) -> f32 {
    let n = row.len();
    if n == 0 {
        return 0.0;
    }
    let start = ((PACKET - offset % PACKET) % PACKET).min(n);
    let aligned = (n - start) / PACKET * PACKET;
    if aligned == 0 {
        return row[1..].iter().fold(row[0], |s, v| s + v);
    }
    let packet = |i: usize| -> [f32; PACKET] { std::array::from_fn(|k| row[i + k]) };
    let add = |a: [f32; PACKET], b: [f32; PACKET]| -> [f32; PACKET] { std::array::from_fn(|k| a[k] + b[k]) };
    let mut p0 = packet(start);
    if aligned > PACKET {
        let aligned2 = (n - start) / (2 * PACKET) * (2 * PACKET);
        let mut p1 = packet(start + PACKET);
        let mut i = start + 2 * PACKET;
        while i < start + aligned2 {
            p0 = add(p0, packet(i));
            p1 = add(p1, packet(i + PACKET));
            i += 2 * PACKET;
        }
        p0 = add(p0, p1);
        if aligned > aligned2 {
            p0 = add(p0, packet(start + aligned2));
        }
    }
    let reduced = (p0[0] + p0[2]) + (p0[1] + p0[3]);
    let head = row[..start].iter().fold(reduced, |s, v| s + v);
    row[start + aligned..].iter().fold(head, |s, v| s + v)
}

impl Op for OrtSum {
    fn name(&self) -> StaticName {
        "QuantBenchOrtSum".into()
    }

    op_as_typed_op!();
}

impl EvalOp for OrtSum {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let x = input.try_as_plain_ram()?;
        let x = x.as_slice::<f32>()?;
        let n: usize = self.axes.iter().map(|&a| input.shape()[a]).product();
        let mut shape: TVec<usize> = input.shape().into();
        for &a in &self.axes {
            shape[a] = 1;
        }
        let out: Vec<f32> = if n == 0 {
            vec![if self.mean { f32::NAN } else { 0.0 }; shape.iter().product()]
        } else {
            x.chunks_exact(n)
                .enumerate()
                .map(|(d, row)| {
                    let s = match self.order {
                        Order::Eigen => eigen_sum(row, d * n),
                        Order::Sequential => row.iter().fold(0.0, |s, v| s + v),
                    };
                    if self.mean { s / n as f32 } else { s }
                })
                .collect()
        };
        Ok(tvec!(tract_ndarray::ArrayD::from_shape_vec(&*shape, out)?.into_tensor().into_tvalue()))
    }
}

impl TypedOp for OrtSum {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let mut shape: TVec<TDim> = inputs[0].shape.to_tvec();
        for &a in &self.axes {
            shape[a] = 1.to_dim();
        }
        Ok(tvec!(f32::fact(shape)))
    }

    as_op!();
}

/// The reduced axes of `shape` when ORT sums them as rows of a `[rows, n]` view: every reduced
/// axis longer than 1 comes after every kept axis longer than 1, and nothing is empty.
fn trailing(axes: &[usize], shape: &[usize]) -> bool {
    let last_kept = (0..shape.len()).filter(|a| !axes.contains(a) && shape[*a] > 1).max();
    let first_reduced = axes.iter().copied().filter(|&a| shape[a] > 1).min();
    let ordered = match (last_kept, first_reduced) {
        (Some(k), Some(r)) => k < r,
        _ => true,
    };
    ordered && !shape.contains(&0)
}

/// The order of each sum tract wires for the ReduceSum/ReduceMean nodes of `graph`, by the name
/// tract gives it: the ONNX node's name (its first output's when it has none), `.sum` added
/// for a mean.
fn orders(graph: &pb::GraphProto) -> std::collections::BTreeMap<String, Order> {
    let mut orders = std::collections::BTreeMap::new();
    for n in &graph.node {
        if !super::graph::is_default_domain(&n.domain) || !matches!(n.op_type.as_str(), "ReduceSum" | "ReduceMean") {
            continue;
        }
        let name = if n.name.is_empty() { n.output.first().cloned().unwrap_or_default() } else { n.name.clone() };
        let order =
            if n.op_type == "ReduceSum" && name.ends_with(SEQUENTIAL_SUM) { Order::Sequential } else { Order::Eigen };
        orders.insert(format!("{name}.sum"), order);
        orders.insert(name, order);
    }
    orders
}

/// Puts [`OrtSum`] in place of every f32 `Reduce<Sum>` of `model` that a ReduceSum/ReduceMean
/// node of `proto` became, over trailing axes of a concrete shape, and folds the division by the
/// count that tract wires after a ReduceMean into it (tract would turn that division into a
/// product by the reciprocal, another rounding).
pub(crate) fn follow_ort(model: &mut TypedModel, proto: &pb::ModelProto) -> TractResult<()> {
    let Some(orders) = proto.graph.as_ref().map(orders).filter(|o| !o.is_empty()) else { return Ok(()) };
    for id in model.eval_order()? {
        let node = model.node(id);
        let Some(reduce) = node.op_as::<Reduce>() else { continue };
        let Some(&order) = orders.get(&node.name) else { continue };
        let fact = model.outlet_fact(node.inputs[0])?;
        let Some(shape) = fact.shape.as_concrete() else { continue };
        if reduce.reducer != Reducer::Sum || fact.datum_type != f32::datum_type() || !trailing(&reduce.axes, shape) {
            continue;
        }
        let n: usize = reduce.axes.iter().map(|&a| shape[a]).product();
        let axes = reduce.axes.clone();
        let mean_div = if order == Order::Eigen { mean_division(model, id, n)? } else { None };
        let mut patch = TypedModelPatch::default();
        let input = patch.tap_model(model, node.inputs[0])?;
        let out = patch.wire_node(&node.name, OrtSum { axes, mean: mean_div.is_some(), order }, &[input])?[0];
        patch.shunt_outside(model, OutletId::new(mean_div.unwrap_or(id), 0), out)?;
        patch.apply(model)?;
    }
    Ok(())
}

/// The node dividing the output of node `sum` (its only reader) by the constant `n`, if any.
fn mean_division(model: &TypedModel, sum: usize, n: usize) -> TractResult<Option<usize>> {
    let readers = &model.node(sum).outputs[0].successors;
    let [reader] = readers.as_slice() else { return Ok(None) };
    let div = model.node(reader.node);
    let is_div = div.op_as::<TypedBinOp>().is_some_and(|b| b.0.is::<Div>());
    if !is_div || reader.slot != 0 || div.inputs.len() != 2 {
        return Ok(None);
    }
    let divisor = model.outlet_fact(div.inputs[1])?;
    let by_n = divisor.konst.as_ref().is_some_and(|k| k.len() == 1 && k.cast_to_scalar::<f32>().ok() == Some(n as f32));
    let same_shape = model.outlet_fact(OutletId::new(reader.node, 0))?.shape == model.outlet_fact(sum.into())?.shape;
    Ok((by_n && same_shape).then_some(reader.node))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sequential f32 sum from `init`.
    fn seq(init: f32, v: &[f32]) -> f32 {
        v.iter().fold(init, |s, x| s + x)
    }

    /// The order written out by hand for small cases: a single packet, two, three, heads and tails.
    #[test]
    fn the_order_is_eigens() {
        let v: Vec<f32> = (0..19).map(|i| 1.0 + (i as f32) * 1e-7 * if i % 2 == 0 { 1e7 } else { -3.3 }).collect();
        // Fewer than a packet after the head: sequential from the first value.
        assert_eq!(eigen_sum(&v[..3], 0).to_bits(), seq(v[0], &v[1..3]).to_bits());
        // One packet, then the tail.
        let p = &v[..6];
        assert_eq!(eigen_sum(p, 0).to_bits(), (((p[0] + p[2]) + (p[1] + p[3])) + p[4] + p[5]).to_bits());
        // Three packets: two accumulators, then the third added to the first.
        let p = &v[..12];
        let a: [f32; 4] = std::array::from_fn(|k| (p[k] + p[4 + k]) + p[8 + k]);
        assert_eq!(eigen_sum(p, 0).to_bits(), ((a[0] + a[2]) + (a[1] + a[3])).to_bits());
        // A row starting one float past a boundary: three head values are added after the packets.
        let p = &v[..11];
        let a: [f32; 4] = std::array::from_fn(|k| p[3 + k] + p[7 + k]);
        let want = seq((a[0] + a[2]) + (a[1] + a[3]), &p[..3]);
        assert_eq!(eigen_sum(p, 1).to_bits(), want.to_bits());
        assert_eq!(eigen_sum(&[], 0), 0.0);
    }

    #[test]
    fn trailing_axes_are_the_rows_of_a_matrix() {
        assert!(trailing(&[2], &[2, 5, 7]));
        assert!(trailing(&[1, 2], &[2, 5, 7]));
        assert!(!trailing(&[0, 1], &[1, 5, 7]));
        assert!(trailing(&[1], &[3, 5, 1]));
        assert!(!trailing(&[1], &[3, 5, 7]));
        assert!(trailing(&[0], &[1, 512]));
        assert!(!trailing(&[2], &[2, 0, 3]));
    }
}
