//! Weight-only block-wise quantization end to end: `quantize --weights-only --w-bits 4
//! --block-size B` in both export formats (ONNX DequantizeLinear with `block_size` and INT4
//! weights, and ONNX Runtime's MatMulNBits), run in ONNX Runtime beside QuantBench's simulation of
//! the same recipe (the parity oracle), with the file sizes and the exported operators checked.

use std::path::Path;

use prost::Message as _;
use quantbench_core::model::onnx as pb;
use quantbench_tests::{run_cli, run_oracle, sample, texts};

use super::parity::{check_parity, parity_with};

/// The exported operators by type, with the element types of their initializers.
fn ops(path: &Path) -> (Vec<String>, Vec<i32>, i64) {
    let m = pb::ModelProto::decode(std::fs::read(path).expect("read export").as_slice()).expect("decode export");
    let g = m.graph.expect("graph");
    let opset = m.opset_import.iter().find(|o| o.domain.is_empty()).map_or(0, |o| o.version);
    (g.node.iter().map(|n| n.op_type.clone()).collect(), g.initializer.iter().map(|t| t.data_type).collect(), opset)
}

/// `None` when the weights ONNX Runtime computed for `key` (in the `ort_weight_only.py weights`
/// file `weights`) are `lp`'s simulated weights bit for bit, else what differs.
fn weights_differ(weights: &Path, key: &str, lp: &quantbench_core::plan::LayerPlan) -> Option<String> {
    let ort = match super::parity::read_npz(weights, key) {
        Ok(a) => a,
        Err(e) => return Some(e),
    };
    let sim = lp.weight_quant.as_ref().expect("quantized").dequantize();
    let differ = sim.iter().zip(ort.iter()).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
    (sim.shape() != ort.shape() || differ > 0)
        .then(|| format!("{key}: {differ} of {} weights differ ({:?} / {:?})", sim.len(), sim.shape(), ort.shape()))
}

/// The mean output cosine of `quant` against `float` in ONNX Runtime on `eval`, and the oracle's
/// whole answer.
fn ort_cosine(float: &Path, quant: &Path, eval: &Path) -> (f64, String) {
    let json =
        run_oracle("ort_weight_only.py", &["compare".as_ref(), float.as_os_str(), quant.as_os_str(), eval.as_os_str()]);
    let v: serde_json::Value = serde_json::from_str(json.lines().last().unwrap_or_default()).expect("compare json");
    (v["cosine_mean"].as_f64().unwrap_or(f64::NAN), json)
}

