//! Names people recognise. Exporters often leave nodes unnamed or name them only by op type and
//! index (`Conv@0` from Paddle, `Conv_41` from old PyTorch, `p2o.Conv.0` from paddle2onnx,
//! `Relu__38` from tf2onnx), which cannot be mapped back to the network. Such nodes get a stable
//! name derived from their weight tensor (`conv1_weights` → `conv1`) or, failing that, from their
//! output tensor — at load time, in the protobuf itself, so the GUI, CLI output, reports, recipes
//! and exports all use the same name. The previous names are kept as aliases so that recipes
//! written before still load ([`crate::quant::recipe::Recipe::adopt_names`]).

use std::collections::{BTreeMap, BTreeSet};

use tract_onnx::pb;

use super::graph::{constants, node_name};

/// Ops whose second input is the weight a layer's name is derived from.
const WEIGHTED_OPS: [&str; 4] = ["Conv", "ConvTranspose", "Gemm", "MatMul"];

/// Suffixes exporters append to weight names, stripped (repeatedly) to get the layer's name.
const WEIGHT_SUFFIXES: [&str; 10] =
    [":0", "_weights", "_weight", ".weight", "/weights", "/kernel", ".kernel", "_fused_bn", ".w", "_w"];

/// Prefixes exporters put before generic names (`p2o.Conv.0`, `onnx::Gemm_7`).
const GENERIC_PREFIXES: [&str; 2] = ["p2o.", "onnx::"];

/// Words that name no particular tensor (`input.3`, `node_12`, `output_0`).
const GENERIC_WORDS: [&str; 4] = ["node", "input", "output", "constfoldopt"];

