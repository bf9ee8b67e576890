//! Range → (scale, zero point), exactly as ONNX Runtime's `compute_scale_zp`, and the integer
//! grid of a scheme.

use serde::{Deserialize, Serialize};

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

impl QParams {
    /// Quantizes one value: `saturate(round_half_even(x / s) + z)`.
    #[inline]
    pub fn quantize(&self, x: f32) -> i32 {
        let q = (x / self.scale).round_ties_even() + self.zero_point as f32;
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
