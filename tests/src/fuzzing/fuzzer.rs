//! The fuzzer: a corpus, a PRNG and a target; runs inputs under `catch_unwind`, keeps those
//! that reach new outcomes, and records panics, slow inputs and notes in its `Report`.

use std::collections::{BTreeMap, BTreeSet};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::panics::{FUZZING, PANICS, PanicRecord, short_location};
use super::{
    Context, Finding, Limits, Monitor, Report, Rng, Target, declared_array_sizes, fnv1a, generated_seeds,
    install_panic_hook, mutate_bytes, mutate_json_text, mutate_model_bytes, mutate_npy_bytes, mutate_npz,
    parse_stored_zip,
};
use crate::repo_root;

/// How long a run lasts.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    /// A number of executions (seeds first, then mutants).
    Execs(u64),
    /// A wall-clock time.
    Time(Duration),
}

const MAX_CORPUS: usize = 512;
const MAX_INPUT: usize = 1 << 20;
const SLOWEST_KEPT: usize = 5;

/// A mutation fuzzer for one target.
pub struct Fuzzer {
    ctx: Context,
    rng: Rng,
    corpus: Vec<Vec<u8>>,
    seeds: usize,
    next_seed: usize,
    outcomes: BTreeSet<String>,
    report: Report,
    monitor: Option<Arc<Monitor>>,
    crash_dir: Option<PathBuf>,
    npz_members: Vec<(String, Vec<u8>)>,
}

impl Fuzzer {
    /// A fuzzer for `target` with PRNG `seed`, seeded from the generated seeds, the committed
    /// corpus (`tests/fuzz_corpus/<target>`) and the files of each `extra_corpus` directory (its
    /// `<target>` sub-directory is used when there is one).
    pub fn new(target: Target, seed: u64, extra_corpus: &[PathBuf], limits: Limits) -> Self {
        install_panic_hook();
        let ctx = Context::new(target, limits);
        let mut corpus = generated_seeds(target, ctx.scratch.path());
        for dir in std::iter::once(repo_root().join("tests").join("fuzz_corpus")).chain(extra_corpus.iter().cloned()) {
            let sub = dir.join(target.name());
            corpus.extend(read_dir_files(if sub.is_dir() { &sub } else { &dir }));
        }
        corpus.retain(|c| c.len() <= MAX_INPUT);
        let npz_members = corpus.iter().filter_map(|c| parse_stored_zip(c)).flatten().collect();
        let seeds = corpus.len();
        Self {
            ctx,
            rng: Rng::new(seed ^ fnv1a(target.name().as_bytes())),
            corpus,
            seeds,
            next_seed: 0,
            outcomes: BTreeSet::new(),
            report: Report {
                target,
                execs: 0,
                elapsed: Duration::ZERO,
                findings: Vec::new(),
                slowest: Vec::new(),
                corpus: 0,
                outcomes: 0,
                caught_inside: BTreeMap::new(),
                skipped: 0,
                notes: BTreeMap::new(),
            },
            monitor: None,
            crash_dir: None,
            npz_members,
        }
    }

    /// Publishes the running input to `monitor` (for a watchdog or an allocation guard).
    #[must_use]
    pub fn with_monitor(mut self, monitor: Arc<Monitor>) -> Self {
        self.monitor = Some(monitor);
        self
    }

    /// Saves each panicking input to `dir` as soon as it is found (and its smaller versions).
    #[must_use]
    pub fn with_crash_dir(mut self, dir: PathBuf) -> Self {
        self.crash_dir = Some(dir);
        self
    }

    /// The inputs that joined the corpus by reaching a new outcome (not the seeds).
    pub fn discovered(&self) -> &[Vec<u8>] {
        &self.corpus[self.seeds.min(self.corpus.len())..]
    }

    /// Number of seeds.
    pub fn seeds(&self) -> usize {
        self.seeds
    }

