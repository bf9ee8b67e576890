//! Fake-quant kernels (quantize → dequantize in place) and weight quantization per tensor, per
//! channel, per group, or ternary.

use ndarray::{ArrayD, ArrayViewD, Axis};

use super::qparams::{QParams, scale_zp};
use super::scheme::{Granularity, WeightScheme};
use crate::error::{Error, Result};
use crate::model::fake_quant::round_half_even;

/// Fake-quantizes a slice in place with one set of parameters.
#[inline]
pub fn fake_quant_slice(data: &mut [f32], p: &QParams) {
    let (s, z) = (p.scale, p.zero_point as f32);
    let (lo, hi) = (p.range.qmin as f32, p.range.qmax as f32);
    for x in data.iter_mut() {
        let q = (round_half_even(*x / s) + z).clamp(lo, hi);
        *x = (q - z) * s;
    }
}

/// Fake-quantizes `arr` in place with one parameter set per index of `axis`.
pub fn fake_quant_per_axis(arr: &mut ArrayD<f32>, axis: usize, params: &[QParams]) -> Result<()> {
    if axis >= arr.ndim() || arr.shape()[axis] != params.len() {
        return Err(Error::Config(format!(
            "{} channel parameters for axis {axis} of shape {:?}",
            params.len(),
            arr.shape()
        )));
    }
    for (mut lane, p) in arr.axis_iter_mut(Axis(axis)).zip(params) {
        if let Some(s) = lane.as_slice_mut() {
            fake_quant_slice(s, p);
        } else {
            let (s, z) = (p.scale, p.zero_point as f32);
            let (lo, hi) = (p.range.qmin as f32, p.range.qmax as f32);
            lane.mapv_inplace(|x| ((round_half_even(x / s) + z).clamp(lo, hi) - z) * s);
        }
    }
    Ok(())
}

/// A quantized weight: parameters and integer values (as stored in an exported model).
#[derive(Debug, Clone, PartialEq)]
pub struct WeightQuant {
    /// Parameters: one (per tensor), one per channel, or one per group (channel-major).
    pub params: Vec<QParams>,
    /// The output-channel axis when per channel / per group.
    pub axis: Option<usize>,
    /// Group size when per group.
    pub group_size: Option<usize>,
    /// Integer values, same shape as the weight (every weight grid fits 16 signed bits: two bytes
    /// per weight held, not four).
    pub q: ArrayD<i16>,
    /// Real-valued zero points, one per parameter set, that replace the integer ones (HQQ
    /// optimises zero points in the reals; ONNX Runtime's MatMulNBits stores them as floats).
    pub float_zero: Option<Vec<f32>>,
}

impl WeightQuant {
    /// The zero point of parameter set `k`, as a real number.
    pub fn zero(&self, k: usize) -> f32 {
        self.float_zero.as_ref().map_or(self.params[k].zero_point as f32, |z| z[k])
    }

    /// The dequantized (fake-quantized) weight: `(q − z)·s`, exact for integer zero points; with
    /// real-valued ones `q·s − z·s`, as ONNX Runtime's MatMulNBits computes it (two roundings).
    pub fn dequantize(&self) -> ArrayD<f32> {
        let mut out = self.q.mapv(f32::from);
        let params = &self.params;
        let value = |q: f32, k: usize| match &self.float_zero {
            Some(z) => q * params[k].scale - z[k] * params[k].scale,
            None => (q - params[k].zero_point as f32) * params[k].scale,
        };
        match (self.axis, self.group_size) {
            (None, _) => out.mapv_inplace(|v| value(v, 0)),
            (Some(axis), group) => {
                for (c, mut lane) in out.axis_iter_mut(Axis(axis)).enumerate() {
                    let per = group.map_or(1, |g| lane.len().div_ceil(g));
                    for (i, v) in lane.iter_mut().enumerate() {
                        *v = value(*v, c * per + group.map_or(0, |g| i / g));
                    }
                }
            }
        }
        out
    }
}

fn min_max(values: impl Iterator<Item = f32>) -> (f32, f32) {
    values.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)))
}

