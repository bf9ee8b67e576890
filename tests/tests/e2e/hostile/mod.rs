//! Hostile input through every CLI subcommand, as docs/RELIABILITY.md#hostile-input-tests lists it: random bytes, truncated
//! and bit-flipped models, protobuf that is not a model, unsupported and custom ops, control
//! flow, zero and huge dims, a model with nothing to quantize, bad data, bad recipes and every
//! writer pointed at a missing or unwritable place. Each case must end in exit status 1 (never
//! 101) with one line on stderr naming the problem (never a panic), and leave no output file and
//! no temp file behind. Bit-flipped models may still be valid: they must then exit 0.

mod arguments;
mod models;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use ndarray::{ArrayD, Dimension as _, IxDyn};
use ndarray_npy::{NpzWriter, WritableElement};
use quantbench_core::model::float_value_info;
use quantbench_core::model::onnx as pb;
use quantbench_tests::onnx_build::{model_with_nodes, node};
use quantbench_tests::{run_cli, sample, texts};

/// A small deterministic PRNG (splitmix64): every hostile input is reproducible.
struct Rng(u64);

/// `len` deterministic pseudo-random bytes.
fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng(seed);
    (0..len).map(|_| rng.next().to_le_bytes()[0]).collect()
}

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).expect("fits")
    }
}

/// Files in `dir` (names), sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().to_string()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// The subcommands, each with every output it can write placed in `out`.
fn subcommands(model: &Path, calib: &Path, eval: &Path, out: &Path) -> Vec<(&'static str, Vec<OsString>)> {
    let p = |s: &str| out.join(s).into_os_string();
    let os = |s: &str| OsString::from(s);
    vec![
        ("inspect", vec![os("inspect"), model.into(), os("--json")]),
        (
            "calibrate",
            vec![os("calibrate"), model.into(), os("--calib"), calib.into(), os("--save-recipe"), p("cal.json")],
        ),
        (
            "analyze",
            vec![
                os("analyze"),
                model.into(),
                os("--calib"),
                calib.into(),
                os("--eval"),
                eval.into(),
                os("--report"),
                p("report.json"),
                os("--save-recipe"),
                p("recipe.json"),
                os("--no-local"),
            ],
        ),
        (
            "quantize",
            vec![
                os("quantize"),
                model.into(),
                os("--calib"),
                calib.into(),
                os("--eval"),
                eval.into(),
                os("--out"),
                p("q.onnx"),
                os("--report"),
                p("q_report.json"),
                os("--encodings"),
                p("enc.json"),
                os("--save-recipe"),
                p("q_recipe.json"),
            ],
        ),
    ]
}

/// What a failed run must look like: status 1, one `error:` line containing `expect`, no panic.
fn check_clean_failure(what: &str, out: &std::process::Output, expect: &str) -> String {
    let (stdout, stderr) = texts(out);
    assert_eq!(out.status.code(), Some(1), "{what}: exit status; stdout: {stdout} stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{what}: one line on stderr, got: {stderr}");
    assert!(stderr.starts_with("error: "), "{what}: {stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("internal error"), "{what}: {stderr}");
    assert!(stderr.contains(expect), "{what}: expected '{expect}' in: {stderr}");
    stderr
}

/// Runs `args`, expecting a clean failure naming `expect`, with `out` (the outputs' directory)
/// left as it was; returns stderr.
fn fails_cleanly(what: &str, args: &[OsString], out: &Path, expect: &str) -> String {
    let before = listing(out);
    let o = run_cli(args);
    let stderr = check_clean_failure(what, &o, expect);
    assert_eq!(listing(out), before, "{what}: an output or temp file was left behind");
    stderr
}

/// Runs every subcommand on `model` and expects each to fail cleanly naming `expect`.
fn every_subcommand_fails(what: &str, model: &Path, calib: &Path, eval: &Path, expect: &str) {
    let out = tempfile::tempdir().expect("tempdir");
    for (name, args) in subcommands(model, calib, eval, out.path()) {
        fails_cleanly(&format!("{what}: {name}"), &args, out.path(), expect);
    }
}

fn write_npz<T: WritableElement>(path: &Path, arrays: &[(&str, ArrayD<T>)]) {
    let mut w = NpzWriter::new(std::fs::File::create(path).expect("create"));
    for (k, a) in arrays {
        w.add_array(*k, a).expect("add array");
    }
    w.finish().expect("finish npz");
}

fn f32s(shape: &[usize]) -> ArrayD<f32> {
    ArrayD::from_shape_fn(IxDyn(shape), |ix| (ix.slice().iter().sum::<usize>() % 7) as f32 * 0.1 - 0.3)
}

/// Valid data for the 4-wide test graphs (input `x` [1, 4]).
fn tiny_data(dir: &Path) -> PathBuf {
    let p = dir.join("tiny.npz");
    write_npz(&p, &[("x", f32s(&[8, 4]))]);
    p
}

fn mlp_data() -> (PathBuf, PathBuf) {
    (sample("mlp", "calib.npz"), sample("mlp", "eval.npz"))
}

/// A float32 initializer `name` of `dims` holding `values` (possibly fewer than the dims say).
fn initializer(name: &str, dims: &[i64], values: &[f32]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: 1,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// `x` [1, 4] · `w` → `y`: one quantizable MatMul with weight `w`.
fn matmul_model(w: pb::TensorProto, input_dims: &[usize], output_dims: &[usize]) -> pb::ModelProto {
    let mut m = model_with_nodes(vec![node("MatMul", "fc", &["x", &w.name], &["y"])]);
    let g = m.graph.as_mut().expect("graph");
    g.initializer.push(w);
    g.input = vec![float_value_info("x", input_dims)];
    g.output = vec![float_value_info("y", output_dims)];
    m
}

/// `x`, `z` (both [1, 4]) → Add → MatMul → `y`: a quantizable two-input model.
fn two_input_model() -> pb::ModelProto {
    let mut m = matmul_model(initializer("w", &[4, 4], &[0.25; 16]), &[1, 4], &[1, 4]);
    let g = m.graph.as_mut().expect("graph");
    g.node.insert(0, node("Add", "add", &["x", "z"], &["s"]));
    g.node[1].input[0] = "s".into();
    g.input.push(float_value_info("z", &[1, 4]));
    m
}
