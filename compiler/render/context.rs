//! The JSON object a template is rendered with (documented in docs/stdlib.md,
//! "Template context"). Built from the Model only; the same inputs always give
//! the same object.

use crate::placeholder::Placeholder;
use crate::resolve::model::{Check, Group, GroupId, HostId, Instance, Model, Placement, Value};
use serde_json::{json, Map, Value as Json};

/// Keys of an instance's context that a parameter of the same name does not
/// shadow at the top level (it stays reachable as `params.NAME`).
pub const RESERVED: &[&str] = &[
    "all_hosts",
    "generated",
    "group",
    "host",
    "kind",
    "name",
    "params",
    "placement",
    "qualified",
    "template",
];

/// `/run/infra/GROUP/active`: exists only while this host holds the group's VIP.
pub fn active_flag(group: &str) -> String {
    format!("/run/infra/{group}/active")
}

/// `infra-GROUP-active.target`: started by keepalived's notify_master.
pub fn active_target(group: &str) -> String {
    format!("infra-{group}-active.target")
}

/// A duration as a systemd time span: `300` → `5min`, `90` → `1min 30s`, `0` → `0`.
pub fn timespan(seconds: u64) -> String {
    if seconds == 0 {
        return "0".into();
    }
    let mut rest = seconds;
    let mut parts = Vec::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("min", 60), ("s", 1)] {
        if rest >= size {
            parts.push(format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    parts.join(" ")
}

pub fn host_json(model: &Model, h: HostId) -> Json {
    let host = &model.hosts[h];
    json!({
        "name": host.name.value,
        "address": host.address.value.to_string(),
        "ssh_port": host.ssh.port,
    })
}

pub fn check_json(check: &Check) -> Json {
    match check {
        Check::Http(url) => json!({ "kind": "http", "url": url }),
        Check::Tcp(port) => json!({ "kind": "tcp", "port": port }),
        Check::Exec(command) => json!({ "kind": "exec", "command": command }),
    }
}

fn member_json(model: &Model, g: &Group, i: usize) -> Json {
    let mut m = host_json(model, g.members[i].value);
    if let Json::Object(o) = &mut m {
        o.insert(
            "priority".into(),
            json!(g.priorities.value.get(i).copied().unwrap_or(0)),
        );
        o.insert("index".into(), json!(i + 1));
        o.insert(
            "role".into(),
            json!(if i == 0 { "primary" } else { "standby" }),
        );
    }
    m
}

/// A failover group as seen from host `h` (which may or may not be a member).
pub fn group_json(model: &Model, gid: GroupId, h: HostId) -> Json {
    let g = &model.groups[gid];
    let name = &g.name.value;
    let members: Vec<Json> = (0..g.members.len())
        .map(|i| member_json(model, g, i))
        .collect();
    let pos = g.position(h);
    let peers: Vec<Json> = (0..g.members.len())
        .filter(|i| Some(*i) != pos)
        .map(|i| member_json(model, g, i))
        .collect();
    let role = match pos {
        Some(0) => "primary",
        Some(_) => "standby",
        None => "none",
    };
    json!({
        "name": name,
        "vip": g.vip.value.to_string(),
        "vip_address": g.vip.value.addr.to_string(),
        "vip_prefix": g.vip.value.prefix,
        "interface": g.interface.value,
        "router_id": g.router_id.value,
        "check": check_json(&g.check.value),
        "members": members,
        "peers": peers,
        "role": role,
        "is_primary": pos == Some(0),
        "index": pos.map(|p| p + 1).unwrap_or(0),
        "priority": pos.and_then(|p| g.priorities.value.get(p).copied()).unwrap_or(0),
        "primary": g.members.first().map(|m| host_json(model, m.value)).unwrap_or(Json::Null),
        "run_dir": format!("/run/infra/{name}"),
        "active_flag": active_flag(name),
        "active_target": active_target(name),
        "witness": witness_json(model, g, h),
    })
}

/// Seconds a witness lease lives without renewal (etcd), after which another
/// member may take the key.
pub const WITNESS_TTL: u64 = 10;
/// Seconds without a renewal after which the holder gives the VIP up and fences:
/// well before the lease can expire (the rest is for the fencing to finish).
pub const WITNESS_FENCE_AFTER: u64 = 5;
/// Seconds a member that took the key has to become the VIP holder.
pub const WITNESS_GRACE: u64 = 15;
/// etcd's client and peer ports.
pub const ETCD_CLIENT_PORT: u16 = 2379;
pub const ETCD_PEER_PORT: u16 = 2380;

/// `/run/infra-witness-GROUP`: 0 while this member may hold the VIP (keepalived's
/// track_file), 1 otherwise.
pub fn witness_track(group: &str) -> String {
    format!("/run/infra-witness-{group}")
}

/// The etcd key whose value names the member that may hold the group's VIP.
pub fn witness_key(group: &str) -> String {
    format!("/infra/failover/{group}/leader")
}

/// etcd client URLs for `h`: its own member first, then the others.
pub fn etcd_endpoints(model: &Model, cluster: &[HostId], h: HostId) -> String {
    let mut urls = vec![format!("http://127.0.0.1:{ETCD_CLIENT_PORT}")];
    for &x in cluster.iter().filter(|&&x| x != h) {
        urls.push(format!(
            "http://{}:{ETCD_CLIENT_PORT}",
            model.hosts[x].address.value
        ));
    }
    urls.join(",")
}

fn witness_json(model: &Model, g: &Group, h: HostId) -> Json {
    let Some(w) = &g.witness else {
        return Json::Null;
    };
    let name = &g.name.value;
    let mut j = host_json(model, w.value);
    if let Json::Object(o) = &mut j {
        let cluster = g.witness_cluster();
        o.insert("key".into(), json!(witness_key(name)));
        o.insert("track".into(), json!(witness_track(name)));
        o.insert(
            "track_name".into(),
            json!(format!("infra_witness_{}", ident(name))),
        );
        o.insert(
            "script".into(),
            json!(format!("/etc/keepalived/infra-witness-{name}.sh")),
        );
        o.insert(
            "service".into(),
            json!(format!("infra-witness-{name}.service")),
        );
        o.insert("ttl".into(), json!(WITNESS_TTL));
        o.insert("fence_after".into(), json!(WITNESS_FENCE_AFTER));
        o.insert("grace".into(), json!(WITNESS_GRACE));
        o.insert(
            "endpoints".into(),
            json!(etcd_endpoints(model, &cluster, h)),
        );
    }
    j
}

/// The etcd member on host `h` of a witness cluster (`cluster`: its hosts).
pub fn etcd_json(model: &Model, cluster: &[HostId], h: HostId) -> Json {
    let mut members = Vec::new();
    let mut initial = Vec::new();
    for &x in cluster {
        let (name, addr) = (&model.hosts[x].name.value, model.hosts[x].address.value);
        let peer_url = format!("http://{addr}:{ETCD_PEER_PORT}");
        initial.push(format!("{name}={peer_url}"));
        members.push(json!({
            "name": name,
            "address": addr.to_string(),
            "peer_url": peer_url,
            "client_url": format!("http://{addr}:{ETCD_CLIENT_PORT}"),
        }));
    }
    let initial = initial.join(",");
    // a new set of hosts is a new cluster, in a data directory of its own
    let token = crate::encode::sha256_hex(initial.as_bytes());
    let token = format!("infra-{}", &token[..12]);
    let addr = model.hosts[h].address.value;
    json!({
        "name": model.hosts[h].name.value,
        "address": addr.to_string(),
        "members": members,
        "initial_cluster": initial,
        "token": token,
        "data_dir": format!("/var/lib/infra-etcd/{token}"),
        "listen_peer_urls": format!("http://{addr}:{ETCD_PEER_PORT}"),
        "listen_client_urls": format!("http://127.0.0.1:{ETCD_CLIENT_PORT},http://{addr}:{ETCD_CLIENT_PORT}"),
        "endpoints": etcd_endpoints(model, cluster, h),
    })
}

/// A name as a keepalived identifier: letters, digits and `_`.
pub fn ident(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

pub fn placement_group(p: Placement) -> Option<GroupId> {
    match p {
        Placement::Group(g) | Placement::Active(g) => Some(g),
        Placement::Host(_) | Placement::All => None,
    }
}

pub fn placement_json(model: &Model, p: Placement, h: HostId) -> Json {
    placement_json_at(model, p, h, true)
}

/// [`placement_json`]; without `hosts` when `with_hosts` is false (a placement
/// on `all` holds every host: made for every host's templates, that list made
/// rendering a fleet quadratic, so only a template that names `hosts` gets it).
fn placement_json_at(model: &Model, p: Placement, h: HostId, with_hosts: bool) -> Json {
    let (kind, host, group) = match p {
        Placement::Host(x) => ("host", host_json(model, x), Json::Null),
        Placement::Group(g) => ("group", Json::Null, group_json(model, g, h)),
        Placement::Active(g) => ("active", Json::Null, group_json(model, g, h)),
        Placement::All => ("all", Json::Null, Json::Null),
    };
    let mut out = json!({
        "kind": kind,
        "active": matches!(p, Placement::Active(_)),
        "host": host,
        "group": group,
    });
    if with_hosts {
        let hosts: Vec<Json> = model
            .placement_hosts(p)
            .into_iter()
            .map(|x| host_json(model, x))
            .collect();
        out["hosts"] = Json::Array(hosts);
    }
    out
}

pub fn value_json(model: &Model, v: &Value, h: HostId) -> Json {
    value_json_at(model, v, h, 1, true)
}

/// A value; an instance in it shows its parameters `depth` levels deep; a
/// placement its `hosts` only `with_hosts`.
fn value_json_at(model: &Model, v: &Value, h: HostId, depth: u8, with_hosts: bool) -> Json {
    match v {
        Value::Str(s) => json!(s),
        Value::Int(i) => json!(i),
        Value::Bool(b) => json!(b),
        Value::Duration(s) => json!({ "seconds": s, "span": timespan(*s) }),
        Value::Ip(ip) => json!(ip.to_string()),
        Value::Cidr(c) => json!({
            "cidr": c.to_string(),
            "address": c.addr.to_string(),
            "prefix": c.prefix,
        }),
        Value::Host(x) => host_json(model, *x),
        Value::Group(g) => group_json(model, *g, h),
        Value::Placement(p) => placement_json_at(model, *p, h, with_hosts),
        Value::Secret(name) => json!(Placeholder::text(name)),
        Value::Check(c) => check_json(c),
        Value::Instance(i) => instance_json(model, *i, h, depth, with_hosts),
        Value::List(items) => Json::Array(
            items
                .iter()
                .map(|x| value_json_at(model, x, h, depth, with_hosts))
                .collect(),
        ),
    }
}

/// An instance a parameter refers to: its kind, name and, `depth` levels deep,
/// its parameters (`{{cluster.port}}`); below that, instances are named only
/// (two instances may refer to each other).
fn instance_json(
    model: &Model,
    i: crate::resolve::InstanceId,
    h: HostId,
    depth: u8,
    with_hosts: bool,
) -> Json {
    let inst = &model.instances[i];
    let mut out = Map::new();
    if depth > 0 {
        for p in &inst.params {
            out.insert(
                p.name.clone(),
                value_json_at(model, &p.value, h, depth - 1, with_hosts),
            );
        }
    }
    out.insert("kind".into(), json!(inst.kind.value));
    out.insert("name".into(), json!(inst.name.value));
    out.insert("qualified".into(), json!(inst.qualified()));
    Json::Object(out)
}

pub fn all_hosts_json(model: &Model) -> Json {
    Json::Array(model.host_ids().map(|h| host_json(model, h)).collect())
}

/// The context of every template of `inst` rendered for host `h`; `generated` and
/// `template` are filled per template by the caller.
pub fn instance_context(model: &Model, inst: &Instance, h: HostId) -> Map<String, Json> {
    instance_context_at(model, inst, h, true)
}

/// [`instance_context`]; placements (`placement`, parameters) without their
/// `hosts` unless `with_hosts` (for a template that does not name `hosts`).
pub fn instance_context_at(
    model: &Model,
    inst: &Instance,
    h: HostId,
    with_hosts: bool,
) -> Map<String, Json> {
    let mut params = Map::new();
    for p in &inst.params {
        params.insert(
            p.name.clone(),
            value_json_at(model, &p.value, h, 1, with_hosts),
        );
    }
    let mut ctx = Map::new();
    for (k, v) in &params {
        if !RESERVED.contains(&k.as_str()) {
            ctx.insert(k.clone(), v.clone());
        }
    }
    let p = inst.placement.value;
    ctx.insert("kind".into(), json!(inst.kind.value));
    ctx.insert("name".into(), json!(inst.name.value));
    ctx.insert("qualified".into(), json!(inst.qualified()));
    ctx.insert("params".into(), Json::Object(params));
    ctx.insert("host".into(), host_json(model, h));
    ctx.insert(
        "placement".into(),
        placement_json_at(model, p, h, with_hosts),
    );
    ctx.insert(
        "group".into(),
        placement_group(p)
            .map(|g| group_json(model, g, h))
            .unwrap_or(Json::Null),
    );
    ctx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timespans() {
        assert_eq!(timespan(0), "0");
        assert_eq!(timespan(30), "30s");
        assert_eq!(timespan(120), "2min");
        assert_eq!(timespan(300), "5min");
        assert_eq!(timespan(90), "1min 30s");
        assert_eq!(timespan(86_400 + 3_600), "1d 1h");
    }
}
