//! Mutation fuzzer for the loaders of untrusted files (see `quantbench_tests::fuzzing`).
//!
//! ```text
//! fuzz <model|npz|npy|recipe|all> [--seconds N] [--seed S] [--corpus DIR] [--timeout SECS] [--max-mb MB]
//! fuzz <model|npz|npy|recipe> --replay FILE [--replay FILE ...]
//! ```
//!
//! The fuzzing runs in worker processes (this binary with `--worker-stats`), so that a worker
//! stopped by the allocation guard or the hang watchdog is reported and replaced (with another
//! seed) while the run goes on; `all` gives each target an equal share of `--seconds`, round
//! robin. Every input runs under `catch_unwind`; a panicking input is saved at once to
//! `$CARGO_TARGET_DIR/fuzz-crashes/<target>-<hash>.bin` (next to this binary's target dir, else
//! the temp dir). An input that runs longer than `--timeout` (default 10 s; data streaming is cut
//! at half of it) or asks for more than `--max-mb` of heap (default 2048 MiB) is saved as
//! `<target>-hang-<hash>.bin` / `<target>-alloc-<hash>.bin`. The slowest input and an example of
//! every note are saved there too. Exit status: 0 clean, 1 problems found, 2 bad usage.
//!
//! Run: `cargo run -p quantbench-tests --bin fuzz -- all --seconds 60`

mod guard;
mod supervisor;
mod worker;

use std::path::{Path, PathBuf};

use quantbench_tests::fuzzing::Target;

use supervisor::supervise;
use worker::{replay, worker};

#[global_allocator]
static GLOBAL: guard::Guard = guard::Guard;

struct Args {
    targets: Vec<Target>,
    seconds: f64,
    seed: u64,
    corpus: Vec<PathBuf>,
    /// Worker mode: where to add the inputs that reached new outcomes (read back by the next
    /// worker of the same target).
    save_corpus: Option<PathBuf>,
    timeout: f64,
    max_mb: usize,
    /// Worker mode: run one target and write stats to this file.
    stats: Option<PathBuf>,
    /// Replay mode: run these files once each.
    replay: Vec<PathBuf>,
}

const USAGE: &str =
    "usage: fuzz <model|npz|npy|recipe|all> [--seconds N] [--seed S] [--corpus DIR] [--timeout SECS] [--max-mb MB]
       fuzz <model|npz|npy|recipe> --replay FILE [--replay FILE ...]";

fn num<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value.parse().map_err(|_| format!("bad value for {flag}: {value}"))
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let target = it.next().ok_or("missing target")?;
    let targets = if target == "all" {
        Target::ALL.to_vec()
    } else {
        vec![Target::from_name(&target).ok_or_else(|| format!("unknown target '{target}'"))?]
    };
    let mut args = Args {
        targets,
        seconds: 10.0,
        seed: 1,
        corpus: Vec::new(),
        save_corpus: None,
        timeout: 10.0,
        max_mb: 2048,
        stats: None,
        replay: Vec::new(),
    };
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let path = || std::path::absolute(&value).map_err(|e| format!("bad path {value}: {e}"));
        match flag.as_str() {
            "--seconds" => args.seconds = num(&flag, &value)?,
            "--seed" => args.seed = num(&flag, &value)?,
            "--corpus" => args.corpus.push(path()?),
            "--worker-corpus" => args.save_corpus = Some(path()?),
            "--timeout" => args.timeout = num(&flag, &value)?,
            "--max-mb" => args.max_mb = num(&flag, &value)?,
            "--worker-stats" => args.stats = Some(path()?),
            "--replay" => args.replay.push(path()?),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if !(args.seconds > 0.0 && args.timeout > 0.0) {
        return Err("--seconds and --timeout must be positive".into());
    }
    Ok(args)
}

/// `$CARGO_TARGET_DIR/fuzz-crashes`, else `<target dir of this binary>/fuzz-crashes`, else the
/// temp dir's.
fn crash_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        return std::path::absolute(PathBuf::from(d)).unwrap_or_default().join("fuzz-crashes");
    }
    let exe = std::env::current_exe().ok();
    if let Some(target) = exe.as_deref().and_then(Path::parent).and_then(Path::parent)
        && target.join("CACHEDIR.TAG").is_file()
    {
        return target.join("fuzz-crashes");
    }
    std::env::temp_dir().join("fuzz-crashes")
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let dir = crash_dir();
    if !args.replay.is_empty() {
        std::process::exit(replay(&args));
    }
    if let Some(stats) = &args.stats {
        worker(&args, stats, &dir);
    } else {
        std::process::exit(supervise(&args, &dir));
    }
}
