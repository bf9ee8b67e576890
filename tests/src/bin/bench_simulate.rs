//! Benchmark: simulated evaluation throughput against plain optimised tract inference of the float
//! model, and incremental re-evaluation after a one-layer change against a full re-evaluation,
//! on every sample model's eval set. Ratios are measured in the same run.
//!
//! Run: `cargo run -p quantbench-tests --bin bench_simulate`

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
use quantbench_core::simulate::{EvalConfig, Simulator};
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

// One table, measured row by row in the order it prints; splitting would only move the steps apart.
#[allow(clippy::too_many_lines)]
fn main() {
    let never = AtomicBool::new(false);
    println!(
        "| model | samples | float inference (samples/s) | simulated (samples/s) | ratio | full re-eval (ms) | incremental, one layer, plan included (ms, mean/max) | ratio | same, entropy observer (ms, mean/max) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut worst_throughput: f64 = f64::INFINITY;
    let mut worst_incremental: f64 = 0.0;
    for name in SAMPLE_MODELS {
        let model = OnnxModel::load(&sample(name, "model.onnx")).expect("load");
        let calib = DataSet::open(DataSource::Npz(sample(name, "calib.npz")), &model.summary.inputs).expect("calib");
        let eval = DataSet::open(DataSource::Npz(sample(name, "eval.npz")), &model.summary.inputs).expect("eval");
        let recipe = Recipe::new(&model.summary.name);
        let measured = Measured::calibrated(
            calibrate(&model, &calib, &CalibrationConfig::default(), &mut |_, _| {}, &never).expect("calibrate"),
        );
        let cfg = EvalConfig::default();
        let sim = Simulator::new(&model, &eval, &cfg, &never).expect("simulator");
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
        let qmodel = OnnxModel::from_bytes(&prost::Message::encode_to_vec(&qproto), &model.path).expect("sim model");
        let sim_runner = Runner::new(&qmodel, &shapes, &[]).expect("sim runner");
        let run_all = |r: &Runner| {
            for s in &samples {
                r.run(s.clone()).expect("run");
            }
        };
        let n = samples.len() as f64;
        let float_ms = best_ms(5, || run_all(&float_runner));
        let sim_ms = best_ms(5, || run_all(&sim_runner));
        let (float_tp, sim_tp) = (n / float_ms * 1e3, n / sim_ms * 1e3);
        worst_throughput = worst_throughput.min(sim_tp / float_tp);

        // Re-evaluation: full (quantized model + all local errors) vs incremental after changing
        // one layer's weight bits, for every layer in turn.
        let (_, state) = sim.evaluate_from(None, &plan, &cfg, &mut |_| {}, &never).expect("full");
        let full_ms = best_ms(3, || {
            sim.evaluate_from(None, &plan, &cfg, &mut |_| {}, &never).expect("full");
        });
        // What the app pays after a change: build the plan again (observer ranges included) and
        // re-evaluate from the previous state.
        let incremental = |recipe: &Recipe, state| {
            let mut times = Vec::new();
            for layer in &model.summary.layers {
                let mut changed = recipe.clone();
                let mut c = changed.defaults;
                c.weight.bits = 4;
                changed.layers.insert(layer.name.clone(), c);
                times.push(best_ms(3, || {
                    let plan2 = QuantPlan::build(&model, &changed, &measured, &PlanFilter::default()).expect("plan");
                    sim.evaluate_from(Some(state), &plan2, &cfg, &mut |_| {}, &never).expect("incremental");
                }));
            }
            times
        };
        let inc = incremental(&recipe, &state);
        // The same with the entropy observer on every activation (its range search is the costly one).
        let mut entropy = recipe.clone();
        entropy.defaults.activation.observer = Observer::Entropy { num_bins: 2048, num_quantized_bins: 128 };
        let entropy_plan = QuantPlan::build(&model, &entropy, &measured, &PlanFilter::default()).expect("plan");
        let (_, entropy_state) = sim.evaluate_from(None, &entropy_plan, &cfg, &mut |_| {}, &never).expect("full");
        let inc_entropy = incremental(&entropy, &entropy_state);
        if std::env::var_os("QB_BENCH_DETAIL").is_some() {
            let no_local = EvalConfig { skip_local: true, ..EvalConfig::default() };
            let first = &model.summary.layers[0].name;
            let mut changed = recipe.clone();
            let mut c = changed.defaults;
            c.weight.bits = 4;
            changed.layers.insert(first.clone(), c);
            let plan2 = QuantPlan::build(&model, &changed, &measured, &PlanFilter::default()).expect("plan");
            let t_plan = best_ms(3, || {
                QuantPlan::build(&model, &changed, &measured, &PlanFilter::default()).expect("plan");
            });
            let t_proto = best_ms(3, || {
                simulated_proto(&model, &plan2).expect("proto");
            });
            let t_noloc = best_ms(3, || {
                sim.evaluate_from(Some(&state), &plan2, &no_local, &mut |_| {}, &never).expect("inc");
            });
            let qp = simulated_proto(&model, &plan2).expect("proto");
            let qm = OnnxModel::from_bytes(&prost::Message::encode_to_vec(&qp), &model.path).expect("m");
            let t_runner = best_ms(3, || {
                Runner::new(&qm, &shapes, &[]).expect("r");
            });
            eprintln!(
                "{name}: first layer change: plan {t_plan:.1} ms, proto {t_proto:.1} ms, runner build {t_runner:.1} ms, incremental without local {t_noloc:.1} ms"
            );
        }
        let mean = inc.iter().sum::<f64>() / inc.len() as f64;
        let max = inc.iter().copied().fold(0.0, f64::max);
        let mean_e = inc_entropy.iter().sum::<f64>() / inc_entropy.len() as f64;
        let max_e = inc_entropy.iter().copied().fold(0.0, f64::max);
        worst_incremental = worst_incremental.max(max).max(max_e);
        println!(
            "| {name} | {} | {float_tp:.0} | {sim_tp:.0} | {:.2} | {full_ms:.1} | {mean:.1} / {max:.1} | {:.2} | {mean_e:.1} / {max_e:.1} |",
            samples.len(),
            sim_tp / float_tp,
            mean / full_ms
        );
    }
    println!("worst simulated/float throughput ratio: {worst_throughput:.2} (target ≥ 0.5)");
    println!("worst incremental re-evaluation: {worst_incremental:.1} ms (target ≤ 200 ms)");
}
