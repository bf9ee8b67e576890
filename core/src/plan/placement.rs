//! ONNX Runtime's placement: which activation tensors its QDQ quantizer (`quantize_static`,
//! `qdq_quantizer.py` with `registry.py`, ONNX Runtime 1.31) quantizes, so that our export gets
//! the same Q/DQ pairs and ORT's QDQ fusions form the same QLinear* integer kernels.
//!
//! The rules, one per op type, in node order (as ORT marks):
//! - the quantizable layers (Conv, ConvTranspose, Gemm, MatMul with a constant weight) quantize
//!   their activation input (the plan's layer pass) and their output;
//! - Relu and Clip after a quantized producer whose output they alone read take the producer's
//!   place (ORT removes them: the output range starts at the clip); otherwise input and output;
//! - ops that move or select values (Reshape, Transpose, Squeeze, Unsqueeze, Flatten, Slice,
//!   AveragePool, MaxPool, Resize, TopK, Gather, GatherElements) quantize their output with their
//!   input's parameters, when the input is quantized; Split likewise for every output, quantizing
//!   its input first; Pad when it pads with values of the input (or zero);
//! - Where quantizes its output when both value inputs are quantized;
//! - Softmax quantizes its input and its output with the fixed range [0, 1];
//! - every other op of ORT's default set (Add, Mul, Concat, Sigmoid, LeakyRelu,
//!   GlobalAveragePool, ArgMax, the normalizations, CumSum, MatMul of two activations, Conv
//!   without a constant weight, …) quantizes its float activation inputs and outputs.
//!
//! A tensor quantized with another's parameters keeps them even when a later node asks for it
//! (ORT lets a sharing mark override an own one, never the reverse). The float constants an op
//! of the last kind reads are quantized too (per tensor, with the activations' scheme, over their
//! values); other constants and tensors without calibration statistics stay float; a quantized
//! graph output is computed under the name `<name>_QuantizeLinear_Input` and dequantized into
//! `<name>`, as ORT writes it.

use std::collections::BTreeSet;

use crate::model::OnnxModel;
use crate::model::graph::{attr_f, attr_s, constants, consumers, is_graph_output, node_name};
use crate::model::onnx as pb;
use crate::observe::Calibration;
use crate::quant::ActivationScheme;

use super::{ActQuant, PlanFilter, QuantPlan};

/// How ONNX Runtime's QDQ registry handles one op type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// `QDQOperatorBase`: every float activation input and output.
    InputsAndOutputs,
    /// A quantizable layer: input 0 (quantized by the plan's layer pass) and output 0.
    Layer,
    /// `QDQRemovableActivation` (Relu, Clip).
    Removable,
    /// `QDQDirect8BitOp` and alike: output 0 shares input 0's parameters when input 0 is quantized.
    SameAsInput,
    /// `QDQSplit`: input 0, and every output shares its parameters.
    Split,
    /// `QDQPad`.
    Pad,
    /// `QDQWhere`: the output, when both value inputs are quantized.
    Where,
    /// Softmax: input, and output with the range [0, 1] (`adjust_tensor_ranges`).
    Softmax,
    /// `QDQNormalization`: input 0 and the outputs (scale and bias stay float here).
    Normalization,
}

/// ORT's default op set for `quantize_static` (QLinear ops ∪ QDQ registry) with each op's rule.
pub const ORT_RULES: [(&str, Rule); 34] = [
    ("Conv", Rule::Layer),
    ("ConvTranspose", Rule::Layer),
    ("Gemm", Rule::Layer),
    ("MatMul", Rule::Layer),
    ("Relu", Rule::Removable),
    ("Clip", Rule::Removable),
    ("Reshape", Rule::SameAsInput),
    ("Transpose", Rule::SameAsInput),
    ("Squeeze", Rule::SameAsInput),
    ("Unsqueeze", Rule::SameAsInput),
    ("Flatten", Rule::SameAsInput),
    ("Slice", Rule::SameAsInput),
    ("AveragePool", Rule::SameAsInput),
    ("MaxPool", Rule::SameAsInput),
    ("Resize", Rule::SameAsInput),
    ("TopK", Rule::SameAsInput),
    ("Gather", Rule::SameAsInput),
    ("GatherElements", Rule::SameAsInput),
    ("Split", Rule::Split),
    ("Pad", Rule::Pad),
    ("Where", Rule::Where),
    ("Softmax", Rule::Softmax),
    ("InstanceNormalization", Rule::Normalization),
    ("LayerNormalization", Rule::Normalization),
    ("BatchNormalization", Rule::Normalization),
    ("Add", Rule::InputsAndOutputs),
    ("Mul", Rule::InputsAndOutputs),
    ("Concat", Rule::InputsAndOutputs),
    ("Sigmoid", Rule::InputsAndOutputs),
    ("LeakyRelu", Rule::InputsAndOutputs),
    ("GlobalAveragePool", Rule::InputsAndOutputs),
    ("ArgMax", Rule::InputsAndOutputs),
    ("CumSum", Rule::InputsAndOutputs),
    ("EmbedLayerNormalization", Rule::InputsAndOutputs),
];

