//! The float model in tract agrees with ONNX Runtime on every sample model's eval set, and the
//! float accuracy is what sample_models/README.md records.

use ndarray::{ArrayD, Axis};
use quantbench_core::data::{DataSet, DataSource};
use quantbench_core::model::OnnxModel;
use quantbench_core::model::runtime::Runner;
use quantbench_tests::{SAMPLE_MODELS, run_oracle, sample};

/// Runs the float model in tract over the whole eval set, one sample at a time.
fn logits_in_tract(name: &str) -> (ArrayD<f32>, Vec<i64>) {
    let model = OnnxModel::load(&sample(name, "model.onnx")).expect("load");
    let set = DataSet::open(DataSource::Npz(sample(name, "eval.npz")), &model.summary.inputs).expect("open");
    let shapes: Vec<Vec<usize>> = set.sample_shapes.iter().map(|s| [&[1][..], s].concat()).collect();
    let runner = Runner::new(&model, &shapes, &[]).expect("runner");
    let mut rows = Vec::new();
    for b in set.batches(1).expect("batches") {
        let out = runner.run(b.expect("batch").inputs).expect("run");
        rows.push(out[0].clone());
    }
    let views: Vec<_> = rows.iter().map(|a| a.view()).collect();
    (ndarray::concatenate(Axis(0), &views).expect("concat"), set.labels.clone().expect("labels"))
}

#[test]
fn float_outputs_in_tract_match_onnx_runtime() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in SAMPLE_MODELS {
        let (logits, labels) = logits_in_tract(name);
        let ort_path = dir.path().join(format!("{name}_ort.npy"));
        run_oracle("run_model.py", &[sample(name, "model.onnx"), sample(name, "eval.npz"), ort_path.clone()]);
        let ort: ArrayD<f32> = ndarray_npy::read_npy(&ort_path).expect("read ORT output");
        assert_eq!(ort.shape(), logits.shape(), "{name}");
        let max_diff = ort.iter().zip(&logits).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(max_diff < 1e-3, "{name}: max |tract - ORT| = {max_diff}");
        let correct = logits
            .outer_iter()
            .zip(&labels)
            .filter(|(row, l)| {
                let arg = row.iter().enumerate().fold((0, f32::MIN), |m, (i, &v)| if v > m.1 { (i, v) } else { m }).0;
                i64::try_from(arg).ok() == Some(**l)
            })
            .count();
        let acc = correct as f64 / labels.len() as f64;
        assert!(acc > 0.85, "{name}: float accuracy {acc} is not well above chance");
        eprintln!("{name}: float accuracy {acc:.4}, max |tract - ORT| {max_diff:.2e}");
    }
}
