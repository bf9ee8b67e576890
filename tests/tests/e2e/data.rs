//! Data sets against the sample models: each kind of bad data gets its precise error; good
//! data streams every sample exactly once.

use std::path::{Path, PathBuf};

use ndarray::{Array1, ArrayD, Dimension as _, IxDyn};
use ndarray_npy::{NpzWriter, WritableElement};
use quantbench_core::data::{DataSet, DataSource};
use quantbench_core::model::OnnxModel;
use quantbench_tests::{SAMPLE_MODELS, sample};

fn mlp() -> OnnxModel {
    OnnxModel::load(&sample("mlp", "model.onnx")).expect("load mlp")
}

/// Writes an `.npz` with the given arrays.
fn write_npz<T: WritableElement>(dir: &Path, name: &str, arrays: &[(&str, ArrayD<T>)]) -> PathBuf {
    let p = dir.join(name);
    let mut w = NpzWriter::new(std::fs::File::create(&p).expect("create"));
    for (k, a) in arrays {
        w.add_array(*k, a).expect("add array");
    }
    w.finish().expect("finish npz");
    p
}

fn f32s(shape: &[usize]) -> ArrayD<f32> {
    ArrayD::from_shape_fn(IxDyn(shape), |ix| ix.slice().iter().sum::<usize>() as f32 * 0.01)
}

/// Opens `path` as data for the MLP and checks the error contains `expect`.
fn check_error(path: &Path, expect: &str) {
    let model = mlp();
    let source = DataSource::from_path(path).expect("known kind");
    let err = DataSet::open(source, &model.summary.inputs)
        .and_then(|set| set.batches(16)?.collect::<Result<Vec<_>, _>>().map(|_| ()))
        .expect_err("must fail");
    let msg = err.to_string();
    assert!(msg.contains(expect), "expected '{expect}' in: {msg}");
    assert!(msg.ends_with(&path.display().to_string()), "path last: {msg}");
}

#[test]
fn every_sample_set_streams_all_samples_with_labels() {
    for name in SAMPLE_MODELS {
        let model = OnnxModel::load(&sample(name, "model.onnx")).expect("load");
        for (file, min_samples) in [("calib.npz", 256), ("eval.npz", 300)] {
            let set = DataSet::open(DataSource::from_path(&sample(name, file)).expect("kind"), &model.summary.inputs)
                .unwrap_or_else(|e| panic!("{name}/{file}: {e}"));
            assert!(set.num_samples >= min_samples, "{name}/{file}: {} samples", set.num_samples);
            let mut seen = 0;
            for b in set.batches(37).expect("batches") {
                let b = b.expect("batch");
                assert_eq!(b.first_sample, seen);
                seen += b.len();
            }
            assert_eq!(seen, set.num_samples);
            if file == "eval.npz" {
                let labels = set.labels.as_ref().expect("eval sets are labelled");
                assert_eq!(labels.len(), set.num_samples);
                assert!(labels.iter().all(|l| (0..10).contains(l)));
            }
        }
    }
}

#[test]
fn streamed_batches_equal_the_whole_array() {
    let dir = tempfile::tempdir().expect("tempdir");
    let whole = f32s(&[50, 64]);
    let p = write_npz(dir.path(), "d.npz", &[("input", whole.clone())]);
    let set = DataSet::open(DataSource::Npz(p), &mlp().summary.inputs).expect("open");
    let parts: Vec<ArrayD<f32>> =
        set.batches(16).expect("batches").map(|b| b.expect("batch").inputs[0].clone()).collect();
    assert_eq!(parts.len(), 4);
    let views: Vec<_> = parts.iter().map(|a| a.view()).collect();
    let joined = ndarray::concatenate(ndarray::Axis(0), &views).expect("concat");
    assert_eq!(joined, whole);
}

#[test]
fn npy_feeds_a_single_input_model() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("x.npy");
    ndarray_npy::write_npy(&p, &f32s(&[10, 64])).expect("write npy");
    let set = DataSet::open(DataSource::from_path(&p).expect("kind"), &mlp().summary.inputs).expect("open");
    assert_eq!(set.num_samples, 10);
    assert!(set.labels.is_none());
}

#[test]
fn missing_input_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write_npz(dir.path(), "d.npz", &[("pixels", f32s(&[8, 64]))]);
    check_error(&p, "no array for model input 'input' (keys: pixels)");
}

#[test]
fn wrong_dtype() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a: ArrayD<f64> = ArrayD::zeros(IxDyn(&[8, 64]));
    let p = write_npz(dir.path(), "d.npz", &[("input", a)]);
    check_error(&p, "array 'input' has dtype float64 but model input 'input' is float32");
}

#[test]
fn wrong_shape_and_rank() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write_npz(dir.path(), "shape.npz", &[("input", f32s(&[8, 63]))]);
    check_error(&p, "array 'input' has shape [8, 63] but model input 'input' expects [batch, 64]");
    let p = write_npz(dir.path(), "rank.npz", &[("input", f32s(&[8, 8, 8]))]);
    check_error(&p, "has shape [8, 8, 8] but model input 'input' expects [batch, 64]");
}

