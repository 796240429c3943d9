//! Ensure a bridge exists with its MTU, MAC, state and gateway addresses.

use ipnetwork::IpNetwork;
use rtnetlink::packet_route::link::BridgeStpState;
use rtnetlink::{LinkBridge, LinkUnspec};

use super::{sysctl, Link, Netlink, NetlinkError};
use crate::mac::Mac;

/// What a network's bridge must look like.
#[derive(Debug, Clone)]
pub struct BridgeSpec {
    pub name: String,
    pub mtu: u32,
    /// Gateway addresses with the subnet prefix (`10.89.0.1/24`, `fd00::1/64`).
    pub addresses: Vec<IpNetwork>,
    /// The bridge's MAC. `None`: [`Mac::for_name`] of the bridge name.
    pub mac: Option<Mac>,
    /// Internal network: no forwarding in or out of the bridge.
    pub internal: bool,
}

/// `NET_ADDR_SET` in `/sys/class/net/<if>/addr_assign_type`: the MAC was set explicitly and the
/// bridge no longer follows its ports' MACs.
const NET_ADDR_SET: &str = "3";

impl Netlink {
    /// Create the bridge if it is missing, or bring an existing one to the spec: MTU, up, MAC
    /// pinned, gateway addresses present, per-bridge sysctls. Idempotent.
    ///
    /// MAC: a new bridge is born with a fixed, locally-administered MAC (derived from its name).
    /// A bridge whose MAC was set explicitly keeps it as ports come and go; otherwise it takes
    /// the lowest port MAC, changes on every attach and detach, and containers' ARP caches point
    /// to a MAC that is gone for up to ~100 s (netavark and the CNI bridge plugin pin it after
    /// the first port; setting it at creation is the same with no window). An existing bridge
    /// whose MAC is not pinned gets its current MAC set explicitly.
    pub async fn ensure_bridge(&self, spec: &BridgeSpec) -> Result<Link, NetlinkError> {
        if !crate::store::validate_ifname(&spec.name) {
            return Err(NetlinkError::Invalid(format!(
                "bridge name {:?} is not a valid interface name",
                spec.name
            )));
        }
        let mac = spec.mac.unwrap_or_else(|| Mac::for_name(&spec.name));
        let mut link = match self.link(&spec.name).await? {
            Some(l) => l,
            None => {
                let msg = LinkBridge::new(&spec.name)
                    .mtu(spec.mtu)
                    .address(mac.to_vec())
                    .stp_state(BridgeStpState::Disabled)
                    .build();
                if let Err(e) = self.handle.link().add(msg).execute().await {
                    let e = NetlinkError::kernel(format!("create bridge {}", spec.name), e);
                    match e.errno() {
                        // created concurrently: fine, check it below
                        Some(libc::EEXIST) => {}
                        Some(libc::EOPNOTSUPP) => {
                            return Err(NetlinkError::BridgeUnsupported {
                                name: spec.name.clone(),
                                msg: e.to_string(),
                            })
                        }
                        _ => return Err(e),
                    }
                }
                self.link(&spec.name)
                    .await?
                    .ok_or_else(|| NetlinkError::NoLink {
                        name: spec.name.clone(),
                    })?
            }
        };
        if link.kind.as_deref() != Some("bridge") {
            return Err(NetlinkError::NotABridge {
                name: spec.name.clone(),
                kind: link.kind.unwrap_or_else(|| "device".into()),
            });
        }
        let pinned =
            std::fs::read_to_string(format!("/sys/class/net/{}/addr_assign_type", spec.name))
                .map(|s| s.trim() == NET_ADDR_SET)
                .unwrap_or(false);
        let mut set = LinkUnspec::new_with_index(link.index);
        let mut change = false;
        if link.mtu != Some(spec.mtu) {
            set = set.mtu(spec.mtu);
            change = true;
        }
        if !pinned {
            let m = if spec.mac.is_some() {
                mac
            } else {
                link.mac.unwrap_or(mac)
            };
            set = set.address(m.to_vec());
            change = true;
        }
        if !link.up {
            set = set.up();
            change = true;
        }
        if change {
            self.handle
                .link()
                .set(set.build())
                .execute()
                .await
                .map_err(|e| NetlinkError::kernel(format!("configure bridge {}", spec.name), e))?;
            link = self
                .link(&spec.name)
                .await?
                .ok_or_else(|| NetlinkError::NoLink {
                    name: spec.name.clone(),
                })?;
        }
        let have = self.addresses(Some(link.index)).await?;
        for a in &spec.addresses {
            if !have.iter().any(|h| h.addr == *a) {
                self.add_address(link.index, *a, &format!("bridge {}", spec.name))
                    .await?;
            }
        }
        sysctl::tune_bridge(&spec.name, spec.internal)?;
        Ok(link)
    }
}
