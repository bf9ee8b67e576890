//! Sensitivity: the ranking from disable-one (all but one layer quantized) agrees with the truth
//! measured independently by enable-one (only that layer quantized), and `analyze --sensitivity`
//! writes the report section.

use quantbench_core::analysis::{LayerSensitivity, SENSITIVITY_SUBSET};
use quantbench_tests::{SAMPLE_MODELS, analyze_sample, sample, texts};
use serde_json::Value;

/// The report, and stderr (the progress lines).
fn analyze(name: &str, dir: &std::path::Path) -> (Value, String) {
    let report = dir.join(format!("{name}.json"));
    let flags = ["--w-bits", "4", "--no-local", "--sensitivity", "--metric", "sqnr", "--bits", "2,8"];
    let o = analyze_sample(name, &report, &flags);
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
        // Progress: a line per layer on stderr, in network order, counting up to all of them
        // (estimates on the subset), then one per refined leader, then the total time.
        let progress: Vec<&str> = stderr.lines().filter(|l| l.starts_with("sensitivity: ")).collect();
        assert!(progress.len() > rows.len() + 1, "{name}: {stderr}");
        for (k, (line, row)) in progress.iter().zip(rows).enumerate() {
            let expected = format!("sensitivity: {}/{} {} (", k + 1, rows.len(), row["name"].as_str().expect("name"));
            let subset = format!(" s, {SENSITIVITY_SUBSET} samples)");
            assert!(line.starts_with(&expected) && line.ends_with(&subset), "{name}: {line}");
        }
        // The count of planned measurements grows when a refined leader falls below an estimate.
        let refined = &progress[rows.len()..progress.len() - 1];
        for (k, line) in refined.iter().enumerate() {
            let counts = line.trim_start_matches("sensitivity: ").split(' ').next().expect("K/T");
            let (done, total) = counts.split_once('/').expect("K/T");
            let (done, total): (usize, usize) = (done.parse().expect("K"), total.parse().expect("T"));
            assert_eq!(done, rows.len() + k + 1, "{name}: {line}");
            assert!(total >= done && (k + 1 < refined.len() || total == done), "{name}: {line}");
            assert!(line.contains("refined: enable-one on"), "{name}: {line}");
        }
        let last = progress.last().expect("lines");
        assert!(last.starts_with("sensitivity: done in ") && last.ends_with(" s"), "{name}: {last}");
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

/// The two-pass analysis (estimates on a subset, the leaders refined on the whole set) ranks the
/// top five layers as the exhaustive one does, by enable-one and by disable-one, on every sample
/// model, with the defaults and with a small subset and few leaders; and every refined value is
/// the exhaustive one, bit for bit.
#[test]
fn two_pass_rankings_agree_with_the_exhaustive_analysis() {
    use quantbench_core::analysis::{SensitivityMetric, SensitivityOptions, sensitivity};
    use quantbench_core::calibrate::{CalibrationConfig, calibrate};
    use quantbench_core::data::{DataSet, DataSource};
    use quantbench_core::plan::{Measured, PlanFilter, QuantPlan};
    use quantbench_core::simulate::{EvalConfig, SimState, Simulator};
    let never = std::sync::atomic::AtomicBool::new(false);
    let mut estimated = 0;
    for name in SAMPLE_MODELS {
        let model = quantbench_core::model::OnnxModel::load(&sample(name, "model.onnx")).expect("model");
        let calib = DataSet::open(DataSource::Npz(sample(name, "calib.npz")), &model.summary.inputs).expect("calib");
        let set = DataSet::open(DataSource::Npz(sample(name, "eval.npz")), &model.summary.inputs).expect("eval");
        let mut recipe = quantbench_core::quant::recipe::Recipe::new(&model.summary.name);
        recipe.defaults.weight.bits = 4;
        let config = CalibrationConfig::default();
        let measured =
            Measured::calibrated(calibrate(&model, &calib, &config, &mut |_, _| {}, &never).expect("calibrate"));
        let sim = Simulator::new(&model, &set, &EvalConfig::default(), &never).expect("float reference");
        let run_from = |options: &SensitivityOptions, state: Option<&SimState>| {
            sensitivity(&sim, &model, &recipe, &measured, options, state, &mut |_| {}, &never).expect("sensitivity")
        };
        let run = |options: &SensitivityOptions| run_from(options, None);
        let metric = SensitivityMetric::OutputSqnr;
        let exact = run(&SensitivityOptions::exhaustive(metric, &[]));
        let n = sim.num_samples();
        assert!(exact.iter().all(|e| e.samples == n && e.enable_one_samples == n), "{name}: exhaustive on all");
        // Enable-one starts from the float reference's own values: it is what a plain evaluation
        // of the one-layer plan measures (to float rounding: the reference ran another graph).
        for e in &exact {
            let only = PlanFilter { only: Some([e.name.clone()].into()), ..PlanFilter::default() };
            let plan = QuantPlan::build(&model, &recipe, &measured, &only).expect("plan");
            let full = sim.evaluate(&plan, &EvalConfig::default(), &mut |_| {}, &never).expect("evaluate");
            let direct = full.metrics.output_sqnr_db;
            assert!((direct - e.enable_one).abs() < 1e-3, "{name}/{}: {direct} vs {}", e.name, e.enable_one);
        }
        let stressed = SensitivityOptions { subset: 24, refine: 6, ..SensitivityOptions::new(metric, &[]) };
        // The state of an evaluation of the whole recipe (as `analyze` passes its report's) is
        // used as the base of disable-one, with the same results.
        let full = QuantPlan::build(&model, &recipe, &measured, &PlanFilter::default()).expect("plan");
        let (_, state) = sim.evaluate_from(None, &full, &EvalConfig::default(), &mut |_| {}, &never).expect("run");
        let defaults = SensitivityOptions::new(metric, &[]);
        assert_eq!(run_from(&defaults, Some(&state)), run(&defaults), "{name}: from the report's state");
        for (options, subset) in [(defaults, SENSITIVITY_SUBSET), (stressed, 24)] {
            let fast = run(&options);
            let what = format!("{name}, {subset} samples, {} refined", options.refine);
            for (key, lowest) in [(enable_one as fn(&LayerSensitivity) -> f64, true), (disable_one, false)] {
                assert_eq!(top5(&fast, key, lowest), top5(&exact, key, lowest), "{what}: top 5 (lowest: {lowest})");
            }
            for (f, e) in fast.iter().zip(&exact) {
                assert_eq!(f.samples, subset, "{what}/{}", f.name);
                if f.enable_one_samples == n {
                    assert_eq!(f.enable_one.to_bits(), e.enable_one.to_bits(), "{what}/{}: refined", f.name);
                }
                if f.disable_one_samples == n {
                    assert_eq!(f.disable_one.to_bits(), e.disable_one.to_bits(), "{what}/{}: refined", f.name);
                }
                estimated += usize::from(f.enable_one_samples < n) + usize::from(f.disable_one_samples < n);
            }
        }
    }
    assert!(estimated > 0, "some values stay estimates");
}

fn enable_one(l: &LayerSensitivity) -> f64 {
    l.enable_one
}

fn disable_one(l: &LayerSensitivity) -> f64 {
    l.disable_one
}

/// The five most sensitive layers by `key` (most sensitive: the lowest value, or the highest).
fn top5(rows: &[LayerSensitivity], key: fn(&LayerSensitivity) -> f64, lowest: bool) -> Vec<String> {
    let mut order: Vec<&LayerSensitivity> = rows.iter().collect();
    order.sort_by(|a, b| if lowest { key(a).total_cmp(&key(b)) } else { key(b).total_cmp(&key(a)) });
    order.iter().take(5).map(|l| l.name.clone()).collect()
}
