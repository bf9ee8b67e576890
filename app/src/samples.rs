//! Locating the bundled sample models (`sample_models/` of the source tree or beside the binary).

use std::path::PathBuf;

/// The sample model opened when the app starts without one.
pub const DEFAULT_SAMPLE: &str = "mobilenet";

/// The `sample_models` folder: beside the executable (installed), in the working directory, or
/// in the source tree the binary was built from.
pub fn dir() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe()
        && let Some(d) = exe.parent()
    {
        candidates.push(d.join("sample_models"));
    }
    candidates.push(PathBuf::from("sample_models"));
    candidates.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("sample_models"));
    // Canonical, so that paths derived from it (the export dialog's, beside the model) read plainly.
    let found = candidates.into_iter().find(|p| p.join(DEFAULT_SAMPLE).join("model.onnx").is_file())?;
    Some(found.canonicalize().unwrap_or(found))
}

/// Paths of the bundled sample models, sorted by name.
pub fn models() -> Vec<(String, PathBuf)> {
    let Some(dir) = dir() else { return Vec::new() };
    let Ok(rd) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut v: Vec<(String, PathBuf)> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("model.onnx").is_file())
        .map(|p| (p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default(), p.join("model.onnx")))
        .collect();
    v.sort();
    v
}
