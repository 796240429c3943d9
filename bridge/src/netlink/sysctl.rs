//! sysctls through `/proc/sys`.
//!
//! Keys under `net/` resolve against the network namespace of the thread that opens the file:
//! host keys are written from any runtime thread (they never enter another namespace), a
//! container's keys from its [`NsThread`](super::NsThread).

use std::fs;
use std::io;
use std::path::PathBuf;

use super::NetlinkError;

fn path(key: &str) -> PathBuf {
    PathBuf::from("/proc/sys").join(key.replace('.', "/"))
}

/// Write `value` to the sysctl `key` (`net/ipv4/ip_forward` or `net.ipv4.ip_forward`; interface
/// names with dots must use the slash form).
pub fn write(key: &str, value: &str) -> Result<(), NetlinkError> {
    let p = if key.contains('/') {
        PathBuf::from("/proc/sys").join(key)
    } else {
        path(key)
    };
    fs::write(&p, value).map_err(|source| NetlinkError::Sysctl { path: p, source })
}

/// Lets frames leave a bridge port through the port they came in on. A container reaching its
/// own published port through a host address is DNAT'ed back to itself; with `br_netfilter`
/// loaded that happens while the frame is bridged, and without hairpin mode the bridge drops it.
pub fn enable_hairpin(port: &str) -> Result<(), NetlinkError> {
    let p = PathBuf::from("/sys/class/net")
        .join(port)
        .join("brport/hairpin_mode");
    fs::write(&p, "1").map_err(|source| NetlinkError::Sysctl { path: p, source })
}

/// Read the sysctl `key` (trimmed).
pub fn read(key: &str) -> Result<String, NetlinkError> {
    let p = if key.contains('/') {
        PathBuf::from("/proc/sys").join(key)
    } else {
        path(key)
    };
    fs::read_to_string(&p)
        .map(|s| s.trim().to_string())
        .map_err(|source| NetlinkError::Sysctl { path: p, source })
}

/// Like [`write`], but a missing key is no error (IPv6 disabled, `ipv6.disable=1`).
pub fn write_if_present(key: &str, value: &str) -> Result<(), NetlinkError> {
    match write(key, value) {
        Err(NetlinkError::Sysctl { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            Ok(())
        }
        r => r,
    }
}

/// Turn on IPv4 forwarding on the host; returns the previous value so that a caller (a test)
/// can put it back with [`set_ip_forward`].
pub fn enable_ip_forward() -> Result<bool, NetlinkError> {
    let was = read("net/ipv4/ip_forward")? == "1";
    if !was {
        write("net/ipv4/ip_forward", "1")?;
    }
    Ok(was)
}

/// Set IPv4 forwarding on the host.
pub fn set_ip_forward(on: bool) -> Result<(), NetlinkError> {
    write("net/ipv4/ip_forward", if on { "1" } else { "0" })
}

/// Turn on IPv6 forwarding on the host (for non-internal IPv6 networks). Beware: with
/// forwarding on, the host stops accepting router advertisements on interfaces whose
/// `accept_ra` is 1 (2 keeps them); the agent calls this only when an IPv6 network needs NAT
/// or routing out. Returns the previous value.
pub fn enable_ipv6_forwarding() -> Result<bool, NetlinkError> {
    let was = read("net/ipv6/conf/all/forwarding")? == "1";
    if !was {
        write("net/ipv6/conf/all/forwarding", "1")?;
    }
    Ok(was)
}

/// Settings for a container namespace, written on its [`NsThread`](super::NsThread) *before*
/// the veth peer is born there, so the device inherits them from `default`:
/// no IPv6 duplicate address detection (DAD stalls of seconds, kubernetes#54800), no router
/// advertisements or autoconf on container interfaces.
pub(crate) fn prepare_container_ns() -> Result<(), NetlinkError> {
    for k in ["all", "default"] {
        write_if_present(&format!("net/ipv6/conf/{k}/accept_dad"), "0")?;
    }
    write_if_present("net/ipv6/conf/default/accept_ra", "0")?;
    write_if_present("net/ipv6/conf/default/autoconf", "0")?;
    Ok(())
}

/// Per-interface settings in a container namespace (on its thread): `accept_dad=0` again (in
/// case `default` was changed by someone), loose reverse-path filtering (a container on several
/// networks receives forwarded traffic on one interface and routes replies out another;
/// netavark v1.11 notes), gratuitous ARP on address changes.
pub(crate) fn tune_container_if(ifname: &str) -> Result<(), NetlinkError> {
    write_if_present(&format!("net/ipv6/conf/{ifname}/accept_dad"), "0")?;
    write_if_present(&format!("net/ipv6/conf/{ifname}/accept_ra"), "0")?;
    write(&format!("net/ipv4/conf/{ifname}/rp_filter"), "2")?;
    write(&format!("net/ipv4/conf/{ifname}/arp_notify"), "1")?;
    Ok(())
}

/// No IPv6 on an interface: for the host end of a veth (a bridge port needs no address of its
/// own) and for a container interface on a network without an IPv6 subnet. Set before the link
/// goes up, this keeps each new port from getting a link-local address, whose MLD reports the
/// bridge floods to every other port and whose routes make the kernel walk the namespace's
/// whole IPv6 routing table on each link up and down: both grow with the number of endpoints.
pub(crate) fn disable_ipv6(ifname: &str) -> Result<(), NetlinkError> {
    write_if_present(&format!("net/ipv6/conf/{ifname}/disable_ipv6"), "1")
}

/// Per-bridge settings on the host: loose reverse-path filtering, `route_localnet` so that
/// published ports answer on 127.0.0.1 (DNAT to a container of traffic from loopback), no
/// router advertisements accepted on the bridge, and for an internal network no forwarding in
/// or out of the bridge (the firewall enforces it too; note that writing the global
/// `ip_forward` resets per-device `forwarding`, so the agent re-applies this after changing it).
pub(crate) fn tune_bridge(name: &str, internal: bool) -> Result<(), NetlinkError> {
    write(&format!("net/ipv4/conf/{name}/rp_filter"), "2")?;
    write(&format!("net/ipv4/conf/{name}/route_localnet"), "1")?;
    write_if_present(&format!("net/ipv6/conf/{name}/accept_ra"), "0")?;
    if internal {
        write(&format!("net/ipv4/conf/{name}/forwarding"), "0")?;
    }
    Ok(())
}
