//! Headless subcommands (docs/CLI.md): a stable contract that scripts and tests depend on.
//!
//! This file dispatches a subcommand and holds the output checks every subcommand shares; `args`
//! defines the command line, and each subcommand has its file (`analyze` and `quantize` share
//! `prepare`).

mod analyze;
mod args;
mod calibrate;
mod inspect;
mod prepare;
mod quantize;

use quantbench_core::data::InputShape;
use quantbench_core::quant::RuntimeProfile;

pub use args::{Cli, Command};

use analyze::{SensitivityOptions, analyze};
use calibrate::calibrate;
use inspect::inspect;
use quantize::quantize;

/// Runs a subcommand.
pub fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Inspect { model, json } => inspect(&model, json),
        Command::Calibrate { model, calib, input_shapes, runtime, save_recipe } => {
            calibrate(&model, &calib, &input_shapes, runtime.as_deref(), save_recipe.as_deref())
        }
        Command::Analyze { model, quant, eval, report, no_local, sensitivity, bits, metric, sensitivity_samples } => {
            let sens = sensitivity.then_some(SensitivityOptions { bits, metric, samples: sensitivity_samples });
            analyze(&model, &quant, &eval, &report, no_local, sens.as_ref())
        }
        Command::Quantize { model, quant, eval, out, report, encodings, target_accuracy_drop, target_size } => {
            use quantbench_core::analysis::Target;
            let target = target_accuracy_drop.map(Target::AccuracyDrop).or(target_size.map(Target::SizeBytes));
            quantize(&model, &quant, eval.as_deref(), &out, report.as_deref(), encodings.as_deref(), target)
        }
    }
}

/// The `--runtime` profile (this CPU's when not given).
fn runtime_profile(name: Option<&str>) -> anyhow::Result<RuntimeProfile> {
    Ok(name.map_or_else(|| Ok(RuntimeProfile::detect()), str::parse::<RuntimeProfile>)?)
}

/// Parses repeated `--input-shape` values.
fn parse_input_shapes(values: &[String]) -> anyhow::Result<Vec<InputShape>> {
    values.iter().map(|v| v.parse::<InputShape>().map_err(anyhow::Error::from)).collect()
}

/// Checks, before any work, that every output can be written (so a run that fails leaves no
/// output behind, and a bad path fails at once rather than after calibration).
fn check_outputs(paths: &[Option<&std::path::Path>]) -> anyhow::Result<()> {
    for p in paths.iter().flatten() {
        quantbench_core::fsutil::check_writable(p)?;
    }
    Ok(())
}

/// Writes a command's outputs, all computed beforehand, each atomically; when one cannot be
/// written, those already written by this call are removed again.
fn write_outputs(files: &[(&std::path::Path, Vec<u8>)]) -> anyhow::Result<()> {
    let files: Vec<(&std::path::Path, &[u8])> = files.iter().map(|(p, b)| (*p, b.as_slice())).collect();
    Ok(quantbench_core::fsutil::write_all_or_none(&files)?)
}
