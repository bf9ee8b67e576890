//! Headless UI tests: egui_kittest drives the real app (worker included) through its widgets.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use egui::{Key, Modifiers};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;

use super::actions::Action;
use super::app::{CentralView, WorkbenchApp};
use crate::samples;

/// Generous: debug builds on a shared machine.
const TIMEOUT: Duration = Duration::from_mins(2);

fn harness() -> Harness<'static, WorkbenchApp> {
    Harness::builder().with_size([1400.0, 900.0]).with_max_steps(100).build_eframe(|cc| WorkbenchApp::new(cc.storage))
}

fn sample(name: &str) -> PathBuf {
    samples::models().into_iter().find(|(n, _)| n == name).map(|(_, p)| p).expect("bundled sample model")
}

/// Steps frames until `done` holds for the app's state, failing after [`TIMEOUT`].
fn wait_until(h: &mut Harness<'_, WorkbenchApp>, what: &str, done: impl Fn(&WorkbenchApp) -> bool) {
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

fn settled(app: &WorkbenchApp) -> bool {
    app.jobs.is_empty() && app.session.evaluation.is_some() && !app.results_stale()
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
    assert!(h.state().results_stale(), "a config change marks results as stale until re-evaluated");
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
