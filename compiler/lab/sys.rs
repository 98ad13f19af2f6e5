//! Small helpers over processes, /proc and external tools.

use super::LabError;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// PATH given to every tool the lab runs (and to commands run inside hosts).
pub const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Find an executable on PATH (and the sbin directories, which a user's PATH may lack).
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(std::env::split_paths(PATH))
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// An executable or an error naming the Debian package that provides it.
pub fn tool(name: &'static str, package: &'static str) -> Result<PathBuf, LabError> {
    find_tool(name).ok_or(LabError::MissingTool {
        tool: name,
        package,
    })
}

/// A command with a clean, fixed environment.
pub fn command(program: &Path) -> Command {
    let mut c = Command::new(program);
    c.env_clear().env("PATH", PATH).env("LC_ALL", "C.UTF-8");
    c
}

/// Run to completion, capturing output; a non-zero exit is an error quoting stderr.
pub fn run(what: &str, cmd: &mut Command) -> Result<Output, LabError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| LabError::Command {
            what: what.to_string(),
            detail: format!("cannot run {:?}: {e}", cmd.get_program()),
        })?;
    if !out.status.success() {
        return Err(LabError::Command {
            what: what.to_string(),
            detail: format!("{} ({})", tail(&out.stderr, 6), out.status),
        });
    }
    Ok(out)
}

/// The last `n` non-empty lines of some output, joined by ` / `.
pub fn tail(bytes: &[u8], n: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let start = lines.len().saturating_sub(n);
    let t = lines[start..].join(" / ");
    if t.is_empty() {
        "no output".into()
    } else {
        t
    }
}

/// Run with a time limit. `Ok(None)` when it had to be killed.
///
/// The command runs in a process group of its own, and the whole group is
/// killed at the deadline: `nsenter ... systemctl is-system-running --wait`
/// leaves `systemctl` inside the host when only `nsenter` is killed, and that
/// process holds the output pipes open. Reading the output ends by the
/// deadline too (plus a second for what was already written), whatever still
/// holds the pipes.
pub fn run_timeout(cmd: &mut Command, limit: Duration) -> std::io::Result<Option<Output>> {
    use std::os::unix::process::CommandExt;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()?;
    let pgid = child.id();
    let reader = |s: Option<Box<dyn Read + Send>>| {
        let (tx, rx) = mpsc::channel::<Vec<u8>>();
        std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(mut s) = s {
                let _ = s.read_to_end(&mut v);
            }
            let _ = tx.send(v);
        });
        rx
    };
    let out = reader(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err = reader(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break Some(s);
        }
        if Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    if status.is_none() {
        // the command and everything it started in its group (not yet reaped:
        // the group's id is still the command's)
        // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved.
        unsafe {
            libc::kill(-(pgid as libc::pid_t), libc::SIGKILL);
        }
        let _ = child.wait();
    }
    let grace = deadline.max(Instant::now()) + Duration::from_secs(1);
    let collect = |rx: mpsc::Receiver<Vec<u8>>| {
        rx.recv_timeout(grace.saturating_duration_since(Instant::now()))
            .unwrap_or_default()
    };
    let stdout = collect(out);
    let stderr = collect(err);
    Ok(status.map(|status| Output {
        status,
        stdout,
        stderr,
    }))
}

/// Run, sending every output line (stdout and stderr) to `on_line` as it comes.
pub fn run_streaming(
    cmd: &mut Command,
    mut on_line: impl FnMut(&str),
) -> std::io::Result<ExitStatus> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let (tx, rx) = mpsc::channel::<String>();
    let mut readers = Vec::new();
    if let Some(s) = child.stdout.take() {
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || pump(s, tx)));
    }
    if let Some(s) = child.stderr.take() {
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || pump(s, tx)));
    }
    drop(tx);
    for line in rx {
        on_line(&line);
    }
    for r in readers {
        let _ = r.join();
    }
    child.wait()
}

fn pump(r: impl Read, tx: mpsc::Sender<String>) {
    let mut r = BufReader::new(r);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf);
                let line = line.trim_end_matches(['\n', '\r']).to_string();
                if tx.send(line).is_err() {
                    return;
                }
            }
        }
    }
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Alive and not a zombie (a zombie is dead: only its parent has not reaped it yet).
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !matches!(proc_state(&s), Some('Z') | Some('X') | None),
        Err(_) => false,
    }
}

/// State letter and parent pid from /proc/PID/stat (the comm may contain spaces).
fn proc_state(stat: &str) -> Option<char> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().next()?.chars().next()
}

pub fn ppid(pid: u32) -> Option<u32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

