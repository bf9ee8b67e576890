//! Error metrics between float and quantized tensors (docs/QUANTIZATION.md#metrics): SQNR, MSE, cosine
//! similarity and max abs error, accumulated in a streaming way over a data set.

use serde::{Deserialize, Serialize};

/// SQNR reported when the quantized tensor equals the float one exactly.
pub const EXACT_SQNR_DB: f64 = 200.0;

/// Interleaved partial sums of [`ErrorAccumulator::add`].
const LANES: usize = 8;

/// Streaming sums for comparing a float tensor `x` with its quantized counterpart `y`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ErrorAccumulator {
    sum_xx: f64,
    sum_yy: f64,
    sum_xy: f64,
    sum_ee: f64,
    max_abs: f64,
    count: u64,
}

impl ErrorAccumulator {
    /// Adds a pair of equally long slices. The sums run in [`LANES`] interleaved partial sums
    /// (element `k` into lane `k mod LANES`), added together at the end of the call, so that the
    /// loop vectorises: the order is fixed, so the result is too.
    pub fn add(&mut self, x: &[f32], y: &[f32]) {
        let n = x.len().min(y.len());
        let (x, y) = (&x[..n], &y[..n]);
        let mut lanes = [[0f64; LANES]; 5];
        let step = |k: usize, a: f32, b: f32, lanes: &mut [[f64; LANES]; 5]| {
            let (a, b) = (f64::from(a), f64::from(b));
            let e = a - b;
            lanes[0][k] += a * a;
            lanes[1][k] += b * b;
            lanes[2][k] += a * b;
            lanes[3][k] += e * e;
            let m = e.abs();
            // As `f64::max`, a NaN error is not a maximum (and the comparison vectorises).
            lanes[4][k] = if m > lanes[4][k] { m } else { lanes[4][k] };
        };
        let (xc, yc) = (x.chunks_exact(LANES), y.chunks_exact(LANES));
        let (xr, yr) = (xc.remainder(), yc.remainder());
        for (cx, cy) in xc.zip(yc) {
            for k in 0..LANES {
                step(k, cx[k], cy[k], &mut lanes);
            }
        }
        for (k, (&a, &b)) in xr.iter().zip(yr).enumerate() {
            step(k, a, b, &mut lanes);
        }
        let total = |l: &[f64; LANES]| l.iter().sum::<f64>();
        self.sum_xx += total(&lanes[0]);
        self.sum_yy += total(&lanes[1]);
        self.sum_xy += total(&lanes[2]);
        self.sum_ee += total(&lanes[3]);
        self.max_abs = lanes[4].iter().fold(self.max_abs, |m, &v| m.max(v));
        self.count += n as u64;
    }

    /// The metrics so far.
    pub fn metrics(&self) -> TensorMetrics {
        let sqnr_db = if self.sum_ee == 0.0 {
            EXACT_SQNR_DB
        } else if self.sum_xx == 0.0 {
            -EXACT_SQNR_DB
        } else {
            (10.0 * (self.sum_xx / self.sum_ee).log10()).clamp(-EXACT_SQNR_DB, EXACT_SQNR_DB)
        };
        let denom = (self.sum_xx * self.sum_yy).sqrt();
        let cosine = if denom > 0.0 {
            self.sum_xy / denom
        } else if self.sum_ee == 0.0 {
            1.0
        } else {
            0.0
        };
        TensorMetrics {
            sqnr_db,
            mse: if self.count > 0 { self.sum_ee / self.count as f64 } else { 0.0 },
            cosine,
            max_abs: self.max_abs,
        }
    }
}

/// Error of a quantized tensor against its float reference.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TensorMetrics {
    /// `10·log10(Σx² / Σ(x−x̂)²)` in dB (capped at ±200 dB; 200 means exact).
    pub sqnr_db: f64,
    /// Mean squared error.
    pub mse: f64,
    /// Cosine similarity.
    pub cosine: f64,
    /// Largest absolute error.
    pub max_abs: f64,
}

/// Index of the largest value (first on ties).
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_of_known_errors() {
        let mut acc = ErrorAccumulator::default();
        acc.add(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]);
        let m = acc.metrics();
        assert_eq!((m.sqnr_db, m.mse, m.max_abs), (EXACT_SQNR_DB, 0.0, 0.0));
        assert!((m.cosine - 1.0).abs() < 1e-12);
        let mut acc = ErrorAccumulator::default();
        acc.add(&[3.0, 4.0], &[3.0, 3.0]);
        let m = acc.metrics();
        assert!((m.sqnr_db - 10.0 * 25f64.log10()).abs() < 1e-9);
        assert_eq!((m.mse, m.max_abs), (0.5, 1.0));
        assert_eq!(argmax(&[0.1, 0.7, 0.7, 0.2]), 1);
    }
}
