//! Hand-built Models for tests of render and the validators, mirroring what
//! `resolve` produces from stdlib/*.infra. Temporary: once resolve lands, tests
//! build their Models from examples/ instead. Not part of the public API.

use crate::resolve::model::*;
use crate::source::{SourceMap, Span};
use std::net::Ipv4Addr;

fn sp() -> Span {
    Span::default()
}

fn s<T>(v: T) -> Spanned<T> {
    Spanned::new(v, sp())
}

pub fn host(name: &str, addr: [u8; 4]) -> Host {
    Host {
        name: s(name.to_string()),
        span: sp(),
        address: s(Ipv4Addr::from(addr)),
        ssh: Ssh::default(),
    }
}

pub fn group(name: &str, members: &[HostId], vip: [u8; 4], check: Check, router_id: u8) -> Group {
    Group {
        name: s(name.to_string()),
        span: sp(),
        members: members.iter().map(|m| s(*m)).collect(),
        vip: s(Cidr {
            addr: Ipv4Addr::from(vip),
            prefix: 24,
        }),
        interface: s("eth0".to_string()),
        check: s(check),
        router_id: s(router_id),
        priorities: s((0..members.len()).map(|i| 150 - 50 * i as u8).collect()),
    }
}

pub fn param(name: &str, ty: Type, value: Value) -> Param {
    Param {
        name: name.to_string(),
        ty,
        value,
        span: sp(),
    }
}

fn res(kind: ResourceKind) -> Resource {
    Resource {
        span: sp(),
        only: Role::Any,
        kind,
    }
}

pub fn only(role: Role, mut r: Resource) -> Resource {
    r.only = role;
    r
}

pub fn package(name: &str) -> Resource {
    res(ResourceKind::Package { name: name.into() })
}

pub fn directory(path: &str, mode: u32) -> Resource {
    res(ResourceKind::Directory {
        path: path.into(),
        mode,
        owner: "root".into(),
        group: "root".into(),
    })
}

pub fn file(path: &str, template: &str, mode: u32) -> Resource {
    file_owned(path, template, mode, "root")
}

pub fn file_owned(path: &str, template: &str, mode: u32, owner: &str) -> Resource {
    res(ResourceKind::File {
        path: path.into(),
        mode,
        owner: owner.into(),
        group: owner.into(),
        source: Source::Template(template.into()),
    })
}

pub fn unit(name: &str, template: &str, enable: bool, start: bool) -> Resource {
    res(ResourceKind::Unit {
        name: name.into(),
        source: Source::Template(template.into()),
        enable,
        start,
    })
}

pub fn dropin(unit: &str, template: &str) -> Resource {
    res(ResourceKind::Dropin {
        unit: unit.into(),
        source: Source::Template(template.into()),
    })
}

pub fn step(name: &str, run: &str, unless: Option<&str>) -> Resource {
    res(ResourceKind::Step {
        name: name.into(),
        run: run.into(),
        unless: unless.map(str::to_string),
    })
}

pub fn instance(
    kind: &str,
    name: &str,
    placement: Placement,
    params: Vec<Param>,
    resources: Vec<Resource>,
) -> Instance {
    Instance {
        kind: s(kind.to_string()),
        name: s(name.to_string()),
        span: sp(),
        placement: s(placement),
        params,
        resources,
        needs: Vec::new(),
    }
}

fn str_(v: &str) -> Value {
    Value::Str(v.into())
}

fn strs(v: &[&str]) -> Value {
    Value::List(v.iter().map(|x| str_(x)).collect())
}

fn place_value(p: Placement) -> Value {
    match p {
        Placement::Host(h) => Value::Host(h),
        Placement::Group(g) => Value::Group(g),
        other => Value::Placement(other),
    }
}

