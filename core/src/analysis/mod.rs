//! Analyses over many evaluations: per-layer sensitivity (`sensitivity.rs`, as AIMET's
//! QuantAnalyzer) and the mixed-precision search. Evaluations are incremental: each starts from
//! the state of an all-float, all-quantized or previous run, so only the graph from the change on
//! re-runs.

mod sensitivity;
mod weights;

pub use sensitivity::{
    LayerSensitivity, SENSITIVITY_SUBSET, SensitivityOptions, SensitivityProgress, SweepPoint, sensitivity,
};
pub use weights::{WEIGHT_ERROR_BITS, WeightErrors, weight_errors};

use std::sync::atomic::AtomicBool;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::OnnxModel;
use crate::plan::{Measured, PlanFilter, QuantPlan};
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

/// Weight bit widths the mixed-precision search moves through, highest first.
pub const MIXED_PRECISION_BITS: [u8; 5] = [8, 6, 4, 3, 2];

/// What the mixed-precision search must meet.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Accuracy (or top-1 agreement without labels) at most this many points below float.
    AccuracyDrop(f64),
    /// Quantized size at most this many bytes.
    SizeBytes(u64),
}

/// One configuration on the search path, measured by a full evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathPoint {
    /// Weight bits per layer, network order.
    pub bits: Vec<(String, u8)>,
    /// Quantized size.
    pub size_bytes: u64,
    /// Accuracy (None without labels).
    pub accuracy: Option<f64>,
    /// Top-1 agreement with float.
    pub top1_agreement: f64,
    /// Output SQNR, dB.
    pub output_sqnr_db: f64,
    /// Whether no other point is both smaller and better.
    pub pareto: bool,
}

/// The result of the search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MixedPrecision {
    /// Every configuration visited, from all layers at 8 bits down.
    pub path: Vec<PathPoint>,
    /// Index in `path` of the chosen configuration (None when no point meets the target).
    pub chosen: Option<usize>,
    /// Float accuracy (or 1.0 for agreement) the drop is measured from.
    pub float_metric: f64,
}

impl MixedPrecision {
    /// The recipe of path point `i`: `base` with per-layer weight bits.
    pub fn recipe_of(&self, base: &Recipe, i: usize) -> Recipe {
        let mut r = base.clone();
        for (layer, bits) in &self.path[i].bits {
            let mut cfg = base.config_for(layer);
            cfg.weight.bits = *bits;
            r.layers.insert(layer.clone(), cfg);
        }
        r
    }
}

/// A step of the mixed-precision search, reported as it happens (for progress).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SearchStep<'a> {
    /// The noise of `done` of `total` layers' weights was measured at every bit width.
    LayerMeasured {
        /// Layers measured so far.
        done: usize,
        /// Layers to measure.
        total: usize,
    },
    /// The `done`-th of `total` configurations on the path was measured.
    PathPoint {
        /// The configuration and its metrics (`pareto` is not known yet).
        point: &'a PathPoint,
        /// Points measured so far.
        done: usize,
        /// Length of the whole path.
        total: usize,
    },
}

