//! Network definitions, persisted as one JSON file per network under `<root>/networks/`.
//!
//! Everything is validated before anything is written: the name, the bridge interface name, the
//! subnets (valid CIDR, no host bits, room for a gateway, at most one per family), the gateways,
//! the MTU, and overlaps with the other networks and with the host's routes (read through
//! netlink by the caller and passed in, so this module stays pure). Each error names the
//! conflicting object and says what to do.

use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

use crate::fsutil;
use crate::ipam::{default_gateway, usable_range, SubnetDef};

/// Errors of the network store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid network name {name:?}: use 1-64 characters [A-Za-z0-9_.-], starting with a letter or digit")]
    BadName { name: String },
    #[error("invalid bridge name {name:?}: use 1-15 characters without '/', ':' or whitespace")]
    BadBridge { name: String },
    #[error("invalid subnet {input:?}: {reason}")]
    BadSubnet { input: String, reason: String },
    #[error("invalid gateway {gateway} for subnet {subnet}: {reason}")]
    BadGateway {
        gateway: IpAddr,
        subnet: IpNetwork,
        reason: String,
    },
    #[error("invalid mtu {mtu}: use a value between 68 and 65535")]
    BadMtu { mtu: u32 },
    #[error("network {name} has no subnet; give one with --subnet")]
    NoSubnet { name: String },
    #[error("subnet {subnet} overlaps {other_subnet} of network {other}; choose another subnet")]
    OverlapsNetwork {
        subnet: IpNetwork,
        other: String,
        other_subnet: IpNetwork,
    },
    #[error("subnet {subnet} overlaps the host route {route}{dev}; choose another subnet")]
    OverlapsRoute {
        subnet: IpNetwork,
        route: IpNetwork,
        dev: String,
    },
    #[error("network {name} already exists")]
    Exists { name: String },
    #[error("bridge {bridge} is already used by network {other}")]
    BridgeInUse { bridge: String, other: String },
    #[error("no such network: {name}")]
    NotFound { name: String },
    #[error("network store {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("network file {path} is corrupt: {source}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// A network as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkDef {
    pub name: String,
    /// 64 hex characters.
    pub id: String,
    /// The bridge interface.
    pub bridge: String,
    /// At most one IPv4 and one IPv6 subnet, each with its gateway.
    pub subnets: Vec<SubnetDef>,
    /// No NAT and no default route out of the network.
    #[serde(default)]
    pub internal: bool,
    pub mtu: u32,
}

impl NetworkDef {
    pub fn ipv4(&self) -> Option<&SubnetDef> {
        self.subnets.iter().find(|s| s.subnet.is_ipv4())
    }
    pub fn ipv6(&self) -> Option<&SubnetDef> {
        self.subnets.iter().find(|s| s.subnet.is_ipv6())
    }
    /// The gateway addresses with their prefix length, as the bridge carries them.
    pub fn gateway_addresses(&self) -> Vec<IpNetwork> {
        self.subnets
            .iter()
            .filter_map(|s| IpNetwork::new(s.gateway, s.subnet.prefix()).ok())
            .collect()
    }
}

/// What a user asks for (`netctl network create`).
#[derive(Debug, Clone, Default)]
pub struct NetworkSpec {
    pub name: String,
    /// CIDR strings as typed (validated here).
    pub subnets: Vec<String>,
    /// Gateways; each must fall in one of the subnets. Missing ones default to the first
    /// usable address.
    pub gateways: Vec<IpAddr>,
    pub internal: bool,
    pub mtu: Option<u32>,
    /// Bridge interface name; default `br-<id[:12]>` like docker.
    pub bridge: Option<String>,
}

/// A route of the host's main table, as the overlap check sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoute {
    pub dst: IpNetwork,
    /// Output interface name, for the error message.
    pub dev: Option<String>,
}

pub const DEFAULT_MTU: u32 = 1500;

/// Docker's network-name rule, with a length bound (the name is a file name).
pub fn validate_name(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StoreError::BadName {
            name: name.to_string(),
        })
    }
}

/// A Linux interface name: 1..=15 bytes (IFNAMSIZ-1), no '/', ':', whitespace, not "." or "..".
pub fn validate_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0)
}

