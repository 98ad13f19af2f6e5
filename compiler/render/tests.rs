//! Render tests on Models resolved from real source: the examples, and small
//! configurations written inline.

use super::*;
use crate::resolve::{load::normalize, FsLoader, MemLoader};
use std::path::{Path, PathBuf};

/// An example's model, checked by the driver (resolve, lint, graph).
fn example(name: &str) -> Model {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name);
    checked(&dir, &FsLoader)
}

/// The model of one inline file, checked by the driver.
fn model(src: &str) -> Model {
    let mut loader = MemLoader::default();
    loader
        .files
        .insert(normalize(Path::new("t.infra")), src.as_bytes().to_vec());
    checked(Path::new("t.infra"), &loader)
}

/// The model of one inline file, resolved but not linted: for what render must still
/// catch when `infra check`'s lints are bypassed (a job without a schedule, a version
/// the distribution lacks).
fn unlinted(src: &str) -> Model {
    let mut loader = MemLoader::default();
    loader
        .files
        .insert(normalize(Path::new("t.infra")), src.as_bytes().to_vec());
    match crate::resolve::resolve(Path::new("t.infra"), &loader) {
        Ok(r) => r.model,
        Err(f) => panic!("{}", diag::render(&f.diags, &f.sources, false, 100)),
    }
}

fn checked(path: &Path, loader: &dyn crate::resolve::Loader) -> Model {
    match crate::check(path, loader) {
        Ok(c) => c.model,
        Err(f) => panic!("{}", diag::render(&f.diags, &f.sources, false, 100)),
    }
}

/// The render stage alone, with the embedded templates and no order (model order).
fn build(model: &Model) -> Build {
    match render(model, &[], &Templates::embedded(), &Default::default()) {
        Ok(b) => b,
        Err(d) => panic!("{}", diag::render(&d, &model.sources, false, 100)),
    }
}

fn with_override(path: &str, text: &str) -> Templates {
    let mut o = BTreeMap::new();
    o.insert(path.to_string(), text.to_string());
    Templates::with_overrides(o)
}

fn errors(model: &Model, templates: &Templates) -> Vec<Diag> {
    match render(model, &[], templates, &Default::default()) {
        Ok(_) => panic!("render should fail"),
        Err(d) => d,
    }
}

/// The source text a diagnostic's primary label points at.
fn primary_text<'m>(model: &'m Model, d: &Diag) -> &'m str {
    d.primary
        .as_ref()
        .map(|l| model.sources.slice(l.span))
        .unwrap_or("")
}

const SOLO: &str = r#"
host solo { address = "192.0.2.5" }
service hello { on = solo  run = "/usr/bin/python3 -m http.server 8000"  user = "www-data" }
"#;

#[test]
fn two_renders_are_byte_identical() {
    for name in ["accounting", "three-host", "minimal"] {
        let m = example(name);
        let a = build(&m);
        let b = build(&m);
        assert_eq!(a, b);
        let da = tempfile::tempdir().expect("tempdir");
        let db = tempfile::tempdir().expect("tempdir");
        write_build(&a, da.path()).expect("write");
        write_build(&b, db.path()).expect("write");
        let (fa, fb) = (tree(da.path()), tree(db.path()));
        assert!(!fa.is_empty());
        assert_eq!(fa, fb);
    }
}

fn tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .expect("readable")
            .map(|e| e.expect("entry").path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(root, &p, out);
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
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out
}

