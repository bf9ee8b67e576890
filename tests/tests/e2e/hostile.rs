//! Hostile input through every CLI subcommand, as docs/RELIABILITY.md#hostile-input-tests lists it: random bytes, truncated
//! and bit-flipped models, protobuf that is not a model, unsupported and custom ops, control
//! flow, zero and huge dims, a model with nothing to quantize, bad data, bad recipes and every
//! writer pointed at a missing or unwritable place. Each case must end in exit status 1 (never
//! 101) with one line on stderr naming the problem (never a panic), and leave no output file and
//! no temp file behind. Bit-flipped models may still be valid: they must then exit 0.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use ndarray::{ArrayD, Dimension as _, IxDyn};
use ndarray_npy::{NpzWriter, WritableElement};
use prost::Message as _;
use quantbench_core::model::float_value_info;
use quantbench_core::model::onnx as pb;
use quantbench_tests::onnx_build::{model_with_nodes, node, write_model};
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

#[test]
fn random_bytes_named_onnx() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (calib, eval) = mlp_data();
    for (i, len) in [1usize, 17, 512, 4096, 65_536].into_iter().enumerate() {
        let p = dir.path().join(format!("random_{i}.onnx"));
        std::fs::write(&p, random_bytes(0x5EED_0000 + i as u64, len)).expect("write");
        every_subcommand_fails(&format!("random {len} bytes"), &p, &calib, &eval, "not a valid ONNX model");
    }
}

#[test]
fn truncated_sample_models() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["mlp", "cnn", "transformer"] {
        let bytes = std::fs::read(sample(name, "model.onnx")).expect("read");
        let (calib, eval) = (sample(name, "calib.npz"), sample(name, "eval.npz"));
        let mut rng = Rng(0x7777 + bytes.len() as u64);
        let cuts = [1, bytes.len() / 2, bytes.len() - 1, 1 + rng.below(bytes.len() - 1)];
        for cut in cuts {
            let p = dir.path().join(format!("{name}_cut{cut}.onnx"));
            std::fs::write(&p, &bytes[..cut]).expect("write");
            every_subcommand_fails(&format!("{name} cut at {cut}"), &p, &calib, &eval, "not a valid ONNX model");
        }
    }
}

/// Flipped bits may leave a valid model (a changed weight) or break it anywhere: every outcome
/// must be exit 0 or a clean exit 1 with nothing left behind.
#[test]
fn bit_flipped_sample_models() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut ok, mut failed) = (0, 0);
    for name in ["mlp", "cnn"] {
        let bytes = std::fs::read(sample(name, "model.onnx")).expect("read");
        let (calib, eval) = (sample(name, "calib.npz"), sample(name, "eval.npz"));
        for seed in 0..6u64 {
            let mut rng = Rng(0xF11F_0000 + seed);
            let mut m = bytes.clone();
            // Flip in the first kilobytes (graph structure) half of the time, anywhere otherwise.
            let span = if seed % 2 == 0 { m.len().min(2048) } else { m.len() };
            for _ in 0..(2 + seed * 3) {
                let at = rng.below(span);
                m[at] ^= 1 << rng.below(8);
            }
            let p = dir.path().join(format!("{name}_flip{seed}.onnx"));
            std::fs::write(&p, &m).expect("write");
            let out = tempfile::tempdir().expect("tempdir");
            for (sub, args) in subcommands(&p, &calib, &eval, out.path()) {
                let what = format!("{name} flip seed {seed}: {sub}");
                let before = listing(out.path());
                let o = run_cli(&args);
                if o.status.success() {
                    ok += 1;
                } else {
                    failed += 1;
                    let _ = check_clean_failure(&what, &o, "");
                    assert_eq!(listing(out.path()), before, "{what}: an output was left behind");
                }
                assert!(
                    !listing(out.path())
                        .iter()
                        .any(|f| Path::new(f).extension().is_some_and(|e| e.eq_ignore_ascii_case("tmp"))),
                    "{what}: temp file left"
                );
            }
        }
    }
    eprintln!("bit-flipped models: {ok} runs succeeded, {failed} failed cleanly");
}

#[test]
fn valid_protobuf_that_is_not_a_model() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (calib, eval) = mlp_data();
    // A tensor: decodes as a ModelProto with unknown fields and no graph.
    let tensor = pb::TensorProto { name: "w".into(), dims: vec![2, 2], data_type: 1, ..Default::default() };
    let p = dir.path().join("tensor.onnx");
    std::fs::write(&p, tensor.encode_to_vec()).expect("write");
    every_subcommand_fails("a TensorProto", &p, &calib, &eval, "not a valid ONNX model");
    // A model without a graph, and one whose graph has no nodes.
    let empty = pb::ModelProto { ir_version: 8, ..Default::default() };
    let p = dir.path().join("nograph.onnx");
    std::fs::write(&p, empty.encode_to_vec()).expect("write");
    every_subcommand_fails("no graph", &p, &calib, &eval, "it has no graph");
    let mut nodes = model_with_nodes(vec![]);
    nodes.graph.as_mut().expect("graph").node.clear();
    let p = dir.path().join("nonodes.onnx");
    write_model(&nodes, &p);
    every_subcommand_fails("no nodes", &p, &calib, &eval, "0 nodes");
}

