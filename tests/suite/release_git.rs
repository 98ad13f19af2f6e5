//! A release from a git commit of the repository (`git = "v1"`): the committed
//! tree goes out, not the working tree; a name that is no commit is E0624.

use std::path::Path;
use std::process::Command;

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.org"])
        .args(args)
        .output()
        .expect("git runs (install git)");
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

fn infra(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_infra"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("infra runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn config(git_line: &str) -> String {
    format!(
        "import \"std/php\"\nhost alpha {{\n  address = \"192.0.2.11\"\n}}\n\
         php_app shop {{\n  on       = alpha\n  root     = \"/srv/shop\"\n  source   = \"app\"\n{git_line}  web_root = \"public\"\n}}\n"
    )
}

/// The release hash and file names (with their modes) of the build of `dir`.
fn release(dir: &Path) -> (String, Vec<String>) {
    let (code, out, err) = infra(dir, &["build", ".", "--out", "build"]);
    assert_eq!(code, 0, "{out}{err}");
    let m: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join("build/alpha/manifest.json")).expect("manifest"),
    )
    .expect("json");
    let r = &m["releases"][0];
    let mut files: Vec<String> = r["files"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| format!("{k} {}", v["mode"].as_str().unwrap_or("?")))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    (r["hash"].as_str().unwrap_or("").to_string(), files)
}

#[test]
fn a_release_from_a_tag_is_the_committed_tree() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("app/public")).expect("mkdir");
    std::fs::create_dir_all(dir.join("app/bin")).expect("mkdir");
    std::fs::write(dir.join("app/public/index.php"), "<?php echo 'v1';\n").expect("write");
    std::fs::write(dir.join("app/bin/run"), "#!/bin/sh\necho v1\n").expect("write");
    let mut perm = std::fs::metadata(dir.join("app/bin/run"))
        .expect("meta")
        .permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(dir.join("app/bin/run"), perm).expect("chmod");
    std::fs::write(dir.join("main.infra"), config("")).expect("write");
    std::fs::write(dir.join(".gitignore"), "build/\n").expect("write");
    git(dir, &["init", "-q"]);
    git(dir, &["add", "."]);
    git(dir, &["commit", "-q", "-m", "v1"]);
    git(dir, &["tag", "v1"]);
    let (v1_hash, v1_files) = release(dir);
    assert_eq!(v1_files, ["bin/run 0755", "public/index.php 0644"]);

    // The working tree moves on (changed, added, not committed)...
    std::fs::write(dir.join("app/public/index.php"), "<?php echo 'v2';\n").expect("write");
    std::fs::write(dir.join("app/public/new.php"), "<?php\n").expect("write");
    let (wt_hash, _) = release(dir);
    assert_ne!(wt_hash, v1_hash);
    // ...but `git = "v1"` deploys exactly what v1 was, executable bit included.
    std::fs::write(dir.join("main.infra"), config("  git      = \"v1\"\n")).expect("write");
    let (tag_hash, tag_files) = release(dir);
    assert_eq!(tag_hash, v1_hash, "the tag's tree is the committed v1");
    assert_eq!(tag_files, ["bin/run 0755", "public/index.php 0644"]);

    // A name that is no commit: E0624 at `git`, exit 1.
    std::fs::write(dir.join("main.infra"), config("  git      = \"v9\"\n")).expect("write");
    let (code, _, err) = infra(dir, &["check", "."]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("E0624") && err.contains("no commit `v9`"),
        "{err}"
    );
    assert!(
        err.contains("git      = \"v9\""),
        "points at the attribute: {err}"
    );
    // An option is not a commit either.
    std::fs::write(dir.join("main.infra"), config("  git      = \"--all\"\n")).expect("write");
    let (code, _, err) = infra(dir, &["check", "."]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("E0624"), "{err}");
}
