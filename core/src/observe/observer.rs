//! Observers: how a clip range is chosen from a tensor's calibration statistics (the
//! [`Observer`] choice itself is configuration, in `quant`). All work from the same statistics,
//! so switching observer needs no new pass.

use super::stats::TensorStats;
pub use crate::quant::Observer;
use crate::quant::{QRange, compute_scale_zp};

impl Observer {
    /// The clip range `[lo, hi]` for a tensor with statistics `stats`, to be quantized to
    /// `qrange` (symmetric or not). Within `[stats.min, stats.max]`, except a manual range, which
    /// is returned as it is.
    pub fn range(&self, stats: &TensorStats, qrange: QRange, symmetric: bool) -> (f32, f32) {
        if let Self::Manual { min, max } = *self {
            return (min, max);
        }
        if stats.count == 0 {
            return (0.0, 0.0);
        }
        match *self {
            Self::MinMax => (stats.min, stats.max),
            Self::Ema { constant } => ema(stats, constant),
            Self::Percentile { percentile } => percentile_range(stats, percentile),
            Self::Entropy { num_bins, num_quantized_bins } => entropy_range(stats, num_bins, num_quantized_bins),
            Self::Mse => mse_range(stats, qrange, symmetric),
            Self::Manual { min, max } => (min, max),
        }
    }
}

fn ema(stats: &TensorStats, c: f32) -> (f32, f32) {
    let mut it = stats.batch_ranges.iter();
    let Some(first) = it.next() else { return (stats.min, stats.max) };
    let (mut lo, mut hi) = (first[0], first[1]);
    for r in it {
        lo += c * (r[0] - lo);
        hi += c * (r[1] - hi);
    }
    (lo, hi)
}

/// ONNX Runtime's symmetric percentile: `t` = the `p`-th percentile of |x|; range
/// `(max(-t, min), min(t, max))`.
fn percentile_range(stats: &TensorStats, p: f32) -> (f32, f32) {
    let h = &stats.histogram;
    let n = h.bins();
    let half = n / 2;
    let w = h.bin_width();
    let total = h.total();
    let target = total * f64::from(p) / 100.0;
    let mut acc = 0.0;
    let mut t = h.threshold;
    for k in 0..half {
        let c = h.counts[half + k] + h.counts[half - 1 - k];
        if acc + c >= target && c > 0.0 {
            let frac = ((target - acc) / c).clamp(0.0, 1.0) as f32;
            t = w * (k as f32 + frac);
            break;
        }
        acc += c;
    }
    ((-t).max(stats.min), t.min(stats.max))
}

/// ORT's `smooth_distribution`, in place (the entropy search runs it for every candidate, so it
/// allocates nothing): zeros become `eps`, taken off the non-zero entries. False when all are zero.
fn smooth_in_place(p: &mut [f32]) -> bool {
    let eps = 0.0001f32;
    let zeros = p.iter().filter(|v| **v == 0.0).count();
    let nonzeros = p.len() - zeros;
    if nonzeros == 0 {
        return false;
    }
    let eps1 = eps * zeros as f32 / nonzeros as f32;
    for v in p.iter_mut() {
        *v = if *v == 0.0 { eps } else { *v - eps1 };
    }
    true
}

/// Relative entropy of normalised `p` and `q` (f32, as ORT computes it).
fn kl(p: &[f32], q: &[f32]) -> f32 {
    let sp: f32 = p.iter().sum();
    let sq: f32 = q.iter().sum();
    let mut s = 0f32;
    for (&a, &b) in p.iter().zip(q) {
        let (a, b) = (a / sp, b / sq);
        if a > 0.0 && b > 0.0 {
            s += a * (a / b).ln();
        } else if !(a == 0.0 && b >= 0.0) {
            return f32::INFINITY;
        }
    }
    s
}

