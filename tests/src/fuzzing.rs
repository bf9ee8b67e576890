//! An in-repo mutation fuzzer for the loaders that read untrusted files: ONNX models (and their
//! summary), `.npz`/`.npy` data sets, and recipe JSON. Shared by the `fuzz` binary (long,
//! time-bounded runs) and the `fuzz_regressions` end-to-end test (short, deterministic runs).
//!
//! There is no coverage instrumentation (no nightly, no cargo-fuzz); instead the mutators know
//! the formats (protobuf models are mutated as `ModelProto`s, `.npz` archives member by member,
//! `.npy` headers field by field, recipes as JSON trees) and an input that produces an error
//! message never seen before joins the corpus, which steers the search towards new code paths.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use ndarray::{ArrayD, Axis, IxDyn};
use ndarray_npy::{NpzWriter, WritableElement, WriteNpyExt as _};
use prost::Message as _;
use quantbench_core::calibrate::{CalibrationConfig, RecipeFile, calibrate};
use quantbench_core::data::{DataSet, DataSource};
use quantbench_core::model::onnx as pb;
use quantbench_core::model::{Dim, ModelSummary, OnnxModel, TensorInfo};
use quantbench_core::observe::Observer;
use quantbench_core::quant::recipe::Recipe;
use quantbench_core::quant::{Granularity, LayerConfig};
use serde_json::Value;

use crate::{SAMPLE_MODELS, repo_root, sample};

// ---------------------------------------------------------------------------------------------
// Deterministic PRNG
// ---------------------------------------------------------------------------------------------

/// xorshift64* seeded through splitmix64: small, fast and reproducible across platforms.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (any value, 0 included).
    pub fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Self((z ^ (z >> 31)) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next_u64() % n as u64) as usize }
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: usize, den: usize) -> bool {
        self.below(den) < num
    }

    /// A random element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A random byte.
    pub fn byte(&mut self) -> u8 {
        (self.next_u64() >> 56) as u8
    }
}

/// FNV-1a, 64 bits: names crash files after their content.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xCBF2_9CE4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3))
}

// ---------------------------------------------------------------------------------------------
// Targets
// ---------------------------------------------------------------------------------------------

/// What a fuzz target feeds its input to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    /// `OnnxModel::from_bytes`, then the summary (text, JSON) and the constants.
    Model,
    /// `DataSet::open(DataSource::Npz)` for several input layouts, then every batch.
    Npz,
    /// `DataSet::open(DataSource::Npy)` for several input layouts, then every batch.
    Npy,
    /// `Recipe::from_json`, then `validate` against every sample model.
    Recipe,
}

impl Target {
    /// Every target, in the order `all` runs them.
    pub const ALL: [Self; 4] = [Self::Model, Self::Npz, Self::Npy, Self::Recipe];

    /// The name used on the command line and in crash file names.
    pub fn name(self) -> &'static str {
        match self {
            Self::Model => "model",
            Self::Npz => "npz",
            Self::Npy => "npy",
            Self::Recipe => "recipe",
        }
    }

    /// Parses a command-line name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// Bounds that keep a single execution finite inside the harness itself.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Streaming the batches of one data set for longer than this is reported as a hang.
    pub stream_deadline: Duration,
    /// In-process runs without an allocation guard (the tests): data inputs whose `.npy`
    /// headers declare an array of more than this many bytes (without overflowing) are skipped,
    /// since a loader that trusted the size would allocate it. `None` runs everything (the
    /// `fuzz` binary, whose allocator refuses huge requests and reports the input).
    pub max_declared_bytes: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Self { stream_deadline: Duration::from_secs(5), max_declared_bytes: Some(64 << 20) }
    }
}

/// The byte sizes the `.npy` headers found anywhere in `input` declare (`None` when the size
/// overflows 64 bits), parsed as the core's reader parses them.
pub fn declared_array_sizes(input: &[u8]) -> Vec<Option<u64>> {
    let mut sizes = Vec::new();
    let mut from = 0;
    while let Some(pos) = input[from..].windows(6).position(|w| w == b"\x93NUMPY") {
        let at = from + pos;
        from = at + 1;
        let Some(npy) = Npy::parse(&input[at..]) else { continue };
        let Some(rest) = npy.header.find("'shape':").map(|k| npy.header[k + 8..].trim_start()) else { continue };
        let Some(inner) = rest.strip_prefix('(').and_then(|r| r.split(')').next()) else { continue };
        let dims: Option<Vec<u64>> = inner
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(|d| d.trim_end_matches('L').parse::<u64>().ok())
            .collect();
        let Some(dims) = dims else { continue };
        let elem = descr_size(&npy.header) as u64;
        sizes.push(dims.iter().try_fold(elem, |a, &d| a.checked_mul(d)));
    }
    sizes
}

/// Where scratch files go: `$QB_FUZZ_TMP` (set by the `fuzz` supervisor for its workers, so
/// that it can clean up after a worker it had to stop), else a RAM disk when there is one
/// (inputs are written to a file per execution), else the temp dir.
pub fn scratch_base() -> PathBuf {
    if let Some(d) = std::env::var_os("QB_FUZZ_TMP") {
        return PathBuf::from(d);
    }
    let shm = Path::new("/dev/shm");
    if shm.is_dir() && tempfile::tempdir_in(shm).is_ok() { shm.to_path_buf() } else { std::env::temp_dir() }
}

/// Everything a target needs besides its input: sample summaries, input layouts, a scratch dir.
pub struct Context {
    target: Target,
    limits: Limits,
    scratch: tempfile::TempDir,
    layouts: Vec<(&'static str, Vec<TensorInfo>)>,
    summaries: Vec<ModelSummary>,
}

fn tensor(name: &str, dims: &[Dim]) -> TensorInfo {
    TensorInfo { name: name.into(), elem_type: "float32".into(), shape: dims.to_vec() }
}

fn sym(s: &str) -> Dim {
    Dim::Symbolic(s.into())
}

fn load_sample(name: &str) -> OnnxModel {
    OnnxModel::load(&sample(name, "model.onnx")).unwrap_or_else(|e| panic!("sample model {name}: {e}"))
}

/// The model input layouts the data targets open each input against: the MLP sample's own
/// inputs, a two-input model whose second input has dynamic inner dims, and a single-input model
/// whose sample dims are all dynamic.
pub fn data_layouts(mlp: &ModelSummary) -> Vec<(&'static str, Vec<TensorInfo>)> {
    vec![
        ("mlp", mlp.inputs.clone()),
        (
            "multi",
            vec![
                tensor("input", &[sym("batch"), Dim::Fixed(64)]),
                tensor("aux", &[sym("batch"), sym("n"), Dim::Fixed(3)]),
            ],
        ),
        ("dynamic", vec![tensor("input", &[sym("batch"), sym("h"), sym("w")])]),
    ]
}

impl Context {
    /// Prepares `target` (loads the sample models it needs).
    pub fn new(target: Target, limits: Limits) -> Self {
        let scratch = tempfile::Builder::new().prefix("qb-fuzz-").tempdir_in(scratch_base()).expect("scratch dir");
        let (layouts, summaries) = match target {
            Target::Model => (Vec::new(), Vec::new()),
            Target::Npz | Target::Npy => (data_layouts(&load_sample("mlp").summary), Vec::new()),
            Target::Recipe => (Vec::new(), SAMPLE_MODELS.iter().map(|m| load_sample(m).summary).collect()),
        };
        Self { target, limits, scratch, layouts, summaries }
    }

