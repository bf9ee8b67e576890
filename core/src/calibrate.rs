//! The calibration pass: stream a data set through the float model once and collect statistics
//! for every float activation (model inputs included) and every quantizable weight.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use ndarray::{ArrayViewD, Axis};
use serde::{Deserialize, Serialize};

use crate::data::{DataSet, InputShape, fixed_batch, resolve_input_shapes};
use crate::error::{Error, Result};
use crate::model::OnnxModel;
use crate::model::runtime::{Runner, float_activations};
use crate::observe::{Observer, TensorStats};
use crate::quant::QRange;

/// Batches per block: inference of a block runs in parallel, cancellation lands between blocks.
const CALIBRATION_BLOCK: usize = 32;

/// Settings of a calibration pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CalibrationConfig {
    /// Samples per inference call (models with a fixed batch dim use theirs). Batch 1 is the
    /// fastest per sample in tract on small models, and makes the moving average per sample.
    pub batch_size: usize,
    /// Shapes for dynamic dims the data cannot fix.
    pub input_shapes: Vec<InputShape>,
    /// Observe only the tensors quantization reads (the quantizable layers' inputs) instead of
    /// every float activation: fewer outputs for tract to keep and fewer histograms to fill.
    pub layer_inputs_only: bool,
}

impl Default for CalibrationConfig {
    fn default() -> Self {
        Self { batch_size: 1, input_shapes: Vec::new(), layer_inputs_only: false }
    }
}

/// Range statistics of a constant weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightStats {
    /// The layer (node) the weight belongs to.
    pub layer: String,
    /// Output-channel axis.
    pub axis: usize,
    /// Minimum of each output channel.
    pub channel_min: Vec<f32>,
    /// Maximum of each output channel.
    pub channel_max: Vec<f32>,
    /// Whole-tensor statistics (range and histogram).
    pub stats: TensorStats,
}

/// Everything a calibration pass learned. Maps are sorted by tensor name; `order` gives network
/// order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Calibration {
    /// Number of samples streamed.
    pub num_samples: usize,
    /// Activation tensors in network order.
    pub order: Vec<String>,
    /// Statistics per activation tensor.
    pub activations: BTreeMap<String, TensorStats>,
    /// Statistics per weight tensor of the quantizable layers.
    pub weights: BTreeMap<String, WeightStats>,
    /// Observer ranges already searched (not saved; shared by clones of this calibration).
    #[serde(skip)]
    pub range_cache: RangeCache,
}

/// Memo of searched observer ranges. The quantization plan is rebuilt on every config change (the
/// app's incremental re-evaluation, every step of a sensitivity sweep), and an entropy search
/// costs milliseconds per tensor, so each (tensor, observer, integer range, symmetry) is searched
/// once. The key also holds a fingerprint of the statistics, so a calibration edited in place
/// never answers from an old search. Clones share the memo; equality ignores it.
#[derive(Debug, Clone, Default)]
pub struct RangeCache(Arc<Mutex<HashMap<String, (f32, f32)>>>);

impl PartialEq for RangeCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl RangeCache {
    /// Number of memoised ranges.
    pub fn len(&self) -> usize {
        self.0.lock().map_or(0, |m| m.len())
    }

    /// True when nothing is memoised.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Calibration {
    /// Checks that every statistic is finite (a recipe edited by hand, e.g. `1e39` read as an
    /// f32, would otherwise not save again).
    pub fn check_finite(&self) -> Result<(), String> {
        let stats = self.activations.iter().chain(self.weights.iter().map(|(n, w)| (n, &w.stats)));
        for (name, s) in stats {
            let finite = s.min.is_finite()
                && s.max.is_finite()
                && s.histogram.threshold.is_finite()
                && s.histogram.counts.iter().all(|c| c.is_finite())
                && s.batch_ranges.iter().flatten().all(|v| v.is_finite());
            if !finite {
                return Err(format!("the calibration statistics of '{name}' hold non-finite numbers"));
            }
        }
        for (name, w) in &self.weights {
            if !w.channel_min.iter().chain(&w.channel_max).all(|v| v.is_finite()) {
                return Err(format!("the channel ranges of '{name}' hold non-finite numbers"));
            }
        }
        Ok(())
    }

    /// The clip range `observer` chooses for activation `tensor` (None when it was not observed),
    /// searched once and memoised for the observers that search (percentile, entropy, MSE).
    pub fn activation_range(
        &self,
        tensor: &str,
        observer: &Observer,
        qrange: QRange,
        symmetric: bool,
    ) -> Option<(f32, f32)> {
        let stats = self.activations.get(tensor)?;
        Some(self.range_of(tensor, stats, observer, qrange, symmetric))
    }

