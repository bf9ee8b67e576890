//! AWQ (Lin et al. 2023, "AWQ: Activation-aware Weight Quantization for LLM Compression and
//! Acceleration"): a few input channels carry much larger activations than the rest, and the
//! weights they multiply matter most. Scaling those weights up by `s_k > 1` before quantization
//! (and the input down by `1/s_k`, an exact float equivalence) shrinks their relative rounding
//! error. As the reference implementation (`auto_scale.py`, `_search_module_scale`):
//!
//! - per input channel, the mean magnitude `a_k = mean|x_k|` over the calibration columns;
//! - for `α ∈ {0, 1/grid, …, (grid−1)/grid}`: `s_k = max(a_k^α, 10⁻⁴)`, normalised by
//!   `sqrt(max s · min s)`; the weight `W·diag(s)` is rounded to nearest with the scheme
//!   (grid and groups) and the output error `‖Q(W·diag(s))·diag(s)⁻¹·X − W·X‖²` measured on the
//!   float calibration columns;
//! - the α of the smallest error wins (the first on ties). `α = 0` gives `s = 1`, nearest
//!   rounding itself, so the result is never worse than it on the calibration columns.
//!
//! Dense layers only (Gemm/MatMul: one convolution group, a 2-D weight). The reference's second
//! step (clipping search, `auto_clip`) is not part of this module.

use std::sync::atomic::{AtomicBool, Ordering};

use ndarray::{Array2, ArrayD, Axis};

use super::layer_data::{LayerProblem, weight_matrix};
use crate::error::{Error, Result};
use crate::quant::{WeightQuant, WeightScheme, quantize_weight};

pub use crate::quant::AwqSettings;

/// The input-channel scales for exponent `alpha` of the mean magnitudes `mean_abs`.
fn scales_for(mean_abs: &[f32], alpha: f32) -> Vec<f32> {
    let s: Vec<f32> = mean_abs.iter().map(|a| a.powf(alpha).max(1e-4)).collect();
    let (lo, hi) = s.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
    let norm = (hi * lo).sqrt();
    s.into_iter().map(|v| v / norm).collect()
}

/// `weight` with its input-channel axis (the axis that is not `axis`) multiplied by `s`
/// (`divide`: divided by it).
fn scale_inputs(weight: &ArrayD<f32>, axis: usize, s: &[f32], divide: bool) -> ArrayD<f32> {
    let mut out = weight.clone();
    for (mut lane, &f) in out.axis_iter_mut(Axis(1 - axis)).zip(s) {
        if divide {
            lane.mapv_inplace(|v| v / f);
        } else {
            lane.mapv_inplace(|v| v * f);
        }
    }
    out
}

/// The weight a layer effectively computes with after AWQ: `wq.dequantize()` divided by the
/// scales `s` along the input-channel axis of the 2-D weight (the axis that is not `axis`, the
/// output-channel axis).
pub fn effective_weight(wq: &WeightQuant, s: &[f32], axis: usize) -> Result<ArrayD<f32>> {
    let deq = wq.dequantize();
    if deq.ndim() != 2 || axis > 1 || deq.shape()[1 - axis] != s.len() {
        return Err(Error::Shape(format!("{} AWQ scales for a weight of shape {:?}", s.len(), deq.shape())));
    }
    Ok(scale_inputs(&deq, axis, s, true))
}

/// `Σ_columns ‖ΔW·x‖²` through the Gram matrix `G = X·Xᵀ`: `Σ_rows ΔW_r·G·ΔW_rᵀ`.
fn output_error(delta: &Array2<f64>, gram: &Array2<f64>) -> f64 {
    (delta.dot(gram) * delta).sum()
}

