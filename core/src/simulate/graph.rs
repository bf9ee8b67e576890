//! The simulation's sink of the plan walk (`emit`): weights and biases replaced by their
//! dequantized values, and each quantized activation routed through float ops computing
//! QuantizeLinear→DequantizeLinear exactly (`(clip(round(x / s) + z, qmin, qmax) - z) · s`, with
//! ONNX Round, which rounds half to even). This runs at any bit width in tract.

use crate::model::onnx as pb;

use crate::emit::{ConstantNames, Emitted, Sink, emit};
use crate::error::{Error, Result};
use crate::model::OnnxModel;
use crate::model::fake_quant::{self, FakeQuantParams};
use crate::model::graph::{float_tensor, int_attribute, node};
use crate::plan::{ActQuant, BiasQuant, LayerPlan, QuantPlan};

/// The name of the fake-quantized version of `tensor`.
pub fn fq_name(tensor: &str) -> String {
    format!("{tensor}/qb_fq")
}

/// Nodes computing `out = num / den` correctly rounded in f32, as ONNX Runtime divides: tract
/// rewrites every float Div into a multiplication by the reciprocal, which is one ulp off in
/// about a third of the cases and moves values across QuantizeLinear's rounding boundaries.
/// Done in f64 (reciprocal and product each rounded once, then rounded to f32) it is exact:
/// f64 keeps more than the 2·24 + 2 bits that make the double rounding of an f32 quotient
/// innocuous.
pub(super) fn exact_div(name: &str, num: &str, den: &str, out: String) -> Vec<pb::NodeProto> {
    let cast = |input: &str, suffix: &str, to: i64| {
        let mut n = node("Cast", format!("{name}/{suffix}"), &[input], format!("{name}/{suffix}"));
        n.attribute.push(int_attribute("to", to));
        n
    };
    let (f32_, f64_) = (pb::tensor_proto::DataType::Float as i64, pb::tensor_proto::DataType::Double as i64);
    let mut back = cast(&format!("{name}/quotient"), "to_f32", f32_);
    back.output = vec![out];
    // The denominator first: when only a scale changes, the first changed node is its Cast and
    // the incremental re-run's cut is `num` itself.
    vec![
        cast(den, "den_f64", f64_),
        cast(num, "num_f64", f64_),
        node(
            "Div",
            format!("{name}/div"),
            &[&format!("{name}/num_f64"), &format!("{name}/den_f64")],
            format!("{name}/quotient"),
        ),
        back,
    ]
}

/// The element types the emulations compute in.
pub(super) const F32: i64 = pb::tensor_proto::DataType::Float as i64;
/// f64, for the steps an emulation must round once.
pub(super) const F64: i64 = pb::tensor_proto::DataType::Double as i64;

/// A Cast of `input` to `to`, node and output both named `name`.
pub(super) fn cast(name: &str, input: &str, to: i64) -> pb::NodeProto {
    let mut n = node("Cast", name.to_string(), &[input], name.to_string());
    n.attribute.push(int_attribute("to", to));
    n
}

