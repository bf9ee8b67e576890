//! Running a model with tract: typing with concrete input shapes, optimising, executing.

use ndarray::ArrayD;
use tract_onnx::prelude::*;

use super::OnnxModel;
use crate::error::{Error, Result};

/// An optimised, runnable tract plan for concrete input shapes, returning the graph outputs
/// followed by any extra tensors asked for by ONNX name.
#[derive(Debug, Clone)]
pub struct Runner {
    plan: std::sync::Arc<TypedSimplePlan>,
    /// Concrete shape of each model input, in graph order.
    pub input_shapes: Vec<Vec<usize>>,
    /// ONNX names of the returned tensors, in order.
    pub output_names: Vec<String>,
    /// Element type of each model input: data arrive as f32 and are cast to it when not f32.
    input_types: Vec<DatumType>,
}

/// The tract element type of an ONNX element type name (`TensorInfo::elem_type`): float32 and
/// the integer and bool kinds (anything else is refused when the data set is opened).
fn datum_type(elem_type: &str) -> DatumType {
    match elem_type {
        "int64" => i64::datum_type(),
        "int32" => i32::datum_type(),
        "int16" => i16::datum_type(),
        "int8" => i8::datum_type(),
        "uint16" => u16::datum_type(),
        "uint8" => u8::datum_type(),
        "bool" => bool::datum_type(),
        _ => f32::datum_type(),
    }
}

impl Runner {
    /// Types `model` with `input_shapes` (one per model input, graph order), makes the graph
    /// outputs plus `extra_outputs` (ONNX tensor names) the plan's outputs, and optimises.
    pub fn new(model: &OnnxModel, input_shapes: &[Vec<usize>], extra_outputs: &[String]) -> Result<Self> {
        Self::from_proto(&model.proto, model, input_shapes, extra_outputs)
    }

    /// As [`Runner::new`], but on an edited protobuf of `model` (e.g. fake-quantized weights).
    pub fn from_proto(
        proto: &tract_onnx::pb::ModelProto,
        model: &OnnxModel,
        input_shapes: &[Vec<usize>],
        extra_outputs: &[String],
    ) -> Result<Self> {
        let summary = &model.summary;
        if input_shapes.len() != summary.inputs.len() {
            return Err(Error::Shape(format!(
                "{} input shapes given for {} model inputs",
                input_shapes.len(),
                summary.inputs.len()
            )));
        }
        let input_types: Vec<DatumType> = summary.inputs.iter().map(|i| datum_type(&i.elem_type)).collect();
        let run = || -> TractResult<(std::sync::Arc<TypedSimplePlan>, Vec<String>)> {
            let mut inf = typed_inputs(proto, &model.path, input_shapes, &input_types)?;
            let mut outlets = inf.output_outlets()?.to_vec();
            let mut names: Vec<String> = summary.outputs.iter().map(|o| o.name.clone()).collect();
            for name in extra_outputs {
                let outlet = inf.find_outlet_label(name).ok_or_else(|| {
                    tract_onnx::tract_core::internal::anyhow!("no tensor named '{name}' in the model")
                })?;
                outlets.push(outlet);
                names.push(name.clone());
            }
            inf.select_output_outlets(&outlets)?;
            let mut typed = inf.into_typed()?;
            super::ort_reduce::follow_ort(&mut typed, proto)?;
            super::exact_div::divide_exactly(&mut typed, proto)?;
            let plan = typed.into_optimized()?.into_runnable()?;
            Ok((plan, names))
        };
        let (plan, output_names) = crate::panics::catch(run)
            .map_err(|p| {
                Error::Runtime(format!("tract panicked while preparing the model: {}", crate::panics::message(&*p)))
            })?
            .map_err(|e| Error::runtime(&e))?;
        Ok(Self { plan, input_shapes: input_shapes.to_vec(), output_names, input_types })
    }

    /// Runs one batch; `inputs` are in graph order and must have the shapes given at creation.
    pub fn run(&self, inputs: Vec<ArrayD<f32>>) -> Result<Vec<ArrayD<f32>>> {
        let values = self.run_values(inputs)?;
        (0..values.len()).map(|k| values.to_array(k)).collect()
    }

    /// Runs one batch as [`Runner::run`] does, returning the outputs as tract computed them (no
    /// copy into arrays: read them as slices).
    pub fn run_values(&self, inputs: Vec<ArrayD<f32>>) -> Result<Values> {
        let tensors: TVec<TValue> = inputs
            .into_iter()
            .zip(&self.input_types)
            .map(|(a, &dt)| {
                let t = Tensor::from(a);
                if dt == f32::datum_type() {
                    Ok(t.into())
                } else {
                    Ok(t.cast_to_dt(dt).map_err(|e| Error::runtime(&e))?.into_owned().into())
                }
            })
            .collect::<Result<_>>()?;
        let outputs = self.plan.run(tensors).map_err(|e| Error::runtime(&e))?;
        let tensors = outputs
            .into_iter()
            .map(|t| {
                let t = t.into_tensor();
                if t.datum_type() == f32::datum_type() {
                    Ok(t)
                } else {
                    Ok(t.cast_to::<f32>().map_err(|e| Error::runtime(&e))?.into_owned())
                }
            })
            .collect::<Result<_>>()?;
        Ok(Values { tensors })
    }
}

/// A runner's f32 outputs for one batch, in its output order, as tract computed them.
#[derive(Debug)]
pub struct Values {
    tensors: Vec<Tensor>,
}

impl Values {
    /// The number of outputs.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// Output `k`'s shape.
    pub fn shape(&self, k: usize) -> &[usize] {
        self.tensors.get(k).map_or(&[], |t| t.shape())
    }

