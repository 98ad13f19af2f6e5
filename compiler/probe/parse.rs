//! Reading the probe's answer into an [`Observed`].

use super::lock::LockFacts;
use super::protocol::{Tag, VERSION};
use super::{
    build_paths, Content, Manifest, Observed, PathState, ProbeError, UnitState, CONTENT_LIMIT,
};
use crate::render::HostBuild;
use crate::shell::base64_decode;
use std::collections::BTreeMap;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// "644" / raw mode -> "0644".
fn mode_string(raw: u32) -> String {
    format!("{:04o}", raw & 0o7777)
}

/// Parse the probe script's answer (see the module docs for the format).
pub fn parse_probe_output(build: &HostBuild, stdout: &[u8]) -> Result<Observed, ProbeError> {
    use sha2::{Digest, Sha256};
    let host = build.host.clone();
    let bad = |detail: String| ProbeError::Protocol {
        host: host.clone(),
        detail,
    };
    let decode = |tag: &str, b: &[u8]| {
        base64_decode(b).ok_or_else(|| bad(format!("record {tag} is not base64")))
    };
    let mut obs = Observed {
        host: host.clone(),
        ..Observed::default()
    };
    let mut stats: BTreeMap<String, PathState> = BTreeMap::new();
    let mut hashes: BTreeMap<String, String> = BTreeMap::new();
    let mut fetched: Vec<String> = Vec::new();
    let mut blob: Vec<u8> = Vec::new();
    let mut asked_units: Vec<String> = Vec::new();
    let mut shown_units: Option<Vec<u8>> = None;
    let mut version = false;
    let mut ended = false;
    // Every record ends with a NUL: what follows the last one is a cut record.
    let complete = match stdout.iter().rposition(|&b| b == 0) {
        Some(i) => &stdout[..i],
        None => &stdout[..0],
    };
    let cut_short = || {
        bad(
            "the answer was cut short (no end record): the connection broke or the script failed"
                .into(),
        )
    };
    if stdout.last() != Some(&0) {
        return Err(cut_short());
    }
    let mut fp = Sha256::new();
    for rec in complete.split(|&b| b == 0) {
        let (tag, body) = match rec.iter().position(|&b| b == b'\t') {
            Some(1) => (Tag::from_byte(rec[0]), &rec[2..]),
            _ => (None, &rec[rec.len()..]),
        };
        if tag.is_some_and(Tag::in_fingerprint) {
            fp.update(rec);
            fp.update(b"\n");
        }
        if ended {
            return Err(bad("data after the end record".into()));
        }
        if !version && tag != Some(Tag::Version) {
            let start = text(&rec[..rec.len().min(60)]);
            return Err(bad(format!(
                "it does not start with the version record (got {start:?})"
            )));
        }
        let Some(tag) = tag else {
            let start = text(&rec[..rec.len().min(20)]);
            return Err(bad(format!("unknown record {start:?}")));
        };
        let decode = |b: &[u8]| decode(&tag.letter().to_string(), b);
        match tag {
            Tag::Version => {
                if body != VERSION.as_bytes() {
                    return Err(bad(format!("unknown protocol version {:?}", text(body))));
                }
                version = true;
            }
            Tag::Hostname => obs.hostname = text(body),
            Tag::MachineId => obs.machine_id = text(body),
            Tag::BootId => obs.boot_id = text(body),
            Tag::Generation => {
                let t = text(body);
                let last = t.trim_end_matches('/').rsplit('/').next().unwrap_or("");
                obs.generation = last.parse().ok();
                if obs.generation.is_none() {
                    obs.manifest_error = Some(format!(
                        "generations/current points to {t:?}, not a generation number"
                    ));
                }
            }
            Tag::Manifest => {
                let raw = decode(body)?;
                match serde_json::from_slice::<Manifest>(&raw) {
                    Ok(m) => obs.manifest = Some(m),
                    Err(e) => obs.manifest_error = Some(format!("manifest.json: {e}")),
                }
            }
            Tag::Lock => obs.lock = Some(LockFacts::parse(&text(&decode(body)?))),
            Tag::Recovered => {
                let t = text(&decode(body)?);
                obs.recovered = t
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| l.split_once('\t').map_or(l, |(_, v)| v).to_string())
                    .collect();
            }
            Tag::Latest => obs.latest_generation = text(body).parse().ok(),
            Tag::Addresses => {
                // `ip -o -4 addr show`: "2: eth0    inet 192.0.2.11/24 brd ... scope global eth0\ ..."
                for line in text(body).lines() {
                    let mut w = line.split_whitespace();
                    while let Some(word) = w.next() {
                        if word == "inet" {
                            if let Some(a) = w.next() {
                                obs.addresses.push(a.to_string());
                            }
                        }
                    }
                }
            }
            Tag::Absent => {
                stats.insert(text(body), PathState::Absent);
            }
            Tag::Stat => {
                let f: Vec<&[u8]> = body.splitn(6, |&b| b == b'\t').collect();
                if f.len() != 6 {
                    return Err(bad(format!("malformed stat record {:?}", text(body))));
                }
                let raw = u32::from_str_radix(&text(f[0]), 16)
                    .map_err(|_| bad(format!("bad mode in stat record {:?}", text(body))))?;
                let size: u64 = text(f[4])
                    .parse()
                    .map_err(|_| bad(format!("bad size in stat record {:?}", text(body))))?;
                let (mode, owner, group) = (mode_string(raw), text(f[2]), text(f[3]));
                let state = match raw & 0o170000 {
                    0o100000 => PathState::File {
                        mode,
                        owner,
                        group,
                        size,
                        sha256: None,
                        content: None,
                    },
                    0o040000 => PathState::Directory { mode, owner, group },
                    0o120000 => PathState::Symlink { owner, group },
                    _ => PathState::Other { mode, owner, group },
                };
                stats.insert(text(f[5]), state);
            }
            Tag::Hash => {
                let (h, p) = split_once(body)
                    .ok_or_else(|| bad(format!("malformed hash record {:?}", text(body))))?;
                let h = text(h);
                if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(bad(format!("bad sha256 {h:?}")));
                }
                hashes.insert(text(p), h);
            }
            Tag::Fetched => {
                fetched = decode(body)?
                    .split(|&b| b == 0)
                    .filter(|n| !n.is_empty())
                    .map(text)
                    .collect();
            }
            Tag::Blob => blob = decode(body)?,
            Tag::Release => {
                let f: Vec<&[u8]> = body.splitn(3, |&b| b == b'\t').collect();
                if f.len() != 3 || !(f[0] == b"0" || f[0] == b"1") {
                    return Err(bad(format!("malformed release record {:?}", text(body))));
                }
                let current = text(f[1]);
                let r = obs.releases.entry(text(f[2])).or_default();
                r.present = f[0] == b"1";
                r.current = (!current.is_empty()).then_some(current);
            }
            Tag::ReleaseList => {
                let (path, b64) = split_once(body)
                    .ok_or_else(|| bad(format!("malformed release list {:?}", text(body))))?;
                let mut files = BTreeMap::new();
                for line in text(&decode(b64)?).lines().filter(|l| !l.is_empty()) {
                    let mut w = line.splitn(3, ' ');
                    let (Some(sha), Some(mode), Some(p)) = (w.next(), w.next(), w.next()) else {
                        return Err(bad(format!("malformed release list line {line:?}")));
                    };
                    let mode = crate::encode::Mode::parse(mode)
                        .ok_or_else(|| bad(format!("bad mode in release list line {line:?}")))?;
                    files.insert(p.to_string(), (sha.to_string(), mode));
                }
                obs.releases.entry(text(path)).or_default().current_files = Some(files);
            }
            Tag::Systemd => obs.systemd = body == b"1",
            Tag::UnitList => {
                asked_units = text(body)
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(str::to_string)
                    .collect();
            }
            Tag::UnitShow => shown_units = Some(body.to_vec()),
            Tag::Packages => {
                for line in text(&decode(body)?).lines() {
                    let f: Vec<&str> = line.split('\t').collect();
                    if f.len() == 3 && f[1].starts_with("ii") {
                        obs.packages.insert(f[0].to_string(), f[2].to_string());
                    }
                }
            }
            Tag::Status => obs.status = Some(text(&decode(body)?)),
            Tag::Guard => {
                let (st, name) = split_once(body)
                    .ok_or_else(|| bad(format!("malformed guard record {:?}", text(body))))?;
                let st: i32 = text(st)
                    .parse()
                    .map_err(|_| bad(format!("bad guard status {:?}", text(body))))?;
                obs.guards.insert(text(name), st);
            }
            Tag::Users => {
                for line in text(&decode(body)?).lines().filter(|l| !l.is_empty()) {
                    let (name, groups) = line.split_once('\t').unwrap_or((line, ""));
                    obs.users.insert(name.to_string());
                    obs.user_groups.insert(
                        name.to_string(),
                        groups.split_whitespace().map(str::to_string).collect(),
                    );
                }
            }
            Tag::End if body == b"0" => ended = true,
            Tag::End => return Err(bad(format!("bad end record {:?}", text(body)))),
        }
    }
    if !ended {
        return Err(cut_short());
    }
    obs.fingerprint = fp.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let contents = split_contents(&fetched, &blob, &stats, &hashes);
    // Every asked path must be answered (A or S).
    let mut asked: Vec<String> = build_paths(build).iter().map(|p| p.to_string()).collect();
    if let Some(m) = &obs.manifest {
        asked.extend(m.files.keys().cloned());
    }
    for p in asked {
        let state = match stats.remove(&p) {
            Some(PathState::File {
                mode,
                owner,
                group,
                size,
                ..
            }) => PathState::File {
                mode,
                owner,
                group,
                size,
                sha256: hashes.get(&p).cloned(),
                content: contents.get(&p).cloned().or_else(|| {
                    let differs = build.files.get(&p).is_some_and(|f| {
                        !f.secret && hashes.get(&p).is_some_and(|h| *h != f.sha256)
                    });
                    (differs && size > CONTENT_LIMIT).then_some(Content::TooLarge)
                }),
            },
            Some(s) => s,
            None if obs.paths.contains_key(&p) => continue,
            // Vanished between the existence test and stat: absent now.
            None => PathState::Absent,
        };
        obs.paths.insert(p, state);
    }
    if let Some(shown) = shown_units {
        let blocks = parse_show(&text(&shown));
        if blocks.len() != asked_units.len() {
            return Err(bad(format!(
                "systemctl show answered {} units for {} asked",
                blocks.len(),
                asked_units.len()
            )));
        }
        for (name, state) in asked_units.into_iter().zip(blocks) {
            obs.units.insert(name, state);
        }
    }
    Ok(obs)
}

