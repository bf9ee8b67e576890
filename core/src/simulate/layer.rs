//! Local error of one layer: the layer alone, as a one-node model with its constants, run on the
//! cached float inputs with the plan's fake quantization, compared with its cached float output.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use crate::model::onnx as pb;

use super::{Simulator, flat, graph};
use crate::error::{Error, Result};
use crate::metrics::{ErrorAccumulator, TensorMetrics};
use crate::model::runtime::{Runner, Values};
use crate::model::{OnnxModel, QuantizableLayer};
use crate::plan::{PlanFilter, QuantPlan};

/// A model holding only `layer`'s node and the constants it reads.
fn single_layer_model(model: &OnnxModel, layer: &QuantizableLayer, input_dims: &[usize]) -> Result<OnnxModel> {
    let graph = model.graph();
    let node = graph
        .node
        .iter()
        .find(|n| crate::model::node_name(n) == layer.name)
        .ok_or_else(|| Error::InvalidModel(format!("node '{}' not found", layer.name)))?;
    let consts = model.constants();
    let mut initializer = Vec::new();
    for input in node.input.iter().skip(1).filter(|i| !i.is_empty()) {
        let t = consts
            .get(input.as_str())
            .ok_or_else(|| Error::InvalidModel(format!("input '{input}' of '{}' is not a constant", layer.name)))?;
        let mut t = (*t).clone();
        t.name.clone_from(input);
        initializer.push(t);
    }
    let proto = pb::ModelProto {
        ir_version: model.proto.ir_version,
        opset_import: model.proto.opset_import.clone(),
        graph: Some(pb::GraphProto {
            name: format!("{}_alone", layer.name),
            node: vec![node.clone()],
            initializer,
            input: vec![crate::model::float_value_info(&layer.input, input_dims)],
            output: vec![pb::ValueInfoProto { name: layer.output.clone(), ..Default::default() }],
            ..Default::default()
        }),
        ..Default::default()
    };
    OnnxModel::from_checked_proto(proto, layer.name.clone(), &model.path)
}

/// The runner of `layer` alone with `plan`'s quantization, on inputs of `input_shape`.
fn alone_runner(sim: &Simulator, plan: &QuantPlan, layer: &QuantizableLayer, input_shape: &[usize]) -> Result<Runner> {
    let alone = single_layer_model(&sim.model, layer, input_shape)?;
    let only = PlanFilter { only: Some([layer.name.clone()].into()), ..PlanFilter::default() };
    let proto = graph::simulated_proto(&alone, &restrict(plan, &only))?;
    let qmodel = OnnxModel::from_checked_proto(proto, layer.name.clone(), Path::new(&sim.model.path))?;
    Runner::new(&qmodel, &[input_shape.to_vec()], &[])
}

/// Runs `layer` alone with `plan`'s quantization on every sample's float input (kept by the
/// float reference).
pub(super) fn local_error(
    sim: &Simulator,
    plan: &QuantPlan,
    layer: &QuantizableLayer,
    on_progress: &mut dyn FnMut(usize),
    cancel: &AtomicBool,
) -> Result<TensorMetrics> {
    let first = sim
        .float_value(&layer.input, 0)
        .ok_or_else(|| Error::Runtime(format!("no float value cached for '{}'", layer.input)))?;
    let runner = alone_runner(sim, plan, layer, first.shape())?;
    let mut acc = ErrorAccumulator::default();
    let feed = |i: usize| -> Result<Vec<ndarray::ArrayD<f32>>> {
        sim.float_value(&layer.input, i)
            .map(|x| vec![x.clone()])
            .ok_or_else(|| Error::Runtime(format!("no float input cached for layer '{}'", layer.name)))
    };
    crate::model::parallel::run_samples(
        &runner,
        sim.num_samples(),
        &feed,
        &mut |i, out| {
            let reference = sim
                .float_value(&layer.output, i)
                .ok_or_else(|| Error::Runtime(format!("no float output cached for layer '{}'", layer.name)))?;
            acc.add(&flat(reference), &flat(&out[0]));
            on_progress(i + 1);
            Ok(())
        },
        cancel,
    )?;
    Ok(acc.metrics())
}

