//! The `ort-x86-avx2` runtime profile on any machine: the simulated graph computes what ONNX
//! Runtime's `vpmaddubsw` kernels compute (raw uint8 × int8 products summed in pairs along the
//! kernel's K order with int16 saturation, then the exact zero-point correction, int32 bias and
//! scale), checked against a direct integer implementation of that arithmetic here. (ONNX Runtime
//! itself is the oracle in `export.rs`, on the CPU that runs the suite.)

use std::path::Path;
use std::sync::atomic::AtomicBool;

use ndarray::{Array4, ArrayD, IxDyn};
use quantbench_core::calibrate::{CalibrationConfig, calibrate};
use quantbench_core::data::{DataSet, DataSource};
use quantbench_core::model::onnx as pb;
use quantbench_core::model::runtime::Runner;
use quantbench_core::model::{OnnxModel, float_value_info};
use quantbench_core::plan::{Measured, PlanFilter, QuantPlan};
use quantbench_core::quant::RuntimeProfile;
use quantbench_core::quant::recipe::Recipe;
use quantbench_core::simulate::graph::simulated_proto;
use quantbench_tests::onnx_build::{node, write_model};

fn tensor(name: &str, dims: &[i64], v: &[f32]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: 1,
        raw_data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// Deterministic weights in [-1, 1] with one ±1 per output channel, so that per-channel int8
/// weights reach ±127 and pairs of large positive weights exist.
fn weights(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let h = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed.wrapping_mul(40_503)) >> 16;
            let v = (h % 2001) as f32 / 1000.0 - 1.0;
            if i % 3 == 0 { v.abs().max(0.8) } else { v }
        })
        .collect()
}

/// x [1, 3, 5, 5] → Conv 3×3 pads 1 (4 outputs, bias) → Relu → Conv 1×1 (2 outputs) → y; and
/// x2 [1, 7] → MatMul [7, 3] → y2. C = 3 and K = 7 are odd: pairs straddle kernel taps and the
/// last element pairs with padding.
fn model(dir: &Path) -> std::path::PathBuf {
    let proto = pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: 13 }],
        graph: Some(pb::GraphProto {
            name: "saturation".into(),
            node: vec![
                {
                    let mut n = node("Conv", "conv", &["x", "w1", "b1"], &["c1"]);
                    n.attribute.push(pb::AttributeProto {
                        name: "pads".into(),
                        r#type: 7,
                        ints: vec![1, 1, 1, 1],
                        ..Default::default()
                    });
                    n
                },
                node("Relu", "relu", &["c1"], &["r1"]),
                node("Conv", "conv2", &["r1", "w2"], &["y"]),
                node("MatMul", "fc", &["x2", "w3"], &["y2"]),
            ],
            initializer: vec![
                tensor("w1", &[4, 3, 3, 3], &weights(108, 1)),
                tensor("b1", &[4], &[0.3, -0.2, 0.1, 0.05]),
                tensor("w2", &[2, 4, 1, 1], &weights(8, 2)),
                tensor("w3", &[7, 3], &weights(21, 3)),
            ],
            input: vec![float_value_info("x", &[1, 3, 5, 5]), float_value_info("x2", &[1, 7])],
            output: vec![float_value_info("y", &[1, 2, 5, 5]), float_value_info("y2", &[1, 3])],
            ..Default::default()
        }),
        ..Default::default()
    };
    let path = dir.join("saturation.onnx");
    write_model(&proto, &path);
    path
}

/// Inputs mostly near the top of their range (uint8 codes near 255), some low.
fn data(dir: &Path) -> std::path::PathBuf {
    let n = 6;
    let x = ArrayD::from_shape_fn(IxDyn(&[n, 3, 5, 5]), |ix| {
        let k = ix[0] * 75 + ix[1] * 25 + ix[2] * 5 + ix[3];
        if k % 7 == 0 { 0.1f32 } else { 0.8 + (k % 5) as f32 * 0.05 }
    });
    let x2 = ArrayD::from_shape_fn(IxDyn(&[n, 7]), |ix| if (ix[0] + ix[1]) % 4 == 0 { -0.5f32 } else { 1.0 });
    let path = dir.join("data.npz");
    let mut w = ndarray_npy::NpzWriter::new(std::fs::File::create(&path).expect("npz"));
    w.add_array("x", &x).expect("x");
    w.add_array("x2", &x2).expect("x2");
    w.finish().expect("finish");
    path
}

