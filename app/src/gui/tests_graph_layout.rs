//! Unit tests of the graph view's layout (`graph_layout.rs`, `graph_order.rs`): graph building,
//! chain collapse, layering, ordering, placement, on hand-made graphs, a generated 1000-node one
//! and the bundled samples.

use std::collections::BTreeMap;

use quantbench_core::model::{ModelSummary, NodeInfo, QuantizableLayer, TensorInfo};

use super::graph_layout::{GraphLayout, NodeKind};

fn tensor(name: &str) -> TensorInfo {
    TensorInfo { name: name.into(), elem_type: "float32".into(), shape: Vec::new() }
}

/// A summary from `(name, op, inputs, outputs)` nodes; nodes named in `layers` are quantizable
/// layers (their second input is the weight).
pub(super) fn summary(
    inputs: &[&str],
    outputs: &[&str],
    nodes: &[(&str, &str, &[&str], &[&str])],
    layers: &[&str],
) -> ModelSummary {
    let nodes: Vec<NodeInfo> = nodes
        .iter()
        .map(|(name, op, ins, outs)| NodeInfo {
            name: (*name).into(),
            op_type: (*op).into(),
            domain: String::new(),
            inputs: ins.iter().map(|s| (*s).into()).collect(),
            outputs: outs.iter().map(|s| (*s).into()).collect(),
        })
        .collect();
    let layers = nodes
        .iter()
        .filter(|n| layers.contains(&n.name.as_str()))
        .map(|n| QuantizableLayer {
            name: n.name.clone(),
            op_type: n.op_type.clone(),
            input: n.inputs[0].clone(),
            weight: n.inputs.get(1).cloned().unwrap_or_default(),
            weight_shape: vec![4, 4],
            out_channel_axis: 0,
            bias: None,
            output: n.outputs[0].clone(),
            group: 1,
        })
        .collect();
    ModelSummary {
        name: "test".into(),
        opset: 13,
        producer: String::new(),
        inputs: inputs.iter().map(|t| tensor(t)).collect(),
        outputs: outputs.iter().map(|t| tensor(t)).collect(),
        nodes,
        layers,
        op_counts: BTreeMap::new(),
        param_count: 0,
        float_size_bytes: 0,
        renamed: BTreeMap::new(),
    }
}

/// conv1 → BN → Relu → conv2 → Add(conv2, Relu) → Relu → out, with a Constant node feeding the Add
/// nothing (its output unused by edges) and initializers as weights.
fn residual() -> ModelSummary {
    summary(
        &["x"],
        &["y"],
        &[
            ("k", "Constant", &[], &["k_out"]),
            ("conv1", "Conv", &["x", "w1"], &["c1"]),
            ("bn", "BatchNormalization", &["c1", "s", "b", "m", "v"], &["b1"]),
            ("relu1", "Relu", &["b1"], &["r1"]),
            ("conv2", "Conv", &["r1", "w2"], &["c2"]),
            ("add", "Add", &["c2", "r1"], &["a"]),
            ("relu2", "Relu", &["a"], &["r2"]),
            ("mul", "Mul", &["r2", "k_out"], &["y"]),
        ],
        &["conv1", "conv2"],
    )
}

fn titles(layout: &GraphLayout) -> Vec<&str> {
    layout.nodes.iter().map(|n| n.title.as_str()).collect()
}

#[test]
fn chains_of_non_layer_nodes_collapse_and_layers_stay_alone() {
    let s = residual();
    let layout = GraphLayout::build(&s, true);
    // x, conv1, BN → Relu, conv2, Add → Relu → Mul, y; the Constant is left out.
    assert_eq!(layout.nodes.len(), 6, "{:?}", titles(&layout));
    let t = titles(&layout);
    assert!(t.contains(&"BatchNormalization › Relu"), "{t:?}");
    assert!(t.contains(&"Add › Relu › Mul"), "{t:?}");
    assert!(!t.iter().any(|t| t.contains("Constant")), "{t:?}");
    let bn = layout.nodes.iter().find(|n| n.title == "BatchNormalization › Relu").expect("chain box");
    assert_eq!(bn.members, vec![2, 3], "members in chain order (summary node indices)");
    assert_eq!(bn.subtitle, "2 nodes");
    // r1 leaves the chain twice (conv2, add): two edges; b1 and a, r2 run inside boxes.
    assert_eq!(layout.tensor_edges["r1"].len(), 2);
    assert!(layout.internal.contains_key("b1") && layout.internal.contains_key("a"));
    assert!(!layout.tensor_edges.contains_key("w1") && !layout.tensor_edges.contains_key("k_out"));
    for (l, name) in [(0, "conv1"), (1, "conv2")] {
        let node = &layout.nodes[layout.layer_nodes[l].expect("layer box")];
        assert_eq!((node.title.as_str(), node.members.len(), node.layer), (name, 1, Some(l)));
    }
    // Expanded: every non-Constant node is its own box, plus the two terminals.
    let expanded = GraphLayout::build(&s, false);
    assert_eq!(expanded.nodes.len(), 7 + 2);
    assert!(expanded.internal.is_empty());
}