#[test]
fn unsupported_custom_and_control_flow_ops_in_every_subcommand() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = tiny_data(dir.path());
    let mut custom = node("FancyNorm", "fancy1", &["x"], &["h"]);
    custom.domain = "com.example".into();
    let cases = [
        (
            "custom",
            model_with_nodes(vec![custom, node("Relu", "r", &["h"], &["y"])]),
            "unsupported operators: com.example.FancyNorm (nodes 'fancy1')",
        ),
        (
            "unknown",
            model_with_nodes(vec![node("NoSuchOp", "mystery", &["x"], &["y"])]),
            "unsupported operators: NoSuchOp (nodes 'mystery')",
        ),
        (
            "if",
            model_with_nodes(vec![node("Relu", "r", &["x"], &["h"]), node("If", "branch", &["h"], &["y"])]),
            "control flow is not supported: If (node 'branch')",
        ),
        (
            "loop",
            model_with_nodes(vec![node("Loop", "repeat", &["", "", "x"], &["y"])]),
            "control flow is not supported: Loop (node 'repeat')",
        ),
    ];
    for (tag, model, expect) in cases {
        let p = dir.path().join(format!("{tag}.onnx"));
        write_model(&model, &p);
        every_subcommand_fails(tag, &p, &data, &data, expect);
    }
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

/// Models tract panics on while parsing (found by the fuzzer as panics caught inside the code
/// under test; the CLI's panic hook then printed a second, "internal error" line).
#[test]
fn models_the_parser_panics_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = tiny_data(dir.path());
    let mut ghost = model_with_nodes(vec![node("Relu", "relu0", &["x"], &["y"])]);
    ghost.graph.as_mut().expect("graph").output = vec![float_value_info("ghost_out", &[1, 4])];
    let with_init = |data_type: i32| {
        let mut m = model_with_nodes(vec![node("Add", "add", &["x", "w"], &["y"])]);
        let w = pb::TensorProto {
            name: "w".into(),
            dims: vec![1, 4],
            data_type,
            raw_data: vec![0; 32],
            ..Default::default()
        };
        m.graph.as_mut().expect("graph").initializer.push(w);
        m
    };
    let cases = [
        ("ghost_output", ghost, "graph outputs not produced by any node: 'ghost_out'"),
        ("string_init", with_init(8), "the model could not be parsed"),
        ("complex_init", with_init(14), "Complex64"),
        ("float8_init", with_init(17), "Float8"),
    ];
    for (tag, model, expect) in cases {
        let p = dir.path().join(format!("{tag}.onnx"));
        write_model(&model, &p);
        every_subcommand_fails(tag, &p, &data, &data, expect);
    }
}

#[test]
fn zero_sized_and_huge_dims() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = tiny_data(dir.path());
    let huge: i64 = 1 << 40;
    let cases = [
        (
            "zero_init",
            matmul_model(initializer("w", &[4, 0], &[]), &[1, 4], &[1, 0]),
            "layer 'fc' has an empty weight 'w'",
        ),
        ("huge_init", matmul_model(initializer("w", &[4, huge], &[1.0; 4]), &[1, 4], &[1, 4]), "'w'"),
        ("huge_init_2d", matmul_model(initializer("w", &[huge, huge], &[]), &[1, 4], &[1, 4]), "'w'"),
        (
            "zero_input",
            matmul_model(initializer("w", &[4, 4], &[0.5; 16]), &[1, 0], &[1, 4]),
            "input 'x' has a zero-sized dimension",
        ),
        ("huge_input", matmul_model(initializer("w", &[4, 4], &[0.5; 16]), &[1, 1 << 40], &[1, 4]), "'x'"),
    ];
    for (tag, model, expect) in cases {
        let p = dir.path().join(format!("{tag}.onnx"));
        write_model(&model, &p);
        let out = tempfile::tempdir().expect("tempdir");
        for (name, args) in subcommands(&p, &data, &data, out.path()) {
            let what = format!("{tag}: {name}");
            let o = run_cli(&args);
            // A summary of a model with odd dims may be printed; anything that runs must fail.
            if name == "inspect" && o.status.success() {
                continue;
            }
            let _ = check_clean_failure(&what, &o, expect);
            assert!(listing(out.path()).is_empty(), "{what}: output left behind: {:?}", listing(out.path()));
        }
    }
}