#[test]
fn secrets_are_placeholders_in_0600_files() {
    let b = build(&example("accounting"));
    let alpha = &b.hosts["alpha"];
    let pgpass = &alpha.files["/etc/infra/postgres/main/pgpass"];
    assert!(pgpass.secret);
    assert_eq!(pgpass.mode, "0600");
    assert_eq!(pgpass.owner, "postgres");
    assert_eq!(
        pgpass.content,
        "*:5432:*:repl:@@INFRA_SECRET(pg_repl|pgpass)@@\n"
    );
    let key = &alpha.files["/etc/infra/share/uploads/id_ed25519"];
    assert!(key.secret && key.mode == "0600");
    assert_eq!(key.content, "@@INFRA_SECRET(share-uploads-key)@@\n");
    for name in ["accounting", "three-host"] {
        for host in build(&example(name)).hosts.values() {
            for (path, f) in &host.files {
                let label = format!("{name}/{}{path}", host.host);
                assert_eq!(f.secret, f.content.contains("@@INFRA_SECRET("), "{label}");
                if f.secret {
                    assert_eq!(f.mode, "0600", "{label}");
                }
            }
        }
    }
}

#[test]
fn a_secret_in_a_file_forces_0600_even_if_declared_otherwise() {
    let m = model(
        r#"
host solo { address = "192.0.2.5" }
kind token_file(on: host, token: secret) {
  file "/etc/hello/token" { template = "mine/token.hbs" mode = "0644" }
}
token_file t { on = solo  token = secret("api_token") }
"#,
    );
    let b = render(
        &m,
        &[],
        &with_override("mine/token.hbs", "TOKEN={{token}}\n"),
        &Default::default(),
    )
    .expect("renders");
    let f = &b.hosts["solo"].files["/etc/hello/token"];
    assert!(f.secret);
    assert_eq!(f.mode, "0600");
    assert_eq!(f.content, "TOKEN=@@INFRA_SECRET(api_token)@@\n");
}

#[test]
fn a_missing_variable_is_an_error_naming_template_instance_and_span() {
    let m = example("accounting");
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
    // the primary label is the resource in std/postgres, the secondary the instance
    assert!(
        primary_text(&m, e)
            .starts_with("file \"/etc/postgresql/${version}/main/conf.d/infra.conf\""),
        "{}",
        primary_text(&m, e)
    );
    let secondary = e
        .secondary
        .first()
        .map(|l| m.sources.slice(l.span))
        .unwrap_or("");
    assert!(secondary.starts_with("postgres main {"), "{secondary}");
    assert!(
        e.help.as_deref().is_some_and(|h| h.contains("`port`")),
        "{:?}",
        e.help
    );
}

#[test]
fn strict_if_and_each_reject_a_missing_variable() {
    let m = example("accounting");
    let t = with_override("postgres/infra.conf.hbs", "{{#if prot}}x{{/if}}\n");
    assert!(errors(&m, &t)
        .iter()
        .any(|d| d.code == "E0603" && d.message.contains("prot")));
    let t = with_override("postgres/infra.conf.hbs", "{{#each nope}}x{{/each}}\n");
    assert!(errors(&m, &t).iter().any(|d| d.code == "E0603"));
    let t = with_override(
        "postgres/infra.conf.hbs",
        "{{#unless group.nope}}x{{/unless}}\n",
    );
    assert!(errors(&m, &t).iter().any(|d| d.code == "E0603"));
    // a null group is present, not missing: `{{#if group}}` works on a host placement
    let t = with_override(
        "service/run.sh.hbs",
        "#!/bin/sh\n{{#if group}}x{{else}}exec {{{run}}}{{/if}}\n",
    );
    let b = render(&model(SOLO), &[], &t, &Default::default()).expect("renders");
    assert!(b.hosts["solo"].files["/etc/infra/service/hello/run.sh"]
        .content
        .contains("exec /usr/bin/python3"));
}

#[test]
fn missing_and_broken_templates() {
    let m = model(
        r#"
host solo { address = "192.0.2.5" }
kind thing(on: host) { file "/etc/x" { template = "service/run.hbs" } }
thing t { on = solo }
"#,
    );
    let d = errors(&m, &Templates::embedded());
    let e = d.iter().find(|d| d.code == "E0601").expect("E0601");
    assert!(e.message.contains("service/run.hbs"));
    assert_eq!(
        e.help.as_deref(),
        Some("did you mean `service/run.sh.hbs`?")
    );
    assert!(primary_text(&m, e).starts_with("file \"/etc/x\""));

    let t = with_override("service/run.sh.hbs", "{{#if run}}unclosed\n");
    let d = errors(&model(SOLO), &t);
    let e = d.iter().find(|d| d.code == "E0602").expect("E0602");
    assert!(e.message.contains("service/run.sh.hbs"));
}

