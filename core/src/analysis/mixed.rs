//! Mixed precision: per-layer weight bits chosen for a target (an accuracy drop or a size).
//!
//! Greedy: each layer's weight noise at each bit width gives the noise power it adds to the
//! output; starting from all layers at 8 bits, the step that adds the least noise per byte saved
//! is taken until every layer is at 2 bits. The configurations on that path are measured, and
//! the chosen one is the best *whole-set* measured one meeting the target.
//!
//! On a small model every path point is measured on the whole evaluation set. On a real one
//! (a path longer than [`MixedPrecisionOptions::max_points`]) that would take many minutes, so
//! the search runs as the sensitivity analysis does:
//! 1. each layer's output noise is measured at 4, 3 and 2 bits on a fixed stratified subset of the
//!    set, from the float reference itself (nothing before the layer re-runs), two layers at a
//!    time; at 6 and 8 bits the 4-bit noise is scaled by the weight's own quantization noise
//!    (from the weights alone, exact);
//! 2. evenly spaced points of the path are measured on the subset (two at a time): estimates;
//! 3. where the estimates cross the target, points are measured on the whole set: for an
//!    accuracy drop, a gallop then a bisection along the path to the smallest configuration that
//!    meets it; for a size, the largest configuration within it and the best estimated ones.
//!
//! Every point says how many samples it rests on; only whole-set points are chosen or marked as
//! the Pareto front.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;

use serde::{Deserialize, Serialize};

use super::SENSITIVITY_SUBSET;
use super::mixed_fast::{Whole, estimate, meets, refine, spaced};
use super::weights::weight_only_sqnr;
use crate::error::Result;
use crate::model::OnnxModel;
use crate::model::parallel::map_ordered;
use crate::plan::{Measured, PlanFilter, QuantPlan};
use crate::quant::WeightScheme;
use crate::quant::recipe::Recipe;
use crate::simulate::{EvalConfig, Evaluation, SimState, Simulator};

/// Weight bit widths the mixed-precision search moves through, highest first.
pub const MIXED_PRECISION_BITS: [u8; 5] = [8, 6, 4, 3, 2];

/// The index in [`MIXED_PRECISION_BITS`] from which down the fast search measures output noise
/// (4, 3 and 2 bits); above it the noise is scaled from the 4-bit one.
const MEASURED_FROM: usize = 2;

/// Path points measured on the subset when the path is longer (the default).
pub const MAX_MEASURED_POINTS: usize = 24;

/// What the mixed-precision search must meet.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Accuracy (or top-1 agreement without labels) at most this many points below float.
    AccuracyDrop(f64),
    /// Quantized size at most this many bytes.
    SizeBytes(u64),
}

/// How much of the search runs on a subset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MixedPrecisionOptions {
    /// Samples of the estimating subset (0: [`SENSITIVITY_SUBSET`]; at least the set's size: no
    /// subset).
    pub subset: usize,
    /// Paths up to this long are measured whole on the whole set (0: [`MAX_MEASURED_POINTS`]);
    /// longer ones take the fast search, measuring this many points on the subset.
    pub max_points: usize,
}

impl MixedPrecisionOptions {
    /// Every path point on the whole set, every layer's noise measured at every bit width.
    pub fn exhaustive() -> Self {
        Self { subset: usize::MAX, max_points: usize::MAX }
    }

    fn subset_size(self) -> usize {
        if self.subset == 0 { SENSITIVITY_SUBSET } else { self.subset }
    }

    fn max_points(self) -> usize {
        if self.max_points == 0 { MAX_MEASURED_POINTS } else { self.max_points.max(2) }
    }
}

/// One configuration on the search path and its measured metrics.
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
    /// Whether no other whole-set point is both smaller and better (estimates never are).
    pub pareto: bool,
    /// Evaluation samples the metrics rest on (fewer than the set's: an estimate on the subset).
    #[serde(default)]
    pub samples: usize,
}

impl PathPoint {
    /// Accuracy, or top-1 agreement without labels.
    pub fn metric(&self) -> f64 {
        self.accuracy.unwrap_or(self.top1_agreement)
    }
}

/// The result of the search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MixedPrecision {
    /// The configurations measured, in path order (from all layers at 8 bits down).
    pub path: Vec<PathPoint>,
    /// Index in `path` of the chosen configuration (None when no point meets the target).
    pub chosen: Option<usize>,
    /// Float accuracy (or 1.0 for agreement) the drop is measured from.
    pub float_metric: f64,
}

impl MixedPrecision {
    /// The recipe of path point `i`: `base` with per-layer weight bits.
    pub fn recipe_of(&self, base: &Recipe, i: usize) -> Recipe {
        with_bits(base, &self.path[i].bits)
    }
}

/// A step of the mixed-precision search, reported as it happens (for progress).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SearchStep<'a> {
    /// The noise of `done` of `total` layers' weights was measured.
    LayerMeasured {
        /// Layers measured so far.
        done: usize,
        /// Layers to measure.
        total: usize,
    },
    /// The `done`-th of about `total` configurations was measured (`pareto` is not known yet).
    PathPoint {
        /// The configuration and its metrics.
        point: &'a PathPoint,
        /// Points measured so far.
        done: usize,
        /// Points to measure (whole-set refinements of the fast search come on top).
        total: usize,
    },
}

