use super::*;
use crate::render::fixtures;
use crate::resolve::model::{Param, Placement, Resource, Role, Type, Value};
use crate::source::FileId;

fn build(model: &Model) -> Build {
    match render(model, &[], &Templates::embedded()) {
        Ok(b) => b,
        Err(d) => panic!("render failed: {d:#?}"),
    }
}

fn with_override(path: &str, text: &str) -> Templates {
    let mut o = BTreeMap::new();
    o.insert(path.to_string(), text.to_string());
    Templates::with_overrides(o)
}

fn errors(model: &Model, templates: &Templates) -> Vec<Diag> {
    match render(model, &[], templates) {
        Ok(_) => panic!("render should fail"),
        Err(d) => d,
    }
}

fn span(n: u32) -> Span {
    Span {
        file: FileId(0),
        start: n,
        end: n + 1,
    }
}

#[test]
fn dump_for_inspection() {
    if let Ok(dir) = std::env::var("INFRA_DUMP_BUILD") {
        for (name, m) in [
            ("accounting", fixtures::accounting()),
            ("three-host", fixtures::three_host()),
            ("minimal", fixtures::minimal()),
        ] {
            write_build(&build(&m), &std::path::Path::new(&dir).join(name)).expect("writes");
        }
    }
}

#[test]
fn two_renders_are_byte_identical() {
    for m in [
        fixtures::accounting(),
        fixtures::three_host(),
        fixtures::minimal(),
    ] {
        let a = build(&m);
        let b = build(&m);
        assert_eq!(a, b);
        let da = tempfile::tempdir().expect("tempdir");
        let db = tempfile::tempdir().expect("tempdir");
        write_build(&a, da.path()).expect("write");
        write_build(&b, db.path()).expect("write");
        let mut fa = Vec::new();
        let mut fb = Vec::new();
        tree(da.path(), da.path(), &mut fa);
        tree(db.path(), db.path(), &mut fb);
        assert!(!fa.is_empty());
        assert_eq!(fa, fb);
    }
}

fn tree(root: &std::path::Path, dir: &std::path::Path, out: &mut Vec<(String, Vec<u8>)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("readable")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            tree(root, &p, out);
        } else {
            let rel = p
                .strip_prefix(root)
                .expect("under root")
                .display()
                .to_string();
            out.push((rel, std::fs::read(&p).expect("read")));
        }
    }
}

#[test]
fn secrets_are_placeholders_in_0600_files() {
    let b = build(&fixtures::accounting());
    let alpha = &b.hosts["alpha"];
    let pgpass = &alpha.files["/etc/infra/postgres/main/pgpass"];
    assert!(pgpass.secret);
    assert_eq!(pgpass.mode, "0600");
    assert_eq!(pgpass.owner, "postgres");
    assert_eq!(pgpass.content, "*:5432:*:repl:@@INFRA_SECRET(pg_repl)@@\n");
    let key = &alpha.files["/etc/infra/share/uploads/id_ed25519"];
    assert!(key.secret && key.mode == "0600");
    assert_eq!(key.content, "@@INFRA_SECRET(share-uploads)@@\n");
    for (name, build) in [
        ("accounting", b.clone()),
        ("three-host", build(&fixtures::three_host())),
    ] {
        for host in build.hosts.values() {
            for (path, f) in &host.files {
                assert_eq!(
                    f.secret,
                    f.content.contains("@@INFRA_SECRET("),
                    "{name}/{}{path}",
                    host.host
                );
                if f.secret {
                    assert_eq!(f.mode, "0600", "{name}/{}{path}", host.host);
                }
            }
        }
    }
}

#[test]
fn a_secret_in_a_file_forces_0600_even_if_declared_otherwise() {
    let mut m = fixtures::minimal();
    m.instances[0].params.push(Param {
        name: "token".into(),
        ty: Type::Secret,
        value: Value::Secret("api_token".into()),
        span: span(1),
    });
    m.instances[0]
        .resources
        .push(fixtures::file("/etc/hello/token", "mine/token.hbs", 0o644));
    let b = render(
        &m,
        &[],
        &with_override("mine/token.hbs", "TOKEN={{token}}\n"),
    )
    .expect("renders");
    let f = &b.hosts["solo"].files["/etc/hello/token"];
    assert!(f.secret);
    assert_eq!(f.mode, "0600");
    assert_eq!(f.content, "TOKEN=@@INFRA_SECRET(api_token)@@\n");
}

