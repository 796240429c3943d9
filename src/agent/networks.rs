//! Networks: create (validate, bridge, firewall, resolver, then store), list, inspect, remove.

use super::error::{AgentError, Result};
use super::{Agent, Net};
use crate::api::{Network, NetworkCreate, SubnetInfo};
use berth_bridge::netlink::sysctl;
use berth_bridge::{BridgeSpec, Ipam, NetworkDef, NetworkSpec, StoreError};
use std::sync::{Arc, Mutex};

impl Agent {
    /// The bridge of `def` as the spec says (idempotent; also repairs a deleted bridge).
    pub(crate) async fn ensure_bridge(&self, def: &NetworkDef) -> Result<()> {
        self.host
            .ensure_bridge(&BridgeSpec {
                name: def.bridge.clone(),
                mtu: def.mtu,
                addresses: def.gateway_addresses(),
                mac: None,
                internal: def.internal,
            })
            .await?;
        Ok(())
    }

    /// Opens the leases and brings the bridge, firewall and resolver of a network up.
    pub(crate) async fn bring_up(&self, def: NetworkDef) -> Result<Arc<Net>> {
        let ipam = Ipam::open(&self.lease_dir, &def.name, &def.subnets)?;
        self.ensure_bridge(&def).await?;
        if def.ipv6().is_some() && !def.internal {
            if let Err(e) = sysctl::enable_ipv6_forwarding() {
                tracing::warn!(error = %e, network = %def.name, "cannot turn on IPv6 forwarding");
            }
        }
        self.fw.add_network(&def).await?;
        self.dns.start_network(&def).await;
        Ok(Arc::new(Net {
            def,
            ipam: Mutex::new(ipam),
            gate: tokio::sync::RwLock::new(false),
        }))
    }

    /// Validate, bring up, then store; nothing is left behind when a step fails.
    async fn create_inner(&self, spec: &NetworkSpec) -> Result<Arc<Net>> {
        let routes = self.host.host_routes().await?;
        let def = self.store.validate(spec, &routes)?;
        if let Some(n) = self.all_nets().iter().find(|n| n.def.bridge == def.bridge) {
            return Err(StoreError::BridgeInUse {
                bridge: def.bridge,
                other: n.def.name.clone(),
            }
            .into());
        }
        let existed = self.host.link(&def.bridge).await?.is_some();
        let net = match self.bring_up(def.clone()).await {
            Ok(n) => n,
            Err(e) => {
                self.teardown_network(&def, existed).await;
                return Err(e);
            }
        };
        if let Err(e) = self.store.put(&def) {
            self.teardown_network(&def, existed).await;
            return Err(e.into());
        }
        self.insert_net(net.clone());
        tracing::info!(network = %def.name, bridge = %def.bridge, "network created");
        Ok(net)
    }

    /// Best effort: resolver, firewall, bridge (unless it existed before), lease file.
    async fn teardown_network(&self, def: &NetworkDef, keep_bridge: bool) {
        self.dns.stop_network(&def.name).await;
        if let Err(e) = self.fw.remove_network(&def.name).await {
            tracing::warn!(network = %def.name, error = %e, "cannot remove the network's firewall rules");
        }
        if !keep_bridge {
            if let Err(e) = self.host.delete_link(&def.bridge).await {
                tracing::warn!(bridge = %def.bridge, error = %e, "cannot delete the bridge");
            }
        }
        if let Err(e) = Ipam::remove_file(&self.lease_dir, &def.name) {
            tracing::warn!(network = %def.name, error = %e, "cannot remove the lease file");
        }
        let _ = std::fs::remove_dir_all(self.ep_dir.join(&def.name));
    }

    /// `POST /v1/networks`.
    pub async fn create_network(&self, req: NetworkCreate) -> Result<Network> {
        let spec = NetworkSpec {
            name: req.name,
            subnets: req.subnets,
            gateways: req.gateways,
            internal: req.internal,
            mtu: req.mtu,
            bridge: req.bridge,
        };
        let _a = self.admin.lock().await;
        let net = self.create_inner(&spec).await?;
        Ok(self.network_info(&net))
    }

