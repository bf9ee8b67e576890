//! Supervisor mode (the default): runs workers, restarts them after a huge allocation or a hang,
//! merges their stats and prints the run's report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use quantbench_tests::fuzzing::{Target, preview, scratch_base};

use crate::Args;

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

pub(crate) fn supervise(args: &Args, dir: &Path) -> i32 {
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
