//! What the demo, the tests and the benchmarks need from the machine, in one table
//! (`scripts/requirements.tsv`), and a scanner that finds the external programs the code and
//! the scripts call, so a test can fail when one is used that the table (and so
//! `scripts/deps.sh`, which installs and checks every row) does not name.
//!
//! The scanner reads Rust sources for `Command::new("…")`, `find_program("…")`,
//! `tool_version("…")`, `first_line("…")` and `bin.join("…")`, Python imports (in `.py` files
//! and in Python embedded in Rust strings), and the words at command position of shell scripts.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// `program`, `path`, `file`, `python` or `user`.
    pub kind: String,
    /// The program name, absolute path, Python module or user name.
    pub what: String,
    /// The Debian package that brings it, or `(essential)` / `(toolchain)`.
    pub package: String,
    pub used_by: String,
}

/// Parses `requirements.tsv`.
pub fn parse_table(text: &str) -> Result<Vec<Requirement>, String> {
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() != 4 || cols.iter().any(|c| c.trim().is_empty()) {
            return Err(format!(
                "line {}: expected 4 tab-separated columns (kind, what, package, used by): {line:?}",
                n + 1
            ));
        }
        if !["program", "path", "file", "python", "user"].contains(&cols[0]) {
            return Err(format!("line {}: unknown kind {:?}", n + 1, cols[0]));
        }
        rows.push(Requirement {
            kind: cols[0].into(),
            what: cols[1].into(),
            package: cols[2].into(),
            used_by: cols[3].into(),
        });
    }
    Ok(rows)
}

/// The table of this workspace.
pub fn table_path() -> PathBuf {
    workspace_root().join("scripts/requirements.tsv")
}

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// Something the code calls: a program (name or absolute path) or a Python module.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Used {
    Program(String),
    Python(String),
}

/// Whether `used` is covered by a row of `table`.
pub fn covered(table: &[Requirement], used: &Used) -> bool {
    match used {
        Used::Program(p) => {
            let base = p.rsplit('/').next().unwrap_or(p);
            table.iter().any(|r| match r.kind.as_str() {
                "program" => r.what == base,
                "path" => r.what == *p || r.what.rsplit('/').next() == Some(base),
                _ => false,
            })
        }
        Used::Python(m) => table.iter().any(|r| r.kind == "python" && r.what == *m),
    }
}

/// Programs that are part of this project or of the toolchain that builds it.
const OWN: &[&str] = &["dirbridge", "testkit", "dirbridge-bench", "cargo"];

/// Python's standard library modules the scripts import (no package needed).
const PYTHON_STDLIB: &[&str] = &[
    "json",
    "re",
    "sys",
    "time",
    "os",
    "argparse",
    "asyncio",
    "base64",
    "email",
    "hashlib",
    "mailbox",
    "pathlib",
    "signal",
    "socket",
    "struct",
    "subprocess",
    "tempfile",
    "uuid",
    "traceback",
    "datetime",
];

/// Every program and Python module a Rust source calls.
pub fn scan_rust(source: &str) -> BTreeSet<Used> {
    let mut out = BTreeSet::new();
    for prefix in [
        "Command::new(\"",
        "find_program(\"",
        "tool_version(\"",
        "first_line(\"",
        "bin.join(\"",
        "bin_dir().join(\"",
    ] {
        let mut rest = source;
        while let Some(i) = rest.find(prefix) {
            rest = &rest[i + prefix.len()..];
            if let Some(end) = rest.find('"') {
                let name = &rest[..end];
                let program_like = name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_./+-".contains(c));
                if !name.is_empty() && program_like && !OWN.contains(&name) {
                    out.insert(Used::Program(name.to_owned()));
                }
            }
        }
    }
    // `python3 -m module` and `python3 -c "import module"` as argument lists.
    for prefix in ["\"-m\", \"", "\"-c\", \"import "] {
        let mut rest = source;
        while let Some(i) = rest.find(prefix) {
            rest = &rest[i + prefix.len()..];
            let module: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !module.is_empty() && !PYTHON_STDLIB.contains(&module.as_str()) {
                out.insert(Used::Python(module));
            }
        }
    }
    out.extend(scan_python(source));
    out
}

/// The non-standard modules imported by Python code in `source` (a `.py` file, or Python
/// embedded in another file's strings: any line that starts with `import X` or
/// `from X… import`).
pub fn scan_python(source: &str) -> BTreeSet<Used> {
    let mut out = BTreeSet::new();
    for line in source.lines() {
        let line = line.trim_start();
        let module = if let Some(rest) = line.strip_prefix("import ") {
            rest.split([',', ' ', '.']).next()
        } else if let Some(rest) = line.strip_prefix("from ") {
            rest.contains(" import ")
                .then(|| rest.split([' ', '.']).next())
                .flatten()
        } else {
            None
        };
        if let Some(m) = module.map(str::trim).filter(|m| !m.is_empty()) {
            let ident = m.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if ident && !PYTHON_STDLIB.contains(&m) {
                out.insert(Used::Python(m.to_owned()));
            }
        }
    }
    out
}

