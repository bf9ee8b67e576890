//! The tidy test: ARCHITECTURE.md's invariants, checked on the sources so that a change that
//! breaks one fails `cargo test`. It reads the repository's files only (no build artifacts):
//!
//! - core's modules import only modules below them in the layer order (no cycles);
//! - the CLI does not reach into the GUI; the GUI's files import each other without cycles, and
//!   only the app state, the controller and the frame name the app (views take a context);
//! - no source file is over 500 lines;
//! - only `core::model` names tract (everything else uses `model::onnx` and `model::graph`);
//! - only `core::fsutil` writes, renames or removes files;
//! - threads are spawned only where the allow-list says (the worker, two short-lived GUI helpers)
//!   and scoped compute threads only in the two parallel kernels;
//! - every document a source or document cites exists in the repository (with its heading, when
//!   a `#anchor` is given);
//! - every `pub` item and field of core and app has a doc comment;
//! - core does not depend on egui; channels are bounded and `unwrap` is linted (the lint
//!   configuration is in place); no hash map outside the range memo; no process spawned by the
//!   product (Python runs only in tests); only `emit` walks a plan over a graph.

mod docs;
mod scan;

use std::collections::{BTreeMap, BTreeSet};

use scan::{code, crate_refs, files, find_cycle, is_test_file, product_code, read, rel, repo};

/// core's layers, lowest first. A module may import modules of lower layers only (`simulate` and
/// `export` share a layer: neither imports the other).
const CORE_LAYERS: &[&[&str]] = &[
    &["error"],
    &["panics", "fsutil", "metrics"],
    &["model"],
    &["data"],
    &["quant"],
    &["observe"],
    &["calibrate"],
    &["algorithms"],
    &["plan"],
    &["emit"],
    &["simulate", "export"],
    &["analysis"],
    &["report"],
    &["pipeline"],
    &["worker"],
];

/// Files that may start named, long-lived threads (`thread::spawn` / `thread::Builder`).
const THREAD_SPAWN_ALLOWED: &[&str] = &[
    "core/src/worker/mod.rs",
    "core/src/worker/scheduler.rs",
    // The system file dialog blocks; it runs on its own thread and answers through a channel.
    "app/src/gui/controller.rs",
    // Encoding and writing a saved view (PNG, CSV) off the UI thread.
    "app/src/gui/view_export.rs",
];

/// Files that may run scoped compute threads (`thread::scope`), which end before the call returns.
const THREAD_SCOPE_ALLOWED: &[&str] = &["core/src/model/parallel.rs", "core/src/observe/observer.rs"];

/// Calls that write, move or delete files.
const FILE_WRITES: &[&str] = &[
    "fs::write(",
    "File::create(",
    "OpenOptions",
    "fs::rename(",
    "fs::copy(",
    "fs::remove_file(",
    "fs::remove_dir",
    "fs::create_dir",
];

/// The core module a file of core/src belongs to (None for lib.rs).
fn core_module(path: &str) -> Option<String> {
    let inner = path.strip_prefix("core/src/")?;
    let first = inner.split('/').next()?;
    (first != "lib.rs").then(|| first.trim_end_matches(".rs").to_string())
}

fn layer_of(module: &str) -> Option<usize> {
    CORE_LAYERS.iter().position(|l| l.contains(&module))
}

#[test]
fn core_modules_import_only_lower_layers() {
    let lib = read(&repo().join("core/src/lib.rs"));
    let mut problems = Vec::new();
    for m in lib.lines().filter_map(|l| l.strip_prefix("pub mod ").and_then(|r| r.strip_suffix(';'))) {
        if layer_of(m).is_none() {
            problems.push(format!("core module `{m}` has no layer in CORE_LAYERS (add it where it belongs)"));
        }
    }
    for f in files("core/src", &[".rs"]) {
        let path = rel(&f);
        let Some(module) = core_module(&path) else { continue };
        let Some(own) = layer_of(&module) else { continue };
        for used in crate_refs(&code(&read(&f)), "crate::") {
            if used == module || matches!(used.as_str(), "Error" | "Result") {
                continue;
            }
            match layer_of(&used) {
                Some(l) if l < own => {}
                Some(_) => problems.push(format!("{path}: `{module}` imports `{used}`, which is not below it")),
                None => problems.push(format!("{path}: imports `crate::{used}`, which has no layer")),
            }
        }
    }
    assert!(problems.is_empty(), "layer order violated (ARCHITECTURE.md, Layers):\n{}", problems.join("\n"));
}

