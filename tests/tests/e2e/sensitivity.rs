//! Sensitivity: the ranking from disable-one (all but one layer quantized) agrees with the truth
//! measured independently by enable-one (only that layer quantized), and `analyze --sensitivity`
//! writes the report section.

use quantbench_tests::{SAMPLE_MODELS, run_cli, sample, texts};
use serde_json::Value;

/// The report, and stderr (the progress lines).
fn analyze(name: &str, dir: &std::path::Path) -> (Value, String) {
    let report = dir.join(format!("{name}.json"));
    let o = run_cli(&[
        "analyze".as_ref(),
        sample(name, "model.onnx").as_os_str(),
        "--calib".as_ref(),
        sample(name, "calib.npz").as_os_str(),
        "--eval".as_ref(),
        sample(name, "eval.npz").as_os_str(),
        "--report".as_ref(),
        report.as_os_str(),
        "--w-bits".as_ref(),
        "4".as_ref(),
        "--no-local".as_ref(),
        "--sensitivity".as_ref(),
        "--metric".as_ref(),
        "sqnr".as_ref(),
        "--bits".as_ref(),
        "2,8".as_ref(),
    ]);
    let stderr = texts(&o).1;
    assert!(o.status.success(), "{name}: {stderr}");
    (serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("json"), stderr)
}

#[test]
fn ranking_is_consistent_with_quantizing_single_layers() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in SAMPLE_MODELS {
        let (r, stderr) = analyze(name, dir.path());
        assert_eq!(r["sensitivity_metric"], "output_sqnr");
        let rows = r["sensitivity"].as_array().expect("sensitivity");
        assert_eq!(rows.len(), r["layers"].as_array().expect("layers").len(), "{name}");
        // Progress: a line per layer on stderr, in network order, counting up to all of them.
        let progress: Vec<&str> = stderr.lines().filter(|l| l.starts_with("sensitivity: ")).collect();
        assert_eq!(progress.len(), rows.len(), "{name}: {stderr}");
        for (k, (line, row)) in progress.iter().zip(rows).enumerate() {
            let expected = format!("sensitivity: {}/{} {} (", k + 1, rows.len(), row["name"].as_str().expect("name"));
            assert!(line.starts_with(&expected) && line.ends_with(" s)"), "{name}: {line}");
        }
        let f = |row: &Value, k: &str| row[k].as_f64().expect(k);
        for row in rows {
            let sweep = row["sweep"].as_array().expect("sweep");
            let (b2, b8) = (&sweep[0], &sweep[1]);
            assert!(f(b2, "weights") < f(b8, "weights"), "{name}/{}: 2-bit weights hurt more than 8-bit", row["name"]);
            assert!(f(b2, "activations") < f(b8, "activations"), "{name}/{}", row["name"]);
        }
        // Rank by disable-one: the layer whose exclusion recovers the most is the most sensitive.
        let top = rows.iter().max_by(|a, b| f(a, "disable_one").total_cmp(&f(b, "disable_one"))).expect("top");
        let bottom = rows.iter().min_by(|a, b| f(a, "disable_one").total_cmp(&f(b, "disable_one"))).expect("bottom");
        assert!(
            f(top, "enable_one") < f(bottom, "enable_one"),
            "{name}: top-ranked {} alone ({:.2} dB) should hurt more than bottom-ranked {} alone ({:.2} dB)",
            top["name"],
            f(top, "enable_one"),
            bottom["name"],
            f(bottom, "enable_one")
        );
    }
}
