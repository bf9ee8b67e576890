//! Names people recognise, on a real model whose exporter named its nodes only by op type and
//! index (rapidocr_cls from the corpus: Paddle's `Conv@0` … `Conv@52`): the layers are called
//! after their weights in `inspect`, reports and recipes, and a recipe keyed by the old names
//! still loads and configures the same layers.

use quantbench_tests::{run_cli, run_oracle, texts};

#[test]
fn generic_node_names_become_recognisable_and_old_recipes_still_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    run_oracle("corpus.py", &["fetch"]);
    let d = dir.path();
    for split in ["calib", "eval"] {
        run_oracle(
            "corpus.py",
            &["data".as_ref(), "rapidocr_cls".as_ref(), d.as_os_str(), "8".as_ref(), split.as_ref()],
        );
    }
    let model = d.join("rapidocr_cls.onnx");
    let (calib, eval) = (d.join("rapidocr_cls.npz"), d.join("rapidocr_cls.eval.npz"));

    let o = run_cli(&["inspect".as_ref(), model.as_os_str()]);
    let out = texts(&o).0;
    assert!(o.status.success(), "{}", texts(&o).1);
    for name in ["conv1 ", "conv2_expand ", "conv2_depthwise ", "conv2_linear "] {
        assert!(out.contains(&format!("  {name}")), "inspect lacks layer '{name}':\n{out}");
    }
    assert!(!out.contains("Conv@"), "generic names left:\n{out}");

    // A recipe written against the file's own names (as earlier versions keyed it).
    let recipe = d.join("old.json");
    std::fs::write(
        &recipe,
        r#"{"version": 1, "model": "rapidocr_cls", "defaults": {},
            "layers": {"Conv@5": {"weight": {"bits": 4}}},
            "float_nodes": ["Conv@1"]}"#,
    )
    .expect("write recipe");
    let (out_model, report, saved) = (d.join("q.onnx"), d.join("r.json"), d.join("saved.json"));
    let mut args: Vec<&std::ffi::OsStr> = vec!["quantize".as_ref(), model.as_os_str()];
    for (flag, value) in [
        ("--calib", calib.as_os_str()),
        ("--eval", eval.as_os_str()),
        ("--recipe", recipe.as_os_str()),
        ("--float-node", "Conv@3".as_ref()),
        ("--out", out_model.as_os_str()),
        ("--report", report.as_os_str()),
        ("--save-recipe", saved.as_os_str()),
    ] {
        args.extend([flag.as_ref(), value]);
    }
    let o = run_cli(&args);
    assert!(o.status.success(), "{}", texts(&o).1);
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("json");
    let layers = r["layers"].as_array().expect("layers");
    let layer = |name: &str| layers.iter().find(|l| l["name"] == name).unwrap_or_else(|| panic!("no layer {name}"));
    assert_eq!(layer("conv2_linear")["w_bits"], 4, "the override of Conv@5 reached conv2_linear");
    assert_eq!(layer("conv1")["w_bits"], 8, "defaults elsewhere");
    for kept in ["conv2_expand", "conv2_se_1"] {
        assert!(layer(kept)["w_bits"].is_null(), "{kept} (kept float by its old name) is quantized");
    }
    assert!(layers.iter().all(|l| !l["name"].as_str().unwrap_or("").contains('@')), "old names in the report");
    // What is saved uses the new names only.
    let saved = std::fs::read_to_string(&saved).expect("saved recipe");
    assert!(saved.contains("\"conv2_linear\"") && saved.contains("\"conv2_expand\"") && !saved.contains("Conv@"));
}
