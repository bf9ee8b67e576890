//! The quantization plan: from a model, a recipe and its calibration, exactly which tensors are
//! quantized and how. One plan drives simulation and export alike (mark, then emit), so the two
//! cannot disagree.
//!
//! For the quantizable ops (Conv, ConvTranspose, Gemm, MatMul) the activation input gets a Q/DQ
//! pair, the weight is stored as integers with a DequantizeLinear, and the bias as int32 with
//! scale `s_input · s_weight`. Which other tensors are quantized depends on the recipe's
//! [`Target`]: TensorRT's placement stops there; ONNX Runtime's (`placement`) also quantizes the
//! layers' outputs and the inputs and outputs of the other ops its QDQ registry handles.

mod fusion;
mod placement;
mod tensors;

pub use fusion::{int8_block_input, integer_kernel, qlinear_io, requantized_output};

pub use placement::{ORT_RULES, Rule, rule};
pub use tensors::QuantizedTensor;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::algorithms::{RefineInput, RefineTask, Refinements, layer_data};
use crate::error::{Error, Result};
use crate::model::{OnnxModel, QuantizableLayer};
use crate::observe::Calibration;
use crate::quant::recipe::Recipe;
use crate::quant::{
    ActivationScheme, Granularity, LayerConfig, QParams, RuntimeProfile, Target, WeightAlgorithm, WeightFormat,
    WeightQuant, quantize_weight,
};

/// What was measured for a recipe, held beside it (the recipe is configuration only): the
/// calibration statistics and what the layer-wise algorithms computed from them. Clones share.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Measured {
    /// The calibration, once calibrated.
    pub calibration: Option<Arc<Calibration>>,
    /// The layer-wise algorithms' results for that calibration (empty when none ran). The plan
    /// applies a layer's only while its config and input quantization still match.
    pub refinements: Arc<Refinements>,
}

impl Measured {
    /// A calibration without refinements.
    pub fn calibrated(calibration: Calibration) -> Self {
        Self { calibration: Some(Arc::new(calibration)), refinements: Arc::default() }
    }
}

/// How one op type is handled: which of its inputs are quantized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpHandler {
    /// Quantize input 0 (the activation).
    pub activation_input: bool,
    /// Quantize input 1 (the constant weight).
    pub weight: bool,
    /// Quantize input 2 (the bias) as int32.
    pub bias: bool,
}

/// The op-type → handler table; op types not listed get [`DEFAULT_HANDLER`]. An embedding
/// Gather's table is quantized in weight-only recipes only (its input is the indices).
pub const OP_HANDLERS: [(&str, OpHandler); 5] = [
    ("Conv", OpHandler { activation_input: true, weight: true, bias: true }),
    ("ConvTranspose", OpHandler { activation_input: true, weight: true, bias: true }),
    ("Gemm", OpHandler { activation_input: true, weight: true, bias: true }),
    ("MatMul", OpHandler { activation_input: true, weight: true, bias: false }),
    ("Gather", OpHandler { activation_input: false, weight: true, bias: false }),
];

/// Ops without a handler stay float.
pub const DEFAULT_HANDLER: OpHandler = OpHandler { activation_input: false, weight: false, bias: false };

/// The handler of an op type.
pub fn handler(op_type: &str) -> OpHandler {
    OP_HANDLERS.iter().find(|(op, _)| *op == op_type).map_or(DEFAULT_HANDLER, |(_, h)| *h)
}

/// A quantized activation tensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActQuant {
    /// The tensor.
    pub tensor: String,
    /// The clip range the observer chose.
    pub range: (f32, f32),
    /// Scale, zero point and integer range.
    pub params: QParams,
    /// The scheme (of the first consumer in network order).
    pub scheme: ActivationScheme,
    /// The nodes that read the quantized value, in network order (the quantized layers reading
    /// it; with ONNX Runtime's placement, every reader).
    pub consumers: Vec<String>,
    /// Dynamic quantization: scale and zero point come from each batch's range at run time
    /// (ONNX DynamicQuantizeLinear); `params` then only carries the integer range.
    pub dynamic: bool,
}

