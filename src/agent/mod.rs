//! berthd, the node agent: bridge networks, IPAM, veth endpoints, the firewall and name
//! resolution, behind an HTTP/1.1 + JSON API on a Unix socket ([`server`]).
//!
//! One [`Agent`] owns every piece of network state: it is the only writer of leases, endpoint
//! records and firewall rules (a lock file makes a second berthd refuse to start), so
//! concurrent clients cannot race each other.
//!
//! State on disk:
//! ```text
//! <root>/networks/<name>.json                    network definitions (berth_bridge::NetworkStore)
//! <run-root>/leases/<network>.json               IP leases (berth_bridge::Ipam)
//! <run-root>/endpoints/<network>/<xx>/<veth>.json  one record per endpoint (the commit point;
//!                                                 xx: 2 hex digits of the veth name)
//! <run-root>/berthd.lock                         held by the running berthd
//! ```
//! An endpoint exists when its record exists: attach writes it last, detach removes it first.
//! Whatever a crash leaves between those points (a lease, a veth, rules without a record) is
//! undone by [`Agent::reconcile`] at start and on request.
//!
//! Concurrency: each network has a gate (attach and detach hold it shared, reconcile and
//! network removal exclusively) and a lock around its IPAM (held only to allocate or release);
//! the endpoint index (one mutex) reserves a container's interface name and published ports
//! while an attach is in flight. Attaches to one network thus run in parallel except for the
//! few microseconds of allocation.

pub mod config;
mod endpoints;
pub mod error;
mod fw;
pub mod metrics;
mod netdns;
mod networks;
mod reconcile;
pub mod server;
mod target;

use crate::container::state::Paths;
use crate::fsutil::FileLock;
use berth_bridge::netlink::sysctl;
use berth_bridge::{Ipam, Netlink, NetworkDef, NetworkStore};
use config::Config;
use error::{AgentError, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

pub use endpoints::Record;

/// What berthd starts with.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub root: PathBuf,
    pub run_root: PathBuf,
    pub config_path: PathBuf,
    pub config: Config,
}

/// One network with its address management.
pub(crate) struct Net {
    pub(crate) def: NetworkDef,
    pub(crate) ipam: Mutex<Ipam>,
    /// Shared by attach/detach, exclusive for reconcile and removal; `true` once removed.
    pub(crate) gate: tokio::sync::RwLock<bool>,
}

