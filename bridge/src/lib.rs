//! berth-bridge: the network half of `berthd`.
//!
//! The library foundation of the agent (issue 4):
//! - [`netlink`]: bridges, veth pairs whose container end is born inside the target namespace,
//!   addresses, routes and the kernel settings that avoid known stalls; operations inside a
//!   namespace run on a socket opened by a dedicated OS thread ([`netlink::NsThread`]);
//! - [`ipam`]: per-network address management with leases persisted atomically under the run
//!   root;
//! - [`store`]: network definitions and their validation (names, CIDRs, overlaps with other
//!   networks and host routes);
//! - [`mac`]: MACs derived from IPv4 addresses, validation of user MACs;
//! - [`dns`]: the per-network resolver on the gateway address (container names and aliases,
//!   everything else forwarded to the host's resolvers);
//! - [`firewall`]: berth's own nftables table (NAT, published ports as map elements,
//!   isolation between networks), one transaction per change.

pub mod dns;
pub mod firewall;
mod fsutil;
pub mod ipam;
pub mod mac;
pub mod netlink;
pub mod store;

pub use dns::{host_upstreams, DnsError, DnsHandle, DnsServer, Records};
pub use firewall::{
    required_sysctls, Firewall, FirewallError, FwNetwork, FwState, PortMapping, Proto,
};
pub use ipam::{Ipam, IpamError, Lease, LeaseRequest, LeaseSync, SubnetDef};
pub use mac::{Mac, MacError};
pub use netlink::{
    host_veth_name, BridgeSpec, Netlink, NetlinkError, NsThread, VethAttached, VethSpec,
};
pub use store::{HostRoute, NetworkDef, NetworkSpec, NetworkStore, StoreError};
