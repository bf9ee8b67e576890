//! Export: the QDQ ONNX model, encodings JSON (AIMET and ONNX Runtime overrides). The only module
//! that writes model files; every write is atomic.

mod blockwise;
mod encodings;
mod external;
mod qdq;

use std::path::{Path, PathBuf};

use prost::Message as _;

pub use encodings::{aimet_encodings, ort_overrides};
pub use qdq::export_qdq;

use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use crate::model::OnnxModel;
use crate::plan::QuantPlan;

/// Both encodings formats as JSON text: `{"aimet": {...}, "onnxruntime": {...}}`.
pub fn encodings_json(plan: &QuantPlan) -> Result<String> {
    let value = serde_json::json!({ "aimet": aimet_encodings(plan), "onnxruntime": ort_overrides(plan) });
    serde_json::to_string_pretty(&value).map_err(|e| Error::Config(format!("cannot serialize encodings: {e}")))
}

/// The files of the QDQ model of `plan` written at `path`: the model, and when the source model
/// keeps its weights in external data, its data file beside it (`<file name>.data`, which the
/// model names; see `external`). Identical inputs give identical bytes.
pub fn qdq_files(model: &OnnxModel, plan: &QuantPlan, path: &Path) -> Result<Vec<(PathBuf, Vec<u8>)>> {
    let mut proto = export_qdq(model, plan)?;
    if !external::uses_external_data(&model.proto) {
        return Ok(vec![(path.to_path_buf(), proto.encode_to_vec())]);
    }
    let file = path.file_name().map_or_else(|| "model.onnx".into(), |f| f.to_string_lossy().into_owned());
    let data_name = format!("{file}.data");
    let data = external::externalize(&mut proto, &model.path, &data_name)?;
    Ok(vec![(path.to_path_buf(), proto.encode_to_vec()), (path.with_file_name(&data_name), data)])
}

/// Writes the QDQ model of `plan` to `path`, with its external data beside it when the source
/// has some (each file atomically; identical inputs give identical bytes).
pub fn write_qdq(model: &OnnxModel, plan: &QuantPlan, path: &Path) -> Result<()> {
    for (p, bytes) in qdq_files(model, plan, path)? {
        write_atomic(&p, &bytes)?;
    }
    Ok(())
}

/// Writes both encodings formats to `path`: `{"aimet": {...}, "onnxruntime": {...}}`.
pub fn write_encodings(plan: &QuantPlan, path: &Path) -> Result<()> {
    write_atomic(path, encodings_json(plan)?.as_bytes())
}
