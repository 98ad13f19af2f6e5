//! Golden builds: every configuration in examples/ is compiled (resolve, lint,
//! graph, render) and its build compared byte for byte with golden/<example>/,
//! which is exactly what `write_build` writes (`<host>/<path>` files plus
//! `<host>/manifest.json`). A mismatch prints a unified diff per file.
//!
//! Regenerate after reviewing the change: `INFRA_BLESS=1 cargo test --test suite golden`.

use infra::render::{self, Build};
use infra::resolve::{FsLoader, Loader};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The names of the examples (directories under examples/), sorted.
pub fn example_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo().join("examples"))
        .expect("examples/ exists")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Compile one example the way `infra build` does ([`infra::compile`]: resolve, lint,
/// graph, render with the example's own templates/ over the stdlib's). Panics with
/// the rendered diagnostics (warnings included: examples must be clean).
pub fn build_example(name: &str) -> Build {
    build_example_with(name, BTreeMap::new())
}

/// [`build_example`] with extra template overrides on top of the example's own
/// (the validators break templates this way).
pub fn build_example_with(name: &str, extra: BTreeMap<String, String>) -> Build {
    let dir = repo().join("examples").join(name);
    let c = match infra::compile(&dir, &ExtraTemplates(extra)) {
        Ok(c) => c,
        Err(f) => panic!(
            "examples/{name} does not compile:\n{}{}",
            infra::diag::render(&f.warnings, &f.sources, false, 100),
            infra::diag::render(&f.diags, &f.sources, false, 100)
        ),
    };
    // W0518 (a database on two members without a witness) is what the two-member
    // examples show on purpose; examples/witness is the cure
    let unexpected: Vec<infra::diag::Diag> = c
        .diags
        .iter()
        .filter(|d| d.code != infra::diag::codes::W0518)
        .cloned()
        .collect();
    assert!(
        unexpected.is_empty(),
        "examples/{name} has diagnostics:\n{}",
        infra::diag::render(&unexpected, &c.model.sources, false, 100)
    );
    c.build
}

/// Compile `t.infra` from in-memory `files` (path, text), the rest of the
/// repository beside it.
pub fn compile_files(files: &[(&str, &str)]) -> Result<infra::Compilation, infra::Failure> {
    let mut loader = infra::resolve::MemLoader::default();
    for (p, c) in files {
        loader.files.insert(
            infra::resolve::load::normalize(Path::new(p)),
            c.as_bytes().to_vec(),
        );
    }
    infra::compile(Path::new("t.infra"), &loader)
}

/// The filesystem, with templates laid over the ones in the repo's templates/.
struct ExtraTemplates(BTreeMap<String, String>);

impl Loader for ExtraTemplates {
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        FsLoader.read(path)
    }
    fn is_dir(&self, path: &Path) -> bool {
        FsLoader.is_dir(path)
    }
    fn list(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        FsLoader.list(dir)
    }
    fn read_tree(&self, dir: &Path) -> Result<Vec<(String, String)>, (PathBuf, std::io::Error)> {
        let mut files: BTreeMap<String, String> = FsLoader.read_tree(dir)?.into_iter().collect();
        files.extend(self.0.clone());
        Ok(files.into_iter().collect())
    }
    fn read_files(
        &self,
        dir: &Path,
        inside: &Path,
    ) -> Result<Vec<infra::resolve::load::TreeFile>, infra::resolve::load::TreeError> {
        FsLoader.read_files(dir, inside)
    }
}

/// Every example's build.
pub fn example_builds() -> Vec<(String, Build)> {
    example_names()
        .into_iter()
        .map(|n| {
            let b = build_example(&n);
            (n, b)
        })
        .collect()
}

