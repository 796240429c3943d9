//! The agent's side of the firewall (berth_bridge::firewall): conversions from networks and
//! endpoint records, blocking nft calls moved off the async workers, and the reconcile of
//! berth's table against the records.

use super::config::FirewallConfig;
use super::endpoints::Record;
use super::error::{AgentError, Result};
use super::Agent;
use crate::api::Protocol;
use berth_bridge::{Firewall, FirewallError, FwNetwork, FwState, NetworkDef, PortMapping, Proto};
use std::net::IpAddr;

pub(crate) struct Fw {
    fw: Option<Firewall>,
}

fn map_err(e: FirewallError) -> AgentError {
    match e {
        FirewallError::PortInUse { .. } => AgentError::PortInUse(e.to_string()),
        e => AgentError::Firewall(e.to_string()),
    }
}

fn fw_network(def: &NetworkDef) -> FwNetwork {
    FwNetwork {
        name: def.name.clone(),
        bridge: def.bridge.clone(),
        subnets: def.subnets.iter().map(|s| s.subnet).collect(),
        internal: def.internal,
    }
}

/// The firewall mappings of an endpoint's published ports: one per address family the
/// host side covers.
pub(crate) fn mappings(r: &Record) -> Result<Vec<PortMapping>> {
    let addrs: Vec<IpAddr> =
        r.ep.addresses
            .iter()
            .filter_map(|a| a.split('/').next()?.parse().ok())
            .collect();
    let v4 = addrs.iter().copied().find(IpAddr::is_ipv4);
    let v6 = addrs.iter().copied().find(IpAddr::is_ipv6);
    let mut out = Vec::new();
    for p in &r.ep.ports {
        let proto = match p.protocol {
            Protocol::Tcp => Proto::Tcp,
            Protocol::Udp => Proto::Udp,
        };
        let targets: Vec<IpAddr> = match p.host_ip {
            Some(h) if h.is_ipv4() => vec![v4.ok_or_else(|| {
                AgentError::BadRequest(format!(
                    "port {p}: network {} has no IPv4 subnet",
                    r.ep.network
                ))
            })?],
            Some(_) => vec![v6.ok_or_else(|| {
                AgentError::BadRequest(format!(
                    "port {p}: network {} has no IPv6 subnet",
                    r.ep.network
                ))
            })?],
            None => v4.into_iter().chain(v6).collect(),
        };
        for c in targets {
            out.push(PortMapping {
                proto,
                host_ip: p.host_ip,
                host_port: p.host_port,
                container_ip: c,
                container_port: p.container_port,
                network: r.ep.network.clone(),
            });
        }
    }
    Ok(out)
}

impl Fw {
    pub(crate) fn new(cfg: &FirewallConfig) -> Fw {
        Fw {
            fw: cfg.enabled.then(|| Firewall::new(&cfg.table)),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.fw.is_some()
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Firewall) -> Result<T, FirewallError> + Send + 'static,
    ) -> Result<Option<T>> {
        let Some(fw) = self.fw.clone() else {
            return Ok(None);
        };
        tokio::task::spawn_blocking(move || f(&fw))
            .await
            .map_err(|e| AgentError::Internal(format!("firewall task: {e}")))?
            .map(Some)
            .map_err(map_err)
    }

    pub(crate) async fn ensure_base(&self) -> Result<()> {
        self.run(|f| f.ensure_base()).await.map(|_| ())
    }

    pub(crate) async fn add_network(&self, def: &NetworkDef) -> Result<()> {
        let n = fw_network(def);
        self.run(move |f| f.add_network(&n)).await.map(|_| ())
    }

    pub(crate) async fn remove_network(&self, name: &str) -> Result<()> {
        let n = name.to_string();
        self.run(move |f| f.remove_network(&n)).await.map(|_| ())
    }

    pub(crate) async fn publish(&self, r: &Record) -> Result<()> {
        if r.ep.ports.is_empty() || !self.enabled() {
            return Ok(());
        }
        let m = mappings(r)?;
        self.run(move |f| f.publish(&m)).await.map(|_| ())
    }

    pub(crate) async fn unpublish(&self, r: &Record) -> Result<()> {
        if r.ep.ports.is_empty() || !self.enabled() {
            return Ok(());
        }
        let m = mappings(r)?;
        self.run(move |f| f.unpublish(&m)).await.map(|_| ())
    }

    /// Rebuilds berth's table from the networks and records when it is missing; otherwise
    /// makes sure every network is in it, drops port mappings no endpoint explains (an attach
    /// cut short by a crash) and adds missing ones. Returns whether the table was rebuilt.
    pub(crate) async fn reconcile(&self, agent: &Agent) -> Result<bool> {
        if !self.enabled() {
            return Ok(false);
        }
        let nets: Vec<FwNetwork> = agent
            .all_nets()
            .iter()
            .map(|n| fw_network(&n.def))
            .collect();
        let recs: Vec<Record> = agent.index().eps.values().cloned().collect();
        let mut ports = Vec::new();
        for r in &recs {
            match mappings(r) {
                Ok(m) => ports.extend(m),
                Err(e) => tracing::warn!(owner = %r.owner, error = %e, "skipping ports"),
            }
        }
        let exists = self.run(|f| f.exists()).await?.unwrap_or(true);
        if !exists {
            let state = FwState {
                networks: nets,
                ports,
            };
            self.run(move |f| f.restore(&state)).await?;
            tracing::info!("berth's firewall table was missing; restored");
            return Ok(true);
        }
        for n in nets {
            self.run(move |f| f.add_network(&n)).await?;
        }
        let have = self.run(|f| f.published()).await?.unwrap_or_default();
        let stale: Vec<PortMapping> = have
            .iter()
            .filter(|p| !ports.contains(p))
            .cloned()
            .collect();
        let missing: Vec<PortMapping> = ports
            .iter()
            .filter(|p| !have.contains(p))
            .cloned()
            .collect();
        if !stale.is_empty() {
            tracing::info!(
                count = stale.len(),
                "removing published ports no endpoint explains"
            );
            self.run(move |f| f.unpublish(&stale)).await?;
        }
        if !missing.is_empty() {
            self.run(move |f| f.publish(&missing)).await?;
        }
        Ok(false)
    }
}
