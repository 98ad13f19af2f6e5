//! `infra fmt`: idempotency and comment preservation on every `.infra` file of the
//! repo that parses (examples/, tests/ui/, stdlib/), plus focused layout cases.

use infra::fmt::{format, format_source};
use infra::source::FileId;
use infra::syntax::{ast, parse};
use std::fs;
use std::path::{Path, PathBuf};

fn infra_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            infra_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "infra") {
            out.push(p);
        }
    }
}

fn all_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["examples", "tests/ui", "stdlib", "fuzz/corpus"] {
        infra_files(Path::new(dir), &mut files);
    }
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
        let Ok(text) = fs::read_to_string(f) else {
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
    assert!(checked >= 5, "only {checked} files checked: {files:?}");
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
  vip = "192.0.2.10/24"
  check = http("http://127.0.0.1/health")
}
kind service(
  on: placement,
  exec: string,
  user: string = "root",
  after: [string] = [],
) {
  unit "${name}.service" {
    template = "service/unit.hbs"
    enable = true
    start = true
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
