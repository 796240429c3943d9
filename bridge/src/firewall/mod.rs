//! berth's firewall: one nftables table of its own (`table inet berth` by default).
//!
//! # How it talks to the kernel
//!
//! Through the `nft` binary (Debian package `nftables`): every change is one generated script
//! fed to `nft -f -`, which the kernel commits as **one transaction** (all of it or none of
//! it). Reads use `nft -j list table`. Netlink crates were considered: `rustables` and
//! `nftnl`/`mnl` cover tables, chains and simple rules, but not comfortably the concatenated
//! map keys, `fib`, `ct status` and `dnat … map` expressions used here, and their upkeep is
//! thin; netavark and knftables (Kubernetes) drive the binary too. The cost is one exec
//! (~2 ms) per operation, and it does not grow with the number of ports or networks. The calls
//! block: call them from `spawn_blocking` in async code.
//!
//! Only `table inet <ours>` ever appears in a script. The table is never flushed as a whole
//! and never deleted except by [`Firewall::delete`]; nobody else's table is read or touched.
//!
//! # The ruleset
//!
//! The rules are fixed (a constant number, whatever the networks and ports); networks and
//! published ports are **elements** of sets and maps, so publishing port N+1 is one element
//! add, as cheap as port 1 (Docker's nft backend rewrote the ruleset per port: moby#53466).
//! Every element carries the comment `net <network>`, which ties it to its network:
//! [`Firewall::remove_network`] needs only the name, and the state is readable back from the
//! kernel after a daemon restart ([`Firewall::published`]).
//!
//! - Sets: `bridges` (every berth bridge), `internal` (bridges of internal networks), `same`
//!   (`br . br`), `own4`/`own6` (`subnet . bridge`, every network), `masq4`/`masq6` (subnets of
//!   non-internal networks).
//! - Maps: `dnat4 { inet_proto . ipv4_addr . inet_service : ipv4_addr . inet_service }` for
//!   ports bound to one host address, `dnat4any { inet_proto . inet_service : … }` for ports
//!   on every local address, and `dnat6`/`dnat6any` alike.
//! - `prerouting` (nat, dstnat) and `output` (nat, -100): `fib daddr type local jump ports`;
//!   `ports` DNATs through the four maps. So a published port answers on every address of the
//!   host — including a bridge gateway (hairpin) and 127.0.0.1 — from outside, from
//!   containers and from the host itself, and never captures traffic passing through.
//! - `postrouting` (nat, srcnat): masquerade `127.0.0.0/8` leaving on a berth bridge (the
//!   host's loopback reaching a published port); masquerade DNAT'ed traffic whose source
//!   subnet belongs to the bridge it leaves through (hairpin: a container reaching its own or a
//!   neighbour's published port through a host address); other traffic staying on its own
//!   bridge is left alone; then masquerade sources in `masq4`/`masq6` (non-internal networks
//!   leaving through any other interface).
//! - `forward` (filter, policy **accept**: other forwarding on the host is not ours to judge):
//!   accept within one bridge; drop anything entering or leaving an internal network's bridge;
//!   accept established/related; accept DNAT'ed traffic to a berth bridge (published ports
//!   stay reachable from other networks, as netavark had to restore in #709); drop bridge A →
//!   bridge B between different berth networks.
//! - `guard` (filter, prerouting, priority raw): drops 127.0.0.0/8 sources and destinations
//!   arriving on a berth bridge (CVE-2020-8558, see below).
//!
//! IPv6 is the same through the inet family, with one exception: the kernel never routes
//! `::1` off the loopback interface (there is no `route_localnet` for IPv6), so `[::1]:PORT`
//! does not reach a published port; every other IPv6 host address does.
//!
//! # Kernel settings the daemon must make (see [`required_sysctls`])
//!
//! - `net/ipv4/ip_forward=1` (and `net/ipv6/conf/all/forwarding=1` with IPv6 subnets): for
//!   masquerade, hairpin and published ports from outside.
//! - `net/ipv4/conf/<bridge>/route_localnet=1` on every berth bridge: without it the kernel
//!   refuses to route a packet with a 127.0.0.0/8 source out of the bridge, and published
//!   ports on 127.0.0.1 do not answer. The setting also stops the bridge from treating
//!   loopback addresses as martians, which let neighbours reach services bound to the host's
//!   127.0.0.1 (CVE-2020-8558); the `guard` chain closes that.
//! - `hairpin_mode=1` on each container's bridge port (`/sys/class/net/<host-veth>/brport/
//!   hairpin_mode`) when `br_netfilter` is loaded with `bridge-nf-call-iptables=1` (Docker and
//!   Kubernetes hosts): the DNAT of a container reaching its **own** published port then
//!   happens while the frame is bridged, and the bridge sends it back out the port it came in
//!   only with that flag (without br_netfilter the packet is routed and the flag is moot).
//!   Harmless otherwise, since containers run with `accept_dad=0`.
//!
//! Not handled here: UDP conntrack entries made before a port was published keep their old
//! (non-DNAT'ed) path until they expire (CNI's portmap flushes them through conntrack netlink).

