//! Simulated execution: the float model runs once over the evaluation set (its outputs and every
//! layer's input and output are cached); a plan is then evaluated by running the fake-quantized
//! model (accumulated error) and each quantized layer alone on cached float inputs (local error).

mod avgpool;
mod cache;
pub mod graph;
mod incremental;
mod layer;
mod qlinear;
mod saturate;
mod softmax;

pub use incremental::SimState;

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;

use ndarray::{ArrayD, Axis};
use serde::{Deserialize, Serialize};

use crate::data::{DataSet, InputShape, resolve_input_shapes};
use crate::error::{Error, Result};
use crate::metrics::{ErrorAccumulator, TensorMetrics, argmax};
use crate::model::OnnxModel;
use crate::model::runtime::Runner;
use crate::plan::QuantPlan;

/// Settings of an evaluation.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct EvalConfig {
    /// Shapes for dynamic dims the data cannot fix.
    pub input_shapes: Vec<InputShape>,
    /// Skip the per-layer local errors (one small run per layer).
    pub skip_local: bool,
    /// Memory the incremental cache may use, in MiB (0: the default of 1024 MiB).
    pub cache_budget_mib: usize,
}

impl EvalConfig {
    /// The cache budget in bytes.
    pub fn cache_budget_bytes(&self) -> usize {
        let mib = if self.cache_budget_mib == 0 { 1024 } else { self.cache_budget_mib };
        mib.saturating_mul(1 << 20)
    }
}

/// Results for one quantizable layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerResult {
    /// Layer (node) name.
    pub name: String,
    /// Op type.
    pub op: String,
    /// Weight bits, when the weight is quantized (0 for ternary).
    pub w_bits: Option<u8>,
    /// Activation bits, when the input activation is quantized.
    pub a_bits: Option<u8>,
    /// Observer name of the input activation, when quantized.
    pub observer: Option<String>,
    /// Error of this layer alone quantized, fed float inputs.
    pub local: Option<TensorMetrics>,
    /// Error at this layer's output with the whole plan applied.
    pub accumulated: TensorMetrics,
    /// The plan's runtime sums this layer's product pairs in a saturating int16 that its
    /// weights can overflow (simulated as the runtime computes it).
    #[serde(default)]
    pub saturates: bool,
}

/// Model-level metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMetrics {
    /// Accuracy of the float model (when labels exist).
    pub float_accuracy: Option<f64>,
    /// Accuracy of the quantized model (when labels exist).
    pub quant_accuracy: Option<f64>,
    /// Fraction of samples whose top-1 class is the same as float's.
    pub top1_agreement: f64,
    /// SQNR of the first model output.
    pub output_sqnr_db: f64,
    /// Size of the float model's constants.
    pub float_size_bytes: u64,
    /// Size of the quantized model's constants (integers at their bit width, scales, zero points).
    pub quant_size_bytes: u64,
}

/// Everything an evaluation measures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Model-level metrics.
    pub metrics: ModelMetrics,
    /// Per quantizable layer, in network order.
    pub layers: Vec<LayerResult>,
    /// Argmax of the first output of the float model, per sample.
    pub predictions_float: Vec<usize>,
    /// Argmax of the first output of the quantized model, per sample.
    pub predictions_quant: Vec<usize>,
    /// The activations (and float constants) the plan quantizes under its placement target.
    #[serde(default)]
    pub quantized: Vec<crate::plan::QuantizedTensor>,
}

/// Progress of an evaluation: the stage and how far it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Stage name, e.g. "quantized model" or "layer conv1".
    pub stage: String,
    /// Samples done in this stage.
    pub done: usize,
    /// Samples in this stage.
    pub total: usize,
}