    /// Runs one input through the target. `Ok` carries a short description of the outcome (the
    /// error messages with numbers and names blanked), used to spot inputs that reach new code.
    /// Panics propagate: the caller catches them.
    pub fn execute(&self, input: &[u8], notes: &mut Vec<String>) -> String {
        match self.target {
            Target::Model => exec_model(input, notes),
            Target::Npz => self.exec_data(input, "x.npz", DataSource::Npz),
            Target::Npy => self.exec_data(input, "x.npy", DataSource::Npy),
            Target::Recipe => self.exec_recipe(input, notes),
        }
    }

    fn exec_data(&self, input: &[u8], file: &str, source: fn(PathBuf) -> DataSource) -> String {
        let path = self.scratch.path().join(file);
        // A new file each time: rewriting a truncated file makes ext4 flush it on close.
        let _ = std::fs::remove_file(&path);
        std::fs::write(&path, input).expect("write fuzz input");
        let mut outcome = String::new();
        for (label, inputs) in &self.layouts {
            let start = Instant::now();
            let result = DataSet::open(source(path.clone()), inputs).and_then(|set| {
                let mut samples = 0usize;
                for (i, batch) in set.batches(7)?.enumerate() {
                    samples += batch?.len();
                    assert!(
                        start.elapsed() <= self.limits.stream_deadline,
                        "hang: streaming {} declared samples still running after {:?} ({} batches of 7 read, file of {} bytes)",
                        set.num_samples,
                        self.limits.stream_deadline,
                        i + 1,
                        input.len()
                    );
                }
                assert_eq!(samples, set.num_samples, "batches must deliver every declared sample once");
                if let Some(labels) = &set.labels {
                    assert_eq!(labels.len(), set.num_samples, "one label per sample");
                }
                Ok(set.num_samples)
            });
            // Without the scratch path, which differs between runs.
            let result = result.map_err(|e| e.to_string().replace(&*self.scratch.path().to_string_lossy(), ""));
            let _ = write!(outcome, "{label}:{}|", result.map_or_else(|e| blank(&e), |_| "ok".into()));
        }
        outcome
    }

    fn exec_recipe(&self, input: &[u8], notes: &mut Vec<String>) -> String {
        let text = String::from_utf8_lossy(input);
        let file = match RecipeFile::from_json(&text, Path::new("fuzz.json")) {
            Ok(r) => r,
            Err(e) => return blank(&e.to_string()),
        };
        let recipe = &file.recipe;
        let mut outcome = String::from("parsed|");
        for s in &self.summaries {
            let _ = write!(outcome, "{}|", signature(&recipe.validate(s), "valid"));
            for layer in &s.layers {
                let _ = recipe.config_for(&layer.name);
            }
        }
        // A recipe that loads must save and load back to itself (recipes are saved losslessly).
        match file.to_json().and_then(|j| RecipeFile::from_json(&j, Path::new("fuzz.json"))) {
            Ok(back) if back == file => {}
            Ok(_) => notes.push("recipe: a loaded recipe saves to JSON that loads back differently".into()),
            Err(e) => {
                notes.push(format!("recipe: a loaded recipe does not reload after saving: {}", blank(&e.to_string())));
            }
        }
        outcome
    }
}

fn exec_model(input: &[u8], notes: &mut Vec<String>) -> String {
    let model = match OnnxModel::from_bytes(input, Path::new("fuzz.onnx")) {
        Ok(m) => m,
        Err(e) => return blank(&e.to_string()),
    };
    let s = &model.summary;
    let text = s.to_text();
    assert!(text.contains(&s.name), "the summary text names the model");
    let json = serde_json::to_string(s).expect("summary serializes to JSON");
    match serde_json::from_str::<ModelSummary>(&json) {
        Ok(back) if back == *s => {}
        Ok(_) => notes.push("model: the summary JSON reads back differently".into()),
        Err(e) => notes.push(format!("model: the summary JSON does not read back: {}", blank(&e.to_string()))),
    }
    let constants = model.constants();
    let mut outcome = format!("ok:{}layers:{}consts|", s.layers.len().min(3), constants.len().min(3));
    for layer in &s.layers {
        // What calibration and export do with every quantizable layer of a loaded model.
        let t = model.constant_f32(&layer.weight);
        let _ = write!(outcome, "{}|", signature(&t, "weight"));
    }
    outcome
}

/// Blanks digits and quoted names in a message, so that outcomes differing only in values compare
/// equal.
pub fn blank(msg: &str) -> String {
    let mut out = String::new();
    let mut quote: Option<char> = None;
    let mut last_digit = false;
    for c in msg.chars() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
                out.push(c);
            }
            continue;
        }
        if c == '\'' || c == '"' {
            quote = Some(c);
            out.push(c);
        } else if c.is_ascii_digit() {
            if !last_digit {
                out.push('#');
            }
        } else {
            out.push(c);
        }
        last_digit = c.is_ascii_digit();
        if out.len() > 160 {
            break;
        }
    }
    out
}

fn signature<T>(r: &quantbench_core::Result<T>, ok: &str) -> String {
    match r {
        Ok(_) => ok.to_string(),
        Err(e) => blank(&e.to_string()),
    }
}

// ---------------------------------------------------------------------------------------------
// Panic capture
// ---------------------------------------------------------------------------------------------

thread_local! {
    static FUZZING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static PANICS: RefCell<Vec<PanicRecord>> = const { RefCell::new(Vec::new()) };
}

/// One panic seen by the hook.
#[derive(Debug)]
struct PanicRecord {
    message: String,
    location: String,
    /// Captured (not yet symbolized: that is slow) when the location is in std or a dependency.
    backtrace: Option<std::backtrace::Backtrace>,
}

impl PanicRecord {
    /// The first repository frame below the panic machinery, when there is a backtrace.
    fn origin(&self) -> String {
        let Some(bt) = &self.backtrace else { return String::new() };
        let text = bt.to_string();
        let below = ["core::panicking::", "rust_begin_unwind", "std::panicking::begin_panic"]
            .iter()
            .filter_map(|m| text.rfind(m))
            .max()
            .map_or(text.as_str(), |i| &text[i..]);
        repo_frame(below).unwrap_or_default()
    }
}

fn repo_prefix() -> &'static str {
    static ROOT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        let r = repo_root();
        format!("{}/", r.canonicalize().unwrap_or(r).display())
    })
}

/// The first frame of a backtrace that lies in this repository (`core/src/data/npy.rs:178:9`),
/// for panics raised inside std or a dependency on behalf of repository code.
pub fn repo_frame(backtrace: &str) -> Option<String> {
    backtrace
        .lines()
        .filter_map(|l| l.trim().strip_prefix("at "))
        .find_map(|p| p.strip_prefix(repo_prefix()))
        .map(str::to_string)
}

/// Strips the repository root from a `file:line:col` location.
fn short_location(location: &str) -> String {
    location.strip_prefix(repo_prefix()).unwrap_or(location).to_string()
}

/// Installs (once) a panic hook that records the message and location of panics raised on a
/// thread that is running a fuzz input, silently; other panics go to the previous hook.
pub fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if FUZZING.with(std::cell::Cell::get) {
                let payload = info.payload();
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "<non-string panic payload>".into());
                let location = info.location().map_or_else(|| "<unknown>".into(), ToString::to_string);
                // Panics inside std (an overflowing `product()`, slice indexing) or a dependency:
                // keep a backtrace to name the repository frame that led there.
                let backtrace = location.starts_with('/').then(std::backtrace::Backtrace::force_capture);
                PANICS.with(|p| p.borrow_mut().push(PanicRecord { message, location, backtrace }));
            } else {
                previous(info);
            }
        }));
    });
}

// ---------------------------------------------------------------------------------------------
// Findings and reports
// ---------------------------------------------------------------------------------------------

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
    /// Inputs not run because they declare huge arrays (see [`Limits::max_declared_bytes`]).
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