/// `share NAME { from = P  path = PATH  every = EVERY }` (stdlib/prelude.infra).
pub fn share(name: &str, from: Placement, path: &str, every: u64, max_delete: i64) -> Instance {
    let d = format!("/etc/infra/share/{name}");
    instance(
        "share",
        name,
        from,
        vec![
            param("from", Type::Placement, place_value(from)),
            param("path", Type::String, str_(path)),
            param("every", Type::Duration, Value::Duration(every)),
            param("max_delete", Type::Int, Value::Int(max_delete)),
            param("key", Type::Secret, Value::Secret(format!("share-{name}"))),
            param("host_key_checking", Type::String, str_("accept-new")),
        ],
        vec![
            package("rsync"),
            package("openssh-client"),
            directory(&d, 0o700),
            file(&format!("{d}/id_ed25519"), "share/key.hbs", 0o600),
            file(&format!("{d}/push.sh"), "share/push.sh.hbs", 0o755),
            file(
                &format!("{d}/authorize.sh"),
                "share/authorize.sh.hbs",
                0o755,
            ),
            unit(
                &format!("infra-share-{name}.service"),
                "share/push.service.hbs",
                false,
                false,
            ),
            unit(
                &format!("infra-share-{name}.timer"),
                "share/push.timer.hbs",
                true,
                true,
            ),
            step(
                &format!("share-{name}-authorized-key"),
                &format!("{d}/authorize.sh"),
                Some(&format!("{d}/authorize.sh --check")),
            ),
        ],
    )
}

/// `job NAME { on = P  run = RUN  calendar = CAL | every = EVERY }` (stdlib/prelude.infra).
pub fn job(name: &str, on: Placement, run: &str, calendar: &str, every: u64) -> Instance {
    let d = format!("/etc/infra/job/{name}");
    instance(
        "job",
        name,
        on,
        vec![
            param("on", Type::Placement, place_value(on)),
            param("run", Type::String, str_(run)),
            param("calendar", Type::String, str_(calendar)),
            param("every", Type::Duration, Value::Duration(every)),
            param("randomized_delay", Type::Duration, Value::Duration(0)),
            param("user", Type::String, str_("root")),
        ],
        vec![
            directory(&d, 0o755),
            file(&format!("{d}/run.sh"), "job/run.sh.hbs", 0o755),
            unit(
                &format!("infra-job-{name}.service"),
                "job/job.service.hbs",
                false,
                false,
            ),
            unit(
                &format!("infra-job-{name}.timer"),
                "job/job.timer.hbs",
                true,
                true,
            ),
        ],
    )
}

/// `service NAME { on = P  run = RUN  user = USER  writable = [...] }` (stdlib/prelude.infra).
pub fn service(name: &str, on: Placement, run: &str, user: &str, writable: &[&str]) -> Instance {
    let d = format!("/etc/infra/service/{name}");
    instance(
        "service",
        name,
        on,
        vec![
            param("on", Type::Placement, place_value(on)),
            param("run", Type::String, str_(run)),
            param("user", Type::String, str_(user)),
            param(
                "writable",
                Type::List(Box::new(Type::String)),
                strs(writable),
            ),
            param(
                "environment",
                Type::List(Box::new(Type::String)),
                strs(&["APP_ENV=production"]),
            ),
            param("restart_delay", Type::Duration, Value::Duration(5)),
        ],
        vec![
            directory(&d, 0o755),
            file(&format!("{d}/run.sh"), "service/run.sh.hbs", 0o755),
            unit(
                &format!("infra-{name}.service"),
                "service/service.service.hbs",
                true,
                true,
            ),
        ],
    )
}

