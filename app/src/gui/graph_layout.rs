//! The graph view's layout, computed once per model: the ONNX nodes as a directed graph (edges
//! through tensor names; graph inputs and outputs as terminal nodes; `Constant` nodes and
//! initializers left out), linear chains of non-layer nodes collapsed into one box, boxes put in
//! layers by their longest path from the inputs (a Sugiyama-style layout, long edges routed
//! through dummy points), ordered within a layer by barycentre sweeps (the ordering with the
//! fewest crossings kept), then given positions. Plain data, no egui: graph coordinates, y down.

use std::collections::BTreeMap;

use quantbench_core::model::ModelSummary;

use super::graph_order::{self, ROW_HEIGHT};

/// Height of an operator box.
pub const NODE_HEIGHT: f32 = ROW_HEIGHT;
/// Height of a graph input or output box.
pub const TERMINAL_HEIGHT: f32 = 22.0;
/// Estimated width of one character of a box's text.
const CHAR_WIDTH: f32 = 6.6;
/// Titles longer than this are cut (the hover shows them whole).
const MAX_TITLE_CHARS: usize = 30;
/// Points per curved edge segment.
const CURVE_STEPS: usize = 8;

/// What a box stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// A graph input.
    Input,
    /// A graph output.
    Output,
    /// One ONNX node, or a collapsed chain of them.
    Op,
}

/// A box of the drawn graph.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphNode {
    /// What it stands for.
    pub kind: NodeKind,
    /// The ONNX nodes it holds (indices into `ModelSummary::nodes`, in chain order; empty for
    /// terminals).
    pub members: Vec<usize>,
    /// The quantizable layer it is (index into `ModelSummary::layers`).
    pub layer: Option<usize>,
    /// The graph input's or output's tensor, for terminals.
    pub tensor: Option<String>,
    /// First line: the layer's name, the op type(s), or the tensor of a terminal.
    pub title: String,
    /// Second line: the layer's op type, the node's name, or the chain's node count.
    pub subtitle: String,
    /// The layer of boxes it is in (0 at the top).
    pub rank: usize,
    /// Centre, in graph coordinates.
    pub center: [f32; 2],
    /// Width and height.
    pub size: [f32; 2],
}

impl GraphNode {
    /// The box's rectangle: min x, min y, max x, max y.
    pub fn rect(&self) -> [f32; 4] {
        let [cx, cy] = self.center;
        let [w, h] = self.size;
        [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0]
    }
}

/// An edge between two boxes, with the tensors it carries.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphEdge {
    /// The producing box.
    pub from: usize,
    /// The consuming box.
    pub to: usize,
    /// The tensors (usually one).
    pub tensors: Vec<String>,
    /// The drawn path, from the producer's bottom to the consumer's top (graph coordinates).
    pub points: Vec<[f32; 2]>,
    /// Bounding box of the path: min x, min y, max x, max y.
    pub bounds: [f32; 4],
}

/// The laid-out graph of a model.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphLayout {
    /// The boxes.
    pub nodes: Vec<GraphNode>,
    /// The edges.
    pub edges: Vec<GraphEdge>,
    /// The box of each quantizable layer (by index into `ModelSummary::layers`).
    pub layer_nodes: Vec<Option<usize>>,
    /// Edges carrying each tensor.
    pub tensor_edges: BTreeMap<String, Vec<usize>>,
    /// Tensors that run inside a collapsed box, and the box.
    pub internal: BTreeMap<String, usize>,
    /// Number of layers of boxes.
    pub ranks: usize,
    /// Bounding box of everything: min x, min y, max x, max y.
    pub bounds: [f32; 4],
    /// Edge crossings between adjacent layers of the chosen ordering.
    pub crossings: usize,
    /// Edge crossings of the ordering before the sweeps.
    pub initial_crossings: usize,
}

/// A topological order of `n` vertices (Kahn's, lowest index first); vertices on a cycle (not in
/// valid ONNX) come last in index order.
fn topo_order(n: usize, succ: &[Vec<usize>]) -> Vec<usize> {
    let mut indegree = vec![0usize; n];
    for s in succ.iter().flatten() {
        indegree[*s] += 1;
    }
    let mut ready: std::collections::BTreeSet<usize> = (0..n).filter(|&v| indegree[v] == 0).collect();
    let mut order = Vec::with_capacity(n);
    let mut placed = vec![false; n];
    while let Some(v) = ready.pop_first() {
        order.push(v);
        placed[v] = true;
        for &s in &succ[v] {
            indegree[s] -= 1;
            if indegree[s] == 0 {
                ready.insert(s);
            }
        }
    }
    order.extend((0..n).filter(|&v| !placed[v]));
    order
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max { s.to_string() } else { format!("{}…", s.chars().take(max - 1).collect::<String>()) }
}

