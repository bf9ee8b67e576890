//! Headless UI tests: egui_kittest drives the real app (worker included) through its widgets.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use egui::{Key, Modifiers};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;

use super::actions::Action;
use super::analysis::{SavedView, ViewFormat, metric_text};
use super::app::{CentralView, OUTDATED_LABEL, ResultsState, SortColumn, UPDATING_LABEL, WorkbenchApp};
use super::clip_drag::ClipEnd;
use crate::samples;
use quantbench_core::observe::Observer;

/// Generous: debug builds on a shared machine.
const TIMEOUT: Duration = Duration::from_mins(2);

pub(super) fn harness() -> Harness<'static, WorkbenchApp> {
    Harness::builder().with_size([1400.0, 900.0]).with_max_steps(100).build_eframe(|cc| WorkbenchApp::new(cc.storage))
}

pub(super) fn sample(name: &str) -> PathBuf {
    samples::models().into_iter().find(|(n, _)| n == name).map(|(_, p)| p).expect("bundled sample model")
}

/// Steps frames until `done` holds for the app's state, failing after [`TIMEOUT`].
pub(super) fn wait_until(h: &mut Harness<'_, WorkbenchApp>, what: &str, done: impl Fn(&WorkbenchApp) -> bool) {
    let start = Instant::now();
    loop {
        h.step();
        if done(h.state()) {
            h.step();
            return;
        }
        assert!(start.elapsed() < TIMEOUT, "timed out waiting for {what}; errors: {:?}", h.state().errors);
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(super) fn settled(app: &WorkbenchApp) -> bool {
    app.jobs.is_empty() && app.session.evaluation.is_some() && app.results_state() == ResultsState::Current
}

fn local_sqnr(app: &WorkbenchApp, layer: &str) -> f64 {
    let (_, eval) = app.session.evaluation.as_ref().expect("evaluated");
    eval.layers.iter().find(|l| l.name == layer).and_then(|l| l.local.as_ref()).expect("local metrics").sqnr_db
}

#[test]
fn workflow_open_calibrate_tune_inspect_export() {
    let mut h = harness();
    h.state_mut().push_action(Action::OpenModel(sample("mobilenet")));
    wait_until(&mut h, "model, calibration and first evaluation", settled);
    assert!(h.state().calibrated());
    h.get_by_label("mobilenet");
    h.get_by_label_contains("Quantized accuracy");

    // Change one layer's weight bits from the table: select its row, then bulk-edit the selection.
    let layer = "block1_pw";
    let before = local_sqnr(h.state(), layer);
    let revision = h.state().session.revision;
    h.get_by_label(layer).click();
    h.step();
    assert!(h.state().table.selected.contains(layer));
    h.get_by_label("Selected: W2").click();
    h.step();
    assert_eq!(h.state().results_state(), ResultsState::Updating, "a config change: updating until re-evaluated");
    wait_until(&mut h, "re-evaluation", |a| settled(a) && a.session.revision > revision);
    let after = local_sqnr(h.state(), layer);
    assert!(after < before - 10.0, "W2 should cost SQNR: {before} -> {after}");
    assert_eq!(h.state().session.recipe.as_ref().expect("recipe").config_for(layer).weight.bits, 2);
    // The new SQNR shows in the table (and maybe in the detail panel too).
    assert!(h.query_all_by_label(&format!("{after:.1} dB")).next().is_some(), "SQNR cell shows {after:.1} dB");

    // The selected layer's detail shows its activation histogram with the observers' ranges.
    h.get_by_label_contains("Activation histogram: ");
    h.get_by_label_contains("MinMax (chosen)");
    h.get_by_label_contains("Percentile 99.99: [");
    h.get_by_label_contains("Weight ranges per channel");

    // The error overview draws, and the table comes back.
    h.get_by_label("Error overview").click();
    h.step();
    assert_eq!(h.state().view, CentralView::Overview);
    h.get_by_label("Layer table").click();
    h.step();

    // Export with Ctrl+E, to a typed path.
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("mobilenet_qdq.onnx");
    h.key_press_modifiers(Modifiers::COMMAND, Key::E);
    h.step();
    assert!(h.state().export.open);
    *h.state_mut().export.path_mut() = out.to_string_lossy().into_owned();
    h.step();
    h.get_by_label("Write export").click();
    h.step();
    wait_until(&mut h, "export", |a| a.export.last.is_some() && a.jobs.is_empty());
    assert_eq!(h.state().export.last, Some(Ok(out.clone())));
    assert!(std::fs::metadata(&out).expect("exported file").len() > 1000);
    h.get_by_label_contains("Exported to");
}

#[test]
fn bad_model_shows_error_and_app_stays_usable() {
    let mut h = harness();
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("notes.onnx");
    std::fs::write(&bad, b"this is not a protobuf").expect("write");
    h.state_mut().push_action(Action::OpenModel(bad));
    wait_until(&mut h, "the load error", |a| !a.errors.is_empty() && a.jobs.is_empty());
    assert!(h.state().session.summary.is_none());
    h.get_by_label_contains("notes.onnx");
    h.get_by_label("Dismiss").click();
    h.step();
    assert!(h.state().errors.is_empty());

    h.state_mut().push_action(Action::OpenModel(sample("mlp")));
    wait_until(&mut h, "the good model", settled);
    assert!(h.state().errors.is_empty(), "{:?}", h.state().errors);
    assert!(h.state().session.summary.is_some());
}

/// Saves `view` as CSV through its button and the save window (with a path in `dir`, as typed)
/// and returns the file's lines once written.
fn save_csv(h: &mut Harness<'_, WorkbenchApp>, button: &str, view: SavedView, dir: &std::path::Path) -> Vec<String> {
    h.get_by_label(button).click();
    h.step();
    let dialog = h.state().analysis.save.clone().expect("the save window is open");
    assert_eq!((dialog.view, dialog.format), (view, ViewFormat::Csv));
    assert!(dialog.path.ends_with(&format!("_{}.csv", view.stem())), "a default path: {}", dialog.path);
    let path = dir.join(format!("{}.csv", view.stem()));
    h.state_mut().analysis.save.as_mut().expect("open").path = path.to_string_lossy().into_owned();
    // A new window takes a frame or two to size itself before its widgets are shown.
    for _ in 0..10 {
        if h.query_by_label("Save").is_some() {
            break;
        }
        h.step();
    }
    h.get_by_label("Save").click();
    h.step();
    assert!(h.state().analysis.save.is_none(), "saving closes the window");
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
    assert_eq!(h.state().view, CentralView::Sensitivity);
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
    assert_eq!(h.state().table.sort, SortColumn::Sensitivity);
    let most_sensitive = run.layers.iter().min_by(|a, b| a.enable_one.total_cmp(&b.enable_one)).expect("layers");
    let first = h.state().table.visible[0];
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
    h.state_mut().push_action(Action::OpenModel(sample("cnn")));
    wait_until(&mut h, "cnn evaluated", settled);
    h.get_by_label("Sensitivity analysis").click();
    h.step();
    // Every sweep width: a long run per layer.
    for b in ["3", "5", "6"] {
        h.get_by_role_and_label(egui::accesskit::Role::CheckBox, b).click();
        h.step();
    }
    assert_eq!(h.state().analysis.sweep_bits.len(), 6);
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
    h.get_by_label("conv2").click();
    h.step();
    h.get_by_label("Selected: W4").click();
    wait_until(&mut h, "re-evaluation", |a| settled(a) && a.session.revision > revision);
}

fn state_labels(h: &Harness<'_, WorkbenchApp>) -> (usize, usize) {
    (h.query_all_by_label(UPDATING_LABEL).count(), h.query_all_by_label(OUTDATED_LABEL).count())
}

#[test]
fn results_show_updating_while_evaluating_and_outdated_after_cancel() {
    let mut h = harness();
    h.state_mut().push_action(Action::OpenModel(sample("cnn")));
    wait_until(&mut h, "cnn evaluated", settled);
    assert_eq!(state_labels(&h), (0, 0), "current results carry no state label");

    // A change: "updating..." from the click until the re-evaluation arrives.
    let revision = h.state().session.revision;
    h.get_by_label("conv2").click();
    h.step();
    h.get_by_label("Selected: W4").click();
    h.step();
    assert_eq!(h.state().results_state(), ResultsState::Updating);
    // The change was sent after that frame was drawn: the next one shows the state.
    h.step();
    assert_eq!(h.state().results_state(), ResultsState::Updating);
    let (updating, outdated) = state_labels(&h);
    assert!(updating >= 2 && outdated == 0, "summary strip and table say updating: {updating}, {outdated}");
    wait_until(&mut h, "re-evaluation", |a| settled(a) && a.session.revision > revision);
    assert_eq!(state_labels(&h), (0, 0), "the label goes when the result arrives");

    // A long sensitivity run holds the job thread, so the next evaluation waits in the queue;
    // cancelling it leaves the results outdated.
    h.get_by_label("Sensitivity analysis").click();
    h.step();
    for b in ["3", "5", "6"] {
        h.get_by_role_and_label(egui::accesskit::Role::CheckBox, b).click();
        h.step();
    }
    h.get_by_label("Run sensitivity").click();
    wait_until(&mut h, "the sensitivity run", |a| a.analysis.sensitivity_job.is_some());
    h.get_by_label("Layer table").click();
    h.step();
    h.get_by_label("Selected: W2").click();
    wait_until(&mut h, "the change acknowledged", |a| a.unacknowledged_changes.is_empty());
    let eval = h.state().pending_evaluation.expect("an evaluation queued behind the sensitivity run");
    assert!(state_labels(&h).0 >= 2, "updating while queued");
    h.state_mut().push_action(Action::Cancel(eval));
    wait_until(&mut h, "the evaluation cancelled", |a| a.pending_evaluation.is_none());
    assert_eq!(h.state().results_state(), ResultsState::Outdated);
    let (updating, outdated) = state_labels(&h);
    assert!(updating == 0 && outdated >= 2, "summary strip and table say outdated: {updating}, {outdated}");
    assert_eq!(h.state().session.recipe.as_ref().expect("recipe").config_for("conv2").weight.bits, 2);

    // Re-evaluate from the summary strip (after the sensitivity run is stopped).
    let sensitivity = h.state().analysis.sensitivity_job.expect("still running");
    h.state_mut().push_action(Action::Cancel(sensitivity));
    wait_until(&mut h, "sensitivity cancelled", |a| a.analysis.sensitivity_job.is_none());
    assert_eq!(h.state().results_state(), ResultsState::Outdated, "cancelling another job changes nothing");
    h.get_by_label("Re-evaluate").click();
    h.step();
    assert_eq!(h.state().results_state(), ResultsState::Updating);
    wait_until(&mut h, "the re-evaluation", settled);
    assert_eq!(state_labels(&h), (0, 0));
    assert!(h.state().errors.is_empty(), "{:?}", h.state().errors);
}

/// Sends a pointer event and runs a frame.
fn pointer(h: &mut Harness<'_, WorkbenchApp>, pos: egui::Pos2, pressed: Option<bool>) {
    let event = match pressed {
        None => egui::Event::PointerMoved(pos),
        Some(pressed) => egui::Event::PointerButton {
            pos,
            button: egui::PointerButton::Primary,
            pressed,
            modifiers: Modifiers::NONE,
        },
    };
    h.input_mut().events.push(event);
    h.step();
}

#[test]
fn dragging_a_clip_line_sets_a_manual_range_and_re_evaluates() {
    let mut h = harness();
    h.state_mut().push_action(Action::OpenModel(sample("mlp")));
    wait_until(&mut h, "mlp evaluated", settled);
    let app = h.state();
    let layer = app.session.summary.as_ref().expect("model").layers[app.focus.expect("focused")].clone();
    let stats = app.session.measured.calibration.as_deref().expect("calibrated").activations[&layer.input].clone();
    assert_eq!(
        app.session.recipe.as_ref().expect("recipe").config_for(&layer.name).activation.observer,
        Observer::MinMax
    );
    let before_sqnr = local_sqnr(app, &layer.name);
    let transform = *app.clip_lines.transform_of(&layer.name).expect("the histogram is drawn");
    let bounds = *transform.bounds();
    let y = transform.frame().center().y;
    let from = egui::pos2(transform.position_from_point_x(f64::from(stats.max)), y);
    let target = stats.min + 0.4 * (stats.max - stats.min);
    let to = egui::pos2(transform.position_from_point_x(f64::from(target)), y);

    // Hover the chosen (MinMax) max line, press, drag it left, release: real pointer events.
    pointer(&mut h, from, None);
    pointer(&mut h, from, Some(true));
    pointer(&mut h, egui::pos2(from.x - 20.0, y), None);
    pointer(&mut h, to, None);
    let drag = h.state().clip_lines.drag.clone().expect("the max line is being dragged");
    assert_eq!(drag.end, ClipEnd::Max);
    let tolerance = (stats.max - stats.min) / transform.frame().width() * 2.0;
    assert!((drag.range.1 - target).abs() < tolerance, "{:?} vs {target}", drag.range);
    assert_eq!(
        h.state().session.recipe.as_ref().expect("recipe").config_for(&layer.name).activation.observer,
        Observer::MinMax,
        "nothing changes until the line is released"
    );
    let revision = h.state().session.revision;
    pointer(&mut h, to, Some(false));
    assert!(h.state().clip_lines.drag.is_none());
    let Observer::Manual { min, max } =
        h.state().session.recipe.as_ref().expect("recipe").config_for(&layer.name).activation.observer
    else {
        panic!("releasing the line sets a manual range");
    };
    assert_eq!(min, stats.min, "the other end stays");
    assert!((max - target).abs() < tolerance, "{max} vs {target}");
    let after_transform = *h.state().clip_lines.transform_of(&layer.name).expect("drawn");
    assert_eq!(after_transform.bounds(), &bounds, "the plot did not pan while the line was dragged");
    assert_eq!(h.state().results_state(), ResultsState::Updating);
    wait_until(&mut h, "re-evaluation of the manual range", |a| settled(a) && a.session.revision > revision);
    let after_sqnr = local_sqnr(h.state(), &layer.name);
    assert!(
        (after_sqnr - before_sqnr).abs() > 0.01,
        "clipping 60% of the range changes the error: {before_sqnr} -> {after_sqnr}"
    );
    // The observer combos (table row and detail) say Manual; the manual range is drawn.
    assert!(h.query_all_by_value("Manual").count() >= 2, "table and detail combos show Manual");
    h.get_by_label(&format!("Manual: [{min:.3}, {max:.3}]"));
    h.get_by_label("min");
    h.get_by_label("max");
    assert!(h.state().errors.is_empty(), "{:?}", h.state().errors);
}

/// Settings storage in memory, as eframe's would keep them between runs.
#[derive(Default)]
struct MemoryStorage(std::collections::BTreeMap<String, String>);

impl eframe::Storage for MemoryStorage {
    fn get_string(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }

    fn set_string(&mut self, key: &str, value: String) {
        self.0.insert(key.to_string(), value);
    }

    fn remove_string(&mut self, key: &str) {
        self.0.remove(key);
    }

    fn flush(&mut self) {}
}

fn input_max(app: &WorkbenchApp) -> f32 {
    app.session.measured.calibration.as_deref().map_or(f32::NAN, |c| c.activations["input"].max)
}

#[test]
fn image_folder_preprocessing_form_reloads_the_set_and_persists() {
    let dir = tempfile::tempdir().expect("tempdir");
    for i in 0..6u32 {
        let img = image::GrayImage::from_fn(24, 20, |x, y| image::Luma([((x * 9 + y * 4 + i * 17) % 256) as u8]));
        img.save(dir.path().join(format!("digit{i}.png"))).expect("png");
    }
    let mut h = harness();
    h.state_mut().push_action(Action::OpenModel(sample("cnn")));
    wait_until(&mut h, "cnn evaluated", settled);
    assert!(h.query_by_label("Image preprocessing").is_none(), "no image folder: no form");

    h.state_mut().push_action(Action::LoadData(quantbench_core::worker::DataRole::Calibration, dir.path().into()));
    wait_until(&mut h, "calibrated on the image folder", |a| {
        settled(a) && a.session.calibration.as_ref().is_some_and(|c| c.path == dir.path() && c.num_samples == 6)
    });
    let scaled = input_max(h.state());
    assert!(scaled > 0.1 && scaled <= 1.0, "pixels scaled by 1/255: {scaled}");
    h.get_by_label("Image preprocessing");

    // A bad value: a visible message, and nothing is applied.
    h.state_mut().preprocess_form.mean = "0.5, x".into();
    h.step();
    h.get_by_label("mean: 'x' is not a number");
    h.get_by_label("Reset").click();
    h.step();
    assert_eq!(h.state().preprocess_form.mean, "0");

    // Resize the shorter side first, and keep the 0-255 pixel values.
    h.get_by_label("shorter side to").click();
    h.step();
    h.state_mut().preprocess_form.resize_shorter = 30;
    h.state_mut().preprocess_form.scale = 1.0;
    h.get_by_label("BGR").click();
    h.step();
    let revision = h.state().session.revision;
    h.get_by_label("Apply").click();
    h.step();
    let applied = h.state().settings.preprocess.clone();
    assert_eq!((applied.resize_shorter, applied.scale), (Some(30), 1.0));
    assert_eq!(applied.channel_order, quantbench_core::data::ChannelOrder::Bgr);
    wait_until(&mut h, "re-calibrated with the new preprocessing", |a| settled(a) && a.session.revision > revision);
    let unscaled = input_max(h.state());
    assert!(unscaled > 25.0, "pixel values no longer scaled: {unscaled}");
    assert!(h.state().errors.is_empty(), "{:?}", h.state().errors);

    // The settings persist: a new app restored from the saved storage has them.
    let mut storage = MemoryStorage::default();
    eframe::App::save(h.state_mut(), &mut storage);
    let restored = WorkbenchApp::new(Some(&storage));
    assert_eq!(restored.settings.preprocess, applied);
    assert_eq!(restored.preprocess_form.to_preprocess(), Ok(applied));
}

#[test]
fn runtime_profile_is_this_cpus_switches_defaults_and_flags_saturating_layers() {
    use quantbench_core::quant::RuntimeProfile;
    let mut h = harness();
    h.state_mut().push_action(Action::OpenModel(sample("mlp")));
    wait_until(&mut h, "mlp evaluated", settled);
    let here = RuntimeProfile::detect();
    let recipe = h.state().session.recipe.clone().expect("recipe");
    assert_eq!(recipe.runtime, here, "a new model gets this CPU's profile");
    assert_eq!(recipe.defaults.weight.bits, here.default_weight_bits());
    // Choose the saturating profile in the combo box (from the VNNI one where that is this CPU's).
    let start = if here == RuntimeProfile::OrtX86Avx2 { RuntimeProfile::OrtX86Vnni } else { here };
    if start != here {
        h.state_mut().push_action(Action::SetRuntime(start));
        wait_until(&mut h, "profile set", |a| a.session.recipe.as_ref().is_some_and(|r| r.runtime == start));
        wait_until(&mut h, "re-evaluated", settled);
    }
    let label = |p: RuntimeProfile| if p == here { format!("{p} (this CPU)") } else { p.to_string() };
    h.get_by_value(&label(start)).click();
    h.step();
    h.step();
    h.get_by_label(&label(RuntimeProfile::OrtX86Avx2)).click();
    h.step();
    wait_until(&mut h, "the avx2 profile", |a| {
        a.session.recipe.as_ref().is_some_and(|r| r.runtime == RuntimeProfile::OrtX86Avx2)
    });
    wait_until(&mut h, "re-evaluated", settled);
    let recipe = h.state().session.recipe.clone().expect("recipe");
    assert_eq!(recipe.defaults.weight.bits, 7, "the profile's defaults follow it: 7-bit weights");
    h.get_by_label_contains("default weights use 7 bits");
    assert_eq!(h.query_all_by_label("int16!").count(), 0, "7-bit weights cannot saturate");
    // 8-bit weights: every MatMul/Gemm of the mlp can overflow, and the table says so.
    let mut defaults = recipe.defaults;
    defaults.weight.bits = 8;
    let revision = h.state().session.revision;
    h.state_mut().push_action(Action::SetDefaults(defaults));
    wait_until(&mut h, "8-bit evaluation", |a| settled(a) && a.session.revision > revision);
    let (_, eval) = h.state().session.evaluation.clone().expect("evaluated");
    let flagged = eval.layers.iter().filter(|l| l.saturates).count();
    assert!(flagged > 0, "saturating layers are flagged");
    assert_eq!(h.query_all_by_label("int16!").count(), flagged);
    h.get_by_label_contains("8-bit weights can overflow");
}
