//! Plan: pure, always run. Observed states come from the probe script run with
//! the local sh on temp dirs (see ssh.rs `Scenario`) or are written by hand.

use crate::ssh::{file, sha, Scenario};
use infra::plan::{self, Action, Plan, PlanOptions};
use infra::probe::{Manifest, ManifestFile, ManifestUnit, Observed, PathState, UnitState};
use infra::render::{HostBuild, UnitOut};
use std::collections::BTreeMap;

/// One line per action, for whole-plan assertions.
fn brief(a: &Action) -> String {
    match a {
        Action::InstallPackages { packages } => format!("install {}", packages.join(",")),
        Action::CreateUser { name, .. } => format!("user {name}"),
        Action::Release { path, to, .. } => format!("release {path} {to}"),
        Action::AddUserGroups { name, groups } => format!("groups {name} {}", groups.join(",")),
        Action::CreateDirectory { path, mode, .. } => format!("mkdir {path} {mode}"),
        Action::FixDirectory { path, changes } => format!("fixdir {path} {}", changes.join(",")),
        Action::CreateFile { path, drift, .. } => {
            format!(
                "create {path}{}",
                drift
                    .as_ref()
                    .map(|d| format!(" [{d}]"))
                    .unwrap_or_default()
            )
        }
        Action::UpdateFile {
            path,
            changes,
            drift,
            ..
        } => format!(
            "update {path} {}{}",
            changes.join(","),
            drift
                .as_ref()
                .map(|d| format!(" [{d}]"))
                .unwrap_or_default()
        ),
        Action::DeleteFile { path, drift } => {
            format!(
                "delete {path}{}",
                drift
                    .as_ref()
                    .map(|d| format!(" [{d}]"))
                    .unwrap_or_default()
            )
        }
        Action::DaemonReload => "daemon-reload".into(),
        Action::EnableUnit { unit } => format!("enable {unit}"),
        Action::StartUnit { unit } => format!("start {unit}"),
        Action::RestartUnit { unit, because } => format!("restart {unit} ({})", because.join(",")),
        Action::ReloadUnit { unit, because } => format!("reload {unit} ({})", because.join(",")),
        Action::StopUnit { unit } => format!("stop {unit}"),
        Action::DisableUnit { unit } => format!("disable {unit}"),
        Action::RunStep { name, guarded, .. } => {
            format!("step {name}{}", if *guarded { " (guarded)" } else { "" })
        }
    }
}

fn briefs(p: &plan::HostPlan) -> Vec<String> {
    p.actions.iter().map(brief).collect()
}

#[test]
fn plan_of_a_probed_host() {
    let sc = Scenario::new();
    let observed = sc.probe_locally();
    let p = plan::plan(&sc.build, &observed);
    let e = |n: &str| sc.p(n);
    assert_eq!(
        briefs(&p),
        vec![
            "install no-such-package-infra".to_string(),
            "user no-such-user-infra".into(),
            format!("mkdir {} 0750", e("newdir")),
            format!("update {} content", e("big.log")),
            format!("update {} content", e("binary.bin")),
            format!("update {} content", e("changed.conf")),
            format!(
                "update {} content [drift: edited on host since generation 3]",
                e("drifted.conf")
            ),
            format!("update {} content", e("limit.log")),
            format!("update {} mode 0644 -> 0600", e("mode.conf")),
            format!("create {}", e("new.conf")),
            format!("update {} content", e("secret2.conf")),
            format!("delete {}", e("old.conf")),
            "enable app.service".into(),
            "start app.service".into(),
            "stop old.service".into(),
            "disable old.service".into(),
            "step init (guarded)".into(),
        ]
    );
    assert_eq!(p.conflicts.len(), 1, "{:?}", p.conflicts);
    assert!(p.conflicts[0].contains("adir.conf") && p.conflicts[0].contains("directory"));
    // The lock is a state of its own (deploy reports it), not a plan warning.
    assert!(observed
        .lock
        .as_ref()
        .is_some_and(|l| l.holder == "ops@laptop pid 42" && l.phase.is_none()));
    assert!(!p.warnings.iter().any(|w| w.contains("lock")));
    assert!(p
        .warnings
        .iter()
        .any(|w| w.contains("systemd is not running")));
    assert_eq!(p.summary.drift, 1);
    assert_eq!(
        p.summary_line(),
        "alpha: 1 to create, 7 to update, 1 to delete, 1 package, 1 user, 1 directory, \
         1 to enable, 1 to start, 1 to stop, 1 to disable, 1 step (1 drifted)"
    );

    // The diff of a changed file is a real unified diff against the host's content.
    let diff = p
        .actions
        .iter()
        .find_map(|a| match a {
            Action::UpdateFile { path, diff, .. } if *path == e("changed.conf") => diff.clone(),
            _ => None,
        })
        .expect("diff");
    assert!(diff.contains("-b\n+B\n"), "{diff}");
    assert!(
        diff.contains("(on host)") && diff.contains("(new)"),
        "{diff}"
    );

    // Secrets: never a value, never a content.
    let text = Plan::new(vec![p.clone()]).render_text(false);
    let json = Plan::new(vec![p.clone()]).to_json();
    if std::env::var_os("INFRA_SHOW_PLAN").is_some() {
        eprintln!("{text}");
    }
    for out in [&text, &json] {
        assert!(!out.contains("hunter2"), "{out}");
        assert!(!out.contains("token=abc"), "{out}");
        assert!(!out.contains("INFRA_SECRET"), "{out}");
    }
    assert!(text.contains("(secret content changed)"), "{text}");
    assert!(text.contains("too large to show"), "{text}");
    assert!(
        text.contains("drift: edited on host since generation 3"),
        "{text}"
    );
    assert!(text.contains("run step init (guarded)"), "{text}");
    assert!(text.ends_with(
        "total (1 host): 1 to create, 7 to update, 1 to delete, 1 package, 1 user, 1 directory, \
         1 to enable, 1 to start, 1 to stop, 1 to disable, 1 step (1 drifted)\n"
    ));
    // Deterministic, byte for byte.
    let again = plan::plan(&sc.build, &sc.probe_locally());
    assert_eq!(Plan::new(vec![again]).render_text(false), text);
    assert_eq!(Plan::new(vec![p]).detailed_exit_code(), 2);
}