// ---------------------------------------------------------------------------------------------
// The fuzzer
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Seeds
// ---------------------------------------------------------------------------------------------

/// The generated seeds of a target (sample files, small synthetic files, recipes).
pub fn generated_seeds(target: Target, scratch: &Path) -> Vec<Vec<u8>> {
    match target {
        Target::Model => model_seeds(),
        Target::Npz => npz_seeds(scratch),
        Target::Npy => npy_seeds(),
        Target::Recipe => recipe_seeds(scratch),
    }
}

fn model_seeds() -> Vec<Vec<u8>> {
    use crate::onnx_build::{model_with_nodes, node};
    let mut seeds: Vec<Vec<u8>> =
        SAMPLE_MODELS.iter().map(|m| std::fs::read(sample(m, "model.onnx")).expect("read sample model")).collect();
    let weight = |name: &str, dims: &[i64]| {
        let n: i64 = dims.iter().product();
        pb::TensorProto {
            name: name.into(),
            dims: dims.to_vec(),
            data_type: 1,
            float_data: (0..n).map(|i| i as f32 * 0.25 - 1.0).collect(),
            ..Default::default()
        }
    };
    // Gemm with an initializer weight and bias.
    let mut gemm = model_with_nodes(vec![node("Gemm", "fc", &["x", "w", "b"], &["y"])]);
    if let Some(g) = gemm.graph.as_mut() {
        g.initializer = vec![weight("w", &[4, 4]), weight("b", &[4])];
        g.node[0].attribute.push(pb::AttributeProto { name: "transB".into(), r#type: 2, i: 1, ..Default::default() });
    }
    // MatMul whose weight is a Constant node, then Relu.
    let mut matmul = model_with_nodes(vec![
        pb::NodeProto {
            attribute: vec![pb::AttributeProto {
                name: "value".into(),
                r#type: 4,
                t: Some(weight("", &[4, 4])),
                ..Default::default()
            }],
            ..node("Constant", "c", &[], &["w"])
        },
        node("MatMul", "mm", &["x", "w"], &["h"]),
        node("Relu", "relu", &["h"], &["y"]),
    ]);
    matmul.producer_version = "1".into();
    // Identity and raw_data initializers of several types.
    let mut ident = model_with_nodes(vec![node("Identity", "id", &["x"], &["y"])]);
    if let Some(g) = ident.graph.as_mut() {
        g.initializer = vec![
            pb::TensorProto {
                name: "r".into(),
                dims: vec![2, 2],
                data_type: 1,
                raw_data: vec![0; 16],
                ..Default::default()
            },
            pb::TensorProto {
                name: "i".into(),
                dims: vec![3],
                data_type: 7,
                int64_data: vec![1, -1, 7],
                ..Default::default()
            },
        ];
    }
    seeds.extend([gemm, matmul, ident].iter().map(prost::Message::encode_to_vec));
    seeds
}

fn npy_bytes<T: WritableElement>(a: &ArrayD<T>) -> Vec<u8> {
    let mut v = Vec::new();
    a.write_npy(&mut v).expect("encode npy");
    v
}

fn ramp(shape: &[usize]) -> ArrayD<f32> {
    let mut k = 0.0f32;
    ArrayD::from_shape_simple_fn(IxDyn(shape), || {
        k += 0.125;
        k - 2.0
    })
}

fn first_rows_of_sample(model: &str, file: &str, key: &str, rows: usize) -> Option<Vec<u8>> {
    let f = std::fs::File::open(sample(model, file)).ok()?;
    let mut r = ndarray_npy::NpzReader::new(f).ok()?;
    if key == "labels" {
        let a: ArrayD<i64> = r.by_name(key).ok()?;
        let n = a.len_of(Axis(0)).min(rows);
        Some(npy_bytes(&a.slice_axis(Axis(0), (0..n).into()).to_owned()))
    } else {
        let a: ArrayD<f32> = r.by_name(key).ok()?;
        let n = a.len_of(Axis(0)).min(rows);
        Some(npy_bytes(&a.slice_axis(Axis(0), (0..n).into()).to_owned()))
    }
}

fn npy_seeds() -> Vec<Vec<u8>> {
    let mut seeds = vec![
        npy_bytes(&ramp(&[6, 64])),
        npy_bytes(&ramp(&[4, 3, 5])),
        npy_bytes(&ramp(&[1, 64]).mapv(f64::from)),
        npy_bytes(&ArrayD::from_shape_vec(IxDyn(&[5]), vec![0i64, 1, 2, 3, 9]).expect("labels")),
        npy_bytes(&ArrayD::from_shape_vec(IxDyn(&[]), vec![1.5f32]).expect("scalar")),
    ];
    // Fortran order and a version-2 header, written by hand.
    let mut fortran = Npy::parse(&seeds[1]).expect("own npy");
    fortran.header = fortran.header.replace("False", "True");
    seeds.push(fortran.build(None));
    let mut v2 = Npy::parse(&seeds[0]).expect("own npy");
    v2.version = 2;
    seeds.push(v2.build(None));
    seeds.extend(first_rows_of_sample("mlp", "calib.npz", "input", 10));
    seeds
}

fn npz_with<T: WritableElement>(path: &Path, compressed: bool, arrays: &[(&str, ArrayD<T>)]) -> Vec<u8> {
    let f = std::fs::File::create(path).expect("create npz");
    let mut w = if compressed { NpzWriter::new_compressed(f) } else { NpzWriter::new(f) };
    for (k, a) in arrays {
        w.add_array(*k, a).expect("add array");
    }
    w.finish().expect("finish npz");
    std::fs::read(path).expect("read npz")
}

fn npz_seeds(scratch: &Path) -> Vec<Vec<u8>> {
    let p = scratch.join("seed.npz");
    let labels = |n: usize| ArrayD::from_shape_fn(IxDyn(&[n]), |ix| (ix[0] % 10) as i64);
    let mut seeds: Vec<Vec<u8>> = [("mlp", "calib.npz"), ("mlp", "eval.npz"), ("cnn", "calib.npz")]
        .iter()
        .map(|(m, f)| std::fs::read(sample(m, f)).expect("read sample data"))
        .collect();
    seeds.push(npz_with(&p, false, &[("input", ramp(&[5, 64]))]));
    seeds.push(npz_with(&p, true, &[("input", ramp(&[5, 64]))]));
    seeds.push(npz_with(&p, false, &[("input", ramp(&[4, 3, 5]))]));
    // Stored members built by hand: the MLP input with labels, and the two-input layout.
    let mlp_input = first_rows_of_sample("mlp", "eval.npz", "input", 6).expect("sample input");
    let mlp_labels = first_rows_of_sample("mlp", "eval.npz", "labels", 6).expect("sample labels");
    let with_labels = vec![("input.npy".to_string(), mlp_input.clone()), ("labels.npy".to_string(), mlp_labels)];
    seeds.push(build_zip(&with_labels, false));
    seeds.push(build_zip(&with_labels, true));
    let multi = vec![
        ("input.npy".to_string(), npy_bytes(&ramp(&[3, 64]))),
        ("aux.npy".to_string(), npy_bytes(&ramp(&[3, 2, 3]))),
        ("labels.npy".to_string(), npy_bytes(&labels(3).mapv(|l| l as u8))),
    ];
    seeds.push(build_zip(&multi, false));
    seeds
}

fn recipe_seeds(scratch: &Path) -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    let mlp = load_sample("mlp");
    seeds.push(Recipe::new("mlp").to_json().expect("json").into_bytes());
    let mut r = Recipe::new("mlp");
    let configs: [fn(&mut LayerConfig); 3] = [
        |c: &mut LayerConfig| {
            c.weight.bits = 4;
            c.weight.granularity = Granularity::PerGroup { group_size: 32 };
            c.activation.observer = Observer::Percentile { percentile: 99.99 };
        },
        |c: &mut LayerConfig| {
            c.weight.ternary = true;
            c.weight.granularity = Granularity::PerTensor;
            c.activation.observer = Observer::Entropy { num_bins: 2048, num_quantized_bins: 128 };
            c.activation.signed = true;
        },
        |c: &mut LayerConfig| {
            c.keep_float = true;
            c.activation.observer = Observer::Ema { constant: 0.01 };
            c.activation.dynamic = true;
        },
    ];
    for (layer, f) in mlp.summary.layers.iter().zip(configs.iter().cycle()) {
        let mut c = LayerConfig::default();
        f(&mut c);
        r.layers.insert(layer.name.clone(), c);
    }
    r.defaults.activation.observer = Observer::Mse;
    r.calibration_config.input_shapes = vec!["input=1x64".parse().expect("input shape")];
    seeds.push(r.to_json().expect("json").into_bytes());
    seeds.push(cnn_calibrated_recipe(scratch));
    seeds
}

/// A realistic large recipe: the CNN sample calibrated on 8 samples of its calibration set.
fn cnn_calibrated_recipe(scratch: &Path) -> Vec<u8> {
    let model = load_sample("cnn");
    let f = std::fs::File::open(sample("cnn", "calib.npz")).expect("open cnn calib");
    let input: ArrayD<f32> = ndarray_npy::NpzReader::new(f).expect("npz").by_name("input").expect("input");
    let p = scratch.join("cnn8.npz");
    npz_with(&p, false, &[("input", input.slice_axis(Axis(0), (0..8).into()).to_owned())]);
    let set = DataSet::open(DataSource::Npz(p), &model.summary.inputs).expect("cnn data");
    let cal = calibrate(&model, &set, &CalibrationConfig::default(), &mut |_, _| {}, &AtomicBool::new(false))
        .expect("calibrate cnn");
    let mut r = Recipe::new("cnn");
    if let Some(l) = model.summary.layers.first() {
        let mut c = LayerConfig::default();
        c.activation.observer = Observer::Percentile { percentile: 99.9 };
        r.layers.insert(l.name.clone(), c);
    }
    RecipeFile { recipe: r, calibration: Some(cal) }.to_json().expect("json").into_bytes()
}

// ---------------------------------------------------------------------------------------------
// Byte-level mutations
// ---------------------------------------------------------------------------------------------

/// Values that tend to sit on boundaries: little-endian integers and protobuf varints.
const INTERESTING: &[&[u8]] = &[
    &[0x00],
    &[0xFF],
    &[0x7F],
    &[0x80],
    &[0x01],
    &[0x00, 0x00, 0x00, 0x00],
    &[0xFF, 0xFF, 0xFF, 0xFF],
    &[0xFF, 0xFF, 0xFF, 0x7F],
    &[0x00, 0x00, 0x00, 0x80],
    &[0xFF, 0xFF],
    &[0x00, 0x80],
    &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
    // Varints: 2^31, 2^32, 2^40, 2^62, u64::MAX (as a 10-byte varint), -1 as int64.
    &[0x80, 0x80, 0x80, 0x80, 0x08],
    &[0x80, 0x80, 0x80, 0x80, 0x10],
    &[0x80, 0x80, 0x80, 0x80, 0x80, 0x20],
    &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40],
    &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
    &[0xFF, 0xFF, 0xFF, 0xFF, 0x0F],
    // An unterminated varint.
    &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
];

