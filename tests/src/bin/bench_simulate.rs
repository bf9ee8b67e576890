//! Benchmark: simulated evaluation throughput against plain optimised tract inference of the float
//! model, and incremental re-evaluation after a one-layer change against a full re-evaluation and
//! against one plain float pass over the evaluation set. Ratios are measured in the same run.
//!
//! Run: `cargo run -p quantbench-tests --bin bench_simulate` (every sample model), or
//! `cargo run -p quantbench-tests --bin bench_simulate -- MODEL CALIB EVAL [--every K]` (any model
//! and data: `.npz`/`.npy` files or image folders; `--every K` times a change of every K-th layer
//! only, for large models). `QB_BENCH_DETAIL=1` breaks the first layer's change into its steps.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use quantbench_core::calibrate::{CalibrationConfig, calibrate};
use quantbench_core::data::{DataSet, DataSource};
use quantbench_core::model::OnnxModel;
use quantbench_core::model::runtime::Runner;
use quantbench_core::observe::Observer;
use quantbench_core::plan::{Measured, PlanFilter, QuantPlan};
use quantbench_core::quant::recipe::Recipe;
use quantbench_core::simulate::graph::simulated_proto;
use quantbench_core::simulate::{ESTIMATE_SAMPLES, EvalConfig, SimState, Simulator};
use quantbench_tests::{SAMPLE_MODELS, sample};

/// Best of `reps` timings of `f`, in milliseconds.
fn best_ms(reps: usize, mut f: impl FnMut()) -> f64 {
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .fold(f64::INFINITY, f64::min)
}

/// One model to measure.
struct Case {
    name: String,
    model: PathBuf,
    calib: PathBuf,
    eval: PathBuf,
    /// Time a change of every `every`-th layer.
    every: usize,
    /// Repetitions per timing (best of).
    reps: usize,
}

/// The worst figures over all models.
#[derive(Default)]
struct Worst {
    throughput: f64,
    incremental_ms: f64,
    incremental_vs_float_pass: f64,
    /// The first (subset) result of a progressive evaluation after a one-layer change.
    first_ms: f64,
}

