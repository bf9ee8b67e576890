//! Shared helpers for the end-to-end tests: locating the repository, the sample models, the
//! `quantbench` binary and the Python oracle, and running them.

pub mod fuzzing;
pub mod onnx_build;
pub mod sim_tensors;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The sample models every end-to-end test covers.
pub const SAMPLE_MODELS: [&str; 4] = ["mlp", "cnn", "mobilenet", "transformer"];

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `sample_models/<name>/<file>`.
pub fn sample(name: &str, file: &str) -> PathBuf {
    repo_root().join("sample_models").join(name).join(file)
}

/// The `quantbench` binary of the current build: cargo builds it for the end-to-end tests (the
/// `quantbench` package's `e2e` test) and says where (`CARGO_BIN_EXE_quantbench`, set while the
/// test runs).
pub fn quantbench_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("CARGO_BIN_EXE_quantbench") {
        return PathBuf::from(bin);
    }
    // Run outside cargo: current_exe is <target>/<profile>/deps/e2e-<hash>.
    let exe = std::env::current_exe().expect("current exe");
    quantbench_bin_in(exe.parent().and_then(Path::parent).expect("target profile dir"))
}

/// The `quantbench` binary in a target profile directory (e.g. `target/debug`).
pub fn quantbench_bin_in(profile_dir: &Path) -> PathBuf {
    let bin = profile_dir.join(format!("quantbench{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} is missing: run the end-to-end tests through cargo (`cargo test -p quantbench --test e2e`), which builds it",
        bin.display()
    );
    bin
}

/// Runs `quantbench` with `args` and no stdin.
pub fn run_cli<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new(quantbench_bin()).args(args).stdin(std::process::Stdio::null()).output().expect("spawn quantbench")
}

/// The Python interpreter of the oracle venv: `QB_PYTHON`, or the default venv that
/// `scripts/test.sh` creates.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("QB_PYTHON") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    let p = home.join(".cache/quantbench/venv/bin/python");
    assert!(
        p.is_file(),
        "the ONNX Runtime oracle needs its Python venv, which is missing: run `bash scripts/python-env.sh` from \
         the repository root once (it creates {} from tests/requirements.txt; scripts/test.sh does it too), or \
         set QB_PYTHON to a Python that has those packages",
        p.display()
    );
    p
}

/// Runs a script of `tests/oracle/` with the oracle Python; panics with its stderr on failure.
pub fn run_oracle<S: AsRef<std::ffi::OsStr>>(script: &str, args: &[S]) -> String {
    let out = Command::new(python())
        .arg(repo_root().join("tests").join("oracle").join(script))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("spawn python");
    assert!(out.status.success(), "oracle {script} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Stdout and stderr of a finished command as text.
pub fn texts(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The arguments `COMMAND MODEL --calib CALIB --eval EVAL` for sample `name`, then `rest`.
fn sample_args(command: &str, name: &str, rest: &[&std::ffi::OsStr]) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = vec![
        command.into(),
        sample(name, "model.onnx").into(),
        "--calib".into(),
        sample(name, "calib.npz").into(),
        "--eval".into(),
        sample(name, "eval.npz").into(),
    ];
    args.extend(rest.iter().map(Into::into));
    args
}

/// Runs `quantbench analyze` on sample `name` with its calib and eval sets, writing `report`;
/// `extra` adds flags. Returns the finished command (it may have failed).
pub fn analyze_sample(name: &str, report: &Path, extra: &[&str]) -> Output {
    let mut args = sample_args("analyze", name, &["--report".as_ref(), report.as_os_str()]);
    args.extend(extra.iter().map(Into::into));
    run_cli(&args)
}

/// Runs `quantbench quantize` on sample `name` with its calib and eval sets, writing
/// `<dir>/<name>_<tag>.onnx` and its report; `extra` adds flags. Returns (model path, report).
pub fn quantize_sample(name: &str, dir: &Path, tag: &str, extra: &[&str]) -> (PathBuf, serde_json::Value) {
    let out = dir.join(format!("{name}_{tag}.onnx"));
    let report = dir.join(format!("{name}_{tag}.json"));
    let mut args =
        sample_args("quantize", name, &["--out".as_ref(), out.as_os_str(), "--report".as_ref(), report.as_os_str()]);
    args.extend(extra.iter().map(Into::into));
    let o = run_cli(&args);
    assert!(o.status.success(), "{name} {tag}: {}", texts(&o).1);
    let json = serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("report JSON");
    (out, json)
}