/// Number texts for digit runs (npy shapes, JSON numbers, header lengths).
const INTERESTING_NUMBERS: &[&str] = &[
    "0",
    "1",
    "-1",
    "7",
    "255",
    "65536",
    "2147483648",
    "4294967296",
    "1099511627776",
    "4611686018427387904",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "100000000000000000000000",
    "1e308",
    "1e400",
    "-0",
    "0.5",
];

/// Stacks one random raw-bytes mutation onto `data` (`donor` feeds splicing).
pub fn mutate_bytes(rng: &mut Rng, data: &mut Vec<u8>, donor: &[u8]) {
    let len = data.len();
    match rng.below(12) {
        0 if len > 0 => {
            let i = rng.below(len);
            data[i] = rng.byte();
        }
        1 if len > 0 => {
            let i = rng.below(len);
            data[i] ^= 1 << rng.below(8);
        }
        2 => data.truncate(rng.below(len + 1)),
        3 if len > 0 => {
            let at = rng.below(len);
            let n = 1 + rng.below((len - at).min(256));
            data.drain(at..at + n);
        }
        4 if len > 0 => {
            let at = rng.below(len);
            let n = 1 + rng.below((len - at).min(256));
            let chunk = data[at..at + n].to_vec();
            let to = rng.below(len + 1);
            data.splice(to..to, chunk);
        }
        5 => {
            let v = rng.pick(INTERESTING);
            let to = rng.below(len + 1);
            data.splice(to..to, v.iter().copied());
        }
        6 if len > 0 => {
            let v = rng.pick(INTERESTING);
            let at = rng.below(len);
            for (i, b) in v.iter().enumerate() {
                if let Some(d) = data.get_mut(at + i) {
                    *d = *b;
                }
            }
        }
        7 if !donor.is_empty() => {
            // Splice: a prefix of this input, a suffix of the donor.
            let cut = rng.below(len + 1);
            let from = rng.below(donor.len());
            data.truncate(cut);
            data.extend_from_slice(&donor[from..]);
        }
        8 if !donor.is_empty() && len > 0 => {
            // Crossover in place: overwrite a range with donor bytes.
            let from = rng.below(donor.len());
            let n = 1 + rng.below((donor.len() - from).min(512));
            let at = rng.below(len);
            let end = (at + n).min(len);
            data.splice(at..end, donor[from..from + n].iter().copied());
        }
        9 => replace_digit_run(rng, data),
        10 if len > 0 => {
            // Repeat one byte a few times (runs of 0x00/0xFF make long varints and lengths).
            let at = rng.below(len);
            let b = if rng.chance(1, 2) { data[at] } else { *rng.pick(&[0u8, 0xFF, 0x80]) };
            let n = 1 + rng.below(16);
            data.splice(at..at, std::iter::repeat_n(b, n));
        }
        _ => {
            let v = rng.pick(INTERESTING);
            data.extend_from_slice(v);
        }
    }
}

/// Replaces one run of ASCII digits with an interesting number (shapes in npy headers, JSON
/// numbers).
fn replace_digit_run(rng: &mut Rng, data: &mut Vec<u8>) {
    let mut runs = Vec::new();
    let mut i = 0;
    while i < data.len() && runs.len() < 4096 {
        if data[i].is_ascii_digit() {
            let start = i;
            while i < data.len() && data[i].is_ascii_digit() {
                i += 1;
            }
            runs.push(start..i);
        } else {
            i += 1;
        }
    }
    if runs.is_empty() {
        return;
    }
    let r = rng.pick(&runs).clone();
    data.splice(r, rng.pick(INTERESTING_NUMBERS).bytes());
}

// ---------------------------------------------------------------------------------------------
// ONNX (protobuf) mutations
// ---------------------------------------------------------------------------------------------

const INTERESTING_I64: &[i64] = &[
    0,
    1,
    -1,
    2,
    3,
    4,
    7,
    8,
    64,
    255,
    256,
    65535,
    65536,
    i32::MAX as i64,
    i32::MIN as i64,
    1 << 31,
    1 << 32,
    1 << 40,
    1 << 53,
    1 << 61,
    1 << 62,
    i64::MAX,
    i64::MIN,
];