/// Cut the concatenated contents into files by their stat sizes; keep each piece
/// only if its hash is the one the H record reported. At the first mismatch (a
/// file changed while the probe ran) stop: later offsets cannot be trusted.
fn split_contents(
    names: &[String],
    blob: &[u8],
    stats: &BTreeMap<String, PathState>,
    hashes: &BTreeMap<String, String>,
) -> BTreeMap<String, Content> {
    use sha2::{Digest, Sha256};
    let mut out = BTreeMap::new();
    let mut at = 0usize;
    for name in names {
        let Some(PathState::File { size, .. }) = stats.get(name) else {
            break;
        };
        let Ok(size) = usize::try_from(*size) else {
            break;
        };
        let Some(piece) = at.checked_add(size).and_then(|end| blob.get(at..end)) else {
            break;
        };
        let hex: String = Sha256::digest(piece)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if hashes.get(name) != Some(&hex) {
            break;
        }
        at += size;
        let content = if piece.contains(&0) {
            Content::Binary
        } else {
            match std::str::from_utf8(piece) {
                Ok(t) => Content::Text {
                    text: t.to_string(),
                },
                Err(_) => Content::Binary,
            }
        };
        out.insert(name.clone(), content);
    }
    out
}

fn split_once(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = b.iter().position(|&c| c == b'\t')?;
    Some((&b[..i], &b[i + 1..]))
}