/// `base` with these per-layer weight bits.
fn with_bits(base: &Recipe, bits: &[(String, u8)]) -> Recipe {
    let mut r = base.clone();
    for (layer, b) in bits {
        let mut cfg = base.config_for(layer);
        cfg.weight.bits = *b;
        r.layers.insert(layer.clone(), cfg);
    }
    r
}

/// What the search works on.
pub(super) struct Search<'a> {
    pub(super) model: &'a OnnxModel,
    recipe: &'a Recipe,
    measured: &'a Measured,
    layers: Vec<String>,
    pub(super) config: EvalConfig,
    pub(super) cancel: &'a AtomicBool,
}

impl Search<'_> {
    pub(super) fn plan(&self, bits: &[(String, u8)], filter: &PlanFilter) -> Result<QuantPlan> {
        QuantPlan::build(self.model, &with_bits(self.recipe, bits), self.measured, filter)
    }

    pub(super) fn point(bits: Vec<(String, u8)>, e: &Evaluation, samples: usize) -> PathPoint {
        PathPoint {
            bits,
            size_bytes: e.metrics.quant_size_bytes,
            accuracy: e.metrics.quant_accuracy,
            top1_agreement: e.metrics.top1_agreement,
            output_sqnr_db: e.metrics.output_sqnr_db,
            pareto: false,
            samples,
        }
    }

    /// The output noise power (relative to the output's) of layer `i`'s weights alone at `bits`.
    fn layer_noise(&self, sim: &Simulator, float: &SimState, i: usize, bits: u8) -> Result<f64> {
        let layer = &self.layers[i];
        let only = PlanFilter { only: Some([layer.clone()].into()), skip_activations: true, ..PlanFilter::default() };
        let plan = self.plan(&[(layer.clone(), bits)], &only)?;
        let (e, _) = sim.evaluate_from(Some(float), &plan, &self.config, &mut |_| {}, self.cancel)?;
        Ok(10f64.powf(-e.metrics.output_sqnr_db / 10.0))
    }

    /// The noise power of layer `i`'s weight itself at each of [`MIXED_PRECISION_BITS`] (from
    /// the weights alone, with the layer's own weight scheme).
    fn weight_noise(&self, i: usize) -> Result<Vec<f64>> {
        let layer = self.model.summary.layer(&self.layers[i]);
        let Some(layer) = layer else { return Ok(vec![1.0; MIXED_PRECISION_BITS.len()]) };
        let w = self.model.constant_f32(&layer.weight)?;
        let own = self.recipe.config_for(&layer.name).weight;
        let schemes: Vec<WeightScheme> =
            MIXED_PRECISION_BITS.iter().map(|&bits| WeightScheme { bits, ..own }).collect();
        let sqnr = weight_only_sqnr(&w, layer.out_channel_axis, &schemes)?;
        Ok(sqnr.iter().map(|db| 10f64.powf(-db / 10.0)).collect())
    }

    /// Every layer's noise at every bit width: measured at each (exhaustive), or measured at 4
    /// bits and scaled by the weight's own noise (fast; two layers at a time).
    fn noise(&self, sim: &Simulator, fast: bool, on_step: &mut dyn FnMut(SearchStep<'_>)) -> Result<Vec<Vec<f64>>> {
        let total = self.layers.len();
        let float = sim.float_state()?;
        let mut noise = Vec::with_capacity(total);
        if !fast {
            for i in 0..total {
                let row =
                    MIXED_PRECISION_BITS.iter().map(|&b| self.layer_noise(sim, &float, i, b)).collect::<Result<_>>()?;
                noise.push(row);
                on_step(SearchStep::LayerMeasured { done: noise.len(), total });
            }
            return Ok(noise);
        }
        let work = |i: usize| -> Result<Vec<f64>> {
            let low: Vec<f64> = MIXED_PRECISION_BITS[MEASURED_FROM..]
                .iter()
                .map(|&b| self.layer_noise(sim, &float, i, b))
                .collect::<Result<_>>()?;
            Ok(scaled_noise(&low, &self.weight_noise(i)?))
        };
        map_ordered(total, &work, &mut |_, row| {
            noise.push(row);
            on_step(SearchStep::LayerMeasured { done: noise.len(), total });
            Ok(())
        })?;
        Ok(noise)
    }

    /// The greedy path: the bit-width level of every layer at each point, from all at 8 bits.
    fn greedy(&self, noise: &[Vec<f64>]) -> Vec<Vec<usize>> {
        let mut level = vec![0usize; self.layers.len()];
        let mut path = vec![level.clone()];
        loop {
            let mut best: Option<(f64, usize)> = None;
            for (i, layer) in self.layers.iter().enumerate() {
                if level[i] + 1 >= MIXED_PRECISION_BITS.len() {
                    continue;
                }
                let elems: u64 = self.model.summary.layer(layer).map_or(0, |l| l.weight_shape.iter().product());
                let saved =
                    elems as f64 * f64::from(MIXED_PRECISION_BITS[level[i]] - MIXED_PRECISION_BITS[level[i] + 1]) / 8.0;
                let added = noise[i][level[i] + 1] - noise[i][level[i]];
                let score = added.max(0.0) / saved.max(1.0);
                if best.is_none_or(|(s, _)| score < s) {
                    best = Some((score, i));
                }
            }
            let Some((_, i)) = best else { return path };
            level[i] += 1;
            path.push(level.clone());
        }
    }

    pub(super) fn bits(&self, levels: &[usize]) -> Vec<(String, u8)> {
        self.layers.iter().zip(levels).map(|(l, &i)| (l.clone(), MIXED_PRECISION_BITS[i])).collect()
    }
}