/// An int32 bias.
#[derive(Debug, Clone, PartialEq)]
pub struct BiasQuant {
    /// The bias tensor.
    pub tensor: String,
    /// Scale per output channel (`s_input · s_weight`).
    pub scales: Vec<f32>,
    /// The int32 values.
    pub q: Vec<i32>,
}

impl BiasQuant {
    /// The dequantized bias.
    pub fn dequantize(&self) -> Vec<f32> {
        self.q.iter().zip(&self.scales).map(|(&q, &s)| q as f32 * s).collect()
    }
}

/// The plan for one quantizable layer.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerPlan {
    /// Layer (node) name.
    pub layer: String,
    /// Its op type.
    pub op_type: String,
    /// Its configuration.
    pub config: LayerConfig,
    /// The weight tensor.
    pub weight: String,
    /// The quantized weight (None when weights are not quantized).
    pub weight_quant: Option<WeightQuant>,
    /// The quantized bias, when the layer has one and input and weight are quantized.
    pub bias: Option<BiasQuant>,
    /// The activation input tensor, when it is quantized.
    pub activation: Option<String>,
    /// The float bias corrected by bias correction (tensor, values): the int32 bias is made from
    /// it, and where the bias stays float it replaces the model's.
    pub corrected_bias: Option<(String, Vec<f32>)>,
    /// AWQ's per-input-channel scales `s`: the weight is quantized multiplied by them, and the
    /// layer's input is multiplied by `1 / s` (a Mul before the layer, in simulation and export).
    pub input_scale: Option<Vec<f32>>,
    /// `(K, block)` when ONNX Runtime runs the layer as MatMulNBits with int8 input blocks (its
    /// QDQ fusion of a block-wise weight, [`int8_block_input`]): the simulation quantizes the
    /// input the same way.
    pub int8_blocks: Option<(usize, usize)>,
    /// The plan's runtime sums this layer's u8×s8 product pairs in a saturating int16 and its
    /// weights can overflow it: the simulation reproduces the saturation, and the GUI and report
    /// warn (see [`RuntimeProfile`]).
    pub saturates: bool,
}

/// Whether some output channel of `wq` holds two weights whose products with inputs in
/// [0, 255] can sum beyond the int16 range (weights with their zero point, as the kernel
/// multiplies them).
fn pairs_can_overflow(wq: &WeightQuant) -> bool {
    use crate::quant::runtime::{I16_MAX, I16_MIN};
    let lanes: Vec<Vec<i32>> = match wq.axis {
        Some(axis) => wq.q.axis_iter(ndarray::Axis(axis)).map(|l| l.iter().map(|&v| i32::from(v)).collect()).collect(),
        None => vec![wq.q.iter().map(|&v| i32::from(v)).collect()],
    };
    lanes.iter().any(|lane| {
        let mut pos: Vec<i32> = lane.iter().copied().filter(|&w| w > 0).collect();
        let mut neg: Vec<i32> = lane.iter().copied().filter(|&w| w < 0).collect();
        pos.sort_unstable_by(|a, b| b.cmp(a));
        neg.sort_unstable();
        let top = pos.iter().take(2).sum::<i32>() * 255;
        let bottom = neg.iter().take(2).sum::<i32>() * 255;
        top > I16_MAX || bottom < I16_MIN
    })
}

/// Whether the plan leaves `layer` out: kept float, excluded, filtered out, or an embedding in a
/// recipe that is not weight-only.
fn skipped(layer: &QuantizableLayer, config: &LayerConfig, recipe: &Recipe, filter: &PlanFilter) -> bool {
    config.keep_float
        || recipe.excludes(&layer.name, &layer.op_type)
        || !filter.includes(&layer.name)
        || (layer.op_type == "Gather" && !recipe.weights_only)
}

