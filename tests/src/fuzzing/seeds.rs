//! The generated seeds of each target: the sample files, small synthetic models and data sets,
//! and recipes (one of them calibrated).

use std::path::Path;
use std::sync::atomic::AtomicBool;

use ndarray::{ArrayD, Axis, IxDyn};
use ndarray_npy::{NpzWriter, WritableElement, WriteNpyExt as _};
use quantbench_core::calibrate::{CalibrationConfig, RecipeFile, calibrate};
use quantbench_core::data::{DataSet, DataSource};
use quantbench_core::model::onnx as pb;
use quantbench_core::observe::Observer;
use quantbench_core::quant::recipe::Recipe;
use quantbench_core::quant::{Granularity, LayerConfig};

use super::target::load_sample;
use super::{Npy, Target, build_zip};
use crate::{SAMPLE_MODELS, sample};

/// The generated seeds of a target (sample files, small synthetic files, recipes).
pub fn generated_seeds(target: Target, scratch: &Path) -> Vec<Vec<u8>> {
    match target {
        Target::Model => model_seeds(),
        Target::Npz => npz_seeds(scratch),
        Target::Npy => npy_seeds(),
        Target::Recipe => recipe_seeds(scratch),
    }
}

fn model_seeds() -> Vec<Vec<u8>> {
    use crate::onnx_build::{model_with_nodes, node};
    let mut seeds: Vec<Vec<u8>> =
        SAMPLE_MODELS.iter().map(|m| std::fs::read(sample(m, "model.onnx")).expect("read sample model")).collect();
    let weight = |name: &str, dims: &[i64]| {
        let n: i64 = dims.iter().product();
        pb::TensorProto {
            name: name.into(),
            dims: dims.to_vec(),
            data_type: 1,
            float_data: (0..n).map(|i| i as f32 * 0.25 - 1.0).collect(),
            ..Default::default()
        }
    };
    // Gemm with an initializer weight and bias.
    let mut gemm = model_with_nodes(vec![node("Gemm", "fc", &["x", "w", "b"], &["y"])]);
    if let Some(g) = gemm.graph.as_mut() {
        g.initializer = vec![weight("w", &[4, 4]), weight("b", &[4])];
        g.node[0].attribute.push(pb::AttributeProto { name: "transB".into(), r#type: 2, i: 1, ..Default::default() });
    }
    // MatMul whose weight is a Constant node, then Relu.
    let mut matmul = model_with_nodes(vec![
        pb::NodeProto {
            attribute: vec![pb::AttributeProto {
                name: "value".into(),
                r#type: 4,
                t: Some(weight("", &[4, 4])),
                ..Default::default()
            }],
            ..node("Constant", "c", &[], &["w"])
        },
        node("MatMul", "mm", &["x", "w"], &["h"]),
        node("Relu", "relu", &["h"], &["y"]),
    ]);
    matmul.producer_version = "1".into();
    // Identity and raw_data initializers of several types.
    let mut ident = model_with_nodes(vec![node("Identity", "id", &["x"], &["y"])]);
    if let Some(g) = ident.graph.as_mut() {
        g.initializer = vec![
            pb::TensorProto {
                name: "r".into(),
                dims: vec![2, 2],
                data_type: 1,
                raw_data: vec![0; 16],
                ..Default::default()
            },
            pb::TensorProto {
                name: "i".into(),
                dims: vec![3],
                data_type: 7,
                int64_data: vec![1, -1, 7],
                ..Default::default()
            },
        ];
    }
    seeds.extend([gemm, matmul, ident].iter().map(prost::Message::encode_to_vec));
    seeds
}

fn npy_bytes<T: WritableElement>(a: &ArrayD<T>) -> Vec<u8> {
    let mut v = Vec::new();
    a.write_npy(&mut v).expect("encode npy");
    v
}

fn ramp(shape: &[usize]) -> ArrayD<f32> {
    let mut k = 0.0f32;
    ArrayD::from_shape_simple_fn(IxDyn(shape), || {
        k += 0.125;
        k - 2.0
    })
}

fn first_rows_of_sample(model: &str, file: &str, key: &str, rows: usize) -> Option<Vec<u8>> {
    let f = std::fs::File::open(sample(model, file)).ok()?;
    let mut r = ndarray_npy::NpzReader::new(f).ok()?;
    if key == "labels" {
        let a: ArrayD<i64> = r.by_name(key).ok()?;
        let n = a.len_of(Axis(0)).min(rows);
        Some(npy_bytes(&a.slice_axis(Axis(0), (0..n).into()).to_owned()))
    } else {
        let a: ArrayD<f32> = r.by_name(key).ok()?;
        let n = a.len_of(Axis(0)).min(rows);
        Some(npy_bytes(&a.slice_axis(Axis(0), (0..n).into()).to_owned()))
    }
}

fn npy_seeds() -> Vec<Vec<u8>> {
    let mut seeds = vec![
        npy_bytes(&ramp(&[6, 64])),
        npy_bytes(&ramp(&[4, 3, 5])),
        npy_bytes(&ramp(&[1, 64]).mapv(f64::from)),
        npy_bytes(&ArrayD::from_shape_vec(IxDyn(&[5]), vec![0i64, 1, 2, 3, 9]).expect("labels")),
        npy_bytes(&ArrayD::from_shape_vec(IxDyn(&[]), vec![1.5f32]).expect("scalar")),
    ];
    // Fortran order and a version-2 header, written by hand.
    let mut fortran = Npy::parse(&seeds[1]).expect("own npy");
    fortran.header = fortran.header.replace("False", "True");
    seeds.push(fortran.build(None));
    let mut v2 = Npy::parse(&seeds[0]).expect("own npy");
    v2.version = 2;
    seeds.push(v2.build(None));
    seeds.extend(first_rows_of_sample("mlp", "calib.npz", "input", 10));
    seeds
}

fn npz_with<T: WritableElement>(path: &Path, compressed: bool, arrays: &[(&str, ArrayD<T>)]) -> Vec<u8> {
    let f = std::fs::File::create(path).expect("create npz");
    let mut w = if compressed { NpzWriter::new_compressed(f) } else { NpzWriter::new(f) };
    for (k, a) in arrays {
        w.add_array(*k, a).expect("add array");
    }
    w.finish().expect("finish npz");
    std::fs::read(path).expect("read npz")
}

fn npz_seeds(scratch: &Path) -> Vec<Vec<u8>> {
    let p = scratch.join("seed.npz");
    let labels = |n: usize| ArrayD::from_shape_fn(IxDyn(&[n]), |ix| (ix[0] % 10) as i64);
    let mut seeds: Vec<Vec<u8>> = [("mlp", "calib.npz"), ("mlp", "eval.npz"), ("cnn", "calib.npz")]
        .iter()
        .map(|(m, f)| std::fs::read(sample(m, f)).expect("read sample data"))
        .collect();
    seeds.push(npz_with(&p, false, &[("input", ramp(&[5, 64]))]));
    seeds.push(npz_with(&p, true, &[("input", ramp(&[5, 64]))]));
    seeds.push(npz_with(&p, false, &[("input", ramp(&[4, 3, 5]))]));
    // Stored members built by hand: the MLP input with labels, and the two-input layout.
    let mlp_input = first_rows_of_sample("mlp", "eval.npz", "input", 6).expect("sample input");
    let mlp_labels = first_rows_of_sample("mlp", "eval.npz", "labels", 6).expect("sample labels");
    let with_labels = vec![("input.npy".to_string(), mlp_input.clone()), ("labels.npy".to_string(), mlp_labels)];
    seeds.push(build_zip(&with_labels, false));
    seeds.push(build_zip(&with_labels, true));
    let multi = vec![
        ("input.npy".to_string(), npy_bytes(&ramp(&[3, 64]))),
        ("aux.npy".to_string(), npy_bytes(&ramp(&[3, 2, 3]))),
        ("labels.npy".to_string(), npy_bytes(&labels(3).mapv(|l| l as u8))),
    ];
    seeds.push(build_zip(&multi, false));
    seeds
}

fn recipe_seeds(scratch: &Path) -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    let mlp = load_sample("mlp");
    seeds.push(Recipe::new("mlp").to_json().expect("json").into_bytes());
    let mut r = Recipe::new("mlp");
    let configs: [fn(&mut LayerConfig); 3] = [
        |c: &mut LayerConfig| {
            c.weight.bits = 4;
            c.weight.granularity = Granularity::PerGroup { group_size: 32 };
            c.activation.observer = Observer::Percentile { percentile: 99.99 };
        },
        |c: &mut LayerConfig| {
            c.weight.ternary = true;
            c.weight.granularity = Granularity::PerTensor;
            c.activation.observer = Observer::Entropy { num_bins: 2048, num_quantized_bins: 128 };
            c.activation.signed = true;
        },
        |c: &mut LayerConfig| {
            c.keep_float = true;
            c.activation.observer = Observer::Ema { constant: 0.01 };
            c.activation.dynamic = true;
        },
    ];
    for (layer, f) in mlp.summary.layers.iter().zip(configs.iter().cycle()) {
        let mut c = LayerConfig::default();
        f(&mut c);
        r.layers.insert(layer.name.clone(), c);
    }
    r.defaults.activation.observer = Observer::Mse;
    r.calibration_config.input_shapes = vec!["input=1x64".parse().expect("input shape")];
    seeds.push(r.to_json().expect("json").into_bytes());
    seeds.push(cnn_calibrated_recipe(scratch));
    seeds
}

/// A realistic large recipe: the CNN sample calibrated on 8 samples of its calibration set.
fn cnn_calibrated_recipe(scratch: &Path) -> Vec<u8> {
    let model = load_sample("cnn");
    let f = std::fs::File::open(sample("cnn", "calib.npz")).expect("open cnn calib");
    let input: ArrayD<f32> = ndarray_npy::NpzReader::new(f).expect("npz").by_name("input").expect("input");
    let p = scratch.join("cnn8.npz");
    npz_with(&p, false, &[("input", input.slice_axis(Axis(0), (0..8).into()).to_owned())]);
    let set = DataSet::open(DataSource::Npz(p), &model.summary.inputs).expect("cnn data");
    let cal = calibrate(&model, &set, &CalibrationConfig::default(), &mut |_, _| {}, &AtomicBool::new(false))
        .expect("calibrate cnn");
    let mut r = Recipe::new("cnn");
    if let Some(l) = model.summary.layers.first() {
        let mut c = LayerConfig::default();
        c.activation.observer = Observer::Percentile { percentile: 99.9 };
        r.layers.insert(l.name.clone(), c);
    }
    RecipeFile { recipe: r, calibration: Some(cal) }.to_json().expect("json").into_bytes()
}
