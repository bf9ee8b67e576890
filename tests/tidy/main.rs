//! The tidy test: ARCHITECTURE.md's invariants, checked on the sources so that a change that
//! breaks one fails `cargo test`. It reads the repository's files only (no build artifacts):
//!
//! - core's modules import only modules below them in the layer order (no cycles);
//! - the CLI does not reach into the GUI;
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

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

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
    "app/src/gui/app.rs",
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

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every file under `dir` (relative to the repository) with one of `exts`, sorted.
fn files(dir: &str, exts: &[&str]) -> Vec<PathBuf> {
    fn walk(p: &Path, exts: &[&str], out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(p) else { return };
        for e in entries.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            if path.is_dir() {
                if !matches!(name.as_str(), "target" | ".git" | "node_modules" | "fuzz_corpus" | "__pycache__") {
                    walk(&path, exts, out);
                }
            } else if exts.iter().any(|x| name.ends_with(x)) {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&repo().join(dir), exts, &mut out);
    out.sort();
    out
}

fn rel(p: &Path) -> String {
    p.strip_prefix(repo()).unwrap_or(p).to_string_lossy().replace('\\', "/")
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The code of a Rust file without comments and without its trailing `#[cfg(test)] mod`
/// (string contents are kept; `//` inside a string is not a comment).
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod ") {
        Some(i) => &text[..i],
        None => text,
    };
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut in_str = false;
        let mut prev = '\0';
        let mut cut = line.len();
        for (i, c) in line.char_indices() {
            if c == '"' && prev != '\\' {
                in_str = !in_str;
            }
            if !in_str && c == '/' && prev == '/' {
                cut = i - 1;
                break;
            }
            prev = c;
        }
        out.push_str(&line[..cut]);
        out.push('\n');
    }
    out
}

/// The first path segment of every `crate::` path in `code`, including each item of a grouped
/// `crate::{a, b::c}`.
fn crate_refs(code: &str, prefix: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String { s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect() };
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices(prefix) {
        let before = code[..i].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &code[i + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0usize;
            let mut item_start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && !c.is_whitespace() => {
                        item_start = false;
                        let id = ident(&group[j..]);
                        if !id.is_empty() {
                            out.insert(id);
                        }
                    }
                    _ => {}
                }
            }
        } else {
            let id = ident(rest);
            if !id.is_empty() {
                out.insert(id);
            }
        }
    }
    out
}