/// The vertices before collapsing: terminals and ONNX nodes, with deduplicated edges.
struct Raw {
    /// Per vertex: `(kind, summary node index or input/output index)`.
    vertices: Vec<(NodeKind, usize)>,
    /// `(from, to) → tensors`.
    edges: BTreeMap<(usize, usize), Vec<String>>,
    succ: Vec<Vec<usize>>,
    pred: Vec<Vec<usize>>,
}

fn raw_graph(summary: &ModelSummary) -> Raw {
    let mut vertices: Vec<(NodeKind, usize)> = (0..summary.inputs.len()).map(|i| (NodeKind::Input, i)).collect();
    let mut producer: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, t) in summary.inputs.iter().enumerate() {
        producer.insert(&t.name, i);
    }
    for (i, n) in summary.nodes.iter().enumerate() {
        if n.op_type == "Constant" {
            continue;
        }
        let v = vertices.len();
        vertices.push((NodeKind::Op, i));
        for out in n.outputs.iter().filter(|o| !o.is_empty()) {
            producer.insert(out, v);
        }
    }
    let mut edges: BTreeMap<(usize, usize), Vec<String>> = BTreeMap::new();
    let mut add = |from: usize, to: usize, tensor: &str| {
        let tensors = edges.entry((from, to)).or_default();
        if !tensors.iter().any(|t| t == tensor) {
            tensors.push(tensor.to_string());
        }
    };
    for (v, &vertex) in vertices.iter().enumerate() {
        let (NodeKind::Op, i) = vertex else { continue };
        for input in &summary.nodes[i].inputs {
            if let Some(&p) = producer.get(input.as_str()) {
                add(p, v, input);
            }
        }
    }
    for (i, t) in summary.outputs.iter().enumerate() {
        let v = vertices.len();
        vertices.push((NodeKind::Output, i));
        if let Some(&p) = producer.get(t.name.as_str()) {
            add(p, v, &t.name);
        }
    }
    let mut succ = vec![Vec::new(); vertices.len()];
    let mut pred = vec![Vec::new(); vertices.len()];
    for &(a, b) in edges.keys() {
        if a != b {
            succ[a].push(b);
            pred[b].push(a);
        }
    }
    Raw { vertices, edges, succ, pred }
}

/// The box title and subtitle of a group of ONNX nodes.
fn op_labels(summary: &ModelSummary, members: &[usize], layer: Option<usize>) -> (String, String) {
    if let Some(l) = layer {
        let layer = &summary.layers[l];
        return (truncate(&layer.name, MAX_TITLE_CHARS), layer.op_type.clone());
    }
    let ops: Vec<&str> = members.iter().map(|&m| summary.nodes[m].op_type.as_str()).collect();
    match ops.as_slice() {
        [op] => (truncate(op, MAX_TITLE_CHARS), truncate(&summary.nodes[members[0]].name, MAX_TITLE_CHARS)),
        [first, .., last] if ops.len() > 3 => (format!("{} ops: {first} › … › {last}", ops.len()), String::new()),
        _ => (truncate(&ops.join(" › "), MAX_TITLE_CHARS + 16), format!("{} nodes", ops.len())),
    }
}

fn box_size(kind: NodeKind, title: &str, subtitle: &str) -> [f32; 2] {
    let chars = title.chars().count().max(subtitle.chars().count()) as f32;
    let height = if kind == NodeKind::Op { NODE_HEIGHT } else { TERMINAL_HEIGHT };
    [(chars * CHAR_WIDTH + 16.0).clamp(48.0, 320.0), height]
}

