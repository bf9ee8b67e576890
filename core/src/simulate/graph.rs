//! Emitting a plan into an ONNX graph for simulation: weights and biases replaced by their
//! dequantized values, and each quantized activation routed through float ops computing
//! QuantizeLinear→DequantizeLinear exactly (`(clip(round(x / s) + z, qmin, qmax) - z) · s`, with
//! ONNX Round, which rounds half to even). This runs at any bit width in tract.

use std::collections::BTreeMap;

use crate::model::onnx as pb;

use crate::error::{Error, Result};
use crate::model::graph::{float_tensor, has_constant, int_attribute, node, replace_constant};
use crate::model::OnnxModel;
use crate::plan::{ActQuant, QuantPlan};

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
    for lp in &plan.layers {
        if let Some(wq) = &lp.weight_quant {
            let values = wq.dequantize();
            let values: Vec<f32> = values.iter().copied().collect();
            replace_constant(graph, &lp.weight, &values)?;
        }
        if let Some(b) = &lp.bias {
            replace_constant(graph, &b.tensor, &b.dequantize())?;
        } else if let Some((tensor, values)) = &lp.corrected_bias
            && has_constant(graph, tensor)
        {
            // (A layer simulated alone lacks a MatMul's following Add and its bias.)
            replace_constant(graph, tensor, values)?;
        }
    }
    // Each activation's fake-quant block goes right before its first consumer; the quantized
    // consumers read the fake-quantized tensor instead.
    let mut first_consumer: BTreeMap<&str, Vec<&ActQuant>> = BTreeMap::new();
    for a in plan.activations.values() {
        if let Some(first) = a.consumers.first() {
            first_consumer.entry(first.as_str()).or_default().push(a);
        }
    }
    let consumer_of: BTreeMap<&str, &ActQuant> =
        plan.activations.values().flat_map(|a| a.consumers.iter().map(move |c| (c.as_str(), a))).collect();
    // Layers whose runtime saturates int16 pair sums are replaced by an exact emulation.
    let saturating: BTreeMap<&str, &crate::plan::LayerPlan> =
        plan.layers.iter().filter(|l| l.saturates).map(|l| (l.layer.as_str(), l)).collect();
    let old_nodes = std::mem::take(&mut graph.node);
    for mut n in old_nodes {
        let name = crate::model::node_name(&n);
        if let Some(acts) = first_consumer.get(name.as_str()) {
            for a in acts {
                let (nodes, inits) = fake_quant_nodes(a);
                graph.node.extend(nodes);
                graph.initializer.extend(inits);
            }
        }
        if let Some(a) = consumer_of.get(name.as_str())
            && n.input.first() == Some(&a.tensor)
        {
            n.input[0] = fq_name(&a.tensor);
            if let Some(lp) = saturating.get(name.as_str())
                && let Some(e) = super::saturate::emulate(model, &n, lp, a)
            {
                graph.node.extend(e.nodes);
                graph.initializer.extend(e.inits);
                continue;
            }
        }
        graph.node.push(n);
    }
    Ok(proto)
}
