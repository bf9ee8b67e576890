//! Incremental re-evaluation. After a full run the quantized activations (and, room permitting,
//! the float ones) are kept per sample within a memory budget (`cache.rs`). When the plan
//! changes, the new simulated graph is compared with the previous one node by node; the nodes
//! from the latest point at or before the first difference whose incoming tensors are all cached
//! are run again, as a suffix model fed from the cache. Local errors are recomputed only for
//! layers whose plan changed.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::onnx as pb;

use super::graph::simulated_proto;
use crate::error::{Error, Result};
use crate::metrics::{ErrorAccumulator, TensorMetrics};
use crate::model::OnnxModel;
use crate::model::graph::{declared_elem_type, dtype, value_info};
use crate::model::runtime::Runner;
use crate::plan::QuantPlan;

pub(crate) use super::cache::Cache;

/// What a finished evaluation keeps so that the next one can be incremental: the graph, cache,
/// metrics sums and predictions of the last *full* run (the base every later graph is compared
/// with), and the latest plan with its local errors.
#[derive(Debug, Clone, Default)]
pub struct SimState {
    pub(crate) proto: Option<pb::ModelProto>,
    pub(crate) plan: QuantPlan,
    pub(crate) cache: Option<Cache>,
    pub(crate) acc: BTreeMap<String, ErrorAccumulator>,
    pub(crate) outputs: BTreeMap<String, Vec<usize>>,
    pub(crate) local: BTreeMap<String, TensorMetrics>,
    /// Nodes re-run by the evaluation that produced this state (all of them for a full run).
    pub nodes_rerun: usize,
    /// Nodes of the simulated graph.
    pub nodes_total: usize,
}

impl SimState {
    /// Bytes the activation cache of this state's base run holds (0 without a cache).
    pub fn cache_bytes(&self) -> usize {
        self.cache.as_ref().map_or(0, Cache::bytes)
    }
}

/// Index of the first node of `new` that differs from `old` (itself or a constant it reads).
pub(crate) fn first_difference(old: &pb::GraphProto, new: &pb::GraphProto) -> usize {
    fn inits(g: &pb::GraphProto) -> BTreeMap<&str, &pb::TensorProto> {
        g.initializer.iter().map(|t| (t.name.as_str(), t)).collect()
    }
    let (old_inits, new_inits) = (inits(old), inits(new));
    for (i, (a, b)) in old.node.iter().zip(&new.node).enumerate() {
        if a != b || b.input.iter().any(|t| old_inits.get(t.as_str()) != new_inits.get(t.as_str())) {
            return i;
        }
    }
    old.node.len().min(new.node.len())
}

/// The part of a graph a suffix run needs: its cut inputs and the suffix node range.
pub(crate) struct Suffix {
    /// Index of the first node of the suffix.
    pub start: usize,
    /// The tensors computed before it that it reads (its inputs).
    pub cut: Vec<String>,
}

/// The tensors that cross from nodes `[..start]` (or the graph inputs) into nodes `[start..]`.
pub(crate) fn suffix_cut(graph: &pb::GraphProto, start: usize) -> Suffix {
    let constants: BTreeSet<&str> = graph
        .initializer
        .iter()
        .map(|t| t.name.as_str())
        .chain(graph.node.iter().filter(|n| n.op_type == "Constant").flat_map(|n| n.output.iter().map(String::as_str)))
        .collect();
    let produced_after: BTreeSet<&str> =
        graph.node[start..].iter().flat_map(|n| n.output.iter().map(String::as_str)).collect();
    let mut cut = Vec::new();
    for n in &graph.node[start..] {
        for t in &n.input {
            if !t.is_empty()
                && !constants.contains(t.as_str())
                && !produced_after.contains(t.as_str())
                && !cut.contains(t)
            {
                cut.push(t.clone());
            }
        }
    }
    Suffix { start, cut }
}

/// The model made of the graph's `Constant` nodes before `start` and all nodes from `start`,
/// whose inputs are the cut tensors (with the shapes of their cached values) and whose outputs
/// are `outputs`.
pub(crate) fn suffix_model(
    base: &OnnxModel,
    proto: &pb::ModelProto,
    suffix: &Suffix,
    shapes: &[Vec<usize>],
    outputs: &[String],
) -> Result<OnnxModel> {
    let mut p = proto.clone();
    let g = p.graph.as_mut().ok_or_else(|| Error::InvalidModel("no graph".into()))?;
    let nodes = std::mem::take(&mut g.node);
    g.node = nodes[..suffix.start]
        .iter()
        .filter(|n| n.op_type == "Constant")
        .cloned()
        .chain(nodes[suffix.start..].iter().cloned())
        .collect();
    // A cut tensor that is a model input keeps its element type (integer inputs stay integer).
    let declared = |t: &str| base.graph().input.iter().find(|i| i.name == t).and_then(declared_elem_type);
    g.input =
        suffix.cut.iter().zip(shapes).map(|(t, s)| value_info(t, declared(t).unwrap_or(dtype::FLOAT), s)).collect();
    g.output = outputs.iter().map(|t| pb::ValueInfoProto { name: t.clone(), ..Default::default() }).collect();
    g.value_info.clear();
    OnnxModel::from_checked_proto(p, base.summary.name.clone(), &base.path)
}