/// A host that already has exactly the build: no changes, exit code 0.
#[test]
fn plan_without_changes() {
    let mut build = HostBuild {
        host: "beta".into(),
        ..HostBuild::default()
    };
    build
        .files
        .insert("/etc/a.conf".into(), file("a\n", "0644", false));
    build.units.push(UnitOut {
        name: "a.service".into(),
        enable: true,
        start: true,
        restart_on: vec!["/etc/a.conf".into()],
        reload_on: vec![],
        origin: "t.t".into(),
    });
    let observed = Observed {
        host: "beta".into(),
        systemd: true,
        paths: [(
            "/etc/a.conf".to_string(),
            PathState::File {
                mode: "0644".into(),
                owner: "root".into(),
                group: "root".into(),
                size: 2,
                sha256: Some(sha(b"a\n")),
                content: None,
            },
        )]
        .into_iter()
        .collect(),
        units: [("a.service".to_string(), active_enabled())]
            .into_iter()
            .collect(),
        ..Observed::default()
    };
    let p = plan::plan(&build, &observed);
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert_eq!(p.summary_line(), "beta: no changes");
    let all = Plan::new(vec![p]);
    assert_eq!(all.detailed_exit_code(), 0);
    assert_eq!(
        all.render_text(false),
        "beta (no generation yet)\nbeta: no changes\n\ntotal (1 host): no changes\n"
    );
}

fn active_enabled() -> UnitState {
    UnitState {
        id: "x".into(),
        load_state: "loaded".into(),
        active_state: "active".into(),
        sub_state: "running".into(),
        unit_file_state: "enabled".into(),
        ..UnitState::default()
    }
}

fn present(content: &str) -> PathState {
    PathState::File {
        mode: "0644".into(),
        owner: "root".into(),
        group: "root".into(),
        size: content.len() as u64,
        sha256: Some(sha(content.as_bytes())),
        content: Some(infra::probe::Content::Text {
            text: content.into(),
        }),
    }
}

fn unit(name: &str, restart_on: &[&str]) -> UnitOut {
    UnitOut {
        name: name.into(),
        enable: true,
        start: true,
        restart_on: restart_on.iter().map(|s| s.to_string()).collect(),
        reload_on: vec![],
        origin: "t.t".into(),
    }
}

#[test]
fn a_running_distribution_service_restarts_when_infra_creates_its_configuration() {
    // mariadb.service was running before infra (the migration case); infra only
    // adds its configuration and a drop-in (the unit is not started by infra).
    let conf = "/etc/mysql/mariadb.conf.d/60-infra-shop.cnf";
    let mut build = HostBuild {
        host: "db1".into(),
        ..HostBuild::default()
    };
    build.files.insert(
        conf.into(),
        file("[mariadb]\nbind-address = 0.0.0.0\n", "0644", false),
    );
    build.units.push(UnitOut {
        enable: false,
        start: false,
        ..unit("mariadb.service", &[conf])
    });
    let mut observed = Observed {
        host: "db1".into(),
        systemd: true,
        ..Observed::default()
    };
    observed.paths.insert(conf.into(), PathState::Absent);
    observed
        .units
        .insert("mariadb.service".into(), active_enabled());
    let p = plan::plan(&build, &observed);
    assert!(
        briefs(&p)
            .iter()
            .any(|b| b.starts_with("restart mariadb.service")),
        "{:?}",
        briefs(&p)
    );
    // Not running: nothing to restart (and infra does not start it).
    observed.units.insert(
        "mariadb.service".into(),
        UnitState {
            active_state: "inactive".into(),
            ..active_enabled()
        },
    );
    let p = plan::plan(&build, &observed);
    assert!(
        !briefs(&p).iter().any(|b| b.contains("mariadb.service")),
        "{:?}",
        briefs(&p)
    );
}