#[test]
fn two_layers_in_a_row_and_a_branching_node_are_not_merged() {
    let s = summary(
        &["x"],
        &["y", "z"],
        &[
            ("fc1", "Gemm", &["x", "w1"], &["h1"]),
            ("fc2", "Gemm", &["h1", "w2"], &["h2"]),
            ("relu", "Relu", &["h2"], &["r"]),
            ("sig", "Sigmoid", &["r"], &["y"]),
            ("tanh", "Tanh", &["r"], &["z"]),
        ],
        &["fc1", "fc2"],
    );
    let layout = GraphLayout::build(&s, true);
    // Relu has two readers: it stays alone, as do its readers (each with its own output).
    let ops: Vec<&str> = layout.nodes.iter().filter(|n| n.kind == NodeKind::Op).map(|n| n.title.as_str()).collect();
    assert_eq!(ops.len(), 5, "{ops:?}");
    assert_eq!(layout.nodes.iter().filter(|n| n.kind == NodeKind::Output).count(), 2);
}

#[test]
fn layers_follow_the_longest_path_and_what_the_inputs_do_not_feed_sits_above_its_reader() {
    let s = summary(
        &["x", "late"],
        &["y"],
        &[
            ("a", "Relu", &["x"], &["a"]),
            ("b", "Sigmoid", &["a"], &["b"]),
            ("c", "Tanh", &["b"], &["c"]),
            ("d", "Add", &["a", "c"], &["d"]),
            ("range", "Range", &["start", "limit", "delta"], &["r"]),
            ("cast", "Cast", &["r"], &["rc"]),
            ("e", "Mul", &["d", "late", "rc"], &["y"]),
        ],
        &[],
    );
    let layout = GraphLayout::build(&s, false);
    let rank = |title: &str| layout.nodes.iter().find(|n| n.title == title).expect(title).rank;
    assert_eq!((rank("x"), rank("Relu"), rank("Tanh"), rank("Add"), rank("Mul")), (0, 1, 3, 4, 5));
    assert_eq!(rank("late"), 4, "an input read late sits right above its reader");
    // Nodes the inputs do not feed (computed from initializers) sit right above their reader too.
    assert_eq!((rank("Range"), rank("Cast")), (3, 4));
    assert_eq!(layout.ranks, 7);
    for e in &layout.edges {
        let (a, b) = (&layout.nodes[e.from], &layout.nodes[e.to]);
        assert!(b.rank > a.rank && b.center[1] > a.center[1], "edge {} → {} goes down", a.title, b.title);
        // The path runs from the producer's bottom to the reader's top.
        assert_eq!(e.points.first().copied(), Some([a.center[0], a.rect()[3]]));
        assert_eq!(e.points.last().copied(), Some([b.center[0], b.rect()[1]]));
    }
    // Add's edge from Relu spans three layers: it passes two dummies (two points each) at least.
    let long = layout.edges.iter().find(|e| layout.nodes[e.to].title == "Add" && e.tensors == ["a"]).expect("edge");
    assert!(long.points.len() >= 6, "{:?}", long.points);
}

#[test]
fn the_sweeps_remove_a_crossing_of_the_initial_order() {
    // In file order the readers come as C (of b) then D (of a): the first ordering crosses.
    let s = summary(&["a", "b"], &["c", "d"], &[("C", "Relu", &["b"], &["c"]), ("D", "Tanh", &["a"], &["d"])], &[]);
    let layout = GraphLayout::build(&s, false);
    assert_eq!((layout.initial_crossings, layout.crossings), (1, 0));
}

