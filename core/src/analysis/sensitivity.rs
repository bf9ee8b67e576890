//! Per-layer sensitivity (as AIMET's QuantAnalyzer): the model metric with only a layer quantized
//! (enable-one), with all but that layer quantized (disable-one), weights-only, activations-only,
//! and an optional bit-width sweep.
//!
//! It runs in two passes so that a real model's analysis takes a minute, not half an hour:
//! 1. every layer, every measure, on a fixed stratified subset of the evaluation set
//!    ([`SENSITIVITY_SUBSET`] samples, `Simulator::subset`): estimates;
//! 2. the layers that lead either ranking (the most sensitive by enable-one and by disable-one,
//!    [`SensitivityOptions::refine`] of each) are measured again on the whole set, so the top of
//!    both rankings, what a user acts on, holds exact values. Layers whose metric ties (an
//!    accuracy on 32 samples moves in steps of 1/32, so most layers share a value) are ordered by
//!    the output SQNR of the same evaluation, so the ones refined are the most sensitive by that
//!    measure, not the first in network order.
//!
//! Each value says how many samples it rests on; the estimates left in the result are shifted by
//! the median difference between whole-set and subset values of the refined layers (a subset's
//! metric sits above or below the whole set's for every layer alike), so that one ranking holds. Evaluations measure the model metrics only;
//! those with one layer quantized start from the float reference itself (nothing re-run before
//! the layer), those with all but one from a run of the whole plan. Layers are measured two at a time (one per core;
//! a small run spends much of its time building its runner, which is single-threaded).

use std::collections::BTreeSet;
use std::sync::atomic::AtomicBool;

use serde::{Deserialize, Serialize};

use super::SensitivityMetric;
use crate::error::Result;
use crate::model::OnnxModel;
use crate::plan::{Measured, PlanFilter, QuantPlan};
use crate::quant::recipe::Recipe;
use crate::simulate::{EvalConfig, SimState, Simulator};

/// Evaluation samples of the estimating pass.
pub const SENSITIVITY_SUBSET: usize = 32;

/// What the analysis measures, and on how many samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SensitivityOptions {
    /// The model metric.
    pub metric: SensitivityMetric,
    /// Bit widths of the sweep (none: no sweep).
    pub sweep_bits: Vec<u8>,
    /// Samples of the estimating pass (0: [`SENSITIVITY_SUBSET`]; at least the set's size: one
    /// exhaustive pass on the whole set).
    pub subset: usize,
    /// Layers re-measured on the whole set per ranking (0: the default, max(6, layers / 8)).
    pub refine: usize,
}

impl SensitivityOptions {
    /// The defaults: estimates on [`SENSITIVITY_SUBSET`] samples, the leaders refined.
    pub fn new(metric: SensitivityMetric, sweep_bits: &[u8]) -> Self {
        Self { metric, sweep_bits: sweep_bits.to_vec(), subset: 0, refine: 0 }
    }

    /// Every measure of every layer on the whole set (the reference the two passes approximate).
    pub fn exhaustive(metric: SensitivityMetric, sweep_bits: &[u8]) -> Self {
        Self { subset: usize::MAX, ..Self::new(metric, sweep_bits) }
    }

    fn subset_size(&self) -> usize {
        if self.subset == 0 { SENSITIVITY_SUBSET } else { self.subset }
    }