/// An f64 constant: a scalar for one value, else 1-D.
pub(super) fn double_tensor(name: &str, values: &[f64]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.to_string(),
        dims: if values.len() == 1 { Vec::new() } else { vec![values.len() as i64] },
        data_type: F64 as i32,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// Whether `a` is static uint8 on the full [0, 255] grid, the form ORT's integer kernels take.
pub(super) fn full_u8(a: &ActQuant) -> bool {
    !a.dynamic && a.params.range.qmin == 0 && a.params.range.qmax == 255
}

/// Nodes recomputing, under `prefix`, the raw integer codes of the statically quantized `a` (zero
/// point included, as floats) from its fake-quantized value, the tensor the incremental cache
/// holds: `round(fq / s) + z` is exact, as `fq = (q − z) · s`. Returns the nodes and the codes.
pub(super) fn codes_of(a: &ActQuant, prefix: &str) -> (Vec<pb::NodeProto>, String) {
    let t = &a.tensor;
    let codes = format!("{prefix}/codes");
    if !a.dynamic {
        let node = fake_quant::codes_node(format!("{prefix}/codes"), &fq_name(t), codes.clone(), fake_quant_params(a));
        return (vec![node], codes);
    }
    let mut nodes =
        exact_div(&format!("{prefix}/unscale"), &fq_name(t), &format!("{t}/qb_fq/scale"), format!("{prefix}/steps"));
    nodes.push(node(
        "Round",
        format!("{prefix}/round_steps"),
        &[&format!("{prefix}/steps")],
        format!("{prefix}/centred"),
    ));
    nodes.push(node(
        "Add",
        format!("{prefix}/add_zero_point"),
        &[&format!("{prefix}/centred"), &format!("{t}/qb_fq/zero_point")],
        codes.clone(),
    ));
    (nodes, codes)
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
    let mut nodes = vec![
        reduce_min,
        reduce_max,
        node("Min", k("min0"), &[&k("batch_min"), &k("zero")], k("rmin")),
        node("Max", k("max0"), &[&k("batch_max"), &k("zero")], k("rmax")),
        node("Sub", k("range"), &[&k("rmax"), &k("rmin")], k("width")),
    ];
    nodes.extend(exact_div(&k("raw_scale"), &k("width"), &k("span"), k("scale_or_zero")));
    nodes.extend([
        node("Equal", k("is_zero"), &[&k("scale_or_zero"), &k("zero")], k("degenerate")),
        node("Where", k("scale_pick"), &[&k("degenerate"), &k("one"), &k("scale_or_zero")], k("scale")),
    ]);
    nodes.extend(exact_div(&k("min_s"), &k("rmin"), &k("scale"), k("min_over_s")));
    nodes.extend([
        node("Sub", k("zp_raw"), &[&k("qmin"), &k("min_over_s")], k("zp_unclipped")),
        node("Clip", k("zp_clip"), &[&k("zp_unclipped"), &k("qmin"), &k("qmax")], k("zp_clipped")),
        node("Round", k("zp_round"), &[&k("zp_clipped")], k("zero_point")),
    ]);
    (nodes, inits)
}

/// The static parameters of `a` as the simulation operators take them.
fn fake_quant_params(a: &ActQuant) -> FakeQuantParams {
    let p = a.params;
    FakeQuantParams {
        scale: p.scale,
        zero_point: p.zero_point as f32,
        qmin: p.range.qmin as f32,
        qmax: p.range.qmax as f32,
    }
}

/// The nodes and scalar initializers computing `fq_name(tensor)` from `tensor`: one fused node
/// for static parameters, the ONNX sequence after the range reduction for dynamic ones.
fn fake_quant_nodes(a: &ActQuant) -> (Vec<pb::NodeProto>, Vec<pb::TensorProto>) {
    let t = &a.tensor;
    let p = a.params;
    let k = |s: &str| format!("{t}/qb_fq/{s}");
    if !a.dynamic {
        // One pass (model::fake_quant); the scale and zero point stay as constants for the
        // emulations that recompute the integer codes (`codes_of`).
        let inits = vec![
            float_tensor(&k("scale"), &[], &[p.scale]),
            float_tensor(&k("zero_point"), &[], &[p.zero_point as f32]),
        ];
        return (vec![fake_quant::node(k("fake_quant"), t, fq_name(t), fake_quant_params(a))], inits);
    }
    let (mut nodes, inits) = dynamic_params_nodes(a);
    nodes.extend(exact_div(&k("div"), t, &k("scale"), k("x_s")));
    nodes.extend([
        node("Round", k("round"), &[&k("x_s")], k("rounded")),
        node("Add", k("add_zp"), &[&k("rounded"), &k("zero_point")], k("shifted")),
        node("Clip", k("clip"), &[&k("shifted"), &k("qmin"), &k("qmax")], k("q")),
        node("Sub", k("sub_zp"), &[&k("q"), &k("zero_point")], k("centred")),
        node("Mul", k("mul_s"), &[&k("centred"), &k("scale")], fq_name(t)),
    ]);
    (nodes, inits)
}

/// The simulation's sink: dequantized float constants for weights and biases, and float ops
/// computing Q→DQ exactly for activations; layers whose runtime saturates int16 pair sums are
/// replaced by their exact emulation.
struct SimulationSink<'a> {
    model: &'a OnnxModel,
    plan: &'a QuantPlan,
    /// Unique names for shared weights and biases.
    names: ConstantNames,
    /// Tensors an emulation computes exactly on their own activation grid (a `QLinearBinary`
    /// output): their fake quantization is the identity.
    on_grid: std::collections::BTreeSet<String>,
}

