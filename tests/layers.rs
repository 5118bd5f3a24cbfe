//! The layer map of `src/lib.rs`, checked on the source itself: the pure core imports no Redis,
//! tokio or clap; the store never reaches up into the commands; the commands never build a Redis
//! command or draw on a terminal. A file that breaks a rule fails this test with its line.

use std::path::{Path, PathBuf};

/// What the files of one folder may not name, and why.
struct Rule {
    folder: &'static str,
    forbidden: &'static [&'static str],
    why: &'static str,
}

const RULES: [Rule; 4] = [
    Rule {
        folder: "src/ledger",
        forbidden: &["redis", "tokio", "clap", "indicatif", "crate::store", "crate::commands"],
        why: "the ledger is the pure core: plain functions of their inputs",
    },
    Rule {
        folder: "src/view",
        forbidden: &[
            "redis",
            "tokio",
            "clap",
            "axum",
            "indicatif",
            "crate::store",
            "crate::commands",
        ],
        why: "the views are pure functions from what Redis holds to what is shown",
    },
    Rule {
        folder: "src/store",
        forbidden: &["crate::commands", "clap", "indicatif"],
        why: "the store serves the commands and never calls them",
    },
    Rule {
        folder: "src/commands",
        forbidden: &["redis", "clap", "indicatif"],
        why: "commands reach Redis through the store and leave flags and drawing to the CLI",
    },
];

/// Every `.rs` file under `folder`, at most a few levels deep.
fn rust_files(folder: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![folder.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
}

/// Whether `line` names the crate or module `word` as a path (`redis::x`, `crate::store::x`,
/// `use tokio;`) outside a comment; the word in a string (`"redis-benchmark"`) does not count.
fn names(line: &str, word: &str) -> bool {
    let code = line.split("//").next().unwrap_or("");
    code.match_indices(word).any(|(at, _)| {
        let before = code[..at].chars().next_back();
        let rest = &code[at + word.len()..];
        let starts = word.starts_with("crate::")
            || before.is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == ':'));
        starts && (rest.starts_with("::") || rest.starts_with(';'))
    })
}

#[test]
fn each_layer_imports_only_what_it_may() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut broken = Vec::new();
    for rule in &RULES {
        for file in rust_files(&root.join(rule.folder)) {
            let text = std::fs::read_to_string(&file).unwrap();
            for (number, line) in (1..).zip(text.lines()) {
                for word in rule.forbidden.iter().filter(|w| names(line, w)) {
                    broken.push(format!(
                        "{}:{number}: names `{word}` ({}): {}",
                        file.strip_prefix(root).unwrap().display(),
                        rule.why,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(broken.is_empty(), "layer rules broken:\n{}", broken.join("\n"));
}

#[test]
fn every_module_opens_with_why_it_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let missing: Vec<String> = rust_files(&root.join("src"))
        .into_iter()
        .filter(|file| !std::fs::read_to_string(file).unwrap().starts_with("//!"))
        .map(|file| file.strip_prefix(root).unwrap().display().to_string())
        .collect();
    assert!(missing.is_empty(), "modules without a //! doc comment: {missing:?}");
}

#[test]
fn the_rule_finds_what_it_must() {
    assert!(names("use redis::aio::ConnectionLike;", "redis"));
    assert!(names("    let x = tokio::spawn(f);", "tokio"));
    assert!(names("use crate::store::keys::Keys;", "crate::store"));
    assert!(!names("/// reads from Redis via the store: redis", "redis"));
    assert!(!names("let redis_url = 1;", "redis"));
    assert!(!names("Command::new(\"redis-benchmark\")", "redis"));
    assert!(names("use clap;", "clap"));
    assert!(!names("use crate::ledger::events;", "crate::store"));
}