fn quantize(x: f32, s: f32, z: i32) -> i32 {
    ((x / s).round_ties_even() as i32 + z).clamp(0, 255)
}

/// ORT's AVX2 accumulation of one output: pairs (2j, 2j+1) of `a·w` saturated to int16.
fn pair_sum(a: &[i32], w: &[i32], saturate: bool) -> i32 {
    a.chunks(2)
        .zip(w.chunks(2))
        .map(|(a, w)| {
            let s: i32 = a.iter().zip(w).map(|(x, y)| x * y).sum();
            if saturate { s.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) } else { s }
        })
        .sum()
}

/// The test model, its data, and an `ort-x86-avx2` recipe calibrated on the data.
fn calibrated(dir: &Path) -> (OnnxModel, DataSet, Recipe, Measured) {
    let model = OnnxModel::load(&model(dir)).expect("model");
    let set = DataSet::open(DataSource::Npz(data(dir)), &model.summary.inputs).expect("data");
    // TensorRT's placement (the layers' inputs only): conv2's output, the graph's, stays float,
    // so the reference below computes it in float. (With ORT's placement the graph output is
    // quantized too and conv2 becomes a saturating QLinearConv, checked in ORT by export.rs.)
    let mut recipe = Recipe::for_runtime("saturation", RuntimeProfile::OrtX86Avx2);
    recipe.target = quantbench_core::quant::Target::TensorRt;
    let never = AtomicBool::new(false);
    let measured = Measured::calibrated(
        calibrate(&model, &set, &CalibrationConfig::default(), &mut |_, _| {}, &never).expect("calibrate"),
    );
    (model, set, recipe, measured)
}

