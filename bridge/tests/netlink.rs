//! Netlink operations on the real kernel (root only; skipped otherwise).
//!
//! Every bridge, veth and namespace is named `brt<pid><tag>…`, created by the test and removed
//! by a Drop guard. Packets go only between the test's own namespaces and its own bridge: pings
//! and a TCP exchange between the namespaces, and a ping of the bridge's gateway address from a
//! namespace. No firewall and no host-wide sysctl is touched.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use berth_bridge::netlink::sysctl;
use berth_bridge::store::validate_ifname;
use berth_bridge::{
    BridgeSpec, Ipam, LeaseRequest, Mac, Netlink, NetlinkError, NetworkSpec, NetworkStore,
    NsThread, SubnetDef, VethSpec,
};
use ipnetwork::IpNetwork;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

macro_rules! require_root {
    () => {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
    };
}

/// Removes what a test created, in reverse order, even when the test panics.
#[derive(Default)]
struct Guard {
    links: Vec<String>,
    netns: Vec<String>,
}

impl Guard {
    fn name(&self, tag: &str) -> String {
        let n = format!("brt{}{}", std::process::id(), tag);
        assert!(validate_ifname(&n), "{n}");
        n
    }
    fn link(&mut self, tag: &str) -> String {
        let n = self.name(tag);
        self.links.push(n.clone());
        n
    }
    fn netns(&mut self, tag: &str) -> (String, PathBuf) {
        let n = format!("brt-{}-{}", std::process::id(), tag);
        let st = Command::new("ip")
            .args(["netns", "add", &n])
            .status()
            .unwrap();
        assert!(st.success(), "ip netns add {n}");
        self.netns.push(n.clone());
        (n.clone(), PathBuf::from("/run/netns").join(&n))
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        for n in self.netns.iter().rev() {
            let _ = Command::new("ip")
                .args(["netns", "del", n])
                .stderr(std::process::Stdio::null())
                .status();
        }
        for l in self.links.iter().rev() {
            let _ = Command::new("ip")
                .args(["link", "del", l])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn ping(ns: &str, addr: IpAddr) -> bool {
    let fam = if addr.is_ipv6() { "-6" } else { "-4" };
    Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "ping",
            fam,
            "-c1",
            "-W1",
            &addr.to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn have_ping() -> bool {
    Command::new("ping").arg("-V").output().is_ok()
}

/// Run `f` on a fresh thread inside the namespace.
fn in_ns<R: Send + 'static>(path: &Path, f: impl FnOnce() -> R + Send + 'static) -> R {
    let p = path.to_path_buf();
    std::thread::spawn(move || {
        let fd = std::fs::File::open(&p).unwrap();
        nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        f()
    })
    .join()
    .unwrap()
}

/// A TCP exchange between two of the test's namespaces, without external tools.
fn tcp_between(from: &Path, to: &Path, addr: IpAddr) {
    let p = to.to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        let fd = std::fs::File::open(&p).unwrap();
        nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let l = TcpListener::bind(SocketAddr::new(addr, 0)).unwrap();
        l.set_nonblocking(true).unwrap();
        tx.send(l.local_addr().unwrap()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match l.accept() {
                Ok((mut s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    let mut b = [0u8; 5];
                    s.read_exact(&mut b).unwrap();
                    s.write_all(&b).unwrap();
                    return b;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "no connection to {addr}");
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
    });
    let sa = rx.recv().unwrap();
    let got = in_ns(from, move || {
        let mut s = TcpStream::connect_timeout(&sa, Duration::from_secs(3)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"berth").unwrap();
        let mut b = [0u8; 5];
        s.read_exact(&mut b).unwrap();
        b
    });
    assert_eq!(&got, b"berth");
    assert_eq!(&server.join().unwrap(), b"berth");
}

/// Pick a /24 in 10.254.0.0/16 (or the given third-octet range) that overlaps no host route,
/// through the network store's own validation.
async fn free_subnet(
    nl: &Netlink,
    store: &NetworkStore,
    name: &str,
    bridge: &str,
    start: u8,
) -> String {
    let routes = nl.host_routes().await.unwrap();
    for o in start..=250 {
        let spec = NetworkSpec {
            name: name.into(),
            subnets: vec![format!("10.254.{o}.0/24")],
            bridge: Some(bridge.into()),
            ..Default::default()
        };
        if store.validate(&spec, &routes).is_ok() {
            return spec.subnets[0].clone();
        }
    }
    panic!("no free test subnet in 10.254.0.0/16");
}

fn subnets(v4: &str, v6: Option<&str>) -> Vec<SubnetDef> {
    let mut out = Vec::new();
    let s: IpNetwork = v4.parse().unwrap();
    out.push(SubnetDef {
        subnet: s,
        gateway: berth_bridge::ipam::default_gateway(s),
    });
    if let Some(v6) = v6 {
        let s: IpNetwork = v6.parse().unwrap();
        out.push(SubnetDef {
            subnet: s,
            gateway: berth_bridge::ipam::default_gateway(s),
        });
    }
    out
}

fn gw4(s: &[SubnetDef]) -> Ipv4Addr {
    match s[0].gateway {
        IpAddr::V4(v) => v,
        _ => unreachable!(),
    }
}

#[test]
fn two_namespaces_on_a_bridge() {
    require_root!();
    let mut g = Guard::default();
    let dir = tempfile::tempdir().unwrap();
    let br = g.link("a");
    let br2 = g.link("b");
    let h1 = g.link("v1");
    let h2 = g.link("v2");
    let h3 = g.link("v3");
    let (ns1, p1) = g.netns("1");
    let (ns2, p2) = g.netns("2");
    let pid = std::process::id();
    let v6net = format!("fd42:{:x}:{:x}::/64", pid & 0xffff, (pid >> 16) & 0xffff);

    rt().block_on(async {
        let nl = Netlink::host().unwrap();
        let store = NetworkStore::open(dir.path()).unwrap();
        let v4net = free_subnet(&nl, &store, "t1", &br, 10).await;
        let defs = subnets(&v4net, Some(&v6net));
        let mut ipam = Ipam::open(&dir.path().join("leases"), "t1", &defs).unwrap();
        let gw6 = match defs[1].gateway {
            IpAddr::V6(v) => v,
            _ => unreachable!(),
        };
        let bspec = BridgeSpec {
            name: br.clone(),
            mtu: 1400,
            addresses: defs
                .iter()
                .map(|d| IpNetwork::new(d.gateway, d.subnet.prefix()).unwrap())
                .collect(),
            mac: None,
            internal: false,
        };
        let bl = nl.ensure_bridge(&bspec).await.unwrap();
        assert_eq!(bl.kind.as_deref(), Some("bridge"));
        assert_eq!(bl.mtu, Some(1400));
        assert!(bl.up);
        assert_eq!(bl.mac, Some(Mac::for_name(&br)));
        assert_eq!(
            sysctl::read(&format!("net/ipv4/conf/{br}/route_localnet")).unwrap(),
            "1"
        );
        assert_eq!(
            sysctl::read(&format!("net/ipv4/conf/{br}/rp_filter")).unwrap(),
            "2"
        );
        // idempotent
        let again = nl.ensure_bridge(&bspec).await.unwrap();
        assert_eq!(again.index, bl.index);
        let addrs = nl.addresses(Some(bl.index)).await.unwrap();
        for a in &bspec.addresses {
            assert!(
                addrs.iter().any(|x| x.addr == *a),
                "{a} on bridge: {addrs:?}"
            );
        }

        let mut attached = Vec::new();
        for (i, (host, path)) in [(&h1, &p1), (&h2, &p2)].into_iter().enumerate() {
            let lease = ipam
                .allocate(LeaseRequest {
                    owner: format!("c{i}/eth0"),
                    netns: Some(path.clone()),
                    ifname: Some("eth0".into()),
                    ..Default::default()
                })
                .unwrap();
            let spec = VethSpec {
                bridge: br.clone(),
                host_ifname: host.clone(),
                netns: path.clone(),
                ifname: "eth0".into(),
                mtu: 1400,
                mac: Mac::from_ipv4(lease.ipv4().unwrap()),
                announce: false,
                addresses: lease.addresses.clone(),
                default_route: true,
                gateway4: Some(gw4(&defs)),
                gateway6: Some(gw6),
            };
            let t = Instant::now();
            let a = nl.attach_veth(&spec).await.unwrap();
            eprintln!("attach {}: {:?}", spec.host_ifname, t.elapsed());
            assert_eq!(a.mac, spec.mac);
            assert_eq!(a.mtu, 1400);
            attached.push((lease, spec, a));
        }

        // host side: enslaved, up, MTU; bridge MAC did not follow the ports
        for (_, spec, a) in &attached {
            let l = nl.link(&spec.host_ifname).await.unwrap().unwrap();
            assert_eq!(l.index, a.host_index);
            assert_eq!(l.controller, Some(bl.index));
            assert!(l.up);
            assert_eq!(l.mtu, Some(1400));
        }
        let bl2 = nl.link(&br).await.unwrap().unwrap();
        assert_eq!(
            bl2.mac,
            Some(Mac::for_name(&br)),
            "bridge MAC must stay pinned"
        );

        // container side
        for (lease, spec, _) in &attached {
            let inner = Netlink::in_netns(&spec.netns).await.unwrap();
            let eth0 = inner.link("eth0").await.unwrap().unwrap();
            assert_eq!(eth0.mtu, Some(1400));
            assert_eq!(eth0.mac, Some(spec.mac));
            assert!(eth0.up);
            assert!(inner.link("lo").await.unwrap().unwrap().up);
            let addrs = inner.addresses(Some(eth0.index)).await.unwrap();
            for a in &lease.addresses {
                assert!(addrs.iter().any(|x| x.addr == *a), "{a}: {addrs:?}");
            }
            let routes = inner.routes().await.unwrap();
            assert!(
                routes.iter().any(|r| r.dst.prefix() == 0
                    && r.dst.is_ipv4()
                    && r.gateway == Some(IpAddr::V4(gw4(&defs)))
                    && r.oif == Some(eth0.index)),
                "default route: {routes:?}"
            );
            assert!(
                routes.iter().any(|r| r.dst.prefix() == 0
                    && r.dst.is_ipv6()
                    && r.gateway == Some(IpAddr::V6(gw6))),
                "v6 default route: {routes:?}"
            );
            let ns = NsThread::enter(&spec.netns).await.unwrap();
            let dad = ns
                .run(|| sysctl::read("net/ipv6/conf/eth0/accept_dad"))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(dad, "0");
            let rp = ns
                .run(|| sysctl::read("net/ipv4/conf/eth0/rp_filter"))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(rp, "2");
            // the MAC follows the address: no gratuitous ARP flooding the bridge
            let notify = ns
                .run(|| sysctl::read("net/ipv4/conf/eth0/arp_notify"))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(notify, "0");
        }
        // the same through the ip tool
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns1,
                "cat",
                "/proc/sys/net/ipv6/conf/eth0/accept_dad",
            ])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0");

        // traffic between the two namespaces and to the gateway on the test bridge
        let ip1 = attached[0].0.ipv4().unwrap();
        let ip2 = attached[1].0.ipv4().unwrap();
        let ip6_2 = attached[1].0.ipv6().unwrap();
        tcp_between(&p1, &p2, IpAddr::V4(ip2));
        tcp_between(&p2, &p1, IpAddr::V4(ip1));
        tcp_between(&p1, &p2, IpAddr::V6(ip6_2));
        if have_ping() {
            assert!(ping(&ns1, IpAddr::V4(ip2)), "ping {ip2} from {ns1}");
            assert!(ping(&ns2, IpAddr::V4(ip1)), "ping {ip1} from {ns2}");
            assert!(
                ping(&ns1, IpAddr::V4(gw4(&defs))),
                "ping gateway from {ns1}"
            );
            assert!(ping(&ns1, IpAddr::V6(ip6_2)), "ping {ip6_2} from {ns1}");
        } else {
            eprintln!("note: ping not installed (apt-get install iputils-ping); TCP checks only");
        }

        // a second network gives eth1, without a second default route
        let defs2 = subnets(&free_subnet(&nl, &store, "t2", &br2, 200).await, None);
        nl.ensure_bridge(&BridgeSpec {
            name: br2.clone(),
            mtu: 1500,
            addresses: vec![IpNetwork::new(defs2[0].gateway, defs2[0].subnet.prefix()).unwrap()],
            mac: Some(Mac([0x02, 0x4b, 0, 0, 0, 0x99])),
            internal: true,
        })
        .await
        .unwrap();
        assert_eq!(
            sysctl::read(&format!("net/ipv4/conf/{br2}/forwarding")).unwrap(),
            "0"
        );
        let mut ipam2 = Ipam::open(&dir.path().join("leases"), "t2", &defs2).unwrap();
        let l3 = ipam2
            .allocate(LeaseRequest {
                owner: "c0/eth1".into(),
                ..Default::default()
            })
            .unwrap();
        nl.attach_veth(&VethSpec {
            bridge: br2.clone(),
            host_ifname: h3.clone(),
            netns: p1.clone(),
            ifname: "eth1".into(),
            mtu: 1500,
            mac: Mac::from_ipv4(l3.ipv4().unwrap()),
            announce: false,
            addresses: l3.addresses.clone(),
            default_route: false,
            gateway4: None,
            gateway6: None,
        })
        .await
        .unwrap();
        {
            let inner = Netlink::in_netns(&p1).await.unwrap();
            let eth1 = inner.link("eth1").await.unwrap().unwrap();
            assert_eq!(eth1.mtu, Some(1500));
            let defaults = inner
                .routes()
                .await
                .unwrap()
                .into_iter()
                .filter(|r| r.dst.prefix() == 0 && r.dst.is_ipv4())
                .count();
            assert_eq!(defaults, 1);
        }

        // detach: host veth gone, container end gone, idempotent
        assert!(nl.detach_veth(&h3, Some((&p1, "eth1"))).await.unwrap());
        assert!(nl.link(&h3).await.unwrap().is_none());
        assert!(Netlink::in_netns(&p1)
            .await
            .unwrap()
            .link("eth1")
            .await
            .unwrap()
            .is_none());
        assert!(!nl.detach_veth(&h3, Some((&p1, "eth1"))).await.unwrap());
        let t = Instant::now();
        assert!(nl.detach_veth(&h1, Some((&p1, "eth0"))).await.unwrap());
        eprintln!("detach {h1}: {:?}", t.elapsed());
        assert!(nl.link(&h1).await.unwrap().is_none());
        ipam.release("c0/eth0").unwrap().unwrap();

        // the namespace vanishes first: detach still succeeds
        let st = Command::new("ip")
            .args(["netns", "del", &ns2])
            .status()
            .unwrap();
        assert!(st.success());
        nl.detach_veth(&h2, Some((&p2, "eth0"))).await.unwrap();
        assert!(!nl.detach_veth(&h2, Some((&p2, "eth0"))).await.unwrap());
        // the kernel removes the pair with the namespace; give its cleanup work a moment
        let deadline = Instant::now() + Duration::from_secs(5);
        while nl.link(&h2).await.unwrap().is_some() {
            assert!(Instant::now() < deadline, "{h2} still exists");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // a released lease is persisted: reopen and see one lease left
        drop(ipam);
        let ipam = Ipam::open(&dir.path().join("leases"), "t1", &defs).unwrap();
        assert_eq!(ipam.len(), 1);
        assert!(nl.delete_link(&br2).await.unwrap());
        assert!(nl.delete_link(&br).await.unwrap());
    });
}

#[test]
fn failures_are_clear_and_leave_nothing_behind() {
    require_root!();
    let mut g = Guard::default();
    let br = g.link("c");
    let h1 = g.link("w1");
    let not_br = g.link("x");
    let not_br_peer = g.link("y");
    let (_ns, p) = g.netns("3");
    let dir = tempfile::tempdir().unwrap();

    rt().block_on(async {
        let nl = Netlink::host().unwrap();
        let store = NetworkStore::open(dir.path()).unwrap();
        let net = free_subnet(&nl, &store, "f", &br, 100).await;
        let defs = subnets(&net, None);
        let gw = IpNetwork::new(defs[0].gateway, defs[0].subnet.prefix()).unwrap();
        nl.ensure_bridge(&BridgeSpec {
            name: br.clone(),
            mtu: 1500,
            addresses: vec![gw],
            mac: None,
            internal: false,
        })
        .await
        .unwrap();

        // the bridge's route now exists on the host: another network on that subnet is refused,
        // and the message names the route and the bridge
        let routes = nl.host_routes().await.unwrap();
        let e = store
            .validate(
                &NetworkSpec {
                    name: "other".into(),
                    subnets: vec![net.clone()],
                    ..Default::default()
                },
                &routes,
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains(&net) && e.contains(&format!("dev {br}")), "{e}");

        let base = VethSpec {
            bridge: br.clone(),
            host_ifname: h1.clone(),
            netns: p.clone(),
            ifname: "eth0".into(),
            mtu: 1500,
            mac: Mac([0x02, 0x42, 10, 254, 0, 9]),
            announce: true,
            addresses: vec![IpNetwork::new(
                match defs[0].gateway {
                    IpAddr::V4(v) => IpAddr::V4(Ipv4Addr::from(u32::from(v) + 1)),
                    x => x,
                },
                defs[0].subnet.prefix(),
            )
            .unwrap()],
            default_route: true,
            gateway4: match defs[0].gateway {
                IpAddr::V4(v) => Some(v),
                _ => None,
            },
            gateway6: None,
        };

        // a namespace that does not exist
        let mut s = base.clone();
        s.netns = PathBuf::from(format!("/run/netns/brt-{}-missing", std::process::id()));
        assert!(matches!(
            nl.attach_veth(&s).await,
            Err(NetlinkError::NetnsGone { .. })
        ));
        assert!(nl.link(&h1).await.unwrap().is_none());
        // detach with nothing there is fine
        assert!(!nl.detach_veth(&h1, Some((&s.netns, "eth0"))).await.unwrap());

        // a missing bridge
        let mut s = base.clone();
        s.bridge = g.name("nobr");
        let e = nl.attach_veth(&s).await.unwrap_err();
        assert!(matches!(e, NetlinkError::NoLink { .. }), "{e}");

        // the kernel refuses an address after the pair exists: the pair is removed again
        let mut s = base.clone();
        // a multicast address cannot be an interface address
        s.addresses.push(
            IpNetwork::new(IpAddr::V6(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1)), 64).unwrap(),
        );
        let e = nl.attach_veth(&s).await.unwrap_err();
        assert!(matches!(e, NetlinkError::Kernel { .. }), "{e}");
        assert!(nl.link(&h1).await.unwrap().is_none(), "undo left {h1}");
        assert!(Netlink::in_netns(&p)
            .await
            .unwrap()
            .link("eth0")
            .await
            .unwrap()
            .is_none());

        // a name clash inside the namespace: clear error naming both ends, nothing left
        nl.attach_veth(&base).await.unwrap();
        let mut s = base.clone();
        s.host_ifname = g.link("w2");
        let e = nl.attach_veth(&s).await.unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, NetlinkError::VethExists { .. }), "{msg}");
        assert!(
            msg.contains(&s.host_ifname) && msg.contains("eth0"),
            "{msg}"
        );
        assert!(nl.link(&s.host_ifname).await.unwrap().is_none());

        // an existing non-bridge interface under the bridge name
        let st = Command::new("ip")
            .args([
                "link",
                "add",
                &not_br,
                "type",
                "veth",
                "peer",
                "name",
                &not_br_peer,
            ])
            .status()
            .unwrap();
        assert!(st.success());
        let e = nl
            .ensure_bridge(&BridgeSpec {
                name: not_br.clone(),
                mtu: 1500,
                addresses: vec![],
                mac: None,
                internal: false,
            })
            .await
            .unwrap_err();
        assert!(matches!(e, NetlinkError::NotABridge { .. }), "{e}");
        assert!(e.to_string().contains("veth"), "{e}");

        nl.detach_veth(&h1, Some((&p, "eth0"))).await.unwrap();
        nl.delete_link(&br).await.unwrap();
    });
}

