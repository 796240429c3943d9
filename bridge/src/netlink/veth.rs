//! Attach a network namespace to a bridge with a veth pair, and detach it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use ipnetwork::IpNetwork;
use rtnetlink::packet_route::link::{InfoData, InfoVeth};
use rtnetlink::{LinkUnspec, LinkVeth, RouteMessageBuilder};

use super::netns::open_netns;
use super::{sysctl, Netlink, NetlinkError, NsThread};
use crate::mac::Mac;
use crate::store::validate_ifname;

/// One endpoint to wire.
#[derive(Debug, Clone)]
pub struct VethSpec {
    /// The bridge the host end joins.
    pub bridge: String,
    /// Name of the host end (see [`host_veth_name`]).
    pub host_ifname: String,
    /// The container's network namespace file.
    pub netns: PathBuf,
    /// Name of the container end (`eth0`, `eth1`, ...).
    pub ifname: String,
    pub mtu: u32,
    /// MAC of the container end ([`Mac::from_ipv4`] unless the user gave one).
    pub mac: Mac,
    /// Addresses of the container end, with the subnet prefix.
    pub addresses: Vec<IpNetwork>,
    /// Add default routes via these gateways (first network of a container, not internal).
    pub default_route: bool,
    pub gateway4: Option<Ipv4Addr>,
    pub gateway6: Option<Ipv6Addr>,
}

/// What [`Netlink::attach_veth`] made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VethAttached {
    pub host_ifname: String,
    pub host_index: u32,
    pub ifname: String,
    /// Index of the container end inside the namespace.
    pub index: u32,
    pub mac: Mac,
    pub mtu: u32,
}

/// A stable host-side name for an endpoint key (`veth` + 11 hex of a 64-bit hash, the longest
/// that fits IFNAMSIZ), so a restarted agent finds the veth of an endpoint again and 1000s of
/// endpoints do not collide (44 bits; docker's 7 hex would collide with ~0.2% odds at 1000).
pub fn host_veth_name(key: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("veth{:011x}", h & 0x0fff_ffff_ffff)
}

fn validate(spec: &VethSpec) -> Result<(), NetlinkError> {
    for (what, n) in [
        ("host interface", &spec.host_ifname),
        ("container interface", &spec.ifname),
        ("bridge", &spec.bridge),
    ] {
        if !validate_ifname(n) {
            return Err(NetlinkError::Invalid(format!(
                "{what} name {n:?} is not a valid interface name (1-15 characters, no '/', ':' or space)"
            )));
        }
    }
    if !(68..=65535).contains(&spec.mtu) {
        return Err(NetlinkError::Invalid(format!(
            "mtu {} out of range 68..65535",
            spec.mtu
        )));
    }
    if spec.mac.0[0] & 1 != 0 || spec.mac.0 == [0; 6] {
        return Err(NetlinkError::Invalid(format!(
            "mac {} is not a unicast address",
            spec.mac
        )));
    }
    if spec.default_route {
        for (gw, fam) in [
            (spec.gateway4.map(IpAddr::V4), "IPv4"),
            (spec.gateway6.map(IpAddr::V6), "IPv6"),
        ] {
            if let Some(gw) = gw {
                if !spec.addresses.iter().any(|a| a.contains(gw)) {
                    return Err(NetlinkError::Invalid(format!(
                        "{fam} gateway {gw} is not on any subnet of the endpoint's addresses"
                    )));
                }
            }
        }
    }
    Ok(())
}

impl Netlink {
    /// Wire the namespace `spec.netns` into `spec.bridge` (this handle must be the host's):
    ///
    /// 1. a thread enters the namespace, sets `accept_dad=0` (and no RA/autoconf) as the
    ///    namespace's defaults and opens a netlink socket there;
    /// 2. one RTM_NEWLINK creates the pair: the host end enslaved to the bridge, MTU set (it goes
    ///    up once IPv6 is off on it: a bridge port needs no address of its own);
    ///    the peer born inside the namespace (IFLA_NET_NS_FD) with its final name, MTU and MAC,
    ///    so there is no move or rename step and no window with a stray interface on the host;
    /// 3. inside: per-interface sysctls (IPv6 off on a network without an IPv6 subnet),
    ///    addresses (IPv6 with NODAD), the interface and `lo`
    ///    up, default routes via the gateways when asked.
    ///
    /// Everything is validated first; a failure after the pair exists deletes it (which
    /// removes both ends) before the error is returned.
    pub async fn attach_veth(&self, spec: &VethSpec) -> Result<VethAttached, NetlinkError> {
        validate(spec)?;
        let br = self
            .link(&spec.bridge)
            .await?
            .ok_or_else(|| NetlinkError::NoLink {
                name: spec.bridge.clone(),
            })?;
        let ns = NsThread::enter(&spec.netns).await?;
        let dirs = ns.run(sysctl::prepare_container_ns).await??;
        let inner = Netlink::in_ns_thread(&ns).await?;
        let nsfd = open_netns(&spec.netns)?;

        let peer = LinkUnspec::new_with_name(&spec.ifname)
            .mtu(spec.mtu)
            .address(spec.mac.to_vec())
            .setns_by_fd(nsfd.as_raw_fd())
            .build();
        let msg = LinkVeth::new(&spec.host_ifname, &spec.ifname)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .mtu(spec.mtu)
            .controller(br.index)
            .build();
        if let Err(e) = self.handle.link().add(msg).execute().await {
            let e = NetlinkError::kernel(
                format!("create veth {} (peer {})", spec.host_ifname, spec.ifname),
                e,
            );
            drop(nsfd);
            return Err(if e.errno() == Some(libc::EEXIST) {
                NetlinkError::VethExists {
                    host: spec.host_ifname.clone(),
                    peer: spec.ifname.clone(),
                    netns: spec.netns.clone(),
                }
            } else {
                e
            });
        }
        drop(nsfd);
        let configured = match sysctl::enable_hairpin(&spec.host_ifname)
            .and_then(|()| sysctl::disable_ipv6_on_host(&spec.host_ifname))
        {
            Ok(()) => self.configure_inside(spec, &ns, &inner, dirs).await,
            Err(e) => Err(e),
        };
        match configured {
            Ok(a) => Ok(a),
            Err(e) => {
                if let Err(u) = self.delete_link(&spec.host_ifname).await {
                    tracing::warn!(veth = %spec.host_ifname, error = %u,
                        "could not undo a failed attach");
                }
                Err(e)
            }
        }
    }

