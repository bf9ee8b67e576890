//! `quantbench quantize`: the exported QDQ model (with optional mixed precision, report,
//! encodings and recipe).

use quantbench_core::model::OnnxModel;
use quantbench_core::pipeline;
use quantbench_core::plan::Measured;
use quantbench_core::quant::recipe::Recipe;
use quantbench_core::simulate::Simulator;

use super::args::QuantOptions;
use super::prepare::{float_reference, prepare, print_summary, recipe_file, report_json, simulate_report};
use super::{check_outputs, write_outputs};

/// Runs the mixed-precision search and returns the chosen recipe with the search.
fn choose_mixed_precision(
    reference: &Simulator,
    model: &OnnxModel,
    recipe: &Recipe,
    measured: &Measured,
    target: quantbench_core::analysis::Target,
) -> anyhow::Result<(Recipe, quantbench_core::analysis::MixedPrecision)> {
    let never = std::sync::atomic::AtomicBool::new(false);
    let start = std::time::Instant::now();
    let search = quantbench_core::analysis::mixed_precision(
        reference,
        model,
        recipe,
        measured,
        target,
        quantbench_core::analysis::MixedPrecisionOptions::default(),
        &mut |_| {},
        &never,
    )?;
    let whole = search.path.iter().filter(|p| p.samples == reference.num_samples()).count();
    eprintln!(
        "mixed precision: {} configurations measured in {:.1} s, {whole} on all {} samples, the others estimated on a subset (size bytes, accuracy or agreement; the front of whole-set points)",
        search.path.len(),
        start.elapsed().as_secs_f64(),
        reference.num_samples()
    );
    for (i, p) in search.path.iter().enumerate().filter(|(_, p)| p.pareto) {
        let bits: Vec<String> = p.bits.iter().map(|(_, b)| b.to_string()).collect();
        let metric = p.accuracy.unwrap_or(p.top1_agreement);
        let mark = if search.chosen == Some(i) { "  <- chosen" } else { "" };
        eprintln!("  {:>8} B  {:>7.2} %  W[{}]{mark}", p.size_bytes, 100.0 * metric, bits.join(","));
    }
    let Some(chosen) = search.chosen else {
        anyhow::bail!(
            "no configuration meets the target {target:?}: the mixed-precision search tried {} (see above)",
            search.path.len()
        );
    };
    Ok((search.recipe_of(recipe, chosen), search))
}

/// Prepares the recipe (choosing mixed precision for `target`) and exports the QDQ model, with
/// the report, encodings and recipe asked for.
pub(super) fn quantize(
    model_path: &std::path::Path,
    opts: &QuantOptions,
    eval: Option<&std::path::Path>,
    out: &std::path::Path,
    report_path: Option<&std::path::Path>,
    encodings: Option<&std::path::Path>,
    target: Option<quantbench_core::analysis::Target>,
) -> anyhow::Result<()> {
    if report_path.is_some() && eval.is_none() {
        anyhow::bail!("--report needs --eval (the report is measured on the evaluation set)");
    }
    if target.is_some() && eval.is_none() {
        anyhow::bail!("--target-accuracy-drop and --target-size need --eval (targets are measured on it)");
    }
    check_outputs(&[Some(out), report_path, encodings, opts.save_recipe.as_deref()])?;
    let (model, mut recipe, measured) = prepare(model_path, opts)?;
    let reference =
        eval.map(|e| float_reference(&model, &recipe, e, report_path.is_none(), opts.memory_budget)).transpose()?;
    let mut search = None;
    if let (Some(target), Some(reference)) = (target, &reference) {
        let (chosen, s) = choose_mixed_precision(&reference.0, &model, &recipe, &measured, target)?;
        recipe = chosen;
        search = Some(s);
    }
    let plan = pipeline::plan(&model, &recipe, &measured)?;
    let saturating = plan.saturating_layers();
    if !saturating.is_empty() {
        eprintln!(
            "warning: on {} (u8×s8 pairs summed in int16 with saturation) {} layer(s) can overflow; the simulation \
             reproduces it, 7-bit weights (--w-bits 7) avoid it: {}",
            recipe.runtime,
            saturating.len(),
            saturating.join(", ")
        );
    }
    let inexact = plan.inexact_layers();
    if !inexact.is_empty() {
        eprintln!(
            "warning: on {} the int8-activation kernels of {} layer(s) are not simulated exactly (ONNX Runtime \
             measured several dB worse); uint8 activations or 7-bit weights avoid it: {}",
            recipe.runtime,
            inexact.len(),
            inexact.join(", ")
        );
    }
    // Everything is computed before anything is written: a failure leaves no output behind.
    let model_files = quantbench_core::export::qdq_files(&model, &plan, out)?;
    let (paths, bytes): (Vec<std::path::PathBuf>, Vec<Vec<u8>>) = model_files.into_iter().unzip();
    let mut files: Vec<(&std::path::Path, Vec<u8>)> =
        paths.iter().map(std::path::PathBuf::as_path).zip(bytes).collect();
    if let Some(p) = encodings {
        files.push((p, quantbench_core::export::encodings_json(&plan)?.into_bytes()));
    }
    let report = match &reference {
        Some(reference) => {
            let (mut report, _) = simulate_report(reference, &model, &recipe, &measured)?;
            report.mixed_precision = search;
            if let Some(p) = report_path {
                files.push((p, report_json(&report)?));
            }
            Some(report)
        }
        None => None,
    };
    if let Some(p) = &opts.save_recipe {
        files.push((p.as_path(), recipe_file(recipe, &measured)?));
    }
    write_outputs(&files)?;
    eprintln!("quantized model written to {}", out.display());
    if let Some(report) = &report {
        print_summary(report);
    }
    Ok(())
}