/// A layer's output noise at every bit width: measured at 4 bits and below (`low`); above, the
/// 4-bit noise scaled by the weight's own noise (`own`, at every width): small perturbations add
/// in proportion.
fn scaled_noise(low: &[f64], own: &[f64]) -> Vec<f64> {
    let m = MEASURED_FROM;
    let ratio = |k: usize| if own[m] > 0.0 { own[k] / own[m] } else { 1.0 };
    (0..m).map(|k| low[0] * ratio(k)).chain(low.iter().copied()).collect()
}

/// Greedy mixed precision (see the module documentation). The chosen point is the whole-set
/// measured one meeting the target: `AccuracyDrop`, the smallest; `SizeBytes`, the best.
#[allow(clippy::too_many_arguments)] // the simulator, the configuration and the run's hooks
pub fn mixed_precision(
    sim: &Simulator,
    model: &OnnxModel,
    recipe: &Recipe,
    measured: &Measured,
    target: Target,
    options: MixedPrecisionOptions,
    on_step: &mut dyn FnMut(SearchStep<'_>),
    cancel: &AtomicBool,
) -> Result<MixedPrecision> {
    let layers: Vec<String> = QuantPlan::build(model, recipe, measured, &PlanFilter::default())?
        .layers
        .iter()
        .filter(|l| l.weight_quant.is_some())
        .map(|l| l.layer.clone())
        .collect();
    let config = EvalConfig { skip_local: true, model_only: true, ..EvalConfig::default() };
    let search = Search { model, recipe, measured, layers, config, cancel };
    let n = sim.num_samples();
    let path_len = search.layers.len() * (MIXED_PRECISION_BITS.len() - 1) + 1;
    let fast = path_len > options.max_points() && options.subset_size() < n;
    let subset = fast.then(|| sim.estimate_subset(options.subset_size(), cancel)).transpose()?;
    let noise = search.noise(subset.as_deref().unwrap_or(sim), fast, on_step)?;
    let levels = search.greedy(&noise);
    // Measured points by path index; the whole set's replace the subset's.
    let mut points: BTreeMap<usize, PathPoint> = BTreeMap::new();
    let mut whole =
        Whole { sim, search: &search, levels: &levels, base: None, float_metric: None, known: BTreeMap::new() };
    let mut sub_float = 1.0;
    match subset.as_ref() {
        None => {
            for i in 0..levels.len() {
                let p = whole.measure(i)?;
                on_step(SearchStep::PathPoint { point: &p, done: i + 1, total: levels.len() });
            }
        }
        Some(sub) => {
            let picked = spaced(levels.len(), options.max_points());
            let estimates;
            (estimates, sub_float) = estimate(sub, &search, &levels, &picked, on_step)?;
            points.extend(estimates.iter().map(|(i, p)| (*i, p.clone())));
            refine(&mut whole, &estimates, sub_float, target, on_step)?;
        }
    }
    let float_metric = whole.float_metric.unwrap_or(sub_float);
    points.extend(whole.known);
    Ok(finish(points, n, target, float_metric))
}

/// The path in order, its whole-set Pareto front and the chosen point.
fn finish(points: BTreeMap<usize, PathPoint>, full: usize, target: Target, float_metric: f64) -> MixedPrecision {
    let mut path: Vec<PathPoint> = points.into_values().collect();
    let whole: Vec<usize> = (0..path.len()).filter(|&i| path[i].samples == full).collect();
    for &i in &whole {
        let dominated = whole.iter().any(|&j| {
            let (q, p) = (&path[j], &path[i]);
            q.size_bytes <= p.size_bytes
                && q.metric() >= p.metric()
                && (q.size_bytes < p.size_bytes || q.metric() > p.metric())
        });
        path[i].pareto = !dominated;
    }
    let candidates = whole.iter().copied().filter(|&i| meets(&path[i], target, float_metric));
    let chosen = match target {
        Target::AccuracyDrop(_) => candidates.min_by_key(|&i| path[i].size_bytes),
        Target::SizeBytes(_) => candidates.max_by(|&a, &b| {
            path[a].metric().total_cmp(&path[b].metric()).then(path[b].size_bytes.cmp(&path[a].size_bytes))
        }),
    };
    MixedPrecision { path, chosen, float_metric }
}
