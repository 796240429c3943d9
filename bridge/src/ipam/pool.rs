//! Subnet arithmetic and one subnet's pool of offsets.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::IpNetwork;

use super::{IpamError, SubnetDef};

/// The usable range of a subnet, as offsets from the network address.
/// Returns `(first, last)` inclusive, or why the subnet cannot be used.
pub fn usable_range(subnet: IpNetwork) -> Result<(u128, u128), String> {
    match subnet {
        IpNetwork::V4(n) => {
            if n.prefix() > 30 {
                return Err(format!(
                    "an IPv4 subnet needs a prefix of /30 or shorter (/{} leaves no room for a gateway and an endpoint)",
                    n.prefix()
                ));
            }
            let size = 1u128 << (32 - n.prefix());
            Ok((1, size - 2))
        }
        IpNetwork::V6(n) => {
            if n.prefix() > 120 {
                return Err(format!(
                    "an IPv6 subnet needs a prefix of /120 or shorter (got /{})",
                    n.prefix()
                ));
            }
            let bits = 128 - u32::from(n.prefix());
            let last = if bits == 128 {
                u128::MAX - 128
            } else {
                (1u128 << bits) - 1 - 128
            };
            Ok((1, last))
        }
    }
}

/// The default gateway of a subnet: its first usable address.
pub fn default_gateway(subnet: IpNetwork) -> IpAddr {
    ip_at(subnet, 1)
}

pub(super) fn base(subnet: IpNetwork) -> u128 {
    match subnet.network() {
        IpAddr::V4(v) => u128::from(u32::from(v)),
        IpAddr::V6(v) => u128::from(v),
    }
}

pub(super) fn ip_at(subnet: IpNetwork, off: u128) -> IpAddr {
    match subnet {
        // offsets of an IPv4 pool are < 2^32 by construction
        IpNetwork::V4(_) => IpAddr::V4(Ipv4Addr::from((base(subnet) + off) as u32)),
        IpNetwork::V6(_) => IpAddr::V6(Ipv6Addr::from(base(subnet).wrapping_add(off))),
    }
}

pub(super) fn offset_of(subnet: IpNetwork, ip: IpAddr) -> Option<u128> {
    if !subnet.contains(ip) {
        return None;
    }
    let v = match ip {
        IpAddr::V4(v) => u128::from(u32::from(v)),
        IpAddr::V6(v) => u128::from(v),
    };
    Some(v - base(subnet))
}

/// What an address inside a subnet is reserved for, if it is.
pub(super) fn reserved_what(
    def: &SubnetDef,
    off: u128,
    first: u128,
    last: u128,
) -> Option<&'static str> {
    if Some(off) == offset_of(def.subnet, def.gateway) {
        return Some("the gateway");
    }
    if off < first {
        return Some(match def.subnet {
            IpNetwork::V4(_) => "the network address",
            IpNetwork::V6(_) => "the subnet-router anycast address",
        });
    }
    if off > last {
        return Some(match def.subnet {
            IpNetwork::V4(_) => "the broadcast address",
            IpNetwork::V6(_) => "reserved subnet anycast (RFC 2526)",
        });
    }
    None
}

#[derive(Debug)]
pub(super) struct Pool {
    pub(super) def: SubnetDef,
    pub(super) first: u128,
    pub(super) last: u128,
    pub(super) gw_off: u128,
    /// usable addresses: the range minus the gateway
    pub(super) capacity: u128,
    pub(super) used: HashSet<u128>,
    /// next offset to try
    pub(super) cursor: u128,
}

impl Pool {
    pub(super) fn new(network: &str, def: &SubnetDef) -> Result<Pool, IpamError> {
        let bad = |reason: String| IpamError::BadSubnet {
            network: network.to_string(),
            subnet: def.subnet,
            reason,
        };
        if def.subnet.ip() != def.subnet.network() {
            return Err(bad(format!(
                "host bits are set; did you mean {}/{}?",
                def.subnet.network(),
                def.subnet.prefix()
            )));
        }
        let (first, last) = usable_range(def.subnet).map_err(bad)?;
        let gw_off = offset_of(def.subnet, def.gateway)
            .filter(|o| (first..=last).contains(o))
            .ok_or_else(|| {
                bad(format!(
                    "gateway {} is not a usable address of the subnet",
                    def.gateway
                ))
            })?;
        Ok(Pool {
            def: def.clone(),
            first,
            last,
            gw_off,
            capacity: last - first, // (last - first + 1) minus the gateway
            used: HashSet::new(),
            cursor: first,
        })
    }

    pub(super) fn next_free(&mut self, network: &str) -> Result<u128, IpamError> {
        if self.used.len() as u128 >= self.capacity {
            return Err(IpamError::Exhausted {
                network: network.to_string(),
                subnet: self.def.subnet,
                size: self.capacity,
            });
        }
        // A free offset exists, so this terminates; with a sequential cursor the expected number
        // of probes is O(1) amortized (each used offset is skipped at most once per wrap).
        loop {
            let c = self.cursor;
            self.cursor = if c >= self.last { self.first } else { c + 1 };
            if c != self.gw_off && !self.used.contains(&c) {
                return Ok(c);
            }
        }
    }
}