/// Searches AWQ's input-channel scales for the dense layer of `problem` (weight `weight`, 2-D,
/// output-channel axis `problem.axis`) and quantizes the scaled weight with `scheme`. Returns
/// the quantization of `W·diag(s)` (the layout of [`quantize_weight`] on the weight tensor) and
/// `s`, indexed by input channel (the weight's other axis). The layer computes with
/// [`effective_weight`]; at run time its input is multiplied by `1/s`.
pub fn quantize(
    problem: &LayerProblem,
    weight: &ArrayD<f32>,
    scheme: &WeightScheme,
    settings: &AwqSettings,
    cancel: &AtomicBool,
) -> Result<(WeightQuant, Vec<f32>)> {
    scheme.validate()?;
    settings.validate()?;
    let axis = problem.axis;
    if problem.groups != 1 || weight.ndim() != 2 || axis > 1 || problem.x_float.len() != 1 {
        return Err(Error::Config("AWQ handles dense layers (Gemm, MatMul: a 2-D weight) only".into()));
    }
    let w = weight_matrix(weight, axis).mapv(f64::from);
    let x = &problem.x_float[0];
    if x.nrows() != w.ncols() {
        return Err(Error::Shape(format!("{} input channels for a weight of {} inputs", x.nrows(), w.ncols())));
    }
    let mean_abs: Vec<f32> = x.rows().into_iter().map(|r| r.mapv(f32::abs).mean().unwrap_or(0.0)).collect();
    let x64 = x.mapv(f64::from);
    let gram = x64.dot(&x64.t());
    let mut best: Option<(f64, WeightQuant, Vec<f32>)> = None;
    for i in 0..settings.grid {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        let s = scales_for(&mean_abs, i as f32 / settings.grid as f32);
        let wq = quantize_weight(&scale_inputs(weight, axis, &s, false).view(), axis, scheme)?;
        let delta = weight_matrix(&effective_weight(&wq, &s, axis)?, axis).mapv(f64::from) - &w;
        let err = output_error(&delta, &gram);
        if best.as_ref().is_none_or(|b| err < b.0) {
            best = Some((err, wq, s));
        }
    }
    best.map(|(_, wq, s)| (wq, s)).ok_or_else(|| Error::Config("AWQ tried no exponent".into()))
}

#[cfg(test)]
mod tests {
    use ndarray::IxDyn;

    use super::*;
    use crate::algorithms::gptq::tests::{normal, problem};
    use crate::algorithms::layer_data::SplitMix;
    use crate::quant::Granularity;

    /// A MatMul weight `K × N` (output channels on axis 1) and inputs whose channels in
    /// `salient` are `boost` times larger than the others'.
    fn layer(seed: u64, salient: &[usize], boost: f32) -> (LayerProblem, ArrayD<f32>) {
        let (k, n) = (128, 48);
        let mut rng = SplitMix::new(seed);
        let weight = ArrayD::from_shape_simple_fn(IxDyn(&[k, n]), || 0.1 * normal(&mut rng));
        let x = Array2::from_shape_fn((k, 512), |(j, _)| {
            let v = normal(&mut rng);
            if salient.contains(&j) { boost * v } else { v }
        });
        (problem(&weight, 1, vec![x]), weight)
    }

    fn mse(problem: &LayerProblem, w: &ArrayD<f32>) -> f64 {
        problem.mse_of(&weight_matrix(w, problem.axis))
    }

    fn scheme(bits: u8, granularity: Granularity) -> WeightScheme {
        WeightScheme { bits, granularity, ..WeightScheme::default() }
    }

    /// The defining effect: with a few input channels carrying large activations, scaling their
    /// weights up before rounding lowers the output error well below nearest rounding.
    #[test]
    fn salient_channels_lower_the_output_error() {
        let (problem, weight) = layer(4, &[3, 40, 77, 100], 20.0);
        let never = AtomicBool::new(false);
        for granularity in [Granularity::PerGroup { group_size: 32 }, Granularity::PerChannel] {
            for bits in [3u8, 4] {
                let scheme = scheme(bits, granularity);
                let rtn = mse(&problem, &quantize_weight(&weight.view(), 1, &scheme).expect("rtn").dequantize());
                let (wq, s) = quantize(&problem, &weight, &scheme, &AwqSettings::default(), &never).expect("awq");
                let awq = mse(&problem, &effective_weight(&wq, &s, 1).expect("effective"));
                let boost = (s[40] / s[41], s[77] / s[76]);
                println!("AWQ {bits}-bit {granularity:?}: output MSE {awq:.4e} vs RTN {rtn:.4e} ({:.2}×)", rtn / awq);
                assert!(awq < 0.6 * rtn, "{bits} bits {granularity:?}: {awq} vs {rtn}");
                assert!(boost.0 > 2.0 && boost.1 > 2.0, "salient channels are scaled up: {boost:?}");
                let range = scheme.qrange();
                assert!(wq.q.iter().all(|v| (range.qmin..=range.qmax).contains(&i32::from(*v))));
            }
        }
    }