    fn refine_count(&self, layers: usize) -> usize {
        let r = if self.refine == 0 { 6.max(layers.div_ceil(8)) } else { self.refine };
        r.min(layers)
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
    /// Evaluation samples behind `weights_only`, `activations_only` and the sweep.
    #[serde(default)]
    pub samples: usize,
    /// Evaluation samples behind `enable_one` (the whole set once refined).
    #[serde(default)]
    pub enable_one_samples: usize,
    /// Evaluation samples behind `disable_one` (the whole set once refined).
    #[serde(default)]
    pub disable_one_samples: usize,
    /// Output SQNR (dB) of the `enable_one` evaluation: it orders layers whose metric ties (an
    /// accuracy on 32 samples moves in steps of 1/32, and most layers share a value).
    #[serde(default)]
    pub enable_one_sqnr_db: f64,
    /// Output SQNR (dB) of the `disable_one` evaluation, likewise.
    #[serde(default)]
    pub disable_one_sqnr_db: f64,
}

/// A layer's result as it is measured (first the estimate, later, for the leaders, the refined
/// values), with the analysis's progress.
#[derive(Debug, Clone, Copy)]
pub struct SensitivityProgress<'a> {
    /// The layer's position among the analysed layers (network order).
    pub index: usize,
    /// Its result so far.
    pub layer: &'a LayerSensitivity,
    /// Layer measurements done, both passes.
    pub done: usize,
    /// Layer measurements planned so far (the second pass's are known when the first ends).
    pub total: usize,
}

/// Which measures one layer's evaluation takes.
#[derive(Debug, Clone, Copy)]
struct Which {
    enable_one: bool,
    disable_one: bool,
    /// Weights-only, activations-only and the sweep.
    rest: bool,
}

/// What every measurement shares: the model, recipe, options and the two base states.
struct Context<'a> {
    sim: &'a Simulator,
    model: &'a OnnxModel,
    recipe: &'a Recipe,
    measured: &'a Measured,
    options: &'a SensitivityOptions,
    config: EvalConfig,
    float_base: Option<SimState>,
    full_base: Option<SimState>,
}

impl Context<'_> {
    /// The metric and the output SQNR of `plan`'s evaluation.
    fn eval_both(&self, plan: &QuantPlan, base: Option<&SimState>, cancel: &AtomicBool) -> Result<(f64, f64)> {
        let (e, _) = self.sim.evaluate_from(base, plan, &self.config, &mut |_| {}, cancel)?;
        Ok((self.options.metric.of(&e)?, e.metrics.output_sqnr_db))
    }

    fn eval(&self, plan: &QuantPlan, base: Option<&SimState>, cancel: &AtomicBool) -> Result<f64> {
        Ok(self.eval_both(plan, base, cancel)?.0)
    }

    /// Measures `which` of `layer` into `r` (its other values are kept).
    fn measure(&self, layer: &str, which: Which, r: &mut LayerSensitivity, cancel: &AtomicBool) -> Result<()> {
        let (model, measured) = (self.model, self.measured);
        let one: BTreeSet<String> = [layer.to_string()].into();
        let only = |skip_weights, skip_activations| PlanFilter {
            only: Some(one.clone()),
            skip_weights,
            skip_activations,
            ..PlanFilter::default()
        };
        let plan_for = |r: &Recipe, f: &PlanFilter| QuantPlan::build(model, r, measured, f);
        let float = self.float_base.as_ref();
        let n = self.sim.num_samples();
        if which.enable_one {
            (r.enable_one, r.enable_one_sqnr_db) =
                self.eval_both(&plan_for(self.recipe, &only(false, false))?, float, cancel)?;
            r.enable_one_samples = n;
        }
        if which.disable_one {
            let except = PlanFilter { except: one.clone(), ..PlanFilter::default() };
            (r.disable_one, r.disable_one_sqnr_db) =
                self.eval_both(&plan_for(self.recipe, &except)?, self.full_base.as_ref(), cancel)?;
            r.disable_one_samples = n;
        }
        if !which.rest {
            return Ok(());
        }
        r.weights_only = self.eval(&plan_for(self.recipe, &only(false, true))?, float, cancel)?;
        r.activations_only = self.eval(&plan_for(self.recipe, &only(true, false))?, float, cancel)?;
        r.sweep.clear();
        for &bits in &self.options.sweep_bits {
            let mut rc = self.recipe.clone();
            let mut cfg = self.recipe.config_for(layer);
            cfg.weight.bits = bits;
            rc.layers.insert(layer.to_string(), cfg);
            let weights = self.eval(&plan_for(&rc, &only(false, false))?, float, cancel)?;
            let mut cfg = self.recipe.config_for(layer);
            cfg.activation.bits = bits;
            rc.layers.insert(layer.to_string(), cfg);
            let activations = self.eval(&plan_for(&rc, &only(false, false))?, float, cancel)?;
            r.sweep.push(SweepPoint { bits, weights, activations });
        }
        r.samples = n;
        Ok(())
    }

    /// Measures `jobs` (index into `results`, what to measure), one layer per core, handing each
    /// result to `on_done` in the order of `jobs`.
    fn measure_all(
        &self,
        jobs: &[(usize, Which)],
        results: &mut [LayerSensitivity],
        on_done: &mut dyn FnMut(usize, &LayerSensitivity),
        cancel: &AtomicBool,
    ) -> Result<()> {
        let start: Vec<LayerSensitivity> = jobs.iter().map(|(i, _)| results[*i].clone()).collect();
        let work = |k: usize| -> Result<LayerSensitivity> {
            let mut r = start[k].clone();
            self.measure(&r.name.clone(), jobs[k].1, &mut r, cancel).map(|()| r)
        };
        crate::model::parallel::map_ordered(jobs.len(), &work, &mut |k, r| {
            let i = jobs[k].0;
            results[i] = r;
            on_done(i, &results[i]);
            Ok(())
        })
    }
}

