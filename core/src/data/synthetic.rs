//! Synthetic inputs for a model without data: deterministic random samples (floats standard
//! normal, integers 0 or 1, valid as ids and masks). Calibrating on them is a clearly flagged
//! choice of the user, never a silent fallback: their ranges are those of noise, not of real
//! inputs. Each sample depends only on the seed and its index, so any batching gives the same set.

use ndarray::{ArrayD, IxDyn};

use crate::error::{Error, Result};

/// The name a synthetic set goes by where a data set's path is shown.
pub const SYNTHETIC_NAME: &str = "<synthetic inputs>";

/// A small deterministic generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    /// Seeded generator.
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform index below `n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// A uniform value in (0, 1].
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// A standard normal value (Box–Muller).
    fn normal(&mut self) -> f32 {
        let (u, v) = (self.unit(), self.unit());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    }
}

/// Samples `first..first + n` of input `input` (of `inputs`), each of `shape`, as one batch.
pub(super) fn batch(
    seed: u64,
    input: usize,
    integer: bool,
    shape: &[usize],
    first: usize,
    n: usize,
) -> Result<ArrayD<f32>> {
    let len: usize = shape.iter().product();
    let mut values = Vec::with_capacity(n * len);
    for sample in first..first + n {
        let mut rng = SplitMix::new(seed ^ ((sample as u64) << 16) ^ input as u64);
        values.extend((0..len).map(|_| if integer { (rng.next_u64() & 1) as f32 } else { rng.normal() }));
    }
    let mut full = vec![n];
    full.extend_from_slice(shape);
    ArrayD::from_shape_vec(IxDyn(&full), values).map_err(|e| Error::Config(format!("synthetic input: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_deterministic_whatever_the_batching_and_look_normal() {
        let whole = batch(7, 0, false, &[3, 50], 0, 40).expect("batch");
        let parts = [batch(7, 0, false, &[3, 50], 0, 25).expect("a"), batch(7, 0, false, &[3, 50], 25, 15).expect("b")];
        let joined: Vec<f32> = parts.iter().flat_map(|p| p.iter().copied()).collect();
        assert_eq!(whole.iter().copied().collect::<Vec<_>>(), joined);
        let n = whole.len() as f64;
        let mean = whole.iter().map(|v| f64::from(*v)).sum::<f64>() / n;
        let var = whole.iter().map(|v| (f64::from(*v) - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 0.05 && (var - 1.0).abs() < 0.08, "mean {mean}, variance {var}");
        assert_ne!(batch(8, 0, false, &[3, 50], 0, 1).expect("c"), batch(7, 0, false, &[3, 50], 0, 1).expect("d"));
        let ints = batch(7, 1, true, &[100], 0, 4).expect("ints");
        assert!(ints.iter().all(|v| *v == 0.0 || *v == 1.0) && ints.iter().any(|v| *v == 1.0));
    }
}
