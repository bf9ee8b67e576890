//! Placement targets against ONNX Runtime itself: for one small model per handler of ORT's QDQ
//! registry (`tests/oracle/placement_cases.py`) and for every sample model, the default `ort`
//! target quantizes the tensors `quantize_static` quantizes, with the same scale and zero point,
//! and ORT's optimiser then forms the same integer kernels; the `tensorrt` target quantizes the
//! inputs of the layers and the residual inputs of residual Adds. Every export runs in ORT as the simulation predicts.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use quantbench_core::model::graph::constants;
use quantbench_core::model::{OnnxModel, node_name};
use quantbench_tests::sim_tensors::sim_tensors;
use quantbench_tests::{SAMPLE_MODELS, run_cli, run_oracle, sample, texts};

/// The placements checked: (tag, `quantize` flags).
const TARGETS: [(&str, &[&str]); 3] =
    [("ort", &["--target", "ort"]), ("tensorrt", &["--target", "tensorrt"]), ("npu", &["--target", "npu"])];

/// The `npu` target with power-of-two scales (checked on the handler cases).
const NPU_POW2: (&str, &[&str]) = ("npu_pow2", &["--target", "npu", "--pow2-scales"]);

/// Runs `quantize` on `dir/model.onnx` (data `calib`, `eval`) into `dir/<tag>.onnx`; the report.
fn quantize(model: &Path, calib: &Path, eval: &Path, out: &Path, flags: &[&str]) -> Value {
    let report = out.with_extension("json");
    let recipe = out.with_extension("recipe.json");
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "quantize".as_ref(),
        model.as_os_str(),
        "--calib".as_ref(),
        calib.as_os_str(),
        "--eval".as_ref(),
        eval.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--report".as_ref(),
        report.as_os_str(),
        "--save-recipe".as_ref(),
        recipe.as_os_str(),
    ];
    args.extend(flags.iter().map(std::ffi::OsStr::new));
    let o = run_cli(&args);
    assert!(o.status.success(), "{}: {}", model.display(), texts(&o).1);
    serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("report JSON")
}

/// The integer kernels in ORT's optimised graph (`QLinear*`, `QGemm`, …), by op type.
fn integer_ops(ops: &Value) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = ops
        .as_object()
        .expect("ops")
        .iter()
        .filter(|(k, _)| k.starts_with('Q') && *k != "QuantizeLinear")
        .map(|(k, n)| (k.clone(), n.as_u64().unwrap_or(0)))
        .collect();
    v.sort();
    v
}

/// Agreement of the simulation's top-1 with ORT's on the export, and the two output SQNRs.
fn sim_vs_ort(model: &Path, eval: &Path, export: &Path, report: &Value) -> (f64, f64, f64) {
    let ort: Value = serde_json::from_str(&run_oracle("ort_compare.py", &[model, export, eval])).expect("json");
    let (a, b) =
        (report["predictions"]["quant"].as_array().expect("sim"), ort["quant_predictions"].as_array().expect("ort"));
    assert_eq!(a.len(), b.len());
    let agree = a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64;
    (agree, report["metrics"]["output_sqnr_db"].as_f64().expect("sqnr"), ort["output_sqnr_db"].as_f64().expect("sqnr"))
}

/// Op types and nodes kept float, on both sides (`--float-op`/`--float-node`; ORT's
/// `op_types_to_quantize` without them and `nodes_to_exclude`).
#[derive(Default, Clone, Copy)]
struct Excluded<'a> {
    ops: &'a [&'a str],
    nodes: &'a [&'a str],
}

