//! Model loading: decode an ONNX file, check it is something QuantBench can run, and describe it.
//! This module is the only one that names tract: the ONNX protobuf types are re-exported as
//! [`onnx`], ONNX editing lives in [`graph`], and [`runtime`] / [`parallel`] run models.

mod build;
mod exact_div;
pub(crate) mod external_data;
pub mod fake_quant;
pub mod graph;
mod inline;
mod names;
pub mod opset;
mod ort_norms;
mod ort_reduce;
pub mod parallel;
pub mod qlinear_op;
pub mod runtime;
mod summary;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ndarray::{ArrayD, ArrayViewD};
use prost::Message as _;
/// The ONNX protobuf types (as tract decodes them): the one name other modules use for them.
pub use tract_onnx::pb as onnx;
use tract_onnx::pb;
use tract_onnx::prelude::Tensor;

pub use graph::{float_value_info, node_name};
pub use ort_reduce::SEQUENTIAL_SUM;
pub use summary::{Dim, ModelSummary, NodeInfo, QuantizableLayer, TensorInfo, shape_to_string};

use crate::error::{Error, Result, one_line};

/// Operators that carry subgraphs; QuantBench refuses them with a clear message.
const CONTROL_FLOW_OPS: [&str; 3] = ["If", "Loop", "Scan"];

/// A decoded, checked ONNX model and its summary.
#[derive(Debug, Clone)]
pub struct OnnxModel {
    /// The decoded protobuf, as read (export edits a copy of it).
    pub proto: pb::ModelProto,
    /// The summary built from `proto`.
    pub summary: ModelSummary,
    /// Where the model was read from (a descriptive name for in-memory bytes).
    pub path: PathBuf,
}

