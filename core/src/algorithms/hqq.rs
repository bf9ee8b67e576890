//! HQQ (Badri & Shaji 2023, "Half-Quadratic Quantization of Large Machine Learning Models"):
//! data-free weight quantization that keeps each group's scale from its min/max and optimises its
//! zero point in the reals so that the error `w − dequant(quant(w))` is small in an lp norm with
//! p < 1 (which tolerates a few large errors on outliers in exchange for many small ones). The
//! half-quadratic splitting alternates a shrinkage (proximal) step on the error and a closed-form
//! zero point update. Implemented as ONNX Runtime's `HQQWeightOnlyQuantizer`
//! (`quantize_internal` + `optimize_weights`, itself the official implementation):
//!
//! - grid `[0, 2^bits − 1]`, inverse scale `s = (2^bits − 1) / (max − min)` per group (capped at
//!   2·10⁴; a constant group gets `s = 1`), zero `z = round(−min·s)`;
//! - each iteration: `w_q = clamp(round(w·s + z))`, `w_r = (w_q − z)/s`,
//!   `w_e = shrink_lp(w − w_r, β)`, `z = mean_group(w_q − (w − w_e)·s)`, `β ← κ·β`; stop when the
//!   mean `|w − w_r|` over the whole weight stops decreasing (the zero point of that iteration's
//!   update is kept, as ONNX Runtime does);
//! - `shrink_lp(x, β) = sign(x)·relu(|x| − |x|^(p−1)/β)` (`|x| + 10⁻⁸` in the power).
//!
//! A partial last group along a channel is padded with zeros, as ONNX Runtime pads the weight:
//! the padding takes part in that group's min/max and zero point mean, never in the output.

use ndarray::{Array2, ArrayD, ArrayViewD};

use super::layer_data::{matrix_to_weight_i32, weight_matrix};
use crate::error::{Error, Result};
use crate::model::fake_quant::round_half_even;
use crate::quant::{Granularity, QParams, QRange, WeightQuant, WeightScheme};

pub use crate::quant::HqqSettings;

/// The groups of a weight, each padded with zeros to `len` values.
struct Groups {
    /// Values, group after group (`count × len`).
    data: Vec<f32>,
    /// Values per group (after padding).
    len: usize,
}

/// The lp shrinkage operator (the proximal step of `|x|^p / β`). For p < 1 it is zero wherever
/// `|x| ≤ |x|^(p−1) / β`, i.e. below `β^(−1/(2−p))`: `zero_below` is half of that bound, under
/// which the result is 0 without the power (the same value, only faster: most quantization
/// errors are far below it).
fn shrink(x: f32, beta: f32, p: f32, zero_below: f32) -> f32 {
    let a = x.abs();
    if a < zero_below {
        return 0.0;
    }
    let t = if p == 1.0 { 1.0 / beta } else { (a + 1e-8).powf(p - 1.0) / beta };
    x.signum() * (a - t).max(0.0)
}

/// Half the magnitude below which [`shrink`] is zero (0 when p ≥ 1, where it is `1/β`).
fn shrink_zero_below(beta: f32, p: f32) -> f32 {
    if p < 1.0 { 0.5 * beta.powf(-1.0 / (2.0 - p)) } else { 0.0 }
}

/// Initial inverse scale and rounded zero of one group, as ONNX Runtime computes them.
fn initial_params(values: &[f32], qmax: f32) -> (f32, f32) {
    let (lo, hi) = values.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
    let span = hi - lo;
    let inv = if span == 0.0 { 1.0 } else { (qmax / span).min(2e4) };
    (inv, (-lo * inv).round_ties_even())
}

/// Groups are solved in this many fixed ranges, summed in order: the result does not depend on
/// the number of threads.
const RANGES: usize = 16;

