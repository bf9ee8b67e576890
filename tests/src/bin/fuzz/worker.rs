//! Worker mode (`--worker-stats`): fuzzes one target in this process, writing its stats every
//! second; and replay mode (`--replay`). Both run under the allocation guard and the hang
//! watchdog, which save the running input and stop the process.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use quantbench_tests::fuzzing::{Budget, Fuzzer, Limits, Monitor, Report, fnv1a, note_file_name, repo_frame};

use crate::{Args, guard};

static MONITOR: OnceLock<Arc<Monitor>> = OnceLock::new();
static CRASH_DIR: OnceLock<PathBuf> = OnceLock::new();
static EVENT_FILE: OnceLock<PathBuf> = OnceLock::new();

/// Exit status of a worker stopped by the allocation guard.
const EXIT_ALLOC: i32 = 3;
/// Exit status of a worker stopped by the hang watchdog.
const EXIT_HANG: i32 = 4;

/// What a fuzzing process (a run or a replay) sets up first: the monitor the watchdog and the
/// allocation guard report through, an empty scratch working directory (external tensor data of
/// `fuzz.onnx` resolves against it; kept alive by the returned guard) and the loaders' limits.
fn prepare_process(args: &Args) -> (Arc<Monitor>, tempfile::TempDir, Limits) {
    let monitor = Arc::new(Monitor::default());
    let _ = MONITOR.set(Arc::clone(&monitor));
    let _ = guard::ON_TRIP.set(on_alloc_trip);
    let cwd = tempfile::Builder::new().prefix("qb-fuzz-cwd-").tempdir().expect("scratch cwd");
    std::env::set_current_dir(cwd.path()).expect("enter scratch cwd");
    let limits = Limits { stream_deadline: Duration::from_secs_f64(args.timeout / 2.0), max_declared_bytes: None };
    (monitor, cwd, limits)
}

/// Saves the running input as `<target>-<kind>-<hash>.bin` and returns the file name.
fn save_running(kind: &str) -> Option<String> {
    let m = MONITOR.get()?;
    let input = m.input.try_lock().ok()?.clone();
    let target = m.target.try_lock().map_or("unknown", |t| *t);
    let dir = CRASH_DIR.get()?;
    std::fs::create_dir_all(dir).ok()?;
    let name = format!("{target}-{kind}-{:016x}.bin", fnv1a(&input));
    std::fs::write(dir.join(&name), &input).ok()?;
    Some(name)
}

fn write_event(event: &serde_json::Value) {
    if let Some(p) = EVENT_FILE.get() {
        let _ = std::fs::write(p, event.to_string());
    }
}

fn on_alloc_trip(size: usize, live: usize) -> ! {
    let file = save_running("alloc").unwrap_or_default();
    let bt = std::backtrace::Backtrace::force_capture().to_string();
    // The first repository frame outside the fuzzer itself: the code that asked for the memory.
    let frames: Vec<String> = bt
        .lines()
        .filter_map(|l| repo_frame(l.trim_start_matches(' ')))
        .filter(|f| !f.starts_with("tests/src/bin/"))
        .collect();
    let origin = frames.first().cloned().unwrap_or_default();
    eprintln!(
        "huge allocation refused: {size} bytes requested with {live} live (--max-mb {}), at {}",
        guard::LIMIT.load(Ordering::Relaxed) >> 20,
        frames.iter().filter(|f| !f.starts_with("tests/")).cloned().collect::<Vec<_>>().join(" <- ")
    );
    write_event(&serde_json::json!({
        "kind": "alloc", "size": size, "live": live, "file": file, "origin": origin, "frames": frames,
    }));
    std::process::exit(EXIT_ALLOC);
}

fn spawn_watchdog(monitor: Arc<Monitor>, timeout: Duration) {
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(100));
            if let Some(d) = monitor.busy_for().filter(|d| *d > timeout) {
                let file = save_running("hang").unwrap_or_default();
                write_event(&serde_json::json!({"kind": "hang", "seconds": d.as_secs_f64(), "file": file}));
                std::process::exit(EXIT_HANG);
            }
        }
    });
}