#[test]
fn a_missing_variable_is_an_error_naming_template_instance_and_span() {
    let mut m = fixtures::accounting();
    m.instances[0].span = span(100);
    for r in &mut m.instances[0].resources {
        if let ResourceKind::File { path, .. } = &r.kind {
            if path.ends_with("conf.d/infra.conf") {
                r.span = span(7);
            }
        }
    }
    let t = with_override("postgres/infra.conf.hbs", "port = {{portt}}\n");
    let d = errors(&m, &t);
    let e = d.iter().find(|d| d.code == "E0603").expect("E0603");
    assert!(
        e.message.contains("templates/postgres/infra.conf.hbs"),
        "{}",
        e.message
    );
    assert!(e.message.contains("postgres.main"), "{}", e.message);
    assert!(e.message.contains("`portt`"), "{}", e.message);
    assert_eq!(e.primary.as_ref().map(|l| l.span), Some(span(7)));
    assert!(e.secondary.iter().any(|l| l.span == span(100)));
    assert!(
        e.help.as_deref().is_some_and(|h| h.contains("`port`")),
        "{:?}",
        e.help
    );
}

#[test]
fn strict_if_rejects_a_missing_variable() {
    let t = with_override("postgres/infra.conf.hbs", "{{#if prot}}x{{/if}}\n");
    let d = errors(&fixtures::accounting(), &t);
    assert!(
        d.iter()
            .any(|d| d.code == "E0603" && d.message.contains("prot")),
        "{d:#?}"
    );
    let t = with_override("postgres/infra.conf.hbs", "{{#each nope}}x{{/each}}\n");
    let d = errors(&fixtures::accounting(), &t);
    assert!(d.iter().any(|d| d.code == "E0603"), "{d:#?}");
    // a null group is present, not missing: `{{#if group}}` works on a host placement
    let t = with_override(
        "service/run.sh.hbs",
        "#!/bin/sh\n{{#if group}}x{{else}}exec {{run}}{{/if}}\n",
    );
    let b = render(&fixtures::minimal(), &[], &t).expect("renders");
    assert!(b.hosts["solo"].files["/etc/infra/service/hello/run.sh"]
        .content
        .contains("exec /usr/bin/python3"));
}

#[test]
fn missing_and_broken_templates() {
    let mut m = fixtures::minimal();
    m.instances[0]
        .resources
        .push(fixtures::file("/etc/x", "service/run.hbs", 0o644));
    let d = errors(&m, &Templates::embedded());
    let e = d.iter().find(|d| d.code == "E0601").expect("E0601");
    assert!(e.message.contains("service/run.hbs"));
    assert_eq!(
        e.help.as_deref(),
        Some("did you mean `service/run.sh.hbs`?")
    );

    let t = with_override("service/run.sh.hbs", "{{#if run}}unclosed\n");
    let d = errors(&fixtures::minimal(), &t);
    let e = d.iter().find(|d| d.code == "E0602").expect("E0602");
    assert!(e.message.contains("service/run.sh.hbs"));
}

#[test]
fn fail_helper_reports_the_kind_message() {
    let mut m = fixtures::minimal();
    m.instances
        .push(fixtures::job("never", Placement::All, "true", "", 0));
    m.instances[1].span = span(42);
    let d = errors(&m, &Templates::embedded());
    let e = d.iter().find(|d| d.code == "E0604").expect("E0604");
    assert!(
        e.message.starts_with("job.never: set `calendar`"),
        "{}",
        e.message
    );
    assert_eq!(e.primary.as_ref().map(|l| l.span), Some(span(42)));

    let mut m = fixtures::minimal();
    m.instances
        .push(fixtures::job("both", Placement::All, "true", "daily", 60));
    let d = errors(&m, &Templates::embedded());
    assert!(
        d.iter()
            .any(|d| d.code == "E0604" && d.message.contains("not both")),
        "{d:#?}"
    );
}

#[test]
fn printing_an_object_is_an_error() {
    let t = with_override("share/push.timer.hbs", "OnBootSec={{every}}\n");
    let d = errors(&fixtures::accounting(), &t);
    assert!(
        d.iter()
            .any(|d| d.code == "E0607" && d.message.contains("share.uploads")),
        "{d:#?}"
    );
}

