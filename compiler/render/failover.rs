//! The failover groups, built in (not a kind): on every member, one
//! /etc/keepalived/keepalived.conf covering every group the host belongs to, the
//! health-check and notify scripts, `infra-GROUP-active.target`, the keepalived
//! package and service, and the host's [`RoleOut`]s. Templates under
//! `keepalived/` (overridable like any other).

use super::context::{self, group_json, host_json, ident};
use super::engine::{Engine, Use};
use super::{HostState, MemberRole, RoleOut, Writer};
use crate::diag::Diag;
use crate::encode::Mode;
use crate::resolve::model::{Check, GroupId, HostId, Model};
use serde_json::{json, Map, Value as Json};
use std::net::Ipv4Addr;

pub const CONF: &str = "/etc/keepalived/keepalived.conf";
pub const NOTIFY: &str = "/etc/keepalived/infra-notify.sh";

pub fn check_script(group: &str) -> String {
    format!("/etc/keepalived/infra-check-{group}.sh")
}

/// Where kinds on a group put checks of their own (run before the group's check).
pub fn check_dir(group: &str) -> String {
    format!("/etc/keepalived/infra-check-{group}.d")
}

/// Whether this member may take the VIP (tracked by keepalived, not apply's check).
pub fn eligible_script(group: &str) -> String {
    format!("/etc/keepalived/infra-eligible-{group}.sh")
}

/// Where kinds on a group put conditions for taking the VIP.
pub fn eligible_dir(group: &str) -> String {
    format!("/etc/keepalived/infra-eligible-{group}.d")
}

/// Whether another member could take the VIP over (run by the group's check on the
/// VIP holder when it fails, as keepalived runs it).
pub fn takeover_script(group: &str) -> String {
    format!("/etc/keepalived/infra-takeover-{group}.sh")
}

/// Where kinds on a group put their part of that test (`SCRIPT ADDRESS`: may the
/// member at ADDRESS take over, asked from here).
pub fn takeover_dir(group: &str) -> String {
    format!("/etc/keepalived/infra-takeover-{group}.d")
}

/// Seconds keepalived gives the group's check: the kinds' checks (a database: 1 s)
/// and the group's own (curl: 2 s), then, when it failed on the VIP holder, 2 s for
/// each other member asked whether it could take over.
pub fn check_timeout(peers: usize) -> usize {
    4 + 2 * peers
}

/// The group's HTTP check as a peer answers it, asked from here: a check of this
/// host's loopback (`http://127.0.0.1/health`) is the same URL on the peer's
/// address. None for a URL naming another host (the peer would see what this
/// host sees: no test of the peer).
pub fn peer_url(url: &str, address: Ipv4Addr) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => v6.split_once(']')?,
        None => match authority.rfind(':') {
            Some(i) => authority.split_at(i),
            None => (authority, ""),
        },
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    loopback.then(|| format!("{scheme}://{address}{port}{path}"))
}

/// Groups each host is a member of, in declaration order (computed once per render).
pub fn groups_by_host(model: &Model) -> Vec<Vec<GroupId>> {
    let mut out = vec![Vec::new(); model.hosts.len()];
    for (g, group) in model.group_ids().zip(&model.groups) {
        for m in &group.members {
            if let Some(v) = out.get_mut(m.value.index()) {
                v.push(g);
            }
        }
    }
    out
}

fn base_ctx(model: &Model, h: HostId) -> Map<String, Json> {
    let mut ctx = Map::new();
    ctx.insert("host".into(), host_json(model, h));
    ctx
}

/// A group's context with the names of its keepalived scripts and identifiers.
fn keepalived_group_json(model: &Model, gid: GroupId, h: HostId) -> Json {
    let g = &model.groups[gid];
    let name = &g.name.value;
    let mut gj = group_json(model, gid, h);
    if let Json::Object(o) = &mut gj {
        o.insert(
            "vrrp_instance".into(),
            json!(format!("infra_{}", ident(name))),
        );
        o.insert(
            "check_name".into(),
            json!(format!("infra_check_{}", ident(name))),
        );
        o.insert("check_script".into(), json!(check_script(name)));
        o.insert("check_dir".into(), json!(check_dir(name)));
        o.insert(
            "eligible_name".into(),
            json!(format!("infra_eligible_{}", ident(name))),
        );
        o.insert("eligible_script".into(), json!(eligible_script(name)));
        o.insert("eligible_dir".into(), json!(eligible_dir(name)));
        o.insert("takeover_script".into(), json!(takeover_script(name)));
        o.insert("takeover_dir".into(), json!(takeover_dir(name)));
        o.insert("notify_script".into(), json!(NOTIFY));
        // the peers as group_json lists them: every member but this host's position
        let pos = g.position(h);
        let others = (0..g.members.len())
            .filter(|i| Some(*i) != pos)
            .map(|i| g.members[i].value);
        if let Some(Json::Array(peers)) = o.get_mut("peers") {
            for (p, m) in peers.iter_mut().zip(others) {
                let url = match &g.check.value {
                    Check::Http(url) => peer_url(url, model.hosts[m].address.value),
                    _ => None,
                };
                if let Json::Object(po) = p {
                    po.insert("check_url".into(), json!(url));
                }
            }
            let n = peers.len();
            o.insert("check_timeout".into(), json!(check_timeout(n)));
        }
    }
    gj
}

