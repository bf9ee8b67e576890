//! Simulated execution: the float model runs once over the evaluation set (its outputs are kept,
//! and the layers' inputs and outputs that fit in half the memory budget, spread over the network
//! when not all fit; the others are recomputed per sample when an evaluation needs them,
//! `reference.rs`); a plan is then evaluated
//! by running the fake-quantized model (accumulated error) and each quantized layer alone on float
//! inputs (local error).

mod avgpool;
mod block_int8;
mod cache;
pub mod graph;
mod incremental;
mod layer;
mod qlinear;
mod reference;
mod requant;
mod results;
mod saturate;
mod softmax;

pub use incremental::SimState;
pub use results::{Evaluation, LayerResult, ModelMetrics, Progress, quantized_size_bytes};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use ndarray::{ArrayD, Axis};
use serde::{Deserialize, Serialize};

use crate::data::{DataSet, InputShape, resolve_input_shapes};
use crate::error::{Error, Result};
use crate::metrics::{ErrorAccumulator, TensorMetrics, argmax};
use crate::model::OnnxModel;
use crate::model::runtime::{Runner, Values};
use crate::plan::QuantPlan;

/// Evaluation samples of a progressive evaluation's first result (the worker's estimate).
pub const ESTIMATE_SAMPLES: usize = 32;

/// Settings of an evaluation.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct EvalConfig {
    /// Shapes for dynamic dims the data cannot fix.
    pub input_shapes: Vec<InputShape>,
    /// Skip the per-layer local errors (one small run per layer).
    pub skip_local: bool,
    /// The memory budget, in MiB (0: the default, [`DEFAULT_CACHE_BUDGET_MIB`]): at most half for the float
    /// values the reference keeps (the others are recomputed per evaluation), at most half for
    /// the incremental cache.
    pub cache_budget_mib: usize,
    /// Measure the model-level metrics only (for analyses that run many evaluations): the
    /// layers' accumulated errors are not computed (left empty), nor the local ones.
    #[serde(skip)]
    pub model_only: bool,
}

impl EvalConfig {
    /// The cache budget in bytes.
    pub fn cache_budget_bytes(&self) -> usize {
        let mib = if self.cache_budget_mib == 0 { DEFAULT_CACHE_BUDGET_MIB } else { self.cache_budget_mib };
        mib.saturating_mul(1 << 20)
    }
}

/// The memory budget of evaluations when none is given, MiB.
pub const DEFAULT_CACHE_BUDGET_MIB: usize = 1024;

