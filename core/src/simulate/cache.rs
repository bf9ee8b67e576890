//! The activation cache of incremental re-evaluation, kept compact and within a byte budget.
//!
//! A fake-quantized activation `fq = (q − z) · s` is stored as its integer codes `q − qmin` (one
//! byte per element up to 8 bits, two up to 16), which give `fq` back bit for bit: the codes are
//! recovered as `round(fq · (1/s))` (exact: the relative error of the product is below 4·10⁻⁷,
//! far from half a step for any 16-bit code) and every stored sample is checked by decoding it.
//! What is cached is chosen before the run, in network order while the total fits: the quantized
//! inputs of the layers (a change of a layer's weights cuts the graph there; a cut crossing an
//! uncached tensor moves to the latest earlier cut that crosses only cached ones), or, for a plan
//! without static activation quantization, the float activations as they are.

use std::collections::BTreeMap;
use std::sync::Arc;

use ndarray::ArrayD;

use super::graph::fq_name;
use crate::model::fake_quant::round_half_even;
use crate::plan::QuantPlan;

/// The integer grid of a statically quantized activation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Grid {
    scale: f32,
    zero_point: f32,
    qmin: f32,
    /// Number of codes, `qmax − qmin + 1`.
    levels: u32,
}

impl Grid {
    fn bytes_per_element(self) -> usize {
        if self.levels <= 1 << 8 { 1 } else { 2 }
    }
}

/// One sample's value of a cached tensor.
#[derive(Debug)]
enum Data {
    U8(Vec<u8>),
    U16(Vec<u16>),
    F32(Vec<f32>),
    /// A float value owned elsewhere (the simulator's float reference), shared, not copied.
    Shared(Arc<ArrayD<f32>>),
}

/// One sample's stored value and its shape.
#[derive(Debug)]
pub(crate) struct Stored {
    shape: Vec<usize>,
    data: Data,
}

/// A cached tensor: its grid (when stored as codes) and one value per sample.
#[derive(Debug, Clone, Default)]
struct Cached {
    grid: Option<Grid>,
    samples: Vec<Arc<Stored>>,
}

/// The cached tensors of the last full run, per sample.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cache {
    tensors: BTreeMap<String, Cached>,
}

impl Cache {
    /// An empty cache that will hold `chosen` (from [`choose`]).
    pub(crate) fn for_tensors(chosen: &BTreeMap<String, Option<Grid>>) -> Self {
        Self { tensors: chosen.iter().map(|(t, g)| (t.clone(), Cached { grid: *g, samples: Vec::new() })).collect() }
    }

    /// A cache of float values held elsewhere (`values[t][i]`: sample `i` of tensor `t`), sharing
    /// them: it costs no copy and no memory of its own.
    pub(crate) fn shared(values: &BTreeMap<String, Vec<Arc<ArrayD<f32>>>>) -> Self {
        let stored =
            |a: &Arc<ArrayD<f32>>| Arc::new(Stored { shape: a.shape().to_vec(), data: Data::Shared(Arc::clone(a)) });
        let tensors = values
            .iter()
            .map(|(t, v)| (t.clone(), Cached { grid: None, samples: v.iter().map(stored).collect() }))
            .collect();
        Self { tensors }
    }

    /// Whether `tensor` is cached.
    pub(crate) fn contains(&self, tensor: &str) -> bool {
        self.tensors.contains_key(tensor)
    }

    /// Stores sample `i` of `tensor` (ignored when the tensor is not one the cache holds).
    pub(crate) fn store(&mut self, tensor: &str, i: usize, shape: &[usize], values: &[f32]) {
        let Some(c) = self.tensors.get_mut(tensor) else { return };
        let stored = Arc::new(encode(c.grid, shape, values));
        if c.samples.len() > i {
            c.samples[i] = stored;
        } else {
            c.samples.push(stored);
        }
    }

    /// The shape of sample `i` of `tensor`.
    pub(crate) fn shape(&self, tensor: &str, i: usize) -> Option<&[usize]> {
        self.tensors.get(tensor)?.samples.get(i).map(|s| s.shape.as_slice())
    }

    /// The value of sample `i` of `tensor`, bit for bit what was stored.
    pub(crate) fn value(&self, tensor: &str, i: usize) -> Option<ArrayD<f32>> {
        let c = self.tensors.get(tensor)?;
        let s = c.samples.get(i)?;
        let values: Vec<f32> = match (&s.data, c.grid) {
            (Data::F32(v), _) => v.clone(),
            (Data::Shared(a), _) => return Some((**a).clone()),
            (Data::U8(v), Some(g)) => v.iter().map(|&k| decode(g, f32::from(k))).collect(),
            (Data::U16(v), Some(g)) => v.iter().map(|&k| decode(g, f32::from(k))).collect(),
            _ => return None,
        };
        ArrayD::from_shape_vec(s.shape.clone(), values).ok()
    }

    /// Bytes held by the stored values.
    pub(crate) fn bytes(&self) -> usize {
        self.tensors
            .values()
            .flat_map(|c| &c.samples)
            .map(|s| match &s.data {
                Data::U8(v) => v.len(),
                Data::U16(v) => 2 * v.len(),
                Data::F32(v) => 4 * v.len(),
                Data::Shared(_) => 0,
            })
            .sum()
    }
}

/// `fq` from its code `k`: the arithmetic of the simulation's FakeQuant operator.
#[inline]
fn decode(g: Grid, k: f32) -> f32 {
    (k + g.qmin - g.zero_point) * g.scale
}

