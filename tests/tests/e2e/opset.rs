//! Opset conversion (core/src/model/opset.rs), judged by ONNX Runtime: one small float model per
//! operator whose signature or meaning changed between opset 10 and 21, written in its old opset
//! by `tests/oracle/opset_cases.py`, converted to 12, 13 and 21, checked by `onnx.checker` and strict shape
//! inference, and run in ONNX Runtime beside the original on the same inputs: the outputs must be
//! equal. A plain opset bump (no conversion) fails this test for every case: the checker refuses
//! the old attributes, and the Softmax family computes along a different axis.

use prost::Message as _;
use quantbench_core::model::onnx as pb;
use quantbench_core::model::opset;
use quantbench_tests::run_oracle;

fn convert(dir: &std::path::Path, case: &str, to: i64) -> std::path::PathBuf {
    let bytes = std::fs::read(dir.join(format!("{case}.onnx"))).expect("read case");
    let mut m = pb::ModelProto::decode(bytes.as_slice()).expect("decode case");
    opset::upgrade(&mut m, to, std::path::Path::new("")).unwrap_or_else(|e| panic!("{case}: {e}"));
    let out = dir.join(format!("{case}.opset{to}.onnx"));
    std::fs::write(&out, m.encode_to_vec()).expect("write converted");
    out
}

/// The opset a case is written in.
fn v_opset(dir: &std::path::Path, case: &str) -> i64 {
    let bytes = std::fs::read(dir.join(format!("{case}.onnx"))).expect("read case");
    pb::ModelProto::decode(bytes.as_slice()).expect("decode case").opset_import[0].version
}

#[test]
fn opset_conversion_keeps_every_changed_operator_s_outputs_in_onnx_runtime() {
    let dir = tempfile::tempdir().expect("tempdir");
    let listed = run_oracle("opset_cases.py", &["make".as_ref(), dir.path().as_os_str()]);
    let cases: Vec<String> = serde_json::from_str(&listed).expect("case list");
    assert!(cases.len() >= 27, "{} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        for to in [12, 13, 21] {
            let converted = convert(dir.path(), case, to);
            // Converting to 12 exercises the 10→11 and 11→12 steps alone (a 12 case is unchanged).
            let orig = dir.path().join(format!("{case}.onnx"));
            let out = run_oracle("opset_cases.py", &["compare".as_ref(), orig.as_os_str(), converted.as_os_str()]);
            let v: serde_json::Value = serde_json::from_str(&out).expect("compare json");
            let diff = v["max_abs_diff"].as_f64();
            let expected = to.max(v_opset(dir.path(), case));
            if v["opset"] != expected || diff.is_none_or(|d| d > 1e-6) {
                failures.push(format!("{case} → {to}: {out}"));
            }
        }
    }
    assert!(failures.is_empty(), "conversions that change outputs:\n{}", failures.join("\n"));
}