    /// Creates the configured default network when it is missing.
    pub(crate) async fn ensure_default_network(&self) -> Result<()> {
        let cfg = self.config().default_network;
        if !cfg.enabled {
            return Ok(());
        }
        if let Ok(n) = self.net(&cfg.name) {
            if n.def.bridge != cfg.bridge
                || n.def.ipv4().map(|s| s.subnet.to_string()) != Some(cfg.subnet.clone())
            {
                tracing::warn!(network = %cfg.name, bridge = %n.def.bridge,
                    "the default network exists with another bridge or subnet than the configuration says; keeping it (remove it with berthd stopped to re-create it)");
            }
            return Ok(());
        }
        let mut subnets = vec![cfg.subnet.clone()];
        subnets.extend(cfg.subnet6.clone());
        let spec = NetworkSpec {
            name: cfg.name.clone(),
            subnets,
            gateways: Vec::new(),
            internal: false,
            mtu: cfg.mtu,
            bridge: Some(cfg.bridge.clone()),
        };
        match self.create_inner(&spec).await {
            Ok(_) => Ok(()),
            Err(e @ AgentError::Store(_)) => Err(AgentError::Internal(format!(
                "cannot create the default network {}: {e}; set default_network.subnet (and .bridge) in {} to a free range, or default_network.enabled = false",
                cfg.name,
                self.config_path.display()
            ))),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn network_info(&self, net: &Net) -> Network {
        let ipam = net.ipam();
        let usage = ipam.usage();
        let default = self.config().default_network;
        Network {
            name: net.def.name.clone(),
            id: net.def.id.clone(),
            bridge: net.def.bridge.clone(),
            subnets: net
                .def
                .subnets
                .iter()
                .map(|s| {
                    let (cap, used) = usage
                        .iter()
                        .find(|u| u.0 == s.subnet)
                        .map(|u| (u.1, u.2))
                        .unwrap_or((0, 0));
                    SubnetInfo {
                        subnet: s.subnet.to_string(),
                        gateway: s.gateway,
                        capacity: u64::try_from(cap).unwrap_or(u64::MAX),
                        in_use: u64::try_from(used).unwrap_or(u64::MAX),
                    }
                })
                .collect(),
            internal: net.def.internal,
            mtu: net.def.mtu,
            default: default.enabled && default.name == net.def.name,
            endpoints: ipam.len(),
        }
    }

    pub fn list_networks(&self) -> Vec<Network> {
        self.all_nets()
            .iter()
            .map(|n| self.network_info(n))
            .collect()
    }

    pub fn inspect_network(&self, name: &str) -> Result<Network> {
        let net = self.net(name)?;
        Ok(self.network_info(&net))
    }

    /// `DELETE /v1/networks/{name}`: refuses a network with endpoints unless `force`, which
    /// detaches them first.
    pub async fn delete_network(&self, name: &str, force: bool) -> Result<Network> {
        let _a = self.admin.lock().await;
        let net = self.net(name)?;
        let cfg = self.config().default_network;
        if cfg.enabled && cfg.name == name {
            return Err(AgentError::Forbidden(format!(
                "network {name} is berthd's default network (default_network in {}); it cannot be removed while configured",
                self.config_path.display()
            )));
        }
        let mut gate = net.gate.write().await;
        let eps = self.records_of(name);
        if !eps.is_empty() && !force {
            let names: Vec<String> = eps.iter().take(5).map(|r| r.ep.name.clone()).collect();
            return Err(AgentError::NetworkInUse(format!(
                "network {name} has {} endpoint(s) ({}{}); detach them or use `netctl network rm -f`",
                eps.len(),
                names.join(", "),
                if eps.len() > 5 { ", ..." } else { "" }
            )));
        }
        for r in eps {
            self.teardown_endpoint(&net, &r).await;
        }
        let info = self.network_info(&net);
        self.store.remove(name)?;
        *gate = true;
        self.nets
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        self.teardown_network(&net.def, false).await;
        tracing::info!(network = %name, "network removed");
        Ok(info)
    }
}
