//! berth-bridge: the network half of `berthd`.
//!
//! This crate will own everything that wires a container's network namespace into a bridge
//! network: the netlink operations (bridges, veth pairs born inside the target namespace,
//! addresses, routes, sysctls), IP address management with leases that persist atomically under
//! the run root, the firewall (berth's own nftables table: masquerade, published ports as map
//! elements, isolation between networks), the per-network DNS resolver, and the on-disk network
//! store. It is filled in by the networking issue; today it only marks the seam.