#[test]
fn links_and_namespace_handles_work_without_setns_in_tasks() {
    require_root!();
    let mut g = Guard::default();
    let (_ns, p) = g.netns("4");
    rt().block_on(async {
        // many handles into a namespace from a multi-threaded runtime: the runtime's own
        // threads stay in the host namespace
        let host_ns = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let p = p.clone();
            tasks.push(tokio::spawn(async move {
                let n = Netlink::in_netns(&p).await.unwrap();
                let links = n.links().await.unwrap();
                assert_eq!(links.len(), 1, "{links:?}");
                assert_eq!(links[0].name, "lo");
                std::fs::read_link("/proc/thread-self/ns/net").unwrap()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), host_ns);
        }
        let host = Netlink::host().unwrap();
        assert!(host.links().await.unwrap().iter().any(|l| l.name == "lo"));
    });
}

/// Detaches running at the same time are deleted together (one link group per batch): each
/// reports its own veth as deleted, every pair is gone on both sides, and an interface that
/// was not asked for survives the group deletion.
#[test]
fn parallel_detaches_delete_exactly_their_pairs() {
    require_root!();
    let mut g = Guard::default();
    let br = g.link("pb");
    let bystander = g.link("pz");
    let bystander_peer = g.link("pq");
    let hosts: Vec<String> = (0..6).map(|i| g.link(&format!("p{i}"))).collect();
    let spaces: Vec<(String, PathBuf)> = (0..6).map(|i| g.netns(&format!("pd{i}"))).collect();
    let dir = tempfile::tempdir().unwrap();
    let st = Command::new("ip")
        .args([
            "link",
            "add",
            &bystander,
            "type",
            "veth",
            "peer",
            "name",
            &bystander_peer,
        ])
        .status()
        .unwrap();
    assert!(st.success());

    rt().block_on(async {
        let nl = Netlink::host().unwrap();
        let store = NetworkStore::open(dir.path()).unwrap();
        let net = free_subnet(&nl, &store, "pd", &br, 110).await;
        let defs = subnets(&net, None);
        let mut ipam = Ipam::open(&dir.path().join("leases"), "pd", &defs).unwrap();
        nl.ensure_bridge(&BridgeSpec {
            name: br.clone(),
            mtu: 1500,
            addresses: vec![IpNetwork::new(defs[0].gateway, defs[0].subnet.prefix()).unwrap()],
            mac: None,
            internal: false,
        })
        .await
        .unwrap();
        for (i, (host, (_, path))) in hosts.iter().zip(&spaces).enumerate() {
            let lease = ipam
                .allocate(LeaseRequest {
                    owner: format!("p{i}/eth0"),
                    netns: Some(path.clone()),
                    ifname: Some("eth0".into()),
                    ..Default::default()
                })
                .unwrap();
            nl.attach_veth(&VethSpec {
                bridge: br.clone(),
                host_ifname: host.clone(),
                netns: path.clone(),
                ifname: "eth0".into(),
                mtu: 1500,
                mac: Mac::from_ipv4(lease.ipv4().unwrap()),
                announce: false,
                addresses: lease.addresses.clone(),
                default_route: false,
                gateway4: None,
                gateway6: None,
            })
            .await
            .unwrap();
        }
        // an IPv4-only network: no IPv6 at all on the container's interface
        let v6_off = in_ns(&spaces[0].1, || {
            sysctl::read("net/ipv6/conf/eth0/disable_ipv6").unwrap()
        });
        assert_eq!(v6_off, "1");

        let results = futures::future::join_all(
            hosts
                .iter()
                .zip(&spaces)
                .map(|(h, (_, p))| nl.detach_veth(h, Some((p.as_path(), "eth0")))),
        )
        .await;
        for (h, r) in hosts.iter().zip(results) {
            assert!(r.unwrap(), "{h} reported as not deleted");
            assert!(nl.link(h).await.unwrap().is_none(), "{h} still exists");
        }
        for (_, p) in &spaces {
            let inner = Netlink::in_netns(p).await.unwrap();
            assert!(inner.link("eth0").await.unwrap().is_none());
        }
        assert!(
            nl.link(&bystander).await.unwrap().is_some(),
            "an interface nobody detached was deleted"
        );
        // a second detach finds nothing
        assert!(!nl.detach_veth(&hosts[0], None).await.unwrap());
    });
}