impl Net {
    pub(crate) fn ipam(&self) -> MutexGuard<'_, Ipam> {
        self.ipam.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The agent; see the module docs.
pub struct Agent {
    pub(crate) paths: Paths,
    pub(crate) config: RwLock<Config>,
    pub(crate) config_path: PathBuf,
    pub(crate) store: NetworkStore,
    pub(crate) lease_dir: PathBuf,
    pub(crate) ep_dir: PathBuf,
    pub(crate) host: Netlink,
    pub(crate) nets: RwLock<BTreeMap<String, Arc<Net>>>,
    pub(crate) index: Mutex<endpoints::Index>,
    /// Serializes network creation, removal and reconcile.
    pub(crate) admin: tokio::sync::Mutex<()>,
    pub(crate) fw: fw::Fw,
    pub(crate) dns: netdns::Dns,
    /// Bounds the kernel work of concurrent attaches and detaches: the host netlink socket
    /// is shared, and a burst of replies past its receive buffer is dropped by the kernel
    /// (a request that would then wait forever).
    pub(crate) kernel: tokio::sync::Semaphore,
    _lock: FileLock,
}

/// Attaches and detaches doing kernel work at the same time.
pub(crate) const KERNEL_PARALLELISM: usize = 8;
/// Longest a kernel step of an attach may take before it is undone and reported.
pub(crate) const KERNEL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

fn io_err(what: &str, p: &Path, e: std::io::Error) -> AgentError {
    AgentError::Internal(format!("{what} {}: {e}", p.display()))
}

impl Agent {
    /// Opens the state, brings every network up (the default one created if missing),
    /// reconciles, and returns the agent ready to serve. Must run inside a tokio runtime.
    pub async fn start(opts: AgentOptions) -> Result<Arc<Agent>> {
        for d in [&opts.root, &opts.run_root] {
            std::fs::create_dir_all(d).map_err(|e| io_err("cannot create", d, e))?;
        }
        let lock_path = opts.run_root.join("berthd.lock");
        let lock = FileLock::try_exclusive(&lock_path)
            .map_err(|e| io_err("cannot lock", &lock_path, e))?
            .ok_or_else(|| {
                AgentError::Internal(format!(
                    "another berthd is running with run root {} (it holds {}); stop it first",
                    opts.run_root.display(),
                    lock_path.display()
                ))
            })?;
        let store = NetworkStore::open(&opts.root)?;
        let host = Netlink::host()?;
        if let Err(e) = sysctl::enable_ip_forward() {
            tracing::warn!(error = %e, "cannot turn on IPv4 forwarding; containers will not reach other networks");
        }
        let fw = fw::Fw::new(&opts.config.firewall);
        fw.ensure_base().await?;
        let dns = netdns::Dns::new(&opts.config.dns);
        let agent = Arc::new(Agent {
            paths: Paths::new(&opts.root, &opts.run_root),
            lease_dir: opts.run_root.join("leases"),
            ep_dir: opts.run_root.join("endpoints"),
            config: RwLock::new(opts.config),
            config_path: opts.config_path,
            store,
            host,
            nets: RwLock::new(BTreeMap::new()),
            index: Mutex::new(endpoints::Index::default()),
            admin: tokio::sync::Mutex::new(()),
            fw,
            dns,
            kernel: tokio::sync::Semaphore::new(KERNEL_PARALLELISM),
            _lock: lock,
        });
        {
            let _a = agent.admin.lock().await;
            for def in agent.store.list()? {
                let name = def.name.clone();
                match agent.bring_up(def).await {
                    Ok(net) => agent.insert_net(net),
                    Err(e) => {
                        tracing::error!(network = %name, error = %e, "cannot bring the network up; its endpoints are left alone until a restart or reconcile");
                    }
                }
            }
            agent.ensure_default_network().await?;
            agent.load_records()?;
        }
        let report = agent.reconcile().await?;
        tracing::info!(
            networks = report.networks,
            endpoints = report.endpoints,
            released = report.released_leases.len(),
            removed = report.removed_endpoints.len(),
            veths = report.deleted_veths.len(),
            "berthd ready"
        );
        Ok(agent)
    }

    pub(crate) fn config(&self) -> Config {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Seconds between background reconciles (0: off), as configured now.
    pub fn reconcile_interval(&self) -> u64 {
        self.config().reconcile_interval_secs
    }

    pub(crate) fn index(&self) -> MutexGuard<'_, endpoints::Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn net(&self, name: &str) -> Result<Arc<Net>> {
        self.nets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
            .ok_or_else(|| AgentError::NoNetwork(name.to_string()))
    }

    pub(crate) fn all_nets(&self) -> Vec<Arc<Net>> {
        self.nets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    fn insert_net(&self, net: Arc<Net>) {
        self.nets
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(net.def.name.clone(), net);
    }

    /// SIGHUP: re-read the config file. Applied at once: log level (through `set_level`),
    /// reconcile interval, DNS upstreams for new resolvers, the default network (created when
    /// missing). The socket, firewall table and DNS port need a restart.
    pub async fn reload(&self, set_level: &(dyn Fn(&str) + Send + Sync)) -> Result<()> {
        let new = Config::load(&self.config_path, false).map_err(AgentError::BadRequest)?;
        let old = self.config();
        if new.socket != old.socket || new.firewall != old.firewall || new.dns.port != old.dns.port
        {
            tracing::warn!("socket, firewall and dns.port changes take effect at the next start");
        }
        set_level(&new.log_level);
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = new;
        let _a = self.admin.lock().await;
        self.ensure_default_network().await?;
        tracing::info!(config = %self.config_path.display(), "configuration reloaded");
        Ok(())
    }

    /// Stop what runs in the background (DNS listeners). Endpoints, leases and rules stay:
    /// containers keep their network while berthd is down.
    pub async fn shutdown(&self) {
        self.dns.stop_all().await;
    }
}