/// Parameters and integers for a group of values (ternary or integer grid; the grid fits i16,
/// as [`WeightScheme::validate`] checks).
fn quantize_group(values: &[f32], scheme: &WeightScheme) -> (QParams, Vec<i16>) {
    let range = scheme.qrange();
    if scheme.ternary {
        // TWN (Li et al. 2016): threshold 0.7·mean|w|; scale = mean of |w| above it.
        let n = values.len().max(1) as f32;
        let threshold = 0.7 * values.iter().map(|v| v.abs()).sum::<f32>() / n;
        let above: Vec<f32> = values.iter().map(|v| v.abs()).filter(|a| *a > threshold).collect();
        let scale = if above.is_empty() { 1.0 } else { above.iter().sum::<f32>() / above.len() as f32 };
        let q = values.iter().map(|v| if v.abs() > threshold { v.signum() as i16 } else { 0 }).collect();
        return (QParams { scale, zero_point: 0, range }, q);
    }
    let (lo, hi) = min_max(values.iter().copied());
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 0.0) };
    let p = scale_zp(lo, hi, range, scheme.symmetric, scheme.power_of_two);
    let q = values.iter().map(|&v| p.quantize(v) as i16).collect();
    (p, q)
}

/// Quantizes a weight with `scheme`; `axis` is its output-channel axis.
pub fn quantize_weight(w: &ArrayViewD<f32>, axis: usize, scheme: &WeightScheme) -> Result<WeightQuant> {
    scheme.validate()?;
    if w.iter().any(|v| !v.is_finite()) {
        return Err(Error::InvalidModel("a weight contains NaN or infinite values".into()));
    }
    let per_tensor = |w: &ArrayViewD<f32>| {
        let values: Vec<f32> = w.iter().copied().collect();
        let (p, q) = quantize_group(&values, scheme);
        let q = ArrayD::from_shape_vec(w.raw_dim(), q).map_err(|e| Error::Config(e.to_string()))?;
        Ok(WeightQuant { params: vec![p], axis: None, group_size: None, q, float_zero: None })
    };
    if matches!(scheme.granularity, Granularity::PerTensor) || w.ndim() == 0 {
        return per_tensor(w);
    }
    if axis >= w.ndim() {
        return Err(Error::Config(format!("channel axis {axis} out of range for weight of rank {}", w.ndim())));
    }
    let group = match scheme.granularity {
        Granularity::PerGroup { group_size } => Some(group_size),
        _ => None,
    };
    // The lanes as contiguous rows: the channel axis first, the others in order.
    let order: Vec<usize> = std::iter::once(axis).chain((0..w.ndim()).filter(|&a| a != axis)).collect();
    let rows = w.view().permuted_axes(order.clone()).as_standard_layout().into_owned();
    let (channels, lane) = (w.shape()[axis], w.len() / w.shape()[axis].max(1));
    let flat = rows.as_slice().ok_or_else(|| Error::Config("weight layout".into()))?;
    let chunk = group.unwrap_or(lane.max(1));
    let mut params = Vec::with_capacity(channels * lane.div_ceil(chunk));
    let mut ints = Vec::with_capacity(w.len());
    for row in flat.chunks(lane.max(1)).take(channels) {
        for g in row.chunks(chunk) {
            let (p, qs) = quantize_group(g, scheme);
            params.push(p);
            ints.extend(qs);
        }
    }
    let permuted = ArrayD::from_shape_vec(rows.raw_dim(), ints).map_err(|e| Error::Config(e.to_string()))?;
    let mut inverse = vec![0; order.len()];
    for (i, &a) in order.iter().enumerate() {
        inverse[a] = i;
    }
    let q = permuted.permuted_axes(inverse).as_standard_layout().into_owned();
    Ok(WeightQuant { params, axis: Some(axis), group_size: group, q, float_zero: None })
}

#[cfg(test)]
mod tests {
    use ndarray::{ArrayD, IxDyn};
    use proptest::prelude::*;

    use super::*;
    use crate::quant::{QRange, compute_scale_zp};

    fn params(lo: f32, hi: f32, bits: u8, signed: bool, symmetric: bool) -> QParams {
        compute_scale_zp(lo, hi, QRange::new(bits, signed, signed && symmetric), symmetric)
    }

