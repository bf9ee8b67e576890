//! The one walk of a plan over a model's graph. Simulation (`simulate::graph`) and QDQ export
//! (`export::qdq`) are two [`Sink`]s of it: the walk decides, once, where each quantized tensor
//! goes and which inputs read it; a sink only says what to insert for it. So what the simulation
//! runs and what ONNX Runtime runs are placed alike by construction.
//!
//! In network order, for every node: first what quantizes each activation the node is the first
//! consumer of, then its weight (input 1) and int32 bias (input 2) when the plan quantizes them,
//! then the node itself reading the quantized tensors on every input the plan lists it for (or what the sink replaces
//! it with). Constants no node reads any more are dropped, and a corrected bias that stays float
//! (a MatMul's following Add) replaces the model's.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::model::OnnxModel;
use crate::model::graph::{drop_constant_if_unused, has_constant, is_graph_output, node_name, replace_constant};
use crate::model::onnx as pb;
use crate::plan::{ActQuant, BiasQuant, LayerPlan, QuantPlan};

/// What a sink inserts for one quantized tensor: nodes and constants placed before the node
/// that reads it, and the tensor that node reads instead.
#[derive(Debug, Clone, Default)]
pub struct Emitted {
    /// Nodes, in order.
    pub nodes: Vec<pb::NodeProto>,
    /// The constants they read.
    pub inits: Vec<pb::TensorProto>,
    /// The tensor the consumer reads instead of the original.
    pub output: String,
}

/// Base names for the quantized forms of constants. A weight or bias that several layers share
/// is quantized once per layer (each with its layer's settings); the second and later get the
/// layer's name appended, so that node and tensor names stay unique, as ONNX requires.
#[derive(Debug, Default)]
pub struct ConstantNames(std::collections::BTreeSet<String>);

impl ConstantNames {
    /// The base name for the quantized form of `tensor` in layer `layer`.
    pub fn name(&mut self, tensor: &str, layer: &str) -> String {
        if self.0.insert(tensor.to_string()) { tensor.to_string() } else { format!("{tensor}_{layer}") }
    }
}

/// How one target writes quantized tensors.
pub trait Sink {
    /// The quantized activation `a` (inserted once, before its first quantized consumer).
    fn activation(&mut self, a: &ActQuant) -> Result<Emitted>;
    /// The quantized weight of `lp` (its constant has `dims`).
    fn weight(&mut self, lp: &LayerPlan, dims: &[i64]) -> Result<Emitted>;
    /// The int32 bias `b` of `lp` (its constant has `dims`).
    fn bias(&mut self, b: &BiasQuant, lp: &LayerPlan, dims: &[i64]) -> Result<Emitted>;
    /// The node of a quantized layer with its inputs already rewired: what goes into the graph
    /// in its place (itself, by default).
    fn layer_node(&mut self, node: pb::NodeProto, _lp: &LayerPlan, _act: Option<&ActQuant>) -> Emitted {
        Emitted { nodes: vec![node], ..Emitted::default() }
    }
    /// A node that is not a quantized layer, with its inputs already rewired: what goes into the
    /// graph in its place (itself, by default).
    fn node(&mut self, node: pb::NodeProto) -> Emitted {
        Emitted { nodes: vec![node], ..Emitted::default() }
    }
}

/// Quantizes the graph outputs `outputs`, computed as `<name>_QuantizeLinear_Input`, into
/// `<name>`.
fn quantize_outputs(
    sink: &mut dyn Sink,
    outputs: &[&ActQuant],
    graph: &mut pb::GraphProto,
    quantized: &mut BTreeMap<String, String>,
) -> Result<()> {
    for a in outputs {
        let renamed = ActQuant { tensor: format!("{}_QuantizeLinear_Input", a.tensor), ..(*a).clone() };
        let mut e = sink.activation(&renamed)?;
        let last = e
            .nodes
            .iter_mut()
            .rev()
            .find(|n| n.output.first() == Some(&e.output))
            .ok_or_else(|| Error::Config(format!("nothing computes the quantized graph output '{}'", a.tensor)))?;
        last.output[0].clone_from(&a.tensor);
        graph.node.extend(e.nodes);
        graph.initializer.extend(e.inits);
        quantized.insert(a.tensor.clone(), a.tensor.clone());
    }
    Ok(())
}

/// The Mul that divides `layer`'s input by AWQ's scales `s` (one per input channel: the last
/// axis, or the first of a Gemm with `transA`), and its constant `1 / s`.
fn input_scale_mul(layer: &pb::NodeProto, s: &[f32]) -> (pb::NodeProto, pb::TensorProto) {
    let name = node_name(layer);
    let inverse: Vec<f32> = s.iter().map(|v| 1.0 / v).collect();
    let k = inverse.len() as i64;
    let trans_a = layer.op_type == "Gemm" && crate::model::graph::attr_i(layer, "transA", 0) == 1;
    let dims: Vec<i64> = if trans_a { vec![k, 1] } else { vec![k] };
    let constant = crate::model::graph::float_tensor(&format!("{name}_awq_inverse_scale"), &dims, &inverse);
    let input = layer.input.first().cloned().unwrap_or_default();
    let mul = crate::model::graph::node(
        "Mul",
        format!("{name}_awq_scale"),
        &[&input, &constant.name],
        format!("{name}_awq_scaled_input"),
    );
    (mul, constant)
}

