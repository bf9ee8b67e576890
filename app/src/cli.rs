//! Headless subcommands (DESIGN.md §7): a stable contract that scripts and tests depend on.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use quantbench_core::calibrate::{CalibrationConfig, calibrate as run_calibration};
use quantbench_core::data::{DataSet, DataSource, InputShape};
use quantbench_core::model::OnnxModel;
use quantbench_core::observe::Observer;
use quantbench_core::quant::recipe::Recipe;

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
    /// Stream calibration data through the model once and print every tensor's range and the
    /// clip range each observer picks.
    Calibrate {
        /// The ONNX model.
        model: PathBuf,
        /// Calibration data: .npz, .npy, or a folder of images.
        #[arg(long)]
        calib: PathBuf,
        /// Fix dynamic input dims the data cannot: name=1x3x48x192 (repeatable).
        #[arg(long = "input-shape", value_name = "NAME=DIMS")]
        input_shapes: Vec<String>,
        /// Write a recipe (default configuration + the calibration statistics).
        #[arg(long, value_name = "RECIPE.json")]
        save_recipe: Option<PathBuf>,
    },
}

/// Runs a subcommand.
pub fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Inspect { model, json } => inspect(&model, json),
        Command::Calibrate { model, calib, input_shapes, save_recipe } => {
            calibrate(&model, &calib, &input_shapes, save_recipe.as_deref())
        }
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

/// Parses repeated `--input-shape` values.
fn parse_input_shapes(values: &[String]) -> anyhow::Result<Vec<InputShape>> {
    values.iter().map(|v| v.parse::<InputShape>().map_err(anyhow::Error::from)).collect()
}

fn calibrate(
    model_path: &std::path::Path,
    calib: &std::path::Path,
    input_shapes: &[String],
    save_recipe: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let model = OnnxModel::load(model_path)?;
    let config = CalibrationConfig { input_shapes: parse_input_shapes(input_shapes)?, ..CalibrationConfig::default() };
    let set = DataSet::open(DataSource::from_path(calib)?, &model.summary.inputs)?;
    let never = std::sync::atomic::AtomicBool::new(false);
    let cal = run_calibration(&model, &set, &config, &mut |_, _| {}, &never)?;
    for (tensor, count) in cal.non_finite() {
        eprintln!("warning: tensor '{tensor}' produced {count} non-finite values (excluded from its statistics)");
    }
    let uint8 = quantbench_core::quant::QRange::new(8, false, false);
    println!("{} samples, {} activation tensors, {} weights", cal.num_samples, cal.order.len(), cal.weights.len());
    println!("{:<32} {:>12} {:>12}  clip ranges by observer", "tensor", "min", "max");
    for name in &cal.order {
        let Some(stats) = cal.activations.get(name) else { continue };
        let ranges: Vec<String> = Observer::ALL
            .iter()
            .skip(2)
            .map(|o| {
                let (lo, hi) = o.range(stats, uint8, false);
                format!("{} [{lo:.4}, {hi:.4}]", o.name())
            })
            .collect();
        println!("{name:<32} {:>12.5} {:>12.5}  {}", stats.min, stats.max, ranges.join("  "));
    }
    if let Some(path) = save_recipe {
        let mut recipe = Recipe::new(&model.summary.name);
        recipe.calibration_config = config;
        recipe.calibration = Some(cal);
        recipe.save(path)?;
        eprintln!("recipe written to {}", path.display());
    }
    Ok(())
}