#[test]
fn restarts_follow_restart_on_and_unit_files_reload_systemd() {
    let unit_path = "/etc/systemd/system/web.service";
    let conf = "/etc/web/web.conf";
    let other = "/etc/other.conf";
    let mut build = HostBuild {
        host: "alpha".into(),
        ..HostBuild::default()
    };
    build.files.insert(
        unit_path.into(),
        file("[Service]\nExecStart=/bin/web\n", "0644", false),
    );
    build
        .files
        .insert(conf.into(), file("port=81\n", "0644", false));
    build.files.insert(other.into(), file("o\n", "0644", false));
    build.units = vec![
        unit("web.service", &[unit_path, conf]),
        unit("db.service", &["/etc/db.conf"]),
        unit("cold.service", &[conf]),
    ];
    let mut observed = Observed {
        host: "alpha".into(),
        systemd: true,
        ..Observed::default()
    };
    observed
        .paths
        .insert(unit_path.into(), present("[Service]\nExecStart=/bin/web\n"));
    observed.paths.insert(conf.into(), present("port=80\n"));
    observed.paths.insert(other.into(), present("o\n"));
    observed
        .units
        .insert("web.service".into(), active_enabled());
    observed.units.insert("db.service".into(), active_enabled());
    let mut cold = active_enabled();
    cold.active_state = "inactive".into();
    observed.units.insert("cold.service".into(), cold);
    let p = plan::plan(&build, &observed);
    assert_eq!(
        briefs(&p),
        vec![
            format!("update {conf} content"),
            format!("restart web.service ({conf})"),
            "start cold.service".to_string(),
        ]
    );
    assert_eq!(
        p.summary_line(),
        "alpha: 1 to update, 1 to start, 1 restart"
    );

    // A changed unit file: daemon-reload before the restarts.
    observed.paths.insert(conf.into(), present("port=81\n"));
    observed
        .paths
        .insert(unit_path.into(), present("[Service]\nExecStart=/bin/old\n"));
    let p = plan::plan(&build, &observed);
    assert_eq!(
        briefs(&p),
        vec![
            format!("update {unit_path} content"),
            "daemon-reload".to_string(),
            format!("restart web.service ({unit_path})"),
            "start cold.service".to_string(),
        ]
    );
}

#[test]
fn removed_units_and_files_are_stopped_and_pruned_but_foreign_files_are_not() {
    let build = HostBuild {
        host: "alpha".into(),
        ..HostBuild::default()
    };
    let mf = |c: &str| ManifestFile {
        mode: infra::encode::Mode::parse("0644").expect("a mode"),
        owner: "root".into(),
        group: "root".into(),
        sha256: sha(c.as_bytes()),
        installed_sha256: sha(c.as_bytes()),
        secret: false,
        origin: "t.t".into(),
    };
    let manifest = Manifest {
        releases: Default::default(),
        format: 1,
        host: "alpha".into(),
        generation: 7,
        files: [
            (
                "/etc/systemd/system/old.service".to_string(),
                mf("[Unit]\n"),
            ),
            ("/etc/old.conf".to_string(), mf("old\n")),
        ]
        .into_iter()
        .collect(),
        units: vec![
            ManifestUnit {
                name: "old.service".into(),
                enable: true,
                start: true,
                ..ManifestUnit::default()
            },
            ManifestUnit {
                name: "stopped.service".into(),
                enable: false,
                start: false,
                ..ManifestUnit::default()
            },
        ],
        packages: vec![],
        steps: BTreeMap::new(),
    };
    let mut observed = Observed {
        host: "alpha".into(),
        systemd: true,
        generation: Some(7),
        manifest: Some(manifest),
        ..Observed::default()
    };
    observed.paths.insert(
        "/etc/systemd/system/old.service".into(),
        present("[Unit]\n"),
    );
    observed
        .paths
        .insert("/etc/old.conf".into(), present("edited\n"));
    observed
        .paths
        .insert("/etc/foreign.conf".into(), present("mine\n"));
    observed
        .units
        .insert("old.service".into(), active_enabled());
    let mut stopped = active_enabled();
    stopped.active_state = "inactive".into();
    stopped.unit_file_state = "disabled".into();
    observed.units.insert("stopped.service".into(), stopped);
    let p = plan::plan(&build, &observed);
    assert_eq!(
        briefs(&p),
        vec![
            "delete /etc/old.conf [drift: edited on host since generation 7]".to_string(),
            "delete /etc/systemd/system/old.service".into(),
            "daemon-reload".into(),
            "stop old.service".into(),
            "disable old.service".into(),
        ]
    );
    let text = Plan::new(vec![p]).render_text(false);
    assert!(!text.contains("foreign"), "{text}");
}

