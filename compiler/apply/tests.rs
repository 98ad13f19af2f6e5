use super::*;
use crate::probe::{Manifest, Observed};
use crate::render::{DirOut, StepOut, UserOut};
use crate::render::{FileOut, HostBuild, UnitOut};
use crate::secrets::Secrets;
use script::{HealthCheck, SwitchSpec};
use std::collections::{BTreeMap, BTreeSet};

fn file(content: &str, mode: &str) -> FileOut {
    FileOut {
        mode: crate::encode::Mode::parse(mode).expect("a mode"),
        owner: "root".into(),
        group: "root".into(),
        content: content.into(),
        secret: crate::render::has_secret(content),
        sha256: sha256_hex(content.as_bytes()),
        origin: "service.x".into(),
    }
}

pub(crate) fn sample_build() -> HostBuild {
    let mut files = BTreeMap::new();
    files.insert("/etc/x/app.conf".to_string(), file("port=80\n", "0644"));
    files.insert(
        "/etc/x/db.pass".to_string(),
        file(
            &format!("{}\n", crate::placeholder::Placeholder::new("db")),
            "0600",
        ),
    );
    files.insert(
        "/etc/systemd/system/infra-x.service".to_string(),
        file("[Service]\nExecStart=/bin/true\n", "0644"),
    );
    HostBuild {
        releases: Default::default(),
        host: "alpha".into(),
        address: "192.0.2.11".into(),
        packages: vec!["curl".into()],
        users: vec![UserOut {
            name: "app".into(),
            home: Some("/srv/app".into()),
            system: true,
            ..UserOut::default()
        }],
        directories: vec![DirOut {
            path: "/srv/app".into(),
            mode: crate::encode::Mode::parse("0750").expect("a mode"),
            owner: "app".into(),
            group: "app".into(),
        }],
        files,
        units: vec![UnitOut {
            name: "infra-x.service".into(),
            enable: true,
            start: true,
            restart_on: vec![
                "/etc/x/app.conf".into(),
                "/etc/systemd/system/infra-x.service".into(),
            ],
            reload_on: vec![],
            origin: "service.x".into(),
        }],
        steps: vec![
            StepOut {
                name: "migrate".into(),
                run: "echo 'it''s' > /tmp/x".into(),
                unless: Some("test -e /tmp/x".into()),
                origin: "service.x".into(),
            },
            StepOut {
                name: "once".into(),
                run: "true".into(),
                unless: None,
                origin: "service.x".into(),
            },
        ],
        roles: vec![],
    }
}

fn secrets() -> Secrets {
    let mut s = Secrets::new();
    s.insert("db", "hunter2".into());
    s
}

#[test]
fn materialize_substitutes_and_names_missing_secrets() {
    let b = sample_build();
    assert_eq!(
        materialize(&b, &Secrets::new()).err(),
        Some(super::MaterializeError::Missing(BTreeSet::from([
            "db".to_string()
        ])))
    );
    let m = materialize(&b, &secrets()).unwrap_or_else(|_| panic!("all secrets given"));
    assert_eq!(m.files["/etc/x/db.pass"], b"hunter2\n");
    assert_eq!(m.installed["/etc/x/db.pass"], sha256_hex(b"hunter2\n"));
    assert_eq!(secret_names(&b), BTreeSet::from(["db".to_string()]));
    let hashes = secret_sha256(&b, &m);
    assert_eq!(hashes.keys().collect::<Vec<_>>(), vec!["/etc/x/db.pass"]);
    let man = new_manifest(&b, 4, &m.installed);
    assert_eq!(man.generation, 4);
    assert!(man.files["/etc/x/db.pass"].secret);
    assert_eq!(
        man.files["/etc/x/app.conf"].installed_sha256,
        sha256_hex(b"port=80\n")
    );
    assert_eq!(man.units[0].restart_on.len(), 2);
    let json = serde_json::to_string(&man).unwrap_or_default();
    assert!(!json.contains("hunter2"));
}

