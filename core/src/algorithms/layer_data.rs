//! A layer as a matrix product for the layer-wise algorithms: per convolution group, the weight
//! as a `(out channels × K)` matrix and the layer's inputs on calibration data as `(K × N)`
//! columns (im2col for convolutions, one row of the input per column for Gemm/MatMul), so the
//! layer's output without bias is `W · X`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::model::onnx as pb;
use ndarray::{Array2, ArrayD, IxDyn, s};

use super::AlgorithmSettings;
use crate::data::{DataSet, fixed_batch, resolve_input_shapes};
use crate::error::{Error, Result};
use crate::model::graph::{attr_f, attr_i, attr_ints, attr_s};
use crate::model::runtime::Runner;
use crate::model::{OnnxModel, QuantizableLayer};
use crate::quant::CalibrationConfig;
use crate::quant::{QParams, WeightQuant};

pub use crate::data::SplitMix;

/// Whether the layer-wise algorithms handle `layer`: Conv 1-D/2-D, Gemm without transA, MatMul
/// with a 2-D weight. Others (ConvTranspose, 3-D convolutions) keep nearest rounding.
pub fn supported(model: &OnnxModel, layer: &QuantizableLayer) -> bool {
    let Ok(node) = model.node(&layer.name) else { return false };
    match layer.op_type.as_str() {
        "Conv" => matches!(layer.weight_shape.len(), 3 | 4),
        "Gemm" => attr_i(node, "transA", 0) == 0 && layer.weight_shape.len() == 2,
        "MatMul" => layer.weight_shape.len() == 2,
        _ => false,
    }
}

/// The weight as a `(out channels × rest)` matrix (the out-channel axis moved first).
pub fn weight_matrix(w: &ArrayD<f32>, axis: usize) -> Array2<f32> {
    let mut perm: Vec<usize> = vec![axis];
    perm.extend((0..w.ndim()).filter(|&a| a != axis));
    let rows = w.shape()[axis];
    let cols = w.len() / rows.max(1);
    // A 2-D weight is transposed as a 2-D view (a dynamic-rank copy walks index by index).
    if let Ok(w2) = w.view().into_dimensionality::<ndarray::Ix2>() {
        return if axis == 0 { w2.to_owned() } else { w2.t().as_standard_layout().into_owned() };
    }
    let p = w.view().permuted_axes(IxDyn(&perm));
    let flat: Vec<f32> = p.iter().copied().collect();
    Array2::from_shape_vec((rows, cols), flat).unwrap_or_else(|_| unreachable!("rows × cols = len"))
}

/// The inverse of [`weight_matrix`] for integer weights: back to the tensor's layout.
pub fn matrix_to_weight_i32(m: &Array2<i32>, shape: &[usize], axis: usize) -> ArrayD<i16> {
    let mut perm: Vec<usize> = vec![axis];
    perm.extend((0..shape.len()).filter(|&a| a != axis));
    let permuted_shape: Vec<usize> = perm.iter().map(|&a| shape[a]).collect();
    if shape.len() == 2 {
        let t = if axis == 0 { m.view() } else { m.t() };
        return t.mapv(|v| v as i16).into_dyn();
    }
    let arr = ArrayD::from_shape_vec(IxDyn(&permuted_shape), m.iter().map(|&v| v as i16).collect())
        .unwrap_or_else(|_| unreachable!("same element count"));
    let mut inverse = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inverse[p] = i;
    }
    arr.permuted_axes(IxDyn(&inverse)).as_standard_layout().to_owned()
}

/// Per-element scale and zero point matrices `(out channels × rest)` of a quantized weight
/// (per tensor, per channel or per group alike).
pub fn param_matrices(wq: &WeightQuant, rows: usize, cols: usize) -> (Array2<f32>, Array2<f32>) {
    let mut scale = Array2::zeros((rows, cols));
    let mut zero = Array2::zeros((rows, cols));
    for r in 0..rows {
        for c in 0..cols {
            let k = param_index(wq, r, c, cols);
            scale[[r, c]] = wq.params[k].scale;
            zero[[r, c]] = wq.zero(k);
        }
    }
    (scale, zero)
}

