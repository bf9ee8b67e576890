//! `quantbench analyze`: the report of a simulated quantization, with optional per-layer
//! sensitivity.

use super::args::QuantOptions;
use super::prepare::{float_reference, prepare, print_summary, recipe_file, report_json, simulate_report};
use super::{check_outputs, write_outputs};

/// What `analyze --sensitivity` measures.
pub(super) struct SensitivityOptions {
    pub(super) bits: Vec<u8>,
    pub(super) metric: Option<String>,
    /// Samples of the estimating pass.
    pub(super) samples: usize,
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
    let reference = float_reference(&model, &recipe, eval, no_local, opts.memory_budget)?;
    let (mut report, state) = simulate_report(&reference, &model, &recipe, &measured)?;
    if let Some(s) = sensitivity {
        use quantbench_core::analysis::{SensitivityMetric, SensitivityProgress, sensitivity as run_sensitivity};
        if let Some(b) = s.bits.iter().find(|b| !(2..=16).contains(*b)) {
            anyhow::bail!("--bits values must be 2–16, got {b}");
        }
        let metric = match &s.metric {
            Some(m) => m.parse::<SensitivityMetric>()?,
            None if report.metrics.quant_accuracy.is_some() => SensitivityMetric::Accuracy,
            None => SensitivityMetric::Top1Agreement,
        };
        if s.samples == 0 {
            anyhow::bail!("--sensitivity-samples must be at least 1");
        }
        let never = std::sync::atomic::AtomicBool::new(false);
        // A line per layer measurement on stderr as it finishes: estimates first, then the
        // leaders of the rankings refined on the whole set.
        let start = std::time::Instant::now();
        let mut progress = |p: SensitivityProgress<'_>| {
            let l = p.layer;
            let what = if l.samples == l.enable_one_samples && l.samples == l.disable_one_samples {
                format!("{} samples", l.samples)
            } else {
                format!(
                    "refined: enable-one on {}, disable-one on {} samples",
                    l.enable_one_samples, l.disable_one_samples
                )
            };
            let elapsed = start.elapsed().as_secs_f64();
            eprintln!("sensitivity: {}/{} {} ({elapsed:.1} s, {what})", p.done, p.total, l.name);
        };
        let options = quantbench_core::analysis::SensitivityOptions {
            subset: s.samples,
            ..quantbench_core::analysis::SensitivityOptions::new(metric, &s.bits)
        };
        let rows =
            run_sensitivity(&reference.0, &model, &recipe, &measured, &options, Some(&state), &mut progress, &never)?;
        eprintln!("sensitivity: done in {:.1} s", start.elapsed().as_secs_f64());
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