impl OnnxModel {
    /// Reads and checks the model at `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io("cannot read model", e, path))?;
        Self::from_bytes(&bytes, path)
    }

    /// Decodes and checks a model held in memory; `path` names it in messages and the summary.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let not_onnx = |reason: String| Error::NotOnnx { reason, path: path.to_path_buf() };
        if bytes.is_empty() {
            return Err(not_onnx("the file is empty".into()));
        }
        let mut proto =
            pb::ModelProto::decode(bytes).map_err(|e| not_onnx(format!("protobuf decoding failed: {e}")))?;
        let Some(graph) = proto.graph.as_mut() else {
            return Err(not_onnx("it has no graph".into()));
        };
        // An If whose condition is known without data is replaced by its branch; the rest of
        // control flow is refused by name below.
        inline::inline_constant_ifs(graph)?;
        let renamed = names::derive_node_names(graph);
        let graph = &*graph;
        if proto.ir_version <= 0 || graph.node.is_empty() {
            return Err(not_onnx(format!("ir_version {} with {} nodes", proto.ir_version, graph.node.len())));
        }
        check_operators(graph)?;
        check_outputs_produced(graph)?;
        let name = path.file_stem().map_or_else(
            || "model".to_string(),
            |s| {
                // Sample models live in folders named after them: `mlp/model.onnx` → `mlp`.
                let stem = s.to_string_lossy().to_string();
                if stem == "model" {
                    path.parent().and_then(Path::file_name).map_or(stem, |p| p.to_string_lossy().to_string())
                } else {
                    stem
                }
            },
        );
        let mut summary = build::summarize(&proto, name)?;
        summary.renamed = renamed;
        check_no_empty_tensors(&summary)?;
        check_tract_parses(&mut proto, path)?;
        Ok(Self { proto, summary, path: path.to_path_buf() })
    }

    /// Wraps an edited protobuf of an already checked model (no re-validation).
    pub(crate) fn from_checked_proto(proto: pb::ModelProto, name: String, path: &Path) -> Result<Self> {
        let summary = build::summarize(&proto, name)?;
        Ok(Self { proto, summary, path: path.to_path_buf() })
    }

    /// The graph (always present: checked at load).
    pub fn graph(&self) -> &pb::GraphProto {
        // Invariant: `from_bytes` rejects models without a graph.
        self.proto.graph.as_ref().unwrap_or_else(|| unreachable!("checked at load"))
    }

    /// All constant tensors of the graph (initializers and `Constant` node values), by name.
    pub fn constants(&self) -> BTreeMap<&str, &pb::TensorProto> {
        graph::constants(self.graph())
    }

    /// The node named `name` (see [`node_name`]).
    pub fn node(&self, name: &str) -> Result<&pb::NodeProto> {
        self.graph()
            .node
            .iter()
            .find(|n| node_name(n) == name)
            .ok_or_else(|| Error::InvalidModel(format!("node '{name}' not found")))
    }

    /// How many node inputs read `tensor`.
    pub fn readers(&self, tensor: &str) -> usize {
        graph::reader_count(self.graph(), tensor)
    }

    /// The residual inputs of the model's residual Adds, where TensorRT's explicit quantization
    /// wants Q/DQ (NVIDIA's placement guide; pytorch-quantization's ResNet quantizes `identity` in
    /// `out += identity`): for every Add of two float activations, the input that is not the
    /// output of a quantizable layer (directly, or through a BatchNormalization or a bias Add),
    /// since TensorRT fuses the layer's own branch into its epilogue; both when neither is. When
    /// both are layer outputs, the skip: the one other nodes read too (the block's input), else
    /// the one computed last (the shortcut projection). As (Add node, tensor), in node order.
    pub fn residual_add_inputs(&self) -> Vec<(String, String)> {
        let graph = self.graph();
        let consts = self.constants();
        let producer = |t: &str| graph.node.iter().position(|n| n.output.iter().any(|o| o == t));
        let is_layer = |i: usize| self.summary.layer(&node_name(&graph.node[i])).is_some();
        // The node index computing `t` when a layer computes it (seen through one
        // BatchNormalization or one Add of a constant).
        let layer_output = |t: &str| -> Option<usize> {
            let i = producer(t)?;
            if is_layer(i) {
                return Some(i);
            }
            let n = &graph.node[i];
            let mut data = n.input.iter().filter(|x| !x.is_empty() && !consts.contains_key(x.as_str()));
            let through = match n.op_type.as_str() {
                "BatchNormalization" => n.input.first(),
                "Add" if n.input.len() == 2 => data.next().filter(|_| data.next().is_none()),
                _ => None,
            };
            through.and_then(|x| producer(x)).filter(|&j| is_layer(j)).map(|_| i)
        };
        let mut out: Vec<(String, String)> = Vec::new();
        for n in graph.node.iter().filter(|n| n.op_type == "Add" && graph::is_default_domain(&n.domain)) {
            let [a, b] = n.input.as_slice() else { continue };
            if [a, b].iter().any(|t| t.is_empty() || consts.contains_key(t.as_str())) {
                continue;
            }
            let chosen: Vec<&String> = match (layer_output(a), layer_output(b)) {
                (Some(_), None) => vec![b],
                (None, Some(_)) => vec![a],
                (None, None) => vec![a, b],
                (Some(i), Some(j)) => match (self.readers(a) > 1, self.readers(b) > 1) {
                    (true, false) => vec![a],
                    (false, true) => vec![b],
                    _ => vec![if j > i { b } else { a }],
                },
            };
            out.extend(chosen.into_iter().map(|t| (node_name(n), t.clone())));
        }
        out
    }

    /// The float constant `name` as an array.
    pub fn constant_f32(&self, name: &str) -> Result<ArrayD<f32>> {
        self.with_constant_f32(name, |v| Ok(v.to_owned()))
    }

    /// `f` applied to a view of the f32 constant `name`, as loaded (no second copy: a
    /// transformer's weights are large).
    pub fn with_constant_f32<T>(&self, name: &str, f: impl FnOnce(ArrayViewD<f32>) -> Result<T>) -> Result<T> {
        let t = self.constant_tensor(name)?;
        f(t.to_plain_array_view::<f32>().map_err(|e| Error::runtime(&e))?)
    }

    /// The constant `name` as a tract tensor.
    pub(crate) fn constant_tensor(&self, name: &str) -> Result<Tensor> {
        let consts = self.constants();
        let proto =
            consts.get(name).ok_or_else(|| Error::InvalidModel(format!("no constant tensor named '{name}'")))?;
        load_tensor(proto, &self.path)
    }
}

