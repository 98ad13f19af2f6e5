//! `infra fmt`: idempotency and comment preservation on every `.infra` file of the
//! repo that parses (examples/, tests/ui/, stdlib/) and every fuzz corpus input, plus
//! focused layout cases. Also replays the fuzz corpus through the whole front end.

use infra::fmt::{format, format_source};
use infra::source::FileId;
use infra::syntax::{ast, parse};
use std::fs;
use std::path::{Path, PathBuf};

/// Files under `dir` (recursively); only `.infra` ones unless `any`.
fn files_in(dir: &Path, any: bool, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        // Not through symbolic links (tests/ui has one pointing out of its tree).
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            files_in(&p, any, out);
        } else if any || p.extension().is_some_and(|x| x == "infra") {
            out.push(p);
        }
    }
}

/// Every `.infra` file of the repo, and every fuzz corpus input (any name).
fn all_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["examples", "tests/ui", "stdlib"] {
        files_in(Path::new(dir), false, &mut files);
    }
    files.extend(corpus_files());
    files.sort();
    files
}

fn corpus_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    files_in(Path::new("fuzz/corpus"), true, &mut files);
    files.sort();
    files
}

/// The AST without spans, for "formatting does not change meaning".
fn shape(f: &ast::File) -> String {
    let dbg = format!("{:?}", f.items);
    // Drop every `Span { .. }`.
    let mut out = String::with_capacity(dbg.len());
    let mut rest = dbg.as_str();
    while let Some(i) = rest.find("Span {") {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let close = rest.find('}').map(|j| j + 1).unwrap_or(rest.len());
        rest = &rest[close..];
    }
    out.push_str(rest);
    out
}

fn comment_texts(f: &ast::File) -> Vec<String> {
    f.comments
        .iter()
        .map(|c| c.text.trim_end().to_string())
        .collect()
}

/// Format `text`, then check: idempotent, same comments in the same order, same tree.
fn check_roundtrip(name: &str, text: &str) -> Option<String> {
    let (file, diags) = parse(FileId(0), text);
    if !diags.is_empty() {
        return None;
    }
    let once = format(&file, text);
    let (file2, diags2) = parse(FileId(0), &once);
    assert!(
        diags2.is_empty(),
        "{name}: formatted output does not parse: {diags2:?}\n{once}"
    );
    let twice = format(&file2, &once);
    if once != twice {
        let diff = similar::TextDiff::from_lines(&once, &twice)
            .unified_diff()
            .header("once", "twice")
            .to_string();
        panic!("{name}: formatting is not idempotent\n{diff}");
    }
    assert_eq!(
        comment_texts(&file),
        comment_texts(&file2),
        "{name}: comments changed\n{once}"
    );
    assert_eq!(
        shape(&file),
        shape(&file2),
        "{name}: formatting changed the tree\n{once}"
    );
    Some(once)
}

#[test]
fn fmt_every_repo_file_roundtrips() {
    let files = all_files();
    let mut checked = 0;
    for f in &files {
        let Ok(bytes) = fs::read(f) else {
            continue;
        };
        let Ok(text) = String::from_utf8(bytes) else {
            continue;
        };
        if check_roundtrip(&f.display().to_string(), &text).is_some() {
            checked += 1;
        }
    }
    eprintln!(
        "fmt: {checked} of {} files parse and round-trip",
        files.len()
    );
    assert!(checked >= 50, "only {checked} files checked: {files:?}");
}

/// Regression test for the fuzz targets: every corpus input goes through the whole
/// front end and both renderers without panicking (the fmt round trip is checked by
/// `fmt_every_repo_file_roundtrips`).
#[test]
fn fuzz_corpus_replays_without_panic() {
    let files = corpus_files();
    assert!(
        files.len() >= 100,
        "fuzz corpus missing: {} files",
        files.len()
    );
    let mut utf8 = 0;
    for f in &files {
        let bytes = fs::read(f).expect("readable corpus file");
        let Ok(text) = std::str::from_utf8(&bytes) else {
            continue;
        };
        utf8 += 1;
        let (sources, diags) = infra::check_str("fuzz.infra", text);
        let _ = infra::diag::render(&diags, &sources, false, 100);
        let _ = infra::diag::render_json(&diags, &sources);
        let _ = format_source(FileId(0), text);
    }
    assert!(utf8 > 0);
}

fn fmt(text: &str) -> String {
    match format_source(FileId(0), text) {
        Ok(s) => {
            check_roundtrip("case", text);
            s
        }
        Err(d) => panic!("syntax errors: {d:?}"),
    }
}

