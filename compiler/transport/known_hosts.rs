//! Host key verification against an OpenSSH known_hosts file, with ssh2's
//! `KnownHosts`. On by default: an unknown key is refused with the exact command
//! that pins it; a changed key is refused and nothing proceeds; with
//! `accept_new`, an unknown key is appended to the file.

use super::error::{known_hosts_name, TransportError};
use super::Target;
use crate::shell::base64_encode;
use sha2::{Digest, Sha256};
use ssh2::{CheckResult, KnownHostFileKind};
use std::io::Write;
use std::path::Path;

/// OpenSSH-style fingerprint of a raw host key blob: `SHA256:<base64, no padding>`.
pub fn fingerprint(key: &[u8]) -> String {
    let digest = Sha256::digest(key);
    let b64 = base64_encode(&digest);
    format!("SHA256:{}", b64.trim_end_matches('='))
}

/// The key type named inside an SSH key blob (`ssh-ed25519`, ...).
pub fn key_type_name(blob: &[u8]) -> Option<&str> {
    let len_bytes: [u8; 4] = blob.get(0..4)?.try_into().ok()?;
    let len = u32::from_be_bytes(len_bytes) as usize;
    std::str::from_utf8(blob.get(4..4usize.checked_add(len)?)?).ok()
}

/// Plain (not hashed, not marker) lines of `text` that name `address`/`port`,
/// as (key type) in file order.
fn known_types_for(text: &str, address: &str, port: u16) -> Vec<String> {
    let name = known_hosts_name(address, port);
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('@') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(hosts), Some(kind)) = (fields.next(), fields.next()) else {
            continue;
        };
        if hosts.split(',').any(|h| h == name) && !out.iter().any(|k| k == kind) {
            out.push(kind.to_string());
        }
    }
    out
}

/// libssh2 host key method names for an OpenSSH key type.
fn methods_for(kind: &str) -> &'static [&'static str] {
    match kind {
        "ssh-ed25519" => &["ssh-ed25519"],
        "ecdsa-sha2-nistp256" => &["ecdsa-sha2-nistp256"],
        "ecdsa-sha2-nistp384" => &["ecdsa-sha2-nistp384"],
        "ecdsa-sha2-nistp521" => &["ecdsa-sha2-nistp521"],
        "ssh-rsa" => &["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"],
        _ => &[],
    }
}

const DEFAULT_ORDER: &[&str] = &[
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-512",
    "rsa-sha2-256",
    "ssh-rsa",
];

fn read_text(target: &Target) -> Result<String, TransportError> {
    match std::fs::read(&target.known_hosts) {
        Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(TransportError::KnownHostsFile {
            host: target.host.clone(),
            path: target.known_hosts.clone(),
            detail: e.to_string(),
        }),
    }
}

/// Before the handshake: prefer the host key types already pinned for this host
/// (like OpenSSH), so a file holding only, say, the ed25519 key is not mistaken
/// for a changed key when the server would offer ecdsa first.
pub(crate) fn set_preferences(sess: &ssh2::Session, target: &Target) -> Result<(), TransportError> {
    let text = read_text(target)?;
    let supported = sess
        .supported_algs(ssh2::MethodType::HostKey)
        .unwrap_or_default();
    let mut order: Vec<&str> = Vec::new();
    for kind in known_types_for(&text, &target.address, target.port) {
        for m in methods_for(&kind) {
            if !order.contains(m) {
                order.push(m);
            }
        }
    }
    for m in DEFAULT_ORDER {
        if !order.contains(m) {
            order.push(m);
        }
    }
    order.retain(|m| supported.contains(m));
    if order.is_empty() {
        return Ok(());
    }
    // A failure here only means libssh2 keeps its own order.
    let _ = sess.method_pref(ssh2::MethodType::HostKey, &order.join(","));
    Ok(())
}

/// After the handshake: check the server's key.
pub(crate) fn verify(sess: &ssh2::Session, target: &Target) -> Result<(), TransportError> {
    let file_err = |detail: String| TransportError::KnownHostsFile {
        host: target.host.clone(),
        path: target.known_hosts.clone(),
        detail,
    };
    let Some((key, _)) = sess.host_key() else {
        return Err(TransportError::Handshake {
            host: target.host.clone(),
            address: target.address.clone(),
            port: target.port,
            detail: "the server sent no host key".into(),
        });
    };
    let key = key.to_vec();
    let print = fingerprint(&key);
    let text = read_text(target)?;
    let mut known = sess
        .known_hosts()
        .map_err(|e| file_err(e.message().to_string()))?;
    // Line by line, so that one line libssh2 cannot parse (a marker, a key type it
    // does not know) does not hide the others.
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with('@') {
            continue;
        }
        let _ = known.read_str(t, KnownHostFileKind::OpenSSH);
    }
    match known.check_port(&target.address, target.port, &key) {
        CheckResult::Match => Ok(()),
        CheckResult::Mismatch => Err(TransportError::HostKeyChanged {
            host: target.host.clone(),
            address: target.address.clone(),
            port: target.port,
            known_hosts: target.known_hosts.clone(),
            fingerprint: print,
        }),
        CheckResult::NotFound if target.accept_new => {
            let kind = key_type_name(&key)
                .ok_or_else(|| file_err("the server's host key has no type name".into()))?;
            let line = format!(
                "{} {} {}\n",
                known_hosts_name(&target.address, target.port),
                kind,
                base64_encode(&key)
            );
            append(&target.known_hosts, &line).map_err(|e| file_err(e.to_string()))
        }
        CheckResult::NotFound => Err(TransportError::UnknownHostKey {
            host: target.host.clone(),
            address: target.address.clone(),
            port: target.port,
            known_hosts: target.known_hosts.clone(),
            fingerprint: print,
        }),
        CheckResult::Failure => Err(file_err(
            "libssh2 could not check the host key against it".into(),
        )),
    }
}

fn append(path: &Path, line: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)?;
        }
    }
    // Keep the file well-formed if its last line has no newline.
    let needs_newline = match std::fs::read(path) {
        Ok(b) => !b.is_empty() && !b.ends_with(b"\n"),
        Err(_) => false,
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    if needs_newline {
        f.write_all(b"\n")?;
    }
    f.write_all(line.as_bytes())?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_for_host() {
        let text = "# c\n[10.0.0.1]:2222 ssh-ed25519 AAAA\n10.0.0.1 ssh-rsa BBBB\n@revoked * ssh-rsa CCCC\nother,[10.0.0.1]:2222 ecdsa-sha2-nistp256 DDDD\n";
        assert_eq!(
            known_types_for(text, "10.0.0.1", 2222),
            vec!["ssh-ed25519", "ecdsa-sha2-nistp256"]
        );
        assert_eq!(known_types_for(text, "10.0.0.1", 22), vec!["ssh-rsa"]);
    }

    #[test]
    fn key_type_from_blob() {
        let mut blob = vec![0, 0, 0, 11];
        blob.extend_from_slice(b"ssh-ed25519");
        blob.extend_from_slice(&[0, 0, 0, 32]);
        assert_eq!(key_type_name(&blob), Some("ssh-ed25519"));
        assert_eq!(key_type_name(&[0, 0, 0, 99, b'a']), None);
        assert!(fingerprint(&blob).starts_with("SHA256:"));
    }
}
