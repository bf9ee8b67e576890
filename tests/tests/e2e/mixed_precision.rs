//! Mixed precision: at the size of uniform W4, the searched configuration beats uniform W4 on
//! accuracy on at least two sample models, and the exported model, run in ONNX Runtime, meets the
//! requested target.

use std::path::Path;

use quantbench_tests::{SAMPLE_MODELS, quantize_sample as quantize, run_cli, run_oracle, sample, texts};
use serde_json::Value;

fn ort_accuracy(name: &str, quant: &Path) -> f64 {
    let out =
        run_oracle("ort_compare.py", &[sample(name, "model.onnx"), quant.to_path_buf(), sample(name, "eval.npz")]);
    let v: Value = serde_json::from_str(&out).expect("json");
    v["quant_accuracy"].as_f64().expect("accuracy")
}

#[test]
fn mixed_precision_beats_uniform_w4_at_its_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wins = Vec::new();
    let mut table = vec!["| model | uniform W4 | mixed at W4 size | size W4 / mixed (B) | mixed in ORT |".to_string()];
    for name in SAMPLE_MODELS {
        let (_, w4) = quantize(name, dir.path(), "w4", &["--w-bits", "4"]);
        let budget = w4["metrics"]["quant_size_bytes"].as_u64().expect("size");
        let w4_acc = w4["metrics"]["quant_accuracy"].as_f64().expect("acc");
        let (q, mixed) = quantize(name, dir.path(), "mixed", &["--target-size", &budget.to_string()]);
        let size = mixed["metrics"]["quant_size_bytes"].as_u64().expect("size");
        let acc = mixed["metrics"]["quant_accuracy"].as_f64().expect("acc");
        assert!(size <= budget, "{name}: {size} > {budget}");
        let in_ort = ort_accuracy(name, &q);
        assert!((in_ort - acc).abs() < 0.005, "{name}: ORT runs the chosen config at {in_ort} vs simulated {acc}");
        assert!(
            mixed["mixed_precision"]["path"].as_array().is_some_and(|p| p.len() > 1),
            "{name}: search path reported"
        );
        if acc > w4_acc {
            wins.push(name);
        }
        table.push(format!(
            "| {name} | {:.2} % | {:.2} % | {budget} / {size} | {:.2} % |",
            100.0 * w4_acc,
            100.0 * acc,
            100.0 * in_ort
        ));
    }
    eprintln!("{}", table.join("\n"));
    assert!(wins.len() >= 2, "mixed precision beat uniform W4 only on {wins:?}");
}

#[test]
fn accuracy_drop_target_holds_in_onnx_runtime() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["mlp", "mobilenet"] {
        let (q, r) = quantize(name, dir.path(), "drop", &["--target-accuracy-drop", "0.5"]);
        let float = r["metrics"]["float_accuracy"].as_f64().expect("float");
        let in_ort = ort_accuracy(name, &q);
        assert!((float - in_ort) * 100.0 <= 0.5 + 1e-9, "{name}: ORT accuracy {in_ort} vs float {float}");
        let chosen = r["mixed_precision"]["chosen"].as_u64().expect("chosen");
        let bits = &r["mixed_precision"]["path"][chosen as usize]["bits"];
        assert!(bits.as_array().is_some_and(|b| !b.is_empty()), "{name}: {bits}");
    }
    // An impossible target is a clean error.
    let out = dir.path().join("none.onnx");
    let o = run_cli(&[
        "quantize".as_ref(),
        sample("mlp", "model.onnx").as_os_str(),
        "--calib".as_ref(),
        sample("mlp", "calib.npz").as_os_str(),
        "--eval".as_ref(),
        sample("mlp", "eval.npz").as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--target-size".as_ref(),
        "10".as_ref(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(texts(&o).1.contains("no configuration meets the target"), "{}", texts(&o).1);
    assert!(!out.exists());
}
