//! The standard library, embedded in the binary: kinds written in the infra language
//! (`stdlib/*.infra`, imported as `std/NAME`) and their handlebars templates
//! (`stdlib/templates/...`). A user's repo can override any template by putting a
//! file at the same relative path under its own `templates/` directory
//! ([`Templates`], [`load_overrides`], read through the [`Loader`]).
//!
//! Every file under `stdlib/` is listed in [`FILES`]; a test fails when a file on
//! disk is missing from the table (or the other way round). Documented in
//! docs/stdlib.md.

use crate::diag::{codes, Diag};
use crate::resolve::Loader;
use std::collections::BTreeMap;
use std::path::Path;

/// The module imported into every file without an `import`: `share`, `job`, `service`.
pub const PRELUDE: &str = "prelude";

macro_rules! embed {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_str!(concat!("../stdlib/", $path)))),*]
    };
}

/// Every file under `stdlib/`, by path relative to `stdlib/`, sorted.
pub static FILES: &[(&str, &str)] = embed![
    "mariadb.infra",
    "php.infra",
    "postgres.infra",
    "prelude.infra",
    "templates/alert/alert.sh.hbs",
    "templates/alert/failed@.service.hbs",
    "templates/alert/msmtprc.hbs",
    "templates/alert/notify.sh.hbs",
    "templates/alert/onfailure.conf.hbs",
    "templates/alert/send.service.hbs",
    "templates/alert/send.sh.hbs",
    "templates/alert/send.timer.hbs",
    "templates/alert/smtp.password.hbs",
    "templates/alert/watch.service.hbs",
    "templates/alert/watch.sh.hbs",
    "templates/alert/watch.timer.hbs",
    "templates/db/connection.hbs",
    "templates/job/job.service.hbs",
    "templates/job/job.timer.hbs",
    "templates/job/run.sh.hbs",
    "templates/keepalived/active.target.hbs",
    "templates/keepalived/check.sh.hbs",
    "templates/keepalived/eligible.sh.hbs",
    "templates/keepalived/keepalived.conf.hbs",
    "templates/keepalived/notify.sh.hbs",
    "templates/keepalived/takeover.sh.hbs",
    "templates/mariadb-backup/archive.timer.hbs",
    "templates/mariadb-backup/backup.sh.hbs",
    "templates/mariadb-backup/backup@.service.hbs",
    "templates/mariadb-backup/before-reset.sh.hbs",
    "templates/mariadb-backup/full.timer.hbs",
    "templates/mariadb-backup/incr.timer.hbs",
    "templates/mariadb-backup/restore.sh.hbs",
    "templates/mariadb-backup/watch.service.hbs",
    "templates/mariadb-backup/watch.timer.hbs",
    "templates/mariadb/demote.sh.hbs",
    "templates/mariadb/dropin.conf.hbs",
    "templates/mariadb/ensure-user.sh.hbs",
    "templates/mariadb/ensure.sh.hbs",
    "templates/mariadb/infra.cnf.hbs",
    "templates/mariadb/password.hbs",
    "templates/mariadb/promote.service.hbs",
    "templates/mariadb/promote.sh.hbs",
    "templates/mariadb/replica.sh.hbs",
    "templates/mariadb/takeover.sh.hbs",
    "templates/pgbackrest/archive-push.hbs",
    "templates/pgbackrest/archive.conf.hbs",
    "templates/pgbackrest/authorize.sh.hbs",
    "templates/pgbackrest/backup.sh.hbs",
    "templates/pgbackrest/backup@.service.hbs",
    "templates/pgbackrest/full.timer.hbs",
    "templates/pgbackrest/incr.timer.hbs",
    "templates/pgbackrest/pg.conf.hbs",
    "templates/pgbackrest/push.conf.hbs",
    "templates/pgbackrest/remote.conf.hbs",
    "templates/pgbackrest/remote.sh.hbs",
    "templates/pgbackrest/repo.conf.hbs",
    "templates/pgbackrest/restore.sh.hbs",
    "templates/pgbackrest/ssh.sh.hbs",
    "templates/pgbackrest/watch.service.hbs",
    "templates/pgbackrest/watch.timer.hbs",
    "templates/php/check.sh.hbs",
    "templates/php/global.conf.hbs",
    "templates/php/pool.conf.hbs",
    "templates/php/restart.conf.hbs",
    "templates/php/vhost.conf.hbs",
    "templates/postgres/bootstrap.service.hbs",
    "templates/postgres/bootstrap.sh.hbs",
    "templates/postgres/check.sh.hbs",
    "templates/postgres/demote.sh.hbs",
    "templates/postgres/dropin.conf.hbs",
    "templates/postgres/eligible.sh.hbs",
    "templates/postgres/ensure-databases.sh.hbs",
    "templates/postgres/ensure-replication.sh.hbs",
    "templates/postgres/ensure-user.sh.hbs",
    "templates/postgres/fence.sh.hbs",
    "templates/postgres/guard.sh.hbs",
    "templates/postgres/infra.conf.hbs",
    "templates/postgres/password.hbs",
    "templates/postgres/pg_hba.conf.hbs",
    "templates/postgres/pgbackrest-archive.sh.hbs",
    "templates/postgres/pgpass.hbs",
    "templates/postgres/primary-here.sh.hbs",
    "templates/postgres/promote.service.hbs",
    "templates/postgres/promote.sh.hbs",
    "templates/postgres/start.sh.hbs",
    "templates/postgres/sync.service.hbs",
    "templates/postgres/sync.sh.hbs",
    "templates/postgres/takeover.sh.hbs",
    "templates/postgres/user.password.hbs",
    "templates/postgres/user.pgpass.hbs",
    "templates/postgres/watch.service.hbs",
    "templates/postgres/watch.sh.hbs",
    "templates/postgres/watch.timer.hbs",
    "templates/service/connection.hbs",
    "templates/service/run.sh.hbs",
    "templates/service/service.service.hbs",
    "templates/share/authorize.sh.hbs",
    "templates/share/key.hbs",
    "templates/share/push.service.hbs",
    "templates/share/push.sh.hbs",
    "templates/share/push.timer.hbs",
    "templates/share/snapshot.service.hbs",
    "templates/share/snapshot.sh.hbs",
    "templates/share/snapshot.timer.hbs",
    "templates/witness/etcd.env.hbs",
    "templates/witness/etcd.service.hbs",
    "templates/witness/lease.service.hbs",
    "templates/witness/lease.sh.hbs",
];

