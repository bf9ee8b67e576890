//! Export: the QDQ ONNX model, encodings JSON (AIMET and ONNX Runtime overrides). The only module
//! that writes model files; every write is atomic.

mod blockwise;
mod encodings;
mod qdq;

use std::path::Path;

use prost::Message as _;

pub use blockwise::{BLOCKED_OPSET, pack};
pub use encodings::{aimet_encodings, ort_overrides};
pub use qdq::export_qdq;

use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use crate::model::OnnxModel;
use crate::plan::QuantPlan;

/// The QDQ model of `plan`, encoded (identical inputs give identical bytes).
pub fn qdq_bytes(model: &OnnxModel, plan: &QuantPlan) -> Result<Vec<u8>> {
    Ok(export_qdq(model, plan)?.encode_to_vec())
}

/// Both encodings formats as JSON text: `{"aimet": {...}, "onnxruntime": {...}}`.
pub fn encodings_json(plan: &QuantPlan) -> Result<String> {
    let value = serde_json::json!({ "aimet": aimet_encodings(plan), "onnxruntime": ort_overrides(plan) });
    serde_json::to_string_pretty(&value).map_err(|e| Error::Config(format!("cannot serialize encodings: {e}")))
}

/// Writes the QDQ model of `plan` to `path` (atomically; identical inputs give identical bytes).
pub fn write_qdq(model: &OnnxModel, plan: &QuantPlan, path: &Path) -> Result<()> {
    write_atomic(path, &qdq_bytes(model, plan)?)
}

/// Writes both encodings formats to `path`: `{"aimet": {...}, "onnxruntime": {...}}`.
pub fn write_encodings(plan: &QuantPlan, path: &Path) -> Result<()> {
    write_atomic(path, encodings_json(plan)?.as_bytes())
}
