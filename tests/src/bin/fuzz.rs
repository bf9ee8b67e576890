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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use quantbench_tests::fuzzing::{
    Budget, Fuzzer, Limits, Monitor, Report, Target, fnv1a, note_file_name, preview, repo_frame, scratch_base,
};

/// Counts live heap bytes and refuses (reporting the running input) any allocation that would
/// take the process past the limit, so a loader that trusts a size field cannot take the machine
/// down.
mod guard {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// Live-bytes limit (`usize::MAX` until `main` sets it).
    pub static LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);
    static LIVE: AtomicUsize = AtomicUsize::new(0);
    static PEAK: AtomicUsize = AtomicUsize::new(0);
    static TRIPPED: AtomicBool = AtomicBool::new(false);
    /// Called once, with the refused size, when the limit is hit; it must not return.
    pub static ON_TRIP: std::sync::OnceLock<fn(usize, usize) -> !> = std::sync::OnceLock::new();

    /// Peak live heap bytes so far.
    pub fn peak() -> usize {
        PEAK.load(Ordering::Relaxed)
    }

    pub struct Guard;

    fn admit(size: usize) -> bool {
        let live = LIVE.load(Ordering::Relaxed);
        if TRIPPED.load(Ordering::Relaxed) || live.saturating_add(size) <= LIMIT.load(Ordering::Relaxed) {
            return true;
        }
        if !TRIPPED.swap(true, Ordering::SeqCst)
            && let Some(f) = ON_TRIP.get()
        {
            f(size, live);
        }
        false
    }

    fn grew(size: usize) {
        let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
        PEAK.fetch_max(live, Ordering::Relaxed);
    }

    // SAFETY: every method forwards to the system allocator with the caller's layout and
    // pointer; the counters are plain atomics, and a refused request returns null, which the
    // `GlobalAlloc` contract allows.
    #[allow(unsafe_code)]
    unsafe impl GlobalAlloc for Guard {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            if !admit(layout.size()) {
                return std::ptr::null_mut();
            }
            // SAFETY: forwarded as is.
            let p = unsafe { System.alloc(layout) };
            if !p.is_null() {
                grew(layout.size());
            }
            p
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            if !admit(layout.size()) {
                return std::ptr::null_mut();
            }
            // SAFETY: forwarded as is.
            let p = unsafe { System.alloc_zeroed(layout) };
            if !p.is_null() {
                grew(layout.size());
            }
            p
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: forwarded as is.
            unsafe { System.dealloc(ptr, layout) };
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            if new_size > layout.size() && !admit(new_size - layout.size()) {
                return std::ptr::null_mut();
            }
            // SAFETY: forwarded as is.
            let p = unsafe { System.realloc(ptr, layout, new_size) };
            if !p.is_null() {
                if new_size >= layout.size() {
                    grew(new_size - layout.size());
                } else {
                    LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
                }
            }
            p
        }
    }
}

#[global_allocator]
static GLOBAL: guard::Guard = guard::Guard;

static MONITOR: OnceLock<Arc<Monitor>> = OnceLock::new();
static CRASH_DIR: OnceLock<PathBuf> = OnceLock::new();
static EVENT_FILE: OnceLock<PathBuf> = OnceLock::new();

/// Exit status of a worker stopped by the allocation guard.
const EXIT_ALLOC: i32 = 3;
/// Exit status of a worker stopped by the hang watchdog.
const EXIT_HANG: i32 = 4;

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

// ---------------------------------------------------------------------------------------------
// Worker: fuzzes one target in this process, writing its stats every second
// ---------------------------------------------------------------------------------------------

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

