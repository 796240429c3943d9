//! Netlink operations: bridges, veth pairs born inside a container's namespace, addresses,
//! routes, and the kernel settings that avoid known stalls.
//!
//! A [`Netlink`] wraps an rtnetlink handle on a socket of one network namespace: the host's
//! ([`Netlink::host`]) or a container's ([`Netlink::in_netns`], socket opened on an
//! [`NsThread`]). Every method is async and never switches namespaces.

mod batch;
mod bridge;
mod netns;
mod procsys;
mod reap;
pub mod sysctl;
mod veth;

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, RawFd};
use std::path::{Path, PathBuf};

use futures::TryStreamExt;
use ipnetwork::IpNetwork;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteType};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{Handle, RouteMessageBuilder};

use crate::mac::Mac;
use crate::store::HostRoute;

pub use bridge::BridgeSpec;
pub use netns::NsThread;
pub use veth::{host_veth_name, VethAttached, VethSpec};

/// Errors of netlink operations. Messages name the object and, where it helps, what to do.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("netlink {op}: {msg}")]
    Kernel {
        op: String,
        /// errno, when the kernel sent one
        errno: Option<i32>,
        msg: String,
    },
    #[error("network namespace {path} is gone")]
    NetnsGone { path: PathBuf },
    #[error("network namespace {path}: {source}")]
    Netns {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("sysctl {path}: {source}")]
    Sysctl {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("no such interface: {name}")]
    NoLink { name: String },
    #[error("interface {name} exists and is a {kind}, not a bridge; remove it or choose another bridge name")]
    NotABridge { name: String, kind: String },
    #[error("cannot create bridge {name}: {msg}; is the bridge kernel module available (modprobe bridge)?")]
    BridgeUnsupported { name: String, msg: String },
    #[error("cannot create veth {host} with peer {peer} in {netns}: an interface of that name already exists (host side or in the namespace)")]
    VethExists {
        host: String,
        peer: String,
        netns: PathBuf,
    },
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("netlink socket: {0}")]
    Socket(#[source] io::Error),
}

impl NetlinkError {
    /// The errno of a kernel error.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Kernel { errno, .. } => *errno,
            _ => None,
        }
    }

    /// A kernel refusal by errno (from a [`batch`] request).
    pub(crate) fn from_errno(op: impl Into<String>, errno: i32) -> NetlinkError {
        NetlinkError::Kernel {
            op: op.into(),
            errno: Some(errno),
            msg: io::Error::from_raw_os_error(errno).to_string(),
        }
    }

    pub(crate) fn kernel(op: impl Into<String>, e: rtnetlink::Error) -> NetlinkError {
        let (errno, msg) = match &e {
            rtnetlink::Error::NetlinkError(m) => match m.code {
                Some(c) => {
                    let errno = -c.get();
                    (Some(errno), io::Error::from_raw_os_error(errno).to_string())
                }
                None => (None, e.to_string()),
            },
            _ => (None, e.to_string()),
        };
        NetlinkError::Kernel {
            op: op.into(),
            errno,
            msg,
        }
    }
}

/// One link as netlink reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub kind: Option<String>,
    pub mtu: Option<u32>,
    pub mac: Option<Mac>,
    /// Index of the bridge (or bond) the link is a port of.
    pub controller: Option<u32>,
    /// Administratively up.
    pub up: bool,
}