fn spec_parts() -> (HostBuild, Prepared, Manifest, Materialized) {
    let b = sample_build();
    let m = materialize(&b, &secrets()).unwrap_or_else(|_| panic!("secrets"));
    let obs = Observed {
        host: "alpha".into(),
        systemd: true,
        fingerprint: "f".repeat(64),
        ..Observed::default()
    };
    let p = prepare(&b, &obs, secret_sha256(&b, &m));
    let man = new_manifest(&b, p.generation, &m.installed);
    (b, p, man, m)
}

fn spec<'a>(
    b: &'a HostBuild,
    p: &'a Prepared,
    man: &'a Manifest,
    probe: &'a str,
) -> SwitchSpec<'a> {
    SwitchSpec {
        host: "alpha",
        state_dir: "/var/lib/infra",
        token: "tok",
        holder: "infra apply by test",
        fingerprint: &p.fingerprint,
        probe_script: probe,
        target: p.generation,
        new: true,
        previous: p.previous,
        previous_manifest: p.previous_manifest.as_ref(),
        target_manifest: man,
        plan: &p.plan,
        build: b,
        deadline: 90,
        systemd: true,
    }
}

fn sh_syntax(script: &str) {
    use std::io::Write;
    let mut c = std::process::Command::new("sh")
        .arg("-n")
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("sh: {e}"));
    if let Some(mut i) = c.stdin.take() {
        let _ = i.write_all(script.as_bytes());
    }
    let out = c.wait_with_output().unwrap_or_else(|e| panic!("sh: {e}"));
    assert!(
        out.status.success(),
        "sh -n: {}\n{script}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn scripts_are_valid_sh() {
    let (b, p, man, _) = spec_parts();
    let probe = crate::probe::probe_script(&b, "/var/lib/infra");
    let sw = spec(&b, &p, &man, &probe);
    let text = script::switch_script(&sw);
    sh_syntax(&text);
    sh_syntax(&script::undo_script(&sw));
    sh_syntax(&script::confirm_script(
        "/var/lib/infra",
        "tok",
        3,
        &[HealthCheck {
            what: "failover group office".into(),
            script: "/etc/keepalived/infra-check-office.sh".into(),
        }],
        30,
    ));
    sh_syntax(&script::generations_script("/var/lib/infra", true));
    sh_syntax(&script::recover_script("/var/lib/infra"));
    sh_syntax(script::LOADER);
    // What the plan says, in its order; secrets never in the script.
    assert!(!text.contains("hunter2"));
    let at = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not in the switch script"))
    };
    assert!(at("'install packages: curl' pkgs 'curl'") < at("'create user app' useradd"));
    assert!(at("'create user app'") < at("'create directory /srv/app'"));
    assert!(at("'create directory /srv/app'") < at("step \"stage the new files\" stage_all"));
    // Every file is staged (mode, owner, group, path) and synced before the
    // first live change.
    assert!(at("0644\troot\troot\t/etc/x/app.conf\n") < at("stage_all() {"));
    assert!(at("0600\troot\troot\t/etc/x/db.pass\n") < at("stage_all() {"));
    assert!(
        at("step \"stage the new files\" stage_all") < at("step \"sync the staged files\" sync")
    );
    assert!(at("step \"sync the staged files\" sync") < at("setphase switching"));
    assert!(at("setphase switching") < at("step \"install the new files\" live_all"));
    assert!(at("step \"install the new files\" live_all") < at("switch generations/current"));
    assert!(at("switch generations/current") < at("systemctl daemon-reload"));
    assert!(at("'enable infra-x.service'") < at("'start infra-x.service'"));
    assert!(at("'start infra-x.service'") < at("'run step migrate' guarded 'test -e /tmp/x'"));
    assert!(at("'run step once' sh -c 'true'") < at("arm the rollback timer"));
    assert!(text.contains("--unit=infra-rollback-1 --on-active=90"));
    assert!(at("arm the rollback timer") < at("setphase switched"));
}