#[test]
fn a_model_with_no_quantizable_layer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = tiny_data(dir.path());
    let p = dir.path().join("relu.onnx");
    write_model(&model_with_nodes(vec![node("Relu", "relu0", &["x"], &["y"])]), &p);
    let out = tempfile::tempdir().expect("tempdir");
    let cmds = subcommands(&p, &data, &data, out.path());
    // It is a valid model: inspect and calibrate work...
    for (name, args) in &cmds[..2] {
        let o = run_cli(args);
        assert!(o.status.success(), "{name}: {}", texts(&o).1);
    }
    std::fs::remove_file(out.path().join("cal.json")).expect("calibrate saved its recipe");
    // ...but there is nothing to analyze or quantize.
    for (name, args) in &cmds[2..] {
        fails_cleanly(name, args, out.path(), "no quantizable layer");
    }
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

/// A kind of bad data: its tag, how to write it, and what the error must say.
type DataCase = (&'static str, Box<dyn Fn(&Path)>, &'static str);

#[test]
fn bad_data_for_calibration_and_evaluation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = dir.path().join("two.onnx");
    write_model(&two_input_model(), &model);
    let good = dir.path().join("good.npz");
    write_npz(&good, &[("x", f32s(&[8, 4])), ("z", f32s(&[8, 4]))]);
    let mut nan = f32s(&[8, 4]);
    nan[[5, 2]] = f32::NAN;
    let mut inf = f32s(&[8, 4]);
    inf[[2, 1]] = f32::NEG_INFINITY;
    let bad: Vec<DataCase> = vec![
        ("nan", Box::new(move |p| write_npz(p, &[("x", nan.clone()), ("z", f32s(&[8, 4]))])), "sample 5 contains NaN"),
        ("inf", Box::new(move |p| write_npz(p, &[("x", f32s(&[8, 4])), ("z", inf.clone())])), "sample 2 contains -inf"),
        (
            "dtype",
            Box::new(|p| {
                write_npz(p, &[("x", ArrayD::<f64>::zeros(IxDyn(&[8, 4]))), ("z", ArrayD::zeros(IxDyn(&[8, 4])))]);
            }),
            "dtype float64",
        ),
        (
            "int_dtype",
            Box::new(|p| {
                write_npz(p, &[("x", ArrayD::<i32>::zeros(IxDyn(&[8, 4]))), ("z", ArrayD::zeros(IxDyn(&[8, 4])))]);
            }),
            "dtype int32",
        ),
        ("counts", Box::new(|p| write_npz(p, &[("x", f32s(&[8, 4])), ("z", f32s(&[7, 4]))])), "sample counts differ"),
        (
            "empty",
            Box::new(|p| write_npz(p, &[("x", f32s(&[0, 4])), ("z", f32s(&[0, 4]))])),
            "the data set is empty (0 samples)",
        ),
        ("missing_key", Box::new(|p| write_npz(p, &[("x", f32s(&[8, 4]))])), "no array for model input 'z'"),
        ("shape", Box::new(|p| write_npz(p, &[("x", f32s(&[8, 5])), ("z", f32s(&[8, 5]))])), "has shape [8, 5]"),
        (
            "random_bytes",
            Box::new(|p| std::fs::write(p, random_bytes(3, 4096)).expect("write")),
            "not a valid .npz archive",
        ),
    ];
    for (tag, write, expect) in &bad {
        let data = dir.path().join(format!("{tag}.npz"));
        write(&data);
        // As calibration data (every subcommand that reads it)...
        let out = tempfile::tempdir().expect("tempdir");
        for (name, args) in subcommands(&model, &data, &good, out.path()).into_iter().skip(1) {
            fails_cleanly(&format!("{tag} as calibration data: {name}"), &args, out.path(), expect);
        }
        // ...and as evaluation data.
        for (name, args) in subcommands(&model, &good, &data, out.path()).into_iter().skip(2) {
            fails_cleanly(&format!("{tag} as evaluation data: {name}"), &args, out.path(), expect);
        }
    }
}