/// The weight of `layer` quantized as `config` says without data: HQQ on block-wise MatMul and
/// Gemm weights, as ONNX Runtime's (its real zero points are written by MatMulNBits); nearest
/// rounding elsewhere and for GPTQ and AWQ, which come as refinements (they need data).
fn layer_weight(
    model: &OnnxModel,
    layer: &QuantizableLayer,
    config: &LayerConfig,
    recipe: &Recipe,
) -> Result<WeightQuant> {
    let per_group = matches!(config.weight.granularity, Granularity::PerGroup { .. })
        && matches!(layer.op_type.as_str(), "MatMul" | "Gemm");
    model.with_constant_f32(&layer.weight, |view| match config.algorithms.weight_algorithm {
        WeightAlgorithm::Hqq if per_group => crate::algorithms::hqq::quantize(
            &view,
            layer.out_channel_axis,
            &config.weight,
            &recipe.algorithm_settings.hqq,
        ),
        _ => quantize_weight(&view, layer.out_channel_axis, &config.weight),
    })
}

/// Which parts of the recipe a plan applies (for sensitivity and per-layer errors).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanFilter {
    /// Only these layers are quantized (None: all that the recipe quantizes).
    pub only: Option<BTreeSet<String>>,
    /// These layers stay float.
    pub except: BTreeSet<String>,
    /// Quantize weights.
    pub skip_weights: bool,
    /// Quantize activations.
    pub skip_activations: bool,
}

impl PlanFilter {
    fn includes(&self, layer: &str) -> bool {
        self.only.as_ref().is_none_or(|o| o.contains(layer)) && !self.except.contains(layer)
    }
}

/// Everything that is quantized, in network order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QuantPlan {
    /// The runtime whose arithmetic the simulation reproduces.
    pub runtime: RuntimeProfile,
    /// Where Q/DQ pairs go.
    pub target: Target,
    /// How block-wise weights are written on export.
    pub weight_format: WeightFormat,
    /// Quantized layers in network order (kept-float layers are absent).
    pub layers: Vec<LayerPlan>,
    /// Quantized activation tensors by name.
    pub activations: BTreeMap<String, ActQuant>,
}

impl QuantPlan {
    /// Builds the plan for `recipe` on `model` with what was `measured` for it; a calibration is
    /// needed when any activation is statically quantized.
    pub fn build(model: &OnnxModel, recipe: &Recipe, measured: &Measured, filter: &PlanFilter) -> Result<Self> {
        recipe.validate(&model.summary)?;
        // Weight-only: no activation is quantized, whatever the filter says.
        let weights_only = PlanFilter { skip_activations: true, ..filter.clone() };
        let filter = if recipe.weights_only { &weights_only } else { filter };
        let mut plan = Self {
            runtime: recipe.runtime,
            target: recipe.target,
            weight_format: recipe.weight_format,
            ..Self::default()
        };
        // Mark.
        for layer in &model.summary.layers {
            let config = recipe.config_for(&layer.name);
            if skipped(layer, &config, recipe, filter) {
                continue;
            }
            let h = handler(&layer.op_type);
            let activation = if !h.activation_input || filter.skip_activations {
                None
            } else if config.activation.dynamic {
                let scheme = config.activation;
                let entry = plan.activations.entry(layer.input.clone()).or_insert_with(|| ActQuant {
                    tensor: layer.input.clone(),
                    range: (0.0, 0.0),
                    params: QParams { scale: 1.0, zero_point: 0, range: scheme.qrange() },
                    scheme,
                    consumers: Vec::new(),
                    dynamic: true,
                });
                entry.consumers.push(layer.name.clone());
                Some(layer.input.clone())
            } else {
                let Some(cal) = measured.calibration.as_deref() else {
                    return Err(Error::Config("the recipe has no calibration: calibrate before simulating".into()));
                };
                match cal.activations.get(&layer.input) {
                    Some(stats) => {
                        let entry = plan.activations.entry(layer.input.clone()).or_insert_with(|| {
                            let scheme = config.activation;
                            let observed =
                                cal.range_of(&layer.input, stats, &scheme.observer, scheme.qrange(), scheme.symmetric);
                            // EasyQuant's range, while it belongs to this config and calibration.
                            let range = measured
                                .refinements
                                .activations
                                .get(&layer.input)
                                .filter(|r| r.config == config && r.observer_range == observed)
                                .map_or(observed, |r| r.range);
                            let params = scheme.params(range);
                            ActQuant {
                                tensor: layer.input.clone(),
                                range,
                                params,
                                scheme,
                                consumers: Vec::new(),
                                dynamic: false,
                            }
                        });
                        entry.consumers.push(layer.name.clone());
                        Some(layer.input.clone())
                    }
                    None => None,
                }
            };
            let input_params =
                activation.as_ref().map(|t| &plan.activations[t]).filter(|a| !a.dynamic).map(|a| a.params);
            let refinement = measured
                .refinements
                .layers
                .get(&layer.name)
                .filter(|r| r.config == config && r.input_params == input_params && !filter.skip_weights);
            let weight_quant = if !h.weight || filter.skip_weights {
                None
            } else if let Some(wq) = refinement.and_then(|r| r.weight.clone()) {
                Some(wq)
            } else {
                Some(layer_weight(model, layer, &config, recipe)?)
            };
            let input_scale = refinement.and_then(|r| r.input_scale.clone()).filter(|_| weight_quant.is_some());
            let corrected_bias = refinement.and_then(|r| r.bias.clone());
            plan.layers.push(LayerPlan {
                layer: layer.name.clone(),
                op_type: layer.op_type.clone(),
                config,
                weight: layer.weight.clone(),
                weight_quant,
                bias: None,
                activation,
                corrected_bias,
                input_scale,
                int8_blocks: None,
                saturates: false,
            });
        }
        plan.place(model, recipe, measured, filter);
        plan.quantize_biases(model)?;
        plan.mark_saturation(model, measured.calibration.as_deref());
        let blocks: Vec<_> =
            plan.layers.iter().map(|lp| int8_block_input(model, &plan, lp, measured.calibration.as_deref())).collect();
        for (lp, b) in plan.layers.iter_mut().zip(blocks) {
            lp.int8_blocks = b;
        }
        Ok(plan)
    }

