//! Block-wise (per-group) weights on export, in the two forms ONNX Runtime executes:
//!
//! - **QDQ**: ONNX `DequantizeLinear` with `axis` (the blocking axis) and `block_size` (opset
//!   21), the integers as INT4/UINT4 (grids of 4 bits or fewer, two values per byte, the first in
//!   the low nibble) or INT8/UINT8. A per-group lane of a weight runs over every dim but the
//!   output-channel one, flattened; it is one ONNX block axis when the dims after the blocking
//!   axis (`inner`, e.g. a Conv's kernel window) divide the group size: each block then spans
//!   `group / inner` indices of the blocking axis, and the scale tensor repeats its value over the
//!   inner dims.
//! - **MatMulNBits** (`com.microsoft`): for MatMul layers with a 2-D `[K, N]` weight and for Gemm
//!   (`transA = 0`, `alpha = beta = 1`), blocks of a power of two ≥ 16 along K, 2, 4 or 8 bits.
//!   The integers are stored unsigned (a signed grid shifted by `2^(bits−1)`, its zero points
//!   too), per output column `[N, blocks, block·bits/8]`, low bits first; scales `[N·blocks]`;
//!   zero points packed the same way per column (omitted when all are `2^(bits−1)`, the
//!   operator's default), or as floats when the weight has real-valued zero points (HQQ).

use crate::error::{Error, Result};
use crate::model::OnnxModel;
use crate::model::graph::{attr_f, attr_i, float_tensor, int_attribute};
use crate::model::onnx as pb;
use crate::plan::LayerPlan;
use crate::quant::{Granularity, QParams, WeightQuant};

/// ONNX element type codes used here.
const UINT8: i32 = 2;
const INT8: i32 = 3;
const UINT4: i32 = 21;
const INT4: i32 = 22;

/// The opset that reads `DequantizeLinear`'s `block_size` and INT4 types.
pub const BLOCKED_OPSET: i64 = 21;
/// The IR version that holds INT4 tensors.
pub const BLOCKED_IR_VERSION: i64 = 10;

/// Whether `lp`'s weight is quantized per group.
pub fn is_blockwise(lp: &LayerPlan) -> bool {
    matches!(lp.config.weight.granularity, Granularity::PerGroup { .. })
}

/// The smallest of `choices` whose signed or unsigned integers hold the grid of `p`.
fn storage_bits(p: &QParams, choices: &[u32]) -> Option<u32> {
    let (lo, hi) = (i64::from(p.range.qmin), i64::from(p.range.qmax));
    choices.iter().copied().find(|&b| if lo < 0 { lo >= -(1 << (b - 1)) && hi < (1 << (b - 1)) } else { hi < (1 << b) })
}

/// Packs unsigned `bits`-wide values (2, 4 or 8) into bytes, the first value in the low bits.
pub fn pack(values: impl IntoIterator<Item = u32>, bits: u32) -> Vec<u8> {
    let per = 8 / bits;
    let mask = (1u32 << bits) - 1;
    let (mut out, mut byte, mut filled) = (Vec::new(), 0u32, 0u32);
    for v in values {
        byte |= (v & mask) << (filled * bits);
        filled += 1;
        if filled == per {
            out.push(byte as u8);
            (byte, filled) = (0, 0);
        }
    }
    if filled > 0 {
        out.push(byte as u8);
    }
    out
}

/// Where a per-group weight's blocks run in ONNX terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Blocking {
    /// The blocking axis: the first dim other than the output channel's.
    axis: usize,
    /// Block length along it.
    block: usize,
}

fn blocking(lp: &LayerPlan, wq: &WeightQuant, dims: &[usize]) -> Result<Blocking> {
    let (Some(out_axis), Some(group)) = (wq.axis, wq.group_size) else {
        return Err(Error::Config(format!("layer '{}': the weight is not quantized per group", lp.layer)));
    };
    let axis = usize::from(out_axis == 0);
    let inner: usize = dims.iter().enumerate().filter(|(i, _)| *i > axis && *i != out_axis).map(|(_, d)| d).product();
    if axis >= dims.len() || inner == 0 || !group.is_multiple_of(inner) {
        return Err(Error::Config(format!(
            "layer '{}': groups of {group} weights cannot be written as ONNX blocks of weight shape {dims:?} \
             (the group size must be a multiple of {inner}, the size of the kernel window)",
            lp.layer
        )));
    }
    Ok(Blocking { axis, block: group / inner })
}

