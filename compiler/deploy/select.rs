//! `--limit`: which hosts a command acts on. A selector is a host's name, a
//! failover group's name (its members and its witness) or `@TAG` (the hosts whose
//! `tags` hold it); several are given comma-separated or with `--limit` again,
//! and their union is selected. An apply of one member of a failover group
//! without the other would leave the pair on two configurations (and the roll
//! could not move the VIP to an updated standby first): [`partial_groups`] finds
//! such selections, and the CLI refuses them unless `--allow-partial-group`.

use crate::diag::Diag;
use crate::resolve::Model;
use std::collections::BTreeSet;

/// The hosts `limit` selects, in the model's order. An empty `limit` selects
/// every host. Err: a selector that matches nothing (E0750), naming what exists.
pub fn select(model: &Model, limit: &[String]) -> Result<Vec<String>, Box<Diag>> {
    let selectors: Vec<&str> = limit
        .iter()
        .flat_map(|l| l.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if selectors.is_empty() {
        return Ok(model.hosts.iter().map(|h| h.name.value.clone()).collect());
    }
    let mut chosen: BTreeSet<usize> = BTreeSet::new();
    for sel in selectors {
        let found = matches(model, sel);
        if found.is_empty() {
            return Err(Box::new(unknown(model, sel)));
        }
        chosen.extend(found);
    }
    Ok(chosen
        .into_iter()
        .map(|i| model.hosts[i].name.value.clone())
        .collect())
}

/// The hosts (indexes into `model.hosts`) one selector names.
fn matches(model: &Model, sel: &str) -> Vec<usize> {
    if let Some(tag) = sel.strip_prefix('@') {
        return model
            .hosts
            .iter()
            .enumerate()
            .filter(|(_, h)| h.tags.iter().any(|t| t.value == tag))
            .map(|(i, _)| i)
            .collect();
    }
    if let Some(i) = model.hosts.iter().position(|h| h.name.value == sel) {
        return vec![i];
    }
    match model.groups.iter().find(|g| g.name.value == sel) {
        Some(g) => g
            .members
            .iter()
            .map(|m| m.value.index())
            .chain(g.witness.as_ref().map(|w| w.value.index()))
            .collect(),
        None => Vec::new(),
    }
}

fn unknown(model: &Model, sel: &str) -> Diag {
    let hosts: Vec<&str> = model.hosts.iter().map(|h| h.name.value.as_str()).collect();
    let groups: Vec<&str> = model.groups.iter().map(|g| g.name.value.as_str()).collect();
    let tags: BTreeSet<String> = model
        .hosts
        .iter()
        .flat_map(|h| h.tags.iter().map(|t| format!("@{}", t.value)))
        .collect();
    let list = |v: Vec<String>| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    let what = if let Some(tag) = sel.strip_prefix('@') {
        format!("no host has the tag `{tag}`")
    } else {
        format!("`{sel}` is no host, failover group or tag of the configuration")
    };
    Diag::error("E0750", format!("--limit {sel}: {what}")).help(format!(
        "hosts: {}; failover groups: {}; tags: {} (a host gets tags with `tags = [\"site-a\"]`)",
        list(hosts.iter().map(|s| s.to_string()).collect()),
        list(groups.iter().map(|s| s.to_string()).collect()),
        list(tags.into_iter().collect()),
    ))
}

/// The failover groups of which `selected` holds some members but not all:
/// (group, members selected, members left out).
pub fn partial_groups(
    model: &Model,
    selected: &[String],
) -> Vec<(String, Vec<String>, Vec<String>)> {
    let selected: BTreeSet<&str> = selected.iter().map(String::as_str).collect();
    model
        .groups
        .iter()
        .filter_map(|g| {
            let (inside, outside): (Vec<String>, Vec<String>) = g
                .members
                .iter()
                .map(|m| model.hosts[m.value].name.value.clone())
                .partition(|h| selected.contains(h.as_str()));
            (!inside.is_empty() && !outside.is_empty())
                .then(|| (g.name.value.clone(), inside, outside))
        })
        .collect()
}

/// E0751 for an apply of part of a failover group.
pub fn partial_group_error(partial: &[(String, Vec<String>, Vec<String>)]) -> Diag {
    let what: Vec<String> = partial
        .iter()
        .map(|(g, inside, outside)| {
            format!(
                "{} of failover group `{g}` without {}",
                inside.join(", "),
                outside.join(", ")
            )
        })
        .collect();
    let groups: Vec<&str> = partial.iter().map(|(g, _, _)| g.as_str()).collect();
    Diag::error(
        "E0751",
        format!("--limit selects {}", what.join("; ")),
    )
    .help(format!(
        "a pair runs one configuration: select the whole group (`--limit {}`), or add `--allow-partial-group` to apply only these members (the others keep their generation until they are applied too)",
        groups.join(",")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(src: &str) -> Model {
        let mut loader = crate::resolve::MemLoader::default();
        let path = std::path::Path::new("/t/main.infra");
        loader
            .files
            .insert(path.to_path_buf(), src.as_bytes().to_vec());
        match crate::check(path, &loader) {
            Ok(c) => c.model,
            Err(f) => panic!("{:?}", f.diags),
        }
    }

    const SRC: &str = r#"
host alpha { address = "10.0.0.11" tags = ["site-a", "db"] }
host beta  { address = "10.0.0.12" tags = ["site-a"] }
host gamma { address = "10.0.0.13" tags = ["site-b"] }
host delta { address = "10.0.0.14" }
failover office {
  members   = [alpha, beta]
  vip       = "10.0.0.10/24"
  interface = "eth0"
  check     = http("http://127.0.0.1/health")
  witness   = gamma
}
"#;

    fn sel(m: &Model, l: &[&str]) -> Result<Vec<String>, Box<Diag>> {
        let l: Vec<String> = l.iter().map(|s| s.to_string()).collect();
        select(m, &l)
    }

    #[test]
    fn hosts_groups_and_tags_select_their_union_in_model_order() {
        let m = model(SRC);
        assert_eq!(sel(&m, &[]).unwrap(), ["alpha", "beta", "gamma", "delta"]);
        assert_eq!(sel(&m, &["delta,alpha"]).unwrap(), ["alpha", "delta"]);
        assert_eq!(sel(&m, &["office"]).unwrap(), ["alpha", "beta", "gamma"]);
        assert_eq!(sel(&m, &["@site-a"]).unwrap(), ["alpha", "beta"]);
        assert_eq!(sel(&m, &["@db", "@site-b"]).unwrap(), ["alpha", "gamma"]);
        let e = sel(&m, &["@web"]).unwrap_err();
        assert_eq!(e.code, "E0750");
        assert!(
            e.message.contains("no host has the tag `web`"),
            "{}",
            e.message
        );
        let e = sel(&m, &["alpah"]).unwrap_err();
        let help = e.help.clone().unwrap_or_default();
        assert!(
            help.contains("hosts: alpha, beta, gamma, delta")
                && help.contains("failover groups: office")
                && help.contains("tags: @db, @site-a, @site-b"),
            "{help}"
        );
    }

    #[test]
    fn one_member_of_a_pair_is_a_partial_group() {
        let m = model(SRC);
        let s = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(partial_groups(&m, &s(&["alpha", "beta"])).is_empty());
        assert!(
            partial_groups(&m, &s(&["gamma", "delta"])).is_empty(),
            "a witness alone is not a member"
        );
        let p = partial_groups(&m, &s(&["beta", "delta"]));
        assert_eq!(p, vec![("office".to_string(), s(&["beta"]), s(&["alpha"]))]);
        let d = partial_group_error(&p);
        assert_eq!(d.code, "E0751");
        assert!(
            d.message
                .contains("beta of failover group `office` without alpha"),
            "{}",
            d.message
        );
    }
}
