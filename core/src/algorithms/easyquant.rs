//! EasyQuant (Wu et al. 2020, "EasyQuant: Post-training Quantization via Scale Optimization"):
//! alternately search the weight scales (per output channel, or one per tensor) and the input
//! activation scale among multiples `[low, high]` of the observer's, keeping the one that
//! maximises the cosine similarity of the layer output with the float output. The observer's own
//! scale (factor 1) is always a candidate, so the result is never worse on the calibration data.

use ndarray::{Array2, ArrayD, s};

use super::EasyQuantSettings;
use super::RefineInput;
use super::layer_data::{LayerProblem, matrix_to_weight_i32, param_index, weight_matrix};
use crate::error::Result;
use crate::quant::{Granularity, LayerConfig, QParams, WeightQuant, compute_scale_zp, quantize_weight};

/// Columns the cosine is measured on (evenly spread over the layer's calibration columns).
const SEARCH_COLUMNS: usize = 1024;

/// The search result.
#[derive(Debug, Clone)]
pub struct EasyQuantResult {
    /// The weight with the chosen scales.
    pub weight: WeightQuant,
    /// The chosen activation range (None when the activation was not searched).
    pub activation_range: Option<(f32, f32)>,
    /// Cosine of the layer output with the observer's scales and with the chosen ones.
    pub cosine: (f64, f64),
}

/// Cosine similarity of two equally long sequences.
pub fn cosine<'a>(a: impl Iterator<Item = &'a f32>, b: impl Iterator<Item = &'a f32>) -> f64 {
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 && bb == 0.0 { 1.0 } else { ab / (aa.sqrt() * bb.sqrt()).max(f64::MIN_POSITIVE) }
}

/// The candidate factors: `candidates` evenly spaced in `[low, high]`, plus exactly 1.
fn factors(settings: &EasyQuantSettings) -> Vec<f32> {
    let n = settings.candidates;
    let mut f: Vec<f32> =
        (0..n).map(|i| settings.low + (settings.high - settings.low) * i as f32 / (n - 1) as f32).collect();
    f.push(1.0);
    f
}

/// Per weight parameter, the (min, max) of the values it covers.
fn param_ranges(w: &Array2<f32>, wq: &WeightQuant) -> Vec<(f32, f32)> {
    let cols = w.ncols();
    let mut ranges = vec![(f32::INFINITY, f32::NEG_INFINITY); wq.params.len()];
    for ((r, c), &v) in w.indexed_iter() {
        let i = param_index(wq, r, c, cols);
        ranges[i] = (ranges[i].0.min(v), ranges[i].1.max(v));
    }
    ranges
}

/// `wq`'s layout with each output channel's ranges scaled by `factor[row]`.
fn scaled(
    w: &Array2<f32>,
    base: &WeightQuant,
    ranges: &[(f32, f32)],
    factor: &[f32],
    (symmetric, axis): (bool, usize),
) -> WeightQuant {
    let cols = w.ncols();
    let range = base.params[0].range;
    let mut params: Vec<QParams> = base.params.clone();
    let mut row_of = vec![0usize; params.len()];
    for r in 0..w.nrows() {
        for c in 0..cols {
            row_of[param_index(base, r, c, cols)] = r;
        }
    }
    for (i, p) in params.iter_mut().enumerate() {
        let f = factor[row_of[i].min(factor.len() - 1)];
        *p = compute_scale_zp(ranges[i].0 * f, ranges[i].1 * f, range, symmetric);
    }
    let mut q = Array2::<i32>::zeros(w.dim());
    for ((r, c), v) in q.indexed_iter_mut() {
        *v = params[param_index(base, r, c, cols)].quantize(w[[r, c]]);
    }
    let shape: Vec<usize> = base.q.shape().to_vec();
    WeightQuant {
        params,
        axis: base.axis,
        group_size: base.group_size,
        q: matrix_to_weight_i32(&q, &shape, axis),
        float_zero: None,
    }
}

/// The dequantized weight matrix of `wq`.
fn deq(wq: &WeightQuant, axis: usize) -> Array2<f32> {
    weight_matrix(&wq.dequantize(), axis)
}

