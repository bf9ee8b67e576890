//! Benchmark: peak memory of `quantbench calibrate` on 64 vs 1024 calibration samples for every
//! sample model. Memory must stay flat in the number of samples (ratio ≤ 1.2).
//!
//! Run: `cargo build -p quantbench && cargo run -p quantbench-tests --bin bench_calib_memory`

use std::path::Path;
use std::process::Command;

use ndarray::{ArrayD, Axis};
use quantbench_tests::{SAMPLE_MODELS, quantbench_bin_in, sample};

/// Writes the first `n` samples of `calib.npz` (tiled when `n` exceeds it) to `out`.
fn write_samples(name: &str, n: usize, out: &Path) {
    let mut reader =
        ndarray_npy::NpzReader::new(std::fs::File::open(sample(name, "calib.npz")).expect("open calib")).expect("npz");
    let input: ArrayD<f32> = reader.by_name("input").expect("input array");
    let have = input.len_of(Axis(0));
    let idx: Vec<usize> = (0..n).map(|i| i % have).collect();
    let tiled = input.select(Axis(0), &idx);
    let mut w = ndarray_npy::NpzWriter::new_compressed(std::fs::File::create(out).expect("create"));
    w.add_array("input", &tiled).expect("add");
    w.finish().expect("finish");
}

/// Runs the calibration in a child process and returns (peak RSS KiB, wall seconds).
fn peak_rss_kib(model: &Path, data: &Path) -> (u64, f64) {
    let start = std::time::Instant::now();
    let out = Command::new(quantbench_bin_in(std::env::current_exe().expect("exe").parent().expect("dir")))
        .args(["calibrate".as_ref(), model.as_os_str(), "--calib".as_ref(), data.as_os_str()])
        .env("QB_REPORT_PEAK_RSS", "1")
        .output()
        .expect("run quantbench");
    let secs = start.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "calibrate failed: {stderr}");
    let kib = stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak_rss_kib: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("peak RSS line");
    (kib, secs)
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    println!("| model | samples | peak RSS (MiB) | wall (s) |");
    println!("|---|---|---|---|");
    let mut worst: f64 = 0.0;
    for name in SAMPLE_MODELS {
        let mut peaks = Vec::new();
        for n in [64, 1024] {
            let data = dir.path().join(format!("{name}_{n}.npz"));
            write_samples(name, n, &data);
            let (kib, secs) = peak_rss_kib(&sample(name, "model.onnx"), &data);
            println!("| {name} | {n} | {:.1} | {secs:.2} |", kib as f64 / 1024.0);
            peaks.push(kib as f64);
        }
        let ratio = peaks[1] / peaks[0];
        worst = worst.max(ratio);
        println!("| {name} | ratio 1024/64 | {ratio:.3} | |");
    }
    println!("worst peak-memory ratio 1024/64 samples: {worst:.3} (target ≤ 1.2)");
    if worst > 1.2 {
        std::process::exit(1);
    }
}
