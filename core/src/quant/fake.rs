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

/// Parameters for a group of values, whose integers go to `out` (ternary or integer grid; the
/// grid fits i16, as [`WeightScheme::validate`] checks).
fn quantize_group(values: &[f32], scheme: &WeightScheme, out: &mut [i16]) -> QParams {
    let range = scheme.qrange();
    if scheme.ternary {
        // TWN (Li et al. 2016): threshold 0.7·mean|w|; scale = mean of |w| above it.
        let n = values.len().max(1) as f32;
        let threshold = 0.7 * values.iter().map(|v| v.abs()).sum::<f32>() / n;
        let above: Vec<f32> = values.iter().map(|v| v.abs()).filter(|a| *a > threshold).collect();
        let scale = if above.is_empty() { 1.0 } else { above.iter().sum::<f32>() / above.len() as f32 };
        for (o, v) in out.iter_mut().zip(values) {
            *o = if v.abs() > threshold { v.signum() as i16 } else { 0 };
        }
        return QParams { scale, zero_point: 0, range };
    }
    let (lo, hi) = min_max(values.iter().copied());
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 0.0) };
    let p = scale_zp(lo, hi, range, scheme.symmetric, scheme.power_of_two);
    for (o, &v) in out.iter_mut().zip(values) {
        *o = p.quantize(v) as i16;
    }
    p
}

/// Per-channel or per-group parameters and integers of a `[K, N]` weight whose channels run along
/// N (a MatMul's), with groups of `group` rows along K, in the weight's own layout: a block's
/// rows are read once for the column ranges and once for the integers, both contiguous, so no
/// transpose is made. The same values as [`quantize_group`] per channel lane (min and max are
/// exact in any order); parameters channel-major.
fn quantize_columns(
    w: &[f32],
    (k, n): (usize, usize),
    group: usize,
    scheme: &WeightScheme,
) -> (Vec<QParams>, Vec<i16>) {
    let range = scheme.qrange();
    let blocks = k.div_ceil(group.max(1));
    let mut params = vec![QParams { scale: 1.0, zero_point: 0, range }; n * blocks];
    let mut q = vec![0i16; k * n];
    let (mut lo, mut hi) = (vec![0f32; n], vec![0f32; n]);
    let (mut scale, mut zero) = (vec![0f32; n], vec![0f32; n]);
    let (qmin, qmax) = (range.qmin as f32, range.qmax as f32);
    for b in 0..blocks {
        let rows = b * group..((b + 1) * group).min(k);
        lo.fill(f32::INFINITY);
        hi.fill(f32::NEG_INFINITY);
        for row in w[rows.start * n..rows.end * n].chunks_exact(n) {
            for ((l, h), &v) in lo.iter_mut().zip(hi.iter_mut()).zip(row) {
                *l = l.min(v);
                *h = h.max(v);
            }
        }
        for c in 0..n {
            let p = scale_zp(lo[c], hi[c], range, scheme.symmetric, scheme.power_of_two);
            (scale[c], zero[c]) = (p.scale, p.zero_point as f32);
            params[c * blocks + b] = p;
        }
        let (wr, qr) = (&w[rows.start * n..rows.end * n], &mut q[rows.start * n..rows.end * n]);
        for (row, out) in wr.chunks_exact(n).zip(qr.chunks_exact_mut(n)) {
            for (((o, &v), &s), &z) in out.iter_mut().zip(row).zip(&scale).zip(&zero) {
                // QParams::quantize, exactly.
                *o = (round_half_even(v / s) + z).clamp(qmin, qmax) as i16;
            }
        }
    }
    (params, q)
}

