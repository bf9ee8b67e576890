//! What the weights alone tell, before any data: each layer's per-channel ranges and the error of
//! quantizing its weight (and nothing else) at each bit width, per channel and per tensor. The
//! workbench shows it as soon as a model opens (a data-free start), and it ranks the layers by
//! weight-only sensitivity without a calibration set.

use ndarray::ArrayD;
use serde::{Deserialize, Serialize};

use crate::calibrate::{WeightStats, weight_stats};
use crate::error::Result;
use crate::metrics::ErrorAccumulator;
use crate::model::OnnxModel;
use crate::model::parallel::map_ordered;
use crate::quant::{Granularity, WeightScheme, quantize_weight};

/// The weight bit widths the data-free error is measured at.
pub const WEIGHT_ERROR_BITS: [u8; 6] = [2, 3, 4, 5, 6, 8];

/// One layer's weight, from the weights alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightErrors {
    /// The layer.
    pub layer: String,
    /// Per-channel ranges and overall statistics of the weight.
    pub stats: WeightStats,
    /// SQNR (dB) of the weight quantized per channel, at each of [`WEIGHT_ERROR_BITS`].
    pub per_channel_db: Vec<f64>,
    /// SQNR (dB) of the weight quantized per tensor, at each of [`WEIGHT_ERROR_BITS`].
    pub per_tensor_db: Vec<f64>,
}

impl WeightErrors {
    /// The SQNR at `bits` with `granularity` (per group counts as per channel, its lower bound
    /// on error), when measured.
    pub fn sqnr_db(&self, bits: u8, granularity: Granularity) -> Option<f64> {
        let i = WEIGHT_ERROR_BITS.iter().position(|b| *b == bits)?;
        let list = match granularity {
            Granularity::PerTensor => &self.per_tensor_db,
            Granularity::PerChannel | Granularity::PerGroup { .. } => &self.per_channel_db,
        };
        list.get(i).copied()
    }
}

/// Every quantizable layer's weight ranges and weight-only errors, in network order, with the
/// weight scheme of `base` (ONNX Runtime's default), both cores used. A layer whose weight cannot
/// be read as floats or quantized (NaN, an integer initializer) is left out: the rest of the
/// workbench reports it when it gets there.
pub fn weight_errors(model: &OnnxModel, base: &WeightScheme) -> Result<Vec<WeightErrors>> {
    let layers = &model.summary.layers;
    let mut out = Vec::with_capacity(layers.len());
    let work = |i: usize| -> Result<Option<WeightErrors>> { Ok(layer_errors(model, i, base).ok()) };
    map_ordered(layers.len(), &work, &mut |_, e| {
        out.extend(e);
        Ok(())
    })?;
    Ok(out)
}

/// The SQNR (dB) of weight `w` (output channels on `axis`) quantized with each of `schemes`.
pub(super) fn weight_only_sqnr(w: &ArrayD<f32>, axis: usize, schemes: &[WeightScheme]) -> Result<Vec<f64>> {
    let flat: Vec<f32> = w.iter().copied().collect();
    schemes
        .iter()
        .map(|scheme| {
            let dq = quantize_weight(&w.view(), axis, scheme)?.dequantize();
            let mut acc = ErrorAccumulator::default();
            acc.add(&flat, &dq.iter().copied().collect::<Vec<_>>());
            Ok(acc.metrics().sqnr_db)
        })
        .collect()
}

/// Layer `i`'s weight ranges and weight-only errors.
fn layer_errors(model: &OnnxModel, i: usize, base: &WeightScheme) -> Result<WeightErrors> {
    let layer = &model.summary.layers[i];
    let w = model.constant_f32(&layer.weight)?;
    let stats = weight_stats(&layer.name, &w.view(), layer.out_channel_axis);
    let sqnr = |granularity: Granularity| {
        let schemes: Vec<WeightScheme> =
            WEIGHT_ERROR_BITS.iter().map(|&bits| WeightScheme { bits, granularity, ..*base }).collect();
        weight_only_sqnr(&w, layer.out_channel_axis, &schemes)
    };
    Ok(WeightErrors {
        layer: layer.name.clone(),
        stats,
        per_channel_db: sqnr(Granularity::PerChannel)?,
        per_tensor_db: sqnr(Granularity::PerTensor)?,
    })
}
