//! Headless UI tests of the analysis views: sensitivity (chart, heat map, table column, CSV,
//! cancel) and mixed precision (apply a point, CSV).

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;

use super::actions::{Action, SavedView, ViewFormat};
use super::analysis::metric_text;
use super::app::{CentralView, WorkbenchApp};
use super::table::SortColumn;
use super::tests::{harness, sample, settled, wait_until};

/// Saves `view` as CSV through its button and the save window (with a path in `dir`, as typed)
/// and returns the file's lines once written.
fn save_csv(h: &mut Harness<'_, WorkbenchApp>, button: &str, view: SavedView, dir: &std::path::Path) -> Vec<String> {
    h.get_by_label(button).click();
    h.step();
    let dialog = h.state().views.save.clone().expect("the save window is open");
    assert_eq!((dialog.view, dialog.format), (view, ViewFormat::Csv));
    assert!(dialog.path.ends_with(&format!("_{}.csv", view.stem())), "a default path: {}", dialog.path);
    let path = dir.join(format!("{}.csv", view.stem()));
    h.state_mut().views.save.as_mut().expect("open").path = path.to_string_lossy().into_owned();
    // A new window takes a frame or two to size itself before its widgets are shown.
    for _ in 0..10 {
        if h.query_by_label("Save").is_some() {
            break;
        }
        h.step();
    }
    h.get_by_label("Save").click();
    h.step();
    assert!(h.state().views.save.is_none(), "saving closes the window");
    let note = format!("saved {}", path.display());
    wait_until(h, "the CSV file", |a| a.notes.contains(&note) || !a.errors.is_empty());
    assert!(h.state().errors.is_empty(), "{:?}", h.state().errors);
    std::fs::read_to_string(&path).expect("CSV written").lines().map(String::from).collect()
}

#[test]
fn sensitivity_run_fills_chart_heat_map_and_table_column_and_exports_csv() {
    let mut h = harness();
    h.state_mut().push_action(Action::OpenModel(sample("mlp")));
    wait_until(&mut h, "mlp evaluated", settled);
    let layers: Vec<String> =
        h.state().session.summary.as_ref().expect("model").layers.iter().map(|l| l.name.clone()).collect();
    // No results yet: every sensitivity cell of the table is empty ("-").
    let empty_before = h.query_all_by_label("-").count();
    assert!(empty_before >= layers.len(), "one empty sensitivity cell per layer");

    h.get_by_label("Sensitivity analysis").click();
    h.step();
    assert_eq!(h.state().views.central, CentralView::Sensitivity);
    h.get_by_label("Run sensitivity").click();
    h.step();
    assert!(h.state().analysis.sensitivity_job.is_some(), "the run went to the worker");
    wait_until(&mut h, "sensitivity results", |a| {
        a.jobs.is_empty() && a.analysis.sensitivity.as_ref().is_some_and(|r| r.revision.is_some())
    });
    let run = h.state().analysis.sensitivity.clone().expect("results");
    assert_eq!(run.layers.iter().map(|l| l.name.clone()).collect::<Vec<_>>(), layers);
    assert_eq!(run.bits, vec![2, 4, 8]);
    // The bar chart (its legend names the series), the disable-one switch, and the heat map.
    h.get_by_label("enable-one (accuracy)");
    h.get_by_label("disable-one").click();
    h.step();
    h.get_by_label("disable-one (accuracy)");
    h.get_by_label("network order").click();
    h.step();
    h.get_by_label("Bit sweep");
    h.get_by_label("Heat map CSV");

    let dir = tempfile::tempdir().expect("tempdir");
    let csv = save_csv(&mut h, "Chart CSV", SavedView::SensitivityBars, dir.path());
    assert_eq!(csv.len(), 1 + layers.len(), "a header and one row per layer: {csv:?}");
    for (row, name) in csv[1..].iter().zip(&layers) {
        assert!(row.contains(&format!(",{name},Gemm,accuracy,")), "{row}");
    }
    let sweep = save_csv(&mut h, "Heat map CSV", SavedView::SweepHeatmap, dir.path());
    assert_eq!(sweep[0], "layer,w2,w4,w8,a2,a4,a8");
    assert_eq!(sweep.len(), 1 + layers.len());

    // The table's sensitivity column is filled, and sorts.
    h.get_by_label("Layer table").click();
    h.step();
    assert_eq!(h.query_all_by_label("-").count(), empty_before - layers.len(), "no empty sensitivity cell left");
    for l in &run.layers {
        let text = metric_text(run.metric, l.enable_one);
        assert!(h.query_all_by_label(&text).next().is_some(), "{}: cell shows {text}", l.name);
    }
    h.get_by_label("Sensitivity").click();
    h.step();
    h.step();
    assert_eq!(h.state().views.table.sort, SortColumn::Sensitivity);
    let most_sensitive = run.layers.iter().min_by(|a, b| a.enable_one.total_cmp(&b.enable_one)).expect("layers");
    let first = h.state().views.table.visible[0];
    assert_eq!(
        run.layers[first].enable_one, most_sensitive.enable_one,
        "ascending: the most sensitive layer (lowest enable-one) first"
    );
}