#[test]
fn fail_helper_reports_the_kind_message() {
    let src = format!("{SOLO}\njob never {{ on = all  run = \"true\" }}\n");
    let m = unlinted(&src);
    let d = errors(&m, &Templates::embedded());
    let e = d.iter().find(|d| d.code == "E0604").expect("E0604");
    assert!(
        e.message.starts_with("job.never: set `calendar`"),
        "{}",
        e.message
    );
    assert!(
        primary_text(&m, e).starts_with("job never {"),
        "{}",
        primary_text(&m, e)
    );

    let src = format!(
        "{SOLO}\njob both {{ on = all  run = \"true\"  calendar = \"daily\"  every = \"1h\" }}\n"
    );
    let d = errors(&unlinted(&src), &Templates::embedded());
    assert!(
        d.iter()
            .any(|d| d.code == "E0604" && d.message.contains("not both")),
        "{d:#?}"
    );
}

#[test]
fn printing_an_object_is_an_error() {
    let t = with_override("share/push.timer.hbs", "OnBootSec={{every}}\n");
    let d = errors(&example("accounting"), &t);
    assert!(
        d.iter()
            .any(|d| d.code == "E0607" && d.message.contains("share.uploads")),
        "{d:#?}"
    );
}

#[test]
fn no_html_escaping() {
    let m = model(
        r#"
host solo { address = "192.0.2.5" }
service hello { on = solo  run = "/bin/x --a='<b>' \"&\"" }
"#,
    );
    let run = &build(&m).hosts["solo"].files["/etc/infra/service/hello/run.sh"].content;
    assert!(run.contains("exec /bin/x --a='<b>' \"&\""), "{run}");
}

#[test]
fn conflicting_files_are_an_error_identical_ones_merge() {
    // two php_apps on one host: the identical drop-ins and default site merge
    let src = r#"
import "std/php"
host solo { address = "192.0.2.5" }
php_app one { on = solo  root = "/srv/one" }
php_app two { on = solo  root = "/srv/two"  server_name = "two.example" }
"#;
    let b = build(&model(src));
    let solo = &b.hosts["solo"];
    assert!(solo
        .files
        .contains_key("/etc/nginx/sites-enabled/infra-two.conf"));
    let nginx = solo
        .units
        .iter()
        .find(|u| u.name == "nginx.service")
        .expect("nginx");
    assert!(nginx
        .restart_on
        .contains(&"/etc/nginx/sites-enabled/infra-two.conf".to_string()));
    assert!(nginx
        .restart_on
        .contains(&"/etc/nginx/sites-enabled/infra-one.conf".to_string()));

    // two instances writing one path differently
    let m = model(&format!(
        "{SOLO}\nkind clash(on: host) {{ file \"/etc/infra/service/hello/run.sh\" {{ content = \"other\" }} }}\nclash c {{ on = solo }}\n"
    ));
    let d = errors(&m, &Templates::embedded());
    let e = d.iter().find(|d| d.code == "E0605").expect("E0605");
    assert!(
        e.message.contains("service.hello") && e.message.contains("clash.c"),
        "{}",
        e.message
    );
    // The label the user can act on is in their own file: the instance.
    assert_eq!(primary_text(&m, e), "c");
    assert!(e
        .secondary
        .iter()
        .any(|l| l.text == "the resource of clash.c"));

    // One directory, two declarations with one owner and group: modes merge.
    let m = model(&format!(
        "{SOLO}\nkind a(on: host) {{ directory \"/srv/d\" {{ mode = \"0755\" owner = \"www-data\" group = \"www-data\" }} }}\nkind b(on: host) {{ directory \"/srv/d\" {{ mode = \"2770\" owner = \"www-data\" group = \"www-data\" }} }}\na x {{ on = solo }}\nb y {{ on = solo }}\n"
    ));
    let b = build(&m);
    let d = b.hosts["solo"]
        .directories
        .iter()
        .find(|d| d.path == "/srv/d")
        .expect("dir");
    assert_eq!(
        (d.mode.to_string().as_str(), d.owner.as_str()),
        ("2775", "www-data")
    );
    // Different owners: E0605 at the user's instance, with what to write.
    let m = model(&format!(
        "{SOLO}\nkind a(on: host) {{ directory \"/srv/d\" {{ owner = \"root\" }} }}\nkind b(on: host) {{ directory \"/srv/d\" {{ owner = \"www-data\" group = \"www-data\" }} }}\na x {{ on = solo }}\nb y {{ on = solo }}\n"
    ));
    let d = errors(&m, &Templates::embedded());
    let e = d.iter().find(|d| d.code == "E0605").expect("E0605");
    assert_eq!(primary_text(&m, e), "y");
    assert!(
        e.help
            .as_deref()
            .unwrap_or("")
            .contains("give both the same owner and group"),
        "{:?}",
        e.help
    );
}