/// Groups of raw vertices, one per box: a chainable vertex (an operator that is not a layer)
/// whose only predecessor is chainable and has it as its only successor joins the predecessor's
/// group (in topological order, so a chain's members come in order). Returns each vertex's group
/// and the groups.
fn chains(raw: &Raw, layer_of: &[Option<usize>], collapse: bool) -> (Vec<usize>, Vec<Vec<usize>>) {
    let chainable = |v: usize| raw.vertices[v].0 == NodeKind::Op && layer_of[v].is_none();
    let mut group = vec![usize::MAX; raw.vertices.len()];
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for v in topo_order(raw.vertices.len(), &raw.succ) {
        let join = match raw.pred[v].as_slice() {
            [u] if collapse && chainable(v) && chainable(*u) && raw.succ[*u].len() == 1 => Some(group[*u]),
            _ => None,
        };
        if let Some(g) = join.filter(|&g| g != usize::MAX) {
            group[v] = g;
            groups[g].push(v);
        } else {
            group[v] = groups.len();
            groups.push(vec![v]);
        }
    }
    (group, groups)
}

/// The box of a group of raw vertices (not yet placed).
fn group_node(summary: &ModelSummary, raw: &Raw, members: &[usize], layer: Option<usize>) -> GraphNode {
    let (kind, i) = raw.vertices[members[0]];
    let (tensor, title, subtitle) = match kind {
        NodeKind::Input => {
            let t = &summary.inputs[i].name;
            (Some(t.clone()), truncate(t, MAX_TITLE_CHARS), "input".to_string())
        }
        NodeKind::Output => {
            let t = &summary.outputs[i].name;
            (Some(t.clone()), truncate(t, MAX_TITLE_CHARS), "output".to_string())
        }
        NodeKind::Op => {
            let ms: Vec<usize> = members.iter().map(|&m| raw.vertices[m].1).collect();
            let (t, s) = op_labels(summary, &ms, layer);
            (None, t, s)
        }
    };
    let members = if kind == NodeKind::Op { members.iter().map(|&m| raw.vertices[m].1).collect() } else { Vec::new() };
    let size = box_size(kind, &title, &subtitle);
    GraphNode { kind, members, layer, tensor, title, subtitle, rank: 0, center: [0.0, 0.0], size }
}

impl GraphLayout {
    /// Lays out `summary`'s graph; `collapse` merges linear chains of non-layer nodes.
    pub fn build(summary: &ModelSummary, collapse: bool) -> Self {
        let raw = raw_graph(summary);
        let layer_index: BTreeMap<&str, usize> =
            summary.layers.iter().enumerate().map(|(i, l)| (l.name.as_str(), i)).collect();
        let layer_of: Vec<Option<usize>> = raw
            .vertices
            .iter()
            .map(|&(kind, i)| match kind {
                NodeKind::Op => layer_index.get(summary.nodes[i].name.as_str()).copied(),
                _ => None,
            })
            .collect();
        let (group, groups) = chains(&raw, &layer_of, collapse);
        let mut nodes: Vec<GraphNode> =
            groups.iter().map(|members| group_node(summary, &raw, members, layer_of[members[0]])).collect();
        // Edges between groups (merged), and the tensors that stay inside one.
        let mut merged: BTreeMap<(usize, usize), Vec<String>> = BTreeMap::new();
        let mut internal = BTreeMap::new();
        for (&(a, b), tensors) in &raw.edges {
            let (ga, gb) = (group[a], group[b]);
            if ga == gb {
                for t in tensors {
                    internal.insert(t.clone(), ga);
                }
            } else {
                let slot = merged.entry((ga, gb)).or_default();
                for t in tensors {
                    if !slot.contains(t) {
                        slot.push(t.clone());
                    }
                }
            }
        }
        let n = nodes.len();
        let mut succ = vec![Vec::new(); n];
        let mut pred = vec![Vec::new(); n];
        for &(a, b) in merged.keys() {
            succ[a].push(b);
            pred[b].push(a);
        }
        let order = topo_order(n, &succ);
        assign_ranks(&mut nodes, &order, &succ, &pred);
        let mut layer_nodes = vec![None; summary.layers.len()];
        for (i, node) in nodes.iter().enumerate() {
            if let Some(l) = node.layer {
                layer_nodes[l] = Some(i);
            }
        }
        let edge_list: Vec<(usize, usize, Vec<String>)> = merged.into_iter().map(|((a, b), t)| (a, b, t)).collect();
        let ends: Vec<(usize, usize)> = edge_list.iter().map(|(a, b, _)| (*a, *b)).collect();
        let ranks: Vec<usize> = nodes.iter().map(|n| n.rank).collect();
        let widths: Vec<f32> = nodes.iter().map(|n| n.size[0]).collect();
        let placed = graph_order::place(&ranks, &widths, &order, &ends);
        for (node, c) in nodes.iter_mut().zip(&placed.centers) {
            node.center = *c;
        }
        let mut edges = Vec::with_capacity(edge_list.len());
        let mut tensor_edges: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for ((from, to, tensors), dummies) in edge_list.into_iter().zip(placed.dummy_points) {
            let start = [nodes[from].center[0], nodes[from].rect()[3]];
            let end = [nodes[to].center[0], nodes[to].rect()[1]];
            let mut corners = vec![start];
            corners.extend(dummies);
            corners.push(end);
            let points = smooth(&corners);
            let bounds = bounds_of(points.iter().copied());
            for t in &tensors {
                tensor_edges.entry(t.clone()).or_default().push(edges.len());
            }
            edges.push(GraphEdge { from, to, tensors, points, bounds });
        }
        let corners = nodes.iter().flat_map(|n| {
            let [a, b, c, d] = n.rect();
            [[a, b], [c, d]]
        });
        let bounds = bounds_of(corners);
        let ranks = nodes.iter().map(|n| n.rank + 1).max().unwrap_or(0);
        let (crossings, initial_crossings) = (placed.crossings, placed.initial_crossings);
        Self { nodes, edges, layer_nodes, tensor_edges, internal, ranks, bounds, crossings, initial_crossings }
    }

