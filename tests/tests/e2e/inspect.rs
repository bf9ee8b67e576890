//! `quantbench inspect` on every sample model: golden JSON, and the human summary.

use quantbench_tests::{SAMPLE_MODELS, repo_root, run_cli, sample, texts};

/// Compares `actual` with the golden file, or rewrites it when `QB_BLESS=1`.
fn check_golden(name: &str, actual: &str) {
    let path = repo_root().join("tests/golden/inspect").join(format!("{name}.json"));
    if std::env::var_os("QB_BLESS").is_some() {
        std::fs::write(&path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with QB_BLESS=1 to create it)", path.display()));
    assert_eq!(actual, expected, "inspect --json of {name} differs from {}", path.display());
}

#[test]
fn inspect_json_matches_golden_for_every_sample() {
    for name in SAMPLE_MODELS {
        let out = run_cli(&["inspect".as_ref(), sample(name, "model.onnx").as_os_str(), "--json".as_ref()]);
        let (stdout, stderr) = texts(&out);
        assert!(out.status.success(), "{name}: {stderr}");
        let json: serde_json::Value = serde_json::from_str(&stdout).expect("valid JSON");
        assert_eq!(json["name"], name);
        assert!(!json["layers"].as_array().expect("layers").is_empty(), "{name} has quantizable layers");
        check_golden(name, &stdout);
    }
}

#[test]
fn inspect_text_lists_inputs_and_layers() {
    let out = run_cli(&["inspect".as_ref(), sample("mobilenet", "model.onnx").as_os_str()]);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("input float32 [batch, 1, 16, 16]"), "{stdout}");
    assert!(stdout.contains("quantizable layers"), "{stdout}");
    assert!(stdout.contains("Conv"), "{stdout}");
}

#[test]
fn inspect_reports_weight_axes_per_op() {
    let out = run_cli(&["inspect".as_ref(), sample("transformer", "model.onnx").as_os_str(), "--json".as_ref()]);
    let json: serde_json::Value = serde_json::from_str(&texts(&out).0).expect("valid JSON");
    for layer in json["layers"].as_array().expect("layers") {
        let rank = layer["weight_shape"].as_array().expect("shape").len();
        if layer["op_type"] == "MatMul" {
            assert_eq!(layer["out_channel_axis"], rank - 1, "{layer}");
        }
    }
    let out = run_cli(&["inspect".as_ref(), sample("mobilenet", "model.onnx").as_os_str(), "--json".as_ref()]);
    let json: serde_json::Value = serde_json::from_str(&texts(&out).0).expect("valid JSON");
    let layers = json["layers"].as_array().expect("layers");
    assert!(layers.iter().any(|l| l["group"].as_u64() > Some(1)), "depthwise convs are recognised");
    for layer in layers.iter().filter(|l| l["op_type"] == "Conv") {
        assert_eq!(layer["out_channel_axis"], 0);
    }
}
