//! What the graph view shows of each box, as pure functions of the session: its fill colour by
//! the chosen measure (local or accumulated SQNR, sensitivity, quantized/float/excluded), its
//! figures in words for the hover, and where the placement target puts Q/DQ (one marker per
//! edge into a node that reads the quantized tensor, or on the box a collapsed chain quantizes
//! inside).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use egui::Color32;
use quantbench_core::model::ModelSummary;
use quantbench_core::plan::QuantizedTensor;
use quantbench_core::quant::recipe::Recipe;
use quantbench_core::simulate::LayerResult;

use super::context::ViewContext;
use super::graph_layout::{GraphLayout, GraphNode, NodeKind};
use super::sensitivity::SensitivityColumn;
use super::tokens;

/// What the boxes' colour shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorBy {
    /// Each layer's error alone quantized.
    #[default]
    LocalSqnr,
    /// The error at each layer's output with the whole plan applied.
    AccumulatedSqnr,
    /// The last sensitivity run's enable-one metric.
    Sensitivity,
    /// Quantized, float, or kept float by the recipe.
    Quantization,
}

impl ColorBy {
    /// Every colouring, in the combo's order.
    pub const ALL: [Self; 4] = [Self::LocalSqnr, Self::AccumulatedSqnr, Self::Sensitivity, Self::Quantization];

    /// The combo's label.
    pub fn label(self) -> &'static str {
        match self {
            Self::LocalSqnr => "local SQNR",
            Self::AccumulatedSqnr => "accumulated SQNR",
            Self::Sensitivity => "sensitivity",
            Self::Quantization => "quantized / float / excluded",
        }
    }
}

/// Whether a box is quantized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The plan quantizes it (a layer's weights or input, or an op that reads a quantized tensor).
    Quantized,
    /// Nothing quantized there.
    Float,
    /// Kept float by the recipe (`float_ops`, `float_nodes`, or a layer's keep-float).
    Excluded,
}

/// A Q/DQ marker's place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerPlace {
    /// On an edge (index into `GraphLayout::edges`), just above the reader.
    Edge(usize),
    /// On a box, for a tensor quantized inside a collapsed chain.
    Node(usize),
}

/// One Q/DQ of the placement target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QMarker {
    /// Where it is drawn.
    pub place: MarkerPlace,
    /// Its bit width.
    pub bits: u8,
    /// The quantized tensor (index into `Evaluation::quantized`).
    pub tensor: usize,
}

/// The Q/DQ markers of `quantized` on `layout`: for a tensor on edges, one per edge into a box
/// holding one of its readers (every edge of the tensor when no reader is drawn); for a tensor
/// inside a collapsed box, one on the box; none for constants (no edge).
pub fn q_markers(layout: &GraphLayout, summary: &ModelSummary, quantized: &[QuantizedTensor]) -> Vec<QMarker> {
    let mut markers = Vec::new();
    for (i, q) in quantized.iter().enumerate() {
        if let Some(&node) = layout.internal.get(&q.tensor) {
            markers.push(QMarker { place: MarkerPlace::Node(node), bits: q.bits, tensor: i });
            continue;
        }
        let Some(edges) = layout.tensor_edges.get(&q.tensor) else { continue };
        let reads = |e: usize| {
            let to = &layout.nodes[layout.edges[e].to];
            to.members.iter().any(|&m| q.readers.contains(&summary.nodes[m].name))
        };
        let into_readers: Vec<usize> = edges.iter().copied().filter(|&e| reads(e)).collect();
        let chosen = if into_readers.is_empty() { edges.clone() } else { into_readers };
        markers.extend(chosen.into_iter().map(|e| QMarker { place: MarkerPlace::Edge(e), bits: q.bits, tensor: i }));
    }
    markers
}