#[test]
fn fmt_canonical_layout() {
    let src = r#"import "std/postgres"
let base = "/srv/accounting"   # trailing comment



host alpha { address = "192.0.2.11" }
host beta  { address = "192.0.2.12"  ssh { user = "admin" port = 2222 } }
failover office {
    members   = [alpha,
       beta]
	vip       = "192.0.2.10/24"
  check     = http( "http://127.0.0.1/health" )
}
kind service(on: placement, exec: string, user: string = "root", after: [string] = [],) {
  unit "${name}.service" { template = "service/unit.hbs" enable = true start = true }
  package "rsync" {}
}
"#;
    let want = r#"import "std/postgres"
let base = "/srv/accounting" # trailing comment

host alpha {
  address = "192.0.2.11"
}
host beta {
  address = "192.0.2.12"
  ssh {
    user = "admin"
    port = 2222
  }
}
failover office {
  members = [alpha, beta]
  vip     = "192.0.2.10/24"
  check   = http("http://127.0.0.1/health")
}
kind service(
  on: placement,
  exec: string,
  user: string = "root",
  after: [string] = [],
) {
  unit "${name}.service" {
    template = "service/unit.hbs"
    enable   = true
    start    = true
  }
  package "rsync" {}
}
"#;
    assert_eq!(fmt(src), want);
    assert_eq!(fmt(want), want);
}

#[test]
fn fmt_keeps_comments_everywhere() {
    let src = r#"# file header

# about alpha
host alpha { # on the header line
  # before address
  address = "192.0.2.11" # after address
  ssh { user = "admin" } # after ssh
  # last in body
} # after the block
host # between keyword and name
  beta {
  members = [ # after [
    alpha, # first
    # own line in list
    beta # second
  ] # after ]
  x # between name and =
    = 1
  empty { # inside empty body
  }
  check = http( # in a call
    "x")
}
kind k( # params
  a: int, # first param
  b: [string] = ["x"],
) # between ) and {
{
}
# trailing at end of file
"#;
    let out = fmt(src);
    let want = r#"# file header

# about alpha
host alpha { # on the header line
  # before address
  address = "192.0.2.11" # after address
  ssh {
    user = "admin"
  } # after ssh
  # last in body
} # after the block
# between keyword and name
host beta {
  members = [ # after [
    alpha, # first
    # own line in list
    beta, # second
  ] # after ]
  # between name and =
  x = 1
  empty { # inside empty body
  }
  check = http( # in a call
    "x",
  )
}
kind k( # params
  a: int, # first param
  b: [string] = ["x"],
  # between ) and {
) {}
# trailing at end of file
"#;
    assert_eq!(out, want);
}

#[test]
fn fmt_long_lists_break_and_short_lists_join() {
    let long: Vec<String> = (0..12).map(|i| format!("\"element-{i}\"")).collect();
    let src = format!(
        "host a {{\n  xs = [{}]\n  ys = [\n    1,\n    2\n  ]\n  zs = [[1, 2] [3]]\n}}\n",
        long.join(" ")
    );
    let out = fmt(&src);
    let mut want = String::from("host a {\n  xs = [\n");
    for l in &long {
        want.push_str(&format!("    {l},\n"));
    }
    want.push_str("  ]\n  ys = [1, 2]\n  zs = [[1, 2], [3]]\n}\n");
    assert_eq!(out, want);
    // Exactly 80 columns stays on one line; 81 breaks.
    let fits = format!(
        "host a {{\n  x = [\"{}\"]\n}}\n",
        "y".repeat(80 - 2 - 4 - 4)
    );
    assert_eq!(fmt(&fits), fits);
    let over = format!(
        "host a {{\n  x = [\"{}\"]\n}}\n",
        "y".repeat(80 - 2 - 4 - 3)
    );
    assert_ne!(fmt(&over), over);
}

#[test]
fn fmt_strings_are_escaped_canonically() {
    let src = "let s = \"tab\there \\$ and \\${x} and $ { and ${ a.b } \\\" \\\\ \\n\"\n";
    let want = "let s = \"tab\\there $ and \\${x} and $ { and ${a.b} \\\" \\\\ \\n\"\n";
    assert_eq!(fmt(src), want);
    // `$` right before an interpolation needs no escape.
    assert_eq!(fmt("let s = \"$${x}\"\n"), "let s = \"$${x}\"\n");
}

#[test]
fn fmt_crlf_tabs_and_blank_lines() {
    let src =
        "host a {\r\n\taddress = \"x\"\t# c\r\n\r\n\r\n\tport = 1\r\n}\r\n\r\n\r\nhost b {}\r\n";
    let want = "host a {\n  address = \"x\" # c\n\n  port = 1\n}\n\nhost b {}\n";
    assert_eq!(fmt(src), want);
}

