//! berth's nftables firewall on the real kernel (root only; skipped otherwise).
//!
//! Each test makes its own table `berth_test_<pid>_<n>`, bridges and veths `brt<pid>f…`,
//! namespaces `brtf-<pid>-…`, and 10.<160+pid%40>.<n>.0/24 subnets, and removes them in a Drop
//! guard (only its own table is ever deleted). Behaviour is checked with real TCP: python's
//! http.server inside the test namespaces, clients on the host (127.0.0.1 and the test
//! bridges' addresses) and inside the test namespaces. An "outside" network is one more test
//! namespace behind a plain veth. No packet leaves loopback and the test's own namespaces.
//! `net.ipv4.ip_forward` is set to 1 while a test runs and restored by the guard; the tests
//! run one at a time because of it.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use berth_bridge::firewall::BASE_RULES;
use berth_bridge::{Firewall, FirewallError, FwNetwork, FwState, PortMapping, Proto};
use ipnetwork::IpNetwork;
use serde_json::Value;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

static SERIAL: Mutex<()> = Mutex::new(());
static COUNTER: AtomicU32 = AtomicU32::new(0);

fn pid() -> u32 {
    std::process::id()
}

fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn python() -> String {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

struct Net {
    fw: FwNetwork,
    bridge: String,
    gw4: Ipv4Addr,
    gw6: Option<Ipv6Addr>,
    third: u32,
}

struct Ns {
    name: String,
    ip4: Ipv4Addr,
    ip6: Option<Ipv6Addr>,
}

/// Everything one test made; Drop removes it.
struct Env {
    n: u32,
    fw: Firewall,
    links: Vec<String>,
    netns: Vec<String>,
    servers: Vec<Child>,
    dirs: Vec<tempfile::TempDir>,
    ip_forward: Option<String>,
    python: String,
    nets: u32,
    hosts: u32,
    _serial: std::sync::MutexGuard<'static, ()>,
}

impl Env {
    fn new() -> Env {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let fw = Firewall::new(&format!("berth_test_{}_{n}", pid()));
        let key = "/proc/sys/net/ipv4/ip_forward";
        let old = std::fs::read_to_string(key).unwrap().trim().to_string();
        std::fs::write(key, "1").unwrap();
        fw.ensure_base().unwrap();
        Env {
            n,
            fw,
            links: Vec::new(),
            netns: Vec::new(),
            servers: Vec::new(),
            dirs: Vec::new(),
            ip_forward: Some(old),
            python: python(),
            nets: 0,
            hosts: 0,
            _serial: serial,
        }
    }

    fn octet2() -> u32 {
        160 + pid() % 40
    }

    /// A berth-style network: bridge with gateway .1 (and ::1 with `v6`).
    fn network(&mut self, name: &str, internal: bool, v6: bool) -> Net {
        let third = self.n * 8 + self.nets;
        self.nets += 1;
        assert!(third < 250);
        let bridge = format!("brt{}f{third}", pid());
        run(&["ip", "link", "add", &bridge, "type", "bridge"]);
        self.links.push(bridge.clone());
        let gw4 = Ipv4Addr::new(10, Self::octet2() as u8, third as u8, 1);
        let subnet4: IpNetwork = format!("10.{}.{third}.0/24", Self::octet2())
            .parse()
            .unwrap();
        run(&["ip", "addr", "add", &format!("{gw4}/24"), "dev", &bridge]);
        let mut subnets = vec![subnet4];
        let gw6 = v6.then(|| {
            let gw6: Ipv6Addr = format!("fd42:b3e7:{}:{third}::1", pid() % 40)
                .parse()
                .unwrap();
            run(&[
                "ip",
                "addr",
                "add",
                &format!("{gw6}/64"),
                "dev",
                &bridge,
                "nodad",
            ]);
            subnets.push(
                format!("fd42:b3e7:{}:{third}::/64", pid() % 40)
                    .parse()
                    .unwrap(),
            );
            gw6
        });
        run(&["ip", "link", "set", &bridge, "up"]);
        // What the daemon sets per bridge (required_sysctls); the bridge goes with the test.
        let fw = FwNetwork {
            name: format!("{name}-{}", pid()),
            bridge: bridge.clone(),
            subnets,
            internal,
        };
        for (k, v) in berth_bridge::required_sysctls(&fw) {
            if k.contains(&bridge) {
                std::fs::write(format!("/proc/sys/{k}"), v).unwrap();
            }
        }
        Net {
            fw,
            bridge,
            gw4,
            gw6,
            third,
        }
    }

    fn new_ns(&mut self) -> (String, String) {
        let h = self.hosts;
        self.hosts += 1;
        let ns = format!("brtf-{}-{}-{h}", pid(), self.n);
        run(&["ip", "netns", "add", &ns]);
        self.netns.push(ns.clone());
        run(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        let veth = format!("brt{}v{}{h}", pid(), self.n);
        run(&[
            "ip", "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ]);
        self.links.push(veth.clone());
        (ns, veth)
    }

    /// A namespace on `net` with address .`host` (and ::`host`).
    fn container(&mut self, net: &Net, host: u8) -> Ns {
        let (ns, veth) = self.new_ns();
        run(&["ip", "link", "set", &veth, "master", &net.bridge, "up"]);
        // As the daemon must: with br_netfilter loaded, a container reaching its own published
        // port is DNAT'ed while being bridged and goes back out the port it came in.
        std::fs::write(format!("/sys/class/net/{veth}/brport/hairpin_mode"), "1").unwrap();
        let ip4 = Ipv4Addr::new(10, Self::octet2() as u8, net.third as u8, host);
        run(&[
            "ip",
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{ip4}/24"),
            "dev",
            "eth0",
        ]);
        let ip6 = net.gw6.map(|gw| {
            let mut o = gw.octets();
            o[15] = host;
            let ip6 = Ipv6Addr::from(o);
            run(&[
                "ip",
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{ip6}/64"),
                "dev",
                "eth0",
                "nodad",
            ]);
            ip6
        });
        run(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
        run(&[
            "ip",
            "-n",
            &ns,
            "route",
            "add",
            "default",
            "via",
            &net.gw4.to_string(),
        ]);
        Ns { name: ns, ip4, ip6 }
    }

    /// The "outside world": a namespace behind a plain veth (not a berth bridge),
    /// host 10.x.250.1, namespace 10.x.250.2, with no route back to berth's subnets.
    fn outside(&mut self) -> Ns {
        let (ns, veth) = self.new_ns();
        let third = 250 - self.n;
        let host = format!("10.{}.{third}.1", Self::octet2());
        let ip4 = Ipv4Addr::new(10, Self::octet2() as u8, third as u8, 2);
        run(&["ip", "addr", "add", &format!("{host}/24"), "dev", &veth]);
        run(&["ip", "link", "set", &veth, "up"]);
        run(&[
            "ip",
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{ip4}/24"),
            "dev",
            "eth0",
        ]);
        run(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
        Ns {
            name: ns,
            ip4,
            ip6: None,
        }
    }

    /// An HTTP server in `ns` on `addr:port` whose page says `marker`; returns its log path.
    fn serve(&mut self, ns: &Ns, addr: IpAddr, port: u16, marker: &str) -> PathBuf {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.html"), marker).unwrap();
        let log = dir.path().join("log");
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, &self.python, "-c", SERVER])
            .args([&addr.to_string(), &port.to_string()])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        self.servers.push(child);
        self.dirs.push(dir);
        // The host reaches the namespace directly (connected route, output path).
        let deadline = Instant::now() + Duration::from_secs(10);
        while get(SocketAddr::new(addr, port)).as_deref() != Some(marker) {
            if Instant::now() > deadline {
                let ss = Command::new("ip")
                    .args(["netns", "exec", &ns.name, "ss", "-ltnp"])
                    .output()
                    .unwrap();
                let curl = ns_get(ns, SocketAddr::new(addr, port));
                panic!(
                    "server {addr}:{port} in {}: {} {} {curl:?}",
                    ns.name,
                    std::fs::read_to_string(&log).unwrap_or_default(),
                    String::from_utf8_lossy(&ss.stdout)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        log
    }

    fn port(
        &self,
        proto: Proto,
        host_ip: Option<IpAddr>,
        host_port: u16,
        to: IpAddr,
    ) -> PortMapping {
        let _ = self;
        PortMapping {
            proto,
            host_ip,
            host_port,
            container_ip: to,
            container_port: 80,
            network: String::new(),
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for c in &mut self.servers {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = self.fw.delete();
        for n in self.netns.iter().rev() {
            let _ = Command::new("ip")
                .args(["netns", "del", n])
                .stderr(Stdio::null())
                .status();
        }
        for l in self.links.iter().rev() {
            let _ = Command::new("ip")
                .args(["link", "del", l])
                .stderr(Stdio::null())
                .status();
        }
        if let Some(old) = self.ip_forward.take() {
            let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", old);
        }
    }
}

/// Host ports for this test run: 31000 + (pid % 1500) * 20 + i, i < 20.
fn host_port(i: u16) -> u16 {
    31000 + (pid() % 1500) as u16 * 20 + i
}

/// python's http.server without its reverse-DNS lookup of the bind address at start (which
/// hangs in a namespace without a resolver); logs each client address to stderr.
const SERVER: &str = r#"
import http.server, socket, socketserver, sys
addr, port = sys.argv[1], int(sys.argv[2])
class S(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    def server_bind(self):
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "test", port
S((addr, port), http.server.SimpleHTTPRequestHandler).serve_forever()
"#;

/// One HTTP GET from the host; the body, or None when it fails within ~2 s.
fn get(addr: SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(700)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    if !out.starts_with("HTTP/1.0 200") {
        return None;
    }
    out.split("\r\n\r\n").nth(1).map(str::to_string)
}

/// One HTTP GET from inside namespace `ns`; the body, or None.
fn ns_get(ns: &Ns, addr: SocketAddr) -> Option<String> {
    let url = format!("http://{addr}/");
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name, "curl", "-sf", "--noproxy", "*"])
        .args(["--connect-timeout", "1", "--max-time", "2", &url])
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).to_string())
}

fn sa(ip: impl Into<IpAddr>, port: u16) -> SocketAddr {
    SocketAddr::new(ip.into(), port)
}

fn listing(fw: &Firewall) -> Value {
    let out = Command::new("nft")
        .args(["-j", "list", "table", "inet", fw.table()])
        .output()
        .unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

fn rule_count(fw: &Firewall) -> usize {
    items(&listing(fw))
        .filter(|i| i.get("rule").is_some())
        .count()
}

fn items(v: &Value) -> impl Iterator<Item = &Value> + '_ {
    v["nftables"].as_array().into_iter().flatten()
}

/// Comments of the elements of set or map `name`.
fn elem_comments(fw: &Firewall, name: &str) -> Vec<String> {
    let v = listing(fw);
    let mut out = Vec::new();
    for i in items(&v) {
        let Some(s) = i.get("set").or_else(|| i.get("map")) else {
            continue;
        };
        if s["name"] != name {
            continue;
        }
        for e in s["elem"].as_array().into_iter().flatten() {
            let k = if e.is_array() { &e[0] } else { e };
            out.push(k["elem"]["comment"].as_str().unwrap_or("").to_string());
        }
    }
    out
}

#[test]
fn published_port_from_loopback_bridge_address_and_hairpin() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut env = Env::new();
    let a = env.network("a", false, false);
    let a1 = env.container(&a, 2);
    let a2 = env.container(&a, 3);
    env.serve(&a1, a1.ip4.into(), 80, "a1");
    env.serve(&a2, a2.ip4.into(), 80, "a2");
    env.fw.add_network(&a.fw).unwrap();

    let (p, p2) = (host_port(0), host_port(1));
    let mut m = env.port(Proto::Tcp, None, p, a1.ip4.into());
    m.network = a.fw.name.clone();
    assert_eq!(
        get(sa(Ipv4Addr::LOCALHOST, p)),
        None,
        "nothing before publish"
    );
    env.fw.publish(std::slice::from_ref(&m)).unwrap();

    assert_eq!(
        get(sa(Ipv4Addr::LOCALHOST, p)).as_deref(),
        Some("a1"),
        "via 127.0.0.1"
    );
    assert_eq!(
        get(sa(a.gw4, p)).as_deref(),
        Some("a1"),
        "via the bridge address"
    );
    // Hairpin: a1 reaches its own published port through the host, a2 its neighbour's.
    assert_eq!(
        ns_get(&a1, sa(a.gw4, p)).as_deref(),
        Some("a1"),
        "hairpin self"
    );
    assert_eq!(
        ns_get(&a2, sa(a.gw4, p)).as_deref(),
        Some("a1"),
        "hairpin neighbour"
    );

    // Publishing again: the same mapping is a no-op; another container on it is refused.
    env.fw.publish(std::slice::from_ref(&m)).unwrap();
    let mut other = m.clone();
    other.container_ip = a2.ip4.into();
    let err = env.fw.publish(std::slice::from_ref(&other)).unwrap_err();
    assert!(matches!(err, FirewallError::PortInUse { .. }), "{err}");
    assert!(err.to_string().contains("port already published"), "{err}");
    // One address against "every address" clashes too; a batch is all or nothing.
    let mut on_lo = other.clone();
    on_lo.host_ip = Some(Ipv4Addr::LOCALHOST.into());
    let mut fine = other.clone();
    fine.host_port = p2;
    let err = env.fw.publish(&[fine.clone(), on_lo]).unwrap_err();
    assert!(matches!(err, FirewallError::PortInUse { .. }), "{err}");
    assert_eq!(
        get(sa(Ipv4Addr::LOCALHOST, p2)),
        None,
        "nothing of a failed batch"
    );
    assert_eq!(env.fw.published().unwrap(), vec![m.clone()]);

    // A port bound to 127.0.0.1 answers there and not on the bridge address.
    fine.host_ip = Some(Ipv4Addr::LOCALHOST.into());
    env.fw.publish(std::slice::from_ref(&fine)).unwrap();
    assert_eq!(get(sa(Ipv4Addr::LOCALHOST, p2)).as_deref(), Some("a2"));
    assert_eq!(get(sa(a.gw4, p2)), None, "bound to 127.0.0.1 only");

    // Unpublish stops it; repeating it (teardown) is fine; a stale unpublish whose
    // target moved on leaves the new owner alone.
    env.fw.unpublish(std::slice::from_ref(&m)).unwrap();
    assert_eq!(get(sa(Ipv4Addr::LOCALHOST, p)), None, "after unpublish");
    assert_eq!(get(sa(a.gw4, p)), None, "after unpublish");
    env.fw.unpublish(std::slice::from_ref(&m)).unwrap();
    let mut stale = fine.clone();
    stale.container_ip = a1.ip4.into();
    env.fw.unpublish(std::slice::from_ref(&stale)).unwrap();
    assert_eq!(get(sa(Ipv4Addr::LOCALHOST, p2)).as_deref(), Some("a2"));

    // remove_network takes its ports with it.
    env.fw.remove_network(&a.fw.name).unwrap();
    assert!(env.fw.published().unwrap().is_empty());
    assert!(elem_comments(&env.fw, "bridges").is_empty());
    assert_eq!(rule_count(&env.fw), BASE_RULES);
}

#[test]
fn networks_are_isolated_and_nat_leaves_them() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut env = Env::new();
    let a = env.network("a", false, false);
    let b = env.network("b", false, false);
    let a1 = env.container(&a, 2);
    let a2 = env.container(&a, 3);
    let b1 = env.container(&b, 2);
    let out = env.outside();
    env.serve(&a2, a2.ip4.into(), 80, "a2");
    env.serve(&b1, b1.ip4.into(), 80, "b1");
    let out_log = env.serve(&out, out.ip4.into(), 80, "out");

    // Before berth's rules the path A -> B exists (ip_forward=1, no other table in the way).
    assert_eq!(
        ns_get(&a1, sa(b1.ip4, 80)).as_deref(),
        Some("b1"),
        "baseline"
    );

    env.fw.add_network(&a.fw).unwrap();
    env.fw.add_network(&b.fw).unwrap();
    env.fw.add_network(&a.fw).unwrap(); // idempotent
    assert_eq!(ns_get(&a1, sa(b1.ip4, 80)), None, "A must not reach B");
    assert_eq!(ns_get(&b1, sa(a2.ip4, 80)), None, "B must not reach A");
    assert_eq!(
        ns_get(&a1, sa(a2.ip4, 80)).as_deref(),
        Some("a2"),
        "same network"
    );
    assert_eq!(ns_get(&a1, sa(a.gw4, 80)), None, "nothing published yet");

    // A published port of B stays reachable from A through a host address.
    let p = host_port(2);
    let mut m = env.port(Proto::Tcp, None, p, b1.ip4.into());
    m.network = b.fw.name.clone();
    env.fw.publish(&[m]).unwrap();
    assert_eq!(
        ns_get(&a1, sa(a.gw4, p)).as_deref(),
        Some("b1"),
        "published port across"
    );

    // Leaving the networks: masqueraded to the host's address on the outside link.
    assert_eq!(
        ns_get(&a1, sa(out.ip4, 80)).as_deref(),
        Some("out"),
        "A goes out"
    );
    let log = std::fs::read_to_string(&out_log).unwrap();
    let outside_host = format!("10.{}.{}.1 ", Env::octet2(), 250 - env.n);
    assert!(log.contains(&outside_host), "masqueraded source: {log}");
    assert!(
        !log.contains(&format!("{} ", a1.ip4)),
        "a1's address leaked: {log}"
    );
}

#[test]
fn internal_network_has_no_nat_and_no_way_out() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut env = Env::new();
    let i = env.network("int", true, false);
    let a = env.network("a", false, false);
    let i1 = env.container(&i, 2);
    let i2 = env.container(&i, 3);
    let out = env.outside();
    env.serve(&i2, i2.ip4.into(), 80, "i2");
    env.serve(&out, out.ip4.into(), 80, "out");
    // Give the outside a route back, so that only the firewall can stop i1 (not missing NAT).
    let subnet = format!("10.{}.{}.0/24", Env::octet2(), i.third);
    let via = format!("10.{}.{}.1", Env::octet2(), 250 - env.n);
    run(&["ip", "-n", &out.name, "route", "add", &subnet, "via", &via]);
    assert_eq!(
        ns_get(&i1, sa(out.ip4, 80)).as_deref(),
        Some("out"),
        "baseline"
    );

    env.fw.add_network(&i.fw).unwrap();
    env.fw.add_network(&a.fw).unwrap();
    assert_eq!(
        ns_get(&i1, sa(out.ip4, 80)),
        None,
        "internal must not get out"
    );
    assert_eq!(
        ns_get(&i1, sa(i2.ip4, 80)).as_deref(),
        Some("i2"),
        "inside works"
    );

    // No masquerade for it: its subnet is not in masq4 (the only masquerade of a network's
    // own traffic), while the non-internal network's is.
    let tag = |n: &Net| format!("net {}", n.fw.name);
    let masq = elem_comments(&env.fw, "masq4");
    assert!(!masq.contains(&tag(&i)), "{masq:?}");
    assert!(masq.contains(&tag(&a)), "{masq:?}");
    assert!(elem_comments(&env.fw, "internal").contains(&tag(&i)));
    assert!(!elem_comments(&env.fw, "internal").contains(&tag(&a)));

    // Turning it into a normal network (add_network updates) lets it out, masqueraded.
    let mut open = i.fw.clone();
    open.internal = false;
    env.fw.add_network(&open).unwrap();
    assert_eq!(ns_get(&i1, sa(out.ip4, 80)).as_deref(), Some("out"));
    assert!(elem_comments(&env.fw, "masq4").contains(&tag(&i)));
    assert_eq!(rule_count(&env.fw), BASE_RULES);
}

#[test]
fn restore_after_delete_brings_ports_back() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut env = Env::new();
    let a = env.network("a", false, false);
    let a1 = env.container(&a, 2);
    env.serve(&a1, a1.ip4.into(), 80, "a1");
    env.fw.add_network(&a.fw).unwrap();
    let p = host_port(3);
    let mut m = env.port(Proto::Tcp, None, p, a1.ip4.into());
    m.network = a.fw.name.clone();
    env.fw.publish(std::slice::from_ref(&m)).unwrap();
    assert_eq!(get(sa(Ipv4Addr::LOCALHOST, p)).as_deref(), Some("a1"));

    // A firewall reload deletes the table.
    env.fw.delete().unwrap();
    assert!(!env.fw.exists().unwrap());
    env.fw.delete().unwrap(); // idempotent
    assert_eq!(get(sa(Ipv4Addr::LOCALHOST, p)), None, "gone with the table");
    let err = env.fw.publish(std::slice::from_ref(&m)).unwrap_err();
    assert!(matches!(err, FirewallError::NoTable(_)), "{err}");
    assert!(err.to_string().contains("netctl reconcile"), "{err}");

    let state = FwState {
        networks: vec![a.fw.clone()],
        ports: vec![m.clone()],
    };
    env.fw.restore(&state).unwrap();
    assert!(env.fw.exists().unwrap());
    assert_eq!(
        get(sa(Ipv4Addr::LOCALHOST, p)).as_deref(),
        Some("a1"),
        "restored"
    );
    assert_eq!(get(sa(a.gw4, p)).as_deref(), Some("a1"), "restored");

    // Restore over an existing table replaces its contents (stale ports go).
    let mut stale = m.clone();
    stale.host_port = host_port(4);
    env.fw.publish(&[stale]).unwrap();
    env.fw.restore(&state).unwrap();
    assert_eq!(env.fw.published().unwrap(), vec![m]);
    env.fw.ensure_base().unwrap(); // keeps elements
    assert_eq!(env.fw.published().unwrap().len(), 1);
    assert_eq!(rule_count(&env.fw), BASE_RULES);
    assert_eq!(get(sa(Ipv4Addr::LOCALHOST, p)).as_deref(), Some("a1"));
}

#[test]
fn two_hundred_ports_are_element_adds() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut env = Env::new();
    let a = env.network("a", false, false);
    let a1 = env.container(&a, 2);
    env.serve(&a1, a1.ip4.into(), 80, "a1");
    env.fw.add_network(&a.fw).unwrap();
    let rules = rule_count(&env.fw);
    assert_eq!(rules, BASE_RULES);

    // Bound to the test bridge's address, so no other traffic on the host is captured.
    let base = 40000 + (pid() % 100) as u16 * 250;
    let mut all = Vec::new();
    let mut first = Duration::ZERO;
    let mut last = Duration::ZERO;
    for k in 0..200u16 {
        let mut m = env.port(Proto::Tcp, Some(a.gw4.into()), base + k, a1.ip4.into());
        m.network = a.fw.name.clone();
        let t = Instant::now();
        env.fw.publish(std::slice::from_ref(&m)).unwrap();
        let dt = t.elapsed();
        if k == 0 {
            first = dt;
        }
        last = dt;
        all.push(m);
        if k % 50 == 49 {
            assert_eq!(rule_count(&env.fw), rules, "rules must not grow with ports");
        }
    }
    eprintln!("publish: port 1 {first:?}, port 200 {last:?}");
    assert_eq!(rule_count(&env.fw), rules);
    assert_eq!(elem_comments(&env.fw, "dnat4").len(), 200);
    assert_eq!(get(sa(a.gw4, base + 137)).as_deref(), Some("a1"));
    assert_eq!(
        get(sa(Ipv4Addr::LOCALHOST, base + 137)),
        None,
        "bound to the gateway"
    );
    env.fw.unpublish(&all).unwrap();
    assert!(elem_comments(&env.fw, "dnat4").is_empty());
    assert_eq!(rule_count(&env.fw), rules);
}

#[test]
fn ipv6_published_port() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut env = Env::new();
    let a = env.network("a6", false, true);
    let a1 = env.container(&a, 2);
    let (ip6, gw6) = (a1.ip6.unwrap(), a.gw6.unwrap());
    env.serve(&a1, ip6.into(), 80, "a1v6");
    env.fw.add_network(&a.fw).unwrap();
    assert_eq!(elem_comments(&env.fw, "masq6").len(), 1);
    let p = host_port(5);
    let mut m = env.port(Proto::Tcp, None, p, ip6.into());
    m.network = a.fw.name.clone();
    env.fw.publish(std::slice::from_ref(&m)).unwrap();
    assert_eq!(
        get(sa(gw6, p)).as_deref(),
        Some("a1v6"),
        "via the bridge's v6 address"
    );
    // An IPv4 mapping of the same port is another family: no clash.
    let mut m4 = m.clone();
    m4.container_ip = a1.ip4.into();
    env.fw.publish(&[m4]).unwrap();
    env.fw.unpublish(&[m]).unwrap();
    assert_eq!(get(sa(gw6, p)), None);
}

