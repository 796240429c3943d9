//! The agent's side of name resolution (berth_bridge::dns): one resolver per network on its
//! gateway addresses, fed with the names and aliases of the network's endpoints.

use super::config::DnsConfig;
use super::endpoints::Record;
use berth_bridge::{host_upstreams, DnsHandle, DnsServer, NetworkDef, Records};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

pub(crate) struct Dns {
    cfg: DnsConfig,
    records: Records,
    servers: tokio::sync::Mutex<HashMap<String, Vec<DnsHandle>>>,
    /// names published per network, to remove the ones that went away
    names: Mutex<HashMap<String, HashSet<String>>>,
}

impl Dns {
    pub(crate) fn new(cfg: &DnsConfig) -> Dns {
        Dns {
            cfg: cfg.clone(),
            records: Records::new(),
            servers: tokio::sync::Mutex::new(HashMap::new()),
            names: Mutex::new(HashMap::new()),
        }
    }

    fn names(&self) -> MutexGuard<'_, HashMap<String, HashSet<String>>> {
        self.names.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn upstreams(&self, def: &NetworkDef) -> Vec<SocketAddr> {
        if def.internal {
            // an internal network has no way out, names included
            return Vec::new();
        }
        if self.cfg.upstreams.is_empty() {
            host_upstreams(Path::new("/etc/resolv.conf"))
        } else {
            self.cfg.upstreams.clone()
        }
    }

    /// Starts the network's resolver on each gateway address; a failure is logged (the
    /// network works without names).
    pub(crate) async fn start_network(&self, def: &NetworkDef) {
        if !self.cfg.enabled {
            return;
        }
        let mut servers = self.servers.lock().await;
        if servers.contains_key(&def.name) {
            return;
        }
        let mut hs = Vec::new();
        for s in &def.subnets {
            match DnsServer::start(
                s.gateway,
                self.cfg.port,
                &def.name,
                self.records.clone(),
                self.upstreams(def),
            )
            .await
            {
                Ok(h) => hs.push(h),
                Err(e) => {
                    tracing::warn!(network = %def.name, address = %s.gateway, port = self.cfg.port, error = %e,
                        "cannot start the network's DNS resolver; names will not resolve on it")
                }
            }
        }
        servers.insert(def.name.clone(), hs);
    }

    /// Starts the resolver if it is not running (reconcile).
    pub(crate) async fn ensure_network(&self, def: &NetworkDef) {
        let running = self
            .servers
            .lock()
            .await
            .get(&def.name)
            .is_some_and(|v| !v.is_empty());
        if !running {
            self.servers.lock().await.remove(&def.name);
            self.start_network(def).await;
        }
    }

    pub(crate) async fn stop_network(&self, name: &str) {
        let hs = self.servers.lock().await.remove(name);
        for h in hs.into_iter().flatten() {
            h.stop().await;
        }
        if let Some(old) = self.names().remove(name) {
            for n in old {
                self.records.remove(name, &n);
            }
        }
    }

    pub(crate) async fn stop_all(&self) {
        let all: Vec<String> = self.servers.lock().await.keys().cloned().collect();
        for n in all {
            let hs = self.servers.lock().await.remove(&n);
            for h in hs.into_iter().flatten() {
                h.stop().await;
            }
        }
    }

    /// Publishes exactly the names of `recs` (endpoint names and aliases) on `network`.
    pub(crate) fn refresh(&self, network: &str, recs: &[Record]) {
        let mut want: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
        for r in recs {
            let addrs: Vec<IpAddr> =
                r.ep.addresses
                    .iter()
                    .filter_map(|a| a.split('/').next()?.parse().ok())
                    .collect();
            for n in std::iter::once(&r.ep.name).chain(r.ep.aliases.iter()) {
                want.entry(n.to_ascii_lowercase())
                    .or_default()
                    .extend(addrs.iter().copied());
            }
        }
        let mut names = self.names();
        let old = names.remove(network).unwrap_or_default();
        for n in old.iter().filter(|n| !want.contains_key(*n)) {
            self.records.remove(network, n);
        }
        for (n, a) in &want {
            self.records.set(network, n, a.clone());
        }
        names.insert(network.to_string(), want.into_keys().collect());
    }
}