/// The parameters of element `(row, col)` of the weight matrix.
pub fn param_at(wq: &WeightQuant, row: usize, col: usize, cols: usize) -> QParams {
    wq.params[param_index(wq, row, col, cols)]
}

/// The index into `wq.params` of element `(row, col)` of the weight matrix.
pub fn param_index(wq: &WeightQuant, row: usize, col: usize, cols: usize) -> usize {
    match (wq.axis, wq.group_size) {
        (None, _) => 0,
        (Some(_), None) => row,
        (Some(_), Some(g)) => row * cols.div_ceil(g) + col / g,
    }
}

/// Runs the float model over the first `max_samples` calibration samples and keeps the listed
/// layers' input tensors, one array per batch.
pub fn collect_inputs(
    model: &OnnxModel,
    layers: &[&QuantizableLayer],
    calib: &DataSet,
    config: &CalibrationConfig,
    settings: &AlgorithmSettings,
    cancel: &AtomicBool,
) -> Result<BTreeMap<String, Vec<ArrayD<f32>>>> {
    let inputs = &model.summary.inputs;
    let batch = inputs.iter().find_map(fixed_batch).unwrap_or(config.batch_size.max(1));
    let shapes = resolve_input_shapes(inputs, Some(&calib.sample_shapes), &config.input_shapes, batch)?;
    let wanted: BTreeSet<&str> = layers.iter().map(|l| l.input.as_str()).collect();
    let input_names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
    let extra: Vec<String> = wanted.iter().filter(|t| !input_names.contains(t)).map(|t| (*t).to_string()).collect();
    let mut runners: BTreeMap<usize, Runner> = BTreeMap::new();
    let mut out: BTreeMap<String, Vec<ArrayD<f32>>> = wanted.iter().map(|t| ((*t).to_string(), Vec::new())).collect();
    let mut taken = 0;
    for b in calib.batches(batch)? {
        if taken >= settings.max_samples {
            break;
        }
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        let b = b?;
        let n = b.len();
        if n != batch && fixed_batch(&inputs[0]).is_some() {
            break;
        }
        let runner = match runners.entry(n) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                let s: Vec<Vec<usize>> = shapes.iter().map(|s| [&[n][..], &s[1..]].concat()).collect();
                e.insert(Runner::new(model, &s, &extra)?)
            }
        };
        let values = runner.run(b.inputs.clone())?;
        for (name, arr) in input_names.iter().zip(&b.inputs) {
            if let Some(v) = out.get_mut(*name) {
                v.push(arr.clone());
            }
        }
        for (name, arr) in runner.output_names.iter().zip(values) {
            if let Some(v) = out.get_mut(name) {
                v.push(arr);
            }
        }
        taken += n;
    }
    if taken == 0 {
        return Err(Error::Config("the calibration set holds no sample for the layer-wise algorithms".into()));
    }
    Ok(out)
}

/// How a layer maps its input to columns.
#[derive(Debug, Clone)]
enum Geometry {
    /// A convolution (spatial dims as 2-D; 1-D convolutions have height 1).
    Conv { kernel: [usize; 2], strides: [usize; 2], dilations: [usize; 2], pads: [usize; 4], cin_group: usize },
    /// Gemm/MatMul: columns are rows of the input, scaled by Gemm's alpha.
    Dense { alpha: f32 },
}

/// One layer's reconstruction problem.
#[derive(Debug, Clone)]
pub struct LayerProblem {
    /// Convolution groups (1 for dense layers).
    pub groups: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Float inputs per group, `(K × N)`.
    pub x_float: Vec<Array2<f32>>,
    /// Inputs per group after the layer's input quantization, `(K × N)`.
    pub x_quant: Vec<Array2<f32>>,
    /// The float weight as a matrix `(out channels × K)`.
    pub w_float: Array2<f32>,
    /// The float output per group without bias, `W_g · X_float_g` (`rows_g × N`).
    pub y_float: Vec<Array2<f32>>,
    /// The weight tensor's shape and out-channel axis.
    pub weight_shape: Vec<usize>,
    /// The out-channel axis of the weight tensor.
    pub axis: usize,
}