/// Bash keywords and builtins: never a program to install.
const SHELL_BUILTINS: &[&str] = &[
    "if",
    "then",
    "else",
    "elif",
    "fi",
    "for",
    "while",
    "until",
    "do",
    "done",
    "case",
    "esac",
    "in",
    "function",
    "select",
    "time",
    "!",
    "[",
    "[[",
    "]]",
    "alias",
    "bg",
    "bind",
    "break",
    "builtin",
    "caller",
    "cd",
    "command",
    "compgen",
    "complete",
    "continue",
    "declare",
    "dirs",
    "disown",
    "echo",
    "enable",
    "eval",
    "exec",
    "exit",
    "export",
    "false",
    "fc",
    "fg",
    "getopts",
    "hash",
    "help",
    "history",
    "jobs",
    "kill",
    "let",
    "local",
    "logout",
    "mapfile",
    "popd",
    "printf",
    "pushd",
    "pwd",
    "read",
    "readarray",
    "readonly",
    "return",
    "set",
    "shift",
    "shopt",
    "source",
    ".",
    "suspend",
    "test",
    "times",
    "trap",
    "true",
    "type",
    "typeset",
    "ulimit",
    "umask",
    "unalias",
    "unset",
    "wait",
];

/// The programs a shell script runs: the first word of every simple command (after
/// assignments), skipping keywords, builtins, functions the script defines, variables and
/// paths relative to the project. `kill` is a builtin in bash; a script that needs
/// `/usr/bin/kill` names the path.
pub fn scan_shell(script: &str) -> BTreeSet<Used> {
    let functions = shell_functions(script);
    let mut words = Vec::new();
    let mut heredoc: Option<String> = None;
    for raw in script.lines() {
        if let Some(end) = &heredoc {
            if raw.trim() == end {
                heredoc = None;
            }
            continue;
        }
        let line = strip_comment(raw);
        if let Some(i) = line.find("<<") {
            let tag = line[i + 2..]
                .trim_start_matches('-')
                .trim()
                .trim_matches(['\'', '"']);
            let tag: String = tag
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !tag.is_empty() {
                heredoc = Some(tag);
            }
        }
        for segment in command_segments(&line) {
            let mut tokens = segment.split_whitespace().peekable();
            // Skip leading assignments (`FOO=bar cmd`) and prefixes that run the next word.
            while let Some(t) = tokens.peek() {
                let assignment = t.contains('=') && !t.starts_with('=') && !t.starts_with('-');
                if assignment || ["!", "time", "exec", "then", "do", "else"].contains(t) {
                    tokens.next();
                } else {
                    break;
                }
            }
            let Some(first) = tokens.next() else {
                continue;
            };
            if first == "command" && tokens.peek() == Some(&"-v") {
                tokens.next();
                if let Some(w) = tokens.next() {
                    words.push(w.to_owned());
                }
                continue;
            }
            words.push(first.to_owned());
        }
    }
    words
        .into_iter()
        .filter(|w| {
            !w.is_empty()
                && !w.contains(QUOTED)
                && (w.starts_with(|c: char| c.is_ascii_alphabetic())
                    || (w.starts_with('/') && w.len() > 1))
                && !w.starts_with('$')
                && !w.starts_with('-')
                && !w.starts_with("target/")
                && !w.starts_with("scripts/")
                && !w.ends_with(')')
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./+[".contains(c))
                && !SHELL_BUILTINS.contains(&w.as_str())
                && !functions.contains(w)
                && !OWN.contains(&w.as_str())
        })
        .map(Used::Program)
        .collect()
}

/// The line without a trailing `# comment` (a `#` at the start or after a blank, outside
/// quotes).
fn strip_comment(line: &str) -> String {
    let mut out = String::new();
    let (mut single, mut double) = (false, false);
    let mut prev = ' ';
    for c in line.chars() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && prev.is_whitespace() => break,
            _ => {}
        }
        out.push(c);
        prev = c;
    }
    out
}

