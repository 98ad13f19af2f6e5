//! Every way the lab can fail, each saying what to do about it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(
        "infra lab needs Linux (systemd-nspawn and network namespaces); this machine runs {os}"
    )]
    NotLinux { os: &'static str },

    #[error(
        "infra lab must run as root: it creates network namespaces and boots containers \
         (run it again with sudo)"
    )]
    NotRoot,

    #[error("`{tool}` was not found: install it with `apt-get install {package}`")]
    MissingTool {
        tool: &'static str,
        package: &'static str,
    },

    #[error("invalid lab: {0}")]
    InvalidSpec(String),

    #[error("lab `{name}` is not up: start it with `infra lab up`")]
    NotUp { name: String },

    #[error("lab `{lab}` has no host `{host}` (its hosts: {known})")]
    UnknownHost {
        lab: String,
        host: String,
        known: String,
    },

    #[error("host `{host}` of lab `{lab}` is powered off: start it with `infra lab start {host}`")]
    HostDown { lab: String, host: String },

    #[error(
        "lab `{lab}` is running with a different configuration ({detail}): \
         run `infra lab down` then `infra lab up`"
    )]
    Changed { lab: String, detail: String },

    #[error(
        "building the lab image failed while {step}: {detail}\n  full log: {}\n  \
         fix the cause (network? disk space?) and run `infra lab up` again; \
         a half-built image is never used",
        log.display()
    )]
    Image {
        step: String,
        detail: String,
        log: PathBuf,
    },

    #[error(
        "host `{host}` did not become ready within {secs} s: {detail}\n  boot log: {}\n  \
         look at the log, then `infra lab down` and `infra lab up` to start over",
        log.display()
    )]
    NotReady {
        host: String,
        secs: u64,
        detail: String,
        log: PathBuf,
    },

    #[error(
        "not enough kernel resources to boot {hosts} host(s): {detail}; nothing was booted\n  \
         raise them (as root): `sysctl -w {fix}` (for good: put the same in \
         /etc/sysctl.d/90-infra-lab.conf), then `infra lab up` again"
    )]
    Limits {
        hosts: usize,
        detail: String,
        fix: String,
    },

    #[error("{what} failed: {detail}")]
    Command { what: String, detail: String },

    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl LabError {
    /// A stable code in the E07xx range (E0780–E0799 belong to the lab).
    pub fn code(&self) -> &'static str {
        match self {
            LabError::NotLinux { .. } => "E0780",
            LabError::NotRoot => "E0781",
            LabError::MissingTool { .. } => "E0782",
            LabError::InvalidSpec(_) => "E0783",
            LabError::NotUp { .. } => "E0784",
            LabError::UnknownHost { .. } => "E0785",
            LabError::HostDown { .. } => "E0786",
            LabError::Changed { .. } => "E0787",
            LabError::Image { .. } => "E0788",
            LabError::NotReady { .. } => "E0789",
            LabError::Command { .. } => "E0790",
            LabError::Io { .. } => "E0791",
            LabError::Limits { .. } => "E0792",
        }
    }

    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        LabError::Io {
            what,
            path: path.into(),
            source,
        }
    }
}