#[test]
fn a_secret_in_a_step_is_an_error() {
    let m = model(
        r#"
host solo { address = "192.0.2.5" }
kind leaky(on: host, token: secret) { step "leak" { run = "echo ${token}" } }
leaky l { on = solo  token = secret("t") }
"#,
    );
    let d = errors(&m, &Templates::embedded());
    let e = d.iter().find(|d| d.code == "E0609").expect("E0609");
    assert!(primary_text(&m, e).starts_with("step \"leak\""));
}

#[test]
fn roles_apply_order_and_only() {
    let b = build(&example("accounting"));
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
    let m = model(
        r#"
host a { address = "192.0.2.1" }
host b { address = "192.0.2.2" }
failover g { members = [a, b]  vip = "192.0.2.10/24"  check = tcp(80) }
kind roles(on: failover) {
  step "p" { run = "true"  only = "primary" }
  step "s" { run = "true"  only = "standby" }
  step "any" { run = "true" }
}
roles r { on = g }
"#,
    );
    let b2 = build(&m);
    let steps =
        |h: &str| -> Vec<String> { b2.hosts[h].steps.iter().map(|s| s.name.clone()).collect() };
    assert_eq!(steps("a"), ["p", "any"]);
    assert_eq!(steps("b"), ["s", "any"]);
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
    let solo = &build(&example("minimal")).hosts["solo"];
    assert!(solo.roles.is_empty());
    assert!(!solo.files.contains_key("/etc/keepalived/keepalived.conf"));
    assert!(!solo.packages.contains(&"keepalived".to_string()));
}

#[test]
fn keepalived_conf_per_member() {
    let b = build(&example("three-host"));
    let web2 = &b.hosts["web2"].files["/etc/keepalived/keepalived.conf"].content;
    // web2 is in both groups: one conf, two instances
    assert_eq!(web2.matches("vrrp_instance ").count(), 2);
    assert_eq!(web2.matches("    state BACKUP\n").count(), 2);
    assert_eq!(web2.matches("    nopreempt\n").count(), 2);
    assert!(!web2.contains("state MASTER"));
    assert!(!web2.contains("vrrp_strict"));
    assert!(!web2.contains("auth_pass"));
    let r = |g: usize| {
        b.hosts["web2"]
            .roles
            .iter()
            .find(|r| r.group == ["db", "web"][g])
            .map(|r| r.priority)
    };
    assert_eq!((r(0), r(1)), (Some(100), Some(100)));
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
    assert!(
        notify.contains("    web) peers='web1=10.0.0.11' ;;")
            && notify.contains("    db) peers='db1=10.0.0.21' ;;"),
        "{notify}"
    );
    assert!(b.hosts["web2"]
        .units
        .iter()
        .any(|u| u.name == "infra-db-active.target"));
    // the router ids of the two groups differ (derived by resolve)
    let id = |g: &str| {
        b.hosts["web2"].files["/etc/keepalived/keepalived.conf"]
            .content
            .split(&format!("vrrp_instance infra_{g} {{"))
            .nth(1)
            .and_then(|s| {
                s.lines()
                    .find(|l| l.contains("virtual_router_id"))
                    .map(str::to_string)
            })
    };
    assert_ne!(id("web"), id("db"));
    // mariadb server_id differs per member
    let server_id = |h: &str| {
        b.hosts[h].files["/etc/mysql/mariadb.conf.d/60-infra-shop.cnf"]
            .content
            .lines()
            .find(|l| l.starts_with("server_id"))
            .map(str::to_string)
    };
    assert_eq!(server_id("db1").as_deref(), Some("server_id = 1"));
    assert_eq!(server_id("web2").as_deref(), Some("server_id = 2"));
    let http = &build(&example("accounting")).hosts["alpha"].files
        ["/etc/keepalived/infra-check-office.sh"]
        .content;
    assert!(
        http.contains("curl -fsS --max-time 2 -o /dev/null http://127.0.0.1/health"),
        "{http}"
    );
}