/// `postgres NAME { failover = G  version = V  databases = [...] }` (stdlib/postgres.infra).
pub fn postgres(name: &str, g: GroupId, version: i64, databases: &[&str]) -> Instance {
    let d = format!("/etc/infra/postgres/{name}");
    let conf = format!("/etc/postgresql/{version}/main");
    instance(
        "postgres",
        name,
        Placement::Group(g),
        vec![
            param("failover", Type::Failover, Value::Group(g)),
            param(
                "replication_password",
                Type::Secret,
                Value::Secret("pg_repl".into()),
            ),
            param("version", Type::Int, Value::Int(version)),
            param(
                "databases",
                Type::List(Box::new(Type::String)),
                strs(databases),
            ),
            param("port", Type::Int, Value::Int(5432)),
            param("listen", Type::String, str_("*")),
            param(
                "clients",
                Type::List(Box::new(Type::Cidr)),
                Value::List(vec![]),
            ),
            param("max_slot_wal_keep_size", Type::String, str_("4GB")),
        ],
        vec![
            package(&format!("postgresql-{version}")),
            package(&format!("postgresql-client-{version}")),
            directory(&d, 0o755),
            file_owned(
                &format!("{conf}/conf.d/infra.conf"),
                "postgres/infra.conf.hbs",
                0o644,
                "postgres",
            ),
            file_owned(
                &format!("{conf}/pg_hba.conf"),
                "postgres/pg_hba.conf.hbs",
                0o640,
                "postgres",
            ),
            file(
                &format!("{d}/replication.password"),
                "postgres/password.hbs",
                0o600,
            ),
            file_owned(
                &format!("{d}/pgpass"),
                "postgres/pgpass.hbs",
                0o600,
                "postgres",
            ),
            file(&format!("{d}/guard.sh"), "postgres/guard.sh.hbs", 0o755),
            dropin(
                &format!("postgresql@{version}-main.service"),
                "postgres/dropin.conf.hbs",
            ),
            file(
                &format!("{d}/ensure-replication.sh"),
                "postgres/ensure-replication.sh.hbs",
                0o755,
            ),
            file(
                &format!("{d}/ensure-databases.sh"),
                "postgres/ensure-databases.sh.hbs",
                0o755,
            ),
            step(
                &format!("postgres-{name}-replication"),
                &format!("{d}/ensure-replication.sh"),
                Some(&format!("{d}/ensure-replication.sh --check")),
            ),
            step(
                &format!("postgres-{name}-databases"),
                &format!("{d}/ensure-databases.sh"),
                Some(&format!("{d}/ensure-databases.sh --check")),
            ),
            file(&format!("{d}/promote.sh"), "postgres/promote.sh.hbs", 0o755),
            file(&format!("{d}/demote.sh"), "postgres/demote.sh.hbs", 0o755),
            unit(
                &format!("infra-postgres-{name}-promote.service"),
                "postgres/promote.service.hbs",
                true,
                false,
            ),
            file(
                &format!("{d}/bootstrap.sh"),
                "postgres/bootstrap.sh.hbs",
                0o755,
            ),
            unit(
                &format!("infra-postgres-{name}-bootstrap.service"),
                "postgres/bootstrap.service.hbs",
                false,
                true,
            ),
        ],
    )
}

/// `mariadb NAME { failover = G  databases = [...] }` (stdlib/mariadb.infra).
pub fn mariadb(name: &str, g: GroupId, databases: &[&str]) -> Instance {
    let d = format!("/etc/infra/mariadb/{name}");
    instance(
        "mariadb",
        name,
        Placement::Group(g),
        vec![
            param("failover", Type::Failover, Value::Group(g)),
            param(
                "replication_password",
                Type::Secret,
                Value::Secret("mariadb_repl".into()),
            ),
            param(
                "databases",
                Type::List(Box::new(Type::String)),
                strs(databases),
            ),
            param("port", Type::Int, Value::Int(3306)),
            param("bind", Type::String, str_("0.0.0.0")),
            param("server_id_base", Type::Int, Value::Int(0)),
        ],
        vec![
            package("mariadb-server"),
            package("mariadb-client"),
            directory(&d, 0o755),
            file(
                &format!("/etc/mysql/mariadb.conf.d/60-infra-{name}.cnf"),
                "mariadb/infra.cnf.hbs",
                0o644,
            ),
            file(
                &format!("{d}/replication.password"),
                "mariadb/password.hbs",
                0o600,
            ),
            file(&format!("{d}/ensure.sh"), "mariadb/ensure.sh.hbs", 0o755),
            step(
                &format!("mariadb-{name}-ensure"),
                &format!("{d}/ensure.sh"),
                Some(&format!("{d}/ensure.sh --check")),
            ),
            file(&format!("{d}/replica.sh"), "mariadb/replica.sh.hbs", 0o755),
            step(
                &format!("mariadb-{name}-replica"),
                &format!("{d}/replica.sh"),
                Some(&format!("{d}/replica.sh --check")),
            ),
            file(&format!("{d}/promote.sh"), "mariadb/promote.sh.hbs", 0o755),
            file(&format!("{d}/demote.sh"), "mariadb/demote.sh.hbs", 0o755),
            unit(
                &format!("infra-mariadb-{name}-promote.service"),
                "mariadb/promote.service.hbs",
                true,
                false,
            ),
            dropin("mariadb.service", "mariadb/dropin.conf.hbs"),
        ],
    )
}