/// Files and target units of the groups (before the instances).
pub(super) fn render_groups(
    model: &Model,
    h: HostId,
    gids: &[GroupId],
    engine: &mut Engine<'_>,
    hb: &mut HostState,
    diags: &mut Vec<Diag>,
) {
    if gids.is_empty() {
        return;
    }
    hb.package("keepalived");
    let mut groups_json = Vec::new();
    for &gid in gids {
        let g = &model.groups[gid];
        let name = &g.name.value;
        let origin = format!("failover.{name}");
        match &g.check.value {
            Check::Http(_) => hb.package("curl"),
            Check::Exec(command) => {
                if let Some(p) = exec_package(command) {
                    hb.package(p);
                }
            }
            Check::Tcp(_) => {}
        }
        for p in &g.check_packages {
            hb.package(&p.value);
        }
        let gj = keepalived_group_json(model, gid, h);
        groups_json.push(gj.clone());

        let mut ctx = base_ctx(model, h);
        ctx.insert("group".into(), gj);
        let who = Writer {
            origin: origin.clone(),
            span: g.span,
            place: g.name.span,
            instance: None,
        };
        // the health check (errors point at `check =`) and the eligibility check
        for (template, path, span) in [
            ("keepalived/check.sh.hbs", check_script(name), g.check.span),
            ("keepalived/eligible.sh.hbs", eligible_script(name), g.span),
            (
                "keepalived/takeover.sh.hbs",
                takeover_script(name),
                g.check.span,
            ),
        ] {
            let at = Use {
                span,
                origin: &origin,
                instance_span: g.span,
            };
            match engine.render(template, ctx.clone(), &at) {
                Ok(text) => hb.file(
                    &path,
                    Mode::EXECUTABLE,
                    "root",
                    "root",
                    text,
                    who.clone(),
                    false,
                    diags,
                ),
                Err(d) => diags.push(d),
            }
        }
        let at = Use {
            span: g.span,
            origin: &origin,
            instance_span: g.span,
        };
        match engine.render("keepalived/active.target.hbs", ctx, &at) {
            Ok(text) => hb.unit(
                &context::active_target(name),
                text,
                false,
                false,
                who,
                diags,
            ),
            Err(d) => diags.push(d),
        }
        let pos = g.position(h).unwrap_or(0);
        let mut apply_order: Vec<String> = g
            .members
            .iter()
            .skip(1)
            .map(|m| model.hosts[m.value].name.value.clone())
            .collect();
        if let Some(first) = g.members.first() {
            apply_order.push(model.hosts[first.value].name.value.clone());
        }
        hb.out.roles.push(RoleOut {
            group: name.clone(),
            role: if pos == 0 {
                MemberRole::Primary
            } else {
                MemberRole::Standby
            },
            priority: g.priorities.value.get(pos).copied().unwrap_or(0),
            vip: g.vip.value.to_string(),
            interface: g.interface.value.clone(),
            apply_order,
        });
    }

    let first = &model.groups[gids[0]];
    let origin = "failover".to_string();
    let who = Writer {
        origin: origin.clone(),
        span: first.span,
        place: first.name.span,
        instance: None,
    };
    let at = Use {
        span: first.span,
        origin: &origin,
        instance_span: first.span,
    };
    let mut ctx = base_ctx(model, h);
    ctx.insert("groups".into(), Json::Array(groups_json));
    match engine.render("keepalived/keepalived.conf.hbs", ctx.clone(), &at) {
        Ok(text) => hb.file(
            CONF,
            Mode::FILE,
            "root",
            "root",
            text,
            who.clone(),
            false,
            diags,
        ),
        Err(d) => diags.push(d),
    }
    match engine.render("keepalived/notify.sh.hbs", ctx, &at) {
        Ok(text) => hb.file(
            NOTIFY,
            Mode::EXECUTABLE,
            "root",
            "root",
            text,
            who,
            false,
            diags,
        ),
        Err(d) => diags.push(d),
    }
}

