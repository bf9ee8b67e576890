//! Headless UI tests of the workbench on the user's own files: typed paths (good and bad), the
//! recent lists, the message when the system file dialog cannot open, and the names given to
//! nodes the exporter left generic.

use egui::{Key, Modifiers};
use egui_kittest::kittest::Queryable as _;
use quantbench_core::worker::DataRole;

use super::actions::{Action, FilePurpose};
use super::path_prompt::NO_DIALOG;
use super::tests::{harness, sample, settled, wait_until};

#[test]
fn typed_paths_open_model_and_data_bad_ones_say_why_and_recent_ones_come_back() {
    let mut h = harness();
    let model = sample("cnn");
    let folder = model.parent().expect("folder").to_path_buf();
    let eval = folder.join("eval.npz");

    // Ctrl+O opens the prompt; a bad path says why and opens nothing.
    h.key_press_modifiers(Modifiers::COMMAND, Key::O);
    h.step();
    assert_eq!(h.state().views.path_prompt.purpose, Some(FilePurpose::Model));
    h.get_by_label("Open model");
    h.state_mut().views.path_prompt.text = folder.join("nope.onnx").display().to_string();
    h.step();
    h.get_by_label_contains("no such file or folder");
    h.state_mut().views.path_prompt.text = eval.display().to_string();
    h.step();
    h.get_by_label_contains("not an ONNX model");
    h.get_by_label("Open").click();
    h.step();
    assert!(h.state().session.model_path.is_none() && h.state().views.path_prompt.purpose.is_some());

    // The right path, typed, opens (with the data beside it).
    h.state_mut().views.path_prompt.text = model.display().to_string();
    h.step();
    h.get_by_label_contains("ready: ");
    h.get_by_label("Open").click();
    wait_until(&mut h, "cnn evaluated", settled);
    assert!(h.state().views.path_prompt.purpose.is_none());
    assert_eq!(h.state().settings.recent_models.first(), Some(&model));

    // Data by typed path: the field starts in the model's folder.
    h.state_mut().push_action(Action::PickFile(FilePurpose::Data(DataRole::Evaluation)));
    h.step();
    h.get_by_label("Evaluation data");
    let text = h.state().views.path_prompt.text.clone();
    assert!(text.starts_with(&folder.display().to_string()), "{text}");
    h.state_mut().views.path_prompt.text = folder.join("model.onnx").display().to_string();
    h.step();
    h.get_by_label_contains("not a NumPy data file");
    h.state_mut().views.path_prompt.text = eval.display().to_string();
    h.step();
    h.get_by_label("Open").click();
    wait_until(&mut h, "evaluation set loaded", |a| {
        a.jobs.is_empty() && a.session.evaluation_set.as_ref().is_some_and(|d| d.path == eval)
    });
    assert!(h.state().settings.recent_data.contains(&eval), "{:?}", h.state().settings.recent_data);
    wait_until(&mut h, "evaluated on it", settled);

    // The recent data sets are offered; clicking one fills the field.
    h.state_mut().push_action(Action::PickFile(FilePurpose::Data(DataRole::Calibration)));
    h.step();
    h.get_by_label("Recent:");
    h.get_by_label(&eval.display().to_string()).click();
    h.step();
    assert_eq!(h.state().views.path_prompt.text, eval.display().to_string());
    h.get_by_label("Close").click();
    h.step();
    assert!(h.state().views.path_prompt.purpose.is_none());

    // The system dialog could not open (it answered at once without a file): a visible message,
    // and the prompt to type the path in.
    h.state().files_tx.send((FilePurpose::Recipe, None)).expect("send");
    h.step();
    h.step();
    assert!(h.state().errors.iter().any(|e| e == NO_DIALOG), "{:?}", h.state().errors);
    assert_eq!(h.state().views.path_prompt.purpose, Some(FilePurpose::Recipe));
    assert!(h.query_all_by_label(NO_DIALOG).count() >= 1, "the message is on screen");
    h.get_by_label("Open recipe");
}

