//! AdaRound (Nagel et al. 2020, "Up or Down? Adaptive Rounding for Post-Training Quantization"):
//! per layer, learn for every weight whether to round down or up by minimising the layer output's
//! reconstruction error `‖W̃·X_q − W·X‖²` on calibration data. The rounding is relaxed to a
//! rectified sigmoid `h(V) = clip(σ(V)(ζ − γ) + γ, 0, 1)` with a regulariser
//! `λ Σ 1 − |2h − 1|^β` whose β is annealed from `beta_start` to `beta_end` after a warm-up, which
//! drives every `h` to 0 or 1. Optimised with Adam; the final rounding is `h ≥ ½` (i.e. `V ≥ 0`).
//! Layer-local, so no training framework: plain matrix products.

use std::sync::atomic::{AtomicBool, Ordering};

use ndarray::{Array2, ArrayD, s};

use super::AdaRoundSettings;
use super::layer_data::{LayerProblem, SplitMix, matrix_to_weight_i32, param_matrices, weight_matrix};
use crate::error::{Error, Result};
use crate::quant::WeightQuant;

const ZETA: f32 = 1.1;
const GAMMA: f32 = -0.1;

fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}

/// The rectified sigmoid.
fn h_of(v: f32) -> f32 {
    (sigmoid(v) * (ZETA - GAMMA) + GAMMA).clamp(0.0, 1.0)
}

/// The V whose `h(V)` equals `rest` (in [0, 1)).
fn v_for(rest: f32) -> f32 {
    let p = ((rest - GAMMA) / (ZETA - GAMMA)).clamp(1e-4, 1.0 - 1e-4);
    (p / (1.0 - p)).ln()
}

/// Learns the rounding of `weight` with the scales and zero points of `wq`; returns `wq` with the
/// learned integers, or `wq` unchanged when learning does not beat its rounding on the
/// calibration columns.
pub fn optimize(
    problem: &LayerProblem,
    weight: &ArrayD<f32>,
    wq: &WeightQuant,
    settings: &AdaRoundSettings,
    seed: u64,
    cancel: &AtomicBool,
) -> Result<WeightQuant> {
    let w = weight_matrix(weight, problem.axis);
    let (rows_all, cols) = w.dim();
    let (scale, zero) = param_matrices(wq, rows_all, cols);
    let qmin = wq.params[0].range.qmin as f32;
    let qmax = wq.params[0].range.qmax as f32;
    let floor = (&w / &scale).mapv(f32::floor);
    let rest = &w / &scale - &floor;
    let mut q = Array2::<i32>::zeros((rows_all, cols));
    let rows = problem.rows_per_group();
    let mut rng = SplitMix::new(seed);
    for g in 0..problem.groups {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        let r = g * rows..(g + 1) * rows;
        let v = learn_group(
            problem,
            g,
            &floor.slice(s![r.clone(), ..]).to_owned(),
            &rest.slice(s![r.clone(), ..]).to_owned(),
            &scale.slice(s![r.clone(), ..]).to_owned(),
            &zero.slice(s![r.clone(), ..]).to_owned(),
            (qmin, qmax),
            settings,
            &mut rng,
            cancel,
        )?;
        let fl = floor.slice(s![r.clone(), ..]);
        let z = zero.slice(s![r.clone(), ..]);
        let mut block = q.slice_mut(s![r, ..]);
        ndarray::Zip::from(&mut block).and(&v).and(&fl).and(&z).for_each(|q, &v, &f, &z| {
            let up = if v >= 0.0 { 1.0 } else { 0.0 };
            *q = (f + up + z).clamp(qmin, qmax) as i32;
        });
    }
    let learned = WeightQuant {
        params: wq.params.clone(),
        axis: wq.axis,
        group_size: wq.group_size,
        q: matrix_to_weight_i32(&q, weight.shape(), problem.axis),
        float_zero: None,
    };
    if problem.reconstruction_mse(&learned)? < problem.reconstruction_mse(wq)? { Ok(learned) } else { Ok(wq.clone()) }
}

/// Adam on V for one group; returns V.
#[allow(clippy::too_many_arguments)] // One group's slices of the same layer.
fn learn_group(
    problem: &LayerProblem,
    g: usize,
    floor: &Array2<f32>,
    rest: &Array2<f32>,
    scale: &Array2<f32>,
    zero: &Array2<f32>,
    (qmin, qmax): (f32, f32),
    settings: &AdaRoundSettings,
    rng: &mut SplitMix,
    cancel: &AtomicBool,
) -> Result<Array2<f32>> {
    let x = &problem.x_quant[g];
    let y = &problem.y_float[g];
    let n = x.ncols();
    let mut v = rest.mapv(v_for);
    let mut m = Array2::<f32>::zeros(v.dim());
    let mut m2 = Array2::<f32>::zeros(v.dim());
    let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
    let batch = settings.batch_columns.min(n);
    let warm = (settings.warmup * settings.iterations as f32) as usize;
    let mut xb = Array2::<f32>::zeros((x.nrows(), batch));
    let mut yb = Array2::<f32>::zeros((y.nrows(), batch));
    for t in 0..settings.iterations {
        if t % 64 == 0 && cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        // A batch of columns (all of them when there are few).
        for c in 0..batch {
            let i = if batch == n { c } else { rng.below(n) };
            xb.column_mut(c).assign(&x.column(i));
            yb.column_mut(c).assign(&y.column(i));
        }
        let h = v.mapv(h_of);
        let level = floor + &h + zero;
        let w_soft = (level.mapv(|l| l.clamp(qmin, qmax)) - zero) * scale;
        let err = w_soft.dot(&xb) - &yb;
        // Loss: mean over columns of the squared error summed over channels (as AIMET).
        let grad_w = err.dot(&xb.t()) * (2.0 / batch as f32);
        let mut grad_h = grad_w * scale;
        ndarray::Zip::from(&mut grad_h).and(&level).for_each(|gh, &l| {
            if l <= qmin || l >= qmax {
                *gh = 0.0;
            }
        });
        if t >= warm {
            let rel = (t - warm) as f32 / (settings.iterations - warm).max(1) as f32;
            let beta = settings.beta_end + (settings.beta_start - settings.beta_end) * (1.0 - rel);
            let lambda = settings.reg_weight;
            ndarray::Zip::from(&mut grad_h).and(&h).for_each(|gh, &h| {
                let d = 2.0 * h - 1.0;
                *gh += -lambda * beta * d.abs().powf(beta - 1.0) * d.signum() * 2.0;
            });
        }
        // dh/dV inside the rectified range.
        let step = t as i32 + 1;
        let (c1, c2) = (1.0 - b1.powi(step), 1.0 - b2.powi(step));
        ndarray::Zip::from(&mut v).and(&grad_h).and(&mut m).and(&mut m2).for_each(|v, &gh, m, m2| {
            let sg = sigmoid(*v);
            let raw = sg * (ZETA - GAMMA) + GAMMA;
            let g = if raw > 0.0 && raw < 1.0 { gh * sg * (1.0 - sg) * (ZETA - GAMMA) } else { 0.0 };
            *m = b1 * *m + (1.0 - b1) * g;
            *m2 = b2 * *m2 + (1.0 - b2) * g * g;
            *v -= settings.learning_rate * (*m / c1) / ((*m2 / c2).sqrt() + eps);
        });
    }
    Ok(v)
}
