//! Models shaped like real-world ONNX exports (old opsets, unfused BatchNormalization, hardswish
//! spelled as HardSigmoid·Mul, Clip bounds and Resize scales in `Constant` nodes, ConvTranspose,
//! symbolic dims, weights in `Constant` nodes, several inputs and outputs, an opset-11 classifier
//! with Split/Squeeze/Softmax, int64 token inputs with an `If` on a constant), made by
//! `tests/oracle/make_realworld.py`: each loads, is summarised with the right quantizable layers,
//! takes its data, runs in tract with the outputs ONNX Runtime gives, and `inspect --json` works;
//! and each goes through the CLI (calibrate → quantize → QDQ export) with the export run in ONNX
//! Runtime agreeing with QuantBench's simulation on every output.

use std::path::Path;

use ndarray::{ArrayD, Axis, Slice};
use quantbench_core::data::{DataSet, DataSource};
use quantbench_core::model::OnnxModel;
use quantbench_core::model::runtime::Runner;
use quantbench_tests::{run_cli, run_oracle, texts};

use super::parity::{check_parity, parity, read_npz};

/// Largest accepted |tract − ORT|, scaled by max(1, max |ORT|) of the output.
const TOLERANCE: f32 = 1e-4;

/// A quantizable layer as the summary must list it: (node name, op type, weight tensor, weight
/// shape, out_channel_axis).
type Layer = (&'static str, &'static str, &'static str, &'static [u64], usize);

/// One model of the script: its name and its expected quantizable layers in file order.
struct Case {
    name: &'static str,
    layers: &'static [Layer],
    /// The JSON shape `inspect` must print for the first input.
    input0_shape: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "bn_hardswish_opset11",
        layers: &[
            ("conv1", "Conv", "conv1.weight", &[8, 3, 3, 3], 0),
            ("conv2", "Conv", "conv2.weight", &[16, 8, 3, 3], 0),
            ("fc", "Gemm", "fc.weight", &[10, 16], 0), // transB = 1: weight [out, in]
        ],
        input0_shape: "[1,3,16,16]",
    },
    Case {
        name: "hardswish_opset14",
        layers: &[
            ("conv1", "Conv", "conv1.weight", &[8, 3, 3, 3], 0),
            ("conv2", "Conv", "conv2.weight", &[8, 8, 3, 3], 0),
        ],
        input0_shape: r#"["N",3,16,16]"#,
    },
    Case {
        name: "clip_resize_convtranspose_opset13",
        layers: &[
            ("conv1", "Conv", "conv1.weight", &[8, 3, 3, 3], 0),
            ("deconv", "ConvTranspose", "deconv.weight", &[8, 4, 3, 3], 1), // weight [Cin, Cout, k, k]
        ],
        input0_shape: "[1,3,8,8]",
    },
    Case {
        name: "dynamic_dims_opset17",
        layers: &[
            ("conv_main", "Conv", "conv_main.weight", &[8, 3, 3, 3], 0),
            ("conv_skip", "Conv", "conv_skip.weight", &[8, 3, 1, 1], 0),
            ("conv_branch", "Conv", "conv_branch.weight", &[8, 3, 3, 3], 0),
            ("conv_head", "Conv", "conv_head.weight", &[4, 8, 3, 3], 0),
        ],
        input0_shape: r#"["batch",3,"height","width"]"#,
    },
    Case {
        name: "constant_weights_opset12",
        // Every weight comes from a `Constant` node, none from an initializer.
        layers: &[
            ("conv1", "Conv", "conv1.weight", &[4, 3, 3, 3], 0),
            ("fc1", "MatMul", "fc1.weight", &[64, 16], 1),
            ("fc2", "Gemm", "fc2.weight", &[16, 5], 1), // transB = 0: weight [in, out]
        ],
        input0_shape: r#"["p2o.DynamicDimension.0",3,8,8]"#,
    },
    Case {
        name: "two_inputs_two_outputs_opset13",
        layers: &[("conv1", "Conv", "conv1.weight", &[4, 1, 3, 3], 0), ("head", "Gemm", "head.weight", &[3, 68], 0)],
        input0_shape: r#"["batch",1,8,8]"#,
    },
    Case {
        // Opset 11 with Split, Squeeze and Softmax: per-channel export converts them to opset 13.
        name: "classifier_opset11",
        layers: &[
            ("conv1", "Conv", "conv1.weight", &[8, 3, 3, 3], 0),
            ("conv2", "Conv", "conv2.weight", &[8, 1, 3, 3], 0),
            ("fc", "Gemm", "fc.weight", &[10, 8], 0),
        ],
        input0_shape: "[1,3,16,16]",
    },
    Case {
        // int64 token ids, an If on a constant (inlined), value_info with mismatched symbols.
        name: "tokens_if_opset13",
        // The embedding is a layer (its table quantized in weight-only recipes).
        layers: &[
            ("embed", "Gather", "embed.weight", &[32, 16], 0),
            ("proj", "MatMul", "proj.weight", &[16, 16], 1),
            ("head", "Gemm", "head.weight", &[4, 16], 0),
        ],
        input0_shape: r#"["batch",8]"#,
    },
];