/// The float reference over an evaluation set, ready to evaluate plans against.
#[derive(Debug)]
pub struct Simulator {
    model: OnnxModel,
    /// The evaluation samples' inputs (shared with the float reference's model inputs).
    samples: Vec<Vec<Arc<ArrayD<f32>>>>,
    labels: Option<Vec<i64>>,
    shapes: Vec<Vec<usize>>,
    /// Float value of the watched tensors kept (model inputs and outputs always, layers' inputs
    /// and outputs within half the memory budget, `reference::kept_references`), per sample.
    float: BTreeMap<String, Vec<Arc<ArrayD<f32>>>>,
    /// The float model with every watched tensor as an output: recomputes, per sample, the
    /// references not kept.
    float_runner: Runner,
    float_predictions: Vec<usize>,
    /// Float activations of the model (network order) and their element counts per sample.
    float_activations: Vec<(String, usize)>,
    /// Bytes of the reference's budget set aside for the estimate subset's values that `float`
    /// does not keep (`estimate_subset`); 0 when everything is kept or the room is not there.
    subset_room: usize,
    /// The estimate subset with every watched value, made on first use.
    estimate: std::sync::OnceLock<Arc<Simulator>>,
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
        let samples: Vec<Vec<Arc<ArrayD<f32>>>> = (0..all.len())
            .map(|i| {
                all.inputs.iter().map(|a| Arc::new(a.index_axis(Axis(0), i).insert_axis(Axis(0)).to_owned())).collect()
            })
            .collect();
        drop(all);
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
        // One typing of the model gives both the names (network order) and the sizes.
        let float_activations = crate::model::runtime::float_activation_sizes(model, &shapes)?;
        let budget = config.cache_budget_bytes() / 2;
        let subset_room = reference::subset_room(&watch, &outputs, &float_activations, samples.len(), budget);
        let kept =
            reference::kept_references(&watch, &outputs, &float_activations, samples.len(), budget - subset_room);
        let mut float: BTreeMap<String, Vec<Arc<ArrayD<f32>>>> = BTreeMap::new();
        let feed = |i: usize| -> Result<Vec<ArrayD<f32>>> { Ok(samples[i].iter().map(|a| (**a).clone()).collect()) };
        crate::model::parallel::run_samples(
            &runner,
            samples.len(),
            &feed,
            &mut |_, out| {
                for (name, value) in runner.output_names.iter().zip(out) {
                    if kept.contains(name) {
                        float.entry(name.clone()).or_default().push(Arc::new(value));
                    }
                }
                Ok(())
            },
            cancel,
        )?;
        for (ix, name) in input_names.iter().enumerate() {
            float.insert((*name).to_string(), samples.iter().map(|s| Arc::clone(&s[ix])).collect());
        }
        let first_output = &runner.output_names[0];
        let float_predictions = float[first_output].iter().map(|a| argmax_of(a)).collect();
        Ok(Self {
            model: model.clone(),
            samples,
            labels: eval.labels.clone(),
            shapes,
            float,
            float_runner: runner,
            float_predictions,
            float_activations,
            subset_room,
            estimate: std::sync::OnceLock::new(),
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
        for l in summary.layers.iter().filter(|_| !config.model_only) {
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
                config.cache_budget_bytes() / 2,
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
                _ => Ok(self.inputs(i)),
            }
        };
        let Some(runner) = runner.as_ref() else {
            return self.finish(plan, config, prev, state, BTreeMap::new(), Vec::new(), on_progress, cancel);
        };
        // References the float reference did not keep (over the memory budget) are recomputed by
        // a float run of the same sample, on the same worker.
        let recompute = runner.output_names.iter().any(|t| watched.contains(t) && !self.float.contains_key(t.as_str()));
        let work = |i: usize| -> Result<(Values, Option<Values>)> {
            let out = runner.run_values(feed(i)?)?;
            let refs = if recompute { Some(self.float_runner.run_values(self.inputs(i))?) } else { None };
            Ok((out, refs))
        };
        crate::model::parallel::run_map(
            n,
            &work,
            &mut |i, (out, refs)| {
                for (k, name) in runner.output_names.iter().enumerate() {
                    let value = out.slice(k)?;
                    if watched.contains(name) {
                        let reference = self.reference(name, i, refs.as_ref())?;
                        fresh_acc.entry(name.clone()).or_default().add(reference, value);
                        if *name == first_output {
                            predictions.push(argmax(value));
                        }
                    }
                    if let Some(cache) = state.cache.as_mut().filter(|_| start == 0) {
                        cache.store(name, i, out.shape(k), value);
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
        // The layers whose local error is reused from the previous evaluation (same plan).
        let reused = |l: &crate::model::QuantizableLayer| -> Option<TensorMetrics> {
            let prev = prev?;
            let params_of = |plan: &QuantPlan| {
                let act = plan.layer(&l.name).and_then(|p| p.activation.as_ref());
                act.and_then(|t| plan.activations.get(t)).map(|a| a.params)
            };
            let same = prev.plan.layer(&l.name) == plan.layer(&l.name) && params_of(&prev.plan) == params_of(plan);
            prev.local.get(&l.name).copied().filter(|_| same)
        };
        let wants_local = !config.skip_local && !config.model_only;
        // Local errors whose float inputs or outputs were not kept (over the memory budget) are
        // computed together, in one pass that recomputes the float model per sample.
        let recomputed: Vec<&crate::model::QuantizableLayer> = summary
            .layers
            .iter()
            .filter(|l| wants_local && plan.layer(&l.name).is_some() && reused(l).is_none() && l.op_type != "Gather")
            .filter(|l| !(self.float.contains_key(&l.input) && self.float.contains_key(&l.output)))
            .collect();
        let recomputed = if recomputed.is_empty() {
            BTreeMap::new()
        } else {
            let stage = |done| Progress { stage: "layers (float recomputed)".into(), done, total: n };
            layer::local_errors_recomputed(self, plan, &recomputed, &mut |done| on_progress(&stage(done)), cancel)?
        };
        let mut layers = Vec::new();
        for l in &summary.layers {
            let lp = plan.layer(&l.name);
            let act = lp.and_then(|p| p.activation.as_ref()).and_then(|t| plan.activations.get(t));
            let local = match lp {
                Some(p) if wants_local && l.op_type == "Gather" => Some(layer::table_error(&self.model, p)?),
                Some(_) if wants_local => match reused(l).or_else(|| recomputed.get(&l.name).copied()) {
                    Some(m) => Some(m),
                    None => Some(layer::local_error(
                        self,
                        plan,
                        l,
                        &mut |done| {
                            on_progress(&Progress { stage: format!("layer {}", l.name), done, total: n });
                        },
                        cancel,
                    )?),
                },
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
            samples: n,
        };
        Ok((evaluation, state))
    }

    /// The value of cut tensor `t` for sample `i`: a model input or a cached activation.
    fn cut_value(&self, cache: &incremental::Cache, inputs: &[String], t: &str, i: usize) -> Result<ArrayD<f32>> {
        if let Some(ix) = inputs.iter().position(|n| n == t) {
            return Ok((*self.samples[i][ix]).clone());
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
}

fn flat(a: &ArrayD<f32>) -> std::borrow::Cow<'_, [f32]> {
    a.as_slice().map_or_else(|| std::borrow::Cow::Owned(a.iter().copied().collect()), std::borrow::Cow::Borrowed)
}

fn argmax_of(a: &ArrayD<f32>) -> usize {
    argmax(&flat(a))
}
