//! Bad model files through the CLI, as a new user would meet them: one clear line on stderr,
//! a non-zero exit, never a panic.

use std::path::Path;

use quantbench_tests::onnx_build::{model_with_nodes, node, write_model};
use quantbench_tests::{run_cli, sample, texts};

/// Runs `inspect` on `path` and checks it fails with one line containing `expect`.
fn check_fails(path: &Path, expect: &str) {
    let out = run_cli(&["inspect".as_ref(), path.as_os_str()]);
    let (stdout, stderr) = texts(&out);
    assert!(!out.status.success(), "{} should fail; stdout: {stdout}", path.display());
    assert_eq!(out.status.code(), Some(1), "exit code; stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line on stderr, got: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains(expect), "expected '{expect}' in: {stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("internal error"), "{stderr}");
}

#[test]
fn text_file_is_not_onnx() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("notes.onnx");
    std::fs::write(&p, "this is a text file, not a model\n").expect("write");
    check_fails(&p, "not a valid ONNX model");
}

#[test]
fn empty_file_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("empty.onnx");
    std::fs::write(&p, b"").expect("write");
    check_fails(&p, "not a valid ONNX model (the file is empty)");
}

#[test]
fn truncated_model_is_reported() {
    let bytes = std::fs::read(sample("cnn", "model.onnx")).expect("read sample");
    let dir = tempfile::tempdir().expect("tempdir");
    for frac in [2, 3, 10] {
        let p = dir.path().join(format!("truncated_{frac}.onnx"));
        std::fs::write(&p, &bytes[..bytes.len() / frac]).expect("write");
        check_fails(&p, "not a valid ONNX model");
    }
}

#[test]
fn missing_path_is_reported() {
    check_fails(Path::new("/nonexistent/dir/model.onnx"), "cannot read model");
}

#[test]
fn control_flow_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("loop.onnx");
    let m = model_with_nodes(vec![node("Relu", "relu0", &["x"], &["h"]), node("If", "branch", &["h"], &["y"])]);
    write_model(&m, &p);
    check_fails(&p, "control flow is not supported: If (node 'branch', its condition depends on the input data)");
}

#[test]
fn unsupported_and_custom_ops_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("custom.onnx");
    let mut custom = node("FancyNorm", "fancy1", &["x"], &["h"]);
    custom.domain = "com.example".into();
    let m = model_with_nodes(vec![custom, node("NoSuchOp", "mystery", &["h"], &["y"])]);
    write_model(&m, &p);
    check_fails(&p, "unsupported operators: NoSuchOp (nodes 'mystery'), com.example.FancyNorm (nodes 'fancy1')");
}

#[test]
fn dangling_tensor_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("dangling.onnx");
    let m = model_with_nodes(vec![node("Add", "add", &["x", "ghost"], &["y"])]);
    write_model(&m, &p);
    check_fails(&p, "ghost");
}

#[test]
fn valid_tiny_model_inspects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("tiny.onnx");
    write_model(&model_with_nodes(vec![node("Relu", "relu0", &["x"], &["y"])]), &p);
    let out = run_cli(&["inspect".as_ref(), p.as_os_str()]);
    assert!(out.status.success(), "{}", texts(&out).1);
}

/// A NaN in one layer's weight does not stop the model from opening (the weight-only errors
/// computed at load leave that layer out; quantizing it is refused later, by name).
#[test]
fn a_nan_weight_leaves_its_layer_out_of_the_data_free_weight_errors() {
    use prost::Message as _;
    use quantbench_core::analysis::weight_errors;
    use quantbench_core::model::OnnxModel;
    use quantbench_core::model::onnx::ModelProto;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut proto =
        ModelProto::decode(std::fs::read(sample("mlp", "model.onnx")).expect("read").as_slice()).expect("decode");
    let graph = proto.graph.as_mut().expect("graph");
    let w = graph.initializer.iter_mut().find(|t| t.name == "fc2.weight").expect("fc2.weight");
    if w.raw_data.len() >= 4 {
        w.raw_data[..4].copy_from_slice(&f32::NAN.to_le_bytes());
    } else {
        w.float_data[0] = f32::NAN;
    }
    let path = dir.path().join("nan.onnx");
    write_model(&proto, &path);
    let model = OnnxModel::load(&path).expect("the model still loads");
    let scheme = quantbench_core::quant::recipe::Recipe::new("mlp").defaults.weight;
    let layers: Vec<String> =
        weight_errors(&model, &scheme).expect("weight errors").into_iter().map(|w| w.layer).collect();
    assert_eq!(layers, ["fc1", "fc3"]);
}
