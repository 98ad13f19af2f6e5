//! Transport errors: every variant names the host and says what to check.

use crate::diag::Diag;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("{host}: cannot resolve address `{address}`: {detail}")]
    Resolve {
        host: String,
        address: String,
        detail: String,
    },
    #[error("{host}: cannot connect to {address} port {port}: {detail}")]
    Connect {
        host: String,
        address: String,
        port: u16,
        detail: String,
    },
    #[error("{host}: SSH handshake with {address} port {port} failed: {detail}")]
    Handshake {
        host: String,
        address: String,
        port: u16,
        detail: String,
    },
    #[error(
        "{host}: the host key of {address} port {port} is not in {known_hosts} ({fingerprint})"
    )]
    UnknownHostKey {
        host: String,
        address: String,
        port: u16,
        known_hosts: PathBuf,
        fingerprint: String,
    },
    #[error("{host}: THE HOST KEY OF {address} PORT {port} HAS CHANGED ({fingerprint}); {known_hosts} records a different key: nothing was done")]
    HostKeyChanged {
        host: String,
        address: String,
        port: u16,
        known_hosts: PathBuf,
        fingerprint: String,
    },
    #[error("{host}: cannot use known hosts file {path}: {detail}")]
    KnownHostsFile {
        host: String,
        path: PathBuf,
        detail: String,
    },
    #[error("{host}: authentication as `{user}` failed (tried: {tried})")]
    Auth {
        host: String,
        user: String,
        tried: String,
    },
    #[error(
        "{host}: user {user} on {host} cannot sudo without a password: add NOPASSWD or use root"
    )]
    SudoPassword { host: String, user: String },
    #[error("{host}: user {user} is not root and sudo is not installed on {host}")]
    NoSudo { host: String, user: String },
    #[error("{host}: command did not finish within {seconds:.1} s")]
    CommandTimeout { host: String, seconds: f64 },
    #[error("{host}: SSH channel error: {detail}")]
    Channel { host: String, detail: String },
}

impl TransportError {
    /// Stable diagnostic code (E07xx).
    pub fn code(&self) -> &'static str {
        match self {
            TransportError::Resolve { .. } => "E0701",
            TransportError::Connect { .. } => "E0702",
            TransportError::Handshake { .. } => "E0703",
            TransportError::UnknownHostKey { .. } => "E0704",
            TransportError::HostKeyChanged { .. } => "E0705",
            TransportError::KnownHostsFile { .. } => "E0706",
            TransportError::Auth { .. } => "E0707",
            TransportError::SudoPassword { .. } => "E0708",
            TransportError::NoSudo { .. } => "E0708",
            TransportError::CommandTimeout { .. } => "E0709",
            TransportError::Channel { .. } => "E0710",
        }
    }

    /// The host this error is about (its name in the configuration).
    pub fn host(&self) -> &str {
        match self {
            TransportError::Resolve { host, .. }
            | TransportError::Connect { host, .. }
            | TransportError::Handshake { host, .. }
            | TransportError::UnknownHostKey { host, .. }
            | TransportError::HostKeyChanged { host, .. }
            | TransportError::KnownHostsFile { host, .. }
            | TransportError::Auth { host, .. }
            | TransportError::SudoPassword { host, .. }
            | TransportError::NoSudo { host, .. }
            | TransportError::CommandTimeout { host, .. }
            | TransportError::Channel { host, .. } => host,
        }
    }

    /// What to do about it.
    pub fn help(&self) -> String {
        match self {
            TransportError::Resolve { host, .. } => format!(
                "check the `address` of host {host}; it must be an IP address or a name this machine can resolve"
            ),
            TransportError::Connect { address, port, .. } => format!(
                "check that the machine is up, that sshd listens on {address} port {port}, and that no firewall blocks it (`ssh -p {port} {address}` from here should connect)"
            ),
            TransportError::Handshake { address, port, .. } => format!(
                "something answered on {address} port {port} but did not complete an SSH handshake in time: check that it is sshd and that the `port` in the host's ssh block is right"
            ),
            TransportError::UnknownHostKey {
                address,
                port,
                known_hosts,
                ..
            } => format!(
                "verify the fingerprint with the machine's owner, then pin it with `{}`, or run again with --accept-new-host-keys to record it",
                keyscan_command(address, *port, known_hosts)
            ),
            TransportError::HostKeyChanged {
                address,
                port,
                known_hosts,
                ..
            } => format!(
                "either the machine was reinstalled or someone is intercepting the connection; if the change is expected, remove the old entry for {} from {} and pin the new key",
                known_hosts_name(address, *port),
                known_hosts.display()
            ),
            TransportError::KnownHostsFile { path, .. } => format!(
                "check that {} is a readable OpenSSH known_hosts file (one `host keytype base64key` per line)",
                path.display()
            ),
            TransportError::Auth { host, user, .. } => format!(
                "check that the public key of the key file (or of a key in ssh-agent) is in ~{user}/.ssh/authorized_keys on {host}, and the `user` and `key` of host {host}'s ssh block"
            ),
            TransportError::SudoPassword { user, host } => format!(
                "on {host}, add `{user} ALL=(ALL) NOPASSWD: ALL` to a file in /etc/sudoers.d/, or connect as root"
            ),
            TransportError::NoSudo { host, .. } => {
                format!("install sudo on {host} (apt-get install sudo) or connect as root")
            }
            TransportError::CommandTimeout { host, .. } => format!(
                "the command may still be running on {host}; check the machine's load, or raise the command timeout"
            ),
            TransportError::Channel { host, .. } => format!(
                "the SSH connection to {host} broke; check the network and sshd's log on {host} (journalctl -u ssh)"
            ),
        }
    }

    pub fn to_diag(&self) -> Diag {
        Diag::error(self.code(), self.to_string()).help(self.help())
    }
}

/// How OpenSSH names a host in known_hosts: `addr` on port 22, `[addr]:port` otherwise.
pub fn known_hosts_name(address: &str, port: u16) -> String {
    if port == 22 {
        address.to_string()
    } else {
        format!("[{address}]:{port}")
    }
}

/// The exact command that pins a host's keys.
pub fn keyscan_command(address: &str, port: u16, known_hosts: &std::path::Path) -> String {
    format!(
        "ssh-keyscan -p {port} {} >> {}",
        crate::shell::quote_word(address),
        crate::shell::quote_word(&known_hosts.display().to_string())
    )
}