/// The local errors of `layers`, whose float inputs or outputs the reference did not keep: one
/// pass over the samples, each running the float model once (`Simulator::float_runner`, every
/// layer's input and output) and then each layer alone on its float input.
pub(super) fn local_errors_recomputed(
    sim: &Simulator,
    plan: &QuantPlan,
    layers: &[&QuantizableLayer],
    on_progress: &mut dyn FnMut(usize),
    cancel: &AtomicBool,
) -> Result<BTreeMap<String, TensorMetrics>> {
    // Tensor `t` of sample `i`: kept by the reference, or among the float runner's outputs `outs`.
    let value = |outs: &Values, i: usize, t: &str| -> Result<ndarray::ArrayD<f32>> {
        let (values, shape) = sim.reference_value(t, i, Some(outs))?;
        ndarray::ArrayD::from_shape_vec(shape.to_vec(), values.to_vec()).map_err(|e| Error::Shape(e.to_string()))
    };
    let first = sim.float_runner.run_values(sim.inputs(0))?;
    let runners: Vec<Runner> = layers
        .iter()
        .map(|l| alone_runner(sim, plan, l, value(&first, 0, &l.input)?.shape()))
        .collect::<Result<_>>()?;
    // Per sample: (float output, quantized output) of each layer.
    let work = |i: usize| -> Result<Vec<(ndarray::ArrayD<f32>, ndarray::ArrayD<f32>)>> {
        let outs = sim.float_runner.run_values(sim.inputs(i))?;
        let value = |t: &str| value(&outs, i, t);
        layers
            .iter()
            .zip(&runners)
            .map(|(l, r)| {
                let q = r.run(vec![value(&l.input)?])?.into_iter().next();
                let q = q.ok_or_else(|| Error::Runtime(format!("layer '{}' gave no output", l.name)))?;
                Ok((value(&l.output)?, q))
            })
            .collect()
    };
    let mut acc = vec![ErrorAccumulator::default(); layers.len()];
    crate::model::parallel::run_map(
        sim.num_samples(),
        &work,
        &mut |i, pairs| {
            for (a, (reference, q)) in acc.iter_mut().zip(&pairs) {
                a.add(&flat(reference), &flat(q));
            }
            on_progress(i + 1);
            Ok(())
        },
        cancel,
    )?;
    Ok(layers.iter().zip(acc).map(|(l, a)| (l.name.clone(), a.metrics())).collect())
}

/// The part of `plan` that concerns the layers `filter` keeps (activations keep only those
/// consumers).
pub(crate) fn restrict(plan: &QuantPlan, filter: &PlanFilter) -> QuantPlan {
    let keep = |name: &str| filter.only.as_ref().is_none_or(|o| o.contains(name)) && !filter.except.contains(name);
    let layers: Vec<_> = plan.layers.iter().filter(|l| keep(&l.layer)).cloned().collect();
    let mut activations = plan.activations.clone();
    for a in activations.values_mut() {
        a.consumers.retain(|c| keep(c));
    }
    activations.retain(|_, a| !a.consumers.is_empty());
    QuantPlan { runtime: plan.runtime, target: plan.target, weight_format: plan.weight_format, layers, activations }
}

/// The local error of an embedding Gather: its quantized table against the float one (each row
/// weighs the same; which rows the data looks up is not kept).
pub(super) fn table_error(model: &OnnxModel, lp: &crate::plan::LayerPlan) -> Result<TensorMetrics> {
    let table = model.constant_f32(&lp.weight)?;
    let mut acc = ErrorAccumulator::default();
    match &lp.weight_quant {
        Some(wq) => acc.add(&flat(&table), &flat(&wq.dequantize())),
        None => acc.add(&flat(&table), &flat(&table)),
    }
    Ok(acc.metrics())
}