#[test]
fn the_avx2_profile_computes_saturating_pairs_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (model, set, mut recipe, measured) = calibrated(dir.path());
    recipe.defaults.weight.bits = 8;
    let plan = QuantPlan::build(&model, &recipe, &measured, &PlanFilter::default()).expect("plan");
    // conv feeds a requantized Relu (QLinearConv in ORT); conv2's output is the graph's (a float
    // Conv in ORT); a MatMul always runs integer.
    assert_eq!(plan.saturating_layers(), vec!["conv", "fc"]);
    let proto = simulated_proto(&model, &plan).expect("proto");
    let runner = Runner::from_proto(&proto, &model, &[vec![1, 3, 5, 5], vec![1, 7]], &[]).expect("runner");

    let (conv, fc) = (plan.layer("conv").expect("conv"), plan.layer("fc").expect("fc"));
    let a1 = &plan.activations["x"].params;
    let a2 = &plan.activations["x2"].params;
    let w1 = &conv.weight_quant.as_ref().expect("w1").q;
    let w3 = &fc.weight_quant.as_ref().expect("w3").q;
    let b1 = conv.bias.as_ref().expect("int32 bias");
    let mut saturated_outputs = 0;
    for batch in set.batches(1).expect("batches") {
        let batch = batch.expect("batch");
        let outputs = runner.run(batch.inputs.clone()).expect("run");
        let x = batch.inputs[0].view().into_dimensionality::<ndarray::Ix4>().expect("4-D");
        // conv: NHWC im2col order k = (ih·3 + iw)·3 + c; padding reads the zero point.
        let mut reference = Array4::<f32>::zeros((1, 4, 5, 5));
        for m in 0..4 {
            for (oh, ow) in (0..5).flat_map(|h| (0..5).map(move |w| (h, w))) {
                let (mut a, mut w) = (Vec::new(), Vec::new());
                for (ih, iw, c) in (0..3).flat_map(|i| (0..3).flat_map(move |j| (0..3).map(move |c| (i, j, c)))) {
                    let (h, v) = (oh + ih, ow + iw);
                    let inside = (1..=5).contains(&h) && (1..=5).contains(&v);
                    a.push(if inside {
                        quantize(x[[0, c, h - 1, v - 1]], a1.scale, a1.zero_point)
                    } else {
                        a1.zero_point
                    });
                    w.push(i32::from(w1[[m, c, ih, iw]]));
                }
                let colsum: i32 = w.iter().sum();
                let acc = pair_sum(&a, &w, true) - a1.zero_point * colsum + b1.q[m];
                if pair_sum(&a, &w, true) != pair_sum(&a, &w, false) {
                    saturated_outputs += 1;
                }
                let scale = a1.scale * conv.weight_quant.as_ref().expect("w").params[m].scale;
                reference[[0, m, oh, ow]] = acc as f32 * scale;
            }
        }
        // The rest of the model in float from conv's output: relu, fake quant, conv2.
        let r1 = &plan.activations["r1"].params;
        let w2 = conv_weights(&plan, "conv2");
        for m in 0..2 {
            for (oh, ow) in (0..5).flat_map(|h| (0..5).map(move |w| (h, w))) {
                let y: f32 = (0..4)
                    .map(|c| {
                        let r = reference[[0, c, oh, ow]].max(0.0);
                        let q = quantize(r, r1.scale, r1.zero_point);
                        (q - r1.zero_point) as f32 * r1.scale * w2[[m, c]]
                    })
                    .sum();
                let got = outputs[0][[0, m, oh, ow]];
                assert!((got - y).abs() <= 1e-4 * y.abs().max(1.0), "conv path [{m},{oh},{ow}]: sim {got} vs {y}");
            }
        }
        // fc: pairs (0,1) (2,3) (4,5), element 6 alone.
        let x2: Vec<i32> = batch.inputs[1].iter().map(|&v| quantize(v, a2.scale, a2.zero_point)).collect();
        for n in 0..3 {
            let w: Vec<i32> = (0..7).map(|k| i32::from(w3[[k, n]])).collect();
            let acc = pair_sum(&x2, &w, true) - a2.zero_point * w.iter().sum::<i32>();
            if pair_sum(&x2, &w, true) != pair_sum(&x2, &w, false) {
                saturated_outputs += 1;
            }
            let y = acc as f32 * a2.scale * fc.weight_quant.as_ref().expect("w").params[n].scale;
            let got = outputs[1][[0, n]];
            assert!((got - y).abs() <= 1e-5 * y.abs().max(1.0), "fc [{n}]: sim {got} vs {y}");
        }
    }
    assert!(saturated_outputs > 10, "the data must make pairs saturate ({saturated_outputs} outputs did)");
}

/// conv2's dequantized weight as [out, in].
fn conv_weights(plan: &QuantPlan, layer: &str) -> ndarray::Array2<f32> {
    let w = plan.layer(layer).and_then(|l| l.weight_quant.as_ref()).expect("weight").dequantize();
    let s = w.shape().to_vec();
    w.into_shape_with_order((s[0], s[1])).expect("2-D")
}

/// int8 (signed) activations with 8-bit weights: ONNX Runtime on x86 without VNNI was measured
/// several dB below the exact simulation (README), which the plan says instead of pretending.
#[test]
fn int8_activations_on_the_avx2_profile_are_named_as_not_simulated_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (model, _, mut recipe, measured) = calibrated(dir.path());
    recipe.defaults.activation.signed = true;
    recipe.defaults.activation.symmetric = true;
    let inexact = |r: &Recipe| {
        let plan = QuantPlan::build(&model, r, &measured, &PlanFilter::default()).expect("plan");
        plan.inexact_layers().into_iter().map(String::from).collect::<Vec<_>>()
    };
    assert!(inexact(&recipe).is_empty(), "7-bit weights: {:?}", inexact(&recipe));
    recipe.defaults.weight.bits = 8;
    assert_eq!(inexact(&recipe), vec!["conv", "conv2", "fc"]);
    recipe.runtime = RuntimeProfile::OrtX86Vnni;
    assert!(inexact(&recipe).is_empty(), "exact kernels elsewhere");
}
