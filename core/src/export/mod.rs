//! Export: the QDQ ONNX model, encodings JSON (AIMET and ONNX Runtime overrides). The only module
//! that writes model files; every write is atomic.

mod encodings;
mod qdq;

use std::path::Path;

use prost::Message as _;

pub use encodings::{aimet_encodings, ort_overrides};
pub use qdq::export_qdq;

use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use crate::model::OnnxModel;
use crate::plan::QuantPlan;

/// Writes the QDQ model of `plan` to `path` (atomically; identical inputs give identical bytes).
pub fn write_qdq(model: &OnnxModel, plan: &QuantPlan, path: &Path) -> Result<()> {
    let proto = export_qdq(model, plan)?;
    write_atomic(path, &proto.encode_to_vec())
}

/// Writes both encodings formats to `path`: `{"aimet": {...}, "onnxruntime": {...}}`.
pub fn write_encodings(plan: &QuantPlan, path: &Path) -> Result<()> {
    let value = serde_json::json!({ "aimet": aimet_encodings(plan), "onnxruntime": ort_overrides(plan) });
    let text =
        serde_json::to_string_pretty(&value).map_err(|e| Error::Config(format!("cannot serialize encodings: {e}")))?;
    write_atomic(path, text.as_bytes())
}