/// The product's Rust sources (core and app, without the GUI's test module): path and code.
fn product_code() -> Vec<(String, String)> {
    ["core/src", "app/src"]
        .iter()
        .flat_map(|dir| files(dir, &[".rs"]))
        .map(|f| (rel(&f), code(&read(&f))))
        .filter(|(path, _)| !path.ends_with("/tests.rs"))
        .collect()
}

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
        if name == "mod" || name == "tests" {
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

/// A cycle of `graph`, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in graph.get(n).into_iter().flatten() {
            match state.get(m.as_str()).copied().unwrap_or(0) {
                1 => {
                    let start = stack.iter().position(|s| s == m).unwrap_or(0);
                    let mut cycle = stack[start..].to_vec();
                    cycle.push(m.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(m, graph, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        if state.get(n.as_str()).copied().unwrap_or(0) == 0 {
            let mut stack = Vec::new();
            if let Some(c) = visit(n, graph, &mut state, &mut stack) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn the_cli_does_not_depend_on_the_gui() {
    let cli = code(&read(&repo().join("app/src/cli.rs")));
    assert!(!cli.contains("gui::") && !cli.contains("egui"), "the CLI must not depend on the GUI");
    // The GUI's own files still import each other in cycles (views take the whole app state;
    // issue 20's view-context step is open): the graph is computed so that its size is known.
    assert!(gui_graph().len() > 5, "the GUI files were not found");
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

/// GitHub's anchor of a Markdown heading.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Every `name.md` / `dir/name.md#anchor` a text cites (URLs excluded).
fn cited_docs(text: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices(".md") {
        let after = &text[i + 3..];
        if after.chars().next().is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let start = text[..i]
            .char_indices()
            .rev()
            .take_while(|(_, c)| c.is_alphanumeric() || matches!(c, '_' | '-' | '/' | '.'))
            .last()
            .map_or(i, |(j, _)| j);
        let name = &text[start..i + 3];
        let url = text[..start].ends_with("://")
            || text[..start].rsplit(char::is_whitespace).next().is_some_and(|w| w.contains("://"));
        if name.len() <= 3 || url || name.starts_with('.') && !name.starts_with("../") {
            continue;
        }
        let anchor = after
            .strip_prefix('#')
            .map(|a| a.chars().take_while(|c| c.is_alphanumeric() || matches!(c, '-' | '_')).collect::<String>());
        out.push((name.to_string(), anchor.filter(|a| !a.is_empty())));
    }
    out
}

#[test]
fn cited_documents_exist() {
    let mut sources = Vec::new();
    for dir in ["core", "app", "tests", "scripts", "docs", ".ci"] {
        sources.extend(files(dir, &[".rs", ".toml", ".sh", ".md", ".py", "run"]));
    }
    // This file names example citations in its own docs.
    sources.retain(|p| !rel(p).starts_with("tests/tidy/"));
    for top in ["README.md", "ARCHITECTURE.md", "BENCHMARKS.md", "Cargo.toml", "clippy.toml"] {
        let p = repo().join(top);
        if p.is_file() {
            sources.push(p);
        }
    }
    let mut problems = Vec::new();
    let mut checked = 0;
    for f in &sources {
        let text = read(f);
        for (name, anchor) in cited_docs(&text) {
            checked += 1;
            let base = f.parent().unwrap_or(Path::new("."));
            let target = [repo().join(&name), base.join(&name), repo().join("docs").join(&name)]
                .into_iter()
                .find(|p| p.is_file());
            let Some(target) = target else {
                problems.push(format!("{}: cites {name}, which is not in the repository", rel(f)));
                continue;
            };
            if let Some(anchor) = anchor {
                let doc = read(&target);
                let found = doc
                    .lines()
                    .filter_map(|l| l.trim_start().strip_prefix('#'))
                    .any(|h| slug(h.trim_start_matches('#')) == anchor);
                if !found {
                    problems.push(format!("{}: cites {name}#{anchor}, which has no such heading", rel(f)));
                }
            }
        }
    }
    assert!(checked > 10, "no citations found: the scanner is broken");
    assert!(problems.is_empty(), "citations of missing documents:\n{}", problems.join("\n"));
}

/// Whether the lines before `i` (attributes skipped) end with a doc comment.
fn documented(lines: &[&str], i: usize) -> bool {
    let mut j = i;
    while j > 0 {
        j -= 1;
        let l = lines[j].trim();
        if l.starts_with("///") || l.starts_with("#[doc") {
            return true;
        }
        if l.starts_with("#[") || l.starts_with("//") {
            // Attributes, and plain comments between the doc and the item.
            continue;
        }
        if l == ")]" || l == "]" {
            // The last line of a multi-line attribute: skip to its first.
            while j > 0 {
                j -= 1;
                if lines[j].trim().starts_with("#[") {
                    break;
                }
            }
            continue;
        }
        return false;
    }
    false
}

#[test]
fn public_items_have_doc_comments() {
    const ITEMS: [&str; 9] = [
        "pub fn ",
        "pub struct ",
        "pub enum ",
        "pub trait ",
        "pub const ",
        "pub static ",
        "pub type ",
        "pub mod ",
        "pub async fn ",
    ];
    let mut problems = Vec::new();
    let mut checked = 0;
    for dir in ["core/src", "app/src"] {
        for f in files(dir, &[".rs"]) {
            let path = rel(&f);
            let text = read(&f);
            let body = match text.find("#[cfg(test)]\nmod ") {
                Some(i) => &text[..i],
                None => &text,
            };
            let lines: Vec<&str> = body.lines().collect();
            for (i, line) in lines.iter().enumerate() {
                let t = line.trim_start();
                let field = t.strip_prefix("pub ").is_some_and(|r| {
                    let id: String = r.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                    !id.is_empty() && r[id.len()..].trim_start().starts_with(':') && !r.starts_with("mod ")
                });
                if !(field || ITEMS.iter().any(|p| t.starts_with(p))) {
                    continue;
                }
                checked += 1;
                if let Some(m) = t.strip_prefix("pub mod ").and_then(|r| r.strip_suffix(';')) {
                    // A module file documents itself with `//!`.
                    let dir = f.parent().unwrap_or(Path::new("."));
                    let own = if f.file_name().is_some_and(|n| n == "mod.rs" || n == "lib.rs" || n == "main.rs") {
                        dir.to_path_buf()
                    } else {
                        dir.join(f.file_stem().unwrap_or_default())
                    };
                    let file =
                        [own.join(format!("{m}.rs")), own.join(m).join("mod.rs")].into_iter().find(|p| p.is_file());
                    if !file.is_some_and(|p| read(&p).trim_start().starts_with("//!")) && !documented(&lines, i) {
                        problems.push(format!("{path}:{}: module `{m}` has no //! doc", i + 1));
                    }
                    continue;
                }
                if !documented(&lines, i) {
                    problems.push(format!("{path}:{}: {}", i + 1, t.trim_end()));
                }
            }
        }
    }
    assert!(checked > 500, "only {checked} public items found: the scanner is broken");
    assert!(problems.is_empty(), "public items without a doc comment:\n{}", problems.join("\n"));
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
        if code.contains("mem::take(&mut graph.node)") && path != "core/src/emit.rs" {
            problems.push(format!("{path}: walks a graph's nodes itself (simulation and export go through emit)"));
        }
    }
    assert!(problems.is_empty(), "architecture invariants violated:\n{}", problems.join("\n"));
}