fn worker(args: &Args, stats: &Path, dir: &Path) {
    let target = args.targets[0];
    std::fs::create_dir_all(dir).expect("create the crash dir");
    let _ = CRASH_DIR.set(dir.to_path_buf());
    let _ = EVENT_FILE.set(stats.with_extension("event"));
    let monitor = Arc::new(Monitor::default());
    let _ = MONITOR.set(Arc::clone(&monitor));
    let _ = guard::ON_TRIP.set(on_alloc_trip);
    // External tensor data of `fuzz.onnx` resolves against the working directory: make it an
    // empty scratch directory.
    let cwd = tempfile::Builder::new().prefix("qb-fuzz-cwd-").tempdir().expect("scratch cwd");
    std::env::set_current_dir(cwd.path()).expect("enter scratch cwd");
    let limits = Limits { stream_deadline: Duration::from_secs_f64(args.timeout / 2.0), max_declared_bytes: None };
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
fn replay(args: &Args) -> i32 {
    let [target] = args.targets[..] else {
        eprintln!("error: --replay needs one target, not all");
        return 2;
    };
    let monitor = Arc::new(Monitor::default());
    let _ = MONITOR.set(Arc::clone(&monitor));
    let _ = guard::ON_TRIP.set(on_alloc_trip);
    let cwd = tempfile::Builder::new().prefix("qb-fuzz-cwd-").tempdir().expect("scratch cwd");
    std::env::set_current_dir(cwd.path()).expect("enter scratch cwd");
    let limits = Limits { stream_deadline: Duration::from_secs_f64(args.timeout / 2.0), max_declared_bytes: None };
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

// ---------------------------------------------------------------------------------------------
// Supervisor: runs workers, restarts them after a huge allocation or a hang, merges their stats
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Totals {
    execs: u64,
    fuzz_secs: f64,
    workers: u32,
    /// Panics by place: (message, hits, smallest file, its length).
    panics: BTreeMap<String, (String, u64, String, u64)>,
    /// Huge allocations and hangs by place: (description, count, example file).
    stops: BTreeMap<String, (String, u64, String)>,
    /// Slowest inputs: (ms, length, file or hash).
    slowest: Vec<(f64, u64, String)>,
    caught: BTreeMap<String, u64>,
    notes: BTreeMap<String, (u64, String)>,
    corpus: u64,
    outcomes: u64,
    peak_heap: u64,
}

impl Totals {
    fn add_stats(&mut self, v: &serde_json::Value) {
        let u = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
        let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
        self.execs += u(&v["execs"]);
        self.fuzz_secs += v["elapsed"].as_f64().unwrap_or(0.0);
        self.corpus = self.corpus.max(u(&v["corpus"]));
        self.outcomes = self.outcomes.max(u(&v["outcomes"]));
        self.peak_heap = self.peak_heap.max(u(&v["peak_heap"]));
        for f in v["findings"].as_array().into_iter().flatten() {
            let e =
                self.panics.entry(s(&f["place"])).or_insert_with(|| (s(&f["message"]), 0, s(&f["file"]), u(&f["len"])));
            e.1 += u(&f["hits"]);
            if u(&f["len"]) < e.3 {
                (e.0, e.2, e.3) = (s(&f["message"]), s(&f["file"]), u(&f["len"]));
            }
        }
        for (i, x) in v["slowest"].as_array().into_iter().flatten().enumerate() {
            let file = if i == 0 { s(&v["slowest_file"]) } else { format!("hash {}", s(&x["hash"])) };
            self.slowest.push((x["ms"].as_f64().unwrap_or(0.0), u(&x["len"]), file));
        }
        self.slowest.sort_by(|a, b| b.0.total_cmp(&a.0));
        self.slowest.truncate(5);
        for (k, n) in v["caught_inside"].as_object().into_iter().flatten() {
            *self.caught.entry(k.clone()).or_default() += u(n);
        }
        for (k, n) in v["notes"].as_object().into_iter().flatten() {
            let e = self.notes.entry(k.clone()).or_insert_with(|| (0, s(&n["file"])));
            e.0 += u(&n["count"]);
        }
    }

    fn add_event(&mut self, v: &serde_json::Value) {
        let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
        let (place, what) = match v["kind"].as_str() {
            Some("alloc") => (
                format!(
                    "huge allocation at {}",
                    v["frames"]
                        .as_array()
                        .map(|f| f
                            .iter()
                            .map(s)
                            .filter(|f| !f.starts_with("tests/"))
                            .take(2)
                            .collect::<Vec<_>>()
                            .join(" <- "))
                        .unwrap_or_default()
                ),
                format!(
                    "refused a request for {} bytes ({:.1} GiB); repository frames: {}",
                    v["size"],
                    v["size"].as_f64().unwrap_or(0.0) / f64::from(1 << 30),
                    v["frames"]
                        .as_array()
                        .map(|f| f.iter().map(s).filter(|f| !f.starts_with("tests/")).collect::<Vec<_>>().join(" <- "))
                        .unwrap_or_default()
                ),
            ),
            _ => ("hang".to_string(), format!("one input ran for {:.1} s", v["seconds"].as_f64().unwrap_or(0.0))),
        };
        let e = self.stops.entry(place).or_insert_with(|| (what, 0, s(&v["file"])));
        e.1 += 1;
    }
}

/// Runs `target` for `seconds` in workers, restarting them (with a new seed) when one is stopped
/// by the allocation guard or the hang watchdog.
fn run_slice(args: &Args, exe: &Path, target: Target, seconds: f64, seed: u64, scratch: &Path, totals: &mut Totals) {
    let start = Instant::now();
    let mut attempt = 0u64;
    loop {
        let left = seconds - start.elapsed().as_secs_f64();
        if left < 0.5 {
            return;
        }
        let stats = scratch.join(format!("{}-{}.json", target.name(), totals.workers));
        let event = stats.with_extension("event");
        totals.workers += 1;
        let mut cmd = std::process::Command::new(exe);
        cmd.arg(target.name())
            .args(["--seconds", &format!("{left:.3}"), "--seed", &(seed + attempt * 7919).to_string()])
            .args(["--timeout", &args.timeout.to_string(), "--max-mb", &args.max_mb.to_string()])
            .arg("--worker-stats")
            .arg(&stats)
            .stdin(std::process::Stdio::null());
        for c in &args.corpus {
            cmd.arg("--corpus").arg(c);
        }
        // Inputs a worker discovers seed the next worker of the target (rounds, restarts).
        cmd.arg("--worker-corpus").arg(scratch.join("corpus").join(target.name()));
        let tmp = scratch.join("tmp");
        let _ = std::fs::create_dir_all(&tmp);
        cmd.env("QB_FUZZ_TMP", &tmp).env("TMPDIR", &tmp);
        let status = cmd.status().expect("run a fuzz worker");
        if let Ok(text) = std::fs::read_to_string(&stats) {
            totals.add_stats(&serde_json::from_str(&text).unwrap_or_default());
        }
        match std::fs::read_to_string(&event) {
            Ok(text) => totals.add_event(&serde_json::from_str(&text).unwrap_or_default()),
            Err(_) if status.success() => return,
            Err(_) => {
                totals
                    .stops
                    .entry(format!("worker exited with {status}"))
                    .or_insert_with(|| (String::new(), 0, String::new()))
                    .1 += 1;
            }
        }
        attempt += 1;
    }
}

/// A path to this executable that stays valid (same file) if cargo rebuilds it during the run:
/// workers exec it, and symbolize their backtraces from it. A hard link next to the crash dir,
/// else a copy in `scratch`, else the current path.
fn pinned_exe(dir: &Path, scratch: &Path) -> PathBuf {
    let exe = std::env::current_exe().expect("own path");
    let link = dir.join(format!(".fuzz-exe-{}", std::process::id()));
    if std::fs::create_dir_all(dir).and_then(|()| std::fs::hard_link(&exe, &link)).is_ok() {
        return link;
    }
    let copy = scratch.join("fuzz-exe");
    if std::fs::copy(&exe, &copy).is_ok() { copy } else { exe }
}

fn supervise(args: &Args, dir: &Path) -> i32 {
    // Stats, carried-over corpora and the workers' scratch files; removed at the end (a worker
    // stopped by the guard or the watchdog cannot clean up after itself).
    let scratch = tempfile::Builder::new().prefix("qb-fuzz-run-").tempdir_in(scratch_base()).expect("scratch dir");
    let exe = pinned_exe(dir, scratch.path());
    println!(
        "fuzzing {} for {:.0} s, seed {}, reproducers in {}",
        args.targets.iter().map(|t| t.name()).collect::<Vec<_>>().join(", "),
        args.seconds,
        args.seed,
        dir.display()
    );
    let mut totals: BTreeMap<Target, Totals> = args.targets.iter().map(|&t| (t, Totals::default())).collect();
    // Round robin: each target gets an equal share, in slices of at most 30 s (one slice when
    // there is one target).
    let share = args.seconds / args.targets.len() as f64;
    let rounds = if args.targets.len() == 1 { 1.0 } else { (share / 30.0).ceil().max(1.0) };
    for round in 0..rounds as u64 {
        for &t in &args.targets {
            let tot = totals.get_mut(&t).expect("target totals");
            run_slice(args, &exe, t, share / rounds, args.seed + round * 104_729, scratch.path(), tot);
        }
    }
    println!("\n| target | executions | exec/s | unique panics | huge allocations / hangs | slowest input |");
    println!("|---|---|---|---|---|---|");
    for (t, r) in &totals {
        println!(
            "| {} | {} | {:.0} | {} | {} | {:.1} ms |",
            t.name(),
            r.execs,
            r.execs as f64 / r.fuzz_secs.max(1e-9),
            r.panics.len(),
            r.stops.len(),
            r.slowest.first().map_or(0.0, |s| s.0)
        );
    }
    let mut failures = 0;
    for (t, r) in &totals {
        println!(
            "\n{}: {} executions in {:.1} s of fuzzing, {} worker(s), corpus {}, {} distinct outcomes, peak heap {:.1} MiB",
            t.name(),
            r.execs,
            r.fuzz_secs,
            r.workers,
            r.corpus,
            r.outcomes,
            r.peak_heap as f64 / f64::from(1 << 20)
        );
        for (place, (message, hits, file, len)) in &r.panics {
            let preview = std::fs::read(dir.join(file)).map(|b| preview(&b)).unwrap_or_default();
            println!("  PANIC at {place} ({hits} hits): {message}");
            println!("    reproducer ({len} bytes): {}\n    {preview}", dir.join(file).display());
        }
        for (place, (what, n, file)) in &r.stops {
            println!("  STOPPED ({n}×): {place}: {what}");
            if !file.is_empty() {
                let preview = std::fs::read(dir.join(file)).map(|b| preview(&b)).unwrap_or_default();
                println!("    reproducer: {}\n    {preview}", dir.join(file).display());
            }
        }
        for (ms, len, file) in &r.slowest {
            println!("  slow input: {ms:.1} ms, {len} bytes ({file})");
        }
        for (place, n) in &r.caught {
            println!("  panic caught inside the code under test ({n}×): {place}");
        }
        for (note, (n, file)) in &r.notes {
            println!("  NOTE ({n}×): {note}\n    example: {}", dir.join(file).display());
        }
        failures += r.panics.len() + r.stops.len();
    }
    if exe.starts_with(dir) {
        let _ = std::fs::remove_file(&exe);
    }
    if failures > 0 {
        println!("\n{failures} problem(s) found");
        1
    } else {
        0
    }
}