    /// Marks the layers whose int16 pair sums can overflow on the plan's runtime: ONNX Runtime
    /// runs them with a u8×s8 integer kernel (see [`integer_kernel`]), the input is 8-bit
    /// unsigned, the weight is stored as int8, and some output channel holds two weights whose
    /// products with inputs in [0, 255] can leave the int16 range.
    fn mark_saturation(&mut self, model: &OnnxModel, calibration: Option<&Calibration>) {
        if !self.runtime.saturates_u8s8_pairs() {
            return;
        }
        let marks: Vec<bool> = self
            .layers
            .iter()
            .map(|lp| {
                let Some(act) = lp.activation.as_ref().and_then(|t| self.activations.get(t)) else { return false };
                let Some(wq) = &lp.weight_quant else { return false };
                let u8_input = act.params.range.qmin == 0 && act.params.range.qmax == 255;
                let i8_weight =
                    wq.params.iter().all(|p| p.range.qmin >= -128 && p.range.qmax <= 127) && wq.group_size.is_none();
                u8_input && i8_weight && integer_kernel(model, lp, self, calibration) && pairs_can_overflow(wq)
            })
            .collect();
        for (lp, m) in self.layers.iter_mut().zip(marks) {
            lp.saturates = m;
        }
    }

    /// Layers whose arithmetic on the plan's runtime the simulation does not reproduce: on x86
    /// without VNNI, int8 (signed) activations with weights beyond 7 bits, whose ORT kernels were
    /// measured to lose accuracy that no exact simulation shows.
    pub fn inexact_layers(&self) -> Vec<&str> {
        if !self.runtime.saturates_u8s8_pairs() {
            return Vec::new();
        }
        self.layers
            .iter()
            .filter(|lp| {
                let signed_input = lp
                    .activation
                    .as_ref()
                    .and_then(|t| self.activations.get(t))
                    .is_some_and(|a| a.params.range.qmin < 0 && a.params.range.qmax <= 127);
                let wide_weight = lp
                    .weight_quant
                    .as_ref()
                    .is_some_and(|w| w.params.iter().any(|p| p.range.qmax > 63 && p.range.qmax <= 127));
                signed_input && wide_weight && matches!(lp.op_type.as_str(), "MatMul" | "Gemm" | "Conv")
            })
            .map(|lp| lp.layer.as_str())
            .collect()
    }

    /// The layers marked [`LayerPlan::saturates`].
    pub fn saturating_layers(&self) -> Vec<&str> {
        self.layers.iter().filter(|l| l.saturates).map(|l| l.layer.as_str()).collect()
    }

