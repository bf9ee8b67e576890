//! `quantbench calibrate`: every tensor's range and the clip range each observer picks, and
//! optionally a recipe with the calibration.

use quantbench_core::calibrate::{CalibrationConfig, RecipeFile, calibrate as run_calibration};
use quantbench_core::data::{DataSet, DataSource};
use quantbench_core::model::OnnxModel;
use quantbench_core::observe::Observer;
use quantbench_core::quant::recipe::Recipe;

use super::{check_outputs, parse_input_shapes, runtime_profile, write_outputs};

/// Calibrates the model at `model_path` on `calib`, prints the ranges and writes the recipe.
pub(super) fn calibrate(
    model_path: &std::path::Path,
    calib: &std::path::Path,
    input_shapes: &[String],
    runtime: Option<&str>,
    save_recipe: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    check_outputs(&[save_recipe])?;
    let runtime = runtime_profile(runtime)?;
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
        let mut recipe = Recipe::for_runtime(&model.summary.name, runtime);
        recipe.calibration_config = config;
        write_outputs(&[(path, RecipeFile { recipe, calibration: Some(cal) }.to_json()?.into_bytes())])?;
        eprintln!("recipe written to {}", path.display());
    }
    Ok(())
}