#[test]
fn generic_node_names_show_as_recognisable_names_and_old_recipes_still_apply() {
    use prost::Message as _;
    use quantbench_core::model::onnx::ModelProto;
    // The cnn sample as an exporter that names nodes by op type and index writes it.
    let model = sample("cnn");
    let folder = model.parent().expect("folder");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut proto = ModelProto::decode(std::fs::read(&model).expect("read").as_slice()).expect("decode");
    let graph = proto.graph.as_mut().expect("graph");
    for (i, n) in graph.node.iter_mut().enumerate() {
        n.name = format!("{}_{i}", n.op_type);
    }
    let conv = graph.node.iter().find(|n| n.op_type == "Conv").map(|n| n.name.clone()).expect("a Conv");
    let generic = dir.path().join("model.onnx");
    std::fs::write(&generic, proto.encode_to_vec()).expect("write model");
    for f in ["calib.npz", "eval.npz"] {
        std::fs::copy(folder.join(f), dir.path().join(f)).expect("copy data");
    }

    let mut h = harness();
    h.state_mut().push_action(Action::OpenModel(generic));
    wait_until(&mut h, "evaluated", settled);
    let layers: Vec<String> =
        h.state().session.summary.as_ref().expect("summary").layers.iter().map(|l| l.name.clone()).collect();
    assert_eq!(layers, ["conv1", "conv2", "fc"], "named after their weights");
    assert!(h.query_all_by_label("conv1").next().is_some(), "conv1 is shown");
    assert!(h.query_all_by_label(&conv).next().is_none(), "the generic name {conv} is not shown");

    // A recipe keyed by the generic name (as written before) configures the renamed layer.
    let recipe_path = dir.path().join("old.json");
    let mut recipe = quantbench_core::quant::recipe::Recipe::for_local_runtime("model");
    let mut w4 = recipe.defaults;
    w4.weight.bits = 4;
    recipe.layers.insert(conv.clone(), w4);
    quantbench_core::calibrate::RecipeFile { recipe, calibration: None }.save(&recipe_path).expect("save");
    let revision = h.state().session.revision;
    h.state_mut().push_action(Action::OpenRecipe(recipe_path));
    wait_until(&mut h, "re-evaluated", |a| settled(a) && a.session.revision > revision);
    assert!(h.state().errors.is_empty(), "{:?}", h.state().errors);
    let (_, e) = h.state().session.evaluation.clone().expect("evaluation");
    let bits: Vec<Option<u8>> = e.layers.iter().map(|l| l.w_bits).collect();
    assert_eq!(bits[0], Some(4), "{:?}", e.layers);
    assert_ne!(bits[1], Some(4));
}

#[test]
fn a_model_alone_shows_its_weights_and_calibrates_on_flagged_synthetic_inputs() {
    use super::app::CentralView;
    use super::synthetic_form::SYNTHETIC_WARNING;
    use super::weights_view::row_label;
    use quantbench_core::analysis::WEIGHT_ERROR_BITS;
    // The cnn sample without the data files beside it.
    let dir = tempfile::tempdir().expect("tempdir");
    let model = dir.path().join("cnn.onnx");
    std::fs::copy(sample("cnn"), &model).expect("copy");
    let mut h = harness();
    h.state_mut().push_action(Action::OpenModel(model));
    wait_until(&mut h, "model loaded", |a| a.session.summary.is_some() && a.jobs.is_empty());
    assert!(h.state().session.calibration.is_none() && h.state().session.evaluation.is_none());

    // The weights alone: per-channel ranges and the weight-only error at each bit width.
    let weights = h.state().session.weights.clone();
    assert_eq!(weights.iter().map(|w| w.layer.as_str()).collect::<Vec<_>>(), ["conv1", "conv2", "fc"]);
    for w in &weights {
        assert!(w.per_channel_db.windows(2).all(|p| p[0] < p[1]), "more bits, less error: {w:?}");
        assert!(w.per_channel_db.iter().zip(&w.per_tensor_db).all(|(c, t)| c >= t), "{w:?}");
        assert_eq!(w.per_channel_db.len(), WEIGHT_ERROR_BITS.len());
        assert!(!w.stats.channel_max.is_empty());
    }
    h.get_by_label_contains("Weight-only SQNR (per channel)");
    assert_eq!(h.query_all_by_label("Not calibrated yet").count(), 1, "only the activation histogram waits for data");
    h.get_by_label("Sensitivity analysis").click();
    h.step();
    assert_eq!(h.state().views.central, CentralView::Sensitivity);
    h.get_by_label("Weight-only error per bit width");
    h.get_by_label(&row_label("conv2")).click();
    h.step();
    assert_eq!(h.state().selection.focus, Some(1), "a row selects its layer");

    // Synthetic inputs: a choice, flagged wherever the results show.
    h.get_all_by_label("Synthetic…").next().expect("a Synthetic… button").click();
    h.step();
    assert_eq!(h.state().views.synthetic.role, Some(DataRole::Calibration));
    // A window is measured on its first frame and shown on the next.
    h.step();
    h.step();
    h.get_by_label("Calibrate on synthetic inputs").click();
    wait_until(&mut h, "calibrated and evaluated on synthetic inputs", settled);
    let session = &h.state().session;
    assert!(session.calibration.as_ref().is_some_and(super::context::DataInfo::is_synthetic));
    assert!(session.evaluation_set.as_ref().is_some_and(super::context::DataInfo::is_synthetic));
    assert!(h.state().settings.recent_data.is_empty(), "synthetic sets are not recent files");
    assert!(h.query_all_by_label(SYNTHETIC_WARNING).count() >= 2, "flagged in the summary strip and the data panel");
    let (_, e) = session.evaluation.clone().expect("evaluated");
    assert!(e.metrics.output_sqnr_db.is_finite() && e.layers.iter().all(|l| l.w_bits.is_some()));
}