    #[test]
    fn matches_onnx_quantize_linear_rounding() {
        // Ties go to even: 0.5 → 0, 1.5 → 2, 2.5 → 2, -0.5 → 0, -1.5 → -2.
        let p = QParams { scale: 1.0, zero_point: 0, range: QRange::new(8, true, false) };
        let q: Vec<i32> = [0.5f32, 1.5, 2.5, -0.5, -1.5, 200.0, -200.0].iter().map(|&x| p.quantize(x)).collect();
        assert_eq!(q, vec![0, 2, 2, 0, -2, 127, -128]);
    }

    #[test]
    fn ternary_has_three_levels() {
        let w =
            ArrayD::from_shape_vec(IxDyn(&[2, 4]), vec![0.9, -1.1, 0.05, 0.0, 2.0, -2.2, 0.1, -0.1]).expect("shape");
        let scheme = WeightScheme { ternary: true, ..WeightScheme::default() };
        let wq = quantize_weight(&w.view(), 0, &scheme).expect("ternary");
        assert!(wq.q.iter().all(|v| (-1..=1).contains(v)));
        assert_eq!(wq.q.index_axis(Axis(0), 0).iter().copied().collect::<Vec<_>>(), vec![1, -1, 0, 0]);
        assert!((wq.params[0].scale - 1.0).abs() < 1e-6, "{:?}", wq.params[0]);
    }

    #[test]
    fn per_group_splits_channels() {
        let w = ArrayD::from_shape_fn(IxDyn(&[2, 8]), |ix| if ix[1] < 4 { 0.01 } else { 10.0 } * (ix[1] as f32 + 1.0));
        let scheme = WeightScheme { granularity: Granularity::PerGroup { group_size: 4 }, ..WeightScheme::default() };
        let wq = quantize_weight(&w.view(), 0, &scheme).expect("groups");
        assert_eq!(wq.params.len(), 4);
        let back = wq.dequantize();
        for (a, b) in w.iter().zip(back.iter()) {
            assert!((a - b).abs() <= 0.5 * 80.0 / 127.0 + 1e-6);
        }
        // The small group keeps its precision.
        assert!((back[[0, 0]] - 0.01).abs() < 1e-4);
    }

    proptest! {
        #[test]
        fn in_range_error_at_most_half_a_step(
            lo in -100f32..0.0, hi in 0f32..100.0, bits in 2u8..=16, signed: bool, symmetric: bool,
            t in 0f32..=1.0,
        ) {
            let p = params(lo, hi, bits, signed, symmetric);
            let (rlo, rhi) = p.real_range();
            let x = rlo + t * (rhi - rlo);
            prop_assume!(x >= rlo && x <= rhi);
            let err = (p.fake_quant(x) - x).abs();
            prop_assert!(err <= p.scale / 2.0 * (1.0 + 1e-4) + 1e-6, "err {err} scale {}", p.scale);
        }

        #[test]
        fn zero_is_exact_and_quantize_is_idempotent(
            lo in -50f32..0.0, hi in 0f32..50.0, bits in 2u8..=16, signed: bool, symmetric: bool, x in -80f32..80.0,
        ) {
            let p = params(lo, hi, bits, signed, symmetric);
            prop_assert_eq!(p.fake_quant(0.0), 0.0);
            let once = p.fake_quant(x);
            prop_assert_eq!(p.fake_quant(once), once);
        }

        #[test]
        fn per_channel_equals_per_tensor_channel_by_channel(
            values in proptest::collection::vec(-10f32..10.0, 24), bits in 2u8..=8,
        ) {
            let w = ArrayD::from_shape_vec(IxDyn(&[3, 2, 4]), values).expect("shape");
            let scheme = WeightScheme { bits, ..WeightScheme::default() };
            let wq = quantize_weight(&w.view(), 0, &scheme).expect("per channel");
            let per_tensor = WeightScheme { granularity: Granularity::PerTensor, ..scheme };
            for c in 0..3 {
                let lane = w.index_axis(Axis(0), c).to_owned().into_dyn();
                let single = quantize_weight(&lane.view(), 0, &per_tensor).expect("per tensor");
                prop_assert_eq!(single.params[0], wq.params[c]);
                prop_assert_eq!(single.q, wq.q.index_axis(Axis(0), c).to_owned().into_dyn());
            }
            // The slice kernel and the per-axis kernel agree with the quantized integers.
            let mut fq = w.clone();
            fake_quant_per_axis(&mut fq, 0, &wq.params).expect("kernel");
            prop_assert_eq!(fq, wq.dequantize());
        }
    }
}
