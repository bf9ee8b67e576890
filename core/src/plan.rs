//! The quantization plan: from a model, a recipe and its calibration, exactly which tensors are
//! quantized and how. One plan drives simulation and export alike (mark, then emit), so the two
//! cannot disagree.
//!
//! Placement follows ONNX Runtime's QDQ quantizer for the quantizable ops (Conv, ConvTranspose,
//! Gemm, MatMul): the activation input gets a Q/DQ pair, the weight is stored as integers with a
//! DequantizeLinear, and the bias as int32 with scale `s_input · s_weight`. Other ops stay float.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::OnnxModel;
use crate::quant::recipe::Recipe;
use crate::quant::{
    ActivationScheme, Granularity, LayerConfig, QParams, WeightQuant, compute_scale_zp, quantize_weight,
};

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

/// The op-type → handler table; op types not listed get [`DEFAULT_HANDLER`].
pub const OP_HANDLERS: [(&str, OpHandler); 4] = [
    ("Conv", OpHandler { activation_input: true, weight: true, bias: true }),
    ("ConvTranspose", OpHandler { activation_input: true, weight: true, bias: true }),
    ("Gemm", OpHandler { activation_input: true, weight: true, bias: true }),
    ("MatMul", OpHandler { activation_input: true, weight: true, bias: false }),
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
    /// Quantized layers that read the quantized value, in network order.
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
    /// Quantized layers in network order (kept-float layers are absent).
    pub layers: Vec<LayerPlan>,
    /// Quantized activation tensors by name.
    pub activations: BTreeMap<String, ActQuant>,
}

impl QuantPlan {
    /// Builds the plan for `recipe` on `model`; the recipe must hold a calibration when any
    /// activation is quantized.
    pub fn build(model: &OnnxModel, recipe: &Recipe, filter: &PlanFilter) -> Result<Self> {
        recipe.validate(&model.summary)?;
        let mut plan = Self::default();
        // Mark.
        for layer in &model.summary.layers {
            let config = recipe.config_for(&layer.name);
            if config.keep_float || !filter.includes(&layer.name) {
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
                let Some(cal) = recipe.calibration.as_ref() else {
                    return Err(Error::Config("the recipe has no calibration: calibrate before simulating".into()));
                };
                match cal.activations.get(&layer.input) {
                    Some(stats) => {
                        let entry = plan.activations.entry(layer.input.clone()).or_insert_with(|| {
                            let scheme = config.activation;
                            let observed =
                                cal.range_of(&layer.input, stats, &scheme.observer, scheme.qrange(), scheme.symmetric);
                            // EasyQuant's range, while it belongs to this config and calibration.
                            let range = recipe
                                .refinements
                                .activations
                                .get(&layer.input)
                                .filter(|r| r.config == config && r.observer_range == observed)
                                .map_or(observed, |r| r.range);
                            let params = compute_scale_zp(range.0, range.1, scheme.qrange(), scheme.symmetric);
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
            let refinement = recipe
                .refinements
                .layers
                .get(&layer.name)
                .filter(|r| r.config == config && r.input_params == input_params && !filter.skip_weights);
            let weight_quant = if !h.weight || filter.skip_weights {
                None
            } else if let Some(wq) = refinement.and_then(|r| r.weight.clone()) {
                Some(wq)
            } else {
                let t = model.constant_tensor(&layer.weight)?;
                let view = t.to_plain_array_view::<f32>().map_err(|e| Error::runtime(&e))?;
                Some(quantize_weight(&view, layer.out_channel_axis, &config.weight)?)
            };
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
            });
        }
        plan.quantize_biases(model)?;
        Ok(plan)
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
                    let b = model.constant_tensor(bias)?;
                    let b = b.to_plain_array_view::<f32>().map_err(|e| Error::runtime(&e))?;
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

    /// The plan of `layer`.
    pub fn layer(&self, layer: &str) -> Option<&LayerPlan> {
        self.layers.iter().find(|l| l.layer == layer)
    }
}