/// Converts a tensor proto to a tract tensor, refusing what tract would panic on.
pub(crate) fn load_tensor(proto: &pb::TensorProto, path: &Path) -> Result<Tensor> {
    let dir = path.parent().and_then(Path::to_str);
    let provider = tract_onnx::data_resolver::MmapDataResolver;
    crate::panics::catch(|| tract_onnx::tensor::load_tensor(&provider, proto, dir))
        .map_err(|p| {
            Error::InvalidModel(format!(
                "tensor '{}' has an unsupported data layout (type {}: {})",
                proto.name,
                proto.data_type,
                one_line(&crate::panics::message(&*p))
            ))
        })?
        .map_err(|e| Error::InvalidModel(format!("tensor '{}': {}", proto.name, one_line(&format!("{e:#}")))))
}

/// Rejects control flow, custom domains and operators tract does not implement, naming each.
fn check_operators(graph: &pb::GraphProto) -> Result<()> {
    let control: Vec<String> = graph
        .node
        .iter()
        .filter(|n| CONTROL_FLOW_OPS.contains(&n.op_type.as_str()))
        .map(|n| {
            let why = if n.op_type == "If" { ", its condition depends on the input data" } else { "" };
            format!("{} (node '{}'{why})", n.op_type, node_name(n))
        })
        .collect();
    if !control.is_empty() {
        return Err(Error::ControlFlow(control.join(", ")));
    }
    let registry = tract_parser().op_register;
    let mut unsupported: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for n in &graph.node {
        let named_as_simulation_op = fake_quant::OP_TYPES.contains(&n.op_type.as_str());
        let simulation_op = n.domain == fake_quant::DOMAIN && named_as_simulation_op;
        let custom_domain = !graph::is_default_domain(&n.domain) && !simulation_op;
        if custom_domain || !registry.0.contains_key(&n.op_type) || (named_as_simulation_op && !simulation_op) {
            let op = if custom_domain { format!("{}.{}", n.domain, n.op_type) } else { n.op_type.clone() };
            unsupported.entry(op).or_default().push(node_name(n));
        }
    }
    if unsupported.is_empty() {
        return Ok(());
    }
    let parts: Vec<String> = unsupported
        .into_iter()
        .map(|(op, nodes)| {
            let shown: Vec<String> = nodes.iter().take(5).map(|n| format!("'{n}'")).collect();
            let more = if nodes.len() > 5 { format!(" and {} more", nodes.len() - 5) } else { String::new() };
            format!("{op} (nodes {}{more})", shown.join(", "))
        })
        .collect();
    Err(Error::UnsupportedOps(parts.join(", ")))
}

/// Rejects graph outputs that no node, graph input or initializer produces (tract would panic).
fn check_outputs_produced(graph: &pb::GraphProto) -> Result<()> {
    let produced: std::collections::BTreeSet<&str> = graph
        .node
        .iter()
        .flat_map(|n| n.output.iter())
        .chain(graph.input.iter().map(|i| &i.name))
        .chain(graph.initializer.iter().map(|t| &t.name))
        .map(String::as_str)
        .collect();
    let missing: Vec<String> =
        graph.output.iter().filter(|o| !produced.contains(o.name.as_str())).map(|o| format!("'{}'", o.name)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::InvalidModel(format!("graph outputs not produced by any node: {}", missing.join(", "))))
}

/// Rejects graph inputs with a zero-sized dim (no sample fits them) and quantizable layers whose
/// weight is empty (there is nothing to quantize, and no channel to give a scale).
fn check_no_empty_tensors(summary: &ModelSummary) -> Result<()> {
    for input in &summary.inputs {
        if input.shape.contains(&Dim::Fixed(0)) {
            return Err(Error::InvalidModel(format!(
                "input '{}' has a zero-sized dimension {}: no sample fits it",
                input.name,
                shape_to_string(&input.shape)
            )));
        }
    }
    for layer in &summary.layers {
        if layer.weight_shape.contains(&0) {
            return Err(Error::InvalidModel(format!(
                "layer '{}' has an empty weight '{}' (shape {:?})",
                layer.name, layer.weight, layer.weight_shape
            )));
        }
    }
    Ok(())
}