/// Renames the nodes of `graph` whose names are empty or generic, and returns the previous
/// names (the node's own, and for an unnamed node the first output's, which named it before)
/// mapped to the new ones. Names stay unique: a derived name already taken gets `_2`, `_3`, ….
pub(crate) fn derive_node_names(graph: &mut pb::GraphProto) -> BTreeMap<String, String> {
    let ops: BTreeSet<String> = graph.node.iter().map(|n| n.op_type.clone()).collect();
    let generic = |name: &str| is_generic(name, &ops);
    let constant_names: BTreeSet<String> = constants(graph).keys().map(|k| (*k).to_string()).collect();
    let renamed: Vec<bool> = graph.node.iter().map(|n| n.name.is_empty() || generic(&n.name)).collect();
    // Runtimes name a node after each initializer and graph input too (tract does): a node may
    // not take one of those names. (A `Constant` node may take its own output's.)
    let mut used: BTreeSet<String> = graph
        .node
        .iter()
        .zip(&renamed)
        .filter(|(_, r)| !**r)
        .map(|(n, _)| n.name.clone())
        .chain(graph.initializer.iter().map(|t| t.name.clone()))
        .chain(graph.input.iter().map(|i| i.name.clone()))
        .collect();
    let mut aliases = BTreeMap::new();
    for (node, _) in graph.node.iter_mut().zip(&renamed).filter(|(_, r)| **r) {
        let weight = WEIGHTED_OPS
            .contains(&node.op_type.as_str())
            .then(|| node.input.get(1))
            .flatten()
            .filter(|w| constant_names.contains(*w))
            .and_then(|w| weight_stem(w, &generic))
            // A stem that is the weight's own name would name the node after a tensor.
            .map(|stem| if constant_names.contains(&stem) { format!("{}_{stem}", node.op_type) } else { stem });
        let output = node.output.first().filter(|o| !o.is_empty() && !generic(o)).cloned();
        let previous = node_name(node);
        let base = weight.or(output).unwrap_or_else(|| previous.clone());
        let mut name = base.clone();
        let mut k = 2;
        while used.contains(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        used.insert(name.clone());
        if name != previous {
            aliases.insert(previous, name.clone());
        }
        if !node.name.is_empty() && node.name != name {
            aliases.insert(node.name.clone(), name.clone());
        }
        node.name = name;
    }
    aliases
}

/// Whether `name` says nothing beyond an op type, an index or a generic word: no letters at all
/// (`877`), or, prefixes aside, only the letters of one of the graph's op types as the exporter
/// spells it (`Conv_41`, `Relu__38`, `onnx::Gemm_7`, but not `conv1`) or of a generic word
/// (`input.3`).
fn is_generic(name: &str, ops: &BTreeSet<String>) -> bool {
    let mut rest = name;
    for p in GENERIC_PREFIXES {
        rest = rest.strip_prefix(p).unwrap_or(rest);
    }
    let word: String = rest.chars().filter(char::is_ascii_alphabetic).collect();
    word.is_empty() || ops.contains(&word) || GENERIC_WORDS.contains(&word.to_ascii_lowercase().as_str())
}

/// A layer's name from its weight's: export suffixes stripped (`conv1_weights` → `conv1`,
/// `model.1.weight` → `model.1`, `conv2d_0.w_0_deepcopy_0` → `conv2d_0`); the whole weight name
/// when the stem says nothing; `None` when neither does.
fn weight_stem(weight: &str, generic: &impl Fn(&str) -> bool) -> Option<String> {
    let mut stem = weight;
    loop {
        let before = stem;
        stem = strip_indexed(stem, "_deepcopy_");
        stem = strip_indexed(stem, ".w_");
        for s in WEIGHT_SUFFIXES {
            stem = stem.strip_suffix(s).unwrap_or(stem);
        }
        if stem == before {
            break;
        }
    }
    [stem, weight].into_iter().find(|s| !s.is_empty() && !generic(s)).map(str::to_string)
}

/// `s` without a trailing `marker` followed by digits (`x_deepcopy_3` → `x`).
fn strip_indexed<'a>(s: &'a str, marker: &str) -> &'a str {
    match s.rfind(marker) {
        Some(i) if s[i + marker.len()..].chars().all(|c| c.is_ascii_digit()) && i + marker.len() < s.len() => &s[..i],
        _ => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, op: &str, inputs: &[&str], output: &str) -> pb::NodeProto {
        pb::NodeProto {
            name: name.into(),
            op_type: op.into(),
            input: inputs.iter().map(|s| (*s).to_string()).collect(),
            output: vec![output.into()],
            ..Default::default()
        }
    }

    fn graph(nodes: Vec<pb::NodeProto>, weights: &[&str]) -> pb::GraphProto {
        let initializer = weights.iter().map(|w| pb::TensorProto { name: (*w).into(), ..Default::default() }).collect();
        pb::GraphProto { node: nodes, initializer, ..Default::default() }
    }

    #[test]
    fn generic_names_take_their_weight_or_output_name_and_old_names_alias_the_new() {
        let mut g = graph(
            vec![
                node("Conv@0", "Conv", &["x", "conv1_weights"], "conv2d_53.tmp_0"),
                node("p2o.Conv.1", "Conv", &["conv2d_53.tmp_0", "conv2d_0.w_0_deepcopy_5"], "y1"),
                node("Relu_2", "Relu", &["y1"], "relu_0.tmp_0"),
                node("", "Gemm", &["relu_0.tmp_0", "1.weight"], "input.3"),
                node("Conv_41", "Conv", &["input.3", "878"], "877"),
                node("features.0", "Conv", &["877", "conv1_weights"], "z"),
                node("MatMul_7", "MatMul", &["z", "conv1_weights"], "out"),
            ],
            &["conv1_weights", "conv2d_0.w_0_deepcopy_5", "1.weight", "878"],
        );
        let aliases = derive_node_names(&mut g);
        let names: Vec<&str> = g.node.iter().map(|n| n.name.as_str()).collect();
        // Weight stems; the output name for a node without a weight; the op and the whole
        // weight name when its stem is only digits (the weight's name alone is the tensor's);
        // the old name when nothing says more; informative names kept; a tied weight's second
        // user made unique.
        assert_eq!(names, ["conv1", "conv2d_0", "relu_0.tmp_0", "Gemm_1.weight", "Conv_41", "features.0", "conv1_2"]);
        // No node takes the name of a constant or graph input (runtimes name nodes after them).
        assert!(g.node.iter().all(|n| !g.initializer.iter().any(|t| t.name == n.name)));
        assert_eq!(aliases.get("Conv@0").map(String::as_str), Some("conv1"));
        assert_eq!(aliases.get("Relu_2").map(String::as_str), Some("relu_0.tmp_0"));
        // The unnamed Gemm was keyed by its output before.
        assert_eq!(aliases.get("input.3").map(String::as_str), Some("Gemm_1.weight"));
        assert!(!aliases.contains_key("Conv_41") && !aliases.contains_key("features.0"));
        // Stable: deriving again changes nothing.
        assert!(derive_node_names(&mut g).is_empty());
    }

    #[test]
    fn generic_names_are_op_types_indices_and_generic_words() {
        let ops: BTreeSet<String> = ["Conv", "Relu", "Gemm"].iter().map(|s| (*s).to_string()).collect();
        for name in ["", "877", "Conv@0", "Conv_41", "p2o.Conv.0", "Relu__38", "onnx::Gemm_7", "input.3", "node_5"] {
            assert!(is_generic(name, &ops), "{name}");
        }
        for name in ["conv1", "conv1_2", "conv2d_53.tmp_0", "/features/features.0/Conv", "model.1", "Softmax_3"] {
            assert!(!is_generic(name, &ops), "{name}");
        }
    }
}
