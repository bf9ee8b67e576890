//! External data on export. A model whose weights live in an external data file (ONNX's answer
//! to protobuf's 2 GB limit) is exported the same way: every initializer of at least
//! [`EXTERNAL_MIN_BYTES`] goes into one data file beside the exported model (`<model file>.data`),
//! the quantized ones from memory and the untouched float ones copied from the source's data
//! file; smaller ones are written inline. The exported model never points into the source's
//! files, so it can be written anywhere.

use std::collections::BTreeMap;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::model::external_data::{EXTERNAL, is_external, location};
use crate::model::onnx as pb;

/// Initializers this large or larger go to the data file.
pub const EXTERNAL_MIN_BYTES: usize = 1024;
/// Offsets in the data file are multiples of this (what memory-mapping readers prefer).
const ALIGN: usize = 64;

/// Whether any initializer of `proto` keeps its bytes in an external file.
pub fn uses_external_data(proto: &pb::ModelProto) -> bool {
    proto.graph.as_ref().is_some_and(|g| g.initializer.iter().any(is_external))
}

/// The bytes of `t`, stored in an external file beside `source` (the model read).
fn external_bytes(t: &pb::TensorProto, source: &Path, files: &mut BTreeMap<PathBuf, std::fs::File>) -> Result<Vec<u8>> {
    let (file_path, offset, length) = location(t, source)?;
    if !files.contains_key(&file_path) {
        let f = std::fs::File::open(&file_path).map_err(|e| Error::io("cannot read external data", e, &file_path))?;
        files.insert(file_path.clone(), f);
    }
    let Some(file) = files.get_mut(&file_path) else { return Err(Error::Config("external data file".into())) };
    let io = |e| Error::io("cannot read external data", e, &file_path);
    let length = match length {
        Some(l) => l,
        None => file.metadata().map_err(io)?.len().saturating_sub(offset),
    };
    file.seek(SeekFrom::Start(offset)).map_err(io)?;
    let mut bytes = vec![0u8; usize::try_from(length).unwrap_or(usize::MAX)];
    file.read_exact(&mut bytes).map_err(io)?;
    Ok(bytes)
}

/// Moves the large initializers of `proto` into one data buffer named `data_name` (the file's
/// name, relative to the model) and inlines the small ones; `source` is the path of the model
/// the external tensors were read from. Returns the data file's bytes.
pub fn externalize(proto: &mut pb::ModelProto, source: &Path, data_name: &str) -> Result<Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut data = Vec::new();
    let Some(graph) = proto.graph.as_mut() else { return Err(Error::InvalidModel("no graph".into())) };
    for t in &mut graph.initializer {
        let bytes = if t.data_location == Some(EXTERNAL) {
            external_bytes(t, source, &mut files)?
        } else if !t.raw_data.is_empty() {
            std::mem::take(&mut t.raw_data)
        } else {
            continue;
        };
        t.external_data.clear();
        if bytes.len() < EXTERNAL_MIN_BYTES {
            t.data_location = None;
            t.raw_data = bytes;
            continue;
        }
        data.resize(data.len().next_multiple_of(ALIGN), 0);
        let kv = |key: &str, value: String| pb::StringStringEntryProto { key: key.into(), value };
        t.external_data = vec![
            kv("location", data_name.to_string()),
            kv("offset", data.len().to_string()),
            kv("length", bytes.len().to_string()),
        ];
        t.data_location = Some(EXTERNAL);
        data.extend_from_slice(&bytes);
    }
    Ok(data)
}