/// ONNX Runtime's `get_entropy_threshold` on a `num_bins` histogram over `[-A, A]`. The
/// candidate thresholds are independent, so they are split over the cores; the result is the
/// same as a sequential search (least divergence, first on ties).
fn entropy_range(stats: &TensorStats, num_bins: usize, num_quantized_bins: usize) -> (f32, f32) {
    let a = stats.min.abs().max(stats.max.abs());
    if a == 0.0 {
        return (0.0, 0.0);
    }
    let hist = stats.histogram.rebin(-a, a, num_bins);
    let mut prefix = Vec::with_capacity(hist.len() + 1);
    prefix.push(0.0f64);
    for &h in &hist {
        prefix.push(prefix.last().copied().unwrap_or(0.0) + h);
    }
    let edge = |i: usize| -a + 2.0 * a * i as f32 / num_bins as f32;
    let zero = num_bins / 2;
    let half_q = num_quantized_bins / 2;
    let candidates: Vec<usize> = (half_q..=zero).collect();
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get).min(8);
    let chunk = candidates.len().div_ceil(threads).max(1);
    let search = |range: &[usize]| -> (f32, usize) {
        let mut best = (f32::INFINITY, usize::MAX);
        let mut buf = KlBuffers::default();
        for &i in range {
            let div = entropy_divergence(&hist, &prefix, zero, i, num_quantized_bins, &mut buf);
            if div < best.0 {
                best = (div, i);
            }
        }
        best
    };
    let results: Vec<(f32, usize)> = if candidates.len() >= 256 && threads > 1 {
        std::thread::scope(|scope| {
            let handles: Vec<_> = candidates.chunks(chunk).map(|c| scope.spawn(move || search(c))).collect();
            handles.into_iter().map(|h| h.join().unwrap_or((f32::INFINITY, usize::MAX))).collect()
        })
    } else {
        vec![search(&candidates)]
    };
    // Chunks are in candidate order: a strict `<` keeps the first of equal divergences.
    let best = results.into_iter().fold((f32::INFINITY, usize::MAX), |b, r| if r.0 < b.0 { r } else { b });
    if best.1 == usize::MAX {
        return (stats.min.max(-a), stats.max.min(a));
    }
    let (start, end) = (zero - best.1, (zero + best.1 + 1).min(num_bins));
    (edge(start).max(stats.min), edge(end).min(stats.max))
}

/// Scratch space of one entropy search.
#[derive(Default)]
struct KlBuffers {
    p: Vec<f64>,
    quantized: Vec<f64>,
    q: Vec<f32>,
    p32: Vec<f32>,
}

/// The divergence of candidate `i` (threshold bins `zero - i .. zero + i + 1`).
fn entropy_divergence(
    hist: &[f64],
    prefix: &[f64],
    zero: usize,
    i: usize,
    num_quantized_bins: usize,
    buf: &mut KlBuffers,
) -> f32 {
    let num_bins = hist.len();
    let start = zero - i;
    let end = (zero + i + 1).min(num_bins);
    let sliced = &hist[start..end];
    let p = &mut buf.p;
    p.clear();
    p.extend_from_slice(sliced);
    p[0] += prefix[start];
    let last = p.len() - 1;
    p[last] += prefix[num_bins] - prefix[end];
    let merged = sliced.len() / num_quantized_bins;
    let quantized = &mut buf.quantized;
    quantized.clear();
    quantized.extend((0..num_quantized_bins).map(|j| sliced[j * merged..(j + 1) * merged].iter().sum::<f64>()));
    quantized[num_quantized_bins - 1] += sliced[num_quantized_bins * merged..].iter().sum::<f64>();
    let q = &mut buf.q;
    q.clear();
    q.resize(p.len(), 0.0);
    for (j, &qb) in quantized.iter().enumerate() {
        let range = j * merged..(j + 1) * merged;
        let norm = p[range.clone()].iter().filter(|v| **v != 0.0).count();
        if norm != 0 {
            // ORT stores the quotient in an int64 array: truncation.
            let v = (qb / norm as f64).trunc() as f32;
            q[range].iter_mut().for_each(|x| *x = v);
        }
    }
    buf.p32.clear();
    buf.p32.extend(p.iter().map(|&v| v as f32));
    if smooth_in_place(&mut buf.p32) && smooth_in_place(q) { kl(&buf.p32, q) } else { f32::INFINITY }
}