    /// α = 0 (s = 1, nearest rounding) is a candidate: on the calibration columns AWQ is never
    /// worse than nearest rounding, also where there is nothing to gain; when it keeps α = 0 the
    /// result is nearest rounding exactly.
    #[test]
    fn never_worse_than_nearest_rounding() {
        let never = AtomicBool::new(false);
        let mut kept_rtn = 0;
        for (seed, boost) in [(1, 1.0), (2, 1.0), (3, 1.5), (5, 3.0)] {
            let (problem, weight) = layer(seed, &[7, 8], boost);
            for bits in [3u8, 4, 8] {
                let scheme = scheme(bits, Granularity::PerGroup { group_size: 32 });
                let rtn_q = quantize_weight(&weight.view(), 1, &scheme).expect("rtn");
                let rtn = mse(&problem, &rtn_q.dequantize());
                let (wq, s) = quantize(&problem, &weight, &scheme, &AwqSettings::default(), &never).expect("awq");
                let awq = mse(&problem, &effective_weight(&wq, &s, 1).expect("effective"));
                assert!(awq <= rtn * (1.0 + 1e-6), "seed {seed} {bits} bits: {awq} vs {rtn}");
                if s.iter().all(|&v| v == 1.0) {
                    kept_rtn += 1;
                    assert_eq!(wq, rtn_q);
                }
            }
        }
        // A single exponent is α = 0 alone.
        let (problem, weight) = layer(9, &[1], 10.0);
        let scheme = scheme(4, Granularity::PerChannel);
        let (wq, s) = quantize(&problem, &weight, &scheme, &AwqSettings { grid: 1 }, &never).expect("awq");
        assert!(s.iter().all(|&v| v == 1.0));
        assert_eq!(wq, quantize_weight(&weight.view(), 1, &scheme).expect("rtn"));
        println!("AWQ kept nearest rounding in {kept_rtn} of 12 cases");
    }

    /// A Gemm weight `N × K` (transB, output channels on axis 0) gets the same scales and the
    /// transposed integers; convolutions are refused.
    #[test]
    fn both_dense_layouts_and_refusals() {
        let (problem, weight) = layer(6, &[0, 64], 8.0);
        let never = AtomicBool::new(false);
        let scheme = scheme(4, Granularity::PerGroup { group_size: 32 });
        let (wq, s) = quantize(&problem, &weight, &scheme, &AwqSettings::default(), &never).expect("matmul");
        let transposed = weight.t().as_standard_layout().to_owned();
        let gemm = crate::algorithms::gptq::tests::problem(&transposed, 0, problem.x_float.clone());
        let (wq_t, s_t) = quantize(&gemm, &transposed, &scheme, &AwqSettings::default(), &never).expect("gemm");
        assert_eq!(s, s_t);
        assert_eq!(wq.q.t(), wq_t.q);
        assert_eq!(wq.params, wq_t.params);
        let conv = ArrayD::<f32>::zeros(IxDyn(&[48, 8, 4, 4]));
        let mut conv_problem = problem.clone();
        conv_problem.weight_shape = conv.shape().to_vec();
        conv_problem.axis = 0;
        assert!(quantize(&conv_problem, &conv, &scheme, &AwqSettings::default(), &never).is_err());
        assert!(quantize(&problem, &weight, &scheme, &AwqSettings { grid: 0 }, &never).is_err());
    }
}