#[test]
fn mixed_precision_point_applies_to_the_table_and_exports_csv() {
    let mut h = harness();
    h.state_mut().push_action(Action::OpenModel(sample("mlp")));
    wait_until(&mut h, "mlp evaluated", settled);
    let layer_count = h.state().session.summary.as_ref().expect("model").layers.len();
    // Bit combos show their value: W and A per layer in the table, and in the defaults row. The
    // default weight bits follow this CPU's runtime profile (7 where ORT saturates 8-bit pairs).
    let w_default = h.state().session.recipe.as_ref().expect("recipe").defaults.weight.bits.to_string();
    let twos_before = h.query_all_by_value("2").count();
    let w_before = h.query_all_by_value(&w_default).count();
    assert!(w_before > layer_count, "{w_before}");

    h.get_by_label("Mixed precision").click();
    h.step();
    h.get_by_label("Run search").click();
    h.step();
    wait_until(&mut h, "the search", |a| a.jobs.is_empty() && a.analysis.mixed.is_some());
    h.get_by_label_contains("Chosen: #");
    let run = h.state().analysis.mixed.clone().expect("search");
    assert!(run.result.chosen.is_some(), "a 1-point drop is reachable on mlp");
    // The smallest configuration on the front: every layer at 2 bits.
    let i = run.result.path.iter().rposition(|p| p.pareto).expect("a front");
    let point = run.result.path[i].clone();
    assert!(point.bits.iter().all(|(_, b)| *b == 2), "{point:?}");

    let revision = h.state().session.revision;
    h.get_by_label(&format!("Apply #{i}")).click();
    h.step();
    let recipe = h.state().session.recipe.clone().expect("recipe");
    for (layer, bits) in &point.bits {
        assert_eq!(recipe.config_for(layer).weight.bits, *bits, "{layer} applied at once");
    }
    wait_until(&mut h, "re-evaluation of the applied point", |a| settled(a) && a.session.revision > revision);
    let (_, eval) = h.state().session.evaluation.clone().expect("evaluated");
    assert_eq!(eval.metrics.quant_size_bytes, point.size_bytes, "the evaluation reproduces the point");
    assert_eq!(eval.metrics.quant_accuracy, point.accuracy);
    let chosen = if run.result.chosen == Some(i) { " chosen" } else { "" };
    h.get_by_label(&format!("#{i}{chosen} applied"));

    let dir = tempfile::tempdir().expect("tempdir");
    let csv = save_csv(&mut h, "Front CSV", SavedView::ParetoFront, dir.path());
    assert_eq!(csv.len(), 1 + run.result.path.len(), "a header and one row per path point");
    assert!(csv[1 + i].ends_with(&",2".repeat(layer_count)), "{}", csv[1 + i]);

    // The table shows the new bits: one more "2" combo per layer, one "8" less.
    h.get_by_label("Layer table").click();
    h.step();
    assert!(h.query_all_by_value("2").count() >= twos_before + layer_count);
    assert!(h.query_all_by_value(&w_default).count() <= w_before - layer_count);
}

#[test]
fn cancelling_sensitivity_keeps_the_streamed_layers_and_the_app_usable() {
    let mut h = harness();
    // Ten layers: the run is still estimating them (two at a time) when the cancel arrives.
    h.state_mut().push_action(Action::OpenModel(sample("mobilenet")));
    wait_until(&mut h, "mobilenet evaluated", settled);
    h.get_by_label("Sensitivity analysis").click();
    h.step();
    // Every sweep width: a long run per layer.
    for b in ["3", "5", "6"] {
        h.get_by_role_and_label(egui::accesskit::Role::CheckBox, b).click();
        h.step();
    }
    assert_eq!(h.state().views.sensitivity.sweep_bits.len(), 6);
    h.get_by_label("Run sensitivity").click();
    wait_until(&mut h, "the first layer", |a| a.analysis.sensitivity.as_ref().is_some_and(|r| !r.layers.is_empty()));
    h.get_by_label("Cancel sensitivity").click();
    wait_until(&mut h, "the cancellation", |a| a.analysis.sensitivity_job.is_none() && a.jobs.is_empty());
    let run = h.state().analysis.sensitivity.clone().expect("partial results");
    assert_eq!(run.end, super::analysis::RunEnd::Cancelled);
    assert!(!run.layers.is_empty() && run.layers.len() < run.total, "{} of {}", run.layers.len(), run.total);
    h.get_by_label_contains("Cancelled: ");
    h.get_by_label("enable-one (accuracy)");
    assert!(h.state().errors.is_empty(), "{:?}", h.state().errors);
    // The app goes on: a config change is evaluated.
    let revision = h.state().session.revision;
    h.get_by_label("Layer table").click();
    h.step();
    h.get_by_label("block2_pw").click();
    h.step();
    h.get_by_label("Selected: W4").click();
    wait_until(&mut h, "re-evaluation", |a| settled(a) && a.session.revision > revision);
}
