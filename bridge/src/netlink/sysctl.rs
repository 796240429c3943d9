//! sysctls through `/proc/sys`.
//!
//! Keys under `net/` resolve against the network namespace of the thread that opens the file:
//! host keys are written from any runtime thread (they never enter another namespace), a
//! container's keys from its [`NsThread`](super::NsThread).

use std::fs;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::PathBuf;

use super::procsys::ProcRoot;
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

/// Settings of a container interface, written on a thread of its namespace
/// ([`NsThread`](super::NsThread)) after the interface is born and before it goes up:
/// no IPv6 duplicate address detection (DAD stalls of seconds, kubernetes#54800; `all` too,
/// since the kernel skips DAD only when both are off), no router advertisements (a container
/// sending them could otherwise route its neighbours' IPv6 traffic through itself,
/// CVE-2020-13401), loose reverse-path filtering (a container on several networks receives
/// forwarded traffic on one interface and routes replies out another; netavark v1.11 notes),
/// with `announce`, gratuitous ARP when it comes up ([`VethSpec::announce`](super::VethSpec));
/// with `ipv6` false, no IPv6 at all (see [`disable_ipv6_on_host`]).
pub(crate) fn tune_container_if(
    dirs: &ConfDirs,
    ifname: &str,
    ipv6: bool,
    announce: bool,
) -> Result<(), NetlinkError> {
    if ipv6 {
        dirs.write(6, "all/accept_dad", "0", true)?;
        dirs.write(6, &format!("{ifname}/accept_dad"), "0", true)?;
        dirs.write(6, &format!("{ifname}/accept_ra"), "0", true)?;
    } else {
        // nothing of IPv6 runs on the interface, DAD and router advertisements included
        dirs.write(6, &format!("{ifname}/disable_ipv6"), "1", true)?;
    }
    dirs.write(4, &format!("{ifname}/rp_filter"), "2", false)?;
    if announce {
        dirs.write(4, &format!("{ifname}/arp_notify"), "1", false)?;
    }
    Ok(())
}

/// `net/ipv4/conf` and `net/ipv6/conf` of the calling thread's namespace, opened once so that
/// the keys below them are opened relative to them. The kernel keeps the `ipv4`/`ipv6` entries
/// of every network namespace in one dcache hash chain per procfs instance, so each lookup of
/// a `/proc/sys/net/ipv4/...` path compares against all of them: ~1 ms with 1000 namespaces,
/// against ~1 µs below an open `conf` directory. Container namespaces are opened through a
/// private procfs instance ([`procsys`](super::procsys)) whose chain stays short. Use the
/// directories on a thread of the namespace they were opened in.
#[derive(Debug)]
pub(crate) struct ConfDirs {
    v4: Option<fs::File>,
    v6: Option<fs::File>,
}

impl ConfDirs {
    pub(crate) fn open(proc: &ProcRoot) -> Result<ConfDirs, NetlinkError> {
        let open = |p: &str| match proc.open_sys_dir(p) {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(NetlinkError::Sysctl {
                path: PathBuf::from("/proc/sys").join(p),
                source,
            }),
        };
        Ok(ConfDirs {
            v4: open("net/ipv4/conf")?,
            v6: open("net/ipv6/conf")?,
        })
    }

    /// Writes `value` to `net/ipv<family>/conf/<rel>`; with `if_present`, a missing key (or
    /// family: IPv6 disabled) is no error.
    pub(crate) fn write(
        &self,
        family: u8,
        rel: &str,
        value: &str,
        if_present: bool,
    ) -> Result<(), NetlinkError> {
        let path = PathBuf::from(format!("/proc/sys/net/ipv{family}/conf/{rel}"));
        let err = |source| NetlinkError::Sysctl {
            path: path.clone(),
            source,
        };
        let dir = if family == 4 { &self.v4 } else { &self.v6 };
        let Some(dir) = dir else {
            return match if_present {
                true => Ok(()),
                false => Err(err(io::Error::from(io::ErrorKind::NotFound))),
            };
        };
        let c = std::ffi::CString::new(rel).map_err(|e| err(io::Error::other(e)))?;
        // SAFETY: openat with a directory fd we own and a NUL-terminated path; the returned fd
        // is owned by the File below.
        let fd = unsafe {
            libc::openat(
                dir.as_raw_fd(),
                c.as_ptr(),
                libc::O_WRONLY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            let e = io::Error::last_os_error();
            if if_present && e.kind() == io::ErrorKind::NotFound {
                return Ok(());
            }
            return Err(err(e));
        }
        // SAFETY: fd is a fresh descriptor that nothing else owns.
        let mut f = unsafe { fs::File::from_raw_fd(fd) };
        f.write_all(value.as_bytes()).map_err(err)
    }
}

/// No IPv6 on an interface: for the host end of a veth (a bridge port needs no address of its
/// own) and for a container interface on a network without an IPv6 subnet. Set before the link
/// goes up, this keeps each new port from getting a link-local address, whose MLD reports the
/// bridge floods to every other port and whose routes make the kernel walk the namespace's
/// whole IPv6 routing table on each link up and down: both grow with the number of endpoints.
/// This one is for the host end (the container's is in [`tune_container_if`]), through the
/// host's `conf` directories opened once (see [`ConfDirs`]): call it on a host thread.
pub(crate) fn disable_ipv6_on_host(ifname: &str) -> Result<(), NetlinkError> {
    static HOST: std::sync::OnceLock<ConfDirs> = std::sync::OnceLock::new();
    let dirs = match HOST.get() {
        Some(d) => d,
        None => {
            let d = ConfDirs::open(&ProcRoot::Host)?;
            HOST.get_or_init(|| d)
        }
    };
    dirs.write(6, &format!("{ifname}/disable_ipv6"), "1", true)
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