/// The rule of an op type (None: ORT leaves it alone).
pub fn rule(op_type: &str) -> Option<Rule> {
    ORT_RULES.iter().find(|(op, _)| *op == op_type).map(|(_, r)| *r)
}

/// What the walk needs besides the plan.
pub(super) struct Walk<'a> {
    /// The model.
    pub model: &'a OnnxModel,
    /// Its calibration (ranges of every tensor).
    pub calibration: &'a Calibration,
    /// The layers the plan covers.
    pub filter: &'a PlanFilter,
    /// The recipe: its target, defaults (the scheme of tensors no layer configures; with
    /// `keep_float` the ops that are not layers stay float too) and excluded op types and nodes.
    pub recipe: &'a crate::quant::recipe::Recipe,
}

/// The `npu` target's fixed output ranges (the functions' codomains).
fn npu_fixed_range(op_type: &str) -> Option<(f32, f32)> {
    match op_type {
        "Sigmoid" | "HardSigmoid" | "Softmax" => Some((0.0, 1.0)),
        "Tanh" => Some((-1.0, 1.0)),
        _ => None,
    }
}

/// Elementwise arithmetic whose float constant inputs the `npu` target quantizes as data.
const NPU_CONSTANT_OPERANDS: [&str; 5] = ["Sub", "Div", "Max", "Min", "PRelu"];