/// `php_app NAME { on = P  root = ROOT }` (stdlib/php.infra).
pub fn php_app(name: &str, on: Placement, root: &str, web_root: &str) -> Instance {
    instance(
        "php_app",
        name,
        on,
        vec![
            param("on", Type::Placement, place_value(on)),
            param("root", Type::String, str_(root)),
            param("web_root", Type::String, str_(web_root)),
            param("server_name", Type::String, str_("_")),
            param("listen", Type::Int, Value::Int(80)),
            param("default_server", Type::Bool, Value::Bool(true)),
            param("php", Type::String, str_("8.2")),
            param("extension", Type::String, str_("pgsql")),
            param("user", Type::String, str_("www-data")),
            param("max_children", Type::Int, Value::Int(10)),
        ],
        vec![
            package("nginx"),
            package("php8.2-fpm"),
            package("php8.2-pgsql"),
            file(
                &format!("/etc/php/8.2/fpm/pool.d/infra-{name}.conf"),
                "php/pool.conf.hbs",
                0o644,
            ),
            file(
                &format!("/etc/nginx/sites-enabled/infra-{name}.conf"),
                "php/vhost.conf.hbs",
                0o644,
            ),
            file(
                "/etc/nginx/sites-enabled/default",
                "php/nginx-default.hbs",
                0o644,
            ),
            dropin("php8.2-fpm.service", "php/restart.conf.hbs"),
            dropin("nginx.service", "php/restart.conf.hbs"),
        ],
    )
}

/// The accounting office: alpha + beta, failover `office`, php_app + postgres +
/// uploads share + monthly close job (active only) + nightly backup job (every host).
pub fn accounting() -> Model {
    let office = Placement::Group(0);
    Model {
        hosts: vec![
            host("alpha", [192, 0, 2, 11]),
            host("beta", [192, 0, 2, 12]),
        ],
        groups: vec![group(
            "office",
            &[0, 1],
            [192, 0, 2, 10],
            Check::Http("http://127.0.0.1/health".into()),
            51,
        )],
        instances: vec![
            postgres("main", 0, 15, &["accounting"]),
            php_app(
                "accounting",
                office,
                "/srv/accounting",
                "/srv/accounting/public",
            ),
            share(
                "uploads",
                Placement::Active(0),
                "/srv/accounting/uploads",
                120,
                0,
            ),
            job(
                "close_month",
                Placement::Active(0),
                "php /srv/accounting/bin/close.php",
                "*-*-01 02:00:00",
                0,
            ),
            job(
                "backup",
                Placement::All,
                "tar -czf /var/backups/accounting-uploads.tar.gz -C /srv/accounting uploads",
                "*-*-* 03:00:00",
                0,
            ),
        ],
        sources: SourceMap::new(),
    }
}

/// Three hosts: web1 + web2 (group `web`, tcp check) run a service; db1 + db2
/// (group `db`, exec check) run MariaDB; an hourly job on every host.
pub fn three_host() -> Model {
    Model {
        hosts: vec![
            host("web1", [10, 0, 0, 11]),
            host("web2", [10, 0, 0, 12]),
            host("db1", [10, 0, 0, 21]),
        ],
        groups: vec![
            group("web", &[0, 1], [10, 0, 0, 10], Check::Tcp(8080), 51),
            group(
                "db",
                &[2, 1],
                [10, 0, 0, 20],
                Check::Exec("mariadb-admin --protocol=socket ping".into()),
                52,
            ),
        ],
        instances: vec![
            mariadb("shop", 1, &["shop", "shop-audit"]),
            service(
                "api",
                Placement::Group(0),
                "/srv/api/bin/api --port 8080",
                "www-data",
                &["/srv/api/var"],
            ),
            service(
                "worker",
                Placement::Active(0),
                "/srv/api/bin/worker",
                "www-data",
                &[],
            ),
            job(
                "cleanup",
                Placement::All,
                "find /tmp -mtime +7 -delete",
                "",
                3600,
            ),
            share("media", Placement::Active(0), "/srv/api/media", 300, 1000),
        ],
        sources: SourceMap::new(),
    }
}

/// One host, one service.
pub fn minimal() -> Model {
    Model {
        hosts: vec![host("solo", [192, 0, 2, 5])],
        groups: vec![],
        instances: vec![service(
            "hello",
            Placement::Host(0),
            "/usr/bin/python3 -m http.server 8000",
            "www-data",
            &[],
        )],
        sources: SourceMap::new(),
    }
}
