//! `infra init DIR`: an annotated starting configuration for two machines, what a
//! person edits first (issue 15). Entry point: [`skeleton`]. Pure: the CLI
//! writes the files.

pub mod cron;

/// `main.infra` of a new configuration: two hosts, a failover group, a job on
/// the VIP holder and, commented out, a database and a share; every line
/// explained. Passes `infra check` and `infra fmt --check` as written (tested).
pub fn skeleton() -> &'static str {
    include_str!("init/skeleton.infra")
}

/// `.gitignore` of a new configuration: a plaintext secrets file is never
/// committed (`infra check` refuses one git would commit, E0744), nor a build.
pub const GITIGNORE: &str = "secrets.env\n/build/\n";

pub mod discover;
pub mod translate;

pub use translate::{Options, Starter};

use crate::diag::{codes, Diag};
use crate::transport::Remote;
use std::path::{Path, PathBuf};

/// `infra init --from HOST`: read the machine behind `remote` (one round trip,
/// read-only) and write its starting configuration, formatted and checked: a
/// configuration that would not pass `infra check` is an error here (a bug of
/// the translation), never written.
pub fn from_host(remote: &mut dyn Remote, opts: &Options) -> Result<Starter, Vec<Diag>> {
    let found = discover::discover(remote).map_err(|d| vec![*d])?;
    starter_checked(&found, opts)
}

/// [`translate::starter`], formatted, then checked as `infra check` would.
pub fn starter_checked(found: &discover::Discovered, opts: &Options) -> Result<Starter, Vec<Diag>> {
    let mut s = translate::starter(found, opts);
    let internal = |what: &str, diags: &[Diag]| {
        let why: Vec<String> = diags
            .iter()
            .map(|d| format!("{} {}", d.code, d.message))
            .collect();
        vec![Diag::error(
            codes::E0762,
            format!("the configuration written for {} {what}: nothing written", remote_name(found)),
        )
        .help(format!(
            "this is a bug of `infra init --from`; please report it with REVIEW.md's sections. It said: {}",
            why.join("; ")
        ))]
    };
    let file = crate::source::FileId(0);
    s.main =
        crate::fmt::format_source(file, &s.main).map_err(|d| internal("does not parse", &d))?;
    let dir = PathBuf::from("/infra-init");
    let loader = crate::resolve::load::MemLoader {
        files: [(dir.join("main.infra"), s.main.clone().into_bytes())]
            .into_iter()
            .collect(),
    };
    match crate::compile::check(Path::new(&dir), &loader) {
        Ok(_) => Ok(s),
        Err(f) => Err(internal("does not check", &f.diags)),
    }
}

fn remote_name(d: &discover::Discovered) -> String {
    if d.hostname.is_empty() {
        "the machine".into()
    } else {
        d.hostname.clone()
    }
}