mod nft;
mod script;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use ipnetwork::IpNetwork;

/// Prefix of the comment that tags every element with its network.
const COMMENT_PREFIX: &str = "net ";

/// Errors of the firewall. Messages name the object and what to do next.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    #[error("the nft command was not found: install the nftables package")]
    NftMissing,
    #[error("running nft: {0}")]
    Io(#[source] std::io::Error),
    #[error("nft failed to {action}: {stderr}")]
    Nft { action: String, stderr: String },
    #[error("unexpected nft output: {0}")]
    Parse(String),
    #[error(
        "berth's nftables table inet {0} does not exist (a firewall reload deletes it): \
         run `netctl reconcile` to restore it"
    )]
    NoTable(String),
    #[error(
        "port already published: {wanted} is taken by {taken}; unpublish it or choose \
         another host port"
    )]
    PortInUse { wanted: String, taken: String },
    #[error("invalid firewall request: {0}")]
    Invalid(String),
}

/// Transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl std::fmt::Display for Proto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// A berth network as the firewall sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FwNetwork {
    pub name: String,
    pub bridge: String,
    pub subnets: Vec<IpNetwork>,
    pub internal: bool,
}

/// One published port: `host_ip:host_port/proto` → `container_ip:container_port`.
/// `host_ip` `None` (or an unspecified address) means every local address of the family of
/// `container_ip`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct PortMapping {
    pub proto: Proto,
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_ip: IpAddr,
    pub container_port: u16,
    pub network: String,
}

impl PortMapping {
    /// The host address, `None` for "every address".
    fn bound_ip(&self) -> Option<IpAddr> {
        self.host_ip.filter(|ip| !ip.is_unspecified())
    }

    /// Whether `self` and `other` claim the same host port.
    fn clashes(&self, other: &PortMapping) -> bool {
        self.proto == other.proto
            && self.host_port == other.host_port
            && self.container_ip.is_ipv6() == other.container_ip.is_ipv6()
            && match (self.bound_ip(), other.bound_ip()) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }

    /// Same host side, same target.
    fn same_as(&self, other: &PortMapping) -> bool {
        self.proto == other.proto
            && self.bound_ip() == other.bound_ip()
            && self.host_port == other.host_port
            && self.container_ip == other.container_ip
            && self.container_port == other.container_port
    }

    fn host_side(&self) -> String {
        let ip = match self.bound_ip() {
            Some(IpAddr::V6(ip)) => format!("[{ip}]"),
            Some(ip) => ip.to_string(),
            None if self.container_ip.is_ipv6() => "[::]".to_string(),
            None => "0.0.0.0".to_string(),
        };
        format!("{}/{ip}:{}", self.proto, self.host_port)
    }

    fn target(&self) -> String {
        match self.container_ip {
            IpAddr::V6(ip) => format!("[{ip}]:{}", self.container_port),
            ip => format!("{ip}:{}", self.container_port),
        }
    }
}