/// One proximal step on the groups `values` (`zero.len()` groups of `len`) with their inverse
/// scales `inv`: updates their zero points and returns their summed absolute error.
fn step(values: &[f32], inv: &[f32], zero: &mut [f32], len: usize, (qmax, beta, p): (f32, f32, f32)) -> f64 {
    let mut target = vec![0.0f32; len];
    let mut abs_err = 0.0f64;
    let zero_below = shrink_zero_below(beta, p);
    for ((group, &s), z) in values.chunks(len).zip(inv).zip(zero.iter_mut()) {
        for (t, &w) in target.iter_mut().zip(group) {
            let w_q = round_half_even(w * s + *z).clamp(0.0, qmax);
            let w_r = (w_q - *z) / s;
            let w_e = shrink(w - w_r, beta, p, zero_below);
            *t = w_q - (w - w_e) * s;
            abs_err += f64::from((w - w_r).abs());
        }
        *z = target.iter().sum::<f32>() / len as f32;
    }
    abs_err
}

/// Runs the proximal solver over all groups at once, on all cores; returns the real zero points.
fn optimize_zeros(groups: &Groups, inv: &[f32], zero: &mut [f32], qmax: f32, settings: &HqqSettings) {
    let mut beta = settings.beta;
    let mut best = f64::INFINITY;
    let len = groups.len;
    let per = zero.len().div_ceil(RANGES).max(1);
    let chunks = zero.len().div_ceil(per);
    let never = std::sync::atomic::AtomicBool::new(false);
    for _ in 0..settings.iterations {
        let mut partial = vec![0.0f64; chunks];
        let before = zero.to_vec();
        let work = |c: usize| -> Result<(Vec<f32>, f64)> {
            let (start, end) = (c * per, ((c + 1) * per).min(before.len()));
            let mut z = before[start..end].to_vec();
            let values = &groups.data[start * len..end * len];
            let e = step(values, &inv[start..end], &mut z, len, (qmax, beta, settings.lp_norm));
            Ok((z, e))
        };
        // On the cores (model::parallel), results in range order.
        let ran = crate::model::parallel::run_map(
            chunks,
            &work,
            &mut |c, (z, e)| {
                zero[c * per..c * per + z.len()].copy_from_slice(&z);
                partial[c] = e;
                Ok(())
            },
            &never,
        );
        if ran.is_err() {
            return; // Unreachable: the steps cannot fail and nothing cancels them.
        }
        beta *= settings.kappa;
        let err = partial.iter().sum::<f64>() / groups.data.len().max(1) as f64;
        if err < best {
            best = err;
        } else {
            break;
        }
    }
}