/// Greedy mixed precision: each layer's output-SQNR with only its weights quantized at each bit
/// width gives its noise power; starting from all layers at 8 bits, the step that adds the least
/// noise per byte saved is taken until every layer is at 2 bits, and every configuration on the
/// way is verified by a full (incremental) evaluation. The chosen point is the best-measured one
/// meeting the target (`AccuracyDrop`: the smallest that meets it).
pub fn mixed_precision(
    sim: &Simulator,
    model: &OnnxModel,
    recipe: &Recipe,
    measured: &Measured,
    target: Target,
    on_step: &mut dyn FnMut(SearchStep<'_>),
    cancel: &AtomicBool,
) -> Result<MixedPrecision> {
    let config = EvalConfig { skip_local: true, ..EvalConfig::default() };
    let layers: Vec<String> = QuantPlan::build(model, recipe, measured, &PlanFilter::default())?
        .layers
        .iter()
        .filter(|l| l.weight_quant.is_some())
        .map(|l| l.layer.clone())
        .collect();
    let with_bits = |bits: &[(String, u8)]| {
        let mut r = recipe.clone();
        for (layer, b) in bits {
            let mut cfg = recipe.config_for(layer);
            cfg.weight.bits = *b;
            r.layers.insert(layer.clone(), cfg);
        }
        r
    };
    // Noise power (relative to the output's) of each layer's weights at each bit width.
    let (_, float_base) = sim.evaluate_from(None, &QuantPlan::default(), &config, &mut |_| {}, cancel)?;
    let mut noise: Vec<Vec<f64>> = Vec::new();
    for layer in &layers {
        let only = PlanFilter { only: Some([layer.clone()].into()), skip_activations: true, ..PlanFilter::default() };
        let mut row = Vec::new();
        for &b in &MIXED_PRECISION_BITS {
            let plan = QuantPlan::build(model, &with_bits(&[(layer.clone(), b)]), measured, &only)?;
            let (e, _) = sim.evaluate_from(Some(&float_base), &plan, &config, &mut |_| {}, cancel)?;
            row.push(10f64.powf(-e.metrics.output_sqnr_db / 10.0));
        }
        noise.push(row);
        on_step(SearchStep::LayerMeasured { done: noise.len(), total: layers.len() });
    }
    let path_len = layers.len() * (MIXED_PRECISION_BITS.len() - 1) + 1;
    let mut level = vec![0usize; layers.len()];
    let mut path = Vec::new();
    let mut base_state: Option<SimState> = None;
    loop {
        let bits: Vec<(String, u8)> =
            layers.iter().zip(&level).map(|(l, &i)| (l.clone(), MIXED_PRECISION_BITS[i])).collect();
        let plan = QuantPlan::build(model, &with_bits(&bits), measured, &PlanFilter::default())?;
        let (e, state) = sim.evaluate_from(base_state.as_ref(), &plan, &config, &mut |_| {}, cancel)?;
        if base_state.is_none() {
            base_state = Some(state);
        }
        let point = PathPoint {
            bits,
            size_bytes: e.metrics.quant_size_bytes,
            accuracy: e.metrics.quant_accuracy,
            top1_agreement: e.metrics.top1_agreement,
            output_sqnr_db: e.metrics.output_sqnr_db,
            pareto: false,
        };
        on_step(SearchStep::PathPoint { point: &point, done: path.len() + 1, total: path_len });
        path.push((point, e.metrics.float_accuracy));
        // The next step: the layer whose downgrade adds the least noise per byte saved.
        let mut best: Option<(f64, usize)> = None;
        for (i, layer) in layers.iter().enumerate() {
            if level[i] + 1 >= MIXED_PRECISION_BITS.len() {
                continue;
            }
            let elems: u64 = model.summary.layer(layer).map_or(0, |l| l.weight_shape.iter().product());
            let saved =
                elems as f64 * f64::from(MIXED_PRECISION_BITS[level[i]] - MIXED_PRECISION_BITS[level[i] + 1]) / 8.0;
            let added = noise[i][level[i] + 1] - noise[i][level[i]];
            let score = added.max(0.0) / saved.max(1.0);
            if best.is_none_or(|(s, _)| score < s) {
                best = Some((score, i));
            }
        }
        match best {
            Some((_, i)) => level[i] += 1,
            None => break,
        }
    }
    let has_labels = path.first().and_then(|p| p.0.accuracy).is_some();
    let float_metric = if has_labels { path.first().and_then(|p| p.1).unwrap_or(1.0) } else { 1.0 };
    let mut path: Vec<PathPoint> = path.into_iter().map(|(p, _)| p).collect();
    let metric = |p: &PathPoint| p.accuracy.unwrap_or(p.top1_agreement);
    for i in 0..path.len() {
        let dominated = path.iter().any(|q| {
            q.size_bytes <= path[i].size_bytes
                && metric(q) >= metric(&path[i])
                && (q.size_bytes < path[i].size_bytes || metric(q) > metric(&path[i]))
        });
        path[i].pareto = !dominated;
    }
    let meets = |p: &PathPoint| match target {
        Target::AccuracyDrop(points) => (float_metric - metric(p)) * 100.0 <= points + 1e-9,
        Target::SizeBytes(max) => p.size_bytes <= max,
    };
    let chosen = match target {
        Target::AccuracyDrop(_) => path.iter().enumerate().filter(|(_, p)| meets(p)).min_by_key(|(_, p)| p.size_bytes),
        Target::SizeBytes(_) => path
            .iter()
            .enumerate()
            .filter(|(_, p)| meets(p))
            .max_by(|a, b| metric(a.1).total_cmp(&metric(b.1)).then(b.1.size_bytes.cmp(&a.1.size_bytes))),
    }
    .map(|(i, _)| i);
    Ok(MixedPrecision { path, chosen, float_metric })
}