/// Every file under `dir`, by relative path.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p
                    .strip_prefix(root)
                    .expect("under root")
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, std::fs::read(&p).expect("readable"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A readable report of every difference between two trees (empty if equal).
fn diff_trees(
    expected: &BTreeMap<String, Vec<u8>>,
    actual: &BTreeMap<String, Vec<u8>>,
    label: &str,
) -> String {
    let mut out = String::new();
    for (path, want) in expected {
        match actual.get(path) {
            None => out.push_str(&format!(
                "--- {label}/{path}: in golden/, no longer built\n"
            )),
            Some(got) if got != want => {
                let want = String::from_utf8_lossy(want);
                let got = String::from_utf8_lossy(got);
                let diff = similar::TextDiff::from_lines(want.as_ref(), got.as_ref());
                out.push_str(
                    &diff
                        .unified_diff()
                        .context_radius(3)
                        .header(
                            &format!("golden/{label}/{path}"),
                            &format!("built {label}/{path}"),
                        )
                        .to_string(),
                );
            }
            Some(_) => {}
        }
    }
    for path in actual.keys() {
        if !expected.contains_key(path) {
            out.push_str(&format!("+++ {label}/{path}: built, not in golden/\n"));
        }
    }
    out
}

#[test]
fn examples_match_their_golden_builds() {
    let bless = std::env::var("INFRA_BLESS").as_deref() == Ok("1");
    let names = example_names();
    assert!(
        ["accounting", "minimal", "three-host"]
            .iter()
            .all(|n| names.iter().any(|x| x == n)),
        "examples/ must hold accounting, three-host and minimal: {names:?}"
    );
    let mut report = String::new();
    for name in names {
        let build = build_example(&name);
        let golden = repo().join("golden").join(&name);
        if bless {
            if golden.exists() {
                std::fs::remove_dir_all(&golden).expect("remove old golden");
            }
            render::write_build(&build, &golden).expect("write golden");
            continue;
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        render::write_build(&build, tmp.path()).expect("write build");
        let diff = diff_trees(&tree(&golden), &tree(tmp.path()), &name);
        if !diff.is_empty() {
            report.push_str(&diff);
        }
    }
    assert!(
        report.is_empty(),
        "the builds differ from golden/ (review, then `INFRA_BLESS=1 cargo test --test suite golden`):\n{report}"
    );
}

#[test]
fn golden_builds_hold_no_secret_values() {
    // every secret file in golden/ holds placeholders only, and is 0600
    for (name, build) in example_builds() {
        for host in build.hosts.values() {
            for (path, f) in &host.files {
                if f.secret {
                    assert_eq!(f.mode, "0600", "{name}/{}{path}", host.host);
                    let stripped = f
                        .content
                        .split("@@INFRA_SECRET(")
                        .skip(1)
                        .all(|rest| rest.contains(")@@"));
                    assert!(
                        stripped,
                        "{name}/{}{path}: malformed placeholder",
                        host.host
                    );
                }
            }
        }
    }
}

#[test]
fn a_changed_build_shows_a_readable_diff() {
    let mut expected = BTreeMap::new();
    expected.insert("alpha/etc/x".to_string(), b"a\nb\nc\n".to_vec());
    expected.insert("alpha/etc/gone".to_string(), b"x\n".to_vec());
    let mut actual = BTreeMap::new();
    actual.insert("alpha/etc/x".to_string(), b"a\nB\nc\n".to_vec());
    actual.insert("alpha/etc/new".to_string(), b"y\n".to_vec());
    let d = diff_trees(&expected, &actual, "ex");
    assert!(d.contains("--- golden/ex/alpha/etc/x"), "{d}");
    assert!(d.contains("-b\n+B\n"), "{d}");
    assert!(
        d.contains("ex/alpha/etc/gone: in golden/, no longer built"),
        "{d}"
    );
    assert!(d.contains("ex/alpha/etc/new: built, not in golden/"), "{d}");
    assert!(diff_trees(&expected, &expected, "ex").is_empty());
}

/// A failover check's command comes with its package: `http(...)` installs curl,
/// an `exec(...)` check whose command is a well-known tool installs its package,
/// and `check_packages` installs the rest, on every member.
#[test]
fn checks_install_what_their_command_needs() {
    let text = r#"host alpha {
  address = "192.0.2.11"
}
host beta {
  address = "192.0.2.12"
}
failover office {
  members        = [alpha, beta]
  vip            = "192.0.2.10/24"
  check          = exec("curl -fsS http://127.0.0.1:8080/ready | jq -e .ok")
  check_packages = ["jq"]
}
"#;
    let build = match compile_files(&[("t.infra", text)]) {
        Ok(c) => c.build,
        Err(f) => panic!("does not build: {:?}", f.diags),
    };
    for host in ["alpha", "beta"] {
        let packages = &build.hosts[host].packages;
        for p in ["keepalived", "curl", "jq"] {
            assert!(
                packages.iter().any(|x| x == p),
                "{host} does not install {p}: {packages:?}"
            );
        }
    }
}

/// A service with `source` runs from its release: `current` as its working
/// directory, the shared directories writable, restarted when `current` moves.
#[test]
fn a_service_runs_from_its_release() {
    let text = r#"host alpha {
  address = "192.0.2.11"
}
service worker {
  on     = alpha
  run    = "./bin/worker"
  user   = "app"
  source = "worker"
  shared = ["state"]
}
"#;
    let build = match compile_files(&[
        ("t.infra", text),
        ("worker/bin/worker", "#!/bin/sh\nexec sleep 1000\n"),
    ]) {
        Ok(c) => c.build,
        Err(f) => panic!("does not build: {:?}", f.diags),
    };
    let h = &build.hosts["alpha"];
    let r = h.releases.first().expect("a release");
    assert_eq!(r.path, "/srv/worker");
    assert!(r.files.contains_key("bin/worker"));
    let u = h
        .units
        .iter()
        .find(|u| u.name == "infra-worker.service")
        .expect("unit");
    assert_eq!(u.reload_on, ["/srv/worker/current"]);
    let unit = &h.files["/etc/systemd/system/infra-worker.service"].content;
    assert!(
        unit.contains("WorkingDirectory=/srv/worker/current\n"),
        "{unit}"
    );
    assert!(
        unit.contains("ReadWritePaths=-/srv/worker/shared\n"),
        "{unit}"
    );
    let state = h
        .directories
        .iter()
        .find(|d| d.path == "/srv/worker/shared/state");
    assert_eq!(state.map(|d| d.owner.as_str()), Some("app"));
}