/// Quantizes `weight` with HQQ; `axis` is its output-channel axis. The result has the layout of
/// [`quantize_weight`](crate::quant::quantize_weight) with the same scheme (one parameter set
/// per tensor, per channel or per group of `group_size` consecutive values of a channel), with
/// `float_zero` holding the optimised real zero points and each `QParams.zero_point` their
/// rounding (clamped to the grid).
///
/// HQQ quantizes on the unsigned asymmetric grid `[0, 2^bits − 1]`: that is `scheme.qrange()`
/// for an unsigned, non-narrow scheme; a signed, symmetric or narrow scheme gets the unsigned
/// grid of the same bit width instead (the `range` of the returned parameters says which).
/// Ternary and power-of-two schemes are refused (HQQ keeps the min/max scale and a real zero).
pub fn quantize(
    weight: &ArrayViewD<f32>,
    axis: usize,
    scheme: &WeightScheme,
    settings: &HqqSettings,
) -> Result<WeightQuant> {
    scheme.validate()?;
    settings.validate()?;
    if scheme.ternary || scheme.power_of_two {
        return Err(Error::Config(
            "HQQ quantizes to an integer grid with free scales, not ternary or power-of-two".into(),
        ));
    }
    if weight.iter().any(|v| !v.is_finite()) {
        return Err(Error::InvalidModel("a weight contains NaN or infinite values".into()));
    }
    let range = QRange::new(scheme.bits, false, false);
    let qmax = range.qmax as f32;
    let per_tensor = matches!(scheme.granularity, Granularity::PerTensor) || weight.ndim() == 0;
    if !per_tensor && axis >= weight.ndim() {
        return Err(Error::Config(format!("channel axis {axis} out of range for weight of rank {}", weight.ndim())));
    }
    // The weight as rows (one per channel, or one row for per-tensor), each cut into groups.
    let matrix = if per_tensor {
        Array2::from_shape_vec((1, weight.len()), weight.iter().copied().collect())
            .map_err(|e| Error::Shape(e.to_string()))?
    } else {
        weight_matrix(&weight.to_owned(), axis)
    };
    let (rows, cols) = matrix.dim();
    let group_size = match scheme.granularity {
        Granularity::PerGroup { group_size } if !per_tensor => Some(group_size),
        _ => None,
    };
    let len = group_size.unwrap_or(cols).max(1);
    let per_row = cols.div_ceil(len);
    let mut data = vec![0.0f32; rows * per_row * len];
    for (r, row) in matrix.rows().into_iter().enumerate() {
        for (c, &v) in row.iter().enumerate() {
            data[(r * per_row + c / len) * len + c % len] = v;
        }
    }
    let groups = Groups { data, len };
    let (inv, mut zero): (Vec<f32>, Vec<f32>) =
        groups.data.chunks(len).map(|values| initial_params(values, qmax)).unzip();
    optimize_zeros(&groups, &inv, &mut zero, qmax, settings);
    let mut q = Array2::<i32>::zeros((rows, cols));
    for ((r, c), v) in q.indexed_iter_mut() {
        let k = r * per_row + c / len;
        *v = round_half_even(matrix[[r, c]] * inv[k] + zero[k]).clamp(0.0, qmax) as i32;
    }
    let params = inv
        .iter()
        .zip(&zero)
        .map(|(&s, &z)| QParams { scale: 1.0 / s, zero_point: z.round_ties_even().clamp(0.0, qmax) as i32, range })
        .collect();
    let q = if per_tensor {
        ArrayD::from_shape_vec(weight.raw_dim(), q.into_iter().map(|v| v as i16).collect())
            .map_err(|e| Error::Shape(e.to_string()))?
    } else {
        matrix_to_weight_i32(&q, weight.shape(), axis)
    };
    Ok(WeightQuant { params, axis: (!per_tensor).then_some(axis), group_size, q, float_zero: Some(zero) })
}

#[cfg(test)]
mod tests {
    use ndarray::{Axis, IxDyn};

    use super::*;
    use crate::algorithms::layer_data::{SplitMix, param_index};
    use crate::quant::quantize_weight;

