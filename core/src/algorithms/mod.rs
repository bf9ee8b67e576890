//! Advanced post-training algorithms.
//!
//! Two kinds, applied in this order:
//! - **Model transforms** rewrite the float model into an equivalent one that quantizes better:
//!   BatchNormalization folding, cross-layer equalization ([`cle`]) and SmoothQuant
//!   ([`smoothquant`]). Calibration runs on the transformed model, and the transformed model is
//!   what simulation and export use.
//! - **Refinements** ([`refine`]) change how one layer is quantized, solving a layer-local
//!   problem on calibration data: EasyQuant scale search, AdaRound rounding and empirical bias
//!   correction. The plan takes a layer's refinement only while the layer's configuration and
//!   input quantization are the ones it was computed for.

pub mod adaround;
pub mod awq;
pub mod bias_correction;
pub mod cle;
pub mod easyquant;
pub mod fold_bn;
pub mod gptq;
pub mod hqq;
pub mod layer_data;
pub mod smoothquant;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use crate::data::DataSet;
use crate::error::{Error, Result};
use crate::model::OnnxModel;
use crate::quant::recipe::Recipe;
use crate::quant::{
    ActivationScheme, CalibrationConfig, LayerConfig, QParams, WeightAlgorithm, WeightQuant, quantize_weight,
};

pub use crate::quant::{AdaRoundSettings, AlgorithmSettings, EasyQuantSettings};

/// What the layer-wise algorithms computed for one layer.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerRefinement {
    /// The layer configuration it was computed for.
    pub config: LayerConfig,
    /// The input quantization it was computed with (None: input not quantized).
    pub input_params: Option<QParams>,
    /// The weight (EasyQuant scales and/or AdaRound rounding), when changed.
    pub weight: Option<WeightQuant>,
    /// The corrected float bias (bias correction): tensor name and values.
    pub bias: Option<(String, Vec<f32>)>,
    /// AWQ's per-input-channel scales (the layer's input is divided by them).
    pub input_scale: Option<Vec<f32>>,
    /// Reconstruction MSE of the layer output on the calibration columns: nearest rounding of
    /// the observer's scales, and with this refinement.
    pub mse: (f64, f64),
}

/// An activation range chosen by EasyQuant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ActivationRefinement {
    /// The configuration of the tensor's first consumer it was computed for.
    pub config: LayerConfig,
    /// The observer's range it started from (the calibration it belongs to).
    pub observer_range: (f32, f32),
    /// The chosen range.
    pub range: (f32, f32),
}

/// Results of [`refine`], by layer and by activation tensor.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Refinements {
    /// Per layer.
    pub layers: BTreeMap<String, LayerRefinement>,
    /// Per activation tensor.
    pub activations: BTreeMap<String, ActivationRefinement>,
}

impl Refinements {
    /// Whether nothing was refined.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty() && self.activations.is_empty()
    }
}

/// Whether any layer of `recipe` asks for a model transform (CLE, SmoothQuant, and the
/// BatchNormalization folding that CLE and bias correction start with).
pub fn needs_transform(model: &OnnxModel, recipe: &Recipe) -> bool {
    model.summary.layers.iter().any(|l| {
        let a = recipe.config_for(&l.name).algorithms;
        a.transforms_model() || a.bias_correction
    })
}

/// Whether any layer of `recipe` asks for a refinement.
pub fn needs_refinement(model: &OnnxModel, recipe: &Recipe) -> bool {
    model.summary.layers.iter().any(|l| {
        let c = recipe.config_for(&l.name);
        !c.keep_float && c.algorithms.refines()
    })
}

/// Layers a transform skipped, with the reason.
pub type Skipped = Vec<(String, String)>;

/// A transformed model, what was transformed, and what was skipped.
pub type Transformed<T> = Result<(OnnxModel, T, Skipped)>;

/// What a model transform did, for the user.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TransformReport {
    /// BatchNormalization nodes folded into the preceding convolution.
    pub folded_batch_norms: Vec<String>,
    /// Equalized (first, second) layer pairs.
    pub equalized_pairs: Vec<(String, String)>,
    /// Layers smoothed by SmoothQuant.
    pub smoothed_layers: Vec<String>,
    /// Layers that asked for a transform but could not take it, with the reason.
    pub skipped: Vec<(String, String)>,
}

