//! `infra fmt` on arbitrary text that parses: the output parses without errors, keeps
//! every comment, means the same (same tree without spans), and formatting it again
//! changes nothing.
#![no_main]

use infra::source::FileId;
use infra::syntax::{ast, parse};
use libfuzzer_sys::fuzz_target;

/// The tree without spans.
fn shape(f: &ast::File) -> String {
    let dbg = format!("{:?}", f.items);
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

fn comments(f: &ast::File) -> Vec<&str> {
    f.comments.iter().map(|c| c.text.trim_end()).collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (file, diags) = parse(FileId(0), text);
    if !diags.is_empty() {
        assert!(infra::fmt::format_source(FileId(0), text).is_err());
        return;
    }
    let once = infra::fmt::format(&file, text);
    let (file2, diags2) = parse(FileId(0), &once);
    assert!(
        diags2.is_empty(),
        "formatted output has errors: {diags2:?}\n{once}"
    );
    assert_eq!(
        comments(&file),
        comments(&file2),
        "comments changed\n{once}"
    );
    assert_eq!(shape(&file), shape(&file2), "tree changed\n{once}");
    let twice = infra::fmt::format(&file2, &once);
    assert_eq!(once, twice, "not idempotent");
});
