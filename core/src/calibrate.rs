//! The calibration pass: stream a data set through the float model once and collect statistics
//! for every float activation (model inputs included) and every quantizable weight.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use ndarray::{ArrayD, ArrayViewD, Axis};

use crate::data::{DataSet, fixed_batch, resolve_input_shapes};
use crate::error::{Error, Result};
use crate::model::OnnxModel;
use crate::model::runtime::{Runner, float_activations};
use crate::observe::TensorStats;
pub use crate::observe::{Calibration, WeightStats};
pub use crate::quant::CalibrationConfig;
use crate::quant::recipe::Recipe;

/// Batches per block: inference of a block runs in parallel, cancellation lands between blocks.
const CALIBRATION_BLOCK: usize = 32;

/// A recipe file: the configuration and, when calibrated, the calibration it was calibrated
/// with, so that a reload needs no new pass. The JSON is the recipe's with a `calibration` field.
#[derive(Debug, Clone, PartialEq)]
pub struct RecipeFile {
    /// The configuration.
    pub recipe: Recipe,
    /// The statistics, when the file holds them.
    pub calibration: Option<Calibration>,
}

#[derive(serde::Serialize)]
struct RecipeFileOut<'a> {
    #[serde(flatten)]
    recipe: &'a Recipe,
    #[serde(skip_serializing_if = "Option::is_none")]
    calibration: Option<&'a Calibration>,
}

impl RecipeFile {
    /// The file as pretty JSON (deterministic: maps are sorted).
    pub fn to_json(&self) -> Result<String> {
        let out = RecipeFileOut { recipe: &self.recipe, calibration: self.calibration.as_ref() };
        serde_json::to_string_pretty(&out).map_err(|e| Error::Config(format!("cannot serialize the recipe: {e}")))
    }

    /// Parses a recipe file (see [`Recipe::from_json`]), checking the statistics it embeds.
    pub fn from_json(text: &str, path: &std::path::Path) -> Result<Self> {
        let mut value = Recipe::json_value(text, path)?;
        let calibration = value.as_object_mut().and_then(|o| o.remove("calibration"));
        let recipe = Recipe::from_value(value, path)?;
        let calibration: Option<Calibration> = match calibration {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => Some(
                serde_json::from_value(v)
                    .map_err(|e| Error::data(format!("invalid recipe calibration ({e})"), path))?,
            ),
        };
        if let Some(cal) = &calibration {
            cal.check_finite().map_err(|m| Error::data(format!("invalid recipe: {m}"), path))?;
        }
        Ok(Self { recipe, calibration })
    }

    /// Writes the file atomically.
    pub fn save(&self, path: &std::path::Path) -> Result<()> {
        crate::fsutil::write_atomic(path, self.to_json()?.as_bytes())
    }

    /// Reads a recipe file.
    pub fn load(path: &std::path::Path) -> Result<Self> {
        Self::from_json(&Recipe::read_text(path)?, path)
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
        let residual = model.residual_add_inputs();
        let wanted: std::collections::BTreeSet<&str> = model
            .summary
            .layers
            .iter()
            .map(|l| l.input.as_str())
            .chain(residual.iter().map(|(_, t)| t.as_str()))
            .collect();
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
        // Statistics are updated as each batch's activations arrive (in sample order), so only
        // the batches in flight hold activations: memory does not grow with the set.
        let mut update = |b: &crate::data::Batch, out: &[ArrayD<f32>]| {
            for (name, arr) in input_names.iter().zip(&b.inputs) {
                if let (Some(stats), Some(s)) = (activations.get_mut(*name), arr.as_slice()) {
                    stats.update(s);
                    stats.rank = arr.ndim();
                }
            }
            for (name, value) in runner.output_names.iter().zip(out) {
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
        };
        crate::model::parallel::run_samples(
            &runner,
            full,
            &|i| Ok(block[i].inputs.clone()),
            &mut |i, out| {
                update(&block[i], &out);
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
            let out = tail.run(b.inputs.clone())?;
            update(b, &out);
        }
    }
    let mut weights = BTreeMap::new();
    for layer in &model.summary.layers {
        let view = model.constant_f32(&layer.weight)?;
        weights.insert(layer.weight.clone(), weight_stats(&layer.name, &view.view(), layer.out_channel_axis));
    }
    Ok(Calibration {
        num_samples: done,
        order,
        activations,
        weights,
        range_cache: crate::observe::RangeCache::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::{Observer, QRange};

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