/// Applies the model transforms `recipe` asks for (BN folding + CLE, SmoothQuant), returning
/// the transformed, float-equivalent model. SmoothQuant reads per-channel activation ranges from
/// `calib`.
pub fn transform_model(
    model: &OnnxModel,
    recipe: &Recipe,
    calib: &DataSet,
    cancel: &AtomicBool,
) -> Result<(OnnxModel, TransformReport)> {
    let mut report = TransformReport::default();
    let mut current = model.clone();
    let wants = |f: fn(&crate::quant::LayerAlgorithms) -> bool| {
        model.summary.layers.iter().any(|l| f(&recipe.config_for(&l.name).algorithms))
    };
    // Folding BatchNormalization gives convolutions the bias that CLE rescales and bias
    // correction adjusts.
    if wants(|a| a.cross_layer_equalization || a.bias_correction) {
        let (folded, names) = fold_bn::fold_batch_norms(&current)?;
        current = folded;
        report.folded_batch_norms = names;
    }
    if wants(|a| a.cross_layer_equalization) {
        let (eq, pairs, skipped) = cle::equalize(&current, recipe, recipe.algorithm_settings.cle_iterations)?;
        current = eq;
        report.equalized_pairs = pairs;
        report.skipped.extend(skipped);
    }
    if cancel.load(Ordering::Relaxed) {
        return Err(Error::Cancelled);
    }
    let wants_sq = model.summary.layers.iter().any(|l| recipe.config_for(&l.name).algorithms.smooth_quant.is_some());
    if wants_sq {
        let (smoothed, layers, skipped) = smoothquant::smooth(&current, recipe, calib, cancel)?;
        current = smoothed;
        report.smoothed_layers = layers;
        report.skipped.extend(skipped);
    }
    Ok((current, report))
}

/// The static quantization of a refined layer's input, as the base plan (the plan without
/// refinements) chose it.
#[derive(Debug, Clone, PartialEq)]
pub struct RefineInput {
    /// The input tensor.
    pub tensor: String,
    /// The observer's clip range.
    pub range: (f32, f32),
    /// Its scale and zero point.
    pub params: QParams,
    /// The tensor's scheme.
    pub scheme: ActivationScheme,
    /// Whether the layer is the tensor's first quantized consumer (only that one may move the
    /// tensor's range).
    pub first_consumer: bool,
}

/// A layer the layer-wise algorithms refine (made by `plan::QuantPlan::refine_tasks`).
#[derive(Debug, Clone, PartialEq)]
pub struct RefineTask {
    /// The layer (node).
    pub layer: String,
    /// Its configuration.
    pub config: LayerConfig,
    /// Its input quantization (None: the input stays float or is dynamic).
    pub input: Option<RefineInput>,
}

/// Consecutive ranges of `layers` whose float inputs over the samples the algorithms use fit in
/// `settings.inputs_budget_mib` together (a layer alone may exceed it): each range is collected
/// by one float pass. Sizes come from the model typed for one sample.
fn input_chunks(
    model: &OnnxModel,
    layers: &[&crate::model::QuantizableLayer],
    calib: &DataSet,
    config: &CalibrationConfig,
    settings: &AlgorithmSettings,
) -> Result<Vec<std::ops::Range<usize>>> {
    let shapes =
        crate::data::resolve_input_shapes(&model.summary.inputs, Some(&calib.sample_shapes), &config.input_shapes, 1)?;
    let sizes: BTreeMap<String, usize> =
        crate::model::runtime::float_activation_sizes(model, &shapes).unwrap_or_default().into_iter().collect();
    let samples = settings.max_samples.min(calib.num_samples).max(1);
    let budget = settings.inputs_budget_mib.saturating_mul(1 << 20);
    let mut chunks = Vec::new();
    let (mut start, mut used, mut seen) = (0, 0usize, std::collections::BTreeSet::new());
    for (i, layer) in layers.iter().enumerate() {
        let bytes = sizes.get(&layer.input).copied().unwrap_or(0).saturating_mul(4 * samples);
        let new = !seen.contains(layer.input.as_str());
        if i > start && new && used.saturating_add(bytes) > budget {
            chunks.push(start..i);
            (start, used) = (i, 0);
            seen.clear();
        }
        if seen.insert(layer.input.as_str()) {
            used = used.saturating_add(bytes);
        }
    }
    chunks.push(start..layers.len());
    Ok(chunks)
}

