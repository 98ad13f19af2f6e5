//! Directories and files: create, fix, update (with a diff, or a note for secrets and
//! binaries), and delete what the current generation installed and the build dropped.

use super::{Action, Inputs, Planned};
use crate::encode::Mode;
use crate::probe::{Content, PathState};
use std::collections::BTreeSet;

/// Directories: create the missing ones, fix mode and ownership.
pub(super) fn directories(inp: &Inputs, out: &mut Planned) {
    let (build, observed) = (inp.build, inp.observed);
    let actions = &mut out.actions;
    let conflicts = &mut out.conflicts;
    for d in &build.directories {
        match observed.paths.get(&d.path) {
            None | Some(PathState::Absent) => actions.push(Action::CreateDirectory {
                path: d.path.clone(),
                mode: d.mode,
                owner: d.owner.clone(),
                group: d.group.clone(),
            }),
            Some(PathState::Directory { mode, owner, group }) => {
                let changes = meta_changes(d.mode, &d.owner, &d.group, mode, owner, group);
                if !changes.is_empty() {
                    actions.push(Action::FixDirectory {
                        path: d.path.clone(),
                        changes,
                    });
                }
            }
            Some(other) => conflicts.push(format!(
                "{} is a {} on the host where the configuration wants a directory: move it away by hand",
                d.path,
                other.kind()
            )),
        }
    }
}

/// Files: create, update (content, mode, ownership; a symlink is replaced), with
/// drift noted where the host changed a file since the current generation.
pub(super) fn files(inp: &Inputs, out: &mut Planned) {
    let (build, observed, options, manifest) = (inp.build, inp.observed, inp.options, inp.manifest);
    let gen_label = &inp.gen_label;
    let actions = &mut out.actions;
    let conflicts = &mut out.conflicts;
    let warnings = &mut out.warnings;
    let drift = &mut out.drift;
    let changed = &mut out.changed;
    for (path, f) in &build.files {
        let secret = f.secret || crate::placeholder::Placeholder::in_text(&f.content);
        let recorded = manifest.and_then(|m| m.files.get(path));
        match observed.paths.get(path).unwrap_or(&PathState::Absent) {
            PathState::Absent => {
                let drift_note = recorded.map(|_| {
                    *drift += 1;
                    format!("drift: deleted on host since generation {gen_label}")
                });
                actions.push(Action::CreateFile {
                    path: path.clone(),
                    mode: f.mode,
                    owner: f.owner.clone(),
                    group: f.group.clone(),
                    secret,
                    diff: (!secret).then(|| unified(path, "", &f.content, "absent")),
                    drift: drift_note,
                });
                changed.insert(path.clone());
            }
            PathState::File {
                mode,
                owner,
                group,
                sha256,
                content,
                ..
            } => {
                let drift_note = match recorded {
                    Some(m) if sha256.as_deref() != Some(m.installed_sha256.as_str()) => {
                        *drift += 1;
                        Some(format!(
                            "drift: edited on host since generation {gen_label}"
                        ))
                    }
                    _ => None,
                };
                let content_changed = if !secret {
                    sha256.as_deref() != Some(f.sha256.as_str())
                } else if let Some(want) = options.secret_sha256.get(path) {
                    sha256.as_deref() != Some(want.as_str())
                } else {
                    match recorded {
                        Some(m) => {
                            !(m.sha256 == f.sha256
                                && sha256.as_deref() == Some(m.installed_sha256.as_str()))
                        }
                        None => true,
                    }
                };
                let mut changes = Vec::new();
                if content_changed {
                    changes.push("content".to_string());
                }
                changes.extend(meta_changes(f.mode, &f.owner, &f.group, mode, owner, group));
                if changes.is_empty() {
                    if let Some(d) = drift_note {
                        warnings.push(format!(
                            "{path}: {d}, but it already matches the configuration"
                        ));
                    }
                    continue;
                }
                let (diff, note) = if !content_changed {
                    (None, None)
                } else if secret {
                    (None, Some("(secret content changed)".to_string()))
                } else {
                    match content {
                        Some(Content::Text { text }) => {
                            (Some(unified(path, text, &f.content, "on host")), None)
                        }
                        Some(Content::Binary) => (
                            None,
                            Some("(the file on the host is binary; content replaced)".into()),
                        ),
                        Some(Content::TooLarge) => (
                            None,
                            Some("(the file on the host is too large to show; content replaced)".into()),
                        ),
                        None => (None, Some("(content changed)".into())),
                    }
                };
                actions.push(Action::UpdateFile {
                    path: path.clone(),
                    changes,
                    secret,
                    diff,
                    note,
                    drift: drift_note,
                });
                changed.insert(path.clone());
            }
            // A symlink (Debian's /etc/nginx/sites-enabled/default, ...) is replaced
            // by the file, atomically; apply keeps the link to restore it later.
            PathState::Symlink { .. } => {
                let drift_note = recorded.map(|_| {
                    *drift += 1;
                    format!("drift: replaced by a symlink on host since generation {gen_label}")
                });
                actions.push(Action::UpdateFile {
                    path: path.clone(),
                    changes: vec!["symlink -> file".to_string()],
                    secret,
                    diff: (!secret).then(|| unified(path, "", &f.content, "symlink")),
                    note: None,
                    drift: drift_note,
                });
                changed.insert(path.clone());
            }
            other => conflicts.push(format!(
                "{path} is a {} on the host where the configuration wants a file: move it away by hand",
                other.kind()
            )),
        }
    }
}

