//! Endpoints: attach (validate → reserve → allocate → veth → firewall, DNS → record) and
//! detach (record → firewall, DNS → veth → lease), both serialized per network only around
//! the allocation itself.

use super::error::{AgentError, Result};
use super::target::{self, NsIdent};
use super::{Agent, Net};
use crate::api::{AttachRequest, Detached, Endpoint, PortMapping, Target};
use berth_bridge::{host_veth_name, LeaseRequest, Mac, NetlinkError, VethSpec};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// An endpoint as persisted: `<run-root>/endpoints/<network>/<host-veth>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// The lease owner and veth key: `<container-id>/<ifname>`.
    pub owner: String,
    #[serde(flatten)]
    pub ep: Endpoint,
    /// Identity of the namespace at attach time.
    pub ns_dev: u64,
    pub ns_ino: u64,
}

impl Record {
    pub(crate) fn ident(&self) -> NsIdent {
        (self.ns_dev, self.ns_ino)
    }
    /// Whether the namespace the endpoint was made in still exists at its path.
    pub(crate) fn alive(&self) -> bool {
        target::ns_ident(std::path::Path::new(&self.ep.netns)) == Some(self.ident())
    }
}

/// An attach or detach in flight.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    container_id: String,
    network: String,
    ifname: String,
    ports: Vec<PortMapping>,
}

/// Every committed endpoint by owner key, and reservations of attaches in flight.
#[derive(Debug, Default)]
pub(crate) struct Index {
    pub(crate) eps: HashMap<String, Record>,
    pub(crate) pending: HashMap<String, Pending>,
}

fn port_clash(a: &PortMapping, b: &PortMapping) -> bool {
    a.protocol == b.protocol
        && a.host_port == b.host_port
        && match (a.host_ip, b.host_ip) {
            (Some(x), Some(y)) => x == y,
            _ => true,
        }
}

impl Index {
    /// `(network, ifname)` of every endpoint (committed or pending) of a container.
    fn of_container(&self, cid: &str) -> Vec<(String, String)> {
        self.eps
            .values()
            .map(|r| (&r.ep.container_id, &r.ep.network, &r.ep.ifname))
            .chain(
                self.pending
                    .values()
                    .map(|p| (&p.container_id, &p.network, &p.ifname)),
            )
            .filter(|(c, _, _)| *c == cid)
            .map(|(_, n, i)| (n.clone(), i.clone()))
            .collect()
    }

    fn port_holder(&self, p: &PortMapping) -> Option<String> {
        for r in self.eps.values() {
            if r.ep.ports.iter().any(|q| port_clash(p, q)) {
                return Some(format!("{} on network {}", r.ep.name, r.ep.network));
            }
        }
        for pe in self.pending.values() {
            if pe.ports.iter().any(|q| port_clash(p, q)) {
                return Some(format!("an attach in progress on network {}", pe.network));
            }
        }
        None
    }
}

/// Removes a reservation when the attach ends, however it ends.
struct Reservation<'a> {
    agent: &'a Agent,
    key: String,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.agent.index().pending.remove(&self.key);
    }
}

