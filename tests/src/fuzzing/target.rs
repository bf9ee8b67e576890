//! The fuzz targets: what each feeds its input to (`Context`), the bounds of one execution
//! (`Limits`), and how an outcome is described so that new code paths can be spotted.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use quantbench_core::calibrate::RecipeFile;
use quantbench_core::data::{DataSet, DataSource};
use quantbench_core::model::{Dim, ModelSummary, OnnxModel, TensorInfo};

use super::mutate_npy::{Npy, descr_size};
use crate::{SAMPLE_MODELS, sample};

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
    pub(super) target: Target,
    pub(super) limits: Limits,
    pub(super) scratch: tempfile::TempDir,
    layouts: Vec<(&'static str, Vec<TensorInfo>)>,
    summaries: Vec<ModelSummary>,
}

fn tensor(name: &str, dims: &[Dim]) -> TensorInfo {
    TensorInfo { name: name.into(), elem_type: "float32".into(), shape: dims.to_vec() }
}

fn sym(s: &str) -> Dim {
    Dim::Symbolic(s.into())
}

pub(super) fn load_sample(name: &str) -> OnnxModel {
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
