//! Hostile arguments besides the model: bad calibration and evaluation data, bad recipes,
//! unwritable output places and bad input shapes.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use ndarray::{ArrayD, IxDyn};
use quantbench_tests::onnx_build::write_model;
use quantbench_tests::sample;

use super::{f32s, fails_cleanly, listing, mlp_data, random_bytes, subcommands, two_input_model, write_npz};

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