const OPS: &[&str] = &[
    "Conv",
    "ConvTranspose",
    "Gemm",
    "MatMul",
    "Relu",
    "Clip",
    "Add",
    "Mul",
    "Reshape",
    "Flatten",
    "Transpose",
    "BatchNormalization",
    "Softmax",
    "Constant",
    "Identity",
    "Concat",
    "Slice",
    "Gather",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Resize",
    "Pad",
    "Squeeze",
    "Unsqueeze",
    "LayerNormalization",
    "HardSwish",
    "Sigmoid",
    "QuantizeLinear",
    "DequantizeLinear",
    "Cast",
    "Expand",
    "ConstantOfShape",
    "Range",
    "Tile",
    "TopK",
    "Split",
    "ReduceMean",
    "Einsum",
    "If",
    "Loop",
    "Scan",
    "NotAnOp",
    "",
];

const ATTRS: &[&str] = &[
    "group",
    "transA",
    "transB",
    "axis",
    "axes",
    "kernel_shape",
    "strides",
    "pads",
    "dilations",
    "perm",
    "value",
    "alpha",
    "beta",
    "to",
    "shape",
    "epsilon",
    "mode",
    "auto_pad",
    "output_padding",
    "keepdims",
    "split",
];

fn interesting_i64(rng: &mut Rng) -> i64 {
    if rng.chance(1, 4) { rng.next_u64() as i64 } else { *rng.pick(INTERESTING_I64) }
}

/// Decodes `base` as a model and applies 1–3 structural mutations, re-encoding the result; falls
/// back to raw bytes when `base` is not a model.
pub fn mutate_model_bytes(rng: &mut Rng, base: &[u8], donor: &[u8]) -> Vec<u8> {
    let Ok(mut model) = pb::ModelProto::decode(base) else { return base.to_vec() };
    let donor = pb::ModelProto::decode(donor).ok();
    for _ in 0..=rng.below(3) {
        mutate_model(rng, &mut model, donor.as_ref());
    }
    model.encode_to_vec()
}

fn tensor_names(g: &pb::GraphProto) -> Vec<String> {
    let mut names: Vec<String> = g.node.iter().flat_map(|n| n.input.iter().chain(&n.output)).cloned().collect();
    names.extend(g.initializer.iter().map(|t| t.name.clone()));
    names.extend(g.input.iter().chain(&g.output).map(|v| v.name.clone()));
    if names.is_empty() {
        names.push("x".into());
    }
    names
}

fn mutate_model(rng: &mut Rng, m: &mut pb::ModelProto, donor: Option<&pb::ModelProto>) {
    match rng.below(10) {
        0 => m.ir_version = interesting_i64(rng),
        1 => mutate_opsets(rng, &mut m.opset_import),
        _ => {
            let g = m.graph.get_or_insert_with(pb::GraphProto::default);
            let names = tensor_names(g);
            match rng.below(9) {
                0 | 1 => mutate_initializers(rng, g),
                2 | 3 => mutate_node(rng, g, &names),
                4 => mutate_node_list(rng, g),
                5 => mutate_value_infos(rng, g),
                6 => inject_constant(rng, g, &names),
                7 => {
                    if let Some(dg) = donor.and_then(|d| d.graph.as_ref()) {
                        if !dg.node.is_empty() && rng.chance(1, 2) {
                            let n = rng.pick(&dg.node).clone();
                            let at = rng.below(g.node.len() + 1);
                            g.node.insert(at, n);
                        } else if !dg.initializer.is_empty() {
                            g.initializer.push(rng.pick(&dg.initializer).clone());
                        }
                    }
                }
                _ => {
                    // Rename an initializer, or list it as a graph input too.
                    if !g.initializer.is_empty() {
                        let i = rng.below(g.initializer.len());
                        if rng.chance(1, 2) {
                            g.initializer[i].name.clone_from(rng.pick(&names));
                        } else {
                            let name = g.initializer[i].name.clone();
                            g.input.push(pb::ValueInfoProto { name, ..Default::default() });
                        }
                    }
                }
            }
        }
    }
}

fn mutate_opsets(rng: &mut Rng, opsets: &mut Vec<pb::OperatorSetIdProto>) {
    match rng.below(4) {
        0 => opsets.clear(),
        1 => opsets.push(pb::OperatorSetIdProto {
            domain: (*rng.pick(&["", "ai.onnx", "com.microsoft", "ai.onnx.ml"])).to_string(),
            version: interesting_i64(rng),
        }),
        _ => {
            if let Some(o) = opsets.first_mut() {
                o.version = *rng.pick(&[0, 1, 6, 7, 9, 11, 13, 17, 21, 99, -1, i64::MAX]);
            }
        }
    }
}

fn mutate_tensor(rng: &mut Rng, t: &mut pb::TensorProto) {
    match rng.below(9) {
        0 => {
            if t.dims.is_empty() {
                t.dims.push(interesting_i64(rng));
            } else {
                let i = rng.below(t.dims.len());
                t.dims[i] = interesting_i64(rng);
            }
        }
        1 => {
            if rng.chance(1, 2) {
                t.dims.push(*rng.pick(&[0, 1, 2, 1 << 31, 1 << 62]));
            } else {
                t.dims.pop();
            }
        }
        2 => t.data_type = if rng.chance(1, 3) { interesting_i64(rng) as i32 } else { rng.below(25) as i32 },
        3 => {
            let n = rng.below(t.raw_data.len() + 1);
            t.raw_data.truncate(n);
        }
        4 => {
            // raw_data → float_data (or back), keeping the values.
            if t.raw_data.is_empty() {
                t.raw_data = t.float_data.iter().flat_map(|f| f.to_le_bytes()).collect();
                t.float_data.clear();
            } else {
                t.float_data =
                    t.raw_data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
                t.raw_data.clear();
            }
        }
        5 => {
            t.raw_data.clear();
            t.float_data.clear();
            t.int64_data = vec![interesting_i64(rng); rng.below(4)];
            t.int32_data = vec![interesting_i64(rng) as i32; rng.below(4)];
        }
        6 => {
            t.data_location = Some(1);
            t.raw_data.clear();
            t.external_data = vec![
                pb::StringStringEntryProto {
                    key: "location".into(),
                    value: (*rng.pick(&["weights.bin", "", "../w.bin", "/etc/hostname", "."])).to_string(),
                },
                pb::StringStringEntryProto { key: "offset".into(), value: rng.pick(INTERESTING_NUMBERS).to_string() },
                pb::StringStringEntryProto { key: "length".into(), value: rng.pick(INTERESTING_NUMBERS).to_string() },
            ];
        }
        7 => {
            let v = rng.pick(&[f32::NAN, f32::INFINITY, -0.0, f32::MAX, 1e-45]);
            if t.raw_data.len() >= 4 {
                let at = rng.below(t.raw_data.len() / 4) * 4;
                t.raw_data[at..at + 4].copy_from_slice(&v.to_le_bytes());
            } else {
                t.float_data.push(*v);
            }
        }
        _ => t.segment = Some(pb::tensor_proto::Segment { begin: interesting_i64(rng), end: interesting_i64(rng) }),
    }
}

fn mutate_initializers(rng: &mut Rng, g: &mut pb::GraphProto) {
    if g.initializer.is_empty() || rng.chance(1, 10) {
        g.initializer.push(pb::TensorProto { name: "w".into(), dims: vec![4, 4], data_type: 1, ..Default::default() });
    }
    let i = rng.below(g.initializer.len());
    match rng.below(12) {
        0 => {
            g.initializer.remove(i);
        }
        1 => {
            let dup = g.initializer[i].clone();
            g.initializer.push(dup);
        }
        _ => mutate_tensor(rng, &mut g.initializer[i]),
    }
}

