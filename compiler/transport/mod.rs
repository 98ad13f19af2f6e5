//! SSH transport (ssh2): one connection per host, one channel exec per round trip.
//!
//! Invariants:
//! - TCP_NODELAY is set on the socket before the SSH handshake (Nagle + delayed
//!   ACK otherwise cost ~40 ms per exchange).
//! - Host keys are verified against a known_hosts file; unknown keys are refused
//!   unless `accept_new`, changed keys are always refused.
//! - [`Session::run`] is exactly one channel exec; [`Session::round_trips`] counts them.
//! - Only POSIX `sh` is started on the host (through `sudo -n` for non-root users).
//! - Every error names the host and says what to check ([`TransportError::help`]).

pub mod error;
pub mod known_hosts;
pub mod local;
pub mod ssh;

pub use error::TransportError;
pub use local::LocalSh;
pub use ssh::{connect, Session, MAX_INLINE_SCRIPT};

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

/// Where and how to reach one host.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The host's name in the configuration (for messages).
    pub host: String,
    /// IP address or DNS name to connect to.
    pub address: String,
    pub port: u16,
    pub user: String,
    /// Private key file. `None`: ssh-agent, then ~/.ssh/id_ed25519, ~/.ssh/id_rsa.
    pub key: Option<PathBuf>,
    /// OpenSSH known_hosts file the host key is checked against.
    pub known_hosts: PathBuf,
    /// Record unknown host keys in `known_hosts` instead of refusing them.
    pub accept_new: bool,
    /// Limit for the TCP connect, and for each step of handshake and authentication.
    pub connect_timeout: Duration,
    /// Limit for one [`Session::run`], from exec to exit.
    pub command_timeout: Duration,
}

impl Target {
    /// A target with defaults: port 22, user root, agent/default keys, strict host
    /// keys, 10 s connect timeout, 10 min command timeout.
    pub fn new(host: &str, address: &str, known_hosts: PathBuf) -> Target {
        Target {
            host: host.to_string(),
            address: address.to_string(),
            port: 22,
            user: "root".to_string(),
            key: None,
            known_hosts,
            accept_new: false,
            connect_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(600),
        }
    }
}

/// What one remote command produced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Exit status; 128 + n-ish values are the shell's; see `signal` for a kill.
    pub status: i32,
    /// Set when the remote command was killed by a signal (e.g. "KILL").
    pub signal: Option<String>,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == 0 && self.signal.is_none()
    }
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).trim_end().to_string()
    }
}

/// The default dialer: a plain TCP connect with a timeout.
pub fn dial_tcp(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    TcpStream::connect_timeout(&addr, timeout.max(Duration::from_millis(1)))
}

/// Where the back end's scripts run: one call of [`Remote::run`] is one round
/// trip (a POSIX sh script run as root on the host, with `stdin`). Implemented by
/// the SSH [`Session`] and by [`LocalSh`] (the local sh, for tests and local use).
/// Probe, switch, confirm and generations only ever see this trait.
pub trait Remote {
    /// The host's name in the configuration (for messages).
    fn host(&self) -> &str;
    /// Run `script` with `stdin`: exactly one round trip.
    fn run(&mut self, script: &str, stdin: &[u8]) -> Result<Output, TransportError>;
    /// Round trips made so far.
    fn round_trips(&self) -> usize;
}

impl Remote for Session {
    fn host(&self) -> &str {
        Session::host(self)
    }
    fn run(&mut self, script: &str, stdin: &[u8]) -> Result<Output, TransportError> {
        Session::run(self, script, stdin)
    }
    fn round_trips(&self) -> usize {
        Session::round_trips(self)
    }
}

/// Run `f` once per item on its own thread (hosts in parallel); results come
/// back in the order of `items`.
pub fn in_parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    in_pool(items, items.len(), f)
}

/// [`in_parallel`] over mutable items.
pub fn in_parallel_mut<T: Send, R: Send>(
    items: &mut [T],
    f: impl Fn(&mut T) -> R + Sync,
) -> Vec<R> {
    let n = items.len();
    in_pool_mut(items, n, f)
}

/// Run `f` once per item on at most `workers` threads (`--parallel`: a fleet of
/// a thousand hosts is not a thousand threads and connections at once); each
/// worker takes the next item when it is done with one. Results in the order
/// of `items`; a panic in `f` is raised again here.
pub fn in_pool<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let refs: Vec<&T> = items.iter().collect();
    pool(refs, workers, f)
}

/// [`in_pool`] over mutable items.
pub fn in_pool_mut<T: Send, R: Send>(
    items: &mut [T],
    workers: usize,
    f: impl Fn(&mut T) -> R + Sync,
) -> Vec<R> {
    let refs: Vec<&mut T> = items.iter_mut().collect();
    pool(refs, workers, f)
}

fn pool<I: Send, R: Send>(items: Vec<I>, workers: usize, f: impl Fn(I) -> R + Sync) -> Vec<R> {
    let n = items.len();
    let workers = workers.clamp(1, n.max(1));
    let queue = std::sync::Mutex::new(items.into_iter().enumerate());
    let next = || queue.lock().unwrap_or_else(|e| e.into_inner()).next();
    let f = &f;
    let next = &next;
    let mut done: Vec<(usize, R)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(move || {
                    let mut out = Vec::new();
                    while let Some((i, item)) = next() {
                        out.push((i, f(item)));
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// Connect to every target in parallel with `dial`; results in target order.
pub fn connect_all(
    targets: &[Target],
    dial: &(dyn Fn(SocketAddr, Duration) -> io::Result<TcpStream> + Sync),
) -> Vec<Result<Session, TransportError>> {
    in_parallel(targets, |t| connect(t, dial))
}

#[cfg(test)]
mod pool_tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn a_pool_runs_at_most_its_workers_at_once_and_keeps_the_order() {
        let items: Vec<usize> = (0..40).collect();
        let running = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let threads = std::sync::Mutex::new(BTreeSet::new());
        let out = in_pool(&items, 4, |&i| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            threads
                .lock()
                .unwrap()
                .insert(format!("{:?}", std::thread::current().id()));
            std::thread::sleep(Duration::from_millis(3));
            running.fetch_sub(1, Ordering::SeqCst);
            i * 2
        });
        assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        let most = most.load(Ordering::SeqCst);
        assert!((1..=4).contains(&most), "{most} at once with 4 workers");
        assert!(threads.lock().unwrap().len() <= 4);
        // more workers than items: one each; none for no items
        assert_eq!(in_pool(&[1, 2], 32, |&i| i + 1), vec![2, 3]);
        assert!(in_pool(&[] as &[u8], 8, |&i| i).is_empty());
        let mut v = vec![1, 2, 3];
        in_pool_mut(&mut v, 2, |i| *i *= 10);
        assert_eq!(v, vec![10, 20, 30]);
    }
}