impl Sink for SimulationSink<'_> {
    fn activation(&mut self, a: &ActQuant) -> Result<Emitted> {
        if !a.dynamic && self.on_grid.contains(&a.tensor) {
            let k = |s: &str| format!("{}/qb_fq/{s}", a.tensor);
            let p = a.params;
            // The constants the emulations read (`saturate.rs`: scale, zero point) stay; tract
            // removes the Identity.
            let inits = vec![
                float_tensor(&k("scale"), &[], &[p.scale]),
                float_tensor(&k("zero_point"), &[], &[p.zero_point as f32]),
            ];
            let nodes = vec![node("Identity", k("on_grid"), &[&a.tensor], fq_name(&a.tensor))];
            return Ok(Emitted { nodes, inits, output: fq_name(&a.tensor) });
        }
        let (nodes, inits) = fake_quant_nodes(a);
        Ok(Emitted { nodes, inits, output: fq_name(&a.tensor) })
    }

    fn weight(&mut self, lp: &LayerPlan, dims: &[i64]) -> Result<Emitted> {
        let Some(wq) = &lp.weight_quant else { return Err(Error::Config("no quantized weight".into())) };
        let values: Vec<f32> = wq.dequantize().iter().copied().collect();
        let output = format!("{}/qb_dq", self.names.name(&lp.weight, &lp.layer));
        Ok(Emitted { nodes: Vec::new(), inits: vec![float_tensor(&output, dims, &values)], output })
    }

    fn bias(&mut self, b: &BiasQuant, lp: &LayerPlan, dims: &[i64]) -> Result<Emitted> {
        let output = format!("{}/qb_dq", self.names.name(&b.tensor, &lp.layer));
        Ok(Emitted { nodes: Vec::new(), inits: vec![float_tensor(&output, dims, &b.dequantize())], output })
    }

    fn layer_node(&mut self, node: pb::NodeProto, lp: &LayerPlan, act: Option<&ActQuant>) -> Emitted {
        if lp.saturates
            && let Some(a) = act
            && let Some(e) = super::saturate::emulate(self.model, &node, lp, a)
        {
            return Emitted { nodes: e.nodes, inits: e.inits, output: String::new() };
        }
        if !lp.saturates
            && let Some(a) = act
            && let Some(e) = super::requant::emulate(self.model, self.plan, &node, lp, a)
        {
            return Emitted { nodes: e.nodes, inits: e.inits, output: String::new() };
        }
        if let Some((k, block)) = lp.int8_blocks
            && let Some((nodes, inits)) = super::block_int8::emulate(&node, self.model.summary.opset, k, block)
        {
            return Emitted { nodes, inits, output: String::new() };
        }
        Emitted { nodes: vec![node], ..Emitted::default() }
    }

    fn node(&mut self, node: pb::NodeProto) -> Emitted {
        let name = crate::model::node_name(&node);
        let emulated = matches!(node.op_type.as_str(), "Softmax" | "Add" | "Mul" | "AveragePool")
            .then(|| self.model.graph().node.iter().find(|n| crate::model::node_name(n) == name))
            .flatten()
            .and_then(|original| crate::plan::qlinear_io(self.model, self.plan, original))
            .and_then(|(inputs, y)| match (node.op_type.as_str(), inputs.as_slice()) {
                ("Softmax", [x]) => super::softmax::emulate(&node, self.model.summary.opset, x, y),
                ("Add" | "Mul", [a, b]) => {
                    let e = super::qlinear::emulate(self.model, &node, a, b, y);
                    // Through a folded Relu/Clip the output is clipped after the kernel: its
                    // fake quantization stays.
                    if e.is_some() && node.output.first() == Some(&y.tensor) {
                        self.on_grid.insert(y.tensor.clone());
                    }
                    e
                }
                ("AveragePool", [x]) => super::avgpool::emulate(&node, self.model.summary.opset, x, y),
                _ => None,
            });
        match emulated {
            Some((nodes, inits)) => Emitted { nodes, inits, output: String::new() },
            None if node.op_type == "Tanh" && self.plan.activations.contains_key(&original_output(&node)) => {
                Emitted { nodes: in_f64(node), ..Emitted::default() }
            }
            None => Emitted { nodes: vec![node], ..Emitted::default() },
        }
    }
}

