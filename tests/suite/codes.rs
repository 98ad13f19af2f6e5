//! Diagnostic codes: the registry (`infra::diag::codes`), the sources and the docs
//! agree. Every code the compiler uses (a `"E0123"` literal or a `codes::E0123`
//! constant anywhere under compiler/) is registered; every registered code is used and
//! documented in a table row of the docs; every code the docs name is registered.

use infra::diag::codes;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The docs that document codes, each in tables whose first cell is the code.
const DOCS: &[&str] = &[
    "docs/language.md",
    "docs/stdlib.md",
    "docs/plan-apply.md",
    "docs/lab.md",
    "docs/init.md",
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn registry() -> BTreeSet<&'static str> {
    codes::ALL.iter().map(|c| c.code).collect()
}

/// Every `E0123`/`W0123` in `text` (a letter and four digits, not inside a longer
/// word), with the byte offset where it starts.
fn codes_in(text: &str) -> Vec<(usize, &str)> {
    let b = text.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut out = Vec::new();
    for i in 0..b.len().saturating_sub(4) {
        if matches!(b[i], b'E' | b'W')
            && b[i + 1..i + 5].iter().all(u8::is_ascii_digit)
            && (i == 0 || !word(b[i - 1]))
            && b.get(i + 5).is_none_or(|&c| !word(c))
        {
            out.push((i, &text[i..i + 5]));
        }
    }
    out
}

/// The codes a source file uses: string literals `"E0123"` and constants `codes::E0123`
/// (mentions in comments, like a range "E0780–E0799", do not count).
fn used_in(text: &str) -> Vec<&str> {
    codes_in(text)
        .into_iter()
        .filter(|&(i, _)| {
            let literal = text[..i].ends_with('"') && text[i + 5..].starts_with('"');
            literal || text[..i].ends_with("codes::")
        })
        .map(|(_, c)| c)
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// (code, file) for every code used under compiler/.
fn used() -> Vec<(String, String)> {
    let mut files = Vec::new();
    rust_files(&repo().join("compiler"), &mut files);
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("readable");
        let name = f.strip_prefix(repo()).unwrap_or(&f).display().to_string();
        for c in used_in(&text) {
            out.push((c.to_string(), name.clone()));
        }
    }
    out
}

fn doc_text(doc: &str) -> String {
    std::fs::read_to_string(repo().join(doc)).unwrap_or_else(|e| panic!("{doc}: {e}"))
}

#[test]
fn every_code_the_compiler_uses_is_registered() {
    let registry = registry();
    let unknown: Vec<String> = used()
        .into_iter()
        .filter(|(c, _)| !registry.contains(c.as_str()))
        .map(|(c, f)| format!("{c} ({f})"))
        .collect();
    assert!(
        unknown.is_empty(),
        "codes used but not in compiler/diag/codes.rs: {unknown:?}"
    );
}

#[test]
fn every_registered_code_is_used() {
    let used: BTreeSet<String> = used().into_iter().map(|(c, _)| c).collect();
    let unused: Vec<&str> = registry()
        .into_iter()
        .filter(|c| !used.contains(*c))
        .collect();
    assert!(
        unused.is_empty(),
        "registered in compiler/diag/codes.rs but used nowhere under compiler/: {unused:?}"
    );
}

#[test]
fn every_registered_code_is_documented_in_a_table() {
    let mut documented = BTreeSet::new();
    for doc in DOCS {
        for line in doc_text(doc).lines() {
            // `| E0101 | ... |` and `| E0790, E0791 | ... |`: the codes of the first cell.
            let Some(cell) = line.strip_prefix('|').and_then(|r| r.split('|').next()) else {
                continue;
            };
            for (_, c) in codes_in(cell) {
                documented.insert(c.to_string());
            }
        }
    }
    let missing: Vec<&str> = registry()
        .into_iter()
        .filter(|c| !documented.contains(*c))
        .collect();
    assert!(
        missing.is_empty(),
        "registered codes without a row in a table of {DOCS:?}: {missing:?}"
    );
}

#[test]
fn every_documented_code_is_registered() {
    let registry = registry();
    let mut unknown = Vec::new();
    for doc in DOCS.iter().chain(&["docs/ARCHITECTURE.md", "README.md"]) {
        let text = doc_text(doc);
        for (_, c) in codes_in(&text) {
            if !registry.contains(c) {
                unknown.push(format!("{c} ({doc})"));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "codes in the docs that compiler/diag/codes.rs does not list: {unknown:?}"
    );
}

#[test]
fn the_scanner_finds_literals_and_constants_not_comments() {
    let text =
        r#"Diag::error("E0101", "x"); Diag::error(codes::W0506, ""); // E0780–E0799, "E01234""#;
    assert_eq!(used_in(text), ["E0101", "W0506"]);
    assert_eq!(codes_in("| E0790, E0791 | a |").len(), 2);
}
