//! Float sums, quotients and normalizations as ONNX Runtime computes them
//! (core/src/model/ort_reduce.rs, exact_div.rs, ort_norms.rs): ReduceSum and ReduceMean over
//! trailing axes, a LayerNorm written out as basic ops, an unfused BatchNormalization, an
//! InstanceNormalization, a hardswish's division by 6 and a division by a broadcast tensor give
//! in tract the very bits ORT gives (`tests/oracle/reduce_cases.py`: cancelling sums, rows whose length is not a
//! multiple of four, fewer values than a packet). Calibrated ranges and simulated float islands
//! after such nodes then follow ORT's, not tract's own summation order and reciprocal products.

use quantbench_core::data::{DataSet, DataSource};
use quantbench_core::model::OnnxModel;
use quantbench_core::model::runtime::Runner;
use quantbench_tests::run_oracle;

use super::parity::read_npz;

#[test]
fn sums_over_trailing_axes_are_onnx_runtime_s_bit_for_bit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let listed = run_oracle("reduce_cases.py", &[dir.path()]);
    let cases: Vec<String> = serde_json::from_str(&listed).expect("case list");
    assert!(cases.len() >= 12, "{} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let file = |suffix: &str| dir.path().join(format!("{case}{suffix}"));
        let model = OnnxModel::load(&file(".onnx")).expect("load");
        let set = DataSet::open(DataSource::Npz(file(".npz")), &model.summary.inputs).expect("open");
        let x = read_npz(&file(".npz"), "x").expect("x");
        let runner = Runner::new(&model, &[x.shape().to_vec()], &[]).expect("runner");
        assert_eq!(set.num_samples, x.shape()[0], "{case}");
        let outputs = runner.run(vec![x]).expect("run");
        for (name, got) in runner.output_names.iter().zip(&outputs) {
            for (level, suffix) in [("off", ".ort.npz"), ("on", ".ort_opt.npz")] {
                let want = read_npz(&file(suffix), name).expect("ORT output");
                assert_eq!(got.shape(), want.shape(), "{case} {name}");
                let differing = got.iter().zip(&want).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
                eprintln!("{case} '{name}' (ORT optimisations {level}): {differing} of {} values differ", got.len());
                if differing > 0 {
                    failures.push(format!("{case} '{name}' (optimisations {level}): {differing} of {}", got.len()));
                }
            }
        }
    }
    assert!(failures.is_empty(), "sums not in ORT's order:\n{}", failures.join("\n"));
}