    /// [`Self::activation_range`] for statistics the caller already looked up (those of `tensor`).
    pub fn range_of(
        &self,
        tensor: &str,
        stats: &TensorStats,
        observer: &Observer,
        qrange: QRange,
        symmetric: bool,
    ) -> (f32, f32) {
        if !matches!(observer, Observer::Percentile { .. } | Observer::Entropy { .. } | Observer::Mse) {
            return observer.range(stats, qrange, symmetric);
        }
        let key = format!(
            "{tensor}\u{0}{observer:?}\u{0}{qrange:?}\u{0}{symmetric}\u{0}{}:{}:{}:{}:{}",
            stats.min.to_bits(),
            stats.max.to_bits(),
            stats.count,
            stats.histogram.threshold.to_bits(),
            stats.histogram.total().to_bits()
        );
        if let Some(r) = self.range_cache.0.lock().ok().and_then(|m| m.get(&key).copied()) {
            return r;
        }
        let range = observer.range(stats, qrange, symmetric);
        if let Ok(mut m) = self.range_cache.0.lock() {
            m.insert(key, range);
        }
        range
    }

    /// Tensors that held NaN or infinite values, with how many, sorted by name.
    pub fn non_finite(&self) -> Vec<(String, u64)> {
        self.activations.iter().filter(|(_, s)| s.non_finite > 0).map(|(n, s)| (n.clone(), s.non_finite)).collect()
    }
}

/// Statistics of a weight along its output-channel axis.
pub fn weight_stats(layer: &str, w: &ArrayViewD<f32>, axis: usize) -> WeightStats {
    let mut stats = TensorStats::default();
    if let Some(s) = w.as_slice() {
        stats.update(s);
    } else {
        stats.update(&w.iter().copied().collect::<Vec<_>>());
    }
    let (mut channel_min, mut channel_max) = (Vec::new(), Vec::new());
    if axis < w.ndim() {
        for lane in w.axis_iter(Axis(axis)) {
            let (lo, hi) = lane.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
            channel_min.push(if lo.is_finite() { lo } else { 0.0 });
            channel_max.push(if hi.is_finite() { hi } else { 0.0 });
        }
    }
    WeightStats { layer: layer.to_string(), axis, channel_min, channel_max, stats }
}