/// Checks the summary, data, tract outputs and `inspect --json` of one model; returns the worst
/// |tract − ORT| over its outputs, or what failed, naming the stage.
fn check(dir: &Path, case: &Case) -> Result<f32, String> {
    let model_path = dir.join(format!("{}.onnx", case.name));

    // The real binary: `inspect --json`, with symbolic dims kept as strings.
    let out = run_cli(&["inspect".as_ref(), model_path.as_os_str(), "--json".as_ref()]);
    let (stdout, stderr) = texts(&out);
    if !out.status.success() {
        return Err(format!("inspect --json failed: {}", stderr.trim()));
    }
    let json: serde_json::Value = serde_json::from_str(&stdout).map_err(|e| format!("inspect JSON: {e}"))?;
    let shape = serde_json::to_string(&json["inputs"][0]["shape"]).map_err(|e| e.to_string())?;
    if shape != case.input0_shape {
        return Err(format!("inspect JSON inputs[0].shape is {shape}, expected {}", case.input0_shape));
    }
    let json_layers = json["layers"].as_array().map_or(0, Vec::len);
    if json_layers != case.layers.len() {
        return Err(format!("inspect JSON lists {json_layers} layers, expected {}", case.layers.len()));
    }

    // The core API: load and summary.
    let model = OnnxModel::load(&model_path).map_err(|e| format!("OnnxModel::load: {e}"))?;
    let got: Vec<(&str, &str, &str, &[u64], usize)> = model
        .summary
        .layers
        .iter()
        .map(|l| (l.name.as_str(), l.op_type.as_str(), l.weight.as_str(), &l.weight_shape[..], l.out_channel_axis))
        .collect();
    if got != case.layers {
        return Err(format!("quantizable layers are {got:?}, expected {:?}", case.layers));
    }

    // Data, then tract sample by sample against ONNX Runtime.
    let set = DataSet::open(DataSource::Npz(dir.join(format!("{}.npz", case.name))), &model.summary.inputs)
        .map_err(|e| format!("DataSet::open: {e}"))?;
    let shapes: Vec<Vec<usize>> = set.sample_shapes.iter().map(|s| [&[1][..], s].concat()).collect();
    let runner = Runner::new(&model, &shapes, &[]).map_err(|e| format!("Runner::new with shapes {shapes:?}: {e}"))?;
    let ort_path = dir.join(format!("{}.ort.npz", case.name));
    let ort: Vec<ArrayD<f32>> = runner.output_names.iter().map(|n| read_npz(&ort_path, n)).collect::<Result<_, _>>()?;
    let mut worst = 0f32;
    let mut samples = 0;
    for batch in set.batches(1).map_err(|e| format!("batches: {e}"))? {
        let batch = batch.map_err(|e| format!("batch: {e}"))?;
        let i = batch.first_sample;
        let outputs = runner.run(batch.inputs).map_err(|e| format!("run sample {i}: {e}"))?;
        for ((name, got), ort) in runner.output_names.iter().zip(&outputs).zip(&ort) {
            let want = ort.slice_axis(Axis(0), Slice::from(i..=i));
            if got.shape() != want.shape() {
                return Err(format!("output '{name}' sample {i}: shape {:?}, ORT {:?}", got.shape(), want.shape()));
            }
            let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
            let diff = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            if diff.is_nan() || diff > TOLERANCE * scale {
                return Err(format!("output '{name}' sample {i}: max |tract - ORT| = {diff:e} (scale {scale})"));
            }
            worst = worst.max(diff);
        }
        samples += 1;
    }
    if samples != set.num_samples || samples == 0 {
        return Err(format!("ran {samples} of {} samples", set.num_samples));
    }
    Ok(worst)
}

#[test]
fn realworld_exports_load_run_and_match_onnx_runtime() {
    let dir = tempfile::tempdir().expect("tempdir");
    let made = run_oracle("make_realworld.py", &[dir.path()]);
    let made: Vec<&str> = made.lines().collect();
    let expected: Vec<&str> = CASES.iter().map(|c| c.name).collect();
    assert_eq!(made, expected, "make_realworld.py wrote other models than the table lists");

    let mut failures = Vec::new();
    for case in CASES {
        match check(dir.path(), case) {
            Ok(worst) => eprintln!("{}: ok, max |tract - ORT| {worst:.2e}", case.name),
            Err(e) => {
                eprintln!("{}: FAILED: {e}", case.name);
                failures.push(format!("{}: {e}", case.name));
            }
        }
    }
    assert!(failures.is_empty(), "real-world models failing in QuantBench/tract:\n{}", failures.join("\n"));
}

/// Every real-world model through the CLI (calibrate → quantize → QDQ export) and ONNX Runtime:
/// the export agrees with QuantBench's simulation on (nearly) every top-1, every output of every
/// sample stays within 1 % of the output's scale (a few quantization steps), and the output SQNR
/// is the same within 0.1 dB (the export simulates this CPU's runtime profile).
#[test]
fn realworld_exports_match_the_simulation_in_onnx_runtime() {
    let dir = tempfile::tempdir().expect("tempdir");
    run_oracle("make_realworld.py", &[dir.path()]);
    let mut failures = Vec::new();
    for case in CASES {
        // Embeddings are quantized in weight-only recipes only.
        let quantized = case.layers.iter().filter(|l| l.1 != "Gather").count();
        match parity(dir.path(), case.name, quantized) {
            Ok(p) => check_parity(case.name, &p, &mut failures),
            Err(e) => failures.push(format!("{}: {e}", case.name)),
        }
    }
    assert!(failures.is_empty(), "real-world parity failures:\n{}", failures.join("\n"));
}
