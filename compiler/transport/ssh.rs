//! The ssh2 implementation of [`super::Remote`]: [`connect`] (TCP_NODELAY before
//! the handshake, host key check, authentication) and [`Session::run`] (one
//! channel exec, non-blocking with a deadline).

use super::{known_hosts, Output, Target, TransportError};
use crate::shell;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// One authenticated SSH connection to one host.
pub struct Session {
    host: String,
    user: String,
    sess: ssh2::Session,
    fd: RawFd,
    command_timeout: Duration,
    round_trips: usize,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("host", &self.host)
            .field("user", &self.user)
            .field("round_trips", &self.round_trips)
            .finish()
    }
}

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX).max(1)
}

const EAGAIN: i32 = -37; // LIBSSH2_ERROR_EAGAIN
const TIMEOUT: i32 = -9; // LIBSSH2_ERROR_TIMEOUT

fn is_code(e: &ssh2::Error, code: i32) -> bool {
    matches!(e.code(), ssh2::ErrorCode::Session(c) if c == code)
}

/// Connect, verify the host key, authenticate. `dial` opens the TCP connection
/// (injectable: `--lab` dials from inside a network namespace).
pub fn connect(
    target: &Target,
    dial: &dyn Fn(SocketAddr, Duration) -> io::Result<TcpStream>,
) -> Result<Session, TransportError> {
    let host = &target.host;
    let resolve_err = |detail: String| TransportError::Resolve {
        host: host.clone(),
        address: target.address.clone(),
        detail,
    };
    if target.address.is_empty() || target.address.contains('\0') {
        return Err(resolve_err(
            "the address is empty or holds a NUL byte".into(),
        ));
    }
    if target.user.is_empty() || target.user.contains('\0') {
        return Err(TransportError::Auth {
            host: host.clone(),
            user: target.user.clone(),
            tried: "nothing: the user name is empty or holds a NUL byte".into(),
        });
    }
    let addrs: Vec<SocketAddr> = (target.address.as_str(), target.port)
        .to_socket_addrs()
        .map_err(|e| resolve_err(e.to_string()))?
        .collect();
    if addrs.is_empty() {
        return Err(resolve_err("no addresses".into()));
    }
    let connect_err = |detail: String| TransportError::Connect {
        host: host.clone(),
        address: target.address.clone(),
        port: target.port,
        detail,
    };
    let mut last = None;
    let mut stream = None;
    for addr in &addrs {
        match dial(*addr, target.connect_timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let Some(stream) = stream else {
        let detail = match last {
            Some(e) if e.kind() == io::ErrorKind::TimedOut => format!(
                "no answer within {:.1} s",
                target.connect_timeout.as_secs_f64()
            ),
            Some(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                "connection refused (nothing listens on that port)".to_string()
            }
            Some(e) => e.to_string(),
            None => "no address to try".to_string(),
        };
        return Err(connect_err(detail));
    };
    // Before the handshake: every exchange after this is latency-bound.
    stream
        .set_nodelay(true)
        .map_err(|e| connect_err(format!("cannot set TCP_NODELAY: {e}")))?;
    let fd = stream.as_raw_fd();

    let handshake_err = |e: ssh2::Error| TransportError::Handshake {
        host: host.clone(),
        address: target.address.clone(),
        port: target.port,
        detail: if is_code(&e, TIMEOUT) {
            format!(
                "no SSH answer within {:.1} s",
                target.connect_timeout.as_secs_f64()
            )
        } else {
            e.message().to_string()
        },
    };
    let mut sess = ssh2::Session::new().map_err(handshake_err)?;
    sess.set_timeout(millis(target.connect_timeout));
    known_hosts::set_preferences(&sess, target)?;
    sess.set_tcp_stream(stream);
    sess.handshake().map_err(handshake_err)?;
    known_hosts::verify(&sess, target)?;
    authenticate(&sess, target)?;
    sess.set_timeout(0);
    Ok(Session {
        host: target.host.clone(),
        user: target.user.clone(),
        sess,
        fd,
        command_timeout: target.command_timeout,
        round_trips: 0,
    })
}

fn authenticate(sess: &ssh2::Session, target: &Target) -> Result<(), TransportError> {
    let user = target.user.as_str();
    let mut tried: Vec<String> = Vec::new();
    let try_key = |path: &std::path::Path, tried: &mut Vec<String>| {
        if !path.exists() {
            tried.push(format!("key {} (file does not exist)", path.display()));
            return;
        }
        if let Err(e) = sess.userauth_pubkey_file(user, None, path, None) {
            let mut why = e.message().to_string();
            if why.contains("passphrase") || why.contains("Unable to extract") {
                why.push_str("; a passphrase-protected key must be loaded into ssh-agent");
            }
            tried.push(format!("key {} ({why})", path.display()));
        }
    };
    if let Some(key) = &target.key {
        try_key(key, &mut tried);
    } else {
        if std::env::var_os("SSH_AUTH_SOCK").is_some() {
            if let Err(e) = sess.userauth_agent(user) {
                tried.push(format!("ssh-agent ({})", e.message()));
            }
        } else {
            tried.push("ssh-agent (SSH_AUTH_SOCK is not set)".into());
        }
        if !sess.authenticated() {
            if let Some(home) = std::env::var_os("HOME") {
                for name in ["id_ed25519", "id_rsa"] {
                    if sess.authenticated() {
                        break;
                    }
                    let path = PathBuf::from(&home).join(".ssh").join(name);
                    if path.exists() {
                        try_key(&path, &mut tried);
                    }
                }
            }
        }
    }
    if sess.authenticated() {
        Ok(())
    } else {
        Err(TransportError::Auth {
            host: target.host.clone(),
            user: user.to_string(),
            tried: if tried.is_empty() {
                "no key: give one with `key` in the host's ssh block".into()
            } else {
                tried.join("; ")
            },
        })
    }
}

/// Longest script passed as an argument (`sh -c`) when stdin carries data;
/// Linux limits one argument to 128 KiB.
pub const MAX_INLINE_SCRIPT: usize = 120 * 1024;

impl Session {
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    /// Whether TCP_NODELAY is set on the connection's socket (it is set before the
    /// handshake; this reads it back from the kernel).
    pub fn tcp_nodelay(&self) -> io::Result<bool> {
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: valid fd owned by the live session; v and len are valid for writes.
        let rc = unsafe {
            libc::getsockopt(
                self.fd,
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&mut v as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        if rc == 0 {
            Ok(v != 0)
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Number of remote commands run so far (one channel exec each).
    pub fn round_trips(&self) -> usize {
        self.round_trips
    }

    /// The exec request for `script`: `sh -s` reading the script from stdin when
    /// there is no other input, `sh -c 'SCRIPT'` otherwise; through `sudo -n` for
    /// non-root users.
    fn command_for(&self, script: &str, inline: bool) -> String {
        let sh = if inline {
            format!("sh -c {}", shell::quote(script))
        } else {
            "sh -s".to_string()
        };
        if self.user == "root" {
            sh
        } else {
            format!("sudo -n {sh}")
        }
    }

    /// Run a POSIX sh script on the host as root: exactly one channel exec (one
    /// round trip). `stdin` is passed through to the script; when it is empty,
    /// the script itself travels on stdin (no size limit).
    pub fn run(&mut self, script: &str, stdin: &[u8]) -> Result<Output, TransportError> {
        if script.contains('\0') {
            return Err(self.channel_err("the script holds a NUL byte".into()));
        }
        let inline = !stdin.is_empty();
        if inline && script.len() > MAX_INLINE_SCRIPT {
            return Err(self.channel_err(format!(
                "a script of {} bytes with stdin data is larger than {MAX_INLINE_SCRIPT} bytes",
                script.len()
            )));
        }
        let command = self.command_for(script, inline);
        let input = if inline { stdin } else { script.as_bytes() };
        self.round_trips += 1;
        let deadline = Instant::now() + self.command_timeout;
        self.sess.set_blocking(false);
        let result = self.exec(&command, input, deadline);
        self.sess.set_blocking(true);
        let out = result?;
        if self.user != "root" {
            let err = String::from_utf8_lossy(&out.stderr);
            if out.status == 1
                && (err.contains("sudo: a password is required")
                    || err.contains("sudo: a terminal is required"))
            {
                return Err(TransportError::SudoPassword {
                    host: self.host.clone(),
                    user: self.user.clone(),
                });
            }
            if out.status == 127 && err.contains("sudo") && err.contains("not found") {
                return Err(TransportError::NoSudo {
                    host: self.host.clone(),
                    user: self.user.clone(),
                });
            }
        }
        Ok(out)
    }

    fn channel_err(&self, detail: String) -> TransportError {
        TransportError::Channel {
            host: self.host.clone(),
            detail,
        }
    }

    fn ssh_err(&self, what: &str, e: ssh2::Error) -> TransportError {
        self.channel_err(format!("{what}: {}", e.message()))
    }

    /// Wait until the socket is ready in the direction libssh2 is blocked on.
    fn wait(&self, deadline: Instant) -> Result<(), TransportError> {
        let now = Instant::now();
        if now >= deadline {
            return Err(TransportError::CommandTimeout {
                host: self.host.clone(),
                seconds: self.command_timeout.as_secs_f64(),
            });
        }
        let (events, cap) = match self.sess.block_directions() {
            ssh2::BlockDirections::Inbound => (libc::POLLIN, 1000),
            ssh2::BlockDirections::Outbound => (libc::POLLOUT, 1000),
            ssh2::BlockDirections::Both => (libc::POLLIN | libc::POLLOUT, 1000),
            ssh2::BlockDirections::None => (libc::POLLIN, 5),
        };
        let ms = (deadline - now).as_millis().min(cap) as libc::c_int;
        let mut pfd = libc::pollfd {
            fd: self.fd,
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd; the fd is owned by the live ssh2 session.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms.max(1)) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(self.channel_err(format!("poll: {e}")));
            }
        }
        Ok(())
    }

    /// Retry a non-blocking libssh2 call until it stops saying EAGAIN.
    fn again<T>(
        &self,
        what: &str,
        deadline: Instant,
        mut f: impl FnMut() -> Result<T, ssh2::Error>,
    ) -> Result<T, TransportError> {
        loop {
            match f() {
                Ok(v) => return Ok(v),
                Err(e) if is_code(&e, EAGAIN) => self.wait(deadline)?,
                Err(e) => return Err(self.ssh_err(what, e)),
            }
        }
    }

    fn exec(
        &self,
        command: &str,
        input: &[u8],
        deadline: Instant,
    ) -> Result<Output, TransportError> {
        let mut ch = self.again("cannot open a channel", deadline, || {
            self.sess.channel_session()
        })?;
        self.again("exec refused", deadline, || ch.exec(command))?;
        let result = self.pump(&mut ch, input, deadline);
        if result.is_err() {
            // Best effort: tell sshd we are gone; the session may be unusable after.
            let _ = ch.close();
            return result;
        }
        let mut out = result?;
        self.again("closing the channel", deadline, || ch.wait_close())?;
        out.status = ch
            .exit_status()
            .map_err(|e| self.ssh_err("no exit status", e))?;
        out.signal = ch.exit_signal().ok().and_then(|s| s.exit_signal);
        Ok(out)
    }

    fn pump(
        &self,
        ch: &mut ssh2::Channel,
        input: &[u8],
        deadline: Instant,
    ) -> Result<Output, TransportError> {
        let mut out = Output::default();
        let mut written = 0;
        let mut eof_sent = false;
        let (mut out_done, mut err_done) = (false, false);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let mut progress = false;
            if written < input.len() {
                // At most 32 KiB a write: a fault-injection test can stop the
                // client mid-payload (crate::fault).
                let end = input.len().min(written + 32 * 1024);
                match ch.write(&input[written..end]) {
                    Ok(n) => {
                        written += n;
                        progress |= n > 0;
                        crate::fault::progress(written, input.len());
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    // The command stopped reading (exited or closed stdin): the
                    // rest of the input is not wanted; its output still is.
                    Err(_) => written = input.len(),
                }
            } else if !eof_sent {
                match ch.send_eof() {
                    Ok(()) => {
                        eof_sent = true;
                        progress = true;
                    }
                    Err(e) if is_code(&e, EAGAIN) => {}
                    Err(_) => eof_sent = true,
                }
            }
            for (id, done, sink) in [
                (0, &mut out_done, &mut out.stdout),
                (1, &mut err_done, &mut out.stderr),
            ] {
                while !*done {
                    match ch.stream(id).read(&mut buf) {
                        Ok(0) => {
                            if ch.eof() {
                                *done = true;
                            }
                            break;
                        }
                        Ok(n) => {
                            sink.extend_from_slice(&buf[..n]);
                            progress = true;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => {
                            return Err(self.channel_err(format!("reading output: {e}")));
                        }
                    }
                }
            }
            if out_done && err_done {
                return Ok(out);
            }
            if !progress {
                self.wait(deadline)?;
            }
        }
    }
}