/// The GUI's file-level import graph: `gui/a.rs` → `gui/b.rs` when a names `super::b` or
/// `crate::gui::b`.
fn gui_graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut graph = BTreeMap::new();
    for f in files("app/src/gui", &[".rs"]) {
        let name = f.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
        if name == "mod" || is_test_file(&f) {
            continue;
        }
        let code = code(&read(&f));
        let mut to: BTreeSet<String> = crate_refs(&code, "super::");
        to.extend(crate_refs(&code, "crate::gui::"));
        to.retain(|t| *t != name && repo().join(format!("app/src/gui/{t}.rs")).is_file());
        graph.insert(name, to);
    }
    graph
}

#[test]
fn the_cli_does_not_depend_on_the_gui() {
    let mut checked = 0;
    for f in files("app/src", &[".rs"]) {
        let path = rel(&f);
        if path.starts_with("app/src/gui/") || path == "app/src/main.rs" {
            continue;
        }
        checked += 1;
        let code = code(&read(&f));
        assert!(!code.contains("gui::") && !code.contains("egui"), "{path}: the CLI must not depend on the GUI");
    }
    assert!(checked >= 2, "the CLI's files were not found");
}

/// GUI files that may name the app itself: its state, the controller and the frame. Every other
/// file is a view (or a helper of views) and sees only a `ViewContext` and its own state.
const GUI_APP_FILES: &[&str] = &["app", "controller", "events", "frame"];

#[test]
fn gui_files_import_each_other_without_cycles_and_views_see_only_their_context() {
    let graph = gui_graph();
    assert!(graph.len() > 15, "the GUI files were not found");
    assert_eq!(find_cycle(&graph), None, "GUI files import each other in a cycle (ARCHITECTURE.md, GUI)");
    let mut problems = Vec::new();
    for f in files("app/src/gui", &[".rs"]) {
        let name = f.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
        if name == "mod" || is_test_file(&f) || GUI_APP_FILES.contains(&name.as_str()) {
            continue;
        }
        if code(&read(&f)).contains("WorkbenchApp") {
            problems.push(rel(&f));
        }
    }
    assert!(problems.is_empty(), "views that reach the whole app (take a ViewContext and their state): {problems:?}");
}

/// Files that may exceed [`MAX_LINES`]: none today (generated code or data tables would go here).
const LONG_FILES_ALLOWED: &[&str] = &[];
/// The longest a source file may grow before it is split.
const MAX_LINES: usize = 500;

#[test]
fn no_source_file_is_over_500_lines() {
    let mut problems = Vec::new();
    for dir in ["core/src", "app/src", "tests"] {
        for f in files(dir, &[".rs"]) {
            let path = rel(&f);
            let n = read(&f).lines().count();
            if n > MAX_LINES && !LONG_FILES_ALLOWED.contains(&path.as_str()) {
                problems.push(format!("{path}: {n} lines"));
            }
        }
    }
    assert!(problems.is_empty(), "files over {MAX_LINES} lines (split them by theme):\n{}", problems.join("\n"));
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let g = |edges: &[(&str, &str)]| {
        let mut m: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in edges {
            m.entry((*a).into()).or_default().insert((*b).into());
            m.entry((*b).into()).or_default();
        }
        m
    };
    assert_eq!(find_cycle(&g(&[("a", "b"), ("b", "c")])), None);
    assert_eq!(find_cycle(&g(&[("a", "b"), ("b", "c"), ("c", "a")])).map(|c| c.len()), Some(4));
    assert_eq!(
        crate_refs("use crate::{model::{a, b}, plan::X};\nlet x = crate::quant::y; my_crate::no", "crate::"),
        ["model", "plan", "quant"].into_iter().map(String::from).collect()
    );
    assert_eq!(code("let a = \"http://x\"; // crate::plan\n"), "let a = \"http://x\"; \n");
}