/// Searches clip ranges shrinking `[min, max]` and keeps the one with the least expected squared
/// error (rounding inside, clipping outside) over the histogram's bin centres.
fn mse_range(stats: &TensorStats, qrange: QRange, symmetric: bool) -> (f32, f32) {
    const STEPS: usize = 100;
    let h = &stats.histogram;
    let w = h.bin_width();
    let centres: Vec<(f32, f64)> = h
        .counts
        .iter()
        .enumerate()
        .filter(|(_, c)| **c > 0.0)
        .map(|(i, &c)| (if h.threshold > 0.0 { h.edge(i) + 0.5 * w } else { 0.0 }, c))
        .collect();
    let mut best = (f64::INFINITY, (stats.min, stats.max));
    for step in 1..=STEPS {
        let f = step as f32 / STEPS as f32;
        let (lo, hi) = (stats.min * f, stats.max * f);
        let p = compute_scale_zp(lo, hi, qrange, symmetric);
        let err: f64 = centres
            .iter()
            .map(|&(x, c)| {
                let d = f64::from(p.fake_quant(x.clamp(stats.min, stats.max)) - x);
                c * d * d
            })
            .sum();
        if err < best.0 {
            best = (err, (lo, hi));
        }
    }
    best.1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats_of(values: &[f32]) -> TensorStats {
        let mut s = TensorStats::default();
        for chunk in values.chunks(100) {
            s.update(chunk);
        }
        s
    }

    /// A heavy-tailed sample: mostly small values and a few large outliers.
    fn outliers() -> Vec<f32> {
        let mut v: Vec<f32> = (0..10_000).map(|i| ((i as f32 * 0.618).fract() - 0.5) * 2.0).collect();
        v.extend([40.0, -35.0, 50.0]);
        v
    }

    #[test]
    fn minmax_and_ema() {
        let s = stats_of(&[1.0, -2.0, 3.0, 0.5]);
        assert_eq!(Observer::MinMax.range(&s, QRange::new(8, false, false), false), (-2.0, 3.0));
        let mut s = TensorStats::default();
        s.update(&[0.0, 10.0]);
        s.update(&[0.0, 20.0]);
        assert_eq!(Observer::Ema { constant: 0.5 }.range(&s, QRange::new(8, false, false), false), (0.0, 15.0));
    }

    #[test]
    fn clipping_observers_ignore_outliers() {
        let s = stats_of(&outliers());
        let q = QRange::new(8, false, false);
        for obs in
            [Observer::Percentile { percentile: 99.9 }, Observer::Entropy { num_bins: 2048, num_quantized_bins: 128 }]
        {
            let (lo, hi) = obs.range(&s, q, false);
            assert!(hi < 40.0 && lo > -35.0 && hi >= 0.9 && lo <= -0.9, "{obs:?}: ({lo}, {hi})");
        }
        // With enough mass in [-1, 1], the rounding noise of the full range at 3 bits outweighs
        // clipping three outliers.
        let mut bulk: Vec<f32> = (0..100_000).map(|i| ((i as f32 * 0.618).fract() - 0.5) * 2.0).collect();
        bulk.extend([40.0, -35.0, 50.0]);
        let big = stats_of(&bulk);
        let (lo, hi) = Observer::Mse.range(&big, QRange::new(3, false, false), false);
        assert!(hi < 40.0 && lo > -35.0 && lo >= big.min && hi <= big.max, "mse: ({lo}, {hi})");
        // At 16 bits nothing is worth clipping.
        assert_eq!(Observer::Mse.range(&s, QRange::new(16, false, false), false), (s.min, s.max));
    }

    #[test]
    fn non_finite_values_are_counted_not_folded() {
        let s = stats_of(&[1.0, f32::NAN, -1.0, f32::INFINITY]);
        assert_eq!((s.min, s.max, s.count, s.non_finite), (-1.0, 1.0, 2, 2));
    }

    #[test]
    fn parses_cli_names() {
        assert_eq!("percentile:99.99".parse::<Observer>().expect("ok"), Observer::Percentile { percentile: 99.99 });
        assert_eq!("MinMax".parse::<Observer>().expect("ok"), Observer::MinMax);
        assert!("percentile:101".parse::<Observer>().is_err());
        assert!("kl".parse::<Observer>().expect_err("unknown").to_string().contains("unknown observer 'kl'"));
    }

    #[test]
    fn manual_range_is_taken_as_given() {
        let s = stats_of(&outliers());
        let q = QRange::new(8, false, false);
        let manual = Observer::Manual { min: -0.5, max: 60.0 };
        // Outside the observed maximum too: the user's range wins.
        assert_eq!(manual.range(&s, q, false), (-0.5, 60.0));
        assert_eq!(manual.range(&TensorStats::default(), q, false), (-0.5, 60.0));
        // The usual scale/zero-point math: 0 is forced into an all-positive range.
        let p = compute_scale_zp(2.0, 4.0, q, false);
        assert_eq!(Observer::Manual { min: 2.0, max: 4.0 }.range(&s, q, false), (2.0, 4.0));
        assert_eq!(p.zero_point, 0);
        assert!((p.scale - 4.0 / 255.0).abs() < 1e-7, "{}", p.scale);
    }

    #[test]
    fn manual_parses_validates_and_names() {
        let check = |text: &str, expect: std::result::Result<Observer, &str>| match (text.parse::<Observer>(), expect) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{text}"),
            (Err(e), Err(msg)) => assert!(e.to_string().contains(msg), "{text}: {e}"),
            (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
        };
        check("manual:-1.5,2", Ok(Observer::Manual { min: -1.5, max: 2.0 }));
        check("Manual: -1 , 3e2", Ok(Observer::Manual { min: -1.0, max: 300.0 }));
        check("manual:2,1", Err("finite min < max, got [2, 1]"));
        check("manual:1,1", Err("finite min < max"));
        check("manual:nan,1", Err("finite min < max"));
        check("manual:-inf,1", Err("finite min < max"));
        check("manual", Err("manual:MIN,MAX"));
        check("manual:1", Err("manual:MIN,MAX"));
        check("manual:a,b", Err("manual:MIN,MAX"));
        let m = Observer::Manual { min: -0.25, max: 6.5 };
        assert_eq!(m.name(), "manual:-0.25,6.5");
        assert_eq!(m.name().parse::<Observer>().expect("round trip"), m);
        assert!(Observer::Manual { min: f32::INFINITY, max: f32::INFINITY }.validate().is_err());
    }
}