/// Everything the firewall holds, for [`Firewall::restore`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FwState {
    pub networks: Vec<FwNetwork>,
    pub ports: Vec<PortMapping>,
}

/// The kernel settings (paths under `/proc/sys`, value) that network `n` needs for NAT,
/// published ports and 127.0.0.1: see the module docs. Slash form, because bridge names
/// may contain dots.
pub fn required_sysctls(n: &FwNetwork) -> Vec<(String, String)> {
    let mut v = vec![
        ("net/ipv4/ip_forward".to_string(), "1".to_string()),
        (
            format!("net/ipv4/conf/{}/route_localnet", n.bridge),
            "1".to_string(),
        ),
    ];
    if n.subnets.iter().any(IpNetwork::is_ipv6) {
        v.push(("net/ipv6/conf/all/forwarding".to_string(), "1".to_string()));
    }
    v
}

/// berth's nftables table. Cheap to clone; clones (and every `Firewall` of the same table in
/// this process) share one lock, so read-check-write sequences do not race each other.
#[derive(Debug, Clone)]
pub struct Firewall {
    table: String,
    lock: Arc<Mutex<()>>,
}

fn table_lock(table: &str) -> Arc<Mutex<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<String, Arc<Mutex<()>>>>> = OnceLock::new();
    let mut locks = LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    locks.entry(table.to_string()).or_default().clone()
}

fn valid_table(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_alphabetic()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Interface names go into nft scripts between double quotes: printable ASCII without
/// quotes or backslashes, on top of the kernel's own rule.
fn valid_ifname(name: &str) -> bool {
    crate::store::validate_ifname(name)
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"\"'\\".contains(&b))
}

fn check_network_name(name: &str) -> Result<(), FirewallError> {
    crate::store::validate_name(name)
        .map_err(|_| FirewallError::Invalid(format!("bad network name {name:?}")))
}

fn check_network(n: &FwNetwork) -> Result<(), FirewallError> {
    check_network_name(&n.name)?;
    if !valid_ifname(&n.bridge) {
        return Err(FirewallError::Invalid(format!(
            "bad bridge name {:?} for network {}",
            n.bridge, n.name
        )));
    }
    Ok(())
}

fn check_port(p: &PortMapping) -> Result<(), FirewallError> {
    check_network_name(&p.network)?;
    if p.host_port == 0 || p.container_port == 0 {
        return Err(FirewallError::Invalid(format!(
            "port 0 in {} -> {}: ports are 1-65535",
            p.host_side(),
            p.target()
        )));
    }
    if p.container_ip.is_unspecified() {
        return Err(FirewallError::Invalid(format!(
            "container address of {} is unspecified",
            p.host_side()
        )));
    }
    if let Some(h) = p.host_ip {
        if h.is_ipv6() != p.container_ip.is_ipv6() {
            return Err(FirewallError::Invalid(format!(
                "host address {h} and container address {} are of different families",
                p.container_ip
            )));
        }
    }
    Ok(())
}

/// Validates `ports` and drops exact repeats; two different mappings of one host port fail.
fn check_ports(ports: &[PortMapping]) -> Result<Vec<PortMapping>, FirewallError> {
    let mut out: Vec<PortMapping> = Vec::with_capacity(ports.len());
    for p in ports {
        check_port(p)?;
        if let Some(q) = out.iter().find(|q| q.clashes(p)) {
            if q.same_as(p) {
                continue;
            }
            return Err(FirewallError::PortInUse {
                wanted: format!("{} -> {}", p.host_side(), p.target()),
                taken: format!(
                    "{} -> {} (network {}) in the same request",
                    q.host_side(),
                    q.target(),
                    q.network
                ),
            });
        }
        out.push(p.clone());
    }
    Ok(out)
}

