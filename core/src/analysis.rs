//! Sensitivity analysis (as AIMET's QuantAnalyzer): per layer, the model metric with only that
//! layer quantized (enable-one), with all but that layer quantized (disable-one), weights-only and
//! activations-only, and a bit-width sweep. Evaluations are incremental: each starts from the
//! state of an all-float or all-quantized base run, so only the graph from the layer on re-runs.

use std::collections::BTreeSet;
use std::sync::atomic::AtomicBool;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::OnnxModel;
use crate::plan::{PlanFilter, QuantPlan};
use crate::quant::recipe::Recipe;
use crate::simulate::{EvalConfig, Evaluation, SimState, Simulator};

/// The model metric sensitivity is measured with (higher is better for all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SensitivityMetric {
    /// Accuracy against the labels.
    Accuracy,
    /// Top-1 agreement with the float model.
    Top1Agreement,
    /// SQNR of the first output, dB.
    OutputSqnr,
}

impl SensitivityMetric {
    /// The metric of an evaluation.
    pub fn of(self, e: &Evaluation) -> Result<f64> {
        match self {
            Self::Accuracy => e
                .metrics
                .quant_accuracy
                .ok_or_else(|| Error::Config("accuracy needs an evaluation set with labels".into())),
            Self::Top1Agreement => Ok(e.metrics.top1_agreement),
            Self::OutputSqnr => Ok(e.metrics.output_sqnr_db),
        }
    }
}

impl std::str::FromStr for SensitivityMetric {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "accuracy" => Ok(Self::Accuracy),
            "agreement" | "top1" => Ok(Self::Top1Agreement),
            "sqnr" => Ok(Self::OutputSqnr),
            _ => Err(Error::Config(format!("unknown metric '{s}' (expected accuracy, agreement, sqnr)"))),
        }
    }
}

/// The metric at one bit width of a layer's sweep.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SweepPoint {
    /// Bit width.
    pub bits: u8,
    /// Metric with only this layer quantized, its weights at `bits` (activations as configured).
    pub weights: f64,
    /// Metric with only this layer quantized, its activations at `bits` (weights as configured).
    pub activations: f64,
}

/// Sensitivity of one layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerSensitivity {
    /// Layer name.
    pub name: String,
    /// Metric with only this layer quantized.
    pub enable_one: f64,
    /// Metric with every layer but this one quantized.
    pub disable_one: f64,
    /// Metric with only this layer's weights quantized.
    pub weights_only: f64,
    /// Metric with only this layer's input activation quantized.
    pub activations_only: f64,
    /// Bit-width sweep.
    pub sweep: Vec<SweepPoint>,
}

/// Runs the analysis for every layer the recipe quantizes; `on_layer` receives each result as it
/// completes (network order).
pub fn sensitivity(
    sim: &Simulator,
    model: &OnnxModel,
    recipe: &Recipe,
    metric: SensitivityMetric,
    sweep_bits: &[u8],
    on_layer: &mut dyn FnMut(&LayerSensitivity),
    cancel: &AtomicBool,
) -> Result<Vec<LayerSensitivity>> {
    let config = EvalConfig { skip_local: true, ..EvalConfig::default() };
    let eval = |plan: &QuantPlan, base: Option<&SimState>| -> Result<(f64, SimState)> {
        let (e, state) = sim.evaluate_from(base, plan, &config, &mut |_| {}, cancel)?;
        Ok((metric.of(&e)?, state))
    };
    let float_plan = QuantPlan::default();
    let (_, float_base) = eval(&float_plan, None)?;
    let full_plan = QuantPlan::build(model, recipe, &PlanFilter::default())?;
    let (_, full_base) = eval(&full_plan, None)?;
    let mut results = Vec::new();
    for layer in full_plan.layers.iter().map(|l| l.layer.clone()) {
        let one: BTreeSet<String> = [layer.clone()].into();
        let only = |skip_weights, skip_activations| PlanFilter {
            only: Some(one.clone()),
            skip_weights,
            skip_activations,
            ..PlanFilter::default()
        };
        let plan_for = |r: &Recipe, f: &PlanFilter| QuantPlan::build(model, r, f);
        let enable_one = eval(&plan_for(recipe, &only(false, false))?, Some(&float_base))?.0;
        let except = PlanFilter { except: one.clone(), ..PlanFilter::default() };
        let disable_one = eval(&plan_for(recipe, &except)?, Some(&full_base))?.0;
        let weights_only = eval(&plan_for(recipe, &only(false, true))?, Some(&float_base))?.0;
        let activations_only = eval(&plan_for(recipe, &only(true, false))?, Some(&float_base))?.0;
        let mut sweep = Vec::new();
        for &bits in sweep_bits {
            let mut r = recipe.clone();
            let mut cfg = recipe.config_for(&layer);
            cfg.weight.bits = bits;
            r.layers.insert(layer.clone(), cfg);
            let weights = eval(&plan_for(&r, &only(false, false))?, Some(&float_base))?.0;
            let mut cfg = recipe.config_for(&layer);
            cfg.activation.bits = bits;
            r.layers.insert(layer.clone(), cfg);
            let activations = eval(&plan_for(&r, &only(false, false))?, Some(&float_base))?.0;
            sweep.push(SweepPoint { bits, weights, activations });
        }
        let result = LayerSensitivity { name: layer, enable_one, disable_one, weights_only, activations_only, sweep };
        on_layer(&result);
        results.push(result);
    }
    Ok(results)
}