impl Link {
    fn from_message(m: &LinkMessage) -> Link {
        let mut l = Link {
            index: m.header.index,
            name: String::new(),
            kind: None,
            mtu: None,
            mac: None,
            controller: None,
            up: m.header.flags.contains(LinkFlags::Up),
        };
        for a in &m.attributes {
            match a {
                LinkAttribute::IfName(n) => l.name = n.clone(),
                LinkAttribute::Mtu(v) => l.mtu = Some(*v),
                LinkAttribute::Address(b) => l.mac = Mac::from_slice(b),
                LinkAttribute::Controller(i) => l.controller = Some(*i),
                LinkAttribute::LinkInfo(infos) => {
                    for i in infos {
                        if let LinkInfo::Kind(k) = i {
                            l.kind = Some(k.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        l
    }
}

/// One address of a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub index: u32,
    pub addr: IpNetwork,
    /// IFA_F_* flags (tentative, nodad, ...).
    pub flags: u32,
}

fn address_from_message(m: &AddressMessage) -> Option<Address> {
    let mut ip = None;
    let mut flags = u32::from(m.header.flags.bits());
    for a in &m.attributes {
        match a {
            // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on p2p links
            AddressAttribute::Local(x) => ip = Some(*x),
            AddressAttribute::Address(x) if ip.is_none() => ip = Some(*x),
            AddressAttribute::Flags(f) => flags = f.bits(),
            _ => {}
        }
    }
    let addr = IpNetwork::new(ip?, m.header.prefix_len).ok()?;
    Some(Address {
        index: m.header.index,
        addr,
        flags,
    })
}

/// One route of the main table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dst: IpNetwork,
    pub gateway: Option<IpAddr>,
    pub oif: Option<u32>,
}

fn route_from_message(m: &RouteMessage) -> Option<Route> {
    let mut table = u32::from(m.header.table);
    let mut dst = None;
    let mut gateway = None;
    let mut oif = None;
    for a in &m.attributes {
        match a {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(RouteAddress::Inet(v)) => dst = Some(IpAddr::V4(*v)),
            RouteAttribute::Destination(RouteAddress::Inet6(v)) => dst = Some(IpAddr::V6(*v)),
            RouteAttribute::Gateway(RouteAddress::Inet(v)) => gateway = Some(IpAddr::V4(*v)),
            RouteAttribute::Gateway(RouteAddress::Inet6(v)) => gateway = Some(IpAddr::V6(*v)),
            RouteAttribute::Oif(i) => oif = Some(*i),
            _ => {}
        }
    }
    if table != u32::from(rtnetlink::packet_route::route::RouteHeader::RT_TABLE_MAIN)
        || m.header.kind != RouteType::Unicast
    {
        return None;
    }
    let dst = match (dst, m.header.address_family) {
        (Some(d), _) => d,
        (None, AddressFamily::Inet6) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        (None, _) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
    };
    Some(Route {
        dst: IpNetwork::new(dst, m.header.destination_prefix_length).ok()?,
        gateway,
        oif,
    })
}

/// An rtnetlink handle bound to one network namespace. Dropping it stops its connection task
/// (and closes the socket, so it does not keep a container namespace alive).
pub struct Netlink {
    handle: Handle,
    conn: tokio::task::JoinHandle<()>,
    netns: Option<PathBuf>,
}

impl Drop for Netlink {
    fn drop(&mut self) {
        self.conn.abort();
    }
}

/// Receive buffer of the host's socket. It is shared by every concurrent request of the agent,
/// and the kernel drops replies (and notifications) that do not fit; the default (rmem_default,
/// ~208 KiB) holds the replies of a few dozen requests in flight.
pub const HOST_RCVBUF: usize = 4 << 20;

/// SO_RCVBUFFORCE (root: not capped by net.core.rmem_max), else SO_RCVBUF; best effort.
fn set_rcvbuf(fd: RawFd, bytes: usize) {
    let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    let set = |opt| {
        // SAFETY: setsockopt on a socket we own, with a pointer to a c_int and its size.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&v as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            ) == 0
        }
    };
    if !set(libc::SO_RCVBUFFORCE) && !set(libc::SO_RCVBUF) {
        tracing::warn!(error = %io::Error::last_os_error(), bytes,
            "cannot enlarge the netlink socket's receive buffer");
    }
}

fn no_runtime() -> NetlinkError {
    NetlinkError::Socket(io::Error::other(
        "netlink handles need a tokio runtime (call from async code)",
    ))
}

impl Netlink {
    /// A handle on the host's namespace (the namespace of the calling process). Must be called
    /// inside a tokio runtime.
    pub fn host() -> Result<Netlink, NetlinkError> {
        tokio::runtime::Handle::try_current().map_err(|_| no_runtime())?;
        let (mut conn, handle, _) = rtnetlink::new_connection().map_err(NetlinkError::Socket)?;
        set_rcvbuf(conn.socket_mut().as_raw_fd(), HOST_RCVBUF);
        Ok(Netlink {
            handle,
            conn: tokio::spawn(conn),
            netns: None,
        })
    }

    /// A handle inside the network namespace at `path`: the socket is opened on an
    /// [`NsThread`], then used from async code.
    pub async fn in_netns(path: &Path) -> Result<Netlink, NetlinkError> {
        let ns = NsThread::enter(path).await?;
        Self::in_ns_thread(&ns).await
    }

    pub(crate) async fn in_ns_thread(ns: &NsThread) -> Result<Netlink, NetlinkError> {
        let sock = ns
            .run(|| {
                let s = rtnetlink::sys::Socket::new(rtnetlink::sys::protocols::NETLINK_ROUTE)?;
                s.set_netlink_get_strict_chk(true)?;
                Ok::<_, io::Error>(s)
            })
            .await?
            .map_err(NetlinkError::Socket)?;
        tokio::runtime::Handle::try_current().map_err(|_| no_runtime())?;
        // SAFETY: the fd comes from `into_raw_fd` of a socket we own, so the TokioSocket takes
        // sole ownership; a tokio runtime is current (checked above), which
        // `TokioSocket::from_raw_fd` needs to register the fd.
        let sock = unsafe { rtnetlink::sys::TokioSocket::from_raw_fd(sock.into_raw_fd()) };
        let (conn, handle, _) = rtnetlink::from_socket(sock);
        Ok(Netlink {
            handle,
            conn: tokio::spawn(conn),
            netns: Some(ns.path().to_path_buf()),
        })
    }

    /// The namespace of this handle (`None`: the host).
    pub fn netns(&self) -> Option<&Path> {
        self.netns.as_deref()
    }

    /// The raw rtnetlink handle, for operations this type does not wrap.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Every link.
    pub async fn links(&self) -> Result<Vec<Link>, NetlinkError> {
        let msgs: Vec<LinkMessage> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|e| NetlinkError::kernel("list links", e))?;
        Ok(msgs.iter().map(Link::from_message).collect())
    }

    /// One link by name; `None` when there is no such link.
    pub async fn link(&self, name: &str) -> Result<Option<Link>, NetlinkError> {
        let r: Result<Vec<LinkMessage>, _> = self
            .handle
            .link()
            .get()
            .match_name(name)
            .execute()
            .try_collect()
            .await;
        match r {
            Ok(m) => Ok(m.first().map(Link::from_message)),
            Err(e) => {
                let e = NetlinkError::kernel(format!("get link {name}"), e);
                if e.errno() == Some(libc::ENODEV) {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Addresses, of one link (`Some(index)`) or of all.
    pub async fn addresses(&self, index: Option<u32>) -> Result<Vec<Address>, NetlinkError> {
        let mut req = self.handle.address().get();
        if let Some(i) = index {
            req = req.set_link_index_filter(i);
        }
        let msgs: Vec<AddressMessage> = req
            .execute()
            .try_collect()
            .await
            .map_err(|e| NetlinkError::kernel("list addresses", e))?;
        Ok(msgs
            .iter()
            .filter_map(address_from_message)
            .filter(|a| index.is_none_or(|i| a.index == i))
            .collect())
    }

    /// Unicast routes of the main table, IPv4 then IPv6.
    pub async fn routes(&self) -> Result<Vec<Route>, NetlinkError> {
        let mut out = Vec::new();
        let reqs = [
            RouteMessageBuilder::<std::net::Ipv4Addr>::new().build(),
            RouteMessageBuilder::<std::net::Ipv6Addr>::new().build(),
        ];
        for msg in reqs {
            let msgs: Vec<RouteMessage> = self
                .handle
                .route()
                .get(msg)
                .execute()
                .try_collect()
                .await
                .map_err(|e| NetlinkError::kernel("list routes", e))?;
            out.extend(msgs.iter().filter_map(route_from_message));
        }
        Ok(out)
    }

    /// The routes a new network's subnets must not overlap, with interface names for messages.
    /// IPv6 link-local and multicast routes are left out.
    pub async fn host_routes(&self) -> Result<Vec<HostRoute>, NetlinkError> {
        let links = self.links().await?;
        let name = |i: Option<u32>| {
            i.and_then(|i| links.iter().find(|l| l.index == i))
                .map(|l| l.name.clone())
        };
        Ok(self
            .routes()
            .await?
            .into_iter()
            .filter(|r| match r.dst {
                IpNetwork::V6(n) => {
                    let s = n.network().segments()[0];
                    s & 0xffc0 != 0xfe80 && s & 0xff00 != 0xff00
                }
                IpNetwork::V4(_) => true,
            })
            .map(|r| HostRoute {
                dst: r.dst,
                dev: name(r.oif),
            })
            .collect())
    }

    /// Delete a link by name; `Ok(false)` when it did not exist.
    pub async fn delete_link(&self, name: &str) -> Result<bool, NetlinkError> {
        let Some(l) = self.link(name).await? else {
            return Ok(false);
        };
        match self.handle.link().del(l.index).execute().await {
            Ok(()) => Ok(true),
            Err(e) => {
                let e = NetlinkError::kernel(format!("delete link {name}"), e);
                if e.errno() == Some(libc::ENODEV) {
                    Ok(false)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Set a link up by index.
    pub async fn set_up(&self, index: u32, what: &str) -> Result<(), NetlinkError> {
        self.handle
            .link()
            .set(rtnetlink::LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(|e| NetlinkError::kernel(format!("set {what} up"), e))
    }

    /// Add an address to a link; an address that is already there is no error. IPv6 addresses
    /// get IFA_F_NODAD: usable at once, no duplicate address detection wait.
    pub async fn add_address(
        &self,
        index: u32,
        addr: IpNetwork,
        what: &str,
    ) -> Result<(), NetlinkError> {
        let mut req = self.handle.address().add(index, addr.ip(), addr.prefix());
        if addr.is_ipv6() {
            req.message_mut()
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        match req.execute().await {
            Ok(()) => Ok(()),
            Err(e) => {
                let e = NetlinkError::kernel(format!("add address {addr} to {what}"), e);
                match e.errno() {
                    Some(libc::EEXIST) => Ok(()),
                    Some(libc::EACCES) if addr.is_ipv6() => Err(NetlinkError::Invalid(format!(
                        "cannot add {addr} to {what}: permission denied; is IPv6 enabled in the kernel (ipv6.disable, disable_ipv6)?"
                    ))),
                    _ => Err(e),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_errors_carry_errno_and_text() {
        let mut m = rtnetlink::packet_core::ErrorMessage::default();
        m.code = std::num::NonZeroI32::new(-libc::EEXIST);
        let e = NetlinkError::kernel("add link x", rtnetlink::Error::NetlinkError(m));
        assert_eq!(e.errno(), Some(libc::EEXIST));
        assert!(e.to_string().contains("add link x: File exists"), "{e}");
    }
}