#[test]
fn active_jobs_are_bound_to_the_target() {
    let b = build(&example("accounting"));
    let f = &b.hosts["beta"].files;
    let timer = &f["/etc/systemd/system/infra-job-close_month.timer"].content;
    assert!(timer.contains("PartOf=infra-office-active.target"));
    assert!(timer.contains("ConditionPathExists=/run/infra/office/active"));
    assert!(timer.contains("WantedBy=infra-office-active.target"));
    assert!(timer.contains("OnCalendar=*-*-01 02:00:00"));
    assert!(!timer.contains("\nPersistent=true"));
    let service = &f["/etc/systemd/system/infra-job-close_month.service"].content;
    assert!(service.contains("ConditionPathExists=/run/infra/office/active"));
    assert!(service.contains("User=www-data"));
    let backup = &f["/etc/systemd/system/infra-job-backup.timer"].content;
    assert!(backup.contains("Persistent=true") && backup.contains("WantedBy=timers.target"));
    assert!(backup.contains("RandomizedDelaySec=15min"));
    assert!(!backup.contains("PartOf="));
    let t = build(&example("three-host"));
    let cleanup = &t.hosts["db1"].files["/etc/systemd/system/infra-job-cleanup.timer"].content;
    assert!(
        cleanup.contains("OnBootSec=1h\nOnUnitActiveSec=1h\n"),
        "{cleanup}"
    );
    let share = &t.hosts["web1"].files["/etc/infra/share/media/push.sh"].content;
    assert!(share.contains("--max-delete=1000"), "{share}");
    assert!(share.contains("push 10.0.0.12 22\n"));
}