/// DNS names: letters, digits, '-', '_' and '.', at most 253 characters.
fn valid_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Agent {
    /// `<run-root>/endpoints/<network>/<xx>/<host-veth>.json`, where `xx` is the first two hex
    /// digits of the veth's hash: 256 small directories instead of one with an entry per
    /// endpoint, since creating a file in a large directory costs time proportional to its
    /// size on filesystems without directory indexes (ext4 without `dir_index`: ~0.5 ms at
    /// 1000 entries).
    pub(crate) fn record_path(&self, network: &str, host_ifname: &str) -> PathBuf {
        let shard = host_ifname.get(4..6).unwrap_or("00");
        self.ep_dir
            .join(network)
            .join(shard)
            .join(format!("{host_ifname}.json"))
    }

    fn write_record(&self, r: &Record) -> Result<()> {
        let p = self.record_path(&r.ep.network, &r.ep.host_ifname);
        let data = serde_json::to_vec(r).map_err(|e| AgentError::Internal(e.to_string()))?;
        let write = || crate::fsutil::write_record_volatile(&p, &data);
        let written = match write() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // the first record of its shard
                if let Some(d) = p.parent() {
                    std::fs::create_dir_all(d).map_err(|e| {
                        AgentError::Internal(format!("cannot create {}: {e}", d.display()))
                    })?;
                }
                write()
            }
            r => r,
        };
        written.map_err(|e| AgentError::Internal(format!("cannot write {}: {e}", p.display())))
    }

    pub(crate) fn remove_record(&self, r: &Record) {
        let p = self.record_path(&r.ep.network, &r.ep.host_ifname);
        if let Err(e) = std::fs::remove_file(&p) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %p.display(), error = %e, "cannot remove an endpoint record");
            }
        }
    }

    /// Reads every record into the index (start). Records of an agent from before the shard
    /// directories (`<network>/<host-veth>.json`) are moved into them.
    pub(crate) fn load_records(&self) -> Result<()> {
        let Ok(nets) = std::fs::read_dir(&self.ep_dir) else {
            return Ok(());
        };
        let mut found = Vec::new();
        for n in nets.flatten() {
            let Ok(entries) = std::fs::read_dir(n.path()) else {
                continue;
            };
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    if let Ok(files) = std::fs::read_dir(e.path()) {
                        found.extend(files.flatten().map(|f| (f.path(), false)));
                    }
                } else {
                    found.push((e.path(), true));
                }
            }
        }
        let mut idx = self.index();
        for (p, legacy) in found {
            if p.extension().is_none_or(|e| e != "json") {
                // a staging file of a crashed write
                let _ = std::fs::remove_file(&p);
                continue;
            }
            match std::fs::read(&p)
                .map_err(|e| e.to_string())
                .and_then(|d| serde_json::from_slice::<Record>(&d).map_err(|e| e.to_string()))
            {
                Ok(r) => {
                    if legacy {
                        match self.write_record(&r) {
                            Ok(()) => {
                                let _ = std::fs::remove_file(&p);
                            }
                            Err(e) => tracing::warn!(path = %p.display(), error = %e,
                                "cannot move an endpoint record into its shard directory"),
                        }
                    }
                    idx.eps.insert(r.owner.clone(), r);
                }
                Err(e) => {
                    tracing::warn!(path = %p.display(), error = %e, "dropping an unreadable endpoint record");
                    let _ = std::fs::remove_file(&p);
                }
            }
        }
        Ok(())
    }

    /// Records of one network.
    pub(crate) fn records_of(&self, network: &str) -> Vec<Record> {
        self.index()
            .eps
            .values()
            .filter(|r| r.ep.network == network)
            .cloned()
            .collect()
    }

    /// `POST /v1/endpoints`.
    pub async fn attach(&self, req: AttachRequest) -> Result<Endpoint> {
        let started = std::time::Instant::now();
        let tgt = target::resolve(&self.paths, &req.target(), true)?;
        let netname = match &req.network {
            Some(n) => n.clone(),
            None => {
                let d = self.config().default_network;
                if !d.enabled {
                    return Err(AgentError::BadRequest(
                        "no network given and the default network is disabled; use --network NAME"
                            .into(),
                    ));
                }
                d.name
            }
        };
        let net = self.net(&netname)?;
        // validate everything before touching anything
        let mut requested = Vec::new();
        if let Some(ip) = req.ip {
            if !ip.is_ipv4() {
                return Err(AgentError::BadRequest(format!(
                    "--ip {ip} is not an IPv4 address (use --ip6)"
                )));
            }
            requested.push(ip);
        }
        if let Some(ip) = req.ip6 {
            if !ip.is_ipv6() {
                return Err(AgentError::BadRequest(format!(
                    "--ip6 {ip} is not an IPv6 address"
                )));
            }
            if net.def.ipv6().is_none() {
                return Err(AgentError::BadRequest(format!(
                    "network {netname} has no IPv6 subnet; --ip6 cannot be used"
                )));
            }
            requested.push(ip);
        }
        let mac = match &req.mac {
            Some(m) => Some(
                Mac::parse_user(m)
                    .map_err(|e| AgentError::BadRequest(format!("--mac {m}: {e}")))?,
            ),
            None => None,
        };
        let name = req.name.clone().unwrap_or_else(|| tgt.name.clone());
        for a in std::iter::once(&name).chain(req.aliases.iter()) {
            if !valid_dns_name(a) {
                return Err(AgentError::BadRequest(format!(
                    "invalid name or alias {a:?}: use letters, digits, '-', '_' and '.'"
                )));
            }
        }
        for (i, p) in req.ports.iter().enumerate() {
            p.validate().map_err(AgentError::BadRequest)?;
            if req.ports[..i].iter().any(|q| port_clash(p, q)) {
                return Err(AgentError::PortInUse(format!(
                    "port {p} is given twice in the request"
                )));
            }
            if net.def.internal {
                return Err(AgentError::BadRequest(format!(
                    "network {netname} is internal: ports cannot be published from it"
                )));
            }
        }
        if !req.ports.is_empty() && !self.fw.enabled() {
            return Err(AgentError::BadRequest(
                "publishing ports needs the firewall ([firewall] enabled = true)".into(),
            ));
        }

        let gate = net.gate.read().await;
        if *gate {
            return Err(AgentError::NoNetwork(netname));
        }
        // a record of this container on this network whose namespace is gone (a path reused
        // for a new namespace) is stale: clear it first
        let stale = self
            .index()
            .eps
            .values()
            .find(|r| r.ep.container_id == tgt.id && r.ep.network == netname)
            .filter(|r| Some(r.ident()) != tgt.ident)
            .cloned();
        if let Some(r) = stale {
            self.teardown_endpoint(&net, &r).await;
        }
        // reserve the interface name and the ports
        let (key, ifname, first) = {
            let mut idx = self.index();
            let mine = idx.of_container(&tgt.id);
            if let Some((_, ifn)) = mine.iter().find(|(n, _)| *n == netname) {
                return Err(AgentError::AlreadyAttached(format!(
                    "{} is already attached to network {netname} (as {ifn})",
                    tgt.name
                )));
            }
            let mine = idx.of_container(&tgt.id);
            for p in &req.ports {
                if let Some(h) = idx.port_holder(p) {
                    return Err(AgentError::PortInUse(format!(
                        "port {p} is already published by {h}"
                    )));
                }
            }
            let used: HashSet<&str> = mine.iter().map(|(_, i)| i.as_str()).collect();
            let ifname = (0..)
                .map(|n| format!("eth{n}"))
                .find(|n| !used.contains(n.as_str()))
                .unwrap_or_else(|| "eth0".into());
            let key = format!("{}/{ifname}", tgt.id);
            idx.pending.insert(
                key.clone(),
                Pending {
                    container_id: tgt.id.clone(),
                    network: netname.clone(),
                    ifname: ifname.clone(),
                    ports: req.ports.clone(),
                },
            );
            (key, ifname, mine.is_empty())
        };
        let _res = Reservation {
            agent: self,
            key: key.clone(),
        };
        let (lease, durable) = net.ipam().allocate_deferred(LeaseRequest {
            owner: key.clone(),
            requested,
            netns: Some(tgt.netns.clone()),
            ifname: Some(ifname.clone()),
        })?;
        // the lease reaches the disk while the kernel work runs; it is checked before the
        // endpoint is committed (a crash before that leaves a lease without a record, which
        // reconcile releases)
        let durable = tokio::task::spawn_blocking(move || durable.wait());
        let release = |why: &dyn std::fmt::Display| {
            if let Err(e) = net.ipam().release(&key) {
                tracing::error!(owner = %key, error = %e, "cannot release the lease of a failed attach");
            }
            tracing::debug!(owner = %key, error = %why, "attach failed; lease released");
        };
        let announce = mac.is_some();
        let mac = mac.unwrap_or_else(|| match lease.ipv4() {
            Some(v4) => Mac::from_ipv4(v4),
            None => Mac::for_name(&key),
        });
        let default_route = first && !net.def.internal;
        let spec = VethSpec {
            bridge: net.def.bridge.clone(),
            host_ifname: host_veth_name(&key),
            netns: tgt.netns.clone(),
            ifname: ifname.clone(),
            mtu: net.def.mtu,
            mac,
            announce,
            addresses: lease.addresses.clone(),
            default_route,
            gateway4: net.def.ipv4().and_then(|s| match s.gateway {
                IpAddr::V4(g) => Some(g),
                _ => None,
            }),
            gateway6: net.def.ipv6().and_then(|s| match s.gateway {
                IpAddr::V6(g) => Some(g),
                _ => None,
            }),
        };
        let permit = self.kernel.acquire().await;
        let wire = async {
            match self.host.attach_veth(&spec).await {
                Err(NetlinkError::NoLink { name }) if name == net.def.bridge => {
                    // the bridge was deleted behind our back: repair and retry once
                    tracing::warn!(bridge = %name, "bridge missing; re-creating it");
                    self.ensure_bridge(&net.def).await?;
                    Ok(self.host.attach_veth(&spec).await?)
                }
                r => Ok(r?),
            }
        };
        let attached: Result<_> = match tokio::time::timeout(super::KERNEL_TIMEOUT, wire).await {
            Ok(r) => r,
            Err(_) => {
                let _ = self.host.detach_veth(&spec.host_ifname, None).await;
                Err(AgentError::Internal(format!(
                    "wiring {} into network {netname} took longer than {:?}; undone",
                    tgt.name,
                    super::KERNEL_TIMEOUT
                )))
            }
        };
        drop(permit);
        // until the pair is wired: how much of the attach was the kernel's
        let t_wire = started.elapsed();
        let attached = match attached {
            Ok(a) => a,
            Err(e) => {
                release(&e);
                return Err(e);
            }
        };
        let durable = match durable.await {
            Ok(r) => r.map_err(AgentError::from),
            Err(e) => Err(AgentError::Internal(format!("flushing the lease: {e}"))),
        };
        if let Err(e) = durable {
            let _ = self.host.detach_veth(&spec.host_ifname, None).await;
            release(&e);
            return Err(e);
        }
        let ep = Endpoint {
            container_id: tgt.id.clone(),
            name,
            network: netname.clone(),
            ifname: attached.ifname.clone(),
            host_ifname: attached.host_ifname.clone(),
            addresses: lease.addresses.iter().map(|a| a.to_string()).collect(),
            gateways: net.def.subnets.iter().map(|s| s.gateway).collect(),
            mac: attached.mac.to_string(),
            mtu: attached.mtu,
            default_route,
            aliases: req.aliases.clone(),
            ports: req.ports.clone(),
            netns: tgt.netns.to_string_lossy().into_owned(),
            created: now(),
        };
        let (dev, ino) = tgt.ident.unwrap_or((0, 0));
        let rec = Record {
            owner: key.clone(),
            ep,
            ns_dev: dev,
            ns_ino: ino,
        };
        let undo_veth = || async {
            if let Err(u) = self.host.detach_veth(&spec.host_ifname, None).await {
                tracing::warn!(veth = %spec.host_ifname, error = %u, "cannot undo a failed attach");
            }
        };
        if let Err(e) = self.fw.publish(&rec).await {
            undo_veth().await;
            release(&e);
            return Err(e);
        }
        if let Err(e) = self.write_record(&rec) {
            let _ = self.fw.unpublish(&rec).await;
            undo_veth().await;
            release(&e);
            return Err(e);
        }
        self.index().eps.insert(key.clone(), rec.clone());
        self.dns.add(&netname, &rec);
        drop(gate);
        tracing::info!(container = %rec.ep.name, network = %netname, ifname = %rec.ep.ifname,
            addresses = ?rec.ep.addresses, kernel_us = t_wire.as_micros() as u64,
            total_us = started.elapsed().as_micros() as u64, "attached");
        Ok(rec.ep)
    }

    /// Undo one committed endpoint, best effort: record (the commit point), firewall, DNS,
    /// veth (tolerating a vanished namespace), lease. The caller holds the network's gate.
    pub(crate) async fn teardown_endpoint(&self, net: &Arc<Net>, r: &Record) {
        self.remove_record(r);
        self.index().eps.remove(&r.owner);
        if let Err(e) = self.fw.unpublish(r).await {
            tracing::warn!(owner = %r.owner, error = %e, "cannot unpublish the endpoint's ports");
        }
        self.dns.remove(&r.ep.network, r);
        let container = r
            .alive()
            .then(|| (std::path::Path::new(&r.ep.netns), r.ep.ifname.as_str()));
        let permit = self.kernel.acquire().await;
        match tokio::time::timeout(
            super::KERNEL_TIMEOUT,
            self.host.detach_veth(&r.ep.host_ifname, container),
        )
        .await
        {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(veth = %r.ep.host_ifname, error = %e, "cannot delete the endpoint's veth")
            }
            Err(_) => {
                tracing::warn!(veth = %r.ep.host_ifname, "deleting the endpoint's veth timed out; reconcile will retry")
            }
        }
        drop(permit);
        if let Err(e) = net.ipam().release(&r.owner) {
            tracing::error!(owner = %r.owner, error = %e, "cannot release the endpoint's lease");
        }
    }

    /// `DELETE /v1/endpoints`: detach a target from one network, or from all.
    pub async fn detach(&self, t: &Target, network: Option<&str>) -> Result<Detached> {
        let tgt = target::resolve(&self.paths, t, false)?;
        if let Some(n) = network {
            self.net(n)?;
        }
        let recs: Vec<Record> = self
            .index()
            .eps
            .values()
            .filter(|r| r.ep.container_id == tgt.id && network.is_none_or(|n| r.ep.network == n))
            .cloned()
            .collect();
        if recs.is_empty() {
            return Err(AgentError::NoEndpoint(match network {
                Some(n) => format!("{} is not attached to network {n}", tgt.name),
                None => format!("{} is not attached to any network", tgt.name),
            }));
        }
        let mut out = Vec::new();
        for r in recs {
            let Ok(net) = self.net(&r.ep.network) else {
                continue;
            };
            let _g = net.gate.read().await;
            // still there (no concurrent detach won)?
            if !self.index().eps.contains_key(&r.owner) {
                continue;
            }
            self.teardown_endpoint(&net, &r).await;
            tracing::info!(container = %r.ep.name, network = %r.ep.network, ifname = %r.ep.ifname, "detached");
            out.push(r.ep);
        }
        Ok(Detached { detached: out })
    }

    /// `GET /v1/endpoints`: all, or of one target and/or one network, sorted.
    pub fn list_endpoints(
        &self,
        t: Option<&Target>,
        network: Option<&str>,
    ) -> Result<Vec<Endpoint>> {
        let id = match t {
            Some(t) => Some(target::resolve(&self.paths, t, false)?.id),
            None => None,
        };
        if let Some(n) = network {
            self.net(n)?;
        }
        let mut v: Vec<Endpoint> = self
            .index()
            .eps
            .values()
            .filter(|r| id.as_ref().is_none_or(|i| r.ep.container_id == *i))
            .filter(|r| network.is_none_or(|n| r.ep.network == n))
            .map(|r| r.ep.clone())
            .collect();
        v.sort_by(|a, b| (&a.name, &a.ifname).cmp(&(&b.name, &b.ifname)));
        Ok(v)
    }

    /// Publish the names of `network` to its resolver.
    pub(crate) fn dns_refresh(&self, network: &str) {
        let recs = self.records_of(network);
        self.dns.refresh(network, &recs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ports() {
        assert!(valid_dns_name("web-1.example"));
        assert!(!valid_dns_name("-x") && !valid_dns_name("a b") && !valid_dns_name(""));
        let p = |s| crate::api::parse_port(s).unwrap();
        assert!(port_clash(&p("8080:80"), &p("127.0.0.1:8080:81")));
        assert!(!port_clash(
            &p("127.0.0.2:8080:80"),
            &p("127.0.0.1:8080:81")
        ));
        assert!(!port_clash(&p("8080:80/udp"), &p("8080:80")));
    }
}