/// What the colours and the hover read, gathered once per frame.
pub struct Figures<'a> {
    summary: &'a ModelSummary,
    results: BTreeMap<&'a str, &'a LayerResult>,
    /// The last sensitivity run, by layer.
    pub sensitivity: SensitivityColumn<'a>,
    recipe: Option<&'a Recipe>,
    quantized: &'a [QuantizedTensor],
    /// Nodes reading a quantized tensor (gathered for the quantization colouring only; other
    /// uses look through `quantized`).
    readers: Option<BTreeSet<&'a str>>,
    /// Whether the evaluation is of an older configuration.
    pub stale: bool,
}

impl<'a> Figures<'a> {
    /// The figures of `ctx`'s session; `mode` says which the colours need.
    pub fn new(ctx: &ViewContext<'a>, summary: &'a ModelSummary, mode: ColorBy) -> Self {
        let evaluation = ctx.session.evaluation.as_ref().map(|(_, e)| e);
        let results = evaluation.map(|e| e.layers.iter().map(|l| (l.name.as_str(), l)).collect()).unwrap_or_default();
        let quantized = evaluation.map_or(&[][..], |e| e.quantized.as_slice());
        let readers = (mode == ColorBy::Quantization)
            .then(|| quantized.iter().flat_map(|q| q.readers.iter().map(String::as_str)).collect());
        Self {
            summary,
            results,
            sensitivity: SensitivityColumn::new(ctx.analysis),
            recipe: ctx.session.recipe.as_ref(),
            quantized,
            readers,
            stale: ctx.results.is_old(),
        }
    }

