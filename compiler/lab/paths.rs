//! Where a lab keeps things.
//!
//! - `/run/infra/lab/<lab>/`: state.json, the lab SSH key pair, known_hosts, and per
//!   host `<host>.pid` and `<host>.log` (gone after a reboot, like the lab itself).
//! - `/var/lib/infra/lab/<lab>/<host>/`: the host's disk (`upper/` and `work/` of its
//!   overlay over the image, `root/` where it is mounted, privately).

use std::path::PathBuf;

pub const RUN_DIR: &str = "/run/infra/lab";
pub const DISK_DIR: &str = "/var/lib/infra/lab";

pub fn state_dir(lab: &str) -> PathBuf {
    PathBuf::from(RUN_DIR).join(lab)
}

pub fn state_file(lab: &str) -> PathBuf {
    state_dir(lab).join("state.json")
}

pub fn key(lab: &str) -> PathBuf {
    state_dir(lab).join("id_ed25519")
}

pub fn known_hosts(lab: &str) -> PathBuf {
    state_dir(lab).join("known_hosts")
}

pub fn pidfile(lab: &str, host: &str) -> PathBuf {
    state_dir(lab).join(format!("{host}.pid"))
}

pub fn logfile(lab: &str, host: &str) -> PathBuf {
    state_dir(lab).join(format!("{host}.log"))
}

pub fn disk_dir(lab: &str) -> PathBuf {
    PathBuf::from(DISK_DIR).join(lab)
}

pub fn host_disk(lab: &str, host: &str) -> PathBuf {
    disk_dir(lab).join(host)
}