const TEMPLATES_DIR: &str = "templates/";

/// The `.infra` source of `std/NAME` (`module("postgres")` is `stdlib/postgres.infra`).
pub fn module(name: &str) -> Option<&'static str> {
    modules().find(|(n, _)| *n == name).map(|(_, text)| text)
}

/// Every module as `(name, source)`, sorted by name (the prelude included).
pub fn modules() -> impl Iterator<Item = (&'static str, &'static str)> {
    FILES.iter().filter_map(|(path, text)| {
        if path.contains('/') {
            None
        } else {
            path.strip_suffix(".infra").map(|name| (name, *text))
        }
    })
}

/// An embedded template by path relative to `stdlib/templates/`
/// (`template("postgres/infra.conf.hbs")`).
pub fn template(path: &str) -> Option<&'static str> {
    FILES
        .iter()
        .find(|(p, _)| p.strip_prefix(TEMPLATES_DIR) == Some(path))
        .map(|(_, text)| *text)
}

/// Every embedded template as `(path relative to stdlib/templates/, text)`, sorted.
pub fn templates() -> impl Iterator<Item = (&'static str, &'static str)> {
    FILES
        .iter()
        .filter_map(|(p, text)| p.strip_prefix(TEMPLATES_DIR).map(|p| (p, *text)))
}

/// Where a template's text came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateOrigin {
    /// Embedded from `stdlib/templates/`.
    Stdlib,
    /// The user's `templates/` directory.
    User,
}

/// The templates a build uses: the user's overrides (from their repo's
/// `templates/` directory) layered over the embedded ones. Pure: the overrides are
/// read through a [`Loader`] ([`load_overrides`]) and passed in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Templates {
    overrides: BTreeMap<String, String>,
}

impl Templates {
    /// Only the embedded templates.
    pub fn embedded() -> Templates {
        Templates::default()
    }

    /// The embedded templates with `overrides` (path relative to `templates/` → text)
    /// taking precedence. An override may also add a template the stdlib does not have
    /// (for the user's own kinds).
    pub fn with_overrides(overrides: BTreeMap<String, String>) -> Templates {
        Templates { overrides }
    }

    /// The text of a template and where it came from.
    pub fn get(&self, path: &str) -> Option<(&str, TemplateOrigin)> {
        if let Some(text) = self.overrides.get(path) {
            return Some((text.as_str(), TemplateOrigin::User));
        }
        template(path).map(|t| (t, TemplateOrigin::Stdlib))
    }

    /// Every available path (embedded and overrides), sorted, for "did you mean".
    pub fn paths(&self) -> Vec<&str> {
        let mut paths: Vec<&str> = templates()
            .map(|(p, _)| p)
            .chain(self.overrides.keys().map(String::as_str))
            .collect();
        paths.sort_unstable();
        paths.dedup();
        paths
    }

