//! The advanced-algorithms view: choose CLE, SmoothQuant, EasyQuant, AdaRound, bias correction
//! and the weight rounding (nearest, HQQ, GPTQ, AWQ) for every layer or the selected ones, apply (which recalibrates through the worker, with
//! progress and cancel in the jobs bar), and see per layer what the layer-wise algorithms achieved.

use quantbench_core::algorithms::Refinements;
use quantbench_core::model::ModelSummary;
use quantbench_core::quant::recipe::Recipe;
use quantbench_core::quant::{LayerAlgorithms, WEIGHT_ALGORITHMS, WeightAlgorithm};

use super::actions::Action;
use super::context::ViewContext;
use super::tokens;

/// The view's state: the algorithms being edited and where they go.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlgorithmsState {
    /// The selection being edited.
    pub draft: LayerAlgorithms,
    /// Apply to the selected layers only (else to every layer).
    pub selected_only: bool,
}

/// Draws the view.
pub fn algorithms_ui(ctx: &ViewContext, state: &mut AlgorithmsState, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
    let (Some(recipe), Some(summary)) = (&ctx.session.recipe, &ctx.session.summary) else {
        ui.weak("Open a model first");
        return;
    };
    ui.heading("Advanced PTQ algorithms");
    ui.weak(
        "Model transforms (CLE, SmoothQuant) rewrite the float model into an equivalent one; \
         layer-wise algorithms (EasyQuant, AdaRound, bias correction) solve each layer's \
         reconstruction problem on the calibration set. Applying recalibrates.",
    );
    ui.add_space(tokens::SECTION_SPACE);
    let selected = ctx.selection.selected.len();
    ui.horizontal(|ui| {
        ui.label("Apply to:");
        ui.radio_value(&mut state.selected_only, false, "All layers");
        ui.add_enabled_ui(selected > 0, |ui| {
            ui.radio_value(&mut state.selected_only, true, format!("Selected layers ({selected})"));
        });
    });
    if selected == 0 {
        state.selected_only = false;
    }
    let d = &mut state.draft;
    egui::Grid::new("algorithms_choice").num_columns(2).spacing([12.0, 6.0]).show(ui, |ui| {
        ui.checkbox(&mut d.cross_layer_equalization, "Cross-layer equalization");
        ui.weak("Conv -> ReLU/ReLU6 -> Conv pairs; BatchNormalization folded first");
        ui.end_row();
        let mut smooth = d.smooth_quant.is_some();
        ui.checkbox(&mut smooth, "SmoothQuant");
        ui.horizontal(|ui| {
            let mut alpha = d.smooth_quant.unwrap_or(0.5);
            ui.add_enabled(smooth, egui::Slider::new(&mut alpha, 0.0..=1.0).text("alpha"));
            ui.weak("MatMul/Gemm: moves activation outliers into the weight");
            d.smooth_quant = smooth.then_some(alpha);
        });
        ui.end_row();
        ui.checkbox(&mut d.easy_quant, "EasyQuant");
        ui.weak("weight and activation scale search (output cosine)");
        ui.end_row();
        ui.checkbox(&mut d.ada_round, "AdaRound");
        ui.weak(format!("learned rounding, {} steps per layer", recipe.algorithm_settings.ada_round.iterations));
        ui.end_row();
        ui.checkbox(&mut d.bias_correction, "Bias correction");
        ui.weak("the bias absorbs the mean output shift");
        ui.end_row();
        ui.horizontal(|ui| {
            ui.label("Weight rounding");
            egui::ComboBox::from_id_salt("weight algorithm").selected_text(d.weight_algorithm.name()).show_ui(
                ui,
                |ui| {
                    for (a, name) in WEIGHT_ALGORITHMS {
                        ui.selectable_value(&mut d.weight_algorithm, a, name);
                    }
                },
            );
        });
        ui.weak(
            "rtn nearest; hqq optimised zero points (block-wise MatMul/Gemm, data-free, exported as MatMulNBits); \
             gptq and awq learn from the calibration set (weight-only 4-bit recipes)",
        );
        ui.end_row();
    });
    let draft = *d;
    let selected_only = state.selected_only;
    ui.add_space(tokens::SECTION_SPACE / 2.0);
    let can_run = ctx.simulatable() || ctx.session.calibration.is_some();
    if ui.add_enabled(can_run, egui::Button::new("Apply and recalibrate")).clicked() {
        let with = |layer: &str| {
            let mut c = recipe.config_for(layer);
            c.algorithms = draft;
            c
        };
        if selected_only {
            let changes = ctx.selection.selected.iter().map(|l| (l.clone(), Some(with(l)))).collect();
            actions.push(Action::UpdateLayers(changes));
        } else {
            let mut defaults = recipe.defaults;
            defaults.algorithms = draft;
            actions.push(Action::SetDefaults(defaults));
            let overrides: Vec<_> = recipe.layers.keys().map(|l| (l.clone(), Some(with(l)))).collect();
            if !overrides.is_empty() {
                actions.push(Action::UpdateLayers(overrides));
            }
        }
        actions.push(Action::Calibrate);
    }
    results_ui(ui, recipe, &ctx.session.measured.refinements, summary);
}

/// Per layer: the algorithms it takes part in and what the layer-wise ones achieved.
fn results_ui(ui: &mut egui::Ui, recipe: &Recipe, refinements: &Refinements, summary: &ModelSummary) {
    ui.add_space(tokens::SECTION_SPACE);
    ui.heading("Per layer");
    egui::ScrollArea::vertical().show(ui, |ui| {
        egui::Grid::new("algorithms_results").striped(true).num_columns(4).spacing([16.0, 4.0]).show(ui, |ui| {
            ui.strong("Layer");
            ui.strong("Algorithms");
            ui.strong("Output MSE nearest -> refined");
            ui.strong("Bias");
            ui.end_row();
            for layer in &summary.layers {
                let config = recipe.config_for(&layer.name);
                ui.label(&layer.name);
                ui.label(algorithm_names(&config.algorithms));
                match refinements.layers.get(&layer.name) {
                    Some(r) if r.config == config => {
                        ui.label(format!("{:.3e} -> {:.3e}", r.mse.0, r.mse.1));
                        ui.label(if r.bias.is_some() { "corrected" } else { "-" });
                    }
                    Some(_) => {
                        ui.colored_label(ui.visuals().warn_fg_color, "config changed: recalibrate");
                        ui.label("");
                    }
                    None => {
                        ui.weak(if config.algorithms.refines() { "not refined yet" } else { "-" });
                        ui.label("");
                    }
                }
                ui.end_row();
            }
        });
    });
}

/// Short names of the algorithms a layer takes part in.
pub fn algorithm_names(a: &LayerAlgorithms) -> String {
    let mut names = Vec::new();
    if a.cross_layer_equalization {
        names.push("CLE".to_string());
    }
    if let Some(alpha) = a.smooth_quant {
        names.push(format!("SmoothQuant {alpha:.2}"));
    }
    if a.easy_quant {
        names.push("EasyQuant".into());
    }
    if a.ada_round {
        names.push("AdaRound".into());
    }
    if a.bias_correction {
        names.push("bias corr.".into());
    }
    if a.weight_algorithm != WeightAlgorithm::Rtn {
        names.push(a.weight_algorithm.name().to_uppercase());
    }
    if names.is_empty() { "-".into() } else { names.join(", ") }
}
