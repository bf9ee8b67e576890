//! Streaming statistics of one tensor over a calibration pass: range, per-batch ranges (for the
//! moving average), non-finite count, and a histogram. Memory is bounded by the histogram size
//! plus two floats per batch.

use serde::{Deserialize, Serialize};

use super::histogram::Histogram;

/// Statistics of one tensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TensorStats {
    /// Smallest finite value seen (0 when none).
    pub min: f32,
    /// Largest finite value seen (0 when none).
    pub max: f32,
    /// Number of finite values seen.
    pub count: u64,
    /// Number of NaN/±Inf values seen (excluded from everything else).
    pub non_finite: u64,
    /// `[min, max]` of each batch, in order (for the moving-average observer).
    pub batch_ranges: Vec<[f32; 2]>,
    /// Histogram of the finite values.
    pub histogram: Histogram,
    /// Rank of the tensor as the model computes it (0 when not recorded, as in older recipes).
    #[serde(default)]
    pub rank: usize,
}

impl TensorStats {
    /// Adds one batch of values.
    pub fn update(&mut self, values: &[f32]) {
        // One pass for the range; NaN/±Inf make the range non-finite and are filtered out then.
        let (lo, hi) = values.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
        let all_finite = lo.is_finite() && hi.is_finite() && !values.iter().any(|v| v.is_nan());
        if all_finite {
            self.add_finite(values, lo, hi);
        } else {
            let finite: Vec<f32> = values.iter().copied().filter(|v| v.is_finite()).collect();
            self.non_finite += (values.len() - finite.len()) as u64;
            let (lo, hi) = finite.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
            self.add_finite(&finite, lo, hi);
        }
    }

    fn add_finite(&mut self, values: &[f32], lo: f32, hi: f32) {
        if values.is_empty() {
            return;
        }
        if self.count == 0 {
            (self.min, self.max) = (lo, hi);
        } else {
            self.min = self.min.min(lo);
            self.max = self.max.max(hi);
        }
        self.count += values.len() as u64;
        self.batch_ranges.push([lo, hi]);
        self.histogram.add_with_absmax(values, lo.abs().max(hi.abs()));
    }

    /// Adds the statistics of another stream (batches appended after this one's).
    pub fn merge(&mut self, other: &Self) {
        if other.count > 0 {
            if self.count == 0 {
                (self.min, self.max) = (other.min, other.max);
            } else {
                self.min = self.min.min(other.min);
                self.max = self.max.max(other.max);
            }
        }
        self.count += other.count;
        self.non_finite += other.non_finite;
        self.batch_ranges.extend_from_slice(&other.batch_ranges);
        self.histogram.merge(&other.histogram);
        self.rank = self.rank.max(other.rank);
    }
}