/// The indices of the `count` layers that lead a ranking: the smallest `value`s (`lowest`) or the
/// largest; equal values by their output SQNR (`tie`, the same way round), then network order.
fn leaders(
    results: &[LayerSensitivity],
    value: impl Fn(&LayerSensitivity) -> f64,
    tie: fn(&LayerSensitivity) -> f64,
    lowest: bool,
    count: usize,
) -> Vec<usize> {
    let mut order: Vec<usize> = (0..results.len()).collect();
    order.sort_by(|&a, &b| {
        let (la, lb) = (&results[a], &results[b]);
        let (va, vb) = ((value(la), tie(la)), (value(lb), tie(lb)));
        let by = |x: (f64, f64), y: (f64, f64)| x.0.total_cmp(&y.0).then(x.1.total_cmp(&y.1));
        let by = if lowest { by(va, vb) } else { by(vb, va) };
        by.then(a.cmp(&b))
    });
    order.truncate(count);
    order
}

/// A measure of a layer: its value and the samples it rests on.
type Key = fn(&LayerSensitivity) -> (f64, usize);

const ENABLE_ONE: Key = |l| (l.enable_one, l.enable_one_samples);
const DISABLE_ONE: Key = |l| (l.disable_one, l.disable_one_samples);

/// A measure's tie-break: the output SQNR of its evaluation.
type Tie = fn(&LayerSensitivity) -> f64;

const ENABLE_ONE_SQNR: Tie = |l| l.enable_one_sqnr_db;
const DISABLE_ONE_SQNR: Tie = |l| l.disable_one_sqnr_db;

fn enable_one_mut(l: &mut LayerSensitivity) -> &mut f64 {
    &mut l.enable_one
}

fn disable_one_mut(l: &mut LayerSensitivity) -> &mut f64 {
    &mut l.disable_one
}

