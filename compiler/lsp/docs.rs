//! Hover texts from the project's own documentation, embedded in the binary: the
//! built-in blocks' tables of docs/language.md (`host`, `failover`, `admin`, the
//! resources) and each kind's section of docs/stdlib.md (its first paragraph and
//! its parameter table). One source of truth: a test checks that every attribute
//! the resolver accepts has a row here.

use std::collections::BTreeMap;

const LANGUAGE: &str = include_str!("../../docs/language.md");
const STDLIB: &str = include_str!("../../docs/stdlib.md");

/// One table row: the attribute's cells after the name (type, default, meaning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub cells: Vec<String>,
}

/// A documented block: its first paragraph and its rows by attribute name.
#[derive(Debug, Clone, Default)]
pub struct Section {
    pub about: String,
    pub header: Vec<String>,
    pub rows: BTreeMap<String, Row>,
}

/// Everything hover can say that is not in a `.infra` file.
#[derive(Debug, Default)]
pub struct Docs {
    /// `host`, `failover`, `admin`, `ssh`, and each kind of the stdlib.
    pub blocks: BTreeMap<String, Section>,
    /// The resources of a kind body (`package`, `file`, ...): label and attributes.
    pub resources: BTreeMap<String, Row>,
}

impl Docs {
    pub fn load() -> Docs {
        let mut d = Docs::default();
        for (heading, body) in sections(LANGUAGE) {
            let Some(kw) = heading_word(&heading) else {
                continue;
            };
            if heading.starts_with("### `") && ["host", "failover", "admin"].contains(&kw.as_str())
            {
                let s = section(&body);
                // `ssh { user port key }` documents the nested block of a host
                if kw == "host" {
                    if let Some(row) = s.rows.get("ssh") {
                        let mut ssh = Section {
                            about: row.cells.last().cloned().unwrap_or_default(),
                            header: s.header.clone(),
                            rows: BTreeMap::new(),
                        };
                        for a in ["user", "port", "key"] {
                            ssh.rows.insert(a.to_string(), row.clone());
                        }
                        d.blocks.insert("ssh".into(), ssh);
                    }
                }
                d.blocks.insert(kw, s);
            } else if heading.starts_with("### Resources") {
                d.resources = section(&body).rows;
            }
        }
        for (heading, body) in sections(STDLIB) {
            if !heading.starts_with("## ") {
                continue;
            }
            if let Some(kw) = heading_word(&heading) {
                let s = section(&body);
                if !s.rows.is_empty() {
                    d.blocks.insert(kw, s);
                }
            }
        }
        d
    }

    /// Markdown for attribute `attr` of block `block` (a built-in block or a kind).
    pub fn attr(&self, block: &str, attr: &str) -> Option<String> {
        let s = self.blocks.get(block)?;
        let row = s.rows.get(attr)?;
        Some(render_row(&s.header, row))
    }

    pub fn about(&self, block: &str) -> Option<&str> {
        self.blocks
            .get(block)
            .map(|s| s.about.as_str())
            .filter(|a| !a.is_empty())
    }

    pub fn resource(&self, kw: &str) -> Option<String> {
        let row = self.resources.get(kw)?;
        let header = ["resource", "label", "attributes"].map(String::from);
        Some(render_row(&header, row))
    }
}

fn render_row(header: &[String], row: &Row) -> String {
    let mut out = Vec::new();
    for (i, cell) in row.cells.iter().enumerate() {
        if cell.is_empty() {
            continue;
        }
        // the header names the cells after the first column's (type, default, ...)
        match header.get(i + 1).map(String::as_str) {
            Some(h) if !h.is_empty() && i + 1 < row.cells.len() => {
                out.push(format!("*{h}*: {cell}"))
            }
            _ => out.push(cell.clone()),
        }
    }
    out.join("  \n")
}

/// (heading line, the lines below it up to the next heading of any level).
fn sections(md: &str) -> Vec<(String, Vec<&str>)> {
    let mut out: Vec<(String, Vec<&str>)> = Vec::new();
    let mut fence = false;
    for line in md.lines() {
        if line.starts_with("```") {
            fence = !fence;
        }
        if !fence && line.starts_with('#') {
            out.push((line.to_string(), Vec::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push(line);
        }
    }
    out
}

/// `## postgres (std/postgres)` → `postgres`; "### `host NAME { ... }`" → `host`.
fn heading_word(h: &str) -> Option<String> {
    let rest = h.trim_start_matches('#').trim().trim_start_matches('`');
    let w: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!w.is_empty()).then_some(w)
}

fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    // a `|` inside backticks belongs to the cell
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut tick = false;
    for c in inner.chars() {
        match c {
            '`' => {
                tick = !tick;
                cur.push(c)
            }
            '|' if !tick => out.push(std::mem::take(&mut cur).trim().to_string()),
            _ => cur.push(c),
        }
    }
    out.push(cur.trim().to_string());
    out
}

/// The names a row documents: each backticked word of its first cell, up to the
/// first blank or brace (`ssh { user port key }` → `ssh`).
fn row_names(first: &str) -> Vec<String> {
    first
        .split('`')
        .skip(1)
        .step_by(2)
        .filter_map(|n| {
            let w: String = n
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            (!w.is_empty()).then_some(w)
        })
        .collect()
}

fn section(body: &[&str]) -> Section {
    let mut s = Section::default();
    let mut about = Vec::new();
    let mut in_about = true;
    let mut fence = false;
    let mut saw_header = false;
    for line in body {
        if line.starts_with("```") {
            fence = !fence;
            if !about.is_empty() {
                in_about = false;
            }
            continue;
        }
        if fence {
            continue;
        }
        if line.starts_with('|') {
            in_about = false;
            let c = cells(line);
            if c.iter().all(|x| x.chars().all(|ch| ch == '-' || ch == ':')) {
                continue;
            }
            if !saw_header {
                saw_header = true;
                s.header = c;
                continue;
            }
            let names = row_names(&c[0]);
            let row = Row {
                cells: c[1..].to_vec(),
            };
            for n in names {
                s.rows.entry(n).or_insert_with(|| row.clone());
            }
            continue;
        }
        if line.trim().is_empty() {
            if !about.is_empty() {
                in_about = false;
            }
            // a new table starts with its own header
            saw_header = false;
            continue;
        }
        if in_about {
            about.push(line.trim());
        }
    }
    s.about = about.join(" ");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_docs_give_rows_for_blocks_kinds_and_resources() {
        let d = Docs::load();
        let a = d.attr("failover", "vip").expect("failover vip documented");
        assert!(a.contains("cidr") && a.contains("free address"), "{a}");
        assert!(d.attr("host", "address").unwrap().contains("ip"));
        assert!(d.attr("ssh", "port").unwrap().contains("22"));
        let p = d.attr("postgres", "version").expect("postgres version");
        assert!(p.contains("15"), "{p}");
        assert!(d.attr("job", "calendar").unwrap().contains("OnCalendar"));
        assert!(d.about("share").is_some());
        assert!(d.resource("file").unwrap().contains("template"));
        // a row naming several attributes documents each
        assert!(d.attr("service", "keep").is_some());
    }
}