/// `systemctl show` output: blocks of `Key=value` lines separated by blank lines.
fn parse_show(s: &str) -> Vec<UnitState> {
    let mut out = Vec::new();
    let mut cur: Option<UnitState> = None;
    for line in s.lines() {
        if line.trim().is_empty() {
            if let Some(u) = cur.take() {
                out.push(u);
            }
            continue;
        }
        let u = cur.get_or_insert_with(UnitState::default);
        if let Some((k, v)) = line.split_once('=') {
            let v = v.to_string();
            match k {
                "Id" => u.id = v,
                "LoadState" => u.load_state = v,
                "ActiveState" => u.active_state = v,
                "SubState" => u.sub_state = v,
                "UnitFileState" => u.unit_file_state = v,
                "ConditionResult" => u.condition_result = v,
                "ConditionTimestampMonotonic" => u.condition_timestamp = v,
                _ => {}
            }
        }
    }
    if let Some(u) = cur {
        out.push(u);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_blocks() {
        let s = "Id=a.service\nLoadState=loaded\nActiveState=active\nSubState=running\nUnitFileState=enabled\n\nId=b.timer\nLoadState=not-found\nActiveState=inactive\nSubState=dead\nUnitFileState=\n";
        let b = parse_show(s);
        assert_eq!(b.len(), 2);
        assert!(b[0].is_active() && b[0].is_enabled() && b[0].exists());
        assert!(!b[1].exists() && !b[1].is_enabled());
    }

    #[test]
    fn truncated_and_garbage_answers_are_errors() {
        let build = HostBuild {
            host: "alpha".into(),
            ..HostBuild::default()
        };
        assert!(parse_probe_output(&build, b"V\t1\0").is_err());
        assert!(parse_probe_output(&build, b"Welcome!\nV\t1\0E\t0\0").is_err());
        assert!(parse_probe_output(&build, b"V\t2\0I\thost\0Y\t0\0E\t0\0").is_err());
        assert!(parse_probe_output(&build, b"V\t3\0?\tx\0E\t0\0").is_err());
        let ok = parse_probe_output(&build, b"V\t3\0I\thost\0Y\t0\0E\t0\0").expect("parses");
        assert_eq!(ok.hostname, "host");
        assert!(!ok.systemd);
    }
}
