//! Inlining of `If` nodes whose condition is known without data: exporters (PyTorch tracing of
//! `if self.training`, TensorFlow's `tf.cond` on a constant, version guards) leave such `If`s
//! around straight-line compute. The condition is a constant, or computed from constants only
//! (tract evaluates that subgraph); the chosen branch's nodes replace the `If`, its outputs are
//! bound to the `If`'s outputs by Identity nodes. An `If` on data (a threshold on an activation)
//! is real control flow and is left for the loader to refuse by name.

use std::collections::{BTreeMap, BTreeSet};

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::anyhow;

use super::graph::{constants, is_default_domain, node, node_name};
use super::onnx as pb;
use crate::error::{Error, Result};

/// Inlines, repeatedly (a branch may hold constant `If`s of its own), every top-level `If` of
/// `graph` whose condition is known without data. Returns how many were inlined.
pub(crate) fn inline_constant_ifs(graph: &mut pb::GraphProto) -> Result<usize> {
    let mut inlined = 0;
    // Bounded: each pass removes one If (or stops), and nesting is bounded by the file's size.
    loop {
        let Some((ix, cond)) = graph
            .node
            .iter()
            .enumerate()
            .filter(|(_, n)| n.op_type == "If" && is_default_domain(&n.domain))
            .find_map(|(ix, n)| constant_condition(graph, n).map(|c| (ix, c)))
        else {
            return Ok(inlined);
        };
        let n = graph.node.remove(ix);
        let name = node_name(&n);
        let branch_name = if cond { "then_branch" } else { "else_branch" };
        let branch = n
            .attribute
            .iter()
            .find(|a| a.name == branch_name)
            .and_then(|a| a.g.as_ref())
            .ok_or_else(|| Error::InvalidModel(format!("If '{name}' has no {branch_name}")))?;
        if branch.output.len() != n.output.len() {
            return Err(Error::InvalidModel(format!(
                "If '{name}': its {branch_name} has {} outputs for the node's {}",
                branch.output.len(),
                n.output.len()
            )));
        }
        let mut nodes = branch.node.clone();
        for (k, (from, to)) in branch.output.iter().zip(&n.output).enumerate() {
            if !to.is_empty() {
                nodes.push(node("Identity", format!("{name}_{branch_name}_output_{k}"), &[&from.name], to.clone()));
            }
        }
        graph.initializer.extend(branch.initializer.iter().cloned());
        graph.node.splice(ix..ix, nodes);
        inlined += 1;
    }
}

/// Operators a condition may be computed with: cheap scalar logic, comparisons and casts (so a
/// hostile file cannot make the loader evaluate something large).
const CONDITION_OPS: [&str; 20] = [
    "Constant",
    "Identity",
    "Cast",
    "Not",
    "And",
    "Or",
    "Xor",
    "Equal",
    "Greater",
    "Less",
    "GreaterOrEqual",
    "LessOrEqual",
    "Squeeze",
    "Unsqueeze",
    "Gather",
    "Shape",
    "Size",
    "Add",
    "Sub",
    "Mul",
];
/// At most this many nodes compute a condition that is evaluated.
const MAX_CONDITION_NODES: usize = 32;
/// Constants a condition reads hold at most this many elements.
const MAX_CONDITION_ELEMENTS: i64 = 1024;

/// The value of `n`'s condition when it depends on constants only (evaluated by tract).
fn constant_condition(graph: &pb::GraphProto, n: &pb::NodeProto) -> Option<bool> {
    let cond = n.input.first().filter(|c| !c.is_empty())?;
    let consts = constants(graph);
    let producers: BTreeMap<&str, &pb::NodeProto> =
        graph.node.iter().flat_map(|p| p.output.iter().map(move |o| (o.as_str(), p))).collect();
    let inputs: BTreeSet<&str> = graph.input.iter().map(|i| i.name.as_str()).collect();
    // The nodes the condition is computed by, back to constants; none may read data.
    let mut needed: Vec<&pb::NodeProto> = Vec::new();
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let mut todo = vec![cond.as_str()];
    while let Some(t) = todo.pop() {
        if !seen.insert(t) || t.is_empty() {
            continue;
        }
        if let Some(i) = graph.initializer.iter().find(|i| i.name == t) {
            if elements(&i.dims).is_none_or(|e| e > MAX_CONDITION_ELEMENTS) {
                return None;
            }
            continue;
        }
        if inputs.contains(t) {
            return None;
        }
        let p = producers.get(t)?;
        if !CONDITION_OPS.contains(&p.op_type.as_str()) || needed.len() >= MAX_CONDITION_NODES {
            return None;
        }
        let big = |a: &pb::AttributeProto| {
            a.t.as_ref().is_some_and(|t| elements(&t.dims).is_none_or(|e| e > MAX_CONDITION_ELEMENTS))
                || a.ints.len() as i64 > MAX_CONDITION_ELEMENTS
                || a.floats.len() as i64 > MAX_CONDITION_ELEMENTS
        };
        if p.attribute.iter().any(big) {
            return None;
        }
        if !needed.iter().any(|q| std::ptr::eq(*q, *p)) {
            needed.push(p);
        }
        todo.extend(p.input.iter().map(String::as_str));
    }
    if let Some(t) = consts.get(cond.as_str()).filter(|_| needed.iter().all(|p| p.op_type == "Constant")) {
        return tensor_bool(t);
    }
    evaluate(graph, &needed, cond)
}