/// The layers to refine next for the measure `key` (most sensitive: `lowest` values first): those
/// whose shifted estimate, give or take the largest error seen among the refined layers'
/// estimates, could place them among the `r` leaders; none once `2r` are refined (where the
/// subset's noise exceeds the layers' differences, e.g. accuracy at 8 bits, the ranking below that
/// is noise, and refining it all would be the exhaustive analysis).
fn pending(
    estimates: &[LayerSensitivity],
    results: &[LayerSensitivity],
    (key, tie): (Key, Tie),
    lowest: bool,
    r: usize,
    n: usize,
) -> BTreeSet<usize> {
    let shift = offset(estimates, results, key, n);
    let comparable = |l: &LayerSensitivity| if key(l).1 < n { key(l).0 + shift } else { key(l).0 };
    let margin = estimates
        .iter()
        .zip(results)
        .filter(|(_, l)| key(l).1 == n)
        .map(|(e, l)| (key(l).0 - key(e).0 - shift).abs())
        .filter(|d| d.is_finite())
        .fold(0.0, f64::max);
    let top = leaders(results, comparable, tie, lowest, r);
    let Some(&last) = top.last() else { return BTreeSet::new() };
    let bar = comparable(&results[last]);
    let refined = results.iter().filter(|l| key(l).1 == n).count();
    if refined >= 2 * r {
        return BTreeSet::new();
    }
    let close = |i: &usize| {
        let v = comparable(&results[*i]);
        top.contains(i) || if lowest { v - margin <= bar } else { v + margin >= bar }
    };
    let mut order = leaders(results, comparable, tie, lowest, results.len());
    order.retain(|&i| key(&results[i]).1 < n && close(&i));
    order.truncate(2 * r - refined);
    order.into_iter().collect()
}

/// How far a measure's whole-set values lie from the subset's, as the median over the layers
/// measured on both (0 before any): a subset's accuracy, say, sits a little above or below the
/// whole set's for every layer alike, and an estimate is compared with whole-set values after
/// this shift, else one bias would have every layer refined in turn.
fn offset(estimates: &[LayerSensitivity], results: &[LayerSensitivity], key: Key, n: usize) -> f64 {
    let mut d: Vec<f64> = estimates
        .iter()
        .zip(results)
        .filter(|(_, r)| key(r).1 == n)
        .map(|(e, r)| key(r).0 - key(e).0)
        .filter(|d| d.is_finite())
        .collect();
    d.sort_by(f64::total_cmp);
    match d.len() {
        0 => 0.0,
        k if k % 2 == 1 => d[k / 2],
        k => 0.5 * (d[k / 2 - 1] + d[k / 2]),
    }
}