fn open(path: &std::path::Path, model: &OnnxModel) -> DataSet {
    DataSource::from_path(path)
        .and_then(|source| DataSet::open(source, &model.summary.inputs))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Times of re-evaluating after setting one layer's weights to 4 bits, for every `every`-th layer
/// (plan rebuild included, as the app pays it), in milliseconds.
fn incremental_times(
    model: &OnnxModel,
    sim: &Simulator,
    measured: &Measured,
    recipe: &Recipe,
    state: &SimState,
    case: &Case,
) -> Vec<f64> {
    let never = AtomicBool::new(false);
    let cfg = EvalConfig::default();
    model
        .summary
        .layers
        .iter()
        .step_by(case.every.max(1))
        .map(|layer| {
            let mut changed = recipe.clone();
            let mut c = changed.defaults;
            c.weight.bits = 4;
            changed.layers.insert(layer.name.clone(), c);
            best_ms(case.reps, || {
                let plan2 = QuantPlan::build(model, &changed, measured, &PlanFilter::default()).expect("plan");
                let (_, s) = sim.evaluate_from(Some(state), &plan2, &cfg, &mut |_| {}, &never).expect("incremental");
                if std::env::var_os("QB_BENCH_DETAIL").is_some() {
                    eprintln!("{}: {} of {} nodes re-run", layer.name, s.nodes_rerun, s.nodes_total);
                }
            })
        })
        .collect()
}

/// Prints where the first layer's change spends its time.
fn detail(
    model: &OnnxModel,
    sim: &Simulator,
    measured: &Measured,
    recipe: &Recipe,
    state: &SimState,
    shapes: &[Vec<usize>],
) {
    let never = AtomicBool::new(false);
    let no_local = EvalConfig { skip_local: true, ..EvalConfig::default() };
    let first = &model.summary.layers[0].name;
    let mut changed = recipe.clone();
    let mut c = changed.defaults;
    c.weight.bits = 4;
    changed.layers.insert(first.clone(), c);
    let plan2 = QuantPlan::build(model, &changed, measured, &PlanFilter::default()).expect("plan");
    let t_plan = best_ms(3, || {
        QuantPlan::build(model, &changed, measured, &PlanFilter::default()).expect("plan");
    });
    let t_proto = best_ms(3, || {
        simulated_proto(model, &plan2).expect("proto");
    });
    let t_noloc = best_ms(3, || {
        sim.evaluate_from(Some(state), &plan2, &no_local, &mut |_| {}, &never).expect("inc");
    });
    let qp = simulated_proto(model, &plan2).expect("proto");
    let qm = OnnxModel::from_bytes(&prost::Message::encode_to_vec(&qp), &model.path).expect("m");
    let t_runner = best_ms(3, || {
        Runner::new(&qm, shapes, &[]).expect("r");
    });
    eprintln!(
        "{}: first layer change: plan {t_plan:.1} ms, proto {t_proto:.1} ms, whole-model runner build {t_runner:.1} ms, incremental without local errors {t_noloc:.1} ms",
        model.summary.name
    );
}

fn mean_max(v: &[f64]) -> (f64, f64) {
    (v.iter().sum::<f64>() / v.len().max(1) as f64, v.iter().copied().fold(0.0, f64::max))
}

// One table row, measured in the order it prints; splitting would only move the steps apart.
#[allow(clippy::too_many_lines)]
fn bench(case: &Case, worst: &mut Worst) {
    let never = AtomicBool::new(false);
    let model = OnnxModel::load(&case.model).unwrap_or_else(|e| panic!("{}: {e}", case.model.display()));
    let calib = open(&case.calib, &model);
    let eval = open(&case.eval, &model);
    let recipe = Recipe::new(&model.summary.name);
    let measured = Measured::calibrated(
        calibrate(&model, &calib, &CalibrationConfig::default(), &mut |_, _| {}, &never).expect("calibrate"),
    );
    let cfg = EvalConfig::default();
    let t = Instant::now();
    let sim = Simulator::new(&model, &eval, &cfg, &never).expect("simulator");
    let setup_ms = t.elapsed().as_secs_f64() * 1e3;
    let plan = QuantPlan::build(&model, &recipe, &measured, &PlanFilter::default()).expect("plan");

    // Throughput: the plain float plan vs the fake-quantized plan, same inputs, batch 1.
    let all = eval.read_all().expect("read");
    let shapes: Vec<Vec<usize>> = eval.sample_shapes.iter().map(|s| [&[1][..], s].concat()).collect();
    let samples: Vec<Vec<ndarray::ArrayD<f32>>> = (0..all.len())
        .map(|i| {
            all.inputs
                .iter()
                .map(|a| a.index_axis(ndarray::Axis(0), i).insert_axis(ndarray::Axis(0)).to_owned())
                .collect()
        })
        .collect();
    let float_runner = Runner::new(&model, &shapes, &[]).expect("float runner");
    let qproto = simulated_proto(&model, &plan).expect("sim proto");
    if let Some(path) = std::env::var_os("QB_BENCH_DUMP") {
        std::fs::write(path, prost::Message::encode_to_vec(&qproto)).expect("dump");
    }
    let qmodel = OnnxModel::from_bytes(&prost::Message::encode_to_vec(&qproto), &model.path).expect("sim model");
    let sim_runner = Runner::new(&qmodel, &shapes, &[]).expect("sim runner");
    let run_all = |r: &Runner| {
        for s in &samples {
            r.run(s.clone()).expect("run");
        }
    };
    if std::env::var_os("QB_BENCH_DETAIL").is_some() {
        for (label, runner) in [("float", &float_runner), ("simulated", &sim_runner)] {
            let rows = runner.profile(samples[0].clone()).expect("profile");
            let top: Vec<String> =
                rows.iter().take(16).map(|(op, t, n)| format!("{op} ×{n} {:.2} ms", t * 1e3)).collect();
            eprintln!("{} {label}, one sample, slowest operators: {}", case.name, top.join(", "));
        }
    }
    let n = samples.len() as f64;
    let float_ms = best_ms(case.reps.max(2), || run_all(&float_runner));
    let sim_ms = best_ms(case.reps.max(2), || run_all(&sim_runner));
    let (float_tp, sim_tp) = (n / float_ms * 1e3, n / sim_ms * 1e3);
    worst.throughput = worst.throughput.min(sim_tp / float_tp);

    // Re-evaluation: full (quantized model + all local errors) vs incremental after changing one
    // layer's weight bits.
    let (_, state) = sim.evaluate_from(None, &plan, &cfg, &mut |_| {}, &never).expect("full");
    if std::env::var_os("QB_BENCH_DETAIL").is_some() {
        let no_cache = EvalConfig { cache_budget_mib: 1, skip_local: true, ..EvalConfig::default() };
        let t_no_cache = best_ms(1, || {
            sim.evaluate_from(None, &plan, &no_cache, &mut |_| {}, &never).expect("full");
        });
        let no_local = EvalConfig { skip_local: true, ..EvalConfig::default() };
        let t_cache = best_ms(1, || {
            sim.evaluate_from(None, &plan, &no_local, &mut |_| {}, &never).expect("full");
        });
        eprintln!(
            "{}: activation cache {:.1} MiB; full run without local errors {t_cache:.0} ms, the same without the cache {t_no_cache:.0} ms",
            case.name,
            state.cache_bytes() as f64 / f64::from(1 << 20)
        );
    }
    let full_ms = best_ms(case.reps, || {
        sim.evaluate_from(None, &plan, &cfg, &mut |_| {}, &never).expect("full");
    });
    let inc = incremental_times(&model, &sim, &measured, &recipe, &state, case);
    // The same with the entropy observer on every activation (its range search is the costly one).
    let mut entropy = recipe.clone();
    entropy.defaults.activation.observer = Observer::Entropy { num_bins: 2048, num_quantized_bins: 128 };
    let entropy_plan = QuantPlan::build(&model, &entropy, &measured, &PlanFilter::default()).expect("plan");
    let (_, entropy_state) = sim.evaluate_from(None, &entropy_plan, &cfg, &mut |_| {}, &never).expect("full");
    let inc_entropy = incremental_times(&model, &sim, &measured, &entropy, &entropy_state, case);
    if std::env::var_os("QB_BENCH_DETAIL").is_some() {
        detail(&model, &sim, &measured, &recipe, &state, &shapes);
    }
    // The first result of a progressive evaluation (the worker's estimate): the same changes on
    // the fixed subset, incremental from the subset's own state.
    let subset = sim.estimate_subset(ESTIMATE_SAMPLES, &never).expect("subset");
    let (_, subset_state) = subset.evaluate_from(None, &plan, &cfg, &mut |_| {}, &never).expect("subset");
    let first = incremental_times(&model, &subset, &measured, &recipe, &subset_state, case);
    let (mean_first, max_first) = mean_max(&first);
    if std::env::var_os("QB_BENCH_DETAIL").is_some() {
        eprint!("on the {ESTIMATE_SAMPLES}-sample subset: ");
        detail(&model, &subset, &measured, &recipe, &subset_state, &shapes);
    }
    worst.first_ms = worst.first_ms.max(max_first);
    let (mean, max) = mean_max(&inc);
    let (mean_e, max_e) = mean_max(&inc_entropy);
    let max_both = max.max(max_e);
    worst.incremental_ms = worst.incremental_ms.max(max_both);
    worst.incremental_vs_float_pass = worst.incremental_vs_float_pass.max(max_both / float_ms);
    println!(
        "| {} | {} | {} | {float_tp:.0} | {sim_tp:.0} | {:.2} | {setup_ms:.0} | {full_ms:.1} | {mean_first:.1} / {max_first:.1} | {mean:.1} / {max:.1} | {:.2} | {:.2} | {mean_e:.1} / {max_e:.1} |",
        case.name,
        model.summary.layers.len(),
        samples.len(),
        sim_tp / float_tp,
        mean / full_ms,
        max_both / float_ms,
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cases: Vec<Case> = if args.is_empty() {
        SAMPLE_MODELS
            .iter()
            .map(|name| Case {
                name: (*name).to_string(),
                model: sample(name, "model.onnx"),
                calib: sample(name, "calib.npz"),
                eval: sample(name, "eval.npz"),
                every: 1,
                reps: 3,
            })
            .collect()
    } else {
        let every = args.iter().position(|a| a == "--every").map_or(1, |i| {
            args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("--every takes a number"))
        });
        let paths: Vec<&String> = args
            .iter()
            .enumerate()
            .filter(|(i, a)| !a.starts_with("--") && (*i == 0 || args[i - 1] != "--every"))
            .map(|(_, a)| a)
            .collect();
        let [model, calib, eval] = paths[..] else {
            eprintln!("usage: bench_simulate [MODEL CALIB EVAL [--every K]]");
            std::process::exit(2);
        };
        let model = PathBuf::from(model);
        let name = model.file_stem().map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned());
        vec![Case { name, model, calib: calib.into(), eval: eval.into(), every, reps: 1 }]
    };
    println!(
        "| model | layers | samples | float inference (samples/s) | simulated (samples/s) | ratio | float reference setup (ms) | full re-eval (ms) | first result after a one-layer change, {ESTIMATE_SAMPLES} samples (ms, mean/max) | incremental, one layer, plan included (ms, mean/max) | vs full | worst vs one float pass | same, entropy observer (ms, mean/max) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut worst = Worst { throughput: f64::INFINITY, ..Worst::default() };
    for case in &cases {
        bench(case, &mut worst);
    }
    println!("worst simulated/float throughput ratio: {:.2} (target ≥ 0.5)", worst.throughput);
    println!("worst first (subset) result after a one-layer change: {:.1} ms (target ≤ 200 ms)", worst.first_ms);
    println!(
        "worst incremental re-evaluation: {:.1} ms, {:.2}x one plain float pass over the evaluation set (target ≤ 1.5x)",
        worst.incremental_ms, worst.incremental_vs_float_pass
    );
}