/// The element count of `dims`, None when a dim is negative or the product overflows (a hostile
/// file's claim).
fn elements(dims: &[i64]) -> Option<i64> {
    dims.iter().try_fold(1i64, |acc, &d| if d < 0 { None } else { acc.checked_mul(d) })
}

/// A scalar (or one-element) bool tensor's value.
fn tensor_bool(t: &pb::TensorProto) -> Option<bool> {
    const BOOL: i32 = 9;
    if t.data_type != BOOL || elements(&t.dims) != Some(1) {
        return None;
    }
    t.raw_data.first().map(|&b| b != 0).or_else(|| t.int32_data.first().map(|&v| v != 0))
}

/// Runs the constant-only subgraph `nodes` in tract and reads `cond`.
fn evaluate(graph: &pb::GraphProto, nodes: &[&pb::NodeProto], cond: &str) -> Option<bool> {
    let used: BTreeSet<&str> = nodes.iter().flat_map(|n| n.input.iter().map(String::as_str)).collect();
    let order: Vec<pb::NodeProto> =
        graph.node.iter().filter(|n| nodes.iter().any(|m| std::ptr::eq(*m, *n))).cloned().collect();
    let proto = pb::ModelProto {
        ir_version: 7,
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: 13 }],
        graph: Some(pb::GraphProto {
            node: order,
            initializer: graph.initializer.iter().filter(|i| used.contains(i.name.as_str())).cloned().collect(),
            output: vec![pb::ValueInfoProto { name: cond.to_string(), ..Default::default() }],
            ..Default::default()
        }),
        ..Default::default()
    };
    let run = || -> TractResult<bool> {
        let plan = super::tract_parser().model_for_proto_model(&proto)?.into_optimized()?.into_runnable()?;
        let out = plan.run(tvec![])?;
        let t = out.first().ok_or_else(|| anyhow!("no output"))?.cast_to::<bool>()?.into_owned();
        let v = t.to_plain_array_view::<bool>()?;
        match v.iter().collect::<Vec<_>>()[..] {
            [&b] => Ok(b),
            _ => Err(anyhow!("condition has {} elements", v.len())),
        }
    };
    // A condition tract cannot evaluate leaves the If in place, to be refused by name.
    crate::panics::catch(run).ok().and_then(std::result::Result::ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::graph::float_value_info;

    fn bool_tensor(name: &str, v: bool) -> pb::TensorProto {
        pb::TensorProto { name: name.into(), data_type: 9, raw_data: vec![u8::from(v)], ..Default::default() }
    }

    fn branch(op: &str, out: &str) -> pb::AttributeProto {
        pb::AttributeProto {
            name: String::new(),
            r#type: 5,
            g: Some(pb::GraphProto {
                node: vec![node(op, format!("{op}_in_branch"), &["x"], out.into())],
                output: vec![float_value_info(out, &[1, 4])],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn if_graph(cond_nodes: Vec<pb::NodeProto>, inits: Vec<pb::TensorProto>) -> pb::GraphProto {
        let mut f = node("If", "guard".into(), &["c"], "y".into());
        f.attribute.push(pb::AttributeProto { name: "then_branch".into(), ..branch("Relu", "t") });
        f.attribute.push(pb::AttributeProto { name: "else_branch".into(), ..branch("Sigmoid", "e") });
        let mut nodes = cond_nodes;
        nodes.push(f);
        pb::GraphProto {
            node: nodes,
            initializer: inits,
            input: vec![float_value_info("x", &[1, 4])],
            output: vec![float_value_info("y", &[1, 4])],
            ..Default::default()
        }
    }

    #[test]
    fn an_if_on_a_constant_becomes_its_branch() {
        let mut g = if_graph(Vec::new(), vec![bool_tensor("c", false)]);
        assert_eq!(inline_constant_ifs(&mut g).expect("inline"), 1);
        let ops: Vec<&str> = g.node.iter().map(|n| n.op_type.as_str()).collect();
        assert_eq!(ops, ["Sigmoid", "Identity"]);
        assert_eq!(g.node[1].input, ["e"]);
        assert_eq!(g.node[1].output, ["y"]);
    }

    #[test]
    fn an_if_on_a_condition_computed_from_constants_is_evaluated() {
        // c = Not(Equal(a, b)) with a = 2, b = 3: true.
        let a = crate::model::graph::int64_tensor("a", &[2]);
        let b = crate::model::graph::int64_tensor("b", &[3]);
        let eq = node("Equal", "eq".into(), &["a", "b"], "e0".into());
        let not = node("Not", "not".into(), &["e0"], "c1".into());
        let squeeze = node("Squeeze", "sq".into(), &["c1"], "c".into());
        let mut g = if_graph(vec![eq, not, squeeze], vec![a, b]);
        assert_eq!(inline_constant_ifs(&mut g).expect("inline"), 1);
        assert!(g.node.iter().any(|n| n.op_type == "Relu"), "{:?}", g.node);
        assert!(!g.node.iter().any(|n| n.op_type == "If"));
    }

    #[test]
    fn an_if_on_data_is_left_alone() {
        let gt = node("Greater", "gt".into(), &["x", "zero"], "c".into());
        let mut g = if_graph(vec![gt], vec![crate::model::graph::float_tensor("zero", &[], &[0.0])]);
        assert_eq!(inline_constant_ifs(&mut g).expect("inline"), 0);
        assert!(g.node.iter().any(|n| n.op_type == "If"));
    }
}
