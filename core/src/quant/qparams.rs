//! Range → (scale, zero point), exactly as ONNX Runtime's `compute_scale_zp`, and the integer
//! grid of a scheme.

use serde::{Deserialize, Serialize};

use crate::model::fake_quant::round_half_even as round_half_even_f32;

/// The integer range `[qmin, qmax]` of a quantized type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QRange {
    /// Smallest integer value.
    pub qmin: i32,
    /// Largest integer value.
    pub qmax: i32,
}

impl QRange {
    /// The range of a `bits`-wide integer: signed `[-2^(b-1), 2^(b-1)-1]` (narrow:
    /// `[-(2^(b-1)-1), 2^(b-1)-1]`), unsigned `[0, 2^b-1]`.
    pub fn new(bits: u8, signed: bool, narrow: bool) -> Self {
        let bits = u32::from(bits.clamp(2, 16));
        if signed {
            let half = 1i32 << (bits - 1);
            Self { qmin: if narrow { -(half - 1) } else { -half }, qmax: half - 1 }
        } else {
            let top = (1i32 << bits) - 1;
            Self { qmin: 0, qmax: if narrow { top - 1 } else { top } }
        }
    }
}

/// Quantization parameters of one tensor (or one channel).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct QParams {
    /// Scale: one integer step in real units.
    pub scale: f32,
    /// Zero point: the integer that represents real 0.
    pub zero_point: i32,
    /// The integer range values are saturated to.
    pub range: QRange,
}

/// Rounds half to even, as ONNX QuantizeLinear and `numpy.round` do.
#[inline]
pub fn round_half_even(x: f64) -> f64 {
    x.round_ties_even()
}

/// Computes (scale, zero point) for the real range `[rmin, rmax]` as ONNX Runtime's
/// `quant_utils.compute_scale_zp`: the range is widened to include 0; symmetric uses
/// `±max(|rmin|, |rmax|)` and the zero point `round((qmin+qmax)/2)`; asymmetric
/// `z = round(qmin - rmin/s)`. The difference `rmax - rmin` is taken in f32 and divided in f64,
/// the scale then stored as f32, as ORT's numpy code does. A degenerate range gives `s = 1, z = 0`.
pub fn compute_scale_zp(rmin: f32, rmax: f32, range: QRange, symmetric: bool) -> QParams {
    let mut rmin = rmin.min(0.0);
    let mut rmax = rmax.max(0.0);
    if symmetric {
        let absmax = rmin.abs().max(rmax.abs());
        rmin = -absmax;
        rmax = absmax;
    }
    let dr = f64::from(rmax - rmin);
    let dq = f64::from(range.qmax) - f64::from(range.qmin);
    let scale = dr / dq;
    if scale.is_nan() || scale < f64::from(f32::MIN_POSITIVE) {
        return QParams { scale: 1.0, zero_point: 0, range };
    }
    let zero_point = if symmetric {
        round_half_even(f64::midpoint(f64::from(range.qmin), f64::from(range.qmax)))
    } else {
        round_half_even(f64::from(range.qmin) - f64::from(rmin) / scale)
    };
    // The zero point always lies in [qmin, qmax] because the range includes 0.
    let zero_point = zero_point.clamp(f64::from(range.qmin), f64::from(range.qmax)) as i32;
    QParams { scale: scale as f32, zero_point, range }
}

/// [`compute_scale_zp`] with the scale rounded up to a power of two (`2^⌈log2 s⌉`, for integer
/// accelerators that rescale by shifts) and the zero point recomputed for it, so the grid still
/// covers the range (a symmetric zero point stays the midpoint). `power_of_two = false` is
/// `compute_scale_zp` itself.
pub fn scale_zp(rmin: f32, rmax: f32, range: QRange, symmetric: bool, power_of_two: bool) -> QParams {
    let p = compute_scale_zp(rmin, rmax, range, symmetric);
    if !power_of_two {
        return p;
    }
    let scale = f64::from(p.scale).log2().ceil().exp2();
    if !scale.is_finite() || scale < f64::from(f32::MIN_POSITIVE) || scale > f64::from(f32::MAX) {
        return p;
    }
    let zero_point = if symmetric {
        f64::from(p.zero_point)
    } else {
        round_half_even(f64::from(range.qmin) - f64::from(rmin.min(0.0)) / scale)
    };
    let zero_point = zero_point.clamp(f64::from(range.qmin), f64::from(range.qmax)) as i32;
    QParams { scale: scale as f32, zero_point, range }
}

impl QParams {
    /// Quantizes one value: `saturate(round_half_even(x / s) + z)`.
    #[inline]
    pub fn quantize(&self, x: f32) -> i32 {
        let q = round_half_even_f32(x / self.scale) + self.zero_point as f32;
        q.clamp(self.range.qmin as f32, self.range.qmax as f32) as i32
    }

    /// Dequantizes one value: `(q - z) * s`.
    #[inline]
    pub fn dequantize(&self, q: i32) -> f32 {
        (q - self.zero_point) as f32 * self.scale
    }

    /// Quantize then dequantize.
    #[inline]
    pub fn fake_quant(&self, x: f32) -> f32 {
        self.dequantize(self.quantize(x))
    }

    /// The real range the grid covers: `[(qmin - z)·s, (qmax - z)·s]`.
    pub fn real_range(&self) -> (f32, f32) {
        (self.dequantize(self.range.qmin), self.dequantize(self.range.qmax))
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    /// Power-of-two scales: the scale is `2^⌈log2 s⌉` (never below ORT's), the grid still covers
    /// the range to half a step, and without the flag the parameters are ORT's.
    #[test]
    fn power_of_two_scales_cover_the_range() {
        let u8r = QRange::new(8, false, false);
        let s8r = QRange::new(8, true, true);
        for &(lo, hi) in &[(-1.3f32, 2.7f32), (0.0, 6.0), (-0.01, 0.02), (-5.0, 0.0), (0.0, 1.0)] {
            assert_eq!(scale_zp(lo, hi, u8r, false, false), compute_scale_zp(lo, hi, u8r, false));
            for (range, symmetric) in [(u8r, false), (s8r, true)] {
                let ort = compute_scale_zp(lo, hi, range, symmetric);
                let p = scale_zp(lo, hi, range, symmetric, true);
                assert_eq!(p.scale.log2().fract(), 0.0, "{lo} {hi}: {}", p.scale);
                assert!(p.scale >= ort.scale && p.scale < 2.0 * ort.scale, "{lo} {hi}: {} vs {}", p.scale, ort.scale);
                let (a, b) = p.real_range();
                assert!(a <= lo.min(0.0) + p.scale / 2.0 && b >= hi.max(0.0) - p.scale / 2.0, "{lo} {hi}: {a} {b}");
                if symmetric {
                    assert_eq!(p.zero_point, ort.zero_point);
                }
            }
        }
        // A degenerate range keeps ORT's (1, 0).
        assert_eq!(scale_zp(0.0, 0.0, u8r, false, true).scale, 1.0);
    }
}