/// Splits a line into the text of its simple commands: at `;`, `|`, `&`, `(`, `)`, `{`, `}`
/// and backticks outside quotes, and at every `$(` (also inside double quotes). A quoted
/// string becomes one placeholder character ([`QUOTED`]), so a command whose name is quoted
/// (`"$B" login`) is seen as a quoted word, not as `login`. A `word)` with no `(` open is a
/// `case` pattern and is dropped.
fn command_segments(line: &str) -> Vec<String> {
    let mut segments = vec![String::new()];
    let chars: Vec<char> = line.chars().collect();
    // A stack of (inside double quotes, open parentheses): each `$(` opens a fresh context.
    let mut stack = vec![(false, 0usize)];
    let mut single = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let (double, parens) = *stack.last().unwrap_or(&(false, 0));
        if single {
            if c == '\'' {
                single = false;
            }
        } else if c == '$' && chars.get(i + 1) == Some(&'(') {
            stack.push((false, 0));
            segments.push(String::new());
            i += 1;
        } else if c == ')' && !double && parens == 0 {
            if stack.len() > 1 {
                stack.pop();
            } else if let Some(s) = segments.last_mut() {
                s.clear(); // a case pattern
            }
            segments.push(String::new());
        } else if c == '"' {
            if !double {
                if let Some(s) = segments.last_mut() {
                    s.push(QUOTED);
                }
            }
            if let Some(top) = stack.last_mut() {
                top.0 = !top.0;
            }
        } else if double {
            // Quoted text is an argument.
        } else if c == '\'' {
            single = true;
            if let Some(s) = segments.last_mut() {
                s.push(QUOTED);
            }
        } else if ";|&(){}`".contains(c) {
            if let Some(top) = stack.last_mut() {
                match c {
                    '(' => top.1 += 1,
                    ')' => top.1 -= 1,
                    _ => {}
                }
            }
            segments.push(String::new());
        } else if let Some(s) = segments.last_mut() {
            s.push(c);
        }
        i += 1;
    }
    segments
}

/// Stands for a quoted string in [`command_segments`].
const QUOTED: char = '\u{1}';

/// The names of the functions a script defines (`name() {` or `function name`).
fn shell_functions(script: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in script.lines() {
        let line = line.trim_start();
        let line = line.strip_prefix("function ").unwrap_or(line);
        let name: String = line
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect();
        if !name.is_empty() && line[name.len()..].trim_start().starts_with("()") {
            out.insert(name);
        }
    }
    out
}

/// Every file the scanner reads: Rust and Python sources of every crate, the scripts and
/// `.ci/run`.
pub fn files_to_scan(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    walk(&root.join("crates"), &mut out);
    walk(&root.join("scripts"), &mut out);
    out.push(root.join(".ci/run"));
    // This module's own tests name programs that do not exist.
    out.retain(|p| !p.ends_with("testkit/src/requirements.rs"));
    out.retain(|p| {
        let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
        ["rs", "py", "sh"].contains(&ext) || p.ends_with(".ci/run")
    });
    out.sort();
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// What `path` calls, by its kind.
pub fn scan_file(path: &Path, text: &str) -> BTreeSet<Used> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("rs") => scan_rust(text),
        Some("py") => scan_python(text),
        _ => scan_shell(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn programs(set: &BTreeSet<Used>) -> Vec<String> {
        set.iter()
            .filter_map(|u| match u {
                Used::Program(p) => Some(p.clone()),
                Used::Python(_) => None,
            })
            .collect()
    }

    #[test]
    fn rust_calls_are_found() {
        let src = r#"
            let a = Command::new("newtool").arg("x");
            let b = process::find_program("slapd")?;
            let c = Command::new(bin.join("initdb"));
            let d = Command::new(&self.bin);
            cmd.args(["-m", "newmodule", "-n"]);
        "#;
        let found = scan_rust(src);
        assert_eq!(programs(&found), ["initdb", "newtool", "slapd"]);
        assert!(found.contains(&Used::Python("newmodule".into())));
    }

    #[test]
    fn python_imports_skip_the_standard_library() {
        let src = "import json, sys\nimport ldb\nfrom samba.samdb import SamDB\nfrom x\n";
        let found: Vec<_> = scan_python(src).into_iter().collect();
        assert_eq!(
            found,
            [Used::Python("ldb".into()), Used::Python("samba".into())]
        );
    }

    #[test]
    fn shell_commands_are_found_at_command_position_only() {
        let script = r#"#!/usr/bin/env bash
set -euo pipefail  # ldapsearch in a comment is not a call
json() { python3 -c "import json; print(1)" "$1"; }
X=1 curl -fsS "$URL" >/dev/null && echo "seq in quotes is not a call"
for _ in $(seq 1 10); do sleep 0.1; done
V="$(json 'd["x"]')"
"$B" login --user x | tr -d '/'
cat > f <<'EOF'
notacommand here
EOF
command -v newtool >/dev/null || true
"#;
        assert_eq!(
            programs(&scan_shell(script)),
            ["cat", "curl", "newtool", "python3", "seq", "sleep", "tr"]
        );
    }

    #[test]
    fn coverage_matches_names_and_paths() {
        let table = parse_table(
            "program\tslapd\tslapd\tx\npath\t/usr/bin/time\ttime\tx\npython\tldb\tpython3-ldb\tx\n",
        )
        .unwrap();
        assert!(covered(&table, &Used::Program("slapd".into())));
        assert!(covered(&table, &Used::Program("/usr/sbin/slapd".into())));
        assert!(covered(&table, &Used::Program("/usr/bin/time".into())));
        assert!(covered(&table, &Used::Python("ldb".into())));
        assert!(!covered(&table, &Used::Program("newtool".into())));
        assert!(!covered(&table, &Used::Python("samba".into())));
    }

    #[test]
    fn malformed_rows_are_refused() {
        assert!(parse_table("program\tslapd\n").is_err());
        assert!(parse_table("binary\tslapd\tslapd\tx\n").is_err());
    }
}
