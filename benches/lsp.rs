//! `infra lsp`: time from a `didChange` to the first diagnostics of that text
//! (the front end's: resolve, lint, graph) and to the end of the whole check
//! (render and the secrets audit too: `infra/checked`), and the answer time
//! of hover, definition, completion and references, on examples/accounting and
//! on a generated configuration of 1,000 hosts (500 pairs, a service and a job
//! each, `generate_std` of benches/pipeline.rs).
//! Run: `cargo bench --bench lsp` (builds target/release/infra; see
//! docs/benchmarks.md).

// Tests and benchmarks run programs and touch files: IO rules are for the library.
#![allow(clippy::disallowed_methods, clippy::disallowed_macros)]

#[path = "../tests/suite/lsp/client.rs"]
#[allow(dead_code)]
mod client;
#[path = "pipeline.rs"]
#[allow(dead_code)]
mod pipeline;

use client::{uri, Client};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const ROUNDS: usize = 40;

fn stats(mut v: Vec<Duration>) -> String {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "median {:6.2} ms  p90 {:6.2} ms  max {:6.2} ms",
        ms(v[v.len() / 2]),
        ms(v[v.len() * 9 / 10]),
        ms(v[v.len() - 1])
    )
}

/// Open `file` (in its configuration's directory), change it ROUNDS times and
/// wait for each change's check; then time the requests at `at`.
fn run(bin: &Path, name: &str, file: &Path, at: (u32, u32)) {
    let cache = tempfile::tempdir().unwrap();
    let mut c = Client::start(bin, cache.path(), json!({"capabilities": {}}));
    let u = uri(file);
    let text = std::fs::read_to_string(file).unwrap();
    c.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": u, "languageId": "infra", "version": 1, "text": text}}),
    );
    c.wait_checked(&BTreeMap::from([(u.clone(), 1)]), 0);
    let mut first = Vec::new();
    let mut changes = Vec::new();
    for v in 2..ROUNDS as i64 + 2 {
        // one more character typed into a comment: every stage runs again
        let t = format!("{text}\n#{}", "x".repeat(v as usize));
        let since = c.checked.len();
        let start = Instant::now();
        c.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": u, "version": v}, "contentChanges": [{"text": t}]}),
        );
        c.wait_diagnostics(&u, v);
        first.push(c.diag_time[&u] - start);
        c.wait_checked(&BTreeMap::from([(u.clone(), v)]), since);
        changes.push(start.elapsed());
    }
    println!("{name}: didChange → publishDiagnostics   {}", stats(first));
    println!(
        "{name}: didChange → whole check (render) {}",
        stats(changes)
    );
    let pos = json!({"textDocument": {"uri": u}, "position": {"line": at.0, "character": at.1}});
    for (k, m) in [
        "textDocument/hover",
        "textDocument/definition",
        "textDocument/completion",
        "textDocument/references",
        "textDocument/documentSymbol",
    ]
    .into_iter()
    .enumerate()
    {
        let mut times = Vec::new();
        for i in 0..ROUNDS {
            let mut p = pos.clone();
            if m == "textDocument/references" {
                p["context"] = json!({"includeDeclaration": true});
            }
            // a change before each: the answer includes indexing the new text;
            // asked once the check of it is done (a pause in typing)
            let v = 1000 + (i + ROUNDS * k) as i64;
            let t = format!("{text}\n#{}", "y".repeat(i + 1));
            let since = c.checked.len();
            c.notify(
                "textDocument/didChange",
                json!({"textDocument": {"uri": u, "version": v}, "contentChanges": [{"text": t}]}),
            );
            c.wait_checked(&BTreeMap::from([(u.clone(), v)]), since);
            let start = Instant::now();
            let r = c.request(m, p);
            times.push(start.elapsed());
            assert!(r.is_ok(), "{m}: {r:?}");
        }
        println!("{name}: {m:<34} {}", stats(times));
    }
    // typing on: a hover right after each change, while that change is checked
    let mut times = Vec::new();
    for i in 0..ROUNDS {
        let v = 5000 + i as i64;
        let t = format!("{text}\n#{}", "z".repeat(i + 1));
        c.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": u, "version": v}, "contentChanges": [{"text": t}]}),
        );
        let start = Instant::now();
        let r = c.request("textDocument/hover", pos.clone());
        times.push(start.elapsed());
        assert!(r.is_ok(), "hover: {r:?}");
    }
    println!(
        "{name}: {:<34} {}",
        "hover while the change is checked",
        stats(times)
    );
    assert!(c.stop().success());
}

fn main() {
    let st = std::process::Command::new("cargo")
        .args(["build", "--release", "--quiet"])
        .status()
        .unwrap();
    assert!(st.success());
    let bin = PathBuf::from("target/release/infra")
        .canonicalize()
        .unwrap();
    let acc = PathBuf::from("examples/accounting/main.infra")
        .canonicalize()
        .unwrap();
    // `failover = office` of postgres main (0-based line 26)
    run(&bin, "accounting", &acc, (26, 27));
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("main.infra");
    std::fs::write(&big, pipeline::generate_std(1000)).unwrap();
    // `on = g250` of service web250, in the middle of the file
    let text = std::fs::read_to_string(&big).unwrap();
    let line = text
        .lines()
        .position(|l| l.starts_with("service web250 "))
        .unwrap() as u32;
    run(&bin, "1,000 hosts", &big, (line, 26));
}