/// Initializers and the block-wise `DequantizeLinear` of `lp`'s per-group weight named `w`;
/// returns them and the DQ output.
pub fn blocked_dq(lp: &LayerPlan, w: &str, dims: &[i64]) -> Result<(Vec<pb::NodeProto>, Vec<pb::TensorProto>, String)> {
    let Some(wq) = &lp.weight_quant else { return Err(Error::Config("no quantized weight".into())) };
    if wq.float_zero.is_some() {
        return Err(Error::Config(format!(
            "layer '{}': real-valued zero points (HQQ) cannot be written as ONNX DequantizeLinear; \
             export with the matmulnbits weight format",
            lp.layer
        )));
    }
    let udims: Vec<usize> = dims.iter().map(|&d| usize::try_from(d).unwrap_or(0)).collect();
    let b = blocking(lp, wq, &udims)?;
    let out_axis = wq.axis.unwrap_or(0);
    let bits = storage_bits(&wq.params[0], &[4, 8]).ok_or_else(|| {
        Error::Config(format!("layer '{}': block-wise weights are written with at most 8 bits", lp.layer))
    })?;
    let signed = wq.params[0].range.qmin < 0;
    let code = match (bits, signed) {
        (4, true) => INT4,
        (4, false) => UINT4,
        (_, true) => INT8,
        (_, false) => UINT8,
    };
    let to_stored = |v: i32| -> u32 { (v as u32) & ((1u32 << bits) - 1) };
    let mut sdims = udims.clone();
    sdims[b.axis] = udims[b.axis].div_ceil(b.block);
    let per = udims[b.axis].div_ceil(b.block);
    let count: usize = sdims.iter().product();
    let (mut scales, mut zps) = (Vec::with_capacity(count), Vec::with_capacity(count));
    for idx in ndarray::indices(sdims.as_slice()) {
        let k = idx[out_axis] * per + idx[b.axis];
        scales.push(wq.params[k].scale);
        zps.push(to_stored(wq.params[k].zero_point));
    }
    let raw =
        |values: Vec<u32>| if bits == 4 { pack(values, 4) } else { values.into_iter().map(|v| v as u8).collect() };
    let sdims_i64: Vec<i64> = sdims.iter().map(|&d| d as i64).collect();
    let tensor = |name: String, dims: &[i64], raw_data: Vec<u8>| pb::TensorProto {
        name,
        dims: dims.to_vec(),
        data_type: code,
        raw_data,
        ..Default::default()
    };
    let names = [format!("{w}_quantized"), format!("{w}_scale"), format!("{w}_zero_point")];
    let inits = vec![
        tensor(names[0].clone(), dims, raw(wq.q.iter().map(|&v| to_stored(i32::from(v))).collect())),
        float_tensor(&names[1], &sdims_i64, &scales),
        tensor(names[2].clone(), &sdims_i64, raw(zps)),
    ];
    let out = format!("{w}_DequantizeLinear_Output");
    let node = pb::NodeProto {
        op_type: "DequantizeLinear".into(),
        name: format!("{w}_DequantizeLinear"),
        input: names.to_vec(),
        output: vec![out.clone()],
        attribute: vec![int_attribute("axis", b.axis as i64), int_attribute("block_size", b.block as i64)],
        ..Default::default()
    };
    Ok((vec![node], inits, out))
}

/// How a layer is written as MatMulNBits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NBits {
    /// Input features.
    pub k: usize,
    /// Output features.
    pub n: usize,
    /// Block length along K.
    pub block: usize,
    /// Stored bits (2, 4 or 8).
    pub bits: u32,
    /// The weight is stored `[N, K]` (Gemm with `transB = 1`).
    pub n_major: bool,
    /// A Gemm's bias input.
    pub bias: Option<String>,
}