#[test]
fn no_html_escaping() {
    let mut m = fixtures::minimal();
    m.instances[0].params[1].value = Value::Str("/bin/x --a='<b>' \"&\"".into());
    let b = build(&m);
    let run = &b.hosts["solo"].files["/etc/infra/service/hello/run.sh"].content;
    assert!(run.contains("exec /bin/x --a='<b>' \"&\""), "{run}");
}

#[test]
fn conflicting_files_are_an_error_identical_ones_merge() {
    // two php_apps on one host: identical drop-ins and default site merge
    let mut m = fixtures::accounting();
    m.instances.push(fixtures::php_app(
        "other",
        Placement::Group(0),
        "/srv/other",
        "",
    ));
    let b = build(&m);
    let alpha = &b.hosts["alpha"];
    assert!(alpha
        .files
        .contains_key("/etc/nginx/sites-enabled/infra-other.conf"));
    let nginx = alpha
        .units
        .iter()
        .find(|u| u.name == "nginx.service")
        .expect("nginx");
    assert!(nginx
        .restart_on
        .contains(&"/etc/nginx/sites-enabled/infra-other.conf".to_string()));

    // two instances writing one path differently
    let mut m = fixtures::minimal();
    let mut r: Resource = fixtures::file(
        "/etc/infra/service/hello/run.sh",
        "service/service.service.hbs",
        0o755,
    );
    r.span = span(9);
    m.instances.push(fixtures::service(
        "hello2",
        Placement::Host(0),
        "/bin/true",
        "root",
        &[],
    ));
    m.instances[1].resources.push(r);
    let d = errors(&m, &Templates::embedded());
    let e = d.iter().find(|d| d.code == "E0605").expect("E0605");
    assert!(
        e.message.contains("service.hello") && e.message.contains("service.hello2"),
        "{}",
        e.message
    );
    assert_eq!(e.primary.as_ref().map(|l| l.span), Some(span(9)));
}

#[test]
fn a_secret_in_a_step_is_an_error() {
    let mut m = fixtures::minimal();
    m.instances[0]
        .resources
        .push(fixtures::step("leak", "echo @@INFRA_SECRET(x)@@", None));
    let d = errors(&m, &Templates::embedded());
    assert!(d.iter().any(|d| d.code == "E0609"), "{d:#?}");
}

#[test]
fn roles_apply_order_and_only() {
    let b = build(&fixtures::accounting());
    let alpha = &b.hosts["alpha"];
    let beta = &b.hosts["beta"];
    assert_eq!(alpha.roles.len(), 1);
    assert_eq!(alpha.roles[0].role, "primary");
    assert_eq!(alpha.roles[0].priority, 150);
    assert_eq!(beta.roles[0].role, "standby");
    assert_eq!(beta.roles[0].priority, 100);
    assert_eq!(alpha.roles[0].apply_order, ["beta", "alpha"]);
    assert_eq!(alpha.roles[0].vip, "192.0.2.10/24");
    // `only` follows the build-time role in the placement group
    let mut m = fixtures::accounting();
    m.instances[0].resources.push(fixtures::only(
        Role::Standby,
        fixtures::step("standby-only", "true", None),
    ));
    m.instances[0].resources.push(fixtures::only(
        Role::Primary,
        fixtures::step("primary-only", "true", None),
    ));
    let b2 = build(&m);
    let steps =
        |h: &str| -> Vec<String> { b2.hosts[h].steps.iter().map(|s| s.name.clone()).collect() };
    assert!(steps("beta").contains(&"standby-only".to_string()));
    assert!(!steps("beta").contains(&"primary-only".to_string()));
    assert!(steps("alpha").contains(&"primary-only".to_string()));
    assert!(!steps("alpha").contains(&"standby-only".to_string()));
    // the postgres bootstrap service is on every member (whoever is active keeps its data)
    let boot = "infra-postgres-main-bootstrap.service";
    assert!(alpha.units.iter().any(|u| u.name == boot && u.start));
    assert!(beta.units.iter().any(|u| u.name == boot && u.start));
    // keepalived: package, service last, reload (not restart) on its conf
    assert!(alpha.packages.contains(&"keepalived".to_string()));
    let last = alpha.units.last().expect("units");
    assert_eq!(last.name, "keepalived.service");
    assert!(last.enable && last.start);
    assert_eq!(last.reload_on, ["/etc/keepalived/keepalived.conf"]);
    assert!(last.restart_on.is_empty());
    // minimal: no groups, no keepalived
    let solo = &build(&fixtures::minimal()).hosts["solo"];
    assert!(solo.roles.is_empty());
    assert!(!solo.files.contains_key("/etc/keepalived/keepalived.conf"));
    assert!(!solo.packages.contains(&"keepalived".to_string()));
}