/// Parse a CIDR a user typed: valid syntax, no host bits, room for a gateway and endpoints.
pub fn parse_subnet(input: &str) -> Result<IpNetwork, StoreError> {
    let bad = |reason: String| StoreError::BadSubnet {
        input: input.to_string(),
        reason,
    };
    if !input.contains('/') {
        return Err(bad("expected CIDR notation like 10.89.0.0/24".into()));
    }
    let net: IpNetwork = input.trim().parse().map_err(|e| bad(format!("{e}")))?;
    if net.ip() != net.network() {
        return Err(bad(format!(
            "host bits are set; did you mean {}/{}?",
            net.network(),
            net.prefix()
        )));
    }
    usable_range(net).map_err(bad)?;
    if net.prefix() == 0 {
        return Err(bad("a default route cannot be a network".into()));
    }
    Ok(net)
}

fn overlaps(a: IpNetwork, b: IpNetwork) -> bool {
    a.is_ipv4() == b.is_ipv4() && (a.contains(b.network()) || b.contains(a.network()))
}

/// Random 64-hex id.
pub fn new_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The network definitions under `<root>/networks`.
#[derive(Debug, Clone)]
pub struct NetworkStore {
    dir: PathBuf,
}

impl NetworkStore {
    /// Open (creating the directory) the store under a persistent root.
    pub fn open(root: &Path) -> Result<NetworkStore, StoreError> {
        let dir = root.join("networks");
        fs::create_dir_all(&dir).map_err(|source| StoreError::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(NetworkStore { dir })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    /// Every stored network, sorted by name.
    pub fn list(&self) -> Result<Vec<NetworkDef>, StoreError> {
        let io_err = |source| StoreError::Io {
            path: self.dir.clone(),
            source,
        };
        let mut out = Vec::new();
        for e in fs::read_dir(&self.dir).map_err(io_err)? {
            let e = e.map_err(io_err)?;
            let fname = e.file_name().to_string_lossy().into_owned();
            let Some(name) = fname.strip_suffix(".json") else {
                continue;
            };
            if fname.starts_with('.') || validate_name(name).is_err() {
                continue;
            }
            out.push(self.get(name)?);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// One network by name.
    pub fn get(&self, name: &str) -> Result<NetworkDef, StoreError> {
        validate_name(name).map_err(|_| StoreError::NotFound {
            name: name.to_string(),
        })?;
        let path = self.path(name);
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound {
                    name: name.to_string(),
                })
            }
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        serde_json::from_slice(&data).map_err(|source| StoreError::Corrupt { path, source })
    }

    /// Validate a spec against the stored networks and the host routes, without writing.
    pub fn validate(
        &self,
        spec: &NetworkSpec,
        host_routes: &[HostRoute],
    ) -> Result<NetworkDef, StoreError> {
        validate_name(&spec.name)?;
        let mtu = spec.mtu.unwrap_or(DEFAULT_MTU);
        if !(68..=65535).contains(&mtu) {
            return Err(StoreError::BadMtu { mtu });
        }
        if spec.subnets.is_empty() {
            return Err(StoreError::NoSubnet {
                name: spec.name.clone(),
            });
        }
        let mut subnets: Vec<SubnetDef> = Vec::new();
        for s in &spec.subnets {
            let net = parse_subnet(s)?;
            if let Some(prev) = subnets.iter().find(|p| p.subnet.is_ipv4() == net.is_ipv4()) {
                if overlaps(prev.subnet, net) {
                    return Err(StoreError::OverlapsNetwork {
                        subnet: net,
                        other: spec.name.clone(),
                        other_subnet: prev.subnet,
                    });
                }
                return Err(StoreError::BadSubnet {
                    input: s.clone(),
                    reason: format!(
                        "network {} already has the {} subnet {}; a network has at most one per family",
                        spec.name,
                        if net.is_ipv4() { "IPv4" } else { "IPv6" },
                        prev.subnet
                    ),
                });
            }
            subnets.push(SubnetDef {
                subnet: net,
                gateway: default_gateway(net),
            });
        }
        for gw in &spec.gateways {
            let Some(def) = subnets.iter_mut().find(|d| d.subnet.contains(*gw)) else {
                let subnet = subnets
                    .iter()
                    .find(|d| d.subnet.is_ipv4() == gw.is_ipv4())
                    .map(|d| d.subnet)
                    .unwrap_or(subnets[0].subnet);
                return Err(StoreError::BadGateway {
                    gateway: *gw,
                    subnet,
                    reason: "it is outside the subnet".into(),
                });
            };
            let (first, last) =
                usable_range(def.subnet).map_err(|reason| StoreError::BadSubnet {
                    input: def.subnet.to_string(),
                    reason,
                })?;
            let off = match (gw, def.subnet.network()) {
                (IpAddr::V4(g), IpAddr::V4(n)) => u128::from(u32::from(*g) - u32::from(n)),
                (IpAddr::V6(g), IpAddr::V6(n)) => u128::from(*g) - u128::from(n),
                _ => 0,
            };
            if !(first..=last).contains(&off) {
                return Err(StoreError::BadGateway {
                    gateway: *gw,
                    subnet: def.subnet,
                    reason:
                        "the network, broadcast and reserved anycast addresses cannot be a gateway"
                            .into(),
                });
            }
            def.gateway = *gw;
        }
        let existing = self.list()?;
        if existing.iter().any(|n| n.name == spec.name) {
            return Err(StoreError::Exists {
                name: spec.name.clone(),
            });
        }
        let id = new_id();
        let bridge = spec
            .bridge
            .clone()
            .unwrap_or_else(|| format!("br-{}", &id[..12]));
        if !validate_ifname(&bridge) {
            return Err(StoreError::BadBridge { name: bridge });
        }
        if let Some(n) = existing.iter().find(|n| n.bridge == bridge) {
            return Err(StoreError::BridgeInUse {
                bridge,
                other: n.name.clone(),
            });
        }
        for s in &subnets {
            for n in &existing {
                if let Some(o) = n.subnets.iter().find(|o| overlaps(o.subnet, s.subnet)) {
                    return Err(StoreError::OverlapsNetwork {
                        subnet: s.subnet,
                        other: n.name.clone(),
                        other_subnet: o.subnet,
                    });
                }
            }
            for r in host_routes {
                // default routes overlap everything and are no conflict; routes through the
                // network's own bridge are ours (a re-create after a crash)
                if r.dst.prefix() == 0 || r.dev.as_deref() == Some(bridge.as_str()) {
                    continue;
                }
                if overlaps(r.dst, s.subnet) {
                    return Err(StoreError::OverlapsRoute {
                        subnet: s.subnet,
                        route: r.dst,
                        dev: r
                            .dev
                            .as_ref()
                            .map(|d| format!(" dev {d}"))
                            .unwrap_or_default(),
                    });
                }
            }
        }
        Ok(NetworkDef {
            name: spec.name.clone(),
            id,
            bridge,
            subnets,
            internal: spec.internal,
            mtu,
        })
    }

    /// Validate and store a new network.
    pub fn create(
        &self,
        spec: &NetworkSpec,
        host_routes: &[HostRoute],
    ) -> Result<NetworkDef, StoreError> {
        let def = self.validate(spec, host_routes)?;
        self.put(&def)?;
        Ok(def)
    }

    /// Write a definition (atomically).
    pub fn put(&self, def: &NetworkDef) -> Result<(), StoreError> {
        validate_name(&def.name)?;
        let path = self.path(&def.name);
        let data = serde_json::to_vec_pretty(def).map_err(|e| StoreError::Io {
            path: path.clone(),
            source: io::Error::other(e),
        })?;
        fsutil::write_atomic(&path, &data).map_err(|source| StoreError::Io { path, source })
    }

    /// Remove a network definition.
    pub fn remove(&self, name: &str) -> Result<NetworkDef, StoreError> {
        let def = self.get(name)?;
        let path = self.path(name);
        fs::remove_file(&path).map_err(|source| StoreError::Io { path, source })?;
        Ok(def)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, subnets: &[&str]) -> NetworkSpec {
        NetworkSpec {
            name: name.into(),
            subnets: subnets.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn route(dst: &str, dev: &str) -> HostRoute {
        HostRoute {
            dst: dst.parse().unwrap(),
            dev: Some(dev.into()),
        }
    }

    #[test]
    fn names() {
        for ok in ["a", "web", "my-net_1.x", "0abc"] {
            validate_name(ok).unwrap();
        }
        for bad in ["", "-x", ".x", "a/b", "a b", "ä", &"x".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        assert!(validate_ifname("berth0"));
        assert!(!validate_ifname("this-is-too-long0"));
        assert!(!validate_ifname("a/b"));
    }

    #[test]
    fn subnets() {
        assert_eq!(parse_subnet("10.89.0.0/24").unwrap().prefix(), 24);
        parse_subnet("fd00:1:2::/64").unwrap();
        for (bad, want) in [
            ("10.89.0.0", "CIDR"),
            ("10.89.0.0/33", "invalid subnet"),
            ("10.300.0.0/16", "invalid subnet"),
            ("10.89.0.1/24", "did you mean 10.89.0.0/24"),
            ("10.89.0.0/31", "/30"),
            ("fd00::/124", "/120"),
            ("0.0.0.0/0", "default route"),
        ] {
            let e = parse_subnet(bad).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn create_list_get_remove() {
        let d = tempfile::tempdir().unwrap();
        let st = NetworkStore::open(d.path()).unwrap();
        let mut s = spec("web", &["10.89.0.0/24", "fd00:89::/64"]);
        s.gateways = vec!["10.89.0.254".parse().unwrap()];
        s.mtu = Some(1400);
        s.internal = true;
        let def = st.create(&s, &[]).unwrap();
        assert_eq!(def.id.len(), 64);
        assert_eq!(def.bridge, format!("br-{}", &def.id[..12]));
        assert_eq!(def.ipv4().unwrap().gateway.to_string(), "10.89.0.254");
        assert_eq!(def.ipv6().unwrap().gateway.to_string(), "fd00:89::1");
        assert_eq!(
            def.gateway_addresses()
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>(),
            ["10.89.0.254/24", "fd00:89::1/64"]
        );
        assert_eq!(st.get("web").unwrap(), def);
        st.create(&spec("db", &["10.90.0.0/24"]), &[]).unwrap();
        let names: Vec<_> = st.list().unwrap().into_iter().map(|n| n.name).collect();
        assert_eq!(names, ["db", "web"]);
        assert!(matches!(
            st.create(&spec("web", &["10.91.0.0/24"]), &[]),
            Err(StoreError::Exists { .. })
        ));
        st.remove("web").unwrap();
        assert!(matches!(st.get("web"), Err(StoreError::NotFound { .. })));
        assert!(matches!(st.remove("web"), Err(StoreError::NotFound { .. })));
    }

    #[test]
    fn overlaps_name_the_conflict() {
        let d = tempfile::tempdir().unwrap();
        let st = NetworkStore::open(d.path()).unwrap();
        st.create(&spec("a", &["10.89.0.0/16"]), &[]).unwrap();
        let e = st
            .create(&spec("b", &["10.89.5.0/24"]), &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("10.89.5.0/24") && e.contains("10.89.0.0/16") && e.contains("network a"),
            "{e}"
        );
        let routes = [route("0.0.0.0/0", "eth0"), route("192.168.7.0/24", "eth0")];
        let e = st
            .create(&spec("c", &["192.168.0.0/16"]), &routes)
            .unwrap_err()
            .to_string();
        assert!(e.contains("192.168.7.0/24 dev eth0"), "{e}");
        // the default route is no conflict
        st.create(&spec("d", &["10.200.0.0/24"]), &routes).unwrap();
        // a route through the network's own bridge is no conflict
        let mut s = spec("e", &["10.201.0.0/24"]);
        s.bridge = Some("bre".into());
        st.create(&s, &[route("10.201.0.0/24", "bre")]).unwrap();
        let mut s = spec("f", &["10.202.0.0/24"]);
        s.bridge = Some("bre".into());
        assert!(matches!(
            st.create(&s, &[]),
            Err(StoreError::BridgeInUse { .. })
        ));
        // nothing was written by the failures
        assert_eq!(st.list().unwrap().len(), 3);
    }

    #[test]
    fn bad_specs() {
        let d = tempfile::tempdir().unwrap();
        let st = NetworkStore::open(d.path()).unwrap();
        let mut s = spec("x", &["10.1.0.0/24"]);
        s.gateways = vec!["10.2.0.1".parse().unwrap()];
        assert!(st
            .create(&s, &[])
            .unwrap_err()
            .to_string()
            .contains("outside"));
        s.gateways = vec!["10.1.0.255".parse().unwrap()];
        assert!(matches!(
            st.create(&s, &[]),
            Err(StoreError::BadGateway { .. })
        ));
        let s = spec("x", &["10.1.0.0/24", "10.2.0.0/24"]);
        assert!(st
            .create(&s, &[])
            .unwrap_err()
            .to_string()
            .contains("at most one"));
        let s = spec("x", &["10.1.0.0/24", "10.1.0.0/25"]);
        assert!(matches!(
            st.create(&s, &[]),
            Err(StoreError::OverlapsNetwork { .. })
        ));
        assert!(matches!(
            st.create(&spec("x", &[]), &[]),
            Err(StoreError::NoSubnet { .. })
        ));
        let mut s = spec("x", &["10.1.0.0/24"]);
        s.mtu = Some(10);
        assert!(matches!(st.create(&s, &[]), Err(StoreError::BadMtu { .. })));
        s.mtu = None;
        s.bridge = Some("way-too-long-bridge".into());
        assert!(matches!(
            st.create(&s, &[]),
            Err(StoreError::BadBridge { .. })
        ));
        assert!(st.list().unwrap().is_empty());
    }
}