/// Quantizes a weight with `scheme`; `axis` is its output-channel axis.
pub fn quantize_weight(w: &ArrayViewD<f32>, axis: usize, scheme: &WeightScheme) -> Result<WeightQuant> {
    scheme.validate()?;
    let finite = |v: &[f32]| v.iter().all(|v| v.is_finite());
    let nan = || Error::InvalidModel("a weight contains NaN or infinite values".into());
    if matches!(scheme.granularity, Granularity::PerTensor) || w.ndim() == 0 {
        let values: Vec<f32> = w.iter().copied().collect();
        if !finite(&values) {
            return Err(nan());
        }
        let mut q = vec![0; values.len()];
        let p = quantize_group(&values, scheme, &mut q);
        let q = ArrayD::from_shape_vec(w.raw_dim(), q).map_err(|e| Error::Config(e.to_string()))?;
        return Ok(WeightQuant { params: vec![p], axis: None, group_size: None, q, float_zero: None });
    }
    if axis >= w.ndim() {
        return Err(Error::Config(format!("channel axis {axis} out of range for weight of rank {}", w.ndim())));
    }
    let group = match scheme.granularity {
        Granularity::PerGroup { group_size } => Some(group_size),
        _ => None,
    };
    // A MatMul's `[K, N]` weight (channel axis 1) in its own layout; other weights with their
    // lanes as contiguous rows: the channel axis first, the others in order.
    let order: Vec<usize> = std::iter::once(axis).chain((0..w.ndim()).filter(|&a| a != axis)).collect();
    let (channels, lane) = (w.shape()[axis], w.len() / w.shape()[axis].max(1));
    if w.ndim() == 2 && axis == 1 && !scheme.ternary {
        let standard = w.as_standard_layout();
        let flat = standard.as_slice().ok_or_else(|| Error::Config("weight layout".into()))?;
        if !finite(flat) {
            return Err(nan());
        }
        let (params, q) = quantize_columns(flat, (lane, channels), group.unwrap_or(lane.max(1)), scheme);
        let q = ArrayD::from_shape_vec(w.raw_dim(), q).map_err(|e| Error::Config(e.to_string()))?;
        return Ok(WeightQuant { params, axis: Some(axis), group_size: group, q, float_zero: None });
    }
    let flat: Vec<f32> = w.view().permuted_axes(order.clone()).iter().copied().collect();
    if !finite(&flat) {
        return Err(nan());
    }
    let chunk = group.unwrap_or(lane.max(1));
    let mut params = Vec::with_capacity(channels * lane.div_ceil(chunk));
    let mut ints = vec![0i16; flat.len()];
    for (row, out) in flat.chunks(lane.max(1)).zip(ints.chunks_mut(lane.max(1))).take(channels) {
        for (g, o) in row.chunks(chunk).zip(out.chunks_mut(chunk)) {
            params.push(quantize_group(g, scheme, o));
        }
    }
    let shape: Vec<usize> = order.iter().map(|&a| w.shape()[a]).collect();
    let permuted = ArrayD::from_shape_vec(shape, ints).map_err(|e| Error::Config(e.to_string()))?;
    let q = if axis == 0 {
        permuted
    } else {
        let mut inverse = vec![0; order.len()];
        for (i, &a) in order.iter().enumerate() {
            inverse[a] = i;
        }
        permuted.permuted_axes(inverse).as_standard_layout().into_owned()
    };
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

        #[test]
        fn a_matmul_weight_quantized_in_place_equals_its_transpose_quantized_by_rows(
            values in proptest::collection::vec(-3f32..3.0, 5 * 7), bits in 2u8..=8, group in 1usize..=6,
            per_channel: bool, symmetric: bool, signed: bool,
        ) {
            // [K = 5, N = 7], channels along N: the column-wise path; its transpose [N, K] with
            // channels along axis 0 goes the row-wise one.
            let w = ArrayD::from_shape_vec(IxDyn(&[5, 7]), values).expect("shape");
            let granularity = if per_channel { Granularity::PerChannel } else { Granularity::PerGroup { group_size: group } };
            let scheme = WeightScheme { bits, signed, symmetric, granularity, ..WeightScheme::default() };
            let columns = quantize_weight(&w.view(), 1, &scheme).expect("columns");
            let t = w.t().as_standard_layout().into_owned();
            let rows = quantize_weight(&t.view(), 0, &scheme).expect("rows");
            prop_assert_eq!(&columns.params, &rows.params);
            prop_assert_eq!(columns.q.t().as_standard_layout().into_owned(), rows.q);
        }
    }
}