    /// Runs until the budget is spent (or the monitor says stop); may be called repeatedly,
    /// the report accumulates.
    pub fn run(&mut self, budget: Budget) -> &Report {
        let start = Instant::now();
        let mut done = 0u64;
        loop {
            let over = match budget {
                Budget::Execs(n) => done >= n,
                Budget::Time(t) => start.elapsed() >= t,
            };
            if over || self.monitor.as_ref().is_some_and(|m| m.stop.load(Ordering::Relaxed)) {
                break;
            }
            let input = if self.next_seed < self.seeds {
                self.next_seed += 1;
                self.corpus[self.next_seed - 1].clone()
            } else {
                self.mutant()
            };
            self.execute(input);
            done += 1;
        }
        self.report.elapsed += start.elapsed();
        self.report.corpus = self.corpus.len();
        self.report.outcomes = self.outcomes.len();
        &self.report
    }

    /// The report so far.
    pub fn report(&self) -> &Report {
        &self.report
    }

    /// Runs one input (no mutation) and records what happens; returns the panic, if any.
    pub fn execute(&mut self, input: Vec<u8>) -> Option<(String, String)> {
        if let (Some(cap), Target::Npz | Target::Npy) = (self.ctx.limits.max_declared_bytes, self.ctx.target)
            && declared_array_sizes(&input).iter().any(|s| s.is_some_and(|s| s > cap))
        {
            self.report.skipped += 1;
            return None;
        }
        if let Some(m) = &self.monitor {
            {
                let mut cur = m.input.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                cur.clear();
                cur.extend_from_slice(&input);
            }
            *m.target.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = self.ctx.target.name();
            let since = m.epoch().elapsed().as_millis() as u64 + 1;
            m.busy_since_ms.store(since, Ordering::Release);
        }
        PANICS.with(|p| p.borrow_mut().clear());
        FUZZING.with(|f| f.set(true));
        let mut notes = Vec::new();
        let start = Instant::now();
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| self.ctx.execute(&input, &mut notes)));
        let took = start.elapsed();
        FUZZING.with(|f| f.set(false));
        if let Some(m) = &self.monitor {
            m.busy_since_ms.store(0, Ordering::Release);
            m.execs.fetch_add(1, Ordering::Relaxed);
        }
        self.report.execs += 1;
        let mut panics = PANICS.with(|p| std::mem::take(&mut *p.borrow_mut()));
        let escaped = if result.is_err() { panics.pop() } else { None };
        for p in panics {
            let origin = p.origin();
            let place = if origin.is_empty() { p.location } else { format!("{} (called from {origin})", p.location) };
            *self.report.caught_inside.entry(place).or_default() += 1;
        }
        for note in notes {
            let e = self.report.notes.entry(note).or_insert_with(|| (0, input.clone()));
            e.0 += 1;
            if input.len() < e.1.len() {
                e.1.clone_from(&input);
            }
        }
        self.record_time(took, &input);
        if let Ok(outcome) = result {
            if self.outcomes.insert(outcome) && self.next_seed >= self.seeds {
                self.add_to_corpus(input);
            }
            return None;
        }
        let p = escaped.unwrap_or_else(|| PanicRecord {
            message: "<panic not seen by the hook>".into(),
            location: "?".into(),
            backtrace: None,
        });
        let f = self.record_finding(p, input);
        Some((f.message.clone(), f.place()))
    }

    fn record_time(&mut self, took: Duration, input: &[u8]) {
        let slowest = &mut self.report.slowest;
        if slowest.len() < SLOWEST_KEPT || slowest.last().is_some_and(|(d, _)| took > *d) {
            slowest.push((took, input.to_vec()));
            slowest.sort_by_key(|s| std::cmp::Reverse(s.0));
            slowest.truncate(SLOWEST_KEPT);
        }
    }

    fn record_finding(&mut self, p: PanicRecord, input: Vec<u8>) -> &Finding {
        let target = self.ctx.target;
        let location = short_location(&p.location);
        let origin = p.origin();
        let findings = &mut self.report.findings;
        let i = if let Some(i) = findings.iter().position(|f| f.location == location && f.origin == origin) {
            let f = &mut findings[i];
            f.hits += 1;
            if input.len() >= f.input.len() {
                return &findings[i];
            }
            if let Some(dir) = &self.crash_dir {
                let _ = std::fs::remove_file(dir.join(f.file_name()));
            }
            f.input = input;
            f.message = p.message;
            i
        } else {
            findings.push(Finding { target, message: p.message, location, origin, input, hits: 1 });
            findings.len() - 1
        };
        if let Some(dir) = &self.crash_dir {
            let f = &findings[i];
            if std::fs::create_dir_all(dir).and_then(|()| std::fs::write(dir.join(f.file_name()), &f.input)).is_err() {
                eprintln!("cannot save a reproducer to {}", dir.display());
            }
        }
        &findings[i]
    }

    fn add_to_corpus(&mut self, input: Vec<u8>) {
        if input.len() > MAX_INPUT {
            return;
        }
        if self.corpus.len() < MAX_CORPUS {
            self.corpus.push(input);
        } else {
            // Keep the seeds; replace a random discovered input.
            let i = self.seeds + self.rng.below(self.corpus.len() - self.seeds);
            if i < self.corpus.len() {
                self.corpus[i] = input;
            }
        }
    }

    /// A new input: a corpus entry with 1–4 stacked mutations (format-aware or on raw bytes).
    pub fn mutant(&mut self) -> Vec<u8> {
        let rng = &mut self.rng;
        let base = self.corpus[rng.below(self.corpus.len())].clone();
        let donor = &self.corpus[rng.below(self.corpus.len())];
        let mut out = match self.ctx.target {
            Target::Model if rng.chance(3, 5) => mutate_model_bytes(rng, &base, donor),
            Target::Npz if rng.chance(1, 2) => mutate_npz(rng, &base, &self.npz_members),
            Target::Npy if rng.chance(1, 2) => mutate_npy_bytes(rng, &base),
            Target::Recipe if rng.chance(3, 5) => mutate_json_text(rng, &base, donor),
            _ => base.clone(),
        };
        let rounds = if rng.chance(1, 3) { 0 } else { 1 + rng.below(4) };
        for _ in 0..rounds {
            mutate_bytes(rng, &mut out, donor);
        }
        for _ in 0..8 {
            if out != base {
                break;
            }
            mutate_bytes(rng, &mut out, donor);
        }
        out.truncate(MAX_INPUT);
        out
    }
}

