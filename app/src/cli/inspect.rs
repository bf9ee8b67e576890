//! `quantbench inspect`: a model's summary, as text or JSON.

use anyhow::Context as _;
use quantbench_core::model::OnnxModel;

/// Prints the summary of the model at `path` (JSON when `json`).
pub(super) fn inspect(path: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let model = OnnxModel::load(path)?;
    if json {
        let text = serde_json::to_string_pretty(&model.summary).context("serializing the summary")?;
        println!("{text}");
    } else {
        print!("{}", model.summary.to_text());
    }
    Ok(())
}