#[test]
fn bad_input_is_refused_without_change() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let env = Env::new();
    let net = FwNetwork {
        name: "ok".into(),
        bridge: "brtnone0".into(),
        subnets: vec![],
        internal: false,
    };
    let bad_names = [
        FwNetwork {
            name: "bad\"name".into(),
            ..net.clone()
        },
        FwNetwork {
            bridge: "br\"x".into(),
            ..net.clone()
        },
        FwNetwork {
            bridge: "a-name-too-long-for-linux".into(),
            ..net.clone()
        },
    ];
    for n in &bad_names {
        let err = env.fw.add_network(n).unwrap_err();
        assert!(matches!(err, FirewallError::Invalid(_)), "{err}");
    }
    let m = PortMapping {
        proto: Proto::Udp,
        host_ip: Some(Ipv6Addr::LOCALHOST.into()),
        host_port: host_port(6),
        container_ip: Ipv4Addr::new(10, 0, 0, 2).into(),
        container_port: 53,
        network: "ok".into(),
    };
    let err = env.fw.publish(std::slice::from_ref(&m)).unwrap_err();
    assert!(err.to_string().contains("different families"), "{err}");
    let zero = PortMapping {
        host_ip: None,
        host_port: 0,
        ..m.clone()
    };
    assert!(matches!(
        env.fw.publish(&[zero]).unwrap_err(),
        FirewallError::Invalid(_)
    ));
    // A bridge cannot belong to two networks.
    env.fw.add_network(&net).unwrap();
    let twin = FwNetwork {
        name: "twin".into(),
        ..net.clone()
    };
    let err = env.fw.add_network(&twin).unwrap_err();
    assert!(
        err.to_string().contains("already belongs to network ok"),
        "{err}"
    );
    let err = Firewall::new("bad table").ensure_base().unwrap_err();
    assert!(matches!(err, FirewallError::Invalid(_)), "{err}");
    assert_eq!(
        elem_comments(&env.fw, "bridges"),
        vec!["net ok".to_string()]
    );
    assert!(env.fw.published().unwrap().is_empty());
    assert_eq!(rule_count(&env.fw), BASE_RULES);
}