/// Delete what the current generation installed and this build no longer has.
pub(super) fn prune(inp: &Inputs, out: &mut Planned) {
    let (build, observed, manifest) = (inp.build, inp.observed, inp.manifest);
    let gen_label = &inp.gen_label;
    let actions = &mut out.actions;
    let warnings = &mut out.warnings;
    let drift = &mut out.drift;
    let changed = &mut out.changed;
    if let Some(m) = manifest {
        let dirs: BTreeSet<&str> = build.directories.iter().map(|d| d.path.as_str()).collect();
        for (path, mf) in &m.files {
            if build.files.contains_key(path) || dirs.contains(path.as_str()) {
                continue;
            }
            match observed.paths.get(path).unwrap_or(&PathState::Absent) {
                PathState::Absent => {}
                PathState::File { sha256, .. } => {
                    let drift_note = (sha256.as_deref() != Some(mf.installed_sha256.as_str()))
                        .then(|| {
                            *drift += 1;
                            format!("drift: edited on host since generation {gen_label}")
                        });
                    actions.push(Action::DeleteFile {
                        path: path.clone(),
                        drift: drift_note,
                    });
                    changed.insert(path.clone());
                }
                other => warnings.push(format!(
                    "{path} was installed by generation {gen_label} but is now a {}: left alone",
                    other.kind()
                )),
            }
        }
    }
}

fn meta_changes(
    want_mode: Mode,
    want_owner: &str,
    want_group: &str,
    mode: &str,
    owner: &str,
    group: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    // What `stat` said, in the build's spelling when it is a mode at all.
    let seen = Mode::parse(mode);
    if seen != Some(want_mode) {
        let mode = seen.map_or_else(|| mode.to_string(), |m| m.to_string());
        out.push(format!("mode {mode} -> {want_mode}"));
    }
    if want_owner != owner {
        out.push(format!("owner {owner} -> {want_owner}"));
    }
    if want_group != group {
        out.push(format!("group {group} -> {want_group}"));
    }
    out
}

fn unified(path: &str, old: &str, new: &str, old_label: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("{path} ({old_label})"), &format!("{path} (new)"))
        .to_string()
}

/// Releases: `current` moves to the build's release; the files it needs that
/// the current release lacks travel, the others are linked on the host.
pub(super) fn releases(inp: &Inputs, out: &mut Planned) {
    for r in &inp.build.releases {
        let seen = inp
            .observed
            .releases
            .get(&r.path)
            .cloned()
            .unwrap_or_default();
        if seen.current.as_deref() == Some(r.hash.as_str()) {
            continue;
        }
        let (mut added, mut changed, mut removed, mut bytes) =
            (Vec::new(), Vec::new(), Vec::new(), 0);
        if !seen.present {
            let base = seen.current_files.clone().unwrap_or_default();
            for (p, f) in &r.files {
                match base.get(p) {
                    Some((sha, mode)) if *sha == f.sha256 && *mode == f.mode => continue,
                    Some(_) => changed.push(p.clone()),
                    None => added.push(p.clone()),
                }
                bytes += f.size;
            }
            removed = base
                .keys()
                .filter(|p| !r.files.contains_key(*p))
                .cloned()
                .collect();
        }
        out.changed.insert(r.current());
        out.actions.push(Action::Release {
            path: r.path.clone(),
            incremental: !seen.present && seen.current.is_some() && seen.current_files.is_some(),
            from: seen.current,
            to: r.hash.clone(),
            present: seen.present,
            migrate: false,
            added,
            changed,
            removed,
            bytes,
        });
    }
}
