//! Hostile models through every subcommand: random bytes, truncated and bit-flipped samples,
//! protobuf that is not a model, unsupported, custom and control-flow ops, models the parser
//! panics on, zero and huge dims, and a model with nothing to quantize.

use std::path::Path;

use prost::Message as _;
use quantbench_core::model::float_value_info;
use quantbench_core::model::onnx as pb;
use quantbench_tests::onnx_build::{model_with_nodes, node, write_model};
use quantbench_tests::{run_cli, sample, texts};

use super::{
    Rng, check_clean_failure, every_subcommand_fails, fails_cleanly, initializer, listing, matmul_model, mlp_data,
    random_bytes, subcommands, tiny_data,
};

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
            "control flow is not supported: If (node 'branch', its condition depends on the input data)",
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