/// A kind on `all` gives its templates the placement's hosts (`placement.hosts`,
/// a placement parameter's `hosts`) when they name them; the others are rendered
/// without the list (for a fleet, every host for every host was quadratic).
#[test]
fn a_template_on_all_sees_the_placements_hosts_when_it_names_them() {
    let text = "host a {\n  address = \"192.0.2.11\"\n}\nhost b {\n  address = \"192.0.2.12\"\n}\n\
kind motd(on: placement) {\n  file \"/etc/motd\" {\n    template = \"motd/list.hbs\"\n  }\n\
  file \"/etc/motd.short\" {\n    template = \"motd/short.hbs\"\n  }\n}\n\
motd everyone {\n  on = all\n}\n";
    let build = match compile_files(&[
        ("t.infra", text),
        (
            "templates/motd/list.hbs",
            "{{#each placement.hosts}}{{name}} {{/each}}|{{#each on.hosts}}{{address}} {{/each}}|{{#each params.on.hosts}}{{name}}{{/each}}",
        ),
        ("templates/motd/short.hbs", "{{host.name}} of {{placement.kind}}, {{on.kind}}"),
    ]) {
        Ok(c) => c.build,
        Err(f) => panic!("does not build: {:?}", f.diags),
    };
    for h in ["a", "b"] {
        let files = &build.hosts[h].files;
        assert_eq!(
            files["/etc/motd"].content, "a b |192.0.2.11 192.0.2.12 |ab",
            "{h}"
        );
        assert_eq!(files["/etc/motd.short"].content, format!("{h} of all, all"));
    }
}

/// `infra graph --topology` of every example, DOT and text, against
/// tests/topology/EXAMPLE.{dot,txt} (blessed like the builds); the DOT is drawn
/// by Graphviz as SVG.
#[test]
fn topologies_match_their_golden_drawings() {
    let bless = std::env::var("INFRA_BLESS").as_deref() == Ok("1");
    let dir = repo().join("tests/topology");
    let mut report = String::new();
    for name in example_names() {
        let c = infra::check(
            &repo().join("examples").join(&name),
            &infra::resolve::FsLoader,
        )
        .unwrap_or_else(|_| panic!("examples/{name} checks"));
        let t = infra::graph::Topology {
            model: &c.model,
            holders: Default::default(),
            failing: Default::default(),
            leases: Default::default(),
        };
        for (ext, text) in [("dot", t.dot()), ("txt", t.text())] {
            let path = dir.join(format!("{name}.{ext}"));
            if bless {
                std::fs::create_dir_all(&dir).expect("mkdir tests/topology");
                std::fs::write(&path, &text).expect("write");
                continue;
            }
            let want = std::fs::read_to_string(&path).unwrap_or_default();
            if want != text {
                let d = similar::TextDiff::from_lines(&want, &text);
                report.push_str(&format!(
                    "--- {}\n{}\n",
                    path.display(),
                    d.unified_diff().header("golden", "now")
                ));
            }
        }
        let mut child = Command::new("dot")
            .arg("-Tsvg")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("graphviz's dot (apt-get install graphviz)");
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(t.dot().as_bytes())
            .expect("write to dot");
        let out = child.wait_with_output().expect("dot");
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("<svg"),
            "dot refused the topology of {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(
        report.is_empty(),
        "the topologies differ from tests/topology/ (review, then `INFRA_BLESS=1 cargo test --test suite golden`):\n{report}"
    );
}

#[test]
fn a_live_topology_draws_the_vip_and_the_lease_where_they_are() {
    let c = infra::check(&repo().join("examples/witness"), &infra::resolve::FsLoader)
        .unwrap_or_else(|_| panic!("examples/witness checks"));
    let t = infra::graph::Topology {
        model: &c.model,
        holders: [("office".to_string(), "beta".to_string())].into(),
        failing: ["alpha".to_string()].into(),
        leases: [("office".to_string(), "beta".to_string())].into(),
    };
    let text = t.text();
    for want in [
        "failover office: VIP 192.0.2.30 held by beta",
        "  alpha        192.0.2.31       FAILING",
        "  beta         192.0.2.32       (VIP)",
        "  nas          192.0.2.33       (witness; lease held by beta)",
        "  beta --postgres.main (replication)--> alpha",
    ] {
        assert!(text.contains(want), "no {want:?} in:\n{text}");
    }
    let dot = t.dot();
    for want in [
        "\"vip_office\" -> \"office.beta\" [label=\"held by\", style=bold];",
        "\"office.beta\" -> \"office.nas\" [label=\"holds the lease\", style=\"dashed,bold\", dir=none];",
        "\"office.alpha\" -> \"office.nas\" [label=\"lease\", style=dashed, dir=none];",
    ] {
        assert!(dot.contains(want), "no {want:?} in:\n{dot}");
    }
}