/// tract's ONNX parser as QuantBench uses it: the shapes a file declares for intermediate tensors
/// (`value_info`) are hints, not truth. Exporters write them with symbols (`batch`,
/// `DynamicDimension.0`, `(height+1)/2`) or wrong, and tract would try to unify them with the
/// shapes it infers from the concrete input shapes ("Impossible to unify Sym(..) with Val(1)").
/// Declared graph output shapes are not used either (tract's default).
/// The simulation's own operators (`fake_quant`) are registered too.
pub(crate) fn tract_parser() -> tract_onnx::Onnx {
    let mut onnx = tract_onnx::onnx().with_ignore_value_info(true);
    fake_quant::register(&mut onnx);
    onnx.op_register.insert("BatchNormalization", ort_norms::build_batch_norm);
    onnx.op_register.insert("InstanceNormalization", ort_norms::build_instance_norm);
    onnx
}

/// Float initializers with more elements than this are parsed as stand-ins.
const STAND_IN_ABOVE: u64 = 4096;

/// A one-element stand-in (of the same name, type and rank) for a large float initializer, after
/// checking that its bytes are all there (inline, or in its external file); None for the others.
/// Parsing builds the graph and never reads a weight's values, so the check at load need not
/// copy every weight (tract would, reading external files whole).
fn stand_in(t: &pb::TensorProto, path: &Path) -> Result<Option<pb::TensorProto>> {
    let size = match t.data_type {
        1 => 4,       // FLOAT
        10 | 16 => 2, // FLOAT16, BFLOAT16
        11 => 8,      // DOUBLE
        _ => return Ok(None),
    };
    // Shapes too large to count in u64 are left to the parser, which refuses them.
    let elements = t.dims.iter().try_fold(1u64, |n, &d| n.checked_mul(u64::try_from(d).unwrap_or(0)));
    let Some(bytes) = elements.filter(|&n| n > STAND_IN_ABOVE).and_then(|n| n.checked_mul(size)) else {
        return Ok(None);
    };
    if external_data::is_external(t) {
        external_data::check_external(t, path, bytes)?;
    } else {
        let stored = match t.data_type {
            1 if t.raw_data.is_empty() => t.float_data.len() as u64 * 4,
            11 if t.raw_data.is_empty() => t.double_data.len() as u64 * 8,
            10 | 16 if t.raw_data.is_empty() => t.int32_data.len() as u64 * 2,
            _ => t.raw_data.len() as u64,
        };
        if stored != bytes {
            return Err(Error::InvalidModel(format!(
                "tensor '{}' of shape {:?} holds {stored} bytes, not {bytes}",
                t.name, t.dims
            )));
        }
    }
    Ok(Some(pb::TensorProto {
        name: t.name.clone(),
        data_type: t.data_type,
        dims: vec![1; t.dims.len()],
        raw_data: vec![0; size as usize],
        ..Default::default()
    }))
}

/// Lets tract build its graph once, so attribute and wiring errors surface at load time (large
/// float initializers as [`stand_in`]s; they are put back before returning).
fn check_tract_parses(proto: &mut pb::ModelProto, path: &Path) -> Result<()> {
    let Some(graph) = proto.graph.as_mut() else { return Ok(()) };
    let mut swapped = Vec::new();
    for (i, t) in graph.initializer.iter().enumerate() {
        if let Some(s) = stand_in(t, path)? {
            swapped.push((i, s));
        }
    }
    for (i, t) in &mut swapped {
        std::mem::swap(&mut graph.initializer[*i], t);
    }
    let parsed = parse(proto, path);
    if let Some(graph) = proto.graph.as_mut() {
        for (i, t) in &mut swapped {
            std::mem::swap(&mut graph.initializer[*i], t);
        }
    }
    parsed
}

fn parse(proto: &pb::ModelProto, path: &Path) -> Result<()> {
    let dir = path.parent().and_then(Path::to_str);
    let parsed = crate::panics::catch(|| tract_parser().parse(proto, dir))
        .map_err(|p| {
            Error::InvalidModel(format!(
                "the model could not be parsed (the parser failed: {})",
                one_line(&crate::panics::message(&*p))
            ))
        })?
        .map_err(|e| Error::InvalidModel(one_line(&format!("{e:#}"))))?;
    if !parsed.unresolved_inputs.is_empty() {
        return Err(Error::InvalidModel(format!(
            "tensors used but never produced: {}",
            parsed.unresolved_inputs.join(", ")
        )));
    }
    Ok(())
}
