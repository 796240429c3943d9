//! The agent's side of name resolution (berth_bridge::dns): one resolver per network on its
//! gateway addresses, fed with the names and aliases of the network's endpoints.

use super::config::DnsConfig;
use super::endpoints::Record;
use berth_bridge::{host_upstreams, DnsHandle, DnsServer, NetworkDef, Records};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

pub(crate) struct Dns {
    cfg: DnsConfig,
    records: Records,
    servers: tokio::sync::Mutex<HashMap<String, Vec<DnsHandle>>>,
    /// Per network, per (lower-case) name, the endpoints holding it with their addresses:
    /// an attach or detach touches only its own names (O(1) in the size of the network), and
    /// a name shared by several endpoints (an alias) keeps the addresses of all of them.
    names: Mutex<HashMap<String, NameTable>>,
}

/// name → (endpoint owner key → its addresses), in attach order.
type NameTable = HashMap<String, Vec<(String, Vec<IpAddr>)>>;

/// The lower-case names (endpoint name and aliases, each once) and the addresses of a record.
fn names_of(r: &Record) -> (Vec<String>, Vec<IpAddr>) {
    let addrs: Vec<IpAddr> =
        r.ep.addresses
            .iter()
            .filter_map(|a| a.split('/').next()?.parse().ok())
            .collect();
    let mut names: Vec<String> = Vec::with_capacity(1 + r.ep.aliases.len());
    for n in std::iter::once(&r.ep.name).chain(r.ep.aliases.iter()) {
        let n = n.to_ascii_lowercase();
        if !names.contains(&n) {
            names.push(n);
        }
    }
    (names, addrs)
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

    fn names(&self) -> MutexGuard<'_, HashMap<String, NameTable>> {
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
            for n in old.keys() {
                self.records.remove(name, n);
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

    /// Publishes exactly the names of `recs` (endpoint names and aliases) on `network`
    /// (start and reconcile; attach and detach use [`Dns::add`] and [`Dns::remove`]).
    pub(crate) fn refresh(&self, network: &str, recs: &[Record]) {
        let mut want = NameTable::new();
        for r in recs {
            let (ns, addrs) = names_of(r);
            for n in ns {
                want.entry(n)
                    .or_default()
                    .push((r.owner.clone(), addrs.clone()));
            }
        }
        let mut names = self.names();
        let old = names.remove(network).unwrap_or_default();
        for n in old.keys().filter(|n| !want.contains_key(*n)) {
            self.records.remove(network, n);
        }
        for (n, holders) in &want {
            self.records.set(network, n, joined(holders));
        }
        names.insert(network.to_string(), want);
    }

    /// Publishes the names of one new endpoint; other names of the network are not touched.
    pub(crate) fn add(&self, network: &str, r: &Record) {
        let (ns, addrs) = names_of(r);
        let mut names = self.names();
        let table = names.entry(network.to_string()).or_default();
        for n in ns {
            let holders = table.entry(n.clone()).or_default();
            match holders.iter_mut().find(|(o, _)| *o == r.owner) {
                Some(h) => h.1 = addrs.clone(),
                None => holders.push((r.owner.clone(), addrs.clone())),
            }
            self.records.set(network, &n, joined(holders));
        }
    }

    /// Withdraws the names of one endpoint: a name it shared keeps the others' addresses.
    pub(crate) fn remove(&self, network: &str, r: &Record) {
        let (ns, _) = names_of(r);
        let mut names = self.names();
        let Some(table) = names.get_mut(network) else {
            return;
        };
        for n in ns {
            let Some(holders) = table.get_mut(&n) else {
                continue;
            };
            holders.retain(|(o, _)| *o != r.owner);
            if holders.is_empty() {
                table.remove(&n);
                self.records.remove(network, &n);
            } else {
                self.records.set(network, &n, joined(holders));
            }
        }
    }
}

fn joined(holders: &[(String, Vec<IpAddr>)]) -> Vec<IpAddr> {
    holders
        .iter()
        .flat_map(|(_, a)| a.iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Endpoint;

    fn rec(owner: &str, name: &str, aliases: &[&str], addr: &str) -> Record {
        Record {
            owner: owner.into(),
            ep: Endpoint {
                container_id: owner.into(),
                name: name.into(),
                network: "n".into(),
                ifname: "eth0".into(),
                host_ifname: "veth0".into(),
                addresses: vec![format!("{addr}/24")],
                gateways: Vec::new(),
                mac: String::new(),
                mtu: 1500,
                default_route: true,
                aliases: aliases.iter().map(|a| a.to_string()).collect(),
                ports: Vec::new(),
                netns: String::new(),
                created: String::new(),
            },
            ns_dev: 0,
            ns_ino: 0,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn add_and_remove_touch_only_their_names_and_keep_shared_aliases() {
        let d = Dns::new(&DnsConfig::default());
        let (a, b) = (
            rec("a/eth0", "Web1", &["web", "web1"], "10.0.0.2"),
            rec("b/eth0", "web2", &["WEB"], "10.0.0.3"),
        );
        d.add("n", &a);
        d.add("n", &b);
        assert_eq!(d.records.lookup("n", "web1"), vec![ip("10.0.0.2")]);
        assert_eq!(
            d.records.lookup("n", "web"),
            vec![ip("10.0.0.2"), ip("10.0.0.3")]
        );
        d.remove("n", &a);
        assert!(d.records.lookup("n", "web1").is_empty());
        assert_eq!(d.records.lookup("n", "web"), vec![ip("10.0.0.3")]);
        // a full refresh agrees with the incremental table
        d.refresh("n", std::slice::from_ref(&b));
        assert_eq!(d.records.lookup("n", "web"), vec![ip("10.0.0.3")]);
        assert_eq!(d.records.lookup("n", "web2"), vec![ip("10.0.0.3")]);
        d.remove("n", &b);
        assert!(d.records.lookup("n", "web").is_empty());
        assert!(d.names().get("n").is_none_or(|t| t.is_empty()));
    }
}
