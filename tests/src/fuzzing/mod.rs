//! An in-repo mutation fuzzer for the loaders that read untrusted files: ONNX models (and their
//! summary), `.npz`/`.npy` data sets, and recipe JSON. Shared by the `fuzz` binary (long,
//! time-bounded runs) and the `fuzz_regressions` end-to-end test (short, deterministic runs).
//!
//! There is no coverage instrumentation (no nightly, no cargo-fuzz); instead the mutators know
//! the formats (protobuf models are mutated as `ModelProto`s, `.npz` archives member by member,
//! `.npy` headers field by field, recipes as JSON trees) and an input that produces an error
//! message never seen before joins the corpus, which steers the search towards new code paths.

mod fuzzer;
mod mutate_bytes;
mod mutate_json;
mod mutate_npy;
mod mutate_npz;
mod mutate_onnx;
mod panics;
mod report;
mod rng;
mod seeds;
mod target;

pub use fuzzer::{Budget, Fuzzer, fuzz_for, note_file_name, preview, save_findings};
pub use mutate_bytes::mutate_bytes;
pub use mutate_json::mutate_json_text;
pub use mutate_npy::{Npy, mutate_npy, mutate_npy_bytes};
pub use mutate_npz::{build_zip, mutate_npz, parse_stored_zip};
pub use mutate_onnx::mutate_model_bytes;
pub use panics::{install_panic_hook, repo_frame};
pub use report::{Finding, Monitor, Report};
pub use rng::{Rng, fnv1a};
pub use seeds::generated_seeds;
pub use target::{Context, Limits, Target, blank, data_layouts, declared_array_sizes, scratch_base};