#[test]
fn keepalived_conf_per_member() {
    let b = build(&fixtures::three_host());
    let web2 = &b.hosts["web2"].files["/etc/keepalived/keepalived.conf"].content;
    // web2 is in both groups: one conf, two instances
    assert_eq!(web2.matches("vrrp_instance ").count(), 2);
    assert_eq!(web2.matches("state BACKUP").count(), 2);
    assert_eq!(web2.matches("    nopreempt\n").count(), 2);
    assert!(!web2.contains("state MASTER"));
    assert!(!web2.contains("vrrp_strict"));
    assert!(web2.contains("virtual_router_id 51") && web2.contains("virtual_router_id 52"));
    assert!(web2.contains("unicast_src_ip 10.0.0.12"));
    assert!(
        !web2.contains("        10.0.0.12\n"),
        "a member is not its own peer"
    );
    assert!(web2.contains("        10.0.0.11\n") && web2.contains("        10.0.0.21\n"));
    assert!(web2.contains("enable_script_security") && web2.contains("script_user root"));
    assert!(web2.contains("notify_master \"/etc/keepalived/infra-notify.sh db master\""));
    let db1 = &b.hosts["db1"];
    assert_eq!(
        db1.files["/etc/keepalived/keepalived.conf"]
            .content
            .matches("vrrp_instance ")
            .count(),
        1
    );
    assert!(db1.files["/etc/keepalived/infra-check-db.sh"]
        .content
        .contains("mariadb-admin --protocol=socket ping"));
    let web1 = &b.hosts["web1"];
    assert!(web1.files["/etc/keepalived/infra-check-web.sh"]
        .content
        .contains("/dev/tcp/127.0.0.1/8080"));
    let notify = &b.hosts["web2"].files["/etc/keepalived/infra-notify.sh"].content;
    assert!(notify.contains("    web) ;;") && notify.contains("    db) ;;"));
    assert!(b.hosts["web2"]
        .units
        .iter()
        .any(|u| u.name == "infra-db-active.target"));
    // mariadb server_id differs per member
    let id = |h: &str| {
        b.hosts[h].files["/etc/mysql/mariadb.conf.d/60-infra-shop.cnf"]
            .content
            .lines()
            .find(|l| l.starts_with("server_id"))
            .map(str::to_string)
    };
    assert_eq!(id("db1").as_deref(), Some("server_id = 1"));
    assert_eq!(id("web2").as_deref(), Some("server_id = 2"));
}

#[test]
fn active_jobs_are_bound_to_the_target() {
    let b = build(&fixtures::accounting());
    let f = &b.hosts["beta"].files;
    let timer = &f["/etc/systemd/system/infra-job-close_month.timer"].content;
    assert!(timer.contains("PartOf=infra-office-active.target"));
    assert!(timer.contains("ConditionPathExists=/run/infra/office/active"));
    assert!(timer.contains("WantedBy=infra-office-active.target"));
    assert!(timer.contains("OnCalendar=*-*-01 02:00:00"));
    assert!(!timer.contains("\nPersistent=true"));
    let service = &f["/etc/systemd/system/infra-job-close_month.service"].content;
    assert!(service.contains("ConditionPathExists=/run/infra/office/active"));
    let backup = &f["/etc/systemd/system/infra-job-backup.timer"].content;
    assert!(backup.contains("Persistent=true") && backup.contains("WantedBy=timers.target"));
    assert!(!backup.contains("PartOf="));
    let t = build(&fixtures::three_host());
    let cleanup = &t.hosts["db1"].files["/etc/systemd/system/infra-job-cleanup.timer"].content;
    assert!(
        cleanup.contains("OnBootSec=1h\nOnUnitActiveSec=1h\n"),
        "{cleanup}"
    );
}