impl Firewall {
    /// berth's table `table` (family inet); the daemon's default is `"berth"`. The name is
    /// checked by every operation (letters, digits, `_`; a letter first).
    pub fn new(table: &str) -> Firewall {
        Firewall {
            table: table.to_string(),
            lock: table_lock(table),
        }
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    fn locked(&self) -> Result<MutexGuard<'_, ()>, FirewallError> {
        if !valid_table(&self.table) {
            return Err(FirewallError::Invalid(format!(
                "bad nftables table name {:?}: letters, digits and _ only",
                self.table
            )));
        }
        Ok(self.lock.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn listing(&self) -> Result<nft::Listing, FirewallError> {
        nft::list_table(&self.table)?.ok_or_else(|| FirewallError::NoTable(self.table.clone()))
    }

    /// Creates the table, chains, sets and maps when missing and (re)writes the fixed rules,
    /// keeping every network and port element. Idempotent; one transaction.
    pub fn ensure_base(&self) -> Result<(), FirewallError> {
        let _g = self.locked()?;
        nft::apply(
            &script::base(&self.table, false),
            "create berth's base table",
        )
    }

    /// Adds network `n` (or updates it to `n`): its bridge, subnets, NAT and isolation.
    pub fn add_network(&self, n: &FwNetwork) -> Result<(), FirewallError> {
        check_network(n)?;
        let _g = self.locked()?;
        let listing = self.listing()?;
        let bridge_key = format!("\"{}\"", n.bridge);
        if let Some(e) = listing.elems.iter().find(|e| {
            e.set == "bridges" && e.key == bridge_key && e.network.as_deref() != Some(&n.name)
        }) {
            return Err(FirewallError::Invalid(format!(
                "bridge {} already belongs to network {}",
                n.bridge,
                e.network.as_deref().unwrap_or("(untagged)")
            )));
        }
        let want = script::network_elems(n);
        let have: Vec<(&str, &str)> = listing
            .elems
            .iter()
            .filter(|e| e.port.is_none() && e.network.as_deref() == Some(&n.name))
            .map(|e| (e.set.as_str(), e.key.as_str()))
            .collect();
        let mut s = String::new();
        for (set, key) in &have {
            if !want.iter().any(|(ws, wk)| ws == set && wk == key) {
                script::delete_elem(&mut s, &self.table, set, key);
            }
        }
        for (set, key) in &want {
            if !have.iter().any(|(hs, hk)| hs == set && hk == key) {
                script::add_elem(&mut s, &self.table, set, key, &n.name);
            }
        }
        if s.is_empty() {
            return Ok(());
        }
        nft::apply(&s, &format!("add network {}", n.name))
    }

    /// Removes network `name` and every port published on it. Missing: nothing to do.
    pub fn remove_network(&self, name: &str) -> Result<(), FirewallError> {
        check_network_name(name)?;
        let _g = self.locked()?;
        let Some(listing) = nft::list_table(&self.table)? else {
            return Ok(());
        };
        let mut s = String::new();
        for e in listing
            .elems
            .iter()
            .filter(|e| e.network.as_deref() == Some(name))
        {
            script::delete_elem(&mut s, &self.table, &e.set, &e.key);
        }
        if s.is_empty() {
            return Ok(());
        }
        nft::apply(&s, &format!("remove network {name}"))
    }

    /// Publishes `ports`, all or none. A host port (proto, address, port) already taken —
    /// by another mapping, or by "every address" against one address — fails with
    /// [`FirewallError::PortInUse`]; publishing exactly the same mapping again is a no-op.
    pub fn publish(&self, ports: &[PortMapping]) -> Result<(), FirewallError> {
        let ports = check_ports(ports)?;
        let _g = self.locked()?;
        let listing = self.listing()?;
        let mut s = String::new();
        for p in &ports {
            let mut same = false;
            for e in &listing.elems {
                let Some(q) = &e.port else { continue };
                if q.same_as(p) {
                    same = true;
                } else if q.clashes(p) {
                    return Err(FirewallError::PortInUse {
                        wanted: format!("{} -> {}", p.host_side(), p.target()),
                        taken: format!(
                            "{} -> {} (network {})",
                            q.host_side(),
                            q.target(),
                            q.network
                        ),
                    });
                }
            }
            if !same {
                // `create` fails if the key exists, untagged elements included.
                script::add_port(&mut s, &self.table, p, true);
            }
        }
        if s.is_empty() {
            return Ok(());
        }
        nft::apply(&s, "publish ports").map_err(|e| match e {
            FirewallError::Nft { stderr, .. } if stderr.contains("File exists") => {
                FirewallError::PortInUse {
                    wanted: ports
                        .iter()
                        .map(PortMapping::host_side)
                        .collect::<Vec<_>>()
                        .join(", "),
                    taken: "an element berth did not tag".to_string(),
                }
            }
            e => e,
        })
    }

    /// Unpublishes `ports`. Mappings that are not there — or whose host port now points
    /// elsewhere — are skipped, so teardown can repeat it safely.
    pub fn unpublish(&self, ports: &[PortMapping]) -> Result<(), FirewallError> {
        for p in ports {
            check_port(p)?;
        }
        let _g = self.locked()?;
        let Some(listing) = nft::list_table(&self.table)? else {
            return Ok(());
        };
        let mut s = String::new();
        let mut done: Vec<(String, String)> = Vec::new();
        for p in ports {
            let (map, key) = script::port_key(p);
            let present = listing.elems.iter().any(|e| {
                e.set == map && e.key == key && e.port.as_ref().is_some_and(|q| q.same_as(p))
            });
            if present && !done.iter().any(|(m, k)| m == map && *k == key) {
                script::delete_elem(&mut s, &self.table, map, &key);
                done.push((map.to_string(), key));
            }
        }
        if s.is_empty() {
            return Ok(());
        }
        nft::apply(&s, "unpublish ports")
    }

    /// Makes the table hold exactly `state`, in one transaction: creates what is missing,
    /// rewrites the rules and replaces every element. For after someone deleted the table
    /// (a firewall reload) or when in doubt.
    pub fn restore(&self, state: &FwState) -> Result<(), FirewallError> {
        for n in &state.networks {
            check_network(n)?;
        }
        for (i, n) in state.networks.iter().enumerate() {
            if let Some(m) = state.networks[..i]
                .iter()
                .find(|m| m.name == n.name || m.bridge == n.bridge)
            {
                return Err(FirewallError::Invalid(format!(
                    "networks {} and {} share a name or bridge",
                    m.name, n.name
                )));
            }
        }
        let ports = check_ports(&state.ports)?;
        let _g = self.locked()?;
        let mut s = script::base(&self.table, true);
        for n in &state.networks {
            for (set, key) in script::network_elems(n) {
                script::add_elem(&mut s, &self.table, set, &key, &n.name);
            }
        }
        for p in &ports {
            script::add_port(&mut s, &self.table, p, false);
        }
        nft::apply(&s, "restore berth's table")
    }

    /// The published ports, read back from the kernel (empty when the table is missing).
    pub fn published(&self) -> Result<Vec<PortMapping>, FirewallError> {
        let _g = self.locked()?;
        Ok(nft::list_table(&self.table)?
            .map(|l| l.elems.into_iter().filter_map(|e| e.port).collect())
            .unwrap_or_default())
    }

    /// Whether the table exists.
    pub fn exists(&self) -> Result<bool, FirewallError> {
        let _g = self.locked()?;
        nft::table_exists(&self.table)
    }

    /// Deletes the table (and with it every berth rule). Missing: nothing to do.
    pub fn delete(&self) -> Result<(), FirewallError> {
        let _g = self.locked()?;
        if !nft::table_exists(&self.table)? {
            return Ok(());
        }
        match nft::apply(
            &format!("delete table inet {}\n", self.table),
            "delete berth's table",
        ) {
            Err(FirewallError::Nft { stderr, .. }) if stderr.contains("No such file") => Ok(()),
            r => r,
        }
    }
}

/// Number of rules of a complete base (a constant: ports and networks are elements).
pub const BASE_RULES: usize = script::RULE_COUNT;