#[test]
fn fmt_empty_and_comment_only_files() {
    assert_eq!(fmt(""), "");
    assert_eq!(fmt("\n\n  \n"), "");
    assert_eq!(fmt("# a\n\n\n# b\n"), "# a\n\n# b\n");
}

#[test]
fn fmt_refuses_syntax_errors() {
    let err = format_source(FileId(0), "host a { address \"x\" }\n").expect_err("has errors");
    assert_eq!(err[0].code, "E0006");
}

// ---- generated programs ------------------------------------------------------------
//
// Random valid programs with random blanks, newlines and comments between every pair of
// tokens (where the grammar allows any): they must parse, and format idempotently with
// every comment kept. This reaches comment placements a fuzzer rarely builds.

struct Gen {
    state: u64,
    out: String,
    n_comments: usize,
}

impl Gen {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
    /// Trivia between two tokens: at least one blank, sometimes newlines and comments.
    fn gap(&mut self) {
        match self.below(10) {
            0..=4 => self.out.push(' '),
            5 => self.out.push_str("\n  "),
            6 => self.out.push('\t'),
            7 => self.out.push_str("\n\n\n"),
            _ => {
                self.n_comments += 1;
                let n = self.n_comments;
                let lead = if self.chance(50) { " " } else { "\n" };
                self.out.push_str(&format!("{lead}# c{n} {{ [ \" ${{\n"));
                if self.chance(30) {
                    self.out.push('\n');
                }
            }
        }
    }
    fn tok(&mut self, t: &str) {
        self.out.push_str(t);
        self.gap();
    }
    fn name(&mut self) -> String {
        let names = ["alpha", "beta", "office", "php-fpm", "x_1", "main", "Foo"];
        names[self.below(names.len() as u64) as usize].to_string()
    }
    fn string(&mut self) -> String {
        let parts = [
            "a", " ", "\\\"", "\\\\", "\\n", "\\t", "\\$", "$ ", "${name}", "${ a.b }", "é☕", "{",
            "}",
        ];
        let mut s = String::from("\"");
        for _ in 0..self.below(5) {
            s.push_str(parts[self.below(parts.len() as u64) as usize]);
        }
        s.push('"');
        s
    }
    fn expr(&mut self, depth: u32) {
        let k = if depth > 3 {
            self.below(4)
        } else {
            self.below(7)
        };
        match k {
            0 => {
                let s = self.string();
                self.tok(&s);
            }
            1 => {
                let v = self.next() as i64 >> self.below(64);
                self.tok(&v.to_string());
            }
            2 => {
                let b = if self.chance(50) { "true" } else { "false" };
                self.tok(b);
            }
            3 => {
                let mut p = self.name();
                for _ in 0..self.below(3) {
                    p.push('.');
                    p.push_str(&self.name());
                }
                self.tok(&p);
            }
            4 | 5 => {
                self.tok("[");
                let n = self.below(5);
                for i in 0..n {
                    self.expr(depth + 1);
                    if i + 1 < n && self.chance(60) || i + 1 == n && self.chance(30) {
                        self.tok(",");
                    }
                }
                self.tok("]");
            }
            _ => {
                let f = self.name();
                self.out.push_str(&f);
                self.tok("(");
                let n = self.below(4);
                for i in 0..n {
                    self.expr(depth + 1);
                    if i + 1 < n || self.chance(30) {
                        self.tok(",");
                    }
                }
                self.tok(")");
            }
        }
    }
    fn body(&mut self, depth: u32) {
        self.tok("{");
        for _ in 0..self.below(if depth > 2 { 3 } else { 5 }) {
            if self.chance(70) {
                let n = self.name();
                self.tok(&n);
                self.tok("=");
                self.expr(1);
            } else {
                self.block(depth + 1);
            }
        }
        self.tok("}");
    }
    fn block(&mut self, depth: u32) {
        let k = self.name();
        self.tok(&k);
        match self.below(3) {
            0 => {}
            1 => {
                let n = self.name();
                self.tok(&n);
            }
            _ => {
                let s = self.string();
                self.tok(&s);
            }
        }
        self.body(depth);
    }
    fn ty(&mut self, depth: u32) {
        if depth < 2 && self.chance(30) {
            self.tok("[");
            self.ty(depth + 1);
            self.tok("]");
        } else {
            let t = self.name();
            self.tok(&t);
        }
    }
    fn item(&mut self) {
        match self.below(6) {
            0 => {
                self.tok("import");
                let s = self.string();
                self.tok(&s);
            }
            1 => {
                self.tok("let");
                let n = self.name();
                self.tok(&n);
                self.tok("=");
                self.expr(0);
            }
            2 => {
                self.tok("kind");
                let n = self.name();
                self.out.push_str(&n);
                self.tok("(");
                let np = self.below(4);
                for i in 0..np {
                    let p = self.name();
                    self.tok(&p);
                    self.tok(":");
                    self.ty(0);
                    if self.chance(40) {
                        self.tok("=");
                        self.expr(1);
                    }
                    if i + 1 < np || self.chance(30) {
                        self.tok(",");
                    }
                }
                self.tok(")");
                self.body(0);
            }
            _ => self.block(0),
        }
    }
}