    /// Output `k`'s elements in row-major order.
    pub fn slice(&self, k: usize) -> Result<&[f32]> {
        let t = self.tensors.get(k).ok_or_else(|| Error::Runtime(format!("no output {k}")))?;
        let plain = t.try_as_plain_ram().map_err(|e| Error::runtime(&e))?;
        plain.as_slice::<f32>().map_err(|e| Error::runtime(&e))
    }

    /// Output `k` as an array (a copy).
    pub fn to_array(&self, k: usize) -> Result<ArrayD<f32>> {
        ArrayD::from_shape_vec(self.shape(k).to_vec(), self.slice(k)?.to_vec()).map_err(|e| Error::Shape(e.to_string()))
    }
}

impl Runner {
    /// Runs one batch as [`Runner::run`] does, timing every operator: returns, per tract
    /// operator name, the summed time in seconds and the node count, slowest first (benchmarks).
    pub fn profile(&self, inputs: Vec<ArrayD<f32>>) -> Result<Vec<(String, f64, usize)>> {
        let tensors: TVec<TValue> = inputs
            .into_iter()
            .zip(&self.input_types)
            .map(|(a, &dt)| {
                let t = Tensor::from(a);
                Ok(if dt == f32::datum_type() {
                    t
                } else {
                    t.cast_to_dt(dt).map_err(|e| Error::runtime(&e))?.into_owned()
                }
                .into())
            })
            .collect::<Result<_>>()?;
        let mut state = tract_onnx::tract_core::plan::SimpleState::new(&self.plan).map_err(|e| Error::runtime(&e))?;
        let mut times: std::collections::BTreeMap<String, (f64, usize)> = std::collections::BTreeMap::new();
        state
            .run_plan_with_eval(tensors, |ctx, op_state, node, input| {
                let t = std::time::Instant::now();
                let out = tract_onnx::tract_core::plan::eval(ctx, op_state, node, input);
                let slot = times.entry(node.op().name().to_string()).or_default();
                slot.0 += t.elapsed().as_secs_f64();
                slot.1 += 1;
                out
            })
            .map_err(|e| Error::runtime(&e))?;
        let mut rows: Vec<(String, f64, usize)> = times.into_iter().map(|(k, (t, n))| (k, t, n)).collect();
        rows.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(rows)
    }
}

/// The model parsed by tract with its inputs typed by `input_shapes`; `path` is the file it was
/// read from (external data is found beside it).
fn typed_inputs(
    proto: &tract_onnx::pb::ModelProto,
    path: &std::path::Path,
    input_shapes: &[Vec<usize>],
    input_types: &[DatumType],
) -> TractResult<InferenceModel> {
    let dir = path.parent().and_then(std::path::Path::to_str);
    let mut inf = super::tract_parser().parse(proto, dir)?.model;
    for (ix, (shape, &dt)) in input_shapes.iter().zip(input_types).enumerate() {
        inf = inf.with_input_fact(ix, dt.fact(shape).into())?;
    }
    Ok(inf)
}

/// The float activation tensors of `model` typed with `input_shapes`, by ONNX name, in network
/// order: the float model inputs, then every node output that is a float32 non-constant tensor.
pub fn float_activations(model: &OnnxModel, input_shapes: &[Vec<usize>]) -> Result<Vec<String>> {
    Ok(float_activation_sizes(model, input_shapes)?.into_iter().map(|(n, _)| n).collect())
}

/// As [`float_activations`], with each tensor's element count (0 when not concrete).
pub fn float_activation_sizes(model: &OnnxModel, input_shapes: &[Vec<usize>]) -> Result<Vec<(String, usize)>> {
    let run = || -> TractResult<Vec<(String, usize)>> {
        let types: Vec<DatumType> = model.summary.inputs.iter().map(|i| datum_type(&i.elem_type)).collect();
        let mut inf = typed_inputs(&model.proto, &model.path, input_shapes, &types)?;
        let mut outlets = inf.output_outlets()?.to_vec();
        for node in inf.nodes() {
            for ix in 0..node.outputs.len() {
                let outlet = OutletId::new(node.id, ix);
                if inf.outlet_label(outlet).is_some() && !outlets.contains(&outlet) {
                    outlets.push(outlet);
                }
            }
        }
        // Keep every labelled tensor alive through typing so its fact is known.
        inf.select_output_outlets(&outlets)?;
        let typed = inf.into_typed()?;
        let order = typed.eval_order()?;
        // Integer inputs (token ids, masks) are passed through, never quantized.
        let mut names: Vec<(String, usize)> = model
            .summary
            .inputs
            .iter()
            .zip(input_shapes)
            .filter(|(i, _)| i.elem_type == "float32")
            .map(|(i, s)| (i.name.clone(), s.iter().product()))
            .collect();
        for id in order {
            let node = typed.node(id);
            for ix in 0..node.outputs.len() {
                let outlet = OutletId::new(id, ix);
                let fact = typed.outlet_fact(outlet)?;
                if fact.datum_type != f32::datum_type()
                    || fact.konst.is_some()
                    || node.op_is::<tract_onnx::tract_core::ops::konst::Const>()
                {
                    continue;
                }
                if let Some(label) = typed.outlet_label(outlet) {
                    let elems = fact.shape.as_concrete().map_or(0, |d| d.iter().product());
                    names.push((label.to_string(), elems));
                }
            }
        }
        Ok(names)
    };
    let mut names = crate::panics::catch(run)
        .map_err(|p| Error::Runtime(format!("tract panicked while typing the model: {}", crate::panics::message(&*p))))?
        .map_err(|e| Error::runtime(&e))?;
    let mut seen = std::collections::BTreeSet::new();
    names.retain(|(n, _)| seen.insert(n.clone()));
    Ok(names)
}
