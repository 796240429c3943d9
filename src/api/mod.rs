//! berthd's API: the wire types shared by `berthd` and its clients (`netctl`, `berth run
//! --network`), and a small synchronous client ([`client`]).
//!
//! The API is HTTP/1.1 + JSON over a Unix socket, every path under `/v1/`. Errors are
//! [`ErrorBody`] objects with a human message and a stable code. `docs/api.md` documents every
//! call.

pub mod client;
mod port;

use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

pub use client::{Client, ClientError};
pub use port::{parse_port, PortMapping, Protocol};

/// The API version prefix of every path.
pub const VERSION_PREFIX: &str = "/v1";
/// Environment variable naming the socket (clients and berthd).
pub const SOCKET_ENV: &str = "BERTH_SOCKET";
/// The socket's file name under the run root.
pub const SOCKET_NAME: &str = "berthd.sock";

/// The default socket path: `<run-root>/berthd.sock`.
pub fn default_socket(run_root: &Path) -> PathBuf {
    run_root.join(SOCKET_NAME)
}

/// Every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub message: String,
    /// A stable, machine-readable code (`network_not_found`, `address_in_use`, ...).
    pub code: String,
}

/// `GET /v1/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub version: String,
    pub pid: u32,
    pub networks: usize,
    pub endpoints: usize,
    pub firewall: bool,
    pub dns: bool,
}

/// `POST /v1/networks`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkCreate {
    pub name: String,
    /// CIDRs, at most one IPv4 and one IPv6.
    #[serde(default)]
    pub subnets: Vec<String>,
    /// Gateways, each inside one of the subnets; the default is the first usable address.
    #[serde(default)]
    pub gateways: Vec<IpAddr>,
    /// No NAT, no default route out, no forwarding in or out.
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub mtu: Option<u32>,
    /// Bridge interface name; default `br-<id[:12]>`.
    #[serde(default)]
    pub bridge: Option<String>,
}

/// One subnet of a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetInfo {
    pub subnet: String,
    pub gateway: IpAddr,
    /// Addresses that can be handed out (saturates at u64::MAX).
    pub capacity: u64,
    pub in_use: u64,
}

/// A network as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub name: String,
    pub id: String,
    pub bridge: String,
    pub subnets: Vec<SubnetInfo>,
    pub internal: bool,
    pub mtu: u32,
    /// The network berthd creates at start (`berth` unless configured otherwise).
    pub default: bool,
    pub endpoints: usize,
}

/// Which network namespace a request is about: exactly one of the three.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// A berth container: name, id or unique id prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// A network namespace file (`/run/netns/NAME`, a bind mount, `/proc/PID/ns/net`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
    /// A process whose network namespace is meant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
}

impl Target {
    /// The query string form (`container=web`), percent-encoded.
    pub fn to_query(&self) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        if let Some(c) = &self.container {
            q.append_pair("container", c);
        }
        if let Some(n) = &self.netns {
            q.append_pair("netns", n);
        }
        if let Some(p) = self.pid {
            q.append_pair("pid", &p.to_string());
        }
        q.finish()
    }

    pub fn is_empty(&self) -> bool {
        self.container.is_none() && self.netns.is_none() && self.pid.is_none()
    }
}

/// `POST /v1/endpoints`: attach a namespace to a network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// The network; default: berthd's default network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// A specific IPv4 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    /// A specific IPv6 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<IpAddr>,
    /// The container interface's MAC; default: derived from the IPv4 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Extra DNS names on this network.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Published ports.
    #[serde(default)]
    pub ports: Vec<PortMapping>,
    /// The DNS name of the endpoint; default: the container name (or the netns file name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl AttachRequest {
    pub fn target(&self) -> Target {
        Target {
            container: self.container.clone(),
            netns: self.netns.clone(),
            pid: self.pid,
        }
    }
    pub fn set_target(&mut self, t: Target) {
        self.container = t.container;
        self.netns = t.netns;
        self.pid = t.pid;
    }
}

/// An endpoint: one namespace wired into one network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The berth container id, or `ns-<hash>` / `pid-<pid>-<start>` for foreign namespaces.
    pub container_id: String,
    /// The container name (DNS name on the network).
    pub name: String,
    pub network: String,
    /// Interface inside the namespace (`eth0`, `eth1`, ...).
    pub ifname: String,
    /// Host end of the veth pair.
    pub host_ifname: String,
    /// Addresses with prefix length (`10.88.0.2/16`).
    pub addresses: Vec<String>,
    pub gateways: Vec<IpAddr>,
    pub mac: String,
    pub mtu: u32,
    /// Whether the endpoint carries the namespace's default route.
    pub default_route: bool,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub ports: Vec<PortMapping>,
    pub netns: String,
    /// RFC 3339.
    pub created: String,
}

/// `DELETE /v1/endpoints`: what was detached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detached {
    pub detached: Vec<Endpoint>,
}

/// `POST /v1/reconcile`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileReport {
    /// Endpoints removed because their namespace is gone (`network/container/ifname`).
    pub removed_endpoints: Vec<String>,
    /// Leases released (endpoint gone, or never completed).
    pub released_leases: Vec<String>,
    /// Host veths deleted (peer gone or no endpoint).
    pub deleted_veths: Vec<String>,
    /// Bridges re-created or repaired.
    pub bridges: Vec<String>,
    /// Whether berth's firewall table was rebuilt.
    pub firewall_restored: bool,
    pub networks: usize,
    pub endpoints: usize,
}