/// Runs the calibration pass. `on_progress(done, total)` is called after every batch;
/// setting `cancel` stops the pass within one batch with [`Error::Cancelled`].
pub fn calibrate(
    model: &OnnxModel,
    data: &DataSet,
    config: &CalibrationConfig,
    on_progress: &mut dyn FnMut(usize, usize),
    cancel: &AtomicBool,
) -> Result<Calibration> {
    let inputs = &model.summary.inputs;
    let batch = inputs.iter().find_map(fixed_batch).unwrap_or(config.batch_size.max(1));
    let shapes = resolve_input_shapes(inputs, Some(&data.sample_shapes), &config.input_shapes, batch)?;
    let mut order = float_activations(model, &shapes)?;
    if config.layer_inputs_only {
        let wanted: std::collections::BTreeSet<&str> = model.summary.layers.iter().map(|l| l.input.as_str()).collect();
        order.retain(|t| wanted.contains(t.as_str()));
    }
    let input_names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
    let output_names: Vec<&str> = model.summary.outputs.iter().map(|o| o.name.as_str()).collect();
    let extra: Vec<String> = order
        .iter()
        .filter(|n| !input_names.contains(&n.as_str()) && !output_names.contains(&n.as_str()))
        .cloned()
        .collect();
    let runner = Runner::new(model, &shapes, &extra)?;
    let mut tail_runner: Option<Runner> = None;

    let mut activations: BTreeMap<String, TensorStats> =
        order.iter().map(|n| (n.clone(), TensorStats::default())).collect();
    let mut done = 0;
    // Inference runs on all cores a block of batches at a time; statistics are then updated on
    // this thread in sample order, so the result is the same as a sequential pass.
    let mut batches = data.batches(batch)?;
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        let mut block = Vec::with_capacity(CALIBRATION_BLOCK);
        for b in batches.by_ref().take(CALIBRATION_BLOCK) {
            block.push(b?);
        }
        if block.is_empty() {
            break;
        }
        let n_last = block.last().map_or(batch, crate::data::Batch::len);
        if n_last != batch && fixed_batch(&inputs[0]).is_some() {
            return Err(Error::data(
                format!("the model fixes the batch size to {batch} but the last batch has {n_last} samples"),
                data.source.path(),
            ));
        }
        let full = block.iter().filter(|b| b.len() == batch).count();
        let mut outputs = Vec::with_capacity(block.len());
        crate::simulate::run_samples(
            &runner,
            full,
            &|i| Ok(block[i].inputs.clone()),
            &mut |_, out| {
                outputs.extend(out);
                Ok(())
            },
            cancel,
        )?;
        for b in &block[full..] {
            // A smaller last batch needs its own plan.
            let tail_shapes: Vec<Vec<usize>> = shapes.iter().map(|s| [&[b.len()][..], &s[1..]].concat()).collect();
            if tail_runner.is_none() {
                tail_runner = Some(Runner::new(model, &tail_shapes, &extra)?);
            }
            let tail = tail_runner.as_ref().unwrap_or(&runner);
            outputs.push(tail.run(b.inputs.clone())?);
        }
        for (b, out) in block.iter().zip(outputs) {
            for (name, arr) in input_names.iter().zip(&b.inputs) {
                if let (Some(stats), Some(s)) = (activations.get_mut(*name), arr.as_slice()) {
                    stats.update(s);
                    stats.rank = arr.ndim();
                }
            }
            for (name, value) in runner.output_names.iter().zip(&out) {
                if let Some(stats) = activations.get_mut(name) {
                    match value.as_slice() {
                        Some(s) => stats.update(s),
                        None => stats.update(&value.iter().copied().collect::<Vec<_>>()),
                    }
                    stats.rank = value.ndim();
                }
            }
            done += b.len();
            on_progress(done, data.num_samples);
        }
    }
    let mut weights = BTreeMap::new();
    for layer in &model.summary.layers {
        let t = model.constant_tensor(&layer.weight)?;
        let view = t.to_plain_array_view::<f32>().map_err(|e| Error::runtime(&e))?;
        weights.insert(layer.weight.clone(), weight_stats(&layer.name, &view, layer.out_channel_axis));
    }
    Ok(Calibration { num_samples: done, order, activations, weights, range_cache: RangeCache::default() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calibration_of(values: &[f32]) -> Calibration {
        let mut stats = TensorStats::default();
        stats.update(values);
        let mut cal = Calibration::default();
        cal.activations.insert("x".into(), stats);
        cal
    }

    #[test]
    fn searched_ranges_are_memoised_and_equal_to_a_fresh_search() {
        let values: Vec<f32> = (0..5000).map(|i| ((i * 37 % 1001) as f32 - 500.0) / 100.0).chain([40.0]).collect();
        let cal = calibration_of(&values);
        let q = QRange::new(8, false, false);
        let entropy = Observer::Entropy { num_bins: 2048, num_quantized_bins: 128 };
        let direct = entropy.range(&cal.activations["x"], q, false);
        assert_eq!(cal.activation_range("x", &entropy, q, false), Some(direct));
        assert_eq!(cal.range_cache.len(), 1);
        // A clone shares the memo; asking again does not search again.
        let copy = cal.clone();
        assert_eq!(copy.activation_range("x", &entropy, q, false), Some(direct));
        assert_eq!(cal.range_cache.len(), 1);
        // MinMax does not search, so it is not memoised; other settings are other entries.
        assert_eq!(cal.activation_range("x", &Observer::MinMax, q, false), Some((-5.0, 40.0)));
        assert!(cal.activation_range("x", &Observer::Mse, QRange::new(4, false, false), false).is_some());
        assert_eq!(cal.range_cache.len(), 2);
        assert_eq!(cal.activation_range("missing", &entropy, q, false), None);
    }

    #[test]
    fn memoised_range_follows_statistics_edited_in_place() {
        let mut cal = calibration_of(&[-1.0, 0.5, 1.0, 2.0]);
        let q = QRange::new(8, false, false);
        let p = Observer::Percentile { percentile: 99.0 };
        let before = cal.activation_range("x", &p, q, false);
        if let Some(s) = cal.activations.get_mut("x") {
            s.update(&[100.0, -100.0]);
        }
        let after = cal.activation_range("x", &p, q, false);
        assert_eq!(after, Some(p.range(&cal.activations["x"], q, false)));
        assert_ne!(before, after);
    }
}
