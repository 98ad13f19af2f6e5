//! Kernel limits a lab needs, checked before a host is booted: every systemd
//! host takes inotify instances (systemd, journald, logind, dbus: about 8, a
//! database host more) from root's `fs.inotify.max_user_instances`, 128 by
//! default. Past it, hosts die at boot with "Too many open files" after the
//! others started; `up` says so first, with the `sysctl` that fixes it.

use super::LabError;

/// inotify instances and watches one lab host takes, with room to spare.
pub const INSTANCES_PER_HOST: u64 = 12;
pub const WATCHES_PER_HOST: u64 = 2_000;

/// What root uses now: (inotify instances, watches), from /proc.
pub fn inotify_in_use() -> (u64, u64) {
    let (mut instances, mut watches) = (0, 0);
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return (0, 0);
    };
    for p in procs.flatten() {
        let name = p.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let dir = p.path();
        let root = std::fs::read_to_string(dir.join("status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Uid:"))
                    .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
            })
            .unwrap_or(false);
        if !root {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(dir.join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let is_inotify =
                std::fs::read_link(fd.path()).is_ok_and(|t| t.as_os_str() == "anon_inode:inotify");
            if is_inotify {
                instances += 1;
                let info = std::fs::read_to_string(dir.join("fdinfo").join(fd.file_name()))
                    .unwrap_or_default();
                watches += info
                    .lines()
                    .filter(|l| l.starts_with("inotify wd:"))
                    .count() as u64;
            }
        }
    }
    (instances, watches)
}

fn sysctl(name: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/sys/fs/inotify/{name}"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Err when booting `hosts` more hosts would pass root's inotify limits.
pub fn check(hosts: usize) -> Result<(), LabError> {
    if hosts == 0 {
        return Ok(());
    }
    let (used_i, used_w) = inotify_in_use();
    let n = hosts as u64;
    let mut short = Vec::new();
    for (name, used, per) in [
        ("max_user_instances", used_i, INSTANCES_PER_HOST),
        ("max_user_watches", used_w, WATCHES_PER_HOST),
    ] {
        let Some(limit) = sysctl(name) else { continue };
        let need = used + n * per;
        if need > limit {
            // a round figure above what is needed
            let set = need.next_power_of_two().max(1024);
            short.push((name, limit, used, need, set));
        }
    }
    if short.is_empty() {
        return Ok(());
    }
    let what: Vec<String> = short
        .iter()
        .map(|(name, limit, used, need, _)| {
            format!(
                "fs.inotify.{name} is {limit}, {used} in use, {hosts} host(s) need about {need}"
            )
        })
        .collect();
    let fix: Vec<String> = short
        .iter()
        .map(|(name, _, _, _, set)| format!("fs.inotify.{name}={set}"))
        .collect();
    Err(LabError::Limits {
        hosts,
        detail: what.join("; "),
        fix: fix.join(" "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thousand_hosts_pass_the_default_limits_and_none_do_not() {
        assert!(check(0).is_ok());
        let limit = sysctl("max_user_instances").expect("Linux has inotify");
        let hosts = (limit / INSTANCES_PER_HOST + 1) as usize;
        let e = check(hosts).expect_err("more hosts than the limit allows");
        assert_eq!(e.code(), "E0792");
        let msg = e.to_string();
        assert!(
            msg.contains("fs.inotify.max_user_instances is")
                && msg.contains("sysctl -w fs.inotify.max_user_instances=")
                && msg.contains("nothing was booted"),
            "{msg}"
        );
    }
}