#[test]
fn payload_holds_the_generation_and_the_undo_script() {
    let (_, p, man, m) = spec_parts();
    let tar = payload(Some((&man, &m)), &[], "#!/bin/sh\n", "/var/lib/infra", true);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut c = std::process::Command::new("tar")
        .args(["-x", "-f", "-", "-C"])
        .arg(dir.path())
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("tar: {e}"));
    if let Some(mut i) = c.stdin.take() {
        use std::io::Write;
        let _ = i.write_all(&tar);
    }
    assert!(c.wait().map(|s| s.success()).unwrap_or(false));
    let read = |p: &str| std::fs::read(dir.path().join(p)).unwrap_or_default();
    assert_eq!(read("gen/files/etc/x/db.pass"), b"hunter2\n");
    assert_eq!(read("undo.sh"), b"#!/bin/sh\n");
    assert_eq!(
        read("runtime/recover.sh"),
        script::recover_script("/var/lib/infra").as_bytes()
    );
    assert!(String::from_utf8(read("runtime/infra-recover.service"))
        .unwrap_or_default()
        .contains("ExecStart=/bin/sh /var/lib/infra/recover.sh boot"));
    assert_eq!(
        String::from_utf8(read("gen/paths")).unwrap_or_default(),
        "/etc/systemd/system/infra-x.service\n/etc/x/app.conf\n/etc/x/db.pass\n"
    );
    let back: Manifest = serde_json::from_slice(&read("gen/manifest.json")).unwrap_or_default();
    assert_eq!(back, man);
    assert_eq!(p.generation, 1);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("gen/files/etc/x/db.pass"))
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0);
    assert_eq!(mode, 0o600);
}

