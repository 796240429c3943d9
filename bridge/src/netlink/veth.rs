//! Attach a network namespace to a bridge with a veth pair, and detach it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;

use std::path::{Path, PathBuf};
use tokio::sync::oneshot;

use ipnetwork::IpNetwork;
use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use rtnetlink::packet_route::link::{InfoData, InfoVeth};
use rtnetlink::packet_route::route::RouteMessage;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::{AddressMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};

use super::batch::BatchSocket;
use super::netns::open_netns;
use super::{procsys, reap, sysctl, Netlink, NetlinkError, NsThread};
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
    /// Announce the addresses with gratuitous ARP when the interface comes up. Needed only
    /// when the MAC is not derived from the IPv4 address (given by the user): otherwise an
    /// address always comes with the same MAC and no neighbour's cache can be stale, and the
    /// broadcast would reach every port of the bridge (1000 copies at 1000 endpoints).
    pub announce: bool,
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
    /// 1. a pooled thread enters the namespace ([`NsThread`]) and, through a host netlink
    ///    socket, sends the one RTM_NEWLINK that creates the pair: the host end enslaved to the
    ///    bridge, MTU set, down (it goes up once IPv6 is off on it: a bridge port needs no
    ///    address of its own); the peer born inside the namespace (IFLA_NET_NS_FD) with its
    ///    final name, MTU and MAC, so there is no move or rename step and no window with a
    ///    stray interface on the host;
    /// 2. then, at the same time: on the calling thread (the host's namespace), hairpin mode
    ///    and IPv6 off on the host end, and the host end up; on the namespace thread, the
    ///    container end's sysctls ([`sysctl::tune_container_if`]) and one batch of netlink
    ///    requests: addresses (IPv6 with NODAD), the interface and `lo` up, default routes
    ///    via the gateways when asked.
    ///
    /// The requests are synchronous ([`BatchSocket`]): each is a system call that the kernel
    /// answers before it returns, cheaper than a round trip through the async connection.
    /// Everything is validated first; a failure after the pair exists deletes it (which
    /// removes both ends) before the error is returned.
    pub async fn attach_veth(&self, spec: &VethSpec) -> Result<VethAttached, NetlinkError> {
        validate(spec)?;
        let started = std::time::Instant::now();
        let bridge = if_index(&spec.bridge).ok_or_else(|| NetlinkError::NoLink {
            name: spec.bridge.clone(),
        })?;
        let nsfd = open_netns(&spec.netns)?;
        // opened here, so in the host's namespace, and lent to the namespace thread
        let host_sock = BatchSocket::open().map_err(NetlinkError::Socket)?;
        let ns = NsThread::start(&spec.netns)?;

        let (created_tx, created_rx) = oneshot::channel();
        let inside = {
            let spec = spec.clone();
            ns.run(move || {
                let mut host_sock = host_sock;
                let created = create_pair(&mut host_sock, &spec, bridge, &nsfd);
                drop(nsfd);
                let ok = created.is_ok();
                let _ = created_tx.send((created, host_sock));
                // a failed creation is reported through the channel
                ok.then(|| configure_inside(&spec))
            })
        };
        let host = async {
            let (created, mut sock) = created_rx.await.map_err(|_| NetlinkError::Netns {
                path: spec.netns.clone(),
                source: std::io::Error::other("namespace thread died"),
            })?;
            created?;
            Ok::<_, NetlinkError>(configure_host(&mut sock, spec))
        };
        let (host, inside) = tokio::join!(host, inside);
        // the pair was not made: nothing to undo
        let host = host?;
        let attached = match (host, inside) {
            (Ok(host_index), Ok(Some(Ok(index)))) => Ok(VethAttached {
                host_ifname: spec.host_ifname.clone(),
                host_index,
                ifname: spec.ifname.clone(),
                index,
                // the pair was created with both
                mac: spec.mac,
                mtu: spec.mtu,
            }),
            (Err(e), _) | (_, Ok(Some(Err(e)))) | (_, Err(e)) => Err(e),
            (_, Ok(None)) => unreachable!("the pair was created"),
        };
        if attached.is_err() {
            if let Err(u) = self.delete_link(&spec.host_ifname).await {
                tracing::warn!(veth = %spec.host_ifname, error = %u,
                    "could not undo a failed attach");
            }
        }
        tracing::debug!(veth = %spec.host_ifname, elapsed_us = started.elapsed().as_micros() as u64,
            ok = attached.is_ok(), "veth pair wired");
        attached
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
        // with the detaches running at the same time (see reap)
        if reap::delete(host_ifname).await? {
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

/// The RTM_NEWLINK of [`Netlink::attach_veth`], on a host socket.
fn create_pair(
    host: &mut BatchSocket,
    spec: &VethSpec,
    bridge: u32,
    nsfd: &std::fs::File,
) -> Result<(), NetlinkError> {
    let peer = LinkUnspec::new_with_name(&spec.ifname)
        .mtu(spec.mtu)
        .address(spec.mac.to_vec())
        .setns_by_fd(nsfd.as_raw_fd())
        .build();
    let msg = LinkVeth::new(&spec.host_ifname, &spec.ifname)
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .mtu(spec.mtu)
        .controller(bridge)
        .build();
    let op = || format!("create veth {} (peer {})", spec.host_ifname, spec.ifname);
    let outcome = host
        .run(vec![(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )])
        .map_err(NetlinkError::Socket)?
        .pop()
        .unwrap_or(Err(libc::EIO));
    match outcome {
        Ok(_) => Ok(()),
        Err(libc::EEXIST) => Err(NetlinkError::VethExists {
            host: spec.host_ifname.clone(),
            peer: spec.ifname.clone(),
            netns: spec.netns.clone(),
        }),
        Err(errno) => Err(NetlinkError::from_errno(op(), errno)),
    }
}

/// The host end of a new pair, on a host thread: hairpin mode, IPv6 off, up. Returns its index.
fn configure_host(host: &mut BatchSocket, spec: &VethSpec) -> Result<u32, NetlinkError> {
    sysctl::enable_hairpin(&spec.host_ifname)?;
    sysctl::disable_ipv6_on_host(&spec.host_ifname)?;
    let index = if_index(&spec.host_ifname).ok_or_else(|| NetlinkError::NoLink {
        name: spec.host_ifname.clone(),
    })?;
    let up = LinkUnspec::new_with_index(index).up().build();
    match host
        .run_one(RouteNetlinkMessage::SetLink(up), 0)
        .map_err(NetlinkError::Socket)?
    {
        Ok(()) => Ok(index),
        Err(errno) => Err(NetlinkError::from_errno(
            format!("set {} up", spec.host_ifname),
            errno,
        )),
    }
}

/// The index of a host interface (the calling thread's namespace), without a netlink round
/// trip.
fn if_index(name: &str) -> Option<u32> {
    nix::net::if_::if_nametoindex(name).ok()
}

/// The container end, on a thread inside its namespace: sysctls, then one netlink batch.
/// Returns its index.
fn configure_inside(spec: &VethSpec) -> Result<u32, NetlinkError> {
    let v6 = spec.addresses.iter().any(|a| a.is_ipv6());
    let dirs = sysctl::ConfDirs::open(&procsys::root())?;
    sysctl::tune_container_if(&dirs, &spec.ifname, v6, spec.announce)?;
    drop(dirs);

    let what = format!("{} in {}", spec.ifname, spec.netns.display());
    // an ioctl on this thread (it is in the namespace) instead of a netlink round trip
    let index =
        if_index(&spec.ifname).ok_or_else(|| NetlinkError::NoLink { name: what.clone() })?;
    let mut nl = BatchSocket::open().map_err(NetlinkError::Socket)?;

    // each request with what a failure of it means
    let mut requests: Vec<(RouteNetlinkMessage, u16, String)> = Vec::new();
    for a in &spec.addresses {
        requests.push((
            RouteNetlinkMessage::NewAddress(address_message(index, *a)),
            NLM_F_CREATE | NLM_F_EXCL,
            format!("add address {a} to {what}"),
        ));
    }
    requests.push((
        RouteNetlinkMessage::SetLink(LinkUnspec::new_with_index(index).up().build()),
        0,
        format!("set {what} up"),
    ));
    // lo is index 1 in every namespace (LOOPBACK_IFINDEX); setting it up again is a no-op
    requests.push((
        RouteNetlinkMessage::SetLink(LinkUnspec::new_with_index(1).up().build()),
        0,
        "set lo up".into(),
    ));
    if spec.default_route {
        let gateways = [spec.gateway4.map(IpAddr::V4), spec.gateway6.map(IpAddr::V6)];
        for gw in gateways.into_iter().flatten() {
            requests.push((
                RouteNetlinkMessage::NewRoute(default_route(gw, index)),
                NLM_F_CREATE | NLM_F_EXCL,
                format!("add default route via {gw} in {}", spec.netns.display()),
            ));
        }
    }
    let ops: Vec<String> = requests.iter().map(|r| r.2.clone()).collect();
    let outcomes = nl
        .run(requests.into_iter().map(|(m, f, _)| (m, f)).collect())
        .map_err(NetlinkError::Socket)?;
    // the first requests are the addresses
    let addresses = spec.addresses.len();
    for (i, (op, outcome)) in ops.into_iter().zip(outcomes).enumerate() {
        match outcome {
            Ok(()) => {}
            // an address that is already there is no error
            Err(libc::EEXIST) if i < addresses => {}
            Err(libc::EACCES) if i < addresses => {
                return Err(NetlinkError::Invalid(format!(
                    "cannot {op}: permission denied; is IPv6 enabled in the kernel (ipv6.disable, disable_ipv6)?"
                )))
            }
            Err(errno) => return Err(NetlinkError::from_errno(op, errno)),
        }
    }
    Ok(index)
}

/// A default route via `gw` out of `index`.
fn default_route(gw: IpAddr, index: u32) -> RouteMessage {
    match gw {
        IpAddr::V4(g) => RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(g)
            .output_interface(index)
            .build(),
        IpAddr::V6(g) => RouteMessageBuilder::<Ipv6Addr>::new()
            .gateway(g)
            .output_interface(index)
            .build(),
    }
}

/// `RTM_NEWADDR` of `addr` on `index`; IPv6 addresses with IFA_F_NODAD (usable at once).
fn address_message(index: u32, addr: IpNetwork) -> AddressMessage {
    let mut m = match addr.ip() {
        IpAddr::V4(a) => AddressMessageBuilder::<Ipv4Addr>::new()
            .index(index)
            .address(a, addr.prefix())
            .build(),
        IpAddr::V6(a) => AddressMessageBuilder::<Ipv6Addr>::new()
            .index(index)
            .address(a, addr.prefix())
            .build(),
    };
    if addr.is_ipv6() {
        m.attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    m
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
            announce: false,
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