#[test]
fn labels_of_wrong_length_or_type() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("labels.npz");
    let mut w = NpzWriter::new(std::fs::File::create(&p).expect("create"));
    w.add_array("input", &f32s(&[8, 64])).expect("add");
    w.add_array("labels", &Array1::<i64>::zeros(7)).expect("add");
    w.finish().expect("finish");
    check_error(&p, "'labels' has 7 entries for 8 samples");

    let p = dir.path().join("flabels.npz");
    let mut w = NpzWriter::new(std::fs::File::create(&p).expect("create"));
    w.add_array("input", &f32s(&[8, 64])).expect("add");
    w.add_array("labels", &Array1::<f32>::zeros(8)).expect("add");
    w.finish().expect("finish");
    check_error(&p, "'labels' has dtype float32 (expected an integer type)");
}

#[test]
fn nan_and_inf_are_located() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut a = f32s(&[40, 64]);
    a[[21, 5]] = f32::NAN;
    let p = write_npz(dir.path(), "nan.npz", &[("input", a)]);
    check_error(&p, "input 'input' sample 21 contains NaN");
    let mut a = f32s(&[40, 64]);
    a[[3, 0]] = f32::INFINITY;
    let p = write_npz(dir.path(), "inf.npz", &[("input", a)]);
    check_error(&p, "input 'input' sample 3 contains inf");
}

#[test]
fn empty_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write_npz(dir.path(), "empty.npz", &[("input", f32s(&[0, 64]))]);
    check_error(&p, "the data set is empty (0 samples)");
}

#[test]
fn sample_counts_must_agree() {
    let model = OnnxModel::load(&sample("mlp", "model.onnx")).expect("load");
    let mut inputs = model.summary.inputs.clone();
    let mut second = inputs[0].clone();
    second.name = "aux".into();
    inputs.push(second);
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write_npz(dir.path(), "counts.npz", &[("input", f32s(&[8, 64])), ("aux", f32s(&[9, 64]))]);
    let err = DataSet::open(DataSource::Npz(p), &inputs).expect_err("must fail").to_string();
    assert!(err.contains("sample counts differ: 'input' has 8 samples, 'aux' has 9"), "{err}");
}

#[test]
fn not_an_archive_and_unknown_format() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("junk.npz");
    std::fs::write(&p, "junk").expect("write");
    check_error(&p, "not a valid .npz archive");
    let p = dir.path().join("data.csv");
    std::fs::write(&p, "1,2").expect("write");
    let err = DataSource::from_path(&p).expect_err("unknown kind").to_string();
    assert!(err.contains("unknown data format"), "{err}");
}

/// Writes a uniform `w`×`h` RGB PNG.
fn write_png(path: &Path, w: u32, h: u32, rgb: [u8; 3]) {
    image::RgbImage::from_pixel(w, h, image::Rgb(rgb)).save(path).expect("save png");
}

#[test]
fn image_folder_with_class_subfolders() {
    use quantbench_core::data::Preprocess;
    let dir = tempfile::tempdir().expect("tempdir");
    for (class, files) in [("cat", 2), ("dog", 1)] {
        std::fs::create_dir(dir.path().join(class)).expect("mkdir");
        for i in 0..files {
            write_png(&dir.path().join(class).join(format!("{i}.png")), 24, 20, [255, 255, 255]);
        }
    }
    std::fs::write(dir.path().join("cat").join("notes.txt"), "ignored").expect("write");
    let model = OnnxModel::load(&sample("cnn", "model.onnx")).expect("load cnn");
    let pre = Preprocess { mean: vec![0.5], std: vec![0.25], resize_shorter: Some(18), ..Preprocess::default() };
    let set =
        DataSet::open(DataSource::Images { dir: dir.path().to_path_buf(), preprocess: pre }, &model.summary.inputs)
            .expect("open image folder");
    assert_eq!(set.num_samples, 3);
    assert_eq!(set.labels.as_deref(), Some(&[0, 0, 1][..]));
    let all = set.read_all().expect("read");
    assert_eq!(all.inputs[0].shape(), &[3, 1, 16, 16]);
    // White is 1.0 after scaling; (1.0 - 0.5) / 0.25 = 2.0.
    assert!(
        all.inputs[0].iter().all(|v| (v - 2.0).abs() < 1e-4),
        "{:?}",
        all.inputs[0].iter().take(4).collect::<Vec<_>>()
    );
}

#[test]
fn flat_image_folder_is_unlabelled_and_bad_images_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_png(&dir.path().join("a.png"), 16, 16, [0, 0, 0]);
    std::fs::write(dir.path().join("b.png"), "not a png").expect("write");
    let model = OnnxModel::load(&sample("cnn", "model.onnx")).expect("load cnn");
    let set = DataSet::open(DataSource::from_path(dir.path()).expect("kind"), &model.summary.inputs).expect("open");
    assert_eq!(set.num_samples, 2);
    assert!(set.labels.is_none());
    let err = set.read_all().expect_err("b.png is broken").to_string();
    assert!(err.contains("cannot decode image") && err.ends_with("b.png"), "{err}");
    let empty = tempfile::tempdir().expect("tempdir");
    let err = DataSet::open(DataSource::from_path(empty.path()).expect("kind"), &model.summary.inputs)
        .expect_err("empty folder")
        .to_string();
    assert!(err.contains("the data set is empty"), "{err}");
}