#[test]
fn bad_recipes_through_the_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (calib, eval) = mlp_data();
    let model = sample("mlp", "model.onnx");
    let ghost = dir.path().join("ghost.json");
    let recipe = |version: u32, layers: &str| {
        format!(
            r#"{{"version": {version}, "model": "mlp", "defaults": {defaults}, "layers": {layers}}}"#,
            defaults = serde_json::to_string(&quantbench_core::quant::LayerConfig::default()).expect("json")
        )
    };
    let default_layer = serde_json::to_string(&quantbench_core::quant::LayerConfig::default()).expect("json");
    std::fs::write(&ghost, recipe(1, &format!(r#"{{"no_such_layer": {default_layer}}}"#))).expect("write");
    let newer = dir.path().join("newer.json");
    std::fs::write(&newer, recipe(99, "{}")).expect("write");
    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, "{\"version\": 1, \"model\": ").expect("write");
    let random = dir.path().join("random.json");
    std::fs::write(&random, random_bytes(4, 1000)).expect("write");
    let missing = dir.path().join("missing.json");
    for (path, expect) in [
        (&ghost, "not quantizable layers of 'mlp': no_such_layer"),
        (&newer, "recipe version 99 is newer than this QuantBench reads"),
        (&garbage, "not a valid recipe JSON"),
        (&random, "recipe"),
        (&missing, "cannot read recipe"),
    ] {
        let out = tempfile::tempdir().expect("tempdir");
        for (name, mut args) in subcommands(&model, &calib, &eval, out.path()).into_iter().skip(2) {
            args.extend([OsString::from("--recipe"), path.into()]);
            fails_cleanly(&format!("{}: {name}", path.display()), &args, out.path(), expect);
        }
    }
}

/// Places no file can be written: a missing directory, a path under a regular file, and a
/// read-only directory (or, when run as root, which ignores permissions, `/proc`).
fn unwritable_places(dir: &Path) -> Vec<(&'static str, PathBuf)> {
    let blocker = dir.join("blocker.txt");
    std::fs::write(&blocker, "a regular file").expect("write");
    let ro = dir.join("read_only");
    std::fs::create_dir(&ro).expect("mkdir");
    let mut perms = std::fs::metadata(&ro).expect("meta").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o555);
    std::fs::set_permissions(&ro, perms).expect("chmod");
    let probe = ro.join("probe");
    let read_only = if std::fs::write(&probe, "x").is_ok() {
        std::fs::remove_file(&probe).expect("remove probe");
        PathBuf::from("/proc")
    } else {
        ro
    };
    assert!(std::fs::write(read_only.join("probe"), "x").is_err(), "{} is writable", read_only.display());
    vec![("missing directory", dir.join("no/such/dir")), ("under a regular file", blocker), ("read-only", read_only)]
}

#[test]
fn every_writer_refuses_unwritable_places_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (calib, eval) = mlp_data();
    let model = sample("mlp", "model.onnx");
    let places = unwritable_places(dir.path());
    let good = tempfile::tempdir().expect("tempdir");
    let cmds = subcommands(&model, &calib, &eval, good.path());
    let mut checked = 0;
    for (name, args) in &cmds {
        // Every argument that is an output path of this subcommand.
        let outputs: Vec<usize> =
            args.iter().enumerate().filter(|(_, a)| Path::new(a).starts_with(good.path())).map(|(i, _)| i).collect();
        for &ix in &outputs {
            let file = Path::new(&args[ix]).file_name().expect("name").to_owned();
            for (kind, place) in &places {
                let bad = place.join(&file);
                let mut args = args.clone();
                args[ix] = bad.clone().into();
                let what = format!("{name} {} in a {kind} place", args[ix - 1].to_string_lossy());
                let before = listing(place);
                let stderr = fails_cleanly(&what, &args, good.path(), "cannot write output");
                assert!(stderr.trim_end().ends_with(&bad.display().to_string()), "{what}: path last: {stderr}");
                assert!(!bad.exists(), "{what}: {} exists", bad.display());
                // (`/proc` lists processes, which come and go.)
                if place.is_dir() && !place.starts_with("/proc") {
                    assert_eq!(listing(place), before, "{what}: temp file left in {}", place.display());
                }
                checked += 1;
            }
        }
    }
    // calibrate 1, analyze 2, quantize 4 writers, 3 places each.
    assert_eq!(checked, 7 * 3);
}

#[test]
fn bad_input_shapes_through_the_cli() {
    let (calib, eval) = mlp_data();
    let model = sample("mlp", "model.onnx");
    for (value, expect) in [
        ("input=abc", "is not of the form name=1x3x48x192"),
        ("input", "is not of the form name=1x3x48x192"),
        ("input=1x0", "is not of the form name=1x3x48x192"),
        ("input=1x99999999999999999999", "is not of the form name=1x3x48x192"),
        ("nope=1x64", "--input-shape names 'nope', not a model input"),
        ("input=1x63", "gives sample dims [63] but the data has [64]"),
    ] {
        let out = tempfile::tempdir().expect("tempdir");
        for (name, mut args) in subcommands(&model, &calib, &eval, out.path()).into_iter().skip(1) {
            args.extend([OsString::from("--input-shape"), value.into()]);
            fails_cleanly(&format!("--input-shape {value}: {name}"), &args, out.path(), expect);
        }
    }
}