/// A generated network of `blocks` residual blocks: conv → BN → Relu → conv → Add(skip) → Relu,
/// every fourth block with a side branch (Sigmoid gate multiplied in) and a second output.
fn generated(blocks: usize) -> ModelSummary {
    let mut nodes: Vec<(String, String, Vec<String>, Vec<String>)> = Vec::new();
    let mut layers = Vec::new();
    let mut x = "x".to_string();
    let mut node = |name: String, op: &str, ins: Vec<String>| {
        nodes.push((name.clone(), op.to_string(), ins, vec![name.clone()]));
        name
    };
    for b in 0..blocks {
        let c1 = node(format!("b{b}_conv1"), "Conv", vec![x.clone(), format!("w{b}a")]);
        let bn = node(format!("b{b}_bn"), "BatchNormalization", vec![c1.clone()]);
        let r = node(format!("b{b}_relu"), "Relu", vec![bn]);
        let c2 = node(format!("b{b}_conv2"), "Conv", vec![r, format!("w{b}b")]);
        let mut main = c2.clone();
        if b % 4 == 3 {
            let g = node(format!("b{b}_gate"), "Sigmoid", vec![c1.clone()]);
            main = node(format!("b{b}_mul"), "Mul", vec![c2, g]);
        }
        let add = node(format!("b{b}_add"), "Add", vec![main, x.clone()]);
        x = node(format!("b{b}_out"), "Relu", vec![add]);
        layers.extend([c1, format!("b{b}_conv2")]);
    }
    let refs: Vec<(&str, &str, Vec<&str>, Vec<&str>)> = nodes
        .iter()
        .map(|(n, o, i, out)| {
            (n.as_str(), o.as_str(), i.iter().map(String::as_str).collect(), out.iter().map(String::as_str).collect())
        })
        .collect();
    let refs: Vec<(&str, &str, &[&str], &[&str])> =
        refs.iter().map(|(n, o, i, out)| (*n, *o, i.as_slice(), out.as_slice())).collect();
    let layer_refs: Vec<&str> = layers.iter().map(String::as_str).collect();
    summary(&["x"], &[x.as_str(), "b3_gate"], &refs, &layer_refs)
}

/// Every box placed, edges going down, no two boxes of a layer overlapping, every ONNX node
/// (but Constants) in exactly one box.
fn assert_well_formed(s: &ModelSummary, layout: &GraphLayout) {
    let mut seen = vec![0usize; s.nodes.len()];
    for n in &layout.nodes {
        assert!(n.center.iter().chain(&n.size).all(|v| v.is_finite()), "{} not placed", n.title);
        for &m in &n.members {
            seen[m] += 1;
        }
    }
    for (i, n) in s.nodes.iter().enumerate() {
        assert_eq!(seen[i], usize::from(n.op_type != "Constant"), "node {} in {} boxes", n.name, seen[i]);
    }
    for e in &layout.edges {
        assert!(layout.nodes[e.to].rank > layout.nodes[e.from].rank, "an edge goes up");
    }
    let mut by_rank: BTreeMap<usize, Vec<[f32; 4]>> = BTreeMap::new();
    for n in &layout.nodes {
        by_rank.entry(n.rank).or_default().push(n.rect());
    }
    for (rank, mut rects) in by_rank {
        rects.sort_by(|a, b| a[0].total_cmp(&b[0]));
        for w in rects.windows(2) {
            assert!(w[0][2] + 1.0 <= w[1][0], "boxes overlap in layer {rank}: {:?} {:?}", w[0], w[1]);
        }
    }
    assert!(layout.layer_nodes.iter().all(Option::is_some), "a layer without a box");
}

#[test]
fn a_generated_1000_node_graph_is_laid_out_whole() {
    let s = generated(160);
    assert!(s.nodes.len() >= 1000, "{} nodes", s.nodes.len());
    let layout = GraphLayout::build(&s, true);
    assert_well_formed(&s, &layout);
    // Per block: conv1, BN → Relu, conv2, Add → Relu (+ Sigmoid, Mul every fourth), terminals.
    let gates = 160 / 4;
    assert_eq!(layout.nodes.len(), 160 * 4 + 2 * gates + 3);
    assert!(layout.crossings <= layout.initial_crossings);
    let expanded = GraphLayout::build(&s, false);
    assert_well_formed(&s, &expanded);
    assert_eq!(expanded.nodes.len(), s.nodes.len() + 3);
}

#[test]
fn the_bundled_samples_are_laid_out_whole() {
    for (name, path) in crate::samples::models() {
        let model = quantbench_core::model::OnnxModel::load(&path).expect("sample loads");
        let layout = GraphLayout::build(&model.summary, true);
        assert_well_formed(&model.summary, &layout);
        assert!(layout.nodes.len() > 3, "{name}: {} boxes", layout.nodes.len());
    }
}

#[test]
fn a_residual_stream_stays_in_one_column() {
    // Boxes line up with boxes and the skip edges bend around them: 160 blocks do not drift
    // sideways (averaging boxes and skip edges' dummies drifted some 1400 units, 9 box widths).
    let s = generated(160);
    let layout = GraphLayout::build(&s, true);
    let x = |name: &str| {
        let layer = s.layers.iter().position(|l| l.name == name).expect(name);
        layout.nodes[layout.layer_nodes[layer].expect("box")].center[0]
    };
    let drift = (x("b159_conv1") - x("b0_conv1")).abs();
    let width = layout.bounds[2] - layout.bounds[0];
    assert!(drift < 150.0 && width < 500.0, "drift {drift}, width {width}");
}