/// The float reference over an evaluation set, ready to evaluate plans against.
#[derive(Debug)]
pub struct Simulator {
    model: OnnxModel,
    samples: Vec<Vec<ArrayD<f32>>>,
    labels: Option<Vec<i64>>,
    shapes: Vec<Vec<usize>>,
    /// Float value of every watched tensor (model outputs, layer inputs/outputs), per sample.
    float: BTreeMap<String, Vec<ArrayD<f32>>>,
    float_predictions: Vec<usize>,
    /// Float activations of the model (network order) and their element counts per sample.
    float_activations: Vec<(String, usize)>,
}

impl Simulator {
    /// Loads the evaluation set and runs the float model once over it.
    pub fn new(model: &OnnxModel, eval: &DataSet, config: &EvalConfig, cancel: &AtomicBool) -> Result<Self> {
        let inputs = &model.summary.inputs;
        if inputs.iter().any(|i| crate::data::fixed_batch(i).is_some_and(|b| b != 1)) {
            return Err(Error::Shape(
                "simulation runs one sample at a time; the model fixes a batch size above 1".into(),
            ));
        }
        let shapes = resolve_input_shapes(inputs, Some(&eval.sample_shapes), &config.input_shapes, 1)?;
        let all = eval.read_all()?;
        let samples: Vec<Vec<ArrayD<f32>>> = (0..all.len())
            .map(|i| all.inputs.iter().map(|a| a.index_axis(Axis(0), i).insert_axis(Axis(0)).to_owned()).collect())
            .collect();
        let input_names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
        let mut watch: Vec<String> = Vec::new();
        for l in &model.summary.layers {
            for t in [&l.input, &l.output] {
                if !input_names.contains(&t.as_str()) && !watch.contains(t) {
                    watch.push(t.clone());
                }
            }
        }
        let outputs: Vec<&str> = model.summary.outputs.iter().map(|o| o.name.as_str()).collect();
        let extra: Vec<String> = watch.iter().filter(|t| !outputs.contains(&t.as_str())).cloned().collect();
        let runner = Runner::new(model, &shapes, &extra)?;
        let mut float: BTreeMap<String, Vec<ArrayD<f32>>> = BTreeMap::new();
        let feed = |i: usize| -> Result<Vec<ArrayD<f32>>> { Ok(samples[i].clone()) };
        crate::model::parallel::run_samples(
            &runner,
            samples.len(),
            &feed,
            &mut |_, out| {
                for (name, value) in runner.output_names.iter().zip(out) {
                    float.entry(name.clone()).or_default().push(value);
                }
                Ok(())
            },
            cancel,
        )?;
        for (ix, name) in input_names.iter().enumerate() {
            float.insert((*name).to_string(), samples.iter().map(|s| s[ix].clone()).collect());
        }
        let first_output = &runner.output_names[0];
        let float_predictions = float[first_output].iter().map(argmax_of).collect();
        // One typing of the model gives both the names (network order) and the sizes.
        let float_activations = crate::model::runtime::float_activation_sizes(model, &shapes)?;
        Ok(Self {
            model: model.clone(),
            samples,
            labels: eval.labels.clone(),
            shapes,
            float,
            float_predictions,
            float_activations,
        })
    }

    /// Number of evaluation samples.
    pub fn num_samples(&self) -> usize {
        self.samples.len()
    }

    /// The model.
    pub fn model(&self) -> &OnnxModel {
        &self.model
    }

    /// Evaluates `plan`: the whole quantized model, then (unless skipped) each layer alone.
    /// `on_progress` is called after every sample; `cancel` stops within one sample.
    pub fn evaluate(
        &self,
        plan: &QuantPlan,
        config: &EvalConfig,
        on_progress: &mut dyn FnMut(&Progress),
        cancel: &AtomicBool,
    ) -> Result<Evaluation> {
        self.evaluate_from(None, plan, config, on_progress, cancel).map(|(e, _)| e)
    }