/// Cosine of row `r` (of group `g`) of `W̃·X_q` with the float output.
fn row_cosine(problem: &LayerProblem, w: &Array2<f32>, row: usize) -> f64 {
    let rows = problem.rows_per_group();
    let g = row / rows;
    let y = w.row(row).dot(&problem.x_quant[g]);
    cosine(y.iter(), problem.y_float[g].row(row % rows).iter())
}

/// Cosine of the whole output.
fn output_cosine(problem: &LayerProblem, w: &Array2<f32>) -> f64 {
    let rows = problem.rows_per_group();
    let mut q = Vec::new();
    let mut f = Vec::new();
    for g in 0..problem.groups {
        let y = w.slice(s![g * rows..(g + 1) * rows, ..]).dot(&problem.x_quant[g]);
        q.extend(y.iter().copied());
        f.extend(problem.y_float[g].iter().copied());
    }
    cosine(q.iter(), f.iter())
}

/// Runs the search. `act` is the layer's static input quantization; its range is searched only
/// when `search_activation` (the layer is the tensor's first consumer).
pub fn search(
    problem: &LayerProblem,
    weight: &ArrayD<f32>,
    config: &LayerConfig,
    act: Option<&RefineInput>,
    search_activation: bool,
    settings: &EasyQuantSettings,
) -> Result<EasyQuantResult> {
    let axis = problem.axis;
    let base = quantize_weight(&weight.view(), axis, &config.weight)?;
    let mut problem = problem.subsample(SEARCH_COLUMNS);
    problem.quantize_input(act.map(|a| &a.params));
    let start_cosine = output_cosine(&problem, &deq(&base, axis));
    if config.weight.ternary {
        return Ok(EasyQuantResult { weight: base, activation_range: None, cosine: (start_cosine, start_cosine) });
    }
    let w = weight_matrix(weight, axis);
    let ranges = param_ranges(&w, &base);
    let per_tensor = matches!(config.weight.granularity, Granularity::PerTensor);
    let rows = w.nrows();
    let mut factor = vec![1.0f32; rows];
    let mut act_range = act.map(|a| a.range);
    let candidates = factors(settings);
    let symmetric = (config.weight.symmetric, axis);
    for _ in 0..settings.rounds {
        // Weights, activation fixed.
        if per_tensor {
            let mut best = (f64::NEG_INFINITY, 1.0);
            for &f in &candidates {
                let wq = scaled(&w, &base, &ranges, &[f], symmetric);
                let c = output_cosine(&problem, &deq(&wq, axis));
                if c > best.0 {
                    best = (c, f);
                }
            }
            factor.fill(best.1);
        } else {
            for r in 0..rows {
                let mut best = (f64::NEG_INFINITY, factor[r]);
                for &f in &candidates {
                    let mut trial = factor.clone();
                    trial[r] = f;
                    // Only row r changes: dequantize that row alone.
                    let wq = scaled(&w, &base, &ranges, &trial, symmetric);
                    let c = row_cosine(&problem, &deq(&wq, axis), r);
                    if c > best.0 {
                        best = (c, f);
                    }
                }
                factor[r] = best.1;
            }
        }
        // Activation, weights fixed.
        if let (true, Some(a), Some((lo, hi))) = (search_activation, act, act.map(|a| a.range)) {
            let wd = deq(&scaled(&w, &base, &ranges, &factor, symmetric), axis);
            let mut best = (f64::NEG_INFINITY, act_range.unwrap_or((lo, hi)));
            for &f in &candidates {
                let range = (lo * f, hi * f);
                let p = a.scheme.params(range);
                problem.quantize_input(Some(&p));
                let c = output_cosine(&problem, &wd);
                if c > best.0 {
                    best = (c, range);
                }
            }
            act_range = Some(best.1);
            let p = a.scheme.params(best.1);
            problem.quantize_input(Some(&p));
        }
    }
    let weight = scaled(&w, &base, &ranges, &factor, symmetric);
    let end_cosine = output_cosine(&problem, &deq(&weight, axis));
    Ok(EasyQuantResult {
        weight,
        activation_range: if search_activation { act_range } else { None },
        cosine: (start_cosine, end_cosine),
    })
}