/// Whether (and how) `lp` is written as MatMulNBits: a per-group MatMul with a 2-D `[K, N]`
/// weight or a Gemm without transposed input, scaling or a bias of another shape, with blocks of
/// a power of two ≥ 16 and at most 8 bits.
pub fn nbits_layout(model: &OnnxModel, lp: &LayerPlan) -> Option<NBits> {
    let wq = lp.weight_quant.as_ref()?;
    let (Some(axis), Some(block)) = (wq.axis, wq.group_size) else { return None };
    if block < 16 || !block.is_power_of_two() || wq.q.ndim() != 2 {
        return None;
    }
    let bits = storage_bits(&wq.params[0], &[2, 4, 8])?;
    let node = model.node(&lp.layer).ok()?;
    let (d0, d1) = (wq.q.shape()[0], wq.q.shape()[1]);
    let n_major = axis == 0;
    let (k, n) = if n_major { (d1, d0) } else { (d0, d1) };
    let bias = match lp.op_type.as_str() {
        "MatMul" if !n_major => None,
        "Gemm" => {
            let plain = attr_i(node, "transA", 0) == 0
                && attr_f(node, "alpha", 1.0) == 1.0
                && attr_f(node, "beta", 1.0) == 1.0
                && (attr_i(node, "transB", 0) == 1) == n_major;
            if !plain {
                return None;
            }
            let c = node.input.get(2).filter(|c| !c.is_empty())?;
            let full = model.constants().get(c.as_str()).is_some_and(|t| t.dims.iter().product::<i64>() == n as i64);
            if !full {
                return None;
            }
            Some(c.clone())
        }
        _ => return None,
    };
    Some(NBits { k, n, block, bits, n_major, bias })
}

/// MatMulNBits' `B` (`[N, blocks, block·bits/8]`): each of the N columns' K integers plus
/// `offset`, the last block padded with its zero point (`zero(n, block)`), packed `bits` at a time,
/// low bits first. Columns go 16 at a time through a small byte buffer (`16 × K`, in cache) that
/// holds them contiguous, gathered from the weight's layout (`[K, N]` for MatMul, read row by row;
/// `[N, K]` for Gemm with `transB`), so no transposed copy of the weight is made.
fn packed_columns(flat: &[i16], l: &NBits, zero: impl Fn(usize, usize) -> i32, offset: i32) -> Vec<u8> {
    const TILE: usize = 16;
    let bits = l.bits as usize;
    let (per, mask) = (8 / bits, (1u32 << bits) - 1);
    let padded = l.k.div_ceil(l.block) * l.block;
    let row_bytes = padded * bits / 8;
    let mut out = vec![0u8; l.n * row_bytes];
    let mut tile = vec![0u8; TILE * padded];
    // Every value is in [0, 2^bits) once shifted by `offset`: one byte holds it.
    let byte = |v: i16| (i32::from(v) + offset) as u8;
    for n0 in (0..l.n).step_by(TILE) {
        let width = TILE.min(l.n - n0);
        if l.n_major {
            for (j, column) in flat[n0 * l.k..(n0 + width) * l.k].chunks_exact(l.k).enumerate() {
                for (t, &v) in tile[j * padded..].iter_mut().zip(column) {
                    *t = byte(v);
                }
            }
        } else {
            for (k, row) in flat.chunks_exact(l.n).enumerate() {
                for (j, &v) in row[n0..n0 + width].iter().enumerate() {
                    tile[j * padded + k] = byte(v);
                }
            }
        }
        for j in 0..width {
            let column = &mut tile[j * padded..(j + 1) * padded];
            for (k, t) in column.iter_mut().enumerate().skip(l.k) {
                *t = zero(n0 + j, k / l.block) as u8;
            }
            let dst = &mut out[(n0 + j) * row_bytes..(n0 + j + 1) * row_bytes];
            for (d, values) in dst.iter_mut().zip(column.chunks_exact(per)) {
                *d = values.iter().enumerate().fold(0u32, |acc, (i, &v)| acc | ((u32::from(v) & mask) << (i * bits)))
                    as u8;
            }
        }
    }
    out
}