    /// Evaluates `plan`, reusing what `prev` (the state of an earlier evaluation on this
    /// simulator) still holds: only the part of the graph from the first change on is run again,
    /// and only the local errors of changed layers are recomputed. Returns the new state.
    pub fn evaluate_from(
        &self,
        prev: Option<&SimState>,
        plan: &QuantPlan,
        config: &EvalConfig,
        on_progress: &mut dyn FnMut(&Progress),
        cancel: &AtomicBool,
    ) -> Result<(Evaluation, SimState)> {
        let summary = &self.model.summary;
        let (proto, suffix) = incremental::plan_suffix(&self.model, prev, plan)?;
        let graph = proto.graph.as_ref().ok_or_else(|| Error::InvalidModel("no graph".into()))?;
        let inputs: Vec<String> = summary.inputs.iter().map(|i| i.name.clone()).collect();
        let first_output = summary.outputs[0].name.clone();
        let mut watched: Vec<String> = summary.outputs.iter().map(|o| o.name.clone()).collect();
        for l in &summary.layers {
            if !watched.contains(&l.output) {
                watched.push(l.output.clone());
            }
        }
        let outputs: Vec<String> = summary.outputs.iter().map(|o| o.name.clone()).collect();
        let n = self.samples.len();
        let mut state = SimState {
            proto: Some(proto.clone()),
            plan: plan.clone(),
            nodes_total: graph.node.len(),
            ..SimState::default()
        };
        let (runner, start) = if let (Some(sfx), Some(prev)) = (&suffix, prev) {
            let produced = incremental::produced_from(graph, sfx.start);
            // Only what the metrics need: the cache stays that of the last full run (the
            // base the graph is compared with), so no intermediate tensor is copied out.
            let wanted: Vec<String> = watched.iter().filter(|t| produced.contains(*t)).cloned().collect();
            let cache = prev.cache.clone().unwrap_or_default();
            let shapes: Vec<Vec<usize>> =
                sfx.cut.iter().map(|t| self.cut_shape(&cache, &inputs, t)).collect::<Result<_>>()?;
            // Nothing changed since the base run: everything comes from it.
            let runner = if wanted.is_empty() || sfx.cut.is_empty() {
                None
            } else {
                Some(incremental::suffix_runner(&self.model, &proto, sfx, &shapes, &wanted)?)
            };
            state.proto.clone_from(&prev.proto);
            state.cache = Some(cache);
            state.acc.clone_from(&prev.acc);
            state.outputs.clone_from(&prev.outputs);
            (runner, sfx.start)
        } else {
            let qmodel = OnnxModel::from_checked_proto(proto.clone(), summary.name.clone(), &self.model.path)?;
            let mut extra: Vec<String> =
                watched.iter().filter(|t| !summary.outputs.iter().any(|o| &o.name == *t)).cloned().collect();
            let layer_inputs: Vec<&str> = summary.layers.iter().map(|l| l.input.as_str()).collect();
            let chosen = cache::choose(
                &self.float_activations,
                &inputs,
                &outputs,
                &layer_inputs,
                plan,
                n,
                config.cache_budget_bytes(),
            );
            if !chosen.is_empty() {
                extra.extend(chosen.keys().filter(|t| !watched.contains(t)).cloned());
                state.cache = Some(cache::Cache::for_tensors(&chosen));
            }
            (Some(Runner::new(&qmodel, &self.shapes, &extra)?), 0)
        };
        state.nodes_rerun = state.nodes_total - start;
        let mut fresh_acc: BTreeMap<String, ErrorAccumulator> = BTreeMap::new();
        let mut predictions = Vec::with_capacity(n);
        let feed = |i: usize| -> Result<Vec<ArrayD<f32>>> {
            match (&suffix, prev.and_then(|p| p.cache.as_ref())) {
                (Some(sfx), Some(cache)) if start > 0 => {
                    sfx.cut.iter().map(|t| self.cut_value(cache, &inputs, t, i)).collect()
                }
                _ => Ok(self.samples[i].clone()),
            }
        };
        let Some(runner) = runner.as_ref() else {
            return self.finish(plan, config, prev, state, BTreeMap::new(), Vec::new(), on_progress, cancel);
        };
        crate::model::parallel::run_samples(
            runner,
            n,
            &feed,
            &mut |i, out| {
                for (name, value) in runner.output_names.iter().zip(out) {
                    if watched.contains(name) {
                        let reference = &self.float[name][i];
                        fresh_acc.entry(name.clone()).or_default().add(&flat(reference), &flat(&value));
                        if *name == first_output {
                            predictions.push(argmax_of(&value));
                        }
                    }
                    if let Some(cache) = state.cache.as_mut().filter(|_| start == 0) {
                        cache.store(name, i, &value);
                    }
                }
                on_progress(&Progress { stage: "quantized model".into(), done: i + 1, total: n });
                Ok(())
            },
            cancel,
        )?;
        self.finish(plan, config, prev, state, fresh_acc, predictions, on_progress, cancel)
    }