impl Walk<'_> {
    /// The scheme of tensors no layer configures (the recipe's defaults).
    fn scheme(&self) -> ActivationScheme {
        self.recipe.defaults.activation
    }

    /// Whether the non-layer node `name` of type `op_type` gets no marks: kept float (the
    /// defaults, `float_ops`/`float_nodes`) or left out by the filter (a plan of some layers only).
    fn skips(&self, name: &str, op_type: &str) -> bool {
        self.recipe.defaults.keep_float
            || self.recipe.excludes(name, op_type)
            || self.filter.only.is_some()
            || self.filter.except.contains(name)
    }

    /// The `npu` target: every op's float activations, fixed ranges for bounded activations.
    fn npu(&self) -> bool {
        self.recipe.target == crate::quant::Target::Npu
    }

    /// Adds ORT's marks to `plan` (whose layer pass already quantized the layers' inputs), then
    /// lets every reader of a quantized tensor read the quantized value, as ORT rewires all of them.
    pub(super) fn mark(&self, plan: &mut QuantPlan) {
        let graph = self.model.graph();
        let consts = constants(graph);
        let layer_names: BTreeSet<String> = plan.layers.iter().map(|l| l.layer.clone()).collect();
        // Tensors quantized with another's parameters (no own mark may replace them).
        let mut shared: BTreeSet<String> = BTreeSet::new();
        for n in &graph.node {
            let name = node_name(n);
            let Some(rule) = rule(&n.op_type).or(self.npu().then_some(Rule::InputsAndOutputs)) else { continue };
            let is_layer = self.model.summary.layer(&name).is_some();
            if is_layer && !layer_names.contains(&name) {
                // Kept float, or left out by the filter: as ORT's nodes_to_exclude.
                continue;
            }
            if !is_layer && self.skips(&name, &n.op_type) {
                continue;
            }
            self.mark_node(plan, &mut shared, n, rule, is_layer, &consts);
        }
        // Every reader reads the quantized value.
        for a in plan.activations.values_mut() {
            a.consumers = consumers(graph, &a.tensor).into_iter().map(node_name).collect();
        }
        plan.activations.retain(|_, a| !a.consumers.is_empty() || is_graph_output(graph, &a.tensor));
    }

    /// The `tensorrt` target's marks beyond the layers' inputs: the residual inputs of residual
    /// Adds (`OnnxModel::residual_add_inputs`), read quantized by the Add (and by the layers
    /// that already read them quantized); Adds kept float stay float.
    pub(super) fn mark_residual_adds(&self, plan: &mut QuantPlan) {
        let shared = BTreeSet::new();
        for (add, t) in self.model.residual_add_inputs() {
            if self.skips(&add, "Add") {
                continue;
            }
            self.own(plan, &shared, &t, None);
            if let Some(a) = plan.activations.get_mut(t.as_str()).filter(|a| !a.dynamic)
                && !a.consumers.contains(&add)
            {
                a.consumers.push(add);
            }
        }
    }

    /// The marks of node `n` under `rule`.
    fn mark_node(
        &self,
        plan: &mut QuantPlan,
        shared: &mut BTreeSet<String>,
        n: &pb::NodeProto,
        rule: Rule,
        is_layer: bool,
        consts: &std::collections::BTreeMap<&str, &pb::TensorProto>,
    ) {
        let graph = self.model.graph();
        let opset = self.model.summary.opset;
        let float_input = |t: &String| !t.is_empty() && !consts.contains_key(t.as_str());
        let own = |plan: &mut QuantPlan, shared: &BTreeSet<String>, t: &str| self.own(plan, shared, t, None);
        if self.npu() && self::rule(&n.op_type).is_none_or(|r| r == Rule::InputsAndOutputs || r == Rule::Softmax) {
            self.mark_npu(plan, shared, n, consts);
            return;
        }
        match rule {
            Rule::Layer if is_layer => {
                if let Some(o) = n.output.first() {
                    own(plan, shared, o);
                }
            }
            Rule::Layer | Rule::Normalization => {
                if let Some(i) = n.input.first().filter(|t| float_input(t)) {
                    own(plan, shared, i);
                }
                for o in &n.output {
                    own(plan, shared, o);
                }
            }
            Rule::InputsAndOutputs => {
                for i in n.input.iter().filter(|t| !t.is_empty()) {
                    if consts.contains_key(i.as_str()) {
                        self.own_constant(plan, i);
                    } else {
                        own(plan, shared, i);
                    }
                }
                for o in &n.output {
                    own(plan, shared, o);
                }
            }
            Rule::Softmax => {
                if let Some(i) = n.input.first() {
                    own(plan, shared, i);
                }
                if let Some(o) = n.output.first() {
                    self.own(plan, shared, o, Some((0.0, 1.0)));
                }
            }
            Rule::Removable => {
                let (Some(i), Some(o)) = (n.input.first(), n.output.first()) else { return };
                if plan.activations.get(i).is_none_or(|a| a.dynamic) {
                    return;
                }
                let replaceable = !self.scheme().symmetric
                    && self.calibration.activations.contains_key(o)
                    && consumers(graph, i).len() == 1
                    && !is_graph_output(graph, i)
                    && !graph.input.iter().any(|g| g.name == *i);
                if replaceable {
                    plan.activations.remove(i);
                    shared.remove(i);
                }
                self.own(plan, shared, o, None);
            }
            Rule::SameAsInput => {
                let (Some(i), Some(o)) = (n.input.first(), n.output.first()) else { return };
                let too_old = (n.op_type == "MaxPool" && opset < 12) || (n.op_type == "Resize" && opset < 11);
                if !too_old {
                    self.same_as(plan, shared, o, i);
                }
            }
            Rule::Split => {
                let Some(i) = n.input.first() else { return };
                own(plan, shared, i);
                for o in &n.output {
                    self.same_as(plan, shared, o, i);
                }
            }
            Rule::Pad => {
                let Some(i) = n.input.first() else { return };
                own(plan, shared, i);
                let Some(o) = n.output.first() else { return };
                if pads_with_input_values(self.model, n) {
                    self.same_as(plan, shared, o, i);
                } else {
                    self.own(plan, shared, o, None);
                }
            }
            Rule::Where => {
                let quantized = |k: usize| n.input.get(k).is_some_and(|t| plan.activations.contains_key(t));
                if quantized(1) && quantized(2) {
                    for o in &n.output {
                        self.own(plan, shared, o, None);
                    }
                }
            }
        }
    }

    /// The `npu` marks of `n` (an op ORT does not handle, or one it quantizes as a whole): every
    /// float activation input (and the constants of elementwise arithmetic) and the outputs,
    /// bounded functions with their codomain.
    fn mark_npu(
        &self,
        plan: &mut QuantPlan,
        shared: &BTreeSet<String>,
        n: &pb::NodeProto,
        consts: &std::collections::BTreeMap<&str, &pb::TensorProto>,
    ) {
        let data_constants = self::rule(&n.op_type).is_some() || NPU_CONSTANT_OPERANDS.contains(&n.op_type.as_str());
        for i in n.input.iter().filter(|t| !t.is_empty()) {
            if !consts.contains_key(i.as_str()) {
                self.own(plan, shared, i, None);
            } else if data_constants && n.op_type != "Softmax" {
                self.own_constant(plan, i);
            }
        }
        for o in &n.output {
            self.own(plan, shared, o, npu_fixed_range(&n.op_type));
        }
    }

    /// Quantizes `tensor` with its own calibrated range (or `fixed`), unless it is quantized
    /// already, is a constant or graph output, or has no statistics.
    fn own(&self, plan: &mut QuantPlan, shared: &BTreeSet<String>, tensor: &str, fixed: Option<(f32, f32)>) {
        if plan.activations.contains_key(tensor) || shared.contains(tensor) || !self.quantizable(tensor) {
            return;
        }
        let Some(stats) = self.calibration.activations.get(tensor) else { return };
        let scheme = self.scheme();
        let range = fixed.unwrap_or_else(|| {
            self.calibration.range_of(tensor, stats, &scheme.observer, scheme.qrange(), scheme.symmetric)
        });
        let params = scheme.params(range);
        plan.activations.insert(
            tensor.to_string(),
            ActQuant { tensor: tensor.to_string(), range, params, scheme, consumers: Vec::new(), dynamic: false },
        );
    }

    /// Quantizes the float constant `tensor` read by an op quantized as a whole (Add, Mul,
    /// Concat, …), as ORT does: with the activations' scheme, per tensor, over its values' range
    /// widened to 0 (`_calc_initializer_quant_params`).
    fn own_constant(&self, plan: &mut QuantPlan, tensor: &str) {
        if plan.activations.contains_key(tensor) {
            return;
        }
        // A layer's weight or bias stays the layer's (ORT would rewire the layer to this DQ).
        let graph = self.model.graph();
        let of_layer = plan.layers.iter().any(|l| {
            l.weight == tensor
                || graph.node.iter().any(|n| node_name(n) == l.layer && n.input.iter().skip(1).any(|i| i == tensor))
        });
        if of_layer {
            return;
        }
        let Ok(values) = self.model.constant_f32(tensor) else { return };
        let finite = || values.iter().copied().filter(|v| v.is_finite());
        let range = (finite().fold(0.0f32, f32::min), finite().fold(0.0f32, f32::max));
        let scheme = self.scheme();
        let params = scheme.params(range);
        plan.activations.insert(
            tensor.to_string(),
            ActQuant { tensor: tensor.to_string(), range, params, scheme, consumers: Vec::new(), dynamic: false },
        );
    }

    /// Quantizes `out` with the parameters of `input`, when `input` is statically quantized.
    fn same_as(&self, plan: &mut QuantPlan, shared: &mut BTreeSet<String>, out: &str, input: &str) {
        let Some(src) = plan.activations.get(input).filter(|a| !a.dynamic).cloned() else { return };
        if !self.quantizable(out) {
            return;
        }
        plan.activations.insert(out.to_string(), ActQuant { tensor: out.to_string(), consumers: Vec::new(), ..src });
        shared.insert(out.to_string());
    }

    /// A float activation the export can quantize: not empty, with statistics (graph outputs
    /// too: ORT then renames the producer's output `<name>_QuantizeLinear_Input`).
    fn quantizable(&self, tensor: &str) -> bool {
        !tensor.is_empty() && self.calibration.activations.contains_key(tensor)
    }
}

/// Whether a Pad fills with values its input has (reflect, edge, wrap) or with zero, which every
/// quantized range holds (ORT then shares the input's parameters).
fn pads_with_input_values(model: &OnnxModel, n: &pb::NodeProto) -> bool {
    let mode = attr_s(n, "mode");
    if matches!(mode.as_str(), "reflect" | "edge" | "wrap") {
        return true;
    }
    let value = match n.input.get(2).filter(|t| !t.is_empty()) {
        Some(t) => model.constant_f32(t).ok().and_then(|v| v.iter().next().copied()),
        None => Some(attr_f(n, "value", 0.0)),
    };
    value == Some(0.0)
}
