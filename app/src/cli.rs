//! Headless subcommands (DESIGN.md §7): a stable contract that scripts and tests depend on.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use quantbench_core::model::OnnxModel;

/// QuantBench: post-training quantization workbench for ONNX models.
#[derive(Debug, Parser)]
#[command(name = "quantbench", version, about)]
pub struct Cli {
    /// Subcommand; without one the GUI opens.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Model to open in the GUI (a bundled sample model when omitted).
    pub model: Option<PathBuf>,
}

/// The headless subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a model's inputs, outputs, nodes and quantizable layers (needs no data).
    Inspect {
        /// The ONNX model.
        model: PathBuf,
        /// Print the summary as JSON (stable field names, deterministic order).
        #[arg(long)]
        json: bool,
    },
}

/// Runs a subcommand.
pub fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Inspect { model, json } => inspect(&model, json),
    }
}

fn inspect(path: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let model = OnnxModel::load(path)?;
    if json {
        let text = serde_json::to_string_pretty(&model.summary).context("serializing the summary")?;
        println!("{text}");
    } else {
        print!("{}", model.summary.to_text());
    }
    Ok(())
}
