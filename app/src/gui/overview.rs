//! Error overview: local and accumulated SQNR of every layer in network order; clicking a bar
//! selects its layer.

use egui_plot::{Bar, BarChart, Legend, Plot};

use super::actions::{Action, SelectMode};
use super::analysis::EXACT_DB;
use super::context::ViewContext;
use super::tokens;

/// Draws the chart.
pub fn overview_ui(ctx: &ViewContext, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
    let (Some(summary), Some((_, eval))) = (&ctx.session.summary, &ctx.session.evaluation) else {
        ui.weak("No evaluation yet");
        return;
    };
    let stale = ctx.results.is_old();
    if stale {
        ui.horizontal(|ui| {
            super::summary::results_state_ui(ui, ctx.results, Some("(bars show an earlier configuration)"));
        });
    }
    let clamp = |v: f64| {
        if v.is_finite() {
            v
        } else if v > 0.0 {
            EXACT_DB
        } else {
            0.0
        }
    };
    let index_of = |name: &str| summary.layers.iter().position(|l| l.name == name);
    let mut local = Vec::new();
    let mut accumulated = Vec::new();
    let mut names = Vec::new();
    for r in &eval.layers {
        let Some(i) = index_of(&r.name) else { continue };
        let x = i as f64;
        if let Some(m) = &r.local {
            local.push(Bar::new(x - 0.2, clamp(m.sqnr_db)).width(0.4).name(&r.name));
        }
        accumulated.push(Bar::new(x + 0.2, clamp(r.accumulated.sqnr_db)).width(0.4).name(&r.name));
        names.push((i, r.name.clone()));
    }
    let (lc, ac) = if stale { (tokens::STALE, tokens::STALE) } else { (tokens::LOCAL, tokens::ACCUMULATED) };
    let focus = ctx.selection.focus;
    let layer_names: Vec<String> = summary.layers.iter().map(|l| l.name.clone()).collect();
    let response = Plot::new("error overview")
        .legend(Legend::default())
        .y_axis_label("SQNR (dB)")
        .x_axis_label("layer (network order)")
        .x_axis_formatter(move |mark, _| {
            let i = mark.value.round();
            if (mark.value - i).abs() < 1e-6 && i >= 0.0 {
                layer_names.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .allow_scroll(false)
        .show(ui, |plot| {
            plot.bar_chart(BarChart::new("local SQNR", local).color(lc));
            plot.bar_chart(BarChart::new("accumulated SQNR", accumulated).color(ac));
            if let Some(f) = focus {
                plot.vline(egui_plot::VLine::new("selected", f as f64).color(tokens::FAIR).width(1.5));
            }
            plot.pointer_coordinate()
        });
    if response.response.clicked()
        && let Some(p) = response.inner
    {
        let i = p.x.round();
        if i >= 0.0 && (i as usize) < summary.layers.len() {
            actions.push(Action::Select(i as usize, SelectMode::Replace));
        }
    }
    ui.weak("Click a bar to select its layer. Green above 35 dB, yellow above 20 dB.");
}
