//! Headless UI tests of the layer views: the detail's draggable clip lines, the image
//! preprocessing form, and the algorithms view (AdaRound, SmoothQuant).

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use quantbench_core::algorithms::smoothquant::smoothed_name;
use quantbench_core::observe::Observer;

use super::actions::{Action, SelectMode};
use super::app::{CentralView, WorkbenchApp};
use super::clip_drag::ClipEnd;
use super::context::ResultsState;
use super::tests::{harness, local_sqnr, pointer, sample, settled, wait_until};

#[test]
fn dragging_a_clip_line_sets_a_manual_range_and_re_evaluates() {
    let mut h = harness();
    h.state_mut().push_action(Action::OpenModel(sample("mlp")));
    wait_until(&mut h, "mlp evaluated", settled);
    let app = h.state();
    let layer = app.session.summary.as_ref().expect("model").layers[app.selection.focus.expect("focused")].clone();
    let stats = app.session.measured.calibration.as_deref().expect("calibrated").activations[&layer.input].clone();
    assert_eq!(
        app.session.recipe.as_ref().expect("recipe").config_for(&layer.name).activation.observer,
        Observer::MinMax
    );
    let before_sqnr = local_sqnr(app, &layer.name);
    let transform = *app.views.clip_lines.transform_of(&layer.name).expect("the histogram is drawn");
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
    let drag = h.state().views.clip_lines.drag.clone().expect("the max line is being dragged");
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
    assert!(h.state().views.clip_lines.drag.is_none());
    let Observer::Manual { min, max } =
        h.state().session.recipe.as_ref().expect("recipe").config_for(&layer.name).activation.observer
    else {
        panic!("releasing the line sets a manual range");
    };
    assert_eq!(min, stats.min, "the other end stays");
    assert!((max - target).abs() < tolerance, "{max} vs {target}");
    let after_transform = *h.state().views.clip_lines.transform_of(&layer.name).expect("drawn");
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
    h.state_mut().views.preprocess.mean = "0.5, x".into();
    h.step();
    h.get_by_label("mean: 'x' is not a number");
    h.get_by_label("Reset").click();
    h.step();
    assert_eq!(h.state().views.preprocess.mean, "0");

    // Resize the shorter side first, and keep the 0-255 pixel values.
    h.get_by_label("shorter side to").click();
    h.step();
    h.state_mut().views.preprocess.resize_shorter = 30;
    h.state_mut().views.preprocess.scale = 1.0;
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
    assert_eq!(restored.views.preprocess.to_preprocess(), Ok(applied));
}

/// Opens the mlp sample, waits for its first evaluation, ticks `algorithm` in the Algorithms
/// view and presses Apply (the recalibration is then under way).
fn apply_on_mlp(algorithm: &str) -> Harness<'static, WorkbenchApp> {
    let mut h = harness();
    h.state_mut().push_action(Action::OpenModel(sample("mlp")));
    wait_until(&mut h, "calibrated and evaluated", settled);
    h.state_mut().views.central = CentralView::Algorithms;
    h.step();
    h.get_by_label(algorithm).click();
    h.step();
    h.get_by_label("Apply and recalibrate").click();
    h.step();
    h
}

#[test]
fn choosing_adaround_recalibrates_and_shows_each_layers_result() {
    let mut h = apply_on_mlp("AdaRound");
    wait_until(&mut h, "recalibrated with AdaRound", |a| {
        settled(a) && !a.session.measured.refinements.layers.is_empty()
    });
    let recipe = h.state().session.recipe.clone().expect("recipe");
    assert!(recipe.defaults.algorithms.ada_round);
    for layer in ["fc1", "fc2", "fc3"] {
        let r = &h.state().session.measured.refinements.layers[layer];
        h.get_by_label(&format!("{:.3e} -> {:.3e}", r.mse.0, r.mse.1));
    }
    let refined = h.state().session.measured.refinements.layers.len();
    assert_eq!(refined, h.state().session.summary.as_ref().expect("model").layers.len());
    assert!(h.state().errors.is_empty(), "{:?}", h.state().errors);
}

#[test]
fn after_smoothquant_the_layer_detail_shows_the_smoothed_input() {
    let mut h = apply_on_mlp("SmoothQuant");
    let smoothed = |a: &WorkbenchApp| -> Option<(usize, String)> {
        let summary = a.session.summary.as_ref()?;
        let cal = a.session.measured.calibration.as_deref()?;
        summary.layers.iter().enumerate().find_map(|(i, l)| {
            let name = smoothed_name(&l.input, &l.name);
            cal.activations.contains_key(&name).then_some((i, name))
        })
    };
    wait_until(&mut h, "recalibrated with SmoothQuant", |a| settled(a) && smoothed(a).is_some());
    let (index, name) = smoothed(h.state()).expect("a smoothed layer");
    h.state_mut().push_action(Action::Select(index, SelectMode::Replace));
    h.step();
    h.step();
    h.get_by_label_contains(&format!("Activation histogram: {name}"));
    let stats = h.state().session.measured.calibration.as_deref().expect("calibrated").activations[&name].clone();
    h.get_by_label(&format!("MinMax: [{:.3}, {:.3}]", stats.min, stats.max));
    assert!(h.state().errors.is_empty(), "{:?}", h.state().errors);
}