    /// Quantizes the biases to int32; they need the final input scales (a shared tensor takes its
    /// first consumer's).
    fn quantize_biases(&mut self, model: &OnnxModel) -> Result<()> {
        for (lp, layer) in self.layers.iter_mut().filter_map(|lp| {
            let l = model.summary.layer(&lp.layer)?;
            Some((lp, l))
        }) {
            let (Some(bias), Some(act), Some(wq)) = (&layer.bias, &lp.activation, &lp.weight_quant) else { continue };
            if !handler(&layer.op_type).bias || matches!(lp.config.weight.granularity, Granularity::PerGroup { .. }) {
                continue;
            }
            // A dynamic input scale is only known at run time: the bias stays float.
            if self.activations[act].dynamic {
                continue;
            }
            let s_in = self.activations[act].params.scale;
            let values: Vec<f32> = match &lp.corrected_bias {
                Some((tensor, values)) if tensor == bias => values.clone(),
                _ => {
                    let b = model.constant_f32(bias)?;
                    b.iter().copied().collect()
                }
            };
            let scales: Vec<f32> = if wq.params.len() == 1 {
                vec![s_in * wq.params[0].scale; values.len()]
            } else if wq.params.len() == values.len() {
                wq.params.iter().map(|p| s_in * p.scale).collect()
            } else {
                continue;
            };
            let scaled: Vec<f32> = values.iter().zip(&scales).map(|(&v, &s)| (v / s).round_ties_even()).collect();
            // At high bit widths `s_input · s_weight` gets so small that the bias would saturate
            // int32; such a bias stays float (in simulation and export alike).
            if scaled.iter().any(|q| !q.is_finite() || q.abs() >= i32::MAX as f32) {
                continue;
            }
            let q = scaled.iter().map(|&q| q as i32).collect();
            lp.bias = Some(BiasQuant { tensor: bias.clone(), scales, q });
        }
        Ok(())
    }

    /// The layers the layer-wise algorithms refine under this plan (those whose config asks for
    /// it, with a quantized weight, of a kind the algorithms handle), with their inputs' static
    /// quantization.
    pub fn refine_tasks(&self, model: &OnnxModel) -> Vec<RefineTask> {
        self.layers
            .iter()
            .filter(|lp| lp.config.algorithms.refines() && lp.weight_quant.is_some())
            .filter(|lp| model.summary.layer(&lp.layer).is_some_and(|l| layer_data::supported(model, l)))
            .map(|lp| RefineTask {
                layer: lp.layer.clone(),
                config: lp.config,
                input: lp.activation.as_ref().and_then(|t| self.activations.get(t)).filter(|a| !a.dynamic).map(|a| {
                    RefineInput {
                        tensor: a.tensor.clone(),
                        range: a.range,
                        params: a.params,
                        scheme: a.scheme,
                        first_consumer: a.consumers.first() == Some(&lp.layer),
                    }
                }),
            })
            .collect()
    }

    /// Adds the marks of the recipe's placement target beyond the layers' inputs (`placement`).
    fn place(&mut self, model: &OnnxModel, recipe: &Recipe, measured: &Measured, filter: &PlanFilter) {
        if !filter.skip_activations
            && !recipe.defaults.activation.dynamic
            && let Some(calibration) = measured.calibration.as_deref()
        {
            let walk = placement::Walk { model, calibration, filter, recipe };
            match self.target {
                Target::Ort | Target::Npu => walk.mark(self),
                Target::TensorRt => walk.mark_residual_adds(self),
            }
        }
    }

    /// The opset the QDQ export of a model of `opset` is written in: 13 at least when a weight is
    /// per channel or a bias is quantized (DequantizeLinear's `axis`), 10 at least otherwise.
    pub fn export_opset(&self, opset: i64) -> i64 {
        let needs_13 =
            self.layers.iter().any(|l| l.weight_quant.as_ref().is_some_and(|w| w.axis.is_some()) || l.bias.is_some());
        if needs_13 { opset.max(13) } else { opset.max(10) }
    }

    /// The plan of `layer`.
    pub fn layer(&self, layer: &str) -> Option<&LayerPlan> {
        self.layers.iter().find(|l| l.layer == layer)
    }
}