impl LayerProblem {
    /// Builds the problem of `layer` from its collected float inputs (one array per batch).
    pub fn new(
        model: &OnnxModel,
        layer: &QuantizableLayer,
        inputs: &[ArrayD<f32>],
        settings: &AlgorithmSettings,
    ) -> Result<Self> {
        let node = model.node(&layer.name)?;
        let weight = model.constant_f32(&layer.weight)?;
        let w_float = weight_matrix(&weight, layer.out_channel_axis);
        let out_channels = w_float.nrows();
        let geometry = match layer.op_type.as_str() {
            "Conv" => conv_geometry(node, &weight, inputs)?,
            "Gemm" => Geometry::Dense { alpha: attr_f(node, "alpha", 1.0) },
            "MatMul" => Geometry::Dense { alpha: 1.0 },
            op => {
                return Err(Error::Config(format!("layer '{}': {op} is not supported by the algorithms", layer.name)));
            }
        };
        let groups = usize::try_from(layer.group.max(1)).unwrap_or(1);
        if !out_channels.is_multiple_of(groups) {
            return Err(Error::InvalidModel(format!(
                "layer '{}': {out_channels} channels in {groups} groups",
                layer.name
            )));
        }
        let k = w_float.ncols();
        let x_float: Vec<Array2<f32>> = (0..groups)
            .map(|g| columns(&geometry, inputs, g, k, settings.max_columns, settings.seed))
            .collect::<Result<_>>()?;
        let rows = out_channels / groups;
        let y_float =
            x_float.iter().enumerate().map(|(g, x)| w_float.slice(s![g * rows..(g + 1) * rows, ..]).dot(x)).collect();
        Ok(Self {
            groups,
            out_channels,
            x_quant: x_float.clone(),
            x_float,
            w_float,
            y_float,
            weight_shape: weight.shape().to_vec(),
            axis: layer.out_channel_axis,
        })
    }

    /// The problem on at most `n` of its columns, evenly spread.
    #[must_use]
    pub fn subsample(&self, n: usize) -> Self {
        let total = self.x_float.first().map_or(0, Array2::ncols);
        if total <= n {
            return self.clone();
        }
        let keep: Vec<usize> = (0..n).map(|i| i * total / n).collect();
        let cols = |m: &Array2<f32>| m.select(ndarray::Axis(1), &keep);
        Self {
            x_float: self.x_float.iter().map(cols).collect(),
            x_quant: self.x_quant.iter().map(cols).collect(),
            y_float: self.y_float.iter().map(cols).collect(),
            ..self.clone()
        }
    }

    /// Output channels per group.
    pub fn rows_per_group(&self) -> usize {
        self.out_channels / self.groups
    }

    /// Sets the quantized inputs: the float inputs fake-quantized with `params` (None: float).
    /// Gemm's alpha is already in the columns; quantization happens before it, so alpha must be 1
    /// for an exact match — it is for every exporter we know.
    pub fn quantize_input(&mut self, params: Option<&QParams>) {
        self.x_quant = self
            .x_float
            .iter()
            .map(|x| match params {
                Some(p) => x.mapv(|v| p.fake_quant(v)),
                None => x.clone(),
            })
            .collect();
    }

    /// Mean squared error of the layer output (without bias) with the quantized weight and
    /// inputs against the float output, over all channels and columns.
    pub fn reconstruction_mse(&self, wq: &WeightQuant) -> Result<f64> {
        let w = weight_matrix(&wq.dequantize(), self.axis);
        Ok(self.mse_of(&w))
    }

    /// As [`Self::reconstruction_mse`] for a dequantized weight matrix.
    pub fn mse_of(&self, w: &Array2<f32>) -> f64 {
        let rows = self.rows_per_group();
        let mut sum = 0.0f64;
        let mut count = 0usize;
        for g in 0..self.groups {
            let y = w.slice(s![g * rows..(g + 1) * rows, ..]).dot(&self.x_quant[g]);
            for (a, b) in y.iter().zip(self.y_float[g].iter()) {
                let d = f64::from(a - b);
                sum += d * d;
            }
            count += y.len();
        }
        sum / count.max(1) as f64
    }