/// Tensors produced by nodes `[start..]`.
pub(crate) fn produced_from(graph: &pb::GraphProto, start: usize) -> BTreeSet<String> {
    graph.node[start..].iter().flat_map(|n| n.output.iter().cloned()).collect()
}

/// Prepares the suffix runner for `plan` given the previous state, or None when a full run is
/// needed (no previous state, no cache, or a cut tensor missing from the cache).
pub(crate) fn plan_suffix(
    base: &OnnxModel,
    prev: Option<&SimState>,
    plan: &QuantPlan,
) -> Result<(pb::ModelProto, Option<Suffix>)> {
    let proto = simulated_proto(base, plan)?;
    let Some(prev) = prev else { return Ok((proto, None)) };
    let (Some(old), Some(cache)) = (prev.proto.as_ref(), prev.cache.as_ref()) else { return Ok((proto, None)) };
    let (Some(og), Some(ng)) = (old.graph.as_ref(), proto.graph.as_ref()) else { return Ok((proto, None)) };
    let inputs: Vec<&str> = base.summary.inputs.iter().map(|i| i.name.as_str()).collect();
    let start = latest_cached_start(ng, first_difference(og, ng), &|t| inputs.contains(&t) || cache.contains(t));
    if start == 0 {
        return Ok((proto, None));
    }
    let suffix = suffix_cut(ng, start);
    Ok((proto, Some(suffix)))
}

/// The latest node index `s ≤ first_change` such that every tensor crossing from nodes `[..s]`
/// into nodes `[s..]` is `available` (or a constant), or 0. A tensor produced by node `p` and last
/// read by node `l` crosses every cut `s` with `p < s ≤ l`.
pub(crate) fn latest_cached_start(
    graph: &pb::GraphProto,
    first_change: usize,
    available: &dyn Fn(&str) -> bool,
) -> usize {
    let n = graph.node.len();
    let mut producer: BTreeMap<&str, usize> = BTreeMap::new();
    let mut last_read: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, node) in graph.node.iter().enumerate() {
        for t in node.input.iter().filter(|t| !t.is_empty()) {
            last_read.insert(t, i);
        }
        if node.op_type != "Constant" {
            for t in &node.output {
                producer.insert(t, i);
            }
        }
    }
    // Coverage counts of the blocked cuts, as a difference array over s = 0..=n.
    let mut delta = vec![0i64; n + 2];
    for (t, &p) in &producer {
        if let Some(&l) = last_read.get(t)
            && l > p
            && !available(t)
        {
            delta[p + 1] += 1;
            delta[l + 1] -= 1;
        }
    }
    let mut blocked = vec![false; n + 1];
    let mut depth = 0i64;
    for (s, b) in blocked.iter_mut().enumerate() {
        depth += delta[s];
        *b = depth > 0;
    }
    (1..=first_change.min(n)).rev().find(|&s| !blocked[s]).unwrap_or(0)
}

/// Builds a runner for the suffix with input shapes from the cache (sample 0).
pub(crate) fn suffix_runner(
    base: &OnnxModel,
    proto: &pb::ModelProto,
    suffix: &Suffix,
    shapes: &[Vec<usize>],
    outputs: &[String],
) -> Result<Runner> {
    let m = suffix_model(base, proto, suffix, shapes, outputs)?;
    Runner::new(&m, shapes, &[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::graph::node;

    /// A chain `x → a → b → c` with a skip `a → c`: a cut may not fall where an uncached tensor
    /// crosses it, and the latest allowed one at or before the change is chosen.
    #[test]
    fn the_latest_cut_whose_crossing_tensors_are_cached_is_chosen() {
        let graph = pb::GraphProto {
            node: vec![
                node("Relu", "n0".into(), &["x"], "a".into()),
                node("Relu", "n1".into(), &["a"], "b".into()),
                node("Relu", "n2".into(), &["b"], "b2".into()),
                node("Add", "n3".into(), &["b2", "a"], "c".into()),
            ],
            ..Default::default()
        };
        let with = |cached: &'static [&'static str]| move |t: &str| t == "x" || cached.contains(&t);
        // Everything cached: the change itself.
        assert_eq!(latest_cached_start(&graph, 3, &with(&["a", "b", "b2"])), 3);
        // `b2` missing: the cut before n3 is blocked, before n2 needs `b` and `a`.
        assert_eq!(latest_cached_start(&graph, 3, &with(&["a", "b"])), 2);
        // `a` crosses every cut after n0: without it only a full run remains.
        assert_eq!(latest_cached_start(&graph, 3, &with(&["b", "b2"])), 0);
        // Nothing changed (the change index is past the end): nothing to re-run.
        assert_eq!(latest_cached_start(&graph, 4, &with(&[])), 4);
    }
}
