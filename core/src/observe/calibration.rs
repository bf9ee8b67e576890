//! What a calibration pass learned: per-tensor statistics and the memo of searched observer
//! ranges (plain data; the pass itself is `calibrate`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::stats::TensorStats;
use crate::quant::{Observer, QRange};

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