    fn layer_name(&self, node: &GraphNode) -> Option<&'a str> {
        node.layer.map(|l| self.summary.layers[l].name.as_str())
    }

    /// Whether a box is quantized, float or kept float by the recipe.
    pub fn status(&self, node: &GraphNode) -> Status {
        let excluded = |m: &usize| {
            let n = &self.summary.nodes[*m];
            self.recipe.is_some_and(|r| r.excludes(&n.name, &n.op_type))
        };
        if let Some(name) = self.layer_name(node) {
            if node.members.iter().any(excluded) || self.recipe.is_some_and(|r| r.config_for(name).keep_float) {
                return Status::Excluded;
            }
            return match self.results.get(name) {
                Some(r) if r.w_bits.is_none() && r.a_bits.is_none() => Status::Float,
                _ => Status::Quantized,
            };
        }
        if node.members.iter().any(excluded) {
            Status::Excluded
        } else if node.members.iter().any(|&m| self.reads_quantized(&self.summary.nodes[m].name)) {
            Status::Quantized
        } else {
            Status::Float
        }
    }

    fn reads_quantized(&self, node: &str) -> bool {
        match &self.readers {
            Some(readers) => readers.contains(node),
            None => self.quantized.iter().any(|q| q.readers.iter().any(|r| r == node)),
        }
    }

    /// A layer's SQNR of the chosen kind (local or accumulated).
    fn sqnr(&self, node: &GraphNode, accumulated: bool) -> Option<f64> {
        let r = self.results.get(self.layer_name(node)?)?;
        if accumulated { Some(r.accumulated.sqnr_db) } else { r.local.as_ref().map(|m| m.sqnr_db) }
    }

    /// The fill colour of a box.
    pub fn fill(&self, mode: ColorBy, node: &GraphNode) -> Color32 {
        if node.kind != NodeKind::Op {
            return tokens::GRAPH_TERMINAL;
        }
        if mode == ColorBy::Quantization {
            return match self.status(node) {
                Status::Quantized => tokens::GRAPH_QUANTIZED,
                Status::Float => tokens::GRAPH_FLOAT,
                Status::Excluded => tokens::GRAPH_EXCLUDED,
            };
        }
        let Some(name) = self.layer_name(node) else { return tokens::GRAPH_OP };
        let value = match mode {
            ColorBy::LocalSqnr => self.sqnr(node, false).map(|v| (tokens::sqnr_color(v), self.stale)),
            ColorBy::AccumulatedSqnr => self.sqnr(node, true).map(|v| (tokens::sqnr_color(v), self.stale)),
            _ => self.sensitivity.scale(name).map(|t| (tokens::scale_color(t), false)),
        };
        match value {
            Some((_, true)) => tokens::STALE,
            Some((color, false)) => color,
            None => tokens::GRAPH_NO_VALUE,
        }
    }

    /// The quantized tensors a box reads or writes (graph inputs' and outputs' own tensor).
    pub fn quantized_of(&self, node: &GraphNode) -> Vec<&'a QuantizedTensor> {
        let mut tensors: BTreeSet<&str> = node.tensor.iter().map(String::as_str).collect();
        for &m in &node.members {
            let n = &self.summary.nodes[m];
            tensors.extend(n.inputs.iter().chain(&n.outputs).map(String::as_str));
        }
        self.quantized.iter().filter(|q| tensors.contains(q.tensor.as_str())).collect()
    }

    /// A box's figures in words: its node(s) and op(s), bits, local and accumulated SQNR,
    /// sensitivity, status and quantized tensors.
    pub fn hover_text(&self, node: &GraphNode) -> String {
        let mut s = String::new();
        match (node.kind, &node.tensor) {
            (NodeKind::Input, Some(t)) => _ = writeln!(s, "graph input {t}"),
            (NodeKind::Output, Some(t)) => _ = writeln!(s, "graph output {t}"),
            _ => {}
        }
        for &m in node.members.iter().take(SHOWN) {
            let n = &self.summary.nodes[m];
            _ = writeln!(s, "{} ({})", n.name, n.op_type);
        }
        if node.members.len() > SHOWN {
            _ = writeln!(s, "… and {} more nodes", node.members.len() - SHOWN);
        }
        if let Some(name) = self.layer_name(node) {
            let bits = |b: Option<u8>| b.map_or_else(|| "float".to_string(), |b| b.to_string());
            match (self.results.get(name), self.recipe.map(|r| r.config_for(name))) {
                (Some(r), _) => _ = writeln!(s, "weights {}, activations {}", bits(r.w_bits), bits(r.a_bits)),
                (None, Some(c)) if !c.keep_float => {
                    _ = writeln!(s, "weights {} bits, activations {} bits", c.weight.bits, c.activation.bits);
                }
                _ => {}
            }
            let db = |v: Option<f64>| match v {
                Some(v) if v.is_infinite() && v > 0.0 => "exact".to_string(),
                Some(v) => format!("{v:.1} dB"),
                None => "—".to_string(),
            };
            let old = if self.stale { " (an earlier configuration)" } else { "" };
            _ = writeln!(s, "local SQNR: {}{old}", db(self.sqnr(node, false)));
            _ = writeln!(s, "accumulated SQNR: {}{old}", db(self.sqnr(node, true)));
            if let Some(text) = self.sensitivity.describe(name) {
                _ = writeln!(s, "{text}");
            }
        }
        if node.kind == NodeKind::Op {
            let status = match self.status(node) {
                Status::Quantized => "quantized",
                Status::Float => "float",
                Status::Excluded => "kept float by the recipe",
            };
            _ = writeln!(s, "{status}");
        }
        let quantized = self.quantized_of(node);
        if !quantized.is_empty() {
            _ = writeln!(s, "quantized tensors:");
            for q in quantized {
                let kind = if q.dynamic { " dynamic" } else { "" };
                _ = writeln!(s, "  {} ({} bits{kind})", q.tensor, q.bits);
            }
        }
        s.trim_end().to_string()
    }
}

/// The member nodes a hover lists before "… and N more".
const SHOWN: usize = 12;

/// Black or white, whichever reads better on `fill`.
pub fn text_color(fill: Color32) -> Color32 {
    let luma = 0.299 * f32::from(fill.r()) + 0.587 * f32::from(fill.g()) + 0.114 * f32::from(fill.b());
    if luma > 110.0 { Color32::BLACK } else { Color32::WHITE }
}