#[test]
fn postgres_replication_pieces() {
    let b = build(&example("accounting"));
    let beta = &b.hosts["beta"].files;
    let hba = &beta["/etc/postgresql/15/main/pg_hba.conf"].content;
    assert!(hba
        .contains("host    replication     repl            192.0.2.11/32           scram-sha-256"));
    assert!(!hba.contains("replication     repl            192.0.2.12/32"));
    assert!(hba
        .contains("host    all             all             192.0.2.12/32           scram-sha-256"));
    assert!(hba
        .contains("host    all             all             192.0.2.10/32           scram-sha-256"));
    let conf = &beta["/etc/postgresql/15/main/conf.d/infra.conf"].content;
    assert!(conf.contains("wal_log_hints = on"));
    assert!(conf.contains("primary_slot_name = 'infra_beta'"));
    assert!(conf.contains("passfile=/etc/infra/postgres/main/pgpass"));
    assert!(!conf.contains("INFRA_SECRET"));
    let boot = &beta["/etc/infra/postgres/main/bootstrap.sh"].content;
    assert!(boot.contains("-S infra_beta -X stream -c fast"));
    assert!(boot.contains("vip=192.0.2.10\n"));
    assert!(boot.contains("host=$vip port=5432 user=repl passfile="));
    let promote = &beta["/etc/infra/postgres/main/promote.sh"].content;
    assert!(promote.contains("pg_promote(true, 60)") && promote.contains("pg_is_in_recovery()"));
    let unit = &beta["/etc/systemd/system/infra-postgres-main-promote.service"].content;
    assert!(unit.contains("WantedBy=infra-office-active.target"));
    assert!(unit.contains("ExecStopPost=/etc/infra/postgres/main/demote.sh"));
    let alpha = &b.hosts["alpha"].files;
    let ensure = &alpha["/etc/infra/postgres/main/ensure-replication.sh"].content;
    assert!(ensure.contains("pg_create_physical_replication_slot('infra_beta', true)"));
    assert!(
        alpha["/etc/systemd/system/postgresql@15-main.service.d/infra.conf"]
            .content
            .contains("ExecStartPre=/etc/infra/postgres/main/guard.sh")
    );
    // version 16 changes the package and every path
    let m = unlinted(
        r#"
import "std/postgres"
host a { address = "192.0.2.1" }
host b { address = "192.0.2.2" }
failover g { members = [a, b]  vip = "192.0.2.10/24"  check = tcp(5432) }
postgres pg { failover = g  version = 16  replication_password = secret("r") }
"#,
    );
    let b16 = build(&m);
    assert!(b16.hosts["a"]
        .packages
        .contains(&"postgresql-16".to_string()));
    assert!(b16.hosts["a"]
        .files
        .contains_key("/etc/postgresql/16/main/conf.d/infra.conf"));
    assert!(b16.hosts["a"]
        .units
        .iter()
        .any(|u| u.name == "postgresql@16-main.service"));
}

#[test]
fn write_build_layout_and_round_trip() {
    let b = build(&example("accounting"));
    let dir = tempfile::tempdir().expect("tempdir");
    write_build(&b, dir.path()).expect("write");
    let manifest =
        std::fs::read_to_string(dir.path().join("alpha/manifest.json")).expect("manifest");
    assert!(manifest.ends_with("}\n"));
    assert!(!manifest.contains("\"content\""));
    assert!(dir
        .path()
        .join("alpha/etc/keepalived/keepalived.conf")
        .is_file());
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
    let m = example("accounting");
    let share = m
        .instances
        .iter()
        .position(|i| i.qualified() == "share.uploads")
        .expect("share");
    let pg = m
        .instances
        .iter()
        .position(|i| i.qualified() == "postgres.main")
        .expect("pg");
    let b = render(
        &m,
        &[share, pg],
        &Templates::embedded(),
        &Default::default(),
    )
    .expect("renders");
    let steps: Vec<&str> = b.hosts["alpha"]
        .steps
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(
        steps,
        [
            "share-uploads-authorized-key",
            "postgres-main-service",
            "postgres-main-replication",
            "postgres-main-databases",
            "php_app-accounting-services",
            "postgres_user-accounting"
        ]
    );
    // out-of-range ids are ignored, missing ones appended in model order
    let b2 = render(
        &m,
        &[99, share, pg],
        &Templates::embedded(),
        &Default::default(),
    )
    .expect("renders");
    assert_eq!(b, b2);
}

#[test]
fn placement_all_and_host() {
    let b = build(&example("accounting"));
    for h in ["alpha", "beta"] {
        assert!(b.hosts[h]
            .files
            .contains_key("/etc/infra/job/backup/run.sh"));
    }
    let solo = &build(&example("minimal")).hosts["solo"];
    assert!(solo
        .units
        .iter()
        .any(|u| u.name == "infra-hello.service" && u.enable && u.start));
    assert_eq!(
        solo.units
            .iter()
            .find(|u| u.name == "infra-hello.service")
            .map(|u| u.restart_on.clone()),
        Some(vec![
            "/etc/infra/service/hello/run.sh".to_string(),
            "/etc/systemd/system/infra-hello.service".to_string()
        ])
    );
}