fn write_stats(path: &Path, report: &Report, dir: &Path) {
    let mut v = report.to_json();
    v["peak_heap"] = guard::peak().into();
    // Example inputs of the notes and the slowest input, for the supervisor's report.
    for (_, input) in report.notes.values() {
        let _ = std::fs::write(dir.join(note_file_name(report.target, input)), input);
    }
    if let Some((_, input)) = report.slowest.first() {
        let name = format!("{}-slowest-{:016x}.bin", report.target.name(), fnv1a(input));
        if std::fs::write(dir.join(&name), input).is_ok() {
            v["slowest_file"] = name.into();
        }
    }
    let tmp = path.with_extension("tmp");
    if std::fs::write(&tmp, v.to_string()).and_then(|()| std::fs::rename(&tmp, path)).is_err() {
        eprintln!("fuzz worker: cannot write {}", path.display());
    }
}

pub(crate) fn worker(args: &Args, stats: &Path, dir: &Path) {
    let target = args.targets[0];
    std::fs::create_dir_all(dir).expect("create the crash dir");
    let _ = CRASH_DIR.set(dir.to_path_buf());
    let _ = EVENT_FILE.set(stats.with_extension("event"));
    let (monitor, _cwd, limits) = prepare_process(args);
    let mut corpus_dirs = args.corpus.clone();
    corpus_dirs.extend(args.save_corpus.clone());
    let mut fuzzer = Fuzzer::new(target, args.seed, &corpus_dirs, limits)
        .with_monitor(Arc::clone(&monitor))
        .with_crash_dir(dir.to_path_buf());
    // The limit applies to fuzzing only: the seeds (and their calibration) are made without it.
    guard::LIMIT.store(args.max_mb.saturating_mul(1 << 20), Ordering::Relaxed);
    spawn_watchdog(Arc::clone(&monitor), Duration::from_secs_f64(args.timeout));
    let start = Instant::now();
    let total = Duration::from_secs_f64(args.seconds);
    while start.elapsed() < total {
        let step = total.saturating_sub(start.elapsed()).min(Duration::from_secs(1));
        fuzzer.run(Budget::Time(step));
        write_stats(stats, fuzzer.report(), dir);
        if let Some(d) = &args.save_corpus {
            save_corpus(d, fuzzer.discovered());
        }
    }
    write_stats(stats, fuzzer.report(), dir);
}

/// Adds `inputs` to the corpus directory `dir`, named by content hash (inputs up to 128 KiB,
/// at most 512 files).
fn save_corpus(dir: &Path, inputs: &[Vec<u8>]) {
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let have = std::fs::read_dir(dir).map_or(0, Iterator::count);
    for input in inputs.iter().filter(|i| i.len() <= 128 << 10).take(512usize.saturating_sub(have)) {
        let p = dir.join(format!("{:016x}", fnv1a(input)));
        if !p.exists() {
            let _ = std::fs::write(p, input);
        }
    }
}

/// Runs each `--replay` file once under the allocation guard and the watchdog; prints what
/// happened. Exit status 1 when one panicked.
pub(crate) fn replay(args: &Args) -> i32 {
    let [target] = args.targets[..] else {
        eprintln!("error: --replay needs one target, not all");
        return 2;
    };
    let (monitor, _cwd, limits) = prepare_process(args);
    let mut fuzzer = Fuzzer::new(target, args.seed, &[], limits).with_monitor(Arc::clone(&monitor));
    guard::LIMIT.store(args.max_mb.saturating_mul(1 << 20), Ordering::Relaxed);
    spawn_watchdog(Arc::clone(&monitor), Duration::from_secs_f64(args.timeout));
    let mut status = 0;
    for p in &args.replay {
        let Ok(bytes) = std::fs::read(p) else {
            eprintln!("error: cannot read {}", p.display());
            return 2;
        };
        let start = Instant::now();
        match fuzzer.execute(bytes) {
            Some((message, place)) => {
                println!("{}: PANIC at {place}: {message}", p.display());
                status = 1;
            }
            None => println!("{}: no panic ({:.1} ms)", p.display(), start.elapsed().as_secs_f64() * 1e3),
        }
    }
    for (note, (n, _)) in &fuzzer.report().notes {
        println!("note ({n}×): {note}");
    }
    status
}