/// The initializers of `lp`'s weight named `w` as MatMulNBits reads them (B, scales, and zero
/// points unless all are the default); returns them and the operator's inputs 1–3.
pub fn nbits_inits(lp: &LayerPlan, w: &str, l: &NBits) -> Result<(Vec<pb::TensorProto>, Vec<String>)> {
    let Some(wq) = &lp.weight_quant else { return Err(Error::Config("no quantized weight".into())) };
    let blocks = l.k.div_ceil(l.block);
    let offset: i32 = if wq.params[0].range.qmin < 0 { 1 << (l.bits - 1) } else { 0 };
    let q2 = wq.q.view().into_dimensionality::<ndarray::Ix2>().map_err(|e| Error::Config(e.to_string()))?;
    let standard = q2.as_standard_layout();
    let flat = standard.as_slice().ok_or_else(|| Error::Config("weight layout".into()))?;
    let packed = packed_columns(flat, l, |n, b| wq.params[n * blocks + b].zero_point + offset, offset);
    let b_name = format!("{w}_Q{}", l.bits);
    let per_row = (blocks * l.bits as usize).div_ceil(8);
    let mut inits = vec![pb::TensorProto {
        name: b_name.clone(),
        dims: vec![l.n as i64, blocks as i64, (l.block * l.bits as usize / 8) as i64],
        data_type: UINT8,
        raw_data: packed,
        ..Default::default()
    }];
    let scales: Vec<f32> = wq.params.iter().map(|p| p.scale).collect();
    inits.push(float_tensor(&format!("{w}_scales"), &[scales.len() as i64], &scales));
    let mut inputs = vec![b_name, format!("{w}_scales")];
    if let Some(zf) = &wq.float_zero {
        let z: Vec<f32> = zf.iter().map(|z| z + offset as f32).collect();
        inits.push(float_tensor(&format!("{w}_zero_points"), &[z.len() as i64], &z));
        inputs.push(format!("{w}_zero_points"));
    } else if wq.params.iter().any(|p| p.zero_point + offset != 1 << (l.bits - 1)) {
        let mut raw = Vec::with_capacity(l.n * per_row);
        for n in 0..l.n {
            let row = (0..blocks).map(|b| (wq.params[n * blocks + b].zero_point + offset) as u32);
            raw.extend(pack(row, l.bits));
        }
        inits.push(pb::TensorProto {
            name: format!("{w}_zero_points"),
            dims: vec![(l.n * per_row) as i64],
            data_type: UINT8,
            raw_data: raw,
            ..Default::default()
        });
        inputs.push(format!("{w}_zero_points"));
    }
    Ok((inits, inputs))
}

/// The MatMulNBits node that replaces `node` (its input 0 already rewired), reading `weight`
/// (the inputs [`nbits_inits`] returned).
pub fn nbits_node(node: &pb::NodeProto, weight: &[String], l: &NBits) -> pb::NodeProto {
    let mut input = vec![node.input.first().cloned().unwrap_or_default()];
    input.extend(weight.iter().cloned());
    if let Some(bias) = &l.bias {
        input.resize(5, String::new());
        input.push(node.input.get(2).cloned().unwrap_or_else(|| bias.clone()));
    }
    pb::NodeProto {
        op_type: "MatMulNBits".into(),
        domain: "com.microsoft".into(),
        name: node.name.clone(),
        input,
        output: node.output.clone(),
        attribute: vec![
            int_attribute("K", l.k as i64),
            int_attribute("N", l.n as i64),
            int_attribute("bits", i64::from(l.bits)),
            int_attribute("block_size", l.block as i64),
        ],
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_puts_the_first_value_in_the_low_bits() {
        assert_eq!(pack([1, 2, 3], 4), vec![0x21, 0x03]);
        assert_eq!(pack([1, 2, 3, 0, 3], 2), vec![0b0011_1001, 0b11]);
        assert_eq!(pack([200, 7], 8), vec![200, 7]);
        // Negative int4 values are stored as their two's complement nibble.
        assert_eq!(pack([(-8i32) as u32 & 15, (-1i32) as u32 & 15], 4), vec![0xF8]);
    }

    #[test]
    fn storage_is_the_smallest_type_holding_the_grid() {
        let p = |qmin, qmax| QParams { scale: 1.0, zero_point: 0, range: crate::quant::QRange { qmin, qmax } };
        assert_eq!(storage_bits(&p(-8, 7), &[4, 8]), Some(4));
        assert_eq!(storage_bits(&p(-4, 3), &[2, 4, 8]), Some(4));
        assert_eq!(storage_bits(&p(0, 3), &[2, 4, 8]), Some(2));
        assert_eq!(storage_bits(&p(-127, 127), &[4, 8]), Some(8));
        assert_eq!(storage_bits(&p(0, 255), &[4, 8]), Some(8));
        assert_eq!(storage_bits(&p(-512, 511), &[4, 8]), None);
    }
}
