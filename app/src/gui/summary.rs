//! The model summary strip: float vs quantized accuracy, top-1 agreement, output SQNR, sizes.

use super::actions::Action;
use super::context::{DataInfo, ResultsState, ViewContext};
use super::synthetic_form::SYNTHETIC_WARNING;
use super::tokens;

/// Draws the strip; results of an older configuration are greyed and labelled "updating…" while
/// a newer one is evaluated, "outdated — re-evaluate" (with a button) when nothing is.
pub fn summary_ui(ctx: &ViewContext, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
    ui.horizontal_wrapped(|ui| {
        let Some((_, eval)) = &ctx.session.evaluation else {
            if ctx.session.summary.is_some() {
                ui.weak(if ctx.session.evaluation_set.is_none() {
                    "No evaluation set: load one to see accuracy and errors"
                } else {
                    "Waiting for the first evaluation…"
                });
            } else {
                ui.weak("No model loaded");
            }
            return;
        };
        let state = ctx.results;
        let stale = state.is_old();
        let m = &eval.metrics;
        let value = |ui: &mut egui::Ui, label: &str, text: String, color: Option<egui::Color32>| {
            ui.label(format!("{label}:"));
            let mut rich = egui::RichText::new(text).strong();
            if stale {
                rich = rich.color(tokens::STALE);
            } else if let Some(c) = color {
                rich = rich.color(c);
            }
            ui.label(rich);
            ui.separator();
        };
        let pct = |x: Option<f64>| x.map_or_else(|| "n/a".to_string(), |a| format!("{:.2} %", a * 100.0));
        value(ui, "Float accuracy", pct(m.float_accuracy), None);
        value(ui, "Quantized accuracy", pct(m.quant_accuracy), None);
        value(ui, "Top-1 agreement", format!("{:.2} %", m.top1_agreement * 100.0), None);
        value(ui, "Output SQNR", format!("{:.1} dB", m.output_sqnr_db), Some(tokens::sqnr_color(m.output_sqnr_db)));
        value(
            ui,
            "Size",
            format!("{} float, {} quantized", human_size(m.float_size_bytes), human_size(m.quant_size_bytes)),
            None,
        );
        if ctx.session.calibration.as_ref().is_some_and(DataInfo::is_synthetic)
            || ctx.session.evaluation_set.as_ref().is_some_and(DataInfo::is_synthetic)
        {
            ui.colored_label(ui.visuals().warn_fg_color, SYNTHETIC_WARNING);
            ui.separator();
        }
        let note = ctx.session.estimate_samples().map(|(n, total)| format!("on {n} of {total} samples"));
        results_state_ui(ui, state, note.as_deref().filter(|_| state == ResultsState::Estimate));
        if state == ResultsState::Outdated
            && ui
                .add_enabled(
                    ctx.simulatable() && ctx.session.evaluation_set.is_some(),
                    egui::Button::new("Re-evaluate"),
                )
                .on_hover_text("Evaluate the current configuration")
                .clicked()
        {
            actions.push(Action::Evaluate);
        }
    });
}

/// The results-state label (nothing when current): a spinner and "updating…" or "estimate —
/// refining…", or "outdated — re-evaluate"; `note` says what the values shown are.
pub fn results_state_ui(ui: &mut egui::Ui, state: ResultsState, note: Option<&str>) {
    let Some(label) = state.label() else { return };
    if matches!(state, ResultsState::Updating | ResultsState::Estimate) {
        ui.spinner();
        ui.label(egui::RichText::new(label).italics());
    } else {
        ui.label(egui::RichText::new(label).italics().color(tokens::OUTDATED));
    }
    if let Some(note) = note {
        ui.weak(note);
    }
}

/// A byte count as B / KiB / MiB.
pub fn human_size(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1024.0 * 1024.0 {
        format!("{:.2} MiB", b / 1024.0 / 1024.0)
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{bytes} B")
    }
}