/// Stores `value` as codes on `grid` when every element decodes back to itself, else as f32.
fn encode(grid: Option<Grid>, shape: &[usize], values: &[f32]) -> Stored {
    let data = grid
        .and_then(|g| {
            if g.bytes_per_element() == 1 { codes(g, values).map(Data::U8) } else { codes(g, values).map(Data::U16) }
        })
        .unwrap_or_else(|| Data::F32(values.to_vec()));
    Stored { shape: shape.to_vec(), data }
}

/// An integer code type: `from_code` converts a code already clamped to its range.
trait Code: Copy {
    fn from_code(k: f32) -> Self;
}

impl Code for u8 {
    #[inline]
    fn from_code(k: f32) -> Self {
        k as u8
    }
}

impl Code for u16 {
    #[inline]
    fn from_code(k: f32) -> Self {
        k as u16
    }
}

/// The codes of `values` on `g`, or None when one of them does not decode back to itself. One
/// branch-free pass, so that it vectorises: the cache of a real model holds ~10⁹ elements.
fn codes<T: Code>(g: Grid, values: &[f32]) -> Option<Vec<T>> {
    let inv = 1.0 / g.scale;
    let offset = g.zero_point - g.qmin;
    let max = (g.levels - 1) as f32;
    let mut mismatches = 0u32;
    let out: Vec<T> = values
        .iter()
        .map(|&x| {
            let k = (round_half_even(x * inv) + offset).max(0.0).min(max);
            mismatches += u32::from(decode(g, k).to_bits() != x.to_bits());
            T::from_code(k)
        })
        .collect();
    (mismatches == 0).then_some(out)
}

/// The tensors to cache for `plan` within `budget` bytes over `samples` samples, in network order
/// while the total fits: the fake-quantized values of the plan's static activations that layers
/// read (`layer_inputs`: where a one-layer change cuts the graph) as codes, or, when there are
/// none, the float activations and the dynamic ones' fake-quantized values as f32. Storing costs
/// time as well as memory (page faults and one pass per element), so no more is kept.
/// `float_activations` lists the model's float activations in network order with their element
/// counts per sample; model inputs and outputs are never cached.
pub(crate) fn choose(
    float_activations: &[(String, usize)],
    inputs: &[String],
    outputs: &[String],
    layer_inputs: &[&str],
    plan: &QuantPlan,
    samples: usize,
    budget: usize,
) -> BTreeMap<String, Option<Grid>> {
    let mut chosen = BTreeMap::new();
    let mut used = 0usize;
    let mut take = |chosen: &mut BTreeMap<String, Option<Grid>>, name: String, elems: usize, bytes: usize, grid| {
        let cost = elems.saturating_mul(bytes).saturating_mul(samples);
        if used.saturating_add(cost) <= budget {
            used += cost;
            chosen.insert(name, grid);
        }
    };
    let mut later = Vec::new();
    // A quantized model input's fake-quantized value is cached too (the input itself is data).
    for (t, elems) in float_activations.iter().filter(|(t, _)| !outputs.contains(t)) {
        let Some(a) = plan.activations.get(t).filter(|_| layer_inputs.contains(&t.as_str())) else { continue };
        let levels = u32::try_from(i64::from(a.params.range.qmax) - i64::from(a.params.range.qmin) + 1).unwrap_or(0);
        if a.dynamic || levels == 0 || levels > 1 << 16 {
            later.push((fq_name(t), *elems));
            continue;
        }
        let grid = Grid {
            scale: a.params.scale,
            zero_point: a.params.zero_point as f32,
            qmin: a.params.range.qmin as f32,
            levels,
        };
        take(&mut chosen, fq_name(t), *elems, grid.bytes_per_element(), Some(grid));
    }
    if !chosen.is_empty() {
        return chosen;
    }
    // Nothing quantized statically (weight-only or dynamic plans): float values.
    let floats = float_activations.iter().filter(|(t, _)| !inputs.contains(t) && !outputs.contains(t));
    for (t, elems) in floats.map(|(t, e)| (t.clone(), *e)).chain(later) {
        take(&mut chosen, t, elems, 4, None);
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Codes give the fake-quantized values back bit for bit, at 8 and 16 bits, and anything off
    /// the grid is kept as f32.
    #[test]
    fn codes_round_trip_bit_for_bit() {
        for (scale, zero_point, qmin, qmax) in
            [(0.0173f32, 128.0f32, 0.0f32, 255.0f32), (0.1, 0.0, -128.0, 127.0), (3.1e-5, 0.0, -32768.0, 32767.0)]
        {
            let g = Grid { scale, zero_point, qmin, levels: (qmax - qmin) as u32 + 1 };
            let fq: Vec<f32> = (qmin as i32..=qmax as i32).map(|q| (q as f32 - zero_point) * scale).collect();
            let a = ArrayD::from_shape_vec(vec![1, fq.len()], fq.clone()).expect("shape");
            let mut cache = Cache::for_tensors(&BTreeMap::from([("t".to_string(), Some(g))]));
            cache.store("t", 0, a.shape(), a.as_slice().expect("contiguous"));
            assert_eq!(cache.bytes(), fq.len() * g.bytes_per_element());
            let back = cache.value("t", 0).expect("value");
            assert!(back.iter().zip(&fq).all(|(x, y)| x.to_bits() == y.to_bits()));
            let mut off = a.clone();
            off[[0, 3]] += scale * 0.25;
            cache.store("t", 0, off.shape(), off.as_slice().expect("contiguous"));
            assert_eq!(cache.bytes(), 4 * fq.len());
            assert_eq!(cache.value("t", 0).expect("value"), off);
        }
    }
}