    /// Per output channel, the mean of (quantized − float) output over the columns.
    pub fn mean_shift(&self, w: &Array2<f32>) -> Vec<f32> {
        let rows = self.rows_per_group();
        let mut shift = Vec::with_capacity(self.out_channels);
        for g in 0..self.groups {
            let y = w.slice(s![g * rows..(g + 1) * rows, ..]).dot(&self.x_quant[g]);
            let d = y - &self.y_float[g];
            for r in 0..rows {
                shift.push(d.row(r).mean().unwrap_or(0.0));
            }
        }
        shift
    }
}

fn usize_of(v: i64, what: &str) -> Result<usize> {
    usize::try_from(v).map_err(|_| Error::InvalidModel(format!("invalid convolution {what} {v}")))
}

fn conv_geometry(node: &pb::NodeProto, weight: &ArrayD<f32>, inputs: &[ArrayD<f32>]) -> Result<Geometry> {
    let spatial = weight.ndim() - 2;
    let first = inputs.first().ok_or_else(|| Error::Config("no calibration input collected".into()))?;
    if first.ndim() != spatial + 2 {
        return Err(Error::Shape(format!(
            "convolution input of rank {} for a rank-{} weight",
            first.ndim(),
            weight.ndim()
        )));
    }
    let two = |v: Vec<usize>, fill: usize| -> [usize; 2] {
        if spatial == 1 {
            [fill, v.first().copied().unwrap_or(fill)]
        } else {
            [v[0], v.get(1).copied().unwrap_or(fill)]
        }
    };
    let kernel_dims: Vec<usize> = weight.shape()[2..].to_vec();
    let kernel = two(kernel_dims.clone(), 1);
    let get = |name: &str, default: usize| -> Result<Vec<usize>> {
        match attr_ints(node, name) {
            Some(v) if !v.is_empty() => v.into_iter().map(|x| usize_of(x, name)).collect(),
            _ => Ok(vec![default; spatial]),
        }
    };
    let strides = two(get("strides", 1)?, 1);
    let dilations = two(get("dilations", 1)?, 1);
    let in_spatial: Vec<usize> = first.shape()[2..].to_vec();
    let auto_pad = attr_s(node, "auto_pad");
    let pads_raw: Vec<usize> = match auto_pad.as_str() {
        "SAME_UPPER" | "SAME_LOWER" => {
            let mut begin = Vec::new();
            let mut end = Vec::new();
            for d in 0..spatial {
                let out = in_spatial[d].div_ceil(strides_of(&strides, spatial, d));
                let eff = dilations_of(&dilations, spatial, d) * (kernel_dims[d] - 1) + 1;
                let total = ((out - 1) * strides_of(&strides, spatial, d) + eff).saturating_sub(in_spatial[d]);
                let (small, big) = (total / 2, total - total / 2);
                if auto_pad == "SAME_UPPER" {
                    begin.push(small);
                    end.push(big);
                } else {
                    begin.push(big);
                    end.push(small);
                }
            }
            begin.into_iter().chain(end).collect()
        }
        _ => get("pads", 0).map(|p| if p.len() == spatial { [p.clone(), p].concat() } else { p })?,
    };
    let pads = if spatial == 1 {
        [0, pads_raw[0], 0, pads_raw[1]]
    } else {
        [pads_raw[0], pads_raw[1], pads_raw[2], pads_raw[3]]
    };
    let cin_group = weight.shape()[1];
    Ok(Geometry::Conv { kernel, strides, dilations, pads, cin_group })
}

fn strides_of(s: &[usize; 2], spatial: usize, d: usize) -> usize {
    if spatial == 1 { s[1] } else { s[d] }
}

fn dilations_of(s: &[usize; 2], spatial: usize, d: usize) -> usize {
    strides_of(s, spatial, d)
}