    async fn configure_inside(
        &self,
        spec: &VethSpec,
        ns: &NsThread,
        inner: &Netlink,
        dirs: sysctl::ConfDirs,
    ) -> Result<VethAttached, NetlinkError> {
        let host = self
            .link(&spec.host_ifname)
            .await?
            .ok_or_else(|| NetlinkError::NoLink {
                name: spec.host_ifname.clone(),
            })?;
        let link = inner
            .link(&spec.ifname)
            .await?
            .ok_or_else(|| NetlinkError::NoLink {
                name: format!("{} in {}", spec.ifname, spec.netns.display()),
            })?;
        // the host end was created down so that IPv6 is off before it comes up
        self.set_up(host.index, &spec.host_ifname).await?;
        let ifname = spec.ifname.clone();
        let v6 = spec.addresses.iter().any(|a| a.is_ipv6());
        ns.run(move || sysctl::tune_container_if(&dirs, &ifname, v6))
            .await??;
        let what = format!("{} in {}", spec.ifname, spec.netns.display());
        for a in &spec.addresses {
            inner.add_address(link.index, *a, &what).await?;
        }
        inner.set_up(link.index, &what).await?;
        if let Some(lo) = inner.link("lo").await? {
            if !lo.up {
                inner.set_up(lo.index, "lo").await?;
            }
        }
        if spec.default_route {
            if let Some(gw) = spec.gateway4 {
                let r = RouteMessageBuilder::<Ipv4Addr>::new()
                    .gateway(gw)
                    .output_interface(link.index)
                    .build();
                inner.handle.route().add(r).execute().await.map_err(|e| {
                    NetlinkError::kernel(
                        format!("add default route via {gw} in {}", spec.netns.display()),
                        e,
                    )
                })?;
            }
            if let Some(gw) = spec.gateway6 {
                let r = RouteMessageBuilder::<Ipv6Addr>::new()
                    .gateway(gw)
                    .output_interface(link.index)
                    .build();
                inner.handle.route().add(r).execute().await.map_err(|e| {
                    NetlinkError::kernel(
                        format!("add default route via {gw} in {}", spec.netns.display()),
                        e,
                    )
                })?;
            }
        }
        Ok(VethAttached {
            host_ifname: spec.host_ifname.clone(),
            host_index: host.index,
            ifname: spec.ifname.clone(),
            index: link.index,
            mac: link.mac.unwrap_or(spec.mac),
            mtu: link.mtu.unwrap_or(spec.mtu),
        })
    }

    /// Remove an endpoint's veth pair, best effort and idempotent (CNI DEL semantics): delete
    /// the host end (which removes the peer too); when the host end is already gone and the
    /// namespace is known, delete the container end inside it. A vanished namespace is no
    /// error. Returns whether anything was deleted.
    pub async fn detach_veth(
        &self,
        host_ifname: &str,
        container: Option<(&Path, &str)>,
    ) -> Result<bool, NetlinkError> {
        if self.delete_link(host_ifname).await? {
            return Ok(true);
        }
        let Some((netns, ifname)) = container else {
            return Ok(false);
        };
        let inner = match Netlink::in_netns(netns).await {
            Ok(n) => n,
            Err(NetlinkError::NetnsGone { .. }) => return Ok(false),
            Err(e) => return Err(e),
        };
        inner.delete_link(ifname).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> VethSpec {
        VethSpec {
            bridge: "br0".into(),
            host_ifname: "veth1234567".into(),
            netns: "/run/netns/x".into(),
            ifname: "eth0".into(),
            mtu: 1500,
            mac: Mac::from_ipv4(Ipv4Addr::new(10, 0, 0, 2)),
            addresses: vec!["10.0.0.2/24".parse().unwrap()],
            default_route: true,
            gateway4: Some(Ipv4Addr::new(10, 0, 0, 1)),
            gateway6: None,
        }
    }

    #[test]
    fn host_names_are_stable_and_short() {
        let a = host_veth_name("abc/eth0");
        assert_eq!(a, host_veth_name("abc/eth0"));
        assert_ne!(a, host_veth_name("abc/eth1"));
        assert_eq!(a.len(), 15);
        assert!(validate_ifname(&a));
    }

    #[test]
    fn validation_before_the_kernel() {
        validate(&spec()).unwrap();
        let mut s = spec();
        s.ifname = "eth0-much-too-long".into();
        assert!(validate(&s)
            .unwrap_err()
            .to_string()
            .contains("container interface"));
        let mut s = spec();
        s.mtu = 20;
        assert!(validate(&s).is_err());
        let mut s = spec();
        s.mac = Mac([1, 0, 0, 0, 0, 1]);
        assert!(validate(&s).is_err());
        let mut s = spec();
        s.gateway4 = Some(Ipv4Addr::new(10, 1, 0, 1));
        assert!(validate(&s).unwrap_err().to_string().contains("10.1.0.1"));
    }
}