#[test]
fn only_the_model_module_names_tract() {
    let mut problems = Vec::new();
    for dir in ["core/src", "app/src", "tests/src", "tests/tests"] {
        for f in files(dir, &[".rs"]) {
            let path = rel(&f);
            if path.starts_with("core/src/model/") {
                continue;
            }
            let code = code(&read(&f));
            // A path starting `tract_…::` or `tract::` (a crate), not a word that contains it.
            let names_tract = ["tract_", "tract::"].iter().any(|pat| {
                code.match_indices(pat)
                    .any(|(i, _)| !code[..i].chars().next_back().is_some_and(|c| c.is_alphanumeric() || c == '_'))
            });
            if names_tract {
                problems.push(path);
            }
        }
    }
    assert!(problems.is_empty(), "tract named outside core::model (use model::onnx / model::graph): {problems:?}");
}

#[test]
fn only_fsutil_writes_files() {
    let mut problems = Vec::new();
    for (path, code) in product_code().iter().filter(|(p, _)| p != "core/src/fsutil.rs") {
        for w in FILE_WRITES.iter().filter(|w| code.contains(*w)) {
            problems.push(format!("{path}: {w}"));
        }
    }
    assert!(problems.is_empty(), "file writes outside core::fsutil:\n{}", problems.join("\n"));
}

#[test]
fn threads_start_only_where_allowed() {
    let mut problems = Vec::new();
    for (path, code) in product_code() {
        let spawns = code.contains("thread::spawn") || code.contains("thread::Builder");
        if spawns && !THREAD_SPAWN_ALLOWED.contains(&path.as_str()) {
            problems.push(format!("{path}: spawns a thread"));
        }
        if code.contains("thread::scope") && !THREAD_SCOPE_ALLOWED.contains(&path.as_str()) {
            problems.push(format!("{path}: runs scoped threads"));
        }
    }
    assert!(problems.is_empty(), "threads outside the allow-list (tests/tidy/main.rs):\n{}", problems.join("\n"));
}

#[test]
fn the_remaining_invariants_hold() {
    let core_toml = read(&repo().join("core/Cargo.toml"));
    assert!(!core_toml.contains("egui") && !core_toml.contains("eframe"), "core depends on the GUI toolkit");
    let clippy = read(&repo().join("clippy.toml"));
    assert!(clippy.contains("crossbeam_channel::unbounded"), "clippy.toml no longer bans unbounded channels");
    let workspace = read(&repo().join("Cargo.toml"));
    assert!(workspace.contains("unwrap_used = \"warn\""), "the unwrap lint is off");
    let mut problems = Vec::new();
    for (path, code) in product_code() {
        if (code.contains("HashMap") || code.contains("HashSet")) && path != "core/src/observe/calibration.rs" {
            problems.push(format!("{path}: a hash map (use BTreeMap: its order reaches files and the UI)"));
        }
        if code.contains("process::Command") || code.contains("Command::new(") && path.starts_with("core/") {
            problems.push(format!("{path}: spawns a process"));
        }
        // Opset conversion rewrites the model's own operators (after emit placed Q/DQ), not
        // where quantized tensors go.
        if code.contains("mem::take(&mut graph.node)")
            && !["core/src/emit.rs", "core/src/model/opset.rs"].contains(&path.as_str())
        {
            problems.push(format!("{path}: walks a graph's nodes itself (simulation and export go through emit)"));
        }
    }
    assert!(problems.is_empty(), "architecture invariants violated:\n{}", problems.join("\n"));
}