/// Runs `target` for `execs` executions with PRNG `seed` and no extra corpus.
pub fn fuzz_for(target: Target, seed: u64, execs: u64) -> Report {
    let mut f = Fuzzer::new(target, seed, &[], Limits::default());
    f.run(Budget::Execs(execs)).clone()
}

/// `<target>-note-<hash>.bin`: the file name of a note's example input.
pub fn note_file_name(target: Target, input: &[u8]) -> String {
    format!("{}-note-{:016x}.bin", target.name(), fnv1a(input))
}

/// Writes each finding's input to `dir` (created) and returns the paths.
pub fn save_findings(report: &Report, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    report
        .findings
        .iter()
        .map(|f| {
            let p = dir.join(f.file_name());
            std::fs::write(&p, &f.input)?;
            Ok(p)
        })
        .collect()
}

/// A printable preview of an input: text when it is mostly printable, else hex (first 256 bytes).
pub fn preview(input: &[u8]) -> String {
    let head = &input[..input.len().min(256)];
    let printable = head.iter().filter(|b| b.is_ascii_graphic() || b.is_ascii_whitespace()).count();
    let more = if input.len() > head.len() { format!(" … ({} bytes)", input.len()) } else { String::new() };
    if printable * 10 >= head.len() * 9 {
        format!("{:?}{more}", String::from_utf8_lossy(head))
    } else {
        let hex: Vec<String> = head.iter().map(|b| format!("{b:02x}")).collect();
        format!("hex {}{more}", hex.join(""))
    }
}

fn read_dir_files(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(rd) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut paths: Vec<PathBuf> = rd.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_file()).collect();
    paths.sort();
    paths
        .into_iter()
        .filter(|p| p.extension().is_none_or(|e| e != "md"))
        .filter_map(|p| std::fs::read(p).ok())
        .collect()
}