#[test]
fn fmt_generated_programs_roundtrip() {
    let mut total_comments = 0;
    for seed in 1..=1500u64 {
        let mut g = Gen {
            state: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
            out: String::new(),
            n_comments: 0,
        };
        if g.chance(20) {
            g.gap();
        }
        for _ in 0..g.below(6) {
            g.item();
        }
        let text = g.out;
        let (_, diags) = parse(FileId(0), &text);
        assert!(
            diags.is_empty(),
            "seed {seed}: generated program does not parse: {diags:?}\n{text}"
        );
        let once = check_roundtrip(&format!("seed {seed}"), &text).expect("parses");
        assert_eq!(
            once.matches("# c").count(),
            g.n_comments,
            "seed {seed}\n{text}\n---\n{once}"
        );
        total_comments += g.n_comments;
    }
    assert!(total_comments > 1000);
}

/// The examples and the standard library are kept in canonical form, so `infra fmt`
/// on a user's copy of an example changes nothing.
#[test]
fn examples_and_stdlib_are_formatted() {
    let mut files = Vec::new();
    for dir in ["examples", "stdlib"] {
        files_in(Path::new(dir), false, &mut files);
    }
    files.sort();
    assert!(
        files.len() >= 7,
        "expected the examples and stdlib modules, found {files:?}"
    );
    let mut unformatted = Vec::new();
    for f in &files {
        let text = fs::read_to_string(f).expect("readable");
        match format_source(FileId(0), &text) {
            Ok(out) if out == text => {}
            Ok(_) => unformatted.push(f.display().to_string()),
            Err(d) => panic!("{} does not parse: {d:?}", f.display()),
        }
    }
    assert!(
        unformatted.is_empty(),
        "not formatted (run `infra fmt` on them): {unformatted:?}"
    );
}

/// `infra fmt --check DIR` checks DIR's files and every file of the repo they import
/// (relative imports, recursively; `std/` excluded), and `infra fmt DIR` rewrites them.
#[test]
fn fmt_check_follows_imports() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let write = |rel: &str, text: &str| {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(p, text).expect("write");
    };
    write(
        "conf/main.infra",
        "import \"std/postgres\"\nimport \"lib/hosts.infra\"\n",
    );
    write(
        "conf/lib/hosts.infra",
        "import \"../../shared/groups.infra\"\n",
    );
    // Two files reached only through imports, neither formatted.
    write(
        "shared/groups.infra",
        "import \"more.infra\"\nlet   x = 1\n",
    );
    write("shared/more.infra", "let y   =   2\n");
    let infra = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_infra"))
            .args(args)
            .arg(root.join("conf"))
            .output()
            .expect("run infra")
    };
    let out = infra(&["fmt", "--check"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("shared/groups.infra is not formatted"),
        "{stderr}"
    );
    assert!(
        stderr.contains("shared/more.infra is not formatted"),
        "{stderr}"
    );
    assert!(!stderr.contains("main.infra is not"), "{stderr}");
    let out = infra(&["fmt"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        fs::read_to_string(root.join("shared/more.infra")).expect("read"),
        "let y = 2\n"
    );
    let out = infra(&["fmt", "--check"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The README's first code block (the configuration it opens with) is what `infra
/// fmt` writes, and a configuration `infra check` accepts.
#[test]
fn readme_example_is_formatted_and_checks() {
    let readme = fs::read_to_string("README.md").expect("README.md");
    let block = readme
        .split("```")
        .nth(1)
        .and_then(|b| b.split_once('\n'))
        .map(|(_, body)| body)
        .expect("README.md opens with a code block");
    match format_source(FileId(0), block) {
        Ok(out) => assert_eq!(
            out, block,
            "README.md's first code block is not formatted: replace it with `infra fmt`'s output"
        ),
        Err(d) => panic!("README.md's first code block does not parse: {d:?}"),
    }
    let (sources, diags) = infra::check_str("README.infra", block);
    assert!(
        !infra::diag::has_errors(&diags),
        "{}",
        infra::diag::render(&diags, &sources, false, 100)
    );
}