#[test]
fn postgres_replication_pieces() {
    let b = build(&fixtures::accounting());
    let beta = &b.hosts["beta"].files;
    let hba = &beta["/etc/postgresql/15/main/pg_hba.conf"].content;
    assert!(hba
        .contains("host    replication     repl            192.0.2.11/32           scram-sha-256"));
    assert!(!hba.contains("192.0.2.12/32"));
    let conf = &beta["/etc/postgresql/15/main/conf.d/infra.conf"].content;
    assert!(conf.contains("wal_log_hints = on"));
    assert!(conf.contains("primary_slot_name = 'infra_beta'"));
    assert!(conf.contains("passfile=/etc/infra/postgres/main/pgpass"));
    assert!(!conf.contains("INFRA_SECRET"));
    let boot = &beta["/etc/infra/postgres/main/bootstrap.sh"].content;
    assert!(boot.contains("-S infra_beta -X stream -c fast"));
    assert!(boot.contains("host=192.0.2.10 port=5432 user=repl passfile="));
    let promote = &beta["/etc/infra/postgres/main/promote.sh"].content;
    assert!(promote.contains("pg_promote(true, 60)") && promote.contains("pg_is_in_recovery()"));
    let unit = &beta["/etc/systemd/system/infra-postgres-main-promote.service"].content;
    assert!(unit.contains("WantedBy=infra-office-active.target"));
    let alpha = &b.hosts["alpha"].files;
    let ensure = &alpha["/etc/infra/postgres/main/ensure-replication.sh"].content;
    assert!(ensure.contains("pg_create_physical_replication_slot('infra_beta', true)"));
    assert!(
        alpha["/etc/systemd/system/postgresql@15-main.service.d/infra.conf"]
            .content
            .contains("ExecStartPre=/etc/infra/postgres/main/guard.sh")
    );
}

#[test]
fn write_build_layout_and_round_trip() {
    let b = build(&fixtures::accounting());
    let dir = tempfile::tempdir().expect("tempdir");
    write_build(&b, dir.path()).expect("write");
    let manifest =
        std::fs::read_to_string(dir.path().join("alpha/manifest.json")).expect("manifest");
    assert!(manifest.ends_with("}\n"));
    assert!(!manifest.contains("\"content\""));
    let conf = dir.path().join("alpha/etc/keepalived/keepalived.conf");
    assert!(conf.is_file());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("alpha/etc/infra/postgres/main/pgpass"))
        .expect("pgpass")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(read_build(dir.path()).expect("reads"), b);
    // writing again replaces the previous build (stale files go)
    std::fs::write(dir.path().join("alpha/stale"), "x").expect("write");
    write_build(&b, dir.path()).expect("rewrite");
    assert!(!dir.path().join("alpha/stale").exists());
    // a directory that is not a build is never overwritten
    let other = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(other.path().join("alpha")).expect("mkdir");
    std::fs::write(other.path().join("alpha/precious"), "x").expect("write");
    assert!(write_build(&b, other.path()).is_err());
    assert!(other.path().join("alpha/precious").exists());
}

#[test]
fn order_controls_steps_and_units() {
    let m = fixtures::accounting();
    let b = render(&m, &[2, 0], &Templates::embedded()).expect("renders");
    let steps: Vec<&str> = b.hosts["alpha"]
        .steps
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(
        steps,
        [
            "share-uploads-authorized-key",
            "postgres-main-replication",
            "postgres-main-databases"
        ]
    );
    // out-of-range ids are ignored, missing ones appended
    let b2 = render(&m, &[99, 2, 0], &Templates::embedded()).expect("renders");
    assert_eq!(b, b2);
}

#[test]
fn placement_all_and_host() {
    let b = build(&fixtures::accounting());
    for h in ["alpha", "beta"] {
        assert!(b.hosts[h]
            .files
            .contains_key("/etc/infra/job/backup/run.sh"));
    }
    let m = fixtures::minimal();
    assert_eq!(m.instances[0].placement.value, Placement::Host(0));
    assert!(build(&m).hosts["solo"]
        .units
        .iter()
        .any(|u| u.name == "infra-hello.service" && u.enable && u.start));
}