    /// Combines the base run's sums with the re-run part's, adds local errors, builds the result.
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        plan: &QuantPlan,
        config: &EvalConfig,
        prev: Option<&SimState>,
        mut state: SimState,
        fresh_acc: BTreeMap<String, ErrorAccumulator>,
        predictions: Vec<usize>,
        on_progress: &mut dyn FnMut(&Progress),
        cancel: &AtomicBool,
    ) -> Result<(Evaluation, SimState)> {
        let summary = &self.model.summary;
        let first_output = summary.outputs[0].name.clone();
        let n = self.samples.len();
        let start = state.nodes_total - state.nodes_rerun;
        // Tensors upstream of the first change are those of the base run.
        let mut acc = state.acc.clone();
        acc.extend(fresh_acc);
        let mut outputs = state.outputs.clone();
        if !predictions.is_empty() {
            outputs.insert(first_output.clone(), predictions);
        }
        if start == 0 {
            state.acc.clone_from(&acc);
            state.outputs.clone_from(&outputs);
        }
        let predictions = outputs.get(&first_output).cloned().unwrap_or_default();
        let mut layers = Vec::new();
        for l in &summary.layers {
            let lp = plan.layer(&l.name);
            let act = lp.and_then(|p| p.activation.as_ref()).and_then(|t| plan.activations.get(t));
            let local = match lp {
                Some(p) if !config.skip_local => {
                    let unchanged = prev.is_some_and(|prev| {
                        let old_act = prev
                            .plan
                            .layer(&l.name)
                            .and_then(|o| o.activation.as_ref())
                            .and_then(|t| prev.plan.activations.get(t));
                        prev.plan.layer(&l.name) == Some(p) && old_act.map(|a| a.params) == act.map(|a| a.params)
                    });
                    match prev.and_then(|prev| prev.local.get(&l.name)).filter(|_| unchanged) {
                        Some(m) => Some(*m),
                        None => Some(layer::local_error(
                            self,
                            plan,
                            l,
                            &mut |done| {
                                on_progress(&Progress { stage: format!("layer {}", l.name), done, total: n });
                            },
                            cancel,
                        )?),
                    }
                }
                _ => None,
            };
            if let Some(m) = local {
                state.local.insert(l.name.clone(), m);
            }
            layers.push(LayerResult {
                name: l.name.clone(),
                op: l.op_type.clone(),
                w_bits: lp.and_then(|p| {
                    p.weight_quant.as_ref().map(|_| if p.config.weight.ternary { 0 } else { p.config.weight.bits })
                }),
                a_bits: act.map(|a| a.scheme.bits),
                observer: act.map(|a| a.scheme.observer.name()),
                local,
                accumulated: acc
                    .get(&l.output)
                    .map_or_else(|| ErrorAccumulator::default().metrics(), ErrorAccumulator::metrics),
                saturates: lp.is_some_and(|p| p.saturates),
            });
        }
        let accuracy = |preds: &[usize]| {
            self.labels.as_ref().map(|labels| {
                let hits = preds.iter().zip(labels).filter(|(p, l)| i64::try_from(**p).ok() == Some(**l)).count();
                hits as f64 / labels.len().max(1) as f64
            })
        };
        let agree = predictions.iter().zip(&self.float_predictions).filter(|(a, b)| a == b).count();
        let metrics = ModelMetrics {
            float_accuracy: accuracy(&self.float_predictions),
            quant_accuracy: accuracy(&predictions),
            top1_agreement: agree as f64 / n.max(1) as f64,
            output_sqnr_db: acc.get(&first_output).map_or(0.0, |a| a.metrics().sqnr_db),
            float_size_bytes: summary.float_size_bytes,
            quant_size_bytes: quantized_size_bytes(&self.model, plan),
        };
        let evaluation = Evaluation {
            metrics,
            layers,
            predictions_float: self.float_predictions.clone(),
            predictions_quant: predictions,
            quantized: plan.quantized_tensors(&self.model),
        };
        Ok((evaluation, state))
    }

    /// The value of cut tensor `t` for sample `i`: a model input or a cached activation.
    fn cut_value(&self, cache: &incremental::Cache, inputs: &[String], t: &str, i: usize) -> Result<ArrayD<f32>> {
        if let Some(ix) = inputs.iter().position(|n| n == t) {
            return Ok(self.samples[i][ix].clone());
        }
        cache.value(t, i).ok_or_else(|| Error::Runtime(format!("tensor '{t}' is not cached")))
    }

    /// The shape of cut tensor `t` (sample 0).
    fn cut_shape(&self, cache: &incremental::Cache, inputs: &[String], t: &str) -> Result<Vec<usize>> {
        if let Some(ix) = inputs.iter().position(|n| n == t) {
            return Ok(self.samples[0][ix].shape().to_vec());
        }
        cache.shape(t, 0).map(<[usize]>::to_vec).ok_or_else(|| Error::Runtime(format!("tensor '{t}' is not cached")))
    }

    /// The float value of `tensor` for sample `i`, when cached.
    pub(crate) fn float_value(&self, tensor: &str, i: usize) -> Option<&ArrayD<f32>> {
        self.float.get(tensor).and_then(|v| v.get(i))
    }
}