    /// The box at point `p` (graph coordinates), if any.
    pub fn node_at(&self, p: [f32; 2]) -> Option<usize> {
        self.nodes.iter().position(|n| {
            let [a, b, c, d] = n.rect();
            p[0] >= a && p[0] <= c && p[1] >= b && p[1] <= d
        })
    }
}

/// Longest path from the sources; then, bottom up, what the graph inputs do not feed (the
/// graph inputs themselves, and nodes computing from constants only, e.g. a shape) sits right
/// above its first reader rather than at the top with a long edge down.
fn assign_ranks(nodes: &mut [GraphNode], order: &[usize], succ: &[Vec<usize>], pred: &[Vec<usize>]) {
    let mut rank = vec![0usize; nodes.len()];
    let mut fed = vec![false; nodes.len()];
    for &v in order {
        rank[v] = pred[v].iter().map(|&p| rank[p] + 1).max().unwrap_or(0);
        fed[v] = pred[v].iter().any(|&p| fed[p] || nodes[p].kind == NodeKind::Input);
    }
    for &v in order.iter().rev() {
        if !fed[v]
            && let Some(first) = succ[v].iter().map(|&s| rank[s]).min()
        {
            rank[v] = first.saturating_sub(1);
        }
    }
    for (node, r) in nodes.iter_mut().zip(rank) {
        node.rank = r;
    }
}

/// A path through `corners`, each step between two corners at different x drawn as a vertical
/// S-curve (a cubic Bézier with vertical tangents) sampled into points.
fn smooth(corners: &[[f32; 2]]) -> Vec<[f32; 2]> {
    let mut points = vec![corners[0]];
    for w in corners.windows(2) {
        let ([x0, y0], [x1, y1]) = (w[0], w[1]);
        if (x0 - x1).abs() < 0.5 {
            points.push(w[1]);
            continue;
        }
        let ym = f32::midpoint(y0, y1);
        for s in 1..=CURVE_STEPS {
            let t = s as f32 / CURVE_STEPS as f32;
            let u = 1.0 - t;
            // Control points (x0, ym) and (x1, ym).
            let x = u * u * u * x0 + 3.0 * u * u * t * x0 + 3.0 * u * t * t * x1 + t * t * t * x1;
            let y = u * u * u * y0 + 3.0 * u * u * t * ym + 3.0 * u * t * t * ym + t * t * t * y1;
            points.push([x, y]);
        }
    }
    points
}

fn bounds_of(points: impl Iterator<Item = [f32; 2]>) -> [f32; 4] {
    points.fold([f32::INFINITY, f32::INFINITY, f32::NEG_INFINITY, f32::NEG_INFINITY], |[a, b, c, d], [x, y]| {
        [a.min(x), b.min(y), c.max(x), d.max(y)]
    })
}
