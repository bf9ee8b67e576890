//! The documentation invariants: every document a source or document cites exists (with its
//! heading), and every `pub` item of core and app has a doc comment.

use std::path::Path;

use crate::scan::{files, read, rel, repo};

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
