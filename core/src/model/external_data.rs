//! External data as ONNX stores it (`TensorProto.external_data`: `location`, `offset`, `length`
//! of a file beside the model): where a tensor's bytes are, and whether they are all there.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::model::onnx as pb;

/// `TensorProto.data_location` of a tensor whose bytes are in a file.
pub(crate) const EXTERNAL: i32 = 1;

fn entry<'a>(t: &'a pb::TensorProto, key: &str) -> Option<&'a str> {
    t.external_data.iter().find(|e| e.key == key).map(|e| e.value.as_str())
}

/// Where the bytes of the external tensor `t` are: its file (beside `source`, the model read),
/// the offset, and the length when given (else to the end of the file).
pub(crate) fn location(t: &pb::TensorProto, source: &Path) -> Result<(PathBuf, u64, Option<u64>)> {
    let location = entry(t, "location")
        .ok_or_else(|| Error::InvalidModel(format!("tensor '{}' is external without a location", t.name)))?;
    let file_path = source.parent().unwrap_or_else(|| Path::new(".")).join(location);
    let parse = |key: &str| entry(t, key).map(str::parse::<u64>).transpose();
    let bad =
        |e: std::num::ParseIntError| Error::InvalidModel(format!("tensor '{}': external data entry: {e}", t.name));
    Ok((file_path, parse("offset").map_err(bad)?.unwrap_or(0), parse("length").map_err(bad)?))
}

/// Whether `t` keeps its bytes in an external file.
pub(crate) fn is_external(t: &pb::TensorProto) -> bool {
    t.data_location == Some(EXTERNAL)
}

/// Checks, without reading it, that the file of the external tensor `t` (of `bytes` bytes) exists
/// and holds them where `t` says.
pub(crate) fn check_external(t: &pb::TensorProto, source: &Path, bytes: u64) -> Result<()> {
    let (file_path, offset, length) = location(t, source)?;
    let size = std::fs::metadata(&file_path).map_err(|e| Error::io("cannot read external data", e, &file_path))?.len();
    let length = length.unwrap_or(size.saturating_sub(offset));
    if length != bytes || offset.saturating_add(length) > size {
        return Err(Error::InvalidModel(format!(
            "tensor '{}' needs {bytes} bytes of external data; it names {length} at offset {offset} of '{}', \
             which holds {size}",
            t.name,
            file_path.display()
        )));
    }
    Ok(())
}