#[test]
fn weights_only_evaluates_without_calibration_and_exports_int4_blocks() {
    use quantbench_core::quant::{Granularity, WeightFormat};
    // The transformer sample without its calibration set: only the evaluation set is loaded.
    let dir = tempfile::tempdir().expect("tempdir");
    let model = dir.path().join("transformer.onnx");
    std::fs::copy(sample("transformer"), &model).expect("copy");
    let eval = sample("transformer").with_file_name("eval.npz");
    let mut h = harness();
    h.state_mut().push_action(Action::OpenModel(model));
    wait_until(&mut h, "model loaded", |a| a.session.summary.is_some() && a.jobs.is_empty());
    h.state_mut().push_action(Action::LoadData(DataRole::Evaluation, eval));
    wait_until(&mut h, "evaluation set", |a| a.session.evaluation_set.is_some() && a.jobs.is_empty());
    assert!(!h.state().simulatable() && h.state().session.evaluation.is_none(), "nothing to simulate yet");

    // Weights only: evaluated at once, with no calibration.
    h.get_by_label("weights only").click();
    h.step();
    wait_until(&mut h, "weight-only evaluation", |a| a.session.evaluation.is_some() && a.jobs.is_empty());
    assert!(h.state().session.measured.calibration.is_none());
    h.get_by_label_contains("Quantized accuracy");
    let w8 = h.state().session.evaluation.as_ref().expect("evaluated").1.metrics.output_sqnr_db;

    // 4-bit blocks of 16 on every layer, written as MatMulNBits.
    let mut defaults = h.state().session.recipe.as_ref().expect("recipe").defaults;
    defaults.weight.bits = 4;
    defaults.weight.granularity = Granularity::PerGroup { group_size: 16 };
    h.state_mut().push_action(Action::SetDefaults(defaults));
    h.state_mut().push_action(Action::SetWeightFormat(WeightFormat::MatMulNBits));
    let revision = h.state().session.revision;
    wait_until(&mut h, "re-evaluation", |a| {
        a.session.revision > revision && a.jobs.is_empty() && a.results_state() == super::context::ResultsState::Current
    });
    let w4 = h.state().session.evaluation.as_ref().expect("evaluated").1.metrics.output_sqnr_db;
    assert!(w4 < w8 - 10.0, "4-bit weights cost SQNR: W8 {w8:.1} dB, W4 {w4:.1} dB");
    let recipe = h.state().session.recipe.clone().expect("recipe");
    assert!(recipe.weights_only && recipe.weight_format == WeightFormat::MatMulNBits);

    // HQQ, from the algorithms view's choice: data-free, so re-evaluated at once.
    let mut hqq = h.state().session.recipe.as_ref().expect("recipe").defaults;
    hqq.algorithms.weight_algorithm = quantbench_core::quant::WeightAlgorithm::Hqq;
    h.state_mut().push_action(Action::SetDefaults(hqq));
    let revision = h.state().session.revision;
    wait_until(&mut h, "HQQ evaluation", |a| {
        a.session.revision > revision && a.jobs.is_empty() && a.results_state() == super::context::ResultsState::Current
    });
    let with_hqq = h.state().session.evaluation.as_ref().expect("evaluated").1.metrics.output_sqnr_db;
    assert!((with_hqq - w4).abs() > 0.01, "HQQ changes the weights: {w4:.2} vs {with_hqq:.2} dB");
    assert_eq!(super::algorithms::algorithm_names(&hqq.algorithms), "HQQ");

    let out = dir.path().join("w4.onnx");
    h.state_mut().push_action(Action::Export(quantbench_core::worker::ExportKind::QdqModel, out.clone()));
    wait_until(&mut h, "export", |a| a.jobs.is_empty() && out.exists());
    let bytes = std::fs::read(&out).expect("export");
    assert!(bytes.windows(11).any(|w| w == b"MatMulNBits"), "MatMulNBits nodes in the export");
    assert!(bytes.len() * 3 < std::fs::metadata(sample("transformer")).expect("model").len() as usize * 2);
}