#[test]
fn generations_answer() {
    let man = Manifest {
        generation: 2,
        ..Manifest::default()
    };
    let b64 =
        crate::shell::base64_encode(serde_json::to_string(&man).unwrap_or_default().as_bytes());
    let out = format!(
        "CUR\t3\nGEN\t1\t2026-01-01T00:00:00Z\t4\t\nGEN\t3\td\t5\t2\nGEN\t2\td\t   5\t1\nMAN\t2\t{b64}\n"
    );
    let g = parse_generations(out.as_bytes());
    assert_eq!(g.current, Some(3));
    assert_eq!(
        g.list.iter().map(|x| x.number).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(g.list[1].files, 5);
    assert!(g.list[2].current && !g.list[0].current);
    assert_eq!(g.list[1].manifest.as_ref().map(|m| m.generation), Some(2));
    assert_eq!(g.list[0].previous, None);
    assert_eq!(g.default_target(), Some(2));
    let g = parse_generations(b"CUR\t3\nGEN\t1\td\t1\t\nGEN\t3\td\t1\t9\n");
    assert_eq!(g.default_target(), Some(1));
}

#[test]
fn rollback_builds_compare_installed_hashes() {
    let (b, _, man, _) = spec_parts();
    let (rb, hashes) = rollback_build("alpha", "192.0.2.11", &man);
    assert_eq!(rb.files.len(), b.files.len());
    assert!(rb.packages.is_empty() && rb.steps.is_empty());
    assert_eq!(hashes["/etc/x/db.pass"], sha256_hex(b"hunter2\n"));
    assert_eq!(rb.units[0].restart_on, b.units[0].restart_on);
}

// Plan rules apply depends on.

fn unit_state(active: &str, file: &str) -> crate::probe::UnitState {
    crate::probe::UnitState {
        id: "x".into(),
        load_state: "loaded".into(),
        active_state: active.into(),
        sub_state: "dead".into(),
        unit_file_state: file.into(),
        ..Default::default()
    }
}

/// The build's files as they are on a host that applied it as generation 1.
fn applied(b: &HostBuild) -> Observed {
    let m = materialize(b, &secrets()).unwrap_or_else(|_| panic!("secrets"));
    let man = new_manifest(b, 1, &m.installed);
    let paths = b
        .files
        .iter()
        .map(|(p, f)| {
            (
                p.clone(),
                crate::probe::PathState::File {
                    mode: f.mode.to_string(),
                    owner: f.owner.clone(),
                    group: f.group.clone(),
                    size: 1,
                    sha256: Some(m.installed[p].clone()),
                    content: None,
                },
            )
        })
        .chain(b.directories.iter().map(|d| {
            (
                d.path.clone(),
                crate::probe::PathState::Directory {
                    mode: d.mode.to_string(),
                    owner: d.owner.clone(),
                    group: d.group.clone(),
                },
            )
        }))
        .collect();
    Observed {
        host: b.host.clone(),
        systemd: true,
        paths,
        packages: b.packages.iter().map(|p| (p.clone(), "1".into())).collect(),
        users: b.users.iter().map(|u| u.name.clone()).collect(),
        generation: Some(1),
        manifest: Some(man),
        guards: [("migrate".to_string(), 0)].into_iter().collect(),
        units: [(
            "infra-x.service".to_string(),
            unit_state("active", "enabled"),
        )]
        .into_iter()
        .collect(),
        ..Observed::default()
    }
}

fn plan_of(b: &HostBuild, o: &Observed) -> Vec<String> {
    let m = materialize(b, &secrets()).unwrap_or_else(|_| panic!("secrets"));
    let p = prepare(b, o, secret_sha256(b, &m));
    p.plan
        .actions
        .iter()
        .map(|a| {
            serde_json::to_value(a)
                .map(|v| v["action"].to_string())
                .unwrap_or_default()
        })
        .collect()
}

#[test]
fn applied_build_plans_nothing_and_the_next_generation_follows_the_latest() {
    let mut b = sample_build();
    b.steps.retain(|s| s.unless.is_some());
    let mut o = applied(&b);
    assert_eq!(plan_of(&b, &o), Vec::<String>::new());
    o.latest_generation = Some(7);
    let p = prepare(&b, &o, BTreeMap::new());
    assert_eq!(
        p.generation, 8,
        "after a rollback to 1, the next is above every existing one"
    );
}

#[test]
fn a_failing_guard_or_a_changed_file_of_its_instance_runs_the_step() {
    let mut b = sample_build();
    b.steps.retain(|s| s.unless.is_some());
    let mut o = applied(&b);
    o.guards.insert("migrate".into(), 1);
    assert_eq!(plan_of(&b, &o), ["\"run_step\""]);
    let mut o = applied(&b);
    if let Some(f) = b.files.get_mut("/etc/x/app.conf") {
        f.content = "port=81\n".into();
        f.sha256 = sha256_hex(b"port=81\n");
    }
    assert_eq!(
        plan_of(&b, &o),
        ["\"update_file\"", "\"restart_unit\"", "\"run_step\""]
    );
    o.guards.clear();
    assert!(plan_of(&b, &o).contains(&"\"run_step\"".to_string()));
}

#[test]
fn settled_units_are_left_alone_and_failed_ones_started() {
    let mut b = sample_build();
    b.steps.clear();
    let mut o = applied(&b);
    // started by generation 1, inactive now without failing (a condition, a PartOf target)
    o.units
        .insert("infra-x.service".into(), unit_state("inactive", "enabled"));
    assert_eq!(plan_of(&b, &o), Vec::<String>::new());
    o.units
        .insert("infra-x.service".into(), unit_state("failed", "enabled"));
    assert_eq!(plan_of(&b, &o), ["\"start_unit\""]);
    // a unit the current generation did not start yet is started
    if let Some(m) = o.manifest.as_mut() {
        m.units.clear();
    }
    o.units
        .insert("infra-x.service".into(), unit_state("inactive", "enabled"));
    assert_eq!(plan_of(&b, &o), ["\"start_unit\""]);
}

#[test]
fn reload_on_reloads_and_removed_distribution_units_are_not_stopped() {
    let mut b = sample_build();
    b.steps.clear();
    b.files.insert(
        "/etc/keepalived/keepalived.conf".into(),
        file("vrrp\n", "0644"),
    );
    b.units.push(UnitOut {
        name: "keepalived.service".into(),
        enable: true,
        start: true,
        restart_on: vec![],
        reload_on: vec!["/etc/keepalived/keepalived.conf".into()],
        origin: "failover".into(),
    });
    let mut o = applied(&b);
    o.units
        .insert("keepalived.service".into(), unit_state("active", "enabled"));
    if let Some(f) = b.files.get_mut("/etc/keepalived/keepalived.conf") {
        f.content = "vrrp 2\n".into();
        f.sha256 = sha256_hex(b"vrrp 2\n");
    }
    assert_eq!(plan_of(&b, &o), ["\"update_file\"", "\"reload_unit\""]);
    // keepalived leaves the configuration: its file goes, the distribution's unit
    // is restarted (it runs), not stopped; infra's own unit is stopped and disabled.
    let mut gone = b.clone();
    gone.files.remove("/etc/keepalived/keepalived.conf");
    gone.units.retain(|u| u.name != "keepalived.service");
    if let Some(m) = o.manifest.as_mut() {
        for u in &mut m.units {
            if u.name == "keepalived.service" {
                u.restart_on = vec!["/etc/keepalived/keepalived.conf".into()];
            }
        }
    }
    assert_eq!(plan_of(&gone, &o), ["\"delete_file\"", "\"restart_unit\""]);
    gone.units.clear();
    gone.files.remove("/etc/systemd/system/infra-x.service");
    let p = plan_of(&gone, &o);
    assert!(
        p.contains(&"\"stop_unit\"".to_string()) && p.contains(&"\"disable_unit\"".to_string()),
        "{p:?}"
    );
}

/// `sh -c SCRIPT` with the release functions defined; its output, or panics.
fn release_sh(script: &str, g: &std::path::Path) -> String {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "set -u\nG={}\n{}{}\n{script}",
            g.display(),
            script::FN_FILES,
            script::FN_RELEASES
        ))
        .output()
        .unwrap_or_else(|e| panic!("sh: {e}"));
    assert!(
        out.status.success(),
        "{script}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A release is assembled from the current one and the files that travelled:
/// unchanged files are the same inodes (nothing copied), changed ones are new
/// files (the old release keeps its bytes), removed ones are gone, the shared
/// directory is linked; prune keeps the newest and what a generation names.
#[test]
fn releases_are_assembled_from_the_current_one_and_what_travelled() {
    if !std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n")
    {
        eprintln!("skipping: assembling a release chowns its files to root");
        return;
    }
    let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (app, g) = (t.path().join("app"), t.path().join("gen"));
    for d in [
        "app/releases",
        "app/shared/uploads",
        "gen/1",
        "p1/tree/public",
        "p2/tree/public",
    ] {
        std::fs::create_dir_all(t.path().join(d)).unwrap_or_else(|e| panic!("{e}"));
    }
    let w =
        |p: &str, s: &str| std::fs::write(t.path().join(p), s).unwrap_or_else(|e| panic!("{e}"));
    w("p1/tree/public/index.php", "v1");
    w("p1/tree/lib.php", "lib");
    w("p1/tree/old.php", "old");
    let (l, o, i1, i2) = (
        "1".repeat(64),
        "2".repeat(64),
        "3".repeat(64),
        "4".repeat(64),
    );
    let list1 = format!("{l} 0644 lib.php\n{o} 0644 old.php\n{i1} 0644 public/index.php\n");
    let list2 = format!("{l} 0644 lib.php\n{i2} 0755 public/index.php\n");
    w("p1/list", &list1);
    w(
        "p1/list.sha256",
        &crate::encode::sha256_hex(list1.as_bytes()),
    );
    w("p2/tree/public/index.php", "v2");
    w("p2/remove", "old.php\n");
    // incremental: the lines of what travelled, the paths that went
    w("p2/add", &format!("{i2} 0755 public/index.php\n"));
    w("p2/drop", "public/index.php\nold.php\n");
    w(
        "p2/list.sha256",
        &crate::encode::sha256_hex(list2.as_bytes()),
    );
    w("gen/1/manifest.json", "{\"releases\":{\"/x\":\"aaa\"}}");
    let a = app.display();
    let p = t.path().display();
    release_sh(
        &format!("assemble {p}/p1 {a} aaa '' uploads && flip {a} aaa"),
        &g,
    );
    release_sh(
        &format!("assemble {p}/p2 {a} bbb aaa uploads && flip {a} bbb"),
        &g,
    );
    let read = |p: &str| std::fs::read_to_string(app.join(p)).unwrap_or_default();
    assert_eq!(
        read("releases/aaa/public/index.php"),
        "v1",
        "the old release keeps its bytes"
    );
    assert_eq!(read("releases/bbb/public/index.php"), "v2");
    assert!(!app.join("releases/bbb/old.php").exists(), "removed");
    assert!(app.join("releases/aaa/old.php").exists());
    use std::os::unix::fs::MetadataExt;
    let ino = |p: &str| std::fs::metadata(app.join(p)).map(|m| m.ino()).unwrap_or(0);
    assert_eq!(
        ino("releases/aaa/lib.php"),
        ino("releases/bbb/lib.php"),
        "linked, not copied"
    );
    assert_eq!(
        std::fs::read_link(app.join("releases/bbb/uploads")).unwrap_or_default(),
        app.join("shared/uploads")
    );
    assert_eq!(
        std::fs::read_link(app.join("current")).unwrap_or_default(),
        std::path::Path::new("releases/bbb")
    );
    assert_eq!(
        read("releases/bbb.list"),
        list2,
        "the list, assembled and checked"
    );
    // A list that does not come out as the build's is refused.
    w("p2/list.sha256", &"0".repeat(64));
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "G={}\n{}{}\nassemble {p}/p2 {a} bad bbb uploads",
            g.display(),
            script::FN_FILES,
            script::FN_RELEASES
        ))
        .output()
        .unwrap_or_else(|e| panic!("sh: {e}"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("differs from the build's"));
    assert!(
        !app.join("releases/bad").exists(),
        "nothing half-made is kept"
    );
    w(
        "p2/list.sha256",
        &crate::encode::sha256_hex(list2.as_bytes()),
    );
    // Three more releases; keep 2: the current one, the newest, and aaa (a
    // generation names it) stay.
    for h in ["ccc", "ddd", "eee"] {
        release_sh(
            &format!("sleep 0.01; assemble {p}/p2 {a} {h} bbb uploads"),
            &g,
        );
    }
    release_sh(&format!("flip {a} eee && prune {a} 2 eee"), &g);
    let mut left: Vec<String> = std::fs::read_dir(app.join("releases"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    left.sort();
    assert_eq!(
        left,
        ["aaa", "aaa.list", "ddd", "ddd.list", "eee", "eee.list"]
    );
}

/// Only the files the host's current release lacks travel.
#[test]
fn only_changed_release_files_travel() {
    use crate::release::ReleaseFile;
    let f = |sha: &str, size: u64| ReleaseFile {
        sha256: sha.repeat(64),
        size,
        mode: crate::encode::Mode::FILE,
    };
    let mut b = sample_build();
    b.releases.push(crate::render::ReleaseOut {
        path: "/srv/app".into(),
        hash: "new".into(),
        source: "app".into(),
        shared: vec![],
        keep: 5,
        owner: "root".into(),
        group: "root".into(),
        reload: vec![],
        before_switch: String::new(),
        migrate: String::new(),
        files: [
            ("index.php".to_string(), f("a", 10)),
            ("lib.php".to_string(), f("b", 20_000_000)),
            ("new.php".to_string(), f("c", 30)),
        ]
        .into(),
        origin: "php_app.app".into(),
    });
    let mut o = applied(&b);
    let mode = crate::encode::Mode::FILE;
    o.releases.insert(
        "/srv/app".into(),
        crate::probe::ObservedRelease {
            present: false,
            current: Some("old".into()),
            current_files: Some(
                [
                    ("index.php".to_string(), ("x".repeat(64), mode)),
                    ("lib.php".to_string(), ("b".repeat(64), mode)),
                    ("gone.php".to_string(), ("d".repeat(64), mode)),
                ]
                .into(),
            ),
        },
    );
    let plan = crate::plan::plan(&b, &o);
    let r = plan
        .actions
        .iter()
        .find(|a| matches!(a, crate::plan::Action::Release { .. }))
        .unwrap_or_else(|| panic!("a release action: {:?}", plan.actions));
    let crate::plan::Action::Release {
        added,
        changed,
        removed,
        bytes,
        ..
    } = r
    else {
        unreachable!()
    };
    assert_eq!(
        (added.as_slice(), changed.as_slice(), removed.as_slice()),
        (
            &["new.php".to_string()][..],
            &["index.php".to_string()][..],
            &["gone.php".to_string()][..]
        )
    );
    assert_eq!(*bytes, 40, "the 20 MB unchanged file does not travel");
    let mut m = materialize(&b, &secrets()).unwrap_or_else(|_| panic!("materialize"));
    for (sha, data) in [("a", "<?php // v2"), ("b", "lib"), ("c", "<?php // new")] {
        m.blobs.insert(
            sha.repeat(64),
            std::sync::Arc::new(data.as_bytes().to_vec()),
        );
    }
    let payloads = super::prepare::release_payloads(&b, &plan, Some(&m));
    assert_eq!(payloads.len(), 1);
    let sent: Vec<&str> = payloads[0].files.iter().map(|(p, _, _)| *p).collect();
    assert_eq!(sent, ["new.php", "index.php"]);
    assert_eq!(payloads[0].remove, "gone.php\n");
    assert!(crate::plan::Plan::new(vec![plan]).render_text(false).contains(
        "release /srv/app old -> new: 3 files changed (1 added, 1 changed, 1 removed), 40 B to send"
    ));
}

#[test]
fn an_undo_runs_the_guarded_steps_again_with_the_old_files() {
    let (b, p, man, _) = spec_parts();
    let probe = crate::probe::probe_script(&b, "/var/lib/infra");
    let mut sw = spec(&b, &p, &man, &probe);
    let text = script::switch_script(&sw);
    let record = text
        .find("printf '%s\\n' 'migrate' >> \"$S/lock/stepped\"")
        .unwrap_or_else(|| panic!("the switch records the guarded step it runs:\n{text}"));
    assert!(record < text.find("'run step migrate' guarded").unwrap_or(0));
    // A first generation has no previous one to go back to: nothing to re-run.
    assert!(!script::undo_script(&sw).contains("lock/stepped"));
    // The previous generation has the same step: the undo runs it again (not
    // at boot), after the old files are back.
    sw.previous = Some(1);
    sw.previous_manifest = Some(&man);
    let undo = script::undo_script(&sw);
    sh_syntax(&undo);
    let again = undo
        .find("if grep -qxF 'migrate' \"$S/lock/stepped\"; then { sh -c 'test -e /tmp/x' || sh -c")
        .unwrap_or_else(|| panic!("the undo runs the step again:\n{undo}"));
    assert!(undo.contains("if [ \"$mode\" != boot ] && [ -f \"$S/lock/stepped\" ]"));
    assert!(undo.find("e inst ").is_none_or(|i| i < again));
    // the unguarded step is not run again
    assert!(!undo.contains("grep -qxF 'once'"));
}