#[test]
fn four_bit_block_wise_weights_export_in_both_formats_run_in_ort_and_match_the_simulation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut failures = Vec::new();
    for (model, layers, block) in [("mlp", 3, "16"), ("transformer", 8, "16"), ("tokens", 14, "32")] {
        let float = sample(model, "model.onnx");
        let float_bytes = std::fs::metadata(&float).expect("model").len();
        for format in ["qdq", "matmulnbits"] {
            let name = format!("{model}_{format}");
            let file = |suffix: &str| dir.path().join(format!("{name}{suffix}"));
            std::fs::copy(&float, file(".onnx")).expect("copy model");
            std::fs::copy(sample(model, "calib.npz"), file(".npz")).expect("copy calib");
            std::fs::copy(sample(model, "eval.npz"), file(".eval.npz")).expect("copy eval");
            run_oracle("ort_run.py", &[file(".onnx"), file(".eval.npz"), file(".ort.npz")]);
            let flags = ["--weights-only", "--w-bits", "4", "--block-size", block, "--weight-format", format];
            match parity_with(dir.path(), &name, layers, [&file(".npz"), &file(".eval.npz")], &flags) {
                Ok(p) => check_parity(&name, &p, &mut failures),
                Err(e) => failures.push(format!("{name}: {e}")),
            }
            let export = file(".qdq.onnx");
            let (op_types, elem_types, opset) = ops(&export);
            let bytes = std::fs::metadata(&export).expect("export").len();
            eprintln!("{name}: {bytes} bytes ({:.3}x float), opset {opset}", bytes as f64 / float_bytes as f64);
            // Weights only: no activation is quantized.
            if op_types.iter().any(|o| o == "QuantizeLinear") {
                failures.push(format!("{name}: a QuantizeLinear in a weight-only export"));
            }
            let count = |op: &str| op_types.iter().filter(|o| *o == op).count();
            let gathers = usize::from(model == "tokens");
            match format {
                // INT4 (22) or UINT4 (21).
                "qdq"
                    if count("DequantizeLinear") != layers
                        || !elem_types.iter().any(|t| *t == 21 || *t == 22)
                        || opset < 21 =>
                {
                    failures.push(format!("{name}: {op_types:?} {elem_types:?} opset {opset}"));
                }
                // The embedding's table keeps a block-wise DequantizeLinear.
                "matmulnbits" if count("MatMulNBits") != layers - gathers || count("DequantizeLinear") != gathers => {
                    failures.push(format!("{name}: {op_types:?}"));
                }
                _ => {}
            }
            // 4-bit weights take half the bytes of 8-bit ones: the model shrinks.
            if model == "mlp" && bytes as f64 > 0.35 * float_bytes as f64 {
                failures.push(format!("{name}: {bytes} bytes, float {float_bytes}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn weight_only_needs_no_calibration_and_bad_block_settings_say_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("w4.onnx");
    let model = sample("mlp", "model.onnx");
    let m = model.as_os_str();
    let run = |extra: &[&str]| {
        let mut args: Vec<&std::ffi::OsStr> = vec!["quantize".as_ref(), m, "--out".as_ref(), out.as_os_str()];
        args.extend(extra.iter().map(std::ffi::OsStr::new));
        run_cli(&args)
    };
    let o = run(&["--weights-only", "--w-bits", "4", "--block-size", "32"]);
    assert!(o.status.success(), "{}", texts(&o).1);
    assert!(out.exists());
    let o = run(&["--w-bits", "4"]);
    assert!(!o.status.success());
    assert!(texts(&o).1.contains("--calib is needed"), "{}", texts(&o).1);
    let o = run(&["--weights-only", "--block-size", "0"]);
    assert!(texts(&o).1.contains("--block-size must be above 0"), "{}", texts(&o).1);
    let o = run(&["--weights-only", "--block-size", "32", "--weight-format", "gguf"]);
    assert!(texts(&o).1.contains("unknown weight format 'gguf'"), "{}", texts(&o).1);
    // A Conv model has no MatMul/Gemm layer to take blocks... the cnn sample has a Gemm head.
    let o = run_cli(&[
        "quantize".as_ref(),
        sample("cnn", "model.onnx").as_os_str(),
        "--weights-only".as_ref(),
        "--block-size".as_ref(),
        "16".as_ref(),
        "--out".as_ref(),
        dir.path().join("cnn.onnx").as_os_str(),
    ]);
    assert!(o.status.success(), "{}", texts(&o).1);
}

#[test]
fn weight_algorithms_run_in_ort_match_the_simulation_and_gptq_and_awq_beat_nearest_rounding() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut failures = Vec::new();
    let mut sqnr = Vec::new();
    let model = "transformer";
    for (algorithm, format) in [("rtn", "matmulnbits"), ("hqq", "matmulnbits"), ("gptq", "qdq"), ("awq", "matmulnbits")]
    {
        let name = format!("{model}_{algorithm}");
        let file = |suffix: &str| dir.path().join(format!("{name}{suffix}"));
        std::fs::copy(sample(model, "model.onnx"), file(".onnx")).expect("copy model");
        std::fs::copy(sample(model, "calib.npz"), file(".npz")).expect("copy calib");
        std::fs::copy(sample(model, "eval.npz"), file(".eval.npz")).expect("copy eval");
        run_oracle("ort_run.py", &[file(".onnx"), file(".eval.npz"), file(".ort.npz")]);
        let flags = [
            "--weights-only",
            "--w-bits",
            "4",
            "--block-size",
            "16",
            "--weight-algorithm",
            algorithm,
            "--weight-format",
            format,
        ];
        match parity_with(dir.path(), &name, 8, [&file(".npz"), &file(".eval.npz")], &flags) {
            Ok(p) => {
                check_parity(&name, &p, &mut failures);
                sqnr.push((algorithm, p.sqnr_ort));
            }
            Err(e) => failures.push(format!("{name}: {e}")),
        }
        if algorithm == "awq" {
            let (op_types, _, _) = ops(&file(".qdq.onnx"));
            // AWQ divides each layer's input by its scales: one Mul per layer before it.
            let extra = op_types.iter().filter(|o| *o == "Mul").count();
            if extra < 8 {
                failures.push(format!("{name}: {extra} Mul nodes for 8 AWQ layers: {op_types:?}"));
            }
        }
    }
    eprintln!("output SQNR in ORT (4-bit, blocks of 16): {sqnr:?}");
    let of = |a: &str| sqnr.iter().find(|(n, _)| *n == a).map(|(_, s)| *s);
    if let (Some(rtn), Some(gptq), Some(awq)) = (of("rtn"), of("gptq"), of("awq"))
        && (gptq < rtn + 1.0 || awq < rtn + 0.5)
    {
        failures.push(format!("GPTQ {gptq:.2} dB and AWQ {awq:.2} dB against RTN {rtn:.2} dB"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The weights ONNX Runtime computes from each export (`ort_weight_only.py weights`: the
/// block-wise DequantizeLinear alone, MatMulNBits fed the identity) are the simulation's, bit for
/// bit, for both formats, signed and unsigned grids, and HQQ's real zero points.
#[test]
fn exported_block_wise_weights_are_the_simulation_s_bit_for_bit_in_ort() {
    use quantbench_core::calibrate::RecipeFile;
    use quantbench_core::model::OnnxModel;
    use quantbench_core::plan::{Measured, PlanFilter, QuantPlan};
    let dir = tempfile::tempdir().expect("tempdir");
    let model_path = sample("tokens", "model.onnx");
    let model = OnnxModel::load(&model_path).expect("tokens sample");
    let mut failures = Vec::new();
    for (tag, extra) in [
        ("qdq_unsigned", &["--w-bits", "4", "--weight-format", "qdq"][..]),
        ("qdq_signed", &["--w-bits", "4", "--weight-format", "qdq", "--w-symmetric"][..]),
        ("nbits_unsigned", &["--w-bits", "4", "--weight-format", "matmulnbits"][..]),
        ("nbits_signed_3bit", &["--w-bits", "3", "--weight-format", "matmulnbits", "--w-symmetric"][..]),
        ("nbits_hqq", &["--w-bits", "4", "--weight-algorithm", "hqq"][..]),
    ] {
        let (out, recipe) = (dir.path().join(format!("{tag}.onnx")), dir.path().join(format!("{tag}.json")));
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "quantize".as_ref(),
            model_path.as_os_str(),
            "--weights-only".as_ref(),
            "--block-size".as_ref(),
            "32".as_ref(),
            "--out".as_ref(),
            out.as_os_str(),
            "--save-recipe".as_ref(),
            recipe.as_os_str(),
        ];
        args.extend(extra.iter().map(std::ffi::OsStr::new));
        let o = run_cli(&args);
        assert!(o.status.success(), "{tag}: {}", texts(&o).1);
        let weights = dir.path().join(format!("{tag}.weights.npz"));
        run_oracle("ort_weight_only.py", &["weights".as_ref(), out.as_os_str(), weights.as_os_str()]);
        let saved = RecipeFile::load(&recipe).expect("recipe");
        let plan = QuantPlan::build(&model, &saved.recipe, &Measured::default(), &PlanFilter::default()).expect("plan");
        assert_eq!(plan.layers.len(), 14, "{tag}: every MatMul and the embedding");
        for lp in &plan.layers {
            let nbits = tag.starts_with("nbits") && lp.op_type == "MatMul";
            let key = if nbits { lp.layer.clone() } else { format!("{}_DequantizeLinear", lp.weight) };
            if let Some(e) = weights_differ(&weights, &key, lp) {
                failures.push(format!("{tag} {e}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A model with external data (the generated transformer, weights in `model.onnx.data`) is read
/// and exported with external data into another folder: the export names only its own data file,
/// runs in ONNX Runtime, agrees with the float model and is under 0.35× its size at 4 bits.
#[test]
fn external_data_models_are_read_and_written_with_external_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    let generator = quantbench_tests::repo_root().join("scripts/make_large_transformer.py");
    let o = std::process::Command::new(quantbench_tests::python())
        .args([generator.as_os_str(), src.as_os_str()])
        .args(["--layers", "2", "--dim", "256", "--vocab", "1024", "--n-eval", "32"])
        .output()
        .expect("run the generator");
    assert!(o.status.success(), "{}", texts(&o).1);
    let model = src.join("model.onnx");
    let float_bytes = std::fs::metadata(&model).expect("model").len()
        + std::fs::metadata(src.join("model.onnx.data")).expect("data").len();
    let mut failures = Vec::new();
    for format in ["qdq", "matmulnbits"] {
        let out_dir = dir.path().join(format);
        std::fs::create_dir(&out_dir).expect("out dir");
        let out = out_dir.join("w4.onnx");
        let o = run_cli(&[
            "quantize".as_ref(),
            model.as_os_str(),
            "--weights-only".as_ref(),
            "--w-bits".as_ref(),
            "4".as_ref(),
            "--block-size".as_ref(),
            "32".as_ref(),
            "--weight-format".as_ref(),
            format.as_ref(),
            "--out".as_ref(),
            out.as_os_str(),
        ]);
        assert!(o.status.success(), "{format}: {}", texts(&o).1);
        let data = out_dir.join("w4.onnx.data");
        let (model_bytes, data_bytes) =
            (std::fs::metadata(&out).expect("export").len(), std::fs::metadata(&data).map_or(0, |m| m.len()));
        let ratio = (model_bytes + data_bytes) as f64 / float_bytes as f64;
        eprintln!("{format}: {model_bytes} + {data_bytes} bytes, {ratio:.3}x the float model");
        if data_bytes == 0 || model_bytes * 20 > data_bytes || ratio > 0.35 {
            failures.push(format!("{format}: model {model_bytes} B, data {data_bytes} B, ratio {ratio:.3}"));
        }
        let (cosine, json) = ort_cosine(&model, &out, &src.join("eval.npz"));
        if cosine.is_nan() || cosine < 0.9 {
            failures.push(format!("{format}: {json}"));
        }
    }
    // The load check does not read the weights (they are parsed as stand-ins), but a data file
    // cut short, or missing, is still refused at load, by tensor name, without a panic.
    let data = src.join("model.onnx.data");
    let len = std::fs::metadata(&data).expect("data").len();
    std::fs::OpenOptions::new().write(true).open(&data).expect("open").set_len(len - 4).expect("truncate");
    let inspect = |what: &str, failures: &mut Vec<String>| {
        let o = run_cli(&["inspect".as_ref(), model.as_os_str()]);
        let err = texts(&o).1;
        if o.status.success() || !err.contains("external data") || err.contains("panic") {
            failures.push(format!("{what} data file: {:?}, {err}", o.status.code()));
        }
    };
    inspect("a truncated", &mut failures);
    std::fs::remove_file(&data).expect("remove");
    inspect("a missing", &mut failures);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A convolution's groups span whole kernel windows (`B = 18` = 2 input channels × 3×3): written
/// as blocks of 2 along the input-channel axis with the scale repeated over the window, they are
/// the simulation's weights bit for bit in ONNX Runtime, and a group size that is not a multiple
/// of the window is refused by name.
#[test]
fn convolution_groups_are_written_as_blocks_over_kernel_windows() {
    use quantbench_core::model::OnnxModel;
    use quantbench_core::plan::{Measured, PlanFilter, QuantPlan};
    use quantbench_core::quant::Granularity;
    use quantbench_core::quant::recipe::Recipe;
    let dir = tempfile::tempdir().expect("tempdir");
    let model_path = sample("cnn", "model.onnx");
    let model = OnnxModel::load(&model_path).expect("cnn sample");
    let export = |group_size: usize| {
        let mut recipe = Recipe::new("cnn");
        recipe.weights_only = true;
        recipe.defaults.weight.bits = 4;
        for conv in ["conv1", "conv2"] {
            let mut cfg = recipe.defaults;
            cfg.weight.granularity = Granularity::PerGroup { group_size };
            recipe.layers.insert(conv.into(), cfg);
        }
        let (r, out) = (dir.path().join(format!("g{group_size}.json")), dir.path().join(format!("g{group_size}.onnx")));
        recipe.save(&r).expect("recipe");
        let o = run_cli(&[
            "quantize".as_ref(),
            model_path.as_os_str(),
            "--recipe".as_ref(),
            r.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
        ]);
        (recipe, out, o)
    };
    let (recipe, out, o) = export(18);
    assert!(o.status.success(), "{}", texts(&o).1);
    let weights = dir.path().join("g18.weights.npz");
    run_oracle("ort_weight_only.py", &["weights".as_ref(), out.as_os_str(), weights.as_os_str()]);
    let plan = QuantPlan::build(&model, &recipe, &Measured::default(), &PlanFilter::default()).expect("plan");
    for conv in ["conv1", "conv2"] {
        let lp = plan.layer(conv).expect("conv layer");
        let differ = weights_differ(&weights, &format!("{}_DequantizeLinear", lp.weight), lp);
        assert!(differ.is_none(), "{conv}: {differ:?}");
    }
    let (cosine, json) = ort_cosine(&model_path, &out, &sample("cnn", "eval.npz"));
    assert!(cosine > 0.9, "{json}");
    let (_, _, o) = export(16);
    assert!(!o.status.success());
    assert!(texts(&o).1.contains("must be a multiple of 9"), "{}", texts(&o).1);
}

/// Real-world models (tests/corpus): weight-only 4-bit blocks in both formats, the exports run in
/// ONNX Runtime beside the simulation. magika's MatMul → Add `[1, N]` becomes a float Gemm in ORT
/// (MatMulAddFusion) while its other MatMul runs as MatMulNBits with int8 input blocks: the
/// simulation predicts both.
#[test]
fn corpus_models_weight_only_run_in_ort_and_match_the_simulation() {
    let dir = tempfile::tempdir().expect("tempdir");
    run_oracle("corpus.py", &["fetch"]);
    let mut failures = Vec::new();
    for name in ["magika", "rapidocr_cls"] {
        for (split, n) in [("calib", "8"), ("eval", "16")] {
            run_oracle(
                "corpus.py",
                &["data".as_ref(), name.as_ref(), dir.path().as_os_str(), n.as_ref(), split.as_ref()],
            );
        }
        for format in ["qdq", "matmulnbits"] {
            let tag = format!("{name}_{format}");
            let file = |stem: &str, suffix: &str| dir.path().join(format!("{stem}{suffix}"));
            for suffix in [".onnx", ".npz", ".eval.npz"] {
                std::fs::copy(file(name, suffix), file(&tag, suffix)).expect("copy");
            }
            run_oracle("ort_run.py", &[file(&tag, ".onnx"), file(&tag, ".eval.npz"), file(&tag, ".ort.npz")]);
            let layers =
                quantbench_core::model::OnnxModel::load(&file(&tag, ".onnx")).expect("model").summary.layers.len();
            let flags = ["--weights-only", "--w-bits", "4", "--block-size", "32", "--weight-format", format];
            match parity_with(dir.path(), &tag, layers, [&file(&tag, ".npz"), &file(&tag, ".eval.npz")], &flags) {
                Ok(p) => check_parity(&tag, &p, &mut failures),
                Err(e) => failures.push(format!("{tag}: {e}")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