/// The model's name of `node`'s output 0 (a quantized graph output is computed under
/// `<name>_QuantizeLinear_Input`).
fn original_output(node: &pb::NodeProto) -> String {
    let o = node.output.first().cloned().unwrap_or_default();
    o.strip_suffix("_QuantizeLinear_Input").map_or(o.clone(), str::to_string)
}

/// `node` (one float input and output) computed in f64 and rounded once to f32: tract's f32 Tanh
/// is a rational approximation up to 7e-7 off, which moves saturated values (±1, a rounding tie of
/// the [-1, 1] grid) across QuantizeLinear's boundaries, where ONNX Runtime's is within 2e-7 and
/// exactly ±1 in saturation.
fn in_f64(mut op: pb::NodeProto) -> Vec<pb::NodeProto> {
    let name = crate::model::node_name(&op);
    let (input, output) = (op.input[0].clone(), op.output[0].clone());
    let to_f64 = cast(&format!("{name}/qb_f64/in"), &input, F64);
    op.input[0] = format!("{name}/qb_f64/in");
    op.output[0] = format!("{name}/qb_f64/out64");
    let mut back = cast(&format!("{name}/qb_f64/out"), &format!("{name}/qb_f64/out64"), F32);
    back.output = vec![output];
    vec![to_f64, op, back]
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
    emit(
        model,
        plan,
        graph,
        &mut SimulationSink {
            model,
            plan,
            names: ConstantNames::default(),
            on_grid: std::collections::BTreeSet::default(),
        },
    )?;
    Ok(proto)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::model::runtime::Runner;
    use crate::quant::{ActivationScheme, QParams, QRange};

    /// Inputs where rounding `x · (1/s)` (what tract makes of a Div) and rounding the correctly
    /// rounded `x / s` (what ONNX Runtime's QuantizeLinear divides) give different integers: the
    /// simulation must give ORT's.
    #[test]
    fn fake_quant_divides_as_onnx_runtime_does() {
        let scale = 0.1f32;
        let (range, zero_point) = (QRange { qmin: -128, qmax: 127 }, 0);
        let exact = |x: f32| ((f64::from(x) / f64::from(scale)) as f32).round_ties_even();
        let by_recip = |x: f32| (x * (1.0 / scale)).round_ties_even();
        // Near each half step k + 1/2, the f32 neighbours of (k + 1/2)·s.
        let xs: Vec<f32> = (-120..120)
            .flat_map(|k| {
                let x = (k as f32 + 0.5) * scale;
                [x, f32::from_bits(x.to_bits() + 1), f32::from_bits(x.to_bits() - 1)]
            })
            .filter(|&x| exact(x) != by_recip(x))
            .collect();
        assert!(xs.len() >= 5, "only {} inputs tell the two divisions apart", xs.len());
        let a = ActQuant {
            tensor: "x".into(),
            range: (-12.8, 12.7),
            params: QParams { scale, zero_point, range },
            scheme: ActivationScheme::default(),
            consumers: Vec::new(),
            dynamic: false,
        };
        let (nodes, initializer) = fake_quant_nodes(&a);
        let proto = pb::ModelProto {
            ir_version: 8,
            opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: 13 }],
            graph: Some(pb::GraphProto {
                name: "fq".into(),
                node: nodes,
                initializer,
                input: vec![crate::model::float_value_info("x", &[xs.len()])],
                output: vec![pb::ValueInfoProto { name: fq_name("x"), ..Default::default() }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let model = OnnxModel::from_checked_proto(proto, "fq".into(), Path::new("fq.onnx")).expect("model");
        let runner = Runner::new(&model, &[vec![xs.len()]], &[]).expect("runner");
        let input = ndarray::ArrayD::from_shape_vec(vec![xs.len()], xs.clone()).expect("input");
        let out = runner.run(vec![input]).expect("run");
        for (x, y) in xs.iter().zip(out[0].iter()) {
            assert_eq!(*y, exact(*x) * scale, "x = {x:e}: {y} (by the reciprocal: {})", by_recip(*x) * scale);
        }
    }
}