/// Runs the layer-wise algorithms on `tasks` (layers of `model`, after any transform) on the
/// calibration set. `on_progress(done, total)` counts layers.
pub fn refine(
    model: &OnnxModel,
    tasks: &[RefineTask],
    settings: &AlgorithmSettings,
    calibration_config: &CalibrationConfig,
    calib: &DataSet,
    on_progress: &mut dyn FnMut(usize, usize),
    cancel: &AtomicBool,
) -> Result<Refinements> {
    let settings = *settings;
    settings.validate()?;
    let todo: Vec<&RefineTask> = tasks
        .iter()
        .filter(|t| model.summary.layer(&t.layer).is_some_and(|l| layer_data::supported(model, l)))
        .collect();
    let mut out = Refinements::default();
    if todo.is_empty() {
        return Ok(out);
    }
    let layers: Vec<&crate::model::QuantizableLayer> =
        todo.iter().filter_map(|lp| model.summary.layer(&lp.layer)).collect();
    let chunks = input_chunks(model, &layers, calib, calibration_config, &settings)?;
    let mut inputs = BTreeMap::new();
    let total = todo.len();
    let mut chosen_inputs: BTreeMap<String, QParams> = BTreeMap::new();
    for (i, lp) in todo.iter().enumerate() {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        if let Some(chunk) = chunks.iter().find(|c| c.start == i) {
            inputs.clear();
            inputs = layer_data::collect_inputs(
                model,
                &layers[chunk.clone()],
                calib,
                calibration_config,
                &settings,
                cancel,
            )?;
        }
        let Some(layer) = model.summary.layer(&lp.layer) else { continue };
        let act = lp.input.as_ref();
        // A shared input may already have a range chosen by its first consumer's EasyQuant.
        let input_params = act.map(|a| chosen_inputs.get(&a.tensor).copied().unwrap_or(a.params));
        let mut problem = layer_data::LayerProblem::new(model, layer, &inputs[&layer.input], &settings)?;
        let weight = model.constant_f32(&layer.weight)?;
        let algos = lp.config.algorithms;

        // EasyQuant: activation scale (only for the tensor's first consumer) and weight scales.
        let mut act_params = input_params;
        let mut wq = quantize_weight(&weight.view(), layer.out_channel_axis, &lp.config.weight)?;
        if algos.easy_quant {
            let first_consumer = act.is_some_and(|a| a.first_consumer);
            let result = easyquant::search(&problem, &weight, &lp.config, act, first_consumer, &settings.easy_quant)?;
            if let (Some(range), Some(a)) = (result.activation_range, act) {
                out.activations.insert(
                    a.tensor.clone(),
                    ActivationRefinement { config: lp.config, observer_range: a.range, range },
                );
                let params = a.scheme.params(range);
                chosen_inputs.insert(a.tensor.clone(), params);
                act_params = Some(params);
            }
            wq = result.weight;
        }
        problem.quantize_input(act_params.as_ref());
        let nearest_mse =
            problem.reconstruction_mse(&quantize_weight(&weight.view(), layer.out_channel_axis, &lp.config.weight)?)?;
        let mut input_scale = None;
        match algos.weight_algorithm {
            WeightAlgorithm::Gptq => wq = gptq::quantize(&problem, &weight, &lp.config.weight, &settings.gptq, cancel)?,
            WeightAlgorithm::Awq => {
                let (scaled, s) = awq::quantize(&problem, &weight, &lp.config.weight, &settings.awq, cancel)?;
                wq = scaled;
                input_scale = Some(s);
            }
            WeightAlgorithm::Rtn | WeightAlgorithm::Hqq => {}
        }
        if algos.ada_round {
            wq = adaround::optimize(&problem, &weight, &wq, &settings.ada_round, settings.seed, cancel)?;
        }
        let bias = if algos.bias_correction { bias_correction::correct(model, layer, &problem, &wq)? } else { None };
        let refined_mse = match &input_scale {
            Some(s) => problem.mse_of(&layer_data::weight_matrix(
                &awq::effective_weight(&wq, s, layer.out_channel_axis)?,
                layer.out_channel_axis,
            )),
            None => problem.reconstruction_mse(&wq)?,
        };
        out.layers.insert(
            lp.layer.clone(),
            LayerRefinement {
                config: lp.config,
                input_params: act_params,
                weight: Some(wq),
                bias,
                input_scale,
                mse: (nearest_mse, refined_mse),
            },
        );
        on_progress(i + 1, total);
    }
    Ok(out)
}