#[test]
fn every_stdlib_template_is_used_by_some_example() {
    let mut used = BTreeSet::new();
    for name in [
        "accounting",
        "three-host",
        "minimal",
        "sync-pair",
        "witness",
    ] {
        let m = example(name);
        for inst in &m.instances {
            for r in &inst.resources {
                let src = match &r.kind {
                    ResourceKind::File { source, .. }
                    | ResourceKind::Unit { source, .. }
                    | ResourceKind::Dropin { source, .. } => source,
                    _ => continue,
                };
                if let Source::Template(p) = src {
                    used.insert(p.clone());
                }
            }
        }
    }
    for p in [
        "keepalived/keepalived.conf.hbs",
        "keepalived/notify.sh.hbs",
        "keepalived/check.sh.hbs",
        "keepalived/eligible.sh.hbs",
        "keepalived/takeover.sh.hbs",
        "keepalived/active.target.hbs",
        "witness/etcd.env.hbs",
        "witness/etcd.service.hbs",
        "witness/lease.sh.hbs",
        "witness/lease.service.hbs",
    ] {
        used.insert(p.to_string());
    }
    let unused: Vec<&str> = crate::stdlib::templates()
        .map(|(p, _)| p)
        .filter(|p| !used.contains(*p))
        .collect();
    assert!(
        unused.is_empty(),
        "templates no example renders (so no validator checks them): {unused:?}"
    );
}

#[test]
fn a_unit_without_template_or_content_is_an_existing_unit() {
    // `unit "nginx.service" { enable = true start = true }` (once resolve accepts it):
    // enable and start the distribution's unit, never write its file
    let mut m = example("accounting");
    let app = m
        .instances
        .iter()
        .position(|i| i.qualified() == "php_app.accounting")
        .expect("app");
    let span = m.instances[app].span;
    m.instances[app]
        .resources
        .push(crate::resolve::model::Resource {
            span,
            only: crate::resolve::model::Role::Any,
            kind: ResourceKind::Unit {
                name: "nginx.service".into(),
                source: Source::Inline(String::new()),
                enable: true,
                start: true,
            },
            element: None,
        });
    let b = build(&m);
    let alpha = &b.hosts["alpha"];
    assert!(!alpha
        .files
        .contains_key("/etc/systemd/system/nginx.service"));
    let nginx = alpha
        .units
        .iter()
        .find(|u| u.name == "nginx.service")
        .expect("nginx");
    assert!(nginx.enable && nginx.start);
    assert!(nginx
        .restart_on
        .contains(&"/etc/nginx/sites-enabled/infra-accounting.conf".to_string()));
}

#[test]
fn shell_templates_quote_what_is_not_a_plain_word() {
    let src = format!(
        "{SOLO}\nkind k(on: host, v: string) {{ file \"/etc/k.sh\" {{ template = \"k.sh.hbs\" mode = \"0755\" }} }}\nk x {{ on = solo  v = \"a b$(touch /tmp/pwned)\" }}\n"
    );
    let m = model(&src);
    // raw: refused, naming the value and the fix
    let d = errors(&m, &with_override("k.sh.hbs", "#!/bin/sh\necho {{v}}\n"));
    let e = d.iter().find(|d| d.code == "E0611").expect("E0611");
    assert!(
        e.message.contains("a b$(touch /tmp/pwned)"),
        "{}",
        e.message
    );
    assert!(e.help.as_deref().unwrap_or("").contains("{{shq value}}"));
    // quoted with shq: one literal word
    let b = render(
        &m,
        &[],
        &with_override("k.sh.hbs", "#!/bin/sh\necho {{shq v}}\n"),
        &Default::default(),
    )
    .expect("renders");
    assert_eq!(
        b.hosts["solo"].files["/etc/k.sh"].content,
        "#!/bin/sh\necho 'a b$(touch /tmp/pwned)'\n"
    );
    // code on purpose: triple braces
    let b = render(
        &m,
        &[],
        &with_override("k.sh.hbs", "#!/bin/sh\n{{{v}}}\n"),
        &Default::default(),
    )
    .expect("renders");
    assert!(b.hosts["solo"].files["/etc/k.sh"]
        .content
        .contains("a b$(touch"));
    // other templates are not shell: no check
    let src = src
        .replace("/etc/k.sh\"", "/etc/k.conf\"")
        .replace("k.sh.hbs", "k.conf.hbs");
    let m = model(&src);
    assert!(render(
        &m,
        &[],
        &with_override("k.conf.hbs", "v={{v}}\n"),
        &Default::default()
    )
    .is_ok());
}