/// Walks `plan` over `graph` (a copy of `model`'s), writing each quantized tensor through `sink`.
pub fn emit(model: &OnnxModel, plan: &QuantPlan, graph: &mut pb::GraphProto, sink: &mut dyn Sink) -> Result<()> {
    let consts = model.constants();
    let dims_of = |name: &str| -> Result<Vec<i64>> {
        consts
            .get(name)
            .map(|t| t.dims.clone())
            .ok_or_else(|| Error::InvalidModel(format!("constant '{name}' not found")))
    };
    let mut first_consumer: BTreeMap<&str, Vec<&ActQuant>> = BTreeMap::new();
    let original = model.graph();
    for a in plan.activations.values() {
        if is_graph_output(original, &a.tensor) {
            continue;
        }
        if let Some(first) = a.consumers.first() {
            first_consumer.entry(first.as_str()).or_default().push(a);
        }
    }
    let layer_plans: BTreeMap<&str, &LayerPlan> = plan.layers.iter().map(|l| (l.layer.as_str(), l)).collect();
    let mut quantized: BTreeMap<String, String> = BTreeMap::new();
    let mut replaced_constants = Vec::new();
    let old_nodes = std::mem::take(&mut graph.node);
    for mut n in old_nodes {
        let name = node_name(&n);
        for a in first_consumer.get(name.as_str()).into_iter().flatten() {
            let e = sink.activation(a)?;
            graph.node.extend(e.nodes);
            graph.initializer.extend(e.inits);
            quantized.insert(a.tensor.clone(), e.output);
        }
        // Every input of a consumer reads the quantized value.
        let act = n.input.first().and_then(|t| plan.activations.get(t)).filter(|a| a.consumers.contains(&name));
        for input in &mut n.input {
            if let Some(a) = plan.activations.get(input.as_str())
                && a.consumers.contains(&name)
                && let Some(q) = quantized.get(input.as_str())
            {
                input.clone_from(q);
            }
        }
        // A quantized graph output: the node computes `<name>_QuantizeLinear_Input`, quantized
        // right after it into `<name>` (and its readers read that).
        let outputs: Vec<&ActQuant> = n
            .output
            .iter()
            .filter(|o| is_graph_output(original, o))
            .filter_map(|o| plan.activations.get(o.as_str()))
            .collect();
        for o in &mut n.output {
            if outputs.iter().any(|a| a.tensor == *o) {
                *o = format!("{o}_QuantizeLinear_Input");
            }
        }
        let Some(lp) = layer_plans.get(name.as_str()).copied() else {
            let e = sink.node(n);
            graph.node.extend(e.nodes);
            graph.initializer.extend(e.inits);
            quantize_outputs(sink, &outputs, graph, &mut quantized)?;
            continue;
        };
        // The weight: input 1, or an embedding Gather's table (input 0).
        let weight_input = usize::from(lp.op_type != "Gather");
        if lp.weight_quant.is_some() && n.input.get(weight_input) == Some(&lp.weight) {
            let e = sink.weight(lp, &dims_of(&lp.weight)?)?;
            graph.node.extend(e.nodes);
            graph.initializer.extend(e.inits);
            replaced_constants.push(lp.weight.clone());
            n.input[weight_input] = e.output;
        }
        if let Some(b) = &lp.bias
            && n.input.get(2) == Some(&b.tensor)
        {
            let e = sink.bias(b, lp, &dims_of(&b.tensor)?)?;
            graph.node.extend(e.nodes);
            graph.initializer.extend(e.inits);
            replaced_constants.push(b.tensor.clone());
            n.input[2] = e.output;
        }
        if let Some(s) = &lp.input_scale {
            // AWQ: the layer reads its input divided by the per-input-channel scales.
            let (mul, inverse) = input_scale_mul(&n, s);
            n.input[0].clone_from(&mul.output[0]);
            graph.node.push(mul);
            graph.initializer.push(inverse);
        }
        let e = sink.layer_node(n, lp, act);
        graph.node.extend(e.nodes);
        graph.initializer.extend(e.inits);
        quantize_outputs(sink, &outputs, graph, &mut quantized)?;
    }
    for c in replaced_constants {
        drop_constant_if_unused(graph, &c);
    }
    // Bias correction of a bias that stays float (e.g. a MatMul's following Add; a layer
    // simulated alone has no such Add).
    for lp in &plan.layers {
        if let (None, Some((tensor, values))) = (&lp.bias, &lp.corrected_bias)
            && has_constant(graph, tensor)
        {
            replace_constant(graph, tensor, values)?;
        }
    }
    Ok(())
}
