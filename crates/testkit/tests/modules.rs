//! The module graph of `cloud`, `agent` and `cli` has no cycle.
//!
//! Each crate's `src` is read as text: every `crate::…` and `super::…` path outside comments
//! and `#[cfg(test)]` modules is an edge from the module it appears in to the module it names.
//! A node is a top-level module, or a child of a top-level module that is a folder (`api::users`,
//! `app::sspr`, `writeback::execute`); a folder's own `mod.rs` is the node of the folder, and
//! edges between a folder and its children are not counted (the folder declares them). A cycle
//! fails the test with the path of the cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The module path of a source file: `lib.rs` → `[]`, `api/mod.rs` → `[api]`,
/// `api/users.rs` → `[api, users]`.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap_or(file);
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if let Some(last) = parts.pop() {
        let stem = last.trim_end_matches(".rs").to_string();
        if !(stem == "mod" || (parts.is_empty() && (stem == "lib" || stem == "main"))) {
            parts.push(stem);
        }
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The text without comments, string literals and `#[cfg(test)]` items.
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            i += 2;
            while i < b.len() && !b[i..].starts_with(b"*/") {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && i + 2 < b.len() && (b[i + 2] == b'\'' || b[i + 1] == b'\\') {
            // A char literal ('"', '\n'); lifetimes have no closing quote two bytes on.
            i += 1;
            while i < b.len() && b[i] != b'\'' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
        } else if b[i..].starts_with(b"#[cfg(test)]") {
            // Skip the attribute and the item it guards (up to its closing brace or `;`).
            i += "#[cfg(test)]".len();
            let mut depth = 0usize;
            while i < b.len() {
                match b[i] {
                    b'{' => depth += 1,
                    b'}' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            i += 1;
                            break;
                        }
                    }
                    b';' if depth == 0 => {
                        i += 1;
                        break;
                    }
                    _ => {}
                }
                i += 1;
            }
        } else {
            let ch = text[i..].chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The paths a `use` tree starting at `s` (just after `crate::`) names, as segment lists.
fn use_tree(s: &str) -> Vec<Vec<String>> {
    let s = s.trim_start();
    if let Some(rest) = s.strip_prefix('{') {
        // Split the group at depth-0 commas.
        let mut depth = 0usize;
        let mut items = Vec::new();
        let mut start = 0;
        for (i, c) in rest.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    items.push(&rest[start..i]);
                    break;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    items.push(&rest[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        return items.into_iter().flat_map(use_tree).collect();
    }
    let name: String = s.chars().take_while(|c| is_ident(*c)).collect();
    if name.is_empty() || name == "self" {
        return vec![Vec::new()];
    }
    let rest = &s[name.len()..];
    match rest.trim_start().strip_prefix("::") {
        Some(more) => use_tree(more)
            .into_iter()
            .map(|mut p| {
                p.insert(0, name.clone());
                p
            })
            .collect(),
        None => vec![vec![name]],
    }
}

/// The modules (as absolute segment lists) that the code of module `here` names.
fn references(code: &str, here: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (prefix, base) in [("crate::", 0usize), ("super::", 1)] {
        let mut from = 0;
        while let Some(pos) = code[from..].find(prefix) {
            let at = from + pos;
            from = at + prefix.len();
            if code[..at].chars().next_back().is_some_and(is_ident) {
                continue;
            }
            let mut base_path: Vec<String> = here.to_vec();
            let mut rest = &code[from..];
            if base == 1 {
                base_path.pop();
                // `super::super::…`
                while let Some(r) = rest.strip_prefix("super::") {
                    base_path.pop();
                    rest = r;
                }
            } else {
                base_path.clear();
            }
            for p in use_tree(rest) {
                let mut full = base_path.clone();
                full.extend(p);
                out.push(full);
            }
        }
    }
    out
}

struct Crate {
    /// Top-level modules that are folders.
    folders: BTreeSet<String>,
    /// Every module path that exists.
    modules: BTreeSet<Vec<String>>,
}

impl Crate {
    /// The node a module path belongs to, if it names a module of the crate.
    fn node(&self, path: &[String]) -> Option<String> {
        // The longest prefix that is a module.
        let known = (1..=path.len())
            .rev()
            .find(|n| self.modules.contains(&path[..*n]))?;
        let path = &path[..known];
        Some(if self.folders.contains(&path[0]) && path.len() >= 2 {
            format!("{}::{}", path[0], path[1])
        } else {
            path[0].clone()
        })
    }
}

fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_path(src, f)).collect();
    let folders = files
        .iter()
        .map(|f| module_path(src, f))
        .filter(|m| m.len() >= 2)
        .map(|m| m[0].clone())
        .collect();
    let krate = Crate { folders, modules };
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let here = module_path(src, f);
        let Some(from) = krate.node(&here) else {
            continue;
        };
        let text = std::fs::read_to_string(f).unwrap_or_default();
        let code = code_only(&text);
        for r in references(&code, &here) {
            let Some(to) = krate.node(&r) else { continue };
            let related = to == from
                || to.starts_with(&format!("{from}::"))
                || from.starts_with(&format!("{to}::"));
            if !related {
                edges.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    edges
}

/// A cycle of the graph, as the list of its nodes (first repeated at the end), if there is one.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in edges.get(n).into_iter().flatten() {
            match state.get(m.as_str()) {
                Some(1) => {
                    let start = stack.iter().position(|s| s == m).unwrap_or(0);
                    let mut cycle = stack[start..].to_vec();
                    cycle.push(m.clone());
                    return Some(cycle);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(m, edges, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in edges.keys() {
        if !state.contains_key(n.as_str()) {
            let mut stack = Vec::new();
            if let Some(c) = visit(n, edges, &mut state, &mut stack) {
                return Some(c);
            }
        }
    }
    None
}

fn crate_src(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(name)
        .join("src")
}

#[test]
fn cloud_agent_and_cli_modules_have_no_cycle() {
    let mut cycles = Vec::new();
    for name in ["cloud", "agent", "cli"] {
        let src = crate_src(name);
        let mut edges = graph(&src);
        assert!(
            !edges.is_empty(),
            "no module references found in {}: is the path right?",
            src.display()
        );
        // Every cycle, not only the first: drop the closing edge of each one found and look again.
        while let Some(c) = find_cycle(&edges) {
            cycles.push(format!("{name}: {}", c.join(" -> ")));
            if let [.., a, b] = c.as_slice() {
                if let Some(out) = edges.get_mut(a) {
                    out.remove(b);
                }
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "module cycles (break each by moving what both sides need into a module of its own):\n{}",
        cycles.join("\n")
    );
}

#[test]
fn the_cycle_finder_finds_a_cycle_and_reads_use_groups() {
    let here = vec!["api".to_string(), "users".to_string()];
    let refs = references(
        &code_only(
            "use crate::{audit::record, error::{ApiResult, AppError}}; // crate::x\n fn f() { super::licenses::reconcile(); }",
        ),
        &here,
    );
    assert!(refs.contains(&vec!["audit".to_string(), "record".to_string()]));
    assert!(refs.contains(&vec!["error".to_string(), "AppError".to_string()]));
    assert!(refs.contains(&vec![
        "api".to_string(),
        "licenses".to_string(),
        "reconcile".to_string()
    ]));
    assert!(!refs.iter().any(|r| r == &vec!["x".to_string()]));
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    edges.entry("a".into()).or_default().insert("b".into());
    edges.entry("b".into()).or_default().insert("c".into());
    assert_eq!(find_cycle(&edges), None);
    edges.entry("c".into()).or_default().insert("a".into());
    assert_eq!(
        find_cycle(&edges),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
}