/// One model through both targets and ORT's own quantizer; failures are collected.
fn check(
    name: &str,
    model: &Path,
    [calib, eval]: [&Path; 2],
    dir: &Path,
    (min_coverage, excluded, targets): (f64, Excluded<'_>, &[(&str, &[&str])]),
    failures: &mut Vec<String>,
) {
    let ort_q = dir.join(format!("{name}_quantize_static.onnx"));
    let (ops, nodes) = (excluded.ops.join(","), excluded.nodes.join(","));
    run_oracle(
        "ort_quantize.py",
        &[
            model.as_os_str(),
            calib.as_os_str(),
            ort_q.as_os_str(),
            "per_channel".as_ref(),
            ops.as_ref(),
            nodes.as_ref(),
        ],
    );
    let mut flags: Vec<&str> = Vec::new();
    for op in excluded.ops {
        flags.extend(["--float-op", op]);
    }
    for node in excluded.nodes {
        flags.extend(["--float-node", node]);
    }
    for &(target, target_flags) in targets {
        let ours = dir.join(format!("{name}_{target}.onnx"));
        let mut args = target_flags.to_vec();
        args.extend(&flags);
        let report = quantize(model, calib, eval, &ours, &args);
        let cmp: Value = serde_json::from_str(&run_oracle("qdq_compare.py", &[&ort_q, &ours])).expect("json");
        let count = |k: &str| cmp[k].as_u64().expect("count");
        let (agree, sim, got) = sim_vs_ort(model, eval, &ours, &report);
        eprintln!(
            "{name} {target}: ORT quantizes {} tensors, ours {}, {} identical; integer ops ORT {:?} ours {:?}; sim/ORT \
             agreement {:.2} %, SQNR {sim:.2} / {got:.2} dB",
            count("reference"),
            count("ours"),
            count("same_qparams"),
            integer_ops(&cmp["ops"]["reference"]),
            integer_ops(&cmp["ops"]["ours"]),
            100.0 * agree
        );
        // Exact: every quantized tensor's integer codes on the first sample, through ORT's fused
        // kernels, are the simulation's.
        let tensors = ours.with_extension("tensors.npz");
        sim_tensors(model, &ours.with_extension("recipe.json"), eval, &ours.with_extension("sim.onnx"), &tensors)
            .expect("simulated tensors");
        let codes: Value = serde_json::from_str(&run_oracle("qdq_codes.py", &[&ours, &tensors, eval])).expect("json");
        if !codes["mismatched"].as_array().expect("mismatched").is_empty() {
            failures.push(format!("{name} {target}: integer codes differ from ORT's: {}", codes["mismatched"]));
        }
        eprintln!(
            "{name} {target}: {} quantized tensors' codes compared, mismatched {}",
            codes["compared"], codes["mismatched"]
        );
        if agree < 0.995 || (sim - got).abs() > 0.1 {
            failures.push(format!(
                "{name} {target}: sim/ORT agreement {:.2} %, SQNR {sim:.2} vs {got:.2} dB",
                100.0 * agree
            ));
        }
        if target == "ort" {
            let coverage = count("same_qparams") as f64 / count("reference").max(1) as f64;
            if coverage < min_coverage || !cmp["extra"].as_array().expect("extra").is_empty() {
                failures.push(format!(
                    "{name}: {} of ORT's {} tensors quantized alike (missing {}, differing {}, extra {})",
                    count("same_qparams"),
                    count("reference"),
                    cmp["missing"],
                    cmp["differ"],
                    cmp["extra"]
                ));
            }
            if integer_ops(&cmp["ops"]["reference"]) != integer_ops(&cmp["ops"]["ours"]) {
                failures.push(format!(
                    "{name}: ORT forms {:?} from its own export, {:?} from ours",
                    integer_ops(&cmp["ops"]["reference"]),
                    integer_ops(&cmp["ops"]["ours"])
                ));
            }
        } else if target.starts_with("npu") {
            // Everything ORT quantizes, and more.
            if !cmp["missing"].as_array().expect("missing").is_empty() {
                failures.push(format!("{name} {target}: leaves float what ORT quantizes: {}", cmp["missing"]));
            }
            if target_flags.contains(&"--pow2-scales") {
                let odd = scales_not_powers_of_two(&ours);
                if !odd.is_empty() {
                    failures.push(format!("{name} {target}: scales that are not powers of two: {odd:?}"));
                }
            }
        } else {
            // TensorRT's placement: the layers' activation inputs and the residual inputs of the
            // residual Adds that are not kept float, nothing else.
            tensorrt_placement(name, model, &ours, excluded, failures);
        }
    }
}

/// The graph of an exported ONNX file.
fn export_graph(export: &Path) -> quantbench_core::model::onnx::GraphProto {
    use prost::Message as _;
    let bytes = std::fs::read(export).expect("export");
    quantbench_core::model::onnx::ModelProto::decode(bytes.as_slice()).expect("ONNX").graph.expect("graph")
}

/// The activations a QDQ export quantizes (the data inputs of its QuantizeLinear nodes).
fn quantize_linear_inputs(export: &Path) -> BTreeSet<String> {
    let graph = export_graph(export);
    let consts = constants(&graph);
    graph
        .node
        .iter()
        .filter(|n| n.op_type == "QuantizeLinear")
        .filter_map(|n| n.input.first())
        .filter(|t| !consts.contains_key(t.as_str()))
        .cloned()
        .collect()
}

/// The scales of every QuantizeLinear/DequantizeLinear of an export that are not powers of two
/// (weights, activations and int32 biases), as (node, scale).
fn scales_not_powers_of_two(export: &Path) -> Vec<(String, f32)> {
    let graph = export_graph(export);
    let scales = constants(&graph);
    let mut odd = Vec::new();
    for n in graph.node.iter().filter(|n| n.op_type == "QuantizeLinear" || n.op_type == "DequantizeLinear") {
        let t = n.input.get(1).and_then(|s| scales.get(s.as_str())).expect("scale initializer");
        let values: Vec<f32> = if t.float_data.is_empty() {
            t.raw_data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
        } else {
            t.float_data.clone()
        };
        assert!(!values.is_empty(), "{}: empty scale", n.name);
        odd.extend(values.into_iter().filter(|v| v.log2().fract() != 0.0).map(|v| (n.name.clone(), v)));
    }
    odd
}

/// The `tensorrt` export quantizes exactly the layers' activation inputs plus the residual
/// inputs of the residual Adds (`OnnxModel::residual_add_inputs`) that are not kept float.
fn tensorrt_placement(name: &str, model: &Path, export: &Path, excluded: Excluded<'_>, failures: &mut Vec<String>) {
    let float = OnnxModel::load(model).expect("model");
    let graph = float.graph();
    let quantized = quantize_linear_inputs(export);
    let layer_inputs: BTreeSet<&str> = float.summary.layers.iter().map(|l| l.input.as_str()).collect();
    let residual = float.residual_add_inputs();
    let kept = |n: &quantbench_core::model::onnx::NodeProto| {
        excluded.ops.contains(&n.op_type.as_str()) || excluded.nodes.contains(&node_name(n).as_str())
    };
    let wanted: Vec<&String> = residual
        .iter()
        .filter(|(add, _)| graph.node.iter().any(|n| node_name(n) == *add && !kept(n)))
        .map(|(_, t)| t)
        .collect();
    let unexpected: Vec<&String> =
        quantized.iter().filter(|t| !layer_inputs.contains(t.as_str()) && !wanted.contains(t)).collect();
    let missing: Vec<&&String> = wanted.iter().filter(|t| !quantized.contains(t.as_str())).collect();
    eprintln!("{name} tensorrt: quantized {quantized:?}, residual inputs {wanted:?}");
    if !unexpected.is_empty() || !missing.is_empty() {
        failures
            .push(format!("{name} tensorrt: quantizes {unexpected:?} beyond its placement, leaves {missing:?} float"));
    }
}

#[test]
fn ort_target_quantizes_what_quantize_static_does_for_every_handler() {
    let dir = tempfile::tempdir().expect("tempdir");
    let names: Vec<String> = serde_json::from_str(&run_oracle("placement_cases.py", &[dir.path()])).expect("json");
    assert!(names.len() >= 8, "{names:?}");
    let mut failures = Vec::new();
    for name in &names {
        let d = dir.path().join(name);
        check(
            name,
            &d.join("model.onnx"),
            [&d.join("calib.npz"), &d.join("eval.npz")],
            dir.path(),
            (1.0, Excluded::default(), &[TARGETS[0], TARGETS[1], TARGETS[2], NPU_POW2]),
            &mut failures,
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn ort_target_on_the_samples() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut failures = Vec::new();
    for name in SAMPLE_MODELS {
        check(
            name,
            &sample(name, "model.onnx"),
            [&sample(name, "calib.npz"), &sample(name, "eval.npz")],
            dir.path(),
            (0.95, Excluded::default(), &TARGETS),
            &mut failures,
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Per-op control: op types and nodes kept float (`--float-op`, `--float-node`) leave the same
/// tensors unquantized as ORT's `op_types_to_quantize` / `nodes_to_exclude`; bad names are refused.
#[test]
fn excluded_ops_and_nodes_match_quantize_static() {
    let dir = tempfile::tempdir().expect("tempdir");
    run_oracle("placement_cases.py", &[dir.path()]);
    let mut failures = Vec::new();
    for (case, tag, excluded) in [
        ("residual_add", "no_add", Excluded { ops: &["Add"], nodes: &[] }),
        ("attention", "no_softmax_no_residual", Excluded { ops: &["Softmax"], nodes: &["residual", "k"] }),
    ] {
        let d = dir.path().join(case);
        let name = format!("{case}_{tag}");
        check(
            &name,
            &d.join("model.onnx"),
            [&d.join("calib.npz"), &d.join("eval.npz")],
            dir.path(),
            (1.0, excluded, &TARGETS),
            &mut failures,
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let d = dir.path().join("attention");
    for (flag, value, expect) in [
        ("--float-op", "softmax", "the model has no softmax node"),
        ("--float-node", "nope", "the model has no node named 'nope'"),
    ] {
        let out = run_cli(&[
            "quantize".as_ref(),
            d.join("model.onnx").as_os_str(),
            "--calib".as_ref(),
            d.join("calib.npz").as_os_str(),
            "--out".as_ref(),
            dir.path().join("never.onnx").as_os_str(),
            flag.as_ref(),
            value.as_ref(),
        ]);
        let (_, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(1), "{flag} {value}: {stderr}");
        assert!(stderr.contains(expect), "{flag} {value}: {stderr}");
        assert!(!dir.path().join("never.onnx").exists());
    }
}