#[test]
fn secret_files_compare_by_hash_and_never_show_content() {
    let path = "/etc/db.pass";
    let mut build = HostBuild {
        host: "alpha".into(),
        ..HostBuild::default()
    };
    build
        .files
        .insert(path.into(), file("pw=@@INFRA_SECRET(db)@@\n", "0600", true));
    let mut observed = Observed {
        host: "alpha".into(),
        systemd: true,
        ..Observed::default()
    };
    let on_host = |c: &str| PathState::File {
        mode: "0600".into(),
        owner: "root".into(),
        group: "root".into(),
        size: c.len() as u64,
        sha256: Some(sha(c.as_bytes())),
        content: None,
    };
    observed.paths.insert(path.into(), on_host("pw=old\n"));
    // The caller knows what apply would write (values substituted).
    let mut opts = PlanOptions::default();
    opts.secret_sha256.insert(path.into(), sha(b"pw=new\n"));
    let p = plan::plan_with(&build, &observed, &opts);
    match &p.actions[..] {
        [Action::UpdateFile {
            changes,
            diff,
            note,
            secret,
            ..
        }] => {
            assert_eq!(changes, &["content"]);
            assert!(diff.is_none() && *secret);
            assert_eq!(note.as_deref(), Some("(secret content changed)"));
        }
        other => panic!("{other:?}"),
    }
    opts.secret_sha256.insert(path.into(), sha(b"pw=old\n"));
    assert!(plan::plan_with(&build, &observed, &opts).actions.is_empty());

    // Absent secret file: created without any content shown.
    observed.paths.insert(path.into(), PathState::Absent);
    let p = plan::plan(&build, &observed);
    let text = Plan::new(vec![p.clone()]).render_text(false);
    assert!(
        text.contains("create file /etc/db.pass (0600 root:root, secret)"),
        "{text}"
    );
    assert!(!text.contains("pw="), "{text}");
    assert!(!Plan::new(vec![p]).to_json().contains("pw="));
}

#[test]
fn users_get_the_supplementary_groups_the_build_gives_them() {
    use infra::render::UserOut;
    let build = HostBuild {
        host: "alpha".into(),
        users: vec![
            UserOut {
                name: "infra-share".into(),
                groups: vec!["infra-share".into(), "www-data".into()],
                ..UserOut::default()
            },
            UserOut {
                name: "new".into(),
                groups: vec!["www-data".into()],
                ..UserOut::default()
            },
        ],
        ..HostBuild::default()
    };
    let mut observed = Observed {
        host: "alpha".into(),
        ..Observed::default()
    };
    observed.users.insert("infra-share".into());
    observed
        .user_groups
        .insert("infra-share".into(), ["infra-share".to_string()].into());
    let p = plan::plan(&build, &observed);
    // A new user is created with its groups (the switch passes them to useradd);
    // an existing one gets only what it lacks.
    assert_eq!(
        briefs(&p),
        vec!["groups infra-share www-data".to_string(), "user new".into()]
    );
    observed.user_groups.insert(
        "infra-share".into(),
        ["infra-share".to_string(), "www-data".into()].into(),
    );
    observed.users.insert("new".into());
    observed
        .user_groups
        .insert("new".into(), ["new".to_string(), "www-data".into()].into());
    assert!(briefs(&plan::plan(&build, &observed)).is_empty());
}

#[test]
fn colour_only_when_asked() {
    let mut build = HostBuild {
        host: "alpha".into(),
        ..HostBuild::default()
    };
    build
        .files
        .insert("/etc/x".into(), file("x\n", "0644", false));
    let p = Plan::new(vec![plan::plan(&build, &Observed::default())]);
    assert!(!p.render_text(false).contains('\x1b'));
    assert!(p.render_text(true).contains("\x1b[32m+"));
    let json: serde_json::Value = serde_json::from_str(&p.to_json()).expect("json");
    assert_eq!(json["hosts"][0]["actions"][0]["action"], "create_file");
    assert_eq!(json["summary"]["create"], 1);
}