/// The witness of the groups that have one: on their members and on the witness,
/// one etcd member (`infra-etcd.service`; the distribution's `etcd.service` is
/// disabled: its default single-member cluster would hold the ports); on each
/// member, the lease loop that decides whether keepalived may hold the VIP
/// (`infra-witness-GROUP.service`, tracked as a file by keepalived).
pub(super) fn render_witness(
    model: &Model,
    h: HostId,
    engine: &mut Engine<'_>,
    hb: &mut HostState,
    diags: &mut Vec<Diag>,
) {
    let witnessed: Vec<GroupId> = model
        .group_ids()
        .filter(|&g| model.groups[g].witness_cluster().contains(&h))
        .collect();
    // one etcd member per host (lint E0519: groups sharing a host share its hosts)
    let Some(&first) = witnessed.first() else {
        return;
    };
    let g = &model.groups[first];
    let wspan = g.witness.as_ref().map_or(g.span, |w| w.span);
    let origin = format!("failover.{}", g.name.value);
    let who = Writer {
        origin: origin.clone(),
        span: wspan,
        place: wspan,
        instance: None,
    };
    let at = Use {
        span: wspan,
        origin: &origin,
        instance_span: g.span,
    };
    hb.package("etcd-server");
    hb.package("etcd-client");
    let mut ctx = base_ctx(model, h);
    ctx.insert(
        "etcd".into(),
        context::etcd_json(model, &g.witness_cluster(), h),
    );
    let groups: Vec<Json> = witnessed
        .iter()
        .map(|&x| json!(model.groups[x].name.value))
        .collect();
    ctx.insert("witness_groups".into(), Json::Array(groups));
    ctx.insert("etcd_env".into(), json!(ETCD_ENV));
    match engine.render("witness/etcd.env.hbs", ctx.clone(), &at) {
        Ok(text) => hb.file(
            ETCD_ENV,
            Mode::FILE,
            "root",
            "root",
            text,
            who.clone(),
            false,
            diags,
        ),
        Err(d) => diags.push(d),
    }
    match engine.render("witness/etcd.service.hbs", ctx, &at) {
        Ok(text) => hb.unit(ETCD_UNIT, text, true, true, who.clone(), diags),
        Err(d) => diags.push(d),
    }
    hb.out.steps.push(super::build::StepOut {
        name: "witness-distro-etcd-off".into(),
        run: "systemctl disable --now etcd.service".into(),
        unless: Some(
            "! systemctl is-enabled --quiet etcd.service && ! systemctl is-active --quiet etcd.service"
                .into(),
        ),
        origin: origin.clone(),
    });
    for &gid in &witnessed {
        let g = &model.groups[gid];
        if g.position(h).is_none() {
            continue;
        }
        let name = &g.name.value;
        let origin = format!("failover.{name}");
        let wspan = g.witness.as_ref().map_or(g.span, |w| w.span);
        let who = Writer {
            origin: origin.clone(),
            span: wspan,
            place: wspan,
            instance: None,
        };
        let at = Use {
            span: wspan,
            origin: &origin,
            instance_span: g.span,
        };
        let mut ctx = base_ctx(model, h);
        ctx.insert("group".into(), keepalived_group_json(model, gid, h));
        match engine.render("witness/lease.sh.hbs", ctx.clone(), &at) {
            Ok(text) => hb.file(
                &format!("/etc/keepalived/infra-witness-{name}.sh"),
                Mode::EXECUTABLE,
                "root",
                "root",
                text,
                who.clone(),
                false,
                diags,
            ),
            Err(d) => diags.push(d),
        }
        match engine.render("witness/lease.service.hbs", ctx, &at) {
            Ok(text) => hb.unit(
                &format!("infra-witness-{name}.service"),
                text,
                true,
                true,
                who,
                diags,
            ),
            Err(d) => diags.push(d),
        }
    }
}

/// Where the etcd member of a witness cluster reads its configuration.
pub const ETCD_ENV: &str = "/etc/infra/etcd/etcd.env";
/// The etcd member's unit (ours, not the distribution's `etcd.service`).
pub const ETCD_UNIT: &str = "infra-etcd.service";

/// keepalived.service last: it is started once everything it triggers is in place.
pub(super) fn finish_groups(model: &Model, gids: &[GroupId], hb: &mut HostState) {
    if let Some(&g) = gids.first() {
        let who = Writer {
            origin: "failover".into(),
            span: model.groups[g].span,
            place: model.groups[g].name.span,
            instance: None,
        };
        hb.distro_unit("keepalived.service", vec![CONF.to_string()], who);
    }
}

/// The Debian package of an `exec` check's command, for the commands checks are
/// usually written with and a minimal Debian lacks (others: `check_packages`).
fn exec_package(command: &str) -> Option<&'static str> {
    let word = command.split_whitespace().next()?;
    let tool = word.rsplit('/').next().unwrap_or(word);
    Some(match tool {
        "curl" => "curl",
        "wget" => "wget",
        "nc" => "netcat-openbsd",
        "jq" => "jq",
        "dig" => "bind9-dnsutils",
        "pg_isready" | "psql" => "postgresql-client",
        "mariadb" | "mariadb-admin" | "mysql" | "mysqladmin" => "mariadb-client",
        _ => return None,
    })
}
