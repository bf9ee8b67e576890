//! Headless UI tests: egui_kittest drives the real app (worker included) through its widgets.
//! This file holds the helpers and the whole-workflow tests; `tests_analysis.rs`,
//! `tests_layer.rs` and `tests_graph.rs` hold the analysis views', the layer views' and the graph
//! view's tests.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use egui::{Key, Modifiers};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;

use super::actions::Action;
use super::app::{CentralView, WorkbenchApp};
use super::context::{ESTIMATE_LABEL, OUTDATED_LABEL, ResultsState, UPDATING_LABEL};
use crate::samples;

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

/// Sends a pointer event (a move, or a primary button press or release) and runs a frame.
pub(super) fn pointer(h: &mut Harness<'_, WorkbenchApp>, pos: egui::Pos2, pressed: Option<bool>) {
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

pub(super) fn settled(app: &WorkbenchApp) -> bool {
    app.jobs.is_empty() && app.session.evaluation.is_some() && app.results_state() == ResultsState::Current
}

pub(super) fn local_sqnr(app: &WorkbenchApp, layer: &str) -> f64 {
    let (_, eval) = app.session.evaluation.as_ref().expect("evaluated");
    eval.layers.iter().find(|l| l.name == layer).and_then(|l| l.local.as_ref()).expect("local metrics").sqnr_db
}

#[test]
fn workflow_open_calibrate_tune_inspect_export() {
    let mut h = harness();
    h.state_mut().push_action(Action::OpenModel(sample("mobilenet")));
    wait_until(&mut h, "model, calibration and first evaluation", settled);
    assert!(h.state().simulatable());
    h.get_by_label("mobilenet");
    h.get_by_label_contains("Quantized accuracy");

    // Change one layer's weight bits from the table: select its row, then bulk-edit the selection.
    let layer = "block1_pw";
    let before = local_sqnr(h.state(), layer);
    let revision = h.state().session.revision;
    h.get_by_label(layer).click();
    h.step();
    assert!(h.state().selection.selected.contains(layer));
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
    assert_eq!(h.state().views.central, CentralView::Overview);
    h.get_by_label("Layer table").click();
    h.step();

    // Export with Ctrl+E, to a typed path.
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("mobilenet_qdq.onnx");
    h.key_press_modifiers(Modifiers::COMMAND, Key::E);
    h.step();
    assert!(h.state().views.export.open);
    *h.state_mut().views.export.path_mut() = out.to_string_lossy().into_owned();
    h.step();
    h.get_by_label("Write export").click();
    h.step();
    wait_until(&mut h, "export", |a| a.views.export.last.is_some() && a.jobs.is_empty());
    assert_eq!(h.state().views.export.last, Some(Ok(out.clone())));
    assert!(std::fs::metadata(&out).expect("exported file").len() > 1000);
    h.get_by_label_contains("Exported to");
    // The file just written is not one the path would replace; another existing file is.
    assert!(h.query_by_label_contains("replaces").is_none());
    let other = dir.path().join("other.onnx");
    std::fs::write(&other, b"x").expect("write");
    *h.state_mut().views.export.path_mut() = other.to_string_lossy().into_owned();
    h.step();
    h.get_by_label_contains("replaces");
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
    wait_until(&mut h, "the change acknowledged", |a| a.pending.unacknowledged_changes.is_empty());
    let eval = h.state().pending.evaluation.expect("an evaluation queued behind the sensitivity run");
    assert!(state_labels(&h).0 >= 2, "updating while queued");
    h.state_mut().push_action(Action::Cancel(eval));
    wait_until(&mut h, "the evaluation cancelled", |a| a.pending.evaluation.is_none());
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

#[test]
fn placement_target_is_chosen_in_the_table_header_and_re_evaluates() {
    use quantbench_core::quant::Target;
    let mut h = harness();
    h.state_mut().push_action(Action::OpenModel(sample("cnn")));
    wait_until(&mut h, "cnn evaluated", settled);
    let recipe = h.state().session.recipe.clone().expect("recipe");
    assert_eq!(recipe.target, Target::Ort, "ONNX Runtime's placement by default");
    let (_, before) = h.state().session.evaluation.clone().expect("evaluated");
    h.get_by_value("ort").click();
    h.step();
    h.step();
    h.get_by_label("tensorrt").click();
    h.step();
    wait_until(&mut h, "the tensorrt target", |a| {
        a.session.recipe.as_ref().is_some_and(|r| r.target == Target::TensorRt)
    });
    let revision = h.state().session.revision;
    wait_until(&mut h, "re-evaluated", |a| settled(a) && a.session.revision >= revision);
    let (_, after) = h.state().session.evaluation.clone().expect("evaluated");
    // Fewer tensors quantized (the layers' inputs only): the output is closer to the float one.
    assert!(
        after.metrics.output_sqnr_db > before.metrics.output_sqnr_db,
        "tensorrt {} dB vs ort {} dB",
        after.metrics.output_sqnr_db,
        before.metrics.output_sqnr_db
    );
    assert!(h.state().errors.is_empty(), "{:?}", h.state().errors);
}

#[test]
fn op_types_are_kept_float_from_the_table_header() {
    let mut h = harness();
    h.state_mut().push_action(Action::OpenModel(sample("cnn")));
    wait_until(&mut h, "cnn evaluated", settled);
    let (_, before) = h.state().session.evaluation.clone().expect("evaluated");
    h.get_by_label("no op type").click();
    h.step();
    h.step();
    h.get_by_label("Conv (2)").click();
    h.step();
    wait_until(&mut h, "Conv kept float", |a| a.session.recipe.as_ref().is_some_and(|r| r.float_ops.contains("Conv")));
    wait_until(&mut h, "re-evaluated", settled);
    let (_, after) = h.state().session.evaluation.clone().expect("evaluated");
    let conv_layers: Vec<_> = after.layers.iter().filter(|l| l.op == "Conv").collect();
    assert!(!conv_layers.is_empty());
    assert!(conv_layers.iter().all(|l| l.w_bits.is_none()), "every Conv layer float");
    assert!(after.metrics.output_sqnr_db > before.metrics.output_sqnr_db);
    assert!(h.state().errors.is_empty(), "{:?}", h.state().errors);
}

#[test]
fn quantized_tensors_are_listed_any_node_kept_float_and_scales_made_powers_of_two() {
    let mut h = harness();
    h.state_mut().push_action(Action::OpenModel(sample("cnn")));
    wait_until(&mut h, "cnn evaluated", settled);
    let (_, before) = h.state().session.evaluation.clone().expect("evaluated");
    let summary = h.state().session.summary.clone().expect("summary");
    assert!(before.quantized.len() > summary.layers.len(), "ORT's placement quantizes more than the layers' inputs");
    h.get_by_label(&format!("Quantized tensors: {} (ort placement)", before.quantized.len())).click();
    h.step();
    h.step();
    // A node that is not a layer (a pool, a Relu, ...), among the first rows shown.
    let row = before.quantized.iter().take(6).find(|r| r.producer.as_ref().is_some_and(|p| summary.layer(p).is_none()));
    let row = row.expect("a non-layer producer among the first rows").clone();
    let node = row.producer.clone().expect("producer");
    h.get_by_label(&format!("{node} ({})", row.op_type)).click();
    h.step();
    h.step();
    h.get_by_label("Keep this node float").click();
    h.step();
    wait_until(&mut h, "node kept float", |a| a.session.recipe.as_ref().is_some_and(|r| r.float_nodes.contains(&node)));
    wait_until(&mut h, "re-evaluated", settled);
    let (_, kept) = h.state().session.evaluation.clone().expect("evaluated");
    assert_ne!(kept.quantized, before.quantized, "keeping {node} float changes what is quantized");
    // Brought back from the "Nodes kept float" row: the same tensors as before.
    h.get_by_label(&format!("{node} ×")).click();
    h.step();
    wait_until(&mut h, "node quantized again", |a| a.session.recipe.as_ref().is_some_and(|r| r.float_nodes.is_empty()));
    wait_until(&mut h, "re-evaluated", settled);
    let (_, back) = h.state().session.evaluation.clone().expect("evaluated");
    assert_eq!(back.quantized, before.quantized);
    // Power-of-two scales from the defaults row.
    assert!(back.quantized.iter().any(|r| r.scale.log2().fract() != 0.0));
    h.get_by_label("pow2 scales").click();
    h.step();
    wait_until(&mut h, "pow2 defaults", |a| {
        a.session.recipe.as_ref().is_some_and(|r| r.defaults.weight.power_of_two && r.defaults.activation.power_of_two)
    });
    wait_until(&mut h, "re-evaluated", settled);
    let (_, pow2) = h.state().session.evaluation.clone().expect("evaluated");
    assert_eq!(pow2.quantized.len(), before.quantized.len());
    assert!(pow2.quantized.iter().all(|r| r.scale.log2().fract() == 0.0), "{:?}", pow2.quantized);
    assert!(h.state().errors.is_empty(), "{:?}", h.state().errors);
}

#[test]
fn export_paths_default_beside_the_model_then_in_the_last_export_folder() {
    use quantbench_core::worker::ExportKind;
    let key = super::export::export_key(ExportKind::QdqModel);
    let mut h = harness();
    let model = sample("cnn");
    let stem = model.file_stem().expect("stem").to_string_lossy().into_owned();
    h.state_mut().push_action(Action::OpenModel(model.clone()));
    wait_until(&mut h, "cnn evaluated", settled);
    h.state_mut().push_action(Action::ShowExport);
    h.step();
    let beside = model.parent().expect("folder").join(format!("{stem}_qdq.onnx"));
    assert_eq!(h.state().views.export.paths[&key], beside.to_string_lossy());
    // Exported elsewhere: that folder is remembered (persisted settings) and proposed next time.
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("mine.onnx");
    h.state_mut().push_action(Action::Export(ExportKind::QdqModel, out.clone()));
    wait_until(&mut h, "exported", |a| matches!(a.views.export.last, Some(Ok(_))) && a.jobs.is_empty());
    assert!(out.is_file());
    assert_eq!(h.state().settings.last_export_dir.as_deref(), Some(dir.path()));
    h.state_mut().push_action(Action::OpenModel(model.clone()));
    // The model reloaded clears the proposed paths (the open dialog keeps an empty one).
    wait_until(&mut h, "cnn evaluated again", |a| settled(a) && a.views.export.paths.values().all(String::is_empty));
    h.state_mut().push_action(Action::ShowExport);
    h.step();
    let remembered = dir.path().join(format!("{stem}_qdq.onnx"));
    assert_eq!(h.state().views.export.paths[&key], remembered.to_string_lossy());
    assert!(h.state().errors.is_empty(), "{:?}", h.state().errors);
}

#[test]
fn data_and_recipe_given_with_the_model_replace_the_files_beside_it_and_bad_ones_say_so() {
    use quantbench_core::worker::DataRole;
    let model = sample("cnn");
    let eval = model.parent().expect("folder").join("eval.npz");
    let dir = tempfile::tempdir().expect("tempdir");
    let recipe_path = dir.path().join("w4.json");
    let mut recipe = quantbench_core::quant::recipe::Recipe::for_local_runtime("cnn");
    recipe.defaults.weight.bits = 4;
    quantbench_core::calibrate::RecipeFile { recipe, calibration: None }.save(&recipe_path).expect("recipe saved");
    // `quantbench MODEL --calib DATA --eval DATA --recipe R` (the GUI's command line).
    let cli = <crate::cli::Cli as clap::Parser>::try_parse_from([
        "quantbench".as_ref(),
        model.as_os_str(),
        "--calib".as_ref(),
        eval.as_os_str(),
        "--eval".as_ref(),
        "missing.npz".as_ref(),
        "--recipe".as_ref(),
        recipe_path.as_os_str(),
    ])
    .expect("parses");
    assert_eq!(cli.calib.as_deref(), Some(eval.as_path()));
    assert_eq!(cli.eval.as_deref(), Some(std::path::Path::new("missing.npz")));
    assert_eq!(cli.recipe.as_deref(), Some(recipe_path.as_path()));
    let mut h = harness();
    let given = vec![(DataRole::Calibration, eval.clone()), (DataRole::Evaluation, PathBuf::from("missing.npz"))];
    h.state_mut().push_action(Action::OpenModelWith(model.clone(), given, cli.recipe));
    wait_until(&mut h, "calibrated on the given set, the bad one reported", |a| {
        a.simulatable() && a.jobs.is_empty() && !a.errors.is_empty()
    });
    let calibration = h.state().session.calibration.clone().expect("calibration set");
    assert_eq!(calibration.path, eval, "the given set, not calib.npz beside the model");
    assert!(h.state().errors.iter().any(|e| e.contains("missing.npz")), "{:?}", h.state().errors);
    let bits = h.state().session.recipe.as_ref().map(|r| r.defaults.weight.bits);
    assert_eq!(bits, Some(4), "the given recipe, applied after the model loaded");
    // The app keeps working: the evaluation set can still be given.
    h.state_mut().push_action(Action::LoadData(DataRole::Evaluation, eval.clone()));
    wait_until(&mut h, "evaluated", |a| a.session.evaluation.is_some() && a.jobs.is_empty());
    assert_eq!(h.state().session.evaluation_set.as_ref().map(|d| d.path.clone()), Some(eval));
    let (_, evaluation) = h.state().session.evaluation.clone().expect("evaluated");
    assert!(evaluation.layers.iter().all(|l| l.w_bits == Some(4)), "{:?}", evaluation.layers);
}

/// Progressive evaluation: after a change the summary strip first shows the result on the fixed
/// subset, labelled as an estimate with its sample count, then the whole set's replaces it.
#[test]
fn a_change_shows_the_subset_estimate_first_then_the_whole_set() {
    use quantbench_core::simulate::ESTIMATE_SAMPLES;
    let mut h = harness();
    h.state_mut().push_action(Action::OpenModel(sample("mobilenet")));
    wait_until(&mut h, "mobilenet evaluated", settled);
    let total = h.state().session.evaluation_set.as_ref().map(|d| d.num_samples).expect("evaluation set");
    let samples = |h: &Harness<'_, WorkbenchApp>| h.state().session.evaluation.as_ref().map(|(_, e)| e.samples);
    assert_eq!(samples(&h), Some(total), "the first evaluation ends on the whole set");
    let revision = h.state().session.revision;
    h.get_by_label("block1_dw").click();
    h.step();
    h.get_by_label("Selected: W4").click();
    wait_until(&mut h, "the estimate", |a| a.results_state() == ResultsState::Estimate);
    // The frame just drawn shows it (events are taken in before drawing).
    assert!(h.state().session.revision > revision);
    assert_eq!(samples(&h), Some(ESTIMATE_SAMPLES));
    assert_eq!(h.query_all_by_label(ESTIMATE_LABEL).count(), 1, "the summary strip says it is an estimate");
    let note = format!("on {ESTIMATE_SAMPLES} of {total} samples");
    assert_eq!(h.query_all_by_label(&note).count(), 1, "{note}");
    assert_eq!(state_labels(&h), (0, 0), "an estimate of the current configuration is not stale");
    wait_until(&mut h, "the whole set", |a| settled(a) && a.session.revision > revision);
    assert_eq!(samples(&h), Some(total));
    assert_eq!(h.query_all_by_label(ESTIMATE_LABEL).count(), 0);
}

/// The memory budget is one setting: changing it in the GUI reaches the worker (persisted), and
/// the results do not depend on it.
#[test]
fn the_memory_budget_is_a_setting_and_the_results_do_not_depend_on_it() {
    let mut h = harness();
    h.state_mut().push_action(Action::OpenModel(sample("mobilenet")));
    wait_until(&mut h, "evaluated", settled);
    h.get_by_label("Memory budget:");
    let (_, before) = h.state().session.evaluation.clone().expect("evaluation");
    h.state_mut().push_action(Action::SetMemoryBudget(16));
    wait_until(&mut h, "the budget set", |a| a.notes.iter().any(|n| n.starts_with("memory budget: 16 MiB")));
    assert_eq!(h.state().settings.memory_budget_mib, 16);
    let revision = h.state().session.revision;
    h.state_mut().push_action(Action::Evaluate);
    wait_until(&mut h, "evaluated within 16 MiB", |a| {
        settled(a) && a.session.evaluation.as_ref().is_some_and(|(r, e)| *r >= revision && e.samples == before.samples)
    });
    let (_, after) = h.state().session.evaluation.clone().expect("evaluation");
    assert_eq!(after.metrics, before.metrics);
    assert_eq!(after.layers, before.layers);
}