fn flat(a: &ArrayD<f32>) -> std::borrow::Cow<'_, [f32]> {
    a.as_slice().map_or_else(|| std::borrow::Cow::Owned(a.iter().copied().collect()), std::borrow::Cow::Borrowed)
}

fn argmax_of(a: &ArrayD<f32>) -> usize {
    argmax(&flat(a))
}

/// Bytes of the quantized model's constants: quantized weights at their bit width plus one f32
/// scale and one zero point per parameter set, int32 biases, and every other constant as stored.
pub fn quantized_size_bytes(model: &OnnxModel, plan: &QuantPlan) -> u64 {
    let mut size = model.summary.float_size_bytes;
    // A weight shared by several layers is stored once; a weight the float size does not count
    // (e.g. one computed in the graph) must not make the size wrap below zero.
    let mut seen = std::collections::BTreeSet::new();
    for lp in &plan.layers {
        let layer = model.summary.layer(&lp.layer);
        let layer_weight_elems: u64 = layer.map_or(0, |l| l.weight_shape.iter().product());
        if let Some(wq) = &lp.weight_quant {
            let bits = if lp.config.weight.ternary { 2 } else { u64::from(lp.config.weight.bits) };
            if seen.insert(layer.map_or(lp.layer.as_str(), |l| l.weight.as_str())) {
                size = size.saturating_sub(layer_weight_elems * 4) + (layer_weight_elems * bits).div_ceil(8);
            }
            size += 8 * wq.params.len() as u64;
        }
        if let Some(b) = &lp.bias {
            size += 4 * b.scales.len() as u64;
        }
    }
    size + 8 * plan.activations.len() as u64
}