fn mutate_attribute(rng: &mut Rng, a: &mut pb::AttributeProto) {
    match rng.below(8) {
        0 => a.i = interesting_i64(rng),
        1 => {
            let n = rng.below(6);
            a.ints = (0..n).map(|_| interesting_i64(rng)).collect();
        }
        2 => a.r#type = rng.below(15) as i32,
        3 => a.f = *rng.pick(&[f32::NAN, f32::INFINITY, -1.0, 0.0, 1e30]),
        4 => a.floats = vec![*rng.pick(&[f32::NAN, 0.0, 1.0, -1e30]); rng.below(5)],
        5 => {
            let mut t = a.t.take().unwrap_or_default();
            mutate_tensor(rng, &mut t);
            a.t = Some(t);
        }
        6 => a.s = rng.pick(&[&b"linear"[..], b"nearest", b"SAME_UPPER", b"", b"\xFF\xFE"]).to_vec(),
        _ => a.name = (*rng.pick(ATTRS)).to_string(),
    }
}

fn mutate_node(rng: &mut Rng, g: &mut pb::GraphProto, names: &[String]) {
    if g.node.is_empty() {
        g.node.push(pb::NodeProto {
            op_type: "Relu".into(),
            input: vec!["x".into()],
            output: vec!["y".into()],
            ..Default::default()
        });
    }
    let i = rng.below(g.node.len());
    let n = &mut g.node[i];
    match rng.below(8) {
        0 => n.op_type = (*rng.pick(OPS)).to_string(),
        1 => n.domain = (*rng.pick(&["", "ai.onnx", "com.microsoft", "ai.onnx.ml", "custom"])).to_string(),
        2 | 3 => {
            let list = if rng.chance(2, 3) { &mut n.input } else { &mut n.output };
            let choice = rng.below(4);
            match choice {
                0 if !list.is_empty() => {
                    let k = rng.below(list.len());
                    list.remove(k);
                }
                1 => list.push(rng.pick(names).clone()),
                _ if !list.is_empty() => {
                    let k = rng.below(list.len());
                    list[k] = if rng.chance(1, 4) { String::new() } else { rng.pick(names).clone() };
                }
                _ => list.push("nonexistent".into()),
            }
        }
        4 => n.name = (*rng.pick(&["", "n", "a b", "ünïcode", "\u{0}"])).to_string(),
        5 | 6 if !n.attribute.is_empty() => {
            let k = rng.below(n.attribute.len());
            if rng.chance(1, 8) {
                n.attribute.remove(k);
            } else {
                mutate_attribute(rng, &mut n.attribute[k]);
            }
        }
        _ => {
            let mut a = pb::AttributeProto { name: (*rng.pick(ATTRS)).to_string(), r#type: 2, ..Default::default() };
            mutate_attribute(rng, &mut a);
            n.attribute.push(a);
        }
    }
}

fn mutate_node_list(rng: &mut Rng, g: &mut pb::GraphProto) {
    if g.node.is_empty() {
        return;
    }
    let i = rng.below(g.node.len());
    let j = rng.below(g.node.len());
    match rng.below(4) {
        0 => {
            g.node.remove(i);
        }
        1 => {
            let n = g.node[i].clone();
            g.node.insert(j, n);
        }
        2 => g.node.swap(i, j),
        _ => g.node.truncate(i + 1),
    }
}

fn mutate_value_infos(rng: &mut Rng, g: &mut pb::GraphProto) {
    use pb::tensor_shape_proto::dimension::Value as DimValue;
    use pb::type_proto::Value as TypeValue;
    let list = if rng.chance(1, 2) { &mut g.input } else { &mut g.output };
    if list.is_empty() {
        list.push(pb::ValueInfoProto { name: "x".into(), ..Default::default() });
    }
    let i = rng.below(list.len());
    match rng.below(6) {
        0 => {
            list.remove(i);
        }
        1 => {
            let v = list[i].clone();
            list.push(v);
        }
        2 => list[i].r#type = None,
        _ => {
            let t = list[i].r#type.get_or_insert_with(pb::TypeProto::default);
            if !matches!(t.value, Some(TypeValue::TensorType(_))) {
                t.value = Some(TypeValue::TensorType(pb::type_proto::Tensor { elem_type: 1, shape: None }));
            }
            let Some(TypeValue::TensorType(tt)) = t.value.as_mut() else { return };
            if rng.chance(1, 4) {
                tt.elem_type = rng.below(25) as i32;
                return;
            }
            let shape = tt.shape.get_or_insert_with(pb::TensorShapeProto::default);
            let dim = pb::tensor_shape_proto::Dimension {
                value: match rng.below(4) {
                    0 => None,
                    1 => Some(DimValue::DimParam(
                        (*rng.pick(&["", "batch", "?", "unk__1", "n+1", "2*batch", "1/2"])).to_string(),
                    )),
                    _ => Some(DimValue::DimValue(interesting_i64(rng))),
                },
                ..Default::default()
            };
            if shape.dim.is_empty() || rng.chance(1, 4) {
                shape.dim.push(dim);
            } else if rng.chance(1, 6) {
                shape.dim.clear();
            } else {
                let k = rng.below(shape.dim.len());
                shape.dim[k] = dim;
            }
        }
    }
}

/// Replaces a tensor with a `Constant` node whose value has interesting dims.
fn inject_constant(rng: &mut Rng, g: &mut pb::GraphProto, names: &[String]) {
    let out = if g.initializer.is_empty() || rng.chance(1, 3) {
        rng.pick(names).clone()
    } else {
        let k = rng.below(g.initializer.len());
        g.initializer.remove(k).name
    };
    let mut t = pb::TensorProto { dims: vec![2, 2], data_type: 1, float_data: vec![1.0; 4], ..Default::default() };
    mutate_tensor(rng, &mut t);
    let node = pb::NodeProto {
        op_type: "Constant".into(),
        output: vec![out],
        attribute: vec![pb::AttributeProto { name: "value".into(), r#type: 4, t: Some(t), ..Default::default() }],
        ..Default::default()
    };
    g.node.insert(0, node);
}

// ---------------------------------------------------------------------------------------------
// .npy and .npz mutations
// ---------------------------------------------------------------------------------------------

/// A `.npy` file split into its parts.
#[derive(Debug, Clone)]
pub struct Npy {
    /// Format version byte.
    pub version: u8,
    /// The header dictionary text.
    pub header: String,
    /// The data after the header.
    pub data: Vec<u8>,
}

impl Npy {
    /// Splits a well-formed `.npy` file.
    pub fn parse(b: &[u8]) -> Option<Self> {
        if b.len() < 10 || &b[..6] != b"\x93NUMPY" {
            return None;
        }
        let (len, start) = match b[6] {
            1 => (usize::from(u16::from_le_bytes([b[8], b[9]])), 10),
            2 | 3 if b.len() >= 12 => (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12),
            _ => return None,
        };
        let header = b.get(start..start + len)?;
        Some(Self {
            version: b[6],
            header: String::from_utf8_lossy(header).into_owned(),
            data: b[start + len..].to_vec(),
        })
    }

    /// Encodes the file; `len_override` writes a wrong header length.
    pub fn build(&self, len_override: Option<u32>) -> Vec<u8> {
        let mut out = b"\x93NUMPY".to_vec();
        out.push(self.version);
        out.push(0);
        let len = len_override.unwrap_or(self.header.len() as u32);
        if self.version == 1 {
            out.extend_from_slice(&(len as u16).to_le_bytes());
        } else {
            out.extend_from_slice(&len.to_le_bytes());
        }
        out.extend_from_slice(self.header.as_bytes());
        out.extend_from_slice(&self.data);
        out
    }
}

const DESCRS: &[&str] = &["<f4", "<f8", "<i8", "<i4", "|u1", "<u1", ">f4", "|b1", "<f2", "O", "<U10", "", "<c8", "|i1"];

fn random_dim(rng: &mut Rng) -> String {
    let small = ["0", "1", "2", "3", "5", "7", "8", "64", "255", "256", "65536"];
    let big = [
        "2147483648",
        "4294967296",
        "1099511627776",
        "4611686018427387904",
        "9223372036854775808",
        "18446744073709551615",
        "18446744073709551616",
        "-1",
        "1L",
        "",
        "x",
    ];
    if rng.chance(2, 3) { (*rng.pick(&small)).into() } else { (*rng.pick(&big)).into() }
}

fn shape_span(header: &str) -> Option<std::ops::Range<usize>> {
    let key = header.find("'shape':")?;
    let open = key + header[key..].find('(')?;
    let close = open + header[open..].find(')')?;
    Some(open + 1..close)
}

/// Parses the shape of a header, when it is a tuple of plain numbers.
fn header_shape(header: &str) -> Option<Vec<usize>> {
    let span = shape_span(header)?;
    header[span].split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| s.parse().ok()).collect()
}

fn descr_size(header: &str) -> usize {
    if ["<f8", "<i8"].iter().any(|d| header.contains(d)) {
        8
    } else if ["|u1", "<u1", "|b1", "|i1"].iter().any(|d| header.contains(d)) {
        1
    } else {
        4
    }
}

/// Resizes the data to exactly what the header's shape needs (when that is small), filled with
/// values that include NaN and infinities now and then.
fn fit_data(rng: &mut Rng, n: &mut Npy) {
    let Some(shape) = header_shape(&n.header) else { return };
    let Some(bytes) = shape.iter().try_fold(descr_size(&n.header), |a, &d| a.checked_mul(d)) else { return };
    if bytes > 1 << 16 {
        return;
    }
    n.data.resize(bytes, 0);
    if rng.chance(1, 4) && bytes >= 4 {
        let at = rng.below(bytes / 4) * 4;
        let v = *rng.pick(&[f32::NAN, f32::INFINITY, f32::NEG_INFINITY, f32::MAX]);
        n.data[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
}

/// One structural mutation of a `.npy` file.
pub fn mutate_npy(rng: &mut Rng, n: &mut Npy) -> Option<u32> {
    match rng.below(10) {
        0 => {
            let start = n.header.find("'descr':").map(|k| k + 8);
            if let Some(s) = start
                && let Some(q1) = n.header[s..].find('\'').map(|q| s + q + 1)
                && let Some(q2) = n.header[q1..].find('\'').map(|q| q1 + q)
            {
                let descr: &&str = rng.pick(DESCRS);
                n.header.replace_range(q1..q2, descr);
            }
        }
        1 => {
            n.header = if n.header.contains("True") {
                n.header.replace("True", "False")
            } else {
                n.header.replace("False", "True")
            };
        }
        2 | 3 => {
            if let Some(span) = shape_span(&n.header) {
                let rank = if rng.chance(1, 3) { rng.below(5) } else { header_shape(&n.header).map_or(2, |s| s.len()) };
                let mut dims: Vec<String> = header_shape(&n.header)
                    .unwrap_or_default()
                    .iter()
                    .map(ToString::to_string)
                    .chain(std::iter::repeat_with(|| "1".to_string()))
                    .take(rank)
                    .collect();
                if !dims.is_empty() {
                    let k = rng.below(dims.len());
                    dims[k] = random_dim(rng);
                }
                let text = if dims.len() == 1 { format!("{},", dims[0]) } else { dims.join(", ") };
                n.header.replace_range(span, &text);
            }
            if rng.chance(1, 2) {
                fit_data(rng, n);
            }
        }
        4 => n.version = *rng.pick(&[1, 2, 3, 0, 4, 255]),
        5 => {
            let cut = rng.below(n.data.len() + 1);
            n.data.truncate(cut);
        }
        6 => {
            let mut h = n.header.clone().into_bytes();
            let donor = h.clone();
            mutate_bytes(rng, &mut h, &donor);
            n.header = String::from_utf8_lossy(&h).into_owned();
        }
        7 => {
            // A second value for a key: the reader takes the first occurrence.
            let extra = *rng.pick(&["'shape': (1,), ", "'descr': '<f8', ", "'fortran_order': True, ", "'shape': (), "]);
            let at = if rng.chance(1, 2) && n.header.is_char_boundary(1) { 1 } else { n.header.len() };
            n.header.insert_str(at, extra);
        }
        8 => return Some(*rng.pick(&[0, 1, u32::from(u16::MAX), 1 << 20, (1 << 20) + 1, u32::MAX])),
        _ => fit_data(rng, n),
    }
    None
}

/// Splits `base` as a `.npy` file and mutates it structurally; raw bytes otherwise.
pub fn mutate_npy_bytes(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    let Some(mut n) = Npy::parse(base) else { return base.to_vec() };
    let mut len = None;
    for _ in 0..=rng.below(3) {
        len = mutate_npy(rng, &mut n).or(len);
    }
    n.build(len)
}

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 == 1 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

fn crc32(data: &[u8]) -> u32 {
    !data.iter().fold(!0u32, |c, &b| CRC_TABLE[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8))
}

/// Writes a zip archive of stored (uncompressed) members, with zip64 end records when asked.
pub fn build_zip(members: &[(String, Vec<u8>)], zip64: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in members {
        let offset = out.len() as u32;
        let crc = crc32(data);
        let size = data.len() as u32;
        let name_len = name.len() as u16;
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        for v in [20u16, 0, 0, 0, 0x21] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [crc, size, size] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&name_len.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        for v in [20u16, 20, 0, 0, 0, 0x21] {
            central.extend_from_slice(&v.to_le_bytes());
        }
        for v in [crc, size, size] {
            central.extend_from_slice(&v.to_le_bytes());
        }
        for v in [name_len, 0, 0, 0, 0] {
            central.extend_from_slice(&v.to_le_bytes());
        }
        central.extend_from_slice(&0u32.to_le_bytes());
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let cd_offset = out.len();
    out.extend_from_slice(&central);
    let count = members.len();
    if zip64 {
        let eocd64 = out.len() as u64;
        out.extend_from_slice(&0x0606_4b50u32.to_le_bytes());
        out.extend_from_slice(&44u64.to_le_bytes());
        for v in [45u16, 45] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [0u32, 0] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [count as u64, count as u64, central.len() as u64, cd_offset as u64] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&0x0706_4b50u32.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&eocd64.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
    }
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    let (n16, size32, off32) =
        if zip64 { (0xFFFF, 0xFFFF_FFFF, 0xFFFF_FFFF) } else { (count as u16, central.len() as u32, cd_offset as u32) };
    for v in [0u16, 0, n16, n16] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&size32.to_le_bytes());
    out.extend_from_slice(&off32.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// The stored members of a zip archive, read from its local headers (None when it has a
/// compressed member or is not a zip).
pub fn parse_stored_zip(b: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    let u16_at = |i: usize| b.get(i..i + 2).map(|s| u16::from_le_bytes([s[0], s[1]]));
    let u32_at = |i: usize| b.get(i..i + 4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]));
    let mut members = Vec::new();
    let mut at = 0;
    while u32_at(at) == Some(0x0403_4b50) {
        let flags = u16_at(at + 6)?;
        let method = u16_at(at + 8)?;
        let size = u32_at(at + 18)? as usize;
        let name_len = usize::from(u16_at(at + 26)?);
        let extra_len = usize::from(u16_at(at + 28)?);
        if method != 0 || flags & 8 != 0 || size == 0xFFFF_FFFF {
            return None;
        }
        let name_start = at + 30;
        let data_start = name_start + name_len + extra_len;
        let name = String::from_utf8_lossy(b.get(name_start..name_start + name_len)?).into_owned();
        members.push((name, b.get(data_start..data_start + size)?.to_vec()));
        at = data_start + size;
    }
    (!members.is_empty()).then_some(members)
}

const MEMBER_NAMES: &[&str] =
    &["input.npy", "labels.npy", "aux.npy", "input", "input.npy.npy", "", "../input.npy", "INPUT.npy", "lábels.npy"];

/// Mutates a `.npz` member by member (when `base` is a stored archive), rebuilding the archive.
pub fn mutate_npz(rng: &mut Rng, base: &[u8], pool: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut members = parse_stored_zip(base).unwrap_or_default();
    if members.is_empty() {
        if pool.is_empty() {
            return base.to_vec();
        }
        members.push(rng.pick(pool).clone());
    }
    for _ in 0..=rng.below(2) {
        let i = rng.below(members.len());
        match rng.below(8) {
            0..=3 => {
                let m = &mut members[i].1;
                *m = if rng.chance(3, 4) {
                    mutate_npy_bytes(rng, m)
                } else {
                    let donor = m.clone();
                    mutate_bytes(rng, m, &donor);
                    m.clone()
                };
            }
            4 => members[i].0 = (*rng.pick(MEMBER_NAMES)).to_string(),
            5 if members.len() > 1 => {
                members.remove(i);
            }
            6 if !pool.is_empty() => members.push(rng.pick(pool).clone()),
            _ => {
                let dup = members[i].clone();
                members.push(dup);
            }
        }
    }
    build_zip(&members, rng.chance(1, 4))
}

// ---------------------------------------------------------------------------------------------
// JSON mutations
// ---------------------------------------------------------------------------------------------

const RAW_NUMBERS: &[&str] = &[
    "1e400",
    "-1e400",
    "NaN",
    "Infinity",
    "-Infinity",
    "-0",
    "0.0",
    "18446744073709551616",
    "-9223372036854775809",
    "4294967296",
    "256",
    "65536",
    "1e-400",
    "3.4028236e38",
    "00012",
    "1.",
    "-",
    "1e",
    "0x10",
];

fn json_pointers(v: &Value, at: String, out: &mut Vec<String>) {
    if out.len() > 20_000 {
        return;
    }
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                json_pointers(c, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out);
            }
        }
        Value::Array(a) => {
            // Long arrays (histograms) get a few sample positions, not all.
            let step = (a.len() / 16).max(1);
            for i in (0..a.len()).step_by(step) {
                json_pointers(&a[i], format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

fn random_leaf(rng: &mut Rng) -> Value {
    match rng.below(8) {
        0 => Value::Null,
        1 => Value::Bool(rng.chance(1, 2)),
        2 => Value::String((*rng.pick(&["", "NaN", "inf", "per_group", "minmax", "entropy", "mlp", "x\u{0}y"])).into()),
        3 => Value::String("ü".repeat(1 + rng.below(3000))),
        4 => serde_json::json!([]),
        5 => serde_json::json!({}),
        6 => Value::from(*rng.pick(&[0i64, -1, 1, 2, 16, 17, 255, 256, i64::MIN, i64::MAX])),
        _ => Value::from(*rng.pick(&[0u64, 1, u64::MAX, 1 << 53])),
    }
}

const MARKER_NUM: &str = "\u{1}RAW\u{1}";
/// Duplicate-key markers: the first sorts before every key, the second after.
const MARKER_DUP: [&str; 2] = ["\u{2}DUP\u{2}", "~~DUP~~"];

/// Mutates `base` as a JSON tree (numbers to huge/negative/NaN-like texts, dropped and duplicated
/// keys, type changes, subtrees spliced from `donor`); raw text otherwise.
pub fn mutate_json_text(rng: &mut Rng, base: &[u8], donor: &[u8]) -> Vec<u8> {
    let Ok(mut doc) = serde_json::from_slice::<Value>(base) else { return base.to_vec() };
    let mut raw: Option<&str> = None;
    let mut dup: Option<(String, Value)> = None;
    for _ in 0..=rng.below(3) {
        let mut ptrs = Vec::new();
        json_pointers(&doc, String::new(), &mut ptrs);
        let ptr = rng.pick(&ptrs).clone();
        let Some(node) = doc.pointer_mut(&ptr) else { continue };
        match rng.below(9) {
            0 | 1 if node.is_number() || rng.chance(1, 4) => {
                raw = Some(*rng.pick(RAW_NUMBERS));
                *node = Value::String(MARKER_NUM.into());
            }
            2 => {
                if let Value::Object(m) = node
                    && !m.is_empty()
                {
                    let k = m.keys().nth(rng.below(m.len())).cloned().unwrap_or_default();
                    m.remove(&k);
                } else if let Value::Array(a) = node
                    && !a.is_empty()
                {
                    a.remove(rng.below(a.len()));
                }
            }
            3 => {
                if let Value::Object(m) = node
                    && !m.is_empty()
                {
                    // A duplicate key, written after the original with another value.
                    let k = m.keys().nth(rng.below(m.len())).cloned().unwrap_or_default();
                    dup = Some((k, random_leaf(rng)));
                    m.insert((*rng.pick(&MARKER_DUP)).into(), Value::Null);
                } else if let Value::Array(a) = node
                    && !a.is_empty()
                {
                    let e = a[rng.below(a.len())].clone();
                    a.push(e);
                }
            }
            4 => {
                if let Value::Object(m) = node {
                    let k = *rng.pick(&[
                        "kind",
                        "bits",
                        "group_size",
                        "version",
                        "extra",
                        "num_bins",
                        "threshold",
                        "counts",
                    ]);
                    m.insert(k.into(), random_leaf(rng));
                } else {
                    *node = random_leaf(rng);
                }
            }
            5 => {
                if let Ok(d) = serde_json::from_slice::<Value>(donor) {
                    let mut dptrs = Vec::new();
                    json_pointers(&d, String::new(), &mut dptrs);
                    let p: &String = rng.pick(&dptrs);
                    if let Some(sub) = d.pointer(p) {
                        *node = sub.clone();
                    }
                }
            }
            6 => *node = Value::Array(vec![node.clone(); 1 + rng.below(3)]),
            _ => {
                *node = match node {
                    Value::Number(_) => {
                        Value::from(*rng.pick(&[-1.0, 0.0, 1e308, -1e308, 1e-300, 0.5, 100.000_01, 65536.0]))
                    }
                    _ => random_leaf(rng),
                };
            }
        }
    }
    let text = if rng.chance(1, 2) { serde_json::to_string(&doc) } else { serde_json::to_string_pretty(&doc) };
    let Ok(mut text) = text else { return base.to_vec() };
    if let Some(r) = raw {
        text = text.replace("\"\\u0001RAW\\u0001\"", r);
    }
    if let Some((k, v)) = dup {
        let pair = format!("{}:{}", Value::String(k), v);
        for marker in ["\"\\u0002DUP\\u0002\"", "\"~~DUP~~\""] {
            text = text.replace(&format!("{marker}:null"), &pair).replace(&format!("{marker}: null"), &pair);
        }
    }
    text.into_bytes()
}