#[test]
fn a_witness_runs_etcd_and_the_members_hold_a_lease() {
    let b = build(&example("witness"));
    let (alpha, nas) = (&b.hosts["alpha"], &b.hosts["nas"]);
    // the witness: one etcd member of the three, nothing of the group
    assert!(nas.files.contains_key("/etc/infra/etcd/etcd.env"));
    assert!(!nas.files.contains_key("/etc/keepalived/keepalived.conf"));
    assert!(nas.roles.is_empty());
    assert!(nas
        .units
        .iter()
        .any(|u| u.name == "infra-etcd.service" && u.enable && u.start));
    assert!(nas
        .steps
        .iter()
        .any(|s| s.name == "witness-distro-etcd-off"));
    assert_eq!(nas.packages, ["etcd-client", "etcd-server"]);
    let env = &nas.files["/etc/infra/etcd/etcd.env"].content;
    assert!(env.contains("ETCD_NAME=nas\n"), "{env}");
    assert!(env.contains("ETCD_INITIAL_CLUSTER=alpha=http://192.0.2.31:2380,beta=http://192.0.2.32:2380,nas=http://192.0.2.33:2380\n"), "{env}");
    // one cluster: the same token (and data directory) on every host
    let token = |h: &HostBuild| {
        h.files["/etc/infra/etcd/etcd.env"]
            .content
            .lines()
            .find(|l| l.starts_with("ETCD_INITIAL_CLUSTER_TOKEN="))
            .map(str::to_string)
    };
    assert_eq!(token(alpha), token(nas));
    // a member: the lease loop, and keepalived tracking its file
    assert!(alpha
        .units
        .iter()
        .any(|u| u.name == "infra-witness-office.service" && u.enable && u.start));
    let conf = &alpha.files["/etc/keepalived/keepalived.conf"].content;
    assert!(conf.contains("track_file infra_witness_office {\n    file \"/run/infra-witness-office\"\n    weight 0\n    init_file 1\n}"), "{conf}");
    let lease = &alpha.files["/etc/keepalived/infra-witness-office.sh"].content;
    assert!(
        lease.contains(
            "endpoints=http://127.0.0.1:2379,http://192.0.2.32:2379,http://192.0.2.33:2379\n"
        ),
        "{lease}"
    );
    // without a witness: neither
    let acc = build(&example("accounting"));
    assert!(!acc.hosts["alpha"]
        .files
        .contains_key("/etc/infra/etcd/etcd.env"));
    assert!(!acc.hosts["alpha"].files["/etc/keepalived/keepalived.conf"]
        .content
        .contains("track_file"));
}

#[test]
fn a_loopback_health_url_is_asked_of_the_peer_at_its_address() {
    use super::failover::peer_url;
    let cases = [
        ("http://127.0.0.1/health", Some("http://192.0.2.12/health")),
        (
            "http://localhost:8080/up?x=1",
            Some("http://192.0.2.12:8080/up?x=1"),
        ),
        ("https://[::1]:8443", Some("https://192.0.2.12:8443")),
        ("http://127.0.0.2", Some("http://192.0.2.12")),
        ("http://10.0.0.5/health", None),
        ("http://app.example/health", None),
        ("not a url", None),
    ];
    let peer = std::net::Ipv4Addr::new(192, 0, 2, 12);
    for (url, want) in cases {
        assert_eq!(peer_url(url, peer).as_deref(), want, "{url}");
    }
}
