//! `quantbench analyze`: the report of a simulated quantization, with optional per-layer
//! sensitivity.

use super::args::QuantOptions;
use super::prepare::{float_reference, prepare, print_summary, recipe_file, report_json, simulate_report};
use super::{check_outputs, write_outputs};

/// What `analyze --sensitivity` measures.
pub(super) struct SensitivityOptions {
    pub(super) bits: Vec<u8>,
    pub(super) metric: Option<String>,
}

/// Prepares the recipe, simulates it on `eval` and writes the report (and the recipe).
pub(super) fn analyze(
    model_path: &std::path::Path,
    opts: &QuantOptions,
    eval: &std::path::Path,
    report_path: &std::path::Path,
    no_local: bool,
    sensitivity: Option<&SensitivityOptions>,
) -> anyhow::Result<()> {
    check_outputs(&[Some(report_path), opts.save_recipe.as_deref()])?;
    let (model, recipe, measured) = prepare(model_path, opts)?;
    let reference = float_reference(&model, &recipe, eval, no_local)?;
    let mut report = simulate_report(&reference, &model, &recipe, &measured)?;
    if let Some(s) = sensitivity {
        use quantbench_core::analysis::{SensitivityMetric, sensitivity as run_sensitivity};
        if let Some(b) = s.bits.iter().find(|b| !(2..=16).contains(*b)) {
            anyhow::bail!("--bits values must be 2–16, got {b}");
        }
        let metric = match &s.metric {
            Some(m) => m.parse::<SensitivityMetric>()?,
            None if report.metrics.quant_accuracy.is_some() => SensitivityMetric::Accuracy,
            None => SensitivityMetric::Top1Agreement,
        };
        let never = std::sync::atomic::AtomicBool::new(false);
        // One line per layer on stderr as it finishes: the analysis of a real model takes minutes.
        let total = quantbench_core::pipeline::plan(&model, &recipe, &measured)?.layers.len();
        let (start, mut done) = (std::time::Instant::now(), 0usize);
        let mut progress = |r: &quantbench_core::analysis::LayerSensitivity| {
            done += 1;
            eprintln!("sensitivity: {done}/{total} {} ({:.1} s)", r.name, start.elapsed().as_secs_f64());
        };
        let rows = run_sensitivity(&reference.0, &model, &recipe, &measured, metric, &s.bits, &mut progress, &never)?;
        report.sensitivity_metric = Some(metric);
        report.sensitivity = Some(rows);
    }
    let mut files = vec![(report_path, report_json(&report)?)];
    if let Some(p) = &opts.save_recipe {
        files.push((p.as_path(), recipe_file(recipe, &measured)?));
    }
    write_outputs(&files)?;
    print_summary(&report);
    Ok(())
}
