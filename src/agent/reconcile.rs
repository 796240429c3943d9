//! Reconcile: make the kernel and the leases agree with the endpoint records, and the records
//! with the live namespaces. Runs at start, on `POST /v1/reconcile`, and on a timer.
//!
//! Per network, holding its gate exclusively (so no attach or detach is in flight):
//! 1. a record whose namespace is gone (or is another namespace now), whose lease is missing,
//!    or whose host veth is gone (the pair dies with either end) is torn down;
//! 2. leases without a record (an attach cut short by a crash) are released and their veth,
//!    if any, deleted;
//! 3. `veth*` links enslaved to the network's bridge that belong to no record are deleted;
//! 4. the bridge is ensured (re-created or repaired).
//!
//! Then the firewall table is rebuilt from the records when it is missing.

use super::error::Result;
use super::Agent;
use crate::api::ReconcileReport;
use berth_bridge::host_veth_name;
use std::collections::HashSet;

impl Agent {
    /// See the module docs.
    pub async fn reconcile(&self) -> Result<ReconcileReport> {
        let r = self.reconcile_counted().await;
        super::metrics::count_reconcile(r.is_ok());
        r
    }

    async fn reconcile_counted(&self) -> Result<ReconcileReport> {
        let _a = self.admin.lock().await;
        let mut rep = ReconcileReport::default();
        for net in self.all_nets() {
            let gate = net.gate.write().await;
            if *gate {
                continue;
            }
            let name = net.def.name.clone();
            let links = self.host.links().await?;
            let bridge_idx = links
                .iter()
                .find(|l| l.name == net.def.bridge)
                .map(|l| l.index);
            // 1. records
            for r in self.records_of(&name) {
                let has_lease = net.ipam().get(&r.owner).is_some();
                let has_veth = links.iter().any(|l| l.name == r.ep.host_ifname);
                let alive = r.alive();
                if alive && has_lease && has_veth {
                    continue;
                }
                let why = if !alive {
                    "namespace gone"
                } else if !has_lease {
                    "lease missing"
                } else {
                    "veth gone"
                };
                tracing::info!(network = %name, container = %r.ep.name, ifname = %r.ep.ifname, why, "removing a stale endpoint");
                self.teardown_endpoint(&net, &r).await;
                rep.removed_endpoints
                    .push(format!("{name}/{}/{}", r.ep.name, r.ep.ifname));
            }
            // 2. leases without a record
            let owners: HashSet<String> = self
                .records_of(&name)
                .into_iter()
                .map(|r| r.owner)
                .collect();
            let released = net.ipam().retain(|l| owners.contains(&l.owner))?;
            for l in released {
                let veth = host_veth_name(&l.owner);
                if self.host.delete_link(&veth).await.unwrap_or(false) {
                    rep.deleted_veths.push(veth);
                }
                tracing::info!(network = %name, owner = %l.owner, "released a lease with no endpoint");
                rep.released_leases.push(format!("{name}/{}", l.owner));
            }
            // 3. our bridge's ports that no record explains
            let expected: HashSet<String> = self
                .records_of(&name)
                .into_iter()
                .map(|r| r.ep.host_ifname)
                .collect();
            if let Some(bi) = bridge_idx {
                for l in links.iter().filter(|l| {
                    l.controller == Some(bi)
                        && l.name.starts_with("veth")
                        && !expected.contains(&l.name)
                }) {
                    if rep.deleted_veths.contains(&l.name) {
                        continue;
                    }
                    match self.host.delete_link(&l.name).await {
                        Ok(true) => {
                            tracing::info!(network = %name, veth = %l.name, "deleted an orphan veth");
                            rep.deleted_veths.push(l.name.clone());
                        }
                        Ok(false) => {}
                        Err(e) => {
                            tracing::warn!(veth = %l.name, error = %e, "cannot delete an orphan veth")
                        }
                    }
                }
            } else {
                rep.bridges.push(net.def.bridge.clone());
            }
            // 4. the bridge
            if let Err(e) = self.ensure_bridge(&net.def).await {
                tracing::error!(network = %name, bridge = %net.def.bridge, error = %e, "cannot repair the bridge");
            }
            self.dns.ensure_network(&net.def).await;
            self.dns_refresh(&name);
            drop(gate);
        }
        // records of networks that no longer exist
        let known: HashSet<String> = self.all_nets().iter().map(|n| n.def.name.clone()).collect();
        let orphans: Vec<_> = self
            .index()
            .eps
            .values()
            .filter(|r| !known.contains(&r.ep.network))
            .cloned()
            .collect();
        for r in orphans {
            self.index().eps.remove(&r.owner);
            self.remove_record(&r);
            if self
                .host
                .delete_link(&r.ep.host_ifname)
                .await
                .unwrap_or(false)
            {
                rep.deleted_veths.push(r.ep.host_ifname.clone());
            }
            rep.removed_endpoints
                .push(format!("{}/{}/{}", r.ep.network, r.ep.name, r.ep.ifname));
        }
        rep.firewall_restored = self.fw.reconcile(self).await?;
        rep.networks = self.all_nets().len();
        rep.endpoints = self.index().eps.len();
        Ok(rep)
    }
}
