//! What a fuzzing run found: unique panics (`Finding`), the running input shared with a
//! watchdog (`Monitor`), and the run's `Report`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Target, fnv1a, note_file_name};

/// A panic that escaped the code under test (unique by location).
#[derive(Debug, Clone)]
pub struct Finding {
    /// The target that found it.
    pub target: Target,
    /// The panic message.
    pub message: String,
    /// `file:line:col` of the panic.
    pub location: String,
    /// The first frame in this repository when the panic location is in std or a dependency
    /// (empty otherwise).
    pub origin: String,
    /// The smallest input seen that triggers it.
    pub input: Vec<u8>,
    /// How many inputs triggered it.
    pub hits: u64,
}

impl Finding {
    /// Where the panic happened, with the repository frame that led there when the panic is
    /// raised inside std or a dependency.
    pub fn place(&self) -> String {
        if self.origin.is_empty() {
            self.location.clone()
        } else {
            format!("{} (called from {})", self.location, self.origin)
        }
    }

    /// `<target>-<hash of input>.bin`.
    pub fn file_name(&self) -> String {
        format!("{}-{:016x}.bin", self.target.name(), fnv1a(&self.input))
    }
}

/// Shared with a watchdog thread or an allocation guard: what is running right now.
#[derive(Debug, Default)]
pub struct Monitor {
    /// Milliseconds since `epoch` at which the running input started, 0 when idle.
    pub busy_since_ms: AtomicU64,
    /// Executions so far (all fuzzers sharing this monitor).
    pub execs: AtomicU64,
    /// The running input.
    pub input: Mutex<Vec<u8>>,
    /// The running target's name.
    pub target: Mutex<&'static str>,
    /// Set to stop the fuzzer at the next input.
    pub stop: AtomicBool,
    epoch: std::sync::OnceLock<Instant>,
}

impl Monitor {
    /// The instant busy times count from.
    pub fn epoch(&self) -> Instant {
        *self.epoch.get_or_init(Instant::now)
    }

    /// How long the running input has been running, if any.
    pub fn busy_for(&self) -> Option<Duration> {
        let since = self.busy_since_ms.load(Ordering::Acquire);
        (since != 0).then(|| self.epoch().elapsed().saturating_sub(Duration::from_millis(since - 1)))
    }
}

/// The result of a fuzzing run.
#[derive(Debug, Clone)]
pub struct Report {
    /// The target.
    pub target: Target,
    /// Inputs executed (seeds included).
    pub execs: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Unique panics, by location.
    pub findings: Vec<Finding>,
    /// The slowest inputs: (time, input), slowest first.
    pub slowest: Vec<(Duration, Vec<u8>)>,
    /// Corpus size at the end (seeds plus inputs that reached a new outcome).
    pub corpus: usize,
    /// Distinct outcomes seen.
    pub outcomes: usize,
    /// Panics raised and caught inside the code under test (by location), with counts.
    pub caught_inside: BTreeMap<String, u64>,
    /// Non-fatal invariant violations (e.g. a round trip that is not lossless), with a count
    /// and the smallest example input.
    pub notes: BTreeMap<String, (u64, Vec<u8>)>,
    /// Inputs not run because they declare huge arrays (see [`Limits::max_declared_bytes`](super::Limits::max_declared_bytes)).
    pub skipped: u64,
}

impl Report {
    /// Executions per second.
    pub fn execs_per_sec(&self) -> f64 {
        self.execs as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The report as JSON (for a supervising process); input files are named as
    /// [`Finding::file_name`] and [`note_file_name`] save them.
    pub fn to_json(&self) -> Value {
        let findings: Vec<Value> = self
            .findings
            .iter()
            .map(|f| {
                serde_json::json!({
                    "message": f.message, "location": f.location, "origin": f.origin, "place": f.place(),
                    "hits": f.hits, "file": f.file_name(), "len": f.input.len(),
                })
            })
            .collect();
        let slowest: Vec<Value> = self
            .slowest
            .iter()
            .map(|(d, i)| serde_json::json!({"ms": d.as_secs_f64() * 1e3, "len": i.len(), "hash": format!("{:016x}", fnv1a(i))}))
            .collect();
        let notes: serde_json::Map<String, Value> = self
            .notes
            .iter()
            .map(|(k, (n, i))| {
                (k.clone(), serde_json::json!({"count": n, "len": i.len(), "file": note_file_name(self.target, i)}))
            })
            .collect();
        serde_json::json!({
            "target": self.target.name(), "execs": self.execs, "elapsed": self.elapsed.as_secs_f64(),
            "corpus": self.corpus, "outcomes": self.outcomes, "findings": findings, "slowest": slowest,
            "caught_inside": self.caught_inside, "notes": notes,
        })
    }

    /// A multi-line human summary.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "target {}: {} executions in {:.1} s ({:.0} exec/s), {} unique panics, corpus {}, {} distinct outcomes{}",
            self.target.name(),
            self.execs,
            self.elapsed.as_secs_f64(),
            self.execs_per_sec(),
            self.findings.len(),
            self.corpus,
            self.outcomes,
            if self.skipped > 0 {
                format!(", {} inputs declaring huge arrays skipped", self.skipped)
            } else {
                String::new()
            }
        );
        for f in &self.findings {
            let _ = writeln!(
                s,
                "  PANIC at {} ({} hits): {}\n    smallest input: {} bytes, {}",
                f.place(),
                f.hits,
                f.message,
                f.input.len(),
                f.file_name()
            );
        }
        for (i, (d, input)) in self.slowest.iter().enumerate() {
            let _ = writeln!(
                s,
                "  slowest #{}: {:.1} ms, {} bytes, hash {:016x}",
                i + 1,
                d.as_secs_f64() * 1e3,
                input.len(),
                fnv1a(input)
            );
        }
        for (loc, n) in &self.caught_inside {
            let _ = writeln!(s, "  panic caught inside the code under test ({n}×): {loc}");
        }
        for (note, (n, input)) in &self.notes {
            let _ = writeln!(s, "  note ({n}×, smallest example {} bytes): {note}", input.len());
        }
        s
    }
}