/// The `(K × N)` columns of group `g` (at most `max_columns`, a seeded random subset).
fn columns(
    geometry: &Geometry,
    inputs: &[ArrayD<f32>],
    g: usize,
    k: usize,
    max_columns: usize,
    seed: u64,
) -> Result<Array2<f32>> {
    match geometry {
        Geometry::Dense { alpha } => {
            let mut mats = Vec::new();
            let mut index = Vec::new();
            for (ai, a) in inputs.iter().enumerate() {
                let last = a.shape().last().copied().unwrap_or(0);
                if last != k {
                    return Err(Error::Shape(format!("input rows of {last} values for a weight of {k} inputs")));
                }
                let n = a.len() / last.max(1);
                mats.push(a.view().into_shape_with_order((n, last)).map_err(|e| Error::Shape(e.to_string()))?);
                index.extend((0..n).map(|r| (ai, r)));
            }
            let picked = pick(index.len(), max_columns, seed);
            let mut x = Array2::zeros((k, picked.len()));
            for (c, &i) in picked.iter().enumerate() {
                let (ai, r) = index[i];
                x.column_mut(c).assign(&mats[ai].row(r).mapv(|v| v * alpha));
            }
            Ok(x)
        }
        Geometry::Conv { kernel, strides, dilations, pads, cin_group } => {
            // Every input as [n, C, H, W] (1-D convolutions get H = 1).
            let maps: Vec<ndarray::ArrayView4<f32>> = inputs
                .iter()
                .map(|a| {
                    let sh = a.shape();
                    let (n, c) = (sh[0], sh[1]);
                    let (h, w) = if sh.len() == 3 { (1, sh[2]) } else { (sh[2], sh[3]) };
                    a.view().into_shape_with_order((n, c, h, w)).map_err(|e| Error::Shape(e.to_string()))
                })
                .collect::<Result<_>>()?;
            let out_dim = |size: usize, d: usize| -> usize {
                let eff = dilations[d] * (kernel[d] - 1) + 1;
                let padded = size + pads[d] + pads[d + 2];
                if padded < eff { 0 } else { (padded - eff) / strides[d] + 1 }
            };
            // Column index → (map, sample, oh, ow).
            let mut index = Vec::new();
            for (m, map) in maps.iter().enumerate() {
                let (n, _, h, w) = map.dim();
                let (oh, ow) = (out_dim(h, 0), out_dim(w, 1));
                for s_ in 0..n {
                    for y in 0..oh {
                        for x in 0..ow {
                            index.push((m, s_, y, x));
                        }
                    }
                }
            }
            let picked = pick(index.len(), max_columns, seed);
            let mut cols = Array2::zeros((k, picked.len()));
            for (c, &i) in picked.iter().enumerate() {
                let (m, sample, oy, ox) = index[i];
                let map = &maps[m];
                let (_, _, h, w) = map.dim();
                let mut row = 0;
                for ci in 0..*cin_group {
                    let channel = g * cin_group + ci;
                    for ky in 0..kernel[0] {
                        for kx in 0..kernel[1] {
                            let iy = (oy * strides[0] + ky * dilations[0]).checked_sub(pads[0]);
                            let ix = (ox * strides[1] + kx * dilations[1]).checked_sub(pads[1]);
                            if let (Some(iy), Some(ix)) = (iy, ix)
                                && iy < h
                                && ix < w
                            {
                                cols[[row, c]] = map[[sample, channel, iy, ix]];
                            }
                            row += 1;
                        }
                    }
                }
            }
            Ok(cols)
        }
    }
}

/// Up to `max` distinct indices below `n`, sorted (all of them when `n <= max`).
fn pick(n: usize, max: usize, seed: u64) -> Vec<usize> {
    if n <= max {
        return (0..n).collect();
    }
    // Partial Fisher-Yates.
    let mut all: Vec<usize> = (0..n).collect();
    let mut rng = SplitMix::new(seed);
    for i in 0..max {
        let j = i + rng.below(n - i);
        all.swap(i, j);
    }
    let mut chosen = all[..max].to_vec();
    chosen.sort_unstable();
    chosen
}
