//! Stage 4: the dependency graph. Entry point: [`graph`].
//!
//! Nodes are instances (`postgres.main`) with edges from `needs`; every resource of an
//! instance on a host comes after every resource of the instances it needs on that host.
//! Across hosts, the failover roles order the apply: members that are not the usual
//! primary come first, the primary last, so redundancy holds while a change rolls out.
//! petgraph stays behind this module: callers get an order, or the cycle as a path.

use crate::diag::{codes, Diag};
use crate::resolve::{HostId, InstanceId, Model, Placement};
use petgraph::algo::{kosaraju_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::BTreeSet;
use std::fmt::Write;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graph {
    /// Instances, dependencies first; ties broken by declaration order.
    pub order: Vec<InstanceId>,
    /// Hosts in apply order: for every failover group, standbys before the primary.
    pub host_order: Vec<HostId>,
}

/// Order the model, or report every dependency cycle with each declaration on it.
pub fn graph(model: &Model) -> Result<Graph, Vec<Diag>> {
    let mut g: DiGraph<InstanceId, ()> = DiGraph::new();
    let nodes: Vec<NodeIndex> = (0..model.instances.len()).map(|i| g.add_node(i)).collect();
    for (i, inst) in model.instances.iter().enumerate() {
        for n in &inst.needs {
            g.add_edge(nodes[n.value], nodes[i], ());
        }
    }
    let mut diags = Vec::new();
    if toposort(&g, None).is_err() {
        let mut sccs = kosaraju_scc(&g);
        sccs.retain(|c| c.len() > 1);
        for scc in &mut sccs {
            let mut ids: Vec<InstanceId> = scc.iter().map(|n| g[*n]).collect();
            ids.sort();
            let cycle = cycle_path(model, &ids);
            // Message in "needs" direction: each one needs the next.
            let mut names: Vec<String> = cycle
                .iter()
                .map(|i| model.instances[*i].qualified())
                .collect();
            names.reverse();
            names.rotate_right(1);
            let first = cycle[0];
            let mut d = Diag::error(
                codes::E0401,
                format!("dependency cycle: {} → {} (each needs the next)", names.join(" → "), names[0]),
            )
            .help("a cycle in `needs` has no order to start or apply in: remove one of these dependencies");
            for (k, i) in cycle.iter().enumerate() {
                let next = cycle[(k + 1) % cycle.len()];
                // The `needs` entry of `next` that points at `i`.
                let span = model.instances[next]
                    .needs
                    .iter()
                    .find(|n| n.value == *i)
                    .map(|n| n.span)
                    .unwrap_or(model.instances[next].name.span);
                let text = format!(
                    "`{}` needs `{}`",
                    model.instances[next].qualified(),
                    model.instances[*i].qualified()
                );
                d = if k == 0 {
                    d.at(span, text)
                } else {
                    d.with(span, text)
                };
            }
            let _ = first;
            diags.push(d);
        }
        crate::diag::sort(&mut diags);
        return Err(diags);
    }
    Ok(Graph {
        order: stable_topo(model),
        host_order: host_order(model),
    })
}

/// Kahn's algorithm with the smallest ready id first: deterministic and stable.
fn stable_topo(model: &Model) -> Vec<InstanceId> {
    let n = model.instances.len();
    let mut indeg = vec![0usize; n];
    let mut out: Vec<Vec<InstanceId>> = vec![Vec::new(); n];
    for (i, inst) in model.instances.iter().enumerate() {
        for d in &inst.needs {
            indeg[i] += 1;
            out[d.value].push(i);
        }
    }
    let mut ready: BTreeSet<InstanceId> = (0..n).filter(|i| indeg[*i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &j in &out[i] {
            indeg[j] -= 1;
            if indeg[j] == 0 {
                ready.insert(j);
            }
        }
    }
    order
}

/// One cycle through the strongly connected component, as a path of instance ids
/// where each element is needed by the next.
fn cycle_path(model: &Model, scc: &[InstanceId]) -> Vec<InstanceId> {
    let inside: BTreeSet<InstanceId> = scc.iter().copied().collect();
    // Walk "is needed by" edges from the smallest id until we come back.
    let start = scc[0];
    let mut path = vec![start];
    let mut seen = BTreeSet::from([start]);
    let mut cur = start;
    loop {
        // successors of cur: instances inside the scc that need cur
        let next = (0..model.instances.len())
            .filter(|j| inside.contains(j))
            .find(|j| {
                model.instances[*j].needs.iter().any(|n| n.value == cur)
                    && (!seen.contains(j) || *j == start)
            });
        match next {
            Some(j) if j == start => return path,
            Some(j) => {
                path.push(j);
                seen.insert(j);
                cur = j;
            }
            None => {
                // Dead end inside the SCC (possible with several cycles): fall back to the SCC.
                return scc.to_vec();
            }
        }
    }
}

/// Hosts in apply order: a topological order of "standby before primary" edges; if
/// groups disagree (a host is primary in one group and standby in another), the
/// remaining hosts follow in declaration order.
fn host_order(model: &Model) -> Vec<HostId> {
    let n = model.hosts.len();
    let mut indeg = vec![0usize; n];
    let mut out: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    for g in &model.groups {
        if let Some(primary) = g.members.first() {
            for m in &g.members[1..] {
                if out[m.value.index()].insert(primary.value.index()) {
                    indeg[primary.value.index()] += 1;
                }
            }
        }
    }
    let mut ready: BTreeSet<usize> = (0..n).filter(|h| indeg[*h] == 0).collect();
    let mut order = Vec::with_capacity(n);
    let mut done = vec![false; n];
    while let Some(h) = ready.pop_first() {
        order.push(HostId::new(h));
        done[h] = true;
        for &j in &out[h] {
            indeg[j] -= 1;
            if indeg[j] == 0 {
                ready.insert(j);
            }
        }
    }
    order.extend((0..n).filter(|h| !done[*h]).map(HostId::new));
    order
}

/// Graphviz DOT: one cluster per host with the instances placed there, `needs` edges
/// inside hosts, and dashed "apply before" edges between members of a failover group.
pub fn to_dot(model: &Model, graph: &Graph) -> String {
    let mut s = String::from(
        "digraph infra {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n",
    );
    for &h in &graph.host_order {
        let host = &model.hosts[h];
        let _ = writeln!(s, "  subgraph \"cluster_{}\" {{", host.name.value);
        let _ = writeln!(
            s,
            "    label=\"{} ({})\";",
            host.name.value, host.address.value
        );
        for &i in &graph.order {
            let inst = &model.instances[i];
            if model.placement_hosts(inst.placement.value).contains(&h) {
                let active = matches!(inst.placement.value, Placement::Active(_));
                let _ = writeln!(
                    s,
                    "    \"{}/{}\" [label=\"{}{}\"];",
                    host.name.value,
                    inst.qualified(),
                    inst.qualified(),
                    if active { "\\n(active only)" } else { "" }
                );
            }
        }
        let _ = writeln!(
            s,
            "    \"{}/host\" [label=\"{}\", shape=ellipse];",
            host.name.value, host.name.value
        );
        s.push_str("  }\n");
    }
    for &i in &graph.order {
        let inst = &model.instances[i];
        for need in &inst.needs {
            for h in model.placement_hosts(inst.placement.value) {
                if model
                    .placement_hosts(model.instances[need.value].placement.value)
                    .contains(&h)
                {
                    let hn = &model.hosts[h].name.value;
                    let _ = writeln!(
                        s,
                        "  \"{hn}/{}\" -> \"{hn}/{}\";",
                        model.instances[need.value].qualified(),
                        inst.qualified()
                    );
                }
            }
        }
    }
    for g in &model.groups {
        if let Some(p) = g.members.first() {
            for m in &g.members[1..] {
                let _ = writeln!(
                    s,
                    "  \"{}/host\" -> \"{}/host\" [style=dashed, label=\"{}: apply before\"];",
                    model.hosts[m.value].name.value, model.hosts[p.value].name.value, g.name.value
                );
            }
        }
    }
    s.push_str("}\n");
    s
}

/// What a person pictures: each failover group with its members and their
/// addresses, the VIP on `holder` (the member holding it now, from `infra status`,
/// or else the usual primary), the databases and shares replicating from the
/// holder to the other members, the active-only jobs on the holder's side, and the
/// witness; hosts in no group stand alone. `failing`: hosts drawn as failing (red).
pub struct Topology<'a> {
    pub model: &'a Model,
    /// Group name -> the member holding its VIP now (`--live`).
    pub holders: std::collections::BTreeMap<String, String>,
    pub failing: BTreeSet<String>,
    /// Group name -> the member its witness lease names now (`--live`).
    pub leases: std::collections::BTreeMap<String, String>,
}

impl Topology<'_> {
    fn holder(&self, g: crate::resolve::GroupId) -> Option<HostId> {
        let group = &self.model.groups[g];
        match self.holders.get(&group.name.value) {
            Some(h) => self.model.host_id(h),
            None => group.members.first().map(|m| m.value),
        }
    }

    /// Replicating instances of group `g`: (kind.name, what it carries).
    fn flows(&self, g: crate::resolve::GroupId) -> Vec<(String, &'static str)> {
        self.model
            .instances
            .iter()
            .filter(|i| {
                matches!(i.placement.value, Placement::Group(x) | Placement::Active(x) if x == g)
            })
            .filter_map(|i| match i.kind.value.as_str() {
                "postgres" | "mariadb" => Some((i.qualified(), "replication")),
                "share" => Some((i.qualified(), "push")),
                _ => None,
            })
            .collect()
    }

    fn active_jobs(&self, g: crate::resolve::GroupId) -> Vec<String> {
        self.model
            .instances
            .iter()
            .filter(|i| i.kind.value == "job")
            .filter(|i| matches!(i.placement.value, Placement::Active(x) if x == g))
            .map(|i| i.name.value.clone())
            .collect()
    }

    /// Graphviz DOT, deterministic.
    pub fn dot(&self) -> String {
        let m = self.model;
        let mut s = String::from(
            "digraph topology {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n  edge [fontname=\"monospace\", fontsize=10];\n",
        );
        let mut drawn = BTreeSet::new();
        for g in m.group_ids() {
            let group = &m.groups[g];
            let holder = self.holder(g);
            let _ = writeln!(s, "  subgraph \"cluster_{}\" {{", group.name.value);
            let _ = writeln!(s, "    label=\"failover {}\";", group.name.value);
            let vip = format!("vip_{}", group.name.value);
            let _ = writeln!(
                s,
                "    \"{vip}\" [label=\"VIP {}\", shape=ellipse];",
                group.vip.value.addr
            );
            for mem in &group.members {
                let h = &m.hosts[mem.value];
                drawn.insert(mem.value);
                let mut label = format!("{}\\n{}", h.name.value, h.address.value);
                if Some(mem.value) == holder {
                    let jobs = self.active_jobs(g);
                    if !jobs.is_empty() {
                        label.push_str(&format!("\\njobs: {}", jobs.join(", ")));
                    }
                }
                let colour = if self.failing.contains(&h.name.value) {
                    ", color=red, fontcolor=red"
                } else {
                    ""
                };
                let _ = writeln!(
                    s,
                    "    \"{}.{}\" [label=\"{label}\"{colour}];",
                    group.name.value, h.name.value
                );
            }
            if let Some(w) = &group.witness {
                let h = &m.hosts[w.value];
                drawn.insert(w.value);
                let _ = writeln!(
                    s,
                    "    \"{}.{}\" [label=\"{}\\n{}\\nwitness\", style=dashed];",
                    group.name.value, h.name.value, h.name.value, h.address.value
                );
            }
            if let Some(hid) = holder {
                let hn = &m.hosts[hid].name.value;
                let _ = writeln!(
                    s,
                    "    \"{vip}\" -> \"{}.{hn}\" [label=\"{}\", style=bold];",
                    group.name.value,
                    if self.holders.contains_key(&group.name.value) {
                        "held by"
                    } else {
                        "usually on"
                    }
                );
                for mem in group.members.iter().filter(|x| x.value != hid) {
                    let other = &m.hosts[mem.value].name.value;
                    for (what, how) in self.flows(g) {
                        let _ = writeln!(
                            s,
                            "    \"{}.{hn}\" -> \"{}.{other}\" [label=\"{what} ({how})\"];",
                            group.name.value, group.name.value
                        );
                    }
                }
                if let Some(w) = &group.witness {
                    let lease = self.leases.get(&group.name.value);
                    for mem in &group.members {
                        let name = &m.hosts[mem.value].name.value;
                        let (label, style) = if lease == Some(name) {
                            ("holds the lease", "\"dashed,bold\"")
                        } else {
                            ("lease", "dashed")
                        };
                        let _ = writeln!(
                            s,
                            "    \"{}.{name}\" -> \"{}.{}\" [label=\"{label}\", style={style}, dir=none];",
                            group.name.value,
                            group.name.value,
                            m.hosts[w.value].name.value
                        );
                    }
                }
            }
            s.push_str("  }\n");
        }
        for h in m.host_ids().filter(|h| !drawn.contains(h)) {
            let host = &m.hosts[h];
            let _ = writeln!(
                s,
                "  \"{}\" [label=\"{}\\n{}\"];",
                host.name.value, host.name.value, host.address.value
            );
        }
        s.push_str("}\n");
        s
    }

    /// The same as text, for a terminal.
    pub fn text(&self) -> String {
        let m = self.model;
        let mut s = String::new();
        let mut drawn = BTreeSet::new();
        for g in m.group_ids() {
            let group = &m.groups[g];
            let holder = self.holder(g);
            let hn = holder
                .map(|h| m.hosts[h].name.value.clone())
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "failover {}: VIP {} {} {hn}",
                group.name.value,
                group.vip.value.addr,
                if self.holders.contains_key(&group.name.value) {
                    "held by"
                } else {
                    "usually on"
                }
            );
            for mem in &group.members {
                let h = &m.hosts[mem.value];
                drawn.insert(mem.value);
                let _ = writeln!(
                    s,
                    "  {:<12} {:<15}{}{}",
                    h.name.value,
                    h.address.value.to_string(),
                    if Some(mem.value) == holder {
                        "  (VIP)"
                    } else {
                        ""
                    },
                    if self.failing.contains(&h.name.value) {
                        "  FAILING"
                    } else {
                        ""
                    }
                );
            }
            if let Some(w) = &group.witness {
                let h = &m.hosts[w.value];
                drawn.insert(w.value);
                let lease = match self.leases.get(&group.name.value) {
                    Some(l) => format!("; lease held by {l}"),
                    None => String::new(),
                };
                let _ = writeln!(
                    s,
                    "  {:<12} {:<15}  (witness{lease})",
                    h.name.value,
                    h.address.value.to_string()
                );
            }
            for mem in group.members.iter().filter(|x| Some(x.value) != holder) {
                for (what, how) in self.flows(g) {
                    let _ = writeln!(
                        s,
                        "  {hn} --{what} ({how})--> {}",
                        m.hosts[mem.value].name.value
                    );
                }
            }
            let jobs = self.active_jobs(g);
            if !jobs.is_empty() {
                let _ = writeln!(s, "  jobs on {hn} (the VIP holder): {}", jobs.join(", "));
            }
        }
        for h in m.host_ids().filter(|h| !drawn.contains(h)) {
            let host = &m.hosts[h];
            let _ = writeln!(s, "{:<14} {}", host.name.value, host.address.value);
        }
        s.lines().map(|l| format!("{}\n", l.trim_end())).collect()
    }
}