    /// The user's overrides, by path.
    pub fn overrides(&self) -> &BTreeMap<String, String> {
        &self.overrides
    }
}

/// Read every file under `dir` (the repo's `templates/`) into an override map keyed
/// by its path relative to `dir`, with `/` separators, through `loader`. A missing
/// directory is no overrides. Errors name the file (E0608).
pub fn load_overrides(
    loader: &dyn Loader,
    dir: &Path,
) -> Result<BTreeMap<String, String>, Vec<Diag>> {
    match loader.read_tree(dir) {
        Ok(files) => Ok(files.into_iter().collect()),
        Err((path, e)) => Err(vec![Diag::error(
            codes::E0608,
            format!("cannot read template {}: {e}", path.display()),
        )
        .help("templates/ must hold readable UTF-8 handlebars files")]),
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests read the tree and write temp dirs
mod tests {
    use super::*;
    use crate::resolve::{FsLoader, MemLoader};
    use std::path::PathBuf;

    fn on_disk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("stdlib/ is readable")
            .map(|e| e.expect("entry").path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                on_disk(&p, root, out);
            } else {
                let rel = p.strip_prefix(root).expect("under root");
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }

    #[test]
    fn table_lists_every_file_on_disk() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("stdlib");
        let mut disk = Vec::new();
        on_disk(&root, &root, &mut disk);
        disk.sort();
        let table: Vec<String> = FILES.iter().map(|(p, _)| p.to_string()).collect();
        assert_eq!(
            table, disk,
            "compiler/stdlib.rs FILES must list every file under stdlib/, sorted"
        );
    }

    #[test]
    fn modules_and_templates() {
        assert!(module(PRELUDE).is_some_and(|m| m.contains("kind share(")));
        assert!(module("postgres").is_some_and(|m| m.contains("kind postgres(")));
        assert!(module("nope").is_none());
        assert!(template("postgres/infra.conf.hbs").is_some());
        assert!(template("postgres.infra").is_none());
        let names: Vec<&str> = modules().map(|(n, _)| n).collect();
        assert_eq!(names, ["mariadb", "php", "postgres", "prelude"]);
    }

    #[test]
    fn overrides_take_precedence() {
        let mut o = BTreeMap::new();
        o.insert("postgres/infra.conf.hbs".to_string(), "mine".to_string());
        o.insert("mine/x.hbs".to_string(), "x".to_string());
        let t = Templates::with_overrides(o);
        assert_eq!(
            t.get("postgres/infra.conf.hbs"),
            Some(("mine", TemplateOrigin::User))
        );
        assert_eq!(t.get("mine/x.hbs"), Some(("x", TemplateOrigin::User)));
        assert!(matches!(
            t.get("share/key.hbs"),
            Some((_, TemplateOrigin::Stdlib))
        ));
        assert!(t.get("missing.hbs").is_none());
        assert!(t.paths().contains(&"mine/x.hbs"));
    }

    #[test]
    fn load_overrides_reads_a_tree() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("postgres")).expect("mkdir");
        std::fs::write(dir.path().join("postgres/infra.conf.hbs"), "x").expect("write");
        let o = load_overrides(&FsLoader, dir.path()).expect("loads");
        assert_eq!(
            o.get("postgres/infra.conf.hbs").map(String::as_str),
            Some("x")
        );
        assert!(load_overrides(&FsLoader, &dir.path().join("absent"))
            .expect("ok")
            .is_empty());
    }

    #[test]
    fn load_overrides_from_memory() {
        let mut loader = MemLoader::default();
        for (path, text) in [
            ("repo/main.infra", "host a { address = \"192.0.2.1\" }"),
            ("repo/templates/postgres/infra.conf.hbs", "x"),
            ("repo/templates/mine/a/b.hbs", "b"),
            ("repo/templates-old/ignored.hbs", "no"),
        ] {
            loader
                .files
                .insert(PathBuf::from(path), text.as_bytes().to_vec());
        }
        let o = load_overrides(&loader, Path::new("repo/./templates")).expect("loads");
        let keys: Vec<&str> = o.keys().map(String::as_str).collect();
        assert_eq!(keys, ["mine/a/b.hbs", "postgres/infra.conf.hbs"]);
        assert!(load_overrides(&loader, Path::new("elsewhere/templates"))
            .expect("ok")
            .is_empty());
        loader
            .files
            .insert(PathBuf::from("repo/templates/bad.hbs"), vec![0xff]);
        let d = load_overrides(&loader, Path::new("repo/templates")).expect_err("not UTF-8");
        assert_eq!(d[0].code, "E0608");
        assert!(
            d[0].message.contains("repo/templates/bad.hbs"),
            "{}",
            d[0].message
        );
    }
}