pub fn comm(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim_end().to_string())
}

pub fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|&c| c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Every pid on the machine, sorted.
pub fn all_pids() -> Vec<u32> {
    let mut v: Vec<u32> = std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort_unstable();
    v
}

pub fn children(pid: u32) -> Vec<u32> {
    all_pids()
        .into_iter()
        .filter(|&p| ppid(p) == Some(pid))
        .collect()
}

/// Inode of a process's network namespace.
pub fn netns_inode_of_pid(pid: u32) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()?;
    let s = link.to_str()?;
    s.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
}

/// Inode of a namespace file (a bind mount of /proc/PID/ns/net, as `ip netns` makes).
pub fn inode(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.ino())
}

pub fn signal(pid: u32, sig: i32) {
    if pid > 1 && pid != std::process::id() {
        // SAFETY: kill(2) with a positive pid only sends a signal; errors are ignored
        // (the process may already be gone).
        unsafe {
            libc::kill(pid as libc::pid_t, sig);
        }
    }
}

/// Wait until none of `pids` is alive. True when they all died in time.
pub fn wait_dead(pids: &[u32], limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if pids.iter().all(|&p| !pid_alive(p)) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Mount points (as seen by this process) at or below `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut v: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mount)
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect();
    v.sort();
    v.dedup();
    v.reverse();
    v
}

/// mountinfo escapes space, tab, newline and backslash as octal.
pub fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let oct = std::str::from_utf8(oct).unwrap_or("");
                if let Ok(v) = u8::from_str_radix(oct, 8) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `umount -l`; errors are for the caller to notice (the mount is still there).
#[cfg(target_os = "linux")]
pub fn umount_detach(path: &Path) {
    if let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) {
        // SAFETY: umount2 with a valid NUL-terminated path; it only fails or detaches.
        unsafe {
            libc::umount2(c.as_ptr(), libc::MNT_DETACH);
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub fn umount_detach(_path: &Path) {}

/// Unmount (lazily) everything at or below `dir`, then delete it. Never crosses into a
/// mount that could not be removed.
pub fn remove_tree(dir: &Path) -> Result<(), LabError> {
    for m in mounts_under(dir) {
        umount_detach(&m);
    }
    if let Some(m) = mounts_under(dir).first() {
        return Err(LabError::Command {
            what: format!("removing {}", dir.display()),
            detail: format!(
                "{} is still mounted: unmount it (`umount -l {}`) and retry",
                m.display(),
                m.display()
            ),
        });
    }
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LabError::io("remove", dir, e)),
    }
}

/// Write a file atomically (temp file + rename) with a mode.
pub fn write_file(path: &Path, content: &[u8], mode: u32) -> Result<(), LabError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp~");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| LabError::io("write", &tmp, e))?;
    f.write_all(content)
        .map_err(|e| LabError::io("write", &tmp, e))?;
    drop(f);
    set_mode(&tmp, mode)?;
    std::fs::rename(&tmp, path).map_err(|e| LabError::io("write", path, e))
}

pub fn set_mode(path: &Path, mode: u32) -> Result<(), LabError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| LabError::io("chmod", path, e))
}

pub fn mkdir(path: &Path, mode: u32) -> Result<(), LabError> {
    std::fs::create_dir_all(path).map_err(|e| LabError::io("create directory", path, e))?;
    set_mode(path, mode)
}

/// 32 random hex digits (a machine-id).
pub fn random_hex16() -> Result<String, LabError> {
    let mut buf = [0u8; 16];
    let mut f =
        std::fs::File::open("/dev/urandom").map_err(|e| LabError::io("open", "/dev/urandom", e))?;
    f.read_exact(&mut buf)
        .map_err(|e| LabError::io("read", "/dev/urandom", e))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_ends_even_when_a_grandchild_holds_the_pipes() {
        // the shape of `nsenter ... systemctl --wait`: the command waits, and
        // something it started holds stdout open
        let t = Instant::now();
        let out = run_timeout(
            Command::new("sh").args(["-c", "sleep 60 & echo started; sleep 60"]),
            Duration::from_millis(300),
        )
        .expect("runs sh");
        assert!(out.is_none(), "it was killed");
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "it waited {:?} for the pipes",
            t.elapsed()
        );
        // a command that ends in time: its output, whole
        let out = run_timeout(
            Command::new("sh").args(["-c", "echo out; echo err >&2"]),
            Duration::from_secs(10),
        )
        .expect("runs sh")
        .expect("ended in time");
        assert_eq!(
            (out.stdout, out.stderr),
            (b"out\n".to_vec(), b"err\n".to_vec())
        );
    }
}