/// Runs the analysis for every layer the recipe quantizes (see the module's documentation);
/// `on_layer` receives each estimate as it completes (network order), then each refined result.
/// `full_state`, the state of an evaluation of the whole recipe on `sim` (e.g. the report's),
/// saves the second pass a run of it; any other state is not used.
#[allow(clippy::too_many_arguments)]
pub fn sensitivity(
    sim: &Simulator,
    model: &OnnxModel,
    recipe: &Recipe,
    measured: &Measured,
    options: &SensitivityOptions,
    full_state: Option<&SimState>,
    on_layer: &mut dyn FnMut(SensitivityProgress<'_>),
    cancel: &AtomicBool,
) -> Result<Vec<LayerSensitivity>> {
    let full_plan = QuantPlan::build(model, recipe, measured, &PlanFilter::default())?;
    let layers: Vec<String> = full_plan.layers.iter().map(|l| l.layer.clone()).collect();
    let n = sim.num_samples();
    let estimate = options.subset_size() < n;
    let subset_sim = estimate.then(|| sim.estimate_subset(options.subset_size(), cancel)).transpose()?;
    let config = EvalConfig { skip_local: true, model_only: true, ..EvalConfig::default() };
    let base = |s: &Simulator, plan: &QuantPlan| -> Result<SimState> {
        Ok(s.evaluate_from(None, plan, &config, &mut |_| {}, cancel)?.1)
    };
    let first = subset_sim.as_deref().unwrap_or(sim);
    let mut ctx = Context {
        sim: first,
        model,
        recipe,
        measured,
        options,
        config: config.clone(),
        float_base: Some(first.float_state()?),
        full_base: Some(base(first, &full_plan)?),
    };
    let mut results: Vec<LayerSensitivity> = layers
        .iter()
        .map(|name| LayerSensitivity {
            name: name.clone(),
            enable_one: f64::NAN,
            disable_one: f64::NAN,
            weights_only: f64::NAN,
            activations_only: f64::NAN,
            sweep: Vec::new(),
            samples: 0,
            enable_one_samples: 0,
            disable_one_samples: 0,
            enable_one_sqnr_db: f64::NAN,
            disable_one_sqnr_db: f64::NAN,
        })
        .collect();
    let all = Which { enable_one: true, disable_one: true, rest: true };
    let jobs: Vec<(usize, Which)> = (0..layers.len()).map(|i| (i, all)).collect();
    let mut total = layers.len();
    let mut done = 0;
    // One pass of measurements, each result reported with the running count.
    let mut pass = |ctx: &Context<'_>, jobs: &[(usize, Which)], results: &mut [LayerSensitivity], total: usize| {
        ctx.measure_all(
            jobs,
            results,
            &mut |index, layer| {
                done += 1;
                on_layer(SensitivityProgress { index, layer, done, total });
            },
            cancel,
        )
    };
    pass(&ctx, &jobs, &mut results, total)?;
    if !estimate {
        return Ok(results);
    }
    // The second pass: the leaders of both rankings on the whole set, until the top of each
    // ranking holds only whole-set values (a refined leader may fall below an estimate, which is
    // then refined in turn).
    let r = options.refine_count(layers.len());
    ctx.sim = sim;
    ctx.float_base = Some(sim.float_state()?);
    // The subset's base is no base for the whole set; the whole set's is made when first needed.
    ctx.full_base = None;
    // The subset's values as estimated, to compare estimates with whole-set values.
    let estimates = results.clone();
    loop {
        let enable = pending(&estimates, &results, (ENABLE_ONE, ENABLE_ONE_SQNR), true, r, n);
        let disable = pending(&estimates, &results, (DISABLE_ONE, DISABLE_ONE_SQNR), false, r, n);
        if enable.is_empty() && disable.is_empty() {
            break;
        }
        if !disable.is_empty() && ctx.full_base.is_none() {
            ctx.full_base = Some(match full_state.filter(|s| s.plan == full_plan && s.cache_bytes() > 0) {
                Some(s) => s.clone(),
                None => base(sim, &full_plan)?,
            });
        }
        let jobs: Vec<(usize, Which)> = enable
            .union(&disable)
            .map(|&i| (i, Which { enable_one: enable.contains(&i), disable_one: disable.contains(&i), rest: false }))
            .collect();
        total += jobs.len();
        pass(&ctx, &jobs, &mut results, total)?;
    }
    // The values left as estimates, shifted as they were ranked: one ranking over all layers.
    for (key, value) in
        [(ENABLE_ONE, enable_one_mut as fn(&mut LayerSensitivity) -> &mut f64), (DISABLE_ONE, disable_one_mut)]
    {
        let shift = offset(&estimates, &results, key, n);
        for l in results.iter_mut().filter(|l| key(l).1 < n) {
            *value(l) += shift;
        }
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(name: &str, enable_one: f64, sqnr: f64) -> LayerSensitivity {
        LayerSensitivity {
            name: name.into(),
            enable_one,
            disable_one: f64::NAN,
            weights_only: f64::NAN,
            activations_only: f64::NAN,
            sweep: Vec::new(),
            samples: 32,
            enable_one_samples: 32,
            disable_one_samples: 32,
            enable_one_sqnr_db: sqnr,
            disable_one_sqnr_db: f64::NAN,
        }
    }

    /// Layers whose metric ties (an accuracy on 32 samples) are ranked by their output SQNR, the
    /// lowest first for the most-sensitive ranking, not by network order.
    #[test]
    fn tied_metrics_are_ranked_by_output_sqnr() {
        let results = [layer("a", 0.97, 40.0), layer("b", 0.97, 25.0), layer("c", 0.94, 45.0), layer("d", 0.97, 30.0)];
        let value = |l: &LayerSensitivity| l.enable_one;
        assert_eq!(leaders(&results, value, ENABLE_ONE_SQNR, true, 3), vec![2, 1, 3]);
        assert_eq!(leaders(&results, value, ENABLE_ONE_SQNR, false, 3), vec![0, 3, 1]);
    }
}