    fn normal(rng: &mut SplitMix) -> f32 {
        let u = ((rng.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        let v = ((rng.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    }

    /// Student-t with 3 degrees of freedom: heavy tails, as trained weights have.
    fn heavy_tailed(shape: &[usize], seed: u64) -> ArrayD<f32> {
        let mut rng = SplitMix::new(seed);
        ArrayD::from_shape_simple_fn(IxDyn(shape), || {
            let z = normal(&mut rng);
            let chi2: f32 = (0..3).map(|_| normal(&mut rng).powi(2)).sum();
            0.02 * z / (chi2 / 3.0).sqrt()
        })
    }

    /// Mean |e| and mean |e|^0.7 of the quantization error.
    fn errors(w: &ArrayD<f32>, wq: &WeightQuant) -> (f64, f64) {
        let back = wq.dequantize();
        let n = w.len() as f64;
        let abs: f64 = w.iter().zip(back.iter()).map(|(a, b)| f64::from((a - b).abs())).sum();
        let lp: f64 = w.iter().zip(back.iter()).map(|(a, b)| f64::from((a - b).abs()).powf(0.7)).sum();
        (abs / n, lp / n)
    }

    fn unsigned_groups(bits: u8, group_size: usize) -> WeightScheme {
        WeightScheme {
            bits,
            signed: false,
            symmetric: false,
            narrow_range: false,
            granularity: Granularity::PerGroup { group_size },
            ..WeightScheme::default()
        }
    }

    /// The defining effect: HQQ's zero points lower the mean absolute and the l0.7 error of the
    /// weight below nearest rounding on the same grid (and below its own min/max start).
    #[test]
    fn lowers_the_weight_error_below_nearest_rounding() {
        let w = heavy_tailed(&[64, 512], 7);
        for bits in [3u8, 4] {
            let scheme = unsigned_groups(bits, 32);
            let rtn = errors(&w, &quantize_weight(&w.view(), 0, &scheme).expect("rtn"));
            let start = HqqSettings { iterations: 0, ..HqqSettings::default() };
            let init = errors(&w, &quantize(&w.view(), 0, &scheme, &start).expect("init"));
            let hqq = errors(&w, &quantize(&w.view(), 0, &scheme, &HqqSettings::default()).expect("hqq"));
            println!(
                "HQQ {bits}-bit g32: mean|e| {:.4e} (RTN {:.4e}, {:+.1}%; min/max start {:.4e}), \
                 l0.7 {:.4e} (RTN {:.4e}, {:+.1}%)",
                hqq.0,
                rtn.0,
                100.0 * (hqq.0 / rtn.0 - 1.0),
                init.0,
                hqq.1,
                rtn.1,
                100.0 * (hqq.1 / rtn.1 - 1.0)
            );
            assert!(hqq.0 < 0.97 * rtn.0 && hqq.0 < init.0, "{bits} bits: mean |e| {hqq:?} vs {rtn:?} / {init:?}");
            assert!(hqq.1 < 0.97 * rtn.1 && hqq.1 < init.1, "{bits} bits: l0.7 {hqq:?} vs {rtn:?} / {init:?}");
        }
    }

    /// The layout is quantize_weight's (here a MatMul weight `K × N`, channel axis 1, with a
    /// partial last group), the integers stay on the unsigned grid, and dequantize() is
    /// `q·s − z·s` (as ONNX Runtime's MatMulNBits computes it) with the real zero point of each
    /// element's group.
    #[test]
    fn layout_and_dequantization_follow_quantize_weight() {
        let w = heavy_tailed(&[40, 6], 3);
        let scheme =
            WeightScheme { bits: 4, granularity: Granularity::PerGroup { group_size: 16 }, ..Default::default() };
        let wq = quantize(&w.view(), 1, &scheme, &HqqSettings::default()).expect("hqq");
        let rtn = quantize_weight(&w.view(), 1, &scheme).expect("rtn");
        assert_eq!((wq.params.len(), wq.axis, wq.group_size), (rtn.params.len(), rtn.axis, rtn.group_size));
        assert_eq!(wq.q.shape(), w.shape());
        assert!(wq.params.iter().all(|p| p.range == QRange { qmin: 0, qmax: 15 }), "a signed scheme uses 0..=15");
        assert!(wq.q.iter().all(|v| (0..=15).contains(v)));
        let zeros = wq.float_zero.clone().expect("real zero points");
        assert!(zeros.iter().zip(&wq.params).all(|(z, p)| p.zero_point == z.round_ties_even().clamp(0.0, 15.0) as i32));
        let back = wq.dequantize();
        for ((k, n), &v) in w.view().into_dimensionality::<ndarray::Ix2>().expect("2-D").indexed_iter() {
            let i = param_index(&wq, n, k, 40);
            let expected = f32::from(wq.q[[k, n]]) * wq.params[i].scale - zeros[i] * wq.params[i].scale;
            assert_eq!(back[[k, n]], expected);
            assert!((back[[k, n]] - v).abs() <= wq.params[i].scale * 1.01, "({k}, {n}): {v} → {}", back[[k, n]]);
        }
        // Channel 2's values decide only channel 2's parameters.
        let mut other = w.clone();
        other.index_axis_mut(Axis(1), 2).mapv_inplace(|v| 3.0 * v);
        let moved = quantize(&other.view(), 1, &scheme, &HqqSettings::default()).expect("hqq");
        let per = 40usize.div_ceil(16);
        assert_eq!(moved.params[..2 * per], wq.params[..2 * per]);
        assert_ne!(moved.params[2 * per..3 * per], wq.params[2 * per..3 * per]);
    }

    #[test]
    fn refuses_ternary_and_bad_settings() {
        let w = heavy_tailed(&[4, 8], 1);
        let ternary = WeightScheme { ternary: true, ..WeightScheme::default() };
        assert!(quantize(&w.view(), 0, &ternary, &HqqSettings::default()).is_err());
        let bad = HqqSettings { beta: 0.0, ..HqqSettings::default() };
        assert!(quantize(&w.view(), 0, &WeightScheme::default(), &bad).is_err());
    }
}
