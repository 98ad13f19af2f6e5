//! `infra lab ...`: the declared hosts booted locally as systemd-nspawn machines.
//! A thin layer over [`crate::lab`]: resolve the configuration, call, print.

use crate::lab::{self, LabError, LabSpec, Progress};
use clap::Subcommand;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum LabCommand {
    /// Boot every declared host as a local systemd machine (builds the image the first
    /// time, about a minute). Hosts already running are left alone.
    Up {
        /// Configuration directory or file (default: the current directory). The lab is
        /// named after the directory.
        dir: Option<PathBuf>,
        /// Print the lab's status as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Power off every host and remove everything the lab created (also after a crash).
    Down {
        /// Configuration directory (default: the current directory).
        dir: Option<PathBuf>,
        /// The lab's name (default: the current directory's name, as `up` named it).
        #[arg(long)]
        lab: Option<String>,
    },
    /// Show each host's state.
    Status {
        /// Configuration directory (default: the current directory).
        dir: Option<PathBuf>,
        /// The lab's name (default: the current directory's name, as `up` named it).
        #[arg(long)]
        lab: Option<String>,
        /// JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// SSH into a host from inside the lab network (lab key, pinned host keys).
    Ssh {
        /// A declared host.
        host: String,
        /// The lab's name (default: the current directory's name, as `up` named it).
        #[arg(long)]
        lab: Option<String>,
        /// A command to run instead of a shell.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Run a command in a host as root, without SSH: `infra lab exec alpha -- ip addr`.
    Exec {
        /// A declared host.
        host: String,
        /// The lab's name (default: the current directory's name, as `up` named it).
        #[arg(long)]
        lab: Option<String>,
        /// The command and its arguments (after `--`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<String>,
    },
    /// Power a host off abruptly (processes killed, network card gone), for failover drills.
    Kill {
        /// A declared host.
        host: String,
        /// The lab's name (default: the current directory's name, as `up` named it).
        #[arg(long)]
        lab: Option<String>,
    },
    /// Power a host on again after `kill` (its disk is kept).
    Start {
        /// A declared host.
        host: String,
        /// The lab's name (default: the current directory's name, as `up` named it).
        #[arg(long)]
        lab: Option<String>,
    },
}

/// Run one `infra lab` command. `config_dir` is used when the command names no directory
/// (the current directory). Returns the exit code.
pub fn run(cmd: LabCommand, config_dir: &Path) -> i32 {
    let name_of = |lab: &Option<String>, dir: &Option<PathBuf>| {
        lab.clone()
            .unwrap_or_else(|| lab::lab_name(dir.as_deref().unwrap_or(config_dir)))
    };
    let r = match &cmd {
        LabCommand::Up { dir, json } => up(dir.as_deref().unwrap_or(config_dir), *json),
        LabCommand::Down { dir, lab } => {
            let name = name_of(lab, dir);
            lab::down(&name).map(|()| {
                errln!("lab {name}: down");
                0
            })
        }
        LabCommand::Status { dir, lab, json } => lab::status(&name_of(lab, dir)).map(|s| {
            // with a configuration: what `infra status DIR --lab` says of it too
            let report = match dir {
                Some(d) if s.up => match super::status::of_lab(d) {
                    Ok(r) => Some(r),
                    Err(code) => return code,
                },
                _ => None,
            };
            if *json {
                let v = match &report {
                    Some(r) => serde_json::json!({ "lab": s, "status": r }),
                    None => serde_json::to_value(&s).unwrap_or_default(),
                };
                outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                out!("{s}");
                if let Some(r) = &report {
                    out!("\n{}", crate::status::render(r, super::progress::color()));
                }
            }
            report.map(|r| r.exit_code()).unwrap_or(0)
        }),
        LabCommand::Ssh { host, lab, command } => {
            lab::ssh(&name_of(lab, &None), host, command).map(|s| exit_code(&s))
        }
        LabCommand::Exec { host, lab, command } => {
            lab::command(&name_of(lab, &None), host, command).and_then(|mut c| {
                c.status()
                    .map(|s| exit_code(&s))
                    .map_err(|e| LabError::Command {
                        what: format!("running {:?} on {host}", command.join(" ")),
                        detail: e.to_string(),
                    })
            })
        }
        LabCommand::Kill { host, lab } => {
            let name = name_of(lab, &None);
            lab::kill(&name, host).map(|()| {
                errln!("lab {name}: {host} powered off");
                0
            })
        }
        LabCommand::Start { host, lab } => {
            let name = name_of(lab, &None);
            lab::start(&name, host).map(|st| {
                errln!("lab {name}: {host} {st}");
                0
            })
        }
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            errln!("error[{}]: {e}", e.code());
            1
        }
    }
}

fn up(dir: &Path, json: bool) -> Result<i32, LabError> {
    let checked = match super::load(dir) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let mut spec = LabSpec::from_model(&lab::lab_name(dir), &checked.model);
    spec.packages = build_packages(&checked, &crate::resolve::FsLoader);
    let status = lab::up(&spec, &Progress::auto())?;
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&status).unwrap_or_default()
        );
    } else {
        out!("{status}");
        if let Some(h) = status.hosts.first() {
            outln!(
                "ssh: infra lab ssh {}    (any command: infra lab exec {} -- CMD)",
                h.name,
                h.name
            );
        }
    }
    Ok(0)
}

/// Every package the build installs on any host: the lab hosts have no internet, so the
/// image must already have them. The build is rendered as `infra apply` renders it (the
/// repo's `templates/` read through `loader`); when it cannot be rendered (apply will
/// say why), the image's default packages are used.
fn build_packages(c: &crate::Checked, loader: &dyn crate::resolve::Loader) -> Vec<String> {
    match c.render(loader) {
        Ok(build) => {
            let mut v: Vec<String> = build
                .hosts
                .values()
                .flat_map(|h| h.packages.iter().cloned())
                .collect();
            v.sort();
            v.dedup();
            v
        }
        Err(_) => Vec::new(),
    }
}

fn exit_code(s: &ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    s.code()
        .or_else(|| s.signal().map(|n| 128 + n))
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::MemLoader;

    /// A user kind whose file comes from the repo's own `templates/`.
    const APP: &str = r#"
host solo { address = "192.0.2.5" }
kind app(on: host) {
  package "nginx" {}
  file "/etc/app.conf" { template = "app/app.conf.hbs" }
}
app web { on = solo }
"#;

    fn repo(with_template: bool) -> MemLoader {
        let mut loader = MemLoader::default();
        loader
            .files
            .insert("repo/main.infra".into(), APP.as_bytes().to_vec());
        if with_template {
            loader.files.insert(
                "repo/templates/app/app.conf.hbs".into(),
                b"name={{name}}\n".to_vec(),
            );
        }
        loader
    }

    #[test]
    fn lab_packages_come_from_the_build_with_the_repos_templates() {
        let loader = repo(true);
        let checked = crate::check(Path::new("repo"), &loader).expect("checks");
        let packages = build_packages(&checked, &loader);
        assert!(packages.contains(&"nginx".to_string()), "{packages:?}");
        // The same configuration without its template does not render: defaults.
        let loader = repo(false);
        let checked = crate::check(Path::new("repo"), &loader).expect("checks");
        assert!(build_packages(&checked, &loader).is_empty());
    }
}
