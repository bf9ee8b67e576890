//! The simulation's sink of the plan walk (`emit`): weights and biases replaced by their
//! dequantized values, and each quantized activation routed through float ops computing
//! QuantizeLinear→DequantizeLinear exactly (`(clip(round(x / s) + z, qmin, qmax) - z) · s`, with
//! ONNX Round, which rounds half to even). This runs at any bit width in tract.

use crate::model::onnx as pb;

use crate::emit::{ConstantNames, Emitted, Sink, emit};
use crate::error::{Error, Result};
use crate::model::OnnxModel;
use crate::model::graph::{float_tensor, int_attribute, node};
use crate::plan::{ActQuant, BiasQuant, LayerPlan, QuantPlan};

/// The name of the fake-quantized version of `tensor`.
pub fn fq_name(tensor: &str) -> String {
    format!("{tensor}/qb_fq")
}

/// Nodes computing, per run, ONNX DynamicQuantizeLinear's scale and zero point of `t` (range
/// widened to include 0; scale 1 for an all-zero range; zero point clipped, then rounded).
fn dynamic_params_nodes(a: &ActQuant) -> (Vec<pb::NodeProto>, Vec<pb::TensorProto>) {
    let t = &a.tensor;
    let r = a.params.range;
    let k = |s: &str| format!("{t}/qb_fq/{s}");
    let inits = vec![
        float_tensor(&k("zero"), &[], &[0.0]),
        float_tensor(&k("one"), &[], &[1.0]),
        float_tensor(&k("span"), &[], &[(r.qmax - r.qmin) as f32]),
        float_tensor(&k("qmin"), &[], &[r.qmin as f32]),
        float_tensor(&k("qmax"), &[], &[r.qmax as f32]),
    ];
    let mut reduce_min = node("ReduceMin", k("reduce_min"), &[t], k("batch_min"));
    reduce_min.attribute.push(int_attribute("keepdims", 0));
    let mut reduce_max = node("ReduceMax", k("reduce_max"), &[t], k("batch_max"));
    reduce_max.attribute.push(int_attribute("keepdims", 0));
    let nodes = vec![
        reduce_min,
        reduce_max,
        node("Min", k("min0"), &[&k("batch_min"), &k("zero")], k("rmin")),
        node("Max", k("max0"), &[&k("batch_max"), &k("zero")], k("rmax")),
        node("Sub", k("range"), &[&k("rmax"), &k("rmin")], k("width")),
        node("Div", k("raw_scale"), &[&k("width"), &k("span")], k("scale_or_zero")),
        node("Equal", k("is_zero"), &[&k("scale_or_zero"), &k("zero")], k("degenerate")),
        node("Where", k("scale_pick"), &[&k("degenerate"), &k("one"), &k("scale_or_zero")], k("scale")),
        node("Div", k("min_s"), &[&k("rmin"), &k("scale")], k("min_over_s")),
        node("Sub", k("zp_raw"), &[&k("qmin"), &k("min_over_s")], k("zp_unclipped")),
        node("Clip", k("zp_clip"), &[&k("zp_unclipped"), &k("qmin"), &k("qmax")], k("zp_clipped")),
        node("Round", k("zp_round"), &[&k("zp_clipped")], k("zero_point")),
    ];
    (nodes, inits)
}

/// The nodes and scalar initializers computing `fq_name(tensor)` from `tensor`.
fn fake_quant_nodes(a: &ActQuant) -> (Vec<pb::NodeProto>, Vec<pb::TensorProto>) {
    let t = &a.tensor;
    let p = a.params;
    let k = |s: &str| format!("{t}/qb_fq/{s}");
    let (mut nodes, inits) = if a.dynamic {
        dynamic_params_nodes(a)
    } else {
        let inits = vec![
            float_tensor(&k("scale"), &[], &[p.scale]),
            float_tensor(&k("zero_point"), &[], &[p.zero_point as f32]),
            float_tensor(&k("qmin"), &[], &[p.range.qmin as f32]),
            float_tensor(&k("qmax"), &[], &[p.range.qmax as f32]),
        ];
        (Vec::new(), inits)
    };
    nodes.extend([
        node("Div", k("div"), &[t, &k("scale")], k("x_s")),
        node("Round", k("round"), &[&k("x_s")], k("rounded")),
        node("Add", k("add_zp"), &[&k("rounded"), &k("zero_point")], k("shifted")),
        node("Clip", k("clip"), &[&k("shifted"), &k("qmin"), &k("qmax")], k("q")),
        node("Sub", k("sub_zp"), &[&k("q"), &k("zero_point")], k("centred")),
        node("Mul", k("mul_s"), &[&k("centred"), &k("scale")], fq_name(t)),
    ]);
    (nodes, inits)
}

/// The simulation's sink: dequantized float constants for weights and biases, and float ops
/// computing Q→DQ exactly for activations; layers whose runtime saturates int16 pair sums are
/// replaced by their exact emulation.
struct SimulationSink<'a> {
    model: &'a OnnxModel,
    /// Unique names for shared weights and biases.
    names: ConstantNames,
}

impl Sink for SimulationSink<'_> {
    fn activation(&mut self, a: &ActQuant) -> Result<Emitted> {
        let (nodes, inits) = fake_quant_nodes(a);
        Ok(Emitted { nodes, inits, output: fq_name(&a.tensor) })
    }

    fn weight(&mut self, lp: &LayerPlan, dims: &[i64]) -> Result<Emitted> {
        let Some(wq) = &lp.weight_quant else { return Err(Error::Config("no quantized weight".into())) };
        let values: Vec<f32> = wq.dequantize().iter().copied().collect();
        let output = format!("{}/qb_dq", self.names.name(&lp.weight, &lp.layer));
        Ok(Emitted { nodes: Vec::new(), inits: vec![float_tensor(&output, dims, &values)], output })
    }

    fn bias(&mut self, b: &BiasQuant, lp: &LayerPlan, dims: &[i64]) -> Result<Emitted> {
        let output = format!("{}/qb_dq", self.names.name(&b.tensor, &lp.layer));
        Ok(Emitted { nodes: Vec::new(), inits: vec![float_tensor(&output, dims, &b.dequantize())], output })
    }

    fn layer_node(&mut self, node: pb::NodeProto, lp: &LayerPlan, act: Option<&ActQuant>) -> Emitted {
        if lp.saturates
            && let Some(a) = act
            && let Some(e) = super::saturate::emulate(self.model, &node, lp, a)
        {
            return Emitted { nodes: e.nodes, inits: e.inits, output: String::new() };
        }
        Emitted { nodes: vec![node], ..Emitted::default() }
    }
}

/// The model with `plan` applied for simulation.
pub fn simulated_proto(model: &OnnxModel, plan: &QuantPlan) -> Result<pb::ModelProto> {
    if !plan.activations.is_empty() && model.summary.opset < 11 {
        return Err(Error::Config(format!(
            "simulating activation quantization needs opset 11 or newer; the model has opset {}",
            model.summary.opset
        )));
    }
    let mut proto = model.proto.clone();
    let graph = proto.graph.as_mut().ok_or_else(|| Error::InvalidModel("no graph".into()))?;
    emit(model, plan, graph, &mut SimulationSink { model, names: ConstantNames::default() })?;
    Ok(proto)
}
