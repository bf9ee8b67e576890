//! A streaming, mergeable histogram over a symmetric range `[-t, t]` with a fixed number of bins.
//! When values exceed the range, it doubles (merging bin pairs, which is exact); merging
//! histograms of different ranges re-bins the smaller one by bin centre.

use serde::{Deserialize, Serialize};

/// Number of bins of calibration histograms.
pub const HISTOGRAM_BINS: usize = 4096;

/// Counts over `[-threshold, threshold]` in equal-width bins (numpy's convention: each bin
/// holds `[left, right)`, the last also its right edge).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    /// Half-width of the covered range; 0 while only zeros were seen.
    pub threshold: f32,
    /// Bin counts (whole numbers, stored as f64 so merges can re-bin).
    pub counts: Vec<f64>,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new(HISTOGRAM_BINS)
    }
}

impl Histogram {
    /// An empty histogram with `bins` bins (rounded up to an even number, at least 2).
    pub fn new(bins: usize) -> Self {
        let bins = bins.max(2).next_multiple_of(2);
        Self { threshold: 0.0, counts: vec![0.0; bins] }
    }

    /// Number of bins.
    pub fn bins(&self) -> usize {
        self.counts.len()
    }

    /// Total count.
    pub fn total(&self) -> f64 {
        self.counts.iter().sum()
    }

    /// Width of one bin.
    pub fn bin_width(&self) -> f32 {
        2.0 * self.threshold / self.bins() as f32
    }

    /// Left edge of bin `i`.
    pub fn edge(&self, i: usize) -> f32 {
        -self.threshold + self.bin_width() * i as f32
    }

    /// The bin holding `x` (clamped to the range).
    #[inline]
    pub fn bin_of(&self, x: f32) -> usize {
        let n = self.bins();
        if self.threshold <= 0.0 {
            return n / 2;
        }
        let pos = (f64::from(x) + f64::from(self.threshold)) / (2.0 * f64::from(self.threshold)) * n as f64;
        (pos as usize).min(n - 1)
    }

    /// Doubles the range until it covers `absmax`, merging bin pairs.
    pub fn grow_to(&mut self, absmax: f32) {
        if absmax <= self.threshold {
            return;
        }
        if self.threshold <= 0.0 {
            // Only zeros so far (they sit in the bin right of 0): start at `absmax`.
            let zeros = self.total();
            self.counts.iter_mut().for_each(|c| *c = 0.0);
            self.threshold = absmax;
            let mid = self.bin_of(0.0);
            self.counts[mid] = zeros;
            return;
        }
        let n = self.bins();
        while self.threshold < absmax {
            let mut merged = vec![0.0; n];
            for (m, slot) in merged[n / 4..3 * n / 4].iter_mut().enumerate() {
                *slot = self.counts[2 * m] + self.counts[2 * m + 1];
            }
            self.counts = merged;
            self.threshold *= 2.0;
        }
    }

    /// Adds finite values.
    pub fn add(&mut self, values: &[f32]) {
        let absmax = values.iter().fold(0f32, |m, v| m.max(v.abs()));
        self.add_with_absmax(values, absmax);
    }

    /// Adds finite values whose largest magnitude the caller already knows (the hot path of
    /// calibration: one multiply-add and a saturating cast per value).
    pub fn add_with_absmax(&mut self, values: &[f32], absmax: f32) {
        self.grow_to(absmax);
        let n = self.bins();
        if self.threshold <= 0.0 {
            self.counts[n / 2] += values.len() as f64;
            return;
        }
        let t = f64::from(self.threshold);
        let (width, bins) = (2.0 * t, n as f64);
        let last = n - 1;
        for &v in values {
            // The same arithmetic as `bin_of`; `as usize` saturates (negatives give 0), so it is
            // floor-and-clamp without a call to `floor`.
            let b = ((f64::from(v) + t) / width * bins) as usize;
            self.counts[b.min(last)] += 1.0;
        }
    }

    /// Adds another histogram (re-binning it by bin centre when the ranges differ).
    pub fn merge(&mut self, other: &Self) {
        self.grow_to(other.threshold);
        if other.threshold == self.threshold && other.bins() == self.bins() {
            for (a, b) in self.counts.iter_mut().zip(&other.counts) {
                *a += b;
            }
            return;
        }
        let w = other.bin_width();
        for (i, &c) in other.counts.iter().enumerate() {
            if c > 0.0 {
                let centre = if other.threshold > 0.0 { other.edge(i) + 0.5 * w } else { 0.0 };
                let b = self.bin_of(centre);
                self.counts[b] += c;
            }
        }
    }

    /// Re-bins into `bins` equal bins over `[lo, hi]`, assigning each bin by its centre
    /// (counts stay whole numbers; values outside go to the end bins).
    pub fn rebin(&self, lo: f32, hi: f32, bins: usize) -> Vec<f64> {
        let mut out = vec![0.0; bins.max(1)];
        let width = f64::from(hi - lo) / bins.max(1) as f64;
        let w = self.bin_width();
        for (i, &c) in self.counts.iter().enumerate() {
            if c == 0.0 {
                continue;
            }
            let centre = if self.threshold > 0.0 { f64::from(self.edge(i) + 0.5 * w) } else { 0.0 };
            let pos = if width > 0.0 { ((centre - f64::from(lo)) / width).floor() } else { 0.0 };
            let b = (pos.max(0.0) as usize).min(out.len() - 1);
            out[b] += c;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn growth_is_exact() {
        let mut h = Histogram::new(8);
        h.add(&[0.1, -0.9, 0.99]);
        assert_eq!(h.threshold, 0.99);
        h.add(&[3.0]);
        assert_eq!(h.threshold, 3.96);
        assert_eq!(h.total(), 4.0);
        assert_eq!(h.counts[h.bin_of(3.0)], 1.0);
        assert_eq!(h.counts[h.bin_of(-0.9)], 1.0);
    }

    #[test]
    fn zeros_then_values() {
        let mut h = Histogram::new(8);
        h.add(&[0.0, 0.0]);
        h.add(&[1.0]);
        assert_eq!(h.threshold, 1.0);
        assert_eq!(h.counts[4], 2.0);
        assert_eq!(h.counts[7], 1.0);
    }

    proptest! {
        #[test]
        fn merging_halves_equals_the_whole(values in proptest::collection::vec(-50f32..50.0, 2..400)) {
            let mut whole = Histogram::new(256);
            whole.add(&values);
            let (a, b) = values.split_at(values.len() / 2);
            let mut ha = Histogram::new(256);
            ha.add(a);
            let mut hb = Histogram::new(256);
            hb.add(b);
            ha.merge(&hb);
            prop_assert_eq!(ha.total(), whole.total());
            // Same quantiles within the re-binning tolerance (two bins of the coarser histogram).
            let tol = 2.0 * ha.bin_width().max(whole.bin_width());
            for q in [0.1, 0.5, 0.9] {
                let qa = quantile(&ha, q);
                let qw = quantile(&whole, q);
                prop_assert!((qa - qw).abs() <= tol, "q{q}: {qa} vs {qw} (tol {tol})");
            }
        }
    }

    fn quantile(h: &Histogram, q: f64) -> f32 {
        let total = h.total();
        let mut acc = 0.0;
        for (i, c) in h.counts.iter().enumerate() {
            acc += c;
            if acc >= q * total {
                return h.edge(i);
            }
        }
        h.threshold
    }
}
